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
}

/** A runtime's node in a cluster, as `rt.cluster`. */
export interface ClusterMember {
  /** This node's name. */
  readonly name: string;
  /** The tenant. */
  readonly tenant: string;
  /** Whether the node is connected to a server now (it reconnects by itself). */
  readonly connected: boolean;
  /** The names this node serves. */
  readonly served: string[];
  /** This node's counters. */
  metrics(): ClusterMetrics;
  /**
   * Serves `kernel` under its name to the whole cluster (a launch with
   * `public: true` does this). Rejects with `InvalidStateError` when another
   * node serves the name already.
   */
  serve(kernel: Kernel): Promise<void>;
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
  /** Publishes a local topic message to the other nodes (the runtime does, for every publication). */
  publishTopic(topic: string, slot: Uint8Array): void;
  /** Leaves the cluster (the runtime does, at shutdown). */
  close(options?: CloseOptions): Promise<void>;
}
