/**
 * A global reduction across GPU blocks: a group of four actors, one block
 * each, reduces one buffer of a million values (sum, min, max, a range) with
 * no grid barrier: each block reduces its shard, and the last to arrive at
 * the group's counter combines the partials. Without CUDA (no GPU, and
 * `RINGKERNEL_LIBCUDA` not pointing at the CPU emulator of the driver) it
 * says so and runs the same group on the CPU backend, with the same results.
 *
 * Run: `deno run -A examples/gpu_reduce.ts` or `bun examples/gpu_reduce.ts`
 *
 * @module
 */

import {
  type BackendRequest,
  launchGridReduce,
  ReduceOp,
  RingKernel,
} from "../mod.ts";

/** What the example computed, for its test. */
export interface GpuReduceResult {
  /** The backend that ran it. */
  backend: string;
  /** Sum, min and max of the whole buffer, and the sum of a range. */
  sum: number;
  min: number;
  max: number;
  rangeSum: number;
  /** Values the whole-buffer reductions covered. */
  count: number;
}

/** Runs the example on `backend` (default `"auto"`). */
export async function main(
  backend: BackendRequest = "auto",
  length = 1 << 20,
): Promise<GpuReduceResult> {
  await using rt = await RingKernel.create({ backend, quiet: true });
  if (rt.backend !== "cuda") {
    console.log(
      "CUDA is unavailable (no GPU, and RINGKERNEL_LIBCUDA does not point at the emulator): " +
        "running the same group on the CPU backend",
    );
  }
  const grid = await launchGridReduce(rt, "stats", { members: 4, length });
  // Integer values: the sums are exact on every backend.
  grid.fill(Array.from({ length }, (_, i) => (i % 1000) - 500));
  const sum = await grid.reduce(ReduceOp.Sum);
  const min = await grid.reduce(ReduceOp.Min);
  const max = await grid.reduce(ReduceOp.Max);
  const range = await grid.reduce(ReduceOp.Sum, { offset: 250, count: 1000 });
  console.log(`backend: ${rt.backend}, ${grid.members.length} members`);
  console.log(`sum ${sum.value} over ${sum.count} values`);
  console.log(`min ${min.value}, max ${max.value}`);
  console.log(`sum of values 250..1249: ${range.value}`);
  return {
    backend: rt.backend,
    sum: sum.value,
    min: min.value,
    max: max.value,
    rangeSum: range.value,
    count: sum.count,
  };
}

if (import.meta.main) await main();
