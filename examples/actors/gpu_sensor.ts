/**
 * Actors for the GPU fan-out example. `sensor` publishes each reading on a
 * topic its `tag` picks (0: `readings/temperature`, else `readings/humidity`):
 * on the GPU with `rk_publish(ctx, rk_topic(...), in)` (the topics are
 * declared in `gpu.topics`), on the CPU with `ctx.publish(topic, message)`;
 * it answers each call with the result (0: published). `tally` is a CPU
 * actor: it replies to the host with each publication that reaches it, `tag`
 * set to how many it has received.
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

/** The topics `sensor` publishes on, by `tag`. */
export const TOPICS: readonly string[] = [
  "readings/temperature",
  "readings/humidity",
];

const SOURCE = `#include "ringkernel.cuh"
struct echo_msg { rk_u64 seq; double value; rk_u32 tag; };
__device__ rk_i32 sensor(const echo_msg& in, echo_msg& out, rk_actor_ctx& ctx) {
  const rk_u64 topic = in.tag == 0u ? rk_topic("${TOPICS[0]}")
                                    : rk_topic("${TOPICS[1]}");
  out = in;
  // The host delivers it to every matching subscriber: host handlers, GPU
  // and CPU actors. RK_SEND_OK (0) once it is in the outbox.
  out.tag = static_cast<rk_u32>(rk_publish(ctx, topic, in));
  return RK_REPLY;
}
RK_DEFINE_ACTOR(example_sensor_pool, echo_msg, echo_msg, sensor)
`;

/** Publishes each reading, on the GPU (CUDA C++) or on the CPU (TypeScript). */
export const sensor: ActorDefinition<EchoFields, EchoFields, unknown> =
  defineGpuActor({
    input: EchoMessage,
    output: EchoMessage,
    handle: (message, ctx) => {
      ctx.publish(TOPICS[message.tag === 0 ? 0 : 1], message);
      return { ...message, tag: 0 };
    },
    gpu: {
      source: { cuda: SOURCE, entry: "example_sensor_pool", name: "sensor.cu" },
      topics: TOPICS,
    },
  });

/** A CPU subscriber: replies with each publication, `tag` = how many so far. */
export const tally: ActorDefinition<EchoFields, EchoFields, { heard: number }> =
  defineActor({
    input: EchoMessage,
    output: EchoMessage,
    init: () => ({ heard: 0 }),
    handle: (message, ctx) => ({ ...message, tag: ++ctx.state.heard }),
  });
