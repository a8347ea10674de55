/**
 * Sustained load on echo actors (the CPU backend by default, or the CUDA
 * backend's resident GPU actors with `--backend cuda`): host producers keep
 * their queues full for a while, take every reply, then check the end accounting
 * (sent = processed + dead-lettered, every processed message replied to)
 * and how memory moved (RSS and heap sampled every second; least-squares
 * slope after a warm-up).
 *
 * Where the runtime exposes `gc()` (Deno with `--v8-flags=--expose-gc`), a
 * full collection runs before each memory sample, so the heap figure is what
 * survives rather than where the collector happens to be.
 *
 * ```sh
 * deno run -A --v8-flags=--expose-gc scripts/soak.ts --seconds 60
 * bun scripts/soak.ts --seconds 60 --actors 2 --json soak.json --quiet
 * deno run -A scripts/soak.ts --backend cuda --seconds 60 --json soak.json
 * ```
 *
 * Exits 1 when the accounting does not hold or the heap grows faster than
 * `--max-heap-slope` MB/min.
 *
 * @module
 */

import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import process from "node:process";
import { parseArgs } from "node:util";
import { pollUntil } from "../src/async.ts";
import type { BackendKind } from "../src/backend/backend.ts";
import type { BackendRequest } from "../src/backend/select.ts";
import type { Kernel } from "../src/kernel.ts";
import { RingKernel } from "../src/runtime.ts";

/** Options of {@linkcode runSoak}. */
export interface SoakOptions {
  /**
   * The backend to load: `"cpu"` (default), `"cuda"` (fails with
   * `BackendUnavailableError` without a usable GPU) or `"auto"`.
   */
  backend?: BackendRequest;
  /** How long to load the actors, in seconds (default 60). */
  seconds?: number;
  /** Echo actors to load (default: one per CPU beyond the host's, 1 to 4). */
  actors?: number;
  /** Input queue slots of each actor (default 1024). */
  queueCapacity?: number;
  /** Messages offered to each actor per turn of the host loop (default 256). */
  burst?: number;
  /** Fraction of the run left out of the memory slopes (default 0.2). */
  warmup?: number;
  /** Called once a second with the latest sample. */
  onSample?: (sample: SoakSample) => void;
}

/** One second of the run. */
export interface SoakSample {
  /** Seconds since the load started. */
  readonly t: number;
  /** Messages processed in this sample's window, per second. */
  readonly processedPerSecond: number;
  /** Resident set size, MB. */
  readonly rssMB: number;
  /** Used JS heap of the host thread, MB. */
  readonly heapMB: number;
}

/** What {@linkcode runSoak} measured. */
export interface SoakReport {
  /** The runtime that ran it. */
  readonly runtime: string;
  /** The backend the actors ran on. */
  readonly backend: BackendKind;
  /** Seconds of load. */
  readonly seconds: number;
  /** Actors loaded. */
  readonly actors: number;
  /** Messages the host sent (`trySend` accepted). */
  readonly hostSent: number;
  /** Replies the host received. */
  readonly replies: number;
  /** Sums of the kernels' metrics after the load drained. */
  readonly sent: number;
  /** Messages processed. */
  readonly processed: number;
  /** Messages dead-lettered. */
  readonly deadLettered: number;
  /** Messages still in flight (0 once drained). */
  readonly inFlight: number;
  /** Whether sent = processed + dead-lettered, nothing in flight, every send counted and every processed message replied to. */
  readonly accountingHolds: boolean;
  /** Throughput over the whole load, messages per second. */
  readonly meanThroughput: number;
  /** Coefficient of variation of the per-second throughput. */
  readonly throughputCv: number;
  /** RSS at the end of the warm-up and at the end, MB. */
  readonly rssMB: { readonly start: number; readonly end: number };
  /** Least-squares slope of the RSS after the warm-up, MB per minute. */
  readonly rssSlopeMBPerMin: number;
  /** Least-squares slope of the heap after the warm-up, MB per minute. */
  readonly heapSlopeMBPerMin: number;
  /** Theil–Sen (median pairwise) slopes after the warm-up, MB per minute: robust to a one-off step. */
  readonly medianSlopeMBPerMin: { readonly rss: number; readonly heap: number };
  /** Whether a full collection ran before each memory sample. */
  readonly collectedBeforeSamples: boolean;
  /** Every sample. */
  readonly samples: readonly SoakSample[];
}

const MB = 1024 * 1024;

/** Least-squares slope of y over x. */
function slope(points: readonly [number, number][]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** Theil–Sen slope: the median of the pairwise slopes (a one-off step barely moves it). */
function medianSlope(points: readonly [number, number][]): number {
  const slopes: number[] = [];
  for (let i = 0; i < points.length; i++) {
    for (let j = i + 1; j < points.length; j++) {
      const dx = points[j][0] - points[i][0];
      if (dx !== 0) slopes.push((points[j][1] - points[i][1]) / dx);
    }
  }
  if (slopes.length === 0) return 0;
  slopes.sort((a, b) => a - b);
  const mid = slopes.length >> 1;
  return slopes.length % 2 === 1
    ? slopes[mid]
    : (slopes[mid - 1] + slopes[mid]) / 2;
}

/** The backends `--backend` accepts. */
const BACKENDS: readonly BackendRequest[] = ["cpu", "cuda", "auto"];

function defaultActors(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

function macrotask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** Loads echo actors on the chosen backend for `seconds`, then drains and accounts. */
export async function runSoak(options: SoakOptions = {}): Promise<SoakReport> {
  const {
    backend = "cpu",
    seconds = 60,
    actors = defaultActors(),
    queueCapacity = 1024,
    burst = 256,
    warmup = 0.2,
    onSample,
  } = options;
  if (!(seconds > 0) || !Number.isInteger(actors) || actors < 1) {
    throw new RangeError(`soak needs seconds > 0 and actors >= 1`);
  }
  if (!BACKENDS.includes(backend)) {
    throw new RangeError(
      `soak backend ${JSON.stringify(backend)} must be one of ${
        BACKENDS.join(", ")
      }`,
    );
  }
  const runtime = process.versions.deno !== undefined
    ? `deno ${process.versions.deno}`
    : `bun ${process.versions.bun}`;
  const rt = await RingKernel.create({ backend, quiet: true });
  try {
    const kernels: Kernel[] = [];
    for (let i = 0; i < actors; i++) {
      kernels.push(
        await rt.launch(`soak${i}`, {
          actor: "echo",
          queueCapacity,
          outputCapacity: queueCapacity,
        }) as unknown as Kernel,
      );
    }
    const message = { seq: 0n, value: 1, tag: 7 };
    let hostSent = 0;
    let replies = 0;
    const drainReplies = () => {
      for (const k of kernels) {
        while (k.tryReceive() !== undefined) replies++;
      }
    };
    const processedNow = () =>
      kernels.reduce((sum, k) => sum + k.metrics().processed, 0);
    const samples: SoakSample[] = [];
    const collect = (globalThis as { gc?: () => void }).gc;
    const started = performance.now();
    const end = started + seconds * 1000;
    let windowStart = started;
    let windowProcessed = processedNow();
    for (;;) {
      const now = performance.now();
      if (now >= end) break;
      let offered = 0;
      for (const k of kernels) {
        for (let i = 0; i < burst && k.trySend(message); i++) offered++;
      }
      hostSent += offered;
      drainReplies();
      if (now - windowStart >= 1000) {
        const processed = processedNow();
        collect?.();
        const memory = process.memoryUsage();
        const sample: SoakSample = {
          t: (now - started) / 1000,
          processedPerSecond: (processed - windowProcessed) /
            ((now - windowStart) / 1000),
          rssMB: memory.rss / MB,
          heapMB: memory.heapUsed / MB,
        };
        samples.push(sample);
        onSample?.(sample);
        windowStart = now;
        windowProcessed = processed;
      }
      // Let the event loop breathe when the queues are full.
      if (offered === 0) await macrotask();
    }
    const loadMs = performance.now() - started;
    // Drain: everything sent must come out processed (or dead-lettered).
    await pollUntil(() => {
      drainReplies();
      return kernels.every((k) => k.metrics().inFlight === 0) &&
        kernels.every((k) => k.metrics().pendingReplies === 0);
    }, { timeoutMs: 30_000, what: "soak drain" });
    drainReplies();
    const totals = kernels.map((k) => k.metrics()).reduce(
      (sum, m) => ({
        sent: sum.sent + m.sent,
        processed: sum.processed + m.processed,
        deadLettered: sum.deadLettered + m.deadLettered,
        inFlight: sum.inFlight + m.inFlight,
      }),
      { sent: 0, processed: 0, deadLettered: 0, inFlight: 0 },
    );
    const rates = samples.map((s) => s.processedPerSecond);
    const mean = rates.reduce((a, b) => a + b, 0) / Math.max(1, rates.length);
    const sd = Math.sqrt(
      rates.reduce((a, r) => a + (r - mean) ** 2, 0) /
        Math.max(1, rates.length),
    );
    const settled = samples.filter((s) => s.t >= seconds * warmup);
    const memorySamples = settled.length >= 2 ? settled : samples;
    return {
      runtime,
      backend: rt.backend,
      seconds,
      actors,
      hostSent,
      replies,
      ...totals,
      accountingHolds: totals.sent === totals.processed + totals.deadLettered &&
        totals.inFlight === 0 && totals.sent === hostSent &&
        replies === totals.processed,
      meanThroughput: totals.processed / (loadMs / 1000),
      throughputCv: mean === 0 ? 0 : sd / mean,
      rssMB: {
        start: memorySamples[0]?.rssMB ?? 0,
        end: memorySamples.at(-1)?.rssMB ?? 0,
      },
      rssSlopeMBPerMin: slope(memorySamples.map((s) => [s.t, s.rssMB])) * 60,
      heapSlopeMBPerMin: slope(memorySamples.map((s) => [s.t, s.heapMB])) *
        60,
      medianSlopeMBPerMin: {
        rss: medianSlope(memorySamples.map((s) => [s.t, s.rssMB])) * 60,
        heap: medianSlope(memorySamples.map((s) => [s.t, s.heapMB])) * 60,
      },
      collectedBeforeSamples: collect !== undefined,
      samples,
    };
  } finally {
    await rt.shutdown({ timeoutMs: 10_000 });
  }
}

/** The soak's command line: `--backend`, `--seconds`, `--actors`, `--json`, `--max-heap-slope`, `--quiet`. */
function parseSoakArgs(argv: string[]): {
  backend: BackendRequest;
  seconds: number;
  actors: number;
  json?: string;
  maxHeapSlope: number;
  quiet: boolean;
} {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      backend: { type: "string", default: "cpu" },
      seconds: { type: "string", default: "60" },
      actors: { type: "string" },
      json: { type: "string" },
      "max-heap-slope": { type: "string", default: "5" },
      quiet: { type: "boolean", default: false },
    },
  });
  return {
    backend: values.backend as BackendRequest,
    seconds: Number(values.seconds),
    actors: values.actors === undefined
      ? defaultActors()
      : Number(values.actors),
    json: values.json,
    maxHeapSlope: Number(values["max-heap-slope"]),
    quiet: values.quiet,
  };
}

async function main(argv: string[]): Promise<number> {
  const args = parseSoakArgs(argv);
  console.log(
    `soak: ${args.seconds} s, ${args.actors} echo actors, backend ${args.backend}${
      typeof (globalThis as { gc?: unknown }).gc === "function"
        ? ", full GC before each memory sample"
        : ""
    }`,
  );
  const report = await runSoak({
    backend: args.backend,
    seconds: args.seconds,
    actors: args.actors,
    onSample: args.quiet ? undefined : (s) =>
      console.log(
        `  t=${s.t.toFixed(0).padStart(3)} s ${
          (s.processedPerSecond / 1e6).toFixed(3)
        } Mmsg/s rss ${s.rssMB.toFixed(1)} MB heap ${s.heapMB.toFixed(1)} MB`,
      ),
  });
  const f = (n: number, d = 2) => n.toFixed(d);
  console.log(
    `soak (${report.runtime}, ${report.backend} backend): sent ${report.sent} = processed ${report.processed} + dead-lettered ${report.deadLettered} (in flight ${report.inFlight}); host sent ${report.hostSent}, replies ${report.replies}: accounting ${
      report.accountingHolds ? "holds" : "BROKEN"
    }`,
  );
  console.log(
    `soak: throughput ${f(report.meanThroughput / 1e6, 3)} Mmsg/s (CV ${
      f(report.throughputCv * 100, 1)
    } %), RSS ${f(report.rssMB.start, 1)} -> ${
      f(report.rssMB.end, 1)
    } MB, slopes after warm-up: RSS ${
      f(report.rssSlopeMBPerMin)
    } MB/min, heap ${f(report.heapSlopeMBPerMin)} MB/min (Theil–Sen: RSS ${
      f(report.medianSlopeMBPerMin.rss)
    }, heap ${f(report.medianSlopeMBPerMin.heap)} MB/min)`,
  );
  if (args.json !== undefined) {
    writeFileSync(args.json, JSON.stringify(report, null, 2) + "\n");
  }
  const heapOk = report.heapSlopeMBPerMin <= args.maxHeapSlope;
  if (!heapOk) {
    console.log(
      `soak: heap grows ${
        f(report.heapSlopeMBPerMin)
      } MB/min > ${args.maxHeapSlope}`,
    );
  }
  return report.accountingHolds && heapOk ? 0 : 1;
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error) => {
      console.error(error);
      process.exit(2);
    },
  );
}
