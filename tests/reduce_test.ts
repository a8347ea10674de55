// The reduce actor's CPU side and configuration
// (src/actors/reduce.ts); its GPU side runs in the GPU tests.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  MAX_REDUCE_LENGTH,
  REDUCE_ACTOR_MODULE,
  reduceBufferOf,
  reduceRange,
} from "../src/actors/reduce.ts";
import {
  ReduceOp,
  type ReduceRequest,
  type ReduceResult,
} from "../src/actors/schemas.ts";
import { RingKernelError } from "../src/errors.ts";
import { RingKernel } from "../src/runtime.ts";

describe("reduce actor (CPU side and configuration)", () => {
  test("sum, min and max over a clamped range", () => {
    const data = Float32Array.from([3, -1, 4, 1, 5, 9, 2, 6]);
    assert.deepEqual(reduceRange(data, ReduceOp.Sum, 0, 8), {
      value: 29,
      count: 8,
      op: 0,
    });
    assert.deepEqual(reduceRange(data, ReduceOp.Min, 2, 3), {
      value: 1,
      count: 3,
      op: 1,
    });
    assert.deepEqual(reduceRange(data, ReduceOp.Max, 6, 100), {
      value: 6,
      count: 2,
      op: 2,
    });
    assert.deepEqual(reduceRange(data, ReduceOp.Sum, 50, 1), {
      value: 0,
      count: 0,
      op: 0,
    });
    assert.throws(() => reduceRange(data, 7, 0, 1), /unknown op 7/);
  });

  test("its buffer comes from config.data or config.length", () => {
    assert.deepEqual(
      reduceBufferOf({ data: [1, 2] }),
      Float32Array.from([1, 2]),
    );
    assert.equal(reduceBufferOf({ length: 5 }).length, 5);
    assert.equal(reduceBufferOf(undefined).length, 0);
    assert.throws(
      () => reduceBufferOf({ length: MAX_REDUCE_LENGTH + 1 }),
      RingKernelError,
    );
    assert.throws(() => reduceBufferOf({ data: 5 }), RingKernelError);
  });

  test("runs as a CPU actor too", async () => {
    const rt = await RingKernel.create({ backend: "cpu", quiet: true });
    try {
      const reduce = await rt.launch<
        typeof ReduceRequest.spec,
        typeof ReduceResult.spec
      >("reduce", {
        actor: { module: REDUCE_ACTOR_MODULE },
        config: { data: [3, -1, 4, 1, 5] },
      });
      assert.deepEqual(
        await reduce.call({ op: ReduceOp.Max, offset: 1, count: 3 }, {
          timeoutMs: 10_000,
        }),
        {
          value: 4,
          count: 3,
          op: ReduceOp.Max,
        },
      );
    } finally {
      await rt.shutdown();
    }
  });
});
