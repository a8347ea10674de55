// The K2K sending side of a CPU actor's loop (ctx.send, ctx.trySend,
// ctx.sendBatch, ctx.replyTo), driven directly over rings in one thread.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ActorOutbox, type Route } from "../src/backend/cpu/actor_outbox.ts";
import {
  type ActorDefinition,
  defineActor,
  type DeliveryReceipt,
} from "../src/actor.ts";
import { array, defineMessage } from "../src/message.ts";
import { HybridClock } from "../src/hlc.ts";
import { ENVELOPE_SIZE, readEnvelope } from "../src/envelope.ts";
import type { WorkerToHost } from "../src/backend/cpu/protocol.ts";
import { Ring, ringByteLength } from "../src/ring.ts";
import {
  InvalidMessageError,
  InvalidOptionError,
  QueueFullError,
  TimeoutError,
  UnknownActorError,
} from "../src/errors.ts";

const Msg = defineMessage({
  name: "test.K2k",
  fields: { n: "u32", x: "f64" },
});
const Odd = defineMessage({ name: "test.Odd", fields: { a: "u8", b: "u8" } });
const Big = defineMessage({
  name: "test.Big",
  fields: { v: array("f64", 8) },
});

const SENDER_ID = 7;

/** A target's inbox and input ring, and the route to it. */
function target(name: string, id: number, capacity: number) {
  const inboxBytes = ringByteLength({ capacity });
  const memory = new SharedArrayBuffer(
    inboxBytes + ringByteLength({
      capacity: 4,
    }),
  );
  const inbox = Ring.create(memory, { capacity, kind: "mpsc" });
  const wakeRing = Ring.create(memory, {
    capacity: 4,
    byteOffset: inboxBytes,
  });
  const receipt = Object.freeze({ target: name, targetId: id });
  const route: Route = {
    id,
    producer: Ring.attach(memory, { kind: "mpsc" }).producer(),
    wakeRing,
    receipt,
    sent: Promise.resolve(receipt),
  };
  return { inbox, consumer: inbox.consumer(), route };
}

function outbox(routes: Map<string, Route>): ActorOutbox {
  return new ActorOutbox({
    name: "sender",
    id: SENDER_ID,
    definition: defineActor({
      input: Msg,
      output: Msg,
      handle: () => {},
    }) as unknown as ActorDefinition,
    clock: new HybridClock({ nodeId: SENDER_ID }),
    slotSize: 64,
    routes: () => routes,
    catchUp: () => undefined,
    post: () => {},
  });
}

function drain(consumer: ReturnType<Ring["consumer"]>): number[] {
  const seen: number[] = [];
  consumer.dequeueMessages(Msg, 1 << 20, ({ envelope, value }) => {
    assert.equal(envelope.sourceActor, SENDER_ID);
    assert.ok(envelope.timestamp > 0n);
    seen.push(value.n);
  });
  return seen;
}

describe("K2K sends from an actor", () => {
  test("send resolves with the route's one receipt, without waiting", async () => {
    const b = target("b", 3, 8);
    const box = outbox(new Map([["b", b.route]]));
    const first = box.send("b", { n: 1, x: 0.5 });
    const second = box.send("b", { n: 2, x: 0.5 });
    assert.equal(first, second);
    const receipt: DeliveryReceipt = await first;
    assert.deepEqual(receipt, { target: "b", targetId: 3 });
    assert.ok(Object.isFrozen(receipt));
    assert.deepEqual(drain(b.consumer), [1, 2]);
    // With options it takes the general path, with the same receipt.
    assert.equal(
      await box.send("b", { n: 3, x: 0 }, { timeoutMs: 0 }),
      receipt,
    );
    assert.deepEqual(drain(b.consumer), [3]);
  });

  test("trySend is true until the inbox is full, then false and sends nothing", () => {
    const b = target("b", 3, 4);
    const box = outbox(new Map([["b", b.route]]));
    for (let n = 0; n < 4; n++) {
      assert.equal(box.trySend("b", { n, x: n }), true);
    }
    assert.equal(box.trySend("b", { n: 4, x: 4 }), false);
    assert.equal(b.inbox.depth(), 4);
    assert.deepEqual(drain(b.consumer), [0, 1, 2, 3]);
    assert.equal(box.trySend("b", { n: 5, x: 5 }), true);
    assert.deepEqual(drain(b.consumer), [5]);
  });

  test("trySend and sendBatch refuse an unknown actor, a bad message, an oversized one and bad options", async () => {
    const b = target("b", 3, 4);
    const box = outbox(new Map([["b", b.route]]));
    assert.throws(
      () => box.trySend("nobody", { n: 1, x: 1 }),
      UnknownActorError,
    );
    await assert.rejects(
      box.sendBatch("nobody", [{ n: 1, x: 1 }]),
      UnknownActorError,
    );
    await assert.rejects(box.send("nobody", { n: 1, x: 1 }), UnknownActorError);
    assert.throws(
      () => box.trySend("b", { n: -1, x: 1 }),
      InvalidMessageError,
    );
    await assert.rejects(
      box.send("b", { n: -1, x: 1 }),
      InvalidMessageError,
    );
    // A bad message anywhere in a batch sends none of it.
    await assert.rejects(
      box.sendBatch("b", [{ n: 1, x: 1 }, { n: 1.5, x: 1 }]),
      InvalidMessageError,
    );
    const big = { v: new Float64Array(8) };
    assert.throws(
      () => box.trySend("b", big as never, { schema: Big }),
      InvalidMessageError,
    );
    await assert.rejects(
      box.sendBatch("b", [big] as never[], { schema: Big }),
      InvalidMessageError,
    );
    assert.throws(
      () => box.trySend("b", { n: 1, x: 1 }, { schema: 5 as never }),
      InvalidOptionError,
    );
    await assert.rejects(
      box.sendBatch("b", [{ n: 1, x: 1 }], { timeoutMs: -1 }),
      InvalidOptionError,
    );
    assert.equal(b.inbox.depth(), 0);
  });

  test("sendBatch sends in order in one run, and encodes odd-sized payloads too", async () => {
    const b = target("b", 3, 16);
    const box = outbox(new Map([["b", b.route]]));
    const values = Array.from({ length: 10 }, (_, n) => ({ n, x: n / 2 }));
    assert.equal(await box.sendBatch("b", values), 10);
    assert.equal(await box.sendBatch("b", []), 0);
    assert.deepEqual(drain(b.consumer), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(
      await box.sendBatch("b", [{ a: 1, b: 2 }, { a: 3, b: 4 }], {
        schema: Odd,
      }),
      2,
    );
    const odd: number[] = [];
    b.consumer.dequeueMessages(Odd, 10, ({ value }) => {
      odd.push(value.a, value.b);
    });
    assert.deepEqual(odd, [1, 2, 3, 4]);
  });

  test("a full inbox: sendBatch waits for room (room bell), or fails with QueueFullError at its deadline", async () => {
    const b = target("b", 3, 4);
    const box = outbox(new Map([["b", b.route]]));
    const values = Array.from({ length: 6 }, (_, n) => ({ n, x: n }));
    await assert.rejects(
      box.sendBatch("b", values, { timeoutMs: 0 }),
      QueueFullError,
    );
    assert.deepEqual(drain(b.consumer), [0, 1, 2, 3]);
    await assert.rejects(
      box.sendBatch("b", values.concat(values), { timeoutMs: 30 }),
      (e) => e instanceof QueueFullError && e.cause instanceof TimeoutError,
    );
    assert.deepEqual(drain(b.consumer), [0, 1, 2, 3]);
    const sending = box.sendBatch("b", values, { timeoutMs: 10_000 });
    const seen: number[] = [];
    while (seen.length < 6) {
      await new Promise((r) => setTimeout(r, 2));
      seen.push(...drain(b.consumer));
    }
    assert.equal(await sending, 6);
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5]);
    // A waiting send rejects with the reason on abort.
    for (let n = 0; n < 4; n++) box.trySend("b", { n, x: n });
    const reason = new Error("stop");
    const controller = new AbortController();
    const blocked = box.send("b", { n: 9, x: 9 }, {
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(reason), 5);
    await assert.rejects(blocked, (e) => e === reason);
  });

  test("flush rings each target's doorbell once", () => {
    const b = target("b", 3, 8);
    const box = outbox(new Map([["b", b.route]]));
    const sleeping = b.route.wakeRing.signals;
    // The target sleeps: its `sleeping` word is set.
    const doorbell = 400 / 4;
    Atomics.store(sleeping, 404 / 4, 1);
    const before = Atomics.load(sleeping, doorbell);
    box.trySend("b", { n: 1, x: 1 });
    box.trySend("b", { n: 2, x: 1 });
    assert.equal(Atomics.load(sleeping, doorbell), before);
    box.flush();
    assert.equal(Atomics.load(sleeping, doorbell), before + 1);
  });
});

describe("deferred replies from an actor (ctx.replyTo)", () => {
  function replier(output: boolean) {
    const posted: { message: WorkerToHost; transfer?: Transferable[] }[] = [];
    const box = new ActorOutbox({
      name: "replier",
      id: SENDER_ID,
      definition: defineActor({
        input: Msg,
        ...(output ? { output: Msg } : {}),
        handle: () => {},
      }) as unknown as ActorDefinition,
      clock: new HybridClock({ nodeId: SENDER_ID }),
      slotSize: 64,
      routes: () => new Map(),
      catchUp: () => undefined,
      post: (message, transfer) => posted.push({ message, transfer }),
    });
    return { box, posted };
  }

  test("posts the reply to the host: the call's id, this actor, a stamp, the payload; the buffer transferred", () => {
    const { box, posted } = replier(true);
    box.replyTo(42n, { n: 7, x: 1.5 });
    box.replyTo((1n << 64n) - 1n, { n: 8, x: 0 });
    assert.equal(posted.length, 2);
    const { message, transfer } = posted[0];
    assert.equal(message.kind, "reply");
    const slot = (message as { slot: Uint8Array }).slot;
    assert.deepEqual(transfer, [slot.buffer]);
    assert.equal(slot.byteLength, ENVELOPE_SIZE + Msg.size);
    const view = new DataView(slot.buffer);
    const envelope = readEnvelope(view, 0);
    assert.equal(envelope.typeId, Msg.typeId);
    assert.equal(envelope.correlationId, 42n);
    assert.equal(envelope.sourceActor, SENDER_ID);
    assert.ok(envelope.timestamp > 0n);
    assert.deepEqual(Msg.decode(view, ENVELOPE_SIZE), { n: 7, x: 1.5 });
    const last = (posted[1].message as { slot: Uint8Array }).slot;
    assert.equal(
      readEnvelope(new DataView(last.buffer), 0).correlationId,
      (1n << 64n) - 1n,
    );
  });

  test("refuses a bad id, a bad message or option, and an actor with no output schema unless given one", () => {
    const { box, posted } = replier(true);
    for (const id of [0n, -1n, 1n << 64n, 1, "1", undefined]) {
      assert.throws(
        () => box.replyTo(id as bigint, { n: 1, x: 1 }),
        InvalidOptionError,
        String(id),
      );
    }
    assert.throws(
      () => box.replyTo(1n, { n: "x" } as never),
      InvalidMessageError,
    );
    assert.throws(
      () => box.replyTo(1n, { n: 1, x: 1 }, { schema: {} as never }),
      InvalidOptionError,
    );
    assert.throws(
      () => box.replyTo(1n, { v: [] }, { schema: Big }),
      InvalidMessageError,
    );
    assert.equal(posted.length, 0);
    const none = replier(false);
    assert.throws(
      () => none.box.replyTo(1n, { n: 1, x: 1 }),
      InvalidMessageError,
    );
    none.box.replyTo(1n, { a: 1, b: 2 }, { schema: Odd });
    assert.equal(none.posted.length, 1);
    const slot = (none.posted[0].message as { slot: Uint8Array }).slot;
    assert.equal(readEnvelope(new DataView(slot.buffer), 0).typeId, Odd.typeId);
  });
});
