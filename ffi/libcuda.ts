/**
 * The CUDA driver API subset ringkernel-ts uses, declared once as a symbol
 * table, with its constants.
 *
 * Conventions: every function returns a `CUresult` (`"i32"`); opaque handles
 * (`CUcontext`, `CUmodule`, `CUfunction`, `CUstream`, `CUevent`) and device
 * addresses (`CUdeviceptr`) are `"u64"`, so they travel as `bigint` in both
 * runtimes; out-parameters and host memory are `"buffer"` (a typed array).
 * Versioned names (`_v2`) are the ones `cuda.h` maps the plain names to.
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

/** The environment variable that names a libcuda to try first. */
export const LIBCUDA_ENV_VAR = "RINGKERNEL_LIBCUDA";

/** The CUDA driver functions ringkernel-ts binds. */
export const LIBCUDA_SYMBOLS = {
  // Initialisation and errors
  cuInit: { parameters: ["u32"], result: "i32" },
  cuDriverGetVersion: { parameters: ["buffer"], result: "i32" },
  cuGetErrorName: { parameters: ["i32", "buffer"], result: "i32" },
  cuGetErrorString: { parameters: ["i32", "buffer"], result: "i32" },
  // Devices
  cuDeviceGetCount: { parameters: ["buffer"], result: "i32" },
  cuDeviceGet: { parameters: ["buffer", "i32"], result: "i32" },
  cuDeviceGetName: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  cuDeviceGetAttribute: {
    parameters: ["buffer", "i32", "i32"],
    result: "i32",
  },
  // Contexts
  cuDevicePrimaryCtxRetain: { parameters: ["buffer", "i32"], result: "i32" },
  cuDevicePrimaryCtxRelease_v2: { parameters: ["i32"], result: "i32" },
  cuCtxSetCurrent: { parameters: ["u64"], result: "i32" },
  cuCtxSynchronize: { parameters: [], result: "i32" },
  // Modules
  cuModuleLoadData: { parameters: ["buffer", "buffer"], result: "i32" },
  cuModuleLoadDataEx: {
    parameters: ["buffer", "buffer", "u32", "buffer", "buffer"],
    result: "i32",
    optional: true,
  },
  cuModuleUnload: { parameters: ["u64"], result: "i32" },
  cuModuleGetFunction: {
    parameters: ["buffer", "u64", "buffer"],
    result: "i32",
  },
  cuModuleGetGlobal_v2: {
    parameters: ["buffer", "buffer", "u64", "buffer"],
    result: "i32",
  },
  // Loading mode and eager kernel fetch (lazy loading can wait for an idle GPU)
  cuModuleGetLoadingMode: {
    parameters: ["buffer"],
    result: "i32",
    optional: true,
  },
  cuModuleGetFunctionCount: {
    parameters: ["buffer", "u64"],
    result: "i32",
    optional: true,
  },
  cuModuleEnumerateFunctions: {
    parameters: ["buffer", "u32", "u64"],
    result: "i32",
    optional: true,
  },
  cuFuncGetName: {
    parameters: ["buffer", "u64"],
    result: "i32",
    optional: true,
  },
  cuFuncLoad: { parameters: ["u64"], result: "i32", optional: true },
  cuFuncIsLoaded: {
    parameters: ["buffer", "u64"],
    result: "i32",
    optional: true,
  },
  // Occupancy: how many blocks of a kernel fit on one multiprocessor
  cuOccupancyMaxActiveBlocksPerMultiprocessor: {
    parameters: ["buffer", "u64", "i32", "usize"],
    result: "i32",
    optional: true,
  },
  // Execution: f, grid xyz, block xyz, shared bytes, stream, params, extra
  cuLaunchKernel: {
    parameters: [
      "u64",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "u32",
      "u64",
      "buffer",
      "buffer",
    ],
    result: "i32",
  },
  // Streams
  cuStreamCreate: { parameters: ["buffer", "u32"], result: "i32" },
  cuStreamSynchronize: { parameters: ["u64"], result: "i32" },
  cuStreamQuery: { parameters: ["u64"], result: "i32" },
  cuStreamDestroy_v2: { parameters: ["u64"], result: "i32" },
  // Events
  cuEventCreate: { parameters: ["buffer", "u32"], result: "i32" },
  cuEventRecord: { parameters: ["u64", "u64"], result: "i32" },
  cuEventQuery: { parameters: ["u64"], result: "i32" },
  cuEventSynchronize: { parameters: ["u64"], result: "i32" },
  // cuda.h maps cuEventElapsedTime to _v2 since CUDA 12.8; older drivers only
  // have the first, and a future one may drop it: bind whichever exists.
  cuEventElapsedTime: {
    parameters: ["buffer", "u64", "u64"],
    result: "i32",
    optional: true,
  },
  cuEventElapsedTime_v2: {
    parameters: ["buffer", "u64", "u64"],
    result: "i32",
    optional: true,
  },
  cuEventDestroy_v2: { parameters: ["u64"], result: "i32" },
  // Device memory
  cuMemAlloc_v2: { parameters: ["buffer", "usize"], result: "i32" },
  cuMemFree_v2: { parameters: ["u64"], result: "i32" },
  cuMemAllocAsync: {
    parameters: ["buffer", "usize", "u64"],
    result: "i32",
    optional: true,
  },
  cuMemFreeAsync: {
    parameters: ["u64", "u64"],
    result: "i32",
    optional: true,
  },
  cuMemsetD8_v2: { parameters: ["u64", "u8", "usize"], result: "i32" },
  // Pinned host memory
  cuMemHostAlloc: { parameters: ["buffer", "usize", "u32"], result: "i32" },
  cuMemHostGetDevicePointer_v2: {
    parameters: ["buffer", "u64", "u32"],
    result: "i32",
  },
  cuMemFreeHost: { parameters: ["u64"], result: "i32" },
  // Copies
  cuMemcpyHtoD_v2: { parameters: ["u64", "buffer", "usize"], result: "i32" },
  cuMemcpyDtoH_v2: { parameters: ["buffer", "u64", "usize"], result: "i32" },
  cuMemcpyHtoDAsync_v2: {
    parameters: ["u64", "buffer", "usize", "u64"],
    result: "i32",
  },
  cuMemcpyDtoHAsync_v2: {
    parameters: ["buffer", "u64", "usize", "u64"],
    result: "i32",
  },
} as const;

/** The shape of {@linkcode LIBCUDA_SYMBOLS}. */
export type LibcudaSymbolTable = typeof LIBCUDA_SYMBOLS;

/** The bound driver functions; optional ones may be `undefined`. */
export type LibcudaSymbols = LibrarySymbols<LibcudaSymbolTable>;

/** An opened libcuda. */
export type Libcuda = DynamicLibrary<LibcudaSymbolTable>;

/**
 * What the driver layer needs from a libcuda: satisfied by {@linkcode Libcuda},
 * and by stand-ins in tests.
 */
export interface LibcudaLike {
  /** Where the library was loaded from. */
  readonly path: string;
  /** The bound functions. */
  readonly symbols: LibcudaSymbols;
  /** Optional symbols the library lacks. */
  readonly missing: readonly string[];
}

/** `CUresult` values ringkernel-ts refers to by name. */
export const CuResult = {
  /** `CUDA_SUCCESS` */
  SUCCESS: 0,
  /** `CUDA_ERROR_INVALID_VALUE` */
  ERROR_INVALID_VALUE: 1,
  /** `CUDA_ERROR_OUT_OF_MEMORY` */
  ERROR_OUT_OF_MEMORY: 2,
  /** `CUDA_ERROR_NOT_INITIALIZED` */
  ERROR_NOT_INITIALIZED: 3,
  /** `CUDA_ERROR_DEINITIALIZED` */
  ERROR_DEINITIALIZED: 4,
  /** `CUDA_ERROR_INSUFFICIENT_DRIVER` */
  ERROR_INSUFFICIENT_DRIVER: 35,
  /** `CUDA_ERROR_NO_DEVICE` */
  ERROR_NO_DEVICE: 100,
  /** `CUDA_ERROR_INVALID_DEVICE` */
  ERROR_INVALID_DEVICE: 101,
  /** `CUDA_ERROR_INVALID_IMAGE` */
  ERROR_INVALID_IMAGE: 200,
  /** `CUDA_ERROR_INVALID_CONTEXT` */
  ERROR_INVALID_CONTEXT: 201,
  /** `CUDA_ERROR_NO_BINARY_FOR_GPU` */
  ERROR_NO_BINARY_FOR_GPU: 209,
  /** `CUDA_ERROR_INVALID_PTX` */
  ERROR_INVALID_PTX: 218,
  /** `CUDA_ERROR_UNSUPPORTED_PTX_VERSION` */
  ERROR_UNSUPPORTED_PTX_VERSION: 222,
  /** `CUDA_ERROR_INVALID_HANDLE` */
  ERROR_INVALID_HANDLE: 400,
  /** `CUDA_ERROR_NOT_FOUND` */
  ERROR_NOT_FOUND: 500,
  /** `CUDA_ERROR_NOT_READY`: the work queried is still running. */
  ERROR_NOT_READY: 600,
  /** `CUDA_ERROR_ILLEGAL_ADDRESS` */
  ERROR_ILLEGAL_ADDRESS: 700,
  /** `CUDA_ERROR_LAUNCH_FAILED` */
  ERROR_LAUNCH_FAILED: 719,
  /** `CUDA_ERROR_NOT_PERMITTED` */
  ERROR_NOT_PERMITTED: 800,
  /** `CUDA_ERROR_NOT_SUPPORTED` */
  ERROR_NOT_SUPPORTED: 801,
} as const;

/** Flags of `cuStreamCreate`. */
export const CuStreamFlags = {
  /** `CU_STREAM_DEFAULT`: synchronises with the legacy default stream. */
  DEFAULT: 0,
  /** `CU_STREAM_NON_BLOCKING`: does not synchronise with the default stream. */
  NON_BLOCKING: 1,
} as const;

/** Flags of `cuEventCreate`. */
export const CuEventFlags = {
  /** `CU_EVENT_DEFAULT` */
  DEFAULT: 0,
  /** `CU_EVENT_BLOCKING_SYNC`: waiting blocks the thread instead of spinning. */
  BLOCKING_SYNC: 1,
  /** `CU_EVENT_DISABLE_TIMING`: cheaper, but no elapsed time. */
  DISABLE_TIMING: 2,
} as const;

/** Flags of `cuMemHostAlloc`. */
export const CuMemHostAllocFlags = {
  /** `CU_MEMHOSTALLOC_PORTABLE`: pinned for every context. */
  PORTABLE: 0x1,
  /** `CU_MEMHOSTALLOC_DEVICEMAP`: mapped into the device address space. */
  DEVICEMAP: 0x2,
  /** `CU_MEMHOSTALLOC_WRITECOMBINED`: fast for the device to read, slow for the host to read. */
  WRITECOMBINED: 0x4,
} as const;

/** `CUdevice_attribute` ids used with `cuDeviceGetAttribute`. */
export const CuDeviceAttribute = {
  /** `CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK` */
  MAX_THREADS_PER_BLOCK: 1,
  /** `CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK` (bytes) */
  MAX_SHARED_MEMORY_PER_BLOCK: 8,
  /** `CU_DEVICE_ATTRIBUTE_WARP_SIZE` */
  WARP_SIZE: 10,
  /** `CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT` */
  MULTIPROCESSOR_COUNT: 16,
  /** `CU_DEVICE_ATTRIBUTE_INTEGRATED` */
  INTEGRATED: 18,
  /** `CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY` */
  CAN_MAP_HOST_MEMORY: 19,
  /** `CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS` */
  CONCURRENT_KERNELS: 31,
  /** `CU_DEVICE_ATTRIBUTE_PCI_BUS_ID` */
  PCI_BUS_ID: 33,
  /** `CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR` */
  MAX_THREADS_PER_MULTIPROCESSOR: 39,
  /** `CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING` */
  UNIFIED_ADDRESSING: 41,
  /** `CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR` */
  COMPUTE_CAPABILITY_MAJOR: 75,
  /** `CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR` */
  COMPUTE_CAPABILITY_MINOR: 76,
  /** `CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH` */
  COOPERATIVE_LAUNCH: 95,
  /** `CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN` (bytes) */
  MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: 97,
  /** `CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR` */
  MAX_BLOCKS_PER_MULTIPROCESSOR: 106,
  /** `CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED`: `cuMemAllocAsync` works. */
  MEMORY_POOLS_SUPPORTED: 115,
} as const;

/** `CUmoduleLoadingMode`, from `cuModuleGetLoadingMode`. */
export const CuModuleLoadingMode = {
  /** `CU_MODULE_EAGER_LOADING`: every kernel is loaded with its module. */
  EAGER: 1,
  /** `CU_MODULE_LAZY_LOADING`: a kernel is loaded at its first use. */
  LAZY: 2,
} as const;

/**
 * The environment variable the driver reads at `cuInit` to choose its module
 * loading mode (`EAGER` or `LAZY`; lazy by default since CUDA 12.2).
 */
export const CUDA_MODULE_LOADING_ENV_VAR = "CUDA_MODULE_LOADING";

/** A `CUdevice_attribute` id from {@linkcode CuDeviceAttribute}. */
export type CuDeviceAttributeId =
  typeof CuDeviceAttribute[keyof typeof CuDeviceAttribute];

/** `CUjit_option` ids used with `cuModuleLoadDataEx`. */
export const CuJitOption = {
  /** `CU_JIT_INFO_LOG_BUFFER`: a host buffer for informational messages. */
  INFO_LOG_BUFFER: 3,
  /** `CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES`: its size (in: capacity, out: used). */
  INFO_LOG_BUFFER_SIZE_BYTES: 4,
  /** `CU_JIT_ERROR_LOG_BUFFER`: a host buffer for error messages. */
  ERROR_LOG_BUFFER: 5,
  /** `CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES`: its size (in: capacity, out: used). */
  ERROR_LOG_BUFFER_SIZE_BYTES: 6,
} as const;

/** Where to look for libcuda. */
export interface LibcudaCandidateOptions {
  /** The platform, as `process.platform` names it; defaults to this one. */
  readonly platform?: string;
  /** Names or paths to try instead of the platform's defaults. */
  readonly candidates?: readonly string[];
}

function defaultCandidates(options: LibcudaCandidateOptions): string[] {
  if (options.candidates) return [...options.candidates];
  const platform = options.platform ?? process.platform;
  return platform === "win32" ? ["nvcuda.dll"] : ["libcuda.so.1", "libcuda.so"];
}

/**
 * Lists what {@linkcode openLibcuda} tries, in order: `$RINGKERNEL_LIBCUDA`
 * when set, then `libcuda.so.1` and `libcuda.so` (`nvcuda.dll` on Windows).
 */
export function libcudaCandidates(
  options: LibcudaCandidateOptions = {},
): string[] {
  return libraryCandidates({
    candidates: defaultCandidates(options),
    envVar: LIBCUDA_ENV_VAR,
  });
}

/**
 * Opens the CUDA driver library. This only loads and binds it: call `cuInit`
 * (or use `CudaDriver.open`) before anything else.
 *
 * @throws {LibraryLoadError} listing every candidate tried and why it failed.
 * @throws {BackendUnavailableError} on a runtime without FFI.
 */
export function openLibcuda(options: LibcudaCandidateOptions = {}): Libcuda {
  return openLibrary(LIBCUDA_SYMBOLS, {
    name: "libcuda (the CUDA driver)",
    candidates: defaultCandidates(options),
    envVar: LIBCUDA_ENV_VAR,
  });
}
