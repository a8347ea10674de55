/**
 * The GPU benchmark table, measured in ONE run on the card it names:
 *
 * - round trip host → resident actor → host (p50/p99), through the raw
 *   queues and through `kernel.call`, against `cuLaunchKernel` + synchronize
 *   of the same work (the pool kernel launched per message: it drains the one
 *   message and exits) and of an empty kernel;
 * - 64 B messages host → GPU through `sendBatch`, `trySend` and `send`;
 * - 64 B messages GPU → host (a generator filling its reply queue; the host
 *   drains the ring reading one word per message);
 * - injection cost: host-only stores into mapped memory (no GPU in the loop);
 * - K2K throughput inside the device (generator → counter), timed on the
 *   device and on the host.
 *
 * ```sh
 * deno run -A bench/gpu_table.ts --out bench/results/gpu_table.json
 * bun bench/gpu_table.ts --out /tmp/gpu_table.json
 * deno run -A bench/gpu_table.ts --quick   # 1/100 of the messages: a smoke run
 * ```
 *
 * Without a usable GPU it prints why and exits 0. Every figure is measured;
 * the JSON names the card, the driver and the runtime.
 *
 * @module
 */

import { EMULATOR_DEVICE_NAME } from "../scripts/build_emulator.ts";
import { writeFileSync } from "node:fs";
import process, { hrtime } from "node:process";
import { parseArgs } from "node:util";
import { EchoMessage } from "../src/actors/schemas.ts";
import { pollUntil } from "../src/async.ts";
import {
  initialiseActorBlock,
  planGpuActorMemory,
  writeActorDescriptor,
} from "../src/backend/cuda/actor_block.ts";
import { BENCH_ACTORS_MODULE } from "./k2k_actors.ts";
import { hostTimeNs } from "../src/backend/cuda/cuda_actor.ts";
import {
  ActorFlag,
  ActorKind,
  BUILTIN_POOL_KERNEL,
  POOL_SHARED_BYTES,
  POOL_THREADS,
} from "../src/backend/cuda/pool_layout.ts";
import { probeCuda } from "../src/backend/select.ts";
import { KernelBundle } from "../src/cuda/bundle.ts";
import { CudaDriver } from "../src/cuda/driver.ts";
import { packKernelParams } from "../src/cuda/params.ts";
import { ABI_VERSION } from "../src/layout.ts";
import { type Kernel, kernelInternals } from "../src/kernel.ts";
import { RingKernel } from "../src/runtime.ts";

/** Summary of a latency sample, in ns. */
export interface LatencyStats {
  /** Samples. */
  readonly n: number;
  /** Mean. */
  readonly meanNs: number;
  /** Median. */
  readonly p50Ns: number;
  /** 99th percentile. */
  readonly p99Ns: number;
  /** 99.9th percentile. */
  readonly p999Ns: number;
  /** Smallest. */
  readonly minNs: number;
}

/** Summarises latencies (ns); the sample is sorted in place. */
export function latencyStats(samples: Float64Array): LatencyStats {
  const s = samples.sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  let sum = 0;
  for (const v of s) sum += v;
  return {
    n: s.length,
    meanNs: Math.round(sum / s.length),
    p50Ns: at(0.5),
    p99Ns: at(0.99),
    p999Ns: at(0.999),
    minNs: s[0],
  };
}

/** A throughput measurement. */
export interface Throughput {
  /** Messages moved. */
  readonly messages: number;
  /** Seconds it took. */
  readonly seconds: number;
  /** Millions of messages per second. */
  readonly mmsgPerSecond: number;
}

function throughput(messages: number, ns: bigint | number): Throughput {
  const seconds = Number(ns) / 1e9;
  return { messages, seconds, mmsgPerSecond: messages / seconds / 1e6 };
}

const now = () => hrtime.bigint();

/** Spins on `ready` (the GPU answers within microseconds), failing after `timeoutMs`. */
function spinUntil(
  ready: () => boolean,
  timeoutMs: number,
  what: string,
): void {
  const deadline = performance.now() + timeoutMs;
  let spins = 0;
  while (!ready()) {
    if ((++spins & 4095) === 0 && performance.now() > deadline) {
      throw new Error(`${what}: nothing after ${timeoutMs} ms`);
    }
  }
}

/** Share of the full message counts a run uses: 1, or 1/100 with `--quick`. */
let countScale = 1;

/** `n` scaled by `--quick` (at least 2, so first and last stay distinct). */
function sized(n: number): number {
  return Math.max(2, Math.round(n * countScale));
}

/** The table's command line: `--out FILE` and `--quick`. */
function parseTableArgs(
  args: readonly string[],
): { out?: string; quick: boolean } {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: false,
    options: {
      out: { type: "string" },
      quick: { type: "boolean", default: false },
    },
  });
  if (values.out === "") throw new Error("--out needs a path");
  return { out: values.out, quick: values.quick };
}

function runtimeName(): { name: string; version: string } {
  const versions = process.versions as Record<string, string | undefined>;
  if (versions.bun) return { name: "bun", version: versions.bun };
  if (versions.deno) return { name: "deno", version: versions.deno };
  return { name: "node", version: versions.node ?? "unknown" };
}

/** Launch + synchronize baselines, with the driver directly. */
function launchBaselines(): Record<string, unknown> {
  const driver = CudaDriver.open();
  try {
    const context = driver.primaryContext(0);
    const info = driver.device(0);
    const image = KernelBundle.open().loadImage(info.computeCapability);
    const module = context.loadModule(image.data, { name: image.output.file });
    const stream = context.createStream();
    const empty = module.getFunction("rk_empty");
    const noArgs = packKernelParams([]);
    const emptyLaunch = () => {
      empty.launch({ grid: 1, block: 32, stream, args: noArgs });
      stream.synchronize();
    };
    for (let i = 0; i < sized(2_000); i++) emptyLaunch();
    const emptySamples = new Float64Array(sized(20_000));
    for (let i = 0; i < emptySamples.length; i++) {
      const t = now();
      emptyLaunch();
      emptySamples[i] = Number(now() - t);
    }

    // The same work as one round trip: the pool kernel, launched per message,
    // finds it, replies, drains and exits.
    const plan = planGpuActorMemory({
      queueCapacity: 1024,
      outputCapacity: 1024,
      slotSize: 64,
    });
    const memory = context.allocMappedHost(plan.byteLength + 256);
    const views = initialiseActorBlock(memory.buffer, 0, plan, 1);
    const at = (offset: number) => memory.deviceAddress + BigInt(offset);
    const dl = views.deadLetterRing.consumer();
    writeActorDescriptor(new DataView(memory.buffer), plan.descriptor, {
      control: at(plan.control),
      telemetry: at(plan.telemetry),
      input: at(plan.input),
      output: at(plan.output),
      inbox: 0n,
      deadLetters: at(plan.deadLetters),
      k2kInbox: 0n,
      routes: 0n,
      state: 0n,
      stateBytes: 0,
      kind: ActorKind.Echo,
      actorId: 1,
      inputTypeId: EchoMessage.typeId,
      inputSize: EchoMessage.size,
      outputTypeId: EchoMessage.typeId,
      outputSize: EchoMessage.size,
      maxBatch: 0,
      hostTimeNs: hostTimeNs(),
      flags: ActorFlag.InitState,
      abiVersion: ABI_VERSION,
      config: new Uint8Array(0),
    });
    new DataView(memory.buffer).setBigUint64(
      plan.launch,
      at(plan.descriptor),
      true,
    );
    const pool = module.getFunction(BUILTIN_POOL_KERNEL);
    const params = packKernelParams([{ type: "ptr", value: at(plan.launch) }, {
      type: "u32",
      value: 1,
    }]);
    const input = views.inputRing.producer();
    const output = views.outputRing.consumer();
    const control = views.control;
    control.isActive = true;
    const message = { seq: 1n, value: 1.5, tag: 0 };
    const perMessage = () => {
      input.tryEnqueue(EchoMessage, message);
      control.shouldTerminate = true;
      control.hasTerminated = 0;
      pool.launch({
        grid: 1,
        block: POOL_THREADS,
        sharedMemBytes: POOL_SHARED_BYTES,
        stream,
        args: params,
      });
      stream.synchronize();
      if (output.dequeueBatch(1, () => {}) !== 1) {
        throw new Error("the launched pool kernel did not reply");
      }
    };
    for (let i = 0; i < sized(500); i++) perMessage();
    const launchSamples = new Float64Array(sized(5_000));
    for (let i = 0; i < launchSamples.length; i++) {
      const t = now();
      perMessage();
      launchSamples[i] = Number(now() - t);
    }
    if (dl.available() !== 0) {
      throw new Error("the launched pool kernel dead-lettered messages");
    }
    memory.free();
    return {
      emptyKernelLaunchSync: latencyStats(emptySamples),
      poolKernelLaunchPerMessage: latencyStats(launchSamples),
    };
  } finally {
    driver.close();
  }
}

/** Round trips to a resident echo actor: raw queues and `call`. */
async function roundTrips(rt: RingKernel): Promise<Record<string, unknown>> {
  const k = await rt.launch<typeof EchoMessage.spec, typeof EchoMessage.spec>(
    "rt-echo",
    {
      actor: "echo",
      queueCapacity: 1024,
    },
  );
  const host = kernelInternals(k).host;
  const message = { seq: 7n, value: 0.5, tag: 1 };
  const raw = () => {
    host.input.tryEnqueue(EchoMessage, message);
    while (
      host.output.available() === 0
    ) { /* spin: the reply is microseconds away */ }
    host.output.release(1);
  };
  for (let i = 0; i < sized(5_000); i++) raw();
  const rawSamples = new Float64Array(sized(50_000));
  for (let i = 0; i < rawSamples.length; i++) {
    const t = now();
    raw();
    rawSamples[i] = Number(now() - t);
  }
  for (let i = 0; i < sized(2_000); i++) await k.call(message);
  const callSamples = new Float64Array(sized(20_000));
  for (let i = 0; i < callSamples.length; i++) {
    const t = now();
    await k.call(message);
    callSamples[i] = Number(now() - t);
  }
  await k.terminate();
  return {
    residentRoundTripRawQueues: latencyStats(rawSamples),
    residentRoundTripCall: latencyStats(callSamples),
  };
}

async function waitReplies(k: Kernel, count: number, timeoutMs: number) {
  const replies = [];
  while (replies.length < count) replies.push(await k.receive({ timeoutMs }));
  return replies as { seq: bigint; value: number; tag: number }[];
}

/** 64 B messages host → GPU through the kernel API, counted by the device. */
async function hostToGpu(rt: RingKernel): Promise<Record<string, unknown>> {
  const k = await rt.launch<typeof EchoMessage.spec, typeof EchoMessage.spec>(
    "h2k-sink",
    {
      actor: { module: BENCH_ACTORS_MODULE, export: "k2kSink" },
      queueCapacity: 65_536,
      outputCapacity: 1024,
    },
  );
  const chunk = Array.from(
    { length: 4096 },
    (_, i) => ({ seq: BigInt(i + 1), value: 0, tag: 0 }),
  );
  const last = [...chunk.slice(0, 4095), { seq: 4096n, value: 0, tag: 1 }];
  const first = [{ seq: 0n, value: 0, tag: 0 }, ...chunk.slice(1)];
  const result: Record<string, unknown> = {};

  const rounds = sized(4_000); // 16.4 M messages
  let t = now();
  for (let r = 0; r < rounds; r++) {
    await k.sendBatch(r === 0 ? first : r === rounds - 1 ? last : chunk, {
      timeoutMs: 30_000,
    });
  }
  let replies = await waitReplies(k, 2, 30_000);
  let elapsed = now() - t;
  result.sendBatch = {
    ...throughput(rounds * 4096, elapsed),
    countedByDevice: replies[1].value,
  };

  const n = sized(4_000_000);
  t = now();
  for (let i = 0; i < n; i++) {
    const m = i === 0 ? first[0] : i === n - 1 ? last[4095] : chunk[i & 4095];
    if (!k.trySend(m)) spinUntil(() => k.trySend(m), 10_000, "queue space");
  }
  replies = await waitReplies(k, 2, 30_000);
  elapsed = now() - t;
  result.trySend = {
    ...throughput(n, elapsed),
    countedByDevice: replies[1].value - (replies[0].value - 1),
  };

  const m = sized(500_000);
  t = now();
  for (let i = 0; i < m; i++) {
    await k.send(
      i === 0 ? first[0] : i === m - 1 ? last[4095] : chunk[i & 4095],
    );
  }
  replies = await waitReplies(k, 2, 30_000);
  elapsed = now() - t;
  result.sendAwaited = {
    ...throughput(m, elapsed),
    countedByDevice: replies[1].value - (replies[0].value - 1),
  };
  await k.terminate();
  return result;
}

/** 64 B messages GPU → host: a generator fills its reply queue; the host drains it. */
async function gpuToHost(rt: RingKernel): Promise<Record<string, unknown>> {
  const k = await rt.launch<typeof EchoMessage.spec, typeof EchoMessage.spec>(
    "k2h-source",
    {
      actor: { module: BENCH_ACTORS_MODULE, export: "k2kSource" },
      queueCapacity: 16,
      outputCapacity: 65_536,
    },
  );
  const host = kernelInternals(k).host;
  const n = sized(32_000_000);
  const t = now();
  host.input.tryEnqueue(EchoMessage, { seq: BigInt(n), value: 0, tag: 0 });
  let received = 0;
  let lastTag = 0;
  const consumer = host.output;
  const take = (view: DataView, offset: number) => {
    lastTag = view.getUint32(offset + 48, true);
  };
  spinUntil(
    () => {
      received += consumer.dequeueBatch(65_536, take);
      return received >= n;
    },
    60_000,
    "messages from the GPU",
  );
  const elapsed = now() - t;
  if (lastTag !== 1) {
    throw new Error("the last message from the GPU lacks its end tag");
  }
  await k.terminate();
  return { rawRingDrain: throughput(n, elapsed) };
}

/** Host-only costs: nothing here waits for the GPU. */
async function injection(rt: RingKernel): Promise<Record<string, unknown>> {
  const k = await rt.launch<typeof EchoMessage.spec, typeof EchoMessage.spec>(
    "inject",
    {
      actor: { module: BENCH_ACTORS_MODULE, export: "k2kSink" },
      queueCapacity: 65_536,
    },
  );
  const host = kernelInternals(k).host;
  const words = new Int32Array(
    host.inputRing.buffer,
    host.inputRing.byteOffset + 260,
    1,
  );
  const stores = sized(10_000_000);
  let t = now();
  for (let i = 0; i < stores; i++) Atomics.store(words, 0, i);
  const storeNs = Number(now() - t) / stores;

  await k.deactivate();
  const message = { seq: 5n, value: 0, tag: 0 };
  let total = 0;
  let ns = 0n;
  for (let r = 0; r < 20; r++) {
    t = now();
    let n = 0;
    while (host.input.tryEnqueue(EchoMessage, message)) n++;
    ns += now() - t;
    total += n;
    await k.activate();
    await pollUntil(() => host.inputRing.depth() === 0, { timeoutMs: 10_000 });
    await k.deactivate();
  }
  await k.terminate();
  return {
    label: "host-only: stores into mapped memory, no GPU in the loop",
    atomicsStoreCommandWordNs: storeNs,
    tryEnqueue64BNs: Number(ns) / total,
    tryEnqueueCount: total,
  };
}

/** K2K inside the device: generator → counter. */
async function k2k(rt: RingKernel): Promise<Record<string, unknown>> {
  const sink = await rt.launch<
    typeof EchoMessage.spec,
    typeof EchoMessage.spec
  >("k2k-sink", {
    actor: { module: BENCH_ACTORS_MODULE, export: "k2kSink" },
    queueCapacity: 65_536,
  });
  const source = await rt.launch<
    typeof EchoMessage.spec,
    typeof EchoMessage.spec
  >("k2k-source", {
    actor: { module: BENCH_ACTORS_MODULE, export: "k2kSource" },
    config: { target: "k2k-sink" },
    queueCapacity: 16,
  });
  const n = sized(32_000_000);
  const t = now();
  await source.send({ seq: BigInt(n), value: 0, tag: 0 });
  const [first, last] = await waitReplies(sink, 2, 60_000);
  const elapsed = now() - t;
  await source.terminate();
  await sink.terminate();
  const deviceNs = Number(last.seq - first.seq);
  return {
    messages: n,
    countedByDevice: last.value,
    device: throughput(n - 1, deviceNs),
    hostWall: throughput(n, elapsed),
  };
}

/** One target of the GPU issue against what this run measured. */
export interface TargetCheck {
  /** The target, in words. */
  readonly target: string;
  /** The measured figure, with its unit; undefined when the section failed. */
  readonly measured?: string;
  /** Whether the measured figure meets the target. */
  readonly met?: boolean;
}

/** The targets by name. */
export type TargetTable = Record<string, TargetCheck>;

function check(
  target: string,
  value: number | undefined,
  unit: string,
  ok: (v: number) => boolean,
): TargetCheck {
  if (value === undefined || !Number.isFinite(value)) return { target };
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return {
    target,
    measured: `${value.toFixed(digits)} ${unit}`,
    met: ok(value),
  };
}

/**
 * The GPU targets (round trip p50 ≤ 2 µs and ≥ 5× faster than launch+sync;
 * ≥ 40 Mmsg/s host → GPU; injection ≤ 25 ns) against this run's figures.
 */
export function targetsOf(result: Record<string, unknown>): TargetTable {
  const at = (path: string[]): number | undefined => {
    let v: unknown = result;
    for (const key of path) {
      if (typeof v !== "object" || v === null) return undefined;
      v = (v as Record<string, unknown>)[key];
    }
    return typeof v === "number" ? v : undefined;
  };
  const us = (ns: number | undefined) =>
    ns === undefined ? undefined : ns / 1000;
  return {
    roundTripRawQueuesP50: check(
      "round trip host → resident actor → host, p50 ≤ 2 µs",
      us(at(["roundTrip", "residentRoundTripRawQueues", "p50Ns"])),
      "µs",
      (v) => v <= 2,
    ),
    roundTripCallP50: check(
      "the same through kernel.call, p50 ≤ 2 µs",
      us(at(["roundTrip", "residentRoundTripCall", "p50Ns"])),
      "µs",
      (v) => v <= 2,
    ),
    roundTripVsLaunchSync: check(
      "resident round trip ≥ 5× faster than cuLaunchKernel + synchronize of the same work (p50)",
      at(["ratios", "launchPerMessageOverResidentP50"]),
      "×",
      (v) => v >= 5,
    ),
    hostToGpuSendBatch: check(
      "64 B messages host → GPU ≥ 40 Mmsg/s (sendBatch)",
      at(["hostToGpu64B", "sendBatch", "mmsgPerSecond"]),
      "Mmsg/s",
      (v) => v >= 40,
    ),
    injectionTryEnqueue: check(
      "injection ≤ 25 ns (encode + tryEnqueue of one 64 B message into mapped memory)",
      at(["injection", "tryEnqueue64BNs"]),
      "ns",
      (v) => v <= 25,
    ),
  };
}

async function main(args: readonly string[]): Promise<number> {
  const { out, quick } = parseTableArgs(args);
  if (quick) countScale = 0.01;
  const probe = await probeCuda();
  if (!probe.usable) {
    console.log(`gpu_table: no usable GPU, nothing measured (${probe.reason})`);
    return 0;
  }
  const driver = CudaDriver.open();
  const info = driver.device(0);
  const driverVersion = driver.driverVersion;
  const bundleImage =
    KernelBundle.open().selectImage(info.computeCapability).file;
  driver.close();
  if (info.name === EMULATOR_DEVICE_NAME) {
    console.error(
      "gpu_table: the CPU emulator of the driver, NOT a GPU: these figures only show that every section runs",
    );
  }
  const result: Record<string, unknown> = {
    card: info.name,
    emulated: info.name === EMULATOR_DEVICE_NAME,
    quick,
    computeCapability:
      `${info.computeCapability.major}.${info.computeCapability.minor}`,
    multiprocessors: info.multiprocessorCount,
    cudaDriverVersion: driverVersion,
    runtime: runtimeName(),
    bundleImage,
    measuredAt: new Date().toISOString(),
  };
  let failed = false;
  const sections: [
    string,
    () => Promise<Record<string, unknown>> | Record<string, unknown>,
  ][] = [];
  const rt = await RingKernel.create({ backend: "cuda" });
  sections.push(["launchBaselines", () => launchBaselines()]);
  sections.push(["roundTrip", () => roundTrips(rt)]);
  sections.push(["hostToGpu64B", () => hostToGpu(rt)]);
  sections.push(["gpuToHost64B", () => gpuToHost(rt)]);
  sections.push(["injection", () => injection(rt)]);
  sections.push(["k2kOnDevice", () => k2k(rt)]);
  for (const [name, run] of sections) {
    console.error(`gpu_table: ${name} ...`);
    try {
      result[name] = await run();
    } catch (error) {
      failed = true;
      result[name] = {
        error: error instanceof Error
          ? `${error.name}: ${error.message}`
          : String(error),
      };
    }
  }
  await rt.shutdown();
  const rtStats = result.roundTrip as Record<string, LatencyStats> | undefined;
  const base = result.launchBaselines as
    | Record<string, LatencyStats>
    | undefined;
  if (rtStats?.residentRoundTripRawQueues && base?.poolKernelLaunchPerMessage) {
    result.ratios = {
      launchPerMessageOverResidentP50: base.poolKernelLaunchPerMessage.p50Ns /
        rtStats.residentRoundTripRawQueues.p50Ns,
      launchPerMessageOverCallP50: base.poolKernelLaunchPerMessage.p50Ns /
        rtStats.residentRoundTripCall.p50Ns,
    };
  }
  result.targets = targetsOf(result);
  for (const [name, t] of Object.entries(result.targets as TargetTable)) {
    console.error(
      `gpu_table: target ${name}: ${
        t.measured ?? "not measured"
      } (${t.target}) ${t.met === undefined ? "" : t.met ? "met" : "NOT met"}`,
    );
  }
  const text = JSON.stringify(
    result,
    (_k, v) => typeof v === "bigint" ? v.toString() : v,
    2,
  );
  console.log(text);
  if (out !== undefined) writeFileSync(out, text + "\n");
  return failed ? 1 : 0;
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
