/**
 * The `reduce` actor: keeps a buffer of single-precision values (from
 * `config.data`, or `config.length` zeros) and answers each
 * {@linkcode ReduceRequest} with the sum, min or max of a range of it. On the
 * CUDA backend the buffer lives in device memory and the whole thread block
 * reduces it; this module is also its CPU implementation.
 *
 * ```ts
 * import { RingKernel } from "../runtime.ts";
 * import { REDUCE_ACTOR_MODULE } from "./reduce.ts";
 * import { ReduceOp } from "./schemas.ts";
 *
 * await using rt = await RingKernel.create({ backend: "auto", quiet: true });
 * const sums = await rt.launch("sums", {
 *   actor: { module: REDUCE_ACTOR_MODULE },
 *   config: { data: [1, 2, 3] },
 * });
 * console.log(await sums.call({ op: ReduceOp.Sum, offset: 0, count: 3 }));
 * // { value: 6, count: 3, op: 0 }
 * ```
 *
 * Sums accumulate in double precision; the GPU adds in a different order, so
 * sums whose partial results round may differ in the last bits.
 *
 * @module
 */

import type { ActorDefinition } from "../actor.ts";
import { defineGpuActor } from "../backend/cuda/gpu_actor.ts";
import { REDUCE_CONFIG } from "../backend/cuda/pool_layout.ts";
import { RingKernelError } from "../errors.ts";
import { ReduceOp, ReduceRequest, ReduceResult } from "./schemas.ts";

/** URL of this module, for `runtime.launch(name, { actor: { module: REDUCE_ACTOR_MODULE } })`. */
export const REDUCE_ACTOR_MODULE: string = import.meta.url;

/** Largest buffer the reduce actor takes. */
export const MAX_REDUCE_LENGTH = 2 ** 28;

/**
 * The buffer of `config`: `{ data: ArrayLike<number> }` or `{ length }`
 * (zeros). Throws {@linkcode RingKernelError} for anything else.
 */
export function reduceBufferOf(config: unknown): Float32Array {
  const c = config as { data?: ArrayLike<number>; length?: number } | undefined;
  if (c?.data !== undefined) {
    const data = c.data;
    if (
      typeof data !== "object" || data === null ||
      !Number.isSafeInteger(data.length)
    ) {
      throw new RingKernelError(
        "reduce: config.data must be an array of numbers",
      );
    }
    if (data.length > MAX_REDUCE_LENGTH) {
      throw new RingKernelError(
        `reduce: config.data has more than ${MAX_REDUCE_LENGTH} values`,
      );
    }
    return Float32Array.from(data);
  }
  const length = c?.length ?? 0;
  if (
    !Number.isSafeInteger(length) || length < 0 || length > MAX_REDUCE_LENGTH
  ) {
    throw new RingKernelError(
      `reduce: config.length ${length} must be an integer in 0..${MAX_REDUCE_LENGTH}`,
    );
  }
  return new Float32Array(length);
}

/**
 * The GPU handler's configuration (`rk_reduce_config`): the device address
 * of the buffer and its number of values.
 */
function encodeReduceConfig(data: bigint, length: number): Uint8Array {
  const bytes = new Uint8Array(REDUCE_CONFIG.size);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(REDUCE_CONFIG.fields.data.offset, data, true);
  view.setUint32(REDUCE_CONFIG.fields.length.offset, length, true);
  return bytes;
}

/** The reduction the actor computes, on the CPU. */
export function reduceRange(
  data: Float32Array,
  op: number,
  offset: number,
  count: number,
): { value: number; count: number; op: number } {
  if (op !== ReduceOp.Sum && op !== ReduceOp.Min && op !== ReduceOp.Max) {
    throw new RingKernelError(`reduce: unknown op ${op}`);
  }
  const begin = Math.min(offset, data.length);
  const end = Math.min(begin + count, data.length);
  if (end <= begin) return { value: 0, count: 0, op };
  let acc = op === ReduceOp.Sum
    ? 0
    : op === ReduceOp.Min
    ? Infinity
    : -Infinity;
  for (let i = begin; i < end; i++) {
    const v = data[i];
    acc = op === ReduceOp.Sum
      ? acc + v
      : op === ReduceOp.Min
      ? Math.min(acc, v)
      : Math.max(acc, v);
  }
  return { value: acc, count: end - begin, op };
}

/** The `reduce` actor's definition. */
const reduce: ActorDefinition<
  typeof ReduceRequest.spec,
  typeof ReduceResult.spec,
  Float32Array
> = defineGpuActor({
  input: ReduceRequest,
  output: ReduceResult,
  init: ({ config }) => reduceBufferOf(config),
  handle: (message, ctx) =>
    reduceRange(ctx.state, message.op, message.offset, message.count),
  gpu: {
    source: { builtin: "reduce" },
    // The buffer goes to device memory; the handler finds it in its config.
    deviceData: (config) => {
      const data = reduceBufferOf(config);
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    },
    encodeConfig: (_config, { dataAddress, dataBytes }) =>
      encodeReduceConfig(
        dataAddress,
        dataBytes / Float32Array.BYTES_PER_ELEMENT,
      ),
  },
});
export default reduce;
