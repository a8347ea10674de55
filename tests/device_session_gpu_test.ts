// The process's device session on a GPU (or the CPU emulator of the driver,
// which refuses what would wait behind a resident kernel): eager loading,
// every kernel fetched at load, one probe per process, the driver checked
// against the bundle, launches admitted by occupancy, memory and modules only
// while nothing is resident, and several runtimes sharing one device.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { describe } from "node:test";
import { fileURLToPath } from "node:url";
import { CUDA_MODULE_LOADING_ENV_VAR } from "../ffi/libcuda.ts";
import { DeviceSession } from "../src/backend/cuda/device_session.ts";
import { probeCuda } from "../src/backend/select.ts";
import { KernelBundle } from "../src/cuda/bundle.ts";
import { CudaDriver } from "../src/cuda/driver.ts";
import { GpuResidencyError } from "../src/errors.ts";
import { RingKernel } from "../src/runtime.ts";
import { gpu, gpuTest } from "./gpu_gate.ts";
import { described, lastJson, runScript, withRuntime } from "./helpers.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/**
 * Runs a script in a fresh process of this runtime (the driver reads its
 * environment once per process), with extra environment (`undefined`
 * removes a variable); returns its last stdout line parsed as JSON.
 */
async function child(
  source: string,
  env: Record<string, string | undefined> = {},
): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), "rk-session-"));
  try {
    const file = join(dir, "child.ts");
    writeFileSync(
      file,
      source.replaceAll("@root/", new URL("../", import.meta.url).href),
    );
    const result = await runScript(file, { cwd: ROOT, env });
    assert.equal(result.code, 0, `child failed: ${described(result)}`);
    return lastJson(result.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const CUDA = { backend: "cuda" } as const;

describe("the device session", () => {
  gpuTest(
    "the driver loads modules eagerly unless the user chose; the choice reaches the driver",
    async () => {
      const script = `
        import { CudaDriver } from "@root/src/cuda/driver.ts";
        const driver = CudaDriver.open();
        console.log(JSON.stringify({
          mode: driver.moduleLoadingMode,
          source: driver.moduleLoadingSource,
        }));
        driver.close();
      `;
      assert.deepEqual(
        await child(script, { [CUDA_MODULE_LOADING_ENV_VAR]: undefined }),
        { mode: "eager", source: "library" },
      );
      assert.deepEqual(
        await child(script, { [CUDA_MODULE_LOADING_ENV_VAR]: "LAZY" }),
        { mode: "lazy", source: "environment" },
      );
      // A choice made in process.env alone reaches the driver too.
      assert.deepEqual(
        await child(
          `import process from "node:process";
           process.env.${CUDA_MODULE_LOADING_ENV_VAR} = "LAZY";
           ${script}`,
          { [CUDA_MODULE_LOADING_ENV_VAR]: undefined },
        ),
        { mode: "lazy", source: "environment" },
      );
      // This process too: the gate opened the driver before anything else.
      const driver = CudaDriver.open();
      try {
        if (process.env[CUDA_MODULE_LOADING_ENV_VAR] === "EAGER") {
          assert.equal(driver.moduleLoadingMode, "eager");
        }
      } finally {
        driver.close();
      }
    },
  );

  gpuTest(
    "every kernel of a module is fetched at load, so none loads beside a resident kernel (lazy mode)",
    async () => {
      const result = await child(
        `
        import { CudaDriver } from "@root/src/cuda/driver.ts";
        import { KernelBundle } from "@root/src/cuda/bundle.ts";
        const driver = CudaDriver.open();
        const context = driver.primaryContext(0);
        const bundle = KernelBundle.open();
        const image = bundle.loadImage(driver.device(0).computeCapability);
        const module = context.loadModule(image.data, { kernels: bundle.kernels });
        const fetched = [...module.functionNames].sort();
        const stream = context.createStream();
        const words = context.allocMappedHost(256);
        const view = new Int32Array(words.buffer);
        module.getFunction("rk_echo_word").launch({
          block: 1, stream,
          args: [{ type: "ptr", value: words.deviceAddress },
                 { type: "ptr", value: words.deviceAddress + 128n }],
        });
        Atomics.store(view, 0, 7);
        const deadline = performance.now() + 10_000;
        while (Atomics.load(view, 32) !== 7 && performance.now() < deadline) {
          await new Promise((r) => setTimeout(r, 1));
        }
        const resident = Atomics.load(view, 32) === 7;
        let fetchBeside = "ok";
        try {
          module.getFunction("rk_empty");
        } catch (error) {
          fetchBeside = String(error);
        }
        Atomics.store(view, 0, -1);
        await stream.waitIdle({ timeoutMs: 10_000 });
        console.log(JSON.stringify({
          mode: driver.moduleLoadingMode, fetched, resident, fetchBeside,
        }));
        driver.close();
      `,
        { [CUDA_MODULE_LOADING_ENV_VAR]: "LAZY" },
      );
      assert.equal(result.mode, "lazy");
      assert.equal(result.resident, true);
      assert.equal(result.fetchBeside, "ok");
      const expected = KernelBundle.open().kernels.filter((name) =>
        !gpu.emulated || (result.fetched as string[]).includes(name)
      );
      assert.ok(
        expected.every((name) => (result.fetched as string[]).includes(name)),
      );
      assert.ok((result.fetched as string[]).includes("rk_actor_pool"));
      assert.ok((result.fetched as string[]).includes("rk_empty"));
    },
  );

  gpuTest(
    "gpuInfo reports the device, the loading mode and what is resident",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const idle = rt.gpuInfo()!;
        assert.equal(
          idle.moduleLoading,
          process.env[CUDA_MODULE_LOADING_ENV_VAR] === "LAZY"
            ? "lazy"
            : "eager",
        );
        assert.equal(idle.device, gpu.deviceName);
        assert.equal(idle.driverVersion, gpu.driverVersion);
        assert.ok(idle.actorBlockCapacity >= idle.multiprocessors);
        assert.ok(idle.hostReservedBytes > 0 && idle.deviceReservedBytes > 0);
        const echo = await rt.launch("resident", { actor: "echo" });
        const busy = rt.gpuInfo()!;
        assert.equal(busy.residentGrids, idle.residentGrids + 1);
        assert.equal(busy.residentBlocks, idle.residentBlocks + 1);
        await echo.terminate({ timeoutMs: 5_000 });
      });
      const cpu = await RingKernel.create({ backend: "cpu" });
      try {
        assert.equal(cpu.gpuInfo(), undefined);
      } finally {
        await cpu.shutdown();
      }
    },
  );

  gpuTest("CUDA is probed once per process", async () => {
    const first = probeCuda();
    assert.equal(probeCuda(), first);
    assert.equal((await first).usable, true);
    // A probe beside a resident kernel of a runtime loads nothing (the emulator would refuse it).
    await withRuntime(CUDA, async (rt) => {
      const echo = await rt.launch("resident", { actor: "echo" });
      assert.equal((await probeCuda()).usable, true);
      assert.deepEqual(await echo.call({ seq: 1n, value: 1, tag: 1 }), {
        seq: 1n,
        value: 1,
        tag: 1,
      });
    });
  });

  gpuTest(
    "a driver older than the bundle: 'cuda' refuses naming the driver, 'auto' falls back saying why",
    async () => {
      if (!gpu.emulated) return; // only the emulator's driver version can be set
      const result = await child(
        `
        import { RingKernel } from "@root/src/runtime.ts";
        const rt = await RingKernel.create({ backend: "auto", quiet: true });
        const auto = { backend: rt.backend, reason: rt.fallbackReason };
        await rt.shutdown();
        let cuda;
        try {
          await RingKernel.create({ backend: "cuda" });
        } catch (error) {
          cuda = { name: error.name, requiredDriver: error.requiredDriver,
                   driverVersion: error.driverVersion, message: error.message };
        }
        console.log(JSON.stringify({ auto, cuda }));
      `,
        { RINGKERNEL_EMULATOR_DRIVER_VERSION: "12040" },
      );
      const auto = result.auto as { backend: string; reason: string };
      assert.equal(auto.backend, "cpu");
      assert.match(auto.reason, /CUDA 12\.4.*install driver R580 or newer/);
      const cuda = result.cuda as Record<string, unknown>;
      assert.equal(cuda.name, "DriverTooOldError");
      assert.equal(cuda.requiredDriver, "R580");
      assert.equal(cuda.driverVersion, 12040);
    },
  );

  gpuTest(
    "a launch beyond the blocks that fit is refused up front with the limit, not a start timeout",
    async () => {
      if (!gpu.emulated) return; // a real device's size cannot be shrunk
      const result = await child(
        `
        import { RingKernel } from "@root/src/runtime.ts";
        const rt = await RingKernel.create({ backend: "cuda" });
        const launched = [];
        let refused;
        const started = performance.now();
        for (let i = 0; i < 64 && refused === undefined; i++) {
          try {
            launched.push(await rt.launch("a" + i, { actor: "echo", queueCapacity: 16 }));
          } catch (error) {
            refused = { name: error.name, limit: error.limit, message: error.message,
                        ms: performance.now() - started };
          }
        }
        const reply = await launched[0].call({ seq: 3n, value: 1, tag: 2 });
        await launched.at(-1).terminate({ timeoutMs: 5_000 });
        const after = await rt.launch("again", { actor: "echo", queueCapacity: 16 });
        const again = await after.call({ seq: 4n, value: 1, tag: 2 });
        await rt.shutdown({ timeoutMs: 10_000 });
        console.log(JSON.stringify({ fitted: launched.length, refused,
          reply: Number(reply.seq), again: Number(again.seq) }));
      `,
        { RINGKERNEL_EMULATOR_SMS: "1" },
      );
      const refused = result.refused as Record<string, unknown>;
      // One sm_90-like multiprocessor holds 6 pool blocks (256 threads, 36 KiB shared each).
      assert.equal(result.fitted, 6);
      assert.equal(refused.name, "GpuResidencyError");
      assert.equal(refused.limit, "blocks");
      assert.match(String(refused.message), /6 fit at once/);
      assert.equal(result.reply, 3);
      assert.equal(result.again, 4);
    },
  );

  gpuTest(
    "memory grows only while nothing is resident; beyond the reserve a launch names the option",
    async () => {
      const options = { ...CUDA, cuda: { hostArenaBytes: 1 << 20 } };
      await withRuntime(options, async (rt) => {
        // Nothing resident: a launch larger than the reserve grows it.
        const big = await rt.launch("big", {
          actor: "echo",
          queueCapacity: 16384,
        });
        await big.terminate({ timeoutMs: 5_000 });
        const resident = await rt.launch("resident", {
          actor: "echo",
          queueCapacity: 16,
        });
        const launches = [];
        let refused: unknown;
        for (let i = 0; i < 64 && refused === undefined; i++) {
          try {
            launches.push(
              await rt.launch(`fill${i}`, {
                actor: "echo",
                queueCapacity: 16384,
              }),
            );
          } catch (error) {
            refused = error;
          }
        }
        assert.ok(refused instanceof GpuResidencyError, String(refused));
        assert.equal(refused.limit, "memory");
        assert.match(refused.message, /hostArenaBytes/);
        assert.deepEqual(await resident.call({ seq: 9n, value: 1, tag: 1 }), {
          seq: 9n,
          value: 1,
          tag: 1,
        });
      });
    },
  );

  gpuTest(
    "a user kernel's module loads before actors start (prepare), never beside a resident kernel",
    async () => {
      const actor = {
        module: new URL("../examples/actors/fahrenheit.ts", import.meta.url),
        export: "default",
      };
      await withRuntime(CUDA, async (rt) => {
        const echo = await rt.launch("resident", { actor: "echo" });
        await assert.rejects(
          rt.launch("converter", { actor }),
          (error: unknown) =>
            error instanceof GpuResidencyError &&
            error.limit === "module-load" &&
            /rt\.prepare/.test(error.message),
        );
        assert.deepEqual(await echo.call({ seq: 2n, value: 1, tag: 1 }), {
          seq: 2n,
          value: 1,
          tag: 1,
        });
      });
      await withRuntime(CUDA, async (rt) => {
        await rt.prepare({ actor });
        const echo = await rt.launch("resident", { actor: "echo" });
        const converter = await rt.launch("converter", { actor });
        assert.deepEqual(
          await converter.call({ sensor: 1, celsius: 100 }),
          { sensor: 1, fahrenheit: 212, hot: true },
        );
        await echo.terminate({ timeoutMs: 5_000 });
      });
    },
  );

  gpuTest(
    "several runtimes share the device: one closes while another's kernels run, nothing waits behind them",
    async () => {
      const first = await RingKernel.create({ backend: "cuda" });
      try {
        const echo = await first.launch("first", { actor: "echo" });
        for (let round = 0; round < 3; round++) {
          await withRuntime(CUDA, async (rt) => {
            const other = await rt.launch("other", { actor: "echo" });
            assert.deepEqual(
              await other.call({ seq: BigInt(round), value: 2, tag: 3 }),
              { seq: BigInt(round), value: 2, tag: 3 },
            );
          });
        }
        assert.deepEqual(await echo.call({ seq: 5n, value: 1, tag: 1 }), {
          seq: 5n,
          value: 1,
          tag: 1,
        });
      } finally {
        await first.shutdown({ timeoutMs: 10_000 });
      }
      // The last runtime closed the session: the next one opens a fresh one.
      const session = DeviceSession.acquire({ reserve: false });
      try {
        assert.equal(session.residency().grids, 0);
      } finally {
        session.release();
      }
    },
  );
});
