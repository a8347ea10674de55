/**
 * Access to one {@linkcode CONTROL_BLOCK}: the flags the host writes and the
 * counters the actor writes, over any buffer (SharedArrayBuffer for CPU
 * actors, mapped pinned memory for GPU actors).
 *
 * @module
 */

import { CONTROL_BLOCK, type FieldLayout } from "./layout.ts";

type Buffer = ArrayBuffer | SharedArrayBuffer;

function word32(field: FieldLayout): number {
  return field.offset >> 2;
}
function word64(field: FieldLayout): number {
  return field.offset >> 3;
}

const F = CONTROL_BLOCK.fields;
const IS_ACTIVE = word32(F.isActive);
const SHOULD_TERMINATE = word32(F.shouldTerminate);
const HAS_TERMINATED = word32(F.hasTerminated);
const ERRORS = word32(F.errorsEncountered);
const SHOULD_ABORT = word32(F.shouldAbort);
const LAST_ERROR = word32(F.lastErrorCode);
const ABI = word32(F.abiVersion);
const ACTOR_ID = word32(F.actorId);
const PROCESSED = word64(F.messagesProcessed);
const K2K_RECEIVED = word64(F.k2kReceived);
const PAUSE_REQUEST = word32(F.pauseRequest);
const PAUSE_ACK = word32(F.pauseAck);
const LAST_ACTIVITY = word64(F.lastActivityTicks);

/** Reads and writes one control block; every access is atomic. */
export class ControlBlockView {
  /** i32 words of the block. */
  readonly #i32: Int32Array;
  /** i64 words of the block. */
  readonly #i64: BigInt64Array;
  /** Byte offset of the block in its buffer. */
  readonly byteOffset: number;

  /** Views the block at `byteOffset` (a multiple of 128) of `buffer`. */
  constructor(buffer: Buffer, byteOffset = 0) {
    if (byteOffset % CONTROL_BLOCK.align !== 0) {
      throw new RangeError(
        `control block offset ${byteOffset} is not ${CONTROL_BLOCK.align}-aligned`,
      );
    }
    this.byteOffset = byteOffset;
    this.#i32 = new Int32Array(buffer, byteOffset, CONTROL_BLOCK.size / 4);
    this.#i64 = new BigInt64Array(buffer, byteOffset, CONTROL_BLOCK.size / 8);
  }

  /** Zeroes the block and stamps the ABI version and actor id. */
  initialise(options: { abiVersion: number; actorId: number }): void {
    this.#i32.fill(0);
    Atomics.store(this.#i32, ABI, options.abiVersion);
    Atomics.store(this.#i32, ACTOR_ID, options.actorId);
  }

  /** Whether the actor should process messages (host-written). */
  get isActive(): boolean {
    return Atomics.load(this.#i32, IS_ACTIVE) !== 0;
  }
  set isActive(value: boolean) {
    Atomics.store(this.#i32, IS_ACTIVE, value ? 1 : 0);
  }

  /** Whether the actor should stop after draining its queues (host-written). */
  get shouldTerminate(): boolean {
    return Atomics.load(this.#i32, SHOULD_TERMINATE) !== 0;
  }
  set shouldTerminate(value: boolean) {
    Atomics.store(this.#i32, SHOULD_TERMINATE, value ? 1 : 0);
  }

  /** Whether the actor should stop at once, without draining (host-written). */
  get shouldAbort(): boolean {
    return Atomics.load(this.#i32, SHOULD_ABORT) !== 0;
  }
  set shouldAbort(value: boolean) {
    Atomics.store(this.#i32, SHOULD_ABORT, value ? 1 : 0);
  }

  /** `TerminationState` value (actor-written). */
  get hasTerminated(): number {
    return Atomics.load(this.#i32, HAS_TERMINATED);
  }
  set hasTerminated(value: number) {
    Atomics.store(this.#i32, HAS_TERMINATED, value);
  }

  /** Errors the actor encountered (actor-written). */
  get errorsEncountered(): number {
    return Atomics.load(this.#i32, ERRORS);
  }

  /** Counts one error and records its code (actor-written). */
  recordError(code: number): void {
    Atomics.add(this.#i32, ERRORS, 1);
    Atomics.store(this.#i32, LAST_ERROR, code);
  }

  /** Code of the last error the actor recorded; 0 when none. */
  get lastErrorCode(): number {
    return Atomics.load(this.#i32, LAST_ERROR);
  }

  /** ABI version stamped at initialisation. */
  get abiVersion(): number {
    return Atomics.load(this.#i32, ABI);
  }

  /** The actor's id. */
  get actorId(): number {
    return Atomics.load(this.#i32, ACTOR_ID);
  }

  /** Messages the actor processed (actor-written). */
  get messagesProcessed(): bigint {
    return Atomics.load(this.#i64, PROCESSED);
  }

  /**
   * The low 32 bits of the processed counter (one i32 load, little-endian):
   * enough to tell whether it moved past a value read moments before.
   */
  get messagesProcessedLow(): number {
    return Atomics.load(this.#i32, PROCESSED * 2) >>> 0;
  }

  /** Adds one to the processed counter (actor-written; the per-message path). */
  addOneProcessed(): void {
    Atomics.add(this.#i64, PROCESSED, 1n);
  }

  /** Adds `n` to the processed counter (actor-written). */
  addProcessed(n: number): void {
    Atomics.add(this.#i64, PROCESSED, BigInt(n));
  }

  /**
   * Messages the actor took from a K2K inbox the host cannot see (a GPU
   * actor's, in device memory), processed or dead-lettered (actor-written).
   */
  get k2kReceived(): bigint {
    return Atomics.load(this.#i64, K2K_RECEIVED);
  }

  /** The host's latest pause request (host-written: bumped by every deactivate). */
  get pauseRequest(): number {
    return Atomics.load(this.#i32, PAUSE_REQUEST);
  }
  set pauseRequest(value: number) {
    Atomics.store(this.#i32, PAUSE_REQUEST, value);
  }

  /**
   * The last pause request the actor read while it saw `isActive` false
   * (actor-written); from then on it takes nothing until it is active again.
   */
  get pauseAck(): number {
    return Atomics.load(this.#i32, PAUSE_ACK);
  }
  set pauseAck(value: number) {
    Atomics.store(this.#i32, PAUSE_ACK, value);
  }

  /** Adds `n` to the K2K received counter (actor-written). */
  addK2kReceived(n: number): void {
    Atomics.add(this.#i64, K2K_RECEIVED, BigInt(n));
  }

  /** The actor's last heartbeat, in its clock's ticks (ns). */
  get lastActivityTicks(): bigint {
    return Atomics.load(this.#i64, LAST_ACTIVITY);
  }
  set lastActivityTicks(value: bigint) {
    Atomics.store(this.#i64, LAST_ACTIVITY, value);
  }
}
