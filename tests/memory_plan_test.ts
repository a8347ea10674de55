// The actor memory planner both backends share, and the two plans made with it.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { planActorMemory } from "../src/backend/cpu/actor_memory.ts";
import { planGpuActorMemory } from "../src/backend/cuda/actor_block.ts";
import {
  alignUp,
  planActorBlock,
  planBlock,
} from "../src/backend/memory_plan.ts";
import { QUEUE_LINE } from "../src/layout.ts";
import { ringByteLength } from "../src/ring.ts";

describe("planBlock", () => {
  test("each part starts at the next multiple of its alignment", () => {
    assert.deepEqual(
      planBlock([
        { name: "a", bytes: 3, align: 1 },
        { name: "b", bytes: 8, align: 8 },
        { name: "c", bytes: 0, align: 64 },
        { name: "d", bytes: 1, align: 4 },
      ]),
      { a: 0, b: 8, c: 64, d: 64, byteLength: 65 },
    );
    assert.deepEqual(planBlock([]), { byteLength: 0 });
    assert.equal(alignUp(129, 128), 256);
    assert.equal(alignUp(256, 128), 256);
  });

  test("refuses bad sizes, alignments and repeated names", () => {
    assert.throws(
      () => planBlock([{ name: "a", bytes: -1, align: 1 }]),
      RangeError,
    );
    assert.throws(
      () => planBlock([{ name: "a", bytes: 1, align: 0 }]),
      RangeError,
    );
    assert.throws(
      () =>
        planBlock([
          { name: "a", bytes: 1, align: 1 },
          { name: "a", bytes: 1, align: 1 },
        ]),
      /named twice/,
    );
    assert.throws(
      () => planBlock([{ name: "byteLength", bytes: 1, align: 1 }]),
      /named twice/,
    );
  });
});

describe("actor blocks", () => {
  const queue = { queueCapacity: 16, outputCapacity: 16, slotSize: 64 };

  test("the CPU and GPU plans keep their layouts", () => {
    assert.deepEqual(planActorMemory(queue), {
      ...queue,
      control: 0,
      telemetry: 128,
      worker: 256,
      input: 384,
      inbox: 1920,
      output: 3456,
      byteLength: 4992,
    });
    assert.deepEqual(planGpuActorMemory(queue), {
      ...queue,
      control: 0,
      telemetry: 128,
      descriptor: 256,
      launch: 512,
      io: 576,
      input: 640,
      inbox: 2176,
      output: 3712,
      deadLetters: 5248,
      deadLetterCapacity: 256,
      outbox: 22144,
      byteLength: 23680,
      k2kBytes: 1536,
    });
  });

  test("both open with the header and hold the queues on queue lines", () => {
    for (const slotSize of [64, 256, 1024, 4096]) {
      for (
        const [queueCapacity, outputCapacity] of [[1, 1], [64, 4], [2, 1024]]
      ) {
        const options = { queueCapacity, outputCapacity, slotSize };
        const shared = planActorBlock(options, []);
        for (
          const plan of [planActorMemory(options), planGpuActorMemory(options)]
        ) {
          assert.equal(plan.control, shared.control);
          assert.equal(plan.telemetry, shared.telemetry);
          for (const ring of [plan.input, plan.inbox, plan.output]) {
            assert.equal(ring % QUEUE_LINE, 0);
          }
          const queueBytes = ringByteLength({
            capacity: queueCapacity,
            slotSize,
          });
          assert.ok(plan.inbox >= plan.input + queueBytes);
          assert.ok(plan.output >= plan.inbox + queueBytes);
          assert.ok(
            plan.byteLength >=
              plan.output +
                ringByteLength({ capacity: outputCapacity, slotSize }),
          );
        }
      }
    }
  });
});
