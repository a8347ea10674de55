/**
 * Fetches the shipped kernel files into a local cache when the library was
 * loaded from a URL (JSR, or any `https:` import), so the CUDA backend can
 * load its bundle and NVRTC can include `ringkernel.cuh`. Every file is
 * checked against the bundle's manifest (size and SHA-256) before it is
 * used, a cached copy is checked again each time it is reused, and a copy is
 * published with one rename, so concurrent processes never see half of one.
 *
 * @module
 */

import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { LibraryLoadError } from "../errors.ts";
import {
  BUNDLE_MANIFEST_FILE,
  type BundleManifest,
  checkBundleImage,
  parseBundleManifest,
  readBundleImage,
  sha256Hex,
} from "./bundle.ts";
import {
  isShippedCudaLocal,
  SHIPPED_CUDA_URL,
  shippedCudaDir,
  useFetchedCudaDir,
} from "./kernel_files.ts";

/** The environment variable that names the cache directory for fetched kernel files. */
export const CACHE_DIR_ENV_VAR = "RINGKERNEL_CACHE_DIR";

/** The device header, relative to the `cuda/` directory. */
const HEADER_FILE = "ringkernel.cuh";

/** Options of {@linkcode prepareKernelFiles} (and of `fetchKernelFiles`). */
export interface PrepareKernelFilesOptions {
  /**
   * Cache directory. Default: `$RINGKERNEL_CACHE_DIR`, else
   * `$XDG_CACHE_HOME/ringkernel`, else `$HOME/.cache/ringkernel`.
   */
  readonly cacheDir?: string;
  /** Deadline of the whole fetch in milliseconds (default 60 000). */
  readonly timeoutMs?: number;
}

/**
 * The cache directory {@linkcode prepareKernelFiles} uses by default. Read
 * from the environment only (Deno: `--allow-env`). Throws
 * {@linkcode LibraryLoadError} when none of the variables is set.
 */
export function defaultKernelCacheDir(): string {
  const explicit = process.env[CACHE_DIR_ENV_VAR];
  if (explicit) return explicit;
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg) return join(xdg, "ringkernel");
  const home = process.env.HOME;
  if (home) return join(home, ".cache", "ringkernel");
  throw new LibraryLoadError(
    `no directory for the kernel cache: set ${CACHE_DIR_ENV_VAR} (or XDG_CACHE_HOME or HOME)`,
    [CACHE_DIR_ENV_VAR, "XDG_CACHE_HOME", "HOME"],
  );
}

async function download(
  url: URL,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(url, { signal });
    if (!response.ok) {
      await response.body?.cancel();
      throw new LibraryLoadError(
        `cannot fetch ${url.href}: HTTP ${response.status}`,
        [url.href],
      );
    }
    return new Uint8Array(await response.arrayBuffer());
  } catch (cause) {
    if (cause instanceof LibraryLoadError) throw cause;
    const timedOut = cause instanceof DOMException &&
      cause.name === "TimeoutError";
    throw new LibraryLoadError(
      timedOut
        ? `cannot fetch ${url.href}: the kernel files were not fetched within ${timeoutMs} ms`
        : `cannot fetch ${url.href}: ${
          cause instanceof Error ? cause.message : String(cause)
        }`,
      [url.href],
      { cause },
    );
  }
}

function checkHeader(
  manifest: BundleManifest,
  bytes: Uint8Array,
  source: string,
): void {
  const expected = manifest.sources[HEADER_FILE];
  const actual = sha256Hex(bytes);
  if (expected === undefined || actual !== expected) {
    throw new LibraryLoadError(
      `${source} is corrupt: sha256 ${actual}, manifest says ${
        expected ?? "nothing"
      }`,
      [source],
    );
  }
}

/** Whether `dir` holds a complete copy that matches `manifestText`. */
function cachedCopyIsSound(dir: string, manifestText: string): boolean {
  try {
    const bundleDir = join(dir, "bundle");
    const text = readFileSync(join(bundleDir, BUNDLE_MANIFEST_FILE), "utf8");
    if (text !== manifestText) return false;
    const manifest = parseBundleManifest(text);
    for (const output of manifest.outputs) readBundleImage(bundleDir, output);
    const header = join(dir, HEADER_FILE);
    checkHeader(manifest, readFileSync(header), header);
    return true;
  } catch {
    return false;
  }
}

/**
 * Copies the kernel files of the `cuda/` directory at `cudaUrl` (the
 * manifest, every image it lists, and `ringkernel.cuh`) into a cache
 * directory, checking each against the manifest, and resolves with the local
 * directory that mirrors `cuda/`. A sound copy already in the cache is reused
 * (only the manifest is downloaded). Rejects with {@linkcode LibraryLoadError}
 * when a download fails, times out or does not match the manifest; nothing
 * half-written is left in the cache.
 */
export async function fetchKernelFiles(
  cudaUrl: URL | string,
  options: PrepareKernelFilesOptions = {},
): Promise<string> {
  const base = new URL(cudaUrl);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  const timeoutMs = options.timeoutMs ?? 60_000;
  const deadline = AbortSignal.timeout(timeoutMs);
  const cacheDir = options.cacheDir ?? defaultKernelCacheDir();
  const manifestUrl = new URL(`bundle/${BUNDLE_MANIFEST_FILE}`, base);
  const manifestBytes = await download(manifestUrl, deadline, timeoutMs);
  const manifestText = new TextDecoder().decode(manifestBytes);
  const manifest = parseBundleManifest(manifestText, manifestUrl.href);
  // Named by content: a new release gets a new directory, and old ones stay valid.
  const dir = join(
    cacheDir,
    `kernels-${sha256Hex(manifestBytes).slice(0, 24)}`,
  );
  if (cachedCopyIsSound(dir, manifestText)) return dir;

  const files = new Map<string, Uint8Array>();
  for (const output of manifest.outputs) {
    const url = new URL(`bundle/${output.file}`, base);
    const bytes = await download(url, deadline, timeoutMs);
    checkBundleImage(bytes, output, url.href);
    files.set(join("bundle", output.file), bytes);
  }
  const headerUrl = new URL(HEADER_FILE, base);
  const header = await download(headerUrl, deadline, timeoutMs);
  checkHeader(manifest, header, headerUrl.href);
  files.set(HEADER_FILE, header);
  // The manifest goes last: a copy without one is never taken for sound.
  files.set(join("bundle", BUNDLE_MANIFEST_FILE), manifestBytes);

  let staging: string;
  try {
    mkdirSync(cacheDir, { recursive: true });
    staging = mkdtempSync(join(cacheDir, ".staging-"));
  } catch (cause) {
    throw new LibraryLoadError(
      `cannot write the kernel cache ${cacheDir}: ${(cause as Error).message}`,
      [cacheDir],
      { cause },
    );
  }
  try {
    mkdirSync(join(staging, "bundle"));
    for (const [path, bytes] of files) {
      writeFileSync(join(staging, path), bytes);
    }
    if (existsSync(dir)) {
      // Another process may have published a sound copy meanwhile: keep it.
      if (cachedCopyIsSound(dir, manifestText)) return dir;
      rmSync(dir, { recursive: true, force: true });
    }
    try {
      renameSync(staging, dir);
    } catch (cause) {
      // Another process published the same copy first; use it if it is sound.
      if (!cachedCopyIsSound(dir, manifestText)) throw cause;
    }
    return dir;
  } catch (cause) {
    throw new LibraryLoadError(
      `cannot write the kernel cache ${dir}: ${(cause as Error).message}`,
      [dir],
      { cause },
    );
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

let prepared: Promise<string> | undefined;

/**
 * Makes the library's kernel files readable from disk and resolves with their
 * directory. Loaded from local files, that is where they are; loaded from a
 * URL (JSR, `https:`), they are fetched into the cache once
 * and reused by later processes.
 * `RingKernel.create` calls this before it probes CUDA; call it yourself to
 * fill the cache ahead of time (for example before going offline). Under Deno
 * the fetch needs `--allow-net`, and the cache `--allow-read --allow-write`.
 * One fetch per process: calls while it runs, or after it succeeded, share its
 * result (and the first call's options); after a failure the next call tries
 * again.
 */
export function prepareKernelFiles(
  options: PrepareKernelFilesOptions = {},
): Promise<string> {
  if (isShippedCudaLocal()) return Promise.resolve(shippedCudaDir());
  prepared ??= fetchKernelFiles(SHIPPED_CUDA_URL, options).then(
    (dir) => {
      useFetchedCudaDir(dir);
      return dir;
    },
    (error) => {
      prepared = undefined; // a later call may succeed (network back, cache writable)
      throw error;
    },
  );
  return prepared;
}
