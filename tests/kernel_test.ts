// The Kernel handle: replies under backpressure, the bound on unread replies,
// and terminating behind unread replies.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { RingKernel } from "../src/runtime.ts";
import { QueueFullError } from "../src/errors.ts";
import { deadline } from "../src/async.ts";
import type { Kernel } from "../src/kernel.ts";
import type { EchoMessage } from "../src/actors/schemas.ts";

type Echo = Kernel<typeof EchoMessage.spec, typeof EchoMessage.spec>;

async function withRuntime(fn: (rt: RingKernel) => Promise<void>) {
  const rt = await RingKernel.create({ backend: "cpu", quiet: true });
  try {
    await fn(rt);
  } finally {
    await rt.shutdown({ timeoutMs: 5_000 });
  }
}

function echo(seq: number) {
  return { seq: BigInt(seq), value: seq, tag: 0 };
}

/** Fails, instead of hanging, when `promise` does not settle in time. */
function settles<T>(promise: Promise<T>, what: string): Promise<T> {
  return deadline(promise, 20_000, { what });
}

function balanced(k: Kernel): void {
  const m = k.metrics();
  assert.equal(
    m.sent,
    m.processed + m.deadLettered + m.inFlight,
    `sent ${m.sent} = processed ${m.processed} + dead-lettered ${m.deadLettered} + in flight ${m.inFlight}`,
  );
}

/**
 * Sends to `k` until backpressure refuses a message, without reading the
 * replies (and without anything else reading the output ring); returns how
 * many were sent.
 */
async function fillUnread(k: Echo): Promise<number> {
  for (let i = 0; i < 100_000; i++) {
    try {
      await k.send(echo(i), { timeoutMs: 200 });
    } catch (error) {
      assert.ok(error instanceof QueueFullError, String(error));
      return i;
    }
  }
  assert.fail("sends never met backpressure");
}

describe("replies", () => {
  test("no reply is lost to a race with its call: rounds of 10,000 concurrent calls through a 16-slot queue", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", { actor: "echo", queueCapacity: 16 });
      const n = 10_000;
      // The race is a matter of timing: a few rounds make a miss unlikely.
      for (let round = 0; round < 3; round++) {
        const calls = Array.from(
          { length: n },
          (_, i) => k.call(echo(round * n + i), { timeoutMs: 15_000 }),
        );
        const results = await settles(Promise.allSettled(calls), "the calls");
        const failed = results.filter((r) => r.status === "rejected");
        assert.deepEqual(
          failed.slice(0, 3).map((r) =>
            String((r as PromiseRejectedResult).reason)
          ),
          [],
          `round ${round}: ${failed.length} of ${n} calls failed`,
        );
        results.forEach((r, i) =>
          assert.equal(
            (r as PromiseFulfilledResult<{ seq: bigint }>).value.seq,
            BigInt(round * n + i),
          )
        );
      }
      assert.equal(rt.deadLetters.countOf("expired"), 0);
      const m = k.metrics();
      assert.equal(m.sent, 3 * n);
      assert.equal(m.processed, 3 * n);
      balanced(k);
    });
  });
  test("unread replies are bounded: backpressure reaches send, and none is lost", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", { actor: "echo", queueCapacity: 16 });
      let sent = 0;
      let refused: unknown;
      for (; sent < 2_000; sent++) {
        try {
          await k.send(echo(sent), { timeoutMs: 200 });
        } catch (error) {
          refused = error;
          break;
        }
        // Reading the metrics looks at the replies, as a monitor would.
        assert.ok(k.metrics().pendingReplies <= 2 * 16);
      }
      assert.ok(
        refused instanceof QueueFullError,
        `${sent} sends with nobody receiving, and no backpressure`,
      );
      assert.ok(k.metrics().pendingReplies <= 2 * 16);
      balanced(k);
      // Every reply is still there, in order.
      for (let i = 0; i < sent; i++) {
        const reply = await k.receive({ timeoutMs: 10_000 });
        assert.equal(reply.seq, BigInt(i));
      }
      assert.equal(k.tryReceive(), undefined);
      assert.equal(rt.deadLetters.size, 0);
      balanced(k);
    });
  });
});

describe("accounting", () => {
  test("sent = processed + deadLettered + inFlight in every reading, while the actor works", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", { actor: "echo", queueCapacity: 64 });
      let sent = 0;
      let received = 0;
      for (let round = 0; round < 300; round++) {
        while (sent - received < 48 && k.trySend(echo(sent))) sent++;
        for (let i = 0; i < 20; i++) balanced(k);
        while (k.tryReceive() !== undefined) received++;
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      while (received < sent) {
        await k.receive({ timeoutMs: 10_000 });
        received++;
      }
      balanced(k);
      assert.equal(k.metrics().processed, sent);
    });
  });
});

describe("terminating behind unread replies", () => {
  for (const abort of [false, true]) {
    test(`terminate({ abort: ${abort} }) does not wait for the replies to be read`, async () => {
      await withRuntime(async (rt) => {
        const k = await rt.launch("echo", {
          actor: "echo",
          queueCapacity: 16,
        });
        const sent = await fillUnread(k);
        // The kill deadline is what a stalled stop would run into.
        await k.terminate({ abort, timeoutMs: 10_000 });
        const letters = rt.deadLetters.drain();
        const details = letters.map((l) => `${l.reason}: ${l.detail}`);
        assert.ok(
          letters.every((l) => !/killed/.test(l.detail ?? "")),
          `the actor was killed: ${details.join("; ")}`,
        );
        assert.equal(
          letters.filter((l) => l.reason === "handler-error").length,
          0,
          details.join("; "),
        );
        const m = k.metrics();
        assert.equal(m.sent, sent);
        assert.equal(m.inFlight, 0);
        balanced(k);
        if (!abort) {
          assert.equal(m.processed, sent);
          assert.equal(m.deadLettered, 0);
        }
        // Each processed message's reply is either still buffered (at most
        // the output ring's capacity) or dead-lettered with the reason.
        const buffered: bigint[] = [];
        for (let r = k.tryReceive(); r !== undefined; r = k.tryReceive()) {
          buffered.push(r.seq);
        }
        assert.ok(buffered.length <= 16, `${buffered.length} buffered`);
        const unread = letters.filter((l) =>
          /unread reply/.test(l.detail ?? "")
        );
        assert.ok(
          unread.every((l) =>
            l.reason === (abort ? "aborted" : "actor-terminated")
          ),
        );
        assert.equal(buffered.length + unread.length, m.processed);
        const seqs = [
          ...buffered,
          ...unread.map((l) => (l.message.value as { seq: bigint }).seq),
        ];
        assert.deepEqual(seqs, [...Array(m.processed).keys()].map(BigInt));
        assert.equal(k.metrics().pendingReplies, 0);
      });
    });
  }

  test("a kernel that terminates with its reply ring full leaves no Worker and no buffered excess", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", { actor: "echo", queueCapacity: 4 });
      await fillUnread(k);
      await rt.shutdown({ timeoutMs: 10_000 });
      assert.equal(
        rt.deadLetters.drain().filter((l) => /killed/.test(l.detail ?? ""))
          .length,
        0,
        "the actor was killed",
      );
      assert.equal(k.state, "terminated");
      assert.equal(k.host.running, false);
      assert.ok(k.metrics().pendingReplies <= 4);
      balanced(k);
    });
  });
});
