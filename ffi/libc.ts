/**
 * The C library's environment, through FFI: `setenv` and `getenv` on the
 * process environment that native libraries read.
 *
 * Why not `process.env`: a native library (the CUDA driver reads
 * `CUDA_MODULE_LOADING` at `cuInit`) reads the C environment, and a runtime
 * may keep its own copy that it does not write through. Setting the variable
 * with the C library reaches the driver on Deno and Bun alike.
 *
 * @module
 */

import process from "node:process";
import { type DynamicLibrary, openLibrary } from "./dylib.ts";

/** The C library functions ringkernel-ts binds. */
export const LIBC_SYMBOLS = {
  setenv: { parameters: ["buffer", "buffer", "i32"], result: "i32" },
  getenv: { parameters: ["buffer"], result: "pointer" },
} as const;

let libc: DynamicLibrary<typeof LIBC_SYMBOLS> | undefined;

function open(): DynamicLibrary<typeof LIBC_SYMBOLS> {
  libc ??= openLibrary(LIBC_SYMBOLS, {
    name: "the C library",
    candidates: process.platform === "darwin"
      ? ["libSystem.B.dylib"]
      : ["libc.so.6", "libc.so"],
  });
  return libc;
}

function cString(text: string): Uint8Array {
  if (text.includes("\0")) {
    throw new RangeError("an environment name or value cannot hold NUL");
  }
  return new TextEncoder().encode(`${text}\0`);
}

/**
 * Whether the C environment has `name` (set by the parent process, or by
 * {@linkcode setNativeEnv}).
 *
 * @throws {LibraryLoadError} when the C library cannot be loaded.
 */
export function hasNativeEnv(name: string): boolean {
  return open().symbols.getenv(cString(name)) !== 0n;
}

/**
 * Sets `name=value` in the C environment (overwriting), and in `process.env`
 * so that JavaScript sees the same value.
 *
 * @throws {LibraryLoadError} when the C library cannot be loaded.
 * @throws {RangeError} when `setenv` refuses the name.
 */
export function setNativeEnv(name: string, value: string): void {
  if (open().symbols.setenv(cString(name), cString(value), 1) !== 0) {
    throw new RangeError(`setenv refused the name ${JSON.stringify(name)}`);
  }
  process.env[name] = value;
}
