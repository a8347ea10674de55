/**
 * Checks for option values and deadlines: each returns the value when it is
 * valid and throws an {@linkcode InvalidOptionError} naming the option when it
 * is not, so no option is accepted without a check.
 *
 * @module
 */

import { InvalidOptionError } from "./errors.ts";

/** The longest deadline a timer can hold (about 24.8 days). */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * A deadline in milliseconds: a finite number in `0 .. MAX_TIMEOUT_MS`
 * (`0` means "do not wait"), or `fallback` when `undefined`.
 */
export function checkTimeoutMs(
  option: string,
  value: unknown,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  if (
    typeof value !== "number" || !Number.isFinite(value) || value < 0 ||
    value > MAX_TIMEOUT_MS
  ) {
    throw new InvalidOptionError(
      option,
      value,
      `a finite number of milliseconds in 0..${MAX_TIMEOUT_MS}`,
    );
  }
  return value;
}

/** An integer in `min .. max`, or `fallback` when `undefined`. */
export function checkInteger(
  option: string,
  value: unknown,
  range: { min: number; max: number; fallback: number },
): number {
  if (value === undefined) return range.fallback;
  if (
    typeof value !== "number" || !Number.isInteger(value) ||
    value < range.min || value > range.max
  ) {
    throw new InvalidOptionError(
      option,
      value,
      `an integer in ${range.min}..${range.max}`,
    );
  }
  return value;
}

/** A boolean, or `fallback` when `undefined`. */
export function checkBoolean(
  option: string,
  value: unknown,
  fallback: boolean,
): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") {
    throw new InvalidOptionError(option, value, "true or false");
  }
  return value;
}

/** One of `choices`, or `fallback` when `undefined`. */
export function checkChoice<const T extends string>(
  option: string,
  value: unknown,
  choices: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (typeof value !== "string" || !choices.includes(value as T)) {
    throw new InvalidOptionError(
      option,
      value,
      `one of ${choices.map((c) => JSON.stringify(c)).join(", ")}`,
    );
  }
  return value as T;
}

/** An `AbortSignal` or `undefined`. */
export function checkSignal(
  option: string,
  value: unknown,
): AbortSignal | undefined {
  if (value === undefined || value instanceof AbortSignal) return value;
  throw new InvalidOptionError(option, value, "an AbortSignal");
}

/** An object of options, or `{}` when `undefined`. */
export function checkOptionsObject<T extends object>(
  option: string,
  value: unknown,
): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new InvalidOptionError(option, value, "an object of options");
  }
  return value as Partial<T>;
}

/** The options every wait takes. */
export interface WaitOptionValues {
  /** The deadline in milliseconds. */
  readonly timeoutMs: number;
  /** The signal that cuts the wait short, if any. */
  readonly signal: AbortSignal | undefined;
}

/**
 * The options of a wait (`{ timeoutMs, signal }`), checked: `fallbackMs`
 * when no deadline is given. Whether the signal has already aborted is left
 * to the caller, which may have other refusals to make first.
 */
export function checkWaitOptions(
  options: unknown,
  fallbackMs: number,
): WaitOptionValues {
  const o = checkOptionsObject<{ timeoutMs: number; signal: AbortSignal }>(
    "options",
    options,
  );
  return {
    timeoutMs: checkTimeoutMs("timeoutMs", o.timeoutMs, fallbackMs),
    signal: checkSignal("signal", o.signal),
  };
}
