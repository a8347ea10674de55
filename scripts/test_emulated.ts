/**
 * Runs the GPU tests and a quick GPU benchmark table on the CPU emulator of
 * the CUDA driver, under Deno and under Bun: the device code's protocol
 * checked without a GPU.
 *
 * ```sh
 * deno task test:emulated
 * deno run -A scripts/test_emulated.ts --deno-only
 * ```
 *
 * It builds the emulator (`scripts/build_emulator.ts`), points
 * `RINGKERNEL_LIBCUDA` and `RINGKERNEL_LIBNVRTC` at it and sets
 * `RINGKERNEL_REQUIRE_GPU=1`, so a GPU
 * test that cannot run fails rather than skips (except those that declare
 * what only a real GPU provides). Exits non-zero when a step fails.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildEmulator, EMULATOR_DIR } from "./build_emulator.ts";
import { pinnedRuntimes } from "./pinned_runtimes.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** The test files that hold GPU (and NVRTC) tests, and the emulator's own. */
export const GPU_TEST_FILES: readonly string[] = [
  "tests/nvrtc_test.ts",
  "tests/driver_gpu_test.ts",
  "tests/bundle_gpu_test.ts",
  "tests/cuda_backend_gpu_test.ts",
  "tests/faults_gpu_test.ts",
  "tests/backend_parity_gpu_test.ts",
  "tests/reduce_barrier_gpu_test.ts",
  "tests/device_session_gpu_test.ts",
  "tests/device_api_gpu_test.ts",
  "tests/actor_group_gpu_test.ts",
  "tests/grid_reduce_gpu_test.ts",
  "tests/wavesim_gpu_test.ts",
  "tests/hlc_gpu_test.ts",
  "tests/placement_gpu_test.ts",
  "tests/readme_gpu_test.ts",
  "tests/send_refusals_gpu_test.ts",
  "tests/cross_backend_gpu_test.ts",
  "tests/device_parity_gpu_test.ts",
  "tests/gpu_checkpoint_gpu_test.ts",
  "tests/examples_test.ts",
  "tests/emulator_test.ts",
  "tests/remote_import_test.ts",
  "tests/package_test.ts",
];

/** The pinned Bun release (`tools/package.json`), as npx names it. */
const BUN = `bun@${pinnedRuntimes().bun}`;

function step(
  title: string,
  command: string,
  args: readonly string[],
  env: Record<string, string>,
): boolean {
  console.log(`\n== ${title}`);
  const result = spawnSync(command, args, {
    cwd: ROOT,
    stdio: "inherit",
    env: { ...process.env, ...env },
  });
  if (result.error) console.error(result.error.message);
  return result.status === 0;
}

async function main(args: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: false,
    options: { "deno-only": { type: "boolean", default: false } },
  });
  const library = await buildEmulator();
  console.log(`CPU emulator of the CUDA driver: ${library}`);
  const env = {
    RINGKERNEL_LIBCUDA: library,
    // The emulator's NVRTC compiles CUDA C++ actors for the host.
    RINGKERNEL_LIBNVRTC: library,
    RINGKERNEL_REQUIRE_GPU: "1",
  };
  const deno = "deno";
  const runs: [string, string, string[]][] = [
    ["Deno: GPU tests on the emulator", deno, [
      "test",
      "-A",
      ...GPU_TEST_FILES,
    ]],
    ["Deno: quick GPU table on the emulator", deno, [
      "run",
      "-A",
      "bench/gpu_table.ts",
      "--quick",
      "--out",
      join(EMULATOR_DIR, "gpu_table.deno.json"),
    ]],
  ];
  if (!values["deno-only"]) {
    runs.push(
      ["Bun: GPU tests on the emulator", "npx", [
        "-y",
        BUN,
        "test",
        "--timeout",
        "120000",
        ...GPU_TEST_FILES.map((f) => `./${f}`),
      ]],
      ["Bun: quick GPU table on the emulator", "npx", [
        "-y",
        BUN,
        "bench/gpu_table.ts",
        "--quick",
        "--out",
        join(EMULATOR_DIR, "gpu_table.bun.json"),
      ]],
    );
  }
  let failed = 0;
  for (const [title, command, commandArgs] of runs) {
    // The tables' JSON goes to their --out files; the console gets the verdicts.
    const quiet = commandArgs.includes("--quick");
    const ok = quiet
      ? step(title, "sh", [
        "-c",
        `"$0" "$@" > /dev/null`,
        command,
        ...commandArgs,
      ], env)
      : step(title, command, commandArgs, env);
    console.log(`== ${title}: ${ok ? "ok" : "FAILED"}`);
    if (!ok) failed++;
  }
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error) => {
      console.error(error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}
