// Tests of the CPU emulator of the driver itself (emulator/): run only on
// it (deno task test:emulated), skipped elsewhere with the reason.
//
// Some run a scenario in a child process (this file again, with
// RK_EMULATOR_TEST_CHILD naming it): the driver reads CUDA_MODULE_LOADING,
// RINGKERNEL_EMULATOR_SMS and RINGKERNEL_EMULATOR_DRIVER_VERSION once per
// process, at cuInit. A child uses the raw driver symbols only, so nothing
// but its environment chooses its loading mode.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";
import { openLibrary } from "../ffi/dylib.ts";
import {
  CUDA_MODULE_LOADING_ENV_VAR,
  CuDeviceAttribute,
  CuMemHostAllocFlags,
  CuModuleLoadingMode,
  CuResult,
  type Libcuda,
  LIBCUDA_ENV_VAR,
  openLibcuda,
} from "../ffi/libcuda.ts";
import { mapMemory, readCString, unmapMemory } from "../ffi/memory.ts";
import { pollUntil } from "../src/async.ts";
import { CudaDriver } from "../src/cuda/driver.ts";
import { packKernelParams } from "../src/cuda/params.ts";
import { CudaError } from "../src/errors.ts";
import { RingKernel } from "../src/runtime.ts";
import { described, lastJson, runScript } from "./helpers.ts";

/** Every wait on the emulator gives up after this long. */
const WAIT_MS = 10_000;

/** Names the scenario a child process runs (see `runChild`). */
const CHILD_ENV_VAR = "RK_EMULATOR_TEST_CHILD";

const EMULATOR_LIBRARY = {
  name: "the CPU emulator of the driver",
  candidates: [],
  envVar: LIBCUDA_ENV_VAR,
};

/**
 * What the emulator holds now (its rkEmulatorLiveObjects): device and pinned
 * allocations, modules, streams, events, running kernels.
 */
function liveObjects(): Record<string, number> {
  const library = openLibrary({
    rkEmulatorLiveObjects: { parameters: ["buffer"], result: "void" },
  }, EMULATOR_LIBRARY);
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

/** The device's residency (rkEmulatorResidency): grids launched and not finished, and their blocks. */
function residency(): { grids: number; blocks: number } {
  const library = openLibrary({
    rkEmulatorResidency: { parameters: ["buffer"], result: "void" },
  }, EMULATOR_LIBRARY);
  try {
    const counts = new BigUint64Array(2);
    library.symbols.rkEmulatorResidency(counts);
    return { grids: Number(counts[0]), blocks: Number(counts[1]) };
  } finally {
    library.close();
  }
}

const NOT_PERMITTED = CuResult.ERROR_NOT_PERMITTED;
const SUCCESS = CuResult.SUCCESS;

/** The bundle's sm_90 cubin (the emulator runs its kernels from the host build). */
function bundleImage(): Uint8Array {
  return readFileSync(
    new URL("../cuda/bundle/ringkernel.sm_90.cubin", import.meta.url),
  );
}

/**
 * The driver through its raw symbols: results are returned as codes, so a
 * test sees exactly what the emulator answers.
 */
class Raw {
  readonly cu: Libcuda["symbols"];
  #library: Libcuda;

  constructor() {
    this.#library = openLibcuda();
    this.cu = this.#library.symbols;
    this.check("cuInit", this.cu.cuInit(0));
  }

  check(call: string, code: number): void {
    if (code !== SUCCESS) throw new Error(`${call} returned ${code}`);
  }

  /** An optional symbol, which the emulator exports. */
  optional<T>(symbol: T | undefined, name: string): T {
    if (symbol === undefined) throw new Error(`the driver lacks ${name}`);
    return symbol;
  }

  handle(call: string, fill: (out: BigUint64Array) => number): bigint {
    const out = new BigUint64Array(1);
    this.check(call, fill(out));
    return out[0];
  }

  /** Retains the primary context and makes it current. */
  retainContext(): bigint {
    const context = this.handle(
      "cuDevicePrimaryCtxRetain",
      (out) => this.cu.cuDevicePrimaryCtxRetain(out, 0),
    );
    this.check("cuCtxSetCurrent", this.cu.cuCtxSetCurrent(context));
    return context;
  }

  loadingMode(): number {
    const mode = new Int32Array(1);
    this.check(
      "cuModuleGetLoadingMode",
      this.optional(this.cu.cuModuleGetLoadingMode, "cuModuleGetLoadingMode")(
        mode,
      ),
    );
    return mode[0];
  }

  /** cuModuleLoadData of the bundle: its code, and the module when loaded. */
  tryLoadBundle(): { code: number; module: bigint } {
    const out = new BigUint64Array(1);
    const code = this.cu.cuModuleLoadData(out, bundleImage());
    return { code, module: out[0] };
  }

  loadBundle(): bigint {
    const { code, module } = this.tryLoadBundle();
    this.check("cuModuleLoadData", code);
    return module;
  }

  /** cuModuleGetFunction: its code, and the function when found. */
  tryFunction(module: bigint, name: string): { code: number; fn: bigint } {
    const out = new BigUint64Array(1);
    const code = this.cu.cuModuleGetFunction(
      out,
      module,
      new TextEncoder().encode(`${name}\0`),
    );
    return { code, fn: out[0] };
  }

  function(module: bigint, name: string): bigint {
    const { code, fn } = this.tryFunction(module, name);
    this.check(`cuModuleGetFunction ${name}`, code);
    return fn;
  }

  /** cuModuleEnumerateFunctions, by name (cuFuncGetName). */
  enumerate(module: bigint): Map<string, bigint> {
    const count = new Uint32Array(1);
    this.check(
      "cuModuleGetFunctionCount",
      this.optional(
        this.cu.cuModuleGetFunctionCount,
        "cuModuleGetFunctionCount",
      )(count, module),
    );
    const handles = new BigUint64Array(count[0]);
    this.check(
      "cuModuleEnumerateFunctions",
      this.optional(
        this.cu.cuModuleEnumerateFunctions,
        "cuModuleEnumerateFunctions",
      )(handles, count[0], module),
    );
    return new Map([...handles].map((fn) => [this.functionName(fn), fn]));
  }

  functionName(fn: bigint): string {
    const name = new BigUint64Array(1);
    this.check(
      "cuFuncGetName",
      this.optional(this.cu.cuFuncGetName, "cuFuncGetName")(name, fn),
    );
    return readCString(name[0]);
  }

  isLoaded(fn: bigint): boolean {
    const state = new Int32Array(1);
    this.check(
      "cuFuncIsLoaded",
      this.optional(this.cu.cuFuncIsLoaded, "cuFuncIsLoaded")(state, fn),
    );
    return state[0] === 1;
  }

  funcLoad(fn: bigint): number {
    return this.optional(this.cu.cuFuncLoad, "cuFuncLoad")(fn);
  }

  occupancy(fn: bigint, blockSize: number, sharedBytes: number): number {
    const blocks = new Int32Array(1);
    this.check(
      "cuOccupancyMaxActiveBlocksPerMultiprocessor",
      this.optional(
        this.cu.cuOccupancyMaxActiveBlocksPerMultiprocessor,
        "cuOccupancyMaxActiveBlocksPerMultiprocessor",
      )(blocks, fn, blockSize, sharedBytes),
    );
    return blocks[0];
  }

  attribute(id: number): number {
    const value = new Int32Array(1);
    this.check(
      "cuDeviceGetAttribute",
      this.cu.cuDeviceGetAttribute(value, id, 0),
    );
    return value[0];
  }

  driverVersion(): number {
    const version = new Int32Array(1);
    this.check("cuDriverGetVersion", this.cu.cuDriverGetVersion(version));
    return version[0];
  }

  /** A non-blocking stream (the legacy default stream does not wait for it). */
  stream(): bigint {
    return this.handle(
      "cuStreamCreate",
      (out) => this.cu.cuStreamCreate(out, 1),
    );
  }

  /** cuLaunchKernel; returns its code. */
  launch(
    fn: bigint,
    stream: bigint,
    shape: { grid?: number; block?: number; sharedBytes?: number },
    args: bigint[] = [],
  ): number {
    const params = packKernelParams(
      args.map((value) => ({ type: "ptr" as const, value })),
    );
    return this.cu.cuLaunchKernel(
      fn,
      shape.grid ?? 1,
      1,
      1,
      shape.block ?? 1,
      1,
      1,
      shape.sharedBytes ?? 0,
      stream,
      params.pointers,
      null,
    );
  }

  close(): void {
    this.#library.close();
  }
}

/**
 * Mapped pinned words for rk_echo_word (cuda/probes.cu): block 0 echoes its
 * `in` word to `out` and runs until `in` goes negative, a resident kernel.
 */
class EchoWords {
  readonly host: bigint;
  readonly device: bigint;
  #buffer: ArrayBuffer;
  #words: Int32Array;
  #raw: Raw;
  #seq = 0;

  /** `in` at byte 0, `out` on its own line at byte 128. */
  constructor(raw: Raw) {
    this.#raw = raw;
    this.host = raw.handle(
      "cuMemHostAlloc",
      (out) =>
        raw.cu.cuMemHostAlloc(
          out,
          4096,
          CuMemHostAllocFlags.PORTABLE | CuMemHostAllocFlags.DEVICEMAP,
        ),
    );
    this.device = raw.handle(
      "cuMemHostGetDevicePointer_v2",
      (out) => raw.cu.cuMemHostGetDevicePointer_v2(out, this.host, 0),
    );
    this.#buffer = mapMemory(this.host, 4096);
    this.#words = new Int32Array(this.#buffer);
  }

  /** The kernel's arguments: `in`, `out`. */
  get args(): bigint[] {
    return [this.device, this.device + 128n];
  }

  /** Resolves once a running rk_echo_word echoed a new word. */
  async running(): Promise<void> {
    const seq = ++this.#seq;
    Atomics.store(this.#words, 0, seq);
    await pollUntil(() => Atomics.load(this.#words, 32) === seq, {
      timeoutMs: WAIT_MS,
      what: `rk_echo_word's echo of ${seq}`,
    });
  }

  /** Stops every rk_echo_word on these words, and waits until no kernel runs and no grid is resident. */
  async stop(): Promise<void> {
    Atomics.store(this.#words, 0, -1);
    await pollUntil(
      () => liveObjects().running === 0 && residency().grids === 0,
      { timeoutMs: WAIT_MS, what: "the resident kernels' end" },
    );
  }

  free(): void {
    unmapMemory(this.#buffer);
    this.#raw.check("cuMemFreeHost", this.#raw.cu.cuMemFreeHost(this.host));
  }
}

/** Waits until nothing runs and no grid is resident (an earlier test's kernels ended). */
async function idle(): Promise<void> {
  await pollUntil(
    () => liveObjects().running === 0 && residency().grids === 0,
    { timeoutMs: WAIT_MS, what: "an idle emulator" },
  );
}

// ---------------------------------------------------------------------------
// Child scenarios: each prints one JSON line of what it saw.
// ---------------------------------------------------------------------------

type Json = Record<string, unknown>;

/** Loading mode, enumeration, and what a kernel's first load does beside a resident one. */
async function loadingScenario(): Promise<Json> {
  const raw = new Raw();
  const mode = raw.loadingMode();
  const context = raw.retainContext();
  void context;
  const module = raw.loadBundle();
  const listed = raw.enumerate(module);
  const loadedAtModuleLoad = Object.fromEntries(
    [...listed].map(([name, fn]) => [name, raw.isLoaded(fn)]),
  );
  const echo = raw.function(module, "rk_echo_word");
  const echoSameHandle = echo === listed.get("rk_echo_word");
  const echoLoaded = raw.isLoaded(echo);
  const stream = raw.stream();
  const words = new EchoWords(raw);
  raw.check(
    "cuLaunchKernel rk_echo_word",
    raw.launch(echo, stream, {}, words.args),
  );
  await words.running();
  const queue = listed.get("rk_echo_queue")!;
  const empty = listed.get("rk_empty")!;
  const beside = {
    getFunction: raw.tryFunction(module, "rk_empty").code,
    funcLoad: raw.funcLoad(queue),
    // Queued behind rk_echo_word on its stream when it is allowed (eager).
    launchUnloaded: raw.launch(empty, stream, {}),
    queueLoaded: raw.isLoaded(queue),
    emptyLoaded: raw.isLoaded(empty),
    residency: residency(),
  };
  await words.stop();
  const after = {
    getFunction: raw.tryFunction(module, "rk_empty").code,
    emptyLoaded: raw.isLoaded(listed.get("rk_empty")!),
    funcLoad: raw.funcLoad(queue),
    queueLoaded: raw.isLoaded(queue),
  };
  words.free();
  raw.check("cuModuleUnload", raw.cu.cuModuleUnload(module));
  raw.check("cuStreamDestroy_v2", raw.cu.cuStreamDestroy_v2(stream));
  raw.check(
    "cuDevicePrimaryCtxRelease_v2",
    raw.cu.cuDevicePrimaryCtxRelease_v2(0),
  );
  return {
    mode,
    listed: [...listed.keys()],
    loadedAtModuleLoad,
    echoSameHandle,
    echoLoaded,
    beside,
    after,
  };
}

/** Only the loading mode. */
function modeScenario(): Json {
  const raw = new Raw();
  return { mode: raw.loadingMode() };
}

/** The primary context's reference count: its last release beside a resident kernel. */
async function releaseScenario(): Promise<Json> {
  const raw = new Raw();
  raw.retainContext();
  raw.retainContext();
  const module = raw.loadBundle();
  const echo = raw.function(module, "rk_echo_word");
  const stream = raw.stream();
  const words = new EchoWords(raw);
  raw.check("cuLaunchKernel", raw.launch(echo, stream, {}, words.args));
  await words.running();
  const release = () => raw.cu.cuDevicePrimaryCtxRelease_v2(0);
  const beside = [release(), release()];
  await words.stop();
  words.free();
  raw.check("cuModuleUnload", raw.cu.cuModuleUnload(module));
  raw.check("cuStreamDestroy_v2", raw.cu.cuStreamDestroy_v2(stream));
  const after = [release(), release()];
  return { beside, after };
}

/** Residency on a small device (RINGKERNEL_EMULATOR_SMS=1). */
async function capacityScenario(): Promise<Json> {
  const raw = new Raw();
  raw.retainContext();
  const sms = raw.attribute(CuDeviceAttribute.MULTIPROCESSOR_COUNT);
  const module = raw.loadBundle();
  const echo = raw.function(module, "rk_echo_word");
  const empty = raw.function(module, "rk_empty");
  const a = raw.stream();
  const b = raw.stream();
  const words = new EchoWords(raw);
  const alone = {
    blocks33: raw.launch(empty, a, { grid: 33 }),
    threads1024x3: raw.launch(empty, a, { grid: 3, block: 1024 }),
    shared200k: raw.launch(empty, a, { grid: 2, sharedBytes: 200 * 1024 }),
    residency: residency(),
  };
  // 1 block, then 31: the whole device (32 one-thread blocks per SM).
  const first = raw.launch(echo, a, {}, words.args);
  await words.running();
  const full = raw.launch(echo, b, { grid: 31 }, words.args);
  const residencyFull = residency();
  const oneMore = raw.launch(echo, b, {}, words.args);
  const residencyRefused = residency();
  await words.stop();
  const afterStop = raw.launch(empty, a, { grid: 32 });
  raw.check("cuStreamSynchronize", raw.cu.cuStreamSynchronize(a));
  await idle();
  words.free();
  raw.check("cuModuleUnload", raw.cu.cuModuleUnload(module));
  raw.check("cuStreamDestroy_v2", raw.cu.cuStreamDestroy_v2(a));
  raw.check("cuStreamDestroy_v2", raw.cu.cuStreamDestroy_v2(b));
  return {
    sms,
    alone,
    first,
    full,
    residencyFull,
    oneMore,
    residencyRefused,
    afterStop,
  };
}

/** What cuDriverGetVersion says before and after cuInit, and what the library makes of it. */
async function versionScenario(): Promise<Json> {
  const library = openLibcuda();
  const version = new Int32Array(1);
  const beforeInit = library.symbols.cuDriverGetVersion(version) === SUCCESS
    ? version[0]
    : -1;
  const raw = new Raw();
  const afterInit = raw.driverVersion();
  let create: string;
  try {
    const rt = await RingKernel.create({ backend: "cuda" });
    await rt.shutdown({ timeoutMs: WAIT_MS });
    create = "created";
  } catch (error) {
    const chain: string[] = [];
    for (let e: unknown = error; e instanceof Error; e = e.cause) {
      chain.push(`${e.name}: ${e.message}`);
    }
    create = chain.join(" <- ");
  }
  library.close();
  return { beforeInit, afterInit, create };
}

const CHILD_SCENARIOS: Record<string, () => Json | Promise<Json>> = {
  loading: loadingScenario,
  mode: modeScenario,
  release: releaseScenario,
  capacity: capacityScenario,
  version: versionScenario,
};

/**
 * Runs a scenario in a child process of this runtime with `env` added to (or,
 * where undefined, removed from) this environment; returns its JSON and its
 * stderr (the emulator's hazard messages).
 */
async function runChild(
  scenario: string,
  env: Record<string, string | undefined>,
): Promise<{ result: Json; stderr: string }> {
  const child = await runScript(fileURLToPath(import.meta.url), {
    env: { ...env, [CHILD_ENV_VAR]: scenario },
  });
  assert.equal(
    child.code,
    0,
    `scenario ${scenario} failed: ${described(child)}`,
  );
  return { result: lastJson(child.stdout) as Json, stderr: child.stderr };
}

/** Options of a test that runs on the emulator only, with room for its own deadlines. */
function emulatorOnly(emulated: boolean) {
  return emulated ? { timeout: 60_000 } : {
    skip:
      "runs on the CPU emulator of the driver only (deno task test:emulated)",
  };
}

const LAZY_MESSAGE =
  /first load of kernel rk_empty \(lazy loading\) while a kernel runs \(rk_echo_word\)/;

if (process.env[CHILD_ENV_VAR]) {
  const scenario = CHILD_SCENARIOS[process.env[CHILD_ENV_VAR]!];
  if (scenario === undefined) {
    console.error(`no scenario ${process.env[CHILD_ENV_VAR]}`);
    process.exit(2);
  }
  console.log(JSON.stringify(await scenario()));
  process.exit(0);
} else {
  // Imported here, not above: its probe initialises the driver, which a
  // child must do itself, with its own environment.
  const { gpu } = await import("./gpu_gate.ts");
  const onEmulator = emulatorOnly(gpu.emulated);

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

    test(
      "the loading mode comes from CUDA_MODULE_LOADING at cuInit: EAGER is eager, anything else or nothing is lazy",
      onEmulator,
      async () => {
        const modes: Record<string, number> = {};
        for (const value of ["EAGER", "LAZY", "eager", "bogus", undefined]) {
          const { result } = await runChild("mode", {
            [CUDA_MODULE_LOADING_ENV_VAR]: value,
          });
          modes[value ?? "(unset)"] = result.mode as number;
        }
        assert.deepEqual(modes, {
          EAGER: CuModuleLoadingMode.EAGER,
          LAZY: CuModuleLoadingMode.LAZY,
          eager: CuModuleLoadingMode.LAZY,
          bogus: CuModuleLoadingMode.LAZY,
          "(unset)": CuModuleLoadingMode.LAZY,
        });
      },
    );

    test(
      "lazy loading: a kernel's first fetch, cuFuncLoad or first launch beside a resident kernel is refused; after it stops they load",
      onEmulator,
      async () => {
        const { result, stderr } = await runChild("loading", {
          [CUDA_MODULE_LOADING_ENV_VAR]: undefined,
        });
        const kernels = (result.listed as string[]).slice().sort();
        assert.deepEqual(kernels, [
          "rk_actor_pool",
          "rk_echo_queue",
          "rk_echo_word",
          "rk_empty",
          "rk_example_counter_pool",
          "rk_example_double_pool",
        ]);
        assert.deepEqual(result, {
          mode: CuModuleLoadingMode.LAZY,
          listed: result.listed,
          // Enumerated handles of a lazily loaded module are not loaded yet.
          loadedAtModuleLoad: Object.fromEntries(
            kernels.map((k) => [k, false]),
          ),
          echoSameHandle: true,
          echoLoaded: true,
          beside: {
            getFunction: NOT_PERMITTED,
            funcLoad: NOT_PERMITTED,
            launchUnloaded: NOT_PERMITTED,
            queueLoaded: false,
            emptyLoaded: false,
            residency: { grids: 1, blocks: 1 },
          },
          after: {
            getFunction: SUCCESS,
            emptyLoaded: true,
            funcLoad: SUCCESS,
            queueLoaded: true,
          },
        });
        assert.match(stderr, LAZY_MESSAGE);
        assert.match(
          stderr,
          /first load of kernel rk_echo_queue \(lazy loading\) while a kernel runs/,
        );
        assert.match(
          stderr,
          /first load of kernel rk_empty \(lazy loading, at its first launch\) while a kernel runs/,
        );
      },
    );

    test(
      "eager loading: every kernel loads with its module, so fetching and launching beside a resident kernel is fine",
      onEmulator,
      async () => {
        const { result, stderr } = await runChild("loading", {
          [CUDA_MODULE_LOADING_ENV_VAR]: "EAGER",
        });
        const kernels = (result.listed as string[]).slice().sort();
        assert.equal(kernels.length, 6);
        assert.deepEqual(result, {
          mode: CuModuleLoadingMode.EAGER,
          listed: result.listed,
          loadedAtModuleLoad: Object.fromEntries(kernels.map((k) => [k, true])),
          echoSameHandle: true,
          echoLoaded: true,
          beside: {
            getFunction: SUCCESS,
            funcLoad: SUCCESS,
            launchUnloaded: SUCCESS,
            queueLoaded: true,
            emptyLoaded: true,
            // rk_empty waits behind rk_echo_word on its stream: resident too.
            residency: { grids: 2, blocks: 2 },
          },
          after: {
            getFunction: SUCCESS,
            emptyLoaded: true,
            funcLoad: SUCCESS,
            queueLoaded: true,
          },
        });
        assert.doesNotMatch(stderr, /lazy loading/);
      },
    );

    test(
      "module load, any module unload and allocations beside a resident kernel are refused and change nothing; after it stops they work",
      onEmulator,
      async () => {
        await idle();
        const raw = new Raw();
        raw.retainContext();
        const image = bundleImage();
        const own = raw.loadBundle();
        const other = raw.loadBundle();
        const echo = raw.function(own, "rk_echo_word");
        const stream = raw.stream();
        const words = new EchoWords(raw);
        const out = new BigUint64Array(1);
        const loadEx = raw.optional(
          raw.cu.cuModuleLoadDataEx,
          "cuModuleLoadDataEx",
        );
        const allocAsync = raw.optional(
          raw.cu.cuMemAllocAsync,
          "cuMemAllocAsync",
        );
        const pinned = CuMemHostAllocFlags.PORTABLE |
          CuMemHostAllocFlags.DEVICEMAP;
        let running = false;
        try {
          const before = liveObjects();
          raw.check("cuLaunchKernel", raw.launch(echo, stream, {}, words.args));
          running = true;
          await words.running();
          assert.deepEqual(
            {
              cuModuleLoadData: raw.tryLoadBundle().code,
              cuModuleLoadDataEx: loadEx(out, image, 0, null, null),
              unloadOther: raw.cu.cuModuleUnload(other),
              unloadOwn: raw.cu.cuModuleUnload(own),
              cuMemAlloc_v2: raw.cu.cuMemAlloc_v2(out, 4096),
              cuMemHostAlloc: raw.cu.cuMemHostAlloc(out, 4096, pinned),
              cuMemAllocAsync: allocAsync(out, 4096, stream),
            },
            {
              cuModuleLoadData: NOT_PERMITTED,
              cuModuleLoadDataEx: NOT_PERMITTED,
              unloadOther: NOT_PERMITTED,
              unloadOwn: NOT_PERMITTED,
              cuMemAlloc_v2: NOT_PERMITTED,
              cuMemHostAlloc: NOT_PERMITTED,
              cuMemAllocAsync: NOT_PERMITTED,
            },
          );
          assert.deepEqual(liveObjects(), { ...before, running: 1 });
          await words.stop();
          running = false;

          raw.check("cuModuleUnload", raw.cu.cuModuleUnload(other));
          const loaded = raw.loadBundle();
          raw.check("cuModuleUnload", raw.cu.cuModuleUnload(loaded));
          const device = raw.handle(
            "cuMemAlloc_v2",
            (o) => raw.cu.cuMemAlloc_v2(o, 4096),
          );
          raw.check("cuMemFree_v2", raw.cu.cuMemFree_v2(device));
          const host = raw.handle(
            "cuMemHostAlloc",
            (o) => raw.cu.cuMemHostAlloc(o, 4096, pinned),
          );
          raw.check("cuMemFreeHost", raw.cu.cuMemFreeHost(host));
          const ordered = raw.handle(
            "cuMemAllocAsync",
            (o) => allocAsync(o, 4096, stream),
          );
          raw.check(
            "cuMemFreeAsync",
            raw.optional(raw.cu.cuMemFreeAsync, "cuMemFreeAsync")(
              ordered,
              stream,
            ),
          );
          raw.check(
            "cuStreamSynchronize",
            raw.cu.cuStreamSynchronize(stream),
          );
          assert.deepEqual(liveObjects(), {
            ...before,
            modules: before.modules - 1,
          });
        } finally {
          if (running) await words.stop();
          words.free();
          raw.cu.cuModuleUnload(own);
          raw.cu.cuStreamDestroy_v2(stream);
          raw.cu.cuDevicePrimaryCtxRelease_v2(0);
          raw.close();
        }
      },
    );

    test(
      "the primary context's last release beside a resident kernel is refused; an earlier one is not",
      onEmulator,
      async () => {
        const { result, stderr } = await runChild("release", {});
        assert.deepEqual(result, {
          // Two references: the first release is fine, the last is refused.
          beside: [SUCCESS, NOT_PERMITTED],
          // Once the kernel ended: the last release, then one too many.
          after: [SUCCESS, CuResult.ERROR_INVALID_CONTEXT],
        });
        assert.match(
          stderr,
          /cuDevicePrimaryCtxRelease_v2 of the last reference \(context release\) while a kernel runs \(rk_echo_word\)/,
        );
      },
    );

    test(
      "cuModuleEnumerateFunctions lists the module's kernels; cuModuleGetFunction returns the same handles, which die with the module",
      onEmulator,
      () => {
        const raw = new Raw();
        raw.retainContext();
        try {
          const module = raw.loadBundle();
          const listed = raw.enumerate(module);
          assert.equal(listed.size, 6);
          for (const [name, fn] of listed) {
            assert.equal(raw.function(module, name), fn);
            assert.equal(raw.isLoaded(fn), true);
          }
          const count = new Uint32Array(1);
          const getCount = raw.optional(
            raw.cu.cuModuleGetFunctionCount,
            "cuModuleGetFunctionCount",
          );
          // Fewer slots than kernels: only that many are written.
          const two = new BigUint64Array(3);
          raw.check(
            "cuModuleEnumerateFunctions",
            raw.optional(
              raw.cu.cuModuleEnumerateFunctions,
              "cuModuleEnumerateFunctions",
            )(two, 2, module),
          );
          assert.equal(two[2], 0n);
          const echo = listed.get("rk_echo_word")!;
          raw.check("cuModuleUnload", raw.cu.cuModuleUnload(module));
          const INVALID_HANDLE = CuResult.ERROR_INVALID_HANDLE;
          assert.equal(getCount(count, module), INVALID_HANDLE);
          assert.equal(
            raw.optional(raw.cu.cuFuncGetName, "cuFuncGetName")(
              new BigUint64Array(1),
              echo,
            ),
            INVALID_HANDLE,
          );
          assert.equal(
            raw.optional(raw.cu.cuFuncIsLoaded, "cuFuncIsLoaded")(
              new Int32Array(1),
              echo,
            ),
            INVALID_HANDLE,
          );
          assert.equal(raw.funcLoad(echo), INVALID_HANDLE);
          assert.equal(raw.launch(echo, 0n, {}, [0n, 0n]), INVALID_HANDLE);
        } finally {
          raw.cu.cuDevicePrimaryCtxRelease_v2(0);
          raw.close();
        }
      },
    );

    test(
      "occupancy and residency attributes model an sm_90 device of 132 SMs",
      onEmulator,
      () => {
        const raw = new Raw();
        raw.retainContext();
        const module = raw.loadBundle();
        try {
          const A = CuDeviceAttribute;
          assert.deepEqual(
            {
              sms: raw.attribute(A.MULTIPROCESSOR_COUNT),
              blocksPerSm: raw.attribute(A.MAX_BLOCKS_PER_MULTIPROCESSOR),
              threadsPerSm: raw.attribute(A.MAX_THREADS_PER_MULTIPROCESSOR),
              sharedOptin: raw.attribute(A.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
              cooperative: raw.attribute(A.COOPERATIVE_LAUNCH),
              concurrent: raw.attribute(A.CONCURRENT_KERNELS),
            },
            {
              sms: Number(process.env.RINGKERNEL_EMULATOR_SMS ?? 132),
              blocksPerSm: 32,
              threadsPerSm: 2048,
              sharedOptin: 232448,
              cooperative: 1,
              concurrent: 1,
            },
          );
          const fn = raw.function(module, "rk_empty");
          const figures = (
            [
              [1, 0],
              [32, 0],
              [64, 0],
              [65, 0], // 96 threads as warps: 2048 / 96
              [128, 0],
              [256, 0],
              [1024, 0],
              [1025, 0], // no such block
              [32, 1],
              [32, 48 * 1024],
              [32, 100 * 1024],
              [256, 32 * 1024],
              [32, 232448],
              [32, 232449], // more than a block may have
            ] as const
          ).map(([block, shared]) =>
            `${block}/${shared}: ${raw.occupancy(fn, block, shared)}`
          );
          assert.deepEqual(figures, [
            "1/0: 32",
            "32/0: 32",
            "64/0: 32",
            "65/0: 21",
            "128/0: 16",
            "256/0: 8",
            "1024/0: 2",
            "1025/0: 0",
            "32/1: 32",
            "32/49152: 4",
            "32/102400: 2",
            "256/32768: 6",
            "32/232448: 1",
            "32/232449: 0",
          ]);
          const occupancy = raw.optional(
            raw.cu.cuOccupancyMaxActiveBlocksPerMultiprocessor,
            "cuOccupancyMaxActiveBlocksPerMultiprocessor",
          );
          const blocks = new Int32Array(1);
          assert.equal(
            occupancy(blocks, 12345n, 32, 0),
            CuResult.ERROR_INVALID_HANDLE,
          );
          assert.equal(
            occupancy(blocks, fn, 0, 0),
            CuResult.ERROR_INVALID_VALUE,
          );
        } finally {
          raw.cu.cuModuleUnload(module);
          raw.cu.cuDevicePrimaryCtxRelease_v2(0);
          raw.close();
        }
      },
    );

    test(
      "a launch past the device's capacity is refused and counts nothing",
      onEmulator,
      async () => {
        await idle();
        const raw = new Raw();
        raw.retainContext();
        const module = raw.loadBundle();
        const stream = raw.stream();
        try {
          const sms = raw.attribute(CuDeviceAttribute.MULTIPROCESSOR_COUNT);
          const empty = raw.function(module, "rk_empty");
          assert.equal(
            raw.launch(empty, stream, { grid: sms * 32 + 1 }),
            NOT_PERMITTED,
          );
          assert.equal(
            raw.launch(empty, stream, { grid: sms * 2 + 1, block: 1024 }),
            NOT_PERMITTED,
          );
          assert.equal(
            raw.launch(empty, stream, {
              grid: sms + 1,
              sharedBytes: 200 * 1024,
            }),
            NOT_PERMITTED,
          );
          assert.equal(
            raw.launch(empty, stream, { block: 1025 }),
            CuResult.ERROR_INVALID_VALUE,
          );
          assert.equal(
            raw.launch(empty, stream, { sharedBytes: 232449 }),
            CuResult.ERROR_INVALID_VALUE,
          );
          assert.deepEqual(residency(), { grids: 0, blocks: 0 });
          // One block per SM at the shared memory limit fits.
          raw.check(
            "cuLaunchKernel",
            raw.launch(empty, stream, { grid: sms, sharedBytes: 200 * 1024 }),
          );
          raw.check(
            "cuStreamSynchronize",
            raw.cu.cuStreamSynchronize(stream),
          );
          await idle();
        } finally {
          raw.cu.cuStreamDestroy_v2(stream);
          raw.cu.cuModuleUnload(module);
          raw.cu.cuDevicePrimaryCtxRelease_v2(0);
          raw.close();
        }
      },
    );

    test(
      "on one SM (RINGKERNEL_EMULATOR_SMS=1), a block that would not fit beside resident grids is refused; after they end it fits",
      onEmulator,
      async () => {
        const { result, stderr } = await runChild("capacity", {
          RINGKERNEL_EMULATOR_SMS: "1",
        });
        assert.deepEqual(result, {
          sms: 1,
          alone: {
            blocks33: NOT_PERMITTED,
            threads1024x3: NOT_PERMITTED,
            shared200k: NOT_PERMITTED,
            residency: { grids: 0, blocks: 0 },
          },
          first: SUCCESS,
          full: SUCCESS,
          residencyFull: { grids: 2, blocks: 32 },
          oneMore: NOT_PERMITTED,
          residencyRefused: { grids: 2, blocks: 32 },
          afterStop: SUCCESS,
        });
        assert.match(
          stderr,
          /cuLaunchKernel of rk_empty with 33 blocks of 1 threads and 0 bytes of dynamic shared memory: the device's capacity is 32 such blocks \(32 per SM x 1 SMs\)/,
        );
        assert.match(
          stderr,
          /cuLaunchKernel of rk_empty with 3 blocks of 1024 threads .*capacity is 2 such blocks/,
        );
        assert.match(
          stderr,
          /cuLaunchKernel of rk_echo_word with 1 blocks .*capacity is 32 such blocks \(32 per SM x 1 SMs\), 0 of them free beside 2 resident grids/,
        );
      },
    );

    test(
      "a device keeps at most 128 grids resident: the 129th launch is refused, and fits once they end",
      onEmulator,
      async () => {
        await idle();
        const raw = new Raw();
        raw.retainContext();
        const module = raw.loadBundle();
        const echo = raw.function(module, "rk_echo_word");
        const stream = raw.stream();
        const other = raw.stream();
        const words = new EchoWords(raw);
        let running = false;
        try {
          raw.check("cuLaunchKernel", raw.launch(echo, stream, {}, words.args));
          running = true;
          await words.running();
          // 127 more wait behind it on its stream: launched, so resident.
          for (let i = 1; i < 128; i++) {
            raw.check(
              `cuLaunchKernel ${i + 1}`,
              raw.launch(echo, stream, {}, words.args),
            );
          }
          assert.deepEqual(residency(), { grids: 128, blocks: 128 });
          assert.equal(raw.launch(echo, other, {}, words.args), NOT_PERMITTED);
          assert.deepEqual(residency(), { grids: 128, blocks: 128 });
          await words.stop();
          running = false;
          // rk_echo_word sees a negative word and ends at once.
          raw.check("cuLaunchKernel", raw.launch(echo, other, {}, words.args));
          raw.check("cuStreamSynchronize", raw.cu.cuStreamSynchronize(other));
          await idle();
        } finally {
          if (running) await words.stop();
          words.free();
          raw.cu.cuStreamDestroy_v2(stream);
          raw.cu.cuStreamDestroy_v2(other);
          raw.cu.cuModuleUnload(module);
          raw.cu.cuDevicePrimaryCtxRelease_v2(0);
          raw.close();
        }
      },
    );

    test(
      "RINGKERNEL_EMULATOR_DRIVER_VERSION sets what cuDriverGetVersion reports: a driver too old for the bundle",
      onEmulator,
      async () => {
        const raw = new Raw();
        try {
          assert.equal(
            raw.driverVersion(),
            Number(process.env.RINGKERNEL_EMULATOR_DRIVER_VERSION ?? 13000),
          );
        } finally {
          raw.close();
        }
        const { result } = await runChild("version", {
          RINGKERNEL_EMULATOR_DRIVER_VERSION: "12080",
        });
        assert.equal(result.beforeInit, 12080);
        assert.equal(result.afterInit, 12080);
        assert.match(String(result.create), /DriverTooOldError/);
      },
    );
  });
}
