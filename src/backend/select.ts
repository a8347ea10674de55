/**
 * Backend selection: `"auto"` uses CUDA when a driver and a device are usable
 * and the kernel bundle loads on it, else the CPU backend, and says why.
 *
 * @module
 */

import { BackendUnavailableError } from "../errors.ts";
import { checkChoice } from "../options.ts";
import type { CudaDriverOptions } from "../cuda/driver.ts";
import { libcudaCandidates } from "../../ffi/libcuda.ts";
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
  /** The error behind `reason`, when one was thrown (e.g. a `DriverTooOldError`). */
  readonly error?: unknown;
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

function reasonOf(error: unknown): string {
  if (error instanceof BackendUnavailableError) return error.reason;
  return error instanceof Error ? error.message : String(error);
}

const probes = new Map<unknown, Map<string, Promise<CudaProbe>>>();

/**
 * Looks for a usable CUDA device: the driver loads and is new enough for the
 * kernel bundle, device 0 exists and maps host memory, and the bundle has an
 * image for it that the driver loads, with the actor pool kernel in it. A
 * library loaded from a URL fetches its bundle first, once a device is found
 * (`prepareKernelFiles`).
 *
 * Once per process (per driver and bundle): later calls get the first answer.
 * It opens the process's session of the device (driver, context, bundle), or
 * finds it already open, and gives it back; it never loads or unloads
 * anything beside a kernel of another runtime.
 * Loading the driver needs FFI permission under Deno (`--allow-ffi`); its
 * absence is a reason like any other.
 */
export function probeCuda(options: CudaProbeOptions = {}): Promise<CudaProbe> {
  // What would be loaded: $RINGKERNEL_LIBCUDA included, so changing it probes again.
  const libraryKey = options.driver?.library ??
    libcudaCandidates({ candidates: options.driver?.candidates }).join("\n");
  let byBundle = probes.get(libraryKey);
  if (byBundle === undefined) {
    byBundle = new Map();
    probes.set(libraryKey, byBundle);
  }
  const bundleKey = options.bundleDir ?? "";
  let probe = byBundle.get(bundleKey);
  if (probe === undefined) {
    probe = probeOnce(options);
    byBundle.set(bundleKey, probe);
  }
  return probe;
}

async function probeOnce(options: CudaProbeOptions): Promise<CudaProbe> {
  let driver;
  try {
    const { CudaDriver } = await import("../cuda/driver.ts");
    driver = CudaDriver.open(options.driver);
  } catch (error) {
    return { usable: false, reason: reasonOf(error), error };
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
    const { DeviceSession } = await import("./cuda/device_session.ts");
    DeviceSession.acquire({
      driver: options.driver,
      bundleDir: options.bundleDir,
      reserve: false,
    }).release();
    return { usable: true, device };
  } catch (error) {
    return {
      usable: false,
      device,
      reason: device === undefined
        ? reasonOf(error)
        : `found ${device}, but ${reasonOf(error)}`,
      error,
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
 * `"auto"` falls back to the CPU backend and reports why. Any other request
 * throws `InvalidOptionError` (option `backend`).
 */
export async function chooseBackend(
  request: BackendRequest,
  probe: () => Promise<CudaProbe> = probeCuda,
): Promise<BackendChoice> {
  request = checkChoice("backend", request, ["auto", "cpu", "cuda"], "auto");
  if (request === "cpu") return { kind: "cpu" };
  const cuda = await probe();
  if (cuda.usable) return { kind: "cuda" };
  const reason = cuda.reason ?? "CUDA is not usable";
  if (request === "cuda") {
    // A typed refusal (e.g. a driver too old for the bundle) keeps its type.
    if (cuda.error instanceof BackendUnavailableError) throw cuda.error;
    throw new BackendUnavailableError("cuda", reason, { cause: cuda.error });
  }
  return { kind: "cpu", fallbackReason: reason };
}
