// Backend selection and fallback: chooseBackend with stand-in probes, and
// probeCuda against a fake libcuda and against this machine's real one.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  chooseBackend,
  type CudaProbe,
  probeCuda,
} from "../src/backend/select.ts";
import {
  BackendUnavailableError,
  DriverTooOldError,
  InvalidOptionError,
} from "../src/errors.ts";
import { CuDeviceAttribute, CuResult } from "../ffi/libcuda.ts";
import { createWithCudaProbe } from "../src/runtime.ts";
import { FAKE_DEVICE_NAME, FakeLibcuda } from "./fixtures/fake_libcuda.ts";
import { gpu } from "./gpu_gate.ts";

const usable = (): Promise<CudaProbe> =>
  Promise.resolve({ usable: true, device: "Stand-in GPU" });
const unusable = (reason: string) => (): Promise<CudaProbe> =>
  Promise.resolve({ usable: false, reason });

describe("chooseBackend", () => {
  test("cpu is chosen without probing", async () => {
    let probed = false;
    const choice = await chooseBackend("cpu", () => {
      probed = true;
      return usable();
    });
    assert.deepEqual(choice, { kind: "cpu" });
    assert.equal(probed, false);
  });

  test("auto and cuda take CUDA when the probe finds it usable", async () => {
    assert.deepEqual(await chooseBackend("auto", usable), { kind: "cuda" });
    assert.deepEqual(await chooseBackend("cuda", usable), { kind: "cuda" });
  });

  test("auto falls back to the CPU and carries the reason", async () => {
    assert.deepEqual(await chooseBackend("auto", unusable("no device here")), {
      kind: "cpu",
      fallbackReason: "no device here",
    });
  });

  test("cuda throws BackendUnavailable with the probe's reason", async () => {
    await assert.rejects(
      chooseBackend("cuda", unusable("no device here")),
      (e: unknown) =>
        e instanceof BackendUnavailableError && e.backend === "cuda" &&
        e.reason === "no device here",
    );
  });

  test("an unknown request is refused", async () => {
    await assert.rejects(
      chooseBackend("gpu" as never, usable),
      (e: unknown) => e instanceof InvalidOptionError && e.option === "backend",
    );
  });

  test("a runtime created with auto on an unusable CUDA runs on the CPU and says why", async () => {
    const rt = await createWithCudaProbe(
      { backend: "auto", quiet: true },
      unusable("stand-in: no GPU"),
    );
    try {
      assert.equal(rt.backend, "cpu");
      assert.equal(rt.fallbackReason, "stand-in: no GPU");
    } finally {
      await rt.shutdown();
    }
  });
});

describe("probeCuda", () => {
  test("usable when a device maps host memory and the bundle's pool kernel loads", async () => {
    assert.deepEqual(
      await probeCuda({ driver: { library: new FakeLibcuda() } }),
      {
        usable: true,
        device: FAKE_DEVICE_NAME,
      },
    );
  });

  test("no device, no host mapping, or an image the driver refuses: each says why", async () => {
    const none = await probeCuda({
      driver: { library: new FakeLibcuda({ deviceCount: 0 }) },
    });
    assert.deepEqual(none, {
      usable: false,
      reason: "the CUDA driver reports no device",
    });
    const noMap = await probeCuda({
      driver: {
        library: new FakeLibcuda({
          attributes: { [CuDeviceAttribute.CAN_MAP_HOST_MEMORY]: 0 },
        }),
      },
    });
    assert.equal(noMap.usable, false);
    assert.match(noMap.reason ?? "", /cannot map host memory/);
    const library = new FakeLibcuda();
    library.failNext.set(
      "cuModuleLoadDataEx",
      CuResult.ERROR_NO_BINARY_FOR_GPU,
    );
    const refused = await probeCuda({ driver: { library } });
    assert.equal(refused.usable, false);
    assert.match(
      refused.reason ?? "",
      new RegExp(`^found ${FAKE_DEVICE_NAME}, but cuModuleLoadDataEx failed`),
    );
  });

  test("once per process: a second probe gets the first answer and loads nothing", async () => {
    const library = new FakeLibcuda();
    const first = probeCuda({ driver: { library } });
    assert.equal(probeCuda({ driver: { library } }), first);
    assert.equal((await first).usable, true);
    await probeCuda({ driver: { library } });
    assert.equal(
      library.calls.filter((call) => call.startsWith("cuModuleLoadData"))
        .length,
      1,
    );
  });

  test("a driver older than the bundle: unusable, naming the driver to install; 'cuda' throws it typed", async () => {
    const library = new FakeLibcuda({ driverVersion: 12040 });
    const probe = await probeCuda({ driver: { library } });
    assert.equal(probe.usable, false);
    assert.match(
      probe.reason ?? "",
      new RegExp(
        `^found ${FAKE_DEVICE_NAME}, but the NVIDIA driver supports only CUDA 12\\.4; .* install driver R580 or newer$`,
      ),
    );
    assert.ok(probe.error instanceof DriverTooOldError);
    const probeAgain = () => probeCuda({ driver: { library } });
    await assert.rejects(chooseBackend("cuda", probeAgain), DriverTooOldError);
    assert.deepEqual(await chooseBackend("auto", probeAgain), {
      kind: "cpu",
      fallbackReason: probe.reason,
    });
  });

  test("a missing or broken kernel bundle makes CUDA unusable, with the reason", async () => {
    const probe = await probeCuda({
      driver: { library: new FakeLibcuda() },
      bundleDir: "/nonexistent/ringkernel-bundle",
    });
    assert.equal(probe.usable, false);
    assert.match(
      probe.reason ?? "",
      /kernel bundle manifest .* cannot be read/,
    );
  });

  test("on this machine it agrees with the GPU gate", async () => {
    const probe = await probeCuda();
    assert.equal(probe.usable, gpu.available, probe.reason);
    if (!probe.usable) assert.ok((probe.reason ?? "").length > 0);
  });
});
