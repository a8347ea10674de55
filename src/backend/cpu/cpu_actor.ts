/**
 * The host side of one CPU actor: its memory block (a SharedArrayBuffer with
 * the same control block, telemetry and ring layouts as a GPU actor) and the
 * Worker that runs its loop.
 *
 * The Worker is a `node:worker_threads` Worker, under Deno as under Bun: its
 * `exit` event tells the host when the thread ended on its own (a handler
 * calling `process.exit()`, `Deno.exit()` or `self.close()`, where a web
 * Worker under Deno fires nothing), and under Deno its `resourceLimits` turn
 * a heap exhausted by one actor into that actor's crash instead of the
 * process's abort.
 *
 * @module
 */

import { Worker } from "node:worker_threads";
import { setTimeout as setTimer } from "node:timers";

import { ControlBlockView } from "../../control_block.ts";
import {
  InvalidStateError,
  RingKernelError,
  TimeoutError,
  UnknownActorError,
} from "../../errors.ts";
import { DEFAULT_MAX_SKEW_MS } from "../../hlc.ts";
import { ABI_VERSION } from "../../layout.ts";
import { Ring, type RingConsumer, type RingProducer } from "../../ring.ts";
import { TelemetryView } from "../../telemetry.ts";
import {
  type ActorMemoryPlan,
  BUSY_STATE_MASK,
  BUSY_TAKEN,
  busyIdle,
  BusyState,
  COMMIT_GROUP,
  CommitKind,
  planActorMemory,
  spinShouldShrink,
  takenWord,
  WORKER_WORD_COUNT,
  WorkerWord,
} from "./actor_memory.ts";
import type {
  ActorHost,
  ActorHostEvents,
  ActorSpawnSpec,
  InFlightMessage,
  StuckThread,
} from "../backend.ts";
import {
  type RemoteSendRequest,
  type RestoreSpec,
  type RouteEntry,
  type SerializedError,
  serializeError,
  type WorkerToHost,
} from "./protocol.ts";

const WORKER_URL = new URL("./actor_worker.ts", import.meta.url);
/**
 * What the Worker is started from: `node:worker_threads` loads `file:` and
 * `data:` URLs only, so a library imported from elsewhere (`https:`) starts
 * its Worker from a `data:` module that imports the real one.
 */
const WORKER_ENTRY = WORKER_URL.protocol === "file:" ? WORKER_URL : new URL(
  `data:text/javascript,${
    encodeURIComponent(`import ${JSON.stringify(WORKER_URL.href)};`)
  }`,
);
/**
 * Longest a counter reading waits for a commit in progress to finish: a few
 * stores, far longer only when its thread stopped inside it (descheduled, or
 * collecting garbage).
 */
const SETTLE_COMMIT_MS = 20;
/** How long a kill waits for a loop that committed a message to finish it (no waits inside). */
const COMMIT_WAIT_MS = 100;
/**
 * Whether `Worker.terminate()` stops a thread inside synchronous JavaScript.
 * Bun's does; Deno's does not (a handler stuck in a loop keeps its thread,
 * and the process, running).
 */
const TERMINATE_STOPS_SYNC_CODE = !("Deno" in globalThis);
/**
 * How long after a kill a thread still inside the actor's code counts as
 * stuck (a handler busy for a moment more is not).
 */
export const STUCK_AFTER_MS = 500;

/** One CPU actor: shared memory plus the Worker running its loop. */
export class CpuActorHost implements ActorHost {
  readonly control: ControlBlockView;
  readonly telemetry: TelemetryView;
  readonly inputRing: Ring;
  readonly input: RingProducer;
  readonly outputRing: Ring;
  readonly output: RingConsumer;
  readonly inboxRing: Ring;
  /** The actor's memory block. */
  readonly memory: SharedArrayBuffer;
  /** Offsets within {@linkcode CpuActorHost.memory}. */
  readonly plan: ActorMemoryPlan;
  readonly #spec: ActorSpawnSpec;
  readonly #events: ActorHostEvents;
  readonly #routes: () => RouteEntry[];
  readonly #words: Int32Array;
  #worker: Worker | undefined;
  #generation = 0;
  /** The snapshot to restore at the first start (dropped once it ran). */
  #restore: RestoreSpec | undefined;
  /** Snapshot requests waiting for the loop's answer. */
  readonly #snapshots = new Map<
    number,
    (answer: { bytes?: Uint8Array; error?: SerializedError }) => void
  >();
  #nextSnapshot = 1;
  readonly #stuck: StuckThread[] = [];

  /** Lays out the actor's memory; {@linkcode CpuActorHost.start} runs it. */
  /** The backend's count of running actors (`StartMessage.load`). */
  readonly #load: SharedArrayBuffer;
  readonly #loadWords: Int32Array;

  constructor(
    spec: ActorSpawnSpec,
    events: ActorHostEvents,
    routes: () => RouteEntry[],
    load: SharedArrayBuffer = new SharedArrayBuffer(4),
  ) {
    this.#load = load;
    this.#loadWords = new Int32Array(load);
    this.#spec = spec;
    this.#restore = spec.restore;
    this.#events = events;
    this.#routes = routes;
    this.plan = planActorMemory(spec.queue);
    this.memory = new SharedArrayBuffer(this.plan.byteLength);
    const { plan, memory } = this;
    this.control = new ControlBlockView(memory, plan.control);
    this.control.initialise({ abiVersion: ABI_VERSION, actorId: spec.id });
    this.telemetry = new TelemetryView(memory, { byteOffset: plan.telemetry });
    this.telemetry.reset();
    this.#words = new Int32Array(memory, plan.worker, WORKER_WORD_COUNT);
    const slotSize = plan.slotSize;
    this.inputRing = Ring.create(memory, {
      byteOffset: plan.input,
      capacity: plan.queueCapacity,
      slotSize,
      kind: "spsc",
    });
    this.inboxRing = Ring.create(memory, {
      byteOffset: plan.inbox,
      capacity: plan.queueCapacity,
      slotSize,
      kind: "mpsc",
    });
    this.outputRing = Ring.create(memory, {
      byteOffset: plan.output,
      capacity: plan.outputCapacity,
      slotSize,
      kind: "spsc",
    });
    this.input = this.inputRing.producer();
    this.output = this.outputRing.consumer();
  }

  /** This actor's entry in other actors' routing tables. */
  route(): RouteEntry {
    return {
      name: this.#spec.name,
      id: this.#spec.id,
      memory: this.memory,
      plan: this.plan,
    };
  }

  /** See {@linkcode ActorHost.restoreOnNextStart}. */
  restoreOnNextStart(restore: RestoreSpec | undefined): void {
    this.#restore = restore;
  }

  start(timeoutMs: number): Promise<void> {
    if (this.#worker !== undefined) {
      throw new RingKernelError(
        `actor "${this.#spec.name}" is already running`,
      );
    }
    const generation = ++this.#generation;
    Atomics.store(this.#words, WorkerWord.generation, generation);
    Atomics.store(this.#words, WorkerWord.taken, takenWord(generation, 0));
    Atomics.store(this.#words, WorkerWord.busy, busyIdle(generation));
    // A fresh Worker has handled no host message yet.
    Atomics.store(this.#words, WorkerWord.mailbox, 0);
    this.control.hasTerminated = 0;
    const { maxHeapMb } = this.#spec;
    const worker = new Worker(WORKER_ENTRY, {
      name: `ringkernel:${this.#spec.name}`,
      // Even empty, resourceLimits makes Deno end the Worker alone when its
      // heap runs out (the default limit), instead of aborting the process.
      // Bun ignores them.
      resourceLimits: maxHeapMb === undefined
        ? {}
        : { maxOldGenerationSizeMb: maxHeapMb },
    });
    this.#worker = worker;
    return new Promise<void>((resolve, reject) => {
      let started = false;
      const timer = setTimeout(() => {
        if (started) return;
        started = true;
        this.kill();
        reject(
          new TimeoutError(`starting actor "${this.#spec.name}"`, timeoutMs),
        );
      }, timeoutMs);
      /** The Worker failed or ended before it ran: the start fails. */
      const failStart = (error: SerializedError): boolean => {
        if (started) return false;
        started = true;
        clearTimeout(timer);
        this.#worker = undefined;
        void worker.terminate().catch(() => {});
        reject(
          new RingKernelError(
            `actor "${this.#spec.name}" failed to start: ${error.message}`,
          ),
        );
        return true;
      };
      worker.on("message", (message: WorkerToHost) => {
        if (this.#worker !== worker) return;
        if (!started) {
          if (message.kind === "ready") {
            started = true;
            // Restored once: a restart calls init, unless the runtime
            // set a snapshot for it (restoreOnNextStart).
            this.#restore = undefined;
            clearTimeout(timer);
            resolve();
            return;
          }
          if (message.kind === "start-failed" || message.kind === "died") {
            failStart(message.error);
            return;
          }
        }
        this.#onWorkerMessage(worker, message);
      });
      worker.on("error", (error: unknown) => {
        if (this.#worker !== worker) return;
        const serialized = workerError(error);
        if (!failStart(serialized)) this.#died(serialized);
      });
      // A Worker the host did not stop ended on its own: a handler called
      // process.exit(), Deno.exit() or self.close(). (After its loop's own
      // exit, the host detached it when the "exited" message came, which
      // arrives before this event.)
      worker.on("exit", (code: number) => {
        if (this.#worker !== worker) return;
        const error: SerializedError = {
          name: "WorkerExited",
          message:
            `the actor's Worker ended on its own (exit code ${code}): its code called process.exit(), Deno.exit() or self.close()`,
        };
        if (!failStart(error)) this.#died(error);
      });
      // An idle actor does not keep the process alive: a wait of the host
      // (a call, a receive, a send with backpressure) holds its own timer.
      // After the listeners: Bun refs a Worker again when one is added.
      worker.unref();
      Atomics.add(this.#words, WorkerWord.mailbox, 1);
      try {
        worker.postMessage({
          kind: "start",
          name: this.#spec.name,
          id: this.#spec.id,
          generation,
          memory: this.memory,
          plan: this.plan,
          module: this.#spec.module,
          exportName: this.#spec.exportName,
          config: this.#spec.config,
          restore: this.#restore,
          routes: this.#routes(),
          idleSpinMicros: this.#spec.idleSpinMicros,
          load: this.#load,
          batchSize: this.#spec.batchSize,
          maxSkewMs: this.#spec.maxSkewMs ?? DEFAULT_MAX_SKEW_MS,
        });
      } catch (error) {
        // Nothing may outlive a start that failed: the timer and the Worker go.
        failStart(workerError(error));
      }
    });
  }

  #onWorkerMessage(worker: Worker, message: WorkerToHost): void {
    switch (message.kind) {
      case "dead-letter":
        this.#events.onDeadLetter(
          message.reason,
          message.detail,
          message.slot,
          false,
        );
        break;
      case "crash":
        this.#events.onCrash(message.error);
        break;
      case "died":
        this.#died(message.error);
        break;
      case "publish":
        this.#events.onPublish(message.topic, message.slot);
        break;
      case "reply":
        this.#events.onReply?.(message.slot);
        break;
      case "subscribe":
      case "unsubscribe":
        this.#events.onSubscription(
          message.filter,
          message.kind === "subscribe",
        );
        break;
      case "snapshot": {
        const answer = this.#snapshots.get(message.request);
        this.#snapshots.delete(message.request);
        answer?.(message);
        break;
      }
      case "remote-send":
        this.#remoteSend(worker, message);
        break;
      case "exited":
        if (this.#worker === worker) this.#worker = undefined;
        void worker.terminate().catch(() => {});
        this.#events.onExit(message.reason);
        break;
    }
  }

  /** Forwards a K2K send to a name with no local route, and answers the loop. */
  #remoteSend(worker: Worker, message: RemoteSendRequest): void {
    const forward = this.#events.onRemoteSend;
    const sent = forward === undefined
      ? Promise.reject(new UnknownActorError(message.target))
      : forward(message.target, message.slot, message.timeoutMs);
    sent.then(
      () => undefined,
      (error: unknown) => serializeError(error),
    ).then((error) => {
      if (this.#worker !== worker) return;
      Atomics.add(this.#words, WorkerWord.mailbox, 1);
      worker.postMessage({
        kind: "remote-send-result",
        request: message.request,
        error,
      });
      this.wake();
    });
  }

  /**
   * The actor's snapshot of its state, asked of its loop (see
   * {@linkcode ActorHost.snapshot}); the runtime pauses the actor first.
   */
  snapshot(timeoutMs: number): Promise<Uint8Array> {
    const worker = this.#worker;
    if (worker === undefined) {
      return Promise.reject(
        new InvalidStateError(
          `snapshot of actor "${this.#spec.name}"`,
          "not running",
        ),
      );
    }
    const request = this.#nextSnapshot++;
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimer(() => {
        this.#snapshots.delete(request);
        reject(
          new TimeoutError(`snapshot of actor "${this.#spec.name}"`, timeoutMs),
        );
      }, timeoutMs);
      this.#snapshots.set(request, (answer) => {
        clearTimeout(timer);
        if (answer.bytes !== undefined) resolve(answer.bytes);
        else {
          reject(
            new InvalidStateError(
              `snapshot of actor "${this.#spec.name}"`,
              "failed",
              `${answer.error?.name}: ${answer.error?.message}`,
            ),
          );
        }
      });
      Atomics.add(this.#words, WorkerWord.mailbox, 1);
      worker.postMessage({ kind: "snapshot", request });
      this.wake();
    });
  }

  /** The loop's thread is gone: account for its messages, then report the crash. */
  #died(error: SerializedError): void {
    for (const inFlight of this.#kill(false)) {
      this.#events.onDeadLetter(
        "handler-error",
        `the Worker died: ${error.message}`,
        inFlight.slot,
        true,
      );
    }
    this.#events.onCrash(error);
  }

  /**
   * @internal Fault injection: kills the Worker as if its thread had died
   * (mid-message, if it was handling one) and reports it like a real death.
   */
  injectDeath(reason = "killed by fault injection"): void {
    this.#died({ name: "WorkerKilled", message: reason });
  }

  /** Whether the loop is handling a message right now. */
  get busy(): boolean {
    const busy = Atomics.load(this.#words, WorkerWord.busy);
    if (busy === BUSY_TAKEN) return false;
    return (busy & BUSY_STATE_MASK) !== BusyState.idle;
  }

  /** Sends the current routing table to the running Worker. */
  updateRoutes(routes: RouteEntry[]): void {
    const worker = this.#worker;
    if (worker === undefined) return;
    Atomics.add(this.#words, WorkerWord.mailbox, 1);
    worker.postMessage({ kind: "routes", routes });
    this.wake();
  }

  /** Whether a Worker is attached. */
  get running(): boolean {
    return this.#worker !== undefined;
  }

  /** See {@linkcode ActorHost.settleCommit}: the committed window has no waits. */
  settleCommit(): void {
    const words = this.#words;
    let deadline = 0;
    for (let polls = 1;; polls++) {
      const busy = Atomics.load(words, WorkerWord.busy);
      if (busy === BUSY_TAKEN || (busy & BusyState.committed) === 0) return;
      // The clock only now and then: most commits end within a few polls.
      if ((polls & 4095) === 0) {
        const now = performance.now();
        if (deadline === 0) deadline = now + SETTLE_COMMIT_MS;
        else if (now > deadline) return;
      }
    }
  }

  /** See {@linkcode ActorHost.spinShouldShrink}. */
  spinShouldShrink(streak: number): boolean {
    return spinShouldShrink(streak, this.#loadWords);
  }

  wake(): void {
    this.inputRing.ringDoorbell();
  }

  kill(): readonly InFlightMessage[] {
    return this.#kill(true);
  }

  /**
   * Threads of this actor that were terminated inside the actor's code and
   * were still running it {@linkcode STUCK_AFTER_MS} later (Deno only).
   */
  get stuckThreads(): readonly StuckThread[] {
    return this.#stuck;
  }

  /** Kills the loop; `alive`: its thread was running (not known to be gone). */
  #kill(alive: boolean): readonly InFlightMessage[] {
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker !== undefined) {
      void worker.terminate().catch(() => {});
      if (alive && !TERMINATE_STOPS_SYNC_CODE) {
        this.#watchStuck(this.#generation);
      }
    }
    const busy = this.#claimBusy();
    // The loop's count of the messages it holds; after the swap, a loop that
    // still runs (Deno) can neither take another nor touch a later loop's word.
    const taken = Atomics.exchange(this.#words, WorkerWord.taken, BUSY_TAKEN);
    const source = busy & (BusyState.input | BusyState.inbox);
    if (source === 0) return [];
    const ring = source === BusyState.input ? this.inputRing : this.inboxRing;
    if ((busy & BusyState.committed) !== 0) {
      this.#finishCommitted(ring);
      return [];
    }
    // The dead loop held the messages [head, head + taken) of that ring: the
    // last one in its handler, the ones before handled and not committed
    // (their replies were never published). The host takes them out so they
    // can be accounted for.
    const consumer = ring.consumer();
    const held = Math.min(
      Math.max(1, taken & 0xff),
      COMMIT_GROUP,
      consumer.available(),
    );
    const inFlight: InFlightMessage[] = [];
    for (let i = 0; i < held; i++) {
      const offset = consumer.slotOffset(i);
      inFlight.push({ slot: ring.bytes.slice(offset, offset + ring.slotSize) });
    }
    consumer.release(held);
    return inFlight;
  }

  /**
   * Takes the `busy` word from a stopping loop once the host owns it: returns
   * its state bits (which ring's head message it held, and its phase), or 0.
   * A loop that is writing a finished message's results gets a moment to end.
   */
  #claimBusy(): number {
    const words = this.#words;
    const deadline = performance.now() + COMMIT_WAIT_MS;
    for (;;) {
      const busy = Atomics.load(words, WorkerWord.busy);
      if (busy === BUSY_TAKEN) return BusyState.idle;
      const state = busy & BUSY_STATE_MASK;
      if ((state & BusyState.committed) !== 0 && performance.now() < deadline) {
        continue;
      }
      if (
        Atomics.compareExchange(words, WorkerWord.busy, busy, BUSY_TAKEN) !==
          busy
      ) continue;
      return state;
    }
  }

  /**
   * Finishes what a loop stopped inside its committed window started, by its
   * commit record ({@linkcode CommitKind}; verification/worker_kill.pml): a
   * range of processed messages whose replies are out (or that has none) is
   * counted unless the counter already moved, and released unless `head`
   * already moved; a dead letter the loop counted is released and reported
   * (the loop reports only after its release); a void slot is released.
   * Otherwise the messages stay at the head, to be handled again or
   * dead-lettered.
   */
  #finishCommitted(ring: Ring): void {
    const words = this.#words;
    const kind = Atomics.load(words, WorkerWord.commitKind);
    const count = Atomics.load(words, WorkerWord.commitCount) >>> 0;
    const messages = kind === CommitKind.reply || kind === CommitKind.noReply
      ? Atomics.load(words, WorkerWord.commitMessages)
      : 1;
    const consumer = ring.consumer();
    const atHead = () =>
      ring.headIndex() === Atomics.load(words, WorkerWord.commitHead) >>> 0 &&
      consumer.available() >= messages;
    if (!(messages >= 1 && messages <= COMMIT_GROUP)) return;
    switch (kind) {
      case CommitKind.reply:
      case CommitKind.noReply:
        // The replies are published in one store of the tail: all or none.
        if (
          kind === CommitKind.reply &&
          this.outputRing.endIndex() ===
            Atomics.load(words, WorkerWord.commitReply) >>> 0
        ) return;
        if (this.control.messagesProcessedLow === count) {
          this.control.addProcessed(messages);
        }
        if (atHead()) consumer.release(messages);
        return;
      case CommitKind.handlerError:
      case CommitKind.invalidMessage: {
        if (this.telemetry.messagesDroppedLow === count || !atHead()) return;
        const offset = consumer.slotOffset(0);
        const slot = ring.bytes.slice(offset, offset + ring.slotSize);
        consumer.release(1);
        this.#events.onDeadLetter(
          kind === CommitKind.handlerError
            ? "handler-error"
            : "invalid-message",
          "the actor stopped before it reported this dead letter",
          slot,
          false,
        );
        return;
      }
      case CommitKind.voidSlot:
        if (atHead()) consumer.release(1);
        return;
    }
  }

  /**
   * Deno's `terminate()` cannot stop a thread inside synchronous JavaScript:
   * a loop killed while it ran the actor's code (its generation in
   * `WorkerWord.userCode`) and still running it a while later is stuck
   * there, keeping a CPU busy and the process alive. Reports it.
   */
  #watchStuck(generation: number): void {
    const words = this.#words;
    if (Atomics.load(words, WorkerWord.userCode) !== generation) return;
    setTimer(() => {
      if (Atomics.load(words, WorkerWord.userCode) !== generation) return;
      const thread: StuckThread = {
        actor: this.#spec.name,
        generation,
        afterMs: STUCK_AFTER_MS,
        message:
          `actor "${this.#spec.name}": its Worker was terminated while it ran the actor's code (a handler or init), and ${STUCK_AFTER_MS} ms later that thread still runs it. Deno cannot interrupt synchronous JavaScript in a Worker: the thread keeps a CPU busy until that code returns, and the process cannot exit on its own meanwhile; Deno.exit() ends it.`,
      };
      this.#stuck.push(thread);
      if (this.#events.onStuck !== undefined) this.#events.onStuck(thread);
      else console.warn(`ringkernel: ${thread.message}`);
    }, STUCK_AFTER_MS).unref();
  }

  dispose(): void {
    this.kill();
  }
}

/** What a Worker's `error` event carries, as a {@linkcode SerializedError}. */
function workerError(error: unknown): SerializedError {
  if (error instanceof Error || typeof error === "object" && error !== null) {
    const { name, message, code } = error as {
      name?: unknown;
      message?: unknown;
      code?: unknown;
    };
    if (code === "ERR_WORKER_OUT_OF_MEMORY") {
      return {
        name: "WorkerOutOfMemory",
        message: `the actor's Worker ran out of memory (${String(message)})`,
      };
    }
    return {
      name: typeof name === "string" ? name : "WorkerError",
      message: typeof message === "string"
        ? message
        : "the actor's Worker failed",
    };
  }
  return { name: "WorkerError", message: String(error) };
}
