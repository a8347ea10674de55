// A message type is its name and its layout: two schemas named alike with
// other fields must never decode each other's bytes (a message sent as
// producer 11 / seq 22 arriving as producer 22 / seq 11).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { RingKernel } from "../src/runtime.ts";
import { defineMessage, SchemaRegistry } from "../src/message.ts";
import {
  ENVELOPE_SIZE,
  validateEnvelope,
  writeEnvelopeFor,
} from "../src/envelope.ts";
import { InvalidMessageError } from "../src/errors.ts";
import { pollUntil } from "../src/async.ts";
import { ProducerFirst, SeqFirst } from "./fixtures/work_actors.ts";

const WORK_ACTORS = new URL("./fixtures/work_actors.ts", import.meta.url);
const actor = (name: string) => ({ module: WORK_ACTORS, export: name });

async function withRuntime(fn: (rt: RingKernel) => Promise<void>) {
  const rt = await RingKernel.create({ backend: "cpu", quiet: true });
  try {
    await fn(rt);
  } finally {
    await rt.shutdown({ timeoutMs: 5_000 });
  }
}

describe("schema identity", () => {
  test("the default type id covers the layout, not only the name", () => {
    assert.equal(ProducerFirst.name, SeqFirst.name);
    assert.notEqual(ProducerFirst.typeId, SeqFirst.typeId);
    assert.equal(ProducerFirst.layout, "producer:u32,seq:u32");
    assert.equal(SeqFirst.layout, "seq:u32,producer:u32");
    // Only the field names differ: still another type.
    const renamed = defineMessage({
      name: "test.Work",
      fields: { producer: "u32", sequence: "u32" },
    });
    assert.notEqual(renamed.typeId, ProducerFirst.typeId);
    // Every kind of field takes part, capacities and lengths included.
    const ids = new Set(
      [
        { a: "u32" },
        { a: "i32" },
        { a: { kind: "array", element: "u8", length: 4 } },
        { a: { kind: "array", element: "u8", length: 5 } },
        { a: { kind: "bytes", capacity: 4 } },
        { a: { kind: "string", capacity: 4 } },
      ].map((fields) =>
        defineMessage({ name: "test.Kinds", fields: fields as never }).typeId
      ),
    );
    assert.equal(ids.size, 6);
    // The same definition always has the same id (other modules, Workers).
    assert.equal(
      defineMessage({
        name: "test.Work",
        fields: { producer: "u32", seq: "u32" },
      }).typeId,
      ProducerFirst.typeId,
    );
  });

  test("bytes encoded with one layout are refused by a receiver of the other", () => {
    const view = new DataView(new ArrayBuffer(64));
    writeEnvelopeFor(view, 0, ProducerFirst);
    ProducerFirst.encode(view, ENVELOPE_SIZE, { producer: 11, seq: 22 });
    const rules = { schemas: new SchemaRegistry([SeqFirst]), slotSize: 64 };
    let decoded: unknown;
    assert.throws(() => {
      const schema = validateEnvelope(view, 0, rules);
      decoded = schema.decode(view, ENVELOPE_SIZE);
    }, InvalidMessageError);
    assert.equal(decoded, undefined, `decoded as ${JSON.stringify(decoded)}`);
  });

  test("a registry refuses a name reused with another layout, and keeps one type once", () => {
    const registry = new SchemaRegistry([SeqFirst]);
    assert.throws(
      () => registry.register(ProducerFirst),
      (e: unknown) =>
        e instanceof InvalidMessageError && /test\.Work/.test(e.message) &&
        /another layout|another type id/.test(e.message),
    );
    assert.equal(registry.size, 1);
    // The same type defined again (another module, another object) is no conflict.
    registry.register(
      defineMessage({
        name: "test.Work",
        fields: { seq: "u32", producer: "u32" },
      }),
    );
    assert.equal(registry.size, 1);
    assert.equal(registry.get(SeqFirst.typeId), SeqFirst);
    // A name reused with another explicit type id is refused too.
    const a = defineMessage({
      name: "test.Id",
      typeId: 0x7e570001,
      fields: {},
    });
    const b = defineMessage({
      name: "test.Id",
      typeId: 0x7e570002,
      fields: {},
    });
    assert.throws(() => new SchemaRegistry([a, b]), InvalidMessageError);
  });

  test("a runtime refuses to publish a schema whose name it knows with another layout", async () => {
    await withRuntime(async (rt) => {
      const receiver = await rt.launch("receiver", {
        actor: actor("receiver"),
      });
      rt.subscribeKernel(receiver, "work");
      assert.throws(
        () =>
          rt.publish("work", { producer: 11, seq: 22 }, {
            schema: ProducerFirst,
          }),
        InvalidMessageError,
      );
      // The same layout publishes and arrives as it was sent.
      assert.equal(
        rt.publish("work", { seq: 22, producer: 11 }, { schema: SeqFirst }),
        1,
      );
      const reply = await receiver.receive({ timeoutMs: 10_000 });
      assert.deepEqual(reply, { seq: 22, producer: 11 });
    });
  });

  test("a runtime refuses an actor whose schema reuses a known name with another layout", async () => {
    await withRuntime(async (rt) => {
      await rt.launch("receiver", { actor: actor("receiver") });
      await assert.rejects(
        rt.launch("other", { actor: actor("producerFirstReceiver") }),
        (e: unknown) =>
          e instanceof InvalidMessageError && /test\.Work/.test(e.message),
      );
      assert.deepEqual(rt.listKernels(), ["receiver"]);
    });
  });

  test("a K2K message of the other layout is dead-lettered, never decoded with its fields swapped", async () => {
    await withRuntime(async (rt) => {
      const receiver = await rt.launch("receiver", {
        actor: actor("receiver"),
      });
      const sender = await rt.launch("sender", {
        actor: actor("sender"),
        config: { target: "receiver" },
      });
      await sender.call({ seq: 1n, value: 0, tag: 0 }, { timeoutMs: 10_000 });
      let reply: unknown;
      await pollUntil(() => {
        reply ??= receiver.tryReceive();
        return reply !== undefined ||
          rt.deadLetters.countOf("invalid-message") > 0;
      }, { timeoutMs: 10_000, what: "the K2K message's fate" });
      assert.equal(
        reply,
        undefined,
        `the message arrived as ${JSON.stringify(reply)}`,
      );
      const letter = rt.deadLetters.drain().find((l) => l.actor === "receiver");
      assert.ok(letter, "a dead letter for the receiver");
      assert.equal(letter.reason, "invalid-message");
      assert.equal(letter.message.typeId, ProducerFirst.typeId);
    });
  });
});
