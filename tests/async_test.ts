import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  abortable,
  backoffDelayMs,
  bindSignal,
  deadline,
  delay,
  pollUntil,
  retry,
  sleepSync,
} from "../src/async.ts";
import { TimeoutError } from "../src/errors.ts";

describe("delay", () => {
  test("resolves after the delay", async () => {
    const start = performance.now();
    await delay(5);
    assert.ok(performance.now() - start >= 4);
  });

  test("rejects with the abort reason, before or during the wait", async () => {
    const reason = new Error("stop");
    await assert.rejects(
      delay(10, { signal: AbortSignal.abort(reason) }),
      (e) => e === reason,
    );
    const controller = new AbortController();
    const pending = delay(60_000, { signal: controller.signal });
    controller.abort(reason);
    await assert.rejects(pending, (e) => e === reason);
  });
});

describe("deadline", () => {
  test("passes through a value or an error that comes in time", async () => {
    assert.equal(await deadline(Promise.resolve(7), 1000), 7);
    const error = new Error("inner");
    await assert.rejects(
      deadline(Promise.reject(error), 1000),
      (e) => e === error,
    );
  });

  test("rejects with TimeoutError when the promise is late", async () => {
    let release!: () => void;
    const late = new Promise<void>((resolve) => (release = resolve));
    await assert.rejects(
      deadline(late, 5, { what: "slow thing" }),
      (e: unknown) => {
        assert.ok(e instanceof TimeoutError);
        assert.equal(e.timeoutMs, 5);
        assert.match(e.message, /slow thing/);
        return true;
      },
    );
    release();
  });
});

describe("retry", () => {
  test("retries until success with growing delays", async () => {
    const delays: number[] = [];
    let last = performance.now();
    const result = await retry((attempt) => {
      const now = performance.now();
      delays.push(now - last);
      last = now;
      if (attempt < 3) throw new Error(`fail ${attempt}`);
      return attempt * 10;
    }, { minDelayMs: 2, multiplier: 3, jitter: 0 });
    assert.equal(result, 30);
    assert.equal(delays.length, 3);
    assert.ok(delays[1] >= 1.5 && delays[2] >= 5, `delays ${delays}`);
  });

  test("rethrows the last error after maxAttempts", async () => {
    let calls = 0;
    await assert.rejects(
      retry(() => {
        calls++;
        throw new Error(`attempt ${calls}`);
      }, { maxAttempts: 4, minDelayMs: 0 }),
      /attempt 4/,
    );
    assert.equal(calls, 4);
  });

  test("stops at once when shouldRetry says no, or on abort", async () => {
    let calls = 0;
    await assert.rejects(
      retry(() => {
        calls++;
        throw new TypeError("fatal");
      }, { shouldRetry: (e) => !(e instanceof TypeError) }),
      TypeError,
    );
    assert.equal(calls, 1);
    const controller = new AbortController();
    const reason = new Error("aborted");
    const pending = retry(() => {
      throw new Error("again");
    }, { minDelayMs: 60_000, signal: controller.signal });
    await delay(1);
    controller.abort(reason);
    await assert.rejects(pending, (e) => e === reason);
  });

  test("delays follow min * multiplier^(n-1), capped, with jitter below the base", () => {
    assert.equal(backoffDelayMs(1, { minDelayMs: 10, multiplier: 2 }), 10);
    assert.equal(backoffDelayMs(4, { minDelayMs: 10, multiplier: 2 }), 80);
    assert.equal(
      backoffDelayMs(20, { minDelayMs: 10, multiplier: 2, maxDelayMs: 500 }),
      500,
    );
  });

  test("rejects bad options", async () => {
    await assert.rejects(retry(() => 1, { maxAttempts: 0 }), RangeError);
    await assert.rejects(retry(() => 1, { jitter: 2 }), RangeError);
  });
});

describe("pollUntil", () => {
  test("returns the first truthy value, whether it comes while spinning or later", async () => {
    let n = 0;
    assert.equal(await pollUntil(() => ++n >= 3 && n), 3);
    let ready = false;
    setTimeout(() => (ready = true), 10);
    assert.equal(
      await pollUntil(() => ready && "done", { timeoutMs: 5000 }),
      "done",
    );
  });

  test("times out with TimeoutError", async () => {
    await assert.rejects(
      pollUntil(() => false, { timeoutMs: 20, what: "flag" }),
      (e: unknown) => {
        assert.ok(e instanceof TimeoutError);
        assert.match(e.message, /flag/);
        return true;
      },
    );
  });

  test("propagates predicate errors and aborts", async () => {
    await assert.rejects(
      pollUntil(() => {
        throw new RangeError("bad");
      }),
      RangeError,
    );
    const controller = new AbortController();
    const reason = new Error("abort");
    const pending = pollUntil(() => false, {
      signal: controller.signal,
      timeoutMs: 60_000,
    });
    setTimeout(() => controller.abort(reason), 5);
    await assert.rejects(pending, (e) => e === reason);
  });
});

describe("sleepSync", () => {
  test("blocks for about the requested time", () => {
    const start = performance.now();
    sleepSync(3);
    assert.ok(performance.now() - start >= 2.5);
  });
});

describe("abortable and bindSignal", () => {
  test("abortable settles as its promise unless aborted; an abort cuts it and rejects with the reason once it ended", async () => {
    assert.equal(
      await abortable(Promise.resolve(), new AbortController().signal, () => {
        throw new Error("not cut");
      }),
      undefined,
    );
    let end!: () => void;
    const done = new Promise<void>((resolve) => end = resolve);
    const controller = new AbortController();
    let cut = 0;
    const waited = abortable(done, controller.signal, () => {
      cut++;
      end();
    });
    controller.abort(new Error("stop"));
    await assert.rejects(waited, /stop/);
    assert.equal(cut, 1);
    const failing = abortable(
      Promise.reject(new Error("own")),
      new AbortController().signal,
      () => {},
    );
    await assert.rejects(failing, /own/);
  });

  test("bindSignal rejects a withdrawn waiter with the reason, and does nothing once it settled", () => {
    const controller = new AbortController();
    const waiting = new Set<unknown>();
    const settled: unknown[] = [];
    const waiter = {
      resolve: (v: number) => settled.push(v),
      reject: (e: unknown) => settled.push(e),
    };
    waiting.add(waiter);
    bindSignal(waiter, controller.signal, () => waiting.delete(waiter));
    controller.abort("gone");
    assert.deepEqual(settled, ["gone"]);
    assert.equal(waiting.size, 0);
    const later = new AbortController();
    const done: unknown[] = [];
    const other = {
      resolve: (v: number) => done.push(v),
      reject: (e: unknown) => done.push(e),
    };
    bindSignal(other, later.signal, () => true);
    other.resolve(7);
    later.abort("late");
    assert.deepEqual(done, [7]);
  });
});
