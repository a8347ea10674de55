/**
 * Backend selection: `"auto"` uses CUDA when a driver and a device are usable
 * and the CUDA actor backend can run them, else the CPU backend, and says why.
 *
 * @module
 */

import { BackendUnavailableError } from "../errors.ts";
import type { BackendKind } from "./backend.ts";

/** What a runtime may ask for. */
export type BackendRequest = BackendKind | "auto";

/** What the CUDA probe found. */
export interface CudaProbe {
  /** Whether the CUDA backend can run actors here. */
  readonly usable: boolean;
  /** Why not, when not usable. */
  readonly reason?: string;
  /** Device 0's name, when a device was found. */
  readonly device?: string;
}

/** The backend a runtime will use, and why CUDA was not chosen when it was not. */
export interface BackendChoice {
  /** The chosen backend. */
  readonly kind: BackendKind;
  /** Why CUDA was not chosen (absent when it was). */
  readonly fallbackReason?: string;
}

/**
 * Looks for a usable CUDA device without keeping anything open. Loading the
 * driver needs FFI permission under Deno (`--allow-ffi`); its absence is a
 * reason like any other.
 */
export async function probeCuda(): Promise<CudaProbe> {
  let device: string | undefined;
  try {
    const { CudaDriver } = await import("../cuda/driver.ts");
    const driver = CudaDriver.open();
    try {
      if (driver.deviceCount() === 0) {
        return { usable: false, reason: "the CUDA driver reports no device" };
      }
      device = driver.device(0).name;
    } finally {
      driver.close();
    }
  } catch (error) {
    const reason = error instanceof BackendUnavailableError
      ? error.reason
      : error instanceof Error
      ? error.message
      : String(error);
    return { usable: false, reason };
  }
  return {
    usable: false,
    device,
    reason:
      `found ${device}, but this version runs actors on the CPU backend only ` +
      `(the resident GPU actor pool is not part of it yet)`,
  };
}

/**
 * Chooses the backend for a request. `"cuda"` throws
 * {@linkcode BackendUnavailableError} with the reason when CUDA is not usable;
 * `"auto"` falls back to the CPU backend and reports why.
 */
export async function chooseBackend(
  request: BackendRequest,
  probe: () => Promise<CudaProbe> = probeCuda,
): Promise<BackendChoice> {
  if (request === "cpu") return { kind: "cpu" };
  if (request !== "cuda" && request !== "auto") {
    throw new RangeError(
      `backend must be "auto", "cpu" or "cuda", got ${JSON.stringify(request)}`,
    );
  }
  const cuda = await probe();
  if (cuda.usable) return { kind: "cuda" };
  const reason = cuda.reason ?? "CUDA is not usable";
  if (request === "cuda") throw new BackendUnavailableError("cuda", reason);
  return { kind: "cpu", fallbackReason: reason };
}
