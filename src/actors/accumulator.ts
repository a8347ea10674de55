/**
 * The built-in `accumulator` actor: a stateful actor that adds each value to a
 * running total and replies with the total and the count so far.
 *
 * @module
 */

import { type ActorDefinition, defineActor } from "../actor.ts";
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
> = defineActor({
  input: AccumulatorAdd,
  output: AccumulatorTotal,
  init: (): Totals => ({ total: 0, count: 0n }),
  handle: (message, ctx) => {
    ctx.state.total += message.value;
    ctx.state.count += 1n;
    return { total: ctx.state.total, count: ctx.state.count };
  },
});
export default accumulator;
