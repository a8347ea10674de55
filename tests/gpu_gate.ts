/**
 * Gate for tests that need a CUDA GPU.
 *
 * Probes once, at import, whether libcuda loads, `cuInit` succeeds and a device
 * exists. Without a GPU, gated tests are skipped and the reason is printed
 * once, so CI logs say why. With `RINGKERNEL_REQUIRE_GPU=1` (set by the GPU
 * machine's check script), gated tests run anyway and fail with the reason.
 *
 * With `RINGKERNEL_LIBCUDA` naming the CPU emulator of the driver
 * (`scripts/build_emulator.ts`), gated tests run on it, except those that
 * declare what only a real GPU provides (JIT of hand-written or nvcc-built
 * PTX): they are skipped with that reason.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gpuTest } from "./gpu_gate.ts";
 * import { CudaDriver } from "../src/cuda/driver.ts";
 *
 * gpuTest("finds a device", () => {
 *   const driver = CudaDriver.open();
 *   try {
 *     assert.ok(driver.deviceCount() > 0);
 *   } finally {
 *     driver.close();
 *   }
 * });
 * ```
 *
 * @module
 */

import process from "node:process";
import { test } from "node:test";
import { CudaDriver } from "../src/cuda/driver.ts";
import { EMULATOR_DEVICE_NAME } from "../scripts/build_emulator.ts";

/** The environment variable that turns skipped GPU tests into failures. */
export const REQUIRE_GPU_ENV_VAR = "RINGKERNEL_REQUIRE_GPU";

/** What the probe found. */
export interface GpuAvailability {
  /** Whether libcuda loaded, `cuInit` succeeded and a device exists. */
  readonly available: boolean;
  /** Why not, when unavailable. */
  readonly reason?: string;
  /** Device 0's name, when available. */
  readonly deviceName?: string;
  /** The driver's CUDA version, when libcuda initialised. */
  readonly driverVersion?: number;
  /** Whether the device is the CPU emulator of the driver, not a GPU. */
  readonly emulated: boolean;
}

function probe(): GpuAvailability {
  let driver: CudaDriver;
  try {
    driver = CudaDriver.open();
  } catch (error) {
    return {
      available: false,
      reason: error instanceof Error ? error.message : String(error),
      emulated: false,
    };
  }
  try {
    const count = driver.deviceCount();
    if (count === 0) {
      return {
        available: false,
        reason: "the CUDA driver initialised but reports no device",
        driverVersion: driver.driverVersion,
        emulated: false,
      };
    }
    const deviceName = driver.device(0).name;
    return {
      available: true,
      deviceName,
      driverVersion: driver.driverVersion,
      emulated: deviceName === EMULATOR_DEVICE_NAME,
    };
  } catch (error) {
    return {
      available: false,
      reason: error instanceof Error ? error.message : String(error),
      driverVersion: driver.driverVersion,
      emulated: false,
    };
  } finally {
    driver.close();
  }
}

function readRequired(): boolean {
  try {
    return process.env[REQUIRE_GPU_ENV_VAR] === "1";
  } catch {
    return false;
  }
}

/** Whether `RINGKERNEL_REQUIRE_GPU=1` asks GPU tests to fail rather than skip. */
export const gpuRequired: boolean = readRequired();

/** The probe's result, computed once at import. */
export const gpu: GpuAvailability = probe();

let announced = false;

function announce(): void {
  if (announced) return;
  announced = true;
  if (gpu.emulated) {
    console.log(
      `GPU tests run on the ${gpu.deviceName}, NOT a GPU: they check the device code's protocol, not the hardware`,
    );
  } else if (gpu.available) {
    console.log(
      `GPU tests run on ${gpu.deviceName} (CUDA driver ${gpu.driverVersion})`,
    );
  } else if (gpuRequired) {
    console.log(
      `GPU tests will FAIL (${REQUIRE_GPU_ENV_VAR}=1): ${gpu.reason}`,
    );
  } else {
    console.log(`GPU tests skipped: ${gpu.reason}`);
  }
}

/**
 * Throws the probe's reason when no GPU is available; call it first in a GPU
 * test registered with {@linkcode gpuTestOptions}.
 */
export function requireGpu(): void {
  if (!gpu.available) {
    throw new Error(`a CUDA GPU is required but unavailable: ${gpu.reason}`);
  }
}

/**
 * Options for `test(name, gpuTestOptions(), fn)`: `{ skip: reason }` without a
 * GPU, `{}` with one — and `{}` too when `RINGKERNEL_REQUIRE_GPU=1`, so the
 * test runs and must fail: start its body with {@linkcode requireGpu}.
 *
 * @param hardware what the test needs that only a real GPU provides; on the
 * CPU emulator the test is skipped with it as the reason.
 */
export function gpuTestOptions(hardware?: string): { skip?: string } {
  announce();
  if (gpu.emulated && hardware) {
    return { skip: `needs a real GPU (${hardware}); this is the CPU emulator` };
  }
  if (gpu.available || gpuRequired) return {};
  return { skip: gpu.reason ?? "no CUDA GPU" };
}

/** Options of {@linkcode gpuTest}. */
export interface GpuTestOptions {
  /**
   * What the test needs that only a real GPU provides: on the CPU emulator
   * it is skipped with this as the reason.
   */
  readonly hardware?: string;
  /**
   * A reason to skip it even where a GPU is (a tool it needs is missing, say);
   * without a GPU the gate decides, as for every GPU test.
   */
  readonly skip?: string;
  /** Its deadline in ms (default 120 000: Bun's default of 5 s is too short). */
  readonly timeout?: number;
}

/**
 * Registers a `node:test` test that needs a GPU: skipped (reason printed once)
 * without one, failing with the reason when `RINGKERNEL_REQUIRE_GPU=1`.
 */
export function gpuTest(
  name: string,
  fn: () => void | Promise<void>,
  options: GpuTestOptions = {},
): void {
  const gate = gpuTestOptions(options.hardware);
  const skip = gate.skip ?? (gpu.available ? options.skip : undefined);
  if (skip !== undefined && gate.skip === undefined) {
    console.log(`GPU test skipped: ${name}: ${skip}`);
  }
  test(
    name,
    {
      timeout: options.timeout ?? 120_000,
      ...(skip === undefined ? {} : { skip }),
    },
    async () => {
      requireGpu();
      await fn();
    },
  );
}
