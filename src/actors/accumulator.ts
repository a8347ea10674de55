/**
 * The built-in `accumulator` actor: a stateful actor that adds each value to a
 * running total and replies with the total and the count so far. On the CUDA
 * backend it runs the bundle's `accumulator` handler, whose state (the total
 * and the count) lives in device memory.
 *
 * @module
 */

import type { ActorDefinition } from "../actor.ts";
import { defineGpuActor } from "../backend/cuda/gpu_actor.ts";
import { AccumulatorAdd, AccumulatorTotal } from "./schemas.ts";

interface Totals {
  total: number;
  count: bigint;
}

/** The `accumulator` actor's definition. */
const accumulator: ActorDefinition<
  typeof AccumulatorAdd.spec,
  typeof AccumulatorTotal.spec,
  Totals
> = defineGpuActor({
  input: AccumulatorAdd,
  output: AccumulatorTotal,
  init: (): Totals => ({ total: 0, count: 0n }),
  handle: (message, ctx) => {
    ctx.state.total += message.value;
    ctx.state.count += 1n;
    return { total: ctx.state.total, count: ctx.state.count };
  },
  // sizeof(rk_accumulator_state) in cuda/actor_pool.cu: a double and a u64.
  gpu: { source: { builtin: "accumulator" }, stateBytes: 16 },
});
export default accumulator;
