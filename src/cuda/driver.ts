/**
 * A thin typed layer over the CUDA driver API: devices, the primary context,
 * modules and kernels, streams, events, device memory and mapped pinned host
 * memory.
 *
 * Every `CUresult` is checked and turned into a {@linkcode CudaError} that
 * carries the call, the code and its `cuGetErrorName` name. Every object has an
 * idempotent `close()` (or `free()`) and refuses use afterwards with an
 * {@linkcode InvalidStateError}; closing a context closes everything made from
 * it.
 *
 * Device addresses and handles are `bigint` here; this module is internal to
 * the CUDA backend and none of it belongs in the public API.
 *
 * **Resident kernels.** A persistent kernel never returns, so never call
 * `cuMemFree`, `cuCtxSynchronize` or default-stream operations while one runs:
 * they can wait behind it forever. The methods that do so say so; use the
 * stream-ordered variants, or call them after the kernel has terminated.
 *
 * @module
 */

import process from "node:process";
import {
  BackendUnavailableError,
  CudaError,
  InvalidStateError,
  LibraryLoadError,
  RingKernelError,
  TimeoutError,
} from "../errors.ts";
import {
  CUDA_MODULE_LOADING_ENV_VAR,
  CuDeviceAttribute,
  type CuDeviceAttributeId,
  CuEventFlags,
  CuJitOption,
  CuMemHostAllocFlags,
  CuModuleLoadingMode,
  CuResult,
  CuStreamFlags,
  libcudaCandidates,
  type LibcudaLike,
  type LibcudaSymbols,
  openLibcuda,
} from "../../ffi/libcuda.ts";
import {
  addressOf,
  mapMemory,
  readCString,
  unmapMemory,
} from "../../ffi/memory.ts";
import { hasNativeEnv, setNativeEnv } from "../../ffi/libc.ts";
import { type KernelArg, KernelParams, packKernelParams } from "./params.ts";

/** Options of {@linkcode CudaDriver.open}. */
export interface CudaDriverOptions {
  /**
   * An already opened libcuda (or a stand-in with the same symbols); when
   * given, nothing is loaded and `cuInit` is called on it.
   */
  readonly library?: LibcudaLike;
  /**
   * Names or paths to try instead of `libcuda.so.1`, `libcuda.so`
   * (`$RINGKERNEL_LIBCUDA` is still tried first when set).
   */
  readonly candidates?: readonly string[];
}

/** A device's compute capability, e.g. `{ major: 9, minor: 0 }` for Hopper. */
export interface ComputeCapability {
  /** Major version. */
  readonly major: number;
  /** Minor version. */
  readonly minor: number;
}

/** What {@linkcode CudaDriver.device} reports about one device. */
export interface CudaDeviceInfo {
  /** The device's ordinal, `0 .. deviceCount() - 1`. */
  readonly ordinal: number;
  /** The product name, e.g. `"NVIDIA H200"`. */
  readonly name: string;
  /** The compute capability. */
  readonly computeCapability: ComputeCapability;
  /** Number of streaming multiprocessors. */
  readonly multiprocessorCount: number;
  /** Whether host memory can be mapped into the device's address space. */
  readonly canMapHostMemory: boolean;
  /** Whether stream-ordered allocation (`cuMemAllocAsync`) is supported. */
  readonly memoryPoolsSupported: boolean;
  /** Most threads resident on one multiprocessor. */
  readonly maxThreadsPerMultiprocessor: number;
  /** Most blocks resident on one multiprocessor. */
  readonly maxBlocksPerMultiprocessor: number;
}

/**
 * How the driver loads a module's kernels: all with the module (`"eager"`),
 * or each at its first use (`"lazy"`, which can wait for the whole GPU to go
 * idle: never, while an actor is resident); `"unknown"` when the driver
 * cannot say.
 */
export type ModuleLoadingMode = "eager" | "lazy" | "unknown";

/** Where the driver's module loading mode came from. */
export type ModuleLoadingSource =
  /** This library set `CUDA_MODULE_LOADING=EAGER` before the first `cuInit`. */
  | "library"
  /** The environment already named a mode (the user's choice, kept). */
  | "environment"
  /** The driver was initialised before this library could choose. */
  | "preinitialised"
  /** The C environment could not be written (no C library). */
  | "unavailable";

let processLoadingSource: ModuleLoadingSource | undefined;

/**
 * Chooses eager module loading before the process's first `cuInit`, unless
 * the user named a mode in `CUDA_MODULE_LOADING`: a kernel loaded lazily
 * beside a resident one may wait for the GPU to go idle, which never happens.
 * Returns where the mode comes from; decided once per process.
 */
export function chooseModuleLoading(): ModuleLoadingSource {
  if (processLoadingSource !== undefined) return processLoadingSource;
  try {
    const chosenInJs = process.env[CUDA_MODULE_LOADING_ENV_VAR];
    if (hasNativeEnv(CUDA_MODULE_LOADING_ENV_VAR)) {
      processLoadingSource = "environment";
    } else if (chosenInJs !== undefined) {
      // Set in process.env only (a runtime need not write it through): pass it on.
      setNativeEnv(CUDA_MODULE_LOADING_ENV_VAR, chosenInJs);
      processLoadingSource = "environment";
    } else {
      setNativeEnv(CUDA_MODULE_LOADING_ENV_VAR, "EAGER");
      processLoadingSource = "library";
    }
  } catch {
    processLoadingSource = "unavailable";
  }
  return processLoadingSource;
}

/** One launch dimension: `x`, or `[x, y?, z?]` (missing ones are 1). */
export type Dim3 = number | readonly [number, number?, number?];

/** How to launch a kernel. */
export interface LaunchConfig {
  /** Blocks in the grid; defaults to 1. */
  readonly grid?: Dim3;
  /** Threads per block. */
  readonly block: Dim3;
  /** Dynamic shared memory per block in bytes; defaults to 0. */
  readonly sharedMemBytes?: number;
  /** The stream to launch on (never the legacy default stream). */
  readonly stream: CudaStream;
  /** The kernel's arguments, or parameters packed in advance. */
  readonly args?: readonly KernelArg[] | KernelParams;
}

/** Where a host↔device copy starts and whether it is stream-ordered. */
export interface CopyOptions {
  /** Byte offset into the device memory; defaults to 0. */
  readonly byteOffset?: number;
  /**
   * When given, the copy is queued on this stream and returns at once: keep the
   * host view alive and unchanged until the stream has been synchronised.
   * Without it the copy is synchronous and uses the legacy default stream.
   */
  readonly stream?: CudaStream;
}

/** Options of {@linkcode CudaContext.createStream}. */
export interface StreamOptions {
  /**
   * Create with `CU_STREAM_NON_BLOCKING`, so the stream never waits for the
   * legacy default stream; defaults to `true`.
   */
  readonly nonBlocking?: boolean;
}

/** Options of {@linkcode CudaContext.createEvent}. */
export interface EventOptions {
  /** Record timing data (needed by {@linkcode CudaEvent.elapsedMs}); defaults to `true`. */
  readonly timing?: boolean;
  /** Block the thread instead of spinning in `synchronize()`; defaults to `false`. */
  readonly blockingSync?: boolean;
}

/** Options of {@linkcode CudaContext.allocMappedHost}. */
export interface MappedHostOptions {
  /**
   * Allocate write-combined memory: faster for the device to read, very slow
   * for the host to read. Only for host→device data the host never reads back;
   * never for control blocks or device→host queues. Defaults to `false`.
   */
  readonly writeCombined?: boolean;
}

/** Options of {@linkcode CudaContext.loadModule}. */
export interface ModuleLoadOptions {
  /** A name for error messages, e.g. the bundle file; defaults to `"module"`. */
  readonly name?: string;
  /** Capacity of the JIT error log captured on failure; defaults to 16 KiB. */
  readonly errorLogBytes?: number;
  /**
   * The module's kernels, when known (a bundle's manifest): fetched right
   * after the load when the driver cannot enumerate them. PTX text names its
   * own (`.entry`).
   */
  readonly kernels?: readonly string[];
}

/** One closable thing made from a context. */
export interface Resource {
  /** Releases it. Idempotent. */
  close(): void;
}

const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46];
const FATBIN_MAGIC = [0x50, 0xed, 0x55, 0xba]; // 0xBA55ED50, little-endian
const DEFAULT_ERROR_LOG_BYTES = 16 * 1024;
const U32_MAX = 0xffff_ffff;

// The context current on this thread; shared by every driver in this realm,
// since the driver tracks the current context per thread, not per caller.
let currentContext = 0n;

function startsWith(bytes: Uint8Array, magic: readonly number[]): boolean {
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

function isBinaryImage(bytes: Uint8Array): boolean {
  return startsWith(bytes, ELF_MAGIC) || startsWith(bytes, FATBIN_MAGIC);
}

/**
 * Prepares a module image for `cuModuleLoadData`: PTX text (a string, or bytes
 * that are neither a cubin nor a fatbin) gets the NUL terminator the driver
 * needs; cubin (ELF) and fatbin bytes pass unchanged.
 *
 * @throws {RingKernelError} for an empty image or a value of another type.
 */
export function moduleImage(image: string | Uint8Array): Uint8Array {
  if (typeof image === "string") {
    if (image.length === 0) throw new RingKernelError("PTX text is empty");
    return new TextEncoder().encode(
      image.endsWith("\0") ? image : `${image}\0`,
    );
  }
  if (!(image instanceof Uint8Array)) {
    throw new RingKernelError(
      "a module image must be PTX text or a Uint8Array (PTX, cubin or fatbin)",
    );
  }
  if (image.length === 0) throw new RingKernelError("module image is empty");
  if (startsWith(image, ELF_MAGIC) || startsWith(image, FATBIN_MAGIC)) {
    return image;
  }
  if (image[image.length - 1] === 0) return image;
  const terminated = new Uint8Array(image.length + 1);
  terminated.set(image);
  return terminated;
}

/**
 * Normalises a launch dimension to `[x, y, z]`.
 *
 * @throws {RingKernelError} unless each component is an integer in
 *   `1 .. 2^32-1`.
 */
export function dim3(
  value: Dim3,
  what = "dimension",
): [number, number, number] {
  const parts = typeof value === "number"
    ? [value, 1, 1]
    : Array.isArray(value) && value.length >= 1 && value.length <= 3
    ? [value[0], value[1] ?? 1, value[2] ?? 1]
    : undefined;
  if (
    parts === undefined ||
    !parts.every((n) => Number.isInteger(n) && n >= 1 && n <= U32_MAX)
  ) {
    throw new RingKernelError(
      `${what} must be a positive integer or [x, y?, z?] of positive integers, got ${
        JSON.stringify(value)
      }`,
    );
  }
  return parts as [number, number, number];
}

function assertByteCount(value: unknown, what: string, allowZero = false) {
  if (
    typeof value !== "number" || !Number.isSafeInteger(value) ||
    value < (allowZero ? 0 : 1)
  ) {
    throw new RingKernelError(
      `${what} must be a ${
        allowZero ? "non-negative" : "positive"
      } safe integer, got ${String(value)}`,
    );
  }
  return value;
}

function decodeCString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(
    end === -1 ? bytes : bytes.subarray(0, end),
  ).trim();
}

function loadingModeOf(api: DriverApi): ModuleLoadingMode {
  const query = api.cu.cuModuleGetLoadingMode;
  if (query === undefined) return "unknown";
  const mode = new Int32Array(1);
  if (query(mode) !== CuResult.SUCCESS) return "unknown";
  return mode[0] === CuModuleLoadingMode.EAGER
    ? "eager"
    : mode[0] === CuModuleLoadingMode.LAZY
    ? "lazy"
    : "unknown";
}

/** Kernel names a PTX text declares (`.entry NAME`). */
export function ptxEntryNames(ptx: string): string[] {
  const names = new Set<string>();
  for (const match of ptx.matchAll(/\.entry\s+([A-Za-z_$][\w$]*)/g)) {
    names.add(match[1]);
  }
  return [...names];
}

const RESULT_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(CuResult).map(([key, code]) => [code, `CUDA_${key}`]),
);

/**
 * The bound library and the result checks that every driver object shares.
 * Internal to the CUDA backend.
 */
export class DriverApi {
  /** The bound driver functions. */
  readonly cu: LibcudaSymbols;
  /** Where the library was loaded from. */
  readonly path: string;

  /** Wraps an opened libcuda. */
  constructor(library: LibcudaLike) {
    this.cu = library.symbols;
    this.path = library.path;
  }

  /** The `CUresult` name, from the driver when it can say. */
  errorName(code: number): string {
    try {
      const out = new BigUint64Array(1);
      if (this.cu.cuGetErrorName(code, out) === 0 && out[0] !== 0n) {
        return readCString(out[0]);
      }
    } catch {
      // Fall back to the names known here.
    }
    return RESULT_NAMES.get(code) ?? `CUresult ${code}`;
  }

  /** The driver's description of a `CUresult`, if it has one. */
  errorString(code: number): string | undefined {
    try {
      const out = new BigUint64Array(1);
      if (this.cu.cuGetErrorString(code, out) === 0 && out[0] !== 0n) {
        return readCString(out[0]);
      }
    } catch {
      // No description then.
    }
    return undefined;
  }

  /** A {@linkcode CudaError} for a failed call, named by the driver. */
  error(call: string, code: number, detail?: string): CudaError {
    return new CudaError(
      call,
      code,
      this.errorName(code),
      detail ?? this.errorString(code),
    );
  }

  /** Throws a {@linkcode CudaError} unless `code` is `CUDA_SUCCESS`. */
  check(call: string, code: number, detail?: string): void {
    if (code !== CuResult.SUCCESS) throw this.error(call, code, detail);
  }

  /** The error for an optional driver function this driver lacks. */
  missing(symbol: string): LibraryLoadError {
    return new LibraryLoadError(
      `the CUDA driver at ${this.path} does not export ${symbol}`,
      [this.path],
    );
  }
}

const sharedLibraries = new Map<string, LibcudaLike>();

function loadLibrary(options: CudaDriverOptions): LibcudaLike {
  if (options.library) return options.library;
  const key = libcudaCandidates({ candidates: options.candidates }).join("\n");
  let library = sharedLibraries.get(key);
  if (library === undefined) {
    library = openLibcuda({ candidates: options.candidates });
    sharedLibraries.set(key, library);
  }
  return library;
}

/**
 * The CUDA driver, initialised: the entry point of the CUDA backend.
 *
 * @example
 * ```ts
 * import { readFileSync } from "node:fs";
 * import { CudaDriver } from "./driver.ts";
 *
 * const driver = CudaDriver.open();
 * try {
 *   const ctx = driver.primaryContext(0);
 *   const module = ctx.loadModule(readFileSync("kernels.ptx", "utf8"));
 *   const stream = ctx.createStream();
 *   const out = ctx.allocDevice(4);
 *   module.getFunction("store_u32").launch({
 *     block: 1,
 *     stream,
 *     args: [{ type: "ptr", value: out }, { type: "u32", value: 7 }],
 *   });
 *   await stream.waitIdle({ timeoutMs: 1_000 });
 * } finally {
 *   driver.close();
 * }
 * ```
 */
export class CudaDriver {
  /** The driver's CUDA version, e.g. `13000` for 13.0. */
  readonly driverVersion: number;
  /** Where libcuda was loaded from. */
  readonly libraryPath: string;
  /** How the driver loads kernels (`cuModuleGetLoadingMode`). */
  readonly moduleLoadingMode: ModuleLoadingMode;
  /** Where that mode came from. */
  readonly moduleLoadingSource: ModuleLoadingSource;
  #api: DriverApi;
  #contexts = new Map<number, CudaContext>();
  #closed = false;

  private constructor(
    api: DriverApi,
    driverVersion: number,
    loading: { mode: ModuleLoadingMode; source: ModuleLoadingSource },
  ) {
    this.#api = api;
    this.libraryPath = api.path;
    this.driverVersion = driverVersion;
    this.moduleLoadingMode = loading.mode;
    this.moduleLoadingSource = loading.source;
  }

  /**
   * Loads libcuda (once per process) and initialises the driver.
   *
   * The library is never unloaded: unloading the CUDA driver while its
   * threads live can bring the process down. {@linkcode CudaDriver.close}
   * releases what this object holds.
   *
   * @throws {BackendUnavailableError} (backend `"cuda"`) when the runtime has no
   *   FFI, libcuda cannot be loaded (`cause`: the {@linkcode LibraryLoadError}
   *   listing what was tried) or `cuInit` fails (`cause`: the
   *   {@linkcode CudaError}, e.g. `CUDA_ERROR_NO_DEVICE`).
   */
  static open(options: CudaDriverOptions = {}): CudaDriver {
    let library: LibcudaLike;
    try {
      library = loadLibrary(options);
    } catch (error) {
      const reason = error instanceof BackendUnavailableError
        ? error.reason
        : error instanceof Error
        ? error.message
        : String(error);
      throw new BackendUnavailableError("cuda", reason, { cause: error });
    }
    const api = new DriverApi(library);
    const source = chooseModuleLoading();
    const init = api.cu.cuInit(0);
    if (init !== CuResult.SUCCESS) {
      const error = api.error("cuInit", init);
      throw new BackendUnavailableError("cuda", error.message, {
        cause: error,
      });
    }
    const version = new Int32Array(1);
    api.check("cuDriverGetVersion", api.cu.cuDriverGetVersion(version));
    return new CudaDriver(api, version[0], {
      mode: loadingModeOf(api),
      source,
    });
  }

  /** Whether {@linkcode CudaDriver.close} has run. */
  get closed(): boolean {
    return this.#closed;
  }

  #assertOpen(operation: string): DriverApi {
    if (this.#closed) throw new InvalidStateError(operation, "closed");
    return this.#api;
  }

  /** The `CUresult` name of a code, e.g. `CUDA_ERROR_INVALID_PTX` for 218. */
  errorName(code: number): string {
    return this.#assertOpen("name an error").errorName(code);
  }

  /** Number of CUDA devices. */
  deviceCount(): number {
    const api = this.#assertOpen("count devices");
    const count = new Int32Array(1);
    api.check("cuDeviceGetCount", api.cu.cuDeviceGetCount(count));
    return count[0];
  }

  #deviceHandle(ordinal: number): number {
    const api = this.#api;
    const count = this.deviceCount();
    if (!Number.isInteger(ordinal) || ordinal < 0 || ordinal >= count) {
      throw new RingKernelError(
        `device ordinal ${ordinal} is out of range (${count} device${
          count === 1 ? "" : "s"
        })`,
      );
    }
    const device = new Int32Array(1);
    api.check("cuDeviceGet", api.cu.cuDeviceGet(device, ordinal));
    return device[0];
  }

  /**
   * Reads one attribute of a device.
   *
   * @param ordinal the device.
   * @param attribute a {@linkcode CuDeviceAttribute} id.
   */
  deviceAttribute(ordinal: number, attribute: CuDeviceAttributeId): number {
    const api = this.#assertOpen("read a device attribute");
    const device = this.#deviceHandle(ordinal);
    const value = new Int32Array(1);
    api.check(
      "cuDeviceGetAttribute",
      api.cu.cuDeviceGetAttribute(value, attribute, device),
    );
    return value[0];
  }

  /**
   * Describes one device.
   *
   * @throws {RingKernelError} for an ordinal out of range.
   */
  device(ordinal: number): CudaDeviceInfo {
    const api = this.#assertOpen("describe a device");
    const device = this.#deviceHandle(ordinal);
    const name = new Uint8Array(256);
    api.check(
      "cuDeviceGetName",
      api.cu.cuDeviceGetName(name, name.length, device),
    );
    const value = new Int32Array(1);
    const attribute = (id: CuDeviceAttributeId) => {
      api.check(
        "cuDeviceGetAttribute",
        api.cu.cuDeviceGetAttribute(value, id, device),
      );
      return value[0];
    };
    // Occupancy hints only: 0 when the driver does not report them.
    const optionalAttribute = (id: CuDeviceAttributeId) =>
      api.cu.cuDeviceGetAttribute(value, id, device) === CuResult.SUCCESS
        ? value[0]
        : 0;
    return {
      ordinal,
      name: decodeCString(name),
      computeCapability: {
        major: attribute(CuDeviceAttribute.COMPUTE_CAPABILITY_MAJOR),
        minor: attribute(CuDeviceAttribute.COMPUTE_CAPABILITY_MINOR),
      },
      multiprocessorCount: attribute(CuDeviceAttribute.MULTIPROCESSOR_COUNT),
      canMapHostMemory: attribute(CuDeviceAttribute.CAN_MAP_HOST_MEMORY) !== 0,
      memoryPoolsSupported:
        attribute(CuDeviceAttribute.MEMORY_POOLS_SUPPORTED) !== 0,
      maxThreadsPerMultiprocessor: optionalAttribute(
        CuDeviceAttribute.MAX_THREADS_PER_MULTIPROCESSOR,
      ),
      maxBlocksPerMultiprocessor: optionalAttribute(
        CuDeviceAttribute.MAX_BLOCKS_PER_MULTIPROCESSOR,
      ),
    };
  }

  /**
   * Retains a device's primary context and makes it current. Calling it again
   * for the same device returns the same context while it is open.
   *
   * @throws {RingKernelError} for an ordinal out of range.
   */
  primaryContext(ordinal = 0): CudaContext {
    const api = this.#assertOpen("retain a context");
    const existing = this.#contexts.get(ordinal);
    if (existing !== undefined && !existing.closed) return existing;
    const device = this.#deviceHandle(ordinal);
    const out = new BigUint64Array(1);
    api.check(
      "cuDevicePrimaryCtxRetain",
      api.cu.cuDevicePrimaryCtxRetain(out, device),
    );
    const context = new CudaContext(api, {
      ordinal,
      device,
      handle: out[0],
      onClose: () => this.#contexts.delete(ordinal),
    });
    try {
      context.makeCurrent();
    } catch (error) {
      context.close();
      throw error;
    }
    this.#contexts.set(ordinal, context);
    return context;
  }

  /**
   * Closes every context this driver retained (and everything made from
   * them). Idempotent. Terminate resident kernels first.
   *
   * @throws {CudaError} the first failure, after trying to close everything.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const failures: unknown[] = [];
    for (const context of [...this.#contexts.values()].reverse()) {
      try {
        context.close();
      } catch (error) {
        failures.push(error);
      }
    }
    this.#contexts.clear();
    if (failures.length > 0) throw failures[0];
  }
}

/**
 * A device's primary context, retained by {@linkcode CudaDriver.primaryContext}.
 * Everything made from it is closed with it.
 */
export class CudaContext {
  /** The device ordinal. */
  readonly ordinal: number;
  /** The `CUcontext` handle. */
  readonly handle: bigint;
  #api: DriverApi;
  #device: number;
  #resources = new Set<Resource>();
  #onClose: () => void;
  #closed = false;

  /** Wraps a retained context; use {@linkcode CudaDriver.primaryContext}. */
  constructor(
    api: DriverApi,
    init: {
      ordinal: number;
      device: number;
      handle: bigint;
      onClose: () => void;
    },
  ) {
    this.#api = api;
    this.ordinal = init.ordinal;
    this.#device = init.device;
    this.handle = init.handle;
    this.#onClose = init.onClose;
  }

  /** Whether {@linkcode CudaContext.close} has run. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Whether the driver exports the stream-ordered allocator. */
  get supportsAsyncAlloc(): boolean {
    return this.#api.cu.cuMemAllocAsync !== undefined &&
      this.#api.cu.cuMemFreeAsync !== undefined;
  }

  /**
   * Checks the context is open and current on this thread; returns the API.
   * @internal
   */
  use(operation: string): DriverApi {
    if (this.#closed) throw new InvalidStateError(operation, "closed");
    if (currentContext !== this.handle) this.makeCurrent();
    return this.#api;
  }

  /** Makes this context current on the calling thread. */
  makeCurrent(): void {
    if (this.#closed) throw new InvalidStateError("make current", "closed");
    this.#api.check(
      "cuCtxSetCurrent",
      this.#api.cu.cuCtxSetCurrent(this.handle),
    );
    currentContext = this.handle;
  }

  /** @internal Registers a resource closed with this context. */
  adopt(resource: Resource): void {
    this.#resources.add(resource);
  }

  /** @internal Forgets a resource that closed itself. */
  release(resource: Resource): void {
    this.#resources.delete(resource);
  }

  /**
   * Waits for all work in the context (`cuCtxSynchronize`).
   *
   * Never call this while a resident kernel runs: it waits for that kernel,
   * which never finishes. Synchronise the kernel's stream after terminating
   * it instead.
   */
  synchronize(): void {
    const api = this.use("synchronize");
    api.check("cuCtxSynchronize", api.cu.cuCtxSynchronize());
  }

  /**
   * Loads a module: PTX text (string or bytes; JIT-compiled by the driver), a
   * cubin or a fatbin.
   *
   * @throws {CudaError} when the driver rejects the image (for PTX, e.g.
   *   `CUDA_ERROR_INVALID_PTX`, with the JIT error log as detail when the driver
   *   exports `cuModuleLoadDataEx`).
   */
  loadModule(
    image: string | Uint8Array,
    options: ModuleLoadOptions = {},
  ): CudaModule {
    const api = this.use("load a module");
    const bytes = moduleImage(image);
    const out = new BigUint64Array(1);
    const loadEx = api.cu.cuModuleLoadDataEx;
    if (loadEx === undefined) {
      api.check("cuModuleLoadData", api.cu.cuModuleLoadData(out, bytes));
    } else {
      const log = new Uint8Array(
        assertByteCount(
          options.errorLogBytes ?? DEFAULT_ERROR_LOG_BYTES,
          "errorLogBytes",
        ),
      );
      const jitOptions = new Uint32Array([
        CuJitOption.ERROR_LOG_BUFFER,
        CuJitOption.ERROR_LOG_BUFFER_SIZE_BYTES,
      ]);
      // Option values are void*: the buffer's address, then its size itself.
      const jitValues = new BigUint64Array([
        addressOf(log),
        BigInt(log.byteLength),
      ]);
      const result = loadEx(
        out,
        bytes,
        jitOptions.length,
        jitOptions,
        jitValues,
      );
      if (result !== CuResult.SUCCESS) {
        const jitLog = decodeCString(log);
        const name = options.name ?? "module";
        throw api.error(
          "cuModuleLoadDataEx",
          result,
          jitLog ? `${name}: ${jitLog}` : undefined,
        );
      }
    }
    const module = new CudaModule(this, out[0]);
    this.adopt(module);
    try {
      module.fetchAllFunctions(
        options.kernels ??
          (typeof image === "string" || !isBinaryImage(bytes)
            ? ptxEntryNames(new TextDecoder().decode(bytes))
            : []),
      );
    } catch (error) {
      module.close();
      throw error;
    }
    return module;
  }

  /**
   * Creates a stream; non-blocking (`CU_STREAM_NON_BLOCKING`) unless told
   * otherwise, so it never waits behind the legacy default stream.
   */
  createStream(options: StreamOptions = {}): CudaStream {
    const api = this.use("create a stream");
    const out = new BigUint64Array(1);
    const flags = options.nonBlocking === false
      ? CuStreamFlags.DEFAULT
      : CuStreamFlags.NON_BLOCKING;
    api.check("cuStreamCreate", api.cu.cuStreamCreate(out, flags));
    const stream = new CudaStream(this, out[0]);
    this.adopt(stream);
    return stream;
  }

  /** Creates an event (timing enabled unless told otherwise). */
  createEvent(options: EventOptions = {}): CudaEvent {
    const api = this.use("create an event");
    const flags = (options.timing === false ? CuEventFlags.DISABLE_TIMING : 0) |
      (options.blockingSync ? CuEventFlags.BLOCKING_SYNC : 0);
    const out = new BigUint64Array(1);
    api.check("cuEventCreate", api.cu.cuEventCreate(out, flags));
    const event = new CudaEvent(this, out[0], options.timing !== false);
    this.adopt(event);
    return event;
  }

  /** Allocates device memory (`cuMemAlloc`). */
  allocDevice(byteLength: number): DeviceMemory {
    assertByteCount(byteLength, "byteLength");
    const api = this.use("allocate device memory");
    const out = new BigUint64Array(1);
    api.check("cuMemAlloc_v2", api.cu.cuMemAlloc_v2(out, byteLength));
    const memory = new DeviceMemory(this, out[0], byteLength);
    this.adopt(memory);
    return memory;
  }

  /**
   * Allocates device memory ordered on a stream (`cuMemAllocAsync`): usable by
   * work queued on `stream` after this call; safe while resident kernels run.
   *
   * @throws {LibraryLoadError} when the driver lacks `cuMemAllocAsync`.
   */
  allocDeviceAsync(byteLength: number, stream: CudaStream): DeviceMemory {
    assertByteCount(byteLength, "byteLength");
    const api = this.use("allocate device memory");
    const allocAsync = api.cu.cuMemAllocAsync;
    if (allocAsync === undefined) throw api.missing("cuMemAllocAsync");
    const out = new BigUint64Array(1);
    api.check(
      "cuMemAllocAsync",
      allocAsync(out, byteLength, this.#streamHandle(stream, "allocate")),
    );
    const memory = new DeviceMemory(this, out[0], byteLength);
    this.adopt(memory);
    return memory;
  }

  /**
   * Allocates pinned host memory mapped into the device's address space
   * (`cuMemHostAlloc` with `PORTABLE | DEVICEMAP`), and maps it once as an
   * ArrayBuffer for the host.
   */
  allocMappedHost(
    byteLength: number,
    options: MappedHostOptions = {},
  ): MappedHostMemory {
    assertByteCount(byteLength, "byteLength");
    const api = this.use("allocate mapped host memory");
    const writeCombined = options.writeCombined === true;
    const flags = CuMemHostAllocFlags.PORTABLE | CuMemHostAllocFlags.DEVICEMAP |
      (writeCombined ? CuMemHostAllocFlags.WRITECOMBINED : 0);
    const host = new BigUint64Array(1);
    api.check(
      "cuMemHostAlloc",
      api.cu.cuMemHostAlloc(host, byteLength, flags),
    );
    let device: bigint;
    let buffer: ArrayBuffer;
    try {
      const out = new BigUint64Array(1);
      api.check(
        "cuMemHostGetDevicePointer_v2",
        api.cu.cuMemHostGetDevicePointer_v2(out, host[0], 0),
      );
      device = out[0];
      buffer = mapMemory(host[0], byteLength);
    } catch (error) {
      // Nothing escapes half-made: give the pinned memory back.
      api.cu.cuMemFreeHost(host[0]);
      throw error;
    }
    const memory = new MappedHostMemory(this, {
      hostAddress: host[0],
      deviceAddress: device,
      byteLength,
      buffer,
      writeCombined,
    });
    this.adopt(memory);
    return memory;
  }

  /** @internal The handle of a stream of this context. */
  #streamHandle(stream: CudaStream, operation: string): bigint {
    if (!(stream instanceof CudaStream) || stream.context !== this) {
      throw new RingKernelError(
        `cannot ${operation} on a stream of another context (or not a stream)`,
      );
    }
    return stream.handle(operation);
  }

  /**
   * Closes everything made from this context, newest first, then releases the
   * primary context. Idempotent. Terminate resident kernels first.
   *
   * @throws {CudaError} the first failure, after trying to close everything.
   */
  close(): void {
    if (this.#closed) return;
    const failures: unknown[] = [];
    for (const resource of [...this.#resources].reverse()) {
      try {
        resource.close();
      } catch (error) {
        failures.push(error);
      }
    }
    this.#resources.clear();
    this.#closed = true;
    this.#onClose();
    const api = this.#api;
    if (currentContext === this.handle) {
      currentContext = 0n;
      const unset = api.cu.cuCtxSetCurrent(0n);
      if (unset !== CuResult.SUCCESS) {
        failures.push(api.error("cuCtxSetCurrent", unset));
      }
    }
    const released = api.cu.cuDevicePrimaryCtxRelease_v2(this.#device);
    if (released !== CuResult.SUCCESS) {
      failures.push(api.error("cuDevicePrimaryCtxRelease_v2", released));
    }
    if (failures.length > 0) throw failures[0];
  }
}

/**
 * Shared lifecycle of everything made from a context: closed once, refusing
 * use afterwards, and closed with its context.
 */
export abstract class ContextResource implements Resource {
  /** The context this was made from. */
  readonly context: CudaContext;
  #closed = false;
  #state: string;

  /** Ties the resource to `context`; `closedState` names it once closed. */
  constructor(context: CudaContext, closedState: string) {
    this.context = context;
    this.#state = closedState;
  }

  /** Whether this has been closed or freed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Checks this and its context are open, and makes the context current. */
  protected use(operation: string): DriverApi {
    if (this.#closed) throw new InvalidStateError(operation, this.#state);
    return this.context.use(operation);
  }

  /** Marks closed and runs `release` once; later calls do nothing. */
  protected closeWith(release: () => void): void {
    if (this.#closed) return;
    this.#closed = true;
    this.context.release(this);
    release();
  }

  /** Releases the resource. Idempotent. */
  abstract close(): void;
}

/** A stream (`CUstream`), made by {@linkcode CudaContext.createStream}. */
export class CudaStream extends ContextResource {
  #handle: bigint;

  /** Wraps a created stream; use {@linkcode CudaContext.createStream}. */
  constructor(context: CudaContext, handle: bigint) {
    super(context, "destroyed");
    this.#handle = handle;
  }

  /** @internal The `CUstream` handle, checked open. */
  handle(operation = "use a stream"): bigint {
    this.use(operation);
    return this.#handle;
  }

  /**
   * Waits until all work queued on the stream has finished. With a resident
   * kernel on this stream, this waits until that kernel terminates.
   */
  synchronize(): void {
    const api = this.use("synchronize a stream");
    api.check("cuStreamSynchronize", api.cu.cuStreamSynchronize(this.#handle));
  }

  /** Whether all work queued on the stream has finished (`cuStreamQuery`). */
  query(): boolean {
    const api = this.use("query a stream");
    const result = api.cu.cuStreamQuery(this.#handle);
    if (result === CuResult.ERROR_NOT_READY) return false;
    api.check("cuStreamQuery", result);
    return true;
  }

  /**
   * Waits, without blocking the thread, until all work queued on the stream has
   * finished: polls {@linkcode CudaStream.query} with a growing pause (up to
   * `maxPollIntervalMs`) between polls.
   *
   * @throws {TimeoutError} when the work is still running after `timeoutMs`.
   */
  async waitIdle(
    options: { timeoutMs: number; maxPollIntervalMs?: number },
  ): Promise<void> {
    const { timeoutMs, maxPollIntervalMs = 10 } = options;
    if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
      throw new RingKernelError(
        `timeoutMs must be a positive finite number, got ${timeoutMs}`,
      );
    }
    const deadline = performance.now() + timeoutMs;
    let pause = 0;
    while (!this.query()) {
      if (performance.now() >= deadline) {
        throw new TimeoutError("waiting for a CUDA stream", timeoutMs);
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(Math.max(pause * 2, 1), maxPollIntervalMs);
    }
  }

  /**
   * Destroys the stream (`cuStreamDestroy`); work already queued still runs.
   * Idempotent.
   */
  close(): void {
    this.closeWith(() => {
      const api = this.context.use("destroy a stream");
      api.check("cuStreamDestroy_v2", api.cu.cuStreamDestroy_v2(this.#handle));
    });
  }
}

/** An event (`CUevent`), made by {@linkcode CudaContext.createEvent}. */
export class CudaEvent extends ContextResource {
  /** Whether the event records timing data. */
  readonly timing: boolean;
  #handle: bigint;

  /** Wraps a created event; use {@linkcode CudaContext.createEvent}. */
  constructor(context: CudaContext, handle: bigint, timing: boolean) {
    super(context, "destroyed");
    this.#handle = handle;
    this.timing = timing;
  }

  /**
   * Milliseconds between two recorded, completed events of one context
   * (resolution about half a microsecond).
   *
   * @throws {CudaError} e.g. `CUDA_ERROR_NOT_READY` when either has not
   *   completed, or `CUDA_ERROR_INVALID_HANDLE` without timing data.
   * @throws {LibraryLoadError} when the driver exports neither
   *   `cuEventElapsedTime_v2` nor `cuEventElapsedTime`.
   */
  static elapsedMs(start: CudaEvent, end: CudaEvent): number {
    const api = start.use("read elapsed time");
    end.use("read elapsed time");
    const [call, elapsed] = api.cu.cuEventElapsedTime_v2
      ? ["cuEventElapsedTime_v2", api.cu.cuEventElapsedTime_v2] as const
      : ["cuEventElapsedTime", api.cu.cuEventElapsedTime] as const;
    if (elapsed === undefined) throw api.missing("cuEventElapsedTime");
    const out = new Float32Array(1);
    api.check(call, elapsed(out, start.#handle, end.#handle));
    return out[0];
  }

  /** Records the event on a stream (`cuEventRecord`). */
  record(stream: CudaStream): void {
    const api = this.use("record an event");
    if (!(stream instanceof CudaStream) || stream.context !== this.context) {
      throw new RingKernelError(
        "an event can only be recorded on a stream of its own context",
      );
    }
    api.check(
      "cuEventRecord",
      api.cu.cuEventRecord(this.#handle, stream.handle("record an event")),
    );
  }

  /** Waits until the recorded work has completed (`cuEventSynchronize`). */
  synchronize(): void {
    const api = this.use("synchronize an event");
    api.check("cuEventSynchronize", api.cu.cuEventSynchronize(this.#handle));
  }

  /** Whether the recorded work has completed (`cuEventQuery`). */
  query(): boolean {
    const api = this.use("query an event");
    const result = api.cu.cuEventQuery(this.#handle);
    if (result === CuResult.ERROR_NOT_READY) return false;
    api.check("cuEventQuery", result);
    return true;
  }

  /** Destroys the event. Idempotent. */
  close(): void {
    this.closeWith(() => {
      const api = this.context.use("destroy an event");
      api.check("cuEventDestroy_v2", api.cu.cuEventDestroy_v2(this.#handle));
    });
  }
}

/** A loaded module (`CUmodule`), made by {@linkcode CudaContext.loadModule}. */
export class CudaModule extends ContextResource {
  #handle: bigint;
  #functions = new Map<string, CudaFunction>();

  /** Wraps a loaded module; use {@linkcode CudaContext.loadModule}. */
  constructor(context: CudaContext, handle: bigint) {
    super(context, "unloaded");
    this.#handle = handle;
  }

  /** The kernels fetched so far (all of them, once loaded by {@linkcode CudaContext.loadModule}). */
  get functionNames(): readonly string[] {
    return [...this.#functions.keys()];
  }

  /**
   * Fetches (and, under lazy loading, loads) every kernel of the module now,
   * so no kernel is loaded for the first time beside a resident one: all that
   * the driver enumerates (`cuModuleEnumerateFunctions`), else each of
   * `names`. A name the module lacks is skipped. Called by
   * {@linkcode CudaContext.loadModule}.
   */
  fetchAllFunctions(names: readonly string[] = []): void {
    const api = this.use("fetch the kernels of a module");
    const {
      cuModuleGetFunctionCount: count,
      cuModuleEnumerateFunctions: list,
    } = api.cu;
    if (count !== undefined && list !== undefined) {
      const n = new Uint32Array(1);
      api.check("cuModuleGetFunctionCount", count(n, this.#handle));
      const handles = new BigUint64Array(n[0]);
      if (n[0] > 0) {
        api.check(
          "cuModuleEnumerateFunctions",
          list(handles, n[0], this.#handle),
        );
      }
      const enumerated = [...handles].map((handle) => ({
        handle,
        name: this.#nameOf(api, handle),
      }));
      if (enumerated.every((f) => f.name !== undefined)) {
        for (const { handle, name } of enumerated) {
          this.#loadFunction(api, handle);
          if (!this.#functions.has(name!)) {
            this.#functions.set(name!, new CudaFunction(this, name!, handle));
          }
        }
        return;
      }
    }
    for (const name of names) {
      try {
        this.getFunction(name);
      } catch (error) {
        if (
          !(error instanceof CudaError) ||
          error.code !== CuResult.ERROR_NOT_FOUND
        ) throw error;
      }
    }
  }

  #nameOf(api: DriverApi, handle: bigint): string | undefined {
    const getName = api.cu.cuFuncGetName;
    if (getName === undefined) return undefined;
    const out = new BigUint64Array(1);
    if (getName(out, handle) !== CuResult.SUCCESS || out[0] === 0n) {
      return undefined;
    }
    return readCString(out[0]);
  }

  /** Loads an enumerated kernel the driver left unloaded (lazy loading). */
  #loadFunction(api: DriverApi, handle: bigint): void {
    const { cuFuncIsLoaded: isLoaded, cuFuncLoad: load } = api.cu;
    if (load === undefined) return;
    if (isLoaded !== undefined) {
      const state = new Int32Array(1);
      if (isLoaded(state, handle) === CuResult.SUCCESS && state[0] === 1) {
        return;
      }
    }
    api.check("cuFuncLoad", load(handle));
  }

  /**
   * Looks up a kernel by its (unmangled, `extern "C"`) name.
   *
   * @throws {CudaError} `CUDA_ERROR_NOT_FOUND` when the module has no such
   *   kernel.
   */
  getFunction(name: string): CudaFunction {
    const api = this.use("get a function");
    const known = this.#functions.get(name);
    if (known !== undefined) return known;
    if (typeof name !== "string" || name.length === 0 || name.includes("\0")) {
      throw new RingKernelError(`invalid kernel name ${JSON.stringify(name)}`);
    }
    const out = new BigUint64Array(1);
    api.check(
      "cuModuleGetFunction",
      api.cu.cuModuleGetFunction(
        out,
        this.#handle,
        new TextEncoder().encode(`${name}\0`),
      ),
      `kernel ${JSON.stringify(name)}`,
    );
    const fn = new CudaFunction(this, name, out[0]);
    this.#functions.set(name, fn);
    return fn;
  }

  /**
   * Finds a `__device__` global variable: its device address and size.
   *
   * @throws {CudaError} `CUDA_ERROR_NOT_FOUND` when there is no such global.
   */
  getGlobal(name: string): { deviceAddress: bigint; byteLength: number } {
    const api = this.use("get a global");
    if (typeof name !== "string" || name.length === 0 || name.includes("\0")) {
      throw new RingKernelError(`invalid global name ${JSON.stringify(name)}`);
    }
    const address = new BigUint64Array(1);
    const size = new BigUint64Array(1);
    api.check(
      "cuModuleGetGlobal_v2",
      api.cu.cuModuleGetGlobal_v2(
        address,
        size,
        this.#handle,
        new TextEncoder().encode(`${name}\0`),
      ),
      `global ${JSON.stringify(name)}`,
    );
    return { deviceAddress: address[0], byteLength: Number(size[0]) };
  }

  /** Unloads the module (`cuModuleUnload`); its functions become unusable. Idempotent. */
  close(): void {
    this.closeWith(() => {
      this.#functions.clear();
      const api = this.context.use("unload a module");
      api.check("cuModuleUnload", api.cu.cuModuleUnload(this.#handle));
    });
  }
}

/** A kernel (`CUfunction`), from {@linkcode CudaModule.getFunction}. */
export class CudaFunction {
  /** The module it belongs to. */
  readonly module: CudaModule;
  /** The kernel's name. */
  readonly name: string;
  #handle: bigint;

  /** Wraps a looked-up kernel; use {@linkcode CudaModule.getFunction}. */
  constructor(module: CudaModule, name: string, handle: bigint) {
    this.module = module;
    this.name = name;
    this.#handle = handle;
  }

  /**
   * How many blocks of this kernel fit on one multiprocessor at once
   * (`cuOccupancyMaxActiveBlocksPerMultiprocessor`), or `undefined` when the
   * driver cannot say.
   */
  maxActiveBlocksPerMultiprocessor(
    blockThreads: number,
    sharedMemBytes = 0,
  ): number | undefined {
    const api = this.module.context.use(`occupancy of ${this.name}`);
    const occupancy = api.cu.cuOccupancyMaxActiveBlocksPerMultiprocessor;
    if (occupancy === undefined) return undefined;
    const out = new Int32Array(1);
    api.check(
      "cuOccupancyMaxActiveBlocksPerMultiprocessor",
      occupancy(out, this.#handle, blockThreads, sharedMemBytes),
      `kernel ${JSON.stringify(this.name)}`,
    );
    return out[0];
  }

  /**
   * Queues the kernel on a stream (`cuLaunchKernel`); returns without waiting.
   * The arguments are copied by the driver during the call.
   *
   * @throws {InvalidStateError} when the module, stream or context is closed.
   * @throws {RingKernelError} for bad dimensions, shared memory or arguments.
   * @throws {CudaError} when the driver refuses the launch.
   */
  launch(config: LaunchConfig): void {
    if (this.module.closed) {
      throw new InvalidStateError(`launch ${this.name}`, "unloaded");
    }
    const context = this.module.context;
    const api = context.use(`launch ${this.name}`);
    const [gx, gy, gz] = dim3(config.grid ?? 1, "grid");
    const [bx, by, bz] = dim3(config.block, "block");
    const shared = config.sharedMemBytes ?? 0;
    if (!Number.isInteger(shared) || shared < 0 || shared > U32_MAX) {
      throw new RingKernelError(
        `sharedMemBytes must be an integer in 0..${U32_MAX}, got ${shared}`,
      );
    }
    const stream = config.stream;
    if (!(stream instanceof CudaStream) || stream.context !== context) {
      throw new RingKernelError(
        `launch ${this.name} needs a stream of the module's context`,
      );
    }
    const params = config.args instanceof KernelParams
      ? config.args
      : packKernelParams(config.args ?? []);
    api.check(
      "cuLaunchKernel",
      api.cu.cuLaunchKernel(
        this.#handle,
        gx,
        gy,
        gz,
        bx,
        by,
        bz,
        shared,
        stream.handle(`launch ${this.name}`),
        params.pointers,
        null,
      ),
      `kernel ${JSON.stringify(this.name)}`,
    );
  }
}

function checkRange(
  byteOffset: number,
  byteLength: number,
  capacity: number,
): void {
  assertByteCount(byteOffset, "byteOffset", true);
  if (byteOffset + byteLength > capacity) {
    throw new RingKernelError(
      `${byteLength} bytes at offset ${byteOffset} run past the end of ${capacity} bytes`,
    );
  }
}

function hostView(view: ArrayBufferView, what: string): Uint8Array {
  if (!ArrayBuffer.isView(view)) {
    throw new RingKernelError(`${what} must be a typed array or DataView`);
  }
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Device memory (`cuMemAlloc` / `cuMemAllocAsync`). */
export class DeviceMemory extends ContextResource {
  /** The device address of the first byte. */
  readonly deviceAddress: bigint;
  /** Size in bytes. */
  readonly byteLength: number;

  /** Wraps an allocation; use {@linkcode CudaContext.allocDevice}. */
  constructor(context: CudaContext, deviceAddress: bigint, byteLength: number) {
    super(context, "freed");
    this.deviceAddress = deviceAddress;
    this.byteLength = byteLength;
  }

  /**
   * Copies host bytes into this memory. Synchronous (legacy default stream)
   * without `options.stream`: never while a resident kernel runs.
   */
  copyFromHost(source: ArrayBufferView, options: CopyOptions = {}): void {
    const api = this.use("copy to device memory");
    const bytes = hostView(source, "source");
    const offset = options.byteOffset ?? 0;
    checkRange(offset, bytes.byteLength, this.byteLength);
    if (bytes.byteLength === 0) return;
    const target = this.deviceAddress + BigInt(offset);
    if (options.stream === undefined) {
      api.check(
        "cuMemcpyHtoD_v2",
        api.cu.cuMemcpyHtoD_v2(target, bytes, bytes.byteLength),
      );
    } else {
      api.check(
        "cuMemcpyHtoDAsync_v2",
        api.cu.cuMemcpyHtoDAsync_v2(
          target,
          bytes,
          bytes.byteLength,
          this.#stream(options.stream),
        ),
      );
    }
  }

  /**
   * Copies bytes of this memory to the host. Synchronous (legacy default
   * stream) without `options.stream`: never while a resident kernel runs.
   */
  copyToHost(target: ArrayBufferView, options: CopyOptions = {}): void {
    const api = this.use("copy from device memory");
    const bytes = hostView(target, "target");
    const offset = options.byteOffset ?? 0;
    checkRange(offset, bytes.byteLength, this.byteLength);
    if (bytes.byteLength === 0) return;
    const source = this.deviceAddress + BigInt(offset);
    if (options.stream === undefined) {
      api.check(
        "cuMemcpyDtoH_v2",
        api.cu.cuMemcpyDtoH_v2(bytes, source, bytes.byteLength),
      );
    } else {
      api.check(
        "cuMemcpyDtoHAsync_v2",
        api.cu.cuMemcpyDtoHAsync_v2(
          bytes,
          source,
          bytes.byteLength,
          this.#stream(options.stream),
        ),
      );
    }
  }

  /**
   * Sets bytes to `value` (`cuMemsetD8`, on the legacy default stream: never
   * while a resident kernel runs).
   */
  fill(
    value: number,
    options: { byteOffset?: number; byteLength?: number } = {},
  ): void {
    const api = this.use("fill device memory");
    if (!Number.isInteger(value) || value < 0 || value > 0xff) {
      throw new RingKernelError(`fill value must be a byte, got ${value}`);
    }
    const offset = options.byteOffset ?? 0;
    assertByteCount(offset, "byteOffset", true);
    const length = options.byteLength ?? this.byteLength - offset;
    assertByteCount(length, "byteLength", true);
    checkRange(offset, length, this.byteLength);
    if (length === 0) return;
    api.check(
      "cuMemsetD8_v2",
      api.cu.cuMemsetD8_v2(this.deviceAddress + BigInt(offset), value, length),
    );
  }

  #stream(stream: CudaStream): bigint {
    if (!(stream instanceof CudaStream) || stream.context !== this.context) {
      throw new RingKernelError("copies need a stream of the same context");
    }
    return stream.handle("copy");
  }

  /**
   * Frees the memory now (`cuMemFree`). This may synchronise the device: never
   * while a resident kernel runs — use {@linkcode DeviceMemory.freeAsync}, or
   * free after terminating it. Idempotent.
   */
  free(): void {
    this.closeWith(() => {
      const api = this.context.use("free device memory");
      api.check("cuMemFree_v2", api.cu.cuMemFree_v2(this.deviceAddress));
    });
  }

  /**
   * Frees the memory in stream order (`cuMemFreeAsync`): after the work queued
   * on `stream` so far. Safe while resident kernels run on other streams.
   * Idempotent.
   *
   * @throws {LibraryLoadError} when the driver lacks `cuMemFreeAsync`.
   */
  freeAsync(stream: CudaStream): void {
    if (this.closed) return;
    const api = this.use("free device memory");
    const freeAsync = api.cu.cuMemFreeAsync;
    if (freeAsync === undefined) throw api.missing("cuMemFreeAsync");
    const handle = this.#stream(stream);
    this.closeWith(() => {
      api.check("cuMemFreeAsync", freeAsync(this.deviceAddress, handle));
    });
  }

  /** Same as {@linkcode DeviceMemory.free}. */
  close(): void {
    this.free();
  }
}

/**
 * Pinned host memory mapped into the device's address space
 * (`cuMemHostAlloc` with `PORTABLE | DEVICEMAP`): the host reads and writes it
 * through {@linkcode MappedHostMemory.buffer}, kernels through
 * {@linkcode MappedHostMemory.deviceAddress}.
 */
export class MappedHostMemory extends ContextResource {
  /** The host address of the first byte. */
  readonly hostAddress: bigint;
  /** The address kernels use for the first byte. */
  readonly deviceAddress: bigint;
  /** Size in bytes. */
  readonly byteLength: number;
  /** Whether the memory is write-combined (slow for the host to read). */
  readonly writeCombined: boolean;
  #buffer: ArrayBuffer;

  /** Wraps an allocation; use {@linkcode CudaContext.allocMappedHost}. */
  constructor(
    context: CudaContext,
    init: {
      hostAddress: bigint;
      deviceAddress: bigint;
      byteLength: number;
      buffer: ArrayBuffer;
      writeCombined: boolean;
    },
  ) {
    super(context, "freed");
    this.hostAddress = init.hostAddress;
    this.deviceAddress = init.deviceAddress;
    this.byteLength = init.byteLength;
    this.#buffer = init.buffer;
    this.writeCombined = init.writeCombined;
  }

  /**
   * The memory as an ArrayBuffer (mapped once; every call returns the same
   * buffer). Freeing detaches it, so views made from it read as empty.
   *
   * @throws {InvalidStateError} once freed.
   */
  get buffer(): ArrayBuffer {
    if (this.closed) throw new InvalidStateError("use host memory", "freed");
    return this.#buffer;
  }

  /**
   * Frees the memory (`cuMemFreeHost`) after detaching the host mapping.
   * Kernels must no longer touch it; this may synchronise the device, so never
   * call it while a resident kernel runs. Idempotent.
   */
  free(): void {
    this.closeWith(() => {
      unmapMemory(this.#buffer);
      const api = this.context.use("free host memory");
      api.check("cuMemFreeHost", api.cu.cuMemFreeHost(this.hostAddress));
    });
  }

  /** Same as {@linkcode MappedHostMemory.free}. */
  close(): void {
    this.free();
  }
}
