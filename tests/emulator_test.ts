// Tests of the CPU emulator of the CUDA driver itself (emulator/): run only on
// it (deno task test:emulated), skipped elsewhere with the reason.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CudaDriver } from "../src/cuda/driver.ts";
import { CudaError } from "../src/errors.ts";
import { RingKernel } from "../src/runtime.ts";
import { gpu } from "./gpu_gate.ts";

const onEmulator = gpu.emulated ? {} : {
  skip: "runs on the CPU emulator of the driver only (deno task test:emulated)",
};

describe("CPU emulator of the driver", () => {
  test(
    "cuMemFree while a resident kernel runs is refused, naming the hazard; after terminate it frees",
    onEmulator,
    async () => {
      const rt = await RingKernel.create({ backend: "cuda" });
      const driver = CudaDriver.open();
      try {
        const context = driver.primaryContext(0);
        const memory = context.allocDevice(4096);
        const k = await rt.launch("resident", { actor: "echo" });
        assert.throws(
          () => memory.free(),
          (e: unknown) =>
            e instanceof CudaError &&
            e.codeName === "CUDA_ERROR_NOT_PERMITTED",
        );
        await k.terminate({ timeoutMs: 5_000 });
        memory.free();
      } finally {
        await rt.shutdown({ timeoutMs: 10_000 });
        driver.close();
      }
    },
  );

  test(
    "reports itself as the emulator, with the bundle's sm_90 image",
    onEmulator,
    () => {
      const driver = CudaDriver.open();
      try {
        const device = driver.device(0);
        assert.equal(device.name, "ringkernel CPU emulator");
        assert.deepEqual(device.computeCapability, { major: 9, minor: 0 });
        assert.equal(device.canMapHostMemory, true);
      } finally {
        driver.close();
      }
    },
  );
});
