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

/** Replaces the Worker's routing table. */
export interface RoutesMessage {
  /** Discriminant. */
  kind: "routes";
  /** Routes to every other live actor. */
  routes: RouteEntry[];
}

/** Host → Worker messages. */
export type HostToWorker = StartMessage | RoutesMessage;

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
  | { kind: "subscribe"; filter: string }
  | { kind: "unsubscribe"; filter: string }
  | { kind: "exited"; reason: "terminated" | "aborted" | "crashed" };

/** Turns anything thrown into a {@linkcode SerializedError}. */
export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    return { name: error.name, message: error.message, stack: error.stack };
  }
  return { name: "Error", message: String(error) };
}
