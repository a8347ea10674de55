/**
 * Native memory seen from JavaScript: the address of a typed array's data,
 * ArrayBuffers over native memory, and C strings.
 *
 * Addresses are `bigint` in both runtimes. A mapped ArrayBuffer does not own
 * its memory: whoever owns the allocation keeps the buffer, maps it once, and
 * calls {@linkcode unmapMemory} before freeing the memory so that stale views
 * read as empty instead of touching freed memory.
 *
 * @module
 */

import { RingKernelError } from "./errors.ts";
import { bunFfi, requireFfiRuntime } from "./js_runtime.ts";

/** One past the largest 64-bit address. */
const ADDRESS_LIMIT = 1n << 64n;

/**
 * Checks that a value is a non-null 64-bit address.
 *
 * @param address the value to check.
 * @param what names the value in the error message.
 * @throws {RingKernelError} when it is not a bigint in `1 .. 2^64 - 1`.
 */
export function assertAddress(address: unknown, what = "address"): bigint {
  if (typeof address !== "bigint") {
    throw new RingKernelError(
      `${what} must be a bigint, got ${typeof address}`,
    );
  }
  if (address === 0n) throw new RingKernelError(`${what} is null`);
  if (address < 0n || address >= ADDRESS_LIMIT) {
    throw new RingKernelError(
      `${what} 0x${address.toString(16)} is not a 64-bit address`,
    );
  }
  return address;
}

/**
 * Converts an address to a number, for the APIs of `bun:ffi` that take
 * nothing else.
 *
 * @param address a 64-bit address (0 allowed, for null).
 * @throws {RingKernelError} when the address is negative or above
 *   `Number.MAX_SAFE_INTEGER`, where a number would silently round it.
 */
export function addressToNumber(address: bigint): number {
  if (
    typeof address !== "bigint" || address < 0n ||
    address > BigInt(Number.MAX_SAFE_INTEGER)
  ) {
    throw new RingKernelError(
      `address ${String(address)} cannot be represented exactly as a number`,
    );
  }
  return Number(address);
}

function assertByteLength(byteLength: unknown): number {
  if (
    typeof byteLength !== "number" || !Number.isSafeInteger(byteLength) ||
    byteLength <= 0
  ) {
    throw new RingKernelError(
      `byteLength must be a positive safe integer, got ${String(byteLength)}`,
    );
  }
  return byteLength;
}

function isArrayBufferView(value: unknown): value is ArrayBufferView {
  return ArrayBuffer.isView(value);
}

/**
 * Returns the address of a typed array's (or DataView's) first byte, its
 * `byteOffset` included.
 *
 * The address stays valid while the view's buffer is alive and not detached or
 * resized; keep a reference to the view for as long as native code uses it.
 * Take addresses only through this function: under Bun, a small typed array's
 * data moves once, and this function makes that happen first.
 *
 * @param view a non-empty view.
 * @throws {RingKernelError} when `view` is not an ArrayBufferView or is empty
 *   (an empty view has no address).
 */
export function addressOf(view: ArrayBufferView): bigint {
  if (!isArrayBufferView(view)) {
    throw new RingKernelError("addressOf needs a typed array or DataView");
  }
  if (view.byteLength === 0) {
    throw new RingKernelError(
      "addressOf needs a non-empty view (an empty or detached view has no address)",
    );
  }
  if (requireFfiRuntime() === "bun") {
    // JavaScriptCore keeps small typed arrays in the GC heap and moves their
    // data out the first time `.buffer` is read; read it first, so the address
    // returned stays valid for the view's lifetime.
    void view.buffer;
    return BigInt(bunFfi().ptr(view));
  }
  return Deno.UnsafePointer.value(
    Deno.UnsafePointer.of(view as Uint8Array<ArrayBuffer>),
  );
}

/**
 * Maps `byteLength` bytes of native memory at `address` as an ArrayBuffer.
 *
 * The buffer does not own the memory and never frees it. Map an allocation
 * once, keep the buffer with the allocation's owner, and call
 * {@linkcode unmapMemory} before the memory is freed.
 *
 * @param address the first byte (non-null).
 * @param byteLength how many bytes, a positive safe integer.
 * @throws {RingKernelError} on a null or out-of-range address, or a length that
 *   is not a positive safe integer or runs past the end of the address space.
 */
export function mapMemory(address: bigint, byteLength: number): ArrayBuffer {
  assertAddress(address);
  assertByteLength(byteLength);
  if (address + BigInt(byteLength) > ADDRESS_LIMIT) {
    throw new RingKernelError(
      `mapping ${byteLength} bytes at 0x${
        address.toString(16)
      } runs past the end of the address space`,
    );
  }
  if (requireFfiRuntime() === "bun") {
    return bunFfi().toArrayBuffer(addressToNumber(address), 0, byteLength);
  }
  const pointer = Deno.UnsafePointer.create(address);
  if (pointer === null) throw new RingKernelError("address is null");
  return Deno.UnsafePointerView.getArrayBuffer(pointer, byteLength);
}

/**
 * Detaches an ArrayBuffer made by {@linkcode mapMemory}, so that every view of
 * it reads as empty (and `Atomics` on it throws) instead of reaching memory
 * that is about to be freed. Idempotent.
 *
 * @param buffer a buffer returned by {@linkcode mapMemory}.
 */
export function unmapMemory(buffer: ArrayBuffer): void {
  if (!(buffer instanceof ArrayBuffer)) {
    throw new RingKernelError("unmapMemory needs an ArrayBuffer");
  }
  if (buffer.detached) return;
  // A zero-length transfer detaches the original without copying its bytes.
  buffer.transfer(0);
}

/**
 * Reads a NUL-terminated UTF-8 string from native memory.
 *
 * @param address the string's first byte (non-null).
 * @throws {RingKernelError} on a null or out-of-range address.
 */
export function readCString(address: bigint): string {
  assertAddress(address);
  if (requireFfiRuntime() === "bun") {
    return new (bunFfi().CString)(addressToNumber(address)).toString();
  }
  const pointer = Deno.UnsafePointer.create(address);
  if (pointer === null) throw new RingKernelError("address is null");
  return Deno.UnsafePointerView.getCString(pointer);
}
