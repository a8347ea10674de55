/**
 * The persistent loop of one CPU actor, run in its own Worker: it consumes
 * the host input ring and the K2K inbox in batches, runs the handler, writes
 * replies to the output ring, keeps telemetry and the heartbeat, spins
 * briefly when idle and then sleeps on the input ring's doorbell.
 *
 * The host starts it as a `node:worker_threads` Worker (Deno and Bun): its
 * control messages come through `parentPort`. It also runs as a web Worker.
 *
 * @module
 */

import { parentPort } from "node:worker_threads";
import { getHeapStatistics } from "node:v8";

import {
  type ActorContext,
  type ActorDefinition,
  loadActorDefinition,
} from "../../actor.ts";
import { ControlBlockView } from "../../control_block.ts";
import {
  ENVELOPE_SIZE,
  type EnvelopeRules,
  readSourceActor,
  readTypeId,
  validateEnvelope,
  VOID_TYPE_ID,
  writeEnvelopeFor,
} from "../../envelope.ts";
import { InvalidMessageError } from "../../errors.ts";
import { HybridClock } from "../../hlc.ts";
import { ENVELOPE, QUEUE_HEADER, TerminationState } from "../../layout.ts";
import {
  type FieldsSpec,
  type MessageSchema,
  type MessageValue,
  SchemaRegistry,
} from "../../message.ts";
import { Ring, type RingConsumer, type RingProducer } from "../../ring.ts";
import { TelemetryView } from "../../telemetry.ts";
import { sleepSync } from "../../async.ts";
import type { DeadLetterReason } from "../../dead_letter.ts";
import { busyIdle, BusyState, CommitKind, WorkerWord } from "./actor_memory.ts";
import { ActorOutbox, buildRoutes, type Route } from "./actor_outbox.ts";
import {
  type HostToWorker,
  serializeError,
  type StartMessage,
  type WorkerToHost,
} from "./protocol.ts";

interface WorkerScope {
  onmessage: ((event: MessageEvent<HostToWorker>) => void) | null;
  postMessage(message: WorkerToHost, transfer?: Transferable[]): void;
  close?(): void;
}
const scope = globalThis as unknown as WorkerScope;
/** The host's port in a `node:worker_threads` Worker; null in a web Worker. */
const port = parentPort;

const DOORBELL = QUEUE_HEADER.fields.doorbell.offset >> 2;
const SLEEPING = QUEUE_HEADER.fields.sleeping.offset >> 2;
/** Longest single sleep: bounds how late a missed wake-up could be noticed. */
const MAX_SLEEP_MS = 100;
/** What {@linkcode ActorLoop.#drain} returns after a handler error. */
const CRASHED = -1;
/** What it returns when the host took the queues over from this loop. */
const ABANDONED = -2;
/** Outcomes of writing a reply. */
const REPLY_DONE = 1;
const REPLY_ABANDONED = 0;
/** An abort came while waiting for room: the message went back to the head. */
const REPLY_HANDED_BACK = 2;
type ReplyOutcome =
  | typeof REPLY_DONE
  | typeof REPLY_ABANDONED
  | typeof REPLY_HANDED_BACK
  | {
    error: unknown;
  };

/** Shortest idle spin once the adaptive spin has shrunk. */
const MIN_IDLE_SPIN_MS = 0.005;
/** How often a busy loop stamps its heartbeat. */
const HEARTBEAT_MS = 10;
/** How often a busy loop lets its own timers and promises run. */
const YIELD_MS = 50;
const CORRELATION_ID = ENVELOPE.fields.correlationId.offset;

/** The correlation id at `offset`: a number when it fits (the usual case), else a bigint. */
function readCorrelation(view: DataView, offset: number): number | bigint {
  const high = view.getUint32(offset + CORRELATION_ID + 4, true);
  if (high === 0) return view.getUint32(offset + CORRELATION_ID, true);
  return view.getBigUint64(offset + CORRELATION_ID, true);
}

let mailboxHandled = 0;
let routes: Map<string, Route> = new Map();

function post(message: WorkerToHost, transfer?: Transferable[]): void {
  if (port !== null) port.postMessage(message, transfer as never);
  else scope.postMessage(message, transfer);
}

/**
 * Ends this Worker once its last message is posted (messages posted before
 * arrive first). The host terminates it too when it reads that message.
 */
function closeSelf(): void {
  if (typeof scope.close === "function") scope.close();
  else port?.close();
}

function macrotask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function onHostMessage(message: HostToWorker): void {
  if (message.kind === "start") {
    mailboxHandled++;
    start(message).catch((error) => {
      post({ kind: "start-failed", error: serializeError(error) });
      closeSelf();
    });
  } else if (message.kind === "routes") {
    routes = buildRoutes(message.routes, routes);
    mailboxHandled++;
  }
}

if (port !== null) port.on("message", onHostMessage);
else scope.onmessage = (event) => onHostMessage(event.data);

/** How often a Deno Worker looks at its heap limit. */
const HEAP_WATCH_MS = 100;

/**
 * Under Deno, a Worker whose heap reaches its limit (`resourceLimits`) ends
 * with an out-of-memory error only when that happens in a timer callback.
 * Inside a promise continuation, where the loop and its handlers run, Deno
 * stops the continuation and every promise chain then pending (the loop's,
 * and the one that receives host messages), raises the heap limit and lets
 * the thread go on: the actor would be silently dead. Timers still run, so
 * one watches the limit, and once it moved reports the loop dead and ends
 * the Worker.
 */
function watchHeapLimit(): void {
  if (!("Deno" in globalThis) || port === null) return;
  const limit = getHeapStatistics().heap_size_limit;
  const timer = setInterval(() => {
    if (getHeapStatistics().heap_size_limit === limit) return;
    clearInterval(timer);
    post({
      kind: "died",
      error: {
        name: "WorkerOutOfMemory",
        message:
          `the actor's Worker ran out of memory (its heap reached its limit of ${
            Math.round(limit / 2 ** 20)
          } MiB)`,
      },
    });
    closeSelf();
  }, HEAP_WATCH_MS);
}

watchHeapLimit();

async function start(init: StartMessage): Promise<void> {
  const definition = await loadActorDefinition({
    module: init.module,
    export: init.exportName,
  });
  routes = buildRoutes(init.routes, routes);
  const loop = new ActorLoop(init, definition);
  post({ kind: "ready" });
  const reason = await loop.run();
  // An abandoned loop's host has moved on: it reports nothing.
  if (reason !== "abandoned") post({ kind: "exited", reason });
  closeSelf();
}

class ActorLoop {
  readonly #init: StartMessage;
  readonly #definition: ActorDefinition;
  readonly #control: ControlBlockView;
  readonly #telemetry: TelemetryView;
  readonly #words: Int32Array;
  readonly #inputRing: Ring;
  readonly #input: RingConsumer;
  readonly #inbox: RingConsumer;
  readonly #output: RingProducer;
  readonly #outputRing: Ring;
  readonly #accepts: SchemaRegistry;
  readonly #clock: HybridClock;
  readonly #ctx: ActorContext & { correlationId: bigint; sourceActor: number };
  readonly #slotSize: number;
  /** This loop's `busy` value when idle (its generation, state bits 0). */
  readonly #busyIdle: number;
  /** The processed counter's low 32 bits: only this loop moves it while it runs. */
  #processedLow: number;
  /** The same of the dead-letter counter (telemetry). */
  #droppedLow: number;
  readonly #rules: EnvelopeRules;
  readonly #replyHeader: {
    correlationId: number | bigint;
    sourceActor: number;
  };
  readonly #outbox: ActorOutbox;

  constructor(init: StartMessage, definition: ActorDefinition) {
    this.#init = init;
    this.#definition = definition;
    const { memory, plan } = init;
    this.#control = new ControlBlockView(memory, plan.control);
    this.#telemetry = new TelemetryView(memory, { byteOffset: plan.telemetry });
    this.#words = new Int32Array(memory, plan.worker, 8);
    this.#inputRing = Ring.attach(memory, {
      byteOffset: plan.input,
      kind: "spsc",
    });
    this.#input = this.#inputRing.consumer();
    this.#inbox = Ring.attach(memory, { byteOffset: plan.inbox, kind: "mpsc" })
      .consumer();
    this.#outputRing = Ring.attach(memory, {
      byteOffset: plan.output,
      kind: "spsc",
    });
    this.#output = this.#outputRing.producer();
    this.#slotSize = plan.slotSize;
    this.#busyIdle = busyIdle(init.generation);
    this.#processedLow = this.#control.messagesProcessedLow;
    this.#droppedLow = this.#telemetry.messagesDroppedLow;
    this.#replyHeader = { correlationId: 0, sourceActor: init.id };
    this.#clock = new HybridClock({ nodeId: init.id & 0xffff });
    this.#accepts = new SchemaRegistry([
      definition.input,
      ...(definition.accepts ?? []),
    ]);
    this.#rules = { schemas: this.#accepts, slotSize: this.#slotSize };
    // `init` is the actor's code: marked like a handler (WorkerWord.userCode).
    this.#words[WorkerWord.userCode] = init.generation;
    let state: unknown;
    try {
      state = definition.init?.({
        name: init.name,
        id: init.id,
        config: init.config,
      });
    } finally {
      this.#words[WorkerWord.userCode] = 0;
    }
    const outbox = new ActorOutbox({
      name: init.name,
      id: init.id,
      definition,
      clock: this.#clock,
      slotSize: this.#slotSize,
      routes: () => routes,
      catchUp: () =>
        Atomics.load(this.#words, WorkerWord.mailbox) !== mailboxHandled
          ? this.#catchUpMailbox()
          : undefined,
      post,
    });
    this.#outbox = outbox;
    this.#ctx = {
      name: init.name,
      id: init.id,
      state,
      correlationId: 0n,
      sourceActor: 0,
      send: (target, message, options) => outbox.send(target, message, options),
      publish: (topic, message, options) =>
        outbox.publish(topic, message, options),
      subscribe: (filter) => outbox.subscribe(filter),
    };
  }

  /** Runs until terminated, aborted or crashed. */
  async run(): Promise<"terminated" | "aborted" | "crashed" | "abandoned"> {
    const control = this.#control;
    // The idle spin adapts like the host's: it shrinks while nothing arrives
    // during it (the producer may be waiting for this core), and grows back
    // when work comes within it.
    const maxSpinMs = this.#init.idleSpinMicros / 1000;
    const minSpinMs = Math.min(maxSpinMs, MIN_IDLE_SPIN_MS);
    let spinMs = maxSpinMs;
    let spinning = false;
    let lastWork = performance.now();
    let lastBeat = lastWork;
    let lastYield = lastWork;
    this.#heartbeat();
    for (;;) {
      if (control.shouldAbort) return this.#exit("aborted");
      if (Atomics.load(this.#words, WorkerWord.mailbox) !== mailboxHandled) {
        await this.#catchUpMailbox();
      }
      const terminating = control.shouldTerminate;
      if (control.isActive || terminating) {
        if (control.shouldAbort) return this.#exit("aborted");
        // Look before awaiting: an empty queue costs no promise.
        const fromInput = this.#input.available() > 0
          ? await this.#drain(this.#input, 1)
          : 0;
        if (fromInput === ABANDONED) return "abandoned";
        if (fromInput < 0) return this.#exit("crashed");
        const fromInbox = this.#inbox.available() > 0
          ? await this.#drain(this.#inbox, 2)
          : 0;
        if (fromInbox === ABANDONED) return "abandoned";
        if (fromInbox < 0) return this.#exit("crashed");
        if (fromInput + fromInbox > 0) {
          this.#outbox.flush();
          lastWork = performance.now();
          if (spinning) {
            spinning = false;
            spinMs = Math.min(maxSpinMs, spinMs * 2);
          }
          if (lastWork - lastBeat >= HEARTBEAT_MS) {
            lastBeat = lastWork;
            this.#heartbeat();
          }
          // The actor's own timers and promises need the event loop now and
          // then, even under sustained load.
          if (lastWork - lastYield >= YIELD_MS) {
            lastYield = lastWork;
            await macrotask();
          }
          continue;
        }
        if (terminating) return this.#exit("terminated");
      } else {
        // Deactivated: confirm the host's latest request (read after the flag).
        const request = control.pauseRequest;
        if (control.pauseAck !== request) control.pauseAck = request;
      }
      if (performance.now() - lastWork < spinMs) {
        spinning = true;
        continue;
      }
      if (spinning) {
        spinning = false;
        spinMs = Math.max(minSpinMs, spinMs / 2);
      }
      this.#heartbeat();
      const timedOut = this.#sleep();
      lastWork = lastBeat = performance.now() - spinMs;
      // Only a quiet spell yields to the event loop: a wake-up goes straight
      // back to the queues.
      if (timedOut) {
        lastYield = lastWork;
        await macrotask();
      }
    }
  }

  #exit(
    reason: "terminated" | "aborted" | "crashed",
  ): "terminated" | "aborted" | "crashed" {
    this.#outbox.flush();
    this.#heartbeat();
    this.#control.hasTerminated = reason === "terminated"
      ? TerminationState.Terminated
      : TerminationState.Relaunchable;
    return reason;
  }

  /** Stamps the heartbeat (ns since the Unix epoch, comparable across threads). */
  #heartbeat(): void {
    this.#control.lastActivityTicks = BigInt(
      Math.round((performance.timeOrigin + performance.now()) * 1e6),
    );
    this.#telemetry.setQueueDepth(this.#inputRing.depth());
  }

  /**
   * Sleeps on the input ring's doorbell until a producer or the host rings
   * it; returns true when the sleep ran out with nobody ringing.
   */
  #sleep(): boolean {
    const signals = this.#inputRing.signals;
    const bell = Atomics.load(signals, DOORBELL);
    Atomics.store(signals, SLEEPING, 1);
    const control = this.#control;
    const ready = this.#input.available() > 0 || this.#inbox.available() > 0;
    const flagged = control.shouldAbort || control.shouldTerminate ||
      Atomics.load(this.#words, WorkerWord.mailbox) !== mailboxHandled;
    let result = "not-equal";
    if (!(ready && control.isActive) && !flagged) {
      result = Atomics.wait(signals, DOORBELL, bell, MAX_SLEEP_MS);
    }
    Atomics.store(signals, SLEEPING, 0);
    return result === "timed-out";
  }

  async #catchUpMailbox(): Promise<void> {
    for (let i = 0; i < 1000; i++) {
      if (Atomics.load(this.#words, WorkerWord.mailbox) === mailboxHandled) {
        return;
      }
      await macrotask();
    }
  }

  /**
   * Handles up to one batch from `consumer`; returns how many messages were
   * taken, or -1 after a crash. Each slot is released as soon as it is
   * accounted for (processed or dead-lettered), so a Worker that dies loses
   * at most the one message it was handling, and the host knows which.
   */
  /**
   * Handles up to one batch from `consumer`. Returns how many slots were
   * taken, {@linkcode CRASHED} after a handler error, or {@linkcode ABANDONED}
   * when the host killed this loop and took the queues over (the thread may
   * keep running under Deno, but it then touches nothing shared).
   *
   * Every slot is owned through the `busy` word: CAS idle → handling before
   * reading it; after the handler, handling → finishing; then (after room
   * for the reply is claimed) finishing → committed, the point after which
   * the host lets the loop finish: encode and publish the reply, count,
   * release, and CAS committed → idle. Void and invalid slots, and handler
   * errors, commit straight from handling.
   */
  async #drain(consumer: RingConsumer, source: number): Promise<number> {
    let n = consumer.available();
    if (n === 0) return 0;
    if (n > this.#init.batchSize) n = this.#init.batchSize;
    const view = consumer.view;
    const words = this.#words;
    const ctx = this.#ctx;
    const control = this.#control;
    const idle = this.#busyIdle;
    const handling = idle | source;
    const finishing = handling | BusyState.finishing;
    const committed = handling | BusyState.committed;
    const busy = WorkerWord.busy;
    const userCode = WorkerWord.userCode;
    const generation = this.#init.generation;
    const started = performance.now();
    let processed = 0;
    for (let i = 0; i < n; i++) {
      if (control.shouldAbort) break;
      // Own the head slot before touching it.
      if (Atomics.compareExchange(words, busy, idle, handling) !== idle) {
        return ABANDONED;
      }
      const offset = consumer.slotOffset(0);
      if (readTypeId(view, offset) === VOID_TYPE_ID) {
        this.#record(CommitKind.voidSlot, consumer);
        if (
          Atomics.compareExchange(words, busy, handling, committed) !== handling
        ) return ABANDONED;
        consumer.release(1);
        if (
          Atomics.compareExchange(words, busy, committed, idle) !== committed
        ) return ABANDONED;
        continue;
      }
      let message: unknown;
      try {
        const schema = validateEnvelope(view, offset, this.#rules);
        message = schema.decode(view, offset + ENVELOPE_SIZE);
      } catch (error) {
        this.#record(CommitKind.invalidMessage, consumer);
        if (
          Atomics.compareExchange(words, busy, handling, committed) !== handling
        ) return ABANDONED;
        this.#deadLetter(consumer, offset, "invalid-message", error);
        if (
          Atomics.compareExchange(words, busy, committed, idle) !== committed
        ) return ABANDONED;
        continue;
      }
      const correlation = readCorrelation(view, offset);
      ctx.correlationId = typeof correlation === "bigint"
        ? correlation
        : BigInt(correlation);
      ctx.sourceActor = readSourceActor(view, offset);
      let failure: unknown = undefined;
      let failed = false;
      let reply;
      try {
        // Plain stores: the host reads the mark only after it killed this
        // loop, to tell whether the thread is still inside the handler. A
        // loop killed meanwhile leaves a restarted loop's mark alone.
        words[userCode] = generation;
        reply = this.#definition.handle(message as never, ctx);
        if (words[userCode] === generation) words[userCode] = 0;
        if (
          reply !== undefined && reply !== null &&
          typeof (reply as Promise<unknown>).then === "function"
        ) {
          // What the handler sent so far may be what it waits for.
          this.#outbox.flush();
          reply = await reply;
        }
      } catch (error) {
        if (words[userCode] === generation) words[userCode] = 0;
        failed = true;
        failure = error;
      }
      if (reply === null && !failed) {
        failure = this.#nullReply();
        if (failure === undefined) reply = undefined;
        else failed = true;
      }
      if (!failed) {
        // The host may have killed this loop during the handler and taken the message.
        if (
          Atomics.compareExchange(words, busy, handling, finishing) !== handling
        ) return ABANDONED;
        const output = this.#definition.output;
        const wanted = reply !== undefined && output !== undefined;
        let outcome: ReplyOutcome;
        if (wanted) {
          outcome = this.#reply(
            output,
            reply as MessageValue<FieldsSpec>,
            correlation,
            consumer,
            finishing,
            committed,
            idle,
          );
        } else {
          this.#record(CommitKind.noReply, consumer);
          outcome =
            Atomics.compareExchange(words, busy, finishing, committed) ===
                finishing
              ? REPLY_DONE
              : REPLY_ABANDONED;
        }
        if (outcome === REPLY_ABANDONED) return ABANDONED;
        if (outcome === REPLY_HANDED_BACK) break;
        if (typeof outcome === "object") {
          // The reply did not encode: committed already, so it is a handler
          // error. The record changes kind; its count word first, so a host
          // never pairs the new kind with the old count.
          Atomics.store(words, WorkerWord.commitCount, this.#droppedLow);
          Atomics.store(words, WorkerWord.commitKind, CommitKind.handlerError);
          failed = true;
          failure = outcome.error;
        }
      } else {
        this.#record(CommitKind.handlerError, consumer);
        if (
          Atomics.compareExchange(words, busy, handling, committed) !== handling
        ) return ABANDONED;
      }
      if (failed) {
        this.#deadLetter(consumer, offset, "handler-error", failure);
        if (
          Atomics.compareExchange(words, busy, committed, idle) !== committed
        ) return ABANDONED;
        control.recordError(1);
        this.#telemetry.setErrorCode(1);
        this.#flushProcessed(processed, started);
        post({ kind: "crash", error: serializeError(failure) });
        return CRASHED;
      }
      processed++;
      // Count before releasing: sent = processed + dead-lettered + in flight holds at every instant.
      control.addOneProcessed();
      this.#processedLow = (this.#processedLow + 1) >>> 0;
      consumer.release(1);
      if (Atomics.compareExchange(words, busy, committed, idle) !== committed) {
        return ABANDONED;
      }
    }
    this.#flushProcessed(processed, started);
    return n;
  }

  /**
   * What a handler's `null` means: no reply for an actor without an output
   * schema, otherwise an {@linkcode InvalidMessageError} (a handler error).
   */
  #nullReply(): InvalidMessageError | undefined {
    const output = this.#definition.output;
    if (output === undefined) return undefined;
    return new InvalidMessageError(
      `the handler of actor "${this.#init.name}" returned null: an actor with an output schema (${output.name}) replies with a ${output.name} value, or returns undefined for no reply`,
    );
  }

  #flushProcessed(processed: number, started: number): void {
    if (processed === 0) return;
    const latencyNs = (performance.now() - started) * 1e6 / processed;
    this.#telemetry.recordProcessed(processed, {
      totalLatencyNs: latencyNs * processed,
      minLatencyNs: latencyNs,
      maxLatencyNs: latencyNs,
    });
  }

  /**
   * Writes the commit record (see {@linkcode CommitKind}) of the message at
   * the head of `consumer`, just before the commit.
   */
  #record(kind: number, consumer: RingConsumer): void {
    // Plain stores: the commit CAS that follows publishes them to the host.
    const words = this.#words;
    words[WorkerWord.commitKind] = kind;
    words[WorkerWord.commitHead] = consumer.slotIndex(0);
    words[WorkerWord.commitReply] = kind === CommitKind.reply
      ? this.#output.slotIndex(0)
      : 0;
    words[WorkerWord.commitCount] =
      kind === CommitKind.reply || kind === CommitKind.noReply
        ? this.#processedLow
        : this.#droppedLow;
  }

  #deadLetter(
    consumer: RingConsumer,
    offset: number,
    reason: DeadLetterReason,
    error: unknown,
  ): void {
    const slot = consumer.view.buffer instanceof SharedArrayBuffer
      ? new Uint8Array(
        consumer.view.buffer,
        consumer.view.byteOffset + offset,
        this.#slotSize,
      ).slice()
      : new Uint8Array(this.#slotSize);
    this.#telemetry.recordDropped(1);
    this.#droppedLow = (this.#droppedLow + 1) >>> 0;
    consumer.release(1);
    const detail = error instanceof Error
      ? `${error.name}: ${error.message}`
      : String(error);
    post({ kind: "dead-letter", reason, detail, slot }, [slot.buffer]);
  }

  /**
   * Writes a reply into the output ring: claims a slot (waiting while the
   * host has not made room, as long as this loop still owns the message),
   * commits the `busy` word, and only then encodes and publishes — so a
   * killed loop never writes into a slot. Returns {@linkcode REPLY_DONE},
   * {@linkcode REPLY_ABANDONED} when the host took the message over (or the
   * actor is aborting), or the encode error (the loop is then committed).
   */
  #reply(
    schema: MessageSchema,
    value: MessageValue<FieldsSpec>,
    correlationId: number | bigint,
    consumer: RingConsumer,
    finishing: number,
    committed: number,
    idle: number,
  ): ReplyOutcome {
    const header = this.#replyHeader;
    header.correlationId = correlationId;
    const output = this.#output;
    const words = this.#words;
    let sleepMs = 0.02;
    while (output.claim(1) === 0) {
      if (this.#control.shouldAbort) {
        // Give the message back uncounted, as if never taken: the aborting
        // host dead-letters it with the queue, and this loop exits "aborted".
        return Atomics.compareExchange(
            words,
            WorkerWord.busy,
            finishing,
            idle,
          ) ===
            finishing
          ? REPLY_HANDED_BACK
          : REPLY_ABANDONED;
      }
      if (Atomics.load(words, WorkerWord.busy) !== finishing) {
        return REPLY_ABANDONED;
      }
      sleepSync(sleepMs);
      sleepMs = Math.min(1, sleepMs * 2);
    }
    this.#record(CommitKind.reply, consumer);
    if (
      Atomics.compareExchange(words, WorkerWord.busy, finishing, committed) !==
        finishing
    ) {
      output.publish(0);
      return REPLY_ABANDONED;
    }
    const offset = output.slotOffset(0);
    try {
      writeEnvelopeFor(output.view, offset, schema, header);
      schema.encode(output.view, offset + ENVELOPE_SIZE, value);
    } catch (error) {
      output.publish(0);
      return { error };
    }
    output.publish(1);
    return REPLY_DONE;
  }
}
