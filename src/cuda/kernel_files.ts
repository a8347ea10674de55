/**
 * Where the library's own kernel files (`cuda/bundle/` and
 * `cuda/ringkernel.cuh`) are on disk. Loaded from local files, they sit next
 * to this module. Loaded from a URL (JSR, or any `https:` import), there is no
 * directory to read them from, so `kernel_fetch.ts` copies them into a local
 * cache first and records the copy here; the loaders stay synchronous.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { LibraryLoadError } from "../errors.ts";

/** URL of the shipped `cuda/` directory, wherever the library was loaded from. */
export const SHIPPED_CUDA_URL: URL = new URL("../../cuda/", import.meta.url);

let fetchedCudaDir: string | undefined;

/** Whether the library was loaded from local files (its kernel files are next to it). */
export function isShippedCudaLocal(): boolean {
  return SHIPPED_CUDA_URL.protocol === "file:";
}

/**
 * Local directory holding the shipped `bundle/` and `ringkernel.cuh`. Throws
 * {@linkcode LibraryLoadError} when the library was loaded from a URL and
 * its kernel files have not been fetched yet (`RingKernel.create` fetches
 * them before it opens the CUDA backend).
 */
export function shippedCudaDir(): string {
  if (isShippedCudaLocal()) return fileURLToPath(SHIPPED_CUDA_URL);
  if (fetchedCudaDir !== undefined) return fetchedCudaDir;
  throw new LibraryLoadError(
    `the library was loaded from ${SHIPPED_CUDA_URL.href}, and its kernel ` +
      "files have not been fetched yet: await prepareKernelFiles() first " +
      "(RingKernel.create does)",
    [SHIPPED_CUDA_URL.href],
  );
}

/** Records the verified local copy of the shipped kernel files (see `kernel_fetch.ts`). */
export function useFetchedCudaDir(dir: string): void {
  fetchedCudaDir = dir;
}
