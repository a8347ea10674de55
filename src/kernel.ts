/**
 * The handle of one launched actor ("kernel"): lifecycle, sending,
 * receiving, request/response, and metrics. Backend-independent: it drives
 * the actor through its control block and rings.
 *
 * @module
 */

import type { ActorDefinition } from "./actor.ts";
import type {
  ActorExitReason,
  ActorHost,
  BackendKind,
} from "./backend/backend.ts";
import type { DeadLetterReason } from "./dead_letter.ts";
import {
  ENVELOPE_SIZE,
  readCorrelationNumber,
  readTypeId,
  VOID_TYPE_ID,
} from "./envelope.ts";
import {
  ActorCrashedError,
  ClockSkewError,
  InvalidMessageError,
  InvalidStateError,
  QueueFullError,
  TimeoutError,
} from "./errors.ts";
import { type KernelState, nextState } from "./lifecycle.ts";
import type {
  DecodedMessage,
  FieldsSpec,
  MessageSchema,
  MessageValue,
} from "./message.ts";
import type { TelemetrySnapshot } from "./telemetry.ts";
import type { HybridClock } from "./hlc.ts";
import { type HistogramSnapshot, LatencyHistogram } from "./histogram.ts";
import {
  abortable,
  bindSignal,
  DEFAULT_TIMEOUT_MS,
  pollUntil,
} from "./async.ts";
import { DEFAULT_ROOM_SPIN, MAX_RING_CAPACITY } from "./ring.ts";
import { ENVELOPE } from "./layout.ts";
import { checkBoolean, checkInteger, checkWaitOptions } from "./options.ts";

/** Byte offset of the envelope's timestamp in a slot. */
const TIMESTAMP = ENVELOPE.fields.timestamp.offset;

/**
 * Options of {@linkcode Kernel.send} and {@linkcode Kernel.sendBatch}. Every
 * option is checked: a bad value is refused with {@linkcode InvalidOptionError}.
 */
export interface SendOptions {
  /**
   * How long to wait for queue space, in ms: a finite number in
   * 0..2^31-1 (default 30 000; 0 = do not wait: fail with
   * {@linkcode QueueFullError} at once when the queue is full).
   */
  timeoutMs?: number;
  /**
   * Aborting rejects the wait with `signal.reason` (at once, sending
   * nothing, when it has already aborted).
   */
  signal?: AbortSignal;
}

/** Options of {@linkcode Kernel.call}; checked like {@linkcode SendOptions}. */
export interface CallOptions {
  /**
   * Deadline for the reply, including the wait for queue space, in ms
   * (default 30 000; 0 = do not wait: {@linkcode QueueFullError} at once when
   * the queue is full, {@linkcode TimeoutError} when the reply is not there
   * right after sending).
   */
  timeoutMs?: number;
  /**
   * Aborting rejects the call with `signal.reason`; a reply that comes later
   * is dead-lettered (`expired`).
   */
  signal?: AbortSignal;
}

/** Options of {@linkcode Kernel.receive}; checked like {@linkcode SendOptions}. */
export interface ReceiveOptions {
  /** How long to wait for a reply, in ms (default 30 000; 0 = do not wait: {@linkcode TimeoutError} at once when none is ready). */
  timeoutMs?: number;
  /** Aborting rejects the wait with `signal.reason`. */
  signal?: AbortSignal;
}

/** Default of {@linkcode ReceiveManyOptions.max}. */
export const DEFAULT_RECEIVE_MANY = 1024;

/** Options of {@linkcode Kernel.receiveMany}; checked like {@linkcode SendOptions}. */
export interface ReceiveManyOptions {
  /**
   * Most replies to take, an integer in 1..2^30 (default
   * {@linkcode DEFAULT_RECEIVE_MANY}).
   */
  max?: number;
  /**
   * How long to wait for the first reply, in ms (default 30 000; 0 = do not
   * wait: {@linkcode TimeoutError} at once when none is ready).
   */
  timeoutMs?: number;
  /** Aborting rejects the wait with `signal.reason`. */
  signal?: AbortSignal;
}

/** Options of {@linkcode Kernel.deactivate}; checked like {@linkcode SendOptions}. */
export interface DeactivateOptions {
  /**
   * How long to wait for the actor's loop to confirm the pause, in ms
   * (default 30 000; 0 = do not wait: {@linkcode TimeoutError} unless it
   * has already confirmed).
   */
  timeoutMs?: number;
  /**
   * Aborting rejects the wait with `signal.reason`; the kernel stays
   * deactivated (at once, changing nothing, when it has already aborted).
   */
  signal?: AbortSignal;
}

/** Options of {@linkcode Kernel.terminate}; checked like {@linkcode SendOptions}. */
export interface TerminateOptions {
  /**
   * Stop at once instead of draining: queued messages are dead-lettered
   * (reason `aborted`). Default false: queued messages are processed first.
   */
  abort?: boolean;
  /**
   * How long to wait for the actor to stop before it is killed, in ms
   * (default 10 000; 0 = do not wait: killed at once, its queue dead-lettered).
   */
  timeoutMs?: number;
  /**
   * Aborting stops the wait: the actor is killed at once, as when
   * `timeoutMs` runs out, and the promise rejects with `signal.reason` once
   * the kernel is terminated (at once, changing nothing, when it has already
   * aborted).
   */
  signal?: AbortSignal;
}

/** Counters of one kernel; see {@linkcode Kernel.metrics}. */
export interface KernelMetrics {
  /** Kernel name. */
  readonly name: string;
  /** Lifecycle state. */
  readonly state: KernelState;
  /** Messages accepted into the actor's queues (from the host, other actors and topics). */
  readonly sent: number;
  /** Messages the actor handled. */
  readonly processed: number;
  /** Messages that went to the dead-letter queue instead. */
  readonly deadLettered: number;
  /** Messages accepted but neither processed nor dead-lettered yet. */
  readonly inFlight: number;
  /** Replies waiting for the host to receive them. */
  readonly pendingReplies: number;
  /**
   * Sends the actor's device code made that were refused — `rk_send` or
   * `rk_publish` that found the target (or the outbox) full, named no
   * actor, or did not fit (`RK_SEND_FULL`, `_UNKNOWN`, `_TOO_BIG`,
   * `_MISMATCH`). Such a message was never
   * sent, so it is in no kernel's `sent`. Always 0 for CPU actors, whose
   * sends wait or throw instead.
   */
  readonly sendsRefused: number;
  /** Times the actor crashed. */
  readonly crashes: number;
  /** Times its supervisor restarted it. */
  readonly restarts: number;
  /**
   * The actor's telemetry block. A CPU actor writes it at its heartbeat:
   * every 10 ms while it works, and when it goes idle, before it sleeps, so
   * `telemetry.messagesProcessed` and `lastProcessedTimestamp` may trail
   * `processed` by that much (`processed` itself is exact at every instant).
   */
  readonly telemetry: TelemetrySnapshot;
  /**
   * Round-trip latency of completed {@linkcode Kernel.call}s, host → actor →
   * host, in ns. Sampled: the first call and then one in 16 is timed (so
   * `count` is about a sixteenth of the calls), which keeps the clock off
   * the other calls' path.
   */
  readonly callLatency: HistogramSnapshot;
}

/** What the runtime provides to a kernel. */
export interface KernelServices {
  /** Records an undeliverable message. */
  deadLetter(
    kernel: Kernel,
    reason: DeadLetterReason,
    detail: string,
    slot: Uint8Array,
  ): void;
  /** Called after the actor loop ended and the kernel is terminated. */
  terminated(kernel: Kernel): void;
  /**
   * The runtime's clock: it stamps the host's sends (one reading per send,
   * one per batch) and merges the stamps of the actor's replies, refusing
   * one beyond its skew bound (dead-lettered `invalid-message`). Absent: no
   * stamps (tests of a kernel alone).
   */
  readonly clock?: HybridClock;
}

/** What a kernel is created from; see {@linkcode createKernel}. */
export interface KernelInit<I extends FieldsSpec, O extends FieldsSpec> {
  /** The kernel's name. */
  name: string;
  /** Its id. */
  id: number;
  /** The backend running it. */
  backend: BackendKind;
  /** The actor's definition (its schemas). */
  definition: ActorDefinition<I, O, unknown>;
  /** The host side of the actor. */
  host: ActorHost;
  /** What the runtime provides. */
  services: KernelServices;
}

/**
 * The runtime's side of a kernel: what the runtime (and backend tests) call
 * beyond the public API. Reached with {@linkcode kernelInternals}; this
 * module's internals, not exported from `mod.ts`.
 */
export interface KernelInternals {
  /** The host side of the actor. */
  readonly host: ActorHost;
  /** Whether the kernel is stopping or stopped. */
  isStopping(): boolean;
  /**
   * The host's memory is about to be released (GPU mapped memory is detached
   * then): stop reading its queues.
   */
  detachHost(): void;
  /** The actor gave up on a message: fails the call waiting for it, if any. */
  onDeadLetter(
    reason: DeadLetterReason,
    detail: string,
    slot: Uint8Array,
  ): void;
  /** The actor loop ended. */
  onExit(reason: ActorExitReason): void;
  /** Counts a crash; the runtime decides about the restart. */
  noteCrash(): void;
  /** Counts a restart. */
  noteRestart(): void;
  /**
   * The supervisor gave up: the kernel is terminated, its queued messages
   * dead-lettered, replies already written delivered (or, beyond the buffer,
   * dead-lettered), and waiting calls fail with the crash.
   */
  giveUp(detail: string): void;
  /** Records a message the host dead-lettered on this kernel's behalf. */
  countHostDeadLetter(): void;
  /**
   * A reply the actor sent later (`ctx.replyTo`), by the host's message
   * channel: `slot` (envelope and payload) is routed as a reply read from
   * the output ring (after the replies the ring already holds). It adds no
   * message to the accounting: the call it answers was counted when its
   * handler returned no reply. One the reply buffer has no room for (it
   * cannot stay in a ring) is dead-lettered as `queue-full`.
   */
  deliverReply(slot: Uint8Array): void;
}

let construct: (init: KernelInit<FieldsSpec, FieldsSpec>) => Kernel;
let internalsOf: (kernel: Kernel) => KernelInternals;

/** Creates a kernel (the runtime does, at launch). Not exported from `mod.ts`. */
export function createKernel<I extends FieldsSpec, O extends FieldsSpec>(
  init: KernelInit<I, O>,
): Kernel<I, O> {
  return construct(
    init as unknown as KernelInit<FieldsSpec, FieldsSpec>,
  ) as unknown as Kernel<I, O>;
}

/** The runtime's side of `kernel`. Not exported from `mod.ts`. */
export function kernelInternals(
  // deno-lint-ignore no-explicit-any
  kernel: Kernel<any, any>,
): KernelInternals {
  return internalsOf(kernel);
}

interface PendingCall {
  resolve(value: unknown): void;
  reject(error: Error): void;
  /** Armed once the request is in the queue (a call that waited for space registers first). */
  timer: ReturnType<typeof setTimeout> | undefined;
}

interface Receiver {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
  /** A `receiveMany`'s replies so far (undefined for a `receive`), and how many it takes. */
  batch: unknown[] | undefined;
  max: number;
}

function ignore(): void {}

/** `max` of a batch receive: an integer in 1..2^30. */
function checkReceiveMax(max: unknown): number {
  return checkInteger("max", max, {
    min: 1,
    max: MAX_RING_CAPACITY,
    fallback: DEFAULT_RECEIVE_MANY,
  });
}

/**
 * Longest and shortest spin of `call()` for its reply before it waits
 * asynchronously, in polls of the output ring (counted, not clocked: a clock
 * read costs more than a poll). On the CPU backend a poll is an atomic load,
 * some nanoseconds; on the GPU backend it reads mapped memory across the bus
 * (about a microsecond), so its spin is kept much shorter.
 */
const CALL_SPIN_POLLS = 16_384;
const CALL_SPIN_MIN_POLLS = 256;
const GPU_CALL_SPIN_POLLS = 64;
const GPU_CALL_SPIN_MIN_POLLS = 4;
/**
 * Polls of `receive()` for a reply before it waits asynchronously (a few
 * microseconds), only on the CPU backend and only while a message is in
 * the actor's queue, that is while a reply can be expected soon.
 */
const RECEIVE_SPIN_POLLS = 512;
/**
 * Polls of `receive()` and `receiveMany()` for a reply before they wait
 * while the actor's queue is empty (a reply may still be on its way, from a
 * message just taken or sent by another actor): a glance, well under a
 * microsecond, since it is paid by every wait that finds nothing.
 */
const RECEIVE_IDLE_SPIN_POLLS = 64;
/** Polls of the input ring for room before a send sleeps on its room bell, on the GPU backend (a poll crosses the bus). */
const GPU_ROOM_SPIN_POLLS = 4;
/**
 * Longest sleep of a send waiting for room before it looks at the kernel's
 * state again; a stop also wakes it at once.
 */
const ROOM_WAIT_SLICE_MS = 100;
/** One `call()` in this many is timed for {@linkcode KernelMetrics.callLatency}. */
const CALL_LATENCY_SAMPLE_EVERY = 16;
const PUMP_WAIT_MS = 50;
/** Most readings of the counters {@linkcode Kernel.metrics} takes to find them still. */
const SNAPSHOT_TRIES = 1000;
/** Default of {@linkcode TerminateOptions.timeoutMs}. */
const TERMINATE_TIMEOUT_MS = 10_000;

/**
 * A launched actor. Obtain one from `runtime.launch()`; its message types are
 * those of the actor definition.
 *
 * Replies that are not answers to a {@linkcode Kernel.call} wait for
 * {@linkcode Kernel.receive} in a host buffer of as many replies as the
 * output ring holds. Once it is full, further replies stay in the output
 * ring; when that is full too, the actor waits to write its next reply, its
 * queue fills, and `send` waits for space (backpressure) until replies are
 * received. Answers to calls queued behind unread replies wait with them.
 * When the kernel terminates, replies beyond the buffer are dead-lettered
 * (reason `actor-terminated`, or `aborted`), so the actor never stalls on
 * them; those in the buffer can still be taken with `tryReceive`.
 */
export class Kernel<
  I extends FieldsSpec = FieldsSpec,
  O extends FieldsSpec = FieldsSpec,
> {
  /** The kernel's name (unique in its runtime). */
  readonly name: string;
  /** The kernel's numeric id (the `sourceActor` of its messages). */
  readonly id: number;
  /** The backend running it. */
  readonly backend: BackendKind;
  /** Schema of the messages it receives. */
  readonly inputSchema: MessageSchema<I>;
  /** Schema of its replies, if it replies. */
  readonly outputSchema: MessageSchema<O> | undefined;
  readonly #host: ActorHost;
  readonly #services: KernelServices;
  readonly #clock: HybridClock | undefined;
  #state: KernelState = "launched";
  #stopping: Promise<void> | undefined;
  #exitWaiters: Array<(reason: ActorExitReason) => void> = [];
  #hostSent = 0;
  #hostDeadLettered = 0;
  #crashes = 0;
  #restarts = 0;
  #nextCorrelation = 1;
  readonly #pending = new Map<number, PendingCall>();
  /** Unread replies (not answers to calls), oldest first; at most {@linkcode Kernel.#replyBound}. */
  readonly #replies: unknown[] = [];
  readonly #replyBound: number;
  /**
   * Set once the kernel stops: replies that find the buffer full are
   * dead-lettered with this reason instead of staying in the output ring.
   */
  #overflowReason: DeadLetterReason | undefined;
  readonly #receivers: Receiver[] = [];
  #pumping = false;
  /** Keeps the pump emptying the output ring while a stopping actor finishes. */
  #flushing = false;
  /** Aborted when the host's memory goes: the pump stops reading it. */
  readonly #pumpStop = new AbortController();
  /** Correlation id a `call` is spinning for (0: none), and what it caught. */
  #spinningFor = 0;
  readonly #callHeader = { correlationId: 0 };
  #spinCaught = false;
  #spinValue: unknown = undefined;
  readonly #callLatency = new LatencyHistogram();
  /** Calls made so far: every {@linkcode CALL_LATENCY_SAMPLE_EVERY}th is timed. */
  #calls = 0;
  readonly #spinMax: number;
  readonly #spinMin: number;
  #callSpinPolls: number;
  /** Calls in a row whose reply came after the spin. */
  #missStreak = 0;
  /** Cuts the wait of a stopping actor short: it is killed at once. */
  #cutStop: (() => void) | undefined;
  readonly #internals: KernelInternals;

  static {
    construct = (init) => new Kernel(init);
    internalsOf = (kernel) => kernel.#internals;
  }

  private constructor(init: KernelInit<I, O>) {
    this.name = init.name;
    this.id = init.id;
    this.backend = init.backend;
    const gpu = init.backend !== "cpu";
    this.#spinMax = gpu ? GPU_CALL_SPIN_POLLS : CALL_SPIN_POLLS;
    this.#spinMin = gpu ? GPU_CALL_SPIN_MIN_POLLS : CALL_SPIN_MIN_POLLS;
    this.#callSpinPolls = this.#spinMax;
    this.inputSchema = init.definition.input;
    this.outputSchema = init.definition.output;
    this.#host = init.host;
    this.#services = init.services;
    this.#replyBound = init.host.outputRing.capacity;
    this.#clock = init.services.clock;
    init.host.input.stampWith(this.#clock);
    this.#internals = {
      host: init.host,
      isStopping: () => this.#stopping !== undefined,
      detachHost: () => this.#pumpStop.abort(),
      onDeadLetter: (reason, detail, slot) =>
        this.#onDeadLetter(reason, detail, slot),
      onExit: (reason) => {
        for (const waiter of this.#exitWaiters.splice(0)) waiter(reason);
      },
      noteCrash: () => {
        this.#crashes++;
      },
      noteRestart: () => {
        this.#restarts++;
      },
      giveUp: (detail) => this.#giveUp(detail),
      countHostDeadLetter: () => {
        this.#hostDeadLettered++;
      },
      deliverReply: (slot) => this.#deliverReply(slot),
    };
  }

  /** The lifecycle state. */
  get state(): KernelState {
    return this.#state;
  }

  /** Whether the actor is processing messages. */
  get isActive(): boolean {
    return this.#state === "active";
  }

  /** Activates a launched or deactivated kernel; rejects with {@linkcode InvalidStateError} otherwise. */
  async activate(): Promise<void> {
    this.#transition("activate");
    this.#host.control.isActive = true;
    this.#host.wake();
    await Promise.resolve();
  }

  /**
   * Pauses processing (messages keep queueing). Resolves once the actor's
   * loop has seen the pause, so nothing sent after it is processed until
   * {@linkcode Kernel.activate}. Rejects with {@linkcode InvalidOptionError}
   * for a bad option (changing nothing), with {@linkcode InvalidStateError}
   * unless active, and with {@linkcode TimeoutError} when the loop does not
   * confirm within `timeoutMs` (a handler still running), or with
   * `signal.reason` on abort: the kernel stays deactivated, and the loop
   * pauses when the handler returns.
   */
  async deactivate(options?: DeactivateOptions): Promise<void> {
    const { timeoutMs, signal } = checkWaitOptions(options, DEFAULT_TIMEOUT_MS);
    if (signal?.aborted) throw signal.reason;
    this.#transition("deactivate");
    const host = this.#host;
    const control = host.control;
    control.isActive = false;
    const request = (control.pauseRequest + 1) | 0;
    control.pauseRequest = request;
    host.wake();
    await pollUntil(
      () =>
        control.pauseAck === request || !host.running ||
        control.hasTerminated !== 0,
      {
        timeoutMs,
        signal,
        what: `deactivate of "${this.name}" (its loop's confirmation)`,
      },
    );
  }

  #transition(operation: "activate" | "deactivate" | "terminate"): void {
    if (this.#stopping !== undefined && this.#state !== "terminated") {
      throw new InvalidStateError(operation, "terminating");
    }
    this.#state = nextState(this.#state, operation);
  }

  /**
   * Stops the actor. By default it first processes everything queued; with
   * `abort` it stops at once and queued messages are dead-lettered. Resolves
   * once the actor has stopped; an actor that does not stop within
   * `timeoutMs` is killed and its queued messages dead-lettered. Unread
   * replies never hold it up: beyond the reply buffer they are dead-lettered.
   * Aborting `signal` kills the actor at once and rejects with
   * `signal.reason` once it is terminated. Rejects with
   * {@linkcode InvalidOptionError} for a bad option, with
   * {@linkcode InvalidStateError} when already terminated, and with the
   * reason of a signal that has already aborted, changing nothing. A second
   * call while the kernel stops waits for the same stop.
   */
  terminate(options?: TerminateOptions): Promise<void> {
    let abort: boolean;
    let timeoutMs: number;
    let signal: AbortSignal | undefined;
    try {
      ({ timeoutMs, signal } = checkWaitOptions(options, TERMINATE_TIMEOUT_MS));
      abort = checkBoolean("abort", options?.abort, false);
      if (signal?.aborted) throw signal.reason;
      if (this.#stopping === undefined || this.#state === "terminated") {
        nextState(this.#state, "terminate");
        this.#stopping = this.#stop(abort, timeoutMs);
        // Sends waiting for room fail now rather than at their next look.
        this.#host.inputRing.wakeWriters();
      }
    } catch (error) {
      return Promise.reject(error);
    }
    const stop = this.#stopping;
    if (signal === undefined) return stop;
    return abortable(stop, signal, () => this.#cutStop?.());
  }

  async #stop(abort: boolean, timeoutMs: number): Promise<void> {
    const control = this.#host.control;
    const running = this.#host.running;
    // From now on a full reply buffer no longer holds the actor back: what
    // does not fit is dead-lettered. Room first, then the stop request, so
    // an actor waiting to write a reply finishes it rather than giving up.
    this.#overflowReason = abort ? "aborted" : "actor-terminated";
    this.#dispatch();
    if (abort) {
      control.shouldAbort = true;
    } else {
      // Draining processes the queue even when the kernel was deactivated.
      control.isActive = true;
    }
    control.shouldTerminate = true;
    this.#host.wake();
    if (running) {
      let exited: ActorExitReason | undefined;
      if (timeoutMs > 0) {
        // Keep the output ring empty while the actor finishes its queue.
        this.#flushing = true;
        this.#startPump();
        try {
          exited = await this.#waitExit(timeoutMs);
        } finally {
          this.#flushing = false;
        }
      }
      if (exited === undefined) {
        for (const inFlight of this.#host.kill()) {
          this.#deadLetterSlot(
            "actor-terminated",
            "killed: did not stop in time",
            inFlight.slot,
          );
        }
      }
    }
    this.#state = "terminated";
    this.#deadLetterQueued(abort ? "aborted" : "actor-terminated");
    this.#dispatch();
    this.#failWaiters(
      (what) =>
        new InvalidStateError(
          what,
          "terminated",
          `kernel "${this.name}" stopped`,
        ),
    );
    this.#services.terminated(this);
  }

  /**
   * Waits for the actor loop to exit: resolves with why, or with `undefined`
   * after `timeoutMs` or when a terminate's signal cuts the wait short.
   */
  #waitExit(timeoutMs: number): Promise<ActorExitReason | undefined> {
    return new Promise((resolve) => {
      const finish = (reason: ActorExitReason | undefined) => {
        clearTimeout(timer);
        this.#exitWaiters = this.#exitWaiters.filter((w) => w !== finish);
        this.#cutStop = undefined;
        resolve(reason);
      };
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      this.#exitWaiters.push(finish);
      this.#cutStop = () => finish(undefined);
    });
  }

  /** Takes everything left in the actor's queues into the dead-letter queue. */
  #deadLetterQueued(reason: DeadLetterReason): void {
    for (const ring of [this.#host.inputRing, this.#host.inboxRing]) {
      if (ring === undefined) continue;
      const consumer = ring.consumer();
      consumer.dequeueBatch(ring.capacity, (_view, offset) => {
        this.#deadLetterSlot(
          reason,
          `left in the queue of "${this.name}"`,
          ring.bytes.slice(offset, offset + ring.slotSize),
        );
      });
    }
  }

  #deadLetterSlot(
    reason: DeadLetterReason,
    detail: string,
    slot: Uint8Array,
  ): void {
    this.#hostDeadLettered++;
    this.#services.deadLetter(this, reason, detail, slot);
  }

  #assertSendable(): void {
    if (this.#stopping !== undefined || this.#state === "terminated") {
      throw new InvalidStateError(
        "send",
        this.#stopping ? "terminating" : this.#state,
      );
    }
  }

  /**
   * Enqueues a message without waiting. Returns false, changing nothing, when
   * the queue is full; throws {@linkcode InvalidMessageError} for a bad message.
   */
  trySend(message: MessageValue<I>): boolean {
    this.#assertSendable();
    if (!this.#host.input.tryEnqueue(this.inputSchema, message)) return false;
    this.#hostSent++;
    return true;
  }

  /**
   * Enqueues a message, waiting for space while the queue is full
   * (backpressure). Rejects with {@linkcode QueueFullError} when no space
   * frees up within `timeoutMs`, and with {@linkcode InvalidOptionError} for
   * a bad option.
   */
  async send(
    message: MessageValue<I>,
    options?: SendOptions,
  ): Promise<void> {
    const { timeoutMs, signal } = checkWaitOptions(options, DEFAULT_TIMEOUT_MS);
    if (signal?.aborted) throw signal.reason;
    if (this.trySend(message)) return;
    await this.#waitForSpace(() => this.trySend(message), timeoutMs, signal);
  }

  /**
   * Enqueues many messages, publishing each run that fits at once (each
   * message encoded straight into its slot), and waits for space as needed.
   * Resolves with the count (all of them) or rejects with
   * {@linkcode QueueFullError}, after which `error.cause` is untouched and
   * the messages before the failing one were sent.
   */
  async sendBatch(
    messages: ArrayLike<MessageValue<I>>,
    options?: SendOptions,
  ): Promise<number> {
    const { timeoutMs, signal } = checkWaitOptions(options, DEFAULT_TIMEOUT_MS);
    this.#assertSendable();
    if (signal?.aborted) throw signal.reason;
    let done = 0;
    const producer = this.#host.input;
    const schema = this.inputSchema;
    const total = messages.length;
    while (done < total) {
      const n = done === 0
        ? producer.enqueueBatch(schema, messages)
        : producer.enqueueBatch(schema, messages, undefined, { start: done });
      if (n > 0) {
        done += n;
        this.#hostSent += n;
        continue;
      }
      await this.#waitForSpace(() => producer.hasRoom(), timeoutMs, signal);
    }
    return done;
  }

  #queueFull(): QueueFullError {
    return new QueueFullError(
      `queue of "${this.name}" is full (${this.#host.inputRing.capacity} slots)`,
    );
  }

  /**
   * Retries `attempt` until it succeeds or `timeoutMs` passes (then
   * {@linkcode QueueFullError}). Between tries it polls the input ring for
   * room a bounded number of times, then sleeps on the ring's room bell,
   * which the actor rings when it frees slots while a sender waits: a
   * blocked send costs no CPU and resumes as soon as there is room.
   */
  async #waitForSpace(
    attempt: () => boolean,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    if (timeoutMs === 0) throw this.#queueFull();
    const producer = this.#host.input;
    const spin = this.backend === "cpu"
      ? DEFAULT_ROOM_SPIN
      : GPU_ROOM_SPIN_POLLS;
    const end = performance.now() + timeoutMs;
    for (;;) {
      this.#assertSendable();
      if (attempt()) return;
      const left = end - performance.now();
      if (left <= 0) {
        throw new QueueFullError(
          `queue of "${this.name}" stayed full for ${timeoutMs} ms`,
          { cause: new TimeoutError(`send to "${this.name}"`, timeoutMs) },
        );
      }
      await producer.writable({
        timeoutMs: Math.min(left, ROOM_WAIT_SLICE_MS),
        signal,
        spin,
      });
    }
  }

  /** Takes the next reply that is not the answer to a {@linkcode Kernel.call}, if one is ready. */
  tryReceive(): DecodedMessage<O> | undefined {
    this.#dispatch();
    return this.#replies.shift() as DecodedMessage<O> | undefined;
  }

  /**
   * Takes every ready reply that is not the answer to a
   * {@linkcode Kernel.call}, oldest first, up to `max` (an integer in
   * 1..2^30, default {@linkcode DEFAULT_RECEIVE_MANY}); an empty array when
   * none is ready. Throws {@linkcode InvalidOptionError} for a bad `max`.
   */
  tryReceiveMany(max: number = DEFAULT_RECEIVE_MANY): DecodedMessage<O>[] {
    const limit = checkReceiveMax(max);
    return this.#takeReplies(limit) as DecodedMessage<O>[];
  }

  /** Takes up to `max` buffered and ready replies. */
  #takeReplies(max: number): unknown[] {
    this.#dispatch();
    const replies = this.#replies;
    if (replies.length === 0) return [];
    const taken = replies.splice(0, max);
    // The buffer had filled: more replies may wait in the output ring.
    while (taken.length < max) {
      this.#dispatch();
      if (replies.length === 0) break;
      for (const value of replies.splice(0, max - taken.length)) {
        taken.push(value);
      }
    }
    return taken;
  }

  /** Polls the output ring for a reply a little before a receive waits; see {@linkcode RECEIVE_SPIN_POLLS}. */
  #spinForReply(take: () => boolean): boolean {
    // Not on the GPU backend, where a poll crosses the bus, nor behind
    // earlier receivers.
    if (this.backend !== "cpu" || this.#receivers.length !== 0) return false;
    const input = this.#host.inputRing;
    const output = this.#host.output;
    if (input.depth() > 0) {
      // A reply is likely within microseconds while the actor has a message
      // (it is released only after it was handled).
      for (let polls = RECEIVE_SPIN_POLLS; polls > 0; polls--) {
        if (output.available() > 0) {
          if (take()) return true;
          if (input.depth() === 0) break;
        }
      }
      return false;
    }
    for (let polls = RECEIVE_IDLE_SPIN_POLLS; polls > 0; polls--) {
      if (output.available() > 0) return take();
    }
    return false;
  }

  /**
   * Waits for at least one reply that is not the answer to a
   * {@linkcode Kernel.call} and resolves with every such reply ready then,
   * oldest first, up to `options.max` (one promise per batch). Rejects with
   * {@linkcode TimeoutError} when none comes within `timeoutMs`, with the
   * signal's reason on abort, with {@linkcode InvalidStateError} once the
   * kernel is terminated and no reply is left, and with
   * {@linkcode InvalidOptionError} for a bad option.
   */
  receiveMany(options?: ReceiveManyOptions): Promise<DecodedMessage<O>[]> {
    let timeoutMs: number;
    let signal: AbortSignal | undefined;
    let max: number;
    try {
      ({ timeoutMs, signal } = checkWaitOptions(options, DEFAULT_TIMEOUT_MS));
      max = checkReceiveMax(options?.max);
      this.#requireOutput("receive");
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    let ready = this.#takeReplies(max);
    if (ready.length > 0) return Promise.resolve(ready as DecodedMessage<O>[]);
    if (this.#state === "terminated") {
      return Promise.reject(
        new InvalidStateError("receive", "terminated", "no replies left"),
      );
    }
    if (timeoutMs === 0) {
      return Promise.reject(
        new TimeoutError(`receive from "${this.name}"`, timeoutMs),
      );
    }
    if (this.#spinForReply(() => (ready = this.#takeReplies(max)).length > 0)) {
      return Promise.resolve(ready as DecodedMessage<O>[]);
    }
    return this.#waitForReply(timeoutMs, signal, [], max) as Promise<
      DecodedMessage<O>[]
    >;
  }

  /** Registers a receiver (`batch` for a `receiveMany`) and starts the pump. */
  #waitForReply(
    timeoutMs: number,
    signal: AbortSignal | undefined,
    batch: unknown[] | undefined,
    max: number,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const receiver: Receiver = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.#receivers.indexOf(receiver);
          if (i >= 0) this.#receivers.splice(i, 1);
          reject(new TimeoutError(`receive from "${this.name}"`, timeoutMs));
        }, timeoutMs),
        batch,
        max,
      };
      if (signal !== undefined) {
        bindSignal(receiver, signal, () => {
          const i = this.#receivers.indexOf(receiver);
          if (i < 0) return false;
          this.#receivers.splice(i, 1);
          clearTimeout(receiver.timer);
          return true;
        });
      }
      this.#receivers.push(receiver);
      this.#startPump();
    });
  }

  /**
   * Waits for the next reply that is not the answer to a
   * {@linkcode Kernel.call}; rejects with {@linkcode TimeoutError} after
   * `timeoutMs`, with the signal's reason on abort, and with
   * {@linkcode InvalidOptionError} for a bad option.
   */
  receive(options?: ReceiveOptions): Promise<DecodedMessage<O>> {
    let timeoutMs: number;
    let signal: AbortSignal | undefined;
    try {
      ({ timeoutMs, signal } = checkWaitOptions(options, DEFAULT_TIMEOUT_MS));
      this.#requireOutput("receive");
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    const ready = this.tryReceive();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.#state === "terminated") {
      return Promise.reject(
        new InvalidStateError("receive", "terminated", "no replies left"),
      );
    }
    if (timeoutMs === 0) {
      return Promise.reject(
        new TimeoutError(`receive from "${this.name}"`, timeoutMs),
      );
    }
    // Look for a reply a little before paying for a timer, a promise and
    // the pump.
    let value: DecodedMessage<O> | undefined;
    if (this.#spinForReply(() => (value = this.tryReceive()) !== undefined)) {
      return Promise.resolve(value!);
    }
    return this.#waitForReply(timeoutMs, signal, undefined, 1) as Promise<
      DecodedMessage<O>
    >;
  }

  /**
   * Sends a request and resolves with the actor's reply to it (matched by
   * correlation id). Rejects with {@linkcode QueueFullError} when the queue
   * stays full, {@linkcode TimeoutError} when no reply arrives within
   * `timeoutMs`, {@linkcode ActorCrashedError} when the actor crashed
   * handling it, the signal's reason on abort, and
   * {@linkcode InvalidOptionError} for a bad option.
   */
  async call(
    message: MessageValue<I>,
    options?: CallOptions,
  ): Promise<DecodedMessage<O>> {
    const { timeoutMs, signal } = checkWaitOptions(options, DEFAULT_TIMEOUT_MS);
    this.#requireOutput("call");
    this.#assertSendable();
    if (signal?.aborted) throw signal.reason;
    // Only a sample of calls is timed: the clock is read on no other call's
    // path (the deadline is a timer).
    const timed = this.#calls++ % CALL_LATENCY_SAMPLE_EVERY === 0;
    const started = timed ? performance.now() : 0;
    const id = this.#nextCorrelation++;
    // Read only during the enqueue: one header object serves every call.
    const header = this.#callHeader;
    header.correlationId = id;
    const producer = this.#host.input;
    if (!producer.tryEnqueue(this.inputSchema, message, header)) {
      return this.#callWhenSpace(
        message,
        id,
        timed,
        timed ? started : performance.now(),
        timeoutMs,
        signal,
      );
    }
    this.#hostSent++;
    // Nothing waits between the enqueue and the spin below, and nothing
    // between the spin and the registration of the call: no reply can come
    // in between and find nobody.
    // A resident actor usually answers within microseconds: look for the
    // reply before paying for a timer and a promise.
    // The spin adapts: when the actor cannot answer while this thread spins
    // (both share a core), replies come late, and the spin shrinks to a
    // glance; when replies come within it, it grows back. With a core each,
    // only a run of late replies shrinks it (the backend's policy).
    // The spin is counted in polls, not clocked.
    const output = this.#host.output;
    this.#spinningFor = id;
    try {
      for (let polls = this.#callSpinPolls; polls > 0; polls--) {
        if (output.available() > 0) {
          this.#dispatch();
          if (this.#spinCaught) {
            const value = this.#spinValue as DecodedMessage<O>;
            this.#spinCaught = false;
            this.#spinValue = undefined;
            this.#missStreak = 0;
            this.#callSpinPolls = Math.min(
              this.#spinMax,
              this.#callSpinPolls * 2,
            );
            if (timed) this.#recordCallLatency(started);
            return value;
          }
        }
      }
    } finally {
      this.#spinningFor = 0;
    }
    if (this.#host.spinShouldShrink?.(++this.#missStreak) ?? true) {
      this.#callSpinPolls = Math.max(this.#spinMin, this.#callSpinPolls >> 1);
    }
    if (timeoutMs === 0) {
      // Not waiting: the reply, when it comes, is dead-lettered as expired.
      throw new TimeoutError(`call to "${this.name}"`, timeoutMs);
    }
    const reply = this.#expectReply(id, signal);
    // The deadline counts from here unless the call is timed anyway: at most
    // the spin (well under a millisecond) later than from the send.
    this.#armCall(id, timed ? started : undefined, timeoutMs);
    this.#startPump();
    const value = await reply;
    if (timed) this.#recordCallLatency(started);
    return value;
  }

  /** Records a sampled call's round trip, started at `started` (ms). */
  #recordCallLatency(started: number): void {
    this.#callLatency.record(Math.round((performance.now() - started) * 1e6));
  }

  /**
   * The rest of a {@linkcode Kernel.call} that found the queue full: the call
   * is registered before its request can become visible to the actor, so a
   * reply that comes before this function resumes finds it.
   */
  async #callWhenSpace(
    message: MessageValue<I>,
    id: number,
    timed: boolean,
    started: number,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<DecodedMessage<O>> {
    if (timeoutMs === 0) throw this.#queueFull();
    // Its own header: the shared one is rewritten by calls made meanwhile.
    const header = { correlationId: id };
    const reply = this.#expectReply(id, signal);
    // Failed by a terminate or an abort while waiting for space, the reply
    // promise is never awaited: its rejection is handled here.
    reply.catch(ignore);
    const entry = this.#pending.get(id)!;
    // Replies to earlier calls that gave up may be what keeps the actor, and
    // so its queue, from moving: they are taken while this call waits.
    this.#startPump();
    const producer = this.#host.input;
    const schema = this.inputSchema;
    try {
      await this.#waitForSpace(
        () => {
          if (!producer.tryEnqueue(schema, message, header)) return false;
          this.#hostSent++;
          return true;
        },
        timeoutMs,
        signal,
      );
    } catch (error) {
      if (this.#pending.get(id) === entry) this.#pending.delete(id);
      throw error;
    }
    // Unless the reply (or a crash) has already settled it.
    if (this.#pending.get(id) === entry) this.#armCall(id, started, timeoutMs);
    this.#startPump();
    const value = await reply;
    if (timed) this.#recordCallLatency(started);
    return value;
  }

  /** Registers call `id` (its timer is armed by {@linkcode Kernel.#armCall}); an abort fails it. */
  #expectReply(
    id: number,
    signal: AbortSignal | undefined,
  ): Promise<DecodedMessage<O>> {
    return new Promise<DecodedMessage<O>>((resolve, reject) => {
      const call: PendingCall = {
        resolve: resolve as (value: unknown) => void,
        reject,
        timer: undefined,
      };
      if (signal !== undefined) {
        bindSignal(call, signal, () => {
          if (this.#pending.get(id) !== call) return false;
          this.#pending.delete(id);
          clearTimeout(call.timer);
          return true;
        });
      }
      this.#pending.set(id, call);
    });
  }

  /** Starts the deadline of registered call `id`: `timeoutMs` from `started` (from now when undefined). */
  #armCall(id: number, started: number | undefined, timeoutMs: number): void {
    const call = this.#pending.get(id)!;
    const left = started === undefined
      ? timeoutMs
      : Math.max(0, timeoutMs - (performance.now() - started));
    call.timer = setTimeout(() => {
      if (this.#pending.get(id) !== call) return;
      this.#pending.delete(id);
      call.reject(new TimeoutError(`call to "${this.name}"`, timeoutMs));
    }, left);
  }

  #requireOutput(operation: string): void {
    if (this.outputSchema === undefined) {
      throw new InvalidStateError(
        operation,
        this.#state,
        `actor "${this.name}" has no output schema`,
      );
    }
  }

  /**
   * Moves every ready reply to its call, its receiver, or the reply buffer.
   * A reply that would go to a full buffer stays in the output ring, and so
   * does everything behind it, unless the kernel is stopping.
   */
  #dispatch(): void {
    if (this.outputSchema === undefined || this.#pumpStop.signal.aborted) {
      return;
    }
    const output = this.#host.output;
    const n = output.available();
    if (n === 0) return;
    const view = output.view;
    let taken = 0;
    try {
      while (taken < n) {
        const offset = output.slotOffset(taken);
        if (
          readTypeId(view, offset) !== VOID_TYPE_ID &&
          !this.#route(view, offset)
        ) break;
        taken++;
      }
    } finally {
      output.release(taken);
      // A receiveMany that got replies, but fewer than its max, has them all.
      const first = this.#receivers[0];
      if (first?.batch !== undefined && first.batch.length > 0) {
        this.#receivers.shift();
        clearTimeout(first.timer);
        first.resolve(first.batch);
      }
    }
  }

  /** See {@linkcode KernelInternals.deliverReply}. */
  #deliverReply(slot: Uint8Array): void {
    if (this.outputSchema === undefined) {
      this.#services.deadLetter(
        this,
        "invalid-message",
        `reply to "${this.name}", which has no output schema`,
        slot,
      );
      return;
    }
    // The replies already in the ring were sent before this one.
    this.#dispatch();
    const view = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
    if (!this.#route(view, 0, slot)) {
      this.#services.deadLetter(
        this,
        "queue-full",
        `deferred reply of "${this.name}" beyond its ${this.#replyBound} buffered replies`,
        slot,
      );
    }
  }

  /**
   * Routes one reply (in the output ring at `offset`, or in `slot`, a
   * deferred reply, at 0) to whoever waits for it; returns false, taking
   * nothing, when it would go to a full buffer.
   */
  #route(view: DataView, offset: number, slot?: Uint8Array): boolean {
    const schema = this.outputSchema!;
    const ring = this.#host.outputRing;
    let correlation: number;
    let value: unknown;
    let call: PendingCall | undefined;
    try {
      correlation = readCorrelationNumber(view, offset);
      if (correlation !== 0 && correlation !== this.#spinningFor) {
        call = this.#pending.get(correlation);
      }
      if (
        (correlation === 0 || correlation >= this.#nextCorrelation) &&
        this.#replies.length >= this.#replyBound &&
        this.#receivers.length === 0 && this.#overflowReason === undefined
      ) return false;
      if (readTypeId(view, offset) !== schema.typeId) {
        throw new InvalidMessageError(`reply type id is not ${schema.name}`);
      }
      value = schema.decode(view, offset + ENVELOPE_SIZE);
      const clock = this.#clock;
      if (clock !== undefined) {
        // A receive: the reply's stamp merged (two loads, no allocation).
        const lead = clock.observeWords(
          view.getUint32(offset + TIMESTAMP, true),
          view.getUint32(offset + TIMESTAMP + 4, true),
        );
        if (lead > 0) throw new ClockSkewError(lead, clock.maxSkewMs);
      }
    } catch (error) {
      if (error instanceof ClockSkewError && call !== undefined) {
        // The call it answers fails with the skew rather than timing out.
        this.#pending.delete(correlation!);
        clearTimeout(call.timer);
        call.reject(error);
      }
      this.#services.deadLetter(
        this,
        "invalid-message",
        String(error),
        slot ?? ring.bytes.slice(offset, offset + ring.slotSize),
      );
      return true;
    }
    if (correlation !== 0) {
      if (correlation === this.#spinningFor) {
        this.#spinCaught = true;
        this.#spinValue = value;
        return true;
      }
      if (call !== undefined) {
        this.#pending.delete(correlation);
        clearTimeout(call.timer);
        call.resolve(value);
        return true;
      }
      if (correlation < this.#nextCorrelation) {
        // The caller gave up waiting; the late reply is kept, with its reason.
        this.#services.deadLetter(
          this,
          "expired",
          `reply to call ${correlation} after its deadline`,
          slot ?? ring.bytes.slice(offset, offset + ring.slotSize),
        );
        return true;
      }
    }
    const receiver = this.#receivers[0];
    if (receiver !== undefined) {
      const batch = receiver.batch;
      if (batch === undefined) {
        this.#receivers.shift();
        clearTimeout(receiver.timer);
        receiver.resolve(value);
      } else {
        // A receiveMany takes what this dispatch finds, up to its max; it is
        // settled once full or at the end of the dispatch.
        batch.push(value);
        if (batch.length >= receiver.max) {
          this.#receivers.shift();
          clearTimeout(receiver.timer);
          receiver.resolve(batch);
        }
      }
      return true;
    }
    if (this.#replies.length >= this.#replyBound) {
      // Stopping, with the buffer full: dead-lettered rather than left to stall the actor.
      this.#services.deadLetter(
        this,
        this.#overflowReason!,
        `unread reply of "${this.name}" beyond its ${this.#replyBound} buffered`,
        slot ?? ring.bytes.slice(offset, offset + ring.slotSize),
      );
      return true;
    }
    this.#replies.push(value);
    return true;
  }

  /** Starts the pump unless it runs; an unexpected failure fails the waiters. */
  #startPump(): void {
    // Every call and receive comes here: no promise when the pump already runs.
    if (this.#pumping) return;
    this.#pump().catch((error: unknown) =>
      this.#failWaiters(() =>
        error instanceof Error ? error : new Error(String(error))
      )
    );
  }

  /** Whether someone needs the output ring read: a call, a receiver, or a stopping actor. */
  #pumpNeeded(): boolean {
    return this.#pending.size > 0 || this.#receivers.length > 0 ||
      this.#flushing;
  }

  /** Polls the output ring while someone waits for a reply. */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#pumpNeeded()) {
        if (this.#pumpStop.signal.aborted) break;
        this.#dispatch();
        if (!this.#pumpNeeded()) break;
        if (this.#state === "terminated") break;
        try {
          await this.#host.output.readable({
            timeoutMs: PUMP_WAIT_MS,
            signal: this.#pumpStop.signal,
          });
        } catch (error) {
          if (this.#pumpStop.signal.aborted) break;
          throw error;
        }
      }
    } finally {
      this.#pumping = false;
    }
  }

  #failWaiters(error: (what: string) => Error): void {
    for (const [id, call] of this.#pending) {
      this.#pending.delete(id);
      clearTimeout(call.timer);
      call.reject(error("call"));
    }
    for (const receiver of this.#receivers.splice(0)) {
      clearTimeout(receiver.timer);
      receiver.reject(error("receive"));
    }
  }

  /** The actor gave up on a message: fails the call waiting for it, if any. */
  #onDeadLetter(
    reason: DeadLetterReason,
    detail: string,
    slot: Uint8Array,
  ): void {
    if (reason !== "handler-error") return;
    const view = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
    const correlation = readCorrelationNumber(view, 0);
    const call = this.#pending.get(correlation);
    if (call === undefined) return;
    this.#pending.delete(correlation);
    clearTimeout(call.timer);
    call.reject(new ActorCrashedError(this.name, detail));
  }

  /** See {@linkcode KernelInternals.giveUp}. */
  #giveUp(detail: string): void {
    if (this.#state === "terminated") return;
    this.#stopping ??= Promise.resolve();
    this.#state = "terminated";
    this.#host.inputRing.wakeWriters();
    this.#overflowReason = "actor-terminated";
    this.#deadLetterQueued("actor-terminated");
    this.#dispatch();
    this.#failWaiters(() => new ActorCrashedError(this.name, detail));
    this.#services.terminated(this);
  }

  /**
   * Reads the kernel's counters: `sent = processed + deadLettered + inFlight`
   * holds in every reading (the counters are read until they describe one
   * instant).
   */
  metrics(): KernelMetrics {
    this.#dispatch();
    const host = this.#host;
    // A reply already taken is counted in what follows, even if its actor
    // was between publishing it and counting it.
    host.settleCommit?.();
    const control = host.control;
    const view = host.telemetry;
    const input = host.inputRing;
    const inbox = host.inboxRing;
    let telemetry: TelemetrySnapshot;
    let processed: number;
    let k2k: number;
    let inputHead: number;
    let inboxHead: number;
    let inboxEnd: number;
    // The actor moves its counters while they are read: read until a reading
    // starts and ends with the same values, so that it is of one instant.
    for (let tries = 0;; tries++) {
      const processedLow = control.messagesProcessedLow;
      const droppedLow = view.messagesDroppedLow;
      inputHead = input.headIndex();
      inboxHead = inbox?.headIndex() ?? 0;
      inboxEnd = inbox?.endIndex() ?? 0;
      k2k = Number(control.k2kReceived);
      telemetry = view.snapshot();
      processed = Number(control.messagesProcessed);
      if (
        tries >= SNAPSHOT_TRIES || (
          processedLow === processed >>> 0 &&
          droppedLow === telemetry.messagesDropped >>> 0 &&
          inputHead === input.headIndex() &&
          inboxHead === (inbox?.headIndex() ?? 0) &&
          inboxEnd === (inbox?.endIndex() ?? 0) &&
          k2k === Number(control.k2kReceived)
        )
      ) break;
    }
    const deadLettered = telemetry.messagesDropped + this.#hostDeadLettered;
    let inFlight = ((input.endIndex() - inputHead) >>> 0) +
      ((inboxEnd - inboxHead) >>> 0);
    // Every message that leaves a queue is counted, then released: counted
    // ahead of released, the actor is between the two for messages (a CPU
    // loop commits a range at once) still at a queue's head, which are no
    // longer in flight.
    const ahead = (processed + deadLettered - k2k - inputHead - inboxHead) >>>
      0;
    if (ahead !== 0 && ahead <= inFlight) inFlight -= ahead;
    return {
      name: this.name,
      state: this.#state,
      sent: this.#hostSent + inboxEnd + k2k,
      processed,
      deadLettered,
      inFlight,
      pendingReplies: this.#replies.length + host.outputRing.depth(),
      sendsRefused: host.sendsRefused?.() ?? 0,
      crashes: this.#crashes,
      restarts: this.#restarts,
      telemetry,
      callLatency: this.#callLatency.snapshot(),
    };
  }
}
