// HLC stamps on every envelope of the host and the CPU backend: the clock's
// batch reservation and allocation-free merge, the ring producer's stamping
// (one reading per send, consecutive stamps per batch), the runtime's sends
// (trySend, send, sendBatch, call) stamped, replies stamped after the
// requests they answer, and a stamp beyond the runtime's configured skew
// bound dead-lettered by the CPU actor with the accounting balanced.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { EchoMessage } from "../src/actors/schemas.ts";
import { pollUntil } from "../src/async.ts";
import { ClockSkewError, InvalidOptionError } from "../src/errors.ts";
import { HybridClock, packHlc, unpackHlc } from "../src/hlc.ts";
import { kernelInternals } from "../src/kernel.ts";
import { ENVELOPE } from "../src/layout.ts";
import { Ring } from "../src/ring.ts";
import { RingKernel } from "../src/runtime.ts";
import { assertAccounted, echo, settle, withRuntime } from "./helpers.ts";

type Echo = typeof EchoMessage.spec;
const TIMESTAMP = ENVELOPE.fields.timestamp.offset;

/** A slot's packed stamp. */
function stampAt(view: DataView, offset: number): bigint {
  return view.getBigUint64(offset + TIMESTAMP, true);
}

function manualTime(start: number) {
  let t = start;
  return { now: () => t, set: (ms: number) => (t = ms) };
}

describe("HybridClock.reserve and observeWords", () => {
  test("reserve(n) hands out n consecutive readings from one physical reading", () => {
    const time = manualTime(5_000);
    let reads = 0;
    const clock = new HybridClock({
      physicalTime: () => (reads++, time.now()),
    });
    const first = clock.reserve(3);
    assert.equal(reads, 1);
    assert.deepEqual(first, { physicalMs: 5_000, logical: 0, nodeId: 0 });
    // The next reading follows the third.
    assert.deepEqual(clock.now(), { physicalMs: 5_000, logical: 3, nodeId: 0 });
    // A reservation across the logical counter's end carries, as now() does.
    clock.reserve(0xffff);
    const after = clock.now();
    assert.equal(packHlc(after), packHlc(first) + 3n + 0xffffn + 1n);
    assert.throws(() => clock.reserve(0), RangeError);
  });

  test("observeWords merges a stamp without a physical reading, refuses one beyond the bound", () => {
    const time = manualTime(10_000);
    let reads = 0;
    const clock = new HybridClock({
      maxSkewMs: 1_000,
      physicalTime: () => (reads++, time.now()),
    });
    clock.now();
    assert.equal(reads, 1);
    const ahead = packHlc({ physicalMs: 10_500, logical: 7, nodeId: 0 });
    const lo = Number(ahead & 0xffff_ffffn);
    const hi = Number(ahead >> 32n);
    assert.equal(clock.observeWords(lo, hi), 0);
    assert.equal(reads, 1, "within the bound of the last reading: no read");
    assert.ok(packHlc(clock.now()) > ahead);
    // Beyond the bound: refused (the lead returned), the clock unchanged.
    const before = clock.peek();
    const far = packHlc({ physicalMs: 12_000, logical: 0, nodeId: 0 });
    assert.equal(
      clock.observeWords(Number(far & 0xffff_ffffn), Number(far >> 32n)),
      2_000,
    );
    assert.deepEqual(clock.peek(), before);
    // Physical time caught up: the same stamp is accepted.
    time.set(11_500);
    assert.equal(
      clock.observeWords(Number(far & 0xffff_ffffn), Number(far >> 32n)),
      0,
    );
    assert.ok(packHlc(clock.now()) > far);
    // A zero stamp ("unused") changes nothing.
    const now = clock.peek();
    assert.equal(clock.observeWords(0, 0), 0);
    assert.deepEqual(clock.peek(), now);
  });
});

describe("ring producers stamp with a clock", () => {
  test("tryEnqueue stamps each send, enqueueBatch takes consecutive stamps", () => {
    const ring = Ring.create(new SharedArrayBuffer(64 * 1024), {
      capacity: 64,
      slotSize: 64,
      kind: "spsc",
    });
    const producer = ring.producer();
    const consumer = ring.consumer();
    producer.tryEnqueue(EchoMessage, echo(0));
    assert.equal(consumer.available(), 1);
    assert.equal(stampAt(consumer.view, consumer.slotOffset(0)), 0n);
    consumer.release(1);
    const clock = new HybridClock();
    producer.stampWith(clock);
    assert.ok(producer.tryEnqueue(EchoMessage, echo(1)));
    assert.equal(
      producer.enqueueBatch(EchoMessage, [echo(2), echo(3), echo(4)]),
      3,
    );
    // An explicit header timestamp is kept.
    assert.ok(producer.tryEnqueue(EchoMessage, echo(5), { timestamp: 42n }));
    assert.equal(consumer.available(), 5);
    const stamps: bigint[] = [];
    for (let i = 0; i < 5; i++) {
      stamps.push(stampAt(consumer.view, consumer.slotOffset(i)));
    }
    assert.ok(stamps[0] > 0n);
    assert.ok(
      Math.abs(unpackHlc(stamps[0]).physicalMs - Date.now()) < 10_000,
    );
    assert.ok(stamps[1] > stamps[0]);
    assert.equal(stamps[2], stamps[1] + 1n);
    assert.equal(stamps[3], stamps[2] + 1n);
    assert.equal(stamps[4], 42n);
    assert.ok(packHlc(clock.now()) > stamps[3]);
  });
});

describe("the runtime stamps host sends and merges stamps (CPU backend)", () => {
  test("sends are stamped; replies are stamped after their requests", async () => {
    await withRuntime({ backend: "cpu" }, async (rt) => {
      const k = await rt.launch<Echo, Echo>("echo", {
        actor: "echo",
        autoActivate: false,
      });
      const host = kernelInternals(k).host;
      // Inactive: the actor takes nothing, the stamps can be read in place.
      assert.ok(k.trySend(echo(1)));
      await k.send(echo(2));
      assert.equal(await k.sendBatch([echo(3), echo(4), echo(5)]), 3);
      const input = host.inputRing.consumer();
      assert.equal(input.available(), 5);
      const sent: bigint[] = [];
      for (let i = 0; i < 5; i++) {
        sent.push(stampAt(input.view, input.slotOffset(i)));
      }
      for (let i = 1; i < 5; i++) assert.ok(sent[i] > sent[i - 1]);
      assert.equal(sent[3], sent[2] + 1n);
      assert.equal(sent[4], sent[3] + 1n);
      await k.activate();
      // The replies of the sends wait in the output ring: stamped by the
      // actor after it merged each request's stamp.
      await pollUntil(() => host.output.available() === 5, {
        timeoutMs: 10_000,
      });
      const out = host.output;
      for (let i = 0; i < 5; i++) {
        assert.ok(stampAt(out.view, out.slotOffset(i)) > sent[i]);
      }
      const replies = { count: 0 };
      await settle(k, replies);
      assert.equal(replies.count, 5);
      const reply = await k.call(echo(6));
      assert.equal(reply.seq, 6n);
      assertAccounted(k.metrics());
    });
  });

  test("a stamp beyond maxClockSkewMs is dead-lettered by the actor; the accounting balances", async () => {
    await withRuntime({ backend: "cpu", maxClockSkewMs: 1_000 }, async (rt) => {
      const k = await rt.launch<Echo, Echo>("echo", { actor: "echo" });
      const dead: string[] = [];
      rt.deadLetters.onDeadLetter((letter) => dead.push(letter.detail ?? ""));
      const payload = new Uint8Array(EchoMessage.size);
      EchoMessage.encode(new DataView(payload.buffer), 0, echo(1));
      const input = kernelInternals(k).host.input;
      // 5 s ahead: within the default bound, beyond this runtime's.
      assert.ok(input.tryEnqueueRaw({
        typeId: EchoMessage.typeId,
        timestamp: BigInt(Date.now() + 5_000) << 16n,
      }, payload));
      // 200 ms ahead: merged, and the reply to the next call follows it.
      const ahead = (BigInt(Date.now() + 200) << 16n) | 3n;
      assert.ok(input.tryEnqueueRaw({
        typeId: EchoMessage.typeId,
        timestamp: ahead,
      }, payload));
      await pollUntil(() => dead.length === 1, { timeoutMs: 10_000 });
      assert.match(dead[0], /ClockSkewError/);
      assert.equal(rt.deadLetters.countOf("invalid-message"), 1);
      assert.equal((await k.call(echo(2))).seq, 2n);
      await pollUntil(() => k.metrics().inFlight === 0, { timeoutMs: 10_000 });
      const m = k.metrics();
      // The raw sends went around the kernel: 1 call it counted, 3 taken.
      assert.equal(m.processed + m.deadLettered, 3);
      assert.equal(m.deadLettered, 1);
    });
  });

  test("maxClockSkewMs is checked", async () => {
    await assert.rejects(
      RingKernel.create({ backend: "cpu", maxClockSkewMs: -1 }),
      InvalidOptionError,
    );
    await assert.rejects(
      RingKernel.create({ backend: "cpu", maxClockSkewMs: 1.5 }),
      InvalidOptionError,
    );
    assert.equal(new ClockSkewError(5, 1).maxSkewMs, 1);
  });
});
