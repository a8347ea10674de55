/**
 * Creates the backend object for a chosen backend kind.
 *
 * @module
 */

import { BackendUnavailableError } from "../errors.ts";
import type { Backend, BackendKind } from "./backend.ts";
import { CpuBackend } from "./cpu/cpu_backend.ts";

/** Creates the backend of `kind`; the CUDA backend is loaded only when asked for. */
export function createBackend(kind: BackendKind): Promise<Backend> {
  if (kind === "cpu") return Promise.resolve(new CpuBackend());
  return Promise.reject(
    new BackendUnavailableError(
      "cuda",
      "the CUDA actor backend is not part of this version",
    ),
  );
}
