import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  ENVELOPE_SIZE,
  readCorrelationNumber,
  readEnvelope,
  readFlags,
  readPayloadLength,
  readSourceActor,
  readTimestamp,
  readTypeId,
  validateEnvelope,
  validateEnvelopeFields,
  VOID_TYPE_ID,
  writeEnvelope,
  writeEnvelopeFor,
} from "../src/envelope.ts";
import { ENVELOPE } from "../src/layout.ts";
import { packHlc } from "../src/hlc.ts";
import { defineMessage, SchemaRegistry, utf8 } from "../src/message.ts";
import { InvalidMessageError } from "../src/errors.ts";
import { Prng } from "./workers/prng.ts";

const Small = defineMessage({ name: "Small", fields: { a: "u32", b: "u32" } });
const Text = defineMessage({ name: "Text", fields: { t: utf8(200) } });
const Big = defineMessage({ name: "Big", fields: { t: utf8(40) } });

describe("envelope layout", () => {
  test("is 32 bytes, as layout.ts declares", () => {
    assert.equal(ENVELOPE_SIZE, 32);
    assert.equal(ENVELOPE.size, 32);
  });

  test("fields land at the offsets of ENVELOPE", () => {
    const view = new DataView(new ArrayBuffer(64));
    writeEnvelope(view, 16, {
      typeId: 0x11223344,
      payloadLength: 0x5566,
      flags: 0x7788,
      correlationId: 0x0102030405060708n,
      timestamp: 0x1112131415161718n,
      sourceActor: 0x21222324,
    });
    const f = ENVELOPE.fields;
    assert.equal(view.getUint32(16 + f.typeId.offset, true), 0x11223344);
    assert.equal(view.getUint16(16 + f.payloadLength.offset, true), 0x5566);
    assert.equal(view.getUint16(16 + f.flags.offset, true), 0x7788);
    assert.equal(
      view.getBigUint64(16 + f.correlationId.offset, true),
      0x0102030405060708n,
    );
    assert.equal(
      view.getBigUint64(16 + f.timestamp.offset, true),
      0x1112131415161718n,
    );
    assert.equal(view.getUint32(16 + f.sourceActor.offset, true), 0x21222324);
  });
});

describe("write and read", () => {
  test("random envelopes round-trip; the stamp is never written", () => {
    const rng = new Prng(11);
    const view = new DataView(new ArrayBuffer(64));
    for (let i = 0; i < 2000; i++) {
      const stamp = rng.u32();
      view.setUint32(8 + ENVELOPE.fields.stamp.offset, stamp, true);
      const init = {
        typeId: rng.u32(),
        payloadLength: rng.int(0, 0xffff),
        flags: rng.int(0, 0xffff),
        correlationId: rng.chance(0.5)
          ? rng.u64()
          : rng.int(0, Number.MAX_SAFE_INTEGER),
        timestamp: rng.u64(),
        sourceActor: rng.u32(),
      };
      writeEnvelope(view, 8, init);
      const read = readEnvelope(view, 8);
      assert.deepEqual(read, {
        ...init,
        correlationId: BigInt(init.correlationId),
        stamp,
      });
      assert.equal(readTypeId(view, 8), init.typeId);
      assert.equal(readPayloadLength(view, 8), init.payloadLength);
      assert.equal(readFlags(view, 8), init.flags);
      assert.equal(readSourceActor(view, 8), init.sourceActor);
    }
  });

  test("absent header fields are written as zero over old contents", () => {
    const bytes = new Uint8Array(32).fill(0xff);
    const view = new DataView(bytes.buffer);
    writeEnvelopeFor(view, 0, Small);
    const read = readEnvelope(view, 0);
    assert.deepEqual({ ...read, stamp: 0 }, {
      typeId: Small.typeId,
      payloadLength: Small.size,
      flags: 0,
      correlationId: 0n,
      timestamp: 0n,
      sourceActor: 0,
      stamp: 0,
    });
    assert.equal(read.stamp, 0xffffffff);
    bytes.fill(0xff);
    writeEnvelopeFor(view, 0, Small, { flags: 3 });
    assert.equal(readEnvelope(view, 0).correlationId, 0n);
    assert.equal(readEnvelope(view, 0).sourceActor, 0);
  });

  test("an HLC timestamp is packed in place; readTimestamp unpacks it with the source as node", () => {
    const view = new DataView(new ArrayBuffer(32));
    const ts = { physicalMs: 1_700_000_000_123, logical: 77, nodeId: 5 };
    writeEnvelopeFor(view, 0, Small, { timestamp: ts, sourceActor: 5 });
    assert.equal(readEnvelope(view, 0).timestamp, packHlc(ts));
    assert.deepEqual(readTimestamp(view, 0), ts);
  });

  test("correlation ids read as numbers up to 2^53 - 1", () => {
    const view = new DataView(new ArrayBuffer(32));
    for (const id of [0, 1, 2 ** 32, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
      writeEnvelopeFor(view, 0, Small, { correlationId: id });
      assert.equal(readCorrelationNumber(view, 0), id);
    }
    writeEnvelopeFor(view, 0, Small, { correlationId: 2n ** 53n });
    assert.throws(() => readCorrelationNumber(view, 0), InvalidMessageError);
  });

  test("out-of-range fields are rejected with InvalidMessageError", () => {
    const view = new DataView(new ArrayBuffer(32));
    const good = { typeId: 1, payloadLength: 0 };
    const bad = [
      { ...good, typeId: -1 },
      { ...good, typeId: 2 ** 32 },
      { ...good, payloadLength: 65536 },
      { ...good, payloadLength: 1.5 },
      { ...good, flags: 65536 },
      { ...good, sourceActor: -1 },
      { ...good, correlationId: -1 },
      { ...good, correlationId: 2 ** 53 },
      { ...good, correlationId: 2n ** 64n },
      { ...good, correlationId: -1n },
      { ...good, timestamp: -1n },
      { ...good, timestamp: { physicalMs: 2 ** 48, logical: 0, nodeId: 0 } },
      { ...good, timestamp: "1" as never },
    ];
    for (const init of bad) {
      assert.throws(
        () => writeEnvelope(view, 0, init),
        InvalidMessageError,
        JSON.stringify(init, (_, v) => typeof v === "bigint" ? `${v}n` : v),
      );
    }
  });
});

describe("validation", () => {
  const registry = new SchemaRegistry([Small, Text]);
  const view = new DataView(new ArrayBuffer(64));

  test("accepts a known type of the right length and returns its schema", () => {
    writeEnvelopeFor(view, 0, Small);
    assert.equal(
      validateEnvelope(view, 0, { schemas: registry, slotSize: 64 }),
      Small,
    );
    assert.equal(
      validateEnvelope(view, 0, { schemas: Small, slotSize: 64 }),
      Small,
    );
    assert.equal(
      validateEnvelopeFields(
        { typeId: Text.typeId, payloadLength: Text.size },
        {
          schemas: registry,
          slotSize: 256,
        },
      ),
      Text,
    );
  });

  test("rejects each kind of bad envelope", () => {
    const cases: Array<
      [string, { typeId: number; payloadLength: number }, number]
    > = [
      ["unknown type id", { typeId: 0xdeadbeef, payloadLength: 8 }, 64],
      ["void type id", { typeId: VOID_TYPE_ID, payloadLength: 0 }, 64],
      ["payload larger than the slot", {
        typeId: Text.typeId,
        payloadLength: Text.size,
      }, 64],
      [
        "payload past the slot",
        { typeId: Small.typeId, payloadLength: 33 },
        64,
      ],
      ["length below the schema size", {
        typeId: Small.typeId,
        payloadLength: 4,
      }, 64],
      ["length above the schema size", {
        typeId: Small.typeId,
        payloadLength: 16,
      }, 64],
      ["zero length for a sized schema", {
        typeId: Small.typeId,
        payloadLength: 0,
      }, 64],
    ];
    for (const [what, envelope, slotSize] of cases) {
      assert.throws(
        () => validateEnvelopeFields(envelope, { schemas: registry, slotSize }),
        InvalidMessageError,
        what,
      );
      writeEnvelope(view, 0, envelope);
      assert.throws(
        () => validateEnvelope(view, 0, { schemas: registry, slotSize }),
        InvalidMessageError,
        what,
      );
    }
    writeEnvelopeFor(view, 0, Small);
    assert.throws(
      () => validateEnvelope(view, 0, { schemas: Big, slotSize: 64 }),
      InvalidMessageError,
    );
  });

  test("random envelopes: accepted exactly when type, length and slot agree", () => {
    const rng = new Prng(12);
    const schemas = [Small, Text, Big];
    for (let i = 0; i < 5000; i++) {
      const schema = rng.pick(schemas);
      const typeId = rng.chance(0.8) ? schema.typeId : rng.u32();
      const payloadLength = rng.chance(0.7) ? schema.size : rng.int(0, 300);
      const slotSize = rng.pick([64, 256, 1024]);
      const known = registry.get(typeId);
      const valid = known !== undefined && payloadLength === known.size &&
        payloadLength <= slotSize - ENVELOPE_SIZE;
      const run = () =>
        validateEnvelopeFields({ typeId, payloadLength }, {
          schemas: registry,
          slotSize,
        });
      if (valid) assert.equal(run(), known);
      else assert.throws(run, InvalidMessageError);
    }
  });
});
