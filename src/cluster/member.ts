/**
 * The cluster as a runtime sees it, without loading any NATS code: what a
 * cluster node needs of its runtime ({@linkcode ClusterHost}) and what it
 * offers ({@linkcode ClusterMember}, reached as `rt.cluster`). The node
 * itself (`node.ts`) is imported only by a runtime created with a cluster.
 *
 * @module
 */

import type { HybridClock } from "../hlc.ts";
import type { Kernel } from "../kernel.ts";
import type { FieldsSpec } from "../message.ts";
import type { RemoteActor } from "./remote_actor.ts";
import type { DeadLetterReason } from "../dead_letter.ts";
import type {
  JetStreamCheckpointStore,
  JetStreamCheckpointStoreOptions,
} from "./checkpoint_store.ts";
import type {
  ClusterDeadLetter,
  DeadLetterReadOptions,
  DurableServeOptions,
} from "./durable.ts";

/** A dead letter of the runtime, as the cluster node hears of it. */
export interface HostDeadLetter {
  /** The actor the message was for. */
  readonly actor: string;
  /** Why it was not delivered. */
  readonly reason: DeadLetterReason;
  /** Extra words about the failure. */
  readonly detail?: string;
  /** The message: its type id and payload bytes. */
  readonly message: { readonly typeId: number; readonly payload: Uint8Array };
}

/**
 * Options of {@linkcode ClusterMember.migrate}. The actor moves in steps:
 * this node stops serving its name (plain requests meanwhile find no
 * responder, and the callers' nodes, told by this one where it goes, ask
 * again within their deadlines) and stops taking its durable messages
 * (they wait in the stream), lets the actor handle what it holds and
 * acknowledges it, pauses it, takes its snapshot, and sends its launch and
 * a full checkpoint record with a migration id to the target node, which
 * launches it restored but neither runs nor serves it and answers ready;
 * this node confirms by the id, and the target serves it (durably too when
 * this node did, knowing which durable messages were handled); this node
 * then terminates its copy. When the target fails or is too slow, this node
 * aborts the adoption (the target drops its copy, and drops one it was not
 * confirmed within its wait by itself) and the actor runs on here; when
 * the target took the confirmation but answers neither it nor the abort,
 * the migration fails with `MigrationInDoubtError` and the copy here stays
 * paused and unserved, so no two nodes serve the name.
 */
export interface MigrateOptions {
  /** The node to move the actor to. */
  to: string;
  /** Deadline of the whole move, in ms (default 30 000). */
  timeoutMs?: number;
}

/** What {@linkcode ClusterMember.migrate} reports. */
export interface MigrationInfo {
  /** The actor. */
  readonly actor: string;
  /** The node it left. */
  readonly from: string;
  /** The node it runs on now. */
  readonly to: string;
  /** Messages it had handled when it moved (since its first launch). */
  readonly sequence: bigint;
  /** Bytes of its snapshot. */
  readonly snapshotBytes: number;
  /** How long the actor was paused, in ms. */
  readonly pausedMs: number;
}

/** Options of {@linkcode ClusterMember.serve}. */
export interface ServeOptions {
  /**
   * Serve durably too (`true`, or options): durable sends to the actor
   * (`remote.send(msg, { durable: true })`) are stored in JetStream and
   * taken through a durable consumer that this node acknowledges once the
   * actor handled each message (at least once to the handler; see
   * docs/reliability.md). Needs JetStream on the servers.
   */
  durable?: boolean | DurableServeOptions;
}

/** An actor's launch as it travels to another node in a migration. */
export interface MigratingLaunch {
  /** A built-in's name, or the module (URL) and export of the actor. */
  readonly actor: string | {
    readonly module: string;
    readonly export?: string;
  };
  /** The launch's `config` (it travels as JSON). */
  readonly config?: unknown;
  /** Slots of the input queue. */
  readonly queueCapacity: number;
  /** Slots of the reply queue. */
  readonly outputCapacity: number;
  /** Bytes per slot, when the launch chose them. */
  readonly slotSize?: number;
  /** Idle spin, µs. */
  readonly idleSpinMicros: number;
  /** Messages per queue per loop turn. */
  readonly batchSize: number;
  /** Start deadline, ms. */
  readonly timeoutMs: number;
  /** Heap limit of the actor's thread, MiB. */
  readonly maxHeapMb?: number;
  /**
   * Where it ran: its snapshot restores only on the same side (a GPU
   * actor's device state on the GPU). Absent (older nodes): `"auto"`.
   */
  readonly placement?: "cpu" | "gpu";
}

/** An actor paused for a migration: how it was launched, and its state. */
export interface PausedActor {
  /** Its launch. */
  readonly launch: MigratingLaunch;
  /** Its snapshot (its definition's `snapshot`). */
  readonly snapshot: Uint8Array;
  /** Messages it had handled (since its first launch). */
  readonly sequence: bigint;
}

/** What a cluster node needs of its runtime. */
export interface ClusterHost {
  /** The runtime's clock: stamps what this node sends, merges what it receives. */
  readonly clock: HybridClock;
  /** The live kernel named `name`, if any. */
  kernel(name: string): Kernel | undefined;
  /**
   * Delivers a topic message from another node to the local subscribers
   * only (not back to the cluster); returns how many it reached.
   */
  deliverTopic(topic: string, slot: Uint8Array): number;
  /**
   * The runtime's dead letters: the node records those of the actors it
   * serves in the tenant's dead-letter stream.
   */
  readonly deadLetters?: {
    onDeadLetter(listener: (letter: HostDeadLetter) => void): Disposable;
  };
  /**
   * Pauses the actor `name` (deactivates it) and takes its snapshot: the
   * first half of a migration away from this node. Rejects (leaving it
   * running) when it cannot be paused or has no `snapshot`.
   */
  pauseForMigration?(name: string, timeoutMs: number): Promise<PausedActor>;
  /** Runs an actor paused by {@linkcode ClusterHost.pauseForMigration} again. */
  resumeAfterMigration?(name: string): Promise<void>;
  /**
   * Launches an actor that arrives by migration, its state restored from
   * the record `checkpoint` (an encoded full checkpoint), not activated:
   * the node activates it once the source confirms the migration.
   */
  adopt?(
    name: string,
    launch: MigratingLaunch,
    checkpoint: Uint8Array,
    timeoutMs: number,
  ): Promise<Kernel>;
}

/** Options of {@linkcode ClusterNode.remote} and {@linkcode ClusterNode.actor}. */
export interface LookupOptions {
  /** How long the look-up may take, in ms (default 5000). */
  timeoutMs?: number;
  /** Aborting rejects the look-up with `signal.reason`. */
  signal?: AbortSignal;
}

/** Options of {@linkcode ClusterNode.close}. */
export interface CloseOptions {
  /** How long operations this node serves may take to finish, in ms (default 10 000). */
  timeoutMs?: number;
}

/** Counters of a cluster node. */
export interface ClusterMetrics {
  /** Remote operations this node asked for. */
  readonly requests: number;
  /** Operations this node served for others. */
  readonly served: number;
  /** Topic messages published to the cluster. */
  readonly topicsOut: number;
  /** Topic messages received from the cluster. */
  readonly topicsIn: number;
  /** Messages refused because their timestamp was too far ahead. */
  readonly skewRejected: number;
  /** Remote operations in flight now. */
  readonly inFlight: number;
  /** Durable messages this node stored (each confirmed by the stream). */
  readonly durableSent: number;
  /** Durable messages put in the queues of the actors this node serves durably. */
  readonly durableDelivered: number;
  /** Durable deliveries recognised as repeats (not queued again). */
  readonly durableRedelivered: number;
  /** Durable messages acknowledged once handled. */
  readonly durableAcked: number;
  /** Dead letters this node recorded in the tenant's dead-letter stream. */
  readonly deadLettersRecorded: number;
}

/** A runtime's node in a cluster, as `rt.cluster`. */
export interface ClusterMember {
  /** This node's name. */
  readonly name: string;
  /** The tenant. */
  readonly tenant: string;
  /** Whether the node is connected to a server now (it reconnects by itself). */
  readonly connected: boolean;
  /**
   * Whether the servers offered JetStream to this node's account when it
   * joined: durable sends, durable serving and durable dead letters need it.
   */
  readonly durable: boolean;
  /** The names this node serves. */
  readonly served: string[];
  /** This node's counters. */
  metrics(): ClusterMetrics;
  /**
   * Serves `kernel` under its name to the whole cluster (a launch with
   * `public: true` does this). Rejects with `InvalidStateError` when another
   * node serves the name already. With `durable`, also takes the actor's
   * durable messages (rejects with `InvalidStateError` when the servers
   * have no JetStream).
   */
  serve(kernel: Kernel, options?: ServeOptions): Promise<void>;
  /** Stops serving `name` (the runtime does this when the kernel terminates). */
  unserve(name: string): void;
  /**
   * The actor named `name`: the local kernel when this runtime runs it (no
   * NATS hop), else a {@linkcode RemoteActor} on the node serving it.
   * Rejects with `UnknownActorError` when no node serves the name.
   */
  actor<I extends FieldsSpec = FieldsSpec, O extends FieldsSpec = FieldsSpec>(
    name: string,
    options?: LookupOptions,
  ): Promise<Kernel<I, O> | RemoteActor<I, O>>;
  /**
   * A {@linkcode RemoteActor} on the node serving `name`, over NATS even
   * when this runtime runs it. Rejects with `UnknownActorError` when no
   * node serves it, `TimeoutError` past `timeoutMs`.
   */
  remote<I extends FieldsSpec = FieldsSpec, O extends FieldsSpec = FieldsSpec>(
    name: string,
    options?: LookupOptions,
  ): Promise<RemoteActor<I, O>>;
  /**
   * Waits until some node serves `name`, then returns it like
   * {@linkcode ClusterMember.actor}; rejects with `TimeoutError` after
   * `timeoutMs` (default 30 000).
   */
  waitFor<I extends FieldsSpec = FieldsSpec, O extends FieldsSpec = FieldsSpec>(
    name: string,
    options?: LookupOptions,
  ): Promise<Kernel<I, O> | RemoteActor<I, O>>;
  /**
   * The newest dead letters of the tenant, oldest first (every node's):
   * those of the actors the nodes serve, and durable messages that could not
   * be delivered. Rejects with `InvalidStateError` when the servers have no
   * JetStream, `TimeoutError` past `timeoutMs` (default 5000).
   */
  deadLetters(options?: DeadLetterReadOptions): Promise<ClusterDeadLetter[]>;
  /**
   * Sends a message (a slot: envelope and payload) to the actor `target`
   * that another node serves, as a plain remote send (at most once); the
   * runtime does this for a K2K `ctx.send` to a name no local actor has.
   * Rejects like `RemoteActor.send`: `UnknownActorError` when no node
   * serves the name.
   */
  forwardSend(
    target: string,
    slot: Uint8Array,
    options: { timeoutMs: number },
  ): Promise<void>;
  /**
   * Moves the actor `name` to the node `options.to`, its state with it:
   * pause, snapshot, transfer, restore there, route switch (see
   * {@linkcode MigrateOptions}). Called on any node: one that does not run
   * the actor asks the node that does.
   */
  migrate(name: string, options: MigrateOptions): Promise<MigrationInfo>;
  /**
   * A checkpoint store in the tenant's JetStream stream
   * `RK_<tenant>_CHECKPOINTS` (every node reads what another wrote; a
   * record must fit the servers' `max_payload`), keeping the newest
   * `options.keepChains` chains of records per actor (default 1). Rejects
   * with `InvalidStateError` when the servers have no JetStream.
   */
  checkpointStore(
    options?: JetStreamCheckpointStoreOptions,
  ): Promise<JetStreamCheckpointStore>;
  /** Publishes a local topic message to the other nodes (the runtime does, for every publication). */
  publishTopic(topic: string, slot: Uint8Array): void;
  /** Leaves the cluster (the runtime does, at shutdown). */
  close(options?: CloseOptions): Promise<void>;
}
