// Creating a backend by kind (src/backend/create.ts).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createBackend } from "../src/backend/create.ts";
import { BackendUnavailableError, InvalidOptionError } from "../src/errors.ts";
import { gpu } from "./gpu_gate.ts";

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
