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
import {
  ENVELOPE_SIZE,
  type EnvelopeInit,
  writeEnvelopeFor,
} from "../../envelope.ts";
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
import { pollUntil } from "../../async.ts";
import { checkOptionsObject, checkWaitOptions } from "../../options.ts";
import { subscription, type TopicSubscription } from "../../pubsub.ts";
import type { RouteEntry, WorkerToHost } from "./protocol.ts";

/** Default of {@linkcode ActorSendOptions.timeoutMs}. */
const K2K_TIMEOUT_MS = 1000;

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
    table.set(entry.name, {
      id: entry.id,
      producer: inbox.producer(),
      wakeRing,
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
}

/** The sending side of one actor loop: `ctx.send`, `ctx.publish`, `ctx.subscribe`. */
export class ActorOutbox {
  readonly #init: OutboxInit;
  /** Where a K2K message is encoded before it takes a slot of the target's inbox. */
  #scratch = new DataView(new ArrayBuffer(64));
  /** Views of the scratch's first n bytes, by n (a few schema sizes). */
  readonly #scratchViews = new Map<number, Uint8Array>();
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

  /** `ctx.send`: a K2K send into `target`'s inbox. */
  async send(
    target: string,
    message: MessageValue<FieldsSpec>,
    options?: ActorSendOptions,
  ): Promise<DeliveryReceipt> {
    const { timeoutMs, signal } = checkWaitOptions(options, K2K_TIMEOUT_MS);
    const schema = checkSchema(options?.schema) ??
      this.#init.definition.output;
    if (signal?.aborted) throw signal.reason;
    let route = this.#init.routes().get(target);
    if (route === undefined) {
      const caughtUp = this.#init.catchUp();
      if (caughtUp !== undefined) {
        await caughtUp;
        route = this.#init.routes().get(target);
      }
    }
    if (route === undefined) throw new UnknownActorError(target);
    if (schema === undefined) {
      throw new InvalidMessageError(
        `actor "${this.#init.name}" has no output schema; pass options.schema`,
      );
    }
    const producer = route.producer;
    const ring = producer.ring;
    if (schema.size > ring.payloadCapacity) {
      throw new InvalidMessageError(
        `K2K send to "${target}": ${schema.name} needs ${schema.size} B of payload; a ${ring.slotSize} B slot holds ${ring.payloadCapacity} B`,
      );
    }
    // Encode first, into the scratch: a message that does not encode fails
    // here, before it takes a ticket of the target's inbox. (A ticket cannot
    // be handed back: it would become a void slot that the target's
    // accounting counts as sent and never as processed.)
    const payload = this.#encodeScratch(schema, message);
    const envelope: Omit<EnvelopeInit, "payloadLength"> = {
      typeId: schema.typeId,
      sourceActor: this.#init.id,
      timestamp: this.#init.clock.now(),
    };
    if (!producer.tryEnqueueRaw(envelope, payload)) {
      const full =
        `K2K send to "${target}": queue full (${ring.capacity} slots)`;
      if (timeoutMs === 0) throw new QueueFullError(full);
      // The scratch is shared by this loop's sends: a waiting one keeps a copy.
      const copy = payload.slice();
      try {
        await pollUntil(() => producer.tryEnqueueRaw(envelope, copy), {
          timeoutMs,
          signal,
          what: `K2K send to "${target}"`,
        });
      } catch (error) {
        if (error instanceof TimeoutError) {
          throw new QueueFullError(`${full} for ${timeoutMs} ms`, {
            cause: error,
          });
        }
        throw error;
      }
    }
    this.#toWake.add(route);
    return { target, targetId: route.id };
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

  /** Encodes `message` into the scratch; returns a view of its bytes. */
  #encodeScratch(
    schema: MessageSchema,
    message: MessageValue<FieldsSpec>,
  ): Uint8Array {
    const size = schema.size;
    if (this.#scratch.byteLength < size) {
      this.#scratch = new DataView(new ArrayBuffer(size));
      this.#scratchViews.clear();
    }
    schema.encode(this.#scratch, 0, message);
    let view = this.#scratchViews.get(size);
    if (view === undefined) {
      view = new Uint8Array(this.#scratch.buffer, 0, size);
      this.#scratchViews.set(size, view);
    }
    return view;
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
