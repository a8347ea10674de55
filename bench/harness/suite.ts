/**
 * The benchmark suite: plans every (runtime, case, batch size) job, runs each
 * trial in a fresh child process in a shuffled order, aggregates the samples,
 * computes the comparisons from the same run, and adds the sustained run,
 * the microbenchmarks and the GPU section.
 *
 * @module
 */

import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import { spawnSync } from "node:child_process";
import { join, relative } from "node:path";
import {
  type CaseName,
  CASES,
  type ChildResult,
  FLOOR_MIN_MESSAGES,
} from "./catalog.ts";
import { gpuInfo, machineInfo } from "./machine.ts";
import {
  type BenchmarkResult,
  type ClusterSection,
  type ComparisonResult,
  type FloorComparison,
  type FloorTarget,
  type GpuSection,
  type MicroSection,
  type PercentileCurve,
  REPO_ROOT,
  RESULTS_SCHEMA,
  type ResultsDocument,
  sourceRevision,
  type SustainedResult,
  type TrialRecord,
  type WaveSimSection,
} from "./results.ts";
import {
  childCommand,
  resolveRuntime,
  runChild,
  runProcess,
  type RuntimeBinary,
  type RuntimeName,
} from "./spawn.ts";
import {
  bootstrapRatioInterval,
  cohensD,
  effectSizeLabel,
  mean,
  median,
  quantileSorted,
  sorted,
  summarizeRobust,
  welchTTest,
} from "./stats.ts";
import { currentRuntime } from "./cases.ts";
import type { MicroReport } from "../micro.bench.ts";
import type { WaveBenchResult } from "../wavesim.ts";
import type { ClusterBenchResult } from "../cluster.ts";

/** Everything a suite run needs to know. */
export interface SuiteConfig {
  /** Fresh processes per benchmark and runtime. */
  trials: number;
  /** Timed round trips per latency trial. */
  latencySamples: number;
  /** Untimed round trips first. */
  latencyWarmup: number;
  /** Timed rounds per throughput trial. */
  throughputRounds: number;
  /** Untimed rounds first. */
  throughputWarmup: number;
  /** Messages per throughput round. */
  messagesPerRound: number;
  /** sendBatch sizes of the throughput cases. */
  batchSizes: number[];
  /** Sustained duration in seconds (0 skips it). */
  sustainedSeconds: number;
  /** Sustained sendBatch size. */
  sustainedBatch: number;
  /** Messages exchanged before the sustained clock starts. */
  sustainedWarmup: number;
  /** Runtimes to spawn. */
  runtimes: RuntimeName[];
  /** Cases to run. */
  cases: CaseName[];
  /** Run the mitata microbenchmarks. */
  micro: boolean;
  /** Fresh processes per runtime of the WaveSim showcase benchmark (0: none). */
  wavesimRuns: number;
  /** Runs per runtime of the cluster benchmark through nats-server (0: none). */
  clusterRuns: number;
  /** Run the GPU section when a GPU is present. */
  gpu: boolean;
  /** Explicit runtime binaries. */
  runtimePaths: Partial<Record<RuntimeName, string | undefined>>;
  /** Seed of the job order. */
  seed: number;
  /** Whether this is less than the full suite. */
  partial: boolean;
  /** Repository root. */
  root: string;
  /** Deadline of one child process, ms (sustained runs get their duration on top). */
  childTimeoutMs: number;
}

/** The full suite's settings, or a short smoke run's with `quick`. */
export function defaultSuiteConfig(
  options: { quick?: boolean } = {},
): SuiteConfig {
  const quick = options.quick === true;
  return {
    trials: quick ? 3 : 12,
    latencySamples: quick ? 500 : 5000,
    latencyWarmup: quick ? 200 : 2000,
    throughputRounds: quick ? 3 : 8,
    throughputWarmup: quick ? 1 : 2,
    messagesPerRound: quick ? 8192 : 65_536,
    batchSizes: quick ? [1, 64, 1024] : [1, 8, 64, 256, 1024, 4096],
    sustainedSeconds: quick ? 5 : 60,
    sustainedBatch: 256,
    sustainedWarmup: quick ? 20_000 : 200_000,
    runtimes: ["deno", "bun"],
    cases: Object.keys(CASES) as CaseName[],
    micro: true,
    wavesimRuns: quick ? 1 : 3,
    clusterRuns: quick ? 1 : 5,
    gpu: true,
    runtimePaths: {},
    seed: 1,
    partial: quick,
    root: REPO_ROOT,
    childTimeoutMs: 180_000,
  };
}

/** Hooks of {@linkcode runSuite}. */
export interface SuiteHooks {
  /** The command line, recorded in the results. */
  commandLine: string;
  /** Progress lines. */
  log(line: string): void;
}

/** One child process to run per trial. */
export interface Job {
  /** Runtime. */
  readonly runtime: RuntimeName;
  /** Case. */
  readonly case: CaseName;
  /** Batch size (batched cases). */
  readonly batch?: number;
  /** The child's arguments after the entry. */
  readonly args: string[];
}

/** The benchmark id of a job or result: `<runtime>/<case>[@<batch>]`. */
export function benchmarkId(
  runtime: string,
  name: CaseName,
  batch?: number,
): string {
  return `${runtime}/${name}${batch === undefined ? "" : `@${batch}`}`;
}

function roundMessages(config: SuiteConfig, name: CaseName): string {
  return String(
    name.startsWith("floor-") || name === "batch-encode"
      ? Math.max(config.messagesPerRound, FLOOR_MIN_MESSAGES)
      : config.messagesPerRound,
  );
}

/** Every per-trial job of a configuration (the sustained case is run once, separately). */
export function planJobs(
  config: SuiteConfig,
  runtimes: readonly RuntimeName[],
): Job[] {
  const jobs: Job[] = [];
  for (const runtime of runtimes) {
    for (const name of config.cases) {
      const info = CASES[name];
      const job = (batch?: number): Job => ({
        runtime,
        case: name,
        ...(batch === undefined ? {} : { batch }),
        args: [
          "child",
          "--case",
          name,
          ...(batch === undefined ? [] : ["--batch", String(batch)]),
          ...(info.kind === "latency"
            ? [
              "--samples",
              String(config.latencySamples),
              "--warmup",
              String(config.latencyWarmup),
            ]
            : [
              "--samples",
              String(config.throughputRounds),
              "--warmup",
              String(config.throughputWarmup),
              "--messages",
              roundMessages(config, name),
            ]),
        ],
      });
      // The sustained case runs once, apart from the trials.
      if (info.kind === "sustained") continue;
      if (info.kind === "throughput" && info.batched) {
        for (const batch of config.batchSizes) jobs.push(job(batch));
      } else jobs.push(job());
    }
  }
  return jobs;
}

/** A deterministic generator (mulberry32) for the job order. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A shuffled copy of `items` (Fisher–Yates with {@linkcode seededRandom}). */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  const random = seededRandom(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Percentiles plotted from the pooled samples. */
export const CURVE_PERCENTILES: readonly number[] = [
  0,
  1,
  5,
  10,
  25,
  50,
  75,
  90,
  95,
  97.5,
  99,
  99.5,
  99.9,
  99.95,
  99.99,
  100,
];

/** The pooled samples' percentile curve (only percentiles the sample size resolves). */
export function percentileCurve(samples: readonly number[]): PercentileCurve {
  if (samples.length === 0) return [];
  const ascending = sorted(samples);
  return CURVE_PERCENTILES
    .filter((p) =>
      p === 0 || p === 100 || ((100 - p) / 100) * samples.length >= 1 - 1e-9
    )
    .map((p) => [p, quantileSorted(ascending, p / 100)]);
}

/** Aggregates the trials of one benchmark. */
export function aggregate(
  job: Pick<Job, "runtime" | "case" | "batch">,
  runs: ReadonlyArray<{ trial: number; result: ChildResult; wallMs: number }>,
  failures: string[],
): BenchmarkResult {
  const info = CASES[job.case];
  const pooled = runs.flatMap((r) => r.result.samples);
  const trials: TrialRecord[] = runs
    .filter((r) => r.result.samples.length > 0)
    .map((r) => ({
      trial: r.trial,
      value: median(r.result.samples),
      ...(info.kind === "latency"
        ? { p99: quantileSorted(sorted(r.result.samples), 0.99) }
        : {}),
      n: r.result.samples.length,
      wallMs: r.wallMs,
    }));
  return {
    id: benchmarkId(job.runtime, job.case, job.batch),
    runtime: job.runtime,
    case: job.case,
    batch: job.batch,
    kind: info.kind,
    unit: info.unit,
    short: info.short,
    measures: info.measures,
    samples: pooled.length > 0 ? summarizeRobust(pooled) : null,
    trials,
    trialValues: trials.length > 0
      ? summarizeRobust(trials.map((t) => t.value))
      : null,
    curve: percentileCurve(pooled),
    failures,
  };
}

/**
 * Compares A with B on their per-process medians; `ratio` (of medians) and
 * `ratioOfMeans` > 1 mean A is better.
 */
export function compare(
  id: string,
  label: string,
  a: BenchmarkResult,
  b: BenchmarkResult,
  target?: { minRatio: number; source: string },
): ComparisonResult | undefined {
  const av = a.trials.map((t) => t.value);
  const bv = b.trials.map((t) => t.value);
  if (av.length === 0 || bv.length === 0) return undefined;
  const lowerIsBetter = a.kind === "latency";
  const ratio = lowerIsBetter
    ? median(bv) / median(av)
    : median(av) / median(bv);
  const ratioOfMeans = lowerIsBetter
    ? mean(bv) / mean(av)
    : mean(av) / mean(bv);
  const testable = av.length >= 2 && bv.length >= 2;
  const d = testable ? cohensD(av, bv) : null;
  return {
    id,
    label,
    a: a.id,
    b: b.id,
    ratio,
    ratioOfMeans,
    welch: testable ? welchTTest(av, bv) : null,
    cohensD: d,
    effect: d === null ? "untested" : effectSizeLabel(d),
    target: target === undefined
      ? undefined
      : { ...target, met: ratio >= target.minRatio },
  };
}

const RTT_TARGET = {
  minRatio: 20,
  source:
    "docs/architecture.md: CPU backend round trip ≥ 20× faster than postMessage ping-pong in the same run",
};

/** Every comparison the suite publishes, from the benchmarks of one run. */
export function buildComparisons(
  benchmarks: readonly BenchmarkResult[],
): ComparisonResult[] {
  const byId = new Map(benchmarks.map((b) => [b.id, b]));
  const out: ComparisonResult[] = [];
  const push = (c: ComparisonResult | undefined) => c && out.push(c);
  const runtimes = [...new Set(benchmarks.map((b) => b.runtime))];
  for (const runtime of runtimes) {
    const actor = byId.get(benchmarkId(runtime, "actor-call"));
    if (actor !== undefined) {
      for (
        const baseline of [
          "worker-postmessage",
          "channel-worker",
          "channel-local",
        ] as const
      ) {
        const other = byId.get(benchmarkId(runtime, baseline));
        if (other === undefined) continue;
        push(compare(
          `${runtime}:actor-call-vs-${baseline}`,
          `${runtime}: ${CASES["actor-call"].short} vs ${
            CASES[baseline].short
          } (round-trip latency)`,
          actor,
          other,
          baseline === "worker-postmessage" ? RTT_TARGET : undefined,
        ));
      }
    }
    for (const name of ["sendbatch-sink", "sendbatch-echo"] as const) {
      const sizes = benchmarks.filter((b) =>
        b.runtime === runtime && b.case === name
      ).map((b) => b.batch!);
      if (sizes.length < 2) continue;
      const small = Math.min(...sizes);
      const large = Math.max(...sizes);
      push(compare(
        `${runtime}:${name}-batch-${large}-vs-${small}`,
        `${runtime}: ${
          CASES[name].short
        }, batch ${large} vs batch ${small} (throughput)`,
        byId.get(benchmarkId(runtime, name, large))!,
        byId.get(benchmarkId(runtime, name, small))!,
      ));
    }
  }
  if (runtimes.includes("deno") && runtimes.includes("bun")) {
    for (const deno of benchmarks.filter((b) => b.runtime === "deno")) {
      const bun = byId.get(benchmarkId("bun", deno.case, deno.batch));
      if (bun === undefined) continue;
      const what = deno.batch === undefined
        ? CASES[deno.case].short
        : `${CASES[deno.case].short}, batch ${deno.batch}`;
      push(
        compare(
          `deno-vs-bun:${deno.case}${
            deno.batch === undefined ? "" : `@${deno.batch}`
          }`,
          `Deno vs Bun: ${what}`,
          deno,
          bun,
        ),
      );
    }
  }
  return out;
}

/** The batch size at which the throughput targets against the floors are judged. */
export const FLOOR_TARGET_BATCH = 1024;

const FLOOR_SOURCE =
  "hot-path targets: the library within a small factor of the bare JavaScript floor";

/**
 * library ÷ floor of one statistic of the per-process values, with its
 * bootstrap interval and, when given, its target.
 */
export function floorRatio(
  id: string,
  label: string,
  statistic: FloorComparison["statistic"],
  library: BenchmarkResult,
  floor: BenchmarkResult,
  target?: Omit<FloorTarget, "met">,
): FloorComparison | undefined {
  const values = (b: BenchmarkResult) =>
    b.trials.map((t) => statistic === "p99" ? t.p99 : t.value).filter((
      v,
    ): v is number => typeof v === "number" && Number.isFinite(v));
  const lv = values(library);
  const fv = values(floor);
  if (lv.length === 0 || fv.length === 0) return undefined;
  const libraryValue = median(lv);
  const floorValue = median(fv);
  const ratio = libraryValue / floorValue;
  const ci95 = lv.length >= 2 && fv.length >= 2
    ? bootstrapRatioInterval(lv, fv)
    : { low: NaN, high: NaN };
  return {
    id,
    runtime: library.runtime,
    label,
    statistic,
    library: library.id,
    floor: floor.id,
    libraryValue,
    floorValue,
    unit: library.unit,
    ratio,
    ci95,
    target: target === undefined ? undefined : {
      ...target,
      met: target.direction === "at most"
        ? ratio <= target.bound
        : ratio >= target.bound,
    },
  };
}

/**
 * Every library figure against its floor, per runtime: `call()` p50 and p99
 * against the spin ping-pong's, one-way `sendBatch` against the bare ring,
 * batched echo against the bare two-ring echo of the same batch size.
 */
export function buildFloorComparisons(
  benchmarks: readonly BenchmarkResult[],
): FloorComparison[] {
  const byId = new Map(benchmarks.map((b) => [b.id, b]));
  const out: FloorComparison[] = [];
  const push = (c: FloorComparison | undefined) => c && out.push(c);
  for (const runtime of new Set(benchmarks.map((b) => b.runtime))) {
    const call = byId.get(benchmarkId(runtime, "actor-call"));
    const ping = byId.get(benchmarkId(runtime, "floor-pingpong"));
    if (call !== undefined && ping !== undefined) {
      for (const [statistic, bound] of [["p50", 1.5], ["p99", 3]] as const) {
        push(floorRatio(
          `${runtime}:actor-call:${statistic}`,
          `${
            CASES["actor-call"].short
          } ${statistic} ÷ bare ping-pong ${statistic}`,
          statistic,
          call,
          ping,
          { bound, direction: "at most", source: FLOOR_SOURCE },
        ));
      }
    }
    const ring = byId.get(benchmarkId(runtime, "floor-ring"));
    for (const name of ["sendbatch-sink", "sendbatch-echo"] as const) {
      const library = benchmarks.filter((b) =>
        b.runtime === runtime && b.case === name
      ).sort((x, y) => x.batch! - y.batch!);
      for (const lib of library) {
        const floor = name === "sendbatch-sink"
          ? ring
          : byId.get(benchmarkId(runtime, "floor-echo", lib.batch));
        if (floor === undefined) continue;
        push(floorRatio(
          `${runtime}:${name}@${lib.batch}:rate`,
          name === "sendbatch-sink"
            ? `one-way \`sendBatch\` of ${lib.batch} ÷ bare ring`
            : `\`sendBatch\` echo of ${lib.batch} ÷ bare echo of ${lib.batch}`,
          "rate",
          lib,
          floor,
          lib.batch === FLOOR_TARGET_BATCH
            ? { bound: 0.5, direction: "at least", source: FLOOR_SOURCE }
            : undefined,
        ));
      }
    }
    // The three-actor K2K pipeline against one-way sends to one actor.
    for (
      const lib of benchmarks.filter((b) =>
        b.runtime === runtime && b.case === "pipeline-k2k"
      ).sort((x, y) => x.batch! - y.batch!)
    ) {
      const one = byId.get(benchmarkId(runtime, "sendbatch-sink", lib.batch));
      if (one === undefined) continue;
      push(floorRatio(
        `${runtime}:pipeline-k2k@${lib.batch}:rate`,
        `three-actor K2K pipeline, batch ${lib.batch} ÷ one-way \`sendBatch\` of ${lib.batch}`,
        "rate",
        lib,
        one,
        lib.batch === FLOOR_TARGET_BATCH
          ? { bound: 0.3, direction: "at least", source: FLOOR_SOURCE }
          : undefined,
      ));
    }
  }
  return out;
}

function errorText(error: unknown): string {
  return error instanceof Error
    ? `${error.name}: ${error.message}`
    : String(error);
}

function formatValue(value: number, unit: string): string {
  if (unit === "msg/s") return `${(value / 1e6).toFixed(3)} Mmsg/s`;
  return `${value.toFixed(2)} ${unit}`;
}

async function runMicro(
  runtime: RuntimeBinary,
  config: SuiteConfig,
): Promise<MicroSection> {
  const { command, args } = childCommand(runtime, "bench/micro.bench.ts", [
    "--json",
  ]);
  const outcome = await runProcess(command, args, {
    cwd: config.root,
    timeoutMs: 900_000,
  });
  if (outcome.code !== 0) {
    const tail = outcome.stderr.trim().split("\n").slice(-4).join("\n");
    return {
      runtime: runtime.name,
      failure: `exit ${outcome.code ?? outcome.signal}: ${tail}`,
    };
  }
  const line = outcome.stdout.trim().split("\n").reverse().find((l) =>
    l.startsWith("{")
  );
  if (line === undefined) {
    return { runtime: runtime.name, failure: "no JSON on stdout" };
  }
  return { runtime: runtime.name, report: JSON.parse(line) as MicroReport };
}

/**
 * Runs `bench/wavesim.ts` (tile actors and the single-threaded reference,
 * timed in the same process; the backend it picks) in `config.wavesimRuns`
 * fresh processes of `runtime`.
 */
async function runWaveSim(
  runtime: RuntimeBinary,
  config: SuiteConfig,
): Promise<WaveSimSection> {
  const runs: WaveBenchResult[] = [];
  const failures: string[] = [];
  for (let i = 0; i < config.wavesimRuns; i++) {
    const { command, args } = childCommand(runtime, "bench/wavesim.ts", []);
    const outcome = await runProcess(command, args, {
      cwd: config.root,
      timeoutMs: config.childTimeoutMs,
    });
    const line = outcome.stdout.trim().split("\n").reverse().find((l) =>
      l.startsWith("{")
    );
    if (outcome.code !== 0 || line === undefined) {
      const tail = outcome.stderr.trim().split("\n").slice(-3).join(" / ");
      failures.push(`exit ${outcome.code ?? outcome.signal}: ${tail}`);
      continue;
    }
    runs.push(JSON.parse(line) as WaveBenchResult);
  }
  return { runtime: runtime.name, runs, failures };
}

/** Runs `bench/cluster.ts --json` under `runtime` when `nats-server` is installed, or says why not. */
async function runCluster(
  runtime: RuntimeBinary,
  config: SuiteConfig,
): Promise<ClusterSection> {
  const which = spawnSync("sh", ["-c", "command -v nats-server"], {
    encoding: "utf8",
  });
  if (which.status !== 0) {
    return {
      runtime: runtime.name,
      reason: "nats-server is not installed (apt-get install nats-server)",
    };
  }
  const { command, args } = childCommand(runtime, "bench/cluster.ts", [
    "--json",
    "--runs",
    String(config.clusterRuns),
  ]);
  const outcome = await runProcess(command, args, {
    cwd: config.root,
    timeoutMs: 600_000,
  });
  const line = outcome.stdout.trim().split("\n").reverse().find((l) =>
    l.startsWith("{")
  );
  if (outcome.code !== 0 || line === undefined) {
    const tail = outcome.stderr.trim().split("\n").slice(-3).join(" / ");
    return {
      runtime: runtime.name,
      reason: `exit ${outcome.code ?? outcome.signal}: ${tail}`,
    };
  }
  return {
    runtime: runtime.name,
    result: JSON.parse(line) as ClusterBenchResult,
  };
}

/** Runs `bench/gpu_table.ts --out` under Deno when a GPU is present, or says why not. */
export async function runGpuSection(
  config: SuiteConfig,
  present: boolean,
  detail: string,
  deno?: RuntimeBinary,
): Promise<GpuSection> {
  if (!config.gpu) {
    return {
      status: "skipped",
      reason: "not requested in this run (--no-gpu, --cases or sustained)",
    };
  }
  if (!present) {
    return { status: "skipped", reason: `no GPU on this machine (${detail})` };
  }
  const entry = join(config.root, "bench", "gpu_table.ts");
  if (!existsSync(entry)) {
    return {
      status: "skipped",
      reason: "bench/gpu_table.ts is not in this checkout",
    };
  }
  if (deno === undefined || !deno.available) {
    return {
      status: "skipped",
      reason: "the GPU table needs Deno, which was not found",
    };
  }
  const scratch = mkdtempSync(join(os.tmpdir(), "ringkernel-gpu-"));
  const out = join(scratch, "gpu_table.json");
  const { command, args } = childCommand(deno, "bench/gpu_table.ts", [
    "--out",
    out,
  ]);
  const shown = `deno run -A bench/gpu_table.ts --out <file>`;
  try {
    const outcome = await runProcess(command, args, {
      cwd: config.root,
      timeoutMs: 600_000,
    });
    if (existsSync(out)) {
      return {
        status: "ran",
        reason: outcome.code === 0
          ? "GPU present"
          : `GPU present; the table exited with ${
            outcome.code ?? outcome.signal
          } (a failed section holds its error)`,
        command: shown,
        table: JSON.parse(readFileSync(out, "utf8")),
      };
    }
    const last = (text: string) => text.trim().split("\n").slice(-6).join("\n");
    if (outcome.code === 0) {
      // The table exits 0 without a result when the GPU is not usable; it says why.
      return {
        status: "skipped",
        reason: last(outcome.stdout) || "the GPU table measured nothing",
        command: shown,
      };
    }
    return {
      status: "failed",
      reason: `exit ${outcome.code ?? outcome.signal}: ${last(outcome.stderr)}`,
      command: shown,
    };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Runs the suite and returns its results document. */
export async function runSuite(
  config: SuiteConfig,
  hooks: SuiteHooks,
): Promise<ResultsDocument> {
  const startedAt = new Date();
  const machine = machineInfo();
  const gpu = gpuInfo();
  const source = sourceRevision(config.root);
  const binaries = config.runtimes.map((name) =>
    resolveRuntime(name, { root: config.root, path: config.runtimePaths[name] })
  );
  for (const b of binaries) {
    hooks.log(
      b.available
        ? `${b.name} ${b.version}: ${relative(config.root, b.path) || b.path}`
        : `${b.name}: ${b.reason}`,
    );
  }
  const usable = binaries.filter((b) => b.available);
  const binary = new Map(usable.map((b) => [b.name, b]));
  const entry = "bench/e2e.ts";
  const jobs = planJobs(config, usable.map((b) => b.name));
  const runs = new Map<
    string,
    Array<{ trial: number; result: ChildResult; wallMs: number }>
  >();
  const failures = new Map<string, string[]>();
  for (const job of jobs) {
    runs.set(benchmarkId(job.runtime, job.case, job.batch), []);
    failures.set(benchmarkId(job.runtime, job.case, job.batch), []);
  }
  for (let trial = 0; trial < config.trials && jobs.length > 0; trial++) {
    const order = shuffled(jobs, config.seed * 1000 + trial);
    for (const [i, job] of order.entries()) {
      const id = benchmarkId(job.runtime, job.case, job.batch);
      const prefix = `[trial ${trial + 1}/${config.trials}, ${
        i + 1
      }/${order.length}] ${id}`;
      try {
        const run = await runChild(binary.get(job.runtime)!, entry, job.args, {
          cwd: config.root,
          timeoutMs: config.childTimeoutMs,
        });
        runs.get(id)!.push({ trial, result: run.result, wallMs: run.wallMs });
        hooks.log(
          `${prefix}: median ${
            formatValue(median(run.result.samples), CASES[job.case].unit)
          } (${(run.wallMs / 1000).toFixed(1)} s)`,
        );
      } catch (error) {
        failures.get(id)!.push(`trial ${trial}: ${errorText(error)}`);
        hooks.log(`${prefix}: FAILED ${errorText(error)}`);
      }
    }
  }
  const benchmarks = jobs
    .filter((job, i, all) =>
      all.findIndex((j) =>
        j.runtime === job.runtime && j.case === job.case &&
        j.batch === job.batch
      ) === i
    )
    .map((job) => {
      const id = benchmarkId(job.runtime, job.case, job.batch);
      return aggregate(job, runs.get(id)!, failures.get(id)!);
    });

  const sustained: SustainedResult[] = [];
  if (config.cases.includes("sustained") && config.sustainedSeconds > 0) {
    for (const runtime of usable) {
      const measures = CASES.sustained.measures;
      hooks.log(
        `sustained ${runtime.name}: ${config.sustainedSeconds} s, batch ${config.sustainedBatch}`,
      );
      try {
        const run = await runChild(runtime, entry, [
          "child",
          "--case",
          "sustained",
          "--batch",
          String(config.sustainedBatch),
          "--seconds",
          String(config.sustainedSeconds),
          "--warmup",
          String(config.sustainedWarmup),
          "--deadline-ms",
          String(config.sustainedSeconds * 1000 + config.childTimeoutMs),
        ], {
          cwd: config.root,
          timeoutMs: config.sustainedSeconds * 1000 + config.childTimeoutMs +
            10_000,
        });
        const r = run.result;
        sustained.push({
          runtime: runtime.name,
          seconds: config.sustainedSeconds,
          batch: config.sustainedBatch,
          measures,
          perSecond: r.samples,
          intervalSeconds: r.intervalSeconds ?? [],
          summary: r.samples.length > 0 ? summarizeRobust(r.samples) : null,
          accounting: r.accounting ?? null,
        });
        hooks.log(
          `sustained ${runtime.name}: median ${
            formatValue(median(r.samples), "msg/s")
          }, accounting ${r.accounting?.ok ? "ok" : "NOT OK"}`,
        );
      } catch (error) {
        sustained.push({
          runtime: runtime.name,
          seconds: config.sustainedSeconds,
          batch: config.sustainedBatch,
          measures,
          perSecond: [],
          intervalSeconds: [],
          summary: null,
          accounting: null,
          failure: errorText(error),
        });
        hooks.log(`sustained ${runtime.name}: FAILED ${errorText(error)}`);
      }
    }
  }

  const micro: MicroSection[] = [];
  if (config.micro) {
    for (const runtime of usable) {
      hooks.log(`microbenchmarks ${runtime.name} (mitata)`);
      micro.push(await runMicro(runtime, config));
    }
  }

  const wavesim: WaveSimSection[] = [];
  if (config.wavesimRuns > 0) {
    for (const runtime of usable) {
      hooks.log(`WaveSim ${runtime.name}: ${config.wavesimRuns} processes`);
      wavesim.push(await runWaveSim(runtime, config));
    }
  }

  const cluster: ClusterSection[] = [];
  if (config.clusterRuns > 0) {
    for (const runtime of usable) {
      hooks.log(`cluster ${runtime.name}: ${config.clusterRuns} runs`);
      cluster.push(await runCluster(runtime, config));
    }
  }

  const gpuSection = await runGpuSection(
    config,
    gpu.present,
    gpu.detail,
    binary.get("deno"),
  );
  hooks.log(`GPU section: ${gpuSection.status} (${gpuSection.reason})`);
  machine.loadAverageEnd = os.loadavg().map((l) => Math.round(l * 100) / 100);
  return {
    schema: RESULTS_SCHEMA,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: hooks.commandLine,
    parentRuntime: `${currentRuntime().name} ${currentRuntime().version}`,
    partial: config.partial,
    source,
    machine,
    gpu,
    runtimes: binaries.map((b) => ({
      ...b,
      path: b.path === "" ? "" : relative(config.root, b.path) || b.path,
    })),
    settings: {
      trials: config.trials,
      latencySamples: config.latencySamples,
      latencyWarmup: config.latencyWarmup,
      throughputRounds: config.throughputRounds,
      throughputWarmup: config.throughputWarmup,
      messagesPerRound: config.messagesPerRound,
      batchSizes: config.batchSizes,
      sustainedSeconds: config.cases.includes("sustained")
        ? config.sustainedSeconds
        : 0,
      sustainedBatch: config.sustainedBatch,
      seed: config.seed,
      cases: config.cases,
    },
    benchmarks,
    comparisons: buildComparisons(benchmarks),
    floors: buildFloorComparisons(benchmarks),
    sustained,
    micro,
    wavesim,
    cluster,
    gpuSection,
  };
}
