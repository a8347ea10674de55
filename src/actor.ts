/**
 * Actor definitions: what a CPU actor module exports, and the context its
 * handler receives. The same message schemas describe GPU actors' payloads.
 *
 * @module
 */

import { ActorModuleError, InvalidOptionError } from "./errors.ts";
import type {
  DecodedMessage,
  FieldsSpec,
  MessageSchema,
  MessageValue,
} from "./message.ts";
import type { TopicSubscription } from "./pubsub.ts";

/** What `ctx.send` reports when a K2K message was accepted by its target's queue. */
export interface DeliveryReceipt {
  /** The target actor's name. */
  readonly target: string;
  /** The target actor's id; -1 for an actor another node of the cluster serves. */
  readonly targetId: number;
}

/**
 * Options of {@linkcode ActorContext.send}, a K2K send from inside an actor.
 * Every option is checked: a bad value is refused with
 * {@linkcode InvalidOptionError}.
 */
export interface ActorSendOptions {
  /** Schema to encode with; defaults to the sending actor's output schema. */
  schema?: MessageSchema;
  /**
   * How long to wait for space in the target's queue, in ms: a finite number
   * in 0..2^31-1 (default 1000; 0 = do not wait: `QueueFullError` at once
   * when the queue is full).
   */
  timeoutMs?: number;
  /**
   * Aborting rejects the wait with `signal.reason` (at once, sending
   * nothing, when it has already aborted).
   */
  signal?: AbortSignal;
}

/** Options of {@linkcode ActorContext.publish}; checked like {@linkcode ActorSendOptions}. */
export interface ActorPublishOptions {
  /** Schema to encode with; defaults to the publishing actor's output schema. */
  schema?: MessageSchema;
}

/** The context passed to an actor's handler. */
export interface ActorContext<S = unknown> {
  /** The actor's name. */
  readonly name: string;
  /** The actor's numeric id (the `sourceActor` of what it sends). */
  readonly id: number;
  /** Per-actor state, created by `init` and kept across messages. */
  state: S;
  /** Correlation id of the message being handled (0n when none). */
  readonly correlationId: bigint;
  /** Id of the actor that sent the message being handled (0 = the host). */
  readonly sourceActor: number;
  /**
   * Sends a message to another actor by name (K2K). Resolves with a receipt
   * once the target's queue accepted it; a name no actor of this runtime
   * has goes through the runtime's cluster node (resolving once the serving
   * node's queue took it, `targetId` -1) when the runtime is in a cluster.
   * Rejects with `UnknownActorError` for a target no actor (of the
   * cluster) has, `QueueFullError` for a
   * queue that stayed full past the deadline, `InvalidMessageError` for a
   * message that does not encode or fit, {@linkcode InvalidOptionError} for
   * a bad option, and `signal.reason` on abort.
   */
  send(
    target: string,
    message: MessageValue<FieldsSpec>,
    options?: ActorSendOptions,
  ): Promise<DeliveryReceipt>;
  /**
   * Sends a message to another actor by name (K2K) without waiting: true
   * once the target's queue accepted it, false (sending nothing) when that
   * queue is full. Throws `UnknownActorError` for a target this actor's
   * routing table does not hold yet (`send` waits for the table to catch
   * up), `InvalidMessageError` for a message that does not encode or fit,
   * and {@linkcode InvalidOptionError} for a bad option. Its options are
   * those of `send` that do not concern waiting (`schema`).
   */
  trySend(
    target: string,
    message: MessageValue<FieldsSpec>,
    options?: Pick<ActorSendOptions, "schema">,
  ): boolean;
  /**
   * Sends many messages to another actor (K2K), in order: each run that
   * fits the target's queue takes its slots at once. Every message is
   * encoded (and checked) before the first is sent. Resolves with the count
   * once the queue accepted them all, waiting for room as `send` does;
   * rejects like `send` (`QueueFullError` at the deadline, the messages
   * before the first that found no room having been sent).
   */
  sendBatch(
    target: string,
    messages: ArrayLike<MessageValue<FieldsSpec>>,
    options?: ActorSendOptions,
  ): Promise<number>;
  /**
   * Publishes a message on a topic (MQTT-style); subscribers receive a copy.
   * Throws `InvalidMessageError` for an invalid topic or a message that does
   * not encode or fit.
   */
  publish(
    topic: string,
    message: MessageValue<FieldsSpec>,
    options?: ActorPublishOptions,
  ): void;
  /**
   * Subscribes this actor to a topic filter (MQTT: `+` one level, `#` the
   * rest); matching publications arrive in its queue. Takes effect shortly
   * after the call (the host keeps the subscription table), and lasts until
   * the subscription's `unsubscribe()` (or the actor terminates). Subscribing
   * to a filter it already has adds nothing: the filter stays subscribed
   * until its last subscription ends. Throws `InvalidMessageError` for an
   * invalid filter.
   */
  subscribe(filter: string): TopicSubscription;
  /**
   * Replies to an earlier call of this actor by its correlation id (the
   * `ctx.correlationId` kept while handling it): the handler of that earlier
   * message returned `undefined` (no reply), and this answers it later, from
   * any handler. The call resolves with `message` (encoded with
   * `options.schema`, by default the actor's output schema, which the
   * caller decodes replies with); after the call's deadline the reply is
   * dead-lettered as `expired`. It travels by the host's message channel,
   * not the reply queue, so it may arrive after replies returned later.
   * Throws `InvalidMessageError` when the actor has no output schema and
   * none is given or the message does not encode or fit, and
   * {@linkcode InvalidOptionError} for a correlation id that is not a
   * positive bigint below 2^64 or a bad option.
   */
  replyTo(
    correlationId: bigint,
    message: MessageValue<FieldsSpec>,
    options?: Pick<ActorSendOptions, "schema">,
  ): void;
}

/** A handler's result: a reply (sent to the host), nothing, or a promise of either. */
export type HandlerResult<O extends FieldsSpec> =
  | MessageValue<O>
  | undefined
  | void
  | Promise<MessageValue<O> | undefined | void>;

/** What an actor's `init` receives. */
export interface ActorInitInfo {
  /** The actor's name. */
  readonly name: string;
  /** The actor's id. */
  readonly id: number;
  /** The `config` given at launch (structured-cloned), if any. */
  readonly config: unknown;
}

/** What an actor's `restore` receives, beside the snapshot's bytes. */
export interface ActorRestoreInfo extends ActorInitInfo {
  /** Messages the actor had handled when the snapshot was taken. */
  readonly sequence: bigint;
  /** The id of the checkpoint restored. */
  readonly checkpointId: string;
}

/** The definition of a CPU actor; create it with {@linkcode defineActor}. */
export interface ActorDefinition<
  I extends FieldsSpec = FieldsSpec,
  O extends FieldsSpec = FieldsSpec,
  S = unknown,
> {
  /** Schema of the messages the actor receives. */
  readonly input: MessageSchema<I>;
  /** Schema of its replies (and default schema of its K2K sends). */
  readonly output?: MessageSchema<O>;
  /** Further schemas the actor accepts (e.g. from K2K senders or topics). */
  readonly accepts?: readonly MessageSchema[];
  /** Creates the per-actor state; called again after every restart. */
  readonly init?: (info: ActorInitInfo) => S;
  /**
   * Serializes the state into bytes for a checkpoint or a migration
   * (`rt.checkpoint(name)`, `rt.cluster.migrate(name)`). Called between
   * messages, while the actor is paused: the state is consistent. An actor
   * without `snapshot` cannot be checkpointed or migrated.
   */
  readonly snapshot?: (state: S) => Uint8Array;
  /**
   * Rebuilds the state from the bytes `snapshot` made; called instead of
   * `init` when the actor is launched with `restoreFrom` (or arrives by
   * migration). Restarts after a crash call `init` as before.
   */
  readonly restore?: (snapshot: Uint8Array, info: ActorRestoreInfo) => S;
  /**
   * Handles one message. Returning a value sends it to the host as a reply
   * (correlated with the request); throwing counts as a crash, which the
   * actor's supervisor handles.
   */
  readonly handle: (
    message: DecodedMessage<I>,
    ctx: ActorContext<S>,
  ) => HandlerResult<O>;
}

const ACTOR_BRAND = Symbol.for("ringkernel.actor");

/**
 * Declares a CPU actor. Export the result from a module so the actor's Worker
 * can import it, then launch it with `runtime.launch(name, { actor: { module } })`.
 *
 * @throws {InvalidOptionError} without a `handle` function or an `input` schema.
 */
export function defineActor<I extends FieldsSpec, O extends FieldsSpec, S>(
  definition: ActorDefinition<I, O, S>,
): ActorDefinition<I, O, S> {
  if (definition === null || typeof definition !== "object") {
    throw new InvalidOptionError(
      "definition",
      definition,
      "an object with `input` and `handle`",
    );
  }
  if (typeof definition.handle !== "function") {
    throw new InvalidOptionError("handle", definition.handle, "a function");
  }
  if (
    definition.input === null || typeof definition.input !== "object" ||
    typeof definition.input.typeId !== "number"
  ) {
    throw new InvalidOptionError(
      "input",
      definition.input,
      "a message schema (defineMessage)",
    );
  }
  return Object.freeze(
    Object.assign(Object.create(null), definition, { [ACTOR_BRAND]: true }),
  );
}

/** True when `value` was created by {@linkcode defineActor}. */
export function isActorDefinition(value: unknown): value is ActorDefinition {
  return typeof value === "object" && value !== null &&
    (value as Record<symbol, unknown>)[ACTOR_BRAND] === true;
}

/**
 * Where a CPU actor's definition lives: a module URL (absolute, or a
 * `file:` URL) and the export name (default `"default"`).
 */
export interface ActorModuleRef {
  /** Module URL, e.g. `new URL("./echo_actor.ts", import.meta.url)`. */
  module: string | URL;
  /** Export holding the {@linkcode defineActor} result (default `"default"`). */
  export?: string;
}

/**
 * Loads an actor definition from its module. Throws
 * {@linkcode ActorModuleError} when the module cannot be imported or the
 * export is not an actor.
 */
export async function loadActorDefinition(
  ref: ActorModuleRef,
): Promise<ActorDefinition> {
  const url = typeof ref.module === "string" ? ref.module : ref.module.href;
  const exportName = ref.export ?? "default";
  let mod: Record<string, unknown>;
  try {
    mod = await import(url);
  } catch (cause) {
    throw new ActorModuleError(
      url,
      exportName,
      `cannot be imported: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause },
    );
  }
  const definition = mod[exportName];
  if (!isActorDefinition(definition)) {
    throw new ActorModuleError(
      url,
      exportName,
      "is not an actor (create it with defineActor)",
    );
  }
  return definition;
}
