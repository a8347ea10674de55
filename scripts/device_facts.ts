/**
 * The facts of a GPU machine, as the device check's first stage records them:
 * `nvidia-smi` (when present), the CUDA driver's version, the module loading
 * mode it chose at `cuInit`, and device 0's name, compute capability and
 * multiprocessor count.
 *
 * ```sh
 * deno run -A scripts/device_facts.ts --out facts.json
 * ```
 *
 * With `--out`, the file is rewritten after each fact is gathered, so a run
 * killed while the driver hangs still leaves what came before. The loading
 * mode is read through the raw optional symbol `cuModuleGetLoadingMode`
 * (`ffi/libcuda.ts`) right after a raw `cuInit`, before the library's own
 * driver layer opens: it is the mode this process's environment gives, not
 * one the library chose.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import process from "node:process";
import { parseArgs } from "node:util";
import {
  CUDA_MODULE_LOADING_ENV_VAR,
  CuModuleLoadingMode,
  CuResult,
  LIBCUDA_ENV_VAR,
  openLibcuda,
} from "../ffi/libcuda.ts";
import { KernelBundle } from "../src/cuda/bundle.ts";
import { CudaDriver } from "../src/cuda/driver.ts";
import { EMULATOR_DEVICE_NAME } from "./build_emulator.ts";

/** The `nvidia-smi --query-gpu` fields the facts record, in order. */
export const NVIDIA_SMI_FIELDS: readonly string[] = [
  "name",
  "driver_version",
  "pci.bus_id",
  "memory.total",
  "clocks.max.sm",
  "clocks.max.memory",
  "persistence_mode",
  "compute_mode",
];

/** The name of a `CUmoduleLoadingMode` value: `LAZY`, `EAGER` or `unknown (N)`. */
export function loadingModeName(mode: number): string {
  return mode === CuModuleLoadingMode.LAZY
    ? "LAZY"
    : mode === CuModuleLoadingMode.EAGER
    ? "EAGER"
    : `unknown (${mode})`;
}

/**
 * Parses `nvidia-smi --query-gpu=... --format=csv,noheader` output into one
 * record per GPU, keyed by `fields`.
 */
export function parseNvidiaSmiCsv(
  text: string,
  fields: readonly string[] = NVIDIA_SMI_FIELDS,
): Record<string, string>[] {
  return text.split("\n").map((line) => line.trim()).filter((line) =>
    line.length > 0
  ).map((line) => {
    const values = line.split(",").map((value) => value.trim());
    return Object.fromEntries(
      fields.map((field, i) => [field, values[i] ?? ""]),
    );
  });
}

/** Parsed command line of the facts script. */
export interface FactsOptions {
  /** The JSON file to write; printed to stdout only without it. */
  readonly out?: string;
}

/**
 * Parses the facts script's arguments (`--out FILE`).
 *
 * @throws {TypeError} for an unknown flag, a positional argument or an empty path.
 */
export function parseFactsArgs(args: readonly string[]): FactsOptions {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: false,
    options: { out: { type: "string" } },
  });
  if (values.out === "") throw new TypeError("--out needs a path");
  return { out: values.out };
}

function run(command: string, args: string[]): string | { error: string } {
  const result = spawnSync(command, args, {
    encoding: "utf8",
    timeout: 5000,
  });
  if (result.error) return { error: result.error.message };
  if (result.status !== 0) {
    return {
      error: `exit ${result.status ?? result.signal}: ${
        (result.stderr || result.stdout).trim()
      }`,
    };
  }
  return result.stdout;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Gathers the facts; `save` is called with the record after each step. */
export function gatherFacts(
  save: (facts: Record<string, unknown>) => void,
): Record<string, unknown> {
  const versions = process.versions as Record<string, string | undefined>;
  const facts: Record<string, unknown> = {
    gatheredAt: new Date().toISOString(),
    complete: false,
    runtime: versions.bun ? `bun ${versions.bun}` : `deno ${versions.deno}`,
    platform: `${process.platform} ${process.arch}`,
    kernel: os.release(),
    cpus: os.cpus().length,
    environment: {
      [CUDA_MODULE_LOADING_ENV_VAR]: process.env[CUDA_MODULE_LOADING_ENV_VAR] ??
        null,
      CUDA_CACHE_PATH: process.env.CUDA_CACHE_PATH ?? null,
      [LIBCUDA_ENV_VAR]: process.env[LIBCUDA_ENV_VAR] ?? null,
    },
  };
  const smi = run("nvidia-smi", [
    `--query-gpu=${NVIDIA_SMI_FIELDS.join(",")}`,
    "--format=csv,noheader",
  ]);
  facts.nvidiaSmi = typeof smi === "string"
    ? { gpus: parseNvidiaSmiCsv(smi), text: run("nvidia-smi", []) }
    : smi;
  const ptxas = run("ptxas", ["--version"]);
  facts.ptxas = typeof ptxas === "string"
    ? ptxas.trim().split("\n").at(-1)
    : ptxas;
  save(facts);

  // The raw driver first: the loading mode this environment gives.
  try {
    const library = openLibcuda();
    facts.libcuda = library.path;
    const cu = library.symbols;
    const init = cu.cuInit(0);
    if (init !== CuResult.SUCCESS) throw new Error(`cuInit returned ${init}`);
    const query = cu.cuModuleGetLoadingMode;
    if (query === undefined) {
      facts.moduleLoadingMode = null;
      facts.moduleLoadingModeNote =
        "the driver does not export cuModuleGetLoadingMode";
    } else {
      const mode = new Int32Array(1);
      const code = query(mode);
      facts.moduleLoadingMode = code === CuResult.SUCCESS
        ? loadingModeName(mode[0])
        : `cuModuleGetLoadingMode returned ${code}`;
    }
  } catch (error) {
    facts.libcudaError = message(error);
  }
  save(facts);

  try {
    const driver = CudaDriver.open();
    try {
      facts.driverVersion = driver.driverVersion;
      facts.deviceCount = driver.deviceCount();
      const info = driver.device(0);
      const cc = info.computeCapability;
      facts.device = info.name;
      facts.emulated = info.name === EMULATOR_DEVICE_NAME;
      facts.computeCapability = `${cc.major}.${cc.minor}`;
      facts.multiprocessors = info.multiprocessorCount;
      facts.canMapHostMemory = info.canMapHostMemory;
      facts.memoryPoolsSupported = info.memoryPoolsSupported;
      facts.maxThreadsPerMultiprocessor = info.maxThreadsPerMultiprocessor;
      facts.maxBlocksPerMultiprocessor = info.maxBlocksPerMultiprocessor;
      try {
        const image = KernelBundle.open().selectImage(cc);
        facts.bundleImage = image.file;
        facts.bundleImageKind = image.kind;
      } catch (error) {
        facts.bundleImageError = message(error);
      }
    } finally {
      driver.close();
    }
  } catch (error) {
    facts.driverError = message(error);
  }
  facts.complete = true;
  save(facts);
  return facts;
}

function main(args: readonly string[]): number {
  let options: FactsOptions;
  try {
    options = parseFactsArgs(args);
  } catch (error) {
    console.error(
      `device_facts: ${message(error)}\nusage: device_facts.ts [--out FILE]`,
    );
    return 2;
  }
  const save = (facts: Record<string, unknown>) => {
    if (options.out === undefined) return;
    writeFileSync(`${options.out}.tmp`, JSON.stringify(facts, null, 2) + "\n");
    renameSync(`${options.out}.tmp`, options.out);
  };
  const facts = gatherFacts(save);
  console.log(
    `facts: ${facts.device ?? "no device"}, compute capability ${
      facts.computeCapability ?? "?"
    }, ${facts.multiprocessors ?? "?"} SMs, driver ${
      facts.driverVersion ?? "?"
    }, module loading ${facts.moduleLoadingMode ?? "?"}`,
  );
  if (options.out === undefined) console.log(JSON.stringify(facts, null, 2));
  return facts.driverError || facts.libcudaError ? 1 : 0;
}

if (import.meta.main) process.exit(main(process.argv.slice(2)));
