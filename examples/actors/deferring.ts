/**
 * An actor for the deferred reply example, with its handler in CUDA C++: a
 * call with `tag` 1 is kept — its correlation id stored in the actor's
 * device state with `rk_defer` — and answered nothing yet; a later message
 * with `tag` 2 answers the kept call with `rk_reply_to`, `value` + 100. It
 * has no CPU side (the CPU backend fails its messages).
 *
 * @module
 */

import type { ActorDefinition, EchoFields } from "../../mod.ts";
import { defineGpuActor } from "../../cuda.ts";
import { EchoMessage } from "../../schemas.ts";

const SOURCE = `#include "ringkernel.cuh"
struct echo_msg { rk_u64 seq; double value; rk_u32 tag; };
struct held_call { rk_u64 correlation; };
__device__ rk_i32 deferring(const echo_msg& in, echo_msg& out, held_call& held,
                            rk_actor_ctx& ctx) {
  if (in.tag == 1u) {
    held.correlation = rk_defer(ctx);  // keep the call, answer it later
    return RK_HANDLED;
  }
  if (held.correlation == 0) return RK_REJECT;  // nothing to answer
  out = in;
  out.value = in.value + 100.0;
  const rk_u64 correlation = held.correlation;
  held.correlation = 0;
  return rk_reply_to(ctx, correlation);  // this reply answers the kept call
}
RK_DEFINE_STATEFUL_ACTOR(example_defer_pool, echo_msg, echo_msg, held_call, deferring)
`;

/** The deferring actor (GPU only). */
const deferringActor: ActorDefinition<EchoFields, EchoFields, unknown> =
  defineGpuActor({
    input: EchoMessage,
    output: EchoMessage,
    gpu: {
      source: { cuda: SOURCE, entry: "example_defer_pool", name: "defer.cu" },
      stateBytes: 8,
    },
  });
export default deferringActor;
