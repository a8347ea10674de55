/**
 * Lock-free ring queues over any buffer: a `SharedArrayBuffer` (CPU backend,
 * Workers), an `ArrayBuffer` over FFI-mapped pinned memory (GPU queues), or a
 * plain `ArrayBuffer` (tests, single thread).
 *
 * Layout (`QUEUE_HEADER` in `layout.ts`): a 512-byte header, then `capacity`
 * slots of `slotSize` bytes; each slot starts with the 32-byte envelope
 * (`envelope.ts`) followed by the payload. Offsets returned by this module are
 * relative to the start of the ring (the header), which is also where
 * {@linkcode Ring.view} starts.
 *
 * ## Protocol
 *
 * Indices (`head`, `tail`, `reserve`) are free-running u32 counters; slot of
 * index `i` is `i & (capacity - 1)`; distances are `(a - b) >>> 0`, correct
 * across the 2^32 wraparound because `capacity <= 2^30`. Every `Atomics`
 * operation is sequentially consistent, so a plain write made before an
 * `Atomics.store` is visible to a thread that observes that store with
 * `Atomics.load`.
 *
 * SPSC:
 * - `tail` is written only by the producer, `head` only by the consumer, each
 *   on its own 128-byte line.
 * - Producer: `free = capacity - (tail - headCache)`; only when that is too
 *   small does it re-read `head` (`Atomics.load`). It writes the slots, then
 *   publishes the whole batch with one `Atomics.store(tail, tail + n)`.
 * - Consumer: `ready = tailCache - head`; only when that is 0 does it re-read
 *   `tail`. It reads the slots, then releases them with one
 *   `Atomics.store(head, head + n)`. Invariant: `0 <= tail - head <= capacity`;
 *   a producer or consumer that reads a larger distance throws
 *   {@linkcode InvalidStateError} (the header is corrupt).
 *
 * MPSC:
 * - Producers take tickets from `reserve` with a compare-and-swap loop that
 *   never lets `reserve - head` exceed `capacity`, so a ticket's slot is free
 *   before it is written. The CAS expects the last `reserve` this producer
 *   saw; a stale guess only fails the CAS, which returns the current value
 *   for the next try. A producer counts room from the `head` it read last
 *   only while its CAS finds `reserve` where its own last claim left it (no
 *   other producer took tickets since, so head lies between the two); any
 *   other claim reads `head` fresh (a cached one could be a whole 2^32 lap
 *   stale after others' claims).
 * - A producer writes the slot of ticket `t`, then publishes that slot alone
 *   with `Atomics.store(stamp, t + 1)`; the stamp is the last write.
 * - A claim that finds `reserve - head > capacity` re-reads `reserve`; if
 *   `head` did not move meanwhile, no protocol step explains the distance and
 *   the claim throws {@linkcode InvalidStateError} (a corrupt header) rather
 *   than retrying forever. A claim makes a bounded number of attempts.
 * - The consumer, at `head = h`, takes the slot only when its stamp equals
 *   `h + 1` (u32). A slot's stamp from the previous lap is
 *   `h + 1 - capacity`, never `h + 1`, so slots need no clearing; `create`
 *   initialises every stamp to its previous-lap value. The consumer releases
 *   with `Atomics.store(head, h + n)`; `tail` is unused.
 * - A ticket that a producer cannot fill (its message failed validation) is
 *   published as a void slot (type id 0) so the consumer can move past it.
 *   A producer that dies between reserve and publish stalls the consumer at
 *   that slot: the queue belongs to the actor whose producers crashed.
 *
 * Doorbell (SharedArrayBuffer only): a consumer about to sleep reads
 * `doorbell`, stores `sleeping = 1`, re-checks for messages, then
 * `Atomics.wait(doorbell, seen)`. A producer, after publishing, reads
 * `sleeping` and only if it is set increments `doorbell` and notifies. Under
 * sequential consistency either the producer sees `sleeping = 1` or the
 * consumer's re-check sees the message, so no wake-up is lost; when nobody
 * sleeps the producer pays one load. Consumers of external (FFI-mapped)
 * memory cannot `Atomics.wait` there and poll with backoff instead.
 *
 * Room bell (SharedArrayBuffer only), the same handshake the other way: a
 * producer about to wait for room reads `roomBell`, adds 1 to `roomWaiting`
 * (a count: MPSC producers in several threads may wait at once), re-checks
 * for room, then sleeps on `roomBell`, and subtracts its 1 when it wakes. A
 * consumer, after releasing, reads `roomWaiting` and only if it is non-zero
 * increments `roomBell` and notifies. Device consumers never ring it (the
 * host polls device queues for room).
 *
 * @module
 */

import { DEFAULT_TIMEOUT_MS, pollUntil, sleepSync } from "./async.ts";
import {
  ENVELOPE_SIZE,
  type EnvelopeFields,
  type EnvelopeHeader,
  type EnvelopeInit,
  readEnvelope,
  readTypeId,
  validateEnvelope,
  VOID_TYPE_ID,
  writeEnvelope,
  writeEnvelopeFor,
} from "./envelope.ts";
import {
  InvalidMessageError,
  InvalidStateError,
  QueueFullError,
  TimeoutError,
} from "./errors.ts";
import type { HybridClock } from "./hlc.ts";
import {
  ENVELOPE,
  QUEUE_HEADER,
  QUEUE_MAGIC,
  QueueKind,
  SLOT_TIERS,
} from "./layout.ts";
import type {
  DecodedMessage,
  FieldsSpec,
  MessageSchema,
  MessageValue,
  SchemaRegistry,
} from "./message.ts";

/** Bytes of the queue header; slot 0 starts here. */
export const RING_HEADER_SIZE: number = QUEUE_HEADER.size;
/** Required alignment of a ring's byte offset in its buffer. */
export const RING_ALIGN: number = QUEUE_HEADER.align;
/** Largest capacity: keeps u32 index distances unambiguous. */
export const MAX_RING_CAPACITY = 2 ** 30;
/** Default slot size in bytes. */
export const DEFAULT_SLOT_SIZE = 64;

const H = QUEUE_HEADER.fields;
const HEAD = H.head.offset / 4;
const TAIL = H.tail.offset / 4;
const DROPPED = H.dropped.offset / 4;
const RESERVE = H.reserve.offset / 4;
const CAPACITY = H.capacity.offset / 4;
const SLOT_SIZE = H.slotSize.offset / 4;
const KIND = H.kind.offset / 4;
const MAGIC = H.magic.offset / 4;
const DOORBELL = H.doorbell.offset / 4;
const SLEEPING = H.sleeping.offset / 4;
const ROOM_BELL = H.roomBell.offset / 4;
const ROOM_WAITING = H.roomWaiting.offset / 4;
const STAMP = ENVELOPE.fields.stamp.offset;
const TIMESTAMP = ENVELOPE.fields.timestamp.offset;
/** The timestamp's low word, as an index into a slot's u32 words. */
const TIMESTAMP_WORD = TIMESTAMP / 4;
const TWO_32 = 0x1_0000_0000;

/** Queue discipline: one producer, or many ticketed producers; always one consumer. */
export type RingKind = "spsc" | "mpsc";

/** Any buffer a ring can live in. */
export type RingBuffer = ArrayBuffer | SharedArrayBuffer;

/** Size of a ring; see {@linkcode ringByteLength}. */
export interface RingGeometry {
  /** Number of slots: a power of two, 1..2^30. */
  capacity: number;
  /** Bytes per slot, one of `SLOT_TIERS` (default 64). */
  slotSize?: number;
}

/** Options of {@linkcode Ring.create}. */
export interface RingCreateOptions extends RingGeometry {
  /** Queue discipline (default "spsc"). */
  kind?: RingKind;
  /** Where the ring starts in the buffer; a multiple of {@linkcode RING_ALIGN} (default 0). */
  byteOffset?: number;
  /**
   * Starting value of the free-running indices (default 0). Tests start near
   * 2^32 to exercise wraparound.
   */
  initialIndex?: number;
}

/** Options of {@linkcode Ring.attach}: where the ring is, and what it must be. */
export interface RingAttachOptions {
  /** Where the ring starts in the buffer (default 0). */
  byteOffset?: number;
  /** Expected kind; a mismatch throws. */
  kind?: RingKind;
  /** Expected capacity; a mismatch throws. */
  capacity?: number;
  /** Expected slot size; a mismatch throws. */
  slotSize?: number;
}

/** Counters of a ring; see {@linkcode Ring.stats}. */
export interface RingStats {
  /** Number of slots. */
  readonly capacity: number;
  /** Messages enqueued (MPSC: reserved) and not yet released by the consumer. */
  readonly depth: number;
  /** Messages producers counted as dropped ({@linkcode RingProducer.enqueueOrDrop}). */
  readonly dropped: number;
  /** Free-running count of released slots (u32, wraps). */
  readonly released: number;
}

/** Polls before a consumer goes to sleep; see {@linkcode RingConsumer.waitReadable}. */
export const DEFAULT_SPIN = 2048;

/** Options of {@linkcode RingConsumer.waitReadable}. */
export interface SpinOptions {
  /** Polls before sleeping (default {@linkcode DEFAULT_SPIN}). */
  spin?: number;
}

/** Polls of the ring before a producer sleeps on the room bell; see {@linkcode RingProducer.writable}. */
export const DEFAULT_ROOM_SPIN = 256;

/** Options of {@linkcode RingProducer.writable}. */
export interface WritableOptions extends WaitOptions {
  /** Polls before sleeping on the room bell (default {@linkcode DEFAULT_ROOM_SPIN}). */
  spin?: number;
}

/** Options of {@linkcode RingProducer.enqueueBatch}. */
export interface EnqueueBatchOptions {
  /** Index of the first value to enqueue (default 0). */
  start?: number;
}

/** Options of the awaitable producer and consumer calls. */
export interface WaitOptions {
  /** Deadline in ms (default {@linkcode DEFAULT_TIMEOUT_MS}); 0 means do not wait. */
  timeoutMs?: number;
  /** Aborting rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** One message taken from a ring. */
export interface Received<T = unknown> {
  /** The envelope (a copy). */
  readonly envelope: EnvelopeFields;
  /** The schema that decoded the payload. */
  readonly schema: MessageSchema;
  /** The decoded payload. */
  readonly value: T;
}

/** What a consumer decodes with: one schema, or a registry of several. */
export type Decoder = MessageSchema | SchemaRegistry;

/** The value type a {@linkcode Decoder} yields. */
export type DecodedBy<D> = D extends MessageSchema<infer F extends FieldsSpec>
  ? DecodedMessage<F>
  : unknown;

/** A slot a consumer rejected: the error, and a copy of the slot's bytes. */
export interface RejectedSlot {
  /** Why the slot was rejected. */
  readonly error: InvalidMessageError;
  /** Copy of the whole slot (envelope and payload). */
  readonly slot: Uint8Array;
}

/** Options of {@linkcode Ring.consumer}. */
export interface ConsumerOptions {
  /**
   * Receives every invalid slot (unknown type, bad length, corrupt payload)
   * that the decoding calls meet; the slot is released and decoding goes on.
   * Without it those calls release the slot and throw the
   * {@linkcode InvalidMessageError}, with the {@linkcode RejectedSlot} as its
   * `cause`. Either way nothing is dropped silently.
   */
  onInvalid?: (rejected: RejectedSlot) => void;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0;
}

function checkGeometry(capacity: number, slotSize: number): void {
  if (!isPowerOfTwo(capacity) || capacity > MAX_RING_CAPACITY) {
    throw new RangeError(
      `ring capacity ${capacity} must be a power of two within 1..2^30`,
    );
  }
  if (!SLOT_TIERS.includes(slotSize)) {
    throw new RangeError(
      `ring slot size ${slotSize} must be one of ${SLOT_TIERS.join(", ")}`,
    );
  }
}

/** Bytes a ring of this geometry occupies: header plus `capacity * slotSize`. */
export function ringByteLength(geometry: RingGeometry): number {
  const { capacity, slotSize = DEFAULT_SLOT_SIZE } = geometry;
  checkGeometry(capacity, slotSize);
  return RING_HEADER_SIZE + capacity * slotSize;
}

function kindCode(kind: RingKind): number {
  if (kind === "spsc") return QueueKind.Spsc;
  if (kind === "mpsc") return QueueKind.Mpsc;
  throw new RangeError(
    `ring kind ${JSON.stringify(kind)} must be "spsc" or "mpsc"`,
  );
}

function checkPlacement(
  buffer: RingBuffer,
  byteOffset: number,
  byteLength: number,
): void {
  if (
    !Number.isInteger(byteOffset) || byteOffset < 0 ||
    byteOffset % RING_ALIGN !== 0
  ) {
    throw new RangeError(
      `ring byteOffset ${byteOffset} must be a multiple of ${RING_ALIGN}`,
    );
  }
  if (byteOffset + byteLength > buffer.byteLength) {
    throw new RangeError(
      `ring of ${byteLength} B at ${byteOffset} does not fit a buffer of ${buffer.byteLength} B`,
    );
  }
}

const hasSharedArrayBuffer = typeof SharedArrayBuffer === "function";
const scratchEnvelope = new DataView(new ArrayBuffer(ENVELOPE_SIZE));
/** The scratch envelope as words: the template a batch copies into each slot. */
const scratchEnvelopeWords = new Uint32Array(scratchEnvelope.buffer);

/**
 * A ring queue placed in a buffer. Create it once ({@linkcode Ring.create}),
 * attach to it anywhere else the buffer is visible ({@linkcode Ring.attach}),
 * then take a {@linkcode RingProducer} and a {@linkcode RingConsumer} from it.
 * The typed views are made once here and shared by its producers and consumers.
 */
export class Ring {
  /** The buffer holding the ring. */
  readonly buffer: RingBuffer;
  /** Where the ring starts in `buffer`. */
  readonly byteOffset: number;
  /** Bytes the ring occupies (header and slots). */
  readonly byteLength: number;
  /** Queue discipline. */
  readonly kind: RingKind;
  /** Number of slots. */
  readonly capacity: number;
  /** Bytes per slot. */
  readonly slotSize: number;
  /** Payload bytes per slot (`slotSize - ENVELOPE_SIZE`). */
  readonly payloadCapacity: number;
  /** Whether the buffer is a SharedArrayBuffer (so consumers may sleep on the doorbell). */
  readonly shared: boolean;
  /** DataView over the ring's bytes; slot offsets are relative to it. */
  readonly view: DataView;
  /** Bytes of the ring (same range as `view`). */
  readonly bytes: Uint8Array;
  /** @internal u32 words of the ring (header indices and slot stamps). */
  readonly words: Uint32Array;
  /** @internal i32 words of the ring, for the doorbell. */
  readonly signals: Int32Array;
  /** @internal `capacity - 1`. */
  readonly mask: number;

  private constructor(
    buffer: RingBuffer,
    byteOffset: number,
    kind: RingKind,
    capacity: number,
    slotSize: number,
  ) {
    this.buffer = buffer;
    this.byteOffset = byteOffset;
    this.kind = kind;
    this.capacity = capacity;
    this.slotSize = slotSize;
    this.byteLength = RING_HEADER_SIZE + capacity * slotSize;
    this.payloadCapacity = slotSize - ENVELOPE_SIZE;
    this.shared = hasSharedArrayBuffer && buffer instanceof SharedArrayBuffer;
    this.view = new DataView(buffer, byteOffset, this.byteLength);
    this.bytes = new Uint8Array(buffer, byteOffset, this.byteLength);
    this.words = new Uint32Array(buffer, byteOffset, this.byteLength / 4);
    this.signals = new Int32Array(buffer, byteOffset, this.byteLength / 4);
    this.mask = capacity - 1;
  }

  /**
   * Initialises a ring at `byteOffset` of `buffer` and returns it: zeroes the
   * header, writes the configuration, sets every slot's stamp to its
   * previous-lap value, and writes the magic last, so a concurrent
   * {@linkcode Ring.attach} sees either no ring or a complete one.
   */
  static create(buffer: RingBuffer, options: RingCreateOptions): Ring {
    const {
      capacity,
      slotSize = DEFAULT_SLOT_SIZE,
      kind = "spsc",
      byteOffset = 0,
      initialIndex = 0,
    } = options;
    const code = kindCode(kind);
    const byteLength = ringByteLength({ capacity, slotSize });
    checkPlacement(buffer, byteOffset, byteLength);
    if ((initialIndex >>> 0) !== initialIndex) {
      throw new RangeError(`ring initialIndex ${initialIndex} must be a u32`);
    }
    const ring = new Ring(buffer, byteOffset, kind, capacity, slotSize);
    const { words } = ring;
    Atomics.store(words, MAGIC, 0);
    ring.bytes.fill(0, 0, RING_HEADER_SIZE);
    Atomics.store(words, CAPACITY, capacity);
    Atomics.store(words, SLOT_SIZE, slotSize);
    Atomics.store(words, KIND, code);
    // The stamp a slot held one lap ago: never equal to what the consumer expects next.
    for (let k = 0; k < capacity; k++) {
      const firstIndex = (initialIndex + ((k - initialIndex) & ring.mask)) >>>
        0;
      words[ring.stampWord(k)] = (firstIndex + 1 - capacity) >>> 0;
    }
    Atomics.store(words, HEAD, initialIndex);
    Atomics.store(words, TAIL, initialIndex);
    Atomics.store(words, RESERVE, initialIndex);
    Atomics.store(words, MAGIC, QUEUE_MAGIC);
    return ring;
  }

  /**
   * Attaches to a ring that {@linkcode Ring.create} initialised (possibly in
   * another Worker, or on the device side). Throws
   * {@linkcode InvalidStateError} when the magic or configuration is invalid
   * or differs from what `options` expects, or when the indices are corrupt
   * (the producers' end, `tail` for SPSC or `reserve` for MPSC, more than
   * `capacity` slots past `head`, in u32 arithmetic).
   */
  static attach(buffer: RingBuffer, options: RingAttachOptions = {}): Ring {
    const { byteOffset = 0 } = options;
    checkPlacement(buffer, byteOffset, RING_HEADER_SIZE);
    const header = new Uint32Array(buffer, byteOffset, RING_HEADER_SIZE / 4);
    const magic = Atomics.load(header, MAGIC);
    const refuse = (detail: string): never => {
      throw new InvalidStateError("attach to queue", "invalid", detail);
    };
    if (magic !== QUEUE_MAGIC) {
      refuse(
        `magic 0x${magic.toString(16)} at offset ${byteOffset} is not 0x${
          QUEUE_MAGIC.toString(16)
        }`,
      );
    }
    const code = Atomics.load(header, KIND);
    const kind: RingKind | undefined = code === QueueKind.Spsc
      ? "spsc"
      : code === QueueKind.Mpsc
      ? "mpsc"
      : undefined;
    if (kind === undefined) refuse(`unknown queue kind ${code}`);
    const capacity = Atomics.load(header, CAPACITY);
    const slotSize = Atomics.load(header, SLOT_SIZE);
    try {
      checkGeometry(capacity, slotSize);
      checkPlacement(
        buffer,
        byteOffset,
        RING_HEADER_SIZE + capacity * slotSize,
      );
    } catch (error) {
      refuse((error as Error).message);
    }
    // Producers never run more than `capacity` ahead of the consumer. Head is
    // read on both sides of the other index: a live consumer that releases in
    // between widens the distance by no more than head moved.
    const end = kind === "spsc" ? TAIL : RESERVE;
    const head = Atomics.load(header, HEAD);
    const ahead = Atomics.load(header, end);
    const moved = (Atomics.load(header, HEAD) - head) >>> 0;
    const distance = (ahead - head) >>> 0;
    if (distance > capacity + moved) {
      refuse(
        `${
          kind === "spsc" ? "tail" : "reserve"
        } ${ahead} is ${distance} slots past head ${head}, beyond capacity ${capacity}`,
      );
    }
    if (options.kind !== undefined && options.kind !== kind) {
      refuse(`queue is ${kind}, expected ${options.kind}`);
    }
    if (options.capacity !== undefined && options.capacity !== capacity) {
      refuse(`queue capacity is ${capacity}, expected ${options.capacity}`);
    }
    if (options.slotSize !== undefined && options.slotSize !== slotSize) {
      refuse(`queue slot size is ${slotSize}, expected ${options.slotSize}`);
    }
    return new Ring(buffer, byteOffset, kind!, capacity, slotSize);
  }

  /** @internal Index in `words` of the stamp of slot `k`. */
  stampWord(k: number): number {
    return (RING_HEADER_SIZE + k * this.slotSize + STAMP) >> 2;
  }

  /**
   * A producer handle. SPSC rings must have one producer at a time (in any
   * thread); MPSC rings allow one handle per producing thread.
   */
  producer(): RingProducer {
    return this.kind === "spsc"
      ? new SpscProducer(this)
      : new MpscProducer(this);
  }

  /** The consumer handle; a ring has one consumer at a time (in any thread). */
  consumer(options: ConsumerOptions = {}): RingConsumer {
    return this.kind === "spsc"
      ? new SpscConsumer(this, options)
      : new MpscConsumer(this, options);
  }

  /** Messages enqueued (MPSC: reserved) and not yet released. */
  depth(): number {
    return (this.endIndex() - this.headIndex()) >>> 0;
  }

  /** Index of the next slot the consumer reads (the release counter, `head`). */
  headIndex(): number {
    return Atomics.load(this.words, HEAD) >>> 0;
  }

  /** Index one past the last slot published (SPSC `tail`) or reserved (MPSC). */
  endIndex(): number {
    return Atomics.load(this.words, this.kind === "spsc" ? TAIL : RESERVE) >>>
      0;
  }

  /** Messages producers counted as dropped. */
  dropped(): number {
    return Atomics.load(this.words, DROPPED);
  }

  /** Capacity, depth, drops and the release counter, read now. */
  stats(): RingStats {
    return {
      capacity: this.capacity,
      depth: this.depth(),
      dropped: this.dropped(),
      released: this.headIndex(),
    };
  }

  /**
   * @internal Called by consumers after releasing: wakes producers waiting
   * for room, if any (one load when none waits).
   */
  ringRoomBell(): void {
    if (this.shared && Atomics.load(this.signals, ROOM_WAITING) !== 0) {
      Atomics.add(this.signals, ROOM_BELL, 1);
      Atomics.notify(this.signals, ROOM_BELL);
    }
  }

  /**
   * Wakes every producer sleeping on the room bell, whether or not room
   * freed up (they re-check and sleep again): for a state change they must
   * see, such as the queue's owner stopping.
   */
  wakeWriters(): void {
    if (!this.shared) return;
    Atomics.add(this.signals, ROOM_BELL, 1);
    Atomics.notify(this.signals, ROOM_BELL);
  }

  /** @internal Called by producers after publishing: wakes a sleeping consumer. */
  ringDoorbell(): void {
    // Only SharedArrayBuffer consumers can sleep; on other memory (mapped for
    // the GPU) nobody waits on the doorbell, so publishing skips even the load.
    if (this.shared && Atomics.load(this.signals, SLEEPING) !== 0) {
      Atomics.add(this.signals, DOORBELL, 1);
      Atomics.notify(this.signals, DOORBELL);
    }
  }
}

function checkCount(n: number, what: string): void {
  if ((n >>> 0) !== n) {
    throw new RangeError(`${what} ${n} must be a non-negative integer`);
  }
}

/**
 * Refuses a producer's claim on a ring whose header says its producers' end
 * (`what`: tail or reserve) is more than `capacity` slots past `head`: no
 * protocol step leads there, so the header was overwritten.
 */
function corruptIndices(
  ring: Ring,
  what: string,
  end: number,
  head: number,
): never {
  throw new InvalidStateError(
    "claim",
    "corrupt",
    `${what} ${end} is ${
      (end - head) >>> 0
    } slots past head ${head}, beyond capacity ${ring.capacity}`,
  );
}

/** Waits need a deadline: NaN would make every comparison with it false (a hang). */
function checkTimeout(timeoutMs: number): void {
  if (typeof timeoutMs !== "number" || Number.isNaN(timeoutMs)) {
    throw new RangeError(`timeoutMs ${String(timeoutMs)} must be a number`);
  }
}

/**
 * Compare-and-swap attempts of one MPSC claim before it reports no room:
 * every failed attempt means another producer took tickets meanwhile, so
 * only a pathological contention reaches it; a waiting caller retries.
 */
const MAX_CLAIM_ATTEMPTS = 1 << 16;

function checkFits(ring: Ring, schema: MessageSchema): void {
  if (schema.size > ring.payloadCapacity) {
    throw new InvalidMessageError(
      `${schema.name} needs ${schema.size} B of payload; a ${ring.slotSize} B slot holds ${ring.payloadCapacity} B`,
    );
  }
}

/**
 * Sleeps (without blocking the thread) while `signals[index]` still holds
 * `value`, at most `timeoutMs`. It races its own timer: some runtimes
 * neither keep the event loop alive for a pending `Atomics.waitAsync` nor
 * deliver its timeout when idle.
 */
async function sleepOnWord(
  signals: Int32Array,
  index: number,
  value: number,
  timeoutMs: number,
): Promise<void> {
  const result = Atomics.waitAsync(signals, index, value, timeoutMs);
  if (!result.async) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, Math.ceil(timeoutMs));
  });
  try {
    await Promise.race([result.value, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The writing side of a ring. Encode in place: `claim(n)` grants up to `n`
 * slots, `slotOffset(i)` locates the i-th, the caller writes the envelope and
 * payload there, and `publish(n)` makes the first `n` visible at once.
 */
export abstract class RingProducer {
  /** The ring. */
  readonly ring: Ring;
  /** DataView over the ring (same as `ring.view`). */
  readonly view: DataView;
  /** @internal Slots granted by the last claim and not yet published. */
  protected claimed = 0;

  /** @internal Refuses a claim while one is pending, or a bad count. */
  protected checkClaim(n: number): void {
    if (this.claimed !== 0) {
      throw new InvalidStateError(
        "claim",
        "claimed",
        `${this.claimed} slots are claimed and not published`,
      );
    }
    checkCount(n, "claim count");
  }

  /** @internal The clock stamping envelopes sent without a timestamp. */
  protected clock: HybridClock | undefined;

  /** @internal */
  constructor(ring: Ring) {
    this.ring = ring;
    this.view = ring.view;
  }

  /**
   * Stamps every envelope that {@linkcode tryEnqueue}, {@linkcode enqueueOrDrop}
   * and {@linkcode enqueueBatch} write without a header timestamp with a
   * reading of `clock` (one physical reading per call: a batch takes
   * consecutive readings, {@linkcode HybridClock.reserve}); `undefined`
   * stops stamping (the timestamp is then 0, "unused").
   */
  stampWith(clock: HybridClock | undefined): void {
    this.clock = clock;
  }

  /**
   * Grants up to `n` free slots (0 when full) for writing. Every claim must be
   * followed by `publish` before the next claim. Throws
   * {@linkcode InvalidStateError} when the header's indices are corrupt (the
   * producers' end more than `capacity` slots past `head`).
   */
  abstract claim(n: number): number;

  /** Byte offset (within `view`) of the i-th claimed slot; the envelope is there, the payload 32 B later. */
  abstract slotOffset(i: number): number;

  /** Free-running index of the i-th claimed slot (what `tail` reaches once it is published, minus one). */
  abstract slotIndex(i: number): number;

  /**
   * Publishes the first `n` claimed slots (in one store for SPSC, one stamp
   * per slot for MPSC) and ends the claim. Claimed slots beyond `n` are given
   * back (SPSC) or published as void slots (MPSC).
   */
  abstract publish(n: number): void;

  /** Slots granted by the current claim. */
  get pending(): number {
    return this.claimed;
  }

  /**
   * Encodes one message in place and publishes it. Returns false, changing
   * nothing, when the ring is full. Throws {@linkcode InvalidMessageError}
   * (publishing nothing) for a message that does not fit the slot, or for a
   * bad value or header (checked while encoding, so a full ring returns false
   * before looking at the value: one encode pass on the hot path), and
   * {@linkcode InvalidStateError} when the ring's indices are corrupt.
   */
  tryEnqueue<F extends FieldsSpec>(
    schema: MessageSchema<F>,
    value: MessageValue<F>,
    header?: EnvelopeHeader,
  ): boolean {
    if (schema.size > this.ring.payloadCapacity) checkFits(this.ring, schema);
    if (this.claim(1) === 0) return false;
    const offset = this.slotOffset(0);
    try {
      writeEnvelopeFor(this.view, offset, schema, header);
      schema.encode(this.view, offset + ENVELOPE_SIZE, value);
      const clock = this.clock;
      if (clock !== undefined && header?.timestamp === undefined) {
        clock.writeNow(this.view, offset + TIMESTAMP);
      }
    } catch (error) {
      this.publish(0);
      throw error;
    }
    this.publish(1);
    return true;
  }

  /**
   * Like {@linkcode tryEnqueue}, but a full ring counts the message in the
   * ring's `dropped` counter (the caller chose to drop it) before returning false.
   */
  enqueueOrDrop<F extends FieldsSpec>(
    schema: MessageSchema<F>,
    value: MessageValue<F>,
    header?: EnvelopeHeader,
  ): boolean {
    if (this.tryEnqueue(schema, value, header)) return true;
    Atomics.add(this.ring.words, DROPPED, 1);
    return false;
  }

  /**
   * Enqueues as many of `values` (from `options.start`, default 0) as fit,
   * in order, publishing once; returns how many were enqueued. Each message
   * is encoded straight into its slot, behind a copy of one envelope made
   * for the whole batch (`header` is checked once). All or nothing on bad
   * input: if any value fails validation, none of the batch is published and
   * the error is thrown.
   */
  enqueueBatch<F extends FieldsSpec>(
    schema: MessageSchema<F>,
    values: ArrayLike<MessageValue<F>>,
    header?: EnvelopeHeader,
    options?: EnqueueBatchOptions,
  ): number {
    const ring = this.ring;
    if (schema.size > ring.payloadCapacity) checkFits(ring, schema);
    const start = options?.start ?? 0;
    const total = values.length;
    if ((start >>> 0) !== start || start > total) {
      throw new RangeError(
        `batch start ${start} must be an integer within 0..${total}`,
      );
    }
    // The template: validates the header once, before anything is claimed.
    writeEnvelopeFor(scratchEnvelope, 0, schema, header);
    const granted = this.claim(total - start);
    if (granted === 0) return 0;
    const t = scratchEnvelopeWords;
    const t0 = t[0], t1 = t[1], t2 = t[2], t3 = t[3];
    let t4 = t[4], t5 = t[5];
    const t6 = t[6];
    // Stamped: one clock reading for the batch, consecutive packed stamps.
    const clock = this.clock;
    const stamped = clock !== undefined && header?.timestamp === undefined;
    if (stamped) {
      const { physicalMs, logical } = clock.reserve(granted);
      t5 = Math.floor(physicalMs / 0x10000);
      t4 = (physicalMs - t5 * 0x10000) * 0x10000 + logical;
    }
    const { view, words, mask, slotSize } = ring;
    const first = this.slotIndex(0);
    try {
      for (let i = 0; i < granted; i++) {
        const offset = RING_HEADER_SIZE + ((first + i) & mask) * slotSize;
        // The envelope's first seven words (the stamp, word 7, is the
        // publication's): plain stores, made visible by the publish.
        const w = offset >> 2;
        words[w] = t0;
        words[w + 1] = t1;
        words[w + 2] = t2;
        words[w + 3] = t3;
        words[w + TIMESTAMP_WORD] = t4;
        words[w + TIMESTAMP_WORD + 1] = t5;
        words[w + 6] = t6;
        if (stamped && ++t4 === TWO_32) {
          t4 = 0;
          t5++;
        }
        schema.encode(view, offset + ENVELOPE_SIZE, values[start + i]);
      }
    } catch (error) {
      this.publish(0);
      throw error;
    }
    this.publish(granted);
    return granted;
  }

  /** Whether the ring has a free slot now (reads both indices). */
  hasRoom(): boolean {
    return this.ring.depth() < this.ring.capacity;
  }

  /**
   * Resolves true as soon as the ring has a free slot, or false after
   * `timeoutMs`. It first polls `spin` times (counted, not clocked); then,
   * on a SharedArrayBuffer, it sleeps on the room bell, which the consumer
   * rings when it releases slots (`Atomics.waitAsync` where the runtime has
   * it); on other memory it polls with backoff. Rejects with the signal's
   * reason on abort. Room may be taken by another producer before the
   * caller claims it: callers retry.
   */
  async writable(options: WritableOptions = {}): Promise<boolean> {
    const { timeoutMs = DEFAULT_TIMEOUT_MS, signal, spin = DEFAULT_ROOM_SPIN } =
      options;
    checkTimeout(timeoutMs);
    for (let i = 0; i < spin; i++) if (this.hasRoom()) return true;
    if (signal?.aborted) throw signal.reason;
    if (timeoutMs <= 0) return this.hasRoom();
    if (this.ring.shared && typeof Atomics.waitAsync === "function") {
      return await this.#sleepForRoom(timeoutMs, signal);
    }
    try {
      await pollUntil(() => this.hasRoom(), {
        timeoutMs,
        signal,
        what: "room in the queue",
      });
      return true;
    } catch (error) {
      if (error instanceof TimeoutError) return false;
      throw error;
    }
  }

  async #sleepForRoom(
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    const { signals } = this.ring;
    const end = performance.now() + timeoutMs;
    let aborted = false;
    // Aborting wakes our own wait by ringing the bell.
    const onAbort = () => {
      aborted = true;
      Atomics.add(signals, ROOM_BELL, 1);
      Atomics.notify(signals, ROOM_BELL);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        const left = end - performance.now();
        if (left <= 0) return this.hasRoom();
        const bell = Atomics.load(signals, ROOM_BELL);
        Atomics.add(signals, ROOM_WAITING, 1);
        try {
          if (this.hasRoom()) return true;
          await sleepOnWord(signals, ROOM_BELL, bell, left);
        } finally {
          Atomics.sub(signals, ROOM_WAITING, 1);
        }
        if (aborted || signal?.aborted) throw signal!.reason;
        if (this.hasRoom()) return true;
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Enqueues a payload that is already encoded (e.g. a message being
   * forwarded). Returns false when full. Throws {@linkcode InvalidMessageError}
   * when the payload does not fit the slot or the envelope is out of range.
   */
  tryEnqueueRaw(
    envelope: Omit<EnvelopeInit, "payloadLength">,
    payload: Uint8Array,
  ): boolean {
    if (payload.length > this.ring.payloadCapacity) {
      throw new InvalidMessageError(
        `payload of ${payload.length} B exceeds the ${this.ring.payloadCapacity} B of a slot`,
      );
    }
    if (this.claim(1) === 0) return false;
    const offset = this.slotOffset(0);
    try {
      writeEnvelope(this.view, offset, {
        ...envelope,
        payloadLength: payload.length,
      });
    } catch (error) {
      this.publish(0);
      throw error;
    }
    this.ring.bytes.set(payload, offset + ENVELOPE_SIZE);
    this.publish(1);
    return true;
  }

  /**
   * Enqueues one message, waiting for room while the ring is full (see
   * {@linkcode RingProducer.writable}).
   * Rejects with {@linkcode QueueFullError} if no slot frees up within
   * `timeoutMs` (at once when it is 0), with {@linkcode InvalidMessageError}
   * for bad input, or with the signal's reason on abort.
   */
  async enqueue<F extends FieldsSpec>(
    schema: MessageSchema<F>,
    value: MessageValue<F>,
    header?: EnvelopeHeader,
    options: WaitOptions = {},
  ): Promise<void> {
    if (this.tryEnqueue(schema, value, header)) return;
    // Bad input fails now, not after waiting for room.
    schema.validate(value);
    writeEnvelopeFor(scratchEnvelope, 0, schema, header);
    const { timeoutMs = DEFAULT_TIMEOUT_MS, signal } = options;
    checkTimeout(timeoutMs);
    if (timeoutMs <= 0) {
      throw new QueueFullError(`queue full (${this.ring.capacity} slots)`);
    }
    const end = performance.now() + timeoutMs;
    for (;;) {
      const left = end - performance.now();
      if (left > 0 && await this.writable({ timeoutMs: left, signal })) {
        if (this.tryEnqueue(schema, value, header)) return;
        continue;
      }
      if (this.tryEnqueue(schema, value, header)) return;
      throw new QueueFullError(
        `queue full (${this.ring.capacity} slots) for ${timeoutMs} ms`,
        { cause: new TimeoutError("enqueue", timeoutMs) },
      );
    }
  }
}

class SpscProducer extends RingProducer {
  private tailIndex: number;
  private cachedHead: number;

  constructor(ring: Ring) {
    super(ring);
    this.tailIndex = Atomics.load(ring.words, TAIL);
    this.cachedHead = Atomics.load(ring.words, HEAD);
  }

  claim(n: number): number {
    this.checkClaim(n);
    const ring = this.ring;
    let free = ring.capacity - ((this.tailIndex - this.cachedHead) >>> 0);
    if (free < n) free = ring.capacity - this.usedAfterReload(this.tailIndex);
    return this.claimed = n < free ? n : free;
  }

  slotOffset(i: number): number {
    if ((i >>> 0) >= this.claimed) {
      throw new RangeError(`slot ${i} is not claimed (${this.claimed} are)`);
    }
    const ring = this.ring;
    return RING_HEADER_SIZE +
      ((this.tailIndex + i) & ring.mask) * ring.slotSize;
  }

  slotIndex(i: number): number {
    if ((i >>> 0) >= this.claimed) {
      throw new RangeError(`slot ${i} is not claimed (${this.claimed} are)`);
    }
    return (this.tailIndex + i) >>> 0;
  }

  // Same contract as the base method, specialised: one slot needs no claim
  // bookkeeping and no rollback (nothing is visible until the tail store).
  override tryEnqueue<F extends FieldsSpec>(
    schema: MessageSchema<F>,
    value: MessageValue<F>,
    header?: EnvelopeHeader,
  ): boolean {
    const ring = this.ring;
    if (schema.size > ring.payloadCapacity) checkFits(ring, schema);
    if (this.claimed !== 0) this.claim(1); // throws: a claim is open
    const tail = this.tailIndex;
    if (
      ((tail - this.cachedHead) >>> 0) >= ring.capacity &&
      this.usedAfterReload(tail) === ring.capacity
    ) return false;
    const offset = RING_HEADER_SIZE + (tail & ring.mask) * ring.slotSize;
    writeEnvelopeFor(this.view, offset, schema, header);
    schema.encode(this.view, offset + ENVELOPE_SIZE, value);
    const clock = this.clock;
    if (clock !== undefined && header?.timestamp === undefined) {
      clock.writeNow(this.view, offset + TIMESTAMP);
    }
    this.tailIndex = (tail + 1) >>> 0;
    Atomics.store(ring.words, TAIL, this.tailIndex);
    ring.ringDoorbell();
    return true;
  }

  /**
   * Reads `head` again (the cached one shows too little room) and returns
   * the slots in use from `tail`; throws on corrupt indices. Out of line, so
   * the hot paths stay small enough to inline.
   */
  private usedAfterReload(tail: number): number {
    const head = Atomics.load(this.ring.words, HEAD);
    this.cachedHead = head;
    const used = (tail - head) >>> 0;
    if (used > this.ring.capacity) {
      corruptIndices(this.ring, "tail", tail, head);
    }
    return used;
  }

  publish(n: number): void {
    if ((n >>> 0) !== n || n > this.claimed) {
      throw new RangeError(
        `cannot publish ${n} slots: ${this.claimed} are claimed`,
      );
    }
    this.claimed = 0;
    if (n === 0) return;
    this.tailIndex = (this.tailIndex + n) >>> 0;
    Atomics.store(this.ring.words, TAIL, this.tailIndex);
    this.ring.ringDoorbell();
  }
}

class MpscProducer extends RingProducer {
  private firstTicket = 0;
  /** Our guess of `reserve` for the next compare-and-swap (the last value we saw). */
  private expectedReserve: number;
  /** The last `head` read, at most `capacity` behind `expectedReserve` when it was read. */
  private cachedHead: number;

  constructor(ring: Ring) {
    super(ring);
    this.cachedHead = Atomics.load(ring.words, HEAD);
    this.expectedReserve = Atomics.load(ring.words, RESERVE);
  }

  claim(n: number): number {
    this.checkClaim(n);
    if (n === 0) return 0;
    const { words, capacity } = this.ring;
    // The guess saves a load when uncontended; a wrong guess only fails the
    // CAS, which returns the real value.
    let reserve = this.expectedReserve;
    // Fast path, on the cached head: a CAS that finds `reserve` where this
    // producer left it proves no other producer took tickets since, so head
    // is still between the cached head and `reserve`, and the room counted
    // from the cached head is there (or more). Otherwise head is read fresh.
    const cachedUsed = (reserve - this.cachedHead) >>> 0;
    if (cachedUsed <= capacity && capacity - cachedUsed >= n) {
      const next = (reserve + n) >>> 0;
      const witnessed = Atomics.compareExchange(words, RESERVE, reserve, next);
      if (witnessed === reserve) {
        this.firstTicket = reserve;
        this.expectedReserve = next;
        return this.claimed = n;
      }
      reserve = witnessed;
    }
    for (let attempt = 0; attempt < MAX_CLAIM_ATTEMPTS; attempt++) {
      const head = Atomics.load(words, HEAD);
      this.cachedHead = head;
      const used = (reserve - head) >>> 0;
      if (used > capacity) {
        // The guess is behind head, or the header is corrupt.
        reserve = this.actualReserve(head);
        continue;
      }
      const free = capacity - used;
      if (free === 0) {
        const actual = Atomics.load(words, RESERVE);
        if (actual === reserve) {
          this.expectedReserve = reserve;
          return 0;
        }
        reserve = actual;
        continue;
      }
      const granted = n < free ? n : free;
      const next = (reserve + granted) >>> 0;
      const witnessed = Atomics.compareExchange(words, RESERVE, reserve, next);
      if (witnessed === reserve) {
        this.firstTicket = reserve;
        this.expectedReserve = next;
        return this.claimed = granted;
      }
      reserve = witnessed;
    }
    this.expectedReserve = reserve;
    return 0;
  }

  /**
   * Reads `reserve` after `head` (read just before): if head has not moved
   * since, their distance is exact, and beyond `capacity` it means the
   * header is corrupt (throws). Out of line: only a stale guess comes here.
   */
  private actualReserve(head: number): number {
    const words = this.ring.words;
    const reserve = Atomics.load(words, RESERVE);
    this.expectedReserve = reserve;
    if (
      ((reserve - head) >>> 0) > this.ring.capacity &&
      Atomics.load(words, HEAD) === head
    ) corruptIndices(this.ring, "reserve", reserve, head);
    return reserve;
  }

  slotOffset(i: number): number {
    if ((i >>> 0) >= this.claimed) {
      throw new RangeError(`slot ${i} is not claimed (${this.claimed} are)`);
    }
    const ring = this.ring;
    return RING_HEADER_SIZE +
      ((this.firstTicket + i) & ring.mask) * ring.slotSize;
  }

  slotIndex(i: number): number {
    if ((i >>> 0) >= this.claimed) {
      throw new RangeError(`slot ${i} is not claimed (${this.claimed} are)`);
    }
    return (this.firstTicket + i) >>> 0;
  }

  publish(n: number): void {
    const claimed = this.claimed;
    if ((n >>> 0) !== n || n > claimed) {
      throw new RangeError(`cannot publish ${n} slots: ${claimed} are claimed`);
    }
    if (claimed === 0) return;
    const ring = this.ring;
    const { words, view, mask, slotSize } = ring;
    const ticket = this.firstTicket;
    for (let i = 0; i < claimed; i++) {
      const index = (ticket + i) >>> 0;
      const slot = index & mask;
      if (i >= n) {
        // A reserved ticket must still be published, or the consumer stalls on it.
        writeEnvelope(view, RING_HEADER_SIZE + slot * slotSize, {
          typeId: VOID_TYPE_ID,
          payloadLength: 0,
        });
      }
      Atomics.store(
        words,
        (RING_HEADER_SIZE + slot * slotSize + STAMP) >> 2,
        (index + 1) >>> 0,
      );
    }
    this.claimed = 0;
    ring.ringDoorbell();
  }
}

/**
 * The reading side of a ring. Read in place: `available()` counts ready
 * slots, `slotOffset(i)` locates the i-th, and `release(n)` hands the first
 * `n` back to producers at once.
 */
export abstract class RingConsumer {
  /** The ring. */
  readonly ring: Ring;
  /** DataView over the ring (same as `ring.view`). */
  readonly view: DataView;
  /** @internal */
  protected readonly onInvalid?: (rejected: RejectedSlot) => void;
  /** @internal Local copy of `head`: this consumer is its only writer. */
  protected headIndex: number;
  /** @internal Pending `readable()` sleeps on the doorbell. */
  private asyncSleepers = 0;

  /** @internal */
  constructor(ring: Ring, options: ConsumerOptions) {
    this.ring = ring;
    this.view = ring.view;
    this.onInvalid = options.onInvalid;
    this.headIndex = Atomics.load(ring.words, HEAD);
  }

  /**
   * Number of slots ready to read from the head (re-reading the producers'
   * progress only when none are known). MPSC rings may hold void slots (type
   * id 0) among them, which readers skip.
   */
  abstract available(): number;

  /** Byte offset (within `view`) of the i-th ready slot. */
  abstract slotOffset(i: number): number;

  /** Free-running index of the i-th slot from the head (`head + i`; this consumer's own copy of `head`). */
  slotIndex(i: number): number {
    return (this.headIndex + i) >>> 0;
  }

  /**
   * Releases the first `n` ready slots to the producers (one store), and
   * rings the room bell when a producer waits for room.
   */
  abstract release(n: number): void;

  /**
   * Calls `fn` for up to `max` ready slots (skipping void slots) with the
   * slot's byte offset, then releases them all at once; returns how many
   * `fn` saw. If `fn` throws, the slots before the failing one are released
   * and the failing one stays at the head, so nothing is lost.
   */
  dequeueBatch(
    max: number,
    fn: (view: DataView, slotOffset: number, index: number) => void,
  ): number {
    let n = this.available();
    if (n > max) n = max;
    const { view, ring } = this;
    const { mask, slotSize } = ring;
    const head = this.headIndex;
    let seen = 0;
    for (let i = 0; i < n; i++) {
      const offset = RING_HEADER_SIZE + ((head + i) & mask) * slotSize;
      if (readTypeId(view, offset) === VOID_TYPE_ID) continue;
      try {
        fn(view, offset, seen);
      } catch (error) {
        this.release(i);
        throw error;
      }
      seen++;
    }
    if (n > 0) this.release(n);
    return seen;
  }

  /** Validates and decodes the slot at `offset`, or reports it as invalid. */
  #decodeAt<D extends Decoder>(
    decoder: D,
    offset: number,
  ): Received<DecodedBy<D>> | RejectedSlot {
    const view = this.view;
    try {
      const schema = validateEnvelope(view, offset, {
        schemas: decoder,
        slotSize: this.ring.slotSize,
      });
      const value = schema.decode(view, offset + ENVELOPE_SIZE) as DecodedBy<D>;
      return { envelope: readEnvelope(view, offset), schema, value };
    } catch (error) {
      if (!(error instanceof InvalidMessageError)) throw error;
      const slot = this.ring.bytes.slice(offset, offset + this.ring.slotSize);
      return { error, slot };
    }
  }

  #reject(rejected: RejectedSlot): void {
    if (this.onInvalid) {
      this.onInvalid(rejected);
      return;
    }
    throw new InvalidMessageError(rejected.error.message, { cause: rejected });
  }

  /**
   * Takes one message if there is one: validates its envelope against
   * `decoder`, decodes it, and releases the slot. Returns undefined when the
   * ring is empty. An invalid slot is released and handed to `onInvalid`, or
   * thrown as {@linkcode InvalidMessageError} when there is no `onInvalid`.
   */
  tryDequeue<D extends Decoder>(
    decoder: D,
  ): Received<DecodedBy<D>> | undefined {
    for (;;) {
      if (this.available() === 0) return undefined;
      const offset = this.slotOffset(0);
      if (readTypeId(this.view, offset) === VOID_TYPE_ID) {
        this.release(1);
        continue;
      }
      const result = this.#decodeAt(decoder, offset);
      this.release(1);
      if ("error" in result) {
        this.#reject(result);
        continue;
      }
      return result;
    }
  }

  /**
   * Validates, decodes and hands to `fn` up to `max` messages, releasing them
   * in one store; returns how many `fn` received. Invalid slots are handled as
   * in {@linkcode tryDequeue}. If `fn` throws, the messages before it are
   * released and the failing one stays at the head.
   */
  dequeueMessages<D extends Decoder>(
    decoder: D,
    max: number,
    fn: (received: Received<DecodedBy<D>>) => void,
  ): number {
    let n = this.available();
    if (n > max) n = max;
    let seen = 0;
    for (let i = 0; i < n; i++) {
      const offset = this.slotOffset(i);
      if (readTypeId(this.view, offset) === VOID_TYPE_ID) continue;
      const result = this.#decodeAt(decoder, offset);
      if ("error" in result) {
        if (!this.onInvalid) this.release(i + 1);
        try {
          this.#reject(result);
        } catch (error) {
          if (this.onInvalid) this.release(i + 1);
          throw error;
        }
        continue;
      }
      try {
        fn(result);
      } catch (error) {
        this.release(i);
        throw error;
      }
      seen++;
    }
    if (n > 0) this.release(n);
    return seen;
  }

  /**
   * Blocks the calling thread until a slot is ready or `timeoutMs` passes;
   * returns whether one is. For Worker loops: it first polls `spin` times
   * (a few microseconds by default: a producer in mid-batch is usually that
   * close, and sleeping costs a futex round trip per batch); then, on a
   * SharedArrayBuffer, it sleeps on the doorbell (`Atomics.wait`); on other
   * memory it polls, sleeping with a backoff from 50 µs to 1 ms.
   */
  waitReadable(timeoutMs: number, options: SpinOptions = {}): boolean {
    checkTimeout(timeoutMs);
    const { spin = DEFAULT_SPIN } = options;
    for (let i = 0; i < spin; i++) if (this.available() > 0) return true;
    const end = performance.now() + timeoutMs;
    const { signals } = this.ring;
    let sleepMs = 0.05;
    for (;;) {
      const left = end - performance.now();
      if (left <= 0) return this.available() > 0;
      if (this.ring.shared) {
        const bell = Atomics.load(signals, DOORBELL);
        Atomics.store(signals, SLEEPING, 1);
        if (this.available() > 0) {
          Atomics.store(signals, SLEEPING, 0);
          return true;
        }
        Atomics.wait(signals, DOORBELL, bell, left);
        Atomics.store(signals, SLEEPING, 0);
      } else {
        sleepSync(Math.min(sleepMs, left));
        sleepMs = Math.min(1, sleepMs * 2);
      }
      if (this.available() > 0) return true;
    }
  }

  /**
   * Resolves true as soon as a slot is ready, or false after `timeoutMs`.
   * On a SharedArrayBuffer it sleeps on the doorbell with `Atomics.waitAsync`
   * when the runtime has it; otherwise it polls with backoff. Rejects with the
   * signal's reason on abort.
   */
  async readable(options: WaitOptions = {}): Promise<boolean> {
    const { timeoutMs = DEFAULT_TIMEOUT_MS, signal } = options;
    checkTimeout(timeoutMs);
    if (this.available() > 0) return true;
    if (signal?.aborted) throw signal.reason;
    if (this.ring.shared && typeof Atomics.waitAsync === "function") {
      return await this.#sleepAsync(timeoutMs, signal);
    }
    try {
      await pollUntil(() => this.available() > 0, {
        timeoutMs,
        signal,
        what: "dequeue",
      });
      return true;
    } catch (error) {
      if (error instanceof TimeoutError) return false;
      throw error;
    }
  }

  async #sleepAsync(
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    const { signals } = this.ring;
    const end = performance.now() + timeoutMs;
    // Aborting wakes our own wait by ringing the doorbell.
    const onAbort = () => {
      Atomics.add(signals, DOORBELL, 1);
      Atomics.notify(signals, DOORBELL);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    // Several awaits may sleep on one consumer; the last one out clears `sleeping`.
    this.asyncSleepers++;
    try {
      for (;;) {
        const left = end - performance.now();
        if (left <= 0) return this.available() > 0;
        const bell = Atomics.load(signals, DOORBELL);
        Atomics.store(signals, SLEEPING, 1);
        if (this.available() > 0) return true;
        await sleepOnWord(signals, DOORBELL, bell, left);
        if (signal?.aborted) throw signal.reason;
        if (this.available() > 0) return true;
      }
    } finally {
      if (--this.asyncSleepers === 0) Atomics.store(signals, SLEEPING, 0);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Takes one message, waiting for it: resolves like {@linkcode tryDequeue},
   * or rejects with {@linkcode TimeoutError} after `timeoutMs` (at once when
   * 0 and empty), or with the signal's reason on abort.
   */
  async dequeue<D extends Decoder>(
    decoder: D,
    options: WaitOptions = {},
  ): Promise<Received<DecodedBy<D>>> {
    const { timeoutMs = DEFAULT_TIMEOUT_MS, signal } = options;
    checkTimeout(timeoutMs);
    const end = performance.now() + timeoutMs;
    for (;;) {
      const received = this.tryDequeue(decoder);
      if (received) return received;
      const left = end - performance.now();
      if (left <= 0 || !(await this.readable({ timeoutMs: left, signal }))) {
        const last = this.tryDequeue(decoder);
        if (last) return last;
        throw new TimeoutError("dequeue", timeoutMs);
      }
    }
  }
}

class SpscConsumer extends RingConsumer {
  private cachedTail: number;

  constructor(ring: Ring, options: ConsumerOptions) {
    super(ring, options);
    this.cachedTail = this.headIndex;
  }

  available(): number {
    let n = (this.cachedTail - this.headIndex) >>> 0;
    if (n === 0) {
      this.cachedTail = Atomics.load(this.ring.words, TAIL);
      n = (this.cachedTail - this.headIndex) >>> 0;
      if (n > this.ring.capacity) {
        this.cachedTail = this.headIndex;
        throw new InvalidStateError(
          "read queue",
          "corrupt",
          `tail ${
            Atomics.load(this.ring.words, TAIL)
          } is ${n} slots past head ${this.headIndex}`,
        );
      }
    }
    return n;
  }

  slotOffset(i: number): number {
    if ((i >>> 0) >= ((this.cachedTail - this.headIndex) >>> 0)) {
      throw new RangeError(`slot ${i} is not ready`);
    }
    const ring = this.ring;
    return RING_HEADER_SIZE +
      ((this.headIndex + i) & ring.mask) * ring.slotSize;
  }

  release(n: number): void {
    if ((n >>> 0) !== n || n > ((this.cachedTail - this.headIndex) >>> 0)) {
      throw new RangeError(
        `cannot release ${n} slots: ${
          (this.cachedTail - this.headIndex) >>> 0
        } are ready`,
      );
    }
    if (n === 0) return;
    this.headIndex = (this.headIndex + n) >>> 0;
    Atomics.store(this.ring.words, HEAD, this.headIndex);
    this.ring.ringRoomBell();
  }
}

class MpscConsumer extends RingConsumer {
  private readyCount = 0;

  available(): number {
    if (this.readyCount !== 0) return this.readyCount;
    const ring = this.ring;
    const { words, mask, slotSize, capacity } = ring;
    const head = this.headIndex;
    let k = 0;
    while (k < capacity) {
      const index = (head + k) >>> 0;
      const stampWord =
        (RING_HEADER_SIZE + (index & mask) * slotSize + STAMP) >> 2;
      if (Atomics.load(words, stampWord) !== ((index + 1) >>> 0)) break;
      k++;
    }
    return this.readyCount = k;
  }

  slotOffset(i: number): number {
    if ((i >>> 0) >= this.readyCount) {
      throw new RangeError(`slot ${i} is not ready`);
    }
    const ring = this.ring;
    return RING_HEADER_SIZE +
      ((this.headIndex + i) & ring.mask) * ring.slotSize;
  }

  release(n: number): void {
    if ((n >>> 0) !== n || n > this.readyCount) {
      throw new RangeError(
        `cannot release ${n} slots: ${this.readyCount} are ready`,
      );
    }
    if (n === 0) return;
    this.headIndex = (this.headIndex + n) >>> 0;
    this.readyCount -= n;
    Atomics.store(this.ring.words, HEAD, this.headIndex);
    this.ring.ringRoomBell();
  }
}
