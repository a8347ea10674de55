/**
 * What a CPU actor sends from inside its handlers: K2K messages straight
 * into other actors' inboxes (the routing table maps names to their rings),
 * publications and subscriptions (through the host, which keeps the topic
 * table).
 *
 * @module
 */

import type {
  ActorDefinition,
  ActorPublishOptions,
  ActorSendOptions,
  DeliveryReceipt,
} from "../../actor.ts";
import { ENVELOPE_SIZE, writeEnvelopeFor } from "../../envelope.ts";
import { ENVELOPE } from "../../layout.ts";
import {
  InvalidMessageError,
  InvalidOptionError,
  QueueFullError,
  TimeoutError,
  UnknownActorError,
} from "../../errors.ts";
import type { HybridClock } from "../../hlc.ts";
import type { FieldsSpec, MessageSchema, MessageValue } from "../../message.ts";
import { Ring, type RingProducer } from "../../ring.ts";
import { validateFilter, validateTopic } from "../../topic.ts";
import { checkOptionsObject, checkWaitOptions } from "../../options.ts";
import { subscription, type TopicSubscription } from "../../pubsub.ts";
import type { RouteEntry, WorkerToHost } from "./protocol.ts";

/** The `targetId` of a receipt for an actor served by another node. */
export const REMOTE_TARGET_ID = -1;
/** Default of {@linkcode ActorSendOptions.timeoutMs}. */
const K2K_TIMEOUT_MS = 1000;
const TIMESTAMP = ENVELOPE.fields.timestamp.offset;
const SOURCE_ACTOR = ENVELOPE.fields.sourceActor.offset;

/** A message schema, or `undefined`. */
function checkSchema(value: unknown): MessageSchema | undefined {
  if (value === undefined) return undefined;
  if (
    value === null || typeof value !== "object" ||
    typeof (value as MessageSchema).typeId !== "number"
  ) {
    throw new InvalidOptionError(
      "schema",
      value,
      "a message schema (defineMessage)",
    );
  }
  return value as MessageSchema;
}

/** Another actor's inbox, as a sender sees it. */
export interface Route {
  /** The actor's id. */
  readonly id: number;
  /** A producer of its K2K inbox. */
  readonly producer: RingProducer;
  /** Its input ring, whose doorbell wakes it. */
  readonly wakeRing: Ring;
  /** What every accepted send to it reports (one frozen object per route). */
  readonly receipt: DeliveryReceipt;
  /** The receipt, resolved: what a send that did not wait returns. */
  readonly sent: Promise<DeliveryReceipt>;
}

/** Builds a routing table, keeping the producers of routes that did not change. */
export function buildRoutes(
  entries: readonly RouteEntry[],
  previous: ReadonlyMap<string, Route>,
): Map<string, Route> {
  const table = new Map<string, Route>();
  for (const entry of entries) {
    const kept = previous.get(entry.name);
    if (kept !== undefined && kept.id === entry.id) {
      table.set(entry.name, kept);
      continue;
    }
    const inbox = Ring.attach(entry.memory, {
      byteOffset: entry.plan.inbox,
      kind: "mpsc",
    });
    const wakeRing = Ring.attach(entry.memory, {
      byteOffset: entry.plan.input,
    });
    const receipt = Object.freeze({ target: entry.name, targetId: entry.id });
    table.set(entry.name, {
      id: entry.id,
      producer: inbox.producer(),
      wakeRing,
      receipt,
      sent: Promise.resolve(receipt),
    });
  }
  return table;
}

/** What an {@linkcode ActorOutbox} needs from the loop that owns it. */
export interface OutboxInit {
  /** The sending actor's name. */
  readonly name: string;
  /** The sending actor's id. */
  readonly id: number;
  /** Its definition (the default schema is its output). */
  readonly definition: ActorDefinition;
  /** The clock that stamps what it sends. */
  readonly clock: HybridClock;
  /** Its slot size (publications must fit one). */
  readonly slotSize: number;
  /** The current routing table. */
  readonly routes: () => ReadonlyMap<string, Route>;
  /** Resolves once every host message posted so far was handled (routes may be newer). */
  readonly catchUp: () => Promise<void> | undefined;
  /** Posts a message to the host. */
  readonly post: (message: WorkerToHost, transfer?: Transferable[]) => void;
  /**
   * Hands a K2K send to a name with no local route to the host, which
   * forwards it through its cluster node; resolves once the serving node
   * took it. Absent: such a send fails with `UnknownActorError`.
   */
  readonly remoteSend?: (
    target: string,
    slot: Uint8Array,
    timeoutMs: number,
  ) => Promise<void>;
}

/**
 * The sending side of one actor loop: `ctx.send`, `ctx.publish`,
 * `ctx.subscribe`, `ctx.replyTo`.
 */
export class ActorOutbox {
  readonly #init: OutboxInit;
  /** Where K2K messages are encoded before they take slots of the target's inbox. */
  #scratch = new DataView(new ArrayBuffer(4096));
  /** The scratch's bytes and words (made when first needed). */
  #bytes: Uint8Array | undefined;
  #words: Uint32Array | undefined;
  /** The one-message array of a single send (emptied after each). */
  readonly #one: unknown[] = [undefined];
  /** Live `ctx.subscribe` subscriptions, by filter. */
  readonly #filters = new Map<string, number>();
  /** Targets sent to since the last {@linkcode ActorOutbox.flush}: each is woken once. */
  readonly #toWake = new Set<Route>();

  constructor(init: OutboxInit) {
    this.#init = init;
  }

  /**
   * Subscribes the actor to `filter`: the host subscribes it when the first
   * subscription to the filter begins, and unsubscribes it when the last ends.
   */
  subscribe(filter: string): TopicSubscription {
    validateFilter(filter);
    const post = this.#init.post;
    const count = this.#filters.get(filter) ?? 0;
    this.#filters.set(filter, count + 1);
    if (count === 0) post({ kind: "subscribe", filter });
    const ended = subscription(() => {
      const left = this.#filters.get(filter)! - 1;
      if (left > 0) {
        this.#filters.set(filter, left);
      } else {
        this.#filters.delete(filter);
        post({ kind: "unsubscribe", filter });
      }
    });
    return Object.assign(ended, { filter, subscriberId: this.#init.name });
  }

  /**
   * `ctx.send`: a K2K send into `target`'s inbox. When the target is known
   * and its inbox has room, the message is in it when this returns, and the
   * promise returned is the route's, already resolved: no await and no
   * object per message.
   */
  send(
    target: string,
    message: MessageValue<FieldsSpec>,
    options?: ActorSendOptions,
  ): Promise<DeliveryReceipt> {
    if (options === undefined) {
      const route = this.#init.routes().get(target);
      const schema = this.#init.definition.output;
      if (route !== undefined && schema !== undefined) {
        try {
          this.#encodeOne(route, target, schema, message);
          if (this.#put(route, schema, 0, 1) === 1) return route.sent;
        } catch (error) {
          return Promise.reject(error);
        }
      }
    }
    return this.#sendWaiting(target, [message], options).then((route) =>
      route.receipt
    );
  }

  /**
   * `ctx.trySend`: a K2K send that does not wait. True when the message is
   * in the target's inbox; false, sending nothing, when that is full.
   */
  trySend(
    target: string,
    message: MessageValue<FieldsSpec>,
    options?: Pick<ActorSendOptions, "schema">,
  ): boolean {
    const schema = this.#schemaOf(
      checkSchema(
        checkOptionsObject<ActorSendOptions>("options", options).schema,
      ),
    );
    const route = this.#init.routes().get(target);
    if (route === undefined) throw new UnknownActorError(target);
    this.#encodeOne(route, target, schema, message);
    return this.#put(route, schema, 0, 1) === 1;
  }

  /**
   * `ctx.sendBatch`: K2K sends of `messages`, in order, each run that fits
   * taking its tickets with one claim and published at once. Every message
   * is encoded (and so checked) before the first is sent. Resolves with the
   * count; rejects as {@linkcode ActorOutbox.send} does, the messages
   * before the one that found no room having been sent.
   */
  async sendBatch(
    target: string,
    messages: ArrayLike<MessageValue<FieldsSpec>>,
    options?: ActorSendOptions,
  ): Promise<number> {
    await this.#sendWaiting(target, messages, options);
    return messages.length;
  }

  /**
   * The checks and waits of a send that may wait: catches up on routes,
   * waits for room; a target with no local route goes to the host
   * ({@linkcode OutboxInit.remoteSend}).
   */
  async #sendWaiting(
    target: string,
    messages: ArrayLike<MessageValue<FieldsSpec>>,
    options: ActorSendOptions | undefined,
  ): Promise<Pick<Route, "receipt">> {
    const { timeoutMs, signal } = checkWaitOptions(options, K2K_TIMEOUT_MS);
    const given = checkSchema(options?.schema);
    if (signal?.aborted) throw signal.reason;
    let route = this.#init.routes().get(target);
    if (route === undefined) {
      const caughtUp = this.#init.catchUp();
      if (caughtUp !== undefined) {
        await caughtUp;
        route = this.#init.routes().get(target);
      }
    }
    if (route === undefined) {
      return await this.#sendRemote(target, messages, given, timeoutMs, signal);
    }
    const schema = this.#schemaOf(given);
    const total = messages.length;
    if (total === 0) return route;
    // Encoded first, all of them: a message that does not encode fails
    // here, before any takes a ticket of the target's inbox. (A ticket
    // cannot be handed back: it would become a void slot that the target's
    // accounting counts as sent and never as processed.) A waiting send
    // keeps its own copy: the scratch is shared by this loop's sends.
    const scratch = this.#encode(route, target, schema, messages, total);
    let done = this.#put(route, schema, 0, total);
    if (done === total) return route;
    const own = scratch.slice(0, total * schema.size);
    const producer = route.producer;
    const full =
      `K2K send to "${target}": queue full (${producer.ring.capacity} slots)`;
    if (timeoutMs === 0) throw new QueueFullError(full);
    const end = performance.now() + timeoutMs;
    for (;;) {
      // The target must be awake to make room.
      route.wakeRing.ringDoorbell();
      const left = end - performance.now();
      if (left <= 0) {
        throw new QueueFullError(`${full} for ${timeoutMs} ms`, {
          cause: new TimeoutError(`K2K send to "${target}"`, timeoutMs),
        });
      }
      await producer.writable({ timeoutMs: left, signal });
      this.#scratchBytes().set(own);
      done += this.#put(route, schema, done, total - done);
      if (done === total) return route;
    }
  }

  /**
   * Sends `messages` to `target`, which no local route has, through the
   * host's cluster node, one after another within `timeoutMs`. Throws
   * `UnknownActorError` where the host has no cluster or no node serves
   * the name.
   */
  async #sendRemote(
    target: string,
    messages: ArrayLike<MessageValue<FieldsSpec>>,
    given: MessageSchema | undefined,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<Pick<Route, "receipt">> {
    const forward = this.#init.remoteSend;
    if (forward === undefined) throw new UnknownActorError(target);
    const schema = this.#schemaOf(given);
    const slots: Uint8Array[] = [];
    for (let i = 0; i < messages.length; i++) {
      const slot = new Uint8Array(ENVELOPE_SIZE + schema.size);
      const view = new DataView(slot.buffer);
      writeEnvelopeFor(view, 0, schema, {
        sourceActor: this.#init.id,
        timestamp: this.#init.clock.now(),
      });
      schema.encode(view, ENVELOPE_SIZE, messages[i]);
      slots.push(slot);
    }
    const end = performance.now() + timeoutMs;
    for (const slot of slots) {
      const left = Math.max(0, Math.round(end - performance.now()));
      const sent = forward(target, slot, left);
      if (signal === undefined) await sent;
      else {
        await new Promise<void>((resolve, reject) => {
          const onAbort = () => reject(signal.reason);
          if (signal.aborted) return onAbort();
          signal.addEventListener("abort", onAbort, { once: true });
          sent.then(resolve, reject).finally(() =>
            signal.removeEventListener("abort", onAbort)
          );
        });
      }
    }
    return { receipt: { target, targetId: REMOTE_TARGET_ID } };
  }

  /** The schema a send encodes with: the given one, or the actor's output. */
  #schemaOf(given: MessageSchema | undefined): MessageSchema {
    const schema = given ?? this.#init.definition.output;
    if (schema === undefined) {
      throw new InvalidMessageError(
        `actor "${this.#init.name}" has no output schema; pass options.schema`,
      );
    }
    return schema;
  }

  /** {@linkcode ActorOutbox.#encode} of one message. */
  #encodeOne(
    route: Route,
    target: string,
    schema: MessageSchema,
    message: MessageValue<FieldsSpec>,
  ): void {
    const one = this.#one;
    one[0] = message;
    try {
      this.#encode(route, target, schema, one, 1);
    } finally {
      one[0] = undefined;
    }
  }

  /**
   * Checks that `schema` fits the target's slots and encodes the first
   * `count` of `messages` into the scratch, back to back; returns the
   * scratch's bytes.
   */
  #encode(
    route: Route,
    target: string,
    schema: MessageSchema,
    messages: ArrayLike<unknown>,
    count: number,
  ): Uint8Array {
    const ring = route.producer.ring;
    const size = schema.size;
    if (size > ring.payloadCapacity) {
      throw new InvalidMessageError(
        `K2K send to "${target}": ${schema.name} needs ${size} B of payload; a ${ring.slotSize} B slot holds ${ring.payloadCapacity} B`,
      );
    }
    if (this.#scratch.byteLength < size * count) {
      this.#scratch = new DataView(
        new ArrayBuffer(Math.max(size * count, this.#scratch.byteLength * 2)),
      );
      this.#bytes = undefined;
      this.#words = undefined;
    }
    const scratch = this.#scratch;
    for (let i = 0; i < count; i++) {
      schema.encode(
        scratch,
        i * size,
        messages[i] as MessageValue<FieldsSpec>,
      );
    }
    return this.#scratchBytes();
  }

  #scratchBytes(): Uint8Array {
    return this.#bytes ??= new Uint8Array(this.#scratch.buffer);
  }

  #scratchWords(): Uint32Array {
    return this.#words ??= new Uint32Array(this.#scratch.buffer);
  }

  /**
   * Moves up to `count` messages encoded in the scratch (from message
   * `from`) into the target's inbox with one claim and one publication;
   * returns how many it took (0 when the inbox is full).
   */
  #put(
    route: Route,
    schema: MessageSchema,
    from: number,
    count: number,
  ): number {
    const producer = route.producer;
    const granted = producer.claim(count);
    if (granted === 0) return 0;
    const ring = producer.ring;
    const view = ring.view;
    const bytes = ring.bytes;
    const size = schema.size;
    const id = this.#init.id;
    const clock = this.#init.clock;
    // Payloads of whole words (most schemas) are copied word by word: no
    // view per message.
    const byWords = (size & 3) === 0;
    const words = ring.words;
    const from32 = this.#scratchWords();
    const size32 = size >> 2;
    for (let i = 0; i < granted; i++) {
      const offset = producer.slotOffset(i);
      writeEnvelopeFor(view, offset, schema);
      view.setUint32(offset + SOURCE_ACTOR, id, true);
      clock.writeNow(view, offset + TIMESTAMP);
      const at = (from + i) * size;
      if (byWords) {
        const to = (offset + ENVELOPE_SIZE) >> 2;
        const first = at >> 2;
        for (let k = 0; k < size32; k++) words[to + k] = from32[first + k];
      } else {
        const source = this.#scratchBytes();
        bytes.set(source.subarray(at, at + size), offset + ENVELOPE_SIZE);
      }
    }
    producer.publish(granted);
    this.#toWake.add(route);
    return granted;
  }

  /**
   * Rings the doorbell of every actor sent to since the last flush: once per
   * drained batch rather than once per message. The loop calls it after each
   * batch and before it sleeps, so a target never waits for a wake-up longer
   * than the sender's batch.
   */
  flush(): void {
    if (this.#toWake.size === 0) return;
    for (const route of this.#toWake) route.wakeRing.ringDoorbell();
    this.#toWake.clear();
  }

  /**
   * `ctx.replyTo`: a reply to the earlier call `correlationId`, handed to
   * the host (which routes it as a reply from the output ring): off the
   * ring, so the loop's commit of replies is untouched.
   */
  replyTo(
    correlationId: bigint,
    message: MessageValue<FieldsSpec>,
    options?: Pick<ActorSendOptions, "schema">,
  ): void {
    const given = checkSchema(
      checkOptionsObject<ActorSendOptions>("options", options).schema,
    );
    if (
      typeof correlationId !== "bigint" || correlationId <= 0n ||
      correlationId >= 1n << 64n
    ) {
      throw new InvalidOptionError(
        "correlationId",
        correlationId,
        "a positive bigint below 2^64 (a call's ctx.correlationId)",
      );
    }
    const schema = this.#schemaOf(given);
    if (schema.size > this.#init.slotSize - ENVELOPE_SIZE) {
      throw new InvalidMessageError(
        `${schema.name} (${schema.size} B) does not fit a ${this.#init.slotSize} B slot`,
      );
    }
    const slot = new Uint8Array(ENVELOPE_SIZE + schema.size);
    const view = new DataView(slot.buffer);
    writeEnvelopeFor(view, 0, schema, {
      correlationId,
      sourceActor: this.#init.id,
      timestamp: this.#init.clock.now(),
    });
    schema.encode(view, ENVELOPE_SIZE, message);
    this.#init.post({ kind: "reply", slot }, [slot.buffer]);
  }

  /** `ctx.publish`: hands a publication to the host, which delivers it. */
  publish(
    topic: string,
    message: MessageValue<FieldsSpec>,
    options?: ActorPublishOptions,
  ): void {
    const schema = checkSchema(
      checkOptionsObject<ActorPublishOptions>("options", options).schema,
    );
    validateTopic(topic);
    const use = schema ?? this.#init.definition.output;
    if (use === undefined) {
      throw new InvalidMessageError(
        `actor "${this.#init.name}" has no output schema; pass options.schema`,
      );
    }
    if (use.size > this.#init.slotSize - ENVELOPE_SIZE) {
      throw new InvalidMessageError(
        `${use.name} (${use.size} B) does not fit a ${this.#init.slotSize} B slot`,
      );
    }
    const slot = new Uint8Array(ENVELOPE_SIZE + use.size);
    const view = new DataView(slot.buffer);
    writeEnvelopeFor(view, 0, use, {
      sourceActor: this.#init.id,
      timestamp: this.#init.clock.now(),
    });
    use.encode(view, ENVELOPE_SIZE, message);
    this.#init.post({ kind: "publish", topic, slot }, [slot.buffer]);
  }
}
