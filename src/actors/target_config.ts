/**
 * The configuration of the built-in GPU actors that send to another actor by
 * name (the forwarder, and the benchmarks' K2K generator): `config.target`,
 * written into the descriptor's configuration area as the device reads it
 * (`rk_target_config`: the target's route key).
 *
 * @module
 */

import { TARGET_CONFIG } from "../backend/cuda/pool_layout.ts";
import { RingKernelError } from "../errors.ts";

/**
 * Encodes `{ target?: string }` as an `rk_target_config` (a key of 0: no
 * target).
 *
 * @param config the launch configuration.
 * @param hash an actor name's route key (`GpuConfigContext.nameHash`).
 * @param required whether a target must be given.
 * @throws {RingKernelError} when `target` is required and missing, or is
 *   not a non-empty string.
 */
export function encodeTargetConfig(
  config: unknown,
  hash: (name: string) => bigint,
  required: boolean,
): Uint8Array {
  const target = (config as { target?: unknown } | undefined)?.target;
  const bytes = new Uint8Array(TARGET_CONFIG.size);
  if (target === undefined && !required) return bytes;
  if (typeof target !== "string" || target.length === 0) {
    throw new RingKernelError(
      `this actor needs config.target, the name of the actor to send to`,
    );
  }
  new DataView(bytes.buffer).setBigUint64(
    TARGET_CONFIG.fields.targetHash.offset,
    hash(target),
    true,
  );
  return bytes;
}
