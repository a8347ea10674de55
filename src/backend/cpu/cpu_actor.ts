/**
 * The host side of one CPU actor: its memory block (a SharedArrayBuffer with
 * the same control block, telemetry and ring layouts as a GPU actor) and the
 * Worker that runs its loop.
 *
 * @module
 */

import { ControlBlockView } from "../../control_block.ts";
import { RingKernelError, TimeoutError } from "../../errors.ts";
import { ABI_VERSION } from "../../layout.ts";
import { Ring, type RingConsumer, type RingProducer } from "../../ring.ts";
import { TelemetryView } from "../../telemetry.ts";
import {
  type ActorMemoryPlan,
  BUSY_STATE_MASK,
  BUSY_TAKEN,
  busyIdle,
  BusyState,
  CommitKind,
  planActorMemory,
  WorkerWord,
} from "../actor_memory.ts";
import type {
  ActorHost,
  ActorHostEvents,
  ActorSpawnSpec,
  InFlightMessage,
} from "../backend.ts";
import type { RouteEntry, SerializedError, WorkerToHost } from "./protocol.ts";

const WORKER_URL = new URL("./actor_worker.ts", import.meta.url);
/** How long a kill waits for a loop that committed a message to finish it (no waits inside). */
const COMMIT_WAIT_MS = 100;

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

  /** Lays out the actor's memory; {@linkcode CpuActorHost.start} runs it. */
  constructor(
    spec: ActorSpawnSpec,
    events: ActorHostEvents,
    routes: () => RouteEntry[],
  ) {
    this.#spec = spec;
    this.#events = events;
    this.#routes = routes;
    this.plan = planActorMemory(spec.queue);
    this.memory = new SharedArrayBuffer(this.plan.byteLength);
    const { plan, memory } = this;
    this.control = new ControlBlockView(memory, plan.control);
    this.control.initialise({ abiVersion: ABI_VERSION, actorId: spec.id });
    this.telemetry = new TelemetryView(memory, { byteOffset: plan.telemetry });
    this.telemetry.reset();
    this.#words = new Int32Array(memory, plan.worker, 8);
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

  start(timeoutMs: number): Promise<void> {
    if (this.#worker !== undefined) {
      throw new RingKernelError(
        `actor "${this.#spec.name}" is already running`,
      );
    }
    const generation = ++this.#generation;
    Atomics.store(this.#words, WorkerWord.generation, generation);
    Atomics.store(this.#words, WorkerWord.busy, busyIdle(generation));
    // A fresh Worker has handled no host message yet.
    Atomics.store(this.#words, WorkerWord.mailbox, 0);
    this.control.hasTerminated = 0;
    const worker = new Worker(WORKER_URL.href, {
      type: "module",
      name: `ringkernel:${this.#spec.name}`,
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
      worker.onmessage = (event: MessageEvent<WorkerToHost>) => {
        if (this.#worker !== worker) return;
        const message = event.data;
        if (!started) {
          if (message.kind === "ready") {
            started = true;
            clearTimeout(timer);
            resolve();
            return;
          }
          if (message.kind === "start-failed") {
            started = true;
            clearTimeout(timer);
            this.#worker = undefined;
            worker.terminate();
            reject(
              new RingKernelError(
                `actor "${this.#spec.name}" failed to start: ${message.error.message}`,
              ),
            );
            return;
          }
        }
        this.#onWorkerMessage(worker, message);
      };
      worker.onerror = (event: ErrorEvent) => {
        event.preventDefault?.();
        if (this.#worker !== worker) return;
        const error: SerializedError = {
          name: "WorkerError",
          message: event.message ?? "the actor's Worker failed",
        };
        if (!started) {
          started = true;
          clearTimeout(timer);
          this.#worker = undefined;
          worker.terminate();
          reject(
            new RingKernelError(
              `actor "${this.#spec.name}" failed to start: ${error.message}`,
            ),
          );
          return;
        }
        this.#died(error);
      };
      Atomics.add(this.#words, WorkerWord.mailbox, 1);
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
        routes: this.#routes(),
        idleSpinMicros: this.#spec.idleSpinMicros,
        batchSize: this.#spec.batchSize,
      });
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
      case "publish":
        this.#events.onPublish(message.topic, message.slot);
        break;
      case "subscribe":
      case "unsubscribe":
        this.#events.onSubscription(
          message.filter,
          message.kind === "subscribe",
        );
        break;
      case "exited":
        if (this.#worker === worker) this.#worker = undefined;
        worker.terminate();
        this.#events.onExit(message.reason);
        break;
    }
  }

  /** The loop's thread is gone: account for its message, then report the crash. */
  #died(error: SerializedError): void {
    const inFlight = this.kill();
    if (inFlight !== undefined) {
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

  wake(): void {
    this.inputRing.ringDoorbell();
  }

  kill(): InFlightMessage | undefined {
    const worker = this.#worker;
    this.#worker = undefined;
    worker?.terminate();
    const busy = this.#claimBusy();
    const source = busy & (BusyState.input | BusyState.inbox);
    if (source === 0) return undefined;
    const ring = source === BusyState.input ? this.inputRing : this.inboxRing;
    if ((busy & BusyState.committed) !== 0) {
      this.#finishCommitted(ring);
      return undefined;
    }
    // The dead loop was handling the message at the head of that ring; the
    // host takes it out so it can be accounted for.
    const consumer = ring.consumer();
    if (consumer.available() === 0) return undefined;
    const offset = consumer.slotOffset(0);
    const slot = ring.bytes.slice(offset, offset + ring.slotSize);
    consumer.release(1);
    return { slot };
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
   * processed message whose reply is out (or that has none) is counted unless
   * the counter already moved, and released unless `head` already moved; a
   * dead letter the loop counted is released and reported (the loop reports
   * only after its release); a void slot is released. Otherwise the message
   * stays at the head, to be handled again or dead-lettered.
   */
  #finishCommitted(ring: Ring): void {
    const words = this.#words;
    const kind = Atomics.load(words, WorkerWord.commitKind);
    const count = Atomics.load(words, WorkerWord.commitCount) >>> 0;
    const consumer = ring.consumer();
    const atHead = () =>
      ring.headIndex() === Atomics.load(words, WorkerWord.commitHead) >>> 0 &&
      consumer.available() > 0;
    switch (kind) {
      case CommitKind.reply:
      case CommitKind.noReply:
        if (
          kind === CommitKind.reply &&
          this.outputRing.endIndex() ===
            Atomics.load(words, WorkerWord.commitReply) >>> 0
        ) return;
        if (this.control.messagesProcessedLow === count) {
          this.control.addOneProcessed();
        }
        if (atHead()) consumer.release(1);
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

  dispose(): void {
    this.kill();
  }
}
