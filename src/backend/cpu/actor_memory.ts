/**
 * The memory block of one CPU actor, shared by its host and its Worker:
 * control block, telemetry, worker words, and its three rings (host input,
 * K2K inbox, output), laid out by the planner both backends share
 * (`../memory_plan.ts`); and the protocol of the worker words, by which a
 * host that kills a loop knows what the loop was doing.
 *
 * @module
 */

import { QUEUE_LINE } from "../../layout.ts";
import { type ActorQueueOptions, planActorBlock } from "../memory_plan.ts";

/** Byte offsets of every part of an actor's memory block. */
export interface ActorMemoryPlan extends ActorQueueOptions {
  /** Offset of the control block. */
  readonly control: number;
  /** Offset of the telemetry buffer. */
  readonly telemetry: number;
  /** Offset of the worker words (i32). */
  readonly worker: number;
  /** Offset of the host → actor ring (SPSC). */
  readonly input: number;
  /** Offset of the K2K / pub-sub inbox ring (MPSC). */
  readonly inbox: number;
  /** Offset of the actor → host ring (SPSC). */
  readonly output: number;
  /** Total bytes. */
  readonly byteLength: number;
}

/**
 * i32 indices of the worker words. `busy` says what the loop of a given
 * restart generation is doing with the head slot of its queues (see
 * {@linkcode BusyState}), so a host that kills a loop knows whether it holds
 * a message, and a killed loop that keeps running cannot touch the queues
 * again; `mailbox` counts host messages posted to the Worker.
 */
export const WorkerWord = Object.freeze({
  /** `generation << 4 | BusyState`, or {@linkcode BUSY_TAKEN}. */
  busy: 0,
  /** Incremented by the host before each control message it posts. */
  mailbox: 1,
  /** Restart generation of the loop currently attached. */
  generation: 2,
  /**
   * Commit record: what the loop is committing ({@linkcode CommitKind}). The
   * loop writes the record before each commit of `busy`; the host reads it
   * only after it took a committed word.
   */
  commitKind: 3,
  /** Commit record: the message's index in its ring (`head` before the release). */
  commitHead: 4,
  /** Commit record: the output ring's `tail` before the reply is published. */
  commitReply: 5,
  /**
   * Commit record: the low 32 bits, before the message is counted, of the
   * counter it moves (processed, or the actor's dead letters).
   */
  commitCount: 6,
  /**
   * The generation of the loop while it runs the actor's own code
   * synchronously (`init`, or a handler up to its return or its first
   * `await`), else 0. A host that killed a loop which still shows its
   * generation here a while later knows the thread is still inside that
   * code: Deno's `Worker.terminate()` cannot interrupt synchronous code.
   */
  userCode: 7,
});

/**
 * What a loop commits. A host that finds a loop stopped inside its committed
 * window finishes what the record shows it started: a processed message whose
 * reply is out (or that has none) is counted unless the counter moved past
 * the record, and released unless `head` did; a dead letter the loop counted
 * is released and reported; a void slot is released. Otherwise the message
 * stays at the head, to be handled again or dead-lettered.
 */
export const CommitKind = Object.freeze({
  /** A dead letter: the handler failed (or its reply did not encode). */
  handlerError: 0,
  /** A processed message with a reply. */
  reply: 1,
  /** A processed message without a reply. */
  noReply: 2,
  /** A dead letter: the message is invalid. */
  invalidMessage: 3,
  /** A void slot: released, never counted. */
  voidSlot: 4,
});

/**
 * The low four bits of the `busy` word: which queue's head the loop holds
 * (`input` or `inbox`) plus its phase. While `handling` or `finishing`, a
 * host that kills the loop takes the message over; once `committed` (the
 * reply is being published, the message counted and released, with no
 * waits) it lets the loop finish.
 */
export const BusyState = Object.freeze({
  /** Not handling a message. */
  idle: 0,
  /** Holds the head of the host input ring. */
  input: 1,
  /** Holds the head of the K2K inbox. */
  inbox: 2,
  /** Phase: the handler returned; waiting for room for its reply. */
  finishing: 4,
  /** Phase: past the point of no return (publish, count, release). */
  committed: 8,
});

/** Mask of the {@linkcode BusyState} bits of the `busy` word. */
export const BUSY_STATE_MASK = 15;

/** `busy` after the host took the word from a loop it killed. */
export const BUSY_TAKEN = -1;

/** The `busy` value of an idle loop of `generation`. */
export function busyIdle(generation: number): number {
  return (generation & 0x07ffffff) << 4;
}

/** Bytes reserved for the worker words. */
const WORKER_WORDS_BYTES = QUEUE_LINE;

/** Lays out a CPU actor's memory block. */
export function planActorMemory(options: ActorQueueOptions): ActorMemoryPlan {
  return Object.freeze(
    planActorBlock(options, [
      { name: "worker", bytes: WORKER_WORDS_BYTES, align: QUEUE_LINE },
    ]),
  );
}
