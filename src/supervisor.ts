/**
 * Supervision policy: whether, and after how long, a failed actor is restarted.
 *
 * Pure and deterministic: the {@linkcode Supervisor} only decides; the runtime
 * performs the restart. Time comes from an injectable clock.
 *
 * Rules, per child and its {@linkcode RestartPolicy}:
 * - `strategy: "never"` gives up on the first failure.
 * - `strategy: "one-for-one"` restarts the failed child alone, unless it was
 *   already restarted `maxRestarts` times within the last `withinMs`
 *   (a sliding window); then the supervisor gives up on it for good.
 * - The n-th consecutive restart waits
 *   `min(backoff.maxMs, backoff.initialMs * backoff.multiplier ** (n - 1))`.
 * - A child that ran for at least `withinMs` since its last (re)start before
 *   failing is considered to have been stable: its history is cleared, so the
 *   next restart is attempt 1 with the initial delay. The start time is the
 *   moment the restart was decided plus its delay, unless the runtime reports
 *   the real one with {@linkcode Supervisor.started}.
 *
 * @module
 */

import { RingKernelError } from "./errors.ts";

/** How a failed child is treated: restarted alone, or never restarted. */
export type RestartStrategy = "one-for-one" | "never";

/** Exponential backoff between restarts. */
export interface BackoffPolicy {
  /** Delay before the first restart, in ms (≥ 0). */
  readonly initialMs: number;
  /** Largest delay, in ms (≥ `initialMs`). */
  readonly maxMs: number;
  /** Growth factor from one restart to the next (≥ 1). */
  readonly multiplier: number;
}

/** A complete restart policy. */
export interface RestartPolicy {
  /** See {@linkcode RestartStrategy}. */
  readonly strategy: RestartStrategy;
  /** Restarts allowed within `withinMs` before giving up (integer ≥ 0, or Infinity). */
  readonly maxRestarts: number;
  /** Length of the sliding window, in ms (> 0, may be Infinity). */
  readonly withinMs: number;
  /** Delay between restarts. */
  readonly backoff: BackoffPolicy;
}

/** A restart policy; missing fields take the defaults. */
export interface RestartPolicyOptions {
  /** See {@linkcode RestartStrategy}. Default "one-for-one". */
  strategy?: RestartStrategy;
  /**
   * Restarts allowed within `withinMs` before giving up (integer ≥ 0, or
   * Infinity). Default 3.
   */
  maxRestarts?: number;
  /** Length of the sliding window, in ms (> 0, may be Infinity). Default 5000. */
  withinMs?: number;
  /** Delay between restarts. Default 10 ms, ×2, up to 1000 ms. */
  backoff?: Partial<BackoffPolicy>;
}

/** The policy used when none is given. */
export const DEFAULT_RESTART_POLICY: RestartPolicy = Object.freeze({
  strategy: "one-for-one",
  maxRestarts: 3,
  withinMs: 5000,
  backoff: Object.freeze({ initialMs: 10, maxMs: 1000, multiplier: 2 }),
});

function invalid(field: string, expected: string, value: unknown): never {
  throw new RingKernelError(
    `invalid restart policy: ${field} must be ${expected}, got ${
      typeof value === "string" ? JSON.stringify(value) : String(value)
    }`,
  );
}

/**
 * Fills in defaults and checks a policy.
 *
 * @throws {RingKernelError} when a field is out of range.
 */
export function resolveRestartPolicy(
  options: RestartPolicyOptions = {},
): RestartPolicy {
  const base = DEFAULT_RESTART_POLICY;
  const strategy = options.strategy ?? base.strategy;
  if (strategy !== "one-for-one" && strategy !== "never") {
    invalid("strategy", '"one-for-one" or "never"', strategy);
  }
  const maxRestarts = options.maxRestarts ?? base.maxRestarts;
  if (
    !(Number.isSafeInteger(maxRestarts) && maxRestarts >= 0) &&
    maxRestarts !== Infinity
  ) {
    invalid("maxRestarts", "an integer ≥ 0 or Infinity", maxRestarts);
  }
  const withinMs = options.withinMs ?? base.withinMs;
  if (typeof withinMs !== "number" || !(withinMs > 0)) {
    invalid("withinMs", "a number > 0", withinMs);
  }
  const initialMs = options.backoff?.initialMs ?? base.backoff.initialMs;
  if (
    typeof initialMs !== "number" || !(initialMs >= 0 && initialMs < Infinity)
  ) {
    invalid("backoff.initialMs", "a finite number ≥ 0", initialMs);
  }
  const maxMs = options.backoff?.maxMs ??
    Math.max(base.backoff.maxMs, initialMs);
  if (typeof maxMs !== "number" || !(maxMs >= initialMs && maxMs < Infinity)) {
    invalid(
      "backoff.maxMs",
      `a finite number ≥ initialMs (${initialMs})`,
      maxMs,
    );
  }
  const multiplier = options.backoff?.multiplier ?? base.backoff.multiplier;
  if (
    typeof multiplier !== "number" ||
    !(multiplier >= 1 && multiplier < Infinity)
  ) {
    invalid("backoff.multiplier", "a finite number ≥ 1", multiplier);
  }
  return Object.freeze({
    strategy,
    maxRestarts,
    withinMs,
    backoff: Object.freeze({ initialMs, maxMs, multiplier }),
  });
}

/**
 * Delay before restart number `attempt` (1-based) under `backoff`.
 *
 * @throws {RingKernelError} when `attempt` is not an integer ≥ 1.
 */
export function restartDelayMs(
  backoff: BackoffPolicy,
  attempt: number,
): number {
  if (!Number.isSafeInteger(attempt) || attempt < 1) {
    throw new RingKernelError(`attempt must be an integer ≥ 1, got ${attempt}`);
  }
  if (backoff.initialMs === 0) return 0;
  const delay = backoff.initialMs * backoff.multiplier ** (attempt - 1);
  return delay < backoff.maxMs ? delay : backoff.maxMs;
}

/** What to do about one failure. */
export type SupervisorDecision =
  | {
    /** Restart the child after `delayMs`. */
    readonly action: "restart";
    /** Delay before restarting, in ms. */
    readonly delayMs: number;
    /** Consecutive restart number, from 1 (reset after a stable run). */
    readonly attempt: number;
  }
  | {
    /** Do not restart the child; it stays down. */
    readonly action: "give-up";
    /** Why, in words. */
    readonly reason: string;
  };

/** Reported to {@linkcode SupervisorOptions.onEvent} for every failure. */
export interface SupervisorEvent {
  /** The failed child's name. */
  readonly child: string;
  /** What it failed with. */
  readonly error: unknown;
  /** What the supervisor decided. */
  readonly decision: SupervisorDecision;
  /** When, from the supervisor's clock. */
  readonly timestamp: number;
}

/** What the supervisor remembers about one child. */
export interface ChildHistory {
  /** Times of the restarts still inside the sliding window, oldest first. */
  readonly restartTimes: readonly number[];
  /** Consecutive restarts since the last stable run. */
  readonly attempt: number;
  /** When the child last (re)started, if known. */
  readonly startedAt: number | undefined;
  /** Whether the supervisor gave up on it. */
  readonly gaveUp: boolean;
}

/** Options of the {@linkcode Supervisor} constructor. */
export interface SupervisorOptions {
  /** Policy for children without their own. Default {@linkcode DEFAULT_RESTART_POLICY}. */
  policy?: RestartPolicyOptions;
  /** Clock in ms. Default `performance.now` (monotonic). */
  clock?: () => number;
  /** Called with every decision. */
  onEvent?: (event: SupervisorEvent) => void;
  /**
   * Receives errors thrown by `onEvent`, which never change a decision.
   * Defaults to writing them to `console.error`.
   */
  onEventError?: (error: unknown, event: SupervisorEvent) => void;
}

interface ChildState {
  policy: RestartPolicy | undefined;
  restartTimes: number[];
  attempt: number;
  startedAt: number | undefined;
  gaveUp: boolean;
}

function checkChild(child: string): void {
  if (typeof child !== "string" || child.length === 0) {
    throw new RingKernelError(
      `child must be a non-empty string, got ${JSON.stringify(child)}`,
    );
  }
}

function defaultEventError(error: unknown): void {
  console.error("supervisor onEvent hook failed:", error);
}

/** Decides restarts for named children; see the module doc for the rules. */
export class Supervisor {
  /** The policy of children without their own. */
  readonly policy: RestartPolicy;
  readonly #clock: () => number;
  readonly #onEvent: ((event: SupervisorEvent) => void) | undefined;
  readonly #onEventError: (error: unknown, event: SupervisorEvent) => void;
  readonly #children = new Map<string, ChildState>();

  /**
   * Creates a supervisor with no history.
   *
   * @throws {RingKernelError} when `options.policy` is invalid.
   */
  constructor(options: SupervisorOptions = {}) {
    this.policy = resolveRestartPolicy(options.policy);
    this.#clock = options.clock ?? (() => performance.now());
    this.#onEvent = options.onEvent;
    this.#onEventError = options.onEventError ?? defaultEventError;
  }

  #state(child: string): ChildState {
    let state = this.#children.get(child);
    if (state === undefined) {
      state = {
        policy: undefined,
        restartTimes: [],
        attempt: 0,
        startedAt: undefined,
        gaveUp: false,
      };
      this.#children.set(child, state);
    }
    return state;
  }

  /**
   * Gives `child` its own policy (or back the default with `undefined`).
   *
   * @throws {RingKernelError} when the child name or the policy is invalid.
   */
  setPolicy(child: string, policy: RestartPolicyOptions | undefined): void {
    checkChild(child);
    const resolved = policy === undefined
      ? undefined
      : resolveRestartPolicy(policy);
    this.#state(child).policy = resolved;
  }

  /** The policy that applies to `child`. */
  policyOf(child: string): RestartPolicy {
    return this.#children.get(child)?.policy ?? this.policy;
  }

  /**
   * Notes that `child` (re)started running at `at` (default: now). Optional:
   * without it the start time is taken to be the restart decision plus its
   * delay.
   *
   * @throws {RingKernelError} when the child name is invalid.
   */
  started(child: string, at: number = this.#clock()): void {
    checkChild(child);
    this.#state(child).startedAt = at;
  }

  /**
   * Decides what to do about a failure of `child` now, records it, and
   * reports it to `onEvent`.
   *
   * @throws {RingKernelError} when the child name is invalid.
   */
  onFailure(child: string, error: unknown): SupervisorDecision {
    checkChild(child);
    const now = this.#clock();
    const state = this.#state(child);
    const policy = state.policy ?? this.policy;
    const decision = this.#decide(state, policy, now);
    const event: SupervisorEvent = { child, error, decision, timestamp: now };
    if (this.#onEvent !== undefined) {
      try {
        this.#onEvent(event);
      } catch (hookError) {
        this.#onEventError(hookError, event);
      }
    }
    return decision;
  }

  #decide(
    state: ChildState,
    policy: RestartPolicy,
    now: number,
  ): SupervisorDecision {
    if (state.gaveUp) {
      return {
        action: "give-up",
        reason: "the supervisor already gave up on this child",
      };
    }
    if (policy.strategy === "never") {
      state.gaveUp = true;
      return { action: "give-up", reason: 'the restart strategy is "never"' };
    }
    const { withinMs, maxRestarts } = policy;
    if (state.startedAt !== undefined && now - state.startedAt >= withinMs) {
      // It ran stably for a whole window: start afresh.
      state.restartTimes = [];
      state.attempt = 0;
    }
    const times = state.restartTimes;
    let expired = 0;
    while (expired < times.length && now - times[expired] >= withinMs) {
      expired++;
    }
    if (expired > 0) times.splice(0, expired);
    if (times.length >= maxRestarts) {
      state.gaveUp = true;
      return {
        action: "give-up",
        reason: `${times.length} restart${
          times.length === 1 ? "" : "s"
        } within ${withinMs} ms reached the limit of ${maxRestarts}`,
      };
    }
    const attempt = state.attempt + 1;
    const delayMs = restartDelayMs(policy.backoff, attempt);
    state.attempt = attempt;
    times.push(now);
    state.startedAt = now + delayMs;
    return { action: "restart", delayMs, attempt };
  }

  /** What the supervisor remembers about `child`, or `undefined` if nothing. */
  history(child: string): ChildHistory | undefined {
    const state = this.#children.get(child);
    if (state === undefined) return undefined;
    return {
      restartTimes: state.restartTimes.slice(),
      attempt: state.attempt,
      startedAt: state.startedAt,
      gaveUp: state.gaveUp,
    };
  }

  /**
   * Clears the failure history of `child` (also after a give-up), keeping its
   * policy, so it may be supervised afresh.
   */
  reset(child: string): void {
    const state = this.#children.get(child);
    if (state === undefined) return;
    state.restartTimes = [];
    state.attempt = 0;
    state.startedAt = undefined;
    state.gaveUp = false;
  }

  /** Forgets `child` entirely, its policy included. */
  remove(child: string): boolean {
    return this.#children.delete(child);
  }

  /** Names of the children the supervisor knows about. */
  children(): string[] {
    return Array.from(this.#children.keys());
  }
}
