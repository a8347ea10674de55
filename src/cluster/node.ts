/**
 * A runtime's membership in a cluster of runtimes on NATS: it serves the
 * runtime's public actors under their names, reaches the actors other nodes
 * serve ({@linkcode RemoteActor}), and bridges the runtime's topics with
 * every other node of the tenant.
 *
 * Subjects (see `subjects.ts`): an actor named `n` is served on
 * `rk.<tenant>.actor.<n>.{call,send,receive,describe}` by exactly one node
 * (a queue group, and a name served elsewhere is refused); a node answers
 * pings on `rk.<tenant>.node.<node>.ping` and announces its leave on
 * `rk.<tenant>.node.<node>.leave`; a topic `a/b` travels on
 * `rk.<tenant>.topic.a.b`.
 *
 * Local traffic never crosses NATS: `actor(name)` returns the local kernel
 * when there is one, a local publish reaches local subscribers directly
 * (and is also published to NATS, from which this node does not receive its
 * own messages back), and a message from NATS is delivered only to local
 * subscribers. Every message carries its sender's HLC timestamp in its
 * envelope; the receiving node merges it into its clock, refusing (with
 * `ClockSkewError`) one further ahead than the clock's skew bound.
 *
 * @module
 */

import { hostname } from "node:os";
import process from "node:process";
import { connect } from "@nats-io/transport-node";
import {
  jetstream,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
} from "@nats-io/jetstream";
import {
  AuthorizationError,
  type ConnectionOptions,
  Empty,
  headers as natsHeaders,
  type Msg,
  type NatsConnection,
  nkeyAuthenticator,
  nuid,
  RequestError,
  type Subscription as NatsSubscription,
  TimeoutError as NatsTimeoutError,
} from "@nats-io/nats-core";
import {
  ClockSkewError,
  InvalidOptionError,
  InvalidStateError,
  QueueFullError,
  TimeoutError,
  UnknownActorError,
} from "../errors.ts";
import type { HlcTimestamp } from "../hlc.ts";
import type { Kernel } from "../kernel.ts";
import type { FieldsSpec } from "../message.ts";
import { delay } from "../async.ts";
import {
  checkOptionsObject,
  checkWaitOptions,
  MAX_TIMEOUT_MS,
} from "../options.ts";
import {
  ClusterAuthError,
  ClusterConnectionError,
  MigrationInDoubtError,
  RemoteActorGoneError,
} from "./errors.ts";
import type { DeadLetterReason } from "../dead_letter.ts";
import { checkInteger, checkPositiveTimeoutMs } from "../runtime_options.ts";
import {
  type ClusterDeadLetter,
  deadLetterHeaders,
  type DeadLetterReadOptions,
  type DurableServeOptions as DurableServeOptionsType,
  DurableServing,
  ensureStreams,
  isConsumerNotFound,
  isStreamNotFound,
  NODE_HEADER,
  readDeadLetters,
  splitSlot,
} from "./durable.ts";
import { checkClusterOptions, type CheckedClusterOptions } from "./options.ts";
import type {
  CloseOptions,
  ClusterHost,
  ClusterMember,
  ClusterMetrics,
  LookupOptions,
  MigrateOptions,
  MigratingLaunch,
  MigrationInfo,
  ServeOptions,
} from "./member.ts";
import { buildCheckpoint } from "../checkpoint.ts";
import {
  checkKeepChains,
  ensureCheckpointStream,
  JetStreamCheckpointStore,
  type JetStreamCheckpointStoreOptions,
} from "./checkpoint_store.ts";
import {
  type AdoptionDecision,
  type AdoptionState,
  decodeTransfer,
  encodeTransfer,
  type MigrateRequest,
  type TransferHeader,
  waitUntil,
} from "./migrate.ts";
import { RemoteActor, type RemoteTransport } from "./remote_actor.ts";
import { type ActorOperation, Subjects } from "./subjects.ts";
import {
  type ActorDescription,
  decodeSlot,
  describeSchema,
  encodeSlot,
  ERROR_HEADER,
  errorFromHeaders,
  errorHeaders,
  type ReadSlot,
  readSlot,
  schemaFrom,
  TIMEOUT_HEADER,
} from "./wire.ts";

/** An operation in flight, for the liveness check of its node. */
interface InFlight {
  readonly node: string;
  readonly actor: string;
  readonly since: number;
  readonly fail: (error: Error) => void;
}

const LOOKUP_TIMEOUT_MS = 5000;
/**
 * How long a node that migrated an actor away still answers where it went
 * (a caller refused just before the target served it asks then), in ms.
 */
const MOVED_ANSWER_MS = 2000;
/** Past a migration's deadline, how long its source asks the target to abort. */
const ABORT_GRACE_MS = 5000;
/** How long a target remembers an adoption decided, for late questions. */
const ADOPTION_MEMORY_MS = 60_000;

/** An actor arriving by migration, on its target. */
interface Adoption {
  /** The actor. */
  readonly name: string;
  /** Its transfer's head. */
  readonly header: TransferHeader;
  /** Launching; launched and waiting for the confirmation; serving; dropped. */
  state: "adopting" | "ready" | "committed" | "aborted";
  /** The copy, once launched. */
  kernel?: Kernel;
  /** Drops a ready copy without confirmation; then forgets the adoption. */
  timer?: ReturnType<typeof setTimeout>;
}
const SERVE_QUEUE = "rk";
/** Missed pings after which a node that still has subscribers counts as gone. */
const MISSED_PINGS = 3;

function defaultNodeName(): string {
  return `${hostname()}-${process.pid}-${
    Math.floor(Math.random() * 0xffffff).toString(16)
  }`;
}

function isNoResponders(error: unknown): boolean {
  return error instanceof RequestError && error.isNoResponders();
}

/** The typed error of a failed connect: {@linkcode ClusterAuthError} for refused credentials. */
function connectionError(
  servers: readonly string[],
  error: unknown,
): ClusterConnectionError {
  const detail = error instanceof Error ? error.message : String(error);
  if (
    error instanceof AuthorizationError ||
    /authoriz|authenticat/i.test(detail)
  ) {
    return new ClusterAuthError(servers, detail, { cause: error });
  }
  return new ClusterConnectionError(servers, detail, { cause: error });
}

/** Checks the options of a durable serving; returns them with defaults. */
function checkDurableOptions(
  options: unknown,
): Required<DurableServeOptionsType> {
  const o = checkOptionsObject<DurableServeOptionsType>("durable", options);
  return {
    ackWaitMs: checkPositiveTimeoutMs("durable.ackWaitMs", o.ackWaitMs, 30_000),
    maxAckPending: checkInteger("durable.maxAckPending", o.maxAckPending, {
      min: 1,
      max: 1 << 16,
      fallback: 1024,
    }),
  };
}

function sum(
  servings: Map<string, DurableServing>,
  key: "delivered" | "redelivered" | "acked",
): number {
  let total = 0;
  for (const serving of servings.values()) total += serving.counts[key];
  return total;
}

function isNatsTimeout(error: unknown): boolean {
  return error instanceof NatsTimeoutError ||
    (error instanceof Error && error.cause instanceof NatsTimeoutError);
}

/**
 * A runtime's node in a cluster. The runtime creates it for
 * `RingKernel.create({ cluster })` and closes it at shutdown; reach it as
 * `rt.cluster`.
 */
export class ClusterNode implements ClusterMember {
  /** This node's name. */
  readonly name: string;
  /** The tenant. */
  readonly tenant: string;
  /** The tenant's subjects. */
  readonly subjects: Subjects;
  readonly #nc: NatsConnection;
  readonly #host: ClusterHost;
  readonly #options: CheckedClusterOptions;
  readonly #served = new Map<string, NatsSubscription>();
  /** Operations being served, with the actor each is for. */
  readonly #serving = new Map<Promise<void>, string>();
  readonly #inFlight = new Set<InFlight>();
  #outbound = 0;
  #liveness: ReturnType<typeof setInterval> | undefined;
  readonly #missed = new Map<string, number>();
  #closing: Promise<void> | undefined;
  #connected = true;
  #requests = 0;
  #servedCount = 0;
  #topicsOut = 0;
  #topicsIn = 0;
  #skewRejected = 0;
  #jetstream: { js: JetStreamClient; jsm: JetStreamManager } | undefined;
  readonly #durable = new Map<string, DurableServing>();
  /** Actors known to have a durable consumer (durable sends to them are taken). */
  readonly #durableKnown = new Set<string>();
  readonly #recording = new Set<Promise<unknown>>();
  #deadLettersRecorded = 0;
  #deadLetterFailures = 0;
  #durableSent = 0;
  #unwatchDeadLetters: (() => void) | undefined;
  /** Names this node migrates away: where each goes, and who asks. */
  readonly #moving = new Map<
    string,
    {
      to: string;
      subscription: NatsSubscription;
      timer?: ReturnType<typeof setTimeout>;
    }
  >();
  /** Actors arriving here by migration, by migration id. */
  readonly #adoptions = new Map<string, Adoption>();

  private constructor(
    nc: NatsConnection,
    host: ClusterHost,
    options: CheckedClusterOptions,
  ) {
    this.#nc = nc;
    this.#host = host;
    this.#options = options;
    this.name = options.name;
    this.tenant = options.tenant;
    this.subjects = new Subjects(options.tenant);
  }

  /**
   * Connects to the cluster's servers and joins: answers pings, listens for
   * leaving nodes and bridges topics. Throws `InvalidOptionError` for a bad
   * option and {@linkcode ClusterConnectionError} when the servers cannot be
   * reached within `timeoutMs` or refuse the credentials or TLS.
   */
  static async join(host: ClusterHost, options: unknown): Promise<ClusterNode> {
    const checked = checkClusterOptions(options, defaultNodeName);
    const connection: ConnectionOptions = {
      servers: [...checked.servers],
      name: `ringkernel ${checked.name}`,
      noEcho: true,
      timeout: checked.timeoutMs,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    };
    const auth = checked.auth;
    if (auth !== undefined) {
      if ("user" in auth) {
        connection.user = auth.user;
        connection.pass = auth.pass;
      } else if ("token" in auth) connection.token = auth.token;
      else {
        connection.authenticator = nkeyAuthenticator(
          new TextEncoder().encode(auth.nkeySeed),
        );
      }
    }
    if (checked.tls !== undefined) connection.tls = { ...checked.tls };
    let nc: NatsConnection;
    try {
      nc = await connect(connection);
    } catch (error) {
      throw connectionError(checked.servers, error);
    }
    const node = new ClusterNode(nc, host, checked);
    try {
      await node.#start();
    } catch (error) {
      await nc.close().catch(() => {});
      throw error;
    }
    return node;
  }

  async #start(): Promise<void> {
    const s = this.subjects;
    // A node of this name already in the cluster answers its pings.
    try {
      await this.#nc.request(s.nodePing(this.name), Empty, { timeout: 1000 });
      throw new InvalidStateError(
        `join the cluster as "${this.name}"`,
        "taken",
        "a node of this name is already in the cluster",
      );
    } catch (error) {
      if (error instanceof InvalidStateError) throw error;
      if (!isNoResponders(error) && !isNatsTimeout(error)) {
        throw new ClusterConnectionError(
          this.#options.servers,
          String(error),
          { cause: error },
        );
      }
    }
    this.#nc.subscribe(s.nodePing(this.name), {
      callback: (_error, msg) => void msg.respond(Empty),
    });
    this.#nc.subscribe(s.anyNodeLeave, {
      callback: (_error, msg) => this.#onLeave(msg),
    });
    this.#nc.subscribe(s.allTopics, {
      callback: (_error, msg) => this.#onTopic(msg),
    });
    this.#nc.subscribe(s.nodeAdopt(this.name), {
      callback: (_error, msg) => void this.#answer(msg, () => this.#adopt(msg)),
    });
    this.#nc.subscribe(s.nodeDecide(this.name), {
      callback: (_error, msg) =>
        void this.#answer(
          msg,
          async () => JSON.stringify(await this.#decide(msg)),
        ),
    });
    this.#nc.subscribe(s.nodeMigrate(this.name), {
      callback: (_error, msg) =>
        void this.#answer(msg, async () => {
          const request = msg.json() as MigrateRequest;
          const info = await this.#migrateOut(
            request.actor,
            request.to,
            request.timeoutMs,
          );
          return JSON.stringify({ ...info, sequence: String(info.sequence) });
        }),
    });
    await this.#nc.flush();
    await this.#probeJetStream();
    const watch = this.#host.deadLetters?.onDeadLetter((letter) => {
      if (!this.#served.has(letter.actor)) return;
      const m = letter.message;
      this.#recordDeadLetter(
        letter.actor,
        letter.reason,
        letter.detail ?? "",
        m.typeId,
        m.payload,
      );
    });
    this.#unwatchDeadLetters = watch === undefined
      ? undefined
      : () => watch[Symbol.dispose]();
    (async () => {
      for await (const status of this.#nc.status()) {
        if (status.type === "disconnect") this.#connected = false;
        else if (status.type === "reconnect") this.#connected = true;
      }
    })().catch(() => {});
  }

  /**
   * Sets up JetStream when the servers offer it to this node's account:
   * the tenant's durable and dead-letter streams then exist.
   */
  async #probeJetStream(): Promise<void> {
    let jsm: JetStreamManager;
    try {
      jsm = await jetstreamManager(this.#nc, { timeout: 2000 });
    } catch {
      return; // No JetStream: plain operations only.
    }
    await ensureStreams(jsm, this.subjects);
    this.#jetstream = { js: jetstream(this.#nc, { timeout: 2000 }), jsm };
  }

  /** JetStream, or `InvalidStateError` for `what` when the servers have none. */
  #requireJetStream(
    what: string,
  ): { js: JetStreamClient; jsm: JetStreamManager } {
    if (this.#jetstream === undefined) {
      throw new InvalidStateError(
        what,
        "no JetStream",
        "the servers did not offer JetStream to this node's account when it joined (enable it: jetstream {} in the server configuration, jetstream: enabled in the account's)",
      );
    }
    return this.#jetstream;
  }

  /** Whether the servers offered JetStream when this node joined (durable mode and durable dead letters need it). */
  get durable(): boolean {
    return this.#jetstream !== undefined;
  }

  /** Whether the node is connected to a server now (it reconnects by itself). */
  get connected(): boolean {
    return !this.#nc.isClosed() && this.#connected;
  }

  /** The names this node serves. */
  get served(): string[] {
    return [...this.#served.keys()];
  }

  /** This node's counters. */
  metrics(): ClusterMetrics {
    return {
      requests: this.#requests,
      served: this.#servedCount,
      topicsOut: this.#topicsOut,
      topicsIn: this.#topicsIn,
      skewRejected: this.#skewRejected,
      inFlight: this.#inFlight.size,
      durableSent: this.#durableSent,
      durableDelivered: sum(this.#durable, "delivered"),
      durableRedelivered: sum(this.#durable, "redelivered"),
      durableAcked: sum(this.#durable, "acked"),
      deadLettersRecorded: this.#deadLettersRecorded,
    };
  }

  #assertOpen(operation: string): void {
    if (this.#closing !== undefined) {
      throw new InvalidStateError(
        operation,
        "closed",
        "the node left the cluster",
      );
    }
  }

  // ---- serving ----------------------------------------------------------

  /**
   * Serves `kernel` under its name to the whole cluster (the runtime does
   * this for a launch with `public: true`). Throws `InvalidStateError` when
   * another node serves the name already.
   */
  async serve(kernel: Kernel, options: ServeOptions = {}): Promise<void> {
    this.#assertOpen(`serve "${kernel.name}"`);
    const o = checkOptionsObject<ServeOptions>("options", options);
    const name = kernel.name;
    const durableOptions = o.durable === undefined || o.durable === false
      ? undefined
      : checkDurableOptions(o.durable === true ? {} : o.durable);
    if (durableOptions !== undefined) {
      this.#requireJetStream(`serve "${name}" durably`);
    }
    if (this.#served.has(name)) {
      if (durableOptions !== undefined && !this.#durable.has(name)) {
        await this.#serveDurably(name, durableOptions);
      }
      return;
    }
    try {
      const reply = await this.#nc.request(
        this.subjects.actor(name, "describe"),
        Empty,
        { timeout: LOOKUP_TIMEOUT_MS },
      );
      const node = reply.headers?.get(ERROR_HEADER)
        ? "another node"
        : `node "${(reply.json() as ActorDescription).node}"`;
      throw new InvalidStateError(
        `serve "${name}"`,
        "served",
        `${node} serves an actor of this name already`,
      );
    } catch (error) {
      if (!isNoResponders(error)) throw error;
    }
    const subscription = this.#nc.subscribe(this.subjects.actorAll(name), {
      queue: SERVE_QUEUE,
      callback: (_error, msg) => this.#onServed(name, msg),
    });
    this.#served.set(name, subscription);
    await this.#nc.flush();
    if (durableOptions !== undefined) {
      try {
        await this.#serveDurably(name, durableOptions);
      } catch (error) {
        this.unserve(name);
        throw error;
      }
    }
  }

  async #serveDurably(
    name: string,
    options: Required<DurableServeOptionsType>,
    handled?: readonly number[],
  ): Promise<void> {
    const { js, jsm } = this.#requireJetStream(`serve "${name}" durably`);
    const serving = new DurableServing({
      name,
      js,
      jsm,
      subjects: this.subjects,
      options,
      handled,
      host: {
        kernel: () => {
          const k = this.#host.kernel(name);
          return k === undefined || k.state === "terminated" ? undefined : k;
        },
        merge: (slot) => this.#merge(slot),
        deadLetter: (reason, detail, slot) => {
          const { typeId, payload } = splitSlot(slot);
          this.#recordDeadLetter(name, reason, detail, typeId, payload);
        },
      },
    });
    this.#durable.set(name, serving);
    try {
      await serving.start();
    } catch (error) {
      this.#durable.delete(name);
      await serving.stop(0);
      throw error;
    }
  }

  /** Stops serving `name` (the runtime does this when the kernel terminates). */
  unserve(name: string): void {
    const subscription = this.#served.get(name);
    if (subscription === undefined) return;
    this.#served.delete(name);
    // Drained, not dropped: a request the server routed here before it saw
    // the unsubscription still gets its answer (UnknownActorError, the
    // kernel being gone) instead of none, which would leave the caller
    // waiting for its whole deadline.
    subscription.drain().catch(() => subscription.unsubscribe());
    const serving = this.#durable.get(name);
    if (serving !== undefined) {
      this.#durable.delete(name);
      // The actor is gone: what it had not handled goes to the next node.
      void serving.stop(0);
    }
  }

  #onServed(name: string, msg: Msg): void {
    this.#servedCount++;
    const done = this.#serve(name, msg).catch((error) => {
      console.error(`ringkernel: serving "${name}" failed:`, error);
    });
    this.#serving.set(done, name);
    done.finally(() => this.#serving.delete(done));
  }

  async #serve(name: string, msg: Msg): Promise<void> {
    const operation = msg.subject.slice(msg.subject.lastIndexOf(".") + 1);
    try {
      const kernel = this.#host.kernel(name);
      if (kernel === undefined || kernel.state === "terminated") {
        throw new UnknownActorError(
          name,
          `node "${this.name}" no longer runs it`,
        );
      }
      if (operation === "describe") {
        const description: ActorDescription = {
          node: this.name,
          input: describeSchema(kernel.inputSchema),
          output: kernel.outputSchema
            ? describeSchema(kernel.outputSchema)
            : null,
        };
        msg.respond(JSON.stringify(description));
        return;
      }
      const asked = Number(msg.headers?.get(TIMEOUT_HEADER));
      const timeoutMs = Number.isFinite(asked) && asked >= 0
        ? Math.min(asked, MAX_TIMEOUT_MS)
        : 30_000;
      if (operation === "receive") {
        const reply = await kernel.receive({ timeoutMs });
        this.#respondSlot(msg, kernel, reply);
        return;
      }
      const slot = this.#merge(readSlot(msg.data));
      const value = decodeSlot(kernel.inputSchema, slot) as never;
      if (operation === "call") {
        const reply = await kernel.call(value, { timeoutMs });
        this.#respondSlot(msg, kernel, reply);
      } else if (operation === "send") {
        await kernel.send(value, { timeoutMs });
        msg.respond(Empty);
      } else {
        throw new InvalidStateError(
          `${operation} "${name}"`,
          "served",
          "not an operation of an actor",
        );
      }
    } catch (error) {
      const h = natsHeaders();
      for (const [key, value] of Object.entries(errorHeaders(error))) {
        h.set(key, value.replace(/[\r\n]+/g, " "));
      }
      msg.respond(Empty, { headers: h });
    }
  }

  #respondSlot(msg: Msg, kernel: Kernel, reply: unknown): void {
    msg.respond(
      encodeSlot(kernel.outputSchema!, reply as never, this.#host.clock.now()),
    );
  }

  /** Merges a received slot's timestamp into the clock (a zero stamp is none). */
  #merge(slot: ReadSlot): ReadSlot {
    const ts = slot.timestamp;
    if (ts.physicalMs !== 0 || ts.logical !== 0) {
      try {
        this.#host.clock.update(ts);
      } catch (error) {
        if (error instanceof ClockSkewError) this.#skewRejected++;
        throw error;
      }
    }
    return slot;
  }

  // ---- migration ------------------------------------------------------------

  /**
   * Moves the actor `name` to the node `options.to` (see
   * {@linkcode MigrateOptions}); on a node that does not run it, asks the
   * node that does. Rejects with `UnknownActorError` when no node serves
   * the name, `InvalidStateError` when the target is not in the cluster,
   * already runs it, or the actor cannot be snapshotted, `TimeoutError`
   * past `timeoutMs`; after a failure the actor runs where it ran.
   */
  async migrate(
    name: string,
    options: MigrateOptions,
  ): Promise<MigrationInfo> {
    const o = checkOptionsObject<MigrateOptions>("options", options);
    if (typeof o.to !== "string" || o.to === "") {
      throw new InvalidOptionError("to", o.to, "a node name");
    }
    const timeoutMs = checkPositiveTimeoutMs("timeoutMs", o.timeoutMs, 30_000);
    this.#assertOpen(`migrate "${name}"`);
    if (this.#served.has(name) && this.#host.kernel(name) !== undefined) {
      return await this.#migrateOut(name, o.to, timeoutMs);
    }
    const owner = await this.remote(name, {
      timeoutMs: Math.min(timeoutMs, LOOKUP_TIMEOUT_MS),
    });
    if (owner.node === o.to) {
      throw new InvalidStateError(
        `migrate "${name}" to "${o.to}"`,
        "there",
        "that node runs it already",
      );
    }
    const request: MigrateRequest = { actor: name, to: o.to, timeoutMs };
    const reply = await this.#request(
      this.subjects.nodeMigrate(owner.node),
      JSON.stringify(request),
      timeoutMs + 1000,
      { actor: name, node: owner.node, what: `migrate "${name}"` },
    );
    const info = reply.json() as MigrationInfo & { sequence: string };
    return { ...info, sequence: BigInt(info.sequence) };
  }

  /** One request to a node, its failures typed. */
  async #request(
    subject: string,
    data: Uint8Array | string,
    timeoutMs: number,
    context: { actor: string; node: string; what: string },
  ): Promise<Msg> {
    let reply: Msg;
    try {
      reply = await this.#nc.request(subject, data, { timeout: timeoutMs });
    } catch (error) {
      if (isNoResponders(error)) {
        throw new InvalidStateError(
          context.what,
          "no node",
          `node "${context.node}" is not in the cluster`,
        );
      }
      if (isNatsTimeout(error)) throw new TimeoutError(context.what, timeoutMs);
      throw error;
    }
    if (reply.headers?.get(ERROR_HEADER)) {
      throw errorFromHeaders((key) => reply.headers!.get(key), context);
    }
    return reply;
  }

  /** Answers `msg` with what `work` returns, or with its error's headers. */
  async #answer(
    msg: Msg,
    work: () => Promise<string | Uint8Array>,
  ): Promise<void> {
    try {
      msg.respond(await work());
    } catch (error) {
      const h = natsHeaders();
      for (const [key, value] of Object.entries(errorHeaders(error))) {
        h.set(key, value.replace(/[\r\n]+/g, " "));
      }
      msg.respond(Empty, { headers: h });
    }
  }

  /** Moves `name`, which this node runs and serves, to `to`. */
  async #migrateOut(
    name: string,
    to: string,
    timeoutMs: number,
  ): Promise<MigrationInfo> {
    const what = `migrate "${name}" to "${to}"`;
    const host = this.#host;
    const kernel = host.kernel(name);
    const subscription = this.#served.get(name);
    if (kernel === undefined || subscription === undefined) {
      throw new UnknownActorError(
        name,
        `node "${this.name}" does not serve it`,
      );
    }
    if (to === this.name) {
      throw new InvalidStateError(what, "there", "this node runs it already");
    }
    if (host.pauseForMigration === undefined || host.adopt === undefined) {
      throw new InvalidStateError(what, "no runtime", "migration unsupported");
    }
    const end = Date.now() + timeoutMs;
    const left = () => Math.max(1, end - Date.now());
    // The target must be there before anything stops.
    await this.#request(
      this.subjects.nodePing(to),
      Empty,
      Math.min(left(), 2000),
      {
        actor: name,
        node: to,
        what,
      },
    );
    const migrationId = nuid.next();
    // 1. Plain requests stop coming here; those being served finish.
    // Callers refused meanwhile hear where it goes and ask again.
    this.#announceMoving(name, to);
    this.#served.delete(name);
    // Drained, not dropped: the requests the server routed here before it
    // saw the unsubscription are served (the actor still runs) before it
    // pauses, instead of none, which would leave their callers waiting for
    // their whole deadlines.
    const drained = subscription.drain().catch(() =>
      subscription.unsubscribe()
    );
    const serving = this.#durable.get(name);
    this.#durable.delete(name);
    let durable: Required<DurableServeOptionsType> | null = null;
    let handled: number[] = [];
    let paused = false;
    let inDoubt = false;
    const pausedAt = { ms: 0 };
    try {
      // Every request routed here has reached its handler...
      let drainTimer: ReturnType<typeof setTimeout> | undefined;
      const drainedInTime = await Promise.race([
        drained.then(() => true),
        new Promise<boolean>((resolve) =>
          drainTimer = setTimeout(() => resolve(false), left())
        ),
      ]);
      clearTimeout(drainTimer);
      if (!drainedInTime) {
        throw new TimeoutError(`${what} (its subscription drains)`, timeoutMs);
      }
      // ...and has been served.
      await waitUntil(
        () => ![...this.#serving.values()].includes(name),
        end,
      );
      // 2. Durable messages wait in the stream; those queued here are
      // handled and acknowledged.
      if (serving !== undefined) {
        durable = serving.options;
        await serving.stop(left());
        if (serving.pendingCount > 0) throw new TimeoutError(what, timeoutMs);
        handled = serving.handledSequences();
      }
      // 3. Quiet, then paused; a message that slipped in (a local K2K
      // send) is handled before the next try.
      let snapshot: Uint8Array | undefined;
      let sequence = 0n;
      let launch: MigratingLaunch | undefined;
      while (snapshot === undefined) {
        const quiet = () => kernel.metrics().inFlight === 0;
        if (!await waitUntil(quiet, end)) {
          throw new TimeoutError(
            `${what} (its queue did not empty)`,
            timeoutMs,
          );
        }
        pausedAt.ms = Date.now();
        const taken = await host.pauseForMigration(name, left());
        paused = true;
        if (quiet()) {
          ({ snapshot, sequence, launch } = taken);
          break;
        }
        await host.resumeAfterMigration?.(name);
        paused = false;
      }
      // 4. The transfer, in two phases: the target launches it restored
      // (not serving it yet) and answers ready; then this node confirms by
      // the migration's id and the target serves it. A target that is not
      // confirmed drops its copy (on the abort, or when its wait ends).
      const { bytes: record } = buildCheckpoint({
        actor: name,
        sequence,
        snapshot: snapshot!,
        base: undefined,
      });
      // Time kept for the confirmation, out of the deadline.
      const decideMs = Math.min(2000, Math.max(1, Math.floor(timeoutMs / 4)));
      const header: TransferHeader = {
        migrationId,
        actor: name,
        from: this.name,
        launch: launch!,
        durable,
        handled,
        // The target may take the whole deadline: a copy it launches after
        // this node gave up waiting is dropped on the abort.
        timeoutMs: left(),
        confirmWithinMs: decideMs + ABORT_GRACE_MS,
      };
      const context = { actor: name, node: to, what };
      let confirmSent = false;
      try {
        await this.#request(
          this.subjects.nodeAdopt(to),
          encodeTransfer(header, record),
          Math.max(1, left() - decideMs),
          context,
        );
        confirmSent = true;
        const decision: AdoptionDecision = {
          id: migrationId,
          decision: "commit",
        };
        await this.#request(
          this.subjects.nodeDecide(to),
          JSON.stringify(decision),
          left(),
          context,
        );
      } catch (error) {
        // Given up: the target must hold no copy, or serve it already.
        const state = await this.#abortAdoption(
          to,
          migrationId,
          confirmSent,
          end + ABORT_GRACE_MS,
        );
        if (state === undefined) {
          inDoubt = true;
          throw new MigrationInDoubtError(name, to, migrationId);
        }
        if (state === "aborted") throw error;
      }
      // 5. The route switched: this copy goes.
      await kernel.terminate({ abort: true, timeoutMs: left() }).catch(
        () => {},
      );
      this.#stopMoving(name, MOVED_ANSWER_MS);
      return {
        actor: name,
        from: this.name,
        to,
        sequence,
        snapshotBytes: snapshot!.byteLength,
        pausedMs: Date.now() - pausedAt.ms,
      };
    } catch (error) {
      this.#stopMoving(name, 0);
      // In doubt, the copy here stays paused and unserved: the target may
      // serve it.
      if (inDoubt) throw error;
      // The actor runs on here.
      if (paused) await host.resumeAfterMigration?.(name).catch(() => {});
      if (kernel.state !== "terminated" && !this.#served.has(name)) {
        this.#served.set(
          name,
          this.#nc.subscribe(this.subjects.actorAll(name), {
            queue: SERVE_QUEUE,
            callback: (_error, msg) => this.#onServed(name, msg),
          }),
        );
        if (durable !== null) {
          await this.#serveDurably(name, durable, handled).catch(() => {});
        }
      }
      throw error;
    }
  }

  /**
   * Asks the target to abort adoption `id` until it says where it stands
   * or `until` passes: `aborted` (it holds no copy), `committed` (it
   * serves the actor), or `undefined` (no answer: in doubt). A target not
   * in the cluster holds no copy, unless the confirmation was sent.
   */
  async #abortAdoption(
    to: string,
    id: string,
    confirmSent: boolean,
    until: number,
  ): Promise<AdoptionState["state"] | undefined> {
    const decision: AdoptionDecision = { id, decision: "abort" };
    while (true) {
      const left = until - Date.now();
      if (left <= 0) return undefined;
      try {
        const reply = await this.#nc.request(
          this.subjects.nodeDecide(to),
          JSON.stringify(decision),
          { timeout: Math.max(1, Math.min(left, 1000)) },
        );
        if (!reply.headers?.get(ERROR_HEADER)) {
          return (reply.json() as AdoptionState).state;
        }
      } catch (error) {
        if (isNoResponders(error) && !confirmSent) return "aborted";
      }
      await delay(Math.min(50, Math.max(0, until - Date.now())));
    }
  }

  /**
   * Takes an actor migrating here, first phase: launches it restored (not
   * active, not served) and answers ready; {@linkcode ClusterNode.#decide}
   * serves it on the source's confirmation or drops it on its abort, and a
   * copy not confirmed within the transfer's `confirmWithinMs` is dropped.
   */
  async #adopt(msg: Msg): Promise<string> {
    const { header, record } = decodeTransfer(msg.data);
    const name = header.actor;
    const what = `adopt "${name}" from "${header.from}"`;
    this.#assertOpen(what);
    if (this.#host.adopt === undefined) {
      throw new InvalidStateError(what, "no runtime", "migration unsupported");
    }
    if (this.#host.kernel(name) !== undefined) {
      throw new InvalidStateError(
        what,
        "running",
        "this node runs one already",
      );
    }
    if (header.durable !== null) this.#requireJetStream(what);
    const id = header.migrationId;
    const adoption: Adoption = { name, header, state: "adopting" };
    this.#adoptions.set(id, adoption);
    let kernel: Kernel;
    try {
      kernel = await this.#host.adopt(
        name,
        header.launch,
        record,
        header.timeoutMs,
      );
    } catch (error) {
      adoption.state = "aborted";
      this.#forgetAdoption(id);
      throw error;
    }
    adoption.kernel = kernel;
    if (adoption.state === "aborted") {
      // The source gave up while it launched.
      await kernel.terminate({ abort: true, timeoutMs: 1000 }).catch(() => {});
      this.#forgetAdoption(id);
      throw new InvalidStateError(
        what,
        "aborted",
        "the source gave the migration up",
      );
    }
    adoption.state = "ready";
    adoption.timer = setTimeout(
      () => void this.#dropAdoption(id),
      header.confirmWithinMs,
    );
    return JSON.stringify({ node: this.name, ready: true });
  }

  /** Drops a copy that was not confirmed, and forgets the adoption later. */
  async #dropAdoption(id: string): Promise<void> {
    const adoption = this.#adoptions.get(id);
    if (adoption === undefined) return;
    const was = adoption.state;
    if (was === "committed") return;
    adoption.state = "aborted";
    this.#forgetAdoption(id);
    if (was === "ready") {
      await adoption.kernel?.terminate({ abort: true, timeoutMs: 1000 }).catch(
        () => {},
      );
    }
  }

  /** Forgets adoption `id` after {@linkcode ADOPTION_MEMORY_MS}. */
  #forgetAdoption(id: string): void {
    const adoption = this.#adoptions.get(id);
    if (adoption === undefined) return;
    clearTimeout(adoption.timer);
    adoption.timer = setTimeout(() => {
      if (this.#adoptions.get(id) === adoption) this.#adoptions.delete(id);
    }, ADOPTION_MEMORY_MS);
  }

  /**
   * The source's decision on an adoption, second phase: `commit` serves
   * the ready copy (activated, subscribed, durable messages taken), `abort`
   * drops a copy not serving yet. Answers where the adoption stands; a
   * commit of one aborted (or unknown) fails with `InvalidStateError`.
   */
  async #decide(msg: Msg): Promise<AdoptionState> {
    const { id, decision } = msg.json() as AdoptionDecision;
    const adoption = this.#adoptions.get(id);
    if (decision === "abort") {
      if (adoption === undefined) return { state: "aborted" };
      if (adoption.state === "committed") return { state: "committed" };
      await this.#dropAdoption(id);
      return { state: "aborted" };
    }
    const what = `confirm migration ${id}`;
    if (adoption === undefined || adoption.state === "aborted") {
      throw new InvalidStateError(what, "aborted", "this node holds no copy");
    }
    if (adoption.state === "committed") return { state: "committed" };
    if (adoption.state !== "ready") {
      throw new InvalidStateError(what, adoption.state, "not launched yet");
    }
    const { name, header } = adoption;
    const kernel = adoption.kernel!;
    // From here an abort is refused: this node serves it.
    adoption.state = "committed";
    clearTimeout(adoption.timer);
    try {
      if (kernel.state === "launched" || kernel.state === "deactivated") {
        await kernel.activate();
      }
      const subscription = this.#nc.subscribe(this.subjects.actorAll(name), {
        queue: SERVE_QUEUE,
        callback: (_error, m) => this.#onServed(name, m),
      });
      this.#served.set(name, subscription);
      await this.#nc.flush();
      if (header.durable !== null) {
        await this.#serveDurably(name, header.durable, header.handled);
      }
    } catch (error) {
      adoption.state = "aborted";
      this.unserve(name);
      await kernel.terminate({ abort: true, timeoutMs: 1000 }).catch(() => {});
      this.#forgetAdoption(id);
      throw error;
    }
    this.#forgetAdoption(id);
    return { state: "committed" };
  }

  /**
   * Sends a slot to `target` as a plain remote send (a K2K send from an
   * actor of this runtime to a name another node serves).
   */
  async forwardSend(
    target: string,
    slot: Uint8Array,
    options: { timeoutMs: number },
  ): Promise<void> {
    await this.#askWhileMoving(
      { actor: target, node: "?" },
      "send",
      slot,
      options.timeoutMs,
      undefined,
      this.#options.requestGraceMs,
    );
  }

  /**
   * A {@linkcode CheckpointStore} in the tenant's JetStream stream
   * `RK_<tenant>_CHECKPOINTS` (created when first asked for). Rejects with
   * `InvalidStateError` when the servers have no JetStream.
   */
  async checkpointStore(
    options: JetStreamCheckpointStoreOptions = {},
  ): Promise<JetStreamCheckpointStore> {
    const o = checkOptionsObject<JetStreamCheckpointStoreOptions>(
      "options",
      options,
    );
    const keepChains = checkKeepChains(o.keepChains);
    const { js, jsm } = this.#requireJetStream("store checkpoints");
    await ensureCheckpointStream(jsm, this.subjects);
    return new JetStreamCheckpointStore({
      js,
      jsm,
      subjects: this.subjects,
      timeoutMs: 5000,
      keepChains,
    });
  }

  // ---- reaching other nodes' actors --------------------------------------

  /**
   * The actor named `name`: the local kernel when this runtime runs it (no
   * NATS hop), else a {@linkcode RemoteActor} on the node that serves it.
   * Rejects with `UnknownActorError` when no node serves the name.
   */
  async actor<
    I extends FieldsSpec = FieldsSpec,
    O extends FieldsSpec = FieldsSpec,
  >(
    name: string,
    options?: LookupOptions,
  ): Promise<Kernel<I, O> | RemoteActor<I, O>> {
    const local = this.#host.kernel(name);
    if (local !== undefined && local.state !== "terminated") {
      return local as unknown as Kernel<I, O>;
    }
    return await this.remote<I, O>(name, options);
  }

  /**
   * Looks `name` up in the cluster and returns a {@linkcode RemoteActor} on
   * the node serving it (over NATS, even when this runtime runs it). Rejects
   * with `UnknownActorError` when no node serves it, `TimeoutError` when
   * the look-up takes longer than `timeoutMs`.
   */
  async remote<
    I extends FieldsSpec = FieldsSpec,
    O extends FieldsSpec = FieldsSpec,
  >(
    name: string,
    options?: LookupOptions,
  ): Promise<RemoteActor<I, O>> {
    const { timeoutMs, signal } = checkWaitOptions(
      options ?? {},
      LOOKUP_TIMEOUT_MS,
    );
    this.#assertOpen(`look up "${name}"`);
    if (signal?.aborted) throw signal.reason;
    const reply = await this.#askWhileMoving(
      { actor: name, node: "?" },
      "describe",
      Empty,
      timeoutMs,
      signal,
      0,
    );
    const description = reply.json() as ActorDescription;
    return new RemoteActor<I, O>({
      name,
      node: description.node,
      input: schemaFrom(description.input) as never,
      output: description.output
        ? schemaFrom(description.output) as never
        : undefined,
      transport: this.#transport,
    });
  }

  /**
   * Waits until some node serves `name` (launched `public` there and seen
   * here), then returns it like {@linkcode ClusterNode.actor}. Rejects with
   * `TimeoutError` after `timeoutMs` (default 30 000).
   */
  async waitFor<
    I extends FieldsSpec = FieldsSpec,
    O extends FieldsSpec = FieldsSpec,
  >(
    name: string,
    options?: LookupOptions,
  ): Promise<Kernel<I, O> | RemoteActor<I, O>> {
    const { timeoutMs, signal } = checkWaitOptions(options ?? {}, 30_000);
    const end = Date.now() + timeoutMs;
    while (true) {
      const left = end - Date.now();
      try {
        return await this.actor<I, O>(name, {
          timeoutMs: Math.max(0, Math.min(left, LOOKUP_TIMEOUT_MS)),
          signal,
        });
      } catch (error) {
        if (!(error instanceof UnknownActorError)) throw error;
      }
      if (Date.now() >= end) {
        throw new TimeoutError(`wait for actor "${name}"`, timeoutMs);
      }
      await delay(Math.min(50, Math.max(0, end - Date.now())), { signal });
    }
  }

  readonly #transport: RemoteTransport = {
    now: (): HlcTimestamp => this.#host.clock.now(),
    request: async (target, operation, slot, timeoutMs, signal) => {
      const reply = await this.#askWhileMoving(
        target,
        operation,
        slot,
        timeoutMs,
        signal,
        this.#options.requestGraceMs,
      );
      if (operation === "send") return undefined;
      return this.#merge(readSlot(reply.data));
    },
    publishDurable: (actor, slot, msgId, timeoutMs, signal) =>
      this.#publishDurable(actor, slot, msgId, timeoutMs, signal),
  };

  // ---- durable sends and dead letters ------------------------------------

  /**
   * Stores a durable message for `actor` in the tenant's durable stream:
   * repeats the publication (same message id, so the stream keeps one) until
   * the stream acknowledges it or the deadline passes.
   */
  async #publishDurable(
    actor: string,
    slot: Uint8Array,
    msgId: string | undefined,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const what = `durable send to "${actor}"`;
    this.#assertOpen(what);
    const { js } = this.#requireJetStream(what);
    await this.#acquire(timeoutMs, signal, what);
    this.#requests++;
    const id = msgId ?? `${this.name}:${nuid.next()}`;
    const end = Date.now() + timeoutMs;
    try {
      while (true) {
        if (signal?.aborted) throw signal.reason;
        const left = end - Date.now();
        try {
          if (!this.#durableKnown.has(actor)) {
            await this.#checkDurable(actor, slot);
          }
          const h = natsHeaders();
          h.set(NODE_HEADER, this.name);
          await js.publish(this.subjects.durable(actor), slot, {
            msgID: id,
            timeout: Math.max(1, Math.min(left, 2000)),
            headers: h,
          });
          this.#durableSent++;
          return;
        } catch (error) {
          if (error instanceof UnknownActorError) throw error;
          // Not confirmed (a server restarting, the connection down): again.
        }
        if (Date.now() >= end) {
          throw new TimeoutError(
            `${what} (message id ${id}: not confirmed by the stream; sending it again with this msgId is safe)`,
            timeoutMs,
          );
        }
        await delay(Math.min(100, Math.max(0, end - Date.now())), { signal });
      }
    } finally {
      this.#release();
    }
  }

  /**
   * Whether some node serves `actor` durably (it has a durable consumer);
   * when none does, records the message as a dead letter and throws
   * `UnknownActorError`.
   */
  async #checkDurable(actor: string, slot: Uint8Array): Promise<void> {
    const { jsm } = this.#requireJetStream(`durable send to "${actor}"`);
    try {
      await jsm.consumers.info(
        this.subjects.durableStream,
        this.subjects.durableConsumer(actor),
      );
      this.#durableKnown.add(actor);
    } catch (error) {
      if (!isStreamNotFound(error) && !isConsumerNotFound(error)) throw error;
      const detail = "no node of the cluster serves it durably";
      const { typeId, payload } = splitSlot(slot);
      this.#recordDeadLetter(actor, "unknown-target", detail, typeId, payload);
      throw new UnknownActorError(actor, detail);
    }
  }

  /** Records a dead letter in the tenant's dead-letter stream (when the servers have JetStream). */
  #recordDeadLetter(
    actor: string,
    reason: DeadLetterReason,
    detail: string,
    typeId: number,
    payload: Uint8Array,
  ): void {
    const jetstream = this.#jetstream;
    if (jetstream === undefined || this.#nc.isClosed()) return;
    const done = jetstream.js.publish(this.subjects.dead(actor), payload, {
      headers: deadLetterHeaders(actor, this.name, reason, detail, typeId),
      timeout: 5000,
    }).then(() => {
      this.#deadLettersRecorded++;
    }, (error) => {
      if (this.#deadLetterFailures++ === 0) {
        console.error(
          `ringkernel: a dead letter of "${actor}" could not be recorded in ${this.subjects.deadStream}:`,
          error,
        );
      }
    });
    this.#recording.add(done);
    done.finally(() => this.#recording.delete(done));
  }

  /**
   * The newest dead letters of the tenant (every node's), oldest first:
   * those of the actors served by the cluster's nodes, and durable messages
   * that could not be delivered. Throws `InvalidStateError` when the servers
   * have no JetStream, `TimeoutError` past `timeoutMs`.
   */
  async deadLetters(
    options: DeadLetterReadOptions = {},
  ): Promise<ClusterDeadLetter[]> {
    const o = checkOptionsObject<DeadLetterReadOptions>("options", options);
    const { timeoutMs, signal } = checkWaitOptions(o, LOOKUP_TIMEOUT_MS);
    const limit = checkInteger("limit", o.limit, {
      min: 1,
      max: 100_000,
      fallback: 100,
    });
    const { jsm } = this.#requireJetStream("read dead letters");
    // Letters this node is still recording are part of the answer.
    await Promise.allSettled([...this.#recording]);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TimeoutError("read dead letters", timeoutMs)),
        timeoutMs,
      );
    });
    const aborted = new Promise<never>((_, reject) => {
      signal?.addEventListener("abort", () => reject(signal.reason), {
        once: true,
      });
    });
    try {
      return await Promise.race([
        readDeadLetters(jsm, this.subjects, { limit, actor: o.actor }),
        expired,
        aborted,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * One request with a deadline: waits for room in the outbound bound,
   * asks, watches the serving node's liveness, and turns every failure
   * into its typed error.
   */
  async #ask(
    target: { readonly actor: string; readonly node: string },
    operation: ActorOperation,
    slot: Uint8Array,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    graceMs: number,
  ): Promise<Msg> {
    const what = `${operation} of "${target.actor}"`;
    this.#assertOpen(what);
    await this.#acquire(timeoutMs, signal, what);
    this.#requests++;
    try {
      if (signal?.aborted) throw signal.reason;
      const h = natsHeaders();
      h.set(TIMEOUT_HEADER, String(timeoutMs));
      const request = this.#nc.request(
        this.subjects.actor(target.actor, operation),
        slot,
        { timeout: Math.max(1, timeoutMs + graceMs), headers: h },
      );
      const reply = await new Promise<Msg>((resolve, reject) => {
        const entry: InFlight = {
          node: target.node,
          actor: target.actor,
          since: Date.now(),
          fail: reject,
        };
        const onAbort = () => reject(signal!.reason);
        signal?.addEventListener("abort", onAbort, { once: true });
        if (target.node !== "?") {
          this.#inFlight.add(entry);
          this.#armLiveness();
        }
        request.then(resolve, (error) => {
          if (isNoResponders(error)) {
            reject(
              new UnknownActorError(
                target.actor,
                "no node of the cluster serves it",
              ),
            );
          } else if (isNatsTimeout(error)) {
            reject(new TimeoutError(what, timeoutMs));
          } else {
            reject(
              new ClusterConnectionError(
                this.#options.servers,
                error instanceof Error ? error.message : String(error),
                { cause: error },
              ),
            );
          }
        }).finally(() => {
          signal?.removeEventListener("abort", onAbort);
          this.#inFlight.delete(entry);
        });
      });
      if (reply.headers?.get(ERROR_HEADER)) {
        throw errorFromHeaders((key) => reply.headers!.get(key), {
          actor: target.actor,
          node: target.node,
          what,
        });
      }
      return reply;
    } finally {
      this.#release();
    }
  }

  /**
   * {@linkcode ClusterNode.#ask}, asked again while the actor migrates: a
   * refusal (`UnknownActorError`: no node served the name, or the one asked
   * no longer runs it, so nothing was queued) for a name some node says it
   * is moving is asked again, after a short wait, until the deadline; the
   * target's node becomes `target.node`. A name nobody says is moving
   * fails as before.
   */
  async #askWhileMoving(
    target: { readonly actor: string; node: string },
    operation: ActorOperation,
    slot: Uint8Array,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    graceMs: number,
  ): Promise<Msg> {
    const end = Date.now() + timeoutMs;
    let wait = 2;
    let moving = false;
    while (true) {
      try {
        return await this.#ask(
          target,
          operation,
          slot,
          Math.max(0, end - Date.now()),
          signal,
          graceMs,
        );
      } catch (error) {
        if (!(error instanceof UnknownActorError)) throw error;
        const left = end - Date.now();
        if (left <= 0) throw error;
        const to = await this.#movingTo(target.actor, Math.min(left, 1000));
        if (to === undefined) {
          // Moved just now (its source no longer says so): once more.
          if (!moving) throw error;
          moving = false;
        } else {
          moving = true;
          if (target.node !== "?") target.node = to;
        }
        await delay(Math.min(wait, Math.max(0, end - Date.now())), { signal });
        wait = Math.min(wait * 2, 50);
      }
    }
  }

  /** Where the actor `name` is migrating to, as its source says; `undefined` when none says. */
  async #movingTo(
    name: string,
    timeoutMs: number,
  ): Promise<string | undefined> {
    try {
      const reply = await this.#nc.request(this.subjects.moving(name), Empty, {
        timeout: Math.max(1, timeoutMs),
      });
      const to = (reply.json() as { to?: unknown }).to;
      return typeof to === "string" ? to : undefined;
    } catch {
      return undefined;
    }
  }

  /** Says, while `name` migrates away from here, where it goes. */
  #announceMoving(name: string, to: string): void {
    this.#stopMoving(name, 0);
    const subscription = this.#nc.subscribe(this.subjects.moving(name), {
      callback: (_error, msg) => void msg.respond(JSON.stringify({ to })),
    });
    this.#moving.set(name, { to, subscription });
  }

  /** Stops saying where `name` goes, after `afterMs`. */
  #stopMoving(name: string, afterMs: number): void {
    const entry = this.#moving.get(name);
    if (entry === undefined) return;
    clearTimeout(entry.timer);
    const stop = () => {
      if (this.#moving.get(name) === entry) this.#moving.delete(name);
      entry.subscription.unsubscribe();
    };
    if (afterMs <= 0) stop();
    else entry.timer = setTimeout(stop, afterMs);
  }

  readonly #spaceWaiters: Array<() => void> = [];

  async #acquire(
    timeoutMs: number,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<void> {
    if (this.#outbound < this.#options.maxInFlight) {
      this.#outbound++;
      return;
    }
    const full = () =>
      new QueueFullError(
        `${what}: ${this.#options.maxInFlight} remote operations are in flight (cluster.maxInFlight)`,
      );
    if (timeoutMs === 0) throw full();
    await new Promise<void>((resolve, reject) => {
      const wake = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const withdraw = () => {
        const i = this.#spaceWaiters.indexOf(wake);
        if (i >= 0) this.#spaceWaiters.splice(i, 1);
      };
      const timer = setTimeout(() => {
        withdraw();
        signal?.removeEventListener("abort", onAbort);
        reject(full());
      }, timeoutMs);
      const onAbort = () => {
        withdraw();
        clearTimeout(timer);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#spaceWaiters.push(wake);
    });
  }

  #release(): void {
    const next = this.#spaceWaiters.shift();
    // A waiter takes over the slot; otherwise it is freed.
    if (next !== undefined) next();
    else this.#outbound--;
  }

  // ---- liveness of serving nodes ----------------------------------------

  #armLiveness(): void {
    if (this.#liveness !== undefined) return;
    this.#liveness = setInterval(
      () => this.#checkLiveness(),
      this.#options.livenessMs,
    );
  }

  #checkLiveness(): void {
    if (this.#inFlight.size === 0) {
      clearInterval(this.#liveness);
      this.#liveness = undefined;
      this.#missed.clear();
      return;
    }
    const due = Date.now() - this.#options.livenessMs;
    const nodes = new Set<string>();
    for (const entry of this.#inFlight) {
      if (entry.since <= due) nodes.add(entry.node);
    }
    for (const node of nodes) {
      this.#nc.request(this.subjects.nodePing(node), Empty, {
        timeout: this.#options.livenessMs,
      }).then(() => this.#missed.delete(node), (error) => {
        if (isNoResponders(error)) {
          this.#nodeGone(node, "it no longer answers (it left the cluster)");
          return;
        }
        const missed = (this.#missed.get(node) ?? 0) + 1;
        this.#missed.set(node, missed);
        if (missed >= MISSED_PINGS) {
          this.#nodeGone(node, `it missed ${missed} pings`);
        }
      });
    }
  }

  #onLeave(msg: Msg): void {
    const node = msg.string();
    if (node !== this.name) this.#nodeGone(node, "it left the cluster");
  }

  #nodeGone(node: string, detail: string): void {
    this.#missed.delete(node);
    for (const entry of [...this.#inFlight]) {
      if (entry.node !== node) continue;
      this.#inFlight.delete(entry);
      entry.fail(new RemoteActorGoneError(entry.actor, node, detail));
    }
  }

  // ---- topics --------------------------------------------------------------

  /**
   * Publishes a local topic message to the other nodes (at most once: a
   * node that is disconnected then does not get it). The runtime calls this
   * for every publication; local subscribers have it already.
   */
  publishTopic(topic: string, slot: Uint8Array): void {
    if (this.#closing !== undefined || this.#nc.isClosed()) return;
    this.#topicsOut++;
    this.#nc.publish(this.subjects.topic(topic), slot);
  }

  #onTopic(msg: Msg): void {
    const topic = this.subjects.topicOf(msg.subject);
    if (topic === undefined) return;
    let slot: ReadSlot;
    try {
      slot = this.#merge(readSlot(msg.data));
    } catch (error) {
      if (!(error instanceof ClockSkewError)) {
        console.error(
          `ringkernel: a cluster message on "${topic}" is not valid:`,
          error,
        );
      }
      return;
    }
    this.#topicsIn++;
    const bytes = new Uint8Array(slot.view.byteLength);
    bytes.set(msg.data);
    this.#host.deliverTopic(topic, bytes);
  }

  // ---- leaving -------------------------------------------------------------

  /**
   * Leaves the cluster: stops serving (new requests for this node's actors
   * find no responder), announces the leave (operations in flight to it
   * elsewhere fail with {@linkcode RemoteActorGoneError} at once), lets the
   * operations it serves finish within `timeoutMs`, and closes the
   * connection. Later calls wait for the same close.
   */
  close(options: CloseOptions = {}): Promise<void> {
    const o = checkOptionsObject<CloseOptions>("options", options);
    this.#closing ??= this.#close(o.timeoutMs ?? 10_000);
    return this.#closing;
  }

  async #close(timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    // Durable messages already queued are acknowledged as they are handled.
    const servings = [...this.#durable.values()];
    this.#durable.clear();
    await Promise.all(servings.map((s) => s.stop(timeoutMs)));
    for (const name of [...this.#served.keys()]) this.unserve(name);
    for (const name of [...this.#moving.keys()]) this.#stopMoving(name, 0);
    for (const adoption of this.#adoptions.values()) {
      clearTimeout(adoption.timer);
    }
    this.#adoptions.clear();
    this.#unwatchDeadLetters?.();
    clearInterval(this.#liveness);
    this.#liveness = undefined;
    if (this.#nc.isClosed()) return;
    try {
      this.#nc.publish(this.subjects.nodeLeave(this.name), this.name);
      await this.#nc.flush();
    } catch {
      // Disconnected: the others learn it from the missing pings.
    }
    if (this.#serving.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled([...this.#serving.keys()]),
        new Promise((resolve) => timer = setTimeout(resolve, timeoutMs)),
      ]);
      clearTimeout(timer);
    }
    if (this.#recording.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled([...this.#recording]),
        new Promise((resolve) =>
          timer = setTimeout(resolve, Math.max(0, end - Date.now()))
        ),
      ]);
      clearTimeout(timer);
    }
    for (const entry of [...this.#inFlight]) {
      entry.fail(
        new InvalidStateError(
          `${entry.actor}: wait for the reply`,
          "closed",
          "this node left the cluster",
        ),
      );
    }
    await this.#nc.close().catch(() => {});
  }
}
