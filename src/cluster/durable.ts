/**
 * Durable delivery and durable dead letters on JetStream.
 *
 * A durable send (`remote.send(msg, { durable: true })`) is published to
 * the tenant's stream `RK_<tenant>_DURABLE` (subject
 * `rk.<tenant>.durable.<actor>`) with a message id (`Nats-Msg-Id`): the
 * sender repeats the publication with the same id until the stream
 * acknowledges it or the deadline passes, and the stream drops repeats
 * within its duplicate window. The node serving the actor durably takes the
 * messages through the durable consumer `rk-<actor>` (explicit
 * acknowledgement, in stream order) and acknowledges a message only once
 * the actor has handled it (the actor's input queue moved past it), so a
 * message is never lost by a node killed before it was handled: it is
 * delivered again, after the consumer's `ackWait`, to whichever node serves
 * the actor next. While one node serves the actor, a message delivered
 * again (a server restarted, an acknowledgement lost) is recognised by its
 * stream sequence and put in the actor's queue once.
 *
 * Dead letters of the actors a node serves, and of durable messages that
 * cannot be delivered, are recorded in the tenant's stream `RK_<tenant>_DEAD`
 * (subject `rk.<tenant>.dead.<actor>`) and read back with
 * `rt.cluster.deadLetters()`.
 *
 * @module
 */

import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { headers as natsHeaders, nanos } from "@nats-io/nats-core";
import type { DeadLetterReason } from "../dead_letter.ts";
import { ENVELOPE_SIZE, readEnvelope } from "../envelope.ts";
import { ClockSkewError, InvalidMessageError } from "../errors.ts";
import { kernelInternals } from "../kernel.ts";
import type { Kernel } from "../kernel.ts";
import type { Subjects } from "./subjects.ts";
import { decodeSlot, type ReadSlot, readSlot } from "./wire.ts";

/** How long a durable stream remembers message ids, in ms. */
export const DUPLICATE_WINDOW_MS = 120_000;
/** How long durable messages are kept once stored, in ms (one day). */
export const DURABLE_MAX_AGE_MS = 86_400_000;
/** Most dead letters a tenant's dead-letter stream keeps (the oldest go first). */
export const DEAD_LETTERS_KEPT = 100_000;
/** Header naming the node that recorded a dead letter. */
export const NODE_HEADER = "Rk-Node";
/** Header naming a dead letter's reason. */
export const REASON_HEADER = "Rk-Reason";
/** Header carrying a dead letter's detail. */
export const DEAD_DETAIL_HEADER = "Rk-Detail";
/** Header naming the actor of a dead letter. */
export const ACTOR_HEADER = "Rk-Actor";
/** Header carrying a dead letter's type id. */
export const TYPE_HEADER = "Rk-Type-Id";
/** Stream sequences remembered as handled, per served actor. */
const HANDLED_KEPT = 65_536;
/** How often handled messages are acknowledged, in ms. */
const ACK_PERIOD_MS = 2;

/** Options of a durable serving: `rt.cluster.serve(kernel, { durable })`. */
export interface DurableServeOptions {
  /**
   * How long the servers wait for a delivered message's acknowledgement
   * before delivering it again, in ms (default 30 000): after the serving
   * node dies, its unacknowledged messages reach the next node this long
   * after they were delivered.
   */
  ackWaitMs?: number;
  /**
   * Most messages delivered and not yet acknowledged at once (default
   * 1024): at most this many are handled again after the serving node dies.
   */
  maxAckPending?: number;
}

/** Options of `rt.cluster.deadLetters()`. */
export interface DeadLetterReadOptions {
  /** The newest `limit` letters (default 100). */
  limit?: number;
  /** Only letters of this actor. */
  actor?: string;
  /** Deadline, in ms (default 5000). */
  timeoutMs?: number;
  /** Aborting rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/** A dead letter as the tenant's dead-letter stream keeps it. */
export interface ClusterDeadLetter {
  /** Its sequence in the dead-letter stream (increasing, from 1). */
  readonly sequence: number;
  /** When it was recorded (ms since the epoch, the servers' clock). */
  readonly time: number;
  /** The actor the message was for. */
  readonly actor: string;
  /** Why it was not delivered. */
  readonly reason: DeadLetterReason;
  /** Extra words about the failure. */
  readonly detail: string;
  /** The node that recorded it. */
  readonly node: string;
  /** The message's type id. */
  readonly typeId: number;
  /**
   * The message's payload: decode it with its schema,
   * `schema.decode(new DataView(payload.buffer), 0)`.
   */
  readonly payload: Uint8Array;
}

/** Whether a JetStream call failed because the stream does not exist. */
export function isStreamNotFound(error: unknown): boolean {
  return (error instanceof JetStreamApiError &&
    error.code === JetStreamApiCodes.StreamNotFound) ||
    (error instanceof Error && /stream not found/i.test(error.message));
}

/** Whether a JetStream call failed because the consumer does not exist. */
export function isConsumerNotFound(error: unknown): boolean {
  return (error instanceof JetStreamApiError &&
    error.code === JetStreamApiCodes.ConsumerNotFound) ||
    (error instanceof Error && /consumer not found/i.test(error.message));
}

/**
 * Makes sure the tenant's durable and dead-letter streams exist (creating
 * them with the same configuration from several nodes is harmless).
 */
export async function ensureStreams(
  jsm: JetStreamManager,
  subjects: Subjects,
): Promise<void> {
  const wanted = [
    {
      name: subjects.durableStream,
      subjects: [subjects.allDurable],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      duplicate_window: nanos(DUPLICATE_WINDOW_MS),
      max_age: nanos(DURABLE_MAX_AGE_MS),
    },
    {
      name: subjects.deadStream,
      subjects: [subjects.allDead],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_msgs: DEAD_LETTERS_KEPT,
      discard: DiscardPolicy.Old,
    },
  ];
  for (const config of wanted) {
    try {
      await jsm.streams.info(config.name);
    } catch (error) {
      if (!isStreamNotFound(error)) throw error;
      try {
        await jsm.streams.add(config);
      } catch (addError) {
        // Another node created it in between.
        if (!/already in use|exists/i.test(String(addError))) throw addError;
      }
    }
  }
}

/** What a durable serving needs of its node. */
export interface DurableHost {
  /** The live kernel of the served name, if any. */
  kernel(): Kernel | undefined;
  /** Merges a message's stamp into the clock (throws `ClockSkewError`). */
  merge(slot: ReadSlot): ReadSlot;
  /** Records a dead letter durably (the message as its slot). */
  deadLetter(reason: DeadLetterReason, detail: string, slot: Uint8Array): void;
}

/** A delivered message in the actor's queue, waiting to be handled. */
interface Pending {
  msg: JsMsg;
  /** The input queue's end index right after the message was put in it. */
  readonly mark: number;
}

/**
 * One actor served durably: takes its messages from its durable consumer,
 * puts each in the actor's queue once, and acknowledges it once handled.
 */
export class DurableServing {
  /** The served actor's name. */
  readonly name: string;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #subjects: Subjects;
  readonly #host: DurableHost;
  readonly #options: Required<DurableServeOptions>;
  readonly #pending = new Map<number, Pending>();
  readonly #handled = new Set<number>();
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopped = false;
  #delivered = 0;
  #redelivered = 0;
  #acked = 0;

  /** Creates the serving; {@linkcode DurableServing.start} begins it. */
  constructor(init: {
    name: string;
    js: JetStreamClient;
    jsm: JetStreamManager;
    subjects: Subjects;
    host: DurableHost;
    options: Required<DurableServeOptions>;
    /** Stream sequences handled already (by the node the actor migrated from). */
    handled?: readonly number[];
  }) {
    for (const seq of init.handled ?? []) this.#remember(seq);
    this.name = init.name;
    this.#js = init.js;
    this.#jsm = init.jsm;
    this.#subjects = init.subjects;
    this.#host = init.host;
    this.#options = init.options;
  }

  /** The serving's options. */
  get options(): Required<DurableServeOptions> {
    return this.#options;
  }

  /** Messages queued and not yet acknowledged. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** The stream sequences known handled (the newest 65 536), oldest first. */
  handledSequences(): number[] {
    return [...this.#handled];
  }

  /** Counters: deliveries, repeats recognised, acknowledgements. */
  get counts(): { delivered: number; redelivered: number; acked: number } {
    return {
      delivered: this.#delivered,
      redelivered: this.#redelivered,
      acked: this.#acked,
    };
  }

  /** Creates (or updates) the durable consumer and starts taking messages. */
  async start(): Promise<void> {
    const s = this.#subjects;
    const durable = s.durableConsumer(this.name);
    const config = {
      durable_name: durable,
      filter_subject: s.durable(this.name),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(this.#options.ackWaitMs),
      max_ack_pending: this.#options.maxAckPending,
    };
    try {
      await this.#jsm.consumers.info(s.durableStream, durable);
      await this.#jsm.consumers.update(s.durableStream, durable, {
        ack_wait: config.ack_wait,
        max_ack_pending: config.max_ack_pending,
      });
    } catch (error) {
      if (!isConsumerNotFound(error)) throw error;
      await this.#jsm.consumers.add(s.durableStream, config);
    }
    const consumer = await this.#js.consumers.get(s.durableStream, durable);
    const messages = await consumer.consume({
      max_messages: Math.min(this.#options.maxAckPending, 512),
    });
    this.#messages = messages;
    this.#loop = (async () => {
      for await (const msg of messages) {
        if (this.#stopped) {
          // Not taken: at once to whichever node serves the actor next.
          msg.nak();
          break;
        }
        await this.#deliver(msg);
      }
    })().catch((error) => {
      if (!this.#stopped) {
        console.error(
          `ringkernel: durable serving of "${this.name}" failed:`,
          error,
        );
      }
    });
  }

  async #deliver(msg: JsMsg): Promise<void> {
    const seq = msg.seq;
    if (this.#handled.has(seq)) {
      // Handled already; its acknowledgement was lost.
      this.#redelivered++;
      msg.ack();
      return;
    }
    const pending = this.#pending.get(seq);
    if (pending !== undefined) {
      // In the actor's queue already: acknowledge the newest delivery.
      this.#redelivered++;
      pending.msg = msg;
      return;
    }
    this.#delivered++;
    const bytes = msg.data;
    let value: unknown;
    try {
      const kernel = this.#host.kernel();
      if (kernel === undefined || kernel.state === "terminated") {
        msg.nak(1000);
        return;
      }
      value = decodeSlot(
        kernel.inputSchema,
        this.#host.merge(readSlot(bytes)),
      );
    } catch (error) {
      if (
        error instanceof InvalidMessageError || error instanceof ClockSkewError
      ) {
        this.#host.deadLetter(
          "invalid-message",
          `durable message ${seq}: ${error.message}`,
          new Uint8Array(bytes),
        );
        this.#remember(seq);
        msg.term(error.message);
        return;
      }
      throw error;
    }
    const kernel = this.#host.kernel()!;
    try {
      await kernel.send(value as never, {
        timeoutMs: Math.max(1, Math.floor(this.#options.ackWaitMs / 2)),
      });
    } catch {
      // A full queue, or the actor stops: delivered again later (here or
      // on the next node).
      msg.nak(250);
      return;
    }
    const mark = kernelInternals(kernel).host.inputRing.endIndex();
    this.#pending.set(seq, { msg, mark });
    this.#timer ??= setInterval(() => this.#ackHandled(), ACK_PERIOD_MS);
  }

  /** Acknowledges every pending message the actor has moved past. */
  #ackHandled(): void {
    const kernel = this.#host.kernel();
    if (kernel === undefined) return;
    const head = kernelInternals(kernel).host.inputRing.headIndex();
    for (const [seq, pending] of this.#pending) {
      // Marks grow in the order messages were queued: stop at the first not handled.
      if (((head - pending.mark) | 0) < 0) break;
      this.#pending.delete(seq);
      this.#remember(seq);
      pending.msg.ack();
      this.#acked++;
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #remember(seq: number): void {
    this.#handled.add(seq);
    if (this.#handled.size > HANDLED_KEPT) {
      const oldest = this.#handled.values().next().value!;
      this.#handled.delete(oldest);
    }
  }

  /**
   * Stops taking messages, then acknowledges those already queued as the
   * actor handles them, for at most `timeoutMs`; the rest are delivered
   * again to the next node that serves the actor.
   */
  async stop(timeoutMs: number): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    try {
      await this.#messages?.close();
    } catch {
      // Disconnected: nothing more arrives anyway.
    }
    await this.#loop;
    const end = Date.now() + timeoutMs;
    while (this.#pending.size > 0 && Date.now() < end) {
      this.#ackHandled();
      await new Promise((resolve) => setTimeout(resolve, ACK_PERIOD_MS));
    }
    this.#ackHandled();
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * A slot's type id and payload (the type id 0 and the bytes themselves
 * when they are too short to hold an envelope).
 */
export function splitSlot(
  slot: Uint8Array,
): { typeId: number; payload: Uint8Array } {
  if (slot.byteLength < ENVELOPE_SIZE) return { typeId: 0, payload: slot };
  const envelope = readEnvelope(
    new DataView(slot.buffer, slot.byteOffset, slot.byteLength),
    0,
  );
  const end = Math.min(slot.byteLength, ENVELOPE_SIZE + envelope.payloadLength);
  return { typeId: envelope.typeId, payload: slot.slice(ENVELOPE_SIZE, end) };
}

/** The headers of a dead letter. */
export function deadLetterHeaders(
  actor: string,
  node: string,
  reason: DeadLetterReason,
  detail: string,
  typeId: number,
): ReturnType<typeof natsHeaders> {
  const h = natsHeaders();
  h.set(TYPE_HEADER, String(typeId));
  h.set(ACTOR_HEADER, actor.replace(/[\r\n]+/g, " "));
  h.set(NODE_HEADER, node.replace(/[\r\n]+/g, " "));
  h.set(REASON_HEADER, reason);
  h.set(DEAD_DETAIL_HEADER, detail.replace(/[\r\n]+/g, " "));
  return h;
}

/** Reads the newest dead letters of the tenant's dead-letter stream. */
export async function readDeadLetters(
  jsm: JetStreamManager,
  subjects: Subjects,
  options: { limit: number; actor: string | undefined },
): Promise<ClusterDeadLetter[]> {
  let state;
  try {
    state = (await jsm.streams.info(subjects.deadStream)).state;
  } catch (error) {
    if (isStreamNotFound(error)) return [];
    throw error;
  }
  const letters: ClusterDeadLetter[] = [];
  const wanted = options.actor === undefined
    ? undefined
    : subjects.dead(options.actor);
  for (
    let seq = state.last_seq;
    seq >= state.first_seq && seq > 0 && letters.length < options.limit;
    seq--
  ) {
    let stored;
    try {
      stored = await jsm.streams.getMessage(subjects.deadStream, { seq });
    } catch {
      continue; // Deleted in between.
    }
    if (stored === null) continue;
    if (wanted !== undefined && stored.subject !== wanted) continue;
    const h = stored.header;
    letters.push({
      sequence: stored.seq,
      time: stored.time.getTime(),
      actor: h.get(ACTOR_HEADER),
      reason: h.get(REASON_HEADER) as DeadLetterReason,
      detail: h.get(DEAD_DETAIL_HEADER),
      node: h.get(NODE_HEADER),
      typeId: Number(h.get(TYPE_HEADER)) || 0,
      payload: new Uint8Array(stored.data),
    });
  }
  return letters.reverse();
}
