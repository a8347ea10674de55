/**
 * Probes whether one CUDA driver call waits behind a resident kernel.
 *
 * ```sh
 * CUDA_MODULE_LOADING=LAZY deno run -A scripts/device_probe.ts --call first-launch --out probe.json
 * deno run -A scripts/device_probe.ts --list
 * ```
 *
 * One process probes one call, through the raw driver symbols of
 * `ffi/libcuda.ts` (none of the library's own driver layer): it retains the
 * primary context, loads the kernel bundle's image for the device, launches
 * the resident kernel `rk_echo_word` (`cuda/probes.cu`) on a non-blocking
 * stream with its `in` and `out` words in mapped pinned memory, and confirms
 * it is resident by an echo round trip. Then a Worker performs the probed
 * call while the main thread watches the clock:
 *
 * - `returned`: the call returned while the kernel was resident;
 * - `waited`: it had not returned after the patience (`--patience-ms`), the
 *   main thread stopped the kernel (it writes -1 to `in`, a plain store into
 *   mapped memory, no driver call), and the call returned within a second of
 *   that: it waits behind a resident kernel;
 * - `slow`: as `waited`, but it returned more than a second after the kernel
 *   exited: a slow call (a PTX JIT, say) rather than a blocked one;
 * - `hung`: it had not returned even after the kernel exited; the record is
 *   written and the process kills itself, since a blocked FFI call cannot be
 *   interrupted from inside the process.
 *
 * The record (one JSON line: call, requested and reported loading mode,
 * result code and name, microseconds, verdict) is printed, and with `--out`
 * it is also written to a file at every phase, so a process killed from
 * outside (`timeout`) still leaves where it stood. The driver reads the
 * module loading mode at `cuInit`: the caller sets `CUDA_MODULE_LOADING`
 * (`scripts/device_check.sh` runs every call once with `LAZY`, once with
 * `EAGER`). Runs under Deno (the runtime a GPU machine carries).
 *
 * On the CPU emulator of the driver, calls the emulator counts as hazards
 * beside a running kernel are refused with `CUDA_ERROR_NOT_PERMITTED` unless
 * `RINGKERNEL_EMULATOR_HAZARDS=warn`; the probe records whatever happens.
 *
 * @module
 */

import { renameSync, writeFileSync } from "node:fs";
import process, { hrtime } from "node:process";
import { parseArgs } from "node:util";
import {
  CUDA_MODULE_LOADING_ENV_VAR,
  CuDeviceAttribute,
  CuMemHostAllocFlags,
  CuModuleLoadingMode,
  CuResult,
  CuStreamFlags,
  type LibcudaSymbols,
  openLibcuda,
} from "../ffi/libcuda.ts";
import { mapMemory, readCString } from "../ffi/memory.ts";
import { KernelBundle } from "../src/cuda/bundle.ts";
import { packKernelParams } from "../src/cuda/params.ts";

/** The calls the probe knows, most telling first (the check runs them in this order). */
export const PROBE_CALLS = [
  "first-launch",
  "first-fetch",
  "module-load-cubin",
  "module-load-ptx",
  "unload",
  "device-alloc",
  "device-alloc-async",
  "host-alloc",
  "ctx-synchronize",
] as const;

/** One of {@linkcode PROBE_CALLS}. */
export type ProbeCall = typeof PROBE_CALLS[number];

/** What each probed call does while `rk_echo_word` is resident. */
export const PROBE_CALL_DESCRIPTIONS: Readonly<Record<ProbeCall, string>> = {
  "first-launch":
    "cuLaunchKernel of rk_empty (fetched before the resident launch, never launched) on another non-blocking stream, then cuStreamQuery until it completes",
  "first-fetch":
    "cuModuleGetFunction of rk_empty, the first fetch of a kernel of the loaded module",
  "module-load-cubin":
    "cuModuleLoadData of the bundle's image for the device a second time",
  "module-load-ptx": "cuModuleLoadData of the bundle's PTX (driver JIT)",
  "unload":
    "cuModuleUnload of a second, idle module loaded before the resident launch",
  "device-alloc": "cuMemAlloc_v2 of 1 MiB",
  "device-alloc-async":
    "cuMemAllocAsync of 1 MiB on another non-blocking stream",
  "host-alloc": "cuMemHostAlloc of 1 MiB, portable and mapped",
  "ctx-synchronize":
    "cuCtxSynchronize: the control, which must wait for the resident kernel",
};

/** Format version of the record. */
export const PROBE_RECORD_FORMAT = 1;

/** Default patience before the kernel is stopped, in ms. */
export const DEFAULT_PATIENCE_MS = 3000;

/** Default wait for the call after the kernel is stopped, in ms. */
export const DEFAULT_RELEASE_MS = 3000;

/** A call returning later than this after the kernel exited is `slow`, not `waited`, in ms. */
export const WAITED_WITHIN_MS = 1000;

/** Parsed command line of the probe. */
export interface ProbeOptions {
  /** The call to probe; absent with `--list`. */
  readonly call?: ProbeCall;
  /** Print {@linkcode PROBE_CALLS}, one a line, and exit. */
  readonly list: boolean;
  /** File rewritten with the record at every phase. */
  readonly out?: string;
  /** How long the call may take beside the resident kernel before it is stopped. */
  readonly patienceMs: number;
  /** How long the call may take once the kernel has exited. */
  readonly releaseMs: number;
}

/** A command line the probe does not accept. */
export class ProbeUsageError extends Error {
  /** @param message what is wrong with the arguments. */
  constructor(message: string) {
    super(message);
    this.name = "ProbeUsageError";
  }
}

/** How to run the probe. */
export const PROBE_USAGE =
  `usage: device_probe.ts --call NAME [--out FILE] [--patience-ms N] [--release-ms N]
       device_probe.ts --list
calls: ${PROBE_CALLS.join(", ")}`;

function isProbeCall(name: string): name is ProbeCall {
  return (PROBE_CALLS as readonly string[]).includes(name);
}

function milliseconds(value: string | undefined, flag: string, def: number) {
  if (value === undefined) return def;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new ProbeUsageError(
      `${flag} needs a positive whole number of milliseconds, got ${
        JSON.stringify(value)
      }`,
    );
  }
  return n;
}

/**
 * Parses the probe's arguments.
 *
 * @throws {ProbeUsageError} for an unknown flag, a positional argument, a
 *   missing or unknown `--call`, or a bad number.
 */
export function parseProbeArgs(args: readonly string[]): ProbeOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        call: { type: "string" },
        list: { type: "boolean", default: false },
        out: { type: "string" },
        "patience-ms": { type: "string" },
        "release-ms": { type: "string" },
      },
    }));
  } catch (error) {
    throw new ProbeUsageError(
      error instanceof Error ? error.message : String(error),
    );
  }
  const patienceMs = milliseconds(
    values["patience-ms"],
    "--patience-ms",
    DEFAULT_PATIENCE_MS,
  );
  const releaseMs = milliseconds(
    values["release-ms"],
    "--release-ms",
    DEFAULT_RELEASE_MS,
  );
  if (values.out === "") throw new ProbeUsageError("--out needs a path");
  if (values.list) {
    if (values.call !== undefined) {
      throw new ProbeUsageError("--list takes no --call");
    }
    return { list: true, patienceMs, releaseMs };
  }
  if (values.call === undefined) {
    throw new ProbeUsageError(
      `--call is required (one of ${PROBE_CALLS.join(", ")})`,
    );
  }
  if (!isProbeCall(values.call)) {
    throw new ProbeUsageError(
      `unknown call ${JSON.stringify(values.call)} (one of ${
        PROBE_CALLS.join(", ")
      })`,
    );
  }
  return {
    call: values.call,
    list: false,
    out: values.out,
    patienceMs,
    releaseMs,
  };
}

/** How the probed call ended, as far as the probe could tell. */
export type ProbeVerdict =
  | "returned"
  | "waited"
  | "slow"
  | "hung"
  | "error"
  | "setup-failed";

/** A driver call's outcome. */
export interface CallResult {
  /** The `CUresult`; absent when the symbol is missing. */
  readonly code?: number;
  /** Its name, e.g. `CUDA_SUCCESS`, or `missing symbol NAME`. */
  readonly codeName: string;
  /** How long the call took, in µs. */
  readonly micros: number;
}

/** What the probe writes (one JSON line). */
export interface ProbeRecord {
  /** {@linkcode PROBE_RECORD_FORMAT}. */
  format: number;
  /** The probed call. */
  call: ProbeCall;
  /** What it does. */
  description: string;
  /** `CUDA_MODULE_LOADING` as the process got it, or null. */
  requestedMode: string | null;
  /** The mode the driver reports (`cuModuleGetLoadingMode`), or null when it lacks the symbol. */
  loadingMode: "LAZY" | "EAGER" | "unknown" | null;
  /** `deno 2.9.6`, `bun 1.4.5`. */
  runtime: string;
  /** Where the probe stands: `setup`, `resident`, `calling`, `released`, `done`, `abandoned`. */
  phase: string;
  /** The verdict, once known. */
  verdict?: ProbeVerdict;
  /** Device 0's name. */
  device?: string;
  /** `major.minor`. */
  computeCapability?: string;
  /** `cuDriverGetVersion`. */
  driverVersion?: number;
  /** The bundle image the resident kernel came from. */
  image?: string;
  /** From the process's start to a confirmed resident kernel, in ms. */
  setupMs?: number;
  /** The first echo round trip, in µs. */
  residentEchoMicros?: number;
  /** The probed call's outcome. */
  result?: CallResult;
  /** For `first-launch`: the launch call and the completion. */
  detail?: Record<string, unknown>;
  /** For `waited` and `slow`: from the kernel's exit to the call's return, in µs. */
  afterReleaseMicros?: number;
  /** For `returned`: whether the kernel still echoed after the call. */
  residentAfterCall?: boolean;
  /** Whether the resident kernel was stopped and its stream went idle. */
  stopped?: boolean;
  /** What went wrong, when something did. */
  error?: string;
}

const now = () => hrtime.bigint();
const microsSince = (start: bigint) => Number(now() - start) / 1000;

function runtimeName(): string {
  const versions = process.versions as Record<string, string | undefined>;
  if (versions.bun) return `bun ${versions.bun}`;
  if (versions.deno) return `deno ${versions.deno}`;
  return `node ${process.version}`;
}

function errorName(cu: LibcudaSymbols, code: number): string {
  const out = new BigUint64Array(1);
  if (cu.cuGetErrorName(code, out) !== CuResult.SUCCESS || out[0] === 0n) {
    return `CUresult ${code}`;
  }
  return readCString(out[0]);
}

function check(cu: LibcudaSymbols, call: string, code: number): void {
  if (code !== CuResult.SUCCESS) {
    throw new Error(`${call} failed: ${errorName(cu, code)} (${code})`);
  }
}

function cString(text: string): Uint8Array {
  return new TextEncoder().encode(text + "\0");
}

/** Spins until `ready()` or the deadline; true when ready. */
function spinUntil(ready: () => boolean, timeoutMs: number): boolean {
  const deadline = performance.now() + timeoutMs;
  let spins = 0;
  while (!ready()) {
    if ((++spins & 1023) === 0 && performance.now() > deadline) return false;
  }
  return true;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// The worker: performs the probed call on its own thread.
// ---------------------------------------------------------------------------

/** The Worker's name, by which the module knows it runs as the worker. */
const WORKER_NAME = "ringkernel-device-probe-call";

/** What the main thread hands the worker. */
interface CallRequest {
  call: ProbeCall;
  context: bigint;
  module: bigint;
  idleModule: bigint;
  emptyFunction: bigint;
  sideStream: bigint;
  image: Uint8Array;
  completionTimeoutMs: number;
}

/** What the worker answers. */
type WorkerMessage =
  | { kind: "ready" }
  | { kind: "calling" }
  | { kind: "result"; result: CallResult; detail?: Record<string, unknown> }
  | { kind: "error"; error: string };

function timed(
  cu: LibcudaSymbols,
  call: () => number,
): CallResult {
  const start = now();
  const code = call();
  const micros = microsSince(start);
  return { code, codeName: errorName(cu, code), micros };
}

function performCall(
  cu: LibcudaSymbols,
  request: CallRequest,
): { result: CallResult; detail?: Record<string, unknown> } {
  const out = new BigUint64Array(1);
  switch (request.call) {
    case "first-launch": {
      const start = now();
      const launch = timed(cu, () =>
        cu.cuLaunchKernel(
          request.emptyFunction,
          1,
          1,
          1,
          32,
          1,
          1,
          0,
          request.sideStream,
          null,
          null,
        ));
      let query: number = launch.code!;
      if (launch.code === CuResult.SUCCESS) {
        const deadline = performance.now() + request.completionTimeoutMs;
        const nap = new Int32Array(new SharedArrayBuffer(4));
        for (;;) {
          query = cu.cuStreamQuery(request.sideStream);
          if (query !== CuResult.ERROR_NOT_READY) break;
          if (performance.now() > deadline) break;
          Atomics.wait(nap, 0, 0, 0.05);
        }
      }
      const micros = microsSince(start);
      const complete = {
        code: query,
        codeName: errorName(cu, query),
        micros,
        completed: query === CuResult.SUCCESS,
      };
      return {
        result: { code: query, codeName: complete.codeName, micros },
        detail: { launch, complete },
      };
    }
    case "first-fetch":
      return {
        result: timed(
          cu,
          () =>
            cu.cuModuleGetFunction(out, request.module, cString("rk_empty")),
        ),
      };
    case "module-load-cubin":
    case "module-load-ptx": {
      const result = timed(cu, () => cu.cuModuleLoadData(out, request.image));
      return { result };
    }
    case "unload":
      return {
        result: timed(cu, () => cu.cuModuleUnload(request.idleModule)),
      };
    case "device-alloc":
      return {
        result: timed(cu, () => cu.cuMemAlloc_v2(out, BigInt(1 << 20))),
      };
    case "device-alloc-async": {
      const allocAsync = cu.cuMemAllocAsync;
      if (allocAsync === undefined) {
        return {
          result: { codeName: "missing symbol cuMemAllocAsync", micros: 0 },
        };
      }
      return {
        result: timed(
          cu,
          () => allocAsync(out, BigInt(1 << 20), request.sideStream),
        ),
      };
    }
    case "ctx-synchronize":
      return { result: timed(cu, () => cu.cuCtxSynchronize()) };
    case "host-alloc":
      return {
        result: timed(cu, () =>
          cu.cuMemHostAlloc(
            out,
            BigInt(1 << 20),
            CuMemHostAllocFlags.PORTABLE | CuMemHostAllocFlags.DEVICEMAP,
          )),
      };
  }
}

function workerMain(): void {
  const port = self as unknown as {
    postMessage(message: WorkerMessage): void;
    onmessage: ((event: MessageEvent<CallRequest>) => void) | null;
  };
  let cu: LibcudaSymbols;
  try {
    cu = openLibcuda().symbols;
  } catch (error) {
    port.postMessage({ kind: "error", error: String(error) });
    return;
  }
  port.onmessage = (event) => {
    const request = event.data;
    try {
      check(cu, "cuCtxSetCurrent", cu.cuCtxSetCurrent(request.context));
      port.postMessage({ kind: "calling" });
      port.postMessage({ kind: "result", ...performCall(cu, request) });
    } catch (error) {
      port.postMessage({
        kind: "error",
        error: error instanceof Error ? error.message : String(error),
      });
    }
  };
  port.postMessage({ kind: "ready" });
}

// ---------------------------------------------------------------------------
// The main thread: setup, the resident kernel, the clock, the record.
// ---------------------------------------------------------------------------

/** Word indices in the mapped page: `in` at byte 0, `out` on the next 128-byte line. */
const IN_WORD = 0;
const OUT_WORD = 32;

class Mailbox {
  #queue: WorkerMessage[] = [];
  #waiter: (() => void) | undefined;

  constructor(worker: Worker) {
    worker.onmessage = (event: MessageEvent<WorkerMessage>) => {
      this.#queue.push(event.data);
      this.#waiter?.();
    };
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.#queue.push({ kind: "error", error: event.message });
      this.#waiter?.();
    };
  }

  /** The next message of one of `kinds` (others are dropped), or undefined after `timeoutMs`. */
  async next(
    kinds: readonly WorkerMessage["kind"][],
    timeoutMs: number,
  ): Promise<WorkerMessage | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      while (this.#queue.length > 0) {
        const message = this.#queue.shift()!;
        if (kinds.includes(message.kind) || message.kind === "error") {
          return message;
        }
      }
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = undefined;
    }
  }
}

function writeRecord(out: string | undefined, record: ProbeRecord): void {
  if (out === undefined) return;
  const temporary = `${out}.tmp`;
  writeFileSync(temporary, JSON.stringify(record) + "\n");
  renameSync(temporary, out);
}

/**
 * Runs one probe in this process (see the module documentation) and returns
 * its record; with `options.out`, the record is also written at every phase.
 * On `hung`, the caller should end the process without waiting for the
 * worker (`scripts/device_probe.ts` kills itself).
 */
export async function runProbe(
  options: ProbeOptions & { call: ProbeCall },
): Promise<ProbeRecord> {
  const call = options.call;
  const record: ProbeRecord = {
    format: PROBE_RECORD_FORMAT,
    call,
    description: PROBE_CALL_DESCRIPTIONS[call],
    requestedMode: process.env[CUDA_MODULE_LOADING_ENV_VAR] ?? null,
    loadingMode: null,
    runtime: runtimeName(),
    phase: "setup",
  };
  const save = () => writeRecord(options.out, record);
  save();

  let worker: Worker | undefined;
  let words: Int32Array | undefined;
  let cu: LibcudaSymbols | undefined;
  let residentStream = 0n;
  try {
    cu = openLibcuda().symbols;
    check(cu, "cuInit", cu.cuInit(0));
    const i32 = new Int32Array(1);
    check(cu, "cuDriverGetVersion", cu.cuDriverGetVersion(i32));
    record.driverVersion = i32[0];
    const getMode = cu.cuModuleGetLoadingMode;
    if (getMode !== undefined) {
      const mode = new Int32Array(1);
      record.loadingMode = getMode(mode) !== CuResult.SUCCESS
        ? "unknown"
        : mode[0] === CuModuleLoadingMode.EAGER
        ? "EAGER"
        : mode[0] === CuModuleLoadingMode.LAZY
        ? "LAZY"
        : "unknown";
    }
    const device = new Int32Array(1);
    check(cu, "cuDeviceGet", cu.cuDeviceGet(device, 0));
    const name = new Uint8Array(256);
    check(cu, "cuDeviceGetName", cu.cuDeviceGetName(name, 256, device[0]));
    record.device = new TextDecoder().decode(name.subarray(0, name.indexOf(0)));
    const attribute = (id: number) => {
      check(
        cu!,
        "cuDeviceGetAttribute",
        cu!.cuDeviceGetAttribute(i32, id, device[0]),
      );
      return i32[0];
    };
    const cc = {
      major: attribute(CuDeviceAttribute.COMPUTE_CAPABILITY_MAJOR),
      minor: attribute(CuDeviceAttribute.COMPUTE_CAPABILITY_MINOR),
    };
    record.computeCapability = `${cc.major}.${cc.minor}`;

    const handle = new BigUint64Array(1);
    const out64 = () => {
      const value = handle[0];
      handle[0] = 0n;
      return value;
    };
    check(
      cu,
      "cuDevicePrimaryCtxRetain",
      cu.cuDevicePrimaryCtxRetain(handle, device[0]),
    );
    const context = out64();
    check(cu, "cuCtxSetCurrent", cu.cuCtxSetCurrent(context));

    const bundle = KernelBundle.open();
    const image = bundle.loadImage(cc);
    record.image = image.output.file;
    check(cu, "cuModuleLoadData", cu.cuModuleLoadData(handle, image.data));
    const module = out64();
    const getFunction = (name: string) => {
      check(
        cu!,
        `cuModuleGetFunction(${name})`,
        cu!.cuModuleGetFunction(handle, module, cString(name)),
      );
      return out64();
    };
    const echo = getFunction("rk_echo_word");
    // Obtained before the resident launch, launched for the first time beside it.
    const emptyFunction = call === "first-launch"
      ? getFunction("rk_empty")
      : 0n;
    let idleModule = 0n;
    if (call === "unload") {
      check(
        cu,
        "cuModuleLoadData (idle module)",
        cu.cuModuleLoadData(handle, image.data),
      );
      idleModule = out64();
    }
    const secondImage = call === "module-load-ptx"
      ? bundle.loadImage(cc, { preferPtx: true }).data
      : call === "module-load-cubin"
      ? image.data
      : new Uint8Array(1);
    check(
      cu,
      "cuStreamCreate",
      cu.cuStreamCreate(handle, CuStreamFlags.NON_BLOCKING),
    );
    residentStream = out64();
    check(
      cu,
      "cuStreamCreate (side)",
      cu.cuStreamCreate(handle, CuStreamFlags.NON_BLOCKING),
    );
    const sideStream = out64();
    check(
      cu,
      "cuMemHostAlloc",
      cu.cuMemHostAlloc(
        handle,
        4096n,
        CuMemHostAllocFlags.PORTABLE | CuMemHostAllocFlags.DEVICEMAP,
      ),
    );
    const host = out64();
    check(
      cu,
      "cuMemHostGetDevicePointer_v2",
      cu.cuMemHostGetDevicePointer_v2(handle, host, 0),
    );
    const deviceWords = out64();
    words = new Int32Array(mapMemory(host, 4096));
    words.fill(0);

    // The worker is ready (libcuda bound, code loaded) before the kernel starts.
    worker = new Worker(import.meta.url, { type: "module", name: WORKER_NAME });
    const mailbox = new Mailbox(worker);
    const ready = await mailbox.next(["ready"], 20_000);
    if (ready?.kind !== "ready") {
      throw new Error(
        `the call's worker did not start: ${
          ready?.kind === "error" ? ready.error : "no answer in 20 s"
        }`,
      );
    }

    const params = packKernelParams([
      { type: "ptr", value: deviceWords },
      { type: "ptr", value: deviceWords + BigInt(OUT_WORD * 4) },
    ]);
    check(
      cu,
      "cuLaunchKernel(rk_echo_word)",
      cu.cuLaunchKernel(
        echo,
        1,
        1,
        1,
        1,
        1,
        1,
        0,
        residentStream,
        params.pointers,
        null,
      ),
    );
    const w = words;
    const echoStart = now();
    Atomics.store(w, IN_WORD, 1);
    if (!spinUntil(() => Atomics.load(w, OUT_WORD) === 1, 10_000)) {
      throw new Error("rk_echo_word did not echo within 10 s: not resident");
    }
    record.residentEchoMicros = microsSince(echoStart);
    // performance.now() counts from the process's start.
    record.setupMs = Math.round(performance.now());
    record.phase = "resident";
    save();

    const request: CallRequest = {
      call,
      context,
      module,
      idleModule,
      emptyFunction,
      sideStream,
      image: secondImage,
      completionTimeoutMs: options.patienceMs + options.releaseMs + 2000,
    };
    worker.postMessage(request);
    const calling = await mailbox.next(["calling"], 10_000);
    if (calling?.kind !== "calling") {
      throw new Error(
        `the call's worker did not start the call: ${
          calling?.kind === "error" ? calling.error : "no answer in 10 s"
        }`,
      );
    }
    record.phase = "calling";
    save();

    let answer = await mailbox.next(["result"], options.patienceMs);
    let stopped = false;
    if (answer === undefined) {
      // Still in the call: stop the kernel with a plain store, no driver call.
      Atomics.store(w, IN_WORD, -1);
      const exited = spinUntil(() => Atomics.load(w, OUT_WORD) === -1, 2000);
      const releasedAt = now();
      record.phase = "released";
      save();
      stopped = exited;
      answer = await mailbox.next(["result"], options.releaseMs);
      if (answer?.kind === "result") {
        record.afterReleaseMicros = microsSince(releasedAt);
      }
      if (answer === undefined) {
        record.verdict = "hung";
        record.phase = "abandoned";
        record.stopped = exited;
        record.error =
          `the call had not returned ${options.patienceMs} ms beside the resident kernel nor ${options.releaseMs} ms after it ${
            exited ? "exited" : "was told to exit (it did not echo -1)"
          }`;
        save();
        return record;
      }
    }
    if (answer.kind === "error") {
      record.verdict = "error";
      record.error = answer.error;
    } else if (answer.kind === "result") {
      record.result = answer.result;
      if (answer.detail) record.detail = answer.detail;
      record.verdict = record.afterReleaseMicros === undefined
        ? "returned"
        : record.afterReleaseMicros <= WAITED_WITHIN_MS * 1000
        ? "waited"
        : "slow";
    }
    if (!stopped && record.afterReleaseMicros === undefined) {
      Atomics.store(w, IN_WORD, 2);
      record.residentAfterCall = spinUntil(
        () => Atomics.load(w, OUT_WORD) === 2,
        2000,
      );
      Atomics.store(w, IN_WORD, -1);
      stopped = spinUntil(() => Atomics.load(w, OUT_WORD) === -1, 2000);
    }
    // The kernel has left: its stream goes idle.
    const deadline = performance.now() + 3000;
    let query = cu.cuStreamQuery(residentStream);
    while (
      query === CuResult.ERROR_NOT_READY && performance.now() < deadline
    ) {
      await sleep(1);
      query = cu.cuStreamQuery(residentStream);
    }
    record.stopped = stopped && query === CuResult.SUCCESS;
    if (query !== CuResult.SUCCESS) {
      record.error = (record.error ? record.error + "; " : "") +
        `the resident stream ends with ${errorName(cu, query)}`;
    }
    record.phase = "done";
    save();
    return record;
  } catch (error) {
    record.verdict = record.phase === "setup" ? "setup-failed" : "error";
    record.error = error instanceof Error ? error.message : String(error);
    if (words !== undefined) Atomics.store(words, IN_WORD, -1);
    save();
    return record;
  } finally {
    if (record.verdict !== "hung") worker?.terminate();
  }
}

async function main(args: readonly string[]): Promise<number> {
  let options: ProbeOptions;
  try {
    options = parseProbeArgs(args);
  } catch (error) {
    if (!(error instanceof ProbeUsageError)) throw error;
    console.error(`device_probe: ${error.message}\n${PROBE_USAGE}`);
    return 2;
  }
  if (options.list || options.call === undefined) {
    console.log(PROBE_CALLS.join("\n"));
    return 0;
  }
  const record = await runProbe({ ...options, call: options.call });
  console.log(JSON.stringify(record));
  if (record.verdict === "hung") {
    // A thread is stuck in the driver: exiting normally could wait on it.
    process.kill(process.pid, "SIGKILL");
  }
  return record.verdict === "setup-failed" || record.verdict === "error"
    ? 1
    : 0;
}

if ((globalThis as { name?: unknown }).name === WORKER_NAME) {
  workerMain();
} else if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
