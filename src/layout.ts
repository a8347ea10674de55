/**
 * Binary layouts shared by the host and device code, declared once.
 *
 * `cuda/ringkernel.cuh` declares the same structs for device code; the layout
 * test compiles the header against these declarations and fails on any drift.
 *
 * @module
 */

/** Scalar field types that appear in shared layouts. */
export type FieldType = "u8" | "u16" | "i32" | "u32" | "i64" | "u64";

/** Size in bytes of each {@linkcode FieldType}. */
export const FIELD_SIZE: Readonly<Record<FieldType, number>> = {
  u8: 1,
  u16: 2,
  i32: 4,
  u32: 4,
  i64: 8,
  u64: 8,
};

/** One field of a {@linkcode StructLayout}. */
export interface FieldLayout {
  /** Byte offset from the start of the struct. */
  readonly offset: number;
  /** Scalar type (naturally aligned). */
  readonly type: FieldType;
  /** The field's name in `cuda/ringkernel.cuh`. */
  readonly cName: string;
}

/** A fixed binary struct shared with device code. */
export interface StructLayout<F extends string = string> {
  /** The struct's name in `cuda/ringkernel.cuh`. */
  readonly cName: string;
  /** Total size in bytes (a multiple of `align`). */
  readonly size: number;
  /** Required alignment in bytes. */
  readonly align: number;
  /** Fields by their TypeScript name. */
  readonly fields: { readonly [K in F]: FieldLayout };
}

function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
}

/**
 * Declares a struct layout and checks it: fields naturally aligned, inside the
 * struct, not overlapping. C field names are the snake_case of the TS names.
 */
export function defineLayout<F extends string>(
  cName: string,
  size: number,
  align: number,
  fields: { readonly [K in F]: readonly [offset: number, type: FieldType] },
): StructLayout<F> {
  if (size % align !== 0) {
    throw new RangeError(
      `${cName}: size ${size} is not a multiple of ${align}`,
    );
  }
  const out = {} as { [K in F]: FieldLayout };
  const spans: Array<[number, number, string]> = [];
  for (const key of Object.keys(fields) as F[]) {
    const [offset, type] = fields[key];
    const width = FIELD_SIZE[type];
    if (offset % width !== 0 || offset < 0 || offset + width > size) {
      throw new RangeError(`${cName}.${key}: bad offset ${offset} for ${type}`);
    }
    for (const [start, end, other] of spans) {
      if (offset < end && start < offset + width) {
        throw new RangeError(`${cName}.${key} overlaps ${other}`);
      }
    }
    spans.push([offset, offset + width, key]);
    out[key] = Object.freeze({ offset, type, cName: snakeCase(key) });
  }
  return Object.freeze({ cName, size, align, fields: Object.freeze(out) });
}

/** Version of the host/device ABI; stored in every control block. */
export const ABI_VERSION = 1;

/** Values of `ControlBlock.hasTerminated`. */
export const TerminationState: Readonly<
  { Running: 0; Terminated: 1; Relaunchable: 2 }
> = Object.freeze({
  /** The actor loop is running. */
  Running: 0,
  /** The actor loop exited and will not run again. */
  Terminated: 1,
  /** The actor loop exited and may be relaunched. */
  Relaunchable: 2,
});

/** Field names of the control block. */
export type ControlBlockField =
  | "isActive"
  | "shouldTerminate"
  | "hasTerminated"
  | "errorsEncountered"
  | "messagesProcessed"
  | "lastActivityTicks"
  | "inputQueueHeadPtr"
  | "inputQueueTailPtr"
  | "inputQueueBufferPtr"
  | "inputQueueCapacity"
  | "inputQueueMessageSize"
  | "outputQueueHeadPtr"
  | "outputQueueTailPtr"
  | "outputQueueBufferPtr"
  | "outputQueueCapacity"
  | "outputQueueMessageSize"
  | "abiVersion"
  | "actorId"
  | "shouldAbort"
  | "lastErrorCode"
  | "k2kReceived"
  | "pauseRequest"
  | "pauseAck";

/**
 * Per-actor control block (128 B, 128-aligned), in the seed's field order.
 * The host writes the flags; the actor writes counters and `hasTerminated`.
 */
export const CONTROL_BLOCK: StructLayout<ControlBlockField> = defineLayout(
  "rk_control_block",
  128,
  128,
  {
    isActive: [0, "i32"],
    shouldTerminate: [4, "i32"],
    hasTerminated: [8, "i32"],
    errorsEncountered: [12, "i32"],
    messagesProcessed: [16, "i64"],
    lastActivityTicks: [24, "i64"],
    inputQueueHeadPtr: [32, "u64"],
    inputQueueTailPtr: [40, "u64"],
    inputQueueBufferPtr: [48, "u64"],
    inputQueueCapacity: [56, "i32"],
    inputQueueMessageSize: [60, "i32"],
    outputQueueHeadPtr: [64, "u64"],
    outputQueueTailPtr: [72, "u64"],
    outputQueueBufferPtr: [80, "u64"],
    outputQueueCapacity: [88, "i32"],
    outputQueueMessageSize: [92, "i32"],
    abiVersion: [96, "u32"],
    actorId: [100, "u32"],
    shouldAbort: [104, "i32"],
    lastErrorCode: [108, "i32"],
    k2kReceived: [112, "i64"],
    pauseRequest: [120, "i32"],
    pauseAck: [124, "i32"],
  },
);

/** Field names of the telemetry buffer. */
export type TelemetryField =
  | "messagesProcessed"
  | "messagesDropped"
  | "lastProcessedTimestamp"
  | "queueDepth"
  | "totalLatencyNanos"
  | "maxLatencyNanos"
  | "minLatencyNanos"
  | "errorCode";

/** Per-actor telemetry (64 B, 64-aligned), in the seed's field order. */
export const TELEMETRY_BUFFER: StructLayout<TelemetryField> = defineLayout(
  "rk_telemetry",
  64,
  64,
  {
    messagesProcessed: [0, "u64"],
    messagesDropped: [8, "u64"],
    lastProcessedTimestamp: [16, "i64"],
    queueDepth: [24, "i32"],
    totalLatencyNanos: [32, "u64"],
    maxLatencyNanos: [40, "u64"],
    minLatencyNanos: [48, "u64"],
    errorCode: [56, "i32"],
  },
);

/** Bytes in one cache line as the queues use it (an H100/H200 L2 line is 128 B). */
export const QUEUE_LINE = 128;

/** Field names of the queue header. */
export type QueueHeaderField =
  | "head"
  | "tail"
  | "dropped"
  | "reserve"
  | "capacity"
  | "slotSize"
  | "kind"
  | "magic"
  | "doorbell"
  | "sleeping"
  | "roomBell"
  | "roomWaiting";

/**
 * Queue header (512 B). `head` is written only by the consumer and `tail` only
 * by the producer, each on its own 128-byte line; MPSC producers take tickets
 * from `reserve` on a third line; configuration and the two bells share the
 * fourth. `doorbell`/`sleeping` wake a consumer waiting for messages;
 * `roomBell`/`roomWaiting` wake producers waiting for room (`roomWaiting`
 * counts them; the consumer rings `roomBell` on release only while it is
 * non-zero). Slots follow the header.
 */
export const QUEUE_HEADER: StructLayout<QueueHeaderField> = defineLayout(
  "rk_queue_header",
  512,
  128,
  {
    head: [0, "u32"],
    tail: [128, "u32"],
    dropped: [132, "u32"],
    reserve: [256, "u32"],
    capacity: [384, "u32"],
    slotSize: [388, "u32"],
    kind: [392, "u32"],
    magic: [396, "u32"],
    doorbell: [400, "i32"],
    sleeping: [404, "i32"],
    roomBell: [408, "i32"],
    roomWaiting: [412, "i32"],
  },
);

/** `QUEUE_HEADER.magic` of an initialised queue ("RKQ1"). */
export const QUEUE_MAGIC = 0x31514b52;

/** `QUEUE_HEADER.kind` values. */
export const QueueKind: Readonly<{ Spsc: 1; Mpsc: 2 }> = Object.freeze({
  /** One producer, one consumer. */
  Spsc: 1,
  /** Many producers (ticketed), one consumer. */
  Mpsc: 2,
});

/** Field names of the envelope. */
export type EnvelopeField =
  | "typeId"
  | "payloadLength"
  | "flags"
  | "correlationId"
  | "timestamp"
  | "sourceActor"
  | "stamp";

/**
 * Envelope at the start of every slot (32 B). `stamp` is the MPSC publication
 * word: a producer writes it last, so a consumer never reads a half-written slot.
 */
export const ENVELOPE: StructLayout<EnvelopeField> = defineLayout(
  "rk_envelope",
  32,
  8,
  {
    typeId: [0, "u32"],
    payloadLength: [4, "u16"],
    flags: [6, "u16"],
    correlationId: [8, "u64"],
    timestamp: [16, "u64"],
    sourceActor: [24, "u32"],
    stamp: [28, "u32"],
  },
);

/** Slot sizes a queue may use; 64 B is the default. */
export const SLOT_TIERS: readonly number[] = Object.freeze([
  64,
  256,
  1024,
  4096,
]);

/** Every shared layout, for checks and header generation. */
export const ALL_LAYOUTS: readonly StructLayout[] = Object.freeze([
  CONTROL_BLOCK,
  TELEMETRY_BUFFER,
  QUEUE_HEADER,
  ENVELOPE,
]);
