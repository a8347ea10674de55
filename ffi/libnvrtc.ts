/**
 * The NVRTC API subset ringkernel-ts uses (run-time compilation of CUDA C++
 * to PTX), declared once as a symbol table, beside libcuda's.
 *
 * Conventions: every function returns an `nvrtcResult` (`"i32"`) except
 * `nvrtcGetErrorString`, which returns a C string's address; the opaque
 * `nvrtcProgram` handle is `"u64"` (a `bigint`), and out-parameters, strings
 * and arrays of strings are `"buffer"` (typed arrays).
 *
 * @module
 */

import process from "node:process";
import {
  type DynamicLibrary,
  libraryCandidates,
  type LibrarySymbols,
  openLibrary,
} from "./dylib.ts";

/** The environment variable that names a libnvrtc to try first. */
export const LIBNVRTC_ENV_VAR = "RINGKERNEL_LIBNVRTC";

/** The NVRTC functions ringkernel-ts binds. */
export const LIBNVRTC_SYMBOLS = {
  nvrtcVersion: { parameters: ["buffer", "buffer"], result: "i32" },
  nvrtcGetErrorString: { parameters: ["i32"], result: "u64" },
  nvrtcCreateProgram: {
    parameters: ["buffer", "buffer", "buffer", "i32", "buffer", "buffer"],
    result: "i32",
  },
  nvrtcCompileProgram: { parameters: ["u64", "i32", "buffer"], result: "i32" },
  nvrtcGetProgramLogSize: { parameters: ["u64", "buffer"], result: "i32" },
  nvrtcGetProgramLog: { parameters: ["u64", "buffer"], result: "i32" },
  nvrtcGetPTXSize: { parameters: ["u64", "buffer"], result: "i32" },
  nvrtcGetPTX: { parameters: ["u64", "buffer"], result: "i32" },
  nvrtcDestroyProgram: { parameters: ["buffer"], result: "i32" },
} as const;

/** The shape of {@linkcode LIBNVRTC_SYMBOLS}. */
export type LibnvrtcSymbolTable = typeof LIBNVRTC_SYMBOLS;

/** The bound NVRTC functions. */
export type LibnvrtcSymbols = LibrarySymbols<LibnvrtcSymbolTable>;

/** An opened libnvrtc. */
export type Libnvrtc = DynamicLibrary<LibnvrtcSymbolTable>;

/** `NVRTC_SUCCESS`, the `nvrtcResult` of a call that succeeded. */
export const NVRTC_SUCCESS = 0;

/** Where to look for libnvrtc. */
export interface LibnvrtcCandidateOptions {
  /** The platform, as `process.platform` names it; defaults to this one. */
  readonly platform?: string;
  /**
   * Names or paths to try instead of the platform's defaults
   * (`$RINGKERNEL_LIBNVRTC` is still tried first when set, as for libcuda).
   */
  readonly candidates?: readonly string[];
}

function defaultCandidates(options: LibnvrtcCandidateOptions): string[] {
  const platform = options.platform ?? process.platform;
  return platform === "win32" ? ["nvrtc64_130_0.dll", "nvrtc64_120_0.dll"] : [
    "libnvrtc.so.13",
    "libnvrtc.so.12",
    "libnvrtc.so",
    "/usr/local/cuda/lib64/libnvrtc.so",
  ];
}

/** The library options of {@linkcode openLibnvrtc}'s candidates. */
function lookup(options: LibnvrtcCandidateOptions): {
  candidates: string[];
  envVar: string | undefined;
} {
  return {
    candidates: options.candidates
      ? [...options.candidates]
      : defaultCandidates(options),
    envVar: LIBNVRTC_ENV_VAR,
  };
}

/**
 * Lists what {@linkcode openLibnvrtc} tries, in order: `$RINGKERNEL_LIBNVRTC`
 * when set, then the given candidates, or else `libnvrtc.so.13`,
 * `libnvrtc.so.12`, `libnvrtc.so` and `/usr/local/cuda/lib64/libnvrtc.so`
 * (`nvrtc64_130_0.dll` and `nvrtc64_120_0.dll` on Windows).
 */
export function libnvrtcCandidates(
  options: LibnvrtcCandidateOptions = {},
): string[] {
  return libraryCandidates(lookup(options));
}

/**
 * Opens libnvrtc. This only loads and binds it.
 *
 * @throws {LibraryLoadError} listing every candidate tried and why it failed.
 * @throws {BackendUnavailableError} on a runtime without FFI.
 */
export function openLibnvrtc(options: LibnvrtcCandidateOptions = {}): Libnvrtc {
  return openLibrary(LIBNVRTC_SYMBOLS, {
    name:
      "libnvrtc (CUDA run-time compilation; PTX and cubin actors do not need it)",
    ...lookup(options),
  });
}
