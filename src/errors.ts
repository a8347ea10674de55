/**
 * Typed errors raised by ringkernel-ts. Every failure the runtime reports
 * through its API (`RingKernel`, `Kernel`, message schemas, the CUDA backend
 * and its kernel bundle) is a {@linkcode RingKernelError}; catch a subclass
 * to handle one kind of failure:
 *
 * - the backend: {@linkcode BackendUnavailableError} (and its subclass
 *   {@linkcode DriverTooOldError}), {@linkcode LibraryLoadError},
 *   {@linkcode CudaError}, {@linkcode GpuResidencyError};
 * - what the caller passed: {@linkcode InvalidOptionError},
 *   {@linkcode InvalidMessageError}, {@linkcode UnknownActorError},
 *   {@linkcode ActorModuleError}, {@linkcode InvalidStateError};
 * - waiting and delivery: {@linkcode QueueFullError},
 *   {@linkcode TimeoutError}, {@linkcode ActorCrashedError};
 * - clocks: {@linkcode ClockSkewError}.
 *
 * Some calls refuse a programming mistake the way JavaScript's own functions
 * do, at the call that made it: `defineGpuActor` without a valid
 * `gpu.source` (or with a hook that is not a function) throws a `TypeError`;
 * an HLC reading that does not pack, a `HybridClock` option or a layout
 * offset throws a `RangeError`. A handler's own
 * errors reach the host as the actor's crash (serialized, with the message
 * dead-lettered), not rethrown.
 *
 * @module
 */

import {
  BackendUnavailableError,
  RingKernelError,
  type RingKernelErrorOptions,
} from "../ffi/errors.ts";

// Defined in the FFI layer, which imports nothing from src/.
export {
  BackendUnavailableError,
  InvalidStateError,
  LibraryLoadError,
  RingKernelError,
  type RingKernelErrorOptions,
} from "../ffi/errors.ts";

/** A CUDA driver call returned something other than `CUDA_SUCCESS`. */
export class CudaError extends RingKernelError {
  /** The driver call that failed, e.g. `cuModuleLoadData`. */
  readonly call: string;
  /** The numeric `CUresult`. */
  readonly code: number;
  /** The `CUresult` name from `cuGetErrorName`, e.g. `CUDA_ERROR_INVALID_PTX`. */
  readonly codeName: string;
  /** Creates the error for one failed call. */
  constructor(
    call: string,
    code: number,
    codeName: string,
    detail?: string,
  ) {
    super(
      `${call} failed: ${codeName} (${code})${detail ? `: ${detail}` : ""}`,
    );
    this.call = call;
    this.code = code;
    this.codeName = codeName;
  }
}

/**
 * The CUDA driver is older than the kernel bundle needs (its PTX ISA and
 * cubins come from a newer CUDA): `requiredDriver` names the driver branch to
 * install. Under backend `"auto"` this is the reason for the CPU fallback.
 */
export class DriverTooOldError extends BackendUnavailableError {
  /** The driver's CUDA version (`cuDriverGetVersion`), e.g. `12040`. */
  readonly driverVersion: number;
  /** The CUDA version the bundle needs, e.g. `13000`. */
  readonly requiredVersion: number;
  /** The driver branch that provides it, e.g. `"R580"`. */
  readonly requiredDriver: string;
  /** Creates the error for one driver. */
  constructor(
    init: {
      driverVersion: number;
      requiredVersion: number;
      requiredDriver: string;
      builtWith: string;
    },
  ) {
    super(
      "cuda",
      `the NVIDIA driver supports only CUDA ${
        cudaVersionText(init.driverVersion)
      }; the kernel bundle (built with CUDA ${init.builtWith}) needs CUDA ${
        cudaVersionText(init.requiredVersion)
      }: install driver ${init.requiredDriver} or newer`,
    );
    this.driverVersion = init.driverVersion;
    this.requiredVersion = init.requiredVersion;
    this.requiredDriver = init.requiredDriver;
  }
}

/** `13000` → `"13.0"`, as CUDA writes its versions. */
export function cudaVersionText(version: number): string {
  return `${Math.floor(version / 1000)}.${Math.floor((version % 1000) / 10)}`;
}

/** What a {@linkcode GpuResidencyError} ran into. */
export type GpuResidencyLimit =
  /** More blocks than fit on the device's multiprocessors at once. */
  | "blocks"
  /** More grids than a device keeps resident (128). */
  | "grids"
  /** A memory reserve is full, and growing it now could wait behind resident kernels. */
  | "memory"
  /** A module would load beside resident kernels, which can wait behind them. */
  | "module-load";

/**
 * A GPU launch or preparation was refused up front because, with kernels
 * resident, it would wait forever on a GPU: a block that does not fit waits
 * for a free multiprocessor, and loading a module or allocating memory can
 * wait for the device to go idle. The message says the limit and the way out.
 */
export class GpuResidencyError extends RingKernelError {
  /** Which limit it was. */
  readonly limit: GpuResidencyLimit;
  /** Creates the error for one refusal. */
  constructor(limit: GpuResidencyLimit, message: string) {
    super(message);
    this.limit = limit;
  }
}

/**
 * A queue had no room for a message (an actor's input queue, or a K2K
 * target's inbox) and the caller asked not to wait, or the wait ran out.
 */
export class QueueFullError extends RingKernelError {}

/**
 * An option or deadline was given a value it cannot take (NaN, a negative or
 * infinite deadline, a batch size of 0, an unknown backend name, …): `option`
 * names it, `value` is what was given.
 */
export class InvalidOptionError extends RingKernelError {
  /** The option, e.g. `"timeoutMs"` or `"queueCapacity"`. */
  readonly option: string;
  /** The value that was refused. */
  readonly value: unknown;
  /** Creates the error for one option; `expected` says what it takes. */
  constructor(
    option: string,
    value: unknown,
    expected: string,
    options?: RingKernelErrorOptions,
  ) {
    super(
      `${option} must be ${expected}, got ${describeValue(value)}`,
      options,
    );
    this.option = option;
    this.value = value;
  }
}

function describeValue(value: unknown): string {
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "number" || value === undefined || value === null) {
    return String(value);
  }
  if (typeof value === "string") return JSON.stringify(value);
  try {
    return JSON.stringify(value) ?? typeof value;
  } catch {
    return typeof value;
  }
}

/**
 * A message or a schema is not acceptable: a value that does not fit its
 * field, a slot of the wrong type id or length, messages larger than the
 * largest slot, a schema definition that is refused (or another layout under
 * a name already in use), an invalid topic or filter, or a handler that
 * returned `null` where a reply is due.
 */
export class InvalidMessageError extends RingKernelError {}

/**
 * A wait passed its deadline: a `call` or `receive` without an answer in
 * time (at once with `timeoutMs: 0`), an actor that did not start or confirm
 * a pause in time.
 */
export class TimeoutError extends RingKernelError {
  /** The deadline that passed, in milliseconds. */
  readonly timeoutMs: number;
  /** Creates the error for one expired wait. */
  constructor(what: string, timeoutMs: number) {
    super(`${what} timed out after ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

/**
 * A received hybrid logical clock reading is further ahead of the local
 * physical time than the permitted skew (`HybridClock.update`).
 */
export class ClockSkewError extends RingKernelError {
  /** The observed skew in milliseconds. */
  readonly skewMs: number;
  /** The permitted maximum in milliseconds. */
  readonly maxSkewMs: number;
  /** Creates the error for one rejected update. */
  constructor(skewMs: number, maxSkewMs: number) {
    super(
      `clock skew of ${skewMs} ms exceeds the maximum of ${maxSkewMs} ms`,
    );
    this.skewMs = skewMs;
    this.maxSkewMs = maxSkewMs;
  }
}

/**
 * A name that stands for no actor: a K2K send to an actor that does not
 * exist (or no longer does), a kernel the runtime does not have, or a
 * built-in actor that does not exist.
 */
export class UnknownActorError extends RingKernelError {
  /** The name that was not found. */
  readonly actor: string;
  /** Creates the error for one unknown name. */
  constructor(actor: string, detail?: string) {
    super(`no actor named "${actor}"${detail ? `: ${detail}` : ""}`);
    this.actor = actor;
  }
}

/**
 * An actor's module could not be imported (missing file, syntax error, no
 * read permission: the import's error is the cause), or its export is not an
 * actor definition.
 */
export class ActorModuleError extends RingKernelError {
  /** The module's URL. */
  readonly module: string;
  /** The export that was asked for. */
  readonly exportName: string;
  /** Creates the error for one module and export. */
  constructor(
    module: string,
    exportName: string,
    detail: string,
    options?: RingKernelErrorOptions,
  ) {
    super(
      `actor module ${module} (export "${exportName}"): ${detail}`,
      options,
    );
    this.module = module;
    this.exportName = exportName;
  }
}

/**
 * An actor crashed: the actor's handler (or its thread) failed on the
 * message a `call` was waiting for, which is dead-lettered (the actor may be
 * restarted), or its supervisor gave up on it, which fails every call and
 * receive still waiting.
 */
export class ActorCrashedError extends RingKernelError {
  /** The actor's name. */
  readonly actor: string;
  /** Creates the error for one crashed actor. */
  constructor(actor: string, detail: string, options?: RingKernelErrorOptions) {
    super(`actor "${actor}" crashed: ${detail}`, options);
    this.actor = actor;
  }
}
