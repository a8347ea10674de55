/**
 * A bounded dead-letter queue: where undeliverable messages go, with a reason.
 *
 * Nothing leaves uncounted. At every moment
 * `totalCount === size + drainedCount + evictedCount`: a letter is either held,
 * handed out by {@linkcode DeadLetterQueue.drain}, or evicted (the oldest
 * letters make room for new ones once the queue is at capacity).
 *
 * @module
 */

import { RingKernelError } from "./errors.ts";
import { type Subscription, subscription } from "./pubsub.ts";

/**
 * Why a message could not be delivered:
 * - `queue-full`: the target's queue had no room and the sender would not wait;
 * - `actor-terminated`: the target had terminated (or terminated with the
 *   message still queued);
 * - `aborted`: the target was aborted, dropping its queue;
 * - `unknown-target`: no actor has the target name;
 * - `handler-error`: the target's handler failed on the message;
 * - `expired`: the message passed its deadline before delivery;
 * - `invalid-message`: the message was malformed or could not be encoded.
 */
export type DeadLetterReason =
  | "queue-full"
  | "actor-terminated"
  | "aborted"
  | "unknown-target"
  | "handler-error"
  | "expired"
  | "invalid-message";

/** One entry per reason: the compiler checks that none is missing. */
const REASON_TABLE: Readonly<Record<DeadLetterReason, true>> = {
  "queue-full": true,
  "actor-terminated": true,
  "aborted": true,
  "unknown-target": true,
  "handler-error": true,
  "expired": true,
  "invalid-message": true,
};

/** Every {@linkcode DeadLetterReason}, in a fixed order. */
export const DEAD_LETTER_REASONS: readonly DeadLetterReason[] = Object.freeze(
  Object.keys(REASON_TABLE) as DeadLetterReason[],
);

/** One undeliverable message, as stored by {@linkcode DeadLetterQueue}. */
export interface DeadLetter<M> {
  /** The message that could not be delivered. */
  readonly message: M;
  /** Why it could not be delivered. */
  readonly reason: DeadLetterReason;
  /** The name of the actor it was meant for. */
  readonly actor: string;
  /** Extra words about the failure (an error message, say). */
  readonly detail?: string;
  /** When it was dead-lettered, in milliseconds from the queue's clock. */
  readonly timestamp: number;
  /** Its position among every letter pushed to the queue, from 0. */
  readonly sequence: number;
}

/** What {@linkcode DeadLetterQueue.push} takes. */
export interface DeadLetterInput<M> {
  /** The message that could not be delivered. */
  message: M;
  /** Why it could not be delivered. */
  reason: DeadLetterReason;
  /** The name of the actor it was meant for. */
  actor: string;
  /** Extra words about the failure. */
  detail?: string;
  /** When it happened; defaults to the queue's clock. */
  timestamp?: number;
}

/** Called with each letter as it is pushed. */
export type DeadLetterListener<M> = (letter: DeadLetter<M>) => void;

/** Letters held by default before the oldest are evicted. */
export const DEFAULT_DEAD_LETTER_CAPACITY = 1024;

/** Options of the {@linkcode DeadLetterQueue} constructor. */
export interface DeadLetterQueueOptions {
  /**
   * Letters held before the oldest are evicted (counted in `evictedCount`);
   * 0 keeps none and only counts. Default 1024.
   */
  capacity?: number;
  /** Clock for timestamps, in milliseconds. Default `Date.now`. */
  clock?: () => number;
  /**
   * Receives errors thrown by listeners, which never disturb the queue.
   * Defaults to writing them to `console.error`.
   */
  onListenerError?: (error: unknown, letter: DeadLetter<unknown>) => void;
}

const REASONS: ReadonlySet<string> = new Set(DEAD_LETTER_REASONS);

function zeroCounts(): Record<DeadLetterReason, number> {
  const counts = {} as Record<DeadLetterReason, number>;
  for (const reason of DEAD_LETTER_REASONS) counts[reason] = 0;
  return counts;
}

function defaultListenerError(error: unknown): void {
  console.error("dead-letter listener failed:", error);
}

/**
 * A bounded FIFO of {@linkcode DeadLetter}s with per-reason counters and
 * listeners.
 *
 * @typeParam M The message type.
 */
export class DeadLetterQueue<M> {
  readonly #capacity: number;
  readonly #clock: () => number;
  readonly #onListenerError: (
    error: unknown,
    letter: DeadLetter<unknown>,
  ) => void;
  /** Ring of held letters: the oldest is at `#head`. */
  readonly #slots: Array<DeadLetter<M> | undefined>;
  #head = 0;
  #size = 0;
  #total = 0;
  #evicted = 0;
  #drained = 0;
  #counts = zeroCounts();
  #listeners: DeadLetterListener<M>[] = [];

  /**
   * Creates an empty queue.
   *
   * @throws {RingKernelError} when `capacity` is not a non-negative safe integer.
   */
  constructor(options: DeadLetterQueueOptions = {}) {
    const capacity = options.capacity ?? DEFAULT_DEAD_LETTER_CAPACITY;
    if (!Number.isSafeInteger(capacity) || capacity < 0) {
      throw new RingKernelError(
        `dead-letter capacity must be a non-negative integer, got ${capacity}`,
      );
    }
    this.#capacity = capacity;
    this.#clock = options.clock ?? Date.now;
    this.#onListenerError = options.onListenerError ?? defaultListenerError;
    this.#slots = [];
  }

  /** Most letters held at once. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Letters held now. */
  get size(): number {
    return this.#size;
  }

  /** Letters ever pushed. */
  get totalCount(): number {
    return this.#total;
  }

  /** Letters evicted to make room (oldest first) since the queue was created. */
  get evictedCount(): number {
    return this.#evicted;
  }

  /** Letters handed out by {@linkcode DeadLetterQueue.drain}. */
  get drainedCount(): number {
    return this.#drained;
  }

  /**
   * Records an undeliverable message, evicting the oldest held letter when
   * the queue is full, then tells every listener.
   *
   * @returns the stored letter.
   * @throws {RingKernelError} when `reason` is not a {@linkcode DeadLetterReason}
   * or `actor` is not a string (nothing is recorded).
   */
  push(input: DeadLetterInput<M>): DeadLetter<M> {
    const { reason, actor, detail } = input;
    if (!REASONS.has(reason)) {
      throw new RingKernelError(
        `unknown dead-letter reason ${
          JSON.stringify(reason)
        }; expected one of ${DEAD_LETTER_REASONS.join(", ")}`,
      );
    }
    if (typeof actor !== "string") {
      throw new RingKernelError(
        `dead-letter actor must be a string, got ${typeof actor}`,
      );
    }
    const letter: DeadLetter<M> = {
      message: input.message,
      reason,
      actor,
      ...(detail === undefined ? {} : { detail: String(detail) }),
      timestamp: input.timestamp ?? this.#clock(),
      sequence: this.#total,
    };
    this.#total++;
    this.#counts[reason]++;
    const capacity = this.#capacity;
    if (capacity === 0) {
      this.#evicted++;
    } else if (this.#size === capacity) {
      this.#slots[this.#head] = letter; // overwrite the oldest
      this.#head = (this.#head + 1) % capacity;
      this.#evicted++;
    } else {
      this.#slots[(this.#head + this.#size) % capacity] = letter;
      this.#size++;
    }
    const listeners = this.#listeners;
    for (let i = 0; i < listeners.length; i++) {
      try {
        listeners[i](letter);
      } catch (error) {
        this.#onListenerError(error, letter);
      }
    }
    return letter;
  }

  /** The oldest held letter, left in place, or `undefined` when empty. */
  peek(): DeadLetter<M> | undefined {
    return this.#size === 0 ? undefined : this.#slots[this.#head];
  }

  /**
   * Removes and returns held letters, oldest first.
   *
   * @param max Most letters to take; default all.
   * @throws {RingKernelError} when `max` is not a non-negative integer.
   */
  drain(max: number = Infinity): DeadLetter<M>[] {
    if (max !== Infinity && (!Number.isSafeInteger(max) || max < 0)) {
      throw new RingKernelError(
        `drain count must be a non-negative integer, got ${max}`,
      );
    }
    const take = Math.min(max, this.#size);
    const out = new Array<DeadLetter<M>>(take);
    const slots = this.#slots;
    const capacity = this.#capacity;
    for (let i = 0; i < take; i++) {
      out[i] = slots[this.#head]!;
      slots[this.#head] = undefined; // let the message be collected
      this.#head = (this.#head + 1) % capacity;
    }
    this.#size -= take;
    if (this.#size === 0) this.#head = 0;
    this.#drained += take;
    return out;
  }

  /** Letters ever pushed with `reason`. */
  countOf(reason: DeadLetterReason): number {
    return this.#counts[reason] ?? 0;
  }

  /** Letters ever pushed, by reason (every reason present, zero or more). */
  counts(): Record<DeadLetterReason, number> {
    return { ...this.#counts };
  }

  /**
   * Calls `listener` with every letter pushed from now on, until the
   * returned subscription is unsubscribed or disposed.
   */
  onDeadLetter(listener: DeadLetterListener<M>): Subscription {
    if (typeof listener !== "function") {
      throw new RingKernelError("dead-letter listener must be a function");
    }
    // Copy on write, so a listener may unsubscribe while being called.
    this.#listeners = [...this.#listeners, listener];
    return subscription(() => {
      const index = this.#listeners.indexOf(listener);
      if (index !== -1) {
        const next = this.#listeners.slice();
        next.splice(index, 1);
        this.#listeners = next;
      }
    });
  }
}
