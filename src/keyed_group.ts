/**
 * Dispatch by key over a group of actors (e.g. the kernels
 * `rt.launchGroup` returns): a message's key picks its member, always the
 * same one for the same key and group size, so per-key state lives in one
 * actor and per-key order is kept. The key's hash is the 64-bit FNV-1a of
 * its UTF-8 text (`nameHash`, `rk_fnv1a64` on the device), modulo the
 * number of members: device code that routes by key (`rk_fnv1a64(key) %
 * members`) picks the same member.
 *
 * ```ts
 * import { RingKernel } from "./runtime.ts";
 * import { KeyedGroup } from "./keyed_group.ts";
 *
 * await using rt = await RingKernel.create({ backend: "auto", quiet: true });
 * const members = await rt.launchGroup(
 *   ["a", "b", "c"].map((n) => ({ name: `totals-${n}`, options: { actor: "accumulator" } })),
 * );
 * const totals = new KeyedGroup(members);
 * await totals.call("sensor-7", { value: 2 }); // always the same member
 * ```
 *
 * @module
 */

import { nameHash } from "./backend/cuda/route_table.ts";
import type { Kernel } from "./kernel.ts";
import type { DecodedMessage, FieldsSpec, MessageValue } from "./message.ts";

/** A dispatch key: text, or a number (its decimal text), or a bigint. */
export type DispatchKey = string | number | bigint;

/**
 * Index of the member of `members` that `key` picks: FNV-1a 64 of the key's
 * text modulo `members`.
 *
 * @throws {RangeError} when `members` is not a positive integer.
 */
export function memberIndexForKey(key: DispatchKey, members: number): number {
  if (!Number.isSafeInteger(members) || members < 1) {
    throw new RangeError(`members ${members} must be a positive integer`);
  }
  return Number(nameHash(String(key)) % BigInt(members));
}

/** Options of {@linkcode KeyedGroup.call}. */
export interface KeyedCallOptions {
  /** Deadline of the call, in ms (the kernel's default when absent). */
  readonly timeoutMs?: number;
}

/** A group of kernels of one actor type that a key dispatches into. */
export class KeyedGroup<I extends FieldsSpec, O extends FieldsSpec> {
  /** The members, in dispatch order (a key's index picks one). */
  readonly members: readonly Kernel<I, O>[];

  /** A group over `members` (at least one; their order fixes the dispatch). */
  constructor(members: readonly Kernel<I, O>[]) {
    if (!Array.isArray(members) || members.length === 0) {
      throw new RangeError("a keyed group needs at least one member");
    }
    this.members = [...members];
  }

  /** The member `key` picks. */
  memberFor(key: DispatchKey): Kernel<I, O> {
    return this.members[memberIndexForKey(key, this.members.length)];
  }

  /** Sends `message` to the member `key` picks (as `Kernel.send`). */
  send(
    key: DispatchKey,
    message: MessageValue<I>,
    options?: Parameters<Kernel<I, O>["send"]>[1],
  ): Promise<void> {
    return this.memberFor(key).send(message, options);
  }

  /** Calls the member `key` picks and resolves with its reply (as `Kernel.call`). */
  call(
    key: DispatchKey,
    message: MessageValue<I>,
    options?: KeyedCallOptions,
  ): Promise<DecodedMessage<O>> {
    return this.memberFor(key).call(message, options);
  }
}
