// The driver layer (src/cuda/driver.ts) without a GPU: over a fake libcuda
// (tests/fixtures/fake_libcuda.ts) whose two test kernels dereference their
// parameters through native memory, so packing, error mapping and lifecycle
// are exercised as on a device. On a GPU (or the CPU emulator of the
// driver): tests/driver_gpu_test.ts.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  CudaContext,
  CudaDriver,
  CudaEvent,
  type CudaStream,
  dim3,
  moduleImage,
  ptxEntryNames,
} from "../src/cuda/driver.ts";
import { packKernelParams } from "../src/cuda/params.ts";
import { CuResult, LIBCUDA_ENV_VAR } from "../ffi/libcuda.ts";
import {
  BackendUnavailableError,
  CudaError,
  InvalidStateError,
  LibraryLoadError,
  RingKernelError,
  TimeoutError,
} from "../src/errors.ts";
import {
  FAKE_DEVICE_NAME,
  type FakeKernel,
  FakeLibcuda,
} from "./fixtures/fake_libcuda.ts";
import { gpu } from "./gpu_gate.ts";
import { thrown, withEnv } from "./helpers.ts";

const FAKE_PTX = `.version 8.0
.target sm_80
.address_size 64
.visible .entry store_u32(.param .u64 p0, .param .u32 p1) { ret; }
.visible .entry dump_params() { ret; }
`;

/** The kernels of FAKE_PTX: they write through the device addresses they are given. */
const KERNELS: Record<string, FakeKernel> = {
  store_u32: (launch, fake) => {
    const target = fake.resolve(launch.arg(0).getBigUint64(0, true), 4);
    new DataView(target.buffer, target.byteOffset, 4).setUint32(
      0,
      launch.arg(1, 4).getUint32(0, true),
      true,
    );
  },
  dump_params: (launch, fake) => {
    const out = fake.resolve(launch.arg(0).getBigUint64(0, true), 32);
    const data = new DataView(out.buffer, out.byteOffset, 32);
    data.setUint32(0, launch.arg(1, 4).getUint32(0, true), true);
    data.setInt32(4, launch.arg(2, 4).getInt32(0, true), true);
    data.setBigUint64(8, launch.arg(3).getBigUint64(0, true), true);
    data.setFloat32(16, launch.arg(4, 4).getFloat32(0, true), true);
    data.setFloat64(24, launch.arg(5).getFloat64(0, true), true);
  },
};

/** A fake with two devices, FAKE_PTX's kernels and one module global. */
function fakeCuda(options: { without?: string[] } = {}): FakeLibcuda {
  return new FakeLibcuda({
    deviceCount: 2,
    kernels: KERNELS,
    globals: { counter: { deviceAddress: 0xdeadn, byteLength: 8 } },
    without: options.without,
  });
}

function openFake(options: { without?: string[] } = {}) {
  const fake = fakeCuda(options);
  const driver = CudaDriver.open({ library: fake });
  return { fake, driver };
}

describe("CudaDriver without a GPU", () => {
  test(
    "open() throws BackendUnavailableError naming what was tried",
    gpu.available ? { skip: "a GPU is present" } : {},
    () => {
      const error = thrown(() => CudaDriver.open());
      assert.ok(error instanceof BackendUnavailableError, String(error));
      assert.equal(error.backend, "cuda");
      if (error.cause instanceof LibraryLoadError) {
        assert.ok(error.reason.includes("libcuda.so.1"), error.reason);
        assert.ok(error.cause.tried.some((t) => t.startsWith("libcuda.so.1")));
      } else {
        // libcuda loaded but cuInit failed (e.g. no device).
        assert.ok(error.cause instanceof CudaError, String(error.cause));
      }
    },
  );

  test("a bogus RINGKERNEL_LIBCUDA is named in the reason", () => {
    const bogus = "/nonexistent/ringkernel/libcuda-override.so";
    const error = withEnv(LIBCUDA_ENV_VAR, bogus, () =>
      thrown(
        () =>
          CudaDriver.open({
            candidates: ["/nonexistent/ringkernel/libcuda.so"],
          }),
        BackendUnavailableError,
      ));
    assert.ok(error.reason.includes(bogus));
    assert.ok(error.cause instanceof LibraryLoadError);
    assert.equal(error.cause.tried.length, 2);
  });
});

describe("driver helpers", () => {
  test("dim3 fills in missing dimensions and refuses bad ones", () => {
    assert.deepEqual(dim3(4), [4, 1, 1]);
    assert.deepEqual(dim3([2, 3]), [2, 3, 1]);
    assert.deepEqual(dim3([2, 3, 4]), [2, 3, 4]);
    for (const bad of [0, -1, 1.5, [], [1, 0], [1, 2, 3, 4], 2 ** 32]) {
      assert.throws(() => dim3(bad as never), RingKernelError);
    }
  });

  test("moduleImage NUL-terminates PTX and leaves binaries alone", () => {
    const ptx = moduleImage(".version 8.0");
    assert.equal(ptx[ptx.length - 1], 0);
    assert.equal(ptx.length, 13);
    assert.equal(moduleImage("x\0").length, 2);
    const bytes = new TextEncoder().encode(".version 8.0");
    assert.equal(moduleImage(bytes).length, bytes.length + 1);
    const elf = new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1]);
    assert.equal(moduleImage(elf), elf);
    const fatbin = new Uint8Array([0x50, 0xed, 0x55, 0xba, 1, 0]);
    assert.equal(moduleImage(fatbin), fatbin);
    assert.throws(() => moduleImage(""), RingKernelError);
    assert.throws(() => moduleImage(new Uint8Array(0)), RingKernelError);
    assert.throws(() => moduleImage(42 as never), RingKernelError);
  });
});

describe("CudaDriver over a fake libcuda", () => {
  test("open initialises the driver and reads its version", () => {
    const { fake, driver } = openFake();
    assert.equal(fake.calls[0], "cuInit");
    assert.equal(driver.driverVersion, 13000);
    assert.equal(driver.libraryPath, fake.path);
  });

  test("a failing cuInit becomes BackendUnavailableError with the CUresult", () => {
    const fake = fakeCuda();
    fake.failNext.set("cuInit", CuResult.ERROR_NO_DEVICE);
    const error = thrown(() => CudaDriver.open({ library: fake }));
    assert.ok(error instanceof BackendUnavailableError);
    assert.ok(error.cause instanceof CudaError);
    assert.equal(error.cause.call, "cuInit");
    assert.equal(error.cause.code, 100);
    assert.equal(error.cause.codeName, "CUDA_ERROR_NO_DEVICE");
    assert.match(error.reason, /CUDA_ERROR_NO_DEVICE/);
  });

  test("describes devices", () => {
    const { driver } = openFake();
    assert.equal(driver.deviceCount(), 2);
    assert.deepEqual(driver.device(0), {
      ordinal: 0,
      name: FAKE_DEVICE_NAME,
      computeCapability: { major: 9, minor: 0 },
      multiprocessorCount: 132,
      canMapHostMemory: true,
      memoryPoolsSupported: true,
      maxThreadsPerMultiprocessor: 2048,
      maxBlocksPerMultiprocessor: 32,
    });
    assert.equal(driver.deviceAttribute(0, 16), 132);
    assert.throws(() => driver.device(2), /out of range/);
    assert.throws(() => driver.device(-1), /out of range/);
  });

  test("every failing call becomes a CudaError named by cuGetErrorName", () => {
    const { fake, driver } = openFake();
    const context = driver.primaryContext(0);
    fake.failNext.set("cuMemAlloc_v2", CuResult.ERROR_OUT_OF_MEMORY);
    const error = thrown(() => context.allocDevice(1 << 20));
    assert.ok(error instanceof CudaError);
    assert.equal(error.call, "cuMemAlloc_v2");
    assert.equal(error.code, 2);
    assert.equal(error.codeName, "CUDA_ERROR_OUT_OF_MEMORY");
    assert.match(error.message, /fake description of 2/);
    // A code the driver cannot name keeps its number.
    fake.failNext.set("cuCtxSynchronize", 12345);
    const unknown = thrown(() => context.synchronize());
    assert.ok(unknown instanceof CudaError);
    assert.equal(unknown.codeName, "CUresult 12345");
  });

  test("the primary context is retained once, made current and released", () => {
    const { fake, driver } = openFake();
    const context = driver.primaryContext(0);
    assert.equal(driver.primaryContext(0), context);
    assert.equal(fake.retained.get(0), 1);
    assert.equal(fake.current, context.handle);
    context.close();
    context.close();
    assert.equal(fake.retained.get(0), 0);
    assert.equal(fake.current, 0n);
    assert.throws(() => context.createStream(), InvalidStateError);
    // A new call retains it again.
    const again = driver.primaryContext(0);
    assert.notEqual(again, context);
    assert.equal(fake.retained.get(0), 1);
    driver.close();
    assert.equal(fake.retained.get(0), 0);
  });

  test("each context is made current before it is used", () => {
    const { fake, driver } = openFake();
    const first = driver.primaryContext(0);
    const second = driver.primaryContext(1);
    assert.notEqual(first.handle, second.handle);
    assert.equal(fake.current, second.handle);
    first.createStream();
    assert.equal(fake.current, first.handle);
    second.allocDevice(8);
    assert.equal(fake.current, second.handle);
    const switches = fake.calls.filter((c) => c === "cuCtxSetCurrent").length;
    second.allocDevice(8);
    assert.equal(
      fake.calls.filter((c) => c === "cuCtxSetCurrent").length,
      switches,
      "no switch when the context is already current",
    );
    driver.close();
    assert.equal(fake.retained.get(0), 0);
    assert.equal(fake.retained.get(1), 0);
  });

  test("a module's kernels are all fetched at load: enumerated and loaded by the driver when it can", () => {
    const { fake, driver } = openFake();
    const context = driver.primaryContext(0);
    const module = context.loadModule(FAKE_PTX);
    assert.deepEqual([...module.functionNames].sort(), [
      "dump_params",
      "store_u32",
    ]);
    // Lazy loading leaves enumerated kernels unloaded: each was loaded now.
    assert.equal(fake.calls.filter((c) => c === "cuFuncLoad").length, 2);
    assert.equal(fake.loadedFunctions.size, 2);
    const before = fake.calls.length;
    module.getFunction("store_u32");
    module.getFunction("dump_params");
    assert.equal(fake.calls.length, before, "no driver call after the load");
  });

  test("without enumeration, the kernels a PTX declares (or the names given) are fetched at load", () => {
    const { fake, driver } = openFake({
      without: ["cuModuleGetFunctionCount", "cuModuleEnumerateFunctions"],
    });
    const context = driver.primaryContext(0);
    const module = context.loadModule(FAKE_PTX);
    assert.deepEqual([...module.functionNames].sort(), [
      "dump_params",
      "store_u32",
    ]);
    assert.equal(
      fake.calls.filter((c) => c === "cuModuleGetFunction").length,
      2,
    );
    // Bytes that are not PTX text: the names given (a bundle's manifest); absent ones skipped.
    const named = context.loadModule(FAKE_PTX, {
      kernels: ["store_u32", "not_in_the_module"],
    });
    assert.deepEqual([...named.functionNames], ["store_u32"]);
  });

  test("PTX entry names are read from .entry directives", () => {
    assert.deepEqual(ptxEntryNames(FAKE_PTX), ["store_u32", "dump_params"]);
    assert.deepEqual(ptxEntryNames(".version 9.0\n.target sm_80\n"), []);
  });

  test("occupancy comes from the driver, per kernel and launch shape", () => {
    const { driver } = openFake();
    const context = driver.primaryContext(0);
    const fn = context.loadModule(FAKE_PTX).getFunction("store_u32");
    assert.equal(fn.maxActiveBlocksPerMultiprocessor(256, 36864), 6);
    assert.equal(fn.maxActiveBlocksPerMultiprocessor(1024), 2);
    const { driver: old } = openFake({
      without: ["cuOccupancyMaxActiveBlocksPerMultiprocessor"],
    });
    const oldFn = old.primaryContext(0).loadModule(FAKE_PTX).getFunction(
      "store_u32",
    );
    assert.equal(oldFn.maxActiveBlocksPerMultiprocessor(256), undefined);
  });

  test("modules load PTX, find kernels and unload", () => {
    const { fake, driver } = openFake();
    const context = driver.primaryContext(0);
    const module = context.loadModule(FAKE_PTX);
    assert.ok(fake.calls.includes("cuModuleLoadDataEx"));
    const fn = module.getFunction("store_u32");
    assert.equal(module.getFunction("store_u32"), fn);
    const missing = thrown(() => module.getFunction("nope"));
    assert.ok(missing instanceof CudaError);
    assert.equal(missing.codeName, "CUDA_ERROR_NOT_FOUND");
    assert.deepEqual(module.getGlobal("counter"), {
      deviceAddress: 0xdeadn,
      byteLength: 8,
    });
    module.close();
    module.close();
    assert.equal(fake.modules.size, 0);
    assert.throws(() => module.getFunction("store_u32"), InvalidStateError);
    const stream = context.createStream();
    assert.throws(
      () => fn.launch({ block: 1, stream }),
      InvalidStateError,
    );
    driver.close();
  });

  test("bad PTX gives CUDA_ERROR_INVALID_PTX with the JIT log", () => {
    const { driver } = openFake();
    const context = driver.primaryContext(0);
    const error = thrown(() =>
      context.loadModule(".version 8.0\nbroken", { name: "broken.ptx" })
    );
    assert.ok(error instanceof CudaError);
    assert.equal(error.call, "cuModuleLoadDataEx");
    assert.equal(error.codeName, "CUDA_ERROR_INVALID_PTX");
    assert.match(error.message, /broken\.ptx: ptxas fatal: broken line 7/);
    driver.close();
  });

  test("without cuModuleLoadDataEx, cuModuleLoadData is used", () => {
    const { fake, driver } = openFake({ without: ["cuModuleLoadDataEx"] });
    const context = driver.primaryContext(0);
    context.loadModule(FAKE_PTX);
    assert.ok(fake.calls.includes("cuModuleLoadData"));
    const error = thrown(() => context.loadModule("broken"));
    assert.ok(error instanceof CudaError);
    assert.equal(error.call, "cuModuleLoadData");
    assert.equal(error.codeName, "CUDA_ERROR_INVALID_PTX");
    driver.close();
  });

  test("launch packs arguments the kernel can dereference", () => {
    const { fake, driver } = openFake();
    const context = driver.primaryContext(0);
    const stream = context.createStream();
    assert.equal(fake.lastStreamFlags, 1);
    const fn = context.loadModule(FAKE_PTX).getFunction("store_u32");
    const memory = context.allocDevice(64);
    fn.launch({
      grid: [2, 3],
      block: 128,
      stream,
      args: [
        { type: "ptr", value: memory.deviceAddress + 8n },
        { type: "u32", value: 0xc0ffee },
      ],
    });
    assert.deepEqual(fake.launches.at(-1), {
      name: "store_u32",
      grid: [2, 3, 1],
      block: [128, 1, 1],
      sharedBytes: 0,
    });
    const out = new Uint32Array(4);
    memory.copyToHost(out);
    assert.deepEqual([...out], [0, 0, 0xc0ffee, 0]);
    // Packed in advance, then launched again with a new value.
    const params = packKernelParams([
      { type: "ptr", value: memory },
      { type: "u32", value: 1 },
    ]);
    fn.launch({ block: 1, stream, args: params });
    params.set(1, { type: "u32", value: 2 });
    fn.launch({ block: 1, stream, args: params });
    memory.copyToHost(out);
    assert.equal(out[0], 2);
    driver.close();
  });

  test("every parameter type reaches the kernel intact", () => {
    const { driver } = openFake();
    const context = driver.primaryContext(0);
    const stream = context.createStream();
    const fn = context.loadModule(FAKE_PTX).getFunction("dump_params");
    const memory = context.allocDevice(32);
    fn.launch({
      block: 1,
      stream,
      args: [
        { type: "ptr", value: memory },
        { type: "u32", value: 4_000_000_000 },
        { type: "i32", value: -123 },
        { type: "u64", value: 1n << 50n },
        { type: "f32", value: 0.5 },
        { type: "f64", value: -2.25 },
      ],
    });
    const out = new DataView(new ArrayBuffer(32));
    memory.copyToHost(out);
    assert.equal(out.getUint32(0, true), 4_000_000_000);
    assert.equal(out.getInt32(4, true), -123);
    assert.equal(out.getBigUint64(8, true), 1n << 50n);
    assert.equal(out.getFloat32(16, true), 0.5);
    assert.equal(out.getFloat64(24, true), -2.25);
    driver.close();
  });

  test("launch refuses bad configurations before calling the driver", () => {
    const { fake, driver } = openFake();
    const context = driver.primaryContext(0);
    const stream = context.createStream();
    const fn = context.loadModule(FAKE_PTX).getFunction("store_u32");
    const before = fake.launches.length;
    assert.throws(() => fn.launch({ block: 0, stream }), RingKernelError);
    assert.throws(
      () => fn.launch({ block: 1, grid: [1, 1.5], stream }),
      RingKernelError,
    );
    assert.throws(
      () => fn.launch({ block: 1, sharedMemBytes: -1, stream }),
      RingKernelError,
    );
    assert.throws(
      () => fn.launch({ block: 1, stream: {} as CudaStream }),
      RingKernelError,
    );
    assert.throws(
      () => fn.launch({ block: 1, stream, args: [{ type: "u32", value: -1 }] }),
      RingKernelError,
    );
    stream.close();
    assert.throws(() => fn.launch({ block: 1, stream }), InvalidStateError);
    assert.equal(fake.launches.length, before);
    driver.close();
  });

  test("streams query, wait with a deadline and close once", async () => {
    const { fake, driver } = openFake();
    const context = driver.primaryContext(0);
    const stream = context.createStream({ nonBlocking: false });
    assert.equal(fake.lastStreamFlags, 0);
    fake.busyQueries = 1;
    assert.equal(stream.query(), false);
    assert.equal(stream.query(), true);
    fake.busyQueries = 3;
    await stream.waitIdle({ timeoutMs: 5_000 });
    assert.equal(fake.busyQueries, 0);
    fake.busyQueries = Number.MAX_SAFE_INTEGER;
    await assert.rejects(
      stream.waitIdle({ timeoutMs: 20 }),
      TimeoutError,
    );
    fake.busyQueries = 0;
    await assert.rejects(stream.waitIdle({ timeoutMs: 0 }), RingKernelError);
    stream.synchronize();
    stream.close();
    stream.close();
    assert.equal(
      fake.calls.filter((c) => c === "cuStreamDestroy_v2").length,
      1,
    );
    assert.throws(() => stream.query(), InvalidStateError);
    driver.close();
  });

  test("events record and measure elapsed time", () => {
    const { fake, driver } = openFake();
    const context = driver.primaryContext(0);
    const stream = context.createStream();
    const start = context.createEvent();
    const end = context.createEvent({ blockingSync: true });
    assert.equal(fake.lastEventFlags, 1);
    assert.equal(start.query(), false);
    const notReady = thrown(() => CudaEvent.elapsedMs(start, end));
    assert.ok(notReady instanceof CudaError);
    assert.equal(notReady.codeName, "CUDA_ERROR_NOT_READY");
    start.record(stream);
    end.record(stream);
    end.synchronize();
    assert.equal(end.query(), true);
    assert.equal(CudaEvent.elapsedMs(start, end), 1.25);
    assert.ok(fake.calls.includes("cuEventElapsedTime_v2"));
    context.createEvent({ timing: false });
    assert.equal(fake.lastEventFlags, 2);
    end.close();
    assert.throws(() => end.record(stream), InvalidStateError);
    driver.close();
  });

  test("elapsed time falls back to cuEventElapsedTime, or says it is missing", () => {
    const v1 = openFake({ without: ["cuEventElapsedTime_v2"] });
    const c1 = v1.driver.primaryContext(0);
    const s1 = c1.createStream();
    const [a, b] = [c1.createEvent(), c1.createEvent()];
    a.record(s1);
    b.record(s1);
    assert.equal(CudaEvent.elapsedMs(a, b), 1.25);
    assert.ok(v1.fake.calls.includes("cuEventElapsedTime"));
    v1.driver.close();

    const none = openFake({
      without: ["cuEventElapsedTime_v2", "cuEventElapsedTime"],
    });
    const c2 = none.driver.primaryContext(0);
    const [x, y] = [c2.createEvent(), c2.createEvent()];
    assert.throws(() => CudaEvent.elapsedMs(x, y), LibraryLoadError);
    none.driver.close();
  });

  test("device memory copies both ways, sync and on a stream", () => {
    const { fake, driver } = openFake();
    const context = driver.primaryContext(0);
    const stream = context.createStream();
    const memory = context.allocDevice(64);
    const pattern = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    memory.copyFromHost(pattern);
    memory.copyFromHost(pattern, { byteOffset: 32, stream });
    const back = new Uint8Array(64);
    memory.copyToHost(back);
    assert.deepEqual([...back.subarray(0, 16)], [...pattern]);
    assert.deepEqual([...back.subarray(32, 48)], [...pattern]);
    const part = new Uint8Array(4);
    memory.copyToHost(part, { byteOffset: 34, stream });
    assert.deepEqual([...part], [3, 4, 5, 6]);
    assert.ok(fake.calls.includes("cuMemcpyHtoDAsync_v2"));
    assert.ok(fake.calls.includes("cuMemcpyDtoHAsync_v2"));
    memory.fill(0x5a, { byteOffset: 60 });
    memory.copyToHost(back);
    assert.deepEqual([...back.subarray(58, 64)], [
      0,
      0,
      0x5a,
      0x5a,
      0x5a,
      0x5a,
    ]);
    // Out of range copies are refused before the driver sees them.
    assert.throws(
      () => memory.copyFromHost(pattern, { byteOffset: 56 }),
      /run past the end/,
    );
    assert.throws(() => memory.copyToHost(new Uint8Array(65)), RingKernelError);
    assert.throws(() => memory.fill(256), RingKernelError);
    assert.throws(() => context.allocDevice(0), RingKernelError);
    memory.free();
    memory.free();
    assert.equal(fake.calls.filter((c) => c === "cuMemFree_v2").length, 1);
    assert.throws(() => memory.copyToHost(back), InvalidStateError);
    driver.close();
  });

  test("stream-ordered allocation, and its absence", () => {
    const { fake, driver } = openFake();
    const context = driver.primaryContext(0);
    const stream = context.createStream();
    assert.equal(context.supportsAsyncAlloc, true);
    const memory = context.allocDeviceAsync(128, stream);
    memory.freeAsync(stream);
    memory.freeAsync(stream);
    assert.equal(fake.calls.filter((c) => c === "cuMemFreeAsync").length, 1);
    driver.close();

    const old = openFake({ without: ["cuMemAllocAsync", "cuMemFreeAsync"] });
    const oldContext = old.driver.primaryContext(0);
    assert.equal(oldContext.supportsAsyncAlloc, false);
    const error = thrown(() =>
      oldContext.allocDeviceAsync(128, oldContext.createStream())
    );
    assert.ok(error instanceof LibraryLoadError);
    assert.match(error.message, /cuMemAllocAsync/);
    old.driver.close();
  });

  test("mapped host memory is shared with kernels and detached on free", () => {
    const { fake, driver } = openFake();
    const context = driver.primaryContext(0);
    const stream = context.createStream();
    const host = context.allocMappedHost(256);
    assert.equal(fake.lastHostAllocFlags, 3);
    assert.equal(host.buffer, host.buffer);
    const words = new Uint32Array(host.buffer);
    // The "kernel" writes through the device address; the host sees it.
    context.loadModule(FAKE_PTX).getFunction("store_u32").launch({
      block: 1,
      stream,
      args: [
        { type: "ptr", value: host.deviceAddress + 16n },
        { type: "u32", value: 77 },
      ],
    });
    assert.equal(Atomics.load(words, 4), 77);
    // The host writes; the device side sees it.
    Atomics.store(words, 8, 99);
    const deviceView = fake.resolve(host.deviceAddress + 32n, 4);
    assert.equal(new Uint32Array(deviceView.slice().buffer)[0], 99);
    host.free();
    host.free();
    assert.equal(words.length, 0);
    assert.throws(() => host.buffer, InvalidStateError);
    assert.equal(fake.calls.filter((c) => c === "cuMemFreeHost").length, 1);
    context.allocMappedHost(64, { writeCombined: true });
    assert.equal(fake.lastHostAllocFlags, 7);
    driver.close();
  });

  test("a failed device-pointer lookup gives the pinned memory back", () => {
    const { fake, driver } = openFake();
    const context = driver.primaryContext(0);
    fake.failNext.set(
      "cuMemHostGetDevicePointer_v2",
      CuResult.ERROR_INVALID_VALUE,
    );
    const error = thrown(() => context.allocMappedHost(64));
    assert.ok(error instanceof CudaError);
    assert.equal(error.call, "cuMemHostGetDevicePointer_v2");
    assert.ok(fake.calls.includes("cuMemFreeHost"));
    assert.equal(fake.hostToDevice.size, 0);
    driver.close();
  });

  test("closing a context closes everything made from it", () => {
    const { fake, driver } = openFake();
    const context = driver.primaryContext(0);
    const stream = context.createStream();
    const event = context.createEvent();
    const module = context.loadModule(FAKE_PTX);
    const memory = context.allocDevice(16);
    const host = context.allocMappedHost(16);
    driver.close();
    driver.close();
    assert.equal(context.closed, true);
    for (const resource of [stream, event, module, memory, host]) {
      assert.equal(resource.closed, true);
    }
    assert.equal(fake.streams.size, 0);
    assert.equal(fake.events.size, 0);
    assert.equal(fake.modules.size, 0);
    assert.equal(fake.allocations.size, 0);
    assert.equal(fake.retained.get(0), 0);
    assert.throws(() => driver.deviceCount(), InvalidStateError);
    assert.throws(() => driver.primaryContext(0), InvalidStateError);
    assert.ok(context instanceof CudaContext);
  });
});
