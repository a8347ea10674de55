/**
 * Builds the CPU emulator of the CUDA driver (`emulator/`): a shared library
 * that exports the libcuda symbols ringkernel-ts binds and runs the bundle's
 * own device sources (`cuda/*.cu`), compiled for the host with g++. It also
 * exports the NVRTC symbols: CUDA C++ actors compile for the host with g++ and
 * run on it (point `RINGKERNEL_LIBNVRTC` at the same library).
 *
 * ```sh
 * deno run -A scripts/build_emulator.ts          # build (or reuse) it; prints its path
 * RINGKERNEL_LIBCUDA=$(deno run -A scripts/build_emulator.ts) deno test -A tests/cuda_backend_gpu_test.ts
 * ```
 *
 * The library is written to `.cache/emulator/` and rebuilt only when a source,
 * the compiler or the flags change. `deno task test:emulated` builds it and
 * runs the GPU tests against it.
 *
 * @module
 */

import { execFile, spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { BUNDLE_MANIFEST_FILE, sha256Hex } from "../src/cuda/bundle.ts";
import { RingKernelError } from "../src/errors.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** Where the emulator library is built. */
export const EMULATOR_DIR: string = join(ROOT, ".cache", "emulator");

/** File name of the emulator library in {@linkcode EMULATOR_DIR}. */
export const EMULATOR_LIBRARY = "libcuda_emulator.so";

/** The device name the emulator reports; tests recognise it by this. */
export const EMULATOR_DEVICE_NAME = "ringkernel CPU emulator";

const FLAGS = [
  "-std=c++17",
  "-O2",
  "-g",
  "-fPIC",
  "-pthread",
  "-fvisibility=hidden",
  "-ffp-contract=off",
  "-Wall",
  "-Wno-unknown-pragmas",
];

/** The compiler is missing or a source does not compile. */
export class EmulatorBuildError extends RingKernelError {
  /** @param message what failed, with the compiler's output. */
  constructor(message: string) {
    super(message);
    this.name = "EmulatorBuildError";
  }
}

function run(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("g++", args, { maxBuffer: 16 << 20 }, (error, _out, err) => {
      if (error) {
        reject(
          new EmulatorBuildError(`g++ ${args.at(-1)} failed:\n${err}`),
        );
      } else resolve();
    });
  });
}

/** Kernel names of the bundle, from its manifest. */
function bundleKernels(): string[] {
  const manifest = JSON.parse(
    readFileSync(join(ROOT, "cuda", "bundle", BUNDLE_MANIFEST_FILE), "utf8"),
  );
  return manifest.kernels as string[];
}

/**
 * One translation unit per device source: the emulation header, the source,
 * then a registration of every bundle kernel the source names.
 */
function unitFor(source: string, kernels: readonly string[]): string {
  const text = readFileSync(join(ROOT, "cuda", source), "utf8");
  const named = kernels.filter((k) => new RegExp(`\\b${k}\\b`).test(text));
  return [
    `#include "${join(ROOT, "emulator", "rk_emulation.h")}"`,
    `#include "${join(ROOT, "cuda", source)}"`,
    ...named.map((k) => `RK_EMU_REGISTER(${k})`),
    "",
  ].join("\n");
}

/**
 * Builds the emulator library unless an identical build exists; returns its
 * path. Throws {@linkcode EmulatorBuildError} without g++ or on a compile error.
 */
export async function buildEmulator(): Promise<string> {
  const version = spawnSync("g++", ["--version"], { encoding: "utf8" });
  if (version.error || version.status !== 0) {
    throw new EmulatorBuildError(
      "g++ is needed to build the CPU emulator of the CUDA driver",
    );
  }
  const sources = readdirSync(join(ROOT, "cuda"))
    .filter((f) => f.endsWith(".cu"))
    .sort();
  const kernels = bundleKernels();
  const units = sources.map((s) => ({
    name: s.replace(/\.cu$/, ".cpp"),
    text: unitFor(s, kernels),
  }));
  const inputs = [
    version.stdout,
    FLAGS.join(" "),
    ...["rk_emulation.h", "libcuda_emulator.cpp"].map((f) =>
      readFileSync(join(ROOT, "emulator", f), "utf8")
    ),
    readFileSync(join(ROOT, "cuda", "ringkernel.cuh"), "utf8"),
    ...sources.map((s) => readFileSync(join(ROOT, "cuda", s), "utf8")),
    ...units.map((u) => u.text),
  ];
  const stamp = sha256Hex(new TextEncoder().encode(inputs.join("\0")));
  const library = join(EMULATOR_DIR, EMULATOR_LIBRARY);
  const stampFile = join(EMULATOR_DIR, "build.sha256");
  if (
    existsSync(library) && existsSync(stampFile) &&
    readFileSync(stampFile, "utf8") === stamp
  ) {
    return library;
  }
  mkdirSync(EMULATOR_DIR, { recursive: true });
  const objects: string[] = [];
  const compiles = [
    {
      source: join(ROOT, "emulator", "libcuda_emulator.cpp"),
      name: "driver",
      defines: [
        // The emulated NVRTC compiles user sources with the same header and flags.
        `-DRK_EMULATOR_HEADER="${join(ROOT, "emulator", "rk_emulation.h")}"`,
        `-DRK_EMULATOR_CXXFLAGS="${FLAGS.join(" ")}"`,
      ],
    },
    ...units.map((u) => {
      const path = join(EMULATOR_DIR, u.name);
      writeFileSync(path, u.text);
      return {
        source: path,
        name: u.name.replace(/\.cpp$/, ""),
        defines: [] as string[],
      };
    }),
  ].map(({ source, name, defines }) => {
    const object = join(EMULATOR_DIR, `${name}.o`);
    objects.push(object);
    return run([...FLAGS, ...defines, "-c", "-o", object, source]);
  });
  await Promise.all(compiles);
  const temporary = `${library}.${process.pid}`;
  await run([...FLAGS, "-shared", "-o", temporary, ...objects, "-ldl"]);
  renameSync(temporary, library);
  writeFileSync(stampFile, stamp);
  return library;
}

if (import.meta.main) {
  try {
    console.log(await buildEmulator());
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  }
}
