// Creating a backend by kind (src/backend/create.ts), and a runtime's
// backend where the driver cannot be loaded.
import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { LIBCUDA_ENV_VAR } from "../ffi/libcuda.ts";
import { createBackend } from "../src/backend/create.ts";
import { BackendUnavailableError, InvalidOptionError } from "../src/errors.ts";
import { RingKernel } from "../src/runtime.ts";
import { gpu } from "./gpu_gate.ts";
import { withEnv } from "./helpers.ts";

describe("createBackend", () => {
  test("cpu needs no FFI; an unknown kind is refused", async () => {
    assert.equal((await createBackend("cpu")).kind, "cpu");
    await assert.rejects(
      createBackend("tpu" as never),
      (e: unknown) => e instanceof InvalidOptionError && e.option === "backend",
    );
  });

  const driverPresent = gpu.available || gpu.driverVersion !== undefined;
  test(
    "cuda without a driver fails with a typed error that says why",
    driverPresent ? { skip: "a CUDA driver is present" } : {},
    async () => {
      await assert.rejects(
        createBackend("cuda"),
        (e: unknown) =>
          e instanceof BackendUnavailableError && /libcuda/.test(e.reason),
      );
    },
  );
});

describe("driver faults", () => {
  test("backend cuda without a loadable driver: BackendUnavailableError naming what was tried", async () => {
    const bogus = join(tmpdir(), "no-such-dir", "libcuda.so.1");
    await withEnv(LIBCUDA_ENV_VAR, bogus, async () => {
      try {
        const rt = await RingKernel.create({ backend: "cuda" });
        // A machine with a driver: the variable was tried, then libcuda.so.1 worked.
        assert.equal(rt.backend, "cuda");
        await rt.shutdown();
      } catch (error) {
        assert.ok(error instanceof BackendUnavailableError, String(error));
        assert.equal(error.backend, "cuda");
        assert.ok(error.reason.includes(bogus), error.reason);
        assert.match(error.reason, /libcuda\.so\.1/);
      }
    });
    // "auto" falls back to the CPU for the same reason instead.
    const rt = await RingKernel.create({ backend: "auto", quiet: true });
    assert.ok(rt.backend === "cpu" || rt.backend === "cuda");
    if (rt.backend === "cpu") assert.ok(rt.fallbackReason);
    await rt.shutdown();
  });
});
