// One runtime, both backends: on CUDA, `launch({ placement })` runs a GPU
// actor on the device and a CPU actor in a Worker beside it; a GPU → GPU →
// CPU pipeline (rk_send by name, then rk_publish to a topic the CPU actor is
// subscribed to) with sent = processed + dead-lettered on every kernel.
// Placement "gpu" on the CPU backend is a BackendUnavailableError.
// GPU tests are skipped without a GPU (gpu_gate.ts); with
// RINGKERNEL_REQUIRE_GPU=1 they run (on the emulator when RINGKERNEL_LIBCUDA
// points at it).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ActorDefinition } from "../src/actor.ts";
import { EchoMessage } from "../src/actors/schemas.ts";
import { pollUntil } from "../src/async.ts";
import { defineGpuActor } from "../src/backend/cuda/gpu_actor.ts";
import { Nvrtc } from "../src/backend/cuda/nvrtc.ts";
import { BackendUnavailableError, InvalidOptionError } from "../src/errors.ts";
import { gpuTest } from "./gpu_gate.ts";
import { assertAccounted, echo, withRuntime } from "./helpers.ts";

type Echo = typeof EchoMessage.spec;

/** `first` sends each message on to "second"; `second` publishes it doubled on "pipe/out". */
const PIPE_SOURCE = `#include "ringkernel.cuh"
struct echo_msg { rk_u64 seq; double value; rk_u32 tag; };
static_assert(sizeof(echo_msg) == 24, "echo_msg mirrors ringkernel.Echo");
__device__ rk_i32 first(const echo_msg& in, echo_msg& out, rk_actor_ctx& ctx) {
  out = in;
  out.tag = static_cast<rk_u32>(rk_send(ctx, rk_name("second"), in));
  return RK_REPLY;
}
RK_DEFINE_ACTOR(first_pool, echo_msg, echo_msg, first)
__device__ rk_i32 second(const echo_msg& in, echo_msg& out, rk_actor_ctx& ctx) {
  out = in;
  out.value = in.value * 2.0;
  rk_publish(ctx, rk_topic("pipe/out"), out);
  return RK_HANDLED;
}
RK_DEFINE_ACTOR(second_pool, echo_msg, echo_msg, second)
`;

/** The pipeline's first GPU stage. */
export const firstStage: ActorDefinition<Echo, Echo> = defineGpuActor({
  input: EchoMessage,
  output: EchoMessage,
  gpu: { source: { cuda: PIPE_SOURCE, entry: "first_pool" } },
});
/** Its second GPU stage. */
export const secondStage: ActorDefinition<Echo, Echo> = defineGpuActor({
  input: EchoMessage,
  output: EchoMessage,
  gpu: {
    source: { cuda: PIPE_SOURCE, entry: "second_pool" },
    topics: ["pipe/out"],
  },
});

const nvrtc = Nvrtc.probe();
const needsNvrtc = {
  skip: nvrtc.available
    ? undefined
    : `libnvrtc not installed: ${nvrtc.reason?.split("\n")[0]}`,
};
const MODULE = import.meta.url;

describe("placement", () => {
  test('"gpu" in a runtime on the CPU backend is a BackendUnavailableError; the option is checked', async () => {
    await withRuntime({ backend: "cpu" }, async (rt) => {
      await assert.rejects(
        rt.launch("e", { actor: "echo", placement: "gpu" }),
        BackendUnavailableError,
      );
      await assert.rejects(
        rt.launch("e", {
          actor: "echo",
          placement: "tpu" as unknown as "gpu",
        }),
        InvalidOptionError,
      );
      const k = await rt.launch("e", { actor: "echo", placement: "auto" });
      assert.equal(k.backend, "cpu");
    });
  });

  gpuTest("a CUDA runtime runs GPU and CPU actors side by side", async () => {
    await withRuntime({ backend: "cuda" }, async (rt) => {
      const g = await rt.launch("g", { actor: "echo" });
      const c = await rt.launch("c", { actor: "echo", placement: "cpu" });
      assert.equal(g.backend, "cuda");
      assert.equal(c.backend, "cpu");
      assert.equal((await g.call(echo(1, 1.5))).value, 1.5);
      assert.equal((await c.call(echo(2, 2.5))).value, 2.5);
      assertAccounted(g.metrics());
      assertAccounted(c.metrics());
    });
  });

  gpuTest(
    "a GPU → GPU → CPU pipeline: rk_send, then rk_publish to a subscribed CPU actor",
    async () => {
      await withRuntime({ backend: "cuda" }, async (rt) => {
        // Two pool kernels (a group shares one kernel): the target first.
        const b = await rt.launch<Echo, Echo>("second", {
          actor: { module: MODULE, export: "secondStage" },
        });
        const a = await rt.launch<Echo, Echo>("first", {
          actor: { module: MODULE, export: "firstStage" },
        });
        const sink = await rt.launch<Echo, Echo>("sink", {
          actor: "echo",
          placement: "cpu",
        });
        assert.equal(a.backend, "cuda");
        assert.equal(sink.backend, "cpu");
        rt.subscribeKernel(sink, "pipe/#");
        const n = 40;
        const messages = Array.from({ length: n }, (_, i) => echo(i, i));
        await a.sendBatch(messages);
        const codes: number[] = [];
        for (let i = 0; i < n; i++) {
          codes.push((await a.receive({ timeoutMs: 10_000 })).tag);
        }
        assert.deepEqual(codes, new Array(n).fill(0), "every rk_send is OK");
        const seen = new Map<bigint, number>();
        for (let i = 0; i < n; i++) {
          const m = await sink.receive({ timeoutMs: 10_000 });
          seen.set(m.seq, m.value);
        }
        for (let i = 0; i < n; i++) assert.equal(seen.get(BigInt(i)), 2 * i);
        await pollUntil(
          () => [a, b, sink].every((k) => k.metrics().inFlight === 0),
          { timeoutMs: 10_000 },
        );
        for (const k of [a, b, sink]) {
          const m = k.metrics();
          assertAccounted(m);
          assert.equal(m.sent, n, `${k.name} got every message`);
          assert.equal(m.deadLettered, 0);
        }
      });
    },
    needsNvrtc,
  );
});
