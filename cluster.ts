/**
 * Runtimes in several processes and on several hosts as one cluster, on
 * NATS: actors launched `public` are reachable by name from every node
 * (`call`, `send`, `receive`), and topics are bridged between the nodes of a
 * tenant. A runtime joins with `RingKernel.create({ cluster })`, which loads
 * this code (and the `@nats-io/*` packages) only then; this module exports
 * the types, the errors and the subject mapping.
 *
 * ```ts ignore
 * import { RingKernel } from "ringkernel-ts";
 *
 * await using rt = await RingKernel.create({
 *   backend: "cpu",
 *   cluster: { servers: "nats://127.0.0.1:4222", name: "node-a" },
 * });
 * await rt.launch("echo", { actor: "echo", public: true });
 * // On any other node of the cluster:
 * const echo = await rt.cluster!.waitFor("echo");
 * console.log(await echo.call({ seq: 1n, value: 2.5, tag: 7 }));
 * ```
 *
 * @module
 */

export type {
  ClusterAuth,
  ClusterOptions,
  ClusterTls,
} from "./src/cluster/options.ts";
export type {
  CloseOptions,
  ClusterHost,
  ClusterMember,
  ClusterMetrics,
  HostDeadLetter,
  LookupOptions,
  MigrateOptions,
  MigratingLaunch,
  MigrationInfo,
  PausedActor,
  ServeOptions,
} from "./src/cluster/member.ts";
export {
  JetStreamCheckpointStore,
  type JetStreamCheckpointStoreOptions,
} from "./src/cluster/checkpoint_store.ts";
export type {
  ClusterDeadLetter,
  DeadLetterReadOptions,
  DurableServeOptions,
} from "./src/cluster/durable.ts";
export {
  RemoteActor,
  type RemoteSendOptions,
  type RemoteTransport,
} from "./src/cluster/remote_actor.ts";
export {
  ClusterAuthError,
  ClusterConnectionError,
  MigrationInDoubtError,
  RemoteActorGoneError,
  RemoteError,
} from "./src/cluster/errors.ts";
export { decodeToken, encodeToken, Subjects } from "./src/cluster/subjects.ts";
export type { HlcTimestamp, HybridClock } from "./src/hlc.ts";
