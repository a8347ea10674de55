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
import { ClockSkewError, InvalidMessageError } from "../../errors.ts";
import { HybridClock } from "../../hlc.ts";
import { ENVELOPE, QUEUE_HEADER, TerminationState } from "../../layout.ts";
import {
  type FieldsSpec,
  type MessageValue,
  SchemaRegistry,
} from "../../message.ts";
import { Ring, type RingConsumer, type RingProducer } from "../../ring.ts";
import { TelemetryView } from "../../telemetry.ts";
import { sleepSync } from "../../async.ts";
import type { DeadLetterReason } from "../../dead_letter.ts";
import {
  busyIdle,
  BusyState,
  COMMIT_GROUP,
  CommitKind,
  spinShouldShrink,
  takenWord,
  WORKER_WORD_COUNT,
  WorkerWord,
} from "./actor_memory.ts";
import { ActorOutbox, buildRoutes, type Route } from "./actor_outbox.ts";
import {
  InvalidStateError,
  QueueFullError,
  TimeoutError,
  UnknownActorError,
} from "../../errors.ts";
import {
  type HostToWorker,
  type SerializedError,
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
/** Byte offset of the envelope's timestamp in a slot. */
const TIMESTAMP = ENVELOPE.fields.timestamp.offset;
/** Longest single sleep: bounds how late a missed wake-up could be noticed. */
const MAX_SLEEP_MS = 100;
/** What {@linkcode ActorLoop.#drain} returns after a handler error. */
const CRASHED = -1;
/** What it returns when the host took the queues over from this loop. */
const ABANDONED = -2;
/** Outcomes of waiting for room for a reply. */
const ROOM_READY = 1;
const ROOM_ABANDONED = 0;
/** An abort came while waiting for room: the message went back to the head. */
const ROOM_HANDED_BACK = 2;

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
/** The running loop: it answers snapshot requests. */
let running: ActorLoop | undefined;
/** Remote sends waiting for the host's answer, by request. */
const remoteSends = new Map<
  number,
  { target: string; resolve: () => void; reject: (error: Error) => void }
>();
let nextRemoteSend = 1;

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
  } else if (message.kind === "snapshot") {
    mailboxHandled++;
    answerSnapshot(message.request);
  } else if (message.kind === "remote-send-result") {
    mailboxHandled++;
    const waiting = remoteSends.get(message.request);
    if (waiting === undefined) return;
    remoteSends.delete(message.request);
    if (message.error === undefined) waiting.resolve();
    else waiting.reject(deserializeError(message.error, waiting.target));
  }
}

/** Answers the host's snapshot request with the actor's `snapshot` of its state. */
function answerSnapshot(request: number): void {
  try {
    if (running === undefined) {
      throw new Error("the actor's loop is not running");
    }
    const bytes = running.snapshot();
    post({ kind: "snapshot", request, bytes }, [bytes.buffer as ArrayBuffer]);
  } catch (error) {
    post({ kind: "snapshot", request, error: serializeError(error) });
  }
}

/** Asks the host to forward a K2K send to a name no local route has. */
function remoteSend(
  target: string,
  slot: Uint8Array,
  timeoutMs: number,
): Promise<void> {
  const request = nextRemoteSend++;
  return new Promise<void>((resolve, reject) => {
    remoteSends.set(request, { target, resolve, reject });
    post({ kind: "remote-send", request, target, slot, timeoutMs }, [
      slot.buffer as ArrayBuffer,
    ]);
  });
}

/** The typed error a host's answer names (its class by name, else an Error). */
function deserializeError(error: SerializedError, target: string): Error {
  const made = error.name === "UnknownActorError"
    ? new UnknownActorError(target)
    : error.name === "TimeoutError"
    ? new TimeoutError(`K2K send to "${target}"`, 0)
    : error.name === "QueueFullError"
    ? new QueueFullError(error.message)
    : error.name === "InvalidMessageError"
    ? new InvalidMessageError(error.message)
    : Object.assign(new Error(error.message), { name: error.name });
  made.message = error.message;
  return made;
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
  running = loop;
  post({ kind: "ready" });
  const reason = await loop.run();
  running = undefined;
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
  /** The `taken` word this loop last wrote (see {@linkcode WorkerWord.taken}). */
  #taken: number;
  /** `taken` of this loop's generation holding no message. */
  readonly #takenTag: number;
  /**
   * Replies of the open group, encoded here until its commit: a loop writes
   * the output ring only inside its committed window, so a killed loop that
   * keeps running never writes a slot the host or a restarted loop owns.
   */
  readonly #scratch: DataView;
  /** One view per scratch slot, the bytes a reply fills (copied at the commit). */
  readonly #scratchSlots: Uint8Array[];
  /** Messages counted processed in the current turn. */
  #turnProcessed = 0;
  /** When the current turn started (`performance.now()`). */
  #turnStart = 0;
  /** Telemetry not yet written: processed count, summed latency and extremes, ns. */
  #pendingCount = 0;
  #pendingTotalNs = 0;
  #pendingMinNs = Infinity;
  #pendingMaxNs = 0;

  constructor(init: StartMessage, definition: ActorDefinition) {
    this.#init = init;
    this.#definition = definition;
    const { memory, plan } = init;
    this.#control = new ControlBlockView(memory, plan.control);
    this.#telemetry = new TelemetryView(memory, { byteOffset: plan.telemetry });
    this.#words = new Int32Array(memory, plan.worker, WORKER_WORD_COUNT);
    this.#takenTag = takenWord(init.generation, 0);
    this.#taken = this.#takenTag;
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
    this.#clock = new HybridClock({
      nodeId: init.id & 0xffff,
      maxSkewMs: init.maxSkewMs,
    });
    this.#accepts = new SchemaRegistry([
      definition.input,
      ...(definition.accepts ?? []),
    ]);
    this.#rules = { schemas: this.#accepts, slotSize: this.#slotSize };
    const scratch = new ArrayBuffer(COMMIT_GROUP * this.#slotSize);
    this.#scratch = new DataView(scratch);
    const replyBytes = ENVELOPE_SIZE + (definition.output?.size ?? 0);
    this.#scratchSlots = Array.from(
      { length: COMMIT_GROUP },
      (_, i) => new Uint8Array(scratch, i * this.#slotSize, replyBytes),
    );
    // `init` is the actor's code: marked like a handler (WorkerWord.userCode).
    this.#words[WorkerWord.userCode] = init.generation;
    let state: unknown;
    try {
      const info = { name: init.name, id: init.id, config: init.config };
      if (init.restore === undefined) state = definition.init?.(info);
      else {
        if (typeof definition.restore !== "function") {
          throw new InvalidStateError(
            `restore actor "${init.name}"`,
            "no restore",
            "its definition has no restore(snapshot, info) member",
          );
        }
        state = definition.restore(init.restore.snapshot, {
          ...info,
          sequence: init.restore.sequence,
          checkpointId: init.restore.checkpointId,
        });
      }
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
      remoteSend,
    });
    this.#outbox = outbox;
    this.#ctx = {
      name: init.name,
      id: init.id,
      state,
      correlationId: 0n,
      sourceActor: 0,
      send: (target, message, options) => outbox.send(target, message, options),
      trySend: (target, message, options) =>
        outbox.trySend(target, message, options),
      sendBatch: (target, messages, options) =>
        outbox.sendBatch(target, messages, options),
      publish: (topic, message, options) =>
        outbox.publish(topic, message, options),
      subscribe: (filter) => outbox.subscribe(filter),
      replyTo: (id, message, options) => outbox.replyTo(id, message, options),
    };
  }

  /**
   * The actor's `snapshot` of its state (the host asks while the actor is
   * paused, so no handler runs). Throws when the definition has none or it
   * returns something other than a `Uint8Array`.
   */
  snapshot(): Uint8Array {
    const take = this.#definition.snapshot;
    if (typeof take !== "function") {
      throw new InvalidStateError(
        `snapshot of actor "${this.#init.name}"`,
        "no snapshot",
        "its definition has no snapshot(state) member",
      );
    }
    const bytes = take(this.#ctx.state);
    if (!(bytes instanceof Uint8Array)) {
      throw new InvalidStateError(
        `snapshot of actor "${this.#init.name}"`,
        typeof bytes,
        "snapshot(state) must return a Uint8Array",
      );
    }
    // A copy of its own: the bytes are transferred to the host.
    return bytes.slice();
  }

  /** Runs until terminated, aborted or crashed. */
  async run(): Promise<"terminated" | "aborted" | "crashed" | "abandoned"> {
    const control = this.#control;
    // The idle spin adapts: it shrinks while nothing arrives during it (the
    // producer may be waiting for this core: see spinShouldShrink), and grows
    // back when work comes within it.
    const maxSpinMs = this.#init.idleSpinMicros / 1000;
    const load = new Int32Array(this.#init.load);
    let wasted = 0;
    let slept = false;
    const minSpinMs = Math.min(maxSpinMs, MIN_IDLE_SPIN_MS);
    let spinMs = maxSpinMs;
    let spinning = false;
    let lastWork = performance.now();
    let lastBeat = lastWork;
    let lastYield = lastWork;
    // When the current turn started: the loop's last clock reading before it
    // (telemetry's latencies come from these readings, not from reads of
    // their own).
    this.#turnStart = lastWork;
    this.#heartbeat(lastWork);
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
          if (this.#turnProcessed > 0) {
            this.#noteTurn(lastWork - this.#turnStart);
          }
          this.#turnStart = lastWork;
          // Work that came without a sleep before it ends a run of wasted spins.
          if (!slept) wasted = 0;
          slept = false;
          if (spinning) {
            spinning = false;
            spinMs = Math.min(maxSpinMs, spinMs * 2);
          }
          if (lastWork - lastBeat >= HEARTBEAT_MS) {
            lastBeat = lastWork;
            this.#heartbeat(lastWork);
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
      const now = performance.now();
      this.#turnStart = now;
      if (now - lastWork < spinMs) {
        spinning = true;
        continue;
      }
      if (spinning) {
        spinning = false;
        if (spinShouldShrink(++wasted, load)) {
          spinMs = Math.max(minSpinMs, spinMs / 2);
        }
      }
      this.#heartbeat(now);
      slept = true;
      const timedOut = this.#sleep();
      this.#turnStart = performance.now();
      // Woken sooner than a whole spin would have lasted: the spin was too
      // short for this producer, not wasted (unless the cores are scarce,
      // when the producer may have needed this one to send at all).
      if (
        !timedOut && this.#turnStart - now < maxSpinMs &&
        !spinShouldShrink(0, load)
      ) {
        wasted = 0;
        spinMs = Math.min(maxSpinMs, spinMs * 2);
      }
      lastWork = lastBeat = this.#turnStart - spinMs;
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
    const now = performance.now();
    if (this.#turnProcessed > 0) this.#noteTurn(now - this.#turnStart);
    this.#heartbeat(now);
    this.#control.hasTerminated = reason === "terminated"
      ? TerminationState.Terminated
      : TerminationState.Relaunchable;
    return reason;
  }

  /**
   * Stamps the heartbeat at `now` (a `performance.now()` reading the caller
   * made; stored as ns since the Unix epoch, comparable across threads), and
   * writes the telemetry of the turns since the last one, stamped with the
   * same time: the per-turn path does no clock reads and no BigInt work.
   */
  #heartbeat(now: number): void {
    const ticks = BigInt(Math.round((performance.timeOrigin + now) * 1e6));
    this.#control.lastActivityTicks = ticks;
    if (this.#pendingCount > 0) {
      this.#telemetry.recordProcessed(this.#pendingCount, {
        totalLatencyNs: this.#pendingTotalNs,
        minLatencyNs: this.#pendingMinNs,
        maxLatencyNs: this.#pendingMaxNs,
        timestampNs: ticks,
      });
      this.#pendingCount = 0;
      this.#pendingTotalNs = 0;
      this.#pendingMinNs = Infinity;
      this.#pendingMaxNs = 0;
    }
    this.#telemetry.setQueueDepth(this.#inputRing.depth());
  }

  /**
   * Notes the messages processed in a turn that took `elapsedMs` (each gets
   * the turn's mean latency); the next heartbeat writes them to telemetry.
   */
  #noteTurn(elapsedMs: number): void {
    const count = this.#turnProcessed;
    this.#turnProcessed = 0;
    const totalNs = elapsedMs > 0 ? elapsedMs * 1e6 : 0;
    const meanNs = totalNs / count;
    this.#pendingCount += count;
    this.#pendingTotalNs += totalNs;
    if (meanNs < this.#pendingMinNs) this.#pendingMinNs = meanNs;
    if (meanNs > this.#pendingMaxNs) this.#pendingMaxNs = meanNs;
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
   * Handles up to one batch from `consumer`. Returns how many slots were
   * taken, {@linkcode CRASHED} after a handler error, or {@linkcode ABANDONED}
   * when the host killed this loop and took the queues over (the thread may
   * keep running under Deno, but it then touches nothing shared).
   *
   * The batch is handled in groups of up to {@linkcode COMMIT_GROUP}
   * messages, owned through the worker words: `taken` set to 1, then CAS
   * `busy` idle → handling; before each further message of the group, a CAS
   * moves `taken` to how many messages the group holds (a host that kills the
   * loop takes them all). Replies go to the scratch. The group then commits
   * as one range ({@linkcode ActorLoop.#commit}): the commit record, CAS
   * handling → committed, and in the committed window, with no waits, its
   * replies copied and published at once, its messages counted and released
   * at once, CAS committed → idle. A group commits early: before a handler's
   * promise is awaited (a group never spans an await), before a void or
   * invalid slot or a handler error (each then handled alone and committed
   * straight from handling), and when the output ring has no room for its
   * next reply (that message then waits for room alone, as `finishing`).
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
    const output = this.#definition.output;
    const scratch = this.#scratch;
    const slotSize = this.#slotSize;
    const header = this.#replyHeader;
    let done = 0;
    groups: while (done < n) {
      if (control.shouldAbort) break;
      // Open a group: it holds the head message.
      if (!this.#take(1)) return ABANDONED;
      if (Atomics.compareExchange(words, busy, idle, handling) !== idle) {
        return ABANDONED;
      }
      /** Messages of the group handled (from the head), not yet committed. */
      let held = 0;
      /** Their replies, in the scratch. */
      let replies = 0;
      /** Free output slots this loop knows of (only it fills the ring). */
      let room = 0;
      for (;;) {
        if (held > 0) {
          if (
            held === COMMIT_GROUP || done + held === n || control.shouldAbort
          ) break;
          // The next message joins the group: the host would take it too.
          if (!this.#take(held + 1)) return ABANDONED;
        }
        const offset = consumer.slotOffset(held);
        if (readTypeId(view, offset) === VOID_TYPE_ID) {
          if (held > 0) {
            if (
              !this.#commit(consumer, held, replies, handling, handling)
            ) return ABANDONED;
            done += held;
          }
          this.#record(CommitKind.voidSlot, consumer, 1, 0);
          if (
            Atomics.compareExchange(words, busy, handling, committed) !==
              handling
          ) return ABANDONED;
          consumer.release(1);
          if (
            Atomics.compareExchange(words, busy, committed, idle) !== committed
          ) return ABANDONED;
          done++;
          continue groups;
        }
        let message: unknown;
        try {
          const schema = validateEnvelope(view, offset, this.#rules);
          // A receive: its stamp merged before the handler runs, so what it
          // sends and replies is ordered after it (two loads, no allocation;
          // beyond the skew bound it is dead-lettered as the host does).
          const lead = this.#clock.observeWords(
            view.getUint32(offset + TIMESTAMP, true),
            view.getUint32(offset + TIMESTAMP + 4, true),
          );
          if (lead > 0) throw new ClockSkewError(lead, this.#clock.maxSkewMs);
          message = schema.decode(view, offset + ENVELOPE_SIZE);
        } catch (error) {
          if (held > 0) {
            if (
              !this.#commit(consumer, held, replies, handling, handling)
            ) return ABANDONED;
            done += held;
          }
          this.#record(CommitKind.invalidMessage, consumer, 1, 0);
          if (
            Atomics.compareExchange(words, busy, handling, committed) !==
              handling
          ) return ABANDONED;
          this.#deadLetter(consumer, offset, "invalid-message", error);
          if (
            Atomics.compareExchange(words, busy, committed, idle) !== committed
          ) return ABANDONED;
          done++;
          continue groups;
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
            // A group never spans an await: the messages before this one
            // commit first, and it goes on as the head of the group.
            if (held > 0) {
              if (
                !this.#commit(consumer, held, replies, handling, handling)
              ) return ABANDONED;
              done += held;
              held = 0;
              replies = 0;
              room = 0;
            }
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
        const wanted = !failed && reply !== undefined && output !== undefined;
        if (wanted) {
          // Into the scratch: the ring's slots are written only once committed.
          header.correlationId = correlation;
          const at = replies * slotSize;
          try {
            writeEnvelopeFor(scratch, at, output, header);
            output.encode(
              scratch,
              at + ENVELOPE_SIZE,
              reply as MessageValue<FieldsSpec>,
            );
          } catch (error) {
            // A reply that does not encode is a handler error.
            failed = true;
            failure = error;
          }
        }
        if (failed) {
          // The messages before it commit; it is dead-lettered alone.
          if (held > 0) {
            if (
              !this.#commit(consumer, held, replies, handling, handling)
            ) return ABANDONED;
            done += held;
          }
          this.#record(CommitKind.handlerError, consumer, 1, 0);
          if (
            Atomics.compareExchange(words, busy, handling, committed) !==
              handling
          ) return ABANDONED;
          this.#deadLetter(consumer, offset, "handler-error", failure);
          if (
            Atomics.compareExchange(words, busy, committed, idle) !== committed
          ) return ABANDONED;
          control.recordError(1);
          this.#telemetry.setErrorCode(1);
          post({ kind: "crash", error: serializeError(failure) });
          return CRASHED;
        }
        held++;
        if (!wanted) continue;
        replies++;
        if (replies > room) room = this.#room();
        if (replies <= room) continue;
        // No room for this reply: the messages before it commit, and it
        // waits for room alone, as finishing (the host takes it at once).
        if (held > 1) {
          if (
            !this.#commit(consumer, held - 1, replies - 1, handling, handling)
          ) return ABANDONED;
          done += held - 1;
          this.#scratchSlots[0].set(this.#scratchSlots[replies - 1]);
        }
        if (
          Atomics.compareExchange(words, busy, handling, finishing) !== handling
        ) return ABANDONED;
        const outcome = this.#waitForRoom(finishing, idle);
        if (outcome === ROOM_ABANDONED) return ABANDONED;
        if (outcome === ROOM_HANDED_BACK) break groups;
        if (!this.#commit(consumer, 1, 1, finishing, idle)) return ABANDONED;
        done++;
        continue groups;
      }
      if (!this.#commit(consumer, held, replies, handling, idle)) {
        return ABANDONED;
      }
      done += held;
    }
    return n;
  }

  /**
   * Moves the `taken` word to `count` messages held, by a compare-and-swap
   * from the value this loop last wrote; false when the host took it (or a
   * restart replaced it): the loop must then stop.
   */
  #take(count: number): boolean {
    const next = this.#takenTag | count;
    const seen = Atomics.compareExchange(
      this.#words,
      WorkerWord.taken,
      this.#taken,
      next,
    );
    if (seen !== this.#taken) return false;
    this.#taken = next;
    return true;
  }

  /**
   * Free slots of the output ring, up to {@linkcode COMMIT_GROUP} (a claim
   * given back at once: only this loop fills the ring, so room only grows).
   */
  #room(): number {
    const free = this.#output.claim(COMMIT_GROUP);
    this.#output.publish(0);
    return free;
  }

  /**
   * Commits the `messages` handled messages at the head of `consumer` with
   * the first `replies` replies of the scratch (the output ring has room for
   * them): writes the commit record, CAS `busy` from `from` to committed,
   * then with no waits copies the replies into their slots and publishes
   * them, counts the messages and releases them, and leaves the committed
   * window for `next`: idle, or handling for the message that follows them
   * (`taken` set to 1 first). Returns false when the host took the word:
   * the loop must stop.
   */
  #commit(
    consumer: RingConsumer,
    messages: number,
    replies: number,
    from: number,
    next: number,
  ): boolean {
    const words = this.#words;
    const output = this.#output;
    const committed = (from & ~BusyState.finishing) | BusyState.committed;
    if (replies > 0) output.claim(replies);
    this.#record(
      replies > 0 ? CommitKind.reply : CommitKind.noReply,
      consumer,
      messages,
      replies,
    );
    if (
      Atomics.compareExchange(words, WorkerWord.busy, from, committed) !== from
    ) {
      if (replies > 0) output.publish(0);
      return false;
    }
    if (replies > 0) {
      const bytes = this.#outputRing.bytes;
      const slots = this.#scratchSlots;
      // The group's replies take consecutive stamps: one clock reading.
      const { physicalMs, logical } = this.#clock.reserve(replies);
      const scratch = this.#scratch;
      const slotSize = this.#slotSize;
      let hi = Math.floor(physicalMs / 0x10000);
      let lo = (physicalMs - hi * 0x10000) * 0x10000 + logical;
      for (let r = 0; r < replies; r++) {
        scratch.setUint32(r * slotSize + TIMESTAMP, lo, true);
        scratch.setUint32(r * slotSize + TIMESTAMP + 4, hi, true);
        if (++lo === 0x1_0000_0000) {
          lo = 0;
          hi++;
        }
      }
      for (let r = 0; r < replies; r++) {
        bytes.set(slots[r], output.slotOffset(r));
      }
      output.publish(replies);
    }
    // Count before releasing: sent = processed + dead-lettered + in flight
    // holds at every instant (the kernel's reading allows for a range
    // counted and not yet released).
    if (messages === 1) this.#control.addOneProcessed();
    else this.#control.addProcessed(messages);
    this.#processedLow = (this.#processedLow + messages) >>> 0;
    this.#turnProcessed += messages;
    consumer.release(messages);
    if (next !== this.#busyIdle && !this.#take(1)) return false;
    return Atomics.compareExchange(words, WorkerWord.busy, committed, next) ===
      committed;
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

  /**
   * Writes the commit record (see {@linkcode CommitKind}) of the `messages`
   * messages at the head of `consumer` and of the `replies` claimed output
   * slots, just before the commit.
   */
  #record(
    kind: number,
    consumer: RingConsumer,
    messages: number,
    replies: number,
  ): void {
    // Plain stores: the commit CAS that follows publishes them to the host.
    const words = this.#words;
    words[WorkerWord.commitKind] = kind;
    words[WorkerWord.commitHead] = consumer.slotIndex(0);
    words[WorkerWord.commitMessages] = messages;
    words[WorkerWord.commitReply] = replies > 0 ? this.#output.slotIndex(0) : 0;
    words[WorkerWord.commitReplies] = replies;
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
   * Waits, as finishing, until the output ring has room for one reply, as
   * long as this loop still owns its message. Returns {@linkcode ROOM_READY},
   * {@linkcode ROOM_ABANDONED} when the host took the message over, or
   * {@linkcode ROOM_HANDED_BACK} when the actor aborts (the message goes back
   * to the head uncounted, as if never taken: the aborting host
   * dead-letters it with the queue).
   */
  #waitForRoom(finishing: number, idle: number): number {
    const output = this.#output;
    const words = this.#words;
    let sleepMs = 0.02;
    while (output.claim(1) === 0) {
      if (this.#control.shouldAbort) {
        return Atomics.compareExchange(
            words,
            WorkerWord.busy,
            finishing,
            idle,
          ) === finishing
          ? ROOM_HANDED_BACK
          : ROOM_ABANDONED;
      }
      if (Atomics.load(words, WorkerWord.busy) !== finishing) {
        return ROOM_ABANDONED;
      }
      sleepSync(sleepMs);
      sleepMs = Math.min(1, sleepMs * 2);
    }
    output.publish(0);
    return ROOM_READY;
  }
}
