/**
 * Per-actor telemetry over the 64-byte {@linkcode TELEMETRY_BUFFER} layout.
 *
 * The buffer has a single writer (the actor: a Worker of the CPU backend, or
 * a GPU block) and any number of readers (the host, other threads). Every
 * field is read and written with `Atomics` on a view of its own width, so a
 * reader never sees a torn 64-bit value, on a `SharedArrayBuffer` or on
 * mapped memory alike. A snapshot reads the fields one by one: each field is
 * exact, but a writer may update some fields between two reads.
 *
 * The writing view keeps its own copies of the counters it updates, read from
 * the block at its first write (or set by `reset`), so only one view may
 * write a block at a time: a new writer (say, after an actor restarts) takes
 * over where the old one stopped, but two writing at once lose updates.
 *
 * Unit and representation choices:
 * - Latencies are nanoseconds. `minLatencyNanos` is stored as 2^64 - 1 while
 *   no latency has been recorded, and reported as `undefined`.
 * - `lastProcessedTimestamp` is nanoseconds since the Unix epoch (0 until the
 *   first message), kept as a `bigint` because it exceeds 2^53.
 * - The other 64-bit counters are reported as `number`: exact up to 2^53 - 1
 *   (over 100 days at a billion messages a second), rounded beyond.
 *
 * @module
 */

import { RingKernelError } from "./errors.ts";
import {
  FIELD_SIZE,
  type FieldLayout,
  type FieldType,
  TELEMETRY_BUFFER,
} from "./layout.ts";

/** `minLatencyNanos` while no latency has been recorded (u64 max). */
export const TELEMETRY_MIN_LATENCY_UNSET = 0xffff_ffff_ffff_ffffn;

const FIELDS = TELEMETRY_BUFFER.fields;
const WORDS64 = TELEMETRY_BUFFER.size / 8;
const WORDS32 = TELEMETRY_BUFFER.size / 4;

/** Element index of `field` in a view whose elements are as wide as the field. */
function indexOf(field: FieldLayout, expected: readonly FieldType[]): number {
  if (!expected.includes(field.type)) {
    throw new RingKernelError(
      `TELEMETRY_BUFFER.${field.cName} is ${field.type}, expected ${
        expected.join(" or ")
      }`,
    );
  }
  return field.offset / FIELD_SIZE[field.type];
}

const PROCESSED = indexOf(FIELDS.messagesProcessed, ["u64"]);
const DROPPED = indexOf(FIELDS.messagesDropped, ["u64"]);
const LAST_TIMESTAMP = indexOf(FIELDS.lastProcessedTimestamp, ["i64"]);
const QUEUE_DEPTH = indexOf(FIELDS.queueDepth, ["i32"]);
const TOTAL_LATENCY = indexOf(FIELDS.totalLatencyNanos, ["u64"]);
const MAX_LATENCY = indexOf(FIELDS.maxLatencyNanos, ["u64"]);
const MIN_LATENCY = indexOf(FIELDS.minLatencyNanos, ["u64"]);
const ERROR_CODE = indexOf(FIELDS.errorCode, ["i32"]);

/** What a reader sees; field names follow {@linkcode TELEMETRY_BUFFER}. */
export interface TelemetrySnapshot {
  /** Messages processed (exact below 2^53). */
  messagesProcessed: number;
  /** Messages dropped (exact below 2^53). */
  messagesDropped: number;
  /** When the last message was processed, ns since the Unix epoch; 0n if never. */
  lastProcessedTimestamp: bigint;
  /** Messages waiting in the input queue, as last reported. */
  queueDepth: number;
  /** Sum of the recorded latencies, ns (exact below 2^53). */
  totalLatencyNanos: number;
  /** Largest recorded latency, ns; 0 if none. */
  maxLatencyNanos: number;
  /** Smallest recorded latency, ns; `undefined` if none. */
  minLatencyNanos: number | undefined;
  /** Last error code set by the actor; 0 means none. */
  errorCode: number;
}

/** Latencies of a batch, for {@linkcode TelemetryView.recordProcessed}. */
export interface ProcessedBatch {
  /**
   * Sum of the batch's latencies, ns. Omit it when latencies are not measured:
   * then only the counters and the timestamp change.
   */
  totalLatencyNs?: number;
  /** Smallest latency in the batch, ns. Default: the batch's mean. */
  minLatencyNs?: number;
  /** Largest latency in the batch, ns. Default: the batch's mean. */
  maxLatencyNs?: number;
  /** When the batch finished, ns since the Unix epoch. Default: the view's clock. */
  timestampNs?: bigint;
}

/** Options of the {@linkcode TelemetryView} constructor. */
export interface TelemetryViewOptions {
  /**
   * Byte offset of the telemetry block in the buffer; a multiple of
   * `TELEMETRY_BUFFER.align` (64). Default 0.
   */
  byteOffset?: number;
  /** Clock for timestamps, ns since the Unix epoch. Default: `performance`. */
  clock?: () => bigint;
}

/** Nanoseconds since the Unix epoch, from the high-resolution clock. */
function epochNanos(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}

function checkCount(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RingKernelError(
      `${what} must be a non-negative integer, got ${n}`,
    );
  }
}

/** `ns` rounded to whole nanoseconds, after checking it. */
function nanos(what: string, ns: number): number {
  if (typeof ns !== "number" || !(ns >= 0 && ns <= Number.MAX_SAFE_INTEGER)) {
    throw new RingKernelError(
      `${what} must be a non-negative number of ns, got ${ns}`,
    );
  }
  return Math.round(ns);
}

/**
 * The single writer's own copies of the 64-bit counters it updates, so an
 * update is a few stores rather than BigInt loads, compares and stores.
 */
interface WriterShadow {
  processed: number;
  total: number;
  /** Infinity while no latency has been recorded. */
  min: number;
  max: number;
}

/**
 * Reads and writes one {@linkcode TELEMETRY_BUFFER} block. Writer methods
 * belong to the actor that owns the block; {@linkcode TelemetryView.snapshot}
 * may be called from anywhere.
 */
export class TelemetryView {
  /** The buffer holding the block. */
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  /** Where the block starts in {@linkcode TelemetryView.buffer}. */
  readonly byteOffset: number;
  readonly #u64: BigUint64Array;
  readonly #i64: BigInt64Array;
  readonly #i32: Int32Array;
  readonly #clock: () => bigint;
  #shadow: WriterShadow | undefined = undefined;

  /**
   * Views the block at `options.byteOffset` of `buffer`, leaving its contents
   * as they are (call {@linkcode TelemetryView.reset} on a fresh block).
   *
   * @throws {RingKernelError} when the block is misaligned or out of bounds.
   */
  constructor(
    buffer: ArrayBuffer | SharedArrayBuffer,
    options: TelemetryViewOptions = {},
  ) {
    const byteOffset = options.byteOffset ?? 0;
    if (
      !(buffer instanceof ArrayBuffer) &&
      !(typeof SharedArrayBuffer !== "undefined" &&
        buffer instanceof SharedArrayBuffer)
    ) {
      throw new RingKernelError(
        "telemetry needs an ArrayBuffer or a SharedArrayBuffer",
      );
    }
    if (
      !Number.isSafeInteger(byteOffset) || byteOffset < 0 ||
      byteOffset % TELEMETRY_BUFFER.align !== 0
    ) {
      throw new RingKernelError(
        `telemetry byteOffset must be a non-negative multiple of ${TELEMETRY_BUFFER.align}, got ${byteOffset}`,
      );
    }
    if (byteOffset + TELEMETRY_BUFFER.size > buffer.byteLength) {
      throw new RingKernelError(
        `telemetry block at ${byteOffset} (${TELEMETRY_BUFFER.size} B) ` +
          `does not fit a buffer of ${buffer.byteLength} B`,
      );
    }
    this.buffer = buffer;
    this.byteOffset = byteOffset;
    this.#u64 = new BigUint64Array(buffer, byteOffset, WORDS64);
    this.#i64 = new BigInt64Array(buffer, byteOffset, WORDS64);
    this.#i32 = new Int32Array(buffer, byteOffset, WORDS32);
    this.#clock = options.clock ?? epochNanos;
  }

  /**
   * A fresh, reset block in a buffer of its own (shared by default, so it can
   * be handed to a Worker).
   */
  static create(
    options: { shared?: boolean; clock?: () => bigint } = {},
  ): TelemetryView {
    const size = TELEMETRY_BUFFER.size;
    const buffer = options.shared === false
      ? new ArrayBuffer(size)
      : new SharedArrayBuffer(size);
    const view = new TelemetryView(buffer, { clock: options.clock });
    view.reset();
    return view;
  }

  /** Zeroes every field and marks the minimum latency unset. Writer only. */
  reset(): void {
    for (let i = 0; i < WORDS64; i++) Atomics.store(this.#u64, i, 0n);
    Atomics.store(this.#u64, MIN_LATENCY, TELEMETRY_MIN_LATENCY_UNSET);
    this.#shadow = { processed: 0, total: 0, min: Infinity, max: 0 };
  }

  /** The writer's copies of the counters, read from the block on first use. */
  #loadShadow(): WriterShadow {
    const u64 = this.#u64;
    const processed = Number(Atomics.load(u64, PROCESSED));
    const min = Atomics.load(u64, MIN_LATENCY);
    // A block that was zeroed but never reset reads min 0 with nothing
    // processed: it has no minimum yet.
    const unset = processed === 0 || min === TELEMETRY_MIN_LATENCY_UNSET;
    this.#shadow = {
      processed,
      total: Number(Atomics.load(u64, TOTAL_LATENCY)),
      min: unset ? Infinity : Number(min),
      max: processed === 0 ? 0 : Number(Atomics.load(u64, MAX_LATENCY)),
    };
    return this.#shadow;
  }

  /**
   * Counts `count` processed messages, adds their latencies when given, and
   * stamps the time. Writer only.
   *
   * @throws {RingKernelError} on a negative or non-integer count or a bad
   * latency (nothing is changed).
   */
  recordProcessed(count: number, batch?: ProcessedBatch): void {
    this.#record(
      count,
      batch?.totalLatencyNs,
      batch?.minLatencyNs,
      batch?.maxLatencyNs,
      batch?.timestampNs,
    );
  }

  /**
   * Counts one processed message that took `latencyNs`. Writer only.
   *
   * @throws {RingKernelError} on a bad latency (nothing is changed).
   */
  recordMessage(latencyNs: number): void {
    this.#record(1, latencyNs, latencyNs, latencyNs, undefined);
  }

  #record(
    count: number,
    totalNs: number | undefined,
    minNs: number | undefined,
    maxNs: number | undefined,
    timestampNs: bigint | undefined,
  ): void {
    checkCount("processed count", count);
    if (count === 0) return;
    const timestamp = timestampNs ?? this.#clock();
    if (typeof timestamp !== "bigint") {
      throw new RingKernelError(
        `timestampNs must be a bigint, got ${typeof timestamp}`,
      );
    }
    const u64 = this.#u64;
    const shadow = this.#shadow ?? this.#loadShadow();
    if (totalNs !== undefined) {
      // Check everything before the first store, so bad input changes nothing.
      const total = nanos("totalLatencyNs", totalNs);
      const mean = totalNs / count;
      const min = nanos("minLatencyNs", minNs ?? mean);
      const max = nanos("maxLatencyNs", maxNs ?? mean);
      shadow.total += total;
      Atomics.store(u64, TOTAL_LATENCY, BigInt(shadow.total));
      if (min < shadow.min) {
        shadow.min = min;
        Atomics.store(u64, MIN_LATENCY, BigInt(min));
      }
      if (max > shadow.max) {
        shadow.max = max;
        Atomics.store(u64, MAX_LATENCY, BigInt(max));
      }
    }
    shadow.processed += count;
    Atomics.store(u64, PROCESSED, BigInt(shadow.processed));
    Atomics.store(this.#i64, LAST_TIMESTAMP, timestamp);
  }

  /**
   * The low 32 bits of the dropped counter (one i32 load, little-endian):
   * enough to tell whether it moved past a value read moments before.
   */
  get messagesDroppedLow(): number {
    return Atomics.load(this.#i32, DROPPED * 2) >>> 0;
  }

  /**
   * Counts `count` dropped messages. Writer only.
   *
   * @throws {RingKernelError} on a negative or non-integer count.
   */
  recordDropped(count: number): void {
    checkCount("dropped count", count);
    if (count !== 0) Atomics.add(this.#u64, DROPPED, BigInt(count));
  }

  /**
   * Reports how many messages wait in the input queue. Writer only.
   *
   * @throws {RingKernelError} unless `depth` is an integer in [0, 2^31).
   */
  setQueueDepth(depth: number): void {
    if (!Number.isInteger(depth) || depth < 0 || depth > 0x7fff_ffff) {
      throw new RingKernelError(
        `queue depth must be an integer in [0, 2^31), got ${depth}`,
      );
    }
    Atomics.store(this.#i32, QUEUE_DEPTH, depth);
  }

  /**
   * Sets the actor's error code (0 clears it). Writer only.
   *
   * @throws {RingKernelError} unless `code` is a 32-bit signed integer.
   */
  setErrorCode(code: number): void {
    if (!Number.isInteger(code) || code < -0x8000_0000 || code > 0x7fff_ffff) {
      throw new RingKernelError(
        `error code must be a 32-bit signed integer, got ${code}`,
      );
    }
    Atomics.store(this.#i32, ERROR_CODE, code);
  }

  /** Reads every field (each one atomically). Safe from any thread. */
  snapshot(): TelemetrySnapshot {
    const u64 = this.#u64;
    const min = Atomics.load(u64, MIN_LATENCY);
    const processed = Atomics.load(u64, PROCESSED);
    return {
      messagesProcessed: Number(processed),
      messagesDropped: Number(Atomics.load(u64, DROPPED)),
      lastProcessedTimestamp: Atomics.load(this.#i64, LAST_TIMESTAMP),
      queueDepth: Atomics.load(this.#i32, QUEUE_DEPTH),
      totalLatencyNanos: Number(Atomics.load(u64, TOTAL_LATENCY)),
      maxLatencyNanos: Number(Atomics.load(u64, MAX_LATENCY)),
      minLatencyNanos: min === TELEMETRY_MIN_LATENCY_UNSET || processed === 0n
        ? undefined
        : Number(min),
      errorCode: Atomics.load(this.#i32, ERROR_CODE),
    };
  }
}
