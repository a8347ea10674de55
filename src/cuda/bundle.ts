/**
 * The prebuilt kernel bundle in `cuda/bundle/`: its manifest, integrity
 * checks, and the choice of the image (cubin or PTX) a device can load.
 *
 * Pure TypeScript over `node:fs` and `node:crypto`; the driver binding loads
 * the bytes this module returns.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  BackendUnavailableError,
  DriverTooOldError,
  LibraryLoadError,
} from "../errors.ts";
import { shippedCudaDir } from "./kernel_files.ts";

/** Version of the manifest format this module reads. */
export const BUNDLE_FORMAT = 1;

/** File name of the manifest inside a bundle directory. */
export const BUNDLE_MANIFEST_FILE = "manifest.json";

/**
 * Directory of the bundle that ships with the library (`cuda/bundle/`, or
 * its fetched copy when the library was loaded from a URL). Throws
 * {@linkcode LibraryLoadError} when it was loaded from a URL and the copy has
 * not been fetched yet.
 */
export function defaultBundleDir(): string {
  return join(shippedCudaDir(), "bundle");
}

/** A device's compute capability, e.g. `{ major: 9, minor: 0 }` for an H100. */
export interface ComputeCapability {
  /** Major version (8 = Ampere, 9 = Hopper, 10/12 = Blackwell). */
  readonly major: number;
  /** Minor version. */
  readonly minor: number;
}

/** Kind of a bundle image: a native cubin or PTX for the driver's JIT. */
export type BundleImageKind = "cubin" | "ptx";

/** One output file of the bundle, as the manifest records it. */
export interface BundleOutput {
  /** File name inside the bundle directory (no directories). */
  readonly file: string;
  /** Whether the file is a cubin or PTX text. */
  readonly kind: BundleImageKind;
  /** Target: `sm_XY` for a cubin, `compute_XY` for PTX. */
  readonly arch: string;
  /** Lower-case hex SHA-256 of the file's bytes. */
  readonly sha256: string;
  /** Size of the file in bytes. */
  readonly size: number;
}

/** The nvcc that built a bundle. */
export interface NvccIdentity {
  /** Version number, e.g. `13.0.88`. */
  readonly version: string;
  /** The release line of `nvcc --version`. */
  readonly release: string;
  /** The build line of `nvcc --version`. */
  readonly build: string;
}

/** Contents of `cuda/bundle/manifest.json`. */
export interface BundleManifest {
  /** Manifest format version ({@linkcode BUNDLE_FORMAT}). */
  readonly format: number;
  /** Name of the module every image holds. */
  readonly module: string;
  /** `ABI_VERSION` of src/layout.ts when the bundle was built. */
  readonly abiVersion: number;
  /** The compiler that produced the outputs. */
  readonly nvcc: NvccIdentity;
  /** nvcc flags common to every output. */
  readonly flags: readonly string[];
  /** Virtual architecture of the PTX image. */
  readonly ptxArch: string;
  /** Real architectures with a cubin, ascending. */
  readonly cubinArchs: readonly string[];
  /** Every `extern "C"` kernel of the module, sorted. */
  readonly kernels: readonly string[];
  /** SHA-256 of every source, keyed by its path relative to `cuda/`. */
  readonly sources: Readonly<Record<string, string>>;
  /** Every output file. */
  readonly outputs: readonly BundleOutput[];
}

/** An image ready for `cuModuleLoadData`. */
export interface BundleImage {
  /** The manifest entry of the image. */
  readonly output: BundleOutput;
  /** The bytes to load; PTX ends with one NUL, as the driver expects. */
  readonly data: Uint8Array;
}

/** Options of {@linkcode selectBundleImage}. */
export interface SelectImageOptions {
  /** Take the PTX (driver JIT) even where a cubin fits. */
  readonly preferPtx?: boolean;
}

/** Options of {@linkcode KernelBundle.open}. */
export interface OpenBundleOptions {
  /** Bundle directory; the shipped bundle by default. */
  readonly dir?: string;
}

/** Lower-case hex SHA-256 of `bytes`. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

const SHA256_PATTERN = /^[0-9a-f]{64}$/;
const FILE_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const CUBIN_ARCH_PATTERN = /^sm_(\d+)$/;
const PTX_ARCH_PATTERN = /^compute_(\d+)$/;

/** The compute capability an `sm_XY`/`compute_XY` name targets, or undefined. */
export function archCapability(arch: string): ComputeCapability | undefined {
  const match = CUBIN_ARCH_PATTERN.exec(arch) ?? PTX_ARCH_PATTERN.exec(arch);
  if (!match) return undefined;
  const digits = Number(match[1]);
  return { major: Math.floor(digits / 10), minor: digits % 10 };
}

function corrupt(source: string, detail: string): LibraryLoadError {
  return new LibraryLoadError(
    `kernel bundle manifest ${source} is invalid: ${detail}`,
    [source],
  );
}

function field<T>(
  source: string,
  object: Record<string, unknown>,
  key: string,
  check: (value: unknown) => value is T,
  what: string,
): T {
  const value = object[key];
  if (!check(value)) throw corrupt(source, `"${key}" must be ${what}`);
  return value;
}

const isString = (v: unknown): v is string => typeof v === "string";
const isCount = (v: unknown): v is number =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isStringArray = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every(isString);
const isArray = (v: unknown): v is unknown[] => Array.isArray(v);

function parseOutput(
  source: string,
  raw: unknown,
  index: number,
): BundleOutput {
  const where = `${source} outputs[${index}]`;
  if (!isObject(raw)) throw corrupt(where, "an output must be an object");
  const file = field(where, raw, "file", isString, "a string");
  const kind = field(where, raw, "kind", isString, "a string");
  const arch = field(where, raw, "arch", isString, "a string");
  const sha256 = field(where, raw, "sha256", isString, "a string");
  const size = field(where, raw, "size", isCount, "a byte count");
  if (!FILE_PATTERN.test(file)) {
    throw corrupt(
      where,
      `file name ${JSON.stringify(file)} is not a plain name`,
    );
  }
  if (
    kind === "cubin"
      ? !CUBIN_ARCH_PATTERN.test(arch)
      : kind === "ptx"
      ? !PTX_ARCH_PATTERN.test(arch)
      : true
  ) {
    throw corrupt(
      where,
      `kind ${JSON.stringify(kind)} with arch ${JSON.stringify(arch)}`,
    );
  }
  if (!SHA256_PATTERN.test(sha256)) {
    throw corrupt(where, "sha256 must be 64 hex digits");
  }
  return Object.freeze({
    file,
    kind: kind as BundleImageKind,
    arch,
    sha256,
    size,
  });
}

/**
 * Parses and validates manifest text; `source` names it in errors.
 * Throws {@linkcode LibraryLoadError} when the text is not a valid manifest.
 */
export function parseBundleManifest(
  text: string,
  source = BUNDLE_MANIFEST_FILE,
): BundleManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new LibraryLoadError(
      `kernel bundle manifest ${source} is not JSON`,
      [source],
      { cause },
    );
  }
  if (!isObject(raw)) throw corrupt(source, "the top level must be an object");
  const format = field(source, raw, "format", isCount, "a number");
  if (format !== BUNDLE_FORMAT) {
    throw corrupt(source, `format ${format} is not ${BUNDLE_FORMAT}`);
  }
  const module = field(source, raw, "module", isString, "a string");
  const abiVersion = field(source, raw, "abiVersion", isCount, "a number");
  const nvccRaw = field(source, raw, "nvcc", isObject, "an object");
  const nvcc = Object.freeze({
    version: field(source, nvccRaw, "version", isString, "a string"),
    release: field(source, nvccRaw, "release", isString, "a string"),
    build: field(source, nvccRaw, "build", isString, "a string"),
  });
  const flags = field(source, raw, "flags", isStringArray, "a list of strings");
  const ptxArch = field(source, raw, "ptxArch", isString, "a string");
  const cubinArchs = field(
    source,
    raw,
    "cubinArchs",
    isStringArray,
    "a list of strings",
  );
  const kernels = field(
    source,
    raw,
    "kernels",
    isStringArray,
    "a list of strings",
  );
  const sourcesRaw = field(source, raw, "sources", isObject, "an object");
  const sources: Record<string, string> = {};
  for (const [path, hash] of Object.entries(sourcesRaw)) {
    if (!isString(hash) || !SHA256_PATTERN.test(hash)) {
      throw corrupt(source, `sources["${path}"] must be 64 hex digits`);
    }
    sources[path] = hash;
  }
  const outputs = field(source, raw, "outputs", isArray, "a list").map((o, i) =>
    parseOutput(source, o, i)
  );
  if (!PTX_ARCH_PATTERN.test(ptxArch)) {
    throw corrupt(source, `ptxArch ${JSON.stringify(ptxArch)}`);
  }
  const files = new Set<string>();
  for (const output of outputs) {
    if (files.has(output.file)) {
      throw corrupt(source, `${output.file} is listed twice`);
    }
    files.add(output.file);
  }
  const ptx = outputs.filter((o) => o.kind === "ptx");
  if (ptx.length !== 1 || ptx[0].arch !== ptxArch) {
    throw corrupt(source, `expected exactly one PTX output for ${ptxArch}`);
  }
  for (const arch of cubinArchs) {
    if (!outputs.some((o) => o.kind === "cubin" && o.arch === arch)) {
      throw corrupt(source, `no cubin output for ${arch}`);
    }
  }
  return Object.freeze({
    format,
    module,
    abiVersion,
    nvcc,
    flags: Object.freeze([...flags]),
    ptxArch,
    cubinArchs: Object.freeze([...cubinArchs]),
    kernels: Object.freeze([...kernels]),
    sources: Object.freeze(sources),
    outputs: Object.freeze(outputs),
  });
}

/**
 * Reads and validates `manifest.json` of a bundle directory.
 * Throws {@linkcode LibraryLoadError} when it is missing or invalid.
 */
export function readBundleManifest(
  dir: string = defaultBundleDir(),
): BundleManifest {
  const path = join(dir, BUNDLE_MANIFEST_FILE);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new LibraryLoadError(
      `kernel bundle manifest ${path} cannot be read`,
      [path],
      { cause },
    );
  }
  return parseBundleManifest(text, path);
}

function formatCapability(cc: ComputeCapability): string {
  return `${cc.major}.${cc.minor}`;
}

/**
 * Chooses the image for a device: the cubin of the same major version with the
 * highest minor version not above the device's (a cubin for sm_XY runs on
 * sm_XZ when Z ≥ Y), otherwise the PTX when the device is at least its virtual
 * architecture (the driver compiles it). Throws
 * {@linkcode BackendUnavailableError} when nothing fits.
 */
export function selectBundleImage(
  manifest: BundleManifest,
  cc: ComputeCapability,
  options: SelectImageOptions = {},
): BundleOutput {
  if (
    !Number.isSafeInteger(cc.major) || !Number.isSafeInteger(cc.minor) ||
    cc.major < 0 || cc.minor < 0 || cc.minor > 9
  ) {
    throw new BackendUnavailableError(
      "cuda",
      `invalid compute capability ${formatCapability(cc)}`,
    );
  }
  if (!options.preferPtx) {
    let best: BundleOutput | undefined;
    let bestMinor = -1;
    for (const output of manifest.outputs) {
      if (output.kind !== "cubin") continue;
      const target = archCapability(output.arch);
      if (!target || target.major !== cc.major || target.minor > cc.minor) {
        continue;
      }
      if (target.minor > bestMinor) {
        best = output;
        bestMinor = target.minor;
      }
    }
    if (best) return best;
  }
  const ptx = manifest.outputs.find((o) => o.kind === "ptx");
  const ptxTarget = ptx && archCapability(ptx.arch);
  if (
    ptx && ptxTarget &&
    (cc.major > ptxTarget.major ||
      (cc.major === ptxTarget.major && cc.minor >= ptxTarget.minor))
  ) {
    return ptx;
  }
  throw new BackendUnavailableError(
    "cuda",
    `the kernel bundle has no image for compute capability ${
      formatCapability(cc)
    } ` +
      `(cubins: ${
        manifest.cubinArchs.join(", ") || "none"
      }; PTX: ${manifest.ptxArch})`,
  );
}

/**
 * Checks bytes of a bundle output against its manifest entry (size, then
 * SHA-256); `source` names them in the error. Throws
 * {@linkcode LibraryLoadError} when they differ.
 */
export function checkBundleImage(
  bytes: Uint8Array,
  output: BundleOutput,
  source: string,
): void {
  if (bytes.byteLength !== output.size) {
    throw new LibraryLoadError(
      `kernel bundle image ${source} is corrupt: ${bytes.byteLength} bytes, manifest says ${output.size}`,
      [source],
    );
  }
  const actual = sha256Hex(bytes);
  if (actual !== output.sha256) {
    throw new LibraryLoadError(
      `kernel bundle image ${source} is corrupt: sha256 ${actual}, manifest says ${output.sha256}`,
      [source],
    );
  }
}

/**
 * Reads one output of a bundle and checks its size and SHA-256, so a corrupt
 * image is caught before the driver sees it. PTX comes back NUL-terminated.
 * Throws {@linkcode LibraryLoadError} when the file is missing or corrupt.
 */
export function readBundleImage(
  dir: string,
  output: BundleOutput,
): BundleImage {
  const path = join(dir, output.file);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (cause) {
    throw new LibraryLoadError(
      `kernel bundle image ${path} cannot be read`,
      [path],
      { cause },
    );
  }
  checkBundleImage(bytes, output, path);
  if (output.kind === "ptx") {
    const terminated = new Uint8Array(bytes.byteLength + 1);
    terminated.set(bytes);
    return Object.freeze({ output, data: terminated });
  }
  return Object.freeze({ output, data: new Uint8Array(bytes) });
}

/**
 * The first Linux driver branch of each CUDA release (newest first): what a
 * user installs to run code built with it.
 */
const DRIVER_BRANCHES: readonly (readonly [cuda: number, branch: number])[] = [
  [13000, 580],
  [12090, 575],
  [12080, 570],
  [12060, 560],
  [12050, 555],
  [12040, 550],
  [12030, 545],
  [12020, 535],
  [12010, 530],
  [12000, 525],
];

/**
 * The driver branch that supports a CUDA version, e.g. `"R580"` for `13000`
 * (a version newer than this table knows names its CUDA version instead).
 */
export function driverBranchFor(cudaVersion: number): string {
  const known = DRIVER_BRANCHES.find(([cuda]) => cuda <= cudaVersion);
  if (known === undefined || cudaVersion >= 14000) {
    return `supporting CUDA ${Math.floor(cudaVersion / 1000)}.${
      Math.floor((cudaVersion % 1000) / 10)
    }`;
  }
  return `R${known[1]}`;
}

/**
 * The CUDA version a driver must support to load a bundle, from the nvcc
 * that built it (`13.0.88` → `13000`): its PTX ISA and cubins need a driver of
 * that CUDA release or newer.
 *
 * @throws {LibraryLoadError} when the manifest's nvcc version is unreadable.
 */
export function requiredDriverVersion(manifest: BundleManifest): number {
  const match = /^(\d+)\.(\d+)/.exec(manifest.nvcc.version);
  if (match === null) {
    throw new LibraryLoadError(
      `kernel bundle manifest: cannot read the nvcc version ${
        JSON.stringify(manifest.nvcc.version)
      }`,
      [],
    );
  }
  return Number(match[1]) * 1000 + Number(match[2]) * 10;
}

/**
 * Checks that a driver (`cuDriverGetVersion`) can load a bundle.
 *
 * @throws {DriverTooOldError} naming the driver branch needed.
 */
export function checkDriverVersion(
  driverVersion: number,
  manifest: BundleManifest,
): void {
  const required = requiredDriverVersion(manifest);
  if (driverVersion >= required) return;
  throw new DriverTooOldError({
    driverVersion,
    requiredVersion: required,
    requiredDriver: driverBranchFor(required),
    builtWith: manifest.nvcc.version,
  });
}

/** The kernel bundle: manifest plus image selection and verified reads. */
export class KernelBundle {
  /** Directory holding the manifest and the images. */
  readonly dir: string;
  /** The validated manifest. */
  readonly manifest: BundleManifest;

  private constructor(dir: string, manifest: BundleManifest) {
    this.dir = dir;
    this.manifest = manifest;
  }

  /**
   * Opens a bundle directory (the shipped bundle by default) and validates its
   * manifest. Throws {@linkcode LibraryLoadError} when it is missing or invalid.
   */
  static open(options: OpenBundleOptions = {}): KernelBundle {
    const dir = options.dir ?? defaultBundleDir();
    return new KernelBundle(dir, readBundleManifest(dir));
  }

  /** Every kernel name in the module. */
  get kernels(): readonly string[] {
    return this.manifest.kernels;
  }

  /** Whether the module has a kernel of this name. */
  hasKernel(name: string): boolean {
    return this.manifest.kernels.includes(name);
  }

  /** Throws {@linkcode LibraryLoadError} unless every named kernel is in the module. */
  requireKernels(names: readonly string[]): void {
    const missing = names.filter((name) => !this.hasKernel(name));
    if (missing.length > 0) {
      throw new LibraryLoadError(
        `kernel bundle ${this.dir} lacks kernels: ${missing.join(", ")}`,
        [join(this.dir, BUNDLE_MANIFEST_FILE)],
      );
    }
  }

  /** The output a device of compute capability `cc` should load ({@linkcode selectBundleImage}). */
  selectImage(
    cc: ComputeCapability,
    options: SelectImageOptions = {},
  ): BundleOutput {
    return selectBundleImage(this.manifest, cc, options);
  }

  /** The verified bytes of the image for `cc`, ready for `cuModuleLoadData`. */
  loadImage(
    cc: ComputeCapability,
    options: SelectImageOptions = {},
  ): BundleImage {
    return readBundleImage(this.dir, this.selectImage(cc, options));
  }

  /** Checks the size and SHA-256 of every output; throws on the first corrupt one. */
  verify(): void {
    for (const output of this.manifest.outputs) {
      readBundleImage(this.dir, output);
    }
  }
}
