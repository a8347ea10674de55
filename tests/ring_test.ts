import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  MAX_RING_CAPACITY,
  type RejectedSlot,
  Ring,
  RING_HEADER_SIZE,
  ringByteLength,
  type RingKind,
} from "../src/ring.ts";
import {
  ENVELOPE_SIZE,
  readEnvelope,
  readTypeId,
  VOID_TYPE_ID,
} from "../src/envelope.ts";
import { defineMessage, SchemaRegistry, utf8 } from "../src/message.ts";
import { QUEUE_HEADER, QUEUE_MAGIC, QueueKind } from "../src/layout.ts";
import {
  InvalidMessageError,
  InvalidStateError,
  QueueFullError,
  TimeoutError,
} from "../src/errors.ts";
import { delay } from "../src/async.ts";
import { Prng } from "./workers/prng.ts";
import process from "node:process";

const Item = defineMessage({
  name: "test.Item",
  fields: { n: "u32", tag: "u16" },
});
const Note = defineMessage({ name: "test.Note", fields: { text: utf8(24) } });
const Huge = defineMessage({ name: "test.Huge", fields: { text: utf8(100) } });
const KINDS: readonly RingKind[] = ["spsc", "mpsc"];

function makeRing(
  kind: RingKind,
  capacity: number,
  options: { shared?: boolean; initialIndex?: number; slotSize?: number } = {},
): Ring {
  const { shared = false, initialIndex, slotSize } = options;
  const length = ringByteLength({ capacity, slotSize });
  const buffer = shared
    ? new SharedArrayBuffer(length)
    : new ArrayBuffer(length);
  return Ring.create(buffer, { capacity, kind, initialIndex, slotSize });
}

function headerWord(
  ring: Ring,
  field: keyof typeof QUEUE_HEADER.fields,
): number {
  return ring.view.getUint32(QUEUE_HEADER.fields[field].offset, true);
}

describe("ring geometry and header", () => {
  test("byte length is header plus slots", () => {
    assert.equal(RING_HEADER_SIZE, 512);
    assert.equal(ringByteLength({ capacity: 8 }), 512 + 8 * 64);
    assert.equal(
      ringByteLength({ capacity: 4, slotSize: 4096 }),
      512 + 4 * 4096,
    );
  });

  test("create writes the header declared by QUEUE_HEADER", () => {
    const buffer = new ArrayBuffer(
      128 + ringByteLength({ capacity: 8, slotSize: 256 }),
    );
    const ring = Ring.create(buffer, {
      capacity: 8,
      slotSize: 256,
      kind: "mpsc",
      byteOffset: 128,
      initialIndex: 77,
    });
    assert.equal(headerWord(ring, "magic"), QUEUE_MAGIC);
    assert.equal(headerWord(ring, "kind"), QueueKind.Mpsc);
    assert.equal(headerWord(ring, "capacity"), 8);
    assert.equal(headerWord(ring, "slotSize"), 256);
    assert.equal(headerWord(ring, "head"), 77);
    assert.equal(headerWord(ring, "tail"), 77);
    assert.equal(headerWord(ring, "reserve"), 77);
    assert.equal(headerWord(ring, "dropped"), 0);
    assert.equal(
      new DataView(buffer).getUint32(
        128 + QUEUE_HEADER.fields.magic.offset,
        true,
      ),
      QUEUE_MAGIC,
    );
    assert.equal(ring.payloadCapacity, 256 - ENVELOPE_SIZE);
  });

  test("create rejects bad geometry and placement", () => {
    const buffer = new ArrayBuffer(1 << 16);
    const bad: Array<() => unknown> = [
      () => Ring.create(buffer, { capacity: 0 }),
      () => Ring.create(buffer, { capacity: 12 }),
      () => Ring.create(buffer, { capacity: 2.5 }),
      () => Ring.create(buffer, { capacity: MAX_RING_CAPACITY * 2 }),
      () => Ring.create(buffer, { capacity: 8, slotSize: 100 }),
      () => Ring.create(buffer, { capacity: 8, slotSize: 32 }),
      () => Ring.create(buffer, { capacity: 8, byteOffset: 64 }),
      () => Ring.create(buffer, { capacity: 8, byteOffset: -128 }),
      () => Ring.create(buffer, { capacity: 1024 }),
      () => Ring.create(buffer, { capacity: 8, kind: "spmc" as never }),
      () => Ring.create(buffer, { capacity: 8, initialIndex: -1 }),
    ];
    for (const fn of bad) assert.throws(fn, RangeError);
  });

  test("attach reads the configuration and checks expectations", () => {
    const buffer = new SharedArrayBuffer(
      256 + ringByteLength({ capacity: 16 }),
    );
    Ring.create(buffer, { capacity: 16, kind: "mpsc", byteOffset: 256 });
    const ring = Ring.attach(buffer, {
      byteOffset: 256,
      kind: "mpsc",
      capacity: 16,
      slotSize: 64,
    });
    assert.equal(ring.kind, "mpsc");
    assert.equal(ring.capacity, 16);
    assert.equal(ring.shared, true);
    for (
      const expect of [{ kind: "spsc" as const }, { capacity: 32 }, {
        slotSize: 256,
      }]
    ) {
      assert.throws(
        () => Ring.attach(buffer, { byteOffset: 256, ...expect }),
        InvalidStateError,
      );
    }
    assert.throws(
      () => Ring.attach(buffer, { byteOffset: 0 }),
      InvalidStateError,
    );
    assert.throws(() => Ring.attach(new ArrayBuffer(100)), RangeError);
  });

  test("attach refuses a corrupt header", () => {
    const ring = makeRing("spsc", 8);
    const at = (field: keyof typeof QUEUE_HEADER.fields) =>
      QUEUE_HEADER.fields[field].offset;
    for (
      const [field, value] of [["kind", 9], ["capacity", 6], [
        "capacity",
        1 << 20,
      ], ["slotSize", 100]] as const
    ) {
      const copy = ring.buffer.slice(0) as ArrayBuffer;
      new DataView(copy).setUint32(at(field), value, true);
      assert.throws(
        () => Ring.attach(copy),
        InvalidStateError,
        `${field} = ${value}`,
      );
    }
  });
});

describe("ring protocol against a model", () => {
  for (const kind of KINDS) {
    test(`${kind}: random claims, publishes and releases match a FIFO model across wraparound`, () => {
      const rng = new Prng(kind === "spsc" ? 101 : 202);
      for (const capacity of [1, 2, 8, 64]) {
        const ring = makeRing(kind, capacity, {
          initialIndex: 2 ** 32 - 3 * capacity - 1,
        });
        const producer = ring.producer();
        const consumer = ring.consumer();
        const model: number[] = [];
        let nextValue = 0;
        for (let step = 0; step < 4000; step++) {
          if (rng.chance(0.5)) {
            const want = rng.int(0, capacity + 2);
            const granted = producer.claim(want);
            assert.equal(
              granted,
              Math.min(want, capacity - model.length),
              "granted",
            );
            const publish = rng.chance(0.8) ? granted : rng.int(0, granted);
            for (let i = 0; i < publish; i++) {
              const offset = producer.slotOffset(i);
              ring.view.setUint32(offset, Item.typeId, true);
              ring.view.setUint16(offset + 4, Item.size, true);
              Item.encode(ring.view, offset + ENVELOPE_SIZE, {
                n: nextValue,
                tag: 7,
              });
              model.push(nextValue++);
            }
            producer.publish(publish);
            // MPSC publishes the unfilled rest of a claim as void slots.
            if (kind === "mpsc") {
              for (let i = publish; i < granted; i++) model.push(-1);
            }
          } else {
            // available() re-reads the producer side only when it knows of none.
            const ready = consumer.available();
            assert.ok(
              ready <= model.length && (ready > 0 || model.length === 0),
              "available",
            );
            const take = rng.int(0, ready);
            for (let i = 0; i < take; i++) {
              const offset = consumer.slotOffset(i);
              const expected = model[i];
              if (expected === -1) {
                assert.equal(readTypeId(ring.view, offset), VOID_TYPE_ID);
              } else {
                assert.equal(
                  Item.read(ring.view, offset + ENVELOPE_SIZE, "n"),
                  expected,
                );
              }
            }
            consumer.release(take);
            model.splice(0, take);
          }
          assert.equal(ring.depth(), model.length, "depth");
        }
      }
    });
  }

  test("claim and publish misuse is refused", () => {
    for (const kind of KINDS) {
      const ring = makeRing(kind, 4);
      const producer = ring.producer();
      assert.equal(producer.claim(2), 2);
      assert.equal(producer.pending, 2);
      assert.throws(() => producer.claim(1), InvalidStateError);
      assert.throws(() => producer.slotOffset(2), RangeError);
      assert.throws(() => producer.publish(3), RangeError);
      assert.throws(() => producer.claim(-1), InvalidStateError);
      producer.publish(2);
      assert.throws(() => producer.claim(-1), RangeError);
      assert.throws(() => producer.claim(1.5), RangeError);
      const consumer = ring.consumer();
      assert.equal(consumer.available(), 2);
      assert.throws(() => consumer.release(3), RangeError);
      assert.throws(() => consumer.slotOffset(2), RangeError);
    }
  });

  test("slot indices and positions are free-running and agree with the header", () => {
    for (const kind of KINDS) {
      const ring = makeRing(kind, 4, { initialIndex: 0xffff_fffe });
      assert.equal(ring.headIndex(), 0xffff_fffe);
      assert.equal(ring.endIndex(), 0xffff_fffe);
      const producer = ring.producer();
      assert.equal(producer.claim(3), 3);
      assert.deepEqual(
        [0, 1, 2].map((i) => producer.slotIndex(i)),
        [0xffff_fffe, 0xffff_ffff, 0],
      );
      assert.throws(() => producer.slotIndex(3), RangeError);
      producer.publish(3);
      assert.equal(ring.endIndex(), 1);
      const consumer = ring.consumer();
      assert.equal(consumer.available(), 3);
      assert.equal(consumer.slotIndex(0), ring.headIndex());
      consumer.release(2);
      assert.equal(ring.headIndex(), 0);
      assert.equal(consumer.slotIndex(0), 0);
      assert.equal(ring.depth(), 1);
    }
  });

  test("a consumer refuses a corrupt tail", () => {
    const ring = makeRing("spsc", 4);
    ring.view.setUint32(QUEUE_HEADER.fields.tail.offset, 9, true);
    assert.throws(() => ring.consumer().available(), InvalidStateError);
  });
});

describe("corrupt indices", () => {
  const U32 = 2 ** 32;
  const endOf = (kind: RingKind) => kind === "spsc" ? "tail" : "reserve";
  function setWord(
    ring: Ring,
    field: keyof typeof QUEUE_HEADER.fields,
    value: number,
  ): void {
    ring.view.setUint32(QUEUE_HEADER.fields[field].offset, value >>> 0, true);
  }

  for (const kind of KINDS) {
    test(`${kind}: attach refuses ${endOf(kind)} more than capacity past head (u32)`, () => {
      for (const initialIndex of [0, U32 - 2]) {
        const ring = makeRing(kind, 8, { initialIndex });
        for (const distance of [9, 100, U32 - 1, 2 ** 31]) {
          setWord(ring, endOf(kind), initialIndex + distance);
          assert.throws(
            () => Ring.attach(ring.buffer),
            (error) =>
              error instanceof InvalidStateError &&
              error.state === "invalid" &&
              /past head/.test(error.message),
            `${endOf(kind)} = head + ${distance}`,
          );
        }
        // A full ring, across the 2^32 wrap, is a ring like any other.
        for (const distance of [0, 1, 8]) {
          setWord(ring, endOf(kind), initialIndex + distance);
          assert.equal(Ring.attach(ring.buffer).depth(), distance);
        }
      }
    });

    test(`${kind}: producers refuse a corrupt head with InvalidStateError, without spinning`, () => {
      for (const initialIndex of [0, U32 - 3]) {
        for (
          const call of [
            (p: ReturnType<Ring["producer"]>) => p.claim(1),
            (p: ReturnType<Ring["producer"]>) =>
              p.tryEnqueue(Item, { n: 1, tag: 1 }),
            (p: ReturnType<Ring["producer"]>) =>
              p.enqueueOrDrop(Item, { n: 1, tag: 1 }),
            (p: ReturnType<Ring["producer"]>) =>
              p.enqueueBatch(Item, [{ n: 1, tag: 1 }, { n: 2, tag: 1 }]),
            (p: ReturnType<Ring["producer"]>) =>
              p.tryEnqueueRaw({ typeId: Item.typeId }, new Uint8Array(8)),
          ]
        ) {
          const ring = makeRing(kind, 4, { initialIndex });
          const producer = ring.producer();
          // Full, so the producer must read head again (an SPSC producer
          // trusts its cached head while that leaves room).
          for (let n = 0; n < 4; n++) {
            assert.equal(producer.tryEnqueue(Item, { n, tag: 1 }), true);
          }
          // Head jumps past the producers' end: 2^32 - 93 slots "used".
          setWord(ring, "head", initialIndex + 97);
          assert.throws(
            () => call(producer),
            (error) =>
              error instanceof InvalidStateError &&
              error.state === "corrupt" && /past head/.test(error.message),
            call.toString(),
          );
          assert.equal(producer.pending, 0);
          assert.equal(ring.dropped(), 0);
        }
      }
    });

    test(`${kind}: the async enqueue rejects on a corrupt ring instead of waiting`, async () => {
      const ring = makeRing(kind, 2);
      const producer = ring.producer();
      await producer.enqueue(Item, { n: 1, tag: 1 });
      await producer.enqueue(Item, { n: 2, tag: 1 });
      setWord(ring, "head", 0xfffffff0);
      await assert.rejects(
        producer.enqueue(Item, { n: 1, tag: 1 }, undefined, {
          timeoutMs: 60_000,
        }),
        InvalidStateError,
      );
    });

    test(`${kind}: waits refuse a NaN deadline (it would never pass)`, async () => {
      const ring = makeRing(kind, 2, { shared: true });
      const consumer = ring.consumer();
      const producer = ring.producer();
      assert.throws(() => consumer.waitReadable(NaN), RangeError);
      await assert.rejects(consumer.readable({ timeoutMs: NaN }), RangeError);
      await assert.rejects(
        consumer.dequeue(Item, { timeoutMs: NaN }),
        RangeError,
      );
      producer.tryEnqueue(Item, { n: 1, tag: 1 });
      producer.tryEnqueue(Item, { n: 2, tag: 1 });
      await assert.rejects(
        producer.enqueue(Item, { n: 3, tag: 1 }, undefined, { timeoutMs: NaN }),
        RangeError,
      );
    });
  }

  test("mpsc: a producer whose guess of reserve is laps behind still claims", () => {
    const ring = makeRing("mpsc", 4, { initialIndex: U32 - 5 });
    const stale = ring.producer();
    const busy = ring.producer();
    const consumer = ring.consumer();
    for (let i = 0; i < 37; i++) {
      assert.equal(busy.tryEnqueue(Item, { n: i, tag: 1 }), true);
      assert.equal(consumer.tryDequeue(Item)?.value.n, i);
    }
    // The stale producer's guess is 37 tickets behind head: not corruption.
    assert.equal(stale.tryEnqueue(Item, { n: 99, tag: 1 }), true);
    assert.equal(stale.enqueueBatch(Item, [{ n: 100, tag: 1 }]), 1);
    assert.deepEqual(
      [consumer.tryDequeue(Item)?.value.n, consumer.tryDequeue(Item)?.value.n],
      [99, 100],
    );
  });
});

describe("producer conveniences", () => {
  for (const kind of KINDS) {
    test(`${kind}: tryEnqueue fills the ring, then returns false; enqueueOrDrop counts drops`, () => {
      const ring = makeRing(kind, 4);
      const producer = ring.producer();
      for (let i = 0; i < 4; i++) {
        assert.equal(producer.tryEnqueue(Item, { n: i, tag: 1 }), true);
      }
      assert.equal(producer.tryEnqueue(Item, { n: 9, tag: 1 }), false);
      assert.equal(ring.dropped(), 0);
      assert.equal(producer.enqueueOrDrop(Item, { n: 9, tag: 1 }), false);
      assert.equal(producer.enqueueOrDrop(Item, { n: 9, tag: 1 }), false);
      assert.deepEqual(ring.stats(), {
        capacity: 4,
        depth: 4,
        dropped: 2,
        released: 0,
      });
      const consumer = ring.consumer();
      for (let i = 0; i < 4; i++) {
        const received = consumer.tryDequeue(Item);
        assert.ok(received);
        assert.equal(received.value.n, i);
      }
      assert.equal(consumer.tryDequeue(Item), undefined);
      assert.equal(producer.enqueueOrDrop(Item, { n: 5, tag: 1 }), true);
    });

    test(`${kind}: bad input is rejected and nothing is published`, () => {
      const ring = makeRing(kind, 4);
      const producer = ring.producer();
      const consumer = ring.consumer();
      assert.throws(
        () => producer.tryEnqueue(Item, { n: -1, tag: 1 }),
        InvalidMessageError,
      );
      assert.throws(
        () => producer.tryEnqueue(Item, { n: 1, tag: 1 }, { flags: 1 << 16 }),
        InvalidMessageError,
      );
      assert.throws(
        () => producer.tryEnqueue(Huge, { text: "" }),
        InvalidMessageError,
      );
      assert.throws(
        () =>
          producer.enqueueBatch(Item, [{ n: 1, tag: 1 }, { n: 2, tag: 70000 }, {
            n: 3,
            tag: 1,
          }]),
        InvalidMessageError,
      );
      assert.throws(
        () => producer.tryEnqueueRaw({ typeId: 1 }, new Uint8Array(33)),
        InvalidMessageError,
      );
      assert.equal(consumer.tryDequeue(Item), undefined);
      // Header fields that String() or a bitwise operator cannot convert.
      const odd = [Object.create(null), 1n, Symbol("s"), "1", {
        [Symbol.toPrimitive]() {
          throw new Error("no primitive");
        },
      }];
      const headers: unknown[] = [null];
      for (const value of odd) {
        headers.push({ flags: value }, { sourceActor: value });
        // 1n is a valid u64.
        if (value === 1n) continue;
        headers.push(
          { correlationId: value },
          { timestamp: value },
          { timestamp: { physicalMs: value, logical: 0, nodeId: 0 } },
          { timestamp: { physicalMs: 0, logical: value, nodeId: 0 } },
        );
      }
      headers.push({ timestamp: -1n }, { correlationId: 2n ** 64n });
      for (const header of headers) {
        for (
          const call of [
            () => producer.tryEnqueue(Item, { n: 1, tag: 1 }, header as never),
            () =>
              producer.enqueueBatch(
                Item,
                [{ n: 1, tag: 1 }],
                header as never,
              ),
            () =>
              producer.tryEnqueueRaw(
                { typeId: Item.typeId, ...(header as object) },
                new Uint8Array(8),
              ),
          ]
        ) {
          // Spread into the raw envelope, null is no header at all.
          if (header === null && call.toString().includes("tryEnqueueRaw")) {
            continue;
          }
          assert.throws(call, InvalidMessageError, String(call));
          // MPSC publishes a refused ticket as a void slot: skip it.
          assert.equal(consumer.tryDequeue(Item), undefined);
        }
      }
      for (const typeId of [...odd, -1, 2 ** 32]) {
        assert.throws(
          () =>
            producer.tryEnqueueRaw(
              { typeId: typeId as number },
              new Uint8Array(8),
            ),
          InvalidMessageError,
        );
        assert.equal(consumer.tryDequeue(Item), undefined);
      }
      assert.equal(producer.pending, 0);
      assert.equal(
        consumer.tryDequeue(Item),
        undefined,
        "no message (void slots are skipped)",
      );
      assert.equal(ring.depth(), 0);
      assert.equal(producer.tryEnqueue(Item, { n: 42, tag: 1 }), true);
      assert.equal(consumer.tryDequeue(Item)?.value.n, 42);
    });

    test(`${kind}: enqueueBatch publishes as many as fit, in order`, () => {
      const ring = makeRing(kind, 8);
      const producer = ring.producer();
      const values = Array.from({ length: 12 }, (_, n) => ({ n, tag: 2 }));
      assert.equal(producer.enqueueBatch(Item, values, { sourceActor: 3 }), 8);
      assert.equal(producer.enqueueBatch(Item, values), 0);
      const seen: number[] = [];
      const consumer = ring.consumer();
      assert.equal(
        consumer.dequeueMessages(Item, 100, (received) => {
          assert.equal(received.envelope.sourceActor, 3);
          seen.push(received.value.n);
        }),
        8,
      );
      assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7]);
    });

    test(`${kind}: enqueueBatch copies one envelope into every slot and starts where asked`, () => {
      const ring = makeRing(kind, 8, { initialIndex: 2 ** 32 - 3 });
      const producer = ring.producer();
      const consumer = ring.consumer();
      // Dirty every slot first: the batch must overwrite each envelope whole.
      producer.enqueueBatch(
        Item,
        Array.from({ length: 8 }, (_, n) => ({ n, tag: 1 })),
        { correlationId: 0xffff_ffff_ff, flags: 0xffff, sourceActor: 0xffff },
      );
      consumer.dequeueMessages(Item, 8, () => {});
      const values = Array.from({ length: 10 }, (_, n) => ({ n, tag: 2 }));
      const ts = { physicalMs: 1_700_000_000_000, logical: 3, nodeId: 9 };
      const header = {
        correlationId: 5,
        flags: 2,
        sourceActor: 7,
        timestamp: ts,
      };
      assert.equal(
        producer.enqueueBatch(Item, values, header, { start: 4 }),
        6,
      );
      const seen: number[] = [];
      consumer.dequeueMessages(Item, 100, ({ envelope, value }) => {
        assert.equal(envelope.typeId, Item.typeId);
        assert.equal(envelope.payloadLength, Item.size);
        assert.equal(envelope.correlationId, 5n);
        assert.equal(envelope.flags, 2);
        assert.equal(envelope.sourceActor, 7);
        seen.push(value.n);
      });
      assert.deepEqual(seen, [4, 5, 6, 7, 8, 9]);
      assert.equal(
        producer.enqueueBatch(Item, values, undefined, { start: 10 }),
        0,
      );
      assert.throws(
        () => producer.enqueueBatch(Item, values, undefined, { start: 11 }),
        RangeError,
      );
      // A bad header is refused before anything is claimed.
      assert.throws(
        () => producer.enqueueBatch(Item, values, { sourceActor: -1 }),
        InvalidMessageError,
      );
      assert.equal(ring.depth(), 0);
    });

    test(`${kind}: envelopes carry the header; raw payloads pass through`, () => {
      const ring = makeRing(kind, 4);
      const producer = ring.producer();
      const ts = { physicalMs: 1_700_000_000_000, logical: 3, nodeId: 9 };
      producer.tryEnqueue(Note, { text: "héllo" }, {
        correlationId: 77,
        flags: 5,
        timestamp: ts,
        sourceActor: 9,
      });
      const payload = new Uint8Array(Item.size);
      Item.encode(new DataView(payload.buffer), 0, { n: 123, tag: 4 });
      assert.equal(
        producer.tryEnqueueRaw(
          { typeId: Item.typeId, correlationId: 1n },
          payload,
        ),
        true,
      );
      const consumer = ring.consumer();
      const registry = new SchemaRegistry([Item, Note]);
      const first = consumer.tryDequeue(registry);
      assert.ok(first);
      assert.equal(first.schema, Note);
      assert.deepEqual(first.value, { text: "héllo" });
      assert.equal(first.envelope.correlationId, 77n);
      assert.equal(first.envelope.flags, 5);
      assert.equal(first.envelope.sourceActor, 9);
      assert.equal(first.envelope.payloadLength, Note.size);
      const second = consumer.tryDequeue(registry);
      assert.equal(second?.schema, Item);
      assert.deepEqual(second?.value, { n: 123, tag: 4 });
    });
  }
});

describe("envelope headers", () => {
  test("a header that is not an object (but not null) carries no fields", () => {
    const ring = makeRing("spsc", 4);
    const producer = ring.producer();
    const consumer = ring.consumer();
    for (const header of [5, "h", Symbol("s"), true]) {
      assert.equal(
        producer.tryEnqueue(Item, { n: 1, tag: 1 }, header as never),
        true,
      );
      const got = consumer.tryDequeue(Item);
      assert.deepEqual(got?.value, { n: 1, tag: 1 });
      assert.equal(got?.envelope.flags, 0);
      assert.equal(got?.envelope.correlationId, 0n);
      assert.equal(got?.envelope.sourceActor, 0);
    }
  });
});

describe("consumer conveniences", () => {
  test("an invalid slot is released and thrown with a copy of its bytes", () => {
    const ring = makeRing("spsc", 4);
    const producer = ring.producer();
    producer.tryEnqueue(Note, { text: "not an item" });
    producer.tryEnqueue(Item, { n: 1, tag: 1 });
    const consumer = ring.consumer();
    assert.throws(() => consumer.tryDequeue(Item), (error: unknown) => {
      assert.ok(error instanceof InvalidMessageError);
      const rejected = error.cause as RejectedSlot;
      assert.ok(rejected.error instanceof InvalidMessageError);
      assert.equal(rejected.slot.length, ring.slotSize);
      assert.equal(
        readEnvelope(new DataView(rejected.slot.buffer), 0).typeId,
        Note.typeId,
      );
      return true;
    });
    assert.equal(consumer.tryDequeue(Item)?.value.n, 1);
  });

  test("with onInvalid, invalid slots go to the hook and decoding goes on", () => {
    const ring = makeRing("mpsc", 8);
    const producer = ring.producer();
    const rejected: RejectedSlot[] = [];
    const consumer = ring.consumer({ onInvalid: (r) => rejected.push(r) });
    producer.tryEnqueue(Item, { n: 1, tag: 1 });
    producer.tryEnqueue(Note, { text: "stray" });
    producer.tryEnqueue(Item, { n: 2, tag: 1 });
    producer.tryEnqueue(Note, { text: "stray" });
    producer.tryEnqueue(Item, { n: 3, tag: 1 });
    assert.equal(consumer.tryDequeue(Item)?.value.n, 1);
    assert.equal(consumer.tryDequeue(Item)?.value.n, 2);
    const rest: number[] = [];
    assert.equal(
      consumer.dequeueMessages(Item, 10, (r) => rest.push(r.value.n)),
      1,
    );
    assert.deepEqual(rest, [3]);
    assert.equal(rejected.length, 2);
    assert.equal(ring.depth(), 0);
  });

  test("dequeueMessages without onInvalid releases up to the bad slot and throws", () => {
    const ring = makeRing("spsc", 8);
    const producer = ring.producer();
    producer.tryEnqueue(Item, { n: 1, tag: 1 });
    producer.tryEnqueue(Note, { text: "stray" });
    producer.tryEnqueue(Item, { n: 2, tag: 1 });
    const consumer = ring.consumer();
    const seen: number[] = [];
    assert.throws(
      () => consumer.dequeueMessages(Item, 10, (r) => seen.push(r.value.n)),
      InvalidMessageError,
    );
    assert.deepEqual(seen, [1]);
    assert.equal(ring.depth(), 1);
    assert.equal(consumer.tryDequeue(Item)?.value.n, 2);
  });

  test("a throwing handler leaves its message at the head", () => {
    for (const kind of KINDS) {
      const ring = makeRing(kind, 8);
      const producer = ring.producer();
      for (let n = 0; n < 5; n++) producer.tryEnqueue(Item, { n, tag: 1 });
      const consumer = ring.consumer();
      const seen: number[] = [];
      assert.throws(() =>
        consumer.dequeueBatch(10, (view, offset) => {
          const n = Item.read(view, offset + ENVELOPE_SIZE, "n");
          if (n === 2) throw new Error("handler failed");
          seen.push(n);
        }), /handler failed/);
      assert.deepEqual(seen, [0, 1]);
      assert.equal(ring.depth(), 3);
      assert.throws(() =>
        consumer.dequeueMessages(Item, 10, () => {
          throw new Error("again");
        }), /again/);
      assert.equal(ring.depth(), 3);
      assert.equal(consumer.dequeueBatch(10, () => {}), 3);
      assert.equal(ring.depth(), 0);
    }
  });
});

describe("waiting", () => {
  for (const shared of [true, false]) {
    const label = shared ? "SharedArrayBuffer" : "ArrayBuffer";

    test(`${label}: dequeue waits for a message and times out with TimeoutError`, async () => {
      for (const kind of KINDS) {
        const ring = makeRing(kind, 4, { shared });
        const producer = ring.producer();
        const consumer = ring.consumer();
        const timer = setTimeout(
          () => producer.tryEnqueue(Item, { n: 5, tag: 5 }),
          10,
        );
        try {
          const received = await consumer.dequeue(Item, { timeoutMs: 10_000 });
          assert.equal(received.value.n, 5);
        } finally {
          clearTimeout(timer);
        }
        await assert.rejects(
          consumer.dequeue(Item, { timeoutMs: 20 }),
          TimeoutError,
        );
        await assert.rejects(
          consumer.dequeue(Item, { timeoutMs: 0 }),
          TimeoutError,
        );
        assert.equal(await consumer.readable({ timeoutMs: 5 }), false);
      }
    });

    test(`${label}: dequeue rejects with the abort reason`, async () => {
      const ring = makeRing("spsc", 4, { shared });
      const consumer = ring.consumer();
      const controller = new AbortController();
      const reason = new Error("stop");
      const pending = consumer.dequeue(Item, {
        timeoutMs: 60_000,
        signal: controller.signal,
      });
      const timer = setTimeout(() => controller.abort(reason), 5);
      try {
        await assert.rejects(pending, (e) => e === reason);
      } finally {
        clearTimeout(timer);
      }
      assert.equal(headerWord(ring, "sleeping"), 0);
    });

    test(`${label}: enqueue waits for space, or fails with QueueFullError`, async () => {
      for (const kind of KINDS) {
        const ring = makeRing(kind, 2, { shared });
        const producer = ring.producer();
        const consumer = ring.consumer();
        await producer.enqueue(Item, { n: 1, tag: 0 });
        await producer.enqueue(Item, { n: 2, tag: 0 });
        await assert.rejects(
          producer.enqueue(Item, { n: 3, tag: 0 }, undefined, { timeoutMs: 0 }),
          QueueFullError,
        );
        await assert.rejects(
          producer.enqueue(Item, { n: 3, tag: 0 }, undefined, {
            timeoutMs: 15,
          }),
          QueueFullError,
        );
        await assert.rejects(
          producer.enqueue(Item, { n: -3, tag: 0 }),
          InvalidMessageError,
        );
        const timer = setTimeout(() => consumer.tryDequeue(Item), 10);
        try {
          await producer.enqueue(Item, { n: 3, tag: 0 }, undefined, {
            timeoutMs: 10_000,
          });
        } finally {
          clearTimeout(timer);
        }
        assert.deepEqual([
          consumer.tryDequeue(Item)?.value.n,
          consumer.tryDequeue(Item)?.value.n,
        ], [2, 3]);
        const controller = new AbortController();
        await producer.enqueue(Item, { n: 4, tag: 0 });
        await producer.enqueue(Item, { n: 5, tag: 0 });
        const reason = new Error("abort");
        const pending = producer.enqueue(Item, { n: 6, tag: 0 }, undefined, {
          signal: controller.signal,
        });
        controller.abort(reason);
        await assert.rejects(pending, (e) => e === reason);
      }
    });

    test(`${label}: waitReadable blocks until a message or the timeout`, () => {
      const ring = makeRing("spsc", 4, { shared });
      const consumer = ring.consumer();
      assert.equal(consumer.waitReadable(5), false);
      assert.equal(headerWord(ring, "sleeping"), 0);
      ring.producer().tryEnqueue(Item, { n: 1, tag: 1 });
      assert.equal(consumer.waitReadable(5), true);
    });
  }

  test("concurrent dequeues on one consumer are all woken", async () => {
    const ring = makeRing("spsc", 4, { shared: true });
    const consumer = ring.consumer();
    const producer = ring.producer();
    const first = consumer.dequeue(Item, { timeoutMs: 10_000 });
    const second = consumer.dequeue(Item, { timeoutMs: 10_000 });
    await delay(1);
    producer.tryEnqueue(Item, { n: 1, tag: 1 });
    await delay(5);
    producer.tryEnqueue(Item, { n: 2, tag: 1 });
    const values = (await Promise.all([first, second])).map((r) => r.value.n);
    assert.deepEqual(values.sort(), [1, 2]);
    assert.equal(headerWord(ring, "sleeping"), 0);
  });

  test("a producer waiting for room sleeps on the room bell, which release rings", async () => {
    for (const kind of KINDS) {
      const ring = makeRing(kind, 2, { shared: true });
      const producer = ring.producer();
      const consumer = ring.consumer();
      producer.enqueueBatch(Item, [{ n: 1, tag: 0 }, { n: 2, tag: 0 }]);
      const bell = () => headerWord(ring, "roomBell");
      const before = bell();
      const waiting = producer.writable({ timeoutMs: 10_000, spin: 0 });
      assert.equal(headerWord(ring, "roomWaiting"), 1, kind);
      const started = performance.now();
      setTimeout(() => consumer.tryDequeue(Item), 5);
      assert.equal(await waiting, true);
      assert.ok(performance.now() - started < 1_000, kind);
      assert.equal(bell(), before + 1, kind);
      assert.equal(headerWord(ring, "roomWaiting"), 0, kind);
      // Nobody waits now: releasing leaves the bell alone.
      producer.tryEnqueue(Item, { n: 3, tag: 0 });
      consumer.tryDequeue(Item);
      assert.equal(bell(), before + 1, kind);
    }
  });

  test("a room wait times out, or rejects on abort, and clears its waiting count", async () => {
    const ring = makeRing("spsc", 1, { shared: true });
    const producer = ring.producer();
    producer.tryEnqueue(Item, { n: 1, tag: 0 });
    assert.equal(await producer.writable({ timeoutMs: 0 }), false);
    assert.equal(await producer.writable({ timeoutMs: 20 }), false);
    assert.equal(headerWord(ring, "roomWaiting"), 0);
    const controller = new AbortController();
    const reason = new Error("stop");
    const pending = producer.writable({
      timeoutMs: 60_000,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(reason), 5);
    await assert.rejects(pending, (e) => e === reason);
    assert.equal(headerWord(ring, "roomWaiting"), 0);
    await assert.rejects(
      producer.enqueue(Item, { n: 2, tag: 0 }, undefined, { timeoutMs: 15 }),
      QueueFullError,
    );
    assert.equal(headerWord(ring, "roomWaiting"), 0);
  });

  test("a producer waiting for room costs no CPU while it sleeps", async () => {
    const ring = makeRing("spsc", 1, { shared: true });
    const producer = ring.producer();
    producer.tryEnqueue(Item, { n: 1, tag: 0 });
    const before = process.cpuUsage();
    const started = performance.now();
    assert.equal(await producer.writable({ timeoutMs: 300 }), false);
    const used = process.cpuUsage(before);
    const cpuMs = (used.user + used.system) / 1000;
    const wallMs = performance.now() - started;
    assert.ok(
      cpuMs < wallMs * 0.25,
      `waiting used ${cpuMs.toFixed(0)} ms CPU in ${wallMs.toFixed(0)} ms`,
    );
  });

  test("a sleeping consumer is woken through the doorbell", async () => {
    const ring = makeRing("spsc", 4, { shared: true });
    const consumer = ring.consumer();
    const producer = ring.producer();
    const doorbell = () => headerWord(ring, "doorbell");
    const before = doorbell();
    const waiting = consumer.readable({ timeoutMs: 10_000 });
    assert.equal(headerWord(ring, "sleeping"), 1);
    producer.tryEnqueue(Item, { n: 1, tag: 1 });
    assert.equal(await waiting, true);
    assert.equal(doorbell(), before + 1);
    assert.equal(headerWord(ring, "sleeping"), 0);
    // Nobody sleeps now: publishing leaves the doorbell alone.
    producer.tryEnqueue(Item, { n: 2, tag: 1 });
    assert.equal(doorbell(), before + 1);
  });
});
