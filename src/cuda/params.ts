/**
 * Kernel-parameter packing for `cuLaunchKernel`.
 *
 * The driver takes `void** kernelParams`: an array holding, for each kernel
 * parameter, the address of its value. {@linkcode packKernelParams} writes
 * every value into its own 8-byte, 8-aligned slot of one buffer and builds the
 * address array over those slots. The returned {@linkcode KernelParams} keeps
 * both alive; the driver copies the values during `cuLaunchKernel`, so the
 * object only has to live until the launch call returns.
 *
 * @module
 */

import { RingKernelError } from "../errors.ts";
import { addressOf } from "../../ffi/memory.ts";

/** Bytes per parameter slot: every value is 8-byte aligned. */
export const KERNEL_PARAM_SLOT_BYTES = 8;

/** Anything that has a device address (a device buffer, mapped host memory). */
export interface DeviceAddressable {
  /** The address the device sees. */
  readonly deviceAddress: bigint;
}

/** The scalar kinds a kernel parameter may have. */
export type KernelArgType =
  | "u32"
  | "i32"
  | "u64"
  | "i64"
  | "f32"
  | "f64"
  | "ptr";

/** One kernel argument: its C type and its value. */
export type KernelArg =
  | {
    /** `unsigned int`, `int`, `float` or `double`. */
    readonly type: "u32" | "i32" | "f32" | "f64";
    /** The value (`f32` is rounded to single precision). */
    readonly value: number;
  }
  | {
    /** `unsigned long long` or `long long`. */
    readonly type: "u64" | "i64";
    /** The value; a number must be a safe integer. */
    readonly value: bigint | number;
  }
  | {
    /** A device pointer (`T*` in the kernel's signature). */
    readonly type: "ptr";
    /** A device address, or an object that has one (0n is a null pointer). */
    readonly value: bigint | DeviceAddressable;
  };

const U32_MAX = 0xffff_ffff;
const I32_MIN = -0x8000_0000;
const I32_MAX = 0x7fff_ffff;
const U64_LIMIT = 1n << 64n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

function invalid(index: number, type: string, why: string): RingKernelError {
  return new RingKernelError(`kernel argument ${index} (${type}) ${why}`);
}

function integerOf(
  index: number,
  type: string,
  value: unknown,
): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isSafeInteger(value)) {
    return BigInt(value);
  }
  throw invalid(
    index,
    type,
    `must be a bigint or a safe integer, got ${String(value)}`,
  );
}

function writeArg(
  data: DataView,
  index: number,
  arg: KernelArg,
): void {
  if (typeof arg !== "object" || arg === null) {
    throw new RingKernelError(
      `kernel argument ${index} must be an object { type, value }`,
    );
  }
  const offset = index * KERNEL_PARAM_SLOT_BYTES;
  // Validate before writing, so a bad value leaves the slot as it was; clear
  // the slot before a narrow write so no stale upper bytes remain.
  const clear = () => data.setBigUint64(offset, 0n, true);
  const { type, value } = arg as { type: unknown; value: unknown };
  switch (type) {
    case "u32":
      if (
        !Number.isInteger(value) || (value as number) < 0 ||
        (value as number) > U32_MAX
      ) {
        throw invalid(index, type, `must be an integer in 0..${U32_MAX}`);
      }
      clear();
      data.setUint32(offset, value as number, true);
      return;
    case "i32":
      if (
        !Number.isInteger(value) || (value as number) < I32_MIN ||
        (value as number) > I32_MAX
      ) {
        throw invalid(
          index,
          type,
          `must be an integer in ${I32_MIN}..${I32_MAX}`,
        );
      }
      clear();
      data.setInt32(offset, value as number, true);
      return;
    case "f32":
    case "f64":
      if (typeof value !== "number") {
        throw invalid(index, type, `must be a number, got ${typeof value}`);
      }
      clear();
      if (type === "f32") data.setFloat32(offset, value, true);
      else data.setFloat64(offset, value, true);
      return;
    case "u64": {
      const integer = integerOf(index, type, value);
      if (integer < 0n || integer >= U64_LIMIT) {
        throw invalid(index, type, "must be in 0..2^64-1");
      }
      data.setBigUint64(offset, integer, true);
      return;
    }
    case "i64": {
      const integer = integerOf(index, type, value);
      if (integer < I64_MIN || integer > I64_MAX) {
        throw invalid(index, type, "must be in -2^63..2^63-1");
      }
      data.setBigInt64(offset, integer, true);
      return;
    }
    case "ptr": {
      const address = typeof value === "object" && value !== null
        ? (value as DeviceAddressable).deviceAddress
        : value;
      if (typeof address !== "bigint" || address < 0n || address >= U64_LIMIT) {
        throw invalid(
          index,
          type,
          "must be a 64-bit device address (bigint) or have a deviceAddress",
        );
      }
      data.setBigUint64(offset, address, true);
      return;
    }
    default:
      throw new RingKernelError(
        `kernel argument ${index} has unknown type ${JSON.stringify(type)}`,
      );
  }
}

/**
 * Packed kernel parameters: the values and the `void**` array of their
 * addresses, kept alive together. Made by {@linkcode packKernelParams}.
 */
export class KernelParams {
  /** How many parameters. */
  readonly count: number;
  /** The values, one 8-byte slot each (`count * 8` bytes). */
  readonly values: Uint8Array;
  /**
   * The address of each value slot, the array passed as `kernelParams`;
   * `null` when there are no parameters.
   */
  readonly pointers: BigUint64Array | null;
  #data: DataView;

  /** Allocates `count` zeroed slots; use {@linkcode packKernelParams}. */
  constructor(count: number) {
    if (!Number.isSafeInteger(count) || count < 0) {
      throw new RingKernelError(
        `a kernel parameter count must be a non-negative integer, got ${count}`,
      );
    }
    this.count = count;
    // 64-bit elements guarantee 8-byte alignment; at least one slot, so the
    // storage has an address even when count is 0.
    const slots = new BigUint64Array(Math.max(count, 1));
    this.values = new Uint8Array(slots.buffer);
    this.#data = new DataView(slots.buffer);
    if (count === 0) {
      this.pointers = null;
    } else {
      const base = addressOf(slots);
      if (base % BigInt(KERNEL_PARAM_SLOT_BYTES) !== 0n) {
        throw new RingKernelError("kernel parameter storage is misaligned");
      }
      this.pointers = new BigUint64Array(count);
      for (let i = 0; i < count; i++) {
        this.pointers[i] = base + BigInt(i * KERNEL_PARAM_SLOT_BYTES);
      }
    }
  }

  /**
   * Replaces the value of parameter `index` in place (the addresses do not
   * change), for launching the same kernel again with new values.
   *
   * @throws {RingKernelError} for an index out of range or a bad value.
   */
  set(index: number, arg: KernelArg): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) {
      throw new RingKernelError(
        `kernel argument index ${index} is out of range 0..${this.count - 1}`,
      );
    }
    writeArg(this.#data, index, arg);
  }
}

/**
 * Packs kernel arguments for `cuLaunchKernel`.
 *
 * @param args the arguments, in the kernel signature's order.
 * @returns the packed values and address array; keep it referenced until the
 *   launch call returns.
 * @throws {RingKernelError} naming the first argument whose type is unknown or
 *   whose value does not fit its type.
 */
export function packKernelParams(args: readonly KernelArg[]): KernelParams {
  if (!Array.isArray(args)) {
    throw new RingKernelError("kernel arguments must be an array");
  }
  const params = new KernelParams(args.length);
  for (let i = 0; i < args.length; i++) params.set(i, args[i]);
  return params;
}
