// Grid-scale reduction (src/actors/grid_reduce.ts): a group of members, one
// block each, reduce one shared buffer with a last-arrival counter instead of
// a grid barrier; the same group on the CPU backend (Workers over a
// SharedArrayBuffer) gives the same results. Checked against a plain
// TypeScript reference: exact for min, max and sums of integers, within
// rounding for sums of fractions. Also dispatch by key (src/keyed_group.ts)
// over a group of accumulators, on both backends. The CPU half always runs;
// the CUDA half is skipped without a GPU (gpu_gate.ts), and with
// RINGKERNEL_REQUIRE_GPU=1 runs and fails without one.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  gridShard,
  launchGridReduce,
  MAX_GRID_MEMBERS,
} from "../src/actors/grid_reduce.ts";
import { pollUntil } from "../src/async.ts";
import { ReduceOp } from "../src/actors/schemas.ts";
import type { BackendRequest } from "../src/backend/select.ts";
import { KeyedGroup, memberIndexForKey } from "../src/keyed_group.ts";
import { gpuTest } from "./gpu_gate.ts";
import { withRuntime } from "./helpers.ts";

/** The reference: op over values[from, to) in index order (0 when empty). */
function reference(
  values: ArrayLike<number>,
  op: number,
  from = 0,
  to = values.length,
): { value: number; count: number; op: number } {
  let acc = op === ReduceOp.Sum
    ? 0
    : op === ReduceOp.Min
    ? Infinity
    : -Infinity;
  for (let i = from; i < to; i++) {
    const v = values[i];
    acc = op === ReduceOp.Sum
      ? acc + v
      : op === ReduceOp.Min
      ? Math.min(acc, v)
      : Math.max(acc, v);
  }
  return { value: to > from ? acc : 0, count: Math.max(0, to - from), op };
}

interface Outcome {
  results: { value: number; count: number; op: number }[];
  fractions: number[];
  processed: number[];
  deadLetters: number;
}

/** The scenario, run on `backend`: integer sums, min/max, ranges, fractions, refill. */
async function scenario(backend: BackendRequest): Promise<Outcome> {
  return await withRuntime({ backend, quiet: true }, async (rt) => {
    const members = 5;
    const length = 10_007; // not a multiple of the members: uneven shards
    const grid = await launchGridReduce(rt, "grid", { members, length });
    const ints = Array.from(
      { length },
      (_, i) => ((i * 7919) % 2001) - 1000,
    );
    grid.fill(ints);
    const results = [];
    for (const op of [ReduceOp.Sum, ReduceOp.Min, ReduceOp.Max]) {
      const got = await grid.reduce(op, { timeoutMs: 30_000 });
      assert.deepEqual(got, reference(ints, op), `op ${op}`);
      results.push(got);
    }
    // A range inside one shard, one across shards, one past the end, an empty one.
    for (
      const [offset, count] of [[10, 50], [1_990, 4_100], [9_000, 5_000], [
        length,
        3,
      ]]
    ) {
      for (const op of [ReduceOp.Sum, ReduceOp.Max]) {
        const got = await grid.reduce(op, { offset, count, timeoutMs: 30_000 });
        const to = Math.min(offset + count, length);
        assert.deepEqual(
          got,
          reference(ints, op, offset, to),
          `${offset}+${count}`,
        );
        results.push(got);
      }
    }
    // Fractions: sums within rounding of the reference, min/max exact.
    const fractions = Float32Array.from(
      { length },
      (_, i) => Math.sin(i) * 1e3 + 0.125,
    );
    grid.fill(fractions);
    const sums = [];
    const sum = await grid.reduce(ReduceOp.Sum, { timeoutMs: 30_000 });
    const want = reference(fractions, ReduceOp.Sum);
    assert.equal(sum.count, length);
    assert.ok(
      Math.abs(sum.value - want.value) <= 1e-9 * length * 1e3,
      `sum ${sum.value} vs ${want.value}`,
    );
    sums.push(sum.value);
    for (const op of [ReduceOp.Min, ReduceOp.Max]) {
      const got = await grid.reduce(op, { timeoutMs: 30_000 });
      assert.deepEqual(got, reference(fractions, op));
      results.push(got);
    }
    // Concurrent requests are queued: each gets its own total.
    const queued = await Promise.all([
      grid.reduce(ReduceOp.Min),
      grid.reduce(ReduceOp.Max),
      grid.reduce(ReduceOp.Min, { offset: 100, count: 10 }),
    ]);
    assert.deepEqual(queued, [
      reference(fractions, ReduceOp.Min),
      reference(fractions, ReduceOp.Max),
      reference(fractions, ReduceOp.Min, 100, 110),
    ]);
    results.push(...queued);
    await assert.rejects(grid.reduce(7), RangeError);
    // A reply goes out before its message is counted (the commit publishes,
    // then counts): wait until every member has counted what it answered.
    await pollUntil(
      () => grid.members.every((k) => k.metrics().inFlight === 0),
      { timeoutMs: 10_000, what: "the members' counters" },
    );
    const processed = grid.members.map((k) => k.metrics().processed);
    return {
      results,
      fractions: sums,
      processed,
      deadLetters: rt.deadLetters.totalCount,
    };
  });
}

describe("grid reduce", () => {
  test("shards cover the buffer without overlap", () => {
    for (const members of [1, 3, 5, MAX_GRID_MEMBERS]) {
      for (const length of [0, 1, 7, 10_007]) {
        let next = 0;
        for (let m = 0; m < members; m++) {
          const { begin, end } = gridShard(m, members, length);
          assert.equal(begin, next);
          assert.ok(end >= begin);
          next = end;
        }
        assert.equal(next, length);
      }
    }
  });

  test("dispatch by key: stable, in range, spread", () => {
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 400; i++) {
      const m = memberIndexForKey(`sensor-${i}`, 4);
      assert.equal(m, memberIndexForKey(`sensor-${i}`, 4));
      counts[m]++;
    }
    for (const c of counts) assert.ok(c > 50, String(counts));
    assert.equal(memberIndexForKey(12, 3), memberIndexForKey("12", 3));
    assert.throws(() => memberIndexForKey("a", 0), RangeError);
  });

  test("CPU backend: the same group over a SharedArrayBuffer", async () => {
    const cpu = await scenario("cpu");
    assert.deepEqual(cpu.processed, Array(5).fill(cpu.results.length + 1));
    assert.equal(cpu.deadLetters, 0);
  });

  gpuTest(
    "CUDA backend: one pool kernel, the same results as the CPU backend",
    async () => {
      const gpu = await scenario("cuda");
      const cpu = await scenario("cpu");
      assert.deepEqual(gpu.results, cpu.results);
      assert.deepEqual(gpu.processed, cpu.processed);
      assert.equal(gpu.deadLetters, cpu.deadLetters);
      assert.ok(
        Math.abs(gpu.fractions[0] - cpu.fractions[0]) <= 1e-2,
        `${gpu.fractions[0]} vs ${cpu.fractions[0]}`,
      );
    },
  );
});

/** Keyed adds into a group of accumulators: each member's total is its keys' sum. */
async function keyedTotals(backend: BackendRequest): Promise<number[]> {
  return await withRuntime({ backend, quiet: true }, async (rt) => {
    const kernels = await rt.launchGroup(
      [0, 1, 2].map((i) => ({
        name: `totals-${i}`,
        options: { actor: "accumulator" as const },
      })),
    );
    const group = new KeyedGroup(kernels);
    const want = [0, 0, 0];
    for (let i = 0; i < 30; i++) {
      const key = `sensor-${i % 7}`;
      want[memberIndexForKey(key, 3)] += i;
      await group.call(key, { value: i } as never, { timeoutMs: 10_000 });
    }
    const totals = [];
    for (const k of kernels) {
      const reply = await k.call({ value: 0 } as never, { timeoutMs: 10_000 });
      totals.push((reply as unknown as { total: number }).total);
    }
    assert.deepEqual(totals, want);
    return totals;
  });
}

describe("dispatch by key over a group", () => {
  test("CPU backend", async () => {
    await keyedTotals("cpu");
  });
  gpuTest("CUDA backend: the same totals", async () => {
    assert.deepEqual(await keyedTotals("cuda"), await keyedTotals("cpu"));
  });
});
