/**
 * A heartbeat watchdog over actors' control blocks.
 *
 * Every actor loop stamps `last_activity_ticks` in its control block: the CPU
 * loop at least every ~100 ms when idle and every ~10 ms of work, a GPU
 * actor from `%globaltimer`. An actor whose stamp stops changing — a handler
 * that never returns, a wedged resident kernel — is stale. The watchdog
 * samples the stamps and reports an actor once its stamp has not changed for
 * longer than the deadline, and again when it moves.
 *
 * Staleness is measured on the watchdog's own clock (injectable), from the
 * moment it last saw the stamp change: the ticks themselves are only compared
 * with their previous value, so actors whose clocks are in other domains
 * (a GPU timer, another thread's clock) need no conversion.
 *
 * ```ts
 * import { HeartbeatWatchdog } from "./watchdog.ts";
 * const watchdog = new HeartbeatWatchdog({
 *   deadlineMs: 1_000,
 *   onStale: (e) => console.warn(`${e.kernel}: no heartbeat for ${e.staleMs} ms`),
 * });
 * // watchdog.watch(kernel.name, kernel.host.control);
 * watchdog.start();
 * watchdog.stop();
 * ```
 *
 * @module
 */

import { clearInterval, setInterval } from "node:timers";
import { InvalidStateError } from "./errors.ts";

/** Where a heartbeat is read: a `ControlBlockView` fits. */
export interface HeartbeatSource {
  /** The actor's last heartbeat, in its own clock's ticks. */
  readonly lastActivityTicks: bigint;
  /**
   * Non-zero once the actor's loop has stopped (`TerminationState`); a
   * stopped actor's heartbeat is expected to stay still.
   */
  readonly hasTerminated?: number;
}

/** An actor whose heartbeat has not changed for longer than its deadline. */
export interface StaleHeartbeat {
  /** The watched kernel's name. */
  readonly kernel: string;
  /** How long (ms, watchdog clock) since its heartbeat last changed. */
  readonly staleMs: number;
  /** The deadline it exceeded (ms). */
  readonly deadlineMs: number;
  /** The heartbeat value that stopped changing. */
  readonly lastActivityTicks: bigint;
}

/** A stale actor's heartbeat moved again. */
export interface HeartbeatRecovered {
  /** The watched kernel's name. */
  readonly kernel: string;
  /** How long (ms, watchdog clock) the heartbeat stood still before it moved. */
  readonly stalledMs: number;
}

/** What the watchdog knows of one watched actor; see {@linkcode HeartbeatWatchdog.status}. */
export interface HeartbeatStatus {
  /** The watched kernel's name. */
  readonly kernel: string;
  /** The heartbeat value last read. */
  readonly lastActivityTicks: bigint;
  /** How long (ms, watchdog clock) since the heartbeat last changed. */
  readonly sinceChangeMs: number;
  /** Its deadline (ms). */
  readonly deadlineMs: number;
  /** Whether it is reported stale. */
  readonly stale: boolean;
  /** Whether its loop has stopped (then it is never stale). */
  readonly stopped: boolean;
}

/** Options of {@linkcode HeartbeatWatchdog}. */
export interface WatchdogOptions {
  /**
   * How long a heartbeat may stand still before its actor is stale, in ms
   * (default {@linkcode DEFAULT_HEARTBEAT_DEADLINE_MS}). Keep it well above
   * the idle heartbeat period of the actors (~100 ms on the CPU backend).
   */
  deadlineMs?: number;
  /** How often {@linkcode HeartbeatWatchdog.start} samples, in ms (default a quarter of the deadline). */
  intervalMs?: number;
  /** The watchdog's clock in ms (default `performance.now`); inject one in tests. */
  now?: () => number;
  /** Called once when an actor becomes stale. */
  onStale?: (event: StaleHeartbeat) => void;
  /** Called once when a stale actor's heartbeat moves again. */
  onRecover?: (event: HeartbeatRecovered) => void;
}

/** Options of {@linkcode HeartbeatWatchdog.watch}. */
export interface WatchOptions {
  /** This actor's deadline in ms (default: the watchdog's). */
  deadlineMs?: number;
}

/** Default deadline: ten idle heartbeat periods of a CPU actor. */
export const DEFAULT_HEARTBEAT_DEADLINE_MS = 1_000;

interface Watched {
  readonly kernel: string;
  readonly source: HeartbeatSource;
  readonly deadlineMs: number;
  ticks: bigint;
  changedAt: number;
  stale: boolean;
  stopped: boolean;
}

function checkPositive(value: number, what: string): number {
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(`${what} ${value} must be a finite number > 0`);
  }
  return value;
}

/**
 * Watches actors' heartbeats and reports the ones that stand still for
 * longer than their deadline. Drive it with {@linkcode HeartbeatWatchdog.start}
 * (a timer that does not keep the process alive) or call
 * {@linkcode HeartbeatWatchdog.check} yourself.
 */
export class HeartbeatWatchdog implements Disposable {
  /** The default deadline of watched actors, in ms. */
  readonly deadlineMs: number;
  /** The sampling period of {@linkcode HeartbeatWatchdog.start}, in ms. */
  readonly intervalMs: number;
  readonly #now: () => number;
  readonly #onStale?: (event: StaleHeartbeat) => void;
  readonly #onRecover?: (event: HeartbeatRecovered) => void;
  readonly #watched = new Map<string, Watched>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Creates a watchdog; see {@linkcode WatchdogOptions}. */
  constructor(options: WatchdogOptions = {}) {
    this.deadlineMs = checkPositive(
      options.deadlineMs ?? DEFAULT_HEARTBEAT_DEADLINE_MS,
      "watchdog deadlineMs",
    );
    this.intervalMs = checkPositive(
      options.intervalMs ?? Math.max(1, this.deadlineMs / 4),
      "watchdog intervalMs",
    );
    this.#now = options.now ?? (() => performance.now());
    this.#onStale = options.onStale;
    this.#onRecover = options.onRecover;
  }

  /**
   * Starts watching `kernel`'s heartbeat (its deadline counts from now) and
   * returns a function that stops watching it. Throws
   * {@linkcode InvalidStateError} if `kernel` is already watched.
   */
  watch(
    kernel: string,
    source: HeartbeatSource,
    options: WatchOptions = {},
  ): () => void {
    if (typeof kernel !== "string" || kernel === "") {
      throw new RangeError(`watched kernel name must be a non-empty string`);
    }
    if (this.#watched.has(kernel)) {
      throw new InvalidStateError(
        "watch",
        "watched",
        `kernel "${kernel}" is already watched`,
      );
    }
    const deadlineMs = checkPositive(
      options.deadlineMs ?? this.deadlineMs,
      `deadlineMs of "${kernel}"`,
    );
    const entry: Watched = {
      kernel,
      source,
      deadlineMs,
      ticks: source.lastActivityTicks,
      changedAt: this.#now(),
      stale: false,
      stopped: (source.hasTerminated ?? 0) !== 0,
    };
    this.#watched.set(kernel, entry);
    return () => {
      if (this.#watched.get(kernel) === entry) this.#watched.delete(kernel);
    };
  }

  /** Stops watching `kernel`; returns whether it was watched. */
  unwatch(kernel: string): boolean {
    return this.#watched.delete(kernel);
  }

  /** Names of the watched kernels. */
  get kernels(): string[] {
    return [...this.#watched.keys()];
  }

  /** What the watchdog knows of `kernel` as of its last check, or undefined if it is not watched. */
  status(kernel: string): HeartbeatStatus | undefined {
    const entry = this.#watched.get(kernel);
    if (entry === undefined) return undefined;
    return {
      kernel,
      lastActivityTicks: entry.ticks,
      sinceChangeMs: this.#now() - entry.changedAt,
      deadlineMs: entry.deadlineMs,
      stale: entry.stale,
      stopped: entry.stopped,
    };
  }

  /**
   * Samples every watched heartbeat now: calls `onStale` for each actor that
   * just became stale and `onRecover` for each stale one that moved, and
   * returns every actor that is stale now. If a callback throws, the other
   * actors are still checked and the first error is rethrown at the end.
   */
  check(): StaleHeartbeat[] {
    const now = this.#now();
    const stale: StaleHeartbeat[] = [];
    const errors: unknown[] = [];
    const call = <E>(fn: ((event: E) => void) | undefined, event: E) => {
      if (fn === undefined) return;
      try {
        fn(event);
      } catch (error) {
        errors.push(error);
      }
    };
    for (const entry of [...this.#watched.values()]) {
      const ticks = entry.source.lastActivityTicks;
      const stopped = (entry.source.hasTerminated ?? 0) !== 0;
      if (ticks !== entry.ticks || stopped !== entry.stopped) {
        const stalledMs = now - entry.changedAt;
        entry.ticks = ticks;
        entry.changedAt = now;
        entry.stopped = stopped;
        if (entry.stale) {
          entry.stale = false;
          call(this.#onRecover, { kernel: entry.kernel, stalledMs });
        }
        continue;
      }
      if (stopped) {
        // A stopped loop is silent by design; its deadline restarts if it runs again.
        entry.changedAt = now;
        entry.stale = false;
        continue;
      }
      const staleMs = now - entry.changedAt;
      if (staleMs <= entry.deadlineMs) continue;
      const event: StaleHeartbeat = {
        kernel: entry.kernel,
        staleMs,
        deadlineMs: entry.deadlineMs,
        lastActivityTicks: ticks,
      };
      stale.push(event);
      if (!entry.stale) {
        entry.stale = true;
        call(this.#onStale, event);
      }
    }
    if (errors.length > 0) throw errors[0];
    return stale;
  }

  /** Whether the sampling timer runs. */
  get running(): boolean {
    return this.#timer !== undefined;
  }

  /**
   * Samples every `intervalMs` until {@linkcode HeartbeatWatchdog.stop}. The
   * timer does not keep the process alive; an error thrown by a callback is
   * printed, and sampling goes on.
   */
  start(): this {
    if (this.#timer !== undefined) return this;
    const timer = setInterval(() => {
      try {
        this.check();
      } catch (error) {
        console.error("ringkernel: heartbeat watchdog callback failed:", error);
      }
    }, this.intervalMs);
    timer.unref?.();
    this.#timer = timer;
    return this;
  }

  /** Stops the sampling timer (watched actors stay watched). */
  stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Stops the timer. */
  [Symbol.dispose](): void {
    this.stop();
  }
}
