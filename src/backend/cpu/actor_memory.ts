/**
 * The memory block of one CPU actor, shared by its host and its Worker:
 * control block, telemetry, worker words, and its three rings (host input,
 * K2K inbox, output), laid out by the planner both backends share
 * (`../memory_plan.ts`); and the protocol of the worker words, by which a
 * host that kills a loop knows what the loop was doing.
 *
 * @module
 */

import { availableParallelism } from "node:os";

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
  /** Commit record: the first message's index in its ring (`head` before the release). */
  commitHead: 4,
  /** Commit record: the output ring's `tail` before the replies are published. */
  commitReply: 5,
  /**
   * Commit record: the low 32 bits, before the message is counted, of the
   * counter the messages move (processed, or the actor's dead letters).
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
  /**
   * How many messages of its open group the loop holds while `handling` or
   * `finishing`: the messages `[head, head + taken)` of its source, the last
   * of them in its handler, the others handled and not yet committed. A host
   * that takes a handling or finishing word takes them all. The value is
   * {@linkcode takenWord} of the loop's generation; the loop moves it with a
   * compare-and-swap before each message, and the host swaps in
   * {@linkcode BUSY_TAKEN} once it took `busy`, so a killed loop stops there
   * and never writes a later generation's word.
   */
  taken: 8,
  /** Commit record: how many messages, from `commitHead`, the commit covers. */
  commitMessages: 9,
  /** Commit record: how many replies, from `commitReply`, it publishes. */
  commitReplies: 10,
});

/** How many worker words there are (i32). */
export const WORKER_WORD_COUNT = 11;

/**
 * The most messages a loop handles under one commit (a group): it counts,
 * releases and publishes their replies together. A kill while a group is
 * open takes every message of it, so a kill loses at most this many replies
 * of handled messages (dead-lettered instead, never lost or counted twice).
 */
export const COMMIT_GROUP = 16;

/** The `taken` word of a loop of `generation` holding `count` messages. */
export function takenWord(generation: number, count: number): number {
  return ((generation & 0x7fffff) << 8) | count;
}

/**
 * What a loop commits. A host that finds a loop stopped inside its committed
 * window finishes what the record shows it started: a range of processed
 * messages whose replies are out (or that has none) is counted unless the
 * counter moved past the record, and released unless `head` did; a dead
 * letter the loop counted is released and reported; a void slot is released.
 * Otherwise the messages stay at the head, to be handled again or
 * dead-lettered.
 */
export const CommitKind = Object.freeze({
  /** A dead letter: the handler failed (or its reply did not encode). */
  handlerError: 0,
  /** A range of processed messages, with `commitReplies` replies (one or more). */
  reply: 1,
  /** A range of processed messages without a reply. */
  noReply: 2,
  /** A dead letter: the message is invalid. */
  invalidMessage: 3,
  /** A void slot: released, never counted. */
  voidSlot: 4,
});

/**
 * The low four bits of the `busy` word: which queue's head the loop holds
 * (`input` or `inbox`) plus its phase. While `handling` or `finishing`, a
 * host that kills the loop takes the messages it holds (`taken`) over; once
 * `committed` (the replies are being published, the messages counted and
 * released, with no waits) it lets the loop finish.
 */
export const BusyState = Object.freeze({
  /** Not handling a message. */
  idle: 0,
  /** Holds the head of the host input ring. */
  input: 1,
  /** Holds the head of the K2K inbox. */
  inbox: 2,
  /** Phase: the group's last handler returned; waiting for room for its reply. */
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

/**
 * How many spins in a row must find nothing before a spin shrinks while
 * every running actor and the host have a core each: a lone spin that ran
 * out is no evidence of a producer starved by it (a tight call loop sees
 * one now and then, when a thread is preempted or collects garbage), and
 * shrinking on it would put the loop to sleep, or the caller in the event
 * loop, between the requests of that call loop: a wake-up costs tens of µs,
 * the p99 of `call()`. A producer that sends every few hundred µs still
 * shrinks the spin after this many, so its actor does not spin away a core.
 */
export const SPIN_SHRINK_STREAK = 64;

/** The cores of this machine, as the runtime sees them. */
const CORES = availableParallelism();

/**
 * Whether an idle spin (an actor's, or a host's waiting for a reply) that
 * ran out for the `streak`-th time in a row should shrink: at once while the
 * backend's running actors and the host outnumber the cores (`load` holds
 * how many actors run: the producer may be waiting for this core), else
 * only after {@linkcode SPIN_SHRINK_STREAK} in a row.
 */
export function spinShouldShrink(streak: number, load: Int32Array): boolean {
  return streak >= SPIN_SHRINK_STREAK || Atomics.load(load, 0) >= CORES;
}
