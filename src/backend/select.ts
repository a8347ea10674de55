/**
 * Backend selection: `"auto"` uses CUDA when a driver and a device are usable
 * and the kernel bundle loads on it, else the CPU backend, and says why.
 *
 * @module
 */

import { BackendUnavailableError } from "../errors.ts";
import type { CudaDriverOptions } from "../cuda/driver.ts";
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

/** Options of {@linkcode probeCuda}. */
export interface CudaProbeOptions {
  /** How to open the driver (a stand-in library in tests). */
  readonly driver?: CudaDriverOptions;
  /** Kernel bundle directory (default: the shipped one). */
  readonly bundleDir?: string;
}

/** The pool kernel the CUDA backend launches. */
const POOL_KERNEL = "rk_actor_pool";

function reasonOf(error: unknown): string {
  if (error instanceof BackendUnavailableError) return error.reason;
  return error instanceof Error ? error.message : String(error);
}

/**
 * Looks for a usable CUDA device without keeping anything open: the driver
 * loads, device 0 exists and maps host memory, and the kernel bundle has an
 * image for it that the driver loads, with the actor pool kernel in it. A
 * library loaded from a URL fetches its bundle first, once a device is found
 * (`prepareKernelFiles`).
 * Loading the driver needs FFI permission under Deno (`--allow-ffi`); its
 * absence is a reason like any other.
 */
export async function probeCuda(
  options: CudaProbeOptions = {},
): Promise<CudaProbe> {
  let driver;
  try {
    const { CudaDriver } = await import("../cuda/driver.ts");
    driver = CudaDriver.open(options.driver);
  } catch (error) {
    return { usable: false, reason: reasonOf(error) };
  }
  let device: string | undefined;
  try {
    if (driver.deviceCount() === 0) {
      return { usable: false, reason: "the CUDA driver reports no device" };
    }
    const info = driver.device(0);
    device = info.name;
    if (!info.canMapHostMemory) {
      return {
        usable: false,
        device,
        reason: `${device} cannot map host memory, which GPU actors need`,
      };
    }
    if (options.bundleDir === undefined) {
      // Only now, with a device found: a library loaded from a URL downloads its bundle.
      const { prepareKernelFiles } = await import("../cuda/kernel_fetch.ts");
      await prepareKernelFiles();
    }
    const { KernelBundle } = await import("../cuda/bundle.ts");
    const bundle = KernelBundle.open({ dir: options.bundleDir });
    bundle.requireKernels([POOL_KERNEL]);
    const image = bundle.loadImage(info.computeCapability);
    const context = driver.primaryContext(0);
    const module = context.loadModule(image.data, { name: image.output.file });
    module.getFunction(POOL_KERNEL);
    return { usable: true, device };
  } catch (error) {
    return {
      usable: false,
      device,
      reason: device === undefined
        ? reasonOf(error)
        : `found ${device}, but ${reasonOf(error)}`,
    };
  } finally {
    try {
      driver.close();
    } catch {
      // Closing what the probe opened must not hide its answer.
    }
  }
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
