// Refused device sends in Kernel.metrics(): rk_send to an unknown name, to a
// full inbox, or of a struct the target does not take, and rk_publish to a
// full outbox, are counted in `sendsRefused` of the GPU kernel (the message
// was never sent, so no kernel's `sent` holds it); CPU kernels report 0.
// Skipped without a GPU (gpu_gate.ts); with RINGKERNEL_REQUIRE_GPU=1 it runs
// (on the emulator when RINGKERNEL_LIBCUDA points at it).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ActorDefinition } from "../src/actor.ts";
import { EchoMessage } from "../src/actors/schemas.ts";
import { pollUntil } from "../src/async.ts";
import { defineGpuActor } from "../src/backend/cuda/gpu_actor.ts";
import { Nvrtc } from "../src/backend/cuda/nvrtc.ts";
import { SendResult } from "../src/backend/cuda/pool_layout.ts";
import { gpuTest } from "./gpu_gate.ts";
import { assertAccounted, echo, withRuntime } from "./helpers.ts";

type Echo = typeof EchoMessage.spec;

/**
 * tag 0: rk_send to "nobody"; tag 1: rk_send to "sink"; tag 2: rk_send of a
 * 4-byte struct to "sink" (not its input); replies with the result code.
 */
const SOURCE = `#include "ringkernel.cuh"
struct echo_msg { rk_u64 seq; double value; rk_u32 tag; };
struct small_msg { rk_u32 x; };
__device__ rk_i32 sender(const echo_msg& in, echo_msg& out, rk_actor_ctx& ctx) {
  out = in;
  if (in.tag == 0u) out.tag = static_cast<rk_u32>(rk_send(ctx, rk_name("nobody"), in));
  else if (in.tag == 1u) out.tag = static_cast<rk_u32>(rk_send(ctx, rk_name("sink"), in));
  else out.tag = static_cast<rk_u32>(rk_send(ctx, rk_name("sink"), small_msg{1u}));
  return RK_REPLY;
}
RK_DEFINE_ACTOR(sender_pool, echo_msg, echo_msg, sender)
`;

/** Sends by name as its tag says, and replies with the result code. */
export const sender: ActorDefinition<Echo, Echo> = defineGpuActor({
  input: EchoMessage,
  output: EchoMessage,
  gpu: { source: { cuda: SOURCE, entry: "sender_pool", name: "sender.cu" } },
});

const nvrtc = Nvrtc.probe();
const needsNvrtc = {
  skip: nvrtc.available
    ? undefined
    : `libnvrtc not installed: ${nvrtc.reason?.split("\n")[0]}`,
};

describe("sendsRefused", () => {
  test("a CPU kernel reports 0", async () => {
    await withRuntime({ backend: "cpu" }, async (rt) => {
      const k = await rt.launch("e", { actor: "echo" });
      await k.call(echo(1, 1));
      assert.equal(k.metrics().sendsRefused, 0);
    });
  });

  gpuTest(
    "a GPU kernel counts its refused rk_send calls: unknown, mismatch, full",
    async () => {
      await withRuntime({ backend: "cuda" }, async (rt) => {
        const actor = { module: import.meta.url, export: "sender" };
        await rt.prepare({ actor });
        // The sink never runs, so its K2K inbox fills up (16 slots).
        const sink = await rt.launch<Echo, Echo>("sink", {
          actor: "echo",
          queueCapacity: 16,
          autoActivate: false,
        });
        const s = await rt.launch<Echo, Echo>("s", { actor });
        assert.equal(s.metrics().sendsRefused, 0);
        assert.equal((await s.call(echo(1, 1, 0))).tag, SendResult.Unknown);
        assert.equal((await s.call(echo(2, 1, 2))).tag, SendResult.Mismatch);
        await pollUntil(() => s.metrics().sendsRefused === 2, {
          timeoutMs: 5_000,
        });
        const codes: number[] = [];
        for (let i = 0; i < 24; i++) {
          codes.push((await s.call(echo(10 + i, i, 1))).tag);
        }
        const ok = codes.filter((c) => c === SendResult.Ok).length;
        const full = codes.filter((c) => c === SendResult.Full).length;
        assert.equal(ok + full, 24);
        assert.ok(full > 0, "the sink's inbox filled up");
        await pollUntil(() => s.metrics().sendsRefused === 2 + full, {
          timeoutMs: 5_000,
        });
        assert.equal(sink.metrics().sendsRefused, 0, "the sink sent nothing");
        await sink.activate();
        await pollUntil(() => sink.metrics().processed === ok, {
          timeoutMs: 10_000,
        });
        assert.equal(sink.metrics().sent, ok, "refused sends were never sent");
        for (const k of [s, sink]) assertAccounted(k.metrics());
      });
    },
    needsNvrtc,
  );
});
