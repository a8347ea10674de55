/**
 * Builds the committed kernel bundle (`cuda/bundle/`) from the device sources
 * in `cuda/` with nvcc, deterministically, and checks that it is fresh.
 *
 * ```sh
 * deno run -A scripts/build_kernels.ts            # rebuild cuda/bundle/
 * deno run -A scripts/build_kernels.ts --check    # verify hashes, rebuild in a temp dir, compare bytes
 * deno run -A scripts/build_kernels.ts --check --require-nvcc   # fail when nvcc is absent
 * bun scripts/build_kernels.ts                    # the same under Bun
 * ```
 *
 * Every `cuda/**.cu` is compiled as ONE module (a generated unity file that
 * includes them in sorted order), into one PTX for the driver's JIT
 * ({@linkcode PTX_ARCH}) and one cubin per real architecture of
 * {@linkcode CUBIN_ARCHS} that this nvcc supports. Sources are copied to a
 * temporary directory and compiled there with relative paths and no debug or
 * line information, so nothing path- or time-dependent reaches the outputs.
 *
 * @module
 */

import { execFile, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  BUNDLE_FORMAT,
  BUNDLE_MANIFEST_FILE,
  type BundleManifest,
  type BundleOutput,
  type NvccIdentity,
  readBundleImage,
  readBundleManifest,
  sha256Hex,
} from "../src/cuda/bundle.ts";
import { RingKernelError } from "../src/errors.ts";
import { ABI_VERSION } from "../src/layout.ts";

export type {
  BundleManifest,
  BundleOutput,
  NvccIdentity,
} from "../src/cuda/bundle.ts";

/** Name of the module every image of the bundle holds. */
export const BUNDLE_MODULE = "ringkernel";

/** Virtual architecture of the PTX image: the oldest the device runtime supports. */
export const PTX_ARCH = "compute_80";

/**
 * Real architectures that get a cubin, when this nvcc supports them: Ampere
 * (sm_80 also runs on 8.6/8.7/8.9), Hopper, datacenter and consumer Blackwell.
 * Fixed so the bundle does not change with the nvcc that builds it; every
 * other device loads the PTX.
 */
export const CUBIN_ARCHS: readonly string[] = Object.freeze([
  "sm_80",
  "sm_90",
  "sm_100",
  "sm_120",
]);

/** nvcc flags shared by every output (no -G, no -lineinfo: outputs stay path-free). */
export const NVCC_FLAGS: readonly string[] = Object.freeze([
  "-std=c++17",
  "-O3",
  "--Werror",
  "all-warnings",
]);

/** Name of the generated file that includes every `.cu` source. */
export const UNITY_FILE = "ringkernel_bundle.cu";

/** The repository root this script belongs to. */
export const REPO_ROOT: string = fileURLToPath(new URL("../", import.meta.url));

/** An nvcc found on this machine. */
export interface NvccInfo {
  /** Command or path used to run it. */
  readonly path: string;
  /** Version lines of `nvcc --version`. */
  readonly identity: NvccIdentity;
  /** Real architectures of `nvcc --list-gpu-code`. */
  readonly gpuCodes: readonly string[];
  /** Virtual architectures of `nvcc --list-gpu-arch`. */
  readonly gpuArchs: readonly string[];
}

/** One difference between a bundle and what it should be. */
export interface BundleDrift {
  /** The file concerned, relative to `cuda/` (sources) or `cuda/bundle/` (outputs). */
  readonly file: string;
  /** What is wrong, in words. */
  readonly problem: string;
}

/** Options of {@linkcode findNvcc}. */
export interface FindNvccOptions {
  /** nvcc to try first; defaults to `$NVCC`, then `nvcc` on the PATH, then /usr/local/cuda/bin/nvcc. */
  readonly path?: string;
}

/** Options of {@linkcode buildBundle}. */
export interface BuildBundleOptions {
  /** Repository root whose `cuda/` holds the sources. */
  readonly rootDir: string;
  /** Directory that receives the images and the manifest (created if needed). */
  readonly outDir: string;
  /** The compiler to use. */
  readonly nvcc: NvccInfo;
}

/** Options of {@linkcode checkBundle}. */
export interface CheckBundleOptions {
  /** Repository root whose `cuda/` and `cuda/bundle/` are checked. */
  readonly rootDir: string;
  /** Fail (rather than skip the rebuild) when nvcc is absent. */
  readonly requireNvcc?: boolean;
  /** The compiler to use; looked up with {@linkcode findNvcc} when omitted. */
  readonly nvcc?: NvccInfo | null;
}

/** Result of {@linkcode checkBundle}. */
export interface BundleCheckReport {
  /** Every difference found; empty when the bundle is fresh. */
  readonly drift: readonly BundleDrift[];
  /** Whether the bundle was rebuilt and compared byte for byte. */
  readonly rebuilt: boolean;
  /** Why the rebuild was skipped, when it was. */
  readonly skipped?: string;
}

function run(command: string, args: readonly string[]): string | undefined {
  const result = spawnSync(command, args, { encoding: "utf8" });
  if (result.error || result.status !== 0) return undefined;
  return result.stdout;
}

/** Parses the release and build lines of `nvcc --version`. */
export function parseNvccVersion(text: string): NvccIdentity | undefined {
  const release = text.split("\n").find((line) =>
    line.startsWith("Cuda compilation tools")
  )?.trim();
  const build =
    text.split("\n").find((line) => line.startsWith("Build "))?.trim() ?? "";
  const version = release && /V(\d+(?:\.\d+)*)/.exec(release)?.[1];
  if (!release || !version) return undefined;
  return { version, release, build };
}

/** Finds a working nvcc, or returns undefined when there is none. */
export function findNvcc(options: FindNvccOptions = {}): NvccInfo | undefined {
  const candidates = [
    options.path,
    process.env.NVCC,
    "nvcc",
    "/usr/local/cuda/bin/nvcc",
  ].filter((c): c is string => typeof c === "string" && c.length > 0);
  for (const path of candidates) {
    const versionText = run(path, ["--version"]);
    const identity = versionText && parseNvccVersion(versionText);
    if (!identity) continue;
    const list = (flag: string) =>
      (run(path, [flag]) ?? "").split(/\s+/).filter((s) => s.length > 0);
    return {
      path,
      identity,
      gpuCodes: list("--list-gpu-code"),
      gpuArchs: list("--list-gpu-arch"),
    };
  }
  return undefined;
}

function toPosix(path: string): string {
  return path.split(sep).join("/");
}

/** Every device source (`.cu`, `.cuh`) under `cudaDir`, relative POSIX paths, sorted; `bundle/` excluded. */
export function listSources(cudaDir: string): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (relative(cudaDir, path) !== "bundle") walk(path);
      } else if (entry.isFile() && /\.(cu|cuh)$/.test(entry.name)) {
        found.push(toPosix(relative(cudaDir, path)));
      }
    }
  };
  walk(cudaDir);
  return found.sort();
}

/** SHA-256 of every source under `cudaDir`, keyed by relative path. */
export function hashSources(cudaDir: string): Record<string, string> {
  const hashes: Record<string, string> = {};
  for (const path of listSources(cudaDir)) {
    hashes[path] = sha256Hex(readFileSync(join(cudaDir, path)));
  }
  return hashes;
}

/** Kernel (`.entry`) names of a PTX text, sorted. */
export function ptxKernelNames(ptx: string): string[] {
  return [...ptx.matchAll(/\.entry\s+([A-Za-z_$][\w$]*)/g)].map((m) => m[1])
    .sort();
}

function nvccAsync(
  nvcc: string,
  args: readonly string[],
  cwd: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      nvcc,
      [...args],
      { cwd, maxBuffer: 16 << 20 },
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new RingKernelError(
              `nvcc ${args.join(" ")} failed:\n${
                stderr || stdout || error.message
              }`,
              { cause: error },
            ),
          );
        } else {
          resolve();
        }
      },
    );
  });
}

/**
 * Compiles the sources of `rootDir/cuda` into `outDir`: the images and
 * `manifest.json`. Returns the manifest. Throws {@linkcode RingKernelError}
 * when nvcc fails or lacks {@linkcode PTX_ARCH}.
 */
export async function buildBundle(
  options: BuildBundleOptions,
): Promise<BundleManifest> {
  const { nvcc } = options;
  const cudaDir = join(options.rootDir, "cuda");
  const sources = listSources(cudaDir);
  const units = sources.filter((path) => path.endsWith(".cu"));
  if (units.length === 0) {
    throw new RingKernelError(`no .cu sources in ${cudaDir}`);
  }
  if (sources.includes(UNITY_FILE)) {
    throw new RingKernelError(
      `cuda/${UNITY_FILE} is reserved for the generated unity file`,
    );
  }
  if (!nvcc.gpuArchs.includes(PTX_ARCH)) {
    throw new RingKernelError(
      `nvcc ${nvcc.identity.version} cannot target ${PTX_ARCH}`,
    );
  }
  const cubinArchs = CUBIN_ARCHS.filter((arch) => nvcc.gpuCodes.includes(arch));

  const work = mkdtempSync(join(tmpdir(), "rk-kernels-"));
  try {
    const srcDir = join(work, "src");
    for (const path of sources) {
      mkdirSync(dirname(join(srcDir, path)), { recursive: true });
      copyFileSync(join(cudaDir, path), join(srcDir, path));
    }
    const unity = [
      "// Generated by scripts/build_kernels.ts: every cuda/ source in one module.",
      ...units.map((path) => `#include "${path}"`),
      "",
    ].join("\n");
    writeFileSync(join(srcDir, UNITY_FILE), unity);

    const jobs: Array<
      { file: string; kind: "ptx" | "cubin"; arch: string; args: string[] }
    > = [
      {
        file: `${BUNDLE_MODULE}.${PTX_ARCH}.ptx`,
        kind: "ptx",
        arch: PTX_ARCH,
        args: ["-ptx", `-arch=${PTX_ARCH}`],
      },
      ...cubinArchs.map((arch) => ({
        file: `${BUNDLE_MODULE}.${arch}.cubin`,
        kind: "cubin" as const,
        arch,
        args: ["-cubin", `-arch=${arch}`],
      })),
    ];
    await Promise.all(
      jobs.map((job) =>
        nvccAsync(nvcc.path, [
          ...NVCC_FLAGS,
          ...job.args,
          "-o",
          job.file,
          UNITY_FILE,
        ], srcDir)
      ),
    );

    mkdirSync(options.outDir, { recursive: true });
    const outputs: BundleOutput[] = [];
    let kernels: string[] = [];
    for (const job of jobs) {
      const bytes = readFileSync(join(srcDir, job.file));
      writeFileSync(join(options.outDir, job.file), bytes);
      if (job.kind === "ptx") {
        kernels = ptxKernelNames(new TextDecoder().decode(bytes));
      }
      outputs.push({
        file: job.file,
        kind: job.kind,
        arch: job.arch,
        sha256: sha256Hex(bytes),
        size: bytes.byteLength,
      });
    }
    const manifest: BundleManifest = {
      format: BUNDLE_FORMAT,
      module: BUNDLE_MODULE,
      abiVersion: ABI_VERSION,
      nvcc: {
        version: nvcc.identity.version,
        release: nvcc.identity.release,
        build: nvcc.identity.build,
      },
      flags: [...NVCC_FLAGS],
      ptxArch: PTX_ARCH,
      cubinArchs,
      kernels,
      sources: hashSources(cudaDir),
      outputs,
    };
    writeFileSync(
      join(options.outDir, BUNDLE_MANIFEST_FILE),
      JSON.stringify(manifest, null, 2) + "\n",
    );
    return manifest;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Checks the committed bundle of `rootDir` without a compiler: every source's
 * SHA-256 against the manifest (an edited, added or removed source means the
 * bundle is stale), every output's size and SHA-256, stray files, and the ABI
 * version. Returns the differences; empty when fresh.
 */
export function checkSources(rootDir: string): BundleDrift[] {
  const cudaDir = join(rootDir, "cuda");
  const bundleDir = join(cudaDir, "bundle");
  let manifest: BundleManifest;
  try {
    manifest = readBundleManifest(bundleDir);
  } catch (error) {
    return [{
      file: `bundle/${BUNDLE_MANIFEST_FILE}`,
      problem: (error as Error).message,
    }];
  }
  const drift: BundleDrift[] = [];
  const current = hashSources(cudaDir);
  const paths = [
    ...new Set([...Object.keys(current), ...Object.keys(manifest.sources)]),
  ].sort();
  for (const path of paths) {
    const now = current[path];
    const then = manifest.sources[path];
    if (then === undefined) {
      drift.push({
        file: path,
        problem: "new source, not in the bundle: rebuild the kernels",
      });
    } else if (now === undefined) {
      drift.push({
        file: path,
        problem:
          "source removed since the bundle was built: rebuild the kernels",
      });
    } else if (now !== then) {
      drift.push({
        file: path,
        problem:
          `changed since the bundle was built (sha256 ${now}, manifest ${then})`,
      });
    }
  }
  for (const output of manifest.outputs) {
    try {
      readBundleImage(bundleDir, output);
    } catch (error) {
      drift.push({
        file: `bundle/${output.file}`,
        problem: (error as Error).message,
      });
    }
  }
  const listed = new Set([
    BUNDLE_MANIFEST_FILE,
    ...manifest.outputs.map((o) => o.file),
  ]);
  for (const name of readdirSync(bundleDir).sort()) {
    if (!listed.has(name)) {
      drift.push({
        file: `bundle/${name}`,
        problem: "stray file, not in the manifest",
      });
    }
  }
  if (manifest.abiVersion !== ABI_VERSION) {
    drift.push({
      file: `bundle/${BUNDLE_MANIFEST_FILE}`,
      problem:
        `built for ABI version ${manifest.abiVersion}, src/layout.ts says ${ABI_VERSION}`,
    });
  }
  return drift;
}

function listFiles(dir: string): string[] {
  return existsSync(dir)
    ? readdirSync(dir).filter((name) => statSync(join(dir, name)).isFile())
      .sort()
    : [];
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

/**
 * Compares two bundle directories byte for byte (`expectedDir` is the
 * committed one). Returns the differences, the nvcc version first when the two
 * were built by different compilers.
 */
export function compareBundleDirs(
  expectedDir: string,
  actualDir: string,
): BundleDrift[] {
  const drift: BundleDrift[] = [];
  try {
    const expected = readBundleManifest(expectedDir);
    const actual = readBundleManifest(actualDir);
    if (expected.nvcc.version !== actual.nvcc.version) {
      drift.push({
        file: BUNDLE_MANIFEST_FILE,
        problem:
          `committed bundle was built by nvcc ${expected.nvcc.version}, this nvcc is ` +
          `${actual.nvcc.version}: outputs are expected to differ`,
      });
    }
  } catch {
    // A missing or invalid manifest shows up as a file difference below.
  }
  const names = [
    ...new Set([...listFiles(expectedDir), ...listFiles(actualDir)]),
  ].sort();
  for (const name of names) {
    const a = join(expectedDir, name);
    const b = join(actualDir, name);
    if (!existsSync(b)) {
      drift.push({
        file: name,
        problem: "committed, but the rebuild does not produce it",
      });
    } else if (!existsSync(a)) {
      drift.push({
        file: name,
        problem: "produced by the rebuild, but not committed",
      });
    } else {
      const left = readFileSync(a);
      const right = readFileSync(b);
      if (
        left.byteLength !== right.byteLength ||
        sha256Hex(left) !== sha256Hex(right)
      ) {
        drift.push({
          file: name,
          problem:
            `differs from the rebuild: ${left.byteLength} vs ${right.byteLength} bytes, ` +
            `first difference at byte ${firstDifference(left, right)}`,
        });
      }
    }
  }
  return drift;
}

/**
 * Full freshness check of `rootDir`'s bundle: {@linkcode checkSources}, then,
 * with nvcc, a rebuild into a temporary directory compared byte for byte.
 * Without nvcc the rebuild is skipped (and reported as drift when
 * `requireNvcc` is set).
 */
export async function checkBundle(
  options: CheckBundleOptions,
): Promise<BundleCheckReport> {
  const drift = checkSources(options.rootDir);
  const nvcc = options.nvcc === undefined ? findNvcc() : options.nvcc;
  if (!nvcc) {
    const reason = "nvcc not found ($NVCC, PATH, /usr/local/cuda/bin)";
    if (options.requireNvcc) {
      return {
        drift: [...drift, {
          file: "nvcc",
          problem: `${reason}, and --require-nvcc was given`,
        }],
        rebuilt: false,
      };
    }
    return { drift, rebuilt: false, skipped: reason };
  }
  const outDir = mkdtempSync(join(tmpdir(), "rk-bundle-check-"));
  try {
    await buildBundle({ rootDir: options.rootDir, outDir, nvcc });
    drift.push(
      ...compareBundleDirs(join(options.rootDir, "cuda", "bundle"), outDir),
    );
    return { drift, rebuilt: true };
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
}

/** Replaces the contents of `bundleDir` with those of `builtDir`. */
function installBundle(builtDir: string, bundleDir: string): void {
  mkdirSync(bundleDir, { recursive: true });
  const fresh = new Set(listFiles(builtDir));
  for (const name of listFiles(bundleDir)) {
    if (!fresh.has(name)) rmSync(join(bundleDir, name));
  }
  for (const name of fresh) {
    copyFileSync(join(builtDir, name), join(bundleDir, name));
  }
}

/** Command-line entry point; returns the exit status. */
export async function main(args: readonly string[]): Promise<number> {
  const usage = "usage: build_kernels.ts [--check] [--require-nvcc]";
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        check: { type: "boolean", default: false },
        "require-nvcc": { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${usage}`);
    return 2;
  }
  if (values.help) {
    console.error(usage);
    return 0;
  }
  const rootDir = REPO_ROOT;
  if (values.check) {
    const report = await checkBundle({
      rootDir,
      requireNvcc: values["require-nvcc"],
    });
    if (report.skipped) {
      console.log(`kernels: rebuild skipped: ${report.skipped}`);
    }
    if (report.drift.length > 0) {
      console.error(
        `kernels: cuda/bundle is stale (${report.drift.length} difference(s)):`,
      );
      for (const d of report.drift) console.error(`  ${d.file}: ${d.problem}`);
      console.error("kernels: run `deno task kernels` and commit cuda/bundle/");
      return 1;
    }
    console.log(
      `kernels: cuda/bundle is fresh${
        report.rebuilt ? " (rebuilt and compared byte for byte)" : ""
      }`,
    );
    return 0;
  }
  const nvcc = findNvcc();
  if (!nvcc) {
    console.error(
      "kernels: nvcc not found ($NVCC, PATH, /usr/local/cuda/bin); cannot build the bundle",
    );
    return 1;
  }
  const built = mkdtempSync(join(tmpdir(), "rk-bundle-"));
  try {
    const manifest = await buildBundle({ rootDir, outDir: built, nvcc });
    installBundle(built, join(rootDir, "cuda", "bundle"));
    console.log(
      `kernels: built with nvcc ${manifest.nvcc.version}: ${
        manifest.kernels.join(", ")
      }`,
    );
    for (const o of manifest.outputs) {
      console.log(`  cuda/bundle/${o.file}  ${o.size} B  ${o.sha256}`);
    }
    return 0;
  } finally {
    rmSync(built, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  let status: number;
  try {
    status = await main(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof RingKernelError)) throw error;
    console.error(`kernels: ${error.message}`);
    status = 1;
  }
  process.exit(status);
}
