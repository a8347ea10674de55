/**
 * An actor for the checkpoint example: adds up values and replies with the
 * running total and count, and can be checkpointed — `snapshot` turns its state into
 * bytes, `restore` turns them back (it runs instead of `init`).
 *
 * @module
 */

import {
  type AccumulatorAddFields,
  type AccumulatorTotalFields,
  type ActorDefinition,
  defineActor,
} from "../../mod.ts";
import { AccumulatorAdd, AccumulatorTotal } from "../../schemas.ts";

/** The counter actor. */
const counter: ActorDefinition<
  AccumulatorAddFields,
  AccumulatorTotalFields,
  { total: number; count: bigint }
> = defineActor({
  input: AccumulatorAdd,
  output: AccumulatorTotal,
  init: () => ({ total: 0, count: 0n }),
  snapshot: (state) => {
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    view.setFloat64(0, state.total, true);
    view.setBigUint64(8, state.count, true);
    return bytes;
  },
  restore: (bytes) => {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return {
      total: view.getFloat64(0, true),
      count: view.getBigUint64(8, true),
    };
  },
  handle: (message, ctx) => {
    ctx.state.total += message.value;
    ctx.state.count++;
    return { total: ctx.state.total, count: ctx.state.count };
  },
});
export default counter;
