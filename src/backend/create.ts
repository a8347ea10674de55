/**
 * Creates the backend object for a chosen backend kind.
 *
 * @module
 */

import type { Backend, BackendKind, CudaRuntimeOptions } from "./backend.ts";
import { InvalidOptionError } from "../errors.ts";
import { CpuBackend } from "./cpu/cpu_backend.ts";

/**
 * Creates the backend of `kind`. The CUDA backend is imported only when asked
 * for, so the CPU path never loads FFI code; opening it throws
 * `BackendUnavailableError`, `LibraryLoadError` or `CudaError` when CUDA
 * cannot run actors here; another kind throws `InvalidOptionError`.
 */
export async function createBackend(
  kind: BackendKind,
  cuda: CudaRuntimeOptions = {},
): Promise<Backend> {
  if (kind === "cpu") return new CpuBackend();
  if (kind === "cuda") {
    const { prepareKernelFiles } = await import("../cuda/kernel_fetch.ts");
    await prepareKernelFiles();
    const { CudaBackend } = await import("./cuda/cuda_backend.ts");
    return CudaBackend.open({
      device: cuda.device,
      hostArenaBytes: cuda.hostArenaBytes,
      deviceArenaBytes: cuda.deviceArenaBytes,
    });
  }
  throw new InvalidOptionError("backend", kind, '"cpu" or "cuda"');
}
