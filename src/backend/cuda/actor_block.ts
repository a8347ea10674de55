/**
 * The memory of one GPU actor: a block of pinned mapped host memory (control
 * block, telemetry, pool descriptor, launch table, and the host input, host
 * inbox, reply and dead-letter queues) and a block of device memory (the K2K
 * inbox and the actor's state). Host and device find everything through the
 * descriptor, which this module writes.
 *
 * @module
 */

import { ControlBlockView } from "../../control_block.ts";
import { ABI_VERSION, QUEUE_LINE } from "../../layout.ts";
import { Ring, ringByteLength } from "../../ring.ts";
import { TelemetryView } from "../../telemetry.ts";
import {
  type ActorQueueOptions,
  planActorBlock,
  queuePart,
} from "../memory_plan.ts";
import {
  ACTOR_CONFIG_BYTES,
  ACTOR_CONFIG_OFFSET,
  ACTOR_DESC,
  ACTOR_IO,
  DEAD_LETTER_CAPACITY,
} from "./pool_layout.ts";

/** Byte offsets of every part of a GPU actor's mapped block. */
export interface GpuActorMemoryPlan extends ActorQueueOptions {
  /** Control block. */
  readonly control: number;
  /** Telemetry. */
  readonly telemetry: number;
  /** Pool descriptor. */
  readonly descriptor: number;
  /** Launch table of a pool of one: one u64, the descriptor's device address. */
  readonly launch: number;
  /** The device API's block (`rk_actor_io`): outbox address, clock bound, send counters. */
  readonly io: number;
  /** Host → actor queue (SPSC). */
  readonly input: number;
  /** Host inbox for topic deliveries (MPSC). */
  readonly inbox: number;
  /** Actor → host reply queue (SPSC). */
  readonly output: number;
  /** Actor → host dead-letter queue (SPSC). */
  readonly deadLetters: number;
  /** Slots of the dead-letter queue. */
  readonly deadLetterCapacity: number;
  /** Actor → host outbox (MPSC, one producer block): device publications. */
  readonly outbox: number;
  /** Total bytes of the mapped block. */
  readonly byteLength: number;
  /** Bytes of the K2K inbox (device memory). */
  readonly k2kBytes: number;
}

/** Lays out a GPU actor's mapped block (offsets from its start, which must be 128-aligned). */
export function planGpuActorMemory(
  options: ActorQueueOptions,
): GpuActorMemoryPlan {
  const { queueCapacity, slotSize } = options;
  const before = [
    { name: "descriptor", bytes: ACTOR_DESC.size, align: ACTOR_DESC.align },
    // The launch table of a pool of one: one u64.
    { name: "launch", bytes: 8, align: QUEUE_LINE },
    { name: "io", bytes: ACTOR_IO.size, align: ACTOR_IO.align },
  ] as const;
  const after = [
    queuePart("deadLetters", DEAD_LETTER_CAPACITY, slotSize),
    queuePart("outbox", options.outputCapacity, slotSize),
  ];
  return Object.freeze({
    ...planActorBlock(options, before, after),
    deadLetterCapacity: DEAD_LETTER_CAPACITY,
    k2kBytes: ringByteLength({ capacity: queueCapacity, slotSize }),
  });
}

/** The host's views of an initialised actor block. */
export interface GpuActorViews {
  /** Control block. */
  readonly control: ControlBlockView;
  /** Telemetry. */
  readonly telemetry: TelemetryView;
  /** Host → actor queue. */
  readonly inputRing: Ring;
  /** Host inbox (topic deliveries). */
  readonly inboxRing: Ring;
  /** Reply queue. */
  readonly outputRing: Ring;
  /** Dead-letter queue. */
  readonly deadLetterRing: Ring;
  /** Outbox (device publications). */
  readonly outboxRing: Ring;
}

/**
 * Initialises an actor block at `byteOffset` of `buffer` (any ArrayBuffer:
 * mapped memory, or a plain one in tests): control block, telemetry and the
 * four queues. The descriptor is written separately, before each launch.
 */
export function initialiseActorBlock(
  buffer: ArrayBuffer,
  byteOffset: number,
  plan: GpuActorMemoryPlan,
  actorId: number,
): GpuActorViews {
  if (byteOffset % QUEUE_LINE !== 0) {
    throw new RangeError(
      `actor block offset ${byteOffset} is not ${QUEUE_LINE}-aligned`,
    );
  }
  const control = new ControlBlockView(buffer, byteOffset + plan.control);
  control.initialise({ abiVersion: ABI_VERSION, actorId });
  const telemetry = new TelemetryView(buffer, {
    byteOffset: byteOffset + plan.telemetry,
  });
  telemetry.reset();
  new Uint8Array(
    buffer,
    byteOffset + plan.descriptor,
    plan.input - plan.descriptor,
  )
    .fill(0);
  const ring = (offset: number, capacity: number, kind: "spsc" | "mpsc") =>
    Ring.create(buffer, {
      byteOffset: byteOffset + offset,
      capacity,
      slotSize: plan.slotSize,
      kind,
    });
  return {
    control,
    telemetry,
    inputRing: ring(plan.input, plan.queueCapacity, "spsc"),
    inboxRing: ring(plan.inbox, plan.queueCapacity, "mpsc"),
    outputRing: ring(plan.output, plan.outputCapacity, "spsc"),
    deadLetterRing: ring(plan.deadLetters, plan.deadLetterCapacity, "spsc"),
    outboxRing: ring(plan.outbox, plan.outputCapacity, "mpsc"),
  };
}

/** Every field of a descriptor, as the host writes it. */
export interface ActorDescriptorFields {
  /** Device address of the control block. */
  readonly control: bigint;
  /** Device address of the telemetry. */
  readonly telemetry: bigint;
  /** Device address of the input queue. */
  readonly input: bigint;
  /** Device address of the reply queue. */
  readonly output: bigint;
  /** Device address of the host inbox (0n: none). */
  readonly inbox: bigint;
  /** Device address of the dead-letter queue. */
  readonly deadLetters: bigint;
  /** Device address of the K2K inbox (0n: none). */
  readonly k2kInbox: bigint;
  /** Device address of the route table (0n: none). */
  readonly routes: bigint;
  /** Device address of the state (0n: none). */
  readonly state: bigint;
  /** Bytes of state. */
  readonly stateBytes: number;
  /** Actor kind (`ActorKind`). */
  readonly kind: number;
  /** Actor id. */
  readonly actorId: number;
  /** Type id of the input schema. */
  readonly inputTypeId: number;
  /** Payload bytes of the input schema. */
  readonly inputSize: number;
  /** Type id of the reply schema (0: none). */
  readonly outputTypeId: number;
  /** Payload bytes of the reply schema. */
  readonly outputSize: number;
  /** Most messages per poll (0: the device default). */
  readonly maxBatch: number;
  /** The host's Unix time in ns at launch (the device clock's origin). */
  readonly hostTimeNs: bigint;
  /** `ActorFlag` bits. */
  readonly flags: number;
  /** ABI version. */
  readonly abiVersion: number;
  /** Device address of the device API's block (`rk_actor_io`; 0n or absent: none). */
  readonly io?: bigint;
  /** Configuration bytes (at most 128). */
  readonly config: Uint8Array;
}

const D = ACTOR_DESC.fields;

/** Writes a descriptor at `offset` of `view` (the configuration area is zero-padded). */
export function writeActorDescriptor(
  view: DataView,
  offset: number,
  fields: ActorDescriptorFields,
): void {
  if (fields.config.byteLength > ACTOR_CONFIG_BYTES) {
    throw new RangeError(
      `actor configuration of ${fields.config.byteLength} bytes exceeds ${ACTOR_CONFIG_BYTES}`,
    );
  }
  const u64 = (field: keyof typeof D, value: bigint) =>
    view.setBigUint64(
      offset + D[field].offset,
      BigInt.asUintN(64, value),
      true,
    );
  const u32 = (field: keyof typeof D, value: number) => {
    if ((value >>> 0) !== value) {
      throw new RangeError(`descriptor ${field} ${value} is not a u32`);
    }
    view.setUint32(offset + D[field].offset, value, true);
  };
  u64("control", fields.control);
  u64("telemetry", fields.telemetry);
  u64("input", fields.input);
  u64("output", fields.output);
  u64("inbox", fields.inbox);
  u64("deadLetters", fields.deadLetters);
  u64("k2kInbox", fields.k2kInbox);
  u64("routes", fields.routes);
  u64("state", fields.state);
  u32("stateBytes", fields.stateBytes);
  u32("kind", fields.kind);
  u32("actorId", fields.actorId);
  u32("inputTypeId", fields.inputTypeId);
  u32("inputSize", fields.inputSize);
  u32("outputTypeId", fields.outputTypeId);
  u32("outputSize", fields.outputSize);
  u32("maxBatch", fields.maxBatch);
  view.setBigInt64(offset + D.hostTimeNs.offset, fields.hostTimeNs, true);
  u32("flags", fields.flags);
  u32("abiVersion", fields.abiVersion);
  u64("io", fields.io ?? 0n);
  const config = new Uint8Array(
    view.buffer,
    view.byteOffset + offset + ACTOR_CONFIG_OFFSET,
    ACTOR_CONFIG_BYTES,
  );
  config.fill(0);
  config.set(fields.config);
}

/** Reads a descriptor back (tests, diagnostics). */
export function readActorDescriptor(
  view: DataView,
  offset: number,
): ActorDescriptorFields {
  const u64 = (field: keyof typeof D) =>
    view.getBigUint64(offset + D[field].offset, true);
  const u32 = (field: keyof typeof D) =>
    view.getUint32(offset + D[field].offset, true);
  return {
    control: u64("control"),
    telemetry: u64("telemetry"),
    input: u64("input"),
    output: u64("output"),
    inbox: u64("inbox"),
    deadLetters: u64("deadLetters"),
    k2kInbox: u64("k2kInbox"),
    routes: u64("routes"),
    state: u64("state"),
    stateBytes: u32("stateBytes"),
    kind: u32("kind"),
    actorId: u32("actorId"),
    inputTypeId: u32("inputTypeId"),
    inputSize: u32("inputSize"),
    outputTypeId: u32("outputTypeId"),
    outputSize: u32("outputSize"),
    maxBatch: u32("maxBatch"),
    hostTimeNs: view.getBigInt64(offset + D.hostTimeNs.offset, true),
    flags: u32("flags"),
    abiVersion: u32("abiVersion"),
    io: u64("io"),
    config: new Uint8Array(
      view.buffer.slice(
        view.byteOffset + offset + ACTOR_CONFIG_OFFSET,
        view.byteOffset + offset + ACTOR_CONFIG_OFFSET + ACTOR_CONFIG_BYTES,
      ),
    ),
  };
}
