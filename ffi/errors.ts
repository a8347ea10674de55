/**
 * The errors the FFI layer raises, and their base class
 * {@linkcode RingKernelError}.
 *
 * They are defined here, at the bottom of the module graph, so that `ffi/`
 * imports nothing from above it. `src/errors.ts` re-exports them beside the
 * rest of ringkernel-ts's errors: each class exists once, and every error
 * the library reports is still a {@linkcode RingKernelError}.
 *
 * @module
 */

/** Options shared by every {@linkcode RingKernelError}. */
export interface RingKernelErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * Base class of the errors ringkernel-ts reports; its `name` is the
 * subclass's name.
 */
export class RingKernelError extends Error {
  /** Creates an error with a message and an optional cause. */
  constructor(message: string, options?: RingKernelErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * A native library (libcuda, libnvrtc) or one of its symbols could not be
 * loaded, or a file of the kernel bundle could not: missing, unreadable, not
 * matching its manifest's size and SHA-256, or lacking a kernel.
 */
export class LibraryLoadError extends RingKernelError {
  /** Every path or name that was tried, in order. */
  readonly tried: readonly string[];
  /** Creates the error; `tried` lists what was attempted. */
  constructor(
    message: string,
    tried: readonly string[],
    options?: RingKernelErrorOptions,
  ) {
    super(message, options);
    this.tried = tried;
  }
}

/**
 * The requested backend cannot run on this machine (no `libcuda.so.1`, no
 * device, no FFI permission, a driver too old): `reason` says why. Under
 * backend `"auto"` the CPU backend is used instead, and the runtime's
 * `fallbackReason` holds the reason.
 */
export class BackendUnavailableError extends RingKernelError {
  /** The backend that was requested. */
  readonly backend: string;
  /** Why it is unavailable, in words. */
  readonly reason: string;
  /** Creates the error for one backend. */
  constructor(
    backend: string,
    reason: string,
    options?: RingKernelErrorOptions,
  ) {
    super(`backend "${backend}" is unavailable: ${reason}`, options);
    this.backend = backend;
    this.reason = reason;
  }
}

/**
 * An operation was attempted in a state that does not allow it: a kernel's
 * lifecycle state (sending to a terminated kernel, `activate` after
 * `terminate`), a runtime that shut down, a name already in use, an object
 * already closed or freed, or a queue whose header is corrupt.
 */
export class InvalidStateError extends RingKernelError {
  /** The state the object was in. */
  readonly state: string;
  /** The operation that was refused. */
  readonly operation: string;
  /** Creates the error for one refused operation. */
  constructor(operation: string, state: string, detail?: string) {
    super(
      `cannot ${operation} in state ${state}${detail ? `: ${detail}` : ""}`,
    );
    this.operation = operation;
    this.state = state;
  }
}
