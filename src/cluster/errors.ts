/**
 * Typed errors of the cluster (`ringkernel-ts/cluster`), beside those of
 * `src/errors.ts` that remote operations raise as local ones do
 * ({@linkcode UnknownActorError} when no node serves a name,
 * {@linkcode TimeoutError} at a deadline, {@linkcode QueueFullError} when the
 * outbound buffer or the remote queue stays full, {@linkcode ClockSkewError}
 * when a node's clock runs too far ahead):
 *
 * - {@linkcode ClusterConnectionError}: the NATS servers could not be
 *   reached, or refused the TLS handshake;
 * - {@linkcode ClusterAuthError} (a `ClusterConnectionError`): the servers
 *   refused the credentials;
 * - {@linkcode RemoteActorGoneError}: the node serving an actor left (or
 *   stopped answering) while an operation on the actor was in flight;
 * - {@linkcode RemoteError}: the serving node failed with an error that has
 *   no typed counterpart here (its name and message are kept);
 * - {@linkcode MigrationInDoubtError}: a migration's target took the
 *   confirmation but neither its answer nor that of an abort came back.
 *
 * @module
 */

import {
  type ClockSkewError,
  type QueueFullError,
  RingKernelError,
  type RingKernelErrorOptions,
  type TimeoutError,
  type UnknownActorError,
} from "../errors.ts";

/** The cluster's NATS servers could not be reached, or refused this node. */
export class ClusterConnectionError extends RingKernelError {
  /** The servers that were tried. */
  readonly servers: readonly string[];
  /** Creates the error; `detail` says why (the NATS client's error is the cause). */
  constructor(
    servers: readonly string[],
    detail: string,
    options?: RingKernelErrorOptions,
  ) {
    super(
      `cannot join the cluster at ${servers.join(", ")}: ${detail}`,
      options,
    );
    this.servers = servers;
  }
}

/**
 * The servers refused this node's credentials (a wrong user or password, an
 * unknown nkey, a bad token): a {@linkcode ClusterConnectionError} whose
 * cause is the refusal.
 */
export class ClusterAuthError extends ClusterConnectionError {
  /** Creates the error; `detail` is the servers' refusal. */
  constructor(
    servers: readonly string[],
    detail: string,
    options?: RingKernelErrorOptions,
  ) {
    super(servers, `credentials refused: ${detail}`, options);
  }
}

/**
 * The node that served an actor left the cluster (it announced it, or it no
 * longer answers pings) while an operation on the actor was in flight: the
 * operation's outcome is unknown. A later operation looks the name up again
 * (the actor may be served elsewhere by then).
 */
export class RemoteActorGoneError extends RingKernelError {
  /** The actor's name. */
  readonly actor: string;
  /** The node that served it. */
  readonly node: string;
  /** Creates the error for one actor and its node. */
  constructor(actor: string, node: string, detail: string) {
    super(`actor "${actor}" on node "${node}" is gone: ${detail}`);
    this.actor = actor;
    this.node = node;
  }
}

/** The serving node failed with an error that has no typed counterpart here. */
export class RemoteError extends RingKernelError {
  /** The error's class name on the serving node. */
  readonly remoteName: string;
  /** Creates the error from the serving node's report. */
  constructor(remoteName: string, message: string) {
    super(`remote ${remoteName}: ${message}`);
    this.remoteName = remoteName;
  }
}

/**
 * A migration whose target was sent the confirmation (the second phase)
 * but did not answer it, nor the aborts that followed, within the deadline
 * and a grace: the target may serve the actor. So that no two nodes serve
 * it, the source keeps its copy paused and does not serve it; find out
 * which node serves the name (`rt.cluster.remote(name)`), and terminate or
 * activate the source's copy accordingly.
 */
export class MigrationInDoubtError extends RingKernelError {
  /** The actor. */
  readonly actor: string;
  /** The target node. */
  readonly to: string;
  /** The migration's id. */
  readonly migrationId: string;
  /** Creates the error. */
  constructor(actor: string, to: string, migrationId: string) {
    super(
      `migration ${migrationId} of "${actor}" to "${to}" is in doubt: the target took the confirmation and did not answer it or an abort; the copy here stays paused and unserved`,
    );
    this.actor = actor;
    this.to = to;
    this.migrationId = migrationId;
  }
}

// For the links of the module doc.
export type { ClockSkewError, QueueFullError, TimeoutError, UnknownActorError };
