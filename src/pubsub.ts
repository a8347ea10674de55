/**
 * A synchronous publish/subscribe broker with MQTT topic filters
 * (see `topic.ts` for the matching rules).
 *
 * Subscribers are plain functions. A subscription may name its subscriber
 * with an id (an actor's name, say): one publish reaches each named subscriber
 * at most once, however many of its filters match, through the handler of its
 * earliest matching subscription. Anonymous subscriptions are each delivered
 * separately. A subscriber that throws (or whose returned promise rejects)
 * does not stop delivery to the others; its error goes to the `onError` hook.
 *
 * @module
 */

import { RingKernelError } from "./errors.ts";
import { TopicTree, validateFilter } from "./topic.ts";

/**
 * Receives a published message. Its return value is ignored, except that a
 * returned promise (any thenable) that rejects is reported to the broker's
 * `onError` hook like a thrown error.
 */
export type SubscriberHandler<M> = (message: M, topic: string) => unknown;

/** Options of {@linkcode PubSub.subscribe}. */
export interface SubscribeOptions {
  /**
   * Names the subscriber (for instance an actor's name). Subscriptions with
   * the same id receive each published message at most once between them.
   */
  subscriberId?: string;
}

/**
 * A subscription: to a topic, or to a stream of events. It lasts until
 * {@linkcode Subscription.unsubscribe} ends it, or the end of the block that
 * holds it with `using`:
 *
 * ```ts ignore
 * using events = rt.onEvent((event) => console.log(event));
 * ```
 */
export interface Subscription extends Disposable {
  /** Whether the subscription still receives messages. */
  readonly active: boolean;
  /**
   * Stops delivery to this subscription. Idempotent.
   *
   * @returns `true` the first time, `false` when it was already inactive.
   */
  unsubscribe(): boolean;
  /** Unsubscribes (for `using`). */
  [Symbol.dispose](): void;
}

/** A subscription to a topic filter. */
export interface TopicSubscription extends Subscription {
  /** The topic filter subscribed to. */
  readonly filter: string;
  /**
   * The subscriber's id: a kernel's name for a kernel's subscription,
   * `undefined` for a host handler's.
   */
  readonly subscriberId: string | undefined;
}

/**
 * A {@linkcode Subscription} that calls `cancel` when it ends (the first
 * time only).
 */
export function subscription(cancel: () => void): Subscription {
  let active = true;
  const unsubscribe = (): boolean => {
    if (!active) return false;
    active = false;
    cancel();
    return true;
  };
  return {
    get active() {
      return active;
    },
    unsubscribe,
    [Symbol.dispose]: () => {
      unsubscribe();
    },
  };
}

/** What {@linkcode PubSubOptions.onError} is told about a failed delivery. */
export interface DeliveryErrorContext<M> {
  /** The topic that was published to. */
  readonly topic: string;
  /** The message that was published. */
  readonly message: M;
  /** The subscription whose handler failed. */
  readonly subscription: TopicSubscription;
}

/** Options of the {@linkcode PubSub} constructor. */
export interface PubSubOptions<M> {
  /**
   * Called with each error thrown (or promise rejection) by a subscriber.
   * Defaults to writing the error to `console.error`. An error thrown by the
   * hook itself is written to `console.error` and otherwise ignored.
   */
  onError?: (error: unknown, context: DeliveryErrorContext<M>) => void;
}

class SubscriptionRecord<M> implements TopicSubscription {
  readonly filter: string;
  readonly subscriberId: string | undefined;
  readonly handler: SubscriberHandler<M>;
  /** Subscription order, used to deliver in a deterministic order. */
  readonly sequence: number;
  active = true;
  #detach: (record: SubscriptionRecord<M>) => void;

  constructor(
    detach: (record: SubscriptionRecord<M>) => void,
    filter: string,
    handler: SubscriberHandler<M>,
    subscriberId: string | undefined,
    sequence: number,
  ) {
    this.#detach = detach;
    this.filter = filter;
    this.handler = handler;
    this.subscriberId = subscriberId;
    this.sequence = sequence;
  }

  unsubscribe(): boolean {
    if (!this.active) return false;
    this.#detach(this);
    return true;
  }

  [Symbol.dispose](): void {
    this.unsubscribe();
  }
}

function bySequence<M>(
  a: SubscriptionRecord<M>,
  b: SubscriptionRecord<M>,
): number {
  return a.sequence - b.sequence;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === "object" &&
    typeof (value as PromiseLike<unknown>).then === "function";
}

function defaultOnError<M>(
  error: unknown,
  context: DeliveryErrorContext<M>,
): void {
  console.error(
    `pubsub: subscriber ${
      context.subscription.subscriberId ?? "(anonymous)"
    } of ${JSON.stringify(context.subscription.filter)} failed on ${
      JSON.stringify(context.topic)
    }:`,
    error,
  );
}

/**
 * A topic-based broker. Delivery is synchronous: {@linkcode PubSub.publish}
 * returns after every matching handler has run.
 *
 * @typeParam M The message type.
 */
export class PubSub<M> {
  #tree = new TopicTree<SubscriptionRecord<M>>();
  #all = new Set<SubscriptionRecord<M>>();
  #byId = new Map<string, Set<SubscriptionRecord<M>>>();
  #sequence = 0;
  #errorCount = 0;
  #onError: (error: unknown, context: DeliveryErrorContext<M>) => void;

  /** Creates an empty broker. */
  constructor(options: PubSubOptions<M> = {}) {
    this.#onError = options.onError ?? defaultOnError;
  }

  /** Number of active subscriptions. */
  get size(): number {
    return this.#all.size;
  }

  /** Number of subscriber errors reported since the broker was created. */
  get errorCount(): number {
    return this.#errorCount;
  }

  /**
   * Subscribes `handler` to every topic matching `filter`. Messages published
   * while `subscribe` runs inside another delivery are not seen by it.
   *
   * @throws {InvalidMessageError} when `filter` is invalid.
   * @throws {RingKernelError} when `subscriberId` is given but empty or not a string.
   */
  subscribe(
    filter: string,
    handler: SubscriberHandler<M>,
    options: SubscribeOptions = {},
  ): TopicSubscription {
    validateFilter(filter);
    if (typeof handler !== "function") {
      throw new RingKernelError(
        `subscriber for ${JSON.stringify(filter)} must be a function`,
      );
    }
    const id = options.subscriberId;
    if (id !== undefined && (typeof id !== "string" || id.length === 0)) {
      throw new RingKernelError(
        `subscriberId must be a non-empty string, got ${JSON.stringify(id)}`,
      );
    }
    const record = new SubscriptionRecord(
      this.#detach,
      filter,
      handler,
      id,
      this.#sequence++,
    );
    this.#tree.add(filter, record);
    this.#all.add(record);
    if (id !== undefined) {
      let set = this.#byId.get(id);
      if (set === undefined) {
        set = new Set();
        this.#byId.set(id, set);
      }
      set.add(record);
    }
    return record;
  }

  #detach = (record: SubscriptionRecord<M>): void => {
    if (!this.#all.delete(record)) return;
    this.#tree.remove(record.filter, record);
    record.active = false;
    const id = record.subscriberId;
    if (id !== undefined) {
      const set = this.#byId.get(id)!;
      set.delete(record);
      if (set.size === 0) this.#byId.delete(id);
    }
  };

  /**
   * Delivers `message` to every subscription whose filter matches `topic`,
   * in subscription order; a named subscriber receives it at most once.
   *
   * @returns the number of handlers that accepted the message (returned
   * without throwing).
   * @throws {InvalidMessageError} when `topic` is not a valid topic name.
   */
  publish(topic: string, message: M): number {
    const matched = this.#tree.match(topic);
    if (matched.length === 0) return 0;
    let seen: Set<string> | undefined;
    if (matched.length > 1) {
      matched.sort(bySequence);
      // Only ids with several subscriptions can be reached twice.
      for (const record of matched) {
        const id = record.subscriberId;
        if (id !== undefined && this.#byId.get(id)!.size > 1) {
          seen = new Set();
          break;
        }
      }
    }
    let delivered = 0;
    for (const record of matched) {
      // An earlier handler may have unsubscribed this one.
      if (!record.active) continue;
      if (seen !== undefined && record.subscriberId !== undefined) {
        if (seen.has(record.subscriberId)) continue;
        seen.add(record.subscriberId);
      }
      try {
        const result = record.handler(message, topic);
        if (isThenable(result)) {
          result.then(undefined, (error: unknown) => {
            this.#report(error, { topic, message, subscription: record });
          });
        }
        delivered++;
      } catch (error) {
        this.#report(error, { topic, message, subscription: record });
      }
    }
    return delivered;
  }

  #report(error: unknown, context: DeliveryErrorContext<M>): void {
    this.#errorCount++;
    try {
      this.#onError(error, context);
    } catch (hookError) {
      console.error("pubsub: the onError hook threw:", hookError);
    }
  }

  /**
   * Whether at least one subscription matches `topic` (to skip building a
   * message nobody will receive).
   *
   * @throws {InvalidMessageError} when `topic` is not a valid topic name.
   */
  hasSubscribers(topic: string): boolean {
    return this.#tree.match(topic).length > 0;
  }

  /** The active subscriptions of the subscriber named `subscriberId`. */
  subscriptionsOf(subscriberId: string): TopicSubscription[] {
    const set = this.#byId.get(subscriberId);
    return set === undefined ? [] : Array.from(set).sort(bySequence);
  }

  /**
   * Cancels every subscription of the subscriber named `subscriberId` (for
   * instance when that actor terminates).
   *
   * @returns how many subscriptions were cancelled.
   */
  unsubscribeAll(subscriberId: string): number {
    const set = this.#byId.get(subscriberId);
    if (set === undefined) return 0;
    const records = Array.from(set);
    for (const record of records) this.#detach(record);
    return records.length;
  }

  /** Cancels every subscription. */
  clear(): void {
    for (const record of this.#all) record.active = false;
    this.#all.clear();
    this.#tree.clear();
    this.#byId.clear();
  }
}
