/**
 * The kernel lifecycle state machine (Launched → Active ⇄ Deactivated →
 * Terminated). Pure: the runtime asks it before every transition.
 *
 * @module
 */

import { InvalidStateError } from "./errors.ts";

/** The lifecycle state of a kernel (actor). */
export type KernelState = "launched" | "active" | "deactivated" | "terminated";

/** Lifecycle operations. */
export type LifecycleOperation = "activate" | "deactivate" | "terminate";

const TRANSITIONS: Readonly<
  Record<KernelState, Partial<Record<LifecycleOperation, KernelState>>>
> = {
  launched: { activate: "active", terminate: "terminated" },
  active: { deactivate: "deactivated", terminate: "terminated" },
  deactivated: { activate: "active", terminate: "terminated" },
  terminated: {},
};

/**
 * Returns the state reached by `operation` from `state`, or throws
 * {@linkcode InvalidStateError} when the state machine does not allow it.
 */
export function nextState(
  state: KernelState,
  operation: LifecycleOperation,
): KernelState {
  const next = TRANSITIONS[state][operation];
  if (next === undefined) {
    throw new InvalidStateError(operation, state);
  }
  return next;
}

/** True when `operation` is allowed from `state`. */
export function canTransition(
  state: KernelState,
  operation: LifecycleOperation,
): boolean {
  return TRANSITIONS[state][operation] !== undefined;
}

/** Throws {@linkcode InvalidStateError} unless `state` is one of `allowed`. */
export function assertState(
  state: KernelState,
  allowed: readonly KernelState[],
  operation: string,
): void {
  if (!allowed.includes(state)) {
    throw new InvalidStateError(operation, state);
  }
}
