/**
 * Native libraries, bound once through one symbol-table format for Deno and
 * Bun.
 *
 * A {@linkcode SymbolTable} is written in `Deno.dlopen`'s shape
 * (`{ name: { parameters, result, optional? } }`). Under Deno it is passed to
 * `Deno.dlopen` as it is; under Bun a small adapter turns each entry into
 * `bun:ffi`'s `{ args, returns }`. Either way the bound functions take and
 * return the same JavaScript values: 64-bit integers and pointers are `bigint`
 * (declare opaque handles and addresses as `"u64"`, which needs no
 * conversion at all), and out-parameters are typed arrays passed as
 * `"buffer"`.
 *
 * @example
 * ```ts
 * const libc = openLibrary({
 *   getpid: { parameters: [], result: "i32" },
 *   strlen: { parameters: ["buffer"], result: "usize" },
 * }, { name: "libc", candidates: ["libc.so.6"] });
 * libc.symbols.strlen(new TextEncoder().encode("hello\0")); // 5n
 * libc.close();
 * ```
 *
 * @module
 */

import process from "node:process";
import {
  InvalidStateError,
  LibraryLoadError,
  RingKernelError,
} from "./errors.ts";
import { addressToNumber } from "./memory.ts";
import {
  bunFfi,
  type BunFfiType,
  type BunLibrary,
  type BunSymbolDefinition,
  type FfiRuntime,
  requireFfiRuntime,
} from "./js_runtime.ts";

/** Native types passed to JavaScript as `number`. */
export type NativeNumberType =
  | "u8"
  | "i8"
  | "u16"
  | "i16"
  | "u32"
  | "i32"
  | "f32"
  | "f64";

/** Native 64-bit integer types, returned to JavaScript as `bigint`. */
export type NativeBigIntType = "u64" | "i64" | "usize" | "isize";

/**
 * Every parameter type a {@linkcode SymbolDefinition} may use.
 *
 * `"pointer"` takes and returns a `bigint` address (0n for null); it costs a
 * conversion per call, so prefer `"u64"` for handles and addresses.
 * `"buffer"` takes a typed array (or `null`) whose data address is passed.
 */
export type NativeType =
  | NativeNumberType
  | NativeBigIntType
  | "bool"
  | "pointer"
  | "buffer";

/** Every result type a {@linkcode SymbolDefinition} may use. */
export type NativeResultType = Exclude<NativeType, "buffer"> | "void";

/** One native function, in `Deno.dlopen`'s shape. */
export interface SymbolDefinition {
  /** Parameter types, in order. */
  readonly parameters: readonly NativeType[];
  /** Result type. */
  readonly result: NativeResultType;
  /**
   * When `true`, a library that lacks the symbol still loads; the symbol is
   * then `undefined` and listed in {@linkcode DynamicLibrary.missing}.
   */
  readonly optional?: boolean;
}

/** The native functions of one library, by symbol name. */
export type SymbolTable = Readonly<Record<string, SymbolDefinition>>;

/** The JavaScript value a parameter of native type `T` takes. */
export type ParameterValue<T extends NativeType> = T extends NativeNumberType
  ? number
  : T extends NativeBigIntType ? bigint | number
  : T extends "bool" ? boolean
  : T extends "pointer" ? bigint
  : T extends "buffer" ? ArrayBufferView | null
  : never;

/** The JavaScript value a result of native type `T` is returned as. */
export type ResultValue<T extends NativeResultType> = T extends "void" ? void
  : T extends NativeNumberType ? number
  : T extends NativeBigIntType | "pointer" ? bigint
  : T extends "bool" ? boolean
  : never;

/** The argument list of a function with parameter types `P`. */
export type ParameterValues<P extends readonly NativeType[]> = {
  -readonly [K in keyof P]: ParameterValue<P[K]>;
};

/** The JavaScript function bound for one {@linkcode SymbolDefinition}. */
export type NativeFunction<D extends SymbolDefinition> = (
  ...args: ParameterValues<D["parameters"]>
) => ResultValue<D["result"]>;

/** The bound functions of a library; optional ones may be `undefined`. */
export type LibrarySymbols<S extends SymbolTable> = {
  readonly [K in keyof S]: S[K] extends { readonly optional: true }
    ? NativeFunction<S[K]> | undefined
    : NativeFunction<S[K]>;
};

const NATIVE_TO_BUN: Readonly<Record<NativeResultType | "buffer", BunFfiType>> =
  {
    void: "void",
    bool: "bool",
    u8: "u8",
    i8: "i8",
    u16: "u16",
    i16: "i16",
    u32: "u32",
    i32: "i32",
    u64: "u64",
    i64: "i64",
    usize: "u64",
    isize: "i64",
    f32: "f32",
    f64: "f64",
    pointer: "ptr",
    buffer: "ptr",
  };

const PARAMETER_TYPES: ReadonlySet<string> = new Set(
  Object.keys(NATIVE_TO_BUN).filter((type) => type !== "void"),
);
const RESULT_TYPES: ReadonlySet<string> = new Set(
  Object.keys(NATIVE_TO_BUN).filter((type) => type !== "buffer"),
);

/**
 * Checks that a symbol table uses only the supported types and shape.
 *
 * @throws {RingKernelError} naming the first symbol that is malformed.
 */
export function validateSymbolTable(table: SymbolTable): void {
  if (typeof table !== "object" || table === null) {
    throw new RingKernelError("a symbol table must be an object");
  }
  for (const [name, definition] of Object.entries(table)) {
    const bad = (why: string) =>
      new RingKernelError(`symbol ${name} is malformed: ${why}`);
    if (typeof definition !== "object" || definition === null) {
      throw bad("its definition is not an object");
    }
    if (!Array.isArray(definition.parameters)) {
      throw bad("parameters must be an array");
    }
    for (const type of definition.parameters) {
      if (!PARAMETER_TYPES.has(type)) {
        throw bad(`unsupported parameter type ${JSON.stringify(type)}`);
      }
    }
    if (!RESULT_TYPES.has(definition.result)) {
      throw bad(`unsupported result type ${JSON.stringify(definition.result)}`);
    }
    if (
      definition.optional !== undefined &&
      typeof definition.optional !== "boolean"
    ) {
      throw bad("optional must be a boolean");
    }
  }
}

/**
 * Translates one symbol definition into `bun:ffi`'s shape: `"pointer"` and
 * `"buffer"` become `"ptr"`, `"usize"`/`"isize"` become `"u64"`/`"i64"`.
 */
export function toBunSymbolDefinition(
  definition: SymbolDefinition,
): BunSymbolDefinition {
  return {
    args: definition.parameters.map((type) => NATIVE_TO_BUN[type]),
    returns: NATIVE_TO_BUN[definition.result],
  };
}

/** Where and how to find a library. */
export interface OpenLibraryOptions {
  /** A short name for messages, e.g. `"libcuda"`. */
  readonly name: string;
  /** Names or paths to try, in order; the first that loads wins. */
  readonly candidates: readonly string[];
  /**
   * An environment variable that, when set and not empty, names a path tried
   * before every candidate.
   */
  readonly envVar?: string;
}

function readEnv(name: string): string | undefined {
  try {
    const value = process.env[name];
    return value === undefined || value === "" ? undefined : value;
  } catch {
    // Without permission to read the environment there is no override.
    return undefined;
  }
}

/**
 * Lists what {@linkcode openLibrary} tries, in order: the path named by
 * `envVar` (when set), then each candidate, without repeats.
 */
export function libraryCandidates(
  options: Pick<OpenLibraryOptions, "candidates" | "envVar">,
): string[] {
  const override = options.envVar ? readEnv(options.envVar) : undefined;
  const all = override === undefined
    ? [...options.candidates]
    : [override, ...options.candidates];
  return [...new Set(all)];
}

/** A native library opened by {@linkcode openLibrary}. */
export class DynamicLibrary<S extends SymbolTable> {
  /** The candidate (name or path) that loaded. */
  readonly path: string;
  /** The runtime whose FFI bound it. */
  readonly runtime: FfiRuntime;
  /** Optional symbols the library lacks (their entries are `undefined`). */
  readonly missing: readonly string[];
  #symbols: LibrarySymbols<S>;
  #close: () => void;
  #closed = false;

  /** Wraps an opened library; use {@linkcode openLibrary} to create one. */
  constructor(
    init: {
      path: string;
      runtime: FfiRuntime;
      missing: readonly string[];
      symbols: LibrarySymbols<S>;
      close: () => void;
    },
  ) {
    this.path = init.path;
    this.runtime = init.runtime;
    this.missing = Object.freeze([...init.missing]);
    this.#symbols = init.symbols;
    this.#close = init.close;
  }

  /**
   * The bound functions. Functions taken from here must not be called after
   * {@linkcode DynamicLibrary.close}: they would call into unloaded code.
   *
   * @throws {InvalidStateError} once the library is closed.
   */
  get symbols(): LibrarySymbols<S> {
    if (this.#closed) {
      throw new InvalidStateError("use symbols", "closed", this.path);
    }
    return this.#symbols;
  }

  /** Whether {@linkcode DynamicLibrary.close} has run. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Unloads the library. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#close();
  }
}

function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // Deno repeats this prefix; once is enough.
  return message.replace(/^(Could not open library: )+/, "");
}

function needsPointerConversion(definition: SymbolDefinition): boolean {
  return definition.result === "pointer" ||
    definition.parameters.includes("pointer");
}

type AnyFunction = (...args: unknown[]) => unknown;

function adaptPointers(
  definition: SymbolDefinition,
  raw: AnyFunction,
  toPointer: (address: bigint) => unknown,
  fromPointer: (pointer: unknown) => bigint,
): AnyFunction {
  const pointerArgs = definition.parameters.flatMap((type, index) =>
    type === "pointer" ? [index] : []
  );
  const pointerResult = definition.result === "pointer";
  return (...args: unknown[]) => {
    for (const index of pointerArgs) {
      const value = args[index];
      if (typeof value !== "bigint") {
        throw new RingKernelError(
          `pointer argument ${index} must be a bigint, got ${typeof value}`,
        );
      }
      args[index] = toPointer(value);
    }
    const result = raw(...args);
    return pointerResult ? fromPointer(result) : result;
  };
}

interface Opened {
  raw: Record<string, AnyFunction | null | undefined>;
  close: () => void;
}

function openWithDeno(path: string, table: SymbolTable): Opened {
  const library = Deno.dlopen(
    path,
    table as unknown as Deno.ForeignLibraryInterface,
  );
  return {
    raw: library.symbols as unknown as Record<string, AnyFunction | null>,
    close: () => library.close(),
  };
}

function openWithBun(path: string, table: SymbolTable): Opened {
  const ffi = bunFfi();
  const all: Record<string, BunSymbolDefinition> = {};
  const required: Record<string, BunSymbolDefinition> = {};
  const optional: string[] = [];
  for (const [name, definition] of Object.entries(table)) {
    all[name] = toBunSymbolDefinition(definition);
    if (definition.optional) optional.push(name);
    else required[name] = all[name];
  }
  const wrap = (library: BunLibrary): Opened => ({
    raw: library.symbols as Record<string, AnyFunction>,
    close: () => library.close(),
  });
  try {
    return wrap(ffi.dlopen(path, all));
  } catch (error) {
    if (optional.length === 0) throw error;
  }
  // bun:ffi has no optional symbols: open the required ones (this throws for
  // a missing library or required symbol), then probe each optional one.
  ffi.dlopen(path, required).close();
  const present: Record<string, BunSymbolDefinition> = { ...required };
  for (const name of optional) {
    try {
      ffi.dlopen(path, { [name]: all[name] }).close();
      present[name] = all[name];
    } catch {
      // Absent: reported through DynamicLibrary.missing.
    }
  }
  return wrap(ffi.dlopen(path, present));
}

function bindSymbols(
  runtime: FfiRuntime,
  table: SymbolTable,
  raw: Opened["raw"],
): { symbols: Record<string, AnyFunction | undefined>; missing: string[] } {
  const symbols: Record<string, AnyFunction | undefined> = {};
  const missing: string[] = [];
  for (const [name, definition] of Object.entries(table)) {
    const fn = raw[name];
    if (typeof fn !== "function") {
      symbols[name] = undefined;
      missing.push(name);
      continue;
    }
    if (!needsPointerConversion(definition)) {
      symbols[name] = fn;
    } else if (runtime === "deno") {
      symbols[name] = adaptPointers(
        definition,
        fn,
        (address) => Deno.UnsafePointer.create(address),
        (pointer) =>
          Deno.UnsafePointer.value(pointer as Deno.PointerValue<unknown>),
      );
    } else {
      symbols[name] = adaptPointers(
        definition,
        fn,
        (address) => address === 0n ? null : addressToNumber(address),
        (pointer) => pointer === null ? 0n : BigInt(pointer as number),
      );
    }
  }
  return { symbols, missing };
}

/**
 * Opens the first candidate that loads and binds the table's symbols.
 *
 * A candidate fails when it cannot be loaded or lacks a required symbol; the
 * next one is then tried. Optional symbols that are absent do not fail a
 * candidate.
 *
 * @param table the symbols to bind.
 * @param options the candidates and the environment override.
 * @throws {LibraryLoadError} when no candidate loads; its message and
 *   `tried` list every candidate as `"<candidate>: <why it failed>"`.
 * @throws {BackendUnavailableError} on a runtime without FFI.
 * @throws {RingKernelError} for a malformed table.
 */
export function openLibrary<const S extends SymbolTable>(
  table: S,
  options: OpenLibraryOptions,
): DynamicLibrary<S> {
  const runtime = requireFfiRuntime();
  validateSymbolTable(table);
  const candidates = libraryCandidates(options);
  const tried: string[] = [];
  for (const path of candidates) {
    let opened: Opened;
    try {
      opened = runtime === "deno"
        ? openWithDeno(path, table)
        : openWithBun(path, table);
    } catch (error) {
      tried.push(`${path}: ${describeError(error)}`);
      continue;
    }
    const { symbols, missing } = bindSymbols(runtime, table, opened.raw);
    return new DynamicLibrary<S>({
      path,
      runtime,
      missing,
      symbols: symbols as unknown as LibrarySymbols<S>,
      close: opened.close,
    });
  }
  const override = options.envVar
    ? ` (set ${options.envVar} to the library's path to choose one)`
    : "";
  throw new LibraryLoadError(
    candidates.length === 0
      ? `${options.name} could not be loaded: no candidates were given`
      : `${options.name} could not be loaded${override}; tried:\n  ${
        tried.join("\n  ")
      }`,
    tried,
  );
}
