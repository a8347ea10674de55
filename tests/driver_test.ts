import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
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
import {
  CuResult,
  LIBCUDA_ENV_VAR,
  type LibcudaLike,
  type LibcudaSymbols,
} from "../ffi/libcuda.ts";
import { addressOf, mapMemory } from "../ffi/memory.ts";
import {
  BackendUnavailableError,
  CudaError,
  InvalidStateError,
  LibraryLoadError,
  RingKernelError,
  TimeoutError,
} from "../src/errors.ts";
import { gpu, gpuTest } from "./gpu_gate.ts";

/** Runs `body` and returns what it throws (failing when it does not). */
function thrown(body: () => unknown): unknown {
  try {
    body();
  } catch (error) {
    return error;
  }
  assert.fail("expected an error");
}

// ---------------------------------------------------------------------------
// A stand-in libcuda written in TypeScript. It keeps device memory in JS
// buffers and runs two "kernels" at launch, dereferencing the kernelParams
// addresses through native memory, so the driver layer's packing, error
// mapping and lifecycle are exercised without a GPU.
// ---------------------------------------------------------------------------

const RESULT_NAMES = new Map<number, string>(
  Object.entries(CuResult).map(([key, code]) => [code, `CUDA_${key}`]),
);

interface FakeAllocation {
  bytes: Uint8Array;
  host?: bigint;
}

class FakeCuda implements LibcudaLike {
  readonly path = "fake-libcuda.so.1";
  missing: string[] = [];
  readonly calls: string[] = [];
  /** Results to return instead of running, once, by symbol name. */
  readonly failNext = new Map<string, number>();
  current = 0n;
  readonly retained = new Map<number, number>();
  readonly allocations = new Map<bigint, FakeAllocation>();
  readonly hostToDevice = new Map<bigint, bigint>();
  readonly modules = new Map<bigint, Set<string>>();
  readonly functions = new Map<bigint, string>();
  readonly loadedFunctions = new Set<bigint>();
  readonly streams = new Map<bigint, number>();
  readonly events = new Map<bigint, boolean>();
  readonly launches: { name: string; grid: number[]; block: number[] }[] = [];
  lastHostAllocFlags = -1;
  lastStreamFlags = -1;
  lastEventFlags = -1;
  /** How many queries of a stream report NOT_READY before it is idle. */
  busyQueries = 0;
  #next = 0x10n;
  #nextDevice = 0xd000_0000_0000n;
  #strings = new Map<string, Uint8Array>();
  symbols: LibcudaSymbols;

  constructor(options: { without?: string[] } = {}) {
    const all = this.#makeSymbols();
    for (const name of options.without ?? []) {
      all[name] = undefined;
      this.missing.push(name);
    }
    this.symbols = all as unknown as LibcudaSymbols;
  }

  #handle(): bigint {
    this.#next += 0x10n;
    return this.#next;
  }

  #cString(text: string): bigint {
    let bytes = this.#strings.get(text);
    if (bytes === undefined) {
      bytes = new TextEncoder().encode(`${text}\0`);
      this.#strings.set(text, bytes);
    }
    return addressOf(bytes);
  }

  /** The bytes behind a device address (device memory or mapped host memory). */
  resolve(address: bigint, length: number): Uint8Array {
    for (const [base, allocation] of this.allocations) {
      const offset = address - base;
      if (offset >= 0n && offset + BigInt(length) <= allocation.bytes.length) {
        return allocation.bytes.subarray(
          Number(offset),
          Number(offset) + length,
        );
      }
    }
    throw new Error(`fake: bad device address 0x${address.toString(16)}`);
  }

  #allocate(size: number, host = false): bigint {
    const bytes = new Uint8Array(size);
    const device = this.#nextDevice;
    this.#nextDevice += 0x10000n + BigInt(size);
    const allocation: FakeAllocation = { bytes };
    if (host) {
      allocation.host = addressOf(bytes);
      this.hostToDevice.set(allocation.host, device);
    }
    this.allocations.set(device, allocation);
    return device;
  }

  #runKernel(name: string, pointers: BigUint64Array | null): void {
    // Dereference each void* entry through native memory, as the driver does.
    const arg = (i: number) => new DataView(mapMemory(pointers![i], 8));
    if (name === "store_u32") {
      const target = arg(0).getBigUint64(0, true);
      const view = this.resolve(target, 4);
      new DataView(view.buffer, view.byteOffset, 4).setUint32(
        0,
        arg(1).getUint32(0, true),
        true,
      );
    } else if (name === "dump_params") {
      const out = this.resolve(arg(0).getBigUint64(0, true), 32);
      const data = new DataView(out.buffer, out.byteOffset, 32);
      data.setUint32(0, arg(1).getUint32(0, true), true);
      data.setInt32(4, arg(2).getInt32(0, true), true);
      data.setBigUint64(8, arg(3).getBigUint64(0, true), true);
      data.setFloat32(16, arg(4).getFloat32(0, true), true);
      data.setFloat64(24, arg(5).getFloat64(0, true), true);
    }
  }

  #makeSymbols(): Record<string, ((...args: never[]) => number) | undefined> {
    const ok = CuResult.SUCCESS;
    const track = <A extends unknown[]>(
      name: string,
      body: (...args: A) => number,
    ) =>
    (...args: A): number => {
      this.calls.push(name);
      const failure = this.failNext.get(name);
      if (failure !== undefined) {
        this.failNext.delete(name);
        return failure;
      }
      return body(...args);
    };
    const write64 = (out: BigUint64Array, value: bigint) => {
      out[0] = value;
      return ok;
    };
    const elapsed = (out: Float32Array, start: bigint, end: bigint) => {
      if (!this.events.get(start) || !this.events.get(end)) {
        return CuResult.ERROR_NOT_READY;
      }
      out[0] = 1.25;
      return ok;
    };
    const loadModule = (out: BigUint64Array, image: Uint8Array) => {
      if (image[image.length - 1] !== 0) return CuResult.ERROR_INVALID_VALUE;
      const text = new TextDecoder().decode(image.subarray(0, -1));
      if (text.includes("broken")) return CuResult.ERROR_INVALID_PTX;
      const kernels = new Set(
        [...text.matchAll(/\.entry (\w+)/g)].map((m) => m[1]),
      );
      const handle = this.#handle();
      this.modules.set(handle, kernels);
      out[0] = handle;
      return ok;
    };
    return {
      cuInit: track(
        "cuInit",
        (flags: number) => flags === 0 ? ok : CuResult.ERROR_INVALID_VALUE,
      ),
      cuDriverGetVersion: track("cuDriverGetVersion", (out: Int32Array) => {
        out[0] = 13000;
        return ok;
      }),
      cuGetErrorName: track(
        "cuGetErrorName",
        (code: number, out: BigUint64Array) => {
          const name = RESULT_NAMES.get(code);
          if (name === undefined) return CuResult.ERROR_INVALID_VALUE;
          return write64(out, this.#cString(name));
        },
      ),
      cuGetErrorString: track(
        "cuGetErrorString",
        (code: number, out: BigUint64Array) =>
          write64(out, this.#cString(`fake description of ${code}`)),
      ),
      cuDeviceGetCount: track("cuDeviceGetCount", (out: Int32Array) => {
        out[0] = 2;
        return ok;
      }),
      cuDeviceGet: track("cuDeviceGet", (out: Int32Array, ordinal: number) => {
        out[0] = ordinal;
        return ok;
      }),
      cuDeviceGetName: track(
        "cuDeviceGetName",
        (out: Uint8Array, length: number) => {
          out.set(new TextEncoder().encode("Fake GPU\0").subarray(0, length));
          return ok;
        },
      ),
      cuDeviceGetAttribute: track(
        "cuDeviceGetAttribute",
        (out: Int32Array, attribute: number) => {
          const values: Record<number, number> = {
            75: 9,
            76: 0,
            16: 132,
            19: 1,
            39: 2048,
            106: 32,
            115: 1,
          };
          if (!(attribute in values)) return CuResult.ERROR_INVALID_VALUE;
          out[0] = values[attribute];
          return ok;
        },
      ),
      cuDevicePrimaryCtxRetain: track(
        "cuDevicePrimaryCtxRetain",
        (out: BigUint64Array, device: number) => {
          this.retained.set(device, (this.retained.get(device) ?? 0) + 1);
          return write64(out, 0xc0n + BigInt(device));
        },
      ),
      cuDevicePrimaryCtxRelease_v2: track(
        "cuDevicePrimaryCtxRelease_v2",
        (device: number) => {
          this.retained.set(device, (this.retained.get(device) ?? 0) - 1);
          return ok;
        },
      ),
      cuCtxSetCurrent: track("cuCtxSetCurrent", (context: bigint) => {
        this.current = context;
        return ok;
      }),
      cuCtxSynchronize: track("cuCtxSynchronize", () => ok),
      cuModuleLoadData: track("cuModuleLoadData", loadModule),
      cuModuleLoadDataEx: track(
        "cuModuleLoadDataEx",
        (
          out: BigUint64Array,
          image: Uint8Array,
          count: number,
          options: Uint32Array,
          values: BigUint64Array,
        ) => {
          const result = loadModule(out, image);
          if (result === CuResult.ERROR_INVALID_PTX) {
            // Options 5/6: error log buffer and its size, as the driver reads them.
            assert.equal(count, 2);
            assert.deepEqual([...options], [5, 6]);
            const log = new Uint8Array(mapMemory(values[0], Number(values[1])));
            log.set(new TextEncoder().encode("ptxas fatal: broken line 7\0"));
          }
          return result;
        },
      ),
      cuModuleGetFunctionCount: track(
        "cuModuleGetFunctionCount",
        (out: Uint32Array, module: bigint) => {
          const kernels = this.modules.get(module);
          if (kernels === undefined) return CuResult.ERROR_INVALID_HANDLE;
          out[0] = kernels.size;
          return ok;
        },
      ),
      cuModuleEnumerateFunctions: track(
        "cuModuleEnumerateFunctions",
        (out: BigUint64Array, count: number, module: bigint) => {
          const kernels = [...this.modules.get(module) ?? []];
          kernels.slice(0, count).forEach((name, i) => {
            const handle = this.#handle();
            this.functions.set(handle, name);
            out[i] = handle;
          });
          return ok;
        },
      ),
      cuFuncGetName: track(
        "cuFuncGetName",
        (out: BigUint64Array, fn: bigint) => {
          const name = this.functions.get(fn);
          if (name === undefined) return CuResult.ERROR_INVALID_HANDLE;
          return write64(out, this.#cString(name));
        },
      ),
      cuFuncIsLoaded: track(
        "cuFuncIsLoaded",
        (out: Int32Array, fn: bigint) => {
          out[0] = this.loadedFunctions.has(fn) ? 1 : 0;
          return ok;
        },
      ),
      cuFuncLoad: track("cuFuncLoad", (fn: bigint) => {
        this.loadedFunctions.add(fn);
        return ok;
      }),
      cuOccupancyMaxActiveBlocksPerMultiprocessor: track(
        "cuOccupancyMaxActiveBlocksPerMultiprocessor",
        (out: Int32Array, _fn: bigint, threads: number, shared: bigint) => {
          out[0] = Math.min(
            Math.floor(2048 / threads),
            Math.floor(233472 / (Number(shared) + 1024)),
          );
          return ok;
        },
      ),
      cuModuleUnload: track("cuModuleUnload", (module: bigint) => {
        return this.modules.delete(module) ? ok : CuResult.ERROR_INVALID_HANDLE;
      }),
      cuModuleGetFunction: track(
        "cuModuleGetFunction",
        (out: BigUint64Array, module: bigint, name: Uint8Array) => {
          const text = new TextDecoder().decode(name.subarray(0, -1));
          if (!this.modules.get(module)?.has(text)) {
            return CuResult.ERROR_NOT_FOUND;
          }
          const handle = this.#handle();
          this.functions.set(handle, text);
          return write64(out, handle);
        },
      ),
      cuModuleGetGlobal_v2: track(
        "cuModuleGetGlobal_v2",
        (
          address: BigUint64Array,
          size: BigUint64Array,
          _module: bigint,
          name: Uint8Array,
        ) => {
          if (new TextDecoder().decode(name.subarray(0, -1)) !== "counter") {
            return CuResult.ERROR_NOT_FOUND;
          }
          address[0] = 0xdeadn;
          size[0] = 8n;
          return ok;
        },
      ),
      cuLaunchKernel: track(
        "cuLaunchKernel",
        (
          fn: bigint,
          gx: number,
          gy: number,
          gz: number,
          bx: number,
          by: number,
          bz: number,
          _shared: number,
          stream: bigint,
          params: BigUint64Array | null,
          extra: unknown,
        ) => {
          const name = this.functions.get(fn);
          if (
            name === undefined || !this.streams.has(stream) || extra !== null
          ) {
            return CuResult.ERROR_INVALID_HANDLE;
          }
          this.launches.push({ name, grid: [gx, gy, gz], block: [bx, by, bz] });
          this.#runKernel(name, params);
          return ok;
        },
      ),
      cuStreamCreate: track(
        "cuStreamCreate",
        (out: BigUint64Array, flags: number) => {
          this.lastStreamFlags = flags;
          const handle = this.#handle();
          this.streams.set(handle, 0);
          return write64(out, handle);
        },
      ),
      cuStreamSynchronize: track("cuStreamSynchronize", () => ok),
      cuStreamQuery: track("cuStreamQuery", () => {
        if (this.busyQueries > 0) {
          this.busyQueries--;
          return CuResult.ERROR_NOT_READY;
        }
        return ok;
      }),
      cuStreamDestroy_v2: track("cuStreamDestroy_v2", (stream: bigint) => {
        return this.streams.delete(stream) ? ok : CuResult.ERROR_INVALID_HANDLE;
      }),
      cuEventCreate: track(
        "cuEventCreate",
        (out: BigUint64Array, flags: number) => {
          this.lastEventFlags = flags;
          const handle = this.#handle();
          this.events.set(handle, false);
          return write64(out, handle);
        },
      ),
      cuEventRecord: track("cuEventRecord", (event: bigint) => {
        this.events.set(event, true);
        return ok;
      }),
      cuEventQuery: track("cuEventQuery", (event: bigint) => {
        return this.events.get(event) ? ok : CuResult.ERROR_NOT_READY;
      }),
      cuEventSynchronize: track("cuEventSynchronize", () => ok),
      cuEventElapsedTime: track("cuEventElapsedTime", elapsed),
      cuEventElapsedTime_v2: track("cuEventElapsedTime_v2", elapsed),
      cuEventDestroy_v2: track("cuEventDestroy_v2", (event: bigint) => {
        return this.events.delete(event) ? ok : CuResult.ERROR_INVALID_HANDLE;
      }),
      cuMemAlloc_v2: track(
        "cuMemAlloc_v2",
        (out: BigUint64Array, size: number) =>
          write64(out, this.#allocate(size)),
      ),
      cuMemAllocAsync: track(
        "cuMemAllocAsync",
        (out: BigUint64Array, size: number) =>
          write64(out, this.#allocate(size)),
      ),
      cuMemFree_v2: track("cuMemFree_v2", (address: bigint) => {
        return this.allocations.delete(address)
          ? ok
          : CuResult.ERROR_INVALID_VALUE;
      }),
      cuMemFreeAsync: track("cuMemFreeAsync", (address: bigint) => {
        return this.allocations.delete(address)
          ? ok
          : CuResult.ERROR_INVALID_VALUE;
      }),
      cuMemsetD8_v2: track(
        "cuMemsetD8_v2",
        (address: bigint, value: number, count: number) => {
          this.resolve(address, count).fill(value);
          return ok;
        },
      ),
      cuMemHostAlloc: track(
        "cuMemHostAlloc",
        (out: BigUint64Array, size: number, flags: number) => {
          this.lastHostAllocFlags = flags;
          const device = this.#allocate(size, true);
          return write64(out, this.allocations.get(device)!.host!);
        },
      ),
      cuMemHostGetDevicePointer_v2: track(
        "cuMemHostGetDevicePointer_v2",
        (out: BigUint64Array, host: bigint, flags: number) => {
          const device = this.hostToDevice.get(host);
          if (device === undefined || flags !== 0) {
            return CuResult.ERROR_INVALID_VALUE;
          }
          return write64(out, device);
        },
      ),
      cuMemFreeHost: track("cuMemFreeHost", (host: bigint) => {
        const device = this.hostToDevice.get(host);
        if (device === undefined) return CuResult.ERROR_INVALID_VALUE;
        this.hostToDevice.delete(host);
        this.allocations.delete(device);
        return ok;
      }),
      cuMemcpyHtoD_v2: track(
        "cuMemcpyHtoD_v2",
        (target: bigint, source: Uint8Array, count: number) => {
          this.resolve(target, count).set(source.subarray(0, count));
          return ok;
        },
      ),
      cuMemcpyDtoH_v2: track(
        "cuMemcpyDtoH_v2",
        (target: Uint8Array, source: bigint, count: number) => {
          target.set(this.resolve(source, count));
          return ok;
        },
      ),
      cuMemcpyHtoDAsync_v2: track(
        "cuMemcpyHtoDAsync_v2",
        (target: bigint, source: Uint8Array, count: number, stream: bigint) => {
          if (!this.streams.has(stream)) return CuResult.ERROR_INVALID_HANDLE;
          this.resolve(target, count).set(source.subarray(0, count));
          return ok;
        },
      ),
      cuMemcpyDtoHAsync_v2: track(
        "cuMemcpyDtoHAsync_v2",
        (target: Uint8Array, source: bigint, count: number, stream: bigint) => {
          if (!this.streams.has(stream)) return CuResult.ERROR_INVALID_HANDLE;
          target.set(this.resolve(source, count));
          return ok;
        },
      ),
    } as Record<string, ((...args: never[]) => number) | undefined>;
  }
}

const FAKE_PTX = `.version 8.0
.target sm_80
.address_size 64
.visible .entry store_u32(.param .u64 p0, .param .u32 p1) { ret; }
.visible .entry dump_params() { ret; }
`;

function openFake(options: { without?: string[] } = {}) {
  const fake = new FakeCuda(options);
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
    const previous = process.env[LIBCUDA_ENV_VAR];
    process.env[LIBCUDA_ENV_VAR] = bogus;
    try {
      const error = thrown(() =>
        CudaDriver.open({ candidates: ["/nonexistent/ringkernel/libcuda.so"] })
      );
      assert.ok(error instanceof BackendUnavailableError, String(error));
      assert.ok(error.reason.includes(bogus));
      assert.ok(error.cause instanceof LibraryLoadError);
      assert.equal(error.cause.tried.length, 2);
    } finally {
      if (previous === undefined) delete process.env[LIBCUDA_ENV_VAR];
      else process.env[LIBCUDA_ENV_VAR] = previous;
    }
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

describe("CudaDriver over a stand-in libcuda", () => {
  test("open initialises the driver and reads its version", () => {
    const { fake, driver } = openFake();
    assert.equal(fake.calls[0], "cuInit");
    assert.equal(driver.driverVersion, 13000);
    assert.equal(driver.libraryPath, fake.path);
  });

  test("a failing cuInit becomes BackendUnavailableError with the CUresult", () => {
    const fake = new FakeCuda();
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
      name: "Fake GPU",
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

// ---------------------------------------------------------------------------
// On a real GPU (skipped without one; failing with RINGKERNEL_REQUIRE_GPU=1).
// ---------------------------------------------------------------------------

/** The test kernels below are hand-written PTX, which only a GPU's JIT runs. */
const TEST_KERNELS_ON_HARDWARE = "hand-written PTX test kernels";

const TEST_PTX = `.version 8.0
.target sm_80
.address_size 64

.visible .entry rk_test_empty()
{
	ret;
}

.visible .entry rk_test_store_u32(
	.param .u64 rk_test_store_u32_param_0,
	.param .u32 rk_test_store_u32_param_1
)
{
	.reg .b32 	%r<2>;
	.reg .b64 	%rd<3>;
	ld.param.u64 	%rd1, [rk_test_store_u32_param_0];
	ld.param.u32 	%r1, [rk_test_store_u32_param_1];
	cvta.to.global.u64 	%rd2, %rd1;
	st.global.u32 	[%rd2], %r1;
	membar.sys;
	ret;
}

.visible .entry rk_test_increment_u32(
	.param .u64 rk_test_increment_u32_param_0,
	.param .u64 rk_test_increment_u32_param_1
)
{
	.reg .b32 	%r<3>;
	.reg .b64 	%rd<5>;
	ld.param.u64 	%rd1, [rk_test_increment_u32_param_0];
	ld.param.u64 	%rd2, [rk_test_increment_u32_param_1];
	cvta.to.global.u64 	%rd3, %rd1;
	cvta.to.global.u64 	%rd4, %rd2;
	ld.volatile.global.u32 	%r1, [%rd3];
	add.s32 	%r2, %r1, 1;
	st.global.u32 	[%rd4], %r2;
	membar.sys;
	ret;
}

.visible .entry rk_test_params(
	.param .u64 rk_test_params_param_0,
	.param .u32 rk_test_params_param_1,
	.param .s32 rk_test_params_param_2,
	.param .u64 rk_test_params_param_3,
	.param .f32 rk_test_params_param_4,
	.param .f64 rk_test_params_param_5
)
{
	.reg .b32 	%r<3>;
	.reg .f32 	%f<2>;
	.reg .b64 	%rd<4>;
	.reg .f64 	%fd<2>;
	ld.param.u64 	%rd1, [rk_test_params_param_0];
	ld.param.u32 	%r1, [rk_test_params_param_1];
	ld.param.s32 	%r2, [rk_test_params_param_2];
	ld.param.u64 	%rd2, [rk_test_params_param_3];
	ld.param.f32 	%f1, [rk_test_params_param_4];
	ld.param.f64 	%fd1, [rk_test_params_param_5];
	cvta.to.global.u64 	%rd3, %rd1;
	st.global.u32 	[%rd3], %r1;
	st.global.s32 	[%rd3+4], %r2;
	st.global.u64 	[%rd3+8], %rd2;
	st.global.f32 	[%rd3+16], %f1;
	st.global.f64 	[%rd3+24], %fd1;
	ret;
}
`;

const BROKEN_PTX = `.version 8.0
.target sm_80
.address_size 64

.visible .entry rk_test_broken()
{
	this_is_not_an_instruction;
	ret;
}
`;

/** Every wait in these tests has a deadline. */
const WAIT = { timeoutMs: 30_000 };

describe("CudaDriver on a GPU", () => {
  let driver: CudaDriver | undefined;
  let context: CudaContext;
  before(() => {
    if (!gpu.available) return;
    driver = CudaDriver.open();
    context = driver.primaryContext(0);
  });
  after(() => driver?.close());

  gpuTest("reports the device", () => {
    assert.ok(driver!.driverVersion >= 11000, String(driver!.driverVersion));
    assert.ok(driver!.deviceCount() >= 1);
    const info = driver!.device(0);
    assert.ok(info.name.length > 0);
    assert.ok(info.computeCapability.major >= 7);
    assert.ok(info.multiprocessorCount > 0);
    assert.equal(info.canMapHostMemory, true);
  });

  gpuTest("loads PTX, launches an empty kernel and synchronises", async () => {
    const module = context.loadModule(TEST_PTX, { name: "test.ptx" });
    const stream = context.createStream();
    try {
      const fn = module.getFunction("rk_test_empty");
      fn.launch({ grid: 2, block: 64, stream });
      await stream.waitIdle(WAIT);
      assert.equal(stream.query(), true);
      stream.synchronize();
      const missing = thrown(() => module.getFunction("rk_test_missing"));
      assert.ok(missing instanceof CudaError);
      assert.equal(missing.codeName, "CUDA_ERROR_NOT_FOUND");
    } finally {
      stream.close();
      module.close();
    }
  }, TEST_KERNELS_ON_HARDWARE);

  gpuTest("events time a launch", async () => {
    const module = context.loadModule(TEST_PTX);
    const stream = context.createStream();
    const start = context.createEvent();
    const end = context.createEvent();
    try {
      start.record(stream);
      module.getFunction("rk_test_empty").launch({ block: 32, stream });
      end.record(stream);
      await stream.waitIdle(WAIT);
      end.synchronize();
      assert.equal(end.query(), true);
      const ms = CudaEvent.elapsedMs(start, end);
      assert.ok(Number.isFinite(ms) && ms >= 0, String(ms));
    } finally {
      start.close();
      end.close();
      stream.close();
      module.close();
    }
  }, TEST_KERNELS_ON_HARDWARE);

  gpuTest("device memory round-trips, sync and on a stream", async () => {
    const stream = context.createStream();
    const memory = context.allocDevice(4096);
    try {
      const pattern = Uint8Array.from({ length: 4096 }, (_, i) => i * 31);
      memory.copyFromHost(pattern);
      const back = new Uint8Array(4096);
      memory.copyToHost(back);
      assert.deepEqual(back, pattern);

      const words = Uint32Array.from({ length: 64 }, (_, i) => i ^ 0xa5a5);
      memory.copyFromHost(words, { byteOffset: 1024, stream });
      const wordsBack = new Uint32Array(64);
      memory.copyToHost(wordsBack, { byteOffset: 1024, stream });
      await stream.waitIdle(WAIT);
      assert.deepEqual(wordsBack, words);

      memory.fill(0x5a, { byteOffset: 100, byteLength: 10 });
      memory.copyToHost(back);
      assert.deepEqual([...back.subarray(99, 111)], [
        pattern[99],
        ...new Array(10).fill(0x5a),
        pattern[110],
      ]);
    } finally {
      memory.free();
      stream.close();
    }
  });

  gpuTest(
    "stream-ordered allocation works where the driver has it",
    async () => {
      const stream = context.createStream();
      try {
        if (!context.supportsAsyncAlloc) {
          assert.throws(
            () => context.allocDeviceAsync(256, stream),
            LibraryLoadError,
          );
          return;
        }
        const memory = context.allocDeviceAsync(256, stream);
        const data = Uint8Array.from({ length: 256 }, (_, i) => 255 - i);
        memory.copyFromHost(data, { stream });
        const back = new Uint8Array(256);
        memory.copyToHost(back, { stream });
        memory.freeAsync(stream);
        await stream.waitIdle(WAIT);
        assert.deepEqual(back, data);
      } finally {
        stream.close();
      }
    },
  );

  gpuTest(
    "a kernel writes mapped host memory and reads host writes",
    async () => {
      const module = context.loadModule(TEST_PTX);
      const stream = context.createStream();
      const host = context.allocMappedHost(4096);
      const device = context.allocDevice(16);
      try {
        const words = new Uint32Array(host.buffer);
        module.getFunction("rk_test_store_u32").launch({
          block: 1,
          stream,
          args: [
            { type: "ptr", value: host.deviceAddress + 64n },
            { type: "u32", value: 0xc0ffee },
          ],
        });
        await stream.waitIdle(WAIT);
        assert.equal(Atomics.load(words, 16), 0xc0ffee);

        Atomics.store(words, 32, 41);
        module.getFunction("rk_test_increment_u32").launch({
          block: 1,
          stream,
          args: [
            { type: "ptr", value: host.deviceAddress + 128n },
            { type: "ptr", value: host.deviceAddress + 132n },
          ],
        });
        await stream.waitIdle(WAIT);
        assert.equal(Atomics.load(words, 33), 42);
      } finally {
        host.free();
        device.free();
        stream.close();
        module.close();
      }
    },
    TEST_KERNELS_ON_HARDWARE,
  );

  gpuTest("every parameter type reaches a real kernel intact", async () => {
    const module = context.loadModule(TEST_PTX);
    const stream = context.createStream();
    const memory = context.allocDevice(32);
    try {
      module.getFunction("rk_test_params").launch({
        block: 1,
        stream,
        args: [
          { type: "ptr", value: memory },
          { type: "u32", value: 4_000_000_000 },
          { type: "i32", value: -123 },
          { type: "u64", value: (1n << 50n) + 7n },
          { type: "f32", value: 0.5 },
          { type: "f64", value: -2.25 },
        ],
      });
      const out = new DataView(new ArrayBuffer(32));
      memory.copyToHost(out, { stream });
      await stream.waitIdle(WAIT);
      assert.equal(out.getUint32(0, true), 4_000_000_000);
      assert.equal(out.getInt32(4, true), -123);
      assert.equal(out.getBigUint64(8, true), (1n << 50n) + 7n);
      assert.equal(out.getFloat32(16, true), 0.5);
      assert.equal(out.getFloat64(24, true), -2.25);
    } finally {
      memory.free();
      stream.close();
      module.close();
    }
  }, TEST_KERNELS_ON_HARDWARE);

  gpuTest("bad PTX is a CudaError named CUDA_ERROR_INVALID_PTX", () => {
    const error = thrown(() =>
      context.loadModule(BROKEN_PTX, { name: "broken.ptx" })
    );
    assert.ok(error instanceof CudaError, String(error));
    assert.equal(error.codeName, "CUDA_ERROR_INVALID_PTX");
    assert.equal(error.code, CuResult.ERROR_INVALID_PTX);
  });

  gpuTest("objects refuse use after close", () => {
    const stream = context.createStream();
    const memory = context.allocDevice(16);
    stream.close();
    memory.free();
    assert.throws(() => stream.query(), InvalidStateError);
    assert.throws(() => memory.fill(0), InvalidStateError);
  });
});
