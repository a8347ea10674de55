/**
 * Message schemas of the `reduce` actor: a reduction (sum, min or max) over a
 * range of the actor's buffer of single-precision values. The GPU actor in
 * the kernel bundle and the CPU actor (`reduce_actor.ts`) share them.
 *
 * @module
 */

import { defineMessage, type MessageSchema } from "../../message.ts";

/** Operations of {@linkcode ReduceRequest}. */
export const ReduceOp = Object.freeze({
  /** Sum of the range, accumulated in double precision. */
  Sum: 0,
  /** Smallest value of the range. */
  Min: 1,
  /** Largest value of the range. */
  Max: 2,
});

/** Input of the `reduce` actor: reduce `count` values from `offset` with `op`. */
export const ReduceRequest: MessageSchema<{
  readonly op: "u32";
  readonly offset: "u32";
  readonly count: "u32";
}> = defineMessage({
  name: "ringkernel.ReduceRequest",
  typeId: 0x524b0101,
  fields: { op: "u32", offset: "u32", count: "u32" },
});

/**
 * Reply of the `reduce` actor: the result, the number of values reduced (the
 * part of the range inside the buffer; 0 gives a value of 0), and the op.
 */
export const ReduceResult: MessageSchema<{
  readonly value: "f64";
  readonly count: "u32";
  readonly op: "u32";
}> = defineMessage({
  name: "ringkernel.ReduceResult",
  typeId: 0x524b0102,
  fields: { value: "f64", count: "u32", op: "u32" },
});
