/**
 * Small async helpers: cancellable delays, deadlines, retry with backoff, and
 * a spin-then-backoff poll for memory that cannot be waited on (queues in
 * FFI-mapped memory, where `Atomics.wait` is not available).
 *
 * Every wait here has a deadline or an abort signal; nothing waits forever
 * unless the caller explicitly passes `Infinity`.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { TimeoutError } from "./errors.ts";

/** Default deadline, in milliseconds, for library waits that are not given one. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** Options of {@linkcode delay}. */
export interface DelayOptions {
  /** Aborting rejects the delay with the signal's reason and clears its timer. */
  signal?: AbortSignal;
}

/**
 * Resolves after `ms` milliseconds, or rejects with `signal.reason` as soon as
 * the signal aborts (immediately if it already has).
 */
export function delay(ms: number, options: DelayOptions = {}): Promise<void> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Options of {@linkcode deadline}. */
export interface DeadlineOptions {
  /** What is being waited for; names the operation in the {@linkcode TimeoutError}. */
  what?: string;
}

/**
 * Settles like `promise`, unless `ms` milliseconds pass first: then rejects
 * with a {@linkcode TimeoutError}. The timer is cleared either way. The
 * original promise is not cancelled (promises cannot be); its eventual
 * rejection is observed so it is never reported as unhandled.
 */
export function deadline<T>(
  promise: PromiseLike<T>,
  ms: number,
  options: DeadlineOptions = {},
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new TimeoutError(options.what ?? "operation", ms)),
      Math.max(0, ms),
    );
    Promise.resolve(promise).then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Options of {@linkcode retry}. */
export interface RetryOptions {
  /** Total attempts including the first (default 5). */
  maxAttempts?: number;
  /** Delay after the first failure, in ms (default 10). */
  minDelayMs?: number;
  /** Upper bound of any delay, in ms (default 1000). */
  maxDelayMs?: number;
  /** Growth factor of the delay per failure (default 2). */
  multiplier?: number;
  /**
   * Fraction of each delay that is randomised, 0..1 (default 0.1): the delay
   * becomes `d * (1 - jitter * random())`, which spreads retrying callers apart.
   */
  jitter?: number;
  /** Return false to stop retrying and rethrow `error` at once. */
  shouldRetry?: (error: unknown, attempt: number) => boolean;
  /** Aborting stops retrying and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Source of randomness in [0, 1) for the jitter (default `Math.random`). */
  random?: () => number;
}

/**
 * The delay, in ms, that {@linkcode retry} waits after failed attempt number
 * `attempt` (1-based), before jitter: `min(maxDelayMs, minDelayMs * multiplier^(attempt-1))`.
 */
export function backoffDelayMs(
  attempt: number,
  options: Pick<RetryOptions, "minDelayMs" | "maxDelayMs" | "multiplier"> = {},
): number {
  const { minDelayMs = 10, maxDelayMs = 1000, multiplier = 2 } = options;
  return Math.min(maxDelayMs, minDelayMs * multiplier ** (attempt - 1));
}

/**
 * Calls `fn` until it succeeds, at most `maxAttempts` times, waiting an
 * exponentially growing, jittered delay between attempts. Rejects with the last
 * error when the attempts run out (or at once when `shouldRetry` says no).
 */
export async function retry<T>(
  fn: (attempt: number) => T | PromiseLike<T>,
  options: RetryOptions = {},
): Promise<T> {
  const {
    maxAttempts = 5,
    jitter = 0.1,
    shouldRetry,
    signal,
    random = Math.random,
  } = options;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new RangeError(
      `maxAttempts must be an integer >= 1, got ${maxAttempts}`,
    );
  }
  if (!(jitter >= 0 && jitter <= 1)) {
    throw new RangeError(`jitter must be within 0..1, got ${jitter}`);
  }
  for (let attempt = 1;; attempt++) {
    if (signal?.aborted) throw signal.reason;
    try {
      return await fn(attempt);
    } catch (error) {
      if (
        attempt >= maxAttempts || (shouldRetry && !shouldRetry(error, attempt))
      ) {
        throw error;
      }
      const base = backoffDelayMs(attempt, options);
      await delay(base * (1 - jitter * random()), { signal });
    }
  }
}

/** Options of {@linkcode pollUntil}. */
export interface PollOptions {
  /** Give up after this many ms with a {@linkcode TimeoutError} (default {@linkcode DEFAULT_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** Synchronous polls before the first yield to the event loop (default 64). */
  spin?: number;
  /** Polls that yield with `setImmediate` before timers are used (default 32). */
  yields?: number;
  /** First timer delay, in ms, once yielding is not enough (default 0.5). */
  minDelayMs?: number;
  /** Largest timer delay, in ms (default 4). */
  maxDelayMs?: number;
  /** Aborting rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Names the wait in the {@linkcode TimeoutError} (default "poll"). */
  what?: string;
}

function yieldImmediate(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Calls `predicate` until it returns a truthy value and resolves with that
 * value. It first spins (`spin` synchronous calls: the cheapest way to catch
 * a value that is about to arrive), then yields to the event loop with
 * `setImmediate`, then sleeps with timers whose delay doubles from
 * `minDelayMs` to `maxDelayMs`. Rejects with {@linkcode TimeoutError} after
 * `timeoutMs`, or with the signal's reason on abort. Errors thrown by the
 * predicate reject the poll.
 */
export async function pollUntil<T>(
  predicate: () => T,
  options: PollOptions = {},
): Promise<T> {
  const {
    timeoutMs = DEFAULT_TIMEOUT_MS,
    spin = 64,
    yields = 32,
    minDelayMs = 0.5,
    maxDelayMs = 4,
    signal,
    what = "poll",
  } = options;
  for (let i = 0; i < spin; i++) {
    const value = predicate();
    if (value) return value;
  }
  if (signal?.aborted) throw signal.reason;
  const start = performance.now();
  let sleepMs = minDelayMs;
  for (let round = 0;; round++) {
    const elapsed = performance.now() - start;
    if (elapsed >= timeoutMs) {
      const value = predicate();
      if (value) return value;
      throw new TimeoutError(what, timeoutMs);
    }
    if (round < yields) {
      await yieldImmediate();
    } else {
      await delay(Math.min(sleepMs, timeoutMs - elapsed), { signal });
      sleepMs = Math.min(maxDelayMs, sleepMs * 2);
    }
    if (signal?.aborted) throw signal.reason;
    const value = predicate();
    if (value) return value;
  }
}

let sleepWord: Int32Array | undefined;

/**
 * Blocks the calling thread for about `ms` milliseconds (fractions allowed)
 * without burning CPU, using `Atomics.wait` on a private shared word. Meant
 * for Worker loops that poll memory they cannot wait on; throws where the
 * host forbids blocking (e.g. a browser's main thread).
 */
export function sleepSync(ms: number): void {
  sleepWord ??= new Int32Array(new SharedArrayBuffer(4));
  Atomics.wait(sleepWord, 0, 0, Math.max(0, ms));
}

/**
 * Settles as `done` does, unless `signal` aborts first: then `cut()` runs (to
 * make `done` end soon) and the result rejects with `signal.reason` once
 * `done` has settled, so nothing is left running behind the rejection.
 */
export function abortable(
  done: Promise<void>,
  signal: AbortSignal,
  cut: () => void,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let aborted = false;
    const onAbort = () => {
      aborted = true;
      cut();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    done.then(() => {
      signal.removeEventListener("abort", onAbort);
      if (aborted) reject(signal.reason);
      else resolve();
    }, (error: unknown) => {
      signal.removeEventListener("abort", onAbort);
      reject(error);
    });
  });
}

/** A wait that another party settles: its resolve and reject. */
export interface SettledWaiter<T> {
  /** Settles it with a value. */
  resolve(value: T): void;
  /** Settles it with an error. */
  reject(error: unknown): void;
}

/**
 * Ties a waiter to `signal`: on abort, `withdraw()` takes the waiter out of
 * whatever holds it (returning false when it has already been settled) and
 * the waiter rejects with `signal.reason`; settling it first removes the
 * listener. Replaces the waiter's `resolve` and `reject`.
 */
export function bindSignal<T>(
  waiter: SettledWaiter<T>,
  signal: AbortSignal,
  withdraw: () => boolean,
): void {
  const { resolve, reject } = waiter;
  const onAbort = () => {
    if (withdraw()) reject(signal.reason);
  };
  signal.addEventListener("abort", onAbort, { once: true });
  waiter.resolve = (value) => {
    signal.removeEventListener("abort", onAbort);
    resolve(value);
  };
  waiter.reject = (error) => {
    signal.removeEventListener("abort", onAbort);
    reject(error);
  };
}
