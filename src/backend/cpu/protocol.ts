/**
 * Messages exchanged between the host and a CPU actor's Worker. They carry
 * control only; actor messages travel through the shared rings.
 *
 * @module
 */

import type { ActorMemoryPlan } from "./actor_memory.ts";
import type { DeadLetterReason } from "../../dead_letter.ts";

/** Where another actor's rings are, so a Worker can send to it directly (K2K). */
export interface RouteEntry {
  /** The actor's name. */
  name: string;
  /** The actor's id. */
  id: number;
  /** The actor's memory block. */
  memory: SharedArrayBuffer;
  /** Offsets within `memory`. */
  plan: ActorMemoryPlan;
}

/** An error as it crosses a thread boundary. */
export interface SerializedError {
  /** Error class name. */
  name: string;
  /** Error message. */
  message: string;
  /** Stack trace, when available. */
  stack?: string;
}

/** Starts the actor loop in a fresh Worker. */
export interface StartMessage {
  /** Discriminant. */
  kind: "start";
  /** Actor name. */
  name: string;
  /** Actor id. */
  id: number;
  /** Restart generation of this loop (its `busy` word values carry it). */
  generation: number;
  /** The actor's memory block. */
  memory: SharedArrayBuffer;
  /** Offsets within `memory`. */
  plan: ActorMemoryPlan;
  /** URL of the module defining the actor. */
  module: string;
  /** Export holding the actor definition. */
  exportName: string;
  /** Launch-time configuration handed to the actor's `init`. */
  config: unknown;
  /** The snapshot to restore the state from instead of calling `init`. */
  restore?: RestoreSpec;
  /** Routes to every other live actor. */
  routes: RouteEntry[];
  /** How long the loop spins before sleeping when idle, in µs. */
  idleSpinMicros: number;
  /**
   * One i32 the backend keeps: how many actors it runs. While they and the
   * host outnumber the cores, an idle spin that found nothing shrinks (its
   * producer may be waiting for this core); otherwise it stays whole.
   */
  load: SharedArrayBuffer;
  /** Most messages handled per queue per loop turn. */
  batchSize: number;
  /** The runtime's clock skew bound (ms): messages stamped further ahead are dead-lettered. */
  maxSkewMs: number;
}

/** A snapshot the actor's `restore` rebuilds its state from, at its first start. */
export interface RestoreSpec {
  /** The snapshot's bytes (what the actor's `snapshot` made). */
  snapshot: Uint8Array;
  /** Messages the actor had handled when it was taken. */
  sequence: bigint;
  /** The checkpoint's id. */
  checkpointId: string;
}

/** Asks the loop for its actor's snapshot (taken while it is paused). */
export interface SnapshotRequest {
  /** Discriminant. */
  kind: "snapshot";
  /** Matches the answer. */
  request: number;
}

/** The host's answer to a {@linkcode RemoteSendRequest}. */
export interface RemoteSendResult {
  /** Discriminant. */
  kind: "remote-send-result";
  /** The request answered. */
  request: number;
  /** Why the send failed; absent when the serving node took the message. */
  error?: SerializedError;
}

/**
 * A K2K send to a name with no local route: the host forwards it through
 * its cluster node (or fails it with `UnknownActorError`).
 */
export interface RemoteSendRequest {
  /** Discriminant. */
  kind: "remote-send";
  /** Matches the answer. */
  request: number;
  /** The target's name. */
  target: string;
  /** The message: envelope and payload. */
  slot: Uint8Array;
  /** The send's deadline, in ms. */
  timeoutMs: number;
}

/** Replaces the Worker's routing table. */
export interface RoutesMessage {
  /** Discriminant. */
  kind: "routes";
  /** Routes to every other live actor. */
  routes: RouteEntry[];
}

/** Host → Worker messages. */
export type HostToWorker =
  | StartMessage
  | RoutesMessage
  | SnapshotRequest
  | RemoteSendResult;

/** Worker → host messages. */
export type WorkerToHost =
  | { kind: "ready" }
  | { kind: "start-failed"; error: SerializedError }
  | {
    kind: "dead-letter";
    reason: DeadLetterReason;
    detail: string;
    slot: Uint8Array;
  }
  | { kind: "crash"; error: SerializedError }
  /**
   * The loop is gone though the thread lives (Deno, after its heap reached
   * the limit inside a promise continuation): the host treats the thread as
   * dead.
   */
  | { kind: "died"; error: SerializedError }
  | { kind: "publish"; topic: string; slot: Uint8Array }
  /**
   * A deferred reply (`ctx.replyTo`): envelope (the answered call's
   * correlation id) and payload; the host routes it as a reply read from
   * the output ring.
   */
  | { kind: "reply"; slot: Uint8Array }
  | { kind: "subscribe"; filter: string }
  | { kind: "unsubscribe"; filter: string }
  | { kind: "exited"; reason: "terminated" | "aborted" | "crashed" }
  | {
    kind: "snapshot";
    request: number;
    bytes?: Uint8Array;
    error?: SerializedError;
  }
  | RemoteSendRequest;

/** Turns anything thrown into a {@linkcode SerializedError}. */
export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    return { name: error.name, message: error.message, stack: error.stack };
  }
  return { name: "Error", message: String(error) };
}
