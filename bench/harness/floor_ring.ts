/**
 * The bare single-producer single-consumer ring of the floor cases: 64-byte
 * slots in a SharedArrayBuffer, the producer publishing its tail every
 * {@linkcode PUBLISH_EVERY} messages (and when it flushes), the consumer
 * releasing its head likewise (and whenever it finds the ring empty). Plain
 * JavaScript, none of the library: what any ring between two threads costs
 * on this runtime. Also the layout of the floors' control words.
 *
 * @module
 */

/** Bytes per slot. */
export const SLOT_BYTES = 64;
/** Messages between two publications of the tail (and releases of the head). */
export const PUBLISH_EVERY = 64;
/** Bytes before the slots: the head and the tail, each on its own 64-byte line. */
const HEADER_BYTES = 128;
const HEAD = 0;
const TAIL = 16;

/** Control word the host writes each ping into (ping-pong floor). */
export const PING = 0;
/** Control word the Worker echoes each ping into. */
export const PONG = 16;
/** Control word that, once non-zero, ends the Worker's loop. */
export const STOP = 32;
/** Bytes of the control buffer. */
export const CONTROL_BYTES = 192;

/** What the floor Worker is started with (its `workerData`). */
export interface FloorJob {
  /** Echo pings, consume one ring, or echo ring 0 into ring 1. */
  readonly mode: "pingpong" | "consume" | "echo";
  /** The control words ({@linkcode PING}, {@linkcode PONG}, {@linkcode STOP}). */
  readonly control: SharedArrayBuffer;
  /** The rings' buffers (consume: one; echo: input, then output). */
  readonly rings?: SharedArrayBuffer[];
}

/** A ring's buffer for `capacity` slots (a power of two ≥ {@linkcode PUBLISH_EVERY}). */
export function floorRingBuffer(capacity: number): SharedArrayBuffer {
  if (
    !Number.isInteger(capacity) || capacity < PUBLISH_EVERY ||
    (capacity & (capacity - 1)) !== 0
  ) {
    throw new RangeError(
      `capacity must be a power of two ≥ ${PUBLISH_EVERY}, got ${capacity}`,
    );
  }
  return new SharedArrayBuffer(HEADER_BYTES + capacity * SLOT_BYTES);
}

/**
 * One end of a bare ring; the producer uses {@linkcode FloorRing.write} and
 * {@linkcode FloorRing.publish}, the consumer {@linkcode FloorRing.tryRead}.
 * Counters are 32-bit and wrap.
 */
export class FloorRing {
  readonly #words: Int32Array;
  readonly #doubles: Float64Array;
  readonly #mask: number;
  readonly #capacity: number;
  #tail = 0;
  #published = 0;
  #cachedHead = 0;
  #head = 0;
  #released = 0;
  #cachedTail = 0;
  /** The value of the message {@linkcode FloorRing.tryRead} returned last. */
  lastValue = 0;

  /** Views `buffer` (from {@linkcode floorRingBuffer}). */
  constructor(buffer: SharedArrayBuffer) {
    this.#words = new Int32Array(buffer);
    this.#doubles = new Float64Array(buffer);
    this.#capacity = (buffer.byteLength - HEADER_BYTES) / SLOT_BYTES;
    this.#mask = this.#capacity - 1;
  }

  /** Writes one message (a sequence number and a value), waiting for room; publishes every {@linkcode PUBLISH_EVERY}. */
  write(seq: number, value: number): void {
    if (((this.#tail - this.#cachedHead) | 0) >= this.#capacity) {
      this.publish();
      do {
        this.#cachedHead = Atomics.load(this.#words, HEAD);
      } while (((this.#tail - this.#cachedHead) | 0) >= this.#capacity);
    }
    const slot = this.#tail & this.#mask;
    const doubles = (HEADER_BYTES + slot * SLOT_BYTES) >> 3;
    this.#doubles[doubles] = value;
    this.#words[(doubles << 1) + 2] = seq;
    this.#tail = (this.#tail + 1) | 0;
    if (((this.#tail - this.#published) | 0) >= PUBLISH_EVERY) this.publish();
  }

  /** Makes every message written so far visible to the consumer. */
  publish(): void {
    if (this.#tail !== this.#published) {
      Atomics.store(this.#words, TAIL, this.#tail);
      this.#published = this.#tail;
    }
  }

  /** The next message's sequence number (its value in {@linkcode FloorRing.lastValue}), or undefined when empty. */
  tryRead(): number | undefined {
    if (this.#head === this.#cachedTail) {
      this.release();
      this.#cachedTail = Atomics.load(this.#words, TAIL);
      if (this.#head === this.#cachedTail) return undefined;
    }
    const slot = this.#head & this.#mask;
    const doubles = (HEADER_BYTES + slot * SLOT_BYTES) >> 3;
    this.lastValue = this.#doubles[doubles];
    const seq = this.#words[(doubles << 1) + 2];
    this.#head = (this.#head + 1) | 0;
    if (((this.#head - this.#released) | 0) >= PUBLISH_EVERY) this.release();
    return seq;
  }

  /** Hands every slot read so far back to the producer. */
  release(): void {
    if (this.#head !== this.#released) {
      Atomics.store(this.#words, HEAD, this.#head);
      this.#released = this.#head;
    }
  }

  /** Messages the consumer has released (producer side; wraps at 2³²). */
  released(): number {
    return Atomics.load(this.#words, HEAD);
  }
}
