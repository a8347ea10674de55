// Block-mode handlers keep the block's barriers aligned when a handler fails
// right after a good message of the same batch (cuda/ringkernel.cuh,
// rk_serve_source). The built-in reduce actor (block mode) is deactivated,
// gets a valid op and then an unknown one, and is activated: both land in one
// batch. Expected: one reply, one dead letter (handler-error), one crash, one
// restart, and a reduce actor that answers again. Before the fix the leader
// could rewrite the batch's stop word before slower threads had read it: they
// left the batch one barrier early and the block's barriers slipped (on the
// CPU emulator, "the kernel diverged"; on a GPU, a hang or wrong ranks).
//
// The emulator runs a block's threads in a random order between barriers by
// default, which hits the race almost always; the last test reruns this file
// in a child process under the fixed orders RINGKERNEL_EMULATOR_ORDER=forward
// (thread 0 first: hits it every time) and reverse (thread 0 last: never).
// Skipped without a GPU (gpu_gate.ts); with RINGKERNEL_REQUIRE_GPU=1 they run
// and fail without one.
import assert from "node:assert/strict";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { pollUntil } from "../src/async.ts";
import { REDUCE_ACTOR_MODULE } from "../src/actors/reduce.ts";
import { ReduceOp } from "../src/actors/schemas.ts";
import { gpu, gpuTest } from "./gpu_gate.ts";
import { isDeno, runProcess, withRuntime } from "./helpers.ts";

const SCENARIO =
  "reduce: a failing op right after a good one in the same batch";
/** The emulator's fiber order; the child processes set it (and skip the rerun). */
const ORDER_ENV = "RINGKERNEL_EMULATOR_ORDER";

function env(name: string): string | undefined {
  try {
    return process.env[name];
  } catch {
    return undefined;
  }
}

gpuTest(SCENARIO, async () => {
  // A failed launch fails the shutdown too: withRuntime reports the first error.
  await withRuntime({ backend: "cuda" }, async (rt, events) => {
    assert.equal(rt.backend, "cuda");
    const data = Array.from({ length: 1_000 }, (_, i) => (i % 13) - 6);
    const sum = data.reduce((s, v) => s + v, 0);
    const k = await rt.launch("reduce", {
      actor: { module: REDUCE_ACTOR_MODULE },
      config: { data },
      restart: { strategy: "one-for-one", maxRestarts: 3, withinMs: 60_000 },
    });
    const good = { op: ReduceOp.Sum, offset: 0, count: data.length };
    const expected = { value: sum, count: data.length, op: ReduceOp.Sum };
    assert.deepEqual(await k.call(good, { timeoutMs: 5_000 }), expected);

    // Both queued while the device is paused: one batch once activated.
    await k.deactivate({ timeoutMs: 5_000 });
    await k.sendBatch([good, { op: 7, offset: 0, count: 1 }]);
    await k.activate();

    assert.deepEqual(await k.receive({ timeoutMs: 10_000 }), expected);
    await pollUntil(() => events.some((e) => e.type === "restart"), {
      timeoutMs: 10_000,
      what: "the reduce actor's restart",
    });
    assert.deepEqual(events.map((e) => e.type), ["crash", "restart"]);
    const crash = events[0];
    assert.ok(crash.type === "crash");
    assert.match(crash.error.message, /handler failed/);
    assert.equal(rt.deadLetters.countOf("handler-error"), 1);
    assert.equal(rt.deadLetters.totalCount, 1);
    assert.equal(k.metrics().crashes, 1);

    // The restarted actor answers; the one reply above was the only one.
    assert.deepEqual(await k.call(good, { timeoutMs: 5_000 }), expected);
    await assert.rejects(k.receive({ timeoutMs: 200 }));
    assert.equal(rt.deadLetters.totalCount, 1);
    assert.deepEqual(events.map((e) => e.type), ["crash", "restart"]);
  });
});

/** How to rerun this file's scenario with the runtime that runs this test. */
function childCommand(): [string, string[]] {
  const self = fileURLToPath(import.meta.url);
  return isDeno
    ? [process.execPath, ["test", "-A", "--filter", SCENARIO, self]]
    : [process.execPath, ["test", "--timeout", "60000", "-t", SCENARIO, self]];
}

gpuTest(
  "reduce: the same under the emulator's fixed fiber orders (forward hits the race every time)",
  async () => {
    const [command, args] = childCommand();
    for (const order of ["forward", "reverse"]) {
      const child = await runProcess(command, args, {
        env: { [ORDER_ENV]: order, NO_COLOR: "1" },
        timeoutMs: 90_000,
      });
      const output = `${child.stdout}\n${child.stderr}`;
      assert.equal(
        child.code,
        0,
        `${ORDER_ENV}=${order}: the scenario failed (exit ${
          child.code ?? child.signal
        }):\n${output.slice(-4_000)}`,
      );
      // Deno says "1 passed", Bun "1 pass": the filter found the scenario.
      assert.match(output, /\b1 pass/, `${ORDER_ENV}=${order}:\n${output}`);
    }
  },
  {
    skip: !gpu.emulated
      ? "fiber orders are the CPU emulator's"
      : env(ORDER_ENV) !== undefined
      ? `${ORDER_ENV} is set already`
      : undefined,
  },
);
