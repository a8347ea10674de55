/**
 * The results document a run writes (`bench/results/<date>-<machine>.json`)
 * and the report is generated from: its types, and reading and writing it.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { RingKernelError } from "../../src/errors.ts";
import type { Accounting, CaseKind, CaseName } from "./catalog.ts";
import type { GpuInfo, MachineInfo } from "./machine.ts";
import type { RuntimeBinary } from "./spawn.ts";
import type { RobustSummary, WelchResult } from "./stats.ts";
import type { MicroReport } from "../micro.bench.ts";
import type { WaveBenchResult } from "../wavesim.ts";
import type { ClusterBenchResult } from "../cluster.ts";

/** Identifies the format; bumped when it changes incompatibly. */
export const RESULTS_SCHEMA = "ringkernel-bench/1";

/** The repository root (two levels above this file). */
export const REPO_ROOT: string = dirname(
  dirname(dirname(fileURLToPath(import.meta.url))),
);

/** Where results files go, relative to the repository root. */
export const RESULTS_DIR = "bench/results";

/** One fresh process's contribution to a benchmark. */
export interface TrialRecord {
  /** Trial number (0-based). */
  readonly trial: number;
  /** The trial's median sample: the value compared across processes. */
  readonly value: number;
  /** The trial's 99th percentile (latency cases), compared with a floor's. */
  readonly p99?: number;
  /** Samples it took. */
  readonly n: number;
  /** Wall-clock time of the whole process, start-up included, ms. */
  readonly wallMs: number;
}

/** Percentile → value pairs of the pooled samples, for plots. */
export type PercentileCurve = Array<[percentile: number, value: number]>;

/** One case on one runtime (and one batch size), over all its trials. */
export interface BenchmarkResult {
  /** `<runtime>/<case>` or `<runtime>/<case>@<batch>`. */
  readonly id: string;
  /** Runtime that ran it. */
  readonly runtime: string;
  /** The case. */
  readonly case: CaseName;
  /** Batch size, for batched cases. */
  readonly batch?: number;
  /** Latency or throughput. */
  readonly kind: CaseKind;
  /** Unit of every figure. */
  readonly unit: string;
  /** Short name. */
  readonly short: string;
  /** What is measured. */
  readonly measures: string;
  /** Per-operation (latency) or per-round (throughput) samples of all trials, pooled. */
  readonly samples: RobustSummary | null;
  /** Each process's median. */
  readonly trials: TrialRecord[];
  /** The per-process medians summarized (n = trials): the between-process spread. */
  readonly trialValues: RobustSummary | null;
  /** Pooled percentile curve. */
  readonly curve: PercentileCurve;
  /** Trials that failed, with the reason. */
  readonly failures: string[];
}

/** A side-by-side comparison of two benchmarks from the same run. */
export interface ComparisonResult {
  /** Stable id. */
  readonly id: string;
  /** What is compared, in words. */
  readonly label: string;
  /** Benchmark id of A. */
  readonly a: string;
  /** Benchmark id of B. */
  readonly b: string;
  /**
   * How many times better A is than B (lower latency or higher throughput):
   * the ratio of the medians of the per-process medians, robust to a few
   * disturbed processes. Targets are judged on it.
   */
  readonly ratio: number;
  /** The same from the means of the per-process medians (what the t-test examines). */
  readonly ratioOfMeans: number;
  /** Welch's t-test of A's against B's per-process medians (null with fewer than 2 trials each). */
  readonly welch: WelchResult | null;
  /** Cohen's d of the same (A − B). */
  readonly cohensD: number | null;
  /** Cohen's label for |d|. */
  readonly effect: string;
  /** A project target this ratio is held to, if any. */
  readonly target?: {
    /** The ratio A must reach. */
    readonly minRatio: number;
    /** Whether it did in this run. */
    readonly met: boolean;
    /** Where the target comes from. */
    readonly source: string;
  };
}

/** A target a library figure is held to, relative to its floor. */
export interface FloorTarget {
  /** The bound on library ÷ floor. */
  readonly bound: number;
  /** Whether the ratio must stay at or below the bound (latency) or reach it (throughput). */
  readonly direction: "at most" | "at least";
  /** Whether the ratio of this run meets it. */
  readonly met: boolean;
  /** Where the target comes from. */
  readonly source: string;
}

/**
 * A library figure as a ratio to the bare JavaScript floor of the same
 * runtime, both from the same run: library ÷ floor of the medians of the
 * per-process values, with a bootstrap 95 % interval.
 */
export interface FloorComparison {
  /** Stable id: `<runtime>:<library case>[@batch]:<statistic>`. */
  readonly id: string;
  /** Runtime of both sides. */
  readonly runtime: string;
  /** What is compared, in words. */
  readonly label: string;
  /** Which per-process value: the median (p50) or the 99th percentile of a latency case, or the rate of a throughput case. */
  readonly statistic: "p50" | "p99" | "rate";
  /** Benchmark id of the library side. */
  readonly library: string;
  /** Benchmark id of the floor. */
  readonly floor: string;
  /** Median of the library's per-process values (µs or msg/s). */
  readonly libraryValue: number;
  /** Median of the floor's per-process values (same unit). */
  readonly floorValue: number;
  /** Unit of both values. */
  readonly unit: string;
  /** libraryValue ÷ floorValue. */
  readonly ratio: number;
  /** Percentile-bootstrap 95 % interval of the ratio (NaN bounds with fewer than 2 processes a side). */
  readonly ci95: { readonly low: number; readonly high: number };
  /** The target, where the project sets one. */
  readonly target?: FloorTarget;
}

/** The sustained run on one runtime. */
export interface SustainedResult {
  /** Runtime. */
  readonly runtime: string;
  /** Requested duration, s. */
  readonly seconds: number;
  /** sendBatch size. */
  readonly batch: number;
  /** What is measured. */
  readonly measures: string;
  /** Messages per second in each interval. */
  readonly perSecond: number[];
  /** Each interval's length, s. */
  readonly intervalSeconds: number[];
  /** Summary of `perSecond` (its CV is the run's stability). */
  readonly summary: RobustSummary | null;
  /** Message accounting at the end. */
  readonly accounting: Accounting | null;
  /** Why it failed, if it did. */
  readonly failure?: string;
}

/** The GPU section: the GPU table's output, or why it did not run. */
export interface GpuSection {
  /** What happened. */
  readonly status: "ran" | "skipped" | "failed";
  /** Why, in words. */
  readonly reason: string;
  /** The command that ran, if any. */
  readonly command?: string;
  /** The JSON `bench/gpu_table.ts --out` wrote. */
  readonly table?: unknown;
}

/** Microbenchmark results of one runtime, or why there are none. */
export interface MicroSection {
  /** Runtime. */
  readonly runtime: string;
  /** The report `bench/micro.bench.ts --json` printed. */
  readonly report?: MicroReport;
  /** Why it failed, if it did. */
  readonly failure?: string;
}

/** The WaveSim showcase in fresh processes of one runtime (`bench/wavesim.ts`), or why not. */
export interface WaveSimSection {
  /** Runtime. */
  readonly runtime: string;
  /** One result per process (tile actors and the reference, timed in the same process). */
  readonly runs: readonly WaveBenchResult[];
  /** Why a run failed, if one did. */
  readonly failures: readonly string[];
}

/** `bench/cluster.ts --json` under one runtime (a real nats-server, a second process), or why not. */
export interface ClusterSection {
  /** Runtime. */
  readonly runtime: string;
  /** The medians it printed. */
  readonly result?: ClusterBenchResult;
  /** Why there is no result (no nats-server, or the run failed). */
  readonly reason?: string;
}

/** Settings a run used (recorded so that it can be repeated). */
export interface RunSettings {
  /** Fresh processes per benchmark and runtime. */
  readonly trials: number;
  /** Timed round trips per latency trial. */
  readonly latencySamples: number;
  /** Untimed round trips before them. */
  readonly latencyWarmup: number;
  /** Timed rounds per throughput trial. */
  readonly throughputRounds: number;
  /** Untimed rounds before them. */
  readonly throughputWarmup: number;
  /** Messages per throughput round. */
  readonly messagesPerRound: number;
  /** sendBatch sizes. */
  readonly batchSizes: number[];
  /** Sustained duration, s (0: skipped). */
  readonly sustainedSeconds: number;
  /** Sustained sendBatch size. */
  readonly sustainedBatch: number;
  /** Job-order seed. */
  readonly seed: number;
  /** Cases run. */
  readonly cases: string[];
}

/** The source a run measured. */
export interface SourceRevision {
  /** `git rev-parse HEAD`, or "unknown" outside a git checkout. */
  readonly commit: string;
  /** Files under src/, ffi/ and bench/ that differ from the commit (uncommitted work measured too). */
  readonly uncommitted: string[];
}

/** Everything one run produced. */
export interface ResultsDocument {
  /** {@linkcode RESULTS_SCHEMA}. */
  readonly schema: string;
  /** ISO time the run started. */
  readonly startedAt: string;
  /** ISO time it ended. */
  readonly finishedAt: string;
  /** The command line. */
  readonly command: string;
  /** Runtime that ran the parent. */
  readonly parentRuntime: string;
  /** The source measured: git commit and uncommitted changes under src/, ffi/ and bench/. */
  readonly source: SourceRevision;
  /** Whether only part of the suite ran (`--quick`, `--cases`, `sustained`). */
  readonly partial: boolean;
  /** The machine. */
  readonly machine: MachineInfo;
  /** The GPU, or why none. */
  readonly gpu: GpuInfo;
  /** Runtimes the children ran under. */
  readonly runtimes: RuntimeBinary[];
  /** Settings. */
  readonly settings: RunSettings;
  /** Every benchmark. */
  readonly benchmarks: BenchmarkResult[];
  /** Every comparison. */
  readonly comparisons: ComparisonResult[];
  /** Library figures against the bare floors of the same run (absent in files from before the floors). */
  readonly floors?: FloorComparison[];
  /** Sustained runs. */
  readonly sustained: SustainedResult[];
  /** Microbenchmarks. */
  readonly micro: MicroSection[];
  /** The WaveSim showcase against its single-threaded reference (absent in older files). */
  readonly wavesim?: WaveSimSection[];
  /** Cross-process figures through NATS beside the local ones (absent in older files). */
  readonly cluster?: ClusterSection[];
  /** The GPU section. */
  readonly gpuSection: GpuSection;
}

/** Reads the git commit of `root` and the uncommitted files under src/, ffi/ and bench/. */
export function sourceRevision(root: string): SourceRevision {
  const git = (args: string[]) =>
    spawnSync("git", args, { cwd: root, encoding: "utf8", timeout: 20_000 });
  const head = git(["rev-parse", "HEAD"]);
  if (head.status !== 0) return { commit: "unknown", uncommitted: [] };
  const status = git(["status", "--porcelain", "--", "src", "ffi", "bench"]);
  const uncommitted = status.status === 0
    ? status.stdout.split("\n").filter((l) => l.trim() !== "").map((l) =>
      l.slice(3)
    )
    : [];
  return { commit: head.stdout.trim(), uncommitted };
}

/** The default file name for a results document: `<date>-<slug>.json`, not overwriting an existing one. */
export function resultsFileName(
  root: string,
  date: Date,
  slug: string,
): string {
  const day = date.toISOString().slice(0, 10);
  for (let n = 1;; n++) {
    const name = join(
      root,
      RESULTS_DIR,
      `${day}-${slug}${n === 1 ? "" : `-${n}`}.json`,
    );
    if (!existsSync(name)) return name;
  }
}

/** Writes the document (pretty JSON, NaN as null) and returns the path. */
export function writeResults(results: ResultsDocument, path: string): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(results, null, 1) + "\n");
  return path;
}

/** Reads a results document; throws {@linkcode RingKernelError} when it is not one. */
export function readResults(path: string): ResultsDocument {
  const parsed = JSON.parse(readFileSync(path, "utf8")) as ResultsDocument;
  if (parsed?.schema !== RESULTS_SCHEMA) {
    throw new RingKernelError(
      `${path} is not a ${RESULTS_SCHEMA} results file (schema: ${parsed?.schema})`,
    );
  }
  return parsed;
}
