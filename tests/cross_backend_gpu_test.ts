// K2K by name across the boundary of one runtime's two backends: a CPU
// actor's ctx.send to a GPU actor's name goes through the host into the GPU
// actor's inbox; a GPU actor's rk_send to a CPU actor's name goes through its
// outbox, which the host drains into the CPU actor's inbox. Pipelines both
// ways with sent = processed + dead-lettered on every kernel; a full CPU
// inbox dead-letters a device send (the device never waits); a CPU stage
// that crashes is restarted while the GPU stage before it keeps running.
// Skipped without a GPU (gpu_gate.ts); with RINGKERNEL_REQUIRE_GPU=1 they run
// (on the emulator when RINGKERNEL_LIBCUDA points at it).
import assert from "node:assert/strict";
import { describe } from "node:test";
import type { ActorDefinition } from "../src/actor.ts";
import { EchoMessage } from "../src/actors/schemas.ts";
import { pollUntil } from "../src/async.ts";
import { defineGpuActor } from "../src/backend/cuda/gpu_actor.ts";
import { Nvrtc } from "../src/backend/cuda/nvrtc.ts";
import { SendResult } from "../src/backend/cuda/pool_layout.ts";
import type { Kernel } from "../src/kernel.ts";
import type { RingKernel } from "../src/runtime.ts";
import { gpuTest } from "./gpu_gate.ts";
import { assertAccounted, echo, withRuntime } from "./helpers.ts";

type Echo = typeof EchoMessage.spec;

/**
 * A GPU stage: adds 10 to `value` and 1 to `tag`, then sends the result to
 * the actor its configuration names (rk_send, any backend) and replies with
 * the result code in `tag` when the message was a call (or the send failed);
 * without a target it replies with the result.
 */
const STAGE_SOURCE = `#include "ringkernel.cuh"
struct echo_msg { rk_u64 seq; double value; rk_u32 tag; };
static_assert(sizeof(echo_msg) == 24, "echo_msg mirrors ringkernel.Echo");
__device__ rk_i32 stage(const echo_msg& in, echo_msg& out, rk_actor_ctx& ctx) {
  out = in;
  out.value = in.value + 10.0;
  out.tag = in.tag + 1u;
  const rk_u64 target = *reinterpret_cast<const rk_u64*>(ctx.config);
  if (target == 0) return RK_REPLY;
  const rk_i32 code = rk_send(ctx, target, out);
  if (code == RK_SEND_OK && ctx.correlation_id == 0) return RK_HANDLED;
  out.tag = static_cast<rk_u32>(code);
  return RK_REPLY;
}
RK_DEFINE_ACTOR(stage_pool, echo_msg, echo_msg, stage)
`;

/** The GPU stage: `config.target` names where it sends (none: it replies). */
export const gpuStage: ActorDefinition<Echo, Echo, unknown> = defineGpuActor({
  input: EchoMessage,
  output: EchoMessage,
  gpu: {
    source: { cuda: STAGE_SOURCE, entry: "stage_pool", name: "stage.cu" },
    encodeConfig: (config, context) => {
      const bytes = new Uint8Array(8);
      const target = (config as { target?: string } | undefined)?.target;
      if (target !== undefined) {
        new DataView(bytes.buffer).setBigUint64(
          0,
          context.nameHash(target),
          true,
        );
      }
      return bytes;
    },
  },
});

const GPU_STAGE = { module: import.meta.url, export: "gpuStage" };
const CPU_STAGE = {
  module: new URL("./fixtures/stage_actor.ts", import.meta.url).href,
};
const FLAKY = {
  module: new URL("./fixtures/flaky_actor.ts", import.meta.url).href,
};

const nvrtc = Nvrtc.probe();
const needsNvrtc = {
  skip: nvrtc.available
    ? undefined
    : `libnvrtc not installed: ${nvrtc.reason?.split("\n")[0]}`,
};

/** Waits until no kernel holds a message, then checks every kernel's accounting. */
async function settled(kernels: readonly Kernel[]): Promise<void> {
  await pollUntil(
    () => kernels.every((k) => k.metrics().inFlight === 0),
    { timeoutMs: 10_000 },
  );
  for (const k of kernels) assertAccounted(k.metrics());
}

/** `n` replies of `k`, by seq. */
async function replies(
  k: Kernel<Echo, Echo>,
  n: number,
): Promise<Map<bigint, { value: number; tag: number }>> {
  const got = new Map<bigint, { value: number; tag: number }>();
  for (let i = 0; i < n; i++) {
    const m = await k.receive({ timeoutMs: 10_000 });
    got.set(m.seq, { value: m.value, tag: m.tag });
  }
  return got;
}

async function launchCpu(
  rt: RingKernel,
  name: string,
  config: unknown,
  extra: { queueCapacity?: number; autoActivate?: boolean } = {},
): Promise<Kernel<Echo, Echo>> {
  return await rt.launch<Echo, Echo>(name, {
    actor: CPU_STAGE,
    placement: "cpu",
    config,
    ...extra,
  });
}

describe("K2K across backends", () => {
  gpuTest(
    "CPU → GPU → CPU: ctx.send to a GPU name, rk_send to a CPU name",
    async () => {
      await withRuntime({ backend: "cuda" }, async (rt) => {
        await rt.prepare({ actor: GPU_STAGE });
        const dst = await launchCpu(rt, "dst", { add: 100 });
        const gpu = await rt.launch<Echo, Echo>("gpu", {
          actor: GPU_STAGE,
          config: { target: "dst" },
        });
        const src = await launchCpu(rt, "src", { add: 1, next: "gpu" });
        assert.equal(gpu.backend, "cuda");
        assert.equal(src.backend, "cpu");
        const n = 64;
        await src.sendBatch(Array.from({ length: n }, (_, i) => echo(i, i)));
        const got = await replies(dst, n);
        for (let i = 0; i < n; i++) {
          assert.deepEqual(got.get(BigInt(i)), { value: i + 111, tag: 3 });
        }
        await settled([src, gpu, dst]);
        for (const k of [src, gpu, dst]) {
          const m = k.metrics();
          assert.equal(m.sent, n, `${k.name} was sent every message`);
          assert.equal(m.processed, n);
          assert.equal(m.deadLettered, 0);
        }
        assert.equal(gpu.metrics().sendsRefused, 0);
      });
    },
    needsNvrtc,
  );

  gpuTest(
    "GPU → CPU → GPU: rk_send to a CPU name, ctx.send to a GPU name; a call answers with the send's result",
    async () => {
      await withRuntime({ backend: "cuda" }, async (rt) => {
        await rt.prepare({ actor: GPU_STAGE });
        const last = await rt.launch<Echo, Echo>("g2", { actor: GPU_STAGE });
        const mid = await launchCpu(rt, "c", { add: 1, next: "g2" });
        const first = await rt.launch<Echo, Echo>("g1", {
          actor: GPU_STAGE,
          config: { target: "c" },
        });
        const n = 48;
        await first.sendBatch(Array.from({ length: n }, (_, i) => echo(i, i)));
        const got = await replies(last, n);
        for (let i = 0; i < n; i++) {
          assert.deepEqual(got.get(BigInt(i)), { value: i + 21, tag: 3 });
        }
        // A call: the GPU stage answers with rk_send's result to the CPU name.
        const answer = await first.call(echo(1000, 5), { timeoutMs: 10_000 });
        assert.equal(answer.tag, SendResult.Ok);
        assert.equal((await last.receive({ timeoutMs: 10_000 })).value, 26);
        await settled([first, mid, last]);
        for (const k of [first, mid, last]) {
          assert.equal(k.metrics().sent, n + 1, `${k.name}`);
          assert.equal(k.metrics().deadLettered, 0);
        }
      });
    },
    needsNvrtc,
  );

  gpuTest(
    "a full CPU inbox dead-letters a GPU actor's send (queue-full); the device does not wait",
    async () => {
      await withRuntime({ backend: "cuda" }, async (rt) => {
        await rt.prepare({ actor: GPU_STAGE });
        const capacity = 16;
        const dst = await launchCpu(rt, "dst", { add: 0 }, {
          queueCapacity: capacity,
          autoActivate: false,
        });
        const gpu = await rt.launch<Echo, Echo>("gpu", {
          actor: GPU_STAGE,
          config: { target: "dst" },
        });
        const n = capacity * 3;
        await gpu.sendBatch(Array.from({ length: n }, (_, i) => echo(i, i)));
        await pollUntil(() => gpu.metrics().processed === n, {
          timeoutMs: 10_000,
        });
        // The host drains the outbox into dst's inbox, which fills.
        await pollUntil(
          () => {
            const held = dst.metrics().sent;
            const dropped = rt.deadLetters.counts()["queue-full"] ?? 0;
            return held + dropped === n;
          },
          { timeoutMs: 10_000 },
        );
        const held = dst.metrics().sent;
        assert.ok(held >= capacity && held < n, `dst holds ${held}`);
        const dead = rt.deadLetters.drain().filter((d) =>
          d.reason === "queue-full"
        );
        assert.equal(dead.length, n - held);
        assert.equal(dead[0].actor, "dst");
        assert.match(dead[0].detail ?? "", /rk_send from "gpu"/);
        await dst.activate();
        assert.equal((await replies(dst, held)).size, held);
        await settled([gpu, dst]);
        assert.equal(gpu.metrics().sent, n);
      });
    },
    needsNvrtc,
  );

  gpuTest(
    "a crashing CPU stage is restarted while the GPU stage before it keeps running",
    async () => {
      await withRuntime({ backend: "cuda" }, async (rt, events) => {
        await rt.prepare({ actor: GPU_STAGE });
        const flaky = await rt.launch<Echo, Echo>("flaky", {
          actor: FLAKY,
          placement: "cpu",
        });
        const gpu = await rt.launch<Echo, Echo>("gpu", {
          actor: GPU_STAGE,
          config: { target: "flaky" },
        });
        await gpu.send(echo(1, 1));
        assert.equal((await flaky.receive({ timeoutMs: 10_000 })).seq, 1n);
        // value -20 + 10 < 0: the CPU stage throws on it.
        await gpu.send(echo(2, -20));
        await pollUntil(() => events.some((e) => e.type === "restart"), {
          timeoutMs: 10_000,
        });
        assert.equal(gpu.state, "active", "the GPU stage kept running");
        for (let i = 3; i < 8; i++) await gpu.send(echo(i, i));
        const after = await replies(flaky, 5);
        for (let i = 3; i < 8; i++) {
          assert.equal(after.get(BigInt(i))?.value, i + 10);
        }
        await settled([gpu, flaky]);
        const m = flaky.metrics();
        assert.equal(m.sent, 7);
        assert.equal(m.deadLettered, 1, "the message it crashed on");
        assert.equal(m.restarts, 1);
        assert.equal(gpu.metrics().crashes, 0);
      });
    },
    needsNvrtc,
  );
});
