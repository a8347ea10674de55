// Launches racing shutdown and each other: a launch in flight when the runtime
// shuts down, or one that loses its name to another, leaves nothing running.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { RingKernel } from "../src/runtime.ts";
import { InvalidStateError, RingKernelError } from "../src/errors.ts";
import { deadline, pollUntil } from "../src/async.ts";
import { createGate, GATE_INITS, openGate } from "./fixtures/gated_actor.ts";

const GATED = {
  module: new URL("./fixtures/gated_actor.ts", import.meta.url),
};
/** Long enough that no gated start times out while a test holds its gate. */
const START_TIMEOUT_MS = 60_000;

/** Resolves with the kernel's name or the error, never rejects. */
function outcome(launch: Promise<{ name: string }>): Promise<unknown> {
  return launch.then((kernel) => kernel.name, (error: unknown) => error);
}

describe("launch and shutdown", () => {
  test("shutdown waits for a launch in flight, which rejects and leaves nothing running", async () => {
    const gate = createGate();
    const rt = await RingKernel.create({ backend: "cpu", quiet: true });
    let launched: { terminate(): Promise<void> } | undefined;
    try {
      const launching = rt.launch("gated", {
        actor: GATED,
        config: { gate: gate.buffer },
        timeoutMs: START_TIMEOUT_MS,
      });
      launching.then((k) => launched = k, () => {});
      // Its Worker runs init: the launch is in flight.
      await pollUntil(() => Atomics.load(gate, GATE_INITS) === 1, {
        timeoutMs: 20_000,
        what: "the gated init",
      });
      const shutdown = rt.shutdown({ timeoutMs: 5_000 });
      openGate(gate);
      await deadline(shutdown, 30_000, { what: "shutdown" });
      const result = await deadline(outcome(launching), 30_000, {
        what: "the launch",
      });
      assert.ok(
        result instanceof InvalidStateError,
        `the launch resolved with ${String(result)}`,
      );
      assert.deepEqual(rt.listKernels(), []);
      assert.deepEqual(rt.metrics().kernels, []);
    } finally {
      openGate(gate);
      await launched?.terminate().catch(() => {});
      await rt.shutdown();
    }
  });

  test("a launch after shutdown began is refused", async () => {
    const rt = await RingKernel.create({ backend: "cpu", quiet: true });
    const shutdown = rt.shutdown();
    await assert.rejects(
      rt.launch("late", { actor: "echo" }),
      InvalidStateError,
    );
    await shutdown;
    assert.deepEqual(rt.listKernels(), []);
  });

  test("of two concurrent launches with one name, the second is refused before it starts anything", async () => {
    const gate = createGate();
    const rt = await RingKernel.create({ backend: "cpu", quiet: true });
    try {
      const first = rt.launch("same", {
        actor: GATED,
        config: { gate: gate.buffer },
        timeoutMs: START_TIMEOUT_MS,
      });
      const second = rt.launch("same", {
        actor: GATED,
        config: { gate: gate.buffer },
        timeoutMs: START_TIMEOUT_MS,
      });
      // The loser is refused while the winner still starts (its gate is shut).
      const lost = await deadline(outcome(second), 20_000, {
        what: "the second launch",
      });
      assert.ok(
        lost instanceof RingKernelError && /already/.test(lost.message),
        `the second launch resolved with ${String(lost)}`,
      );
      openGate(gate);
      assert.equal(await outcome(first), "same");
      // Only the winner's Worker ever ran init.
      assert.equal(Atomics.load(gate, GATE_INITS), 1);
      assert.deepEqual(rt.listKernels(), ["same"]);
    } finally {
      openGate(gate);
      await rt.shutdown({ timeoutMs: 5_000 });
    }
  });

  test("a launch whose signal aborts while its actor starts rejects with the reason, leaves nothing, and frees its name", async () => {
    const gate = createGate();
    const rt = await RingKernel.create({ backend: "cpu", quiet: true });
    try {
      const reason = new Error("no longer needed");
      const controller = new AbortController();
      const launching = rt.launch("gated", {
        actor: GATED,
        config: { gate: gate.buffer },
        timeoutMs: START_TIMEOUT_MS,
        signal: controller.signal,
      });
      await pollUntil(() => Atomics.load(gate, GATE_INITS) === 1, {
        timeoutMs: 20_000,
        what: "the gated init",
      });
      controller.abort(reason);
      // The start under way ends before the launch gives up.
      openGate(gate);
      const result = await deadline(outcome(launching), 30_000, {
        what: "the launch",
      });
      assert.equal(result, reason);
      assert.deepEqual(rt.listKernels(), []);
      const again = await rt.launch("gated", {
        actor: GATED,
        config: { gate: gate.buffer },
      });
      assert.equal(again.state, "active");
    } finally {
      openGate(gate);
      await rt.shutdown({ timeoutMs: 5_000 });
    }
  });

  test("an already aborted signal refuses a launch and a shutdown, starting and changing nothing", async () => {
    const rt = await RingKernel.create({ backend: "cpu", quiet: true });
    const reason = new Error("stop");
    const signal = AbortSignal.abort(reason);
    await assert.rejects(
      rt.launch("echo", { actor: "echo", signal }),
      (e) => e === reason,
    );
    assert.deepEqual(rt.listKernels(), []);
    const echo = await rt.launch("echo", { actor: "echo" });
    await assert.rejects(rt.shutdown({ signal }), (e) => e === reason);
    assert.equal(echo.state, "active");
    await rt.shutdown();
    assert.equal(echo.state, "terminated");
  });

  test("a shutdown whose signal aborts kills the actors still draining, then rejects with the reason", async () => {
    const rt = await RingKernel.create({ backend: "cpu", quiet: true });
    const sleepy = await rt.launch("sleepy", {
      actor: { module: new URL("./fixtures/sleepy_actor.ts", import.meta.url) },
    });
    for (let seq = 0; seq < 5; seq++) {
      await sleepy.send({ seq: BigInt(seq), value: 2_000, tag: 0 });
    }
    const reason = new Error("enough");
    const controller = new AbortController();
    const started = performance.now();
    const shutdown = rt.shutdown({
      timeoutMs: 60_000,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(reason), 100);
    const result = await deadline(
      shutdown.then(() => "resolved", (e: unknown) => e),
      20_000,
      { what: "the aborted shutdown" },
    );
    assert.equal(result, reason);
    assert.ok(performance.now() - started < 5_000, "it did not wait to drain");
    assert.equal(sleepy.state, "terminated");
    assert.deepEqual(rt.listKernels(), []);
    const m = rt.metrics().totals;
    assert.equal(m.sent, m.processed + m.deadLettered);
    assert.ok(rt.deadLetters.countOf("actor-terminated") >= 4);
    // The shutdown itself finished: a later call resolves.
    await rt.shutdown();
  });

  test("shutdown called twice returns one promise; a failed launch frees its name", async () => {
    const rt = await RingKernel.create({ backend: "cpu", quiet: true });
    try {
      await assert.rejects(
        rt.launch("fwd", { actor: "forwarder" }),
        RingKernelError,
      );
      const kernel = await rt.launch("fwd", {
        actor: "forwarder",
        config: { target: "x" },
      });
      assert.equal(kernel.state, "active");
    } finally {
      const a = rt.shutdown();
      assert.equal(rt.shutdown(), a);
      await a;
    }
    assert.deepEqual(rt.listKernels(), []);
  });
});
