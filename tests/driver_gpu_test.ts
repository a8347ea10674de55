// The driver layer (src/cuda/driver.ts) on a GPU: skipped without one,
// failing with RINGKERNEL_REQUIRE_GPU=1. On the CPU emulator of the driver
// the tests of hand-written PTX are skipped (only a GPU's JIT runs it).
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { type CudaContext, CudaDriver, CudaEvent } from "../src/cuda/driver.ts";
import { CuResult } from "../ffi/libcuda.ts";
import {
  CudaError,
  InvalidStateError,
  LibraryLoadError,
} from "../src/errors.ts";
import { gpu, gpuTest } from "./gpu_gate.ts";
import { thrown } from "./helpers.ts";

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
  }, { hardware: TEST_KERNELS_ON_HARDWARE });

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
  }, { hardware: TEST_KERNELS_ON_HARDWARE });

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
    { hardware: TEST_KERNELS_ON_HARDWARE },
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
  }, { hardware: TEST_KERNELS_ON_HARDWARE });

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
