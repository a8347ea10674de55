/**
 * Run-time compilation of CUDA C++ actors with libnvrtc, when it is
 * installed: source → PTX for the device's architecture, with
 * `ringkernel.cuh` supplied from the package (no include paths needed).
 * Without libnvrtc, {@linkcode Nvrtc.open} throws a {@linkcode LibraryLoadError}
 * naming every candidate tried; PTX and cubin actors need no compiler.
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type Libnvrtc,
  type LibnvrtcCandidateOptions,
  NVRTC_SUCCESS,
  openLibnvrtc,
} from "../../../ffi/libnvrtc.ts";
import { addressOf, readCString } from "../../../ffi/memory.ts";
import { LibraryLoadError, RingKernelError } from "../../errors.ts";
import { shippedCudaDir } from "../../cuda/kernel_files.ts";

/** Options of {@linkcode Nvrtc.compile}. */
export interface CompileOptions {
  /** The source's file name in messages (default `"actor.cu"`). */
  readonly name?: string;
  /** Target virtual architecture, e.g. `"compute_90"` (default `"compute_80"`). */
  readonly arch?: string;
  /** More options, e.g. `["-DSCALE=2"]`. */
  readonly options?: readonly string[];
  /** Headers by include name; `ringkernel.cuh` is added unless given. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** A compiled program. */
export interface CompiledPtx {
  /** The PTX text. */
  readonly ptx: string;
  /** The compiler's log (warnings), possibly empty. */
  readonly log: string;
}

function cString(text: string): Uint8Array {
  return new TextEncoder().encode(`${text}\0`);
}

/** An array of `char*` over NUL-terminated strings; keep the result alive during the call. */
function cStringArray(texts: readonly string[]): {
  array: BigUint64Array | null;
  keep: Uint8Array[];
} {
  if (texts.length === 0) return { array: null, keep: [] };
  const keep = texts.map(cString);
  return {
    array: new BigUint64Array(keep.map((bytes) => addressOf(bytes))),
    keep,
  };
}

let ringkernelHeader: string | undefined;

/** The text of `cuda/ringkernel.cuh` shipped with the package. */
export function ringkernelHeaderText(): string {
  ringkernelHeader ??= readFileSync(
    join(shippedCudaDir(), "ringkernel.cuh"),
    "utf8",
  );
  return ringkernelHeader;
}

/** An opened libnvrtc. */
export class Nvrtc {
  readonly #library: Libnvrtc;
  /** NVRTC's version, e.g. `{ major: 13, minor: 0 }`. */
  readonly version: { readonly major: number; readonly minor: number };

  private constructor(library: Libnvrtc) {
    this.#library = library;
    const major = new Int32Array(1);
    const minor = new Int32Array(1);
    this.#check("nvrtcVersion", library.symbols.nvrtcVersion(major, minor));
    this.version = Object.freeze({ major: major[0], minor: minor[0] });
  }

  /**
   * Opens libnvrtc. Throws {@linkcode LibraryLoadError} (listing every
   * candidate and why it failed) when it is not installed.
   */
  static open(options: LibnvrtcCandidateOptions = {}): Nvrtc {
    const library = openLibnvrtc(options);
    try {
      return new Nvrtc(library);
    } catch (error) {
      library.close();
      throw error;
    }
  }

  /** Whether libnvrtc can be opened here; the reason when not. */
  static probe(
    options: LibnvrtcCandidateOptions = {},
  ): { available: boolean; reason?: string } {
    try {
      Nvrtc.open(options).close();
      return { available: true };
    } catch (error) {
      if (error instanceof LibraryLoadError) {
        return { available: false, reason: error.message };
      }
      throw error;
    }
  }

  #errorName(code: number): string {
    try {
      const address = this.#library.symbols.nvrtcGetErrorString(code);
      return address === 0n ? `NVRTC error ${code}` : readCString(address);
    } catch {
      return `NVRTC error ${code}`;
    }
  }

  #check(call: string, code: number, detail?: string): void {
    if (code !== NVRTC_SUCCESS) {
      throw new RingKernelError(
        `${call} failed: ${this.#errorName(code)} (${code})${
          detail ? `:\n${detail}` : ""
        }`,
      );
    }
  }

  /**
   * Compiles CUDA C++ source to PTX. Throws {@linkcode RingKernelError} with
   * the compiler's log when the source does not compile.
   */
  compile(source: string, options: CompileOptions = {}): CompiledPtx {
    const nvrtc = this.#library.symbols;
    const headers: Record<string, string> = {
      "ringkernel.cuh": ringkernelHeaderText(),
      ...options.headers,
    };
    const headerNames = Object.keys(headers);
    const headerTexts = cStringArray(headerNames.map((n) => headers[n]));
    const includeNames = cStringArray(headerNames);
    const program = new BigUint64Array(1);
    const src = cString(source);
    const name = cString(options.name ?? "actor.cu");
    this.#check(
      "nvrtcCreateProgram",
      nvrtc.nvrtcCreateProgram(
        program,
        src,
        name,
        headerNames.length,
        headerTexts.array,
        includeNames.array,
      ),
    );
    try {
      const flags = cStringArray([
        `--gpu-architecture=${options.arch ?? "compute_80"}`,
        "-std=c++17",
        ...(options.options ?? []),
      ]);
      const compiled = nvrtc.nvrtcCompileProgram(
        program[0],
        flags.array ? flags.array.length : 0,
        flags.array,
      );
      const log = this.#log(program[0]);
      this.#check("nvrtcCompileProgram", compiled, log);
      const size = new BigUint64Array(1);
      this.#check("nvrtcGetPTXSize", nvrtc.nvrtcGetPTXSize(program[0], size));
      const ptx = new Uint8Array(Number(size[0]));
      this.#check("nvrtcGetPTX", nvrtc.nvrtcGetPTX(program[0], ptx));
      const end = ptx.indexOf(0);
      return {
        ptx: new TextDecoder().decode(end < 0 ? ptx : ptx.subarray(0, end)),
        log,
      };
    } finally {
      nvrtc.nvrtcDestroyProgram(program);
      void headerTexts.keep;
      void includeNames.keep;
    }
  }

  #log(program: bigint): string {
    const nvrtc = this.#library.symbols;
    const size = new BigUint64Array(1);
    if (
      nvrtc.nvrtcGetProgramLogSize(program, size) !== NVRTC_SUCCESS ||
      size[0] <= 1n
    ) {
      return "";
    }
    const log = new Uint8Array(Number(size[0]));
    if (nvrtc.nvrtcGetProgramLog(program, log) !== NVRTC_SUCCESS) return "";
    const end = log.indexOf(0);
    return new TextDecoder().decode(end < 0 ? log : log.subarray(0, end))
      .trim();
  }

  /** Unloads libnvrtc. Idempotent. */
  close(): void {
    this.#library.close();
  }
}
