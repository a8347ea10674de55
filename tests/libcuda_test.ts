import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { toBunSymbolDefinition, validateSymbolTable } from "../ffi/dylib.ts";
import {
  CuDeviceAttribute,
  CuMemHostAllocFlags,
  CuResult,
  CuStreamFlags,
  LIBCUDA_ENV_VAR,
  LIBCUDA_SYMBOLS,
  libcudaCandidates,
  openLibcuda,
} from "../ffi/libcuda.ts";
import { LibraryLoadError } from "../src/errors.ts";
import { withEnv } from "./helpers.ts";

const REQUIRED = [
  "cuInit",
  "cuDriverGetVersion",
  "cuDeviceGetCount",
  "cuDeviceGet",
  "cuDeviceGetName",
  "cuDeviceGetAttribute",
  "cuDevicePrimaryCtxRetain",
  "cuDevicePrimaryCtxRelease_v2",
  "cuCtxSetCurrent",
  "cuCtxSynchronize",
  "cuModuleLoadData",
  "cuModuleUnload",
  "cuModuleGetFunction",
  "cuModuleGetGlobal_v2",
  "cuLaunchKernel",
  "cuStreamCreate",
  "cuStreamSynchronize",
  "cuStreamQuery",
  "cuStreamDestroy_v2",
  "cuEventCreate",
  "cuEventRecord",
  "cuEventQuery",
  "cuEventSynchronize",
  "cuEventDestroy_v2",
  "cuMemAlloc_v2",
  "cuMemFree_v2",
  "cuMemHostAlloc",
  "cuMemHostGetDevicePointer_v2",
  "cuMemFreeHost",
  "cuMemcpyHtoD_v2",
  "cuMemcpyDtoH_v2",
  "cuMemcpyHtoDAsync_v2",
  "cuMemcpyDtoHAsync_v2",
  "cuMemsetD8_v2",
  "cuGetErrorName",
  "cuGetErrorString",
];
const OPTIONAL = [
  "cuModuleLoadDataEx",
  "cuEventElapsedTime",
  "cuEventElapsedTime_v2",
  "cuMemAllocAsync",
  "cuMemFreeAsync",
  "cuModuleGetLoadingMode",
  "cuModuleGetFunctionCount",
  "cuModuleEnumerateFunctions",
  "cuFuncGetName",
  "cuFuncLoad",
  "cuFuncIsLoaded",
  "cuOccupancyMaxActiveBlocksPerMultiprocessor",
];

describe("the libcuda symbol table", () => {
  test("is well-formed", () => {
    validateSymbolTable(LIBCUDA_SYMBOLS);
  });

  test("holds exactly the required and optional driver calls", () => {
    const entries = Object.entries(LIBCUDA_SYMBOLS);
    const required = entries.filter(([, d]) => !("optional" in d)).map(([n]) =>
      n
    );
    const optional = entries.filter(([, d]) => "optional" in d && d.optional)
      .map(([n]) => n);
    assert.deepEqual(required.sort(), [...REQUIRED].sort());
    assert.deepEqual(optional.sort(), [...OPTIONAL].sort());
  });

  test("every call returns a CUresult and passes handles as u64", () => {
    for (const [name, definition] of Object.entries(LIBCUDA_SYMBOLS)) {
      assert.equal(definition.result, "i32", name);
      assert.ok(
        !(definition.parameters as readonly string[]).includes("pointer"),
        `${name} uses "pointer": handles are u64, so no per-call conversion`,
      );
    }
  });

  test("signatures match cuda.h arities", () => {
    const arity: Record<string, number> = {
      cuLaunchKernel: 11,
      cuModuleLoadDataEx: 5,
      cuModuleGetGlobal_v2: 4,
      cuMemcpyHtoDAsync_v2: 4,
      cuMemcpyDtoHAsync_v2: 4,
      cuMemHostAlloc: 3,
      cuMemsetD8_v2: 3,
      cuCtxSynchronize: 0,
    };
    for (const [name, count] of Object.entries(arity)) {
      const definition = LIBCUDA_SYMBOLS[name as keyof typeof LIBCUDA_SYMBOLS];
      assert.equal(definition.parameters.length, count, name);
    }
  });

  test("every entry translates to bun:ffi", () => {
    for (const definition of Object.values(LIBCUDA_SYMBOLS)) {
      const bun = toBunSymbolDefinition(definition);
      assert.equal(bun.args.length, definition.parameters.length);
      assert.ok(bun.args.every((type) => type !== undefined));
      assert.equal(bun.returns, "i32");
    }
  });

  test("constants carry the driver's values", () => {
    assert.equal(CuResult.ERROR_INVALID_PTX, 218);
    assert.equal(CuResult.ERROR_NOT_READY, 600);
    assert.equal(CuStreamFlags.NON_BLOCKING, 1);
    assert.equal(
      CuMemHostAllocFlags.PORTABLE | CuMemHostAllocFlags.DEVICEMAP,
      3,
    );
    assert.equal(CuMemHostAllocFlags.WRITECOMBINED, 4);
    assert.equal(CuDeviceAttribute.MULTIPROCESSOR_COUNT, 16);
    assert.equal(CuDeviceAttribute.COMPUTE_CAPABILITY_MAJOR, 75);
    assert.equal(CuDeviceAttribute.COMPUTE_CAPABILITY_MINOR, 76);
  });
});

describe("finding libcuda", () => {
  test("candidates: the override, then the platform's names", () => {
    withEnv(LIBCUDA_ENV_VAR, undefined, () => {
      assert.deepEqual(libcudaCandidates({ platform: "linux" }), [
        "libcuda.so.1",
        "libcuda.so",
      ]);
      assert.deepEqual(libcudaCandidates({ platform: "win32" }), [
        "nvcuda.dll",
      ]);
    });
    withEnv(LIBCUDA_ENV_VAR, "/opt/cuda/libcuda.so.1", () => {
      assert.deepEqual(libcudaCandidates({ platform: "linux" }), [
        "/opt/cuda/libcuda.so.1",
        "libcuda.so.1",
        "libcuda.so",
      ]);
    });
  });

  test("openLibcuda loads the driver, or names every candidate it tried", () => {
    let library;
    try {
      library = openLibcuda();
    } catch (error) {
      assert.ok(error instanceof LibraryLoadError, String(error));
      const expected = libcudaCandidates();
      assert.equal(error.tried.length, expected.length);
      expected.forEach((candidate, i) => {
        assert.ok(error.tried[i].startsWith(`${candidate}: `));
        assert.ok(error.message.includes(candidate));
      });
      assert.ok(error.message.includes(LIBCUDA_ENV_VAR));
      return;
    }
    // A machine with the driver: it loads, lacking at most optional calls.
    assert.ok(libcudaCandidates().includes(library.path));
    for (const name of library.missing) assert.ok(OPTIONAL.includes(name));
    assert.equal(typeof library.symbols.cuInit, "function");
  });

  test("a bogus RINGKERNEL_LIBCUDA is tried first and named", () => {
    const bogus = "/nonexistent/ringkernel/libcuda-bogus.so.1";
    withEnv(LIBCUDA_ENV_VAR, bogus, () => {
      let library;
      try {
        library = openLibcuda();
      } catch (error) {
        assert.ok(error instanceof LibraryLoadError, String(error));
        assert.ok(error.tried[0].startsWith(`${bogus}: `), error.tried[0]);
        assert.ok(error.message.includes(bogus));
        assert.ok(error.tried.some((t) => t.startsWith("libcuda.so.1: ")));
        return;
      }
      // With a driver installed, loading falls back past the bogus path.
      assert.notEqual(library.path, bogus);
    });
  });

  test("explicit candidates replace the defaults", () => {
    const error = withEnv(LIBCUDA_ENV_VAR, undefined, () => {
      try {
        openLibcuda({ candidates: ["/nonexistent/a/libcuda.so.1"] });
      } catch (error) {
        return error;
      }
      assert.fail("expected a LibraryLoadError");
    });
    assert.ok(error instanceof LibraryLoadError);
    assert.deepEqual(error.tried.map((t) => t.split(": ")[0]), [
      "/nonexistent/a/libcuda.so.1",
    ]);
  });
});
