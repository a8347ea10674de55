/**
 * Checks of the options of `RingKernel.create` and `RingKernel.launch`: each
 * option is checked before anything is started, and a bad value throws an
 * {@linkcode InvalidOptionError} naming the option.
 *
 * @module
 */

import type { ActorModuleRef } from "./actor.ts";
import type { CudaRuntimeOptions } from "./backend/backend.ts";
import { InvalidOptionError } from "./errors.ts";
import { SLOT_TIERS } from "./layout.ts";
import {
  checkBoolean,
  checkChoice,
  checkInteger,
  checkOptionsObject,
  checkTimeoutMs,
  MAX_TIMEOUT_MS,
} from "./options.ts";
import type { RestartPolicyOptions } from "./supervisor.ts";

/** The backends `RingKernel.create` takes. */
export const BACKEND_REQUESTS = ["auto", "cpu", "cuda"] as const;

/** Largest queue capacity (slots). */
export const MAX_QUEUE_CAPACITY = 2 ** 20;

/** Largest `batchSize`: no queue holds more messages than this. */
export const MAX_BATCH_SIZE = MAX_QUEUE_CAPACITY;

/** Largest `idleSpinMicros`: one second. */
export const MAX_IDLE_SPIN_MICROS = 1_000_000;

/** Largest `deadLetterCapacity`. */
export const MAX_DEAD_LETTER_CAPACITY = 2 ** 24;

/** A function, or `undefined`. */
export function checkFunction<F>(
  option: string,
  value: unknown,
): F | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "function") {
    throw new InvalidOptionError(option, value, "a function");
  }
  return value as F;
}

/** A queue capacity: a power of two in `2 .. 2^20`, or `fallback`. */
export function checkCapacity(
  option: string,
  value: unknown,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 2 ||
    value > MAX_QUEUE_CAPACITY || (value & (value - 1)) !== 0
  ) {
    throw new InvalidOptionError(
      option,
      value,
      "a power of two in 2..2^20",
    );
  }
  return value;
}

/**
 * The slot size: `requested` (one of the slot tiers, and large enough for
 * `need` bytes) or the smallest tier that holds `need` bytes; `undefined`
 * when no tier does.
 */
export function checkSlotSize(
  requested: unknown,
  need: number,
): number | undefined {
  if (requested === undefined) return SLOT_TIERS.find((t) => t >= need);
  if (typeof requested !== "number" || !SLOT_TIERS.includes(requested)) {
    throw new InvalidOptionError(
      "slotSize",
      requested,
      `one of ${SLOT_TIERS.join(", ")}`,
    );
  }
  if (requested < need) {
    throw new InvalidOptionError(
      "slotSize",
      requested,
      `one of ${
        SLOT_TIERS.filter((t) => t >= need).join(", ") || "no tier"
      } (the actor's messages need ${need} bytes)`,
    );
  }
  return requested;
}

/** An actor: a non-empty string (a built-in's name) or `{ module, export? }`. */
export function checkActor(value: unknown): string | ActorModuleRef {
  const expected =
    `a built-in actor's name or { module: string | URL, export?: string }`;
  if (typeof value === "string") {
    if (value === "") throw new InvalidOptionError("actor", value, expected);
    return value;
  }
  if (value === null || typeof value !== "object") {
    throw new InvalidOptionError("actor", value, expected);
  }
  const ref = value as Partial<ActorModuleRef>;
  const module: unknown = ref.module;
  if (
    !(typeof module === "string" && module !== "") && !(module instanceof URL)
  ) {
    throw new InvalidOptionError("actor.module", module, "a string or a URL");
  }
  const exportName: unknown = ref.export;
  if (
    exportName !== undefined &&
    (typeof exportName !== "string" || exportName === "")
  ) {
    throw new InvalidOptionError(
      "actor.export",
      exportName,
      "a non-empty string",
    );
  }
  return ref as ActorModuleRef;
}

/**
 * A structured copy of `config`, as the actor's Worker will receive it: a
 * value that cannot be cloned (a function, a symbol, a class instance with
 * private state, …) is refused here, before anything is started.
 */
export function checkConfig(value: unknown): void {
  if (value === undefined) return;
  try {
    structuredClone(value);
  } catch (cause) {
    throw new InvalidOptionError(
      "config",
      value,
      `a structured-cloneable value (${
        cause instanceof Error ? cause.message : String(cause)
      })`,
      { cause },
    );
  }
}

/** A deadline of at least 1 ms (a start cannot take 0 ms). */
export function checkPositiveTimeoutMs(
  option: string,
  value: unknown,
  fallback: number,
): number {
  const ms = checkTimeoutMs(option, value, fallback);
  if (ms === 0) {
    throw new InvalidOptionError(
      option,
      value,
      `a finite number of milliseconds in 1..${MAX_TIMEOUT_MS}`,
    );
  }
  return ms;
}

/** A finite number `>= min`, or `undefined`. */
function checkFiniteAtLeast(
  option: string,
  value: unknown,
  min: number,
): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min) {
    throw new InvalidOptionError(option, value, `a finite number >= ${min}`);
  }
  return value;
}

/**
 * A restart policy's options (`option` is where it was given, e.g.
 * `"restart"`): a strategy, a restart count (an integer or `Infinity`), a
 * window (`> 0` ms, or `Infinity`), and backoff delays a timer can hold.
 */
export function checkRestartPolicy(
  option: string,
  value: unknown,
): RestartPolicyOptions | undefined {
  if (value === undefined) return undefined;
  const policy = checkOptionsObject<RestartPolicyOptions>(option, value);
  checkChoice(
    `${option}.strategy`,
    policy.strategy,
    ["one-for-one", "never"],
    "one-for-one",
  );
  const maxRestarts: unknown = policy.maxRestarts;
  if (maxRestarts !== Infinity) {
    checkInteger(`${option}.maxRestarts`, maxRestarts, {
      min: 0,
      max: Number.MAX_SAFE_INTEGER,
      fallback: 0,
    });
  }
  const withinMs: unknown = policy.withinMs;
  if (
    withinMs !== undefined &&
    (typeof withinMs !== "number" || !(withinMs > 0))
  ) {
    throw new InvalidOptionError(
      `${option}.withinMs`,
      withinMs,
      "a number of milliseconds > 0 (Infinity for no window)",
    );
  }
  const backoff = checkOptionsObject<
    NonNullable<RestartPolicyOptions["backoff"]>
  >(
    `${option}.backoff`,
    policy.backoff,
  );
  const initialMs = checkTimeoutMs(
    `${option}.backoff.initialMs`,
    backoff.initialMs,
    0,
  );
  if (backoff.maxMs !== undefined) {
    const maxMs = checkTimeoutMs(
      `${option}.backoff.maxMs`,
      backoff.maxMs,
      0,
    );
    if (backoff.initialMs !== undefined && maxMs < initialMs) {
      throw new InvalidOptionError(
        `${option}.backoff.maxMs`,
        maxMs,
        `at least backoff.initialMs (${initialMs})`,
      );
    }
  }
  checkFiniteAtLeast(`${option}.backoff.multiplier`, backoff.multiplier, 1);
  return policy as RestartPolicyOptions;
}

/** The CUDA options of `RingKernel.create` (checked on every backend). */
export function checkCudaOptions(value: unknown): CudaRuntimeOptions {
  const cuda = checkOptionsObject<CudaRuntimeOptions>("cuda", value);
  checkInteger("cuda.device", cuda.device, {
    min: 0,
    max: 2 ** 31 - 1,
    fallback: 0,
  });
  for (const key of ["hostArenaBytes", "deviceArenaBytes"] as const) {
    checkInteger(`cuda.${key}`, cuda[key], {
      min: 1,
      max: Number.MAX_SAFE_INTEGER,
      fallback: 1,
    });
  }
  return cuda as CudaRuntimeOptions;
}

export { checkBoolean, checkChoice, checkInteger, checkTimeoutMs };
