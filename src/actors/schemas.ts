/**
 * Message schemas of the built-in actors. The CPU actors and the GPU actors in
 * the kernel bundle read and write exactly these layouts
 * (`src/backend/cuda/device_messages.ts` generates the device's structs from
 * them).
 *
 * @module
 */

import {
  array,
  type ArrayFieldSpec,
  defineMessage,
  type MessageSchema,
} from "../message.ts";

/** Fields of {@linkcode EchoMessage}. */
export type EchoFields = {
  /** Sequence number. */
  readonly seq: "u64";
  /** A value. */
  readonly value: "f64";
  /** A tag. */
  readonly tag: "u32";
};

/** Fields of {@linkcode AccumulatorAdd}. */
export type AccumulatorAddFields = {
  /** The value to add. */
  readonly value: "f64";
};

/** Fields of {@linkcode AccumulatorTotal}. */
export type AccumulatorTotalFields = {
  /** The running total. */
  readonly total: "f64";
  /** How many values were added. */
  readonly count: "u64";
};

/** Fields of {@linkcode SaxpyRequest}. */
export type SaxpyRequestFields = {
  /** The scalar. */
  readonly a: "f32";
  /** The x vector. */
  readonly x: ArrayFieldSpec<"f32">;
  /** The y vector. */
  readonly y: ArrayFieldSpec<"f32">;
};

/** Fields of {@linkcode SaxpyResult}. */
export type SaxpyResultFields = {
  /** `a * x + y`. */
  readonly out: ArrayFieldSpec<"f32">;
};

/** Request and reply of the `echo` actor: the reply is the request, unchanged. */
export const EchoMessage: MessageSchema<EchoFields> = defineMessage({
  name: "ringkernel.Echo",
  typeId: 0x524b0001,
  fields: { seq: "u64", value: "f64", tag: "u32" },
});

/** Input of the `accumulator` actor: a value to add to its running total. */
export const AccumulatorAdd: MessageSchema<AccumulatorAddFields> =
  defineMessage({
    name: "ringkernel.AccumulatorAdd",
    typeId: 0x524b0002,
    fields: { value: "f64" },
  });

/** Reply of the `accumulator` actor: the running total after each add. */
export const AccumulatorTotal: MessageSchema<AccumulatorTotalFields> =
  defineMessage({
    name: "ringkernel.AccumulatorTotal",
    typeId: 0x524b0003,
    fields: { total: "f64", count: "u64" },
  });

/** Length of the vectors carried by {@linkcode SaxpyRequest}. */
export const SAXPY_LANES = 16;

/** Input of the `saxpy` actor: computes `a * x + y` over `SAXPY_LANES` lanes (needs 256-byte slots). */
export const SaxpyRequest: MessageSchema<SaxpyRequestFields> = defineMessage({
  name: "ringkernel.SaxpyRequest",
  typeId: 0x524b0004,
  fields: {
    a: "f32",
    x: array("f32", SAXPY_LANES),
    y: array("f32", SAXPY_LANES),
  },
});

/** Reply of the `saxpy` actor. */
export const SaxpyResult: MessageSchema<SaxpyResultFields> = defineMessage({
  name: "ringkernel.SaxpyResult",
  typeId: 0x524b0005,
  fields: { out: array("f32", SAXPY_LANES) },
});

/** Operations of {@linkcode ReduceRequest}. */
export const ReduceOp: Readonly<{ Sum: 0; Min: 1; Max: 2 }> = Object.freeze({
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
