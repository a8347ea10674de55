/**
 * Which JavaScript runtime is running (Deno, Bun, …) and access to its own
 * FFI primitives. (Not to be confused with `src/runtime.ts`, the actor
 * runtime.)
 *
 * ringkernel-ts binds native libraries through `Deno.dlopen` under Deno and
 * `bun:ffi` under Bun. This module says which of the two is running and, under
 * Bun, loads `bun:ffi` once (dynamically, so Deno never resolves it). Nothing
 * here touches `Deno` under Bun or `bun:ffi` under Deno.
 *
 * @module
 */

import { BackendUnavailableError } from "./errors.ts";

/** A runtime whose FFI ringkernel-ts can use. */
export type FfiRuntime = "deno" | "bun";

/** Every runtime {@linkcode detectRuntime} can report. */
export type RuntimeName = FfiRuntime | "node" | "unknown";

interface RuntimeGlobals {
  Bun?: { version?: string };
  Deno?: { dlopen?: unknown; version?: { deno?: string } };
  process?: { versions?: { node?: string } };
}

/**
 * Names the runtime that a set of globals belongs to: `"bun"` when `Bun` is
 * defined, `"deno"` when `Deno` is, `"node"` for other runtimes that report a
 * Node.js version, `"unknown"` otherwise.
 *
 * @param globals the global object to inspect; defaults to `globalThis`.
 */
export function classifyRuntime(globals: object = globalThis): RuntimeName {
  const g = globals as RuntimeGlobals;
  // Bun and Deno both also report `process.versions.node`, so check them first.
  if (typeof g.Bun === "object" && g.Bun !== null) return "bun";
  if (typeof g.Deno === "object" && g.Deno !== null) return "deno";
  if (typeof g.process?.versions?.node === "string") return "node";
  return "unknown";
}

const DETECTED: RuntimeName = classifyRuntime();

/**
 * Names the JavaScript runtime executing this module.
 *
 * @returns `"deno"`, `"bun"`, `"node"` or `"unknown"`.
 */
export function detectRuntime(): RuntimeName {
  return DETECTED;
}

/**
 * Returns `runtime` when ringkernel-ts can use its FFI, and throws otherwise.
 *
 * @throws {BackendUnavailableError} (backend `"ffi"`) for any runtime but Deno
 *   and Bun, naming it.
 */
export function assertFfiRuntime(runtime: RuntimeName): FfiRuntime {
  if (runtime === "deno" || runtime === "bun") return runtime;
  throw new BackendUnavailableError(
    "ffi",
    `native libraries need Deno or Bun, but this runtime is ${runtime}`,
  );
}

/**
 * Returns the running runtime when its FFI is usable, and throws otherwise.
 *
 * @returns `"deno"` or `"bun"`.
 * @throws {BackendUnavailableError} (backend `"ffi"`) on any other runtime,
 *   naming the runtime that was found.
 */
export function requireFfiRuntime(): FfiRuntime {
  return assertFfiRuntime(DETECTED);
}

/** A Bun FFI type name, as `bun:ffi` spells it. */
export type BunFfiType =
  | "void"
  | "bool"
  | "u8"
  | "i8"
  | "u16"
  | "i16"
  | "u32"
  | "i32"
  | "u64"
  | "i64"
  | "f32"
  | "f64"
  | "ptr";

/** One symbol declaration in `bun:ffi`'s shape. */
export interface BunSymbolDefinition {
  /** Argument types. */
  readonly args: readonly BunFfiType[];
  /** Return type. */
  readonly returns: BunFfiType;
}

/** A library opened by `bun:ffi`'s `dlopen`. */
export interface BunLibrary {
  /** The bound functions, by symbol name. */
  readonly symbols: Record<string, (...args: unknown[]) => unknown>;
  /** Unloads the library. */
  close(): void;
}

/** The part of the `bun:ffi` module that ringkernel-ts uses. */
export interface BunFfiModule {
  /** Opens a library and binds the given symbols. */
  dlopen(
    path: string,
    symbols: Record<string, BunSymbolDefinition>,
  ): BunLibrary;
  /** Address of a typed array's data (its byte offset included). */
  ptr(view: ArrayBufferView, byteOffset?: number): number;
  /** An ArrayBuffer over native memory; the memory is not freed with it. */
  toArrayBuffer(
    address: number,
    byteOffset: number,
    byteLength: number,
  ): ArrayBuffer;
  /** Reads a NUL-terminated UTF-8 string at an address. */
  CString: new (address: number) => { toString(): string };
}

// A variable specifier keeps Deno's module graph from trying to resolve it.
const BUN_FFI_SPECIFIER = "bun:ffi";
const BUN_FFI: BunFfiModule | undefined = DETECTED === "bun"
  ? (await import(BUN_FFI_SPECIFIER)) as BunFfiModule
  : undefined;

/**
 * The `bun:ffi` module, loaded once at start-up.
 *
 * @throws {BackendUnavailableError} when the runtime is not Bun.
 */
export function bunFfi(): BunFfiModule {
  if (BUN_FFI === undefined) {
    throw new BackendUnavailableError(
      "ffi",
      `bun:ffi is only available under Bun, but this runtime is ${DETECTED}`,
    );
  }
  return BUN_FFI;
}
