import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  type HeartbeatRecovered,
  type HeartbeatSource,
  HeartbeatWatchdog,
  type StaleHeartbeat,
} from "../src/watchdog.ts";
import { InvalidStateError } from "../src/errors.ts";
import { pollUntil } from "../src/async.ts";
import { RingKernel } from "../src/runtime.ts";
import { kernelInternals } from "../src/kernel.ts";
import type { CpuActorHost } from "../src/backend/cpu/cpu_actor.ts";

/** A heartbeat the test moves by hand. */
class FakeHeartbeat implements HeartbeatSource {
  lastActivityTicks = 1n;
  hasTerminated = 0;
  beat(): void {
    this.lastActivityTicks++;
  }
}

/** A watchdog on a clock the test moves by hand. */
function fakeWatchdog(deadlineMs = 100) {
  const clock = { now: 0 };
  const stale: StaleHeartbeat[] = [];
  const recovered: HeartbeatRecovered[] = [];
  const watchdog = new HeartbeatWatchdog({
    deadlineMs,
    now: () => clock.now,
    onStale: (e) => stale.push(e),
    onRecover: (e) => recovered.push(e),
  });
  return { clock, stale, recovered, watchdog };
}

describe("HeartbeatWatchdog on an injected clock", () => {
  test("a heartbeat that stands still past the deadline is reported once, with its name and staleness", () => {
    const { clock, stale, watchdog } = fakeWatchdog(100);
    const beat = new FakeHeartbeat();
    watchdog.watch("k", beat);
    clock.now = 100;
    assert.deepEqual(watchdog.check(), []);
    clock.now = 101;
    const now = watchdog.check();
    assert.deepEqual(now, [{
      kernel: "k",
      staleMs: 101,
      deadlineMs: 100,
      lastActivityTicks: 1n,
    }]);
    assert.deepEqual(stale, now);
    clock.now = 250;
    assert.equal(watchdog.check()[0].staleMs, 250);
    assert.equal(stale.length, 1, "onStale fires once per stall");
    assert.equal(watchdog.status("k")?.stale, true);
  });

  test("a stale heartbeat that moves again is reported recovered, and may go stale again", () => {
    const { clock, stale, recovered, watchdog } = fakeWatchdog(100);
    const beat = new FakeHeartbeat();
    watchdog.watch("k", beat);
    clock.now = 150;
    watchdog.check();
    clock.now = 180;
    beat.beat();
    assert.deepEqual(watchdog.check(), []);
    assert.deepEqual(recovered, [{ kernel: "k", stalledMs: 180 }]);
    assert.equal(watchdog.status("k")?.stale, false);
    clock.now = 281;
    assert.equal(watchdog.check().length, 1);
    assert.equal(stale.length, 2);
    assert.equal(stale[1].staleMs, 101);
  });

  test("a heartbeat that keeps moving is never stale", () => {
    const { clock, stale, watchdog } = fakeWatchdog(100);
    const beat = new FakeHeartbeat();
    watchdog.watch("k", beat);
    for (let t = 0; t <= 5_000; t += 90) {
      clock.now = t;
      beat.beat();
      assert.deepEqual(watchdog.check(), []);
    }
    assert.deepEqual(stale, []);
  });

  test("a stopped loop is never stale; its deadline restarts when it runs again", () => {
    const { clock, stale, watchdog } = fakeWatchdog(100);
    const beat = new FakeHeartbeat();
    beat.hasTerminated = 1;
    watchdog.watch("k", beat);
    clock.now = 1_000;
    assert.deepEqual(watchdog.check(), []);
    assert.equal(watchdog.status("k")?.stopped, true);
    beat.hasTerminated = 0;
    clock.now = 1_050;
    assert.deepEqual(watchdog.check(), []);
    clock.now = 1_151;
    assert.equal(watchdog.check()[0].staleMs, 101);
    assert.equal(stale.length, 1);
  });

  test("each kernel is judged by its own deadline and reported by name", () => {
    const { clock, stale, watchdog } = fakeWatchdog(100);
    const fast = new FakeHeartbeat();
    const slow = new FakeHeartbeat();
    const quiet = new FakeHeartbeat();
    watchdog.watch("fast", fast);
    watchdog.watch("slow", slow, { deadlineMs: 500 });
    watchdog.watch("quiet", quiet);
    clock.now = 200;
    quiet.beat();
    assert.deepEqual(watchdog.check().map((e) => e.kernel), ["fast"]);
    clock.now = 501;
    assert.deepEqual(
      watchdog.check().map((e) => e.kernel).sort(),
      ["fast", "quiet", "slow"],
    );
    assert.deepEqual(stale.map((e) => [e.kernel, e.deadlineMs]), [
      ["fast", 100],
      ["slow", 500],
      ["quiet", 100],
    ]);
  });

  test("unwatching stops the reports; watching twice is refused", () => {
    const { clock, stale, watchdog } = fakeWatchdog(100);
    const stop = watchdog.watch("a", new FakeHeartbeat());
    watchdog.watch("b", new FakeHeartbeat());
    assert.throws(
      () => watchdog.watch("a", new FakeHeartbeat()),
      InvalidStateError,
    );
    assert.deepEqual(watchdog.kernels.sort(), ["a", "b"]);
    stop();
    assert.equal(watchdog.unwatch("b"), true);
    assert.equal(watchdog.unwatch("b"), false);
    assert.equal(watchdog.status("a"), undefined);
    clock.now = 1_000;
    assert.deepEqual(watchdog.check(), []);
    assert.deepEqual(stale, []);
  });

  test("bad options are refused", () => {
    assert.throws(() => new HeartbeatWatchdog({ deadlineMs: 0 }), RangeError);
    assert.throws(() => new HeartbeatWatchdog({ deadlineMs: NaN }), RangeError);
    assert.throws(() => new HeartbeatWatchdog({ intervalMs: -1 }), RangeError);
    const watchdog = new HeartbeatWatchdog();
    assert.throws(() => watchdog.watch("", new FakeHeartbeat()), RangeError);
    assert.throws(
      () => watchdog.watch("k", new FakeHeartbeat(), { deadlineMs: Infinity }),
      RangeError,
    );
  });

  test("a throwing callback does not stop the other kernels from being checked", () => {
    const clock = { now: 0 };
    const seen: string[] = [];
    const watchdog = new HeartbeatWatchdog({
      deadlineMs: 10,
      now: () => clock.now,
      onStale: (e) => {
        seen.push(e.kernel);
        if (e.kernel === "a") throw new Error("listener failed");
      },
    });
    watchdog.watch("a", new FakeHeartbeat());
    watchdog.watch("b", new FakeHeartbeat());
    clock.now = 11;
    assert.throws(() => watchdog.check(), /listener failed/);
    assert.deepEqual(seen, ["a", "b"]);
    assert.equal(watchdog.status("b")?.stale, true);
  });

  test("start() samples on a timer until stop()", async () => {
    const stale: StaleHeartbeat[] = [];
    const watchdog = new HeartbeatWatchdog({
      deadlineMs: 20,
      intervalMs: 5,
      onStale: (e) => stale.push(e),
    });
    watchdog.watch("k", new FakeHeartbeat());
    assert.equal(watchdog.start(), watchdog);
    assert.equal(watchdog.running, true);
    try {
      await pollUntil(() => stale.length > 0, { timeoutMs: 5_000 });
      assert.equal(stale[0].kernel, "k");
      assert.ok(stale[0].staleMs > 20);
    } finally {
      watchdog.stop();
    }
    assert.equal(watchdog.running, false);
  });
});

describe("HeartbeatWatchdog on CPU actors", () => {
  test(
    "an actor whose handler blocks is reported stale, an idle one is not, and the blocked one recovers",
    {
      timeout: 30_000,
    },
    async () => {
      const rt = await RingKernel.create({ backend: "cpu", quiet: true });
      const stale: StaleHeartbeat[] = [];
      const recovered: HeartbeatRecovered[] = [];
      // Deadline: several idle heartbeat periods (~100 ms) of a CPU actor.
      const watchdog = new HeartbeatWatchdog({
        deadlineMs: 500,
        intervalMs: 20,
        onStale: (e) => stale.push(e),
        onRecover: (e) => recovered.push(e),
      });
      try {
        const blocked = await rt.launch("blocked", {
          actor: {
            module: new URL("./fixtures/blocking_actor.ts", import.meta.url),
          },
        });
        const idle = await rt.launch("idle", { actor: "echo" });
        watchdog.watch(
          blocked.name,
          (kernelInternals(blocked).host as CpuActorHost).control,
        );
        watchdog.watch(
          idle.name,
          (kernelInternals(idle).host as CpuActorHost).control,
        );
        watchdog.start();
        // Both heartbeat while idle: nothing is stale before the handler blocks.
        await pollUntil(
          () => (watchdog.status("blocked")?.lastActivityTicks ?? 0n) > 0n,
          { timeoutMs: 5_000 },
        );
        await blocked.send({ seq: 1n, value: 2_000, tag: 0 });
        await pollUntil(() => stale.length > 0, { timeoutMs: 10_000 });
        assert.equal(stale[0].kernel, "blocked");
        assert.ok(stale[0].staleMs > 500);
        assert.equal(watchdog.status("idle")?.stale, false);
        // The handler returns; the loop heartbeats again.
        assert.deepEqual(await blocked.receive({ timeoutMs: 10_000 }), {
          seq: 1n,
          value: 2_000,
          tag: 0,
        });
        await pollUntil(() => recovered.length > 0, { timeoutMs: 10_000 });
        assert.equal(recovered[0].kernel, "blocked");
        assert.ok(recovered[0].stalledMs > 500);
        assert.deepEqual(stale.map((e) => e.kernel), ["blocked"]);
      } finally {
        watchdog.stop();
        await rt.shutdown({ timeoutMs: 5_000 });
      }
    },
  );
});
