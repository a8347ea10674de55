/**
 * What a backend provides to the runtime: one {@linkcode ActorHost} per
 * launched actor, over the shared control block, telemetry and ring layouts.
 *
 * @module
 */

import type { ControlBlockView } from "../control_block.ts";
import type { DeadLetterReason } from "../dead_letter.ts";
import type { Ring, RingConsumer, RingProducer } from "../ring.ts";
import type { TelemetryView } from "../telemetry.ts";
import type { ActorQueueOptions } from "./memory_plan.ts";
import type { RestoreSpec, SerializedError } from "./cpu/protocol.ts";

/** The backends a runtime can use. */
export type BackendKind = "cpu" | "cuda";

/** Everything a backend needs to start one actor. */
export interface ActorSpawnSpec {
  /** Actor name (unique in the runtime). */
  name: string;
  /** Actor id (unique in the runtime, never 0: 0 is the host). */
  id: number;
  /** Queue sizes. */
  queue: ActorQueueOptions;
  /** URL of the module defining the actor. */
  module: string;
  /** Export holding the definition. */
  exportName: string;
  /** Launch-time configuration handed to the actor's `init`. */
  config: unknown;
  /**
   * A snapshot the actor's `restore` rebuilds its state from at its first
   * start (instead of `init`); restarts after a crash call `init`, unless
   * the runtime sets another with {@linkcode ActorHost.restoreOnNextStart}.
   */
  restore?: RestoreSpec;
  /** How long an idle actor spins before sleeping, in µs. */
  idleSpinMicros: number;
  /** Most messages handled per queue per loop turn. */
  batchSize: number;
  /**
   * The CPU backend under Deno: the most heap (V8 old generation, in MiB)
   * the actor's Worker may use; past it the actor crashes. Absent: the
   * engine's default limit, still reached as a crash of the actor rather
   * than of the process. Bun has no per-Worker limit and ignores it.
   */
  maxHeapMb?: number;
  /**
   * The runtime's clock skew bound in ms: the actor refuses (dead-letters
   * `invalid-message`) a message stamped further ahead of its clock.
   * Absent: `DEFAULT_MAX_SKEW_MS`.
   */
  maxSkewMs?: number;
}

/**
 * An actor's thread that its host terminated inside the actor's own code and
 * found still running it a while later: Deno's `Worker.terminate()` cannot
 * interrupt synchronous JavaScript, so it keeps a CPU busy until that code
 * returns, and keeps the process from exiting; only `Deno.exit()` ends it.
 */
export interface StuckThread {
  /** The actor's name. */
  readonly actor: string;
  /** The restart generation of the loop on that thread. */
  readonly generation: number;
  /** How long after the kill it was still running the actor's code, in ms. */
  readonly afterMs: number;
  /** The whole report, in words. */
  readonly message: string;
}

/** Why an actor loop ended. */
export type ActorExitReason = "terminated" | "aborted" | "crashed";

/** What an {@linkcode ActorHost} reports to the runtime. */
export interface ActorHostEvents {
  /**
   * A message could not be handled (the slot's bytes: envelope and payload).
   * `takenByHost` is true when the host took it from a dead loop, so the
   * actor's own counters do not include it.
   */
  onDeadLetter(
    reason: DeadLetterReason,
    detail: string,
    slot: Uint8Array,
    takenByHost: boolean,
  ): void;
  /** The actor crashed (its handler threw, or its thread died). */
  onCrash(error: SerializedError): void;
  /** The actor loop ended. */
  onExit(reason: ActorExitReason): void;
  /** The actor published a message (envelope and payload). */
  onPublish(topic: string, slot: Uint8Array): void;
  /**
   * The actor answered an earlier call later (`ctx.replyTo`; envelope and
   * payload): routed as a reply from its output ring. Absent: dropped.
   */
  onReply?(slot: Uint8Array): void;
  /**
   * The actor's device code sent (`rk_send`) to an actor the host serves
   * (see {@linkcode HostRoute}): `target` is the name's hash, `slot` the
   * message (envelope and payload). The runtime delivers it to that actor's
   * inbox, or dead-letters it. Absent: such sends are dead-lettered.
   */
  onDeviceSend?(target: bigint, slot: Uint8Array): void;
  /** The actor subscribed (`true`) to or unsubscribed from a topic filter. */
  onSubscription(filter: string, subscribe: boolean): void;
  /**
   * The actor sent (K2K) to `target`, a name no local actor has: forward it
   * (the runtime's cluster node does). Resolves once the serving node took
   * it; rejects with `UnknownActorError` where nothing serves the name.
   * Absent: such sends fail with `UnknownActorError`.
   */
  onRemoteSend?(
    target: string,
    slot: Uint8Array,
    timeoutMs: number,
  ): Promise<void>;
  /**
   * A thread the host terminated is stuck in the actor's code (see
   * {@linkcode StuckThread}); without this event the host writes the report
   * to `console.warn`.
   */
  onStuck?(thread: StuckThread): void;
}

/** A message that was being handled when its actor's thread was killed or died. */
export interface InFlightMessage {
  /** Copy of its slot (envelope and payload). */
  slot: Uint8Array;
}

/** The host side of one running actor. */
export interface ActorHost {
  /** The actor's control block. */
  readonly control: ControlBlockView;
  /** The actor's telemetry. */
  readonly telemetry: TelemetryView;
  /** Host → actor ring. */
  readonly inputRing: Ring;
  /** The host's producer on `inputRing`. */
  readonly input: RingProducer;
  /** Actor → host ring. */
  readonly outputRing: Ring;
  /** The host's consumer on `outputRing`. */
  readonly output: RingConsumer;
  /**
   * Sends the actor's device code had refused (full, unknown name, too
   * big); absent where actors send only by waiting (the CPU backend).
   */
  sendsRefused?(): number;
  /** K2K / pub-sub inbox ring, where the backend has one. */
  readonly inboxRing: Ring | undefined;
  /** Whether the actor loop is running (started and not yet exited or killed). */
  readonly running: boolean;
  /** Starts (or restarts) the actor loop; resolves once it runs. */
  start(timeoutMs: number): Promise<void>;
  /** Wakes a sleeping actor loop to look at its flags and queues. */
  wake(): void;
  /**
   * Whether a host's spin for a reply that ran out for the `streak`-th time
   * in a row should shrink. Absent: it shrinks every time.
   */
  spinShouldShrink?(streak: number): boolean;
  /**
   * Waits (briefly, bounded) while the actor is inside a commit that has
   * published replies but not yet counted their messages, so that a reading
   * of the counters taken after a reply arrived counts its message.
   */
  settleCommit?(): void;
  /**
   * Stops the actor loop at once without its cooperation; returns the
   * messages it was handling, oldest first, if any (already removed from
   * their queue): the one in its handler, and those before it that it had
   * handled but not yet committed (their replies never went out).
   */
  kill(): readonly InFlightMessage[];
  /** Releases everything; the actor must not be running. */
  dispose(): void;
  /**
   * The snapshot the next {@linkcode ActorHost.start} restores the state
   * from instead of running `init` (`undefined`: `init`); the runtime sets
   * it before a restart after a crash when the actor keeps checkpoints.
   * Absent where the backend cannot restore.
   */
  restoreOnNextStart?(restore: RestoreSpec | undefined): void;
  /**
   * The actor's snapshot of its state (its definition's `snapshot`), asked
   * of its loop while the actor is paused; rejects with `TimeoutError` when
   * no answer comes within `timeoutMs` (the CUDA backend copies the
   * actor's device state instead). Absent where the backend cannot take one.
   */
  snapshot?(timeoutMs: number): Promise<Uint8Array>;
}

/** An actor another backend runs, as a route through the host. */
export interface HostRoute {
  /** The actor's name. */
  readonly name: string;
  /** The actor's id. */
  readonly actorId: number;
  /** Slot size of its inbox (a message must fit one). */
  readonly slotSize: number;
  /** Type id of its input (what a send to it is stamped with). */
  readonly inputTypeId: number;
  /** Payload bytes of its input (a send of another size is refused). */
  readonly inputSize: number;
}

/** A backend: creates the host side of actors and keeps their K2K routes. */
export interface Backend {
  /** Which backend this is. */
  readonly kind: BackendKind;
  /** Creates (but does not start) the host side of one actor. */
  spawn(spec: ActorSpawnSpec, events: ActorHostEvents): ActorHost;
  /**
   * The live actors changed: update the K2K routes every actor sees.
   * `hostRoutes` are actors of another backend of the same runtime that
   * this backend's actors may send to through the host (the CUDA backend
   * routes `rk_send` to them through the sender's outbox); a backend
   * without such a path ignores them.
   */
  updateRoutes(
    actors: ReadonlyMap<string, ActorHost>,
    hostRoutes?: readonly HostRoute[],
  ): void;
  /** Releases what the backend holds; every actor must have stopped. */
  close(): Promise<void>;
  /**
   * Resolves an actor and loads what it needs before any actor starts (the
   * CUDA backend loads its kernel's module); absent when there is nothing to
   * load ahead.
   */
  prepare?(spec: { module: string; exportName: string }): Promise<void>;
  /** What the GPU runs and how (the CUDA backend only). */
  gpuInfo?(): GpuInfo;
  /**
   * Opens a group: the first starts of the actors named `names` are held
   * until all of them start, then launched together (the CUDA backend: one
   * pool kernel, one block each). Absent where a group is simply its actors.
   */
  openGroup?(names: readonly string[]): ActorGroupHandle;
}

/** An open group of {@linkcode Backend.openGroup}. */
export interface ActorGroupHandle {
  /** A member failed before it started: the held starts fail with `reason`. */
  cancel(reason: unknown): void;
  /** The group's launches settled: later starts of its names are the usual ones. */
  close(): void;
}

/** What `RingKernel.gpuInfo()` reports about the CUDA device and its use. */
export interface GpuInfo {
  /** The device's name, e.g. `"NVIDIA H200"`. */
  readonly device: string;
  /** Its ordinal. */
  readonly ordinal: number;
  /** Its compute capability, e.g. `"9.0"`. */
  readonly computeCapability: string;
  /** Its multiprocessors. */
  readonly multiprocessors: number;
  /** The driver's CUDA version (`cuDriverGetVersion`), e.g. `13000`. */
  readonly driverVersion: number;
  /**
   * How the driver loads kernels: `"eager"` unless the user chose otherwise
   * with `CUDA_MODULE_LOADING` (lazy loading can wait for an idle GPU, which
   * never comes while actors are resident).
   */
  readonly moduleLoading: "eager" | "lazy" | "unknown";
  /**
   * Where that mode came from: set by the library before the first `cuInit`,
   * the user's environment, a driver initialised earlier, or no C library.
   */
  readonly moduleLoadingSource:
    | "library"
    | "environment"
    | "preinitialised"
    | "unavailable";
  /** The bundle image loaded, e.g. `"ringkernel.sm_90.cubin"`. */
  readonly bundleImage: string;
  /** Grids resident on the device now (every runtime of the process). */
  readonly residentGrids: number;
  /** Blocks of those grids. */
  readonly residentBlocks: number;
  /** Actor-pool blocks (one actor each) that fit on the device at once. */
  readonly actorBlockCapacity: number;
  /** Mapped host memory reserved, in bytes (shared by the process's runtimes). */
  readonly hostReservedBytes: number;
  /** Device memory reserved, in bytes (shared likewise). */
  readonly deviceReservedBytes: number;
}

/**
 * Options of the CUDA backend, given to `RingKernel.create({ cuda })`.
 *
 * Every CUDA runtime of a process shares one session per device: its driver,
 * context, kernel bundle and memory reserves. Memory is reserved before any
 * kernel runs and grows only while none is resident (allocating beside a
 * resident kernel can wait behind it forever); the first runtime's sizes
 * apply, a later runtime's larger sizes are added while nothing is resident.
 */
export interface CudaRuntimeOptions {
  /** Device ordinal (default 0). */
  readonly device?: number;
  /** Mapped host memory (queues, control blocks) to reserve, in bytes (default 16 MiB). */
  readonly hostArenaBytes?: number;
  /** Device memory (K2K inboxes, actor state and data) to reserve, in bytes (default 16 MiB). */
  readonly deviceArenaBytes?: number;
}
