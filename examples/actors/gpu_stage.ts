/**
 * Actors for the GPU pipeline example. `stage` computes
 * `value * factor + offset`, adds 1 to `tag` and sends the result on to the
 * actor its configuration names (`config.next`), by name: on the GPU with
 * `rk_send(ctx, next, out)` (the name's hash comes from the configuration),
 * on the CPU with `ctx.send(next, out)`. A send that fails dead-letters the
 * message (the device does not wait: a full or unknown target is refused at
 * once; the CPU side waits for room up to its deadline). `collector` is a CPU
 * actor: it replies to the host with what reached it, `tag` + 1.
 *
 * @module
 */

import {
  type ActorDefinition,
  defineActor,
  type EchoFields,
} from "../../mod.ts";
import { defineGpuActor } from "../../cuda.ts";
import { EchoMessage } from "../../schemas.ts";

/** A stage's launch configuration. */
export interface StageConfig {
  /** The actor it sends its results to. */
  next: string;
  /** What it multiplies `value` by. */
  factor: number;
  /** What it adds after. */
  offset: number;
}

const SOURCE = `#include "ringkernel.cuh"
struct echo_msg { rk_u64 seq; double value; rk_u32 tag; };
struct stage_config { rk_u64 next; double factor; double offset; };
__device__ rk_i32 stage(const echo_msg& in, echo_msg& out, rk_actor_ctx& ctx) {
  const stage_config& config = *reinterpret_cast<const stage_config*>(ctx.config);
  out = in;
  out.value = in.value * config.factor + config.offset;
  out.tag = in.tag + 1u;
  // To a GPU actor: its K2K inbox; to a CPU actor: the outbox, which the
  // host drains into that actor's inbox.
  if (rk_send(ctx, config.next, out) != RK_SEND_OK) return RK_REJECT;
  return RK_HANDLED;  // no reply to the host: the result went on
}
RK_DEFINE_ACTOR(example_stage_pool, echo_msg, echo_msg, stage)
`;

/** A pipeline stage, on the GPU (CUDA C++) or on the CPU (TypeScript). */
export const stage: ActorDefinition<EchoFields, EchoFields, StageConfig> =
  defineGpuActor({
    input: EchoMessage,
    output: EchoMessage,
    init: ({ config }) => config as StageConfig,
    handle: async (message, ctx) => {
      const { next, factor, offset } = ctx.state;
      await ctx.send(next, {
        seq: message.seq,
        value: message.value * factor + offset,
        tag: message.tag + 1,
      });
    },
    gpu: {
      source: { cuda: SOURCE, entry: "example_stage_pool", name: "stage.cu" },
      encodeConfig: (config, context) => {
        const { next, factor, offset } = config as StageConfig;
        const bytes = new Uint8Array(24);
        const view = new DataView(bytes.buffer);
        view.setBigUint64(0, context.nameHash(next), true);
        view.setFloat64(8, factor, true);
        view.setFloat64(16, offset, true);
        return bytes;
      },
    },
  });

/** The end of the pipeline, a CPU actor: replies to the host. */
export const collector: ActorDefinition<EchoFields, EchoFields, unknown> =
  defineActor({
    input: EchoMessage,
    output: EchoMessage,
    handle: (message) => ({ ...message, tag: message.tag + 1 }),
  });
