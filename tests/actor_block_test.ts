// A GPU actor's memory block and descriptor (src/backend/cuda/actor_block.ts).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  initialiseActorBlock,
  planGpuActorMemory,
  readActorDescriptor,
  writeActorDescriptor,
} from "../src/backend/cuda/actor_block.ts";
import {
  ACTOR_CONFIG_BYTES,
  ActorFlag,
  ActorKind,
  DEAD_LETTER_CAPACITY,
} from "../src/backend/cuda/pool_layout.ts";
import {
  ABI_VERSION,
  CONTROL_BLOCK,
  QUEUE_LINE,
  TELEMETRY_BUFFER,
} from "../src/layout.ts";
import { Ring } from "../src/ring.ts";

describe("actor memory block", () => {
  const options = { queueCapacity: 64, outputCapacity: 32, slotSize: 256 };

  test("places every part aligned, in order, without overlap", () => {
    const plan = planGpuActorMemory(options);
    const parts = [
      [plan.control, CONTROL_BLOCK.size],
      [plan.telemetry, TELEMETRY_BUFFER.size],
      [plan.descriptor, 256],
      [plan.launch, 8],
      [plan.io, 64],
      [plan.input, 512 + 64 * 256],
      [plan.inbox, 512 + 64 * 256],
      [plan.output, 512 + 32 * 256],
      [plan.deadLetters, 512 + DEAD_LETTER_CAPACITY * 256],
      [plan.outbox, 512 + 32 * 256],
    ];
    for (let i = 1; i < parts.length; i++) {
      assert.ok(
        parts[i][0] >= parts[i - 1][0] + parts[i - 1][1],
        `part ${i} overlaps`,
      );
    }
    for (
      const offset of [
        plan.input,
        plan.inbox,
        plan.output,
        plan.deadLetters,
        plan.outbox,
        plan.descriptor,
      ]
    ) {
      assert.equal(offset % QUEUE_LINE, 0);
    }
    assert.equal(plan.io % 64, 0);
    assert.equal(plan.byteLength, plan.outbox + 512 + 32 * 256);
    assert.equal(plan.k2kBytes, 512 + 64 * 256);
  });

  test("initialises control block, telemetry and the four queues in any buffer", () => {
    const plan = planGpuActorMemory(options);
    const buffer = new ArrayBuffer(4096 + plan.byteLength);
    const views = initialiseActorBlock(buffer, 4096, plan, 7);
    assert.equal(views.control.abiVersion, ABI_VERSION);
    assert.equal(views.control.actorId, 7);
    assert.equal(views.telemetry.snapshot().minLatencyNanos, undefined);
    assert.equal(
      Ring.attach(buffer, { byteOffset: 4096 + plan.inbox }).kind,
      "mpsc",
    );
    assert.equal(
      Ring.attach(buffer, { byteOffset: 4096 + plan.deadLetters }).capacity,
      DEAD_LETTER_CAPACITY,
    );
    assert.equal(views.outputRing.capacity, 32);
    assert.equal(views.outboxRing.kind, "mpsc");
    assert.equal(views.outboxRing.capacity, 32);
    assert.throws(() => initialiseActorBlock(buffer, 100, plan, 1), RangeError);
  });

  test("a descriptor round-trips; bad fields are refused", () => {
    const view = new DataView(new ArrayBuffer(512));
    const fields = {
      control: 0x7000_0000_0000n,
      telemetry: 0x7000_0000_0080n,
      input: 1n,
      output: 2n,
      inbox: 3n,
      deadLetters: 4n,
      k2kInbox: 5n,
      routes: 6n,
      state: 7n,
      stateBytes: 16,
      kind: ActorKind.Accumulator,
      actorId: 9,
      inputTypeId: 0x524b0002,
      inputSize: 8,
      outputTypeId: 0x524b0003,
      outputSize: 16,
      maxBatch: 256,
      hostTimeNs: 1_700_000_000_000_000_000n,
      flags: ActorFlag.InitState | ActorFlag.InitK2k,
      abiVersion: ABI_VERSION,
      io: 0x7000_0000_0100n,
      config: new Uint8Array([1, 2, 3]),
    };
    writeActorDescriptor(view, 128, fields);
    const back = readActorDescriptor(view, 128);
    assert.deepEqual({ ...back, config: back.config.subarray(0, 3) }, fields);
    assert.equal(back.config.length, ACTOR_CONFIG_BYTES);
    assert.throws(
      () =>
        writeActorDescriptor(view, 0, {
          ...fields,
          config: new Uint8Array(129),
        }),
      RangeError,
    );
    assert.throws(
      () => writeActorDescriptor(view, 0, { ...fields, kind: -1 }),
      RangeError,
    );
  });
});
