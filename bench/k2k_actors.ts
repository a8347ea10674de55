/**
 * Two actors for measuring K2K and device → host throughput: a generator
 * that emits N messages per command, and a counter that answers the first
 * and the last message of a run. Their GPU sides are built into the kernel
 * bundle; their CPU sides do the same work more slowly. They serve the
 * benchmarks and the tests, and are not part of the published package.
 *
 * - `k2kSource` (`config.target`: the counter's name; none: emit to its own
 *   reply queue on the GPU): for an {@linkcode EchoMessage} whose `seq` is N,
 *   emits Echo messages with `seq` 0..N-1 and `tag` 1 on the last.
 * - `k2kSink`: replies to a message with `seq` 0 or `tag` 1 with
 *   `seq` = the time in ns (%globaltimer on the GPU), `value` = messages
 *   counted so far, and the message's `tag`.
 *
 * @module
 */

import type { ActorDefinition } from "../src/actor.ts";
import { EchoMessage } from "../src/actors/schemas.ts";
import { encodeTargetConfig } from "../src/actors/target_config.ts";
import { defineGpuActor } from "../src/backend/cuda/gpu_actor.ts";
import { RingKernelError } from "../src/errors.ts";

/** URL of this module (export names `k2kSource` and `k2kSink`). */
export const BENCH_ACTORS_MODULE: string = import.meta.url;

type Echo = typeof EchoMessage.spec;

/** The generator. */
export const k2kSource: ActorDefinition<
  Echo,
  Echo,
  { target: string | undefined }
> = defineGpuActor({
  input: EchoMessage,
  output: EchoMessage,
  init: ({ config }) => ({
    target: (config as { target?: string } | undefined)?.target,
  }),
  handle: async (message, ctx) => {
    const target = ctx.state.target;
    if (target === undefined) {
      throw new RingKernelError("k2kSource on the CPU needs config.target");
    }
    const n = Number(message.seq);
    for (let i = 0; i < n; i++) {
      await ctx.send(target, {
        seq: BigInt(i),
        value: 0,
        tag: i === n - 1 ? 1 : 0,
      });
    }
  },
  gpu: {
    source: { builtin: "k2k-source" },
    encodeConfig: (config, { nameHash }) =>
      encodeTargetConfig(config, nameHash, false),
  },
});

/** The counter. */
export const k2kSink: ActorDefinition<Echo, Echo, { count: number }> =
  defineGpuActor({
    input: EchoMessage,
    output: EchoMessage,
    init: () => ({ count: 0 }),
    handle: (message, ctx) => {
      ctx.state.count++;
      if (message.seq !== 0n && message.tag !== 1) return;
      return {
        seq: BigInt(Math.round(performance.now() * 1e6)),
        value: ctx.state.count,
        tag: message.tag,
      };
    },
    gpu: { source: { builtin: "k2k-sink" } },
  });
