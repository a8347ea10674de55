/**
 * Binary layouts and constants of the actor pool, declared once on the host
 * side; `cuda/ringkernel.cuh` declares the same (`rk_actor_desc`, `rk_route`,
 * `rk_route_table`, the `RK_*` constants), and a test compiles the header
 * against these declarations.
 *
 * @module
 */

import type { DeadLetterReason } from "../../dead_letter.ts";
import { defineLayout, type StructLayout } from "../../layout.ts";

/** Threads per block of every pool kernel. */
export const POOL_THREADS = 256;
/** Dynamic shared memory of every pool launch, in bytes. */
export const POOL_SHARED_BYTES = 36864;
/** Bytes of one staging buffer of a pool block. */
export const STAGE_BYTES = 16384;
/** Bytes of an actor's configuration area in its descriptor. */
export const ACTOR_CONFIG_BYTES = 128;
/** Entries a route table holds. */
export const MAX_ROUTES = 1024;
/** Slots of every actor's dead-letter queue. */
export const DEAD_LETTER_CAPACITY = 256;
/** Byte offset of the configuration area in a descriptor. */
export const ACTOR_CONFIG_OFFSET = 128;

/** The pool kernel of the built-in actors. */
export const BUILTIN_POOL_KERNEL = "rk_actor_pool";

/**
 * One actor of a pool launch (256 B, 128-aligned), host-written before the
 * launch; the configuration area (128 B at {@linkcode ACTOR_CONFIG_OFFSET})
 * follows the fields.
 */
export const ACTOR_DESC: StructLayout = defineLayout(
  "rk_actor_desc",
  256,
  128,
  {
    control: [0, "u64"],
    telemetry: [8, "u64"],
    input: [16, "u64"],
    output: [24, "u64"],
    inbox: [32, "u64"],
    deadLetters: [40, "u64"],
    k2kInbox: [48, "u64"],
    routes: [56, "u64"],
    state: [64, "u64"],
    stateBytes: [72, "u32"],
    kind: [76, "u32"],
    actorId: [80, "u32"],
    inputTypeId: [84, "u32"],
    inputSize: [88, "u32"],
    outputTypeId: [92, "u32"],
    outputSize: [96, "u32"],
    maxBatch: [100, "u32"],
    hostTimeNs: [104, "i64"],
    flags: [112, "u32"],
    abiVersion: [116, "u32"],
    io: [120, "u64"],
  },
);

/**
 * One route (32 B): an actor's name hash, K2K inbox, id, slot size, and the
 * type id and size of its input (what a device `rk_send` writes).
 */
export const ROUTE: StructLayout = defineLayout("rk_route", 32, 16, {
  nameHash: [0, "u64"],
  inbox: [8, "u64"],
  actorId: [16, "u32"],
  slotSize: [20, "u32"],
  inputTypeId: [24, "u32"],
  inputSize: [28, "u32"],
});

/**
 * The device API's block of one actor (64 B, mapped): the host writes the
 * outbox address and the clock bound before each launch; the actor stores
 * its send counters there (`rk_actor_io`).
 */
export const ACTOR_IO: StructLayout = defineLayout("rk_actor_io", 64, 64, {
  outbox: [0, "u64"],
  maxSkewMs: [8, "u32"],
  sent: [16, "u64"],
  published: [24, "u64"],
  full: [32, "u64"],
  unknown: [40, "u64"],
  refused: [48, "u64"],
});

/**
 * Header of the route table (128 B); {@linkcode MAX_ROUTES} entries follow.
 * `sequence` is a seqlock, odd while the host rewrites the table.
 */
export const ROUTE_TABLE: StructLayout = defineLayout(
  "rk_route_table",
  128,
  128,
  {
    sequence: [0, "u32"],
    count: [4, "u32"],
    capacity: [8, "u32"],
  },
);

/** Configuration of the forwarder and the generator (in the descriptor's configuration area). */
export const TARGET_CONFIG: StructLayout = defineLayout(
  "rk_target_config",
  8,
  8,
  {
    targetHash: [0, "u64"],
  },
);

/** Configuration of the reduction actor. */
export const REDUCE_CONFIG: StructLayout = defineLayout(
  "rk_reduce_config",
  16,
  8,
  {
    data: [0, "u64"],
    length: [8, "u32"],
  },
);

/** Every pool layout, for the header check. */
export const POOL_LAYOUTS: readonly StructLayout[] = Object.freeze([
  ACTOR_DESC,
  ROUTE,
  ACTOR_IO,
  ROUTE_TABLE,
  TARGET_CONFIG,
  REDUCE_CONFIG,
]);

/** Bytes of the route table: header and every entry. */
export const ROUTE_TABLE_BYTES: number = ROUTE_TABLE.size +
  MAX_ROUTES * ROUTE.size;

/** `rk_actor_desc.kind`: which handler a block of the built-in pool runs. */
export const ActorKind = Object.freeze({
  /** The kernel's own handler (a user pool kernel). */
  User: 0,
  /** Built-in echo. */
  Echo: 1,
  /** Built-in accumulator. */
  Accumulator: 2,
  /** Built-in saxpy. */
  Saxpy: 3,
  /** Built-in reduction. */
  Reduce: 4,
  /** Built-in forwarder (K2K). */
  Forwarder: 5,
  /** Built-in K2K generator (benchmarks). */
  K2kSource: 6,
  /** Built-in K2K counter (benchmarks). */
  K2kSink: 7,
});

/** A value of {@linkcode ActorKind}. */
export type ActorKindId = typeof ActorKind[keyof typeof ActorKind];

/** `rk_actor_desc.flags` bits. */
export const ActorFlag = Object.freeze({
  /** Run the actor's init on its state at start. */
  InitState: 1,
  /** Initialise the K2K inbox before opening it (its first start). */
  InitK2k: 2,
});

/** Error codes a device actor stores in `ControlBlock.lastErrorCode`. */
export const DeviceError = Object.freeze({
  /** No error. */
  None: 0,
  /** A queue header has the wrong magic. */
  BadQueueMagic: 1,
  /** A queue's capacity is not a power of two. */
  BadQueueCapacity: 2,
  /** A queue's slot size is not a tier or does not fit the messages. */
  BadSlotSize: 3,
  /** A queue's kind is not one the actor supports. */
  UnsupportedQueueKind: 4,
  /** The control block's ABI version differs from the kernel's. */
  AbiMismatch: 5,
  /** A message size differs from the handler's struct, or the state is too small. */
  SchemaMismatch: 6,
  /** The kernel does not implement the descriptor's actor kind. */
  UnknownActorKind: 7,
  /** A handler reported failure. */
  HandlerFailed: 8,
  /** The descriptor is malformed. */
  BadDescriptor: 9,
});

const DEVICE_ERROR_NAMES: Readonly<Record<number, string>> = Object.freeze(
  Object.fromEntries(
    Object.entries(DeviceError).map(([name, code]) => [code, name]),
  ),
);

/** The name of a device error code, e.g. `"SchemaMismatch"`; `"Error<code>"` when unknown. */
export function deviceErrorName(code: number): string {
  return DEVICE_ERROR_NAMES[code] ?? `Error${code}`;
}

/** The C macro of each device error code, e.g. `RK_ERROR_SCHEMA_MISMATCH`. */
export function deviceErrorMacro(name: keyof typeof DeviceError): string {
  return `RK_ERROR_${
    name.replace(/[A-Z]/g, (c, i) => (i === 0 ? c : "_" + c)).toUpperCase()
  }`;
}

/**
 * Envelope flag of an outbox slot that is a send to an actor the host serves
 * (`RK_OUTBOX_DIRECT`): its correlation id holds the target's name hash
 * rather than a topic's. The host clears it before delivery.
 */
export const OUTBOX_DIRECT_FLAG = 0x8000;

/** Dead-letter reason codes the device stores in a dead letter's stamp word. */
export const DeadLetterCode = Object.freeze({
  /** Unknown type id or wrong payload length. */
  InvalidMessage: 1,
  /** The handler failed on it. */
  HandlerError: 2,
  /** A K2K send named an actor without a route. */
  UnknownTarget: 3,
  /** Its HLC timestamp was further ahead of the actor's clock than the bound. */
  ClockSkew: 4,
});

/** What a device dead-letter code says, for the dead letter's detail. */
export function deadLetterDetailOf(code: number): string {
  switch (code) {
    case DeadLetterCode.InvalidMessage:
      return "invalid message (type id or payload length)";
    case DeadLetterCode.UnknownTarget:
      return "unknown-target";
    case DeadLetterCode.ClockSkew:
      return "clock-skew: its HLC timestamp is further ahead of the actor's clock than the bound";
    default:
      return "handler-error";
  }
}

/**
 * Results of the device API's `rk_send` and `rk_publish` (`RK_SEND_*` in
 * `ringkernel.cuh`): a send never waits, a full target is a result.
 */
export const SendResult = Object.freeze({
  /** Delivered. */
  Ok: 0,
  /** The target's queue (or the outbox) is full; nothing was sent. */
  Full: 1,
  /** No actor has that name, or there is no outbox. */
  Unknown: 2,
  /** The message does not fit the target's slots. */
  TooBig: 3,
  /** The message's size is not the target's input size (or the publisher's output size). */
  Mismatch: 4,
  /** The route table was being rewritten; nothing was sent. */
  Busy: 5,
});

/** The runtime's reason for a device dead-letter code. */
export function deadLetterReasonOf(code: number): DeadLetterReason {
  switch (code) {
    case DeadLetterCode.InvalidMessage:
    case DeadLetterCode.ClockSkew: // the host refuses such a reading too (ClockSkewError)
      return "invalid-message";
    case DeadLetterCode.UnknownTarget:
      return "unknown-target";
    default:
      return "handler-error";
  }
}
