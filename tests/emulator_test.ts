// Tests of the CPU emulator of the CUDA driver itself (emulator/): run only on
// it (deno task test:emulated), skipped elsewhere with the reason.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { openLibrary } from "../ffi/dylib.ts";
import { LIBCUDA_ENV_VAR } from "../ffi/libcuda.ts";
import { CudaDriver } from "../src/cuda/driver.ts";
import { CudaError } from "../src/errors.ts";
import { RingKernel } from "../src/runtime.ts";
import { gpu } from "./gpu_gate.ts";

/**
 * What the emulator holds now (its rkEmulatorLiveObjects): device and pinned
 * allocations, modules, streams, events, running kernels.
 */
function liveObjects(): Record<string, number> {
  const library = openLibrary({
    rkEmulatorLiveObjects: { parameters: ["buffer"], result: "void" },
  }, {
    name: "the CPU emulator of the driver",
    candidates: [],
    envVar: LIBCUDA_ENV_VAR,
  });
  try {
    const counts = new BigUint64Array(6);
    library.symbols.rkEmulatorLiveObjects(counts);
    const [device, pinned, modules, streams, events, running] = [...counts]
      .map(Number);
    return { device, pinned, modules, streams, events, running };
  } finally {
    library.close();
  }
}

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
    "100 launch/terminate cycles and a shutdown leave nothing in the driver: no allocation, module, stream, event or kernel",
    onEmulator,
    async () => {
      const before = liveObjects();
      const rt = await RingKernel.create({ backend: "cuda" });
      for (let i = 0; i < 100; i++) {
        const k = await rt.launch(`cycle${i}`, {
          actor: i % 2 === 0 ? "echo" : "accumulator",
        });
        await k.terminate({ timeoutMs: 5_000 });
      }
      const during = liveObjects();
      assert.equal(during.running, 0);
      assert.ok(during.device > before.device, JSON.stringify(during));
      await rt.shutdown({ timeoutMs: 10_000 });
      assert.deepEqual(liveObjects(), before);
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
