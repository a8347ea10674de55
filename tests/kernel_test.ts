// The Kernel handle: replies under backpressure, the bound on unread replies,
// terminating behind unread replies, and the checks on every option.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { RingKernel } from "../src/runtime.ts";
import process from "node:process";
import {
  InvalidOptionError,
  InvalidStateError,
  QueueFullError,
  TimeoutError,
} from "../src/errors.ts";
import { QUEUE_HEADER } from "../src/layout.ts";
import { deadline, pollUntil } from "../src/async.ts";
import { type Kernel, kernelInternals } from "../src/kernel.ts";
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

  test("a reading taken after a reply arrived counts that reply's message", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", { actor: "echo", queueCapacity: 64 });
      for (let i = 1; i <= 2_000; i++) {
        await k.call(echo(i), { timeoutMs: 15_000 });
        const m = k.metrics();
        assert.equal(m.processed, i, `after reply ${i}`);
        assert.equal(m.inFlight, 0, `after reply ${i}`);
      }
      // Batches: every reply of a sendBatch received, every message counted.
      for (let round = 0; round < 20; round++) {
        const batch = Array.from({ length: 50 }, (_, i) => echo(i));
        await k.sendBatch(batch, { timeoutMs: 15_000 });
        let got = 0;
        while (got < batch.length) {
          got += (await k.receiveMany({ timeoutMs: 15_000 })).length;
        }
        assert.equal(k.metrics().processed, 2_000 + 50 * (round + 1));
      }
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
      assert.equal(kernelInternals(k).host.running, false);
      assert.ok(k.metrics().pendingReplies <= 4);
      balanced(k);
    });
  });
});

describe("options", () => {
  const badDeadlines = [NaN, Infinity, -Infinity, -1, 2 ** 31, "5", null];

  test("every deadline of every method is checked, and a bad one changes nothing", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", { actor: "echo", queueCapacity: 4 });
      const refused = (option: string) => (e: unknown) =>
        e instanceof InvalidOptionError && e.option === option;
      for (const bad of badDeadlines) {
        const timeoutMs = bad as number;
        await assert.rejects(
          k.send(echo(1), { timeoutMs }),
          refused("timeoutMs"),
        );
        await assert.rejects(
          k.sendBatch([echo(1)], { timeoutMs }),
          refused("timeoutMs"),
        );
        await assert.rejects(
          k.call(echo(1), { timeoutMs }),
          refused("timeoutMs"),
        );
        await assert.rejects(k.receive({ timeoutMs }), refused("timeoutMs"));
        await assert.rejects(k.deactivate({ timeoutMs }), refused("timeoutMs"));
        await assert.rejects(k.terminate({ timeoutMs }), refused("timeoutMs"));
      }
      for (const options of [5, null, "x"]) {
        await assert.rejects(
          k.send(echo(1), options as never),
          refused("options"),
        );
        await assert.rejects(
          k.call(echo(1), options as never),
          refused("options"),
        );
        await assert.rejects(k.receive(options as never), refused("options"));
        await assert.rejects(k.terminate(options as never), refused("options"));
      }
      for (const signal of [{}, "x", null, 1]) {
        const s = signal as never;
        await assert.rejects(k.send(echo(1), { signal: s }), refused("signal"));
        await assert.rejects(
          k.sendBatch([echo(1)], { signal: s }),
          refused("signal"),
        );
        await assert.rejects(k.call(echo(1), { signal: s }), refused("signal"));
        await assert.rejects(k.receive({ signal: s }), refused("signal"));
        await assert.rejects(k.deactivate({ signal: s }), refused("signal"));
        await assert.rejects(k.terminate({ signal: s }), refused("signal"));
      }
      for (const abort of ["yes", 1, null]) {
        await assert.rejects(
          k.terminate({ abort: abort as never }),
          refused("abort"),
        );
      }
      // Nothing was sent, paused or stopped.
      assert.equal(k.state, "active");
      assert.equal(k.metrics().sent, 0);
      assert.equal(kernelInternals(k).isStopping(), false);
      assert.equal(rt.deadLetters.size, 0);
    });
  });

  test("a bad deadline with a full queue is refused instead of waiting forever", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", {
        actor: "echo",
        queueCapacity: 4,
        autoActivate: false,
      });
      for (let i = 0; i < 4; i++) assert.equal(k.trySend(echo(i)), true);
      for (const timeoutMs of [NaN, Infinity, -5]) {
        await assert.rejects(
          settles(k.send(echo(9), { timeoutMs }), "send"),
          InvalidOptionError,
        );
        await assert.rejects(
          settles(k.call(echo(9), { timeoutMs }), "call"),
          InvalidOptionError,
        );
      }
      assert.equal(k.metrics().sent, 4);
    });
  });

  test("timeoutMs 0 does not wait", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", {
        actor: "echo",
        queueCapacity: 4,
        autoActivate: false,
      });
      await assert.rejects(
        k.receive({ timeoutMs: 0 }),
        (e: unknown) => e instanceof TimeoutError && e.timeoutMs === 0,
      );
      // Not active: the reply cannot come before the call gives up.
      await assert.rejects(
        k.call(echo(100), { timeoutMs: 0 }),
        (e: unknown) => e instanceof TimeoutError && e.timeoutMs === 0,
      );
      for (let i = 0; i < 3; i++) assert.equal(k.trySend(echo(i)), true);
      await assert.rejects(k.send(echo(9), { timeoutMs: 0 }), QueueFullError);
      await assert.rejects(k.call(echo(9), { timeoutMs: 0 }), QueueFullError);
      await assert.rejects(
        k.sendBatch([echo(9)], { timeoutMs: 0 }),
        QueueFullError,
      );
      assert.equal(k.metrics().sent, 4);
      await k.activate();
      // The reply to the call that did not wait is kept as expired.
      for (let i = 0; i < 3; i++) {
        assert.equal((await k.receive({ timeoutMs: 10_000 })).seq, BigInt(i));
      }
      await pollUntil(() => rt.deadLetters.countOf("expired") === 1, {
        timeoutMs: 10_000,
      });
      // A stop that does not wait kills the actor at once.
      await k.terminate({ timeoutMs: 0 });
      assert.equal(k.state, "terminated");
      assert.equal(kernelInternals(k).host.running, false);
      balanced(k);
    });
  });

  test("signals: an aborted call or receive rejects with the reason; an aborted signal sends nothing", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", { actor: "echo", autoActivate: false });
      const reason = new Error("stop");
      const aborted = AbortSignal.abort(reason);
      await assert.rejects(
        k.send(echo(1), { signal: aborted }),
        (e) => e === reason,
      );
      await assert.rejects(
        k.call(echo(1), { signal: aborted }),
        (e) => e === reason,
      );
      await assert.rejects(
        k.sendBatch([echo(1)], { signal: aborted }),
        (e) => e === reason,
      );
      await assert.rejects(k.receive({ signal: aborted }), (e) => e === reason);
      assert.equal(k.metrics().sent, 0);

      const controller = new AbortController();
      const call = k.call(echo(2), {
        timeoutMs: 15_000,
        signal: controller.signal,
      });
      const receive = k.receive({
        timeoutMs: 15_000,
        signal: controller.signal,
      });
      controller.abort(reason);
      await assert.rejects(settles(call, "call"), (e) => e === reason);
      await assert.rejects(settles(receive, "receive"), (e) => e === reason);
      // The request was sent; its late reply is kept as expired (once
      // something looks at the replies).
      await k.activate();
      await pollUntil(
        () =>
          k.tryReceive() === undefined &&
          rt.deadLetters.countOf("expired") === 1,
        {
          timeoutMs: 10_000,
        },
      );
      assert.equal(k.tryReceive(), undefined);
      balanced(k);
    });
  });

  test("signals: deactivate and terminate with an aborted signal change nothing", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", { actor: "echo" });
      const reason = new Error("stop");
      const signal = AbortSignal.abort(reason);
      await assert.rejects(k.deactivate({ signal }), (e) => e === reason);
      assert.equal(k.state, "active");
      await assert.rejects(k.terminate({ signal }), (e) => e === reason);
      assert.equal(k.state, "active");
      assert.deepEqual(await k.call(echo(1)), echo(1));
    });
  });

  test("signals: aborting a terminate kills the actor at once, then rejects with the reason", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("sleepy", {
        actor: {
          module: new URL("./fixtures/sleepy_actor.ts", import.meta.url),
        },
      });
      for (let seq = 0; seq < 4; seq++) {
        await k.send({ seq: BigInt(seq), value: 2_000, tag: 0 });
      }
      const reason = new Error("now");
      const controller = new AbortController();
      const first = k.terminate({ timeoutMs: 60_000 });
      const second = k.terminate({
        timeoutMs: 60_000,
        signal: controller.signal,
      });
      setTimeout(() => controller.abort(reason), 100);
      await assert.rejects(settles(second, "terminate"), (e) => e === reason);
      // The first call waited for the same stop, without a signal of its own.
      await settles(first, "the first terminate");
      assert.equal(k.state, "terminated");
      assert.ok(rt.deadLetters.countOf("actor-terminated") >= 3);
      balanced(k);
    });
  });
});

/** Resolves once `k` has processed `n` messages. */
async function processed(k: Echo, n: number): Promise<void> {
  await pollUntil(() => k.metrics().processed >= n, { timeoutMs: 20_000 });
}

function seqs(values: readonly { seq: bigint }[]): number[] {
  return values.map((v) => Number(v.seq));
}

describe("receiveMany", () => {
  test("takes every ready reply up to max, oldest first; tryReceiveMany does not wait", async () => {
    await withRuntime(async (rt) => {
      const k: Echo = await rt.launch("echo", { actor: "echo" });
      assert.deepEqual(k.tryReceiveMany(), []);
      await k.sendBatch(Array.from({ length: 10 }, (_, i) => echo(i)));
      await processed(k, 10);
      assert.deepEqual(seqs(await k.receiveMany({ max: 3 })), [0, 1, 2]);
      assert.deepEqual(seqs(k.tryReceiveMany(4)), [3, 4, 5, 6]);
      assert.deepEqual(seqs(await k.receiveMany()), [7, 8, 9]);
      assert.deepEqual(k.tryReceiveMany(), []);
      // Waiting: resolves with a batch as soon as replies come.
      const waiting = k.receiveMany({ timeoutMs: 20_000 });
      await k.sendBatch(Array.from({ length: 5 }, (_, i) => echo(10 + i)));
      const got = seqs(await settles(waiting, "receiveMany"));
      assert.ok(got.length >= 1 && got.length <= 5, String(got));
      while (got.length < 5) got.push(...seqs(await k.receiveMany()));
      assert.deepEqual(got, [10, 11, 12, 13, 14]);
      balanced(k);
    });
  });

  test("replies to calls never go to it", async () => {
    await withRuntime(async (rt) => {
      const k: Echo = await rt.launch("echo", { actor: "echo" });
      const waiting = k.receiveMany({ timeoutMs: 20_000 });
      assert.deepEqual(await k.call(echo(1)), echo(1));
      await k.send(echo(2));
      assert.deepEqual(seqs(await settles(waiting, "receiveMany")), [2]);
    });
  });

  test("times out, rejects on abort, checks max, and ends after terminate", async () => {
    await withRuntime(async (rt) => {
      const k: Echo = await rt.launch("echo", { actor: "echo" });
      await assert.rejects(k.receiveMany({ timeoutMs: 0 }), TimeoutError);
      await assert.rejects(k.receiveMany({ timeoutMs: 20 }), TimeoutError);
      const reason = new Error("stop");
      const controller = new AbortController();
      const aborted = k.receiveMany({ signal: controller.signal });
      setTimeout(() => controller.abort(reason), 5);
      await assert.rejects(aborted, (e) => e === reason);
      await assert.rejects(
        k.receiveMany({ signal: AbortSignal.abort(reason) }),
        (e) => e === reason,
      );
      for (const max of [0, -1, 1.5, 2 ** 31, "3", null]) {
        await assert.rejects(
          k.receiveMany({ max: max as number }),
          (e) => e instanceof InvalidOptionError && e.option === "max",
        );
        assert.throws(
          () => k.tryReceiveMany(max as number),
          (e) => e instanceof InvalidOptionError && e.option === "max",
        );
      }
      await k.send(echo(1));
      await processed(k, 1);
      const pending = k.receiveMany({ timeoutMs: 20_000 });
      await k.terminate();
      assert.deepEqual(seqs(await pending), [1]);
      await assert.rejects(
        k.receiveMany(),
        (e) => e instanceof InvalidStateError && e.state === "terminated",
      );
    });
  });

  test("a receiveMany waiting when the kernel terminates fails with InvalidStateError", async () => {
    await withRuntime(async (rt) => {
      const k: Echo = await rt.launch("echo", { actor: "echo" });
      const pending = k.receiveMany({ timeoutMs: 20_000 });
      await k.terminate();
      await assert.rejects(
        pending,
        (e) => e instanceof InvalidStateError && e.state === "terminated",
      );
    });
  });
});

describe("sends waiting for room", () => {
  /** An echo kernel whose 4-slot queue is full and stays full while it is deactivated. */
  async function fullQueue(rt: RingKernel): Promise<Echo> {
    const k: Echo = await rt.launch("echo", {
      actor: "echo",
      queueCapacity: 4,
    });
    await k.deactivate();
    await k.sendBatch(Array.from({ length: 4 }, (_, i) => echo(i)));
    assert.equal(k.trySend(echo(99)), false);
    return k;
  }

  function roomWaiting(k: Echo): number {
    const ring = kernelInternals(k).host.inputRing;
    return ring.view.getInt32(QUEUE_HEADER.fields.roomWaiting.offset, true);
  }

  test("a blocked send sleeps on the room bell and resumes when the actor frees a slot", async () => {
    await withRuntime(async (rt) => {
      const k = await fullQueue(rt);
      let done = false;
      const sending = k.send(echo(4), { timeoutMs: 20_000 }).then(() => {
        done = true;
      });
      const batch = k.sendBatch([echo(5), echo(6)], { timeoutMs: 20_000 });
      await pollUntil(() => roomWaiting(k) === 2, { timeoutMs: 5_000 });
      assert.equal(done, false);
      await k.activate();
      await settles(sending, "the blocked send");
      assert.equal(await settles(batch, "the blocked sendBatch"), 2);
      const got: number[] = [];
      while (got.length < 7) got.push(...seqs(await k.receiveMany()));
      assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6]);
      assert.equal(roomWaiting(k), 0);
    });
  });

  test("a send with a deadline still fails with QueueFullError, and terminate fails it at once", async () => {
    await withRuntime(async (rt) => {
      const k = await fullQueue(rt);
      await assert.rejects(
        k.send(echo(4), { timeoutMs: 50 }),
        (e) => e instanceof QueueFullError && e.cause instanceof TimeoutError,
      );
      await assert.rejects(
        k.sendBatch([echo(4)], { timeoutMs: 50 }),
        QueueFullError,
      );
      assert.equal(roomWaiting(k), 0);
      const blocked = k.send(echo(5), { timeoutMs: 60_000 });
      await pollUntil(() => roomWaiting(k) === 1, { timeoutMs: 5_000 });
      const stopping = k.terminate({ abort: true });
      await assert.rejects(
        settles(blocked, "the blocked send"),
        InvalidStateError,
      );
      await stopping;
    });
  });

  test("a host waiting on a full queue costs no CPU while it sleeps", async () => {
    await withRuntime(async (rt) => {
      const k = await fullQueue(rt);
      await new Promise((r) => setTimeout(r, 200));
      const before = process.cpuUsage();
      const started = performance.now();
      await assert.rejects(
        k.send(echo(4), { timeoutMs: 1_000 }),
        QueueFullError,
      );
      const used = process.cpuUsage(before);
      const cpuMs = (used.user + used.system) / 1000;
      const wallMs = performance.now() - started;
      assert.ok(
        cpuMs < wallMs * 0.25,
        `a blocked send used ${cpuMs.toFixed(0)} ms CPU in ${
          wallMs.toFixed(0)
        } ms`,
      );
    });
  });
});
