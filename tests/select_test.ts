// Backend selection and fallback: chooseBackend with stand-in probes, and
// probeCuda against a stand-in driver and against this machine's real one.
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
import {
  CuResult,
  type LibcudaLike,
  type LibcudaSymbols,
} from "../ffi/libcuda.ts";
import { RingKernel } from "../src/runtime.ts";
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
    const rt = await RingKernel.create({
      backend: "auto",
      quiet: true,
      probeCuda: unusable("stand-in: no GPU"),
    });
    try {
      assert.equal(rt.backend, "cpu");
      assert.equal(rt.fallbackReason, "stand-in: no GPU");
    } finally {
      await rt.shutdown();
    }
  });
});

/** A stand-in libcuda: every call succeeds, with a configurable device. */
function standInDriver(
  device: {
    count?: number;
    canMap?: boolean;
    moduleFails?: boolean;
    driverVersion?: number;
    loads?: { count: number };
  } = {},
): LibcudaLike {
  const name = new TextEncoder().encode("Stand-in GPU\0");
  const symbols: Record<string, unknown> = {
    cuInit: () => CuResult.SUCCESS,
    cuDriverGetVersion: (out: Int32Array) => {
      out[0] = device.driverVersion ?? 13000;
      return CuResult.SUCCESS;
    },
    cuGetErrorName: () => CuResult.ERROR_INVALID_VALUE,
    cuGetErrorString: () => CuResult.ERROR_INVALID_VALUE,
    cuDeviceGetCount: (out: Int32Array) => {
      out[0] = device.count ?? 1;
      return CuResult.SUCCESS;
    },
    cuDeviceGet: (out: Int32Array, ordinal: number) => {
      out[0] = ordinal;
      return CuResult.SUCCESS;
    },
    cuDeviceGetName: (out: Uint8Array) => {
      out.set(name);
      return CuResult.SUCCESS;
    },
    cuDeviceGetAttribute: (out: Int32Array, attribute: number) => {
      out[0] = attribute === 75
        ? 9
        : attribute === 76
        ? 0
        : attribute === 19
        ? (device.canMap === false ? 0 : 1)
        : 1;
      return CuResult.SUCCESS;
    },
    cuDevicePrimaryCtxRetain: (out: BigUint64Array) => {
      out[0] = 0x100n;
      return CuResult.SUCCESS;
    },
    cuDevicePrimaryCtxRelease_v2: () => CuResult.SUCCESS,
    cuCtxSetCurrent: () => CuResult.SUCCESS,
    cuModuleLoadData: (out: BigUint64Array) => {
      if (device.loads) device.loads.count++;
      if (device.moduleFails) return CuResult.ERROR_NO_BINARY_FOR_GPU;
      out[0] = 0x200n;
      return CuResult.SUCCESS;
    },
    cuModuleGetFunction: (out: BigUint64Array) => {
      out[0] = 0x300n;
      return CuResult.SUCCESS;
    },
    cuModuleUnload: () => CuResult.SUCCESS,
  };
  return {
    path: "stand-in-libcuda.so.1",
    missing: ["cuModuleLoadDataEx"],
    symbols: new Proxy(symbols, {
      get: (target, key) =>
        key === "cuModuleLoadDataEx"
          ? undefined
          : target[key as string] ?? (() => CuResult.SUCCESS),
    }) as unknown as LibcudaSymbols,
  };
}

describe("probeCuda", () => {
  test("usable when a device maps host memory and the bundle's pool kernel loads", async () => {
    assert.deepEqual(
      await probeCuda({ driver: { library: standInDriver() } }),
      {
        usable: true,
        device: "Stand-in GPU",
      },
    );
  });

  test("no device, no host mapping, or an image the driver refuses: each says why", async () => {
    const none = await probeCuda({
      driver: { library: standInDriver({ count: 0 }) },
    });
    assert.deepEqual(none, {
      usable: false,
      reason: "the CUDA driver reports no device",
    });
    const noMap = await probeCuda({
      driver: { library: standInDriver({ canMap: false }) },
    });
    assert.equal(noMap.usable, false);
    assert.match(noMap.reason ?? "", /cannot map host memory/);
    const refused = await probeCuda({
      driver: { library: standInDriver({ moduleFails: true }) },
    });
    assert.equal(refused.usable, false);
    assert.match(
      refused.reason ?? "",
      /^found Stand-in GPU, but cuModuleLoadData failed/,
    );
  });

  test("once per process: a second probe gets the first answer and loads nothing", async () => {
    const loads = { count: 0 };
    const library = standInDriver({ loads });
    const first = probeCuda({ driver: { library } });
    assert.equal(probeCuda({ driver: { library } }), first);
    assert.equal((await first).usable, true);
    await probeCuda({ driver: { library } });
    assert.equal(loads.count, 1);
  });

  test("a driver older than the bundle: unusable, naming the driver to install; 'cuda' throws it typed", async () => {
    const library = standInDriver({ driverVersion: 12040 });
    const probe = await probeCuda({ driver: { library } });
    assert.equal(probe.usable, false);
    assert.match(
      probe.reason ?? "",
      /^found Stand-in GPU, but the NVIDIA driver supports only CUDA 12\.4; .* install driver R580 or newer$/,
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
      driver: { library: standInDriver() },
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
