/**
 * A handle on an actor served by another node of the cluster: `call`,
 * `send` and `receive` with the signatures of a local `Kernel`, over NATS
 * request/reply. Every operation has a deadline (`timeoutMs`, default
 * 30 000) and may be cut short with a `signal`.
 *
 * @module
 */

import { DEFAULT_TIMEOUT_MS } from "../async.ts";
import type { CallOptions, ReceiveOptions, SendOptions } from "../kernel.ts";
import type { HlcTimestamp } from "../hlc.ts";
import type {
  DecodedMessage,
  FieldsSpec,
  MessageSchema,
  MessageValue,
} from "../message.ts";
import { checkWaitOptions } from "../options.ts";
import { decodeSlot, encodeSlot } from "./wire.ts";
import { InvalidOptionError, InvalidStateError } from "../errors.ts";

/** What a remote actor needs of its node: the clock and a request with a deadline. */
export interface RemoteTransport {
  /** A reading of the node's clock for a send. */
  now(): HlcTimestamp;
  /**
   * Asks the actor `actor` (served by `node`) to do `operation` with the
   * slot `slot` within `timeoutMs`, and resolves with the reply's slot
   * (empty for a send) once the reply's timestamp is merged into the clock.
   * When the actor is migrating, the request is asked again (within
   * `timeoutMs`) and `target.node` becomes the node it moves to.
   */
  request(
    target: { readonly actor: string; node: string },
    operation: "call" | "send" | "receive",
    slot: Uint8Array,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<{ readonly typeId: number; readonly view: DataView } | undefined>;
  /**
   * Stores a durable message for `actor` (message id `msgId`, or a fresh
   * one) in the tenant's durable stream within `timeoutMs`.
   */
  publishDurable(
    actor: string,
    slot: Uint8Array,
    msgId: string | undefined,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<void>;
}

/** Options of {@linkcode RemoteActor.send}. */
export interface RemoteSendOptions extends SendOptions {
  /**
   * Store the message in JetStream for the node that serves the actor
   * durably (default false: a plain, at-most-once send). The promise
   * resolves once the stream holds the message; the serving node delivers
   * it at least once (see docs/reliability.md).
   */
  durable?: boolean;
  /**
   * The durable message's id (default: a fresh one per send). The stream
   * keeps one message per id within its duplicate window (2 minutes), so a
   * sender that repeats a send whose outcome it does not know (it timed out,
   * or the sender restarted) with the same id stores it once.
   */
  msgId?: string;
}

const EMPTY = new Uint8Array(0);

/**
 * An actor served by another node. Get one with `rt.cluster.actor(name)`
 * (which returns the local `Kernel` instead when the actor runs in this
 * runtime) or `rt.cluster.remote(name)`.
 */
export class RemoteActor<
  I extends FieldsSpec = FieldsSpec,
  O extends FieldsSpec = FieldsSpec,
> {
  /** The actor's name. */
  readonly name: string;
  /**
   * The node that serves it: where it was looked up, or where it was
   * migrating to when a request of this handle was refused meanwhile.
   */
  get node(): string {
    return this.#targetRef.node;
  }
  /** Schema of the messages it receives (as its node describes it). */
  readonly inputSchema: MessageSchema<I>;
  /** Schema of its replies, if it replies. */
  readonly outputSchema: MessageSchema<O> | undefined;
  readonly #transport: RemoteTransport;
  readonly #targetRef: { readonly actor: string; node: string };

  /** Creates the handle (`ClusterNode.remote` does, after looking the actor up). */
  constructor(init: {
    name: string;
    node: string;
    input: MessageSchema<I>;
    output: MessageSchema<O> | undefined;
    transport: RemoteTransport;
  }) {
    this.name = init.name;
    this.#targetRef = { actor: init.name, node: init.node };
    this.inputSchema = init.input;
    this.outputSchema = init.output;
    this.#transport = init.transport;
  }

  #target() {
    return this.#targetRef;
  }

  #requireOutput(operation: string): MessageSchema<O> {
    if (this.outputSchema === undefined) {
      throw new InvalidStateError(
        `${operation} "${this.name}"`,
        "no output",
        "the actor does not reply",
      );
    }
    return this.outputSchema;
  }

  /**
   * Sends a request and resolves with the actor's reply. Rejects with
   * `UnknownActorError` when no node serves the name, `TimeoutError` when
   * no reply comes within `timeoutMs`, `QueueFullError` when the outbound
   * buffer or the actor's queue stays full, `ActorCrashedError` when the
   * actor crashed on it, `RemoteActorGoneError` when its node left while
   * the call was in flight, and the signal's reason on abort.
   */
  async call(
    message: MessageValue<I>,
    options?: CallOptions,
  ): Promise<DecodedMessage<O>> {
    const { timeoutMs, signal } = checkWaitOptions(options, DEFAULT_TIMEOUT_MS);
    const output = this.#requireOutput("call");
    if (signal?.aborted) throw signal.reason;
    const slot = encodeSlot(this.inputSchema, message, this.#transport.now());
    const reply = await this.#transport.request(
      this.#target(),
      "call",
      slot,
      timeoutMs,
      signal,
    );
    return decodeSlot(output, reply!) as DecodedMessage<O>;
  }

  /**
   * Sends a message and resolves once the serving node has put it in the
   * actor's queue (at most once: a send whose answer is lost is not
   * repeated). Rejects like {@linkcode RemoteActor.call}, except that
   * `QueueFullError` means the actor's queue stayed full for `timeoutMs`.
   *
   * With `durable: true`, resolves once the tenant's JetStream stream holds
   * the message (the serving node may be down meanwhile); rejects with
   * `UnknownActorError` when no node serves the actor durably (the message
   * is then recorded as a dead letter), `TimeoutError` when the stream did
   * not confirm it within `timeoutMs` (sending it again with the same
   * `msgId` is safe), `InvalidStateError` when the servers have no
   * JetStream.
   */
  async send(
    message: MessageValue<I>,
    options?: RemoteSendOptions,
  ): Promise<void> {
    const { timeoutMs, signal } = checkWaitOptions(options, DEFAULT_TIMEOUT_MS);
    if (signal?.aborted) throw signal.reason;
    const slot = encodeSlot(this.inputSchema, message, this.#transport.now());
    if (options?.durable === true) {
      const msgId = options.msgId;
      if (msgId !== undefined && (typeof msgId !== "string" || msgId === "")) {
        throw new InvalidOptionError("msgId", msgId, "a non-empty string");
      }
      await this.#transport.publishDurable(
        this.name,
        slot,
        msgId,
        timeoutMs,
        signal,
      );
      return;
    }
    await this.#transport.request(
      this.#target(),
      "send",
      slot,
      timeoutMs,
      signal,
    );
  }

  /**
   * Waits for the actor's next reply that is not the answer to a call (as
   * the local `Kernel.receive`; local and remote receivers share one reply
   * stream). Rejects with `TimeoutError` after `timeoutMs`, and like
   * {@linkcode RemoteActor.call} otherwise.
   */
  async receive(options?: ReceiveOptions): Promise<DecodedMessage<O>> {
    const { timeoutMs, signal } = checkWaitOptions(options, DEFAULT_TIMEOUT_MS);
    const output = this.#requireOutput("receive");
    if (signal?.aborted) throw signal.reason;
    const reply = await this.#transport.request(
      this.#target(),
      "receive",
      EMPTY,
      timeoutMs,
      signal,
    );
    return decodeSlot(output, reply!) as DecodedMessage<O>;
  }
}
