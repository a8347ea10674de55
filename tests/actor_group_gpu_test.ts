// Actor groups (RingKernel.launchGroup): on the CUDA backend several actors
// start as ONE pool kernel, one block each, and then live as ordinary
// kernels (lifecycle, supervision, a restart alone); on the CPU backend a
// group is its actors launched one by one. The GPU cases are skipped without
// a GPU (gpu_gate.ts); with RINGKERNEL_REQUIRE_GPU=1 they run and fail
// without one.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { ActorDefinition } from "../src/actor.ts";
import { EchoMessage } from "../src/actors/schemas.ts";
import { pollUntil } from "../src/async.ts";
import { defineGpuActor } from "../src/backend/cuda/gpu_actor.ts";
import { InvalidOptionError, InvalidStateError } from "../src/errors.ts";
import { gpuTest } from "./gpu_gate.ts";
import { withRuntime } from "./helpers.ts";

type Echo = typeof EchoMessage.spec;

const BUNDLE_PTX = fileURLToPath(
  new URL("../cuda/bundle/ringkernel.compute_80.ptx", import.meta.url),
);

/** A stateful user actor from the bundle: counts; tag 0xdead makes it fail. */
export const counter: ActorDefinition<Echo, Echo, unknown> = defineGpuActor({
  input: EchoMessage,
  output: EchoMessage,
  gpu: {
    source: { file: BUNDLE_PTX, entry: "rk_example_counter_pool" },
    stateBytes: 8,
  },
});

const echo = (seq: number, value = seq / 4, tag = 0) => ({
  seq: BigInt(seq),
  value,
  tag,
});

describe("actor groups", () => {
  gpuTest(
    "three GPU actors start as ONE pool kernel and live on their own",
    async () => {
      await withRuntime({ backend: "cuda" }, async (rt) => {
        const before = rt.gpuInfo()!;
        const [a, b, c] = await rt.launchGroup([
          { name: "g-a", options: { actor: "echo" } },
          { name: "g-b", options: { actor: "echo" } },
          { name: "g-c", options: { actor: "accumulator" } },
        ]);
        const info = rt.gpuInfo()!;
        assert.equal(info.residentGrids - before.residentGrids, 1);
        assert.equal(info.residentBlocks - before.residentBlocks, 3);
        assert.deepEqual(await a.call(echo(1), { timeoutMs: 5_000 }), echo(1));
        assert.deepEqual(await b.call(echo(2), { timeoutMs: 5_000 }), echo(2));
        assert.deepEqual(await c.call({ value: 2.5 }, { timeoutMs: 5_000 }), {
          total: 2.5,
          count: 1n,
        });
        // Per-actor lifecycle: one pauses, one stops, the others answer.
        await b.deactivate();
        await b.send(echo(3));
        await a.terminate({ timeoutMs: 5_000 });
        assert.equal(a.state, "terminated");
        assert.deepEqual(await c.call({ value: 1 }, { timeoutMs: 5_000 }), {
          total: 3.5,
          count: 2n,
        });
        await b.activate();
        assert.deepEqual(await b.receive({ timeoutMs: 5_000 }), echo(3));
      });
    },
  );

  gpuTest(
    "a group member that crashes is restarted alone; the rest keep their state",
    async () => {
      await withRuntime({ backend: "cuda" }, async (rt, events) => {
        const restart = {
          strategy: "one-for-one",
          maxRestarts: 3,
          withinMs: 60_000,
        } as const;
        const actor = { module: import.meta.url, export: "counter" };
        const [x, y] = await rt.launchGroup([
          { name: "count-x", options: { actor, restart } },
          { name: "count-y", options: { actor, restart } },
        ]);
        for (const k of [x, y]) await k.call(echo(0), { timeoutMs: 5_000 });
        await assert.rejects(x.call(echo(0, 0, 0xdead), { timeoutMs: 5_000 }));
        await pollUntil(() => events.some((e) => e.type === "restart"), {
          timeoutMs: 10_000,
        });
        assert.equal((await x.call(echo(0), { timeoutMs: 5_000 })).seq, 1n);
        assert.equal((await y.call(echo(0), { timeoutMs: 5_000 })).seq, 2n);
      });
    },
  );

  gpuTest(
    "actors of two kernels cannot share a pool: the group fails whole",
    async () => {
      await withRuntime({ backend: "cuda" }, async (rt) => {
        await assert.rejects(
          rt.launchGroup([
            { name: "p-echo", options: { actor: "echo" } },
            {
              name: "p-count",
              options: {
                actor: { module: import.meta.url, export: "counter" },
              },
            },
          ]),
          /one pool runs one kernel/,
        );
        assert.deepEqual(rt.listKernels(), []);
        // The names are free again, and one-by-one launches work.
        const k = await rt.launch("p-echo", { actor: "echo" });
        assert.deepEqual(await k.call(echo(5), { timeoutMs: 5_000 }), echo(5));
      });
    },
  );
});

describe("actor groups on the CPU backend", () => {
  test("a group is its actors launched one by one", async () => {
    await withRuntime({ backend: "cpu" }, async (rt) => {
      const kernels = await rt.launchGroup([
        { name: "c-a", options: { actor: "echo" } },
        { name: "c-b", options: { actor: "accumulator" } },
      ]);
      assert.deepEqual(
        await kernels[0].call(echo(1), { timeoutMs: 5_000 }),
        echo(1),
      );
      assert.equal(kernels.length, 2);
      await assert.rejects(rt.launchGroup([]), InvalidOptionError);
      await assert.rejects(
        rt.launchGroup([
          { name: "d", options: { actor: "echo" } },
          { name: "d", options: { actor: "echo" } },
        ]),
        InvalidOptionError,
      );
      // One member fails (a taken name): none of the group stays.
      await assert.rejects(
        rt.launchGroup([
          { name: "e-new", options: { actor: "echo" } },
          { name: "c-a", options: { actor: "echo" } },
        ]),
        InvalidStateError,
      );
      await pollUntil(() => !rt.listKernels().includes("e-new"), {
        timeoutMs: 5_000,
      });
    });
  });
});
