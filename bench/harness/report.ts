/**
 * The Markdown report (`docs/benchmarks.md`) and its SVG charts
 * (`docs/img/benchmarks-*.svg`), generated from one results document. Every
 * figure comes from the document; every figure's label says what it
 * measures.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { CASES, FLOOR_MIN_MESSAGES } from "./catalog.ts";
import {
  type BenchmarkResult,
  type ComparisonResult,
  type FloorComparison,
  REPO_ROOT,
  type ResultsDocument,
  type SustainedResult,
} from "./results.ts";
import { median, type Summary } from "./stats.ts";
import type { WaveBenchResult } from "../wavesim.ts";
import { compactNumber, lineChart, type Series, type Tick } from "./svg.ts";
import { resolveRuntime } from "./spawn.ts";

/** The report's default path, relative to the repository root. */
export const REPORT_PATH = "docs/benchmarks.md";

/** Where the charts go, relative to the repository root. */
export const IMAGE_DIR = "docs/img";

/** The rendered report. */
export interface RenderedReport {
  /** The Markdown text. */
  readonly markdown: string;
  /** SVG documents by file name (inside {@linkcode IMAGE_DIR}). */
  readonly images: ReadonlyMap<string, string>;
  /** The headline figures, one Markdown bullet each (also written into the README). */
  readonly headline: readonly string[];
}

/** Options of {@linkcode renderReport}. */
export interface RenderOptions {
  /** How the report links the charts: the image directory relative to the report. */
  readonly imageLink?: string;
  /** How the report links the results file (relative to the report), if written. */
  readonly resultsLink?: string;
}

const MISSING = "–";

function finite(value: number | null | undefined): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

/** Formats a latency in µs with a precision that suits its size. */
export function formatMicros(value: number | null | undefined): string {
  if (!finite(value)) return MISSING;
  if (Math.abs(value) < 10) return value.toFixed(2);
  if (Math.abs(value) < 100) return value.toFixed(1);
  return value.toFixed(0);
}

/** Formats a throughput in Mmsg/s, three significant digits. */
export function formatRate(value: number | null | undefined): string {
  if (!finite(value)) return MISSING;
  return (value / 1e6).toPrecision(3);
}

/** Formats a fraction as a percentage. */
export function formatPercent(value: number | null | undefined): string {
  if (!finite(value)) return MISSING;
  return `${(value * 100).toFixed(value < 0.1 ? 2 : 1)} %`;
}

/** Formats a p-value. */
export function formatP(value: number | null | undefined): string {
  if (!finite(value)) return MISSING;
  if (value < 1e-4) return value.toExponential(1);
  return value.toFixed(4);
}

function formatRatio(value: number | null | undefined): string {
  if (!finite(value)) return MISSING;
  return `${value >= 10 ? value.toFixed(1) : value.toFixed(2)}×`;
}

function formatNumber(value: number | null | undefined, digits = 2): string {
  return finite(value) ? value.toFixed(digits) : MISSING;
}

function formatUnit(value: number | null | undefined, unit: string): string {
  return unit === "msg/s" ? formatRate(value) : formatMicros(value);
}

function unitHeader(unit: string): string {
  return unit === "msg/s" ? "Mmsg/s" : "µs";
}

function interval(summary: Summary | undefined, unit: string): string {
  if (summary === undefined || !finite(summary.ci95.low)) return MISSING;
  return `${formatUnit(summary.ci95.low, unit)} … ${
    formatUnit(summary.ci95.high, unit)
  }`;
}

function table(headers: string[], rows: string[][]): string {
  const escape = (cell: string) =>
    cell.replace(/\|/g, "\\|").replace(/\n/g, " ");
  return [
    `| ${headers.map(escape).join(" | ")} |`,
    `| ${headers.map(() => "---").join(" | ")} |`,
    ...rows.map((row) => `| ${row.map(escape).join(" | ")} |`),
  ].join("\n");
}

function runtimeTitle(name: string): string {
  return name === "deno" ? "Deno" : name === "bun" ? "Bun" : name;
}

function runtimeVersion(results: ResultsDocument, name: string): string {
  const binary = results.runtimes.find((r) => r.name === name);
  return binary?.version
    ? `${runtimeTitle(name)} ${binary.version}`
    : runtimeTitle(name);
}

/** x position of a percentile on a percentile plot: −log10(1 − p), capped at p99.999. */
export function percentileX(p: number): number {
  return 0 - Math.log10(Math.max(1e-5, 1 - p / 100));
}

const PERCENTILE_TICKS: Tick[] = [
  { value: percentileX(0), label: "" },
  { value: percentileX(50), label: "p50" },
  { value: percentileX(90), label: "p90" },
  { value: percentileX(99), label: "p99" },
  { value: percentileX(99.9), label: "p99.9" },
  { value: percentileX(99.99), label: "p99.99" },
];

function latencyChart(
  results: ResultsDocument,
  runtime: string,
  benchmarks: BenchmarkResult[],
): string {
  const series: Series[] = benchmarks.map((b) => ({
    name: b.short,
    points: b.curve.filter(([p]) => p < 100).map(([p, v]) =>
      [percentileX(p), v] as const
    ),
    dashed: b.case !== "actor-call",
  }));
  return lineChart({
    title: `Round-trip latency by percentile, ${
      runtimeVersion(results, runtime)
    } (pooled over all trials)`,
    xLabel: "percentile (log scale of 1 − p)",
    yLabel: "round trip (µs, log scale)",
    xTicks: PERCENTILE_TICKS,
    yLog: true,
    series,
  });
}

function throughputChart(
  benchmarks: BenchmarkResult[],
  results: ResultsDocument,
): string {
  const sizes = [...new Set(benchmarks.map((b) => b.batch!))].sort((a, b) =>
    a - b
  );
  const groups = new Map<string, BenchmarkResult[]>();
  for (const b of benchmarks) {
    const key = `${runtimeTitle(b.runtime)}: ${b.short}`;
    groups.set(key, [...(groups.get(key) ?? []), b]);
  }
  const series: Series[] = [...groups].map(([name, list]) => {
    const ordered = list.filter((b) => b.trialValues !== null).sort((a, b) =>
      a.batch! - b.batch!
    );
    return {
      name,
      dashed: ordered[0]?.case === "sendbatch-echo",
      points: ordered.map((b) =>
        [Math.log2(b.batch!), b.trialValues!.all.mean] as const
      ),
      errors: ordered.map((b) => {
        const values = b.trials.map((t) => t.value);
        return [
          Math.log2(b.batch!),
          Math.min(...values),
          Math.max(...values),
        ] as const;
      }),
    };
  });
  return lineChart({
    title:
      `Throughput vs sendBatch size: mean of per-process medians, bars min … max (${results.settings.trials} processes)`,
    xLabel: "messages per sendBatch call (log2 scale)",
    yLabel: "messages per second (log scale)",
    xTicks: sizes.map((s) => ({ value: Math.log2(s), label: String(s) })),
    yLog: true,
    formatY: compactNumber,
    series,
  });
}

function sustainedChart(runs: SustainedResult[]): string {
  const longest = Math.max(
    1,
    ...runs.map((r) => r.intervalSeconds.reduce((sum, s) => sum + s, 0)),
  );
  const step = longest > 20 ? 10 : longest > 8 ? 2 : 1;
  // The last tick covers the last interval, so no point falls outside the plot.
  const end = Math.ceil(longest / step) * step;
  const ticks: Tick[] = [];
  for (let s = 0; s <= end; s += step) {
    ticks.push({ value: s, label: `${s} s` });
  }
  return lineChart({
    title: "Sustained echo round trips per one-second interval",
    xLabel: "time since the clock started",
    yLabel: "messages per second",
    xTicks: ticks,
    formatY: compactNumber,
    series: runs.map((r) => {
      let elapsed = 0;
      return {
        name: `${runtimeTitle(r.runtime)}, batch ${r.batch}`,
        points: r.perSecond.map((v, i) => {
          elapsed += r.intervalSeconds[i] ?? 1;
          return [elapsed, v] as const;
        }),
      };
    }),
  });
}

function latencySection(
  results: ResultsDocument,
  images: Map<string, string>,
  imageLink: string,
): string[] {
  const lines: string[] = [];
  const latency = results.benchmarks.filter((b) => b.kind === "latency");
  if (latency.length === 0) return lines;
  lines.push("## Round-trip latency", "");
  lines.push(
    "What each row measures (the clock starts before the send and stops when the reply is in hand):",
    "",
  );
  for (const name of new Set(latency.map((b) => b.case))) {
    lines.push(`- **${CASES[name].short}**: ${CASES[name].measures}.`);
  }
  lines.push("");
  for (const runtime of new Set(latency.map((b) => b.runtime))) {
    const rows = latency.filter((b) => b.runtime === runtime);
    lines.push(`### ${runtimeVersion(results, runtime)}`, "");
    lines.push(
      `All samples pooled over ${results.settings.trials} fresh processes × ${results.settings.latencySamples} ` +
        `round trips (after ${results.settings.latencyWarmup} untimed), µs:`,
      "",
    );
    lines.push(table(
      [
        "round trip",
        "n",
        "mean",
        "p50",
        "p95",
        "p99",
        "p99.9",
        "SD",
        "CV",
        "95 % CI of mean",
      ],
      rows.map((b) => {
        const s = b.samples?.all;
        return [
          b.short,
          String(s?.n ?? 0),
          formatMicros(s?.mean),
          formatMicros(s?.p50),
          formatMicros(s?.p95),
          formatMicros(s?.p99),
          formatMicros(s?.p999),
          formatMicros(s?.stdDev),
          formatPercent(s?.cv),
          interval(s, b.unit),
        ];
      }),
    ));
    lines.push("");
    lines.push(
      "The same without MAD outliers (modified z-score > 3.5), and the spread between processes:",
      "",
    );
    lines.push(table(
      [
        "round trip",
        "outliers (low/high)",
        "mean w/o",
        "p99 w/o",
        "SD w/o",
        "CV w/o",
        "per-process medians: mean",
        "95 % CI",
        "CV between processes",
      ],
      rows.map((b) => {
        const w = b.samples?.withoutOutliers;
        const t = b.trialValues?.all;
        return [
          b.short,
          b.samples
            ? `${b.samples.outliers} (${b.samples.outliersLow}/${b.samples.outliersHigh})`
            : MISSING,
          formatMicros(w?.mean),
          formatMicros(w?.p99),
          formatMicros(w?.stdDev),
          formatPercent(w?.cv),
          formatMicros(t?.mean),
          interval(t, b.unit),
          formatPercent(t?.cv),
        ];
      }),
    ));
    lines.push("");
    lines.push(
      "Each process's median round trip, in ascending order (µs):",
      "",
    );
    lines.push(table(
      ["round trip", "per-process medians"],
      rows.map((b) => [
        b.short,
        b.trials.map((t) => t.value).sort((x, y) => x - y).map(formatMicros)
          .join(", ") || MISSING,
      ]),
    ));
    lines.push("");
    const file = `benchmarks-latency-${runtime}.svg`;
    images.set(file, latencyChart(results, runtime, rows));
    lines.push(
      `![Round-trip latency by percentile, ${runtimeTitle(runtime)}: ${
        rows.map((b) => b.short).join(", ")
      }](${imageLink}/${file})`,
      "",
    );
  }
  return lines;
}

/** "3.1× faster", "2.0× slower" or "1.5× the throughput". */
function verdict(a: BenchmarkResult, ratio: number): string {
  if (a.kind !== "latency") return `${formatRatio(ratio)} the throughput`;
  return ratio >= 1
    ? `${formatRatio(ratio)} faster`
    : `${formatRatio(1 / ratio)} slower`;
}

function comparisonRows(
  list: ComparisonResult[],
  byId: Map<string, BenchmarkResult>,
): string[][] {
  return list.map((c) => {
    const a = byId.get(c.a)!;
    const b = byId.get(c.b)!;
    const middle = (x: BenchmarkResult) =>
      formatUnit(x.trialValues?.all.median, x.unit);
    const mean = (x: BenchmarkResult) =>
      formatUnit(x.trialValues?.all.mean, x.unit);
    return [
      c.label,
      `${middle(a)} vs ${middle(b)} ${unitHeader(a.unit)}`,
      verdict(a, c.ratio),
      `${mean(a)} vs ${mean(b)} ${unitHeader(a.unit)}`,
      verdict(a, c.ratioOfMeans),
      c.welch
        ? `${formatUnit(c.welch.difference, a.unit)} (${
          formatUnit(c.welch.differenceCi95.low, a.unit)
        } … ${formatUnit(c.welch.differenceCi95.high, a.unit)})`
        : MISSING,
      formatNumber(c.welch?.t),
      formatNumber(c.welch?.df, 1),
      formatP(c.welch?.pValue),
      c.cohensD === null ? MISSING : `${formatNumber(c.cohensD)} (${c.effect})`,
      c.target
        ? `≥ ${c.target.minRatio}×: ${c.target.met ? "met" : "**not met**"}`
        : "",
    ];
  });
}

const COMPARISON_HEADERS = [
  "comparison (A vs B)",
  "per-process medians: median (A vs B)",
  "A is (medians)",
  "per-process medians: mean (A vs B)",
  "A is (means)",
  "A − B (95 % CI)",
  "Welch t",
  "df",
  "p (two-sided)",
  "Cohen's d",
  "target",
];

function throughputSection(
  results: ResultsDocument,
  images: Map<string, string>,
  imageLink: string,
): string[] {
  const lines: string[] = [];
  const rows = results.benchmarks.filter((b) => b.kind === "throughput");
  if (rows.length === 0) return lines;
  lines.push("## Throughput vs batch size", "");
  for (const name of new Set(rows.map((b) => b.case))) {
    lines.push(`- **${CASES[name].short}**: ${CASES[name].measures}.`);
  }
  lines.push(
    "",
    `Each process runs ${results.settings.throughputWarmup} untimed and ${results.settings.throughputRounds} timed rounds ` +
      `of ${results.settings.messagesPerRound} messages (rounded up to a whole number of batches); ` +
      "a sample is one round's messages per second.",
    "",
  );
  lines.push(table(
    [
      "what is measured",
      "runtime",
      "batch",
      "per-process medians: mean (Mmsg/s)",
      "95 % CI",
      "CV between processes",
      "rounds: p50",
      "rounds: min … max",
      "rounds: CV",
    ],
    rows.map((b) => [
      b.short,
      runtimeTitle(b.runtime),
      b.batch === undefined ? MISSING : String(b.batch),
      formatRate(b.trialValues?.all.mean),
      interval(b.trialValues?.all, b.unit),
      formatPercent(b.trialValues?.all.cv),
      formatRate(b.samples?.all.p50),
      b.samples
        ? `${formatRate(b.samples.all.min)} … ${formatRate(b.samples.all.max)}`
        : MISSING,
      formatPercent(b.samples?.all.cv),
    ]),
  ));
  lines.push("");
  images.set(
    "benchmarks-throughput.svg",
    throughputChart(rows.filter((b) => b.batch !== undefined), results),
  );
  lines.push(
    `![Throughput vs sendBatch size, per runtime and case](${imageLink}/benchmarks-throughput.svg)`,
    "",
  );
  return lines;
}

function sustainedSection(
  results: ResultsDocument,
  images: Map<string, string>,
  imageLink: string,
): string[] {
  const runs = results.sustained;
  if (runs.length === 0) return [];
  const lines = ["## Sustained run", ""];
  lines.push(`**What is measured**: ${runs[0].measures}.`, "");
  lines.push(table(
    [
      "runtime",
      "duration",
      "batch",
      "intervals",
      "median (Mmsg/s)",
      "mean",
      "min … max",
      "CV over the run",
      "sent",
      "processed",
      "dead-lettered",
      "in flight",
      "replies received",
      "nothing lost",
    ],
    runs.map((r) => {
      const s = r.summary?.all;
      const a = r.accounting;
      return [
        runtimeTitle(r.runtime),
        `${r.seconds} s`,
        String(r.batch),
        String(r.perSecond.length),
        formatRate(s?.median),
        formatRate(s?.mean),
        s ? `${formatRate(s.min)} … ${formatRate(s.max)}` : MISSING,
        formatPercent(s?.cv),
        a ? String(a.sent) : MISSING,
        a ? String(a.processed) : MISSING,
        a ? String(a.deadLettered) : MISSING,
        a ? String(a.inFlight) : MISSING,
        a ? String(a.received) : MISSING,
        r.failure
          ? `failed: ${r.failure}`
          : a?.ok
          ? "yes (sent = processed + dead-lettered, every reply received)"
          : "**NO**",
      ];
    }),
  ));
  lines.push(
    "",
    "The accounting is read from `k.metrics()` after the last reply: `sent` counts messages accepted into the " +
      "actor's queue (warm-up included), and the run passes only when sent = processed + dead-lettered + in flight, " +
      "in flight is 0, nothing was dead-lettered and every processed message's reply reached the host.",
    "",
  );
  if (runs.some((r) => r.perSecond.length > 0)) {
    images.set(
      "benchmarks-sustained.svg",
      sustainedChart(runs.filter((r) => r.perSecond.length > 0)),
    );
    lines.push(
      `![Sustained echo round trips per second over the run](${imageLink}/benchmarks-sustained.svg)`,
      "",
    );
  }
  return lines;
}

/**
 * The WaveSim showcase: tile actors (halos by K2K) against the
 * single-threaded reference, each process timing both on the same grid.
 */
export function waveSimSection(
  results: Pick<ResultsDocument, "wavesim">,
): string[] {
  const sections = (results.wavesim ?? []).filter((w) =>
    w.runs.length > 0 || w.failures.length > 0
  );
  if (sections.length === 0) return [];
  const rows = sections.map((w) => {
    const med = (pick: (r: WaveBenchResult) => number) =>
      w.runs.length === 0 ? NaN : median(w.runs.map(pick));
    const first = w.runs[0];
    return [
      runtimeTitle(w.runtime),
      first ? `${first.grid}, ${first.tiles} tiles, ${first.steps} steps` : "—",
      first?.backend ?? "—",
      String(w.runs.length),
      formatMcells(med((r) => r.actorsMcells)),
      formatMcells(med((r) => r.referenceMcells)),
      Number.isFinite(med((r) => r.ratio))
        ? `${med((r) => r.ratio).toFixed(2)}×`
        : "—",
      w.runs.length === 0
        ? "—"
        : String(Math.max(...w.runs.map((r) => r.maxDifference))),
      w.failures.length === 0 ? "" : w.failures.join("; "),
    ];
  });
  const gpu = sections.some((w) => w.runs.some((r) => r.backend === "cuda"));
  return [
    "## WaveSim: tile actors against the single-threaded reference",
    "",
    "`bench/wavesim.ts` in fresh processes: the 2-D wave equation on a grid split into tiles, one actor " +
    "per tile exchanging halos by K2K every step, and the plain single-threaded reference, timed in the " +
    "same process on the same grid, in Mcells/s (million cell updates per second); medians over the " +
    "processes, and the largest difference of the actors' field from the reference's after the run. " +
    (gpu
      ? "GPU tiles on a GPU are comparable with the specification's 78,000 Mcells/s (3-D, H100)."
      : "These are CPU tiles: not comparable with the specification's 78,000 Mcells/s (3-D, H100), " +
        "which only GPU tiles on a GPU would be."),
    "",
    table([
      "runtime",
      "grid",
      "backend",
      "processes",
      "tile actors",
      "reference",
      "actors ÷ reference",
      "largest difference",
      "failures",
    ], rows),
    "",
  ];
}

/** Cross-process figures through NATS beside the local ones (`bench/cluster.ts`), per runtime. */
export function clusterSection(
  results: Pick<ResultsDocument, "cluster">,
): string[] {
  const sections = results.cluster ?? [];
  if (sections.length === 0) return [];
  const names = [
    ...new Set(
      sections.flatMap((c) => Object.keys(c.result?.figures ?? {})),
    ),
  ];
  const lines = [
    "## Cluster: an actor in another process, through nats-server",
    "",
    "`bench/cluster.ts` starts a `nats-server` (JetStream on) on 127.0.0.1 and a second process of the " +
    "same runtime that serves the actors; each figure is the median over its runs, beside the same " +
    "operation on a local kernel.",
    "",
  ];
  if (names.length > 0) {
    lines.push(
      table(
        ["figure", ...sections.map((c) => runtimeTitle(c.runtime))],
        names.map((name) => [
          name,
          ...sections.map((c) => formatFigure(c.result?.figures[name])),
        ]),
      ),
      "",
    );
  }
  for (const c of sections) {
    if (c.result) {
      lines.push(
        `- ${
          runtimeTitle(c.runtime)
        }: ${c.result.runtime}, median of ${c.result.runs} runs.`,
      );
    } else lines.push(`- ${runtimeTitle(c.runtime)}: not run: ${c.reason}.`);
  }
  lines.push("");
  return lines;
}

function formatFigure(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return "—";
  return value >= 100
    ? Math.round(value).toLocaleString("en")
    : value.toFixed(1);
}

function formatMcells(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(1)} Mcells/s` : "—";
}

function microSection(results: ResultsDocument): string[] {
  if (results.micro.length === 0) return [];
  const lines = ["## Host-only microbenchmarks (mitata)", ""];
  lines.push(
    "These are costs on the host thread alone: nothing crosses a thread, reaches an actor or the GPU. They bound " +
      "what the host adds to a message; they are **not** end-to-end figures and are not comparable with the " +
      "round trips above. Source: `bench/micro.bench.ts`, one process per runtime; mitata's own sampling " +
      "(ns per iteration).",
    "",
  );
  const runtimes = results.micro.map((m) => m.runtime);
  for (const m of results.micro) {
    if (m.failure) {
      lines.push(`- ${runtimeTitle(m.runtime)}: failed: ${m.failure}`);
    }
    for (const s of m.report?.skipped ?? []) {
      lines.push(
        `- ${runtimeTitle(m.runtime)}: skipped ${s.name}: ${s.reason}`,
      );
    }
  }
  const names: Array<{ group: string; name: string }> = [];
  for (const m of results.micro) {
    for (const r of m.report?.results ?? []) {
      if (!names.some((n) => n.name === r.name)) {
        names.push({ group: r.group, name: r.name });
      }
    }
  }
  for (const group of new Set(names.map((n) => n.group))) {
    lines.push("", `### ${group}`, "");
    lines.push(table(
      [
        "what one iteration does",
        ...runtimes.flatMap((
          r,
        ) => [`${runtimeTitle(r)} avg (ns)`, `${runtimeTitle(r)} p50 (ns)`]),
      ],
      names.filter((n) => n.group === group).map((n) => [
        n.name,
        ...results.micro.flatMap((m) => {
          const r = m.report?.results.find((x) => x.name === n.name);
          return [
            formatNumber(r?.avgNs, r && r.avgNs < 10 ? 2 : 1),
            formatNumber(r?.p50Ns, r && r.p50Ns < 10 ? 2 : 1),
          ];
        }),
      ]),
    ));
  }
  lines.push("");
  return lines;
}

function gpuCell(value: unknown): string {
  if (typeof value === "number") {
    return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  }
  if (typeof value === "string") return value;
  return JSON.stringify(value) ?? "";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function isScalar(value: unknown): boolean {
  return value === null ||
    ["number", "string", "boolean"].includes(typeof value);
}

/**
 * Renders the GPU table's JSON as it was written: its scalar fields as one
 * table, then one table per section (a row per measurement, a column per
 * field); anything else as JSON.
 */
export function gpuTableLines(data: unknown): string[] {
  if (!isRecord(data)) return ["```json", JSON.stringify(data, null, 2), "```"];
  const lines: string[] = [];
  const scalars = Object.entries(data).filter(([, v]) => isScalar(v));
  if (scalars.length > 0) {
    lines.push(
      tableOf(["field", "value"], scalars.map(([k, v]) => [k, gpuCell(v)])),
      "",
    );
  }
  for (const [section, value] of Object.entries(data)) {
    if (isScalar(value)) continue;
    lines.push(`**${section}**`, "");
    if (isRecord(value) && Object.values(value).every(isScalar)) {
      lines.push(
        tableOf(
          ["field", "value"],
          Object.entries(value).map(([k, v]) => [k, gpuCell(v)]),
        ),
        "",
      );
    } else if (
      isRecord(value) &&
      Object.values(value).every((row) =>
        isScalar(row) || (isRecord(row) && Object.values(row).every(isScalar))
      )
    ) {
      const rows = Object.entries(value);
      const keys = [
        ...new Set(
          rows.flatMap(([, row]) =>
            isRecord(row) ? Object.keys(row) : ["value"]
          ),
        ),
      ];
      lines.push(
        tableOf(
          ["measurement", ...keys],
          rows.map((
            [name, row],
          ) => [
            name,
            ...keys.map((k) =>
              isRecord(row)
                ? gpuCell(row[k])
                : k === "value"
                ? gpuCell(row)
                : ""
            ),
          ]),
        ),
        "",
      );
    } else {
      lines.push("```json", JSON.stringify(value, null, 2), "```", "");
    }
  }
  lines.push("The full JSON is in the results file, under `gpuSection.table`.");
  return lines;
}

const tableOf = table;

function gpuSectionLines(results: ResultsDocument): string[] {
  const g = results.gpuSection;
  const lines = ["## GPU", ""];
  if (g.status === "skipped") {
    lines.push(
      `Skipped: ${g.reason}. No GPU figure is published from this run.`,
      "",
    );
    return lines;
  }
  if (g.status === "failed") {
    lines.push(`The GPU table failed (\`${g.command}\`): ${g.reason}`, "");
    return lines;
  }
  lines.push(
    `Card: ${results.gpu.name ?? "unknown"}, driver ${
      results.gpu.driver ?? "unknown"
    }. Produced by \`${g.command}\` ` +
      "in the same run; the labels are the GPU table's own.",
    "",
    ...gpuTableLines(g.table),
    "",
  );
  return lines;
}

function floorFigure(value: number, unit: string): string {
  return unit === "msg/s"
    ? `${formatRate(value)} Mmsg/s`
    : `${formatMicros(value)} µs`;
}

function floorBound(c: FloorComparison): string {
  if (c.target === undefined) return MISSING;
  return c.target.direction === "at most"
    ? `≤ ${formatRatio(c.target.bound)}`
    : `≥ ${formatPercent(c.target.bound)}`;
}

/** A ratio to the floor: "1.83×" for latency, "41.2 %" for throughput. */
function floorShare(value: number, unit: string): string {
  return unit === "msg/s" ? formatPercent(value) : formatRatio(value);
}

function floorInterval(c: FloorComparison): string {
  if (!finite(c.ci95.low) || !finite(c.ci95.high)) return MISSING;
  return `${floorShare(c.ci95.low, c.unit)} … ${
    floorShare(c.ci95.high, c.unit)
  }`;
}

/** "met at 1.33×" or "missed at 24.1 %": the verdict with the figure that decided it; "" without a target. */
export function floorVerdict(c: FloorComparison): string {
  if (c.target === undefined) return "";
  return `${c.target.met ? "met" : "missed"} at ${floorShare(c.ratio, c.unit)}`;
}

/** The floors table's rows: runtime, comparison, floor, library, ratio, CI, target, verdict. */
export function floorRows(
  results: Pick<ResultsDocument, "floors">,
): string[][] {
  return (results.floors ?? []).map((c) => [
    runtimeTitle(c.runtime),
    c.label,
    floorFigure(c.floorValue, c.unit),
    floorFigure(c.libraryValue, c.unit),
    floorShare(c.ratio, c.unit),
    floorInterval(c),
    floorBound(c),
    c.target === undefined
      ? ""
      : c.target.met
      ? floorVerdict(c)
      : `**${floorVerdict(c)}**`,
  ]);
}

/** Headers of {@linkcode floorRows}. */
export const FLOOR_HEADERS: readonly string[] = [
  "runtime",
  "library ÷ floor",
  "floor",
  "library",
  "ratio",
  "95 % CI (bootstrap)",
  "target",
  "verdict",
];

/** Target of the host-side cost of a batch send, ns per 64 B message (envelope included). */
export const BATCH_SEND_COST_TARGET_NS = 25;

/**
 * The host-side cost of a batch send per runtime (`batch-encode`), in ns per
 * message: 1e9 ÷ the median of the per-process median rates, with the
 * spread of those processes, and its verdict against
 * {@linkcode BATCH_SEND_COST_TARGET_NS}.
 */
export function batchSendCostLines(
  results: Pick<ResultsDocument, "benchmarks">,
): string[] {
  const lines: string[] = [];
  for (const b of results.benchmarks ?? []) {
    if (b.case !== "batch-encode" || !b.trialValues) continue;
    const ns = 1e9 / b.trialValues.all.median;
    const fast = 1e9 / b.trialValues.all.max;
    const slow = 1e9 / b.trialValues.all.min;
    lines.push(
      `${
        runtimeTitle(b.runtime)
      }: host cost of a batch send (64 B, envelope included): ${
        ns.toFixed(1)
      } ns per message (processes: ${fast.toFixed(1)}–${
        slow.toFixed(1)
      } ns, n = ${b.trialValues.all.n}); target ≤ ${BATCH_SEND_COST_TARGET_NS} ns: ${
        ns <= BATCH_SEND_COST_TARGET_NS ? "met" : "MISSED"
      }`,
    );
  }
  return lines;
}

/** The floors as plain lines for a terminal: one per comparison, with its CI and verdict. */
export function floorSummaryLines(
  results: Pick<ResultsDocument, "floors">,
): string[] {
  return (results.floors ?? []).map((c) =>
    `${runtimeTitle(c.runtime)}: ${c.label.replace(/`/g, "")}: ${
      floorFigure(c.libraryValue, c.unit)
    } vs ${floorFigure(c.floorValue, c.unit)} = ${
      floorShare(c.ratio, c.unit)
    } (95 % CI ${floorInterval(c)})${
      c.target === undefined
        ? ""
        : `; target ${floorBound(c)}: ${c.target.met ? "met" : "MISSED"}`
    }`
  );
}

/**
 * What stands between each kind of library figure and its floor, shown for
 * the kinds whose target the run missed: the work the library does that the
 * floor does not (the run's figures say how far; this says why).
 */
export const FLOOR_LIMITS: Readonly<Record<string, string>> = Object.freeze({
  "actor-call":
    "`call()` against a two-thread spin ping-pong: a call encodes an envelope and its payload, the actor " +
    "validates and decodes it into a JavaScript object (a BigInt field included), runs the handler, encodes " +
    "the reply and commits it through the kill-safe ownership word, and the host decodes the reply and " +
    "settles the caller's promise; the floor moves one word each way. The p99: the floor's threads never " +
    "sleep, while an actor whose idle spin ran out before the next call (a pause of the calling thread " +
    "longer than the spin: compiling, collecting garbage, being descheduled) sleeps, and that call pays a " +
    "thread wake-up, which on a virtual machine takes hundreds of µs; early in a process, while the engine " +
    "still compiles, such pauses are frequent enough to set the p99 of a few thousand calls.",
  "sendbatch-sink":
    "one-way `sendBatch` against a bare ring: the bare ring only moves bytes (its consumer never reads a " +
    "payload), while the actor decodes every message into an object and calls its handler, and commits in " +
    "groups with an ownership word, a counter and a release that keep the accounting exact across a kill. " +
    "Per message that is hundreds of ns of JavaScript against the ring's few ns.",
  "sendbatch-echo":
    "batched echo against a bare echo over two rings: on top of the one-way costs, the actor encodes a " +
    "reply per message and the host decodes every reply into an object and hands it to `receiveMany`.",
  "pipeline-k2k":
    "the three-actor pipeline against one-way sends to one actor: each stage decodes and re-encodes every " +
    "message, and three actors plus the host share 2 cores, so stages take turns on the cores (the idle " +
    "spins shrink while the actors outnumber the cores) instead of running side by side.",
});

/** The kind of a floor comparison (`deno:sendbatch-echo@1024:rate` → `sendbatch-echo`). */
function floorKind(id: string): string {
  return id.split(":")[1]?.replace(/@.*$/, "") ?? "";
}

/** One paragraph per kind of figure whose target this run missed (see {@linkcode FLOOR_LIMITS}). */
export function floorLimitLines(
  results: Pick<ResultsDocument, "floors">,
): string[] {
  const missed = new Set(
    (results.floors ?? []).filter((c) => c.target && !c.target.met).map((c) =>
      floorKind(c.id)
    ),
  );
  return [...missed].filter((kind) => FLOOR_LIMITS[kind] !== undefined).map(
    (kind) => `- **${kind}**: ${FLOOR_LIMITS[kind]}`,
  );
}

function floorSection(results: ResultsDocument): string[] {
  const rows = floorRows(results);
  if (rows.length === 0) return [];
  const cases = ["floor-pingpong", "floor-ring", "floor-echo"] as const;
  return [
    "## Floors: the library against bare JavaScript",
    "",
    "Each runtime's floors are measured in the same run, in fresh processes like every other case, and every " +
    "library figure is stated as a ratio to its floor: latency as library ÷ floor (1× would be the floor " +
    "itself), throughput as the share of the floor's rate the library reaches. The ratio is of the medians of " +
    "the per-process values (the per-process median, or the per-process p99 for the p99 row); the interval " +
    "is a percentile bootstrap of that ratio, resampling the processes of each side. A verdict is judged on " +
    "the ratio; it is a benchmark figure, not a test. A floor's throughput round is at least " +
    `${FLOOR_MIN_MESSAGES} messages, long enough to time at its rate.`,
    "",
    ...cases.map((name) =>
      `- **${CASES[name].short}**: ${CASES[name].measures}.`
    ),
    "",
    table([...FLOOR_HEADERS], rows),
    "",
    ...limitsBlock(results),
  ];
}

function limitsBlock(results: ResultsDocument): string[] {
  const lines = floorLimitLines(results);
  if (lines.length === 0) return [];
  return ["What limits the targets this run missed:", "", ...lines, ""];
}

function headline(
  results: ResultsDocument,
  byId: Map<string, BenchmarkResult>,
): string[] {
  const lines: string[] = [];
  const targeted = results.comparisons.filter((c) => c.target !== undefined);
  const p50 = (id: string) => byId.get(id)?.samples?.all.p50;
  for (const runtime of new Set(results.benchmarks.map((b) => b.runtime))) {
    const actor = byId.get(`${runtime}/actor-call`);
    if (actor?.samples) {
      lines.push(
        `- ${
          runtimeVersion(results, runtime)
        }: round trip host → CPU actor → host through \`call()\`, p50 ` +
          `**${formatMicros(p50(actor.id))} µs**, p99 ${
            formatMicros(actor.samples.all.p99)
          } µs ` +
          `(pooled over ${actor.samples.all.n} round trips in ${actor.trials.length} processes; ` +
          `per-process medians from ${
            formatMicros(actor.trialValues?.all.min)
          } to ` +
          `${formatMicros(actor.trialValues?.all.max)} µs).`,
      );
    }
  }
  for (const c of targeted) {
    const a = byId.get(c.a)!;
    const b = byId.get(c.b)!;
    lines.push(
      `- ${c.label}: A is **${
        verdict(a, c.ratio)
      }** (medians of the per-process medians: ` +
        `${formatMicros(a.trialValues?.all.median)} vs ${
          formatMicros(b.trialValues?.all.median)
        } µs; ` +
        `the means of the same give ${verdict(a, c.ratioOfMeans)}). Target ${
          c.target!.minRatio
        }× on the medians ` +
        `(${c.target!.source}): **${c.target!.met ? "met" : "not met"}**.`,
    );
  }
  for (const c of results.floors ?? []) {
    if (c.target === undefined) continue;
    lines.push(
      `- ${runtimeTitle(c.runtime)}: ${c.label}: ${
        floorShare(c.ratio, c.unit)
      } (95 % CI ${floorInterval(c)}; ${
        floorFigure(c.libraryValue, c.unit)
      } vs ${floorFigure(c.floorValue, c.unit)}). Target ${floorBound(c)}: **${
        c.target.met ? "met" : "missed"
      }**.`,
    );
  }
  for (const w of results.wavesim ?? []) {
    if (w.runs.length === 0) continue;
    const med = (pick: (r: WaveBenchResult) => number) =>
      median(w.runs.map(pick));
    lines.push(
      `- WaveSim, ${runtimeTitle(w.runtime)}: ${w.runs[0].tiles} ${
        w.runs[0].backend === "cuda" ? "GPU" : "CPU"
      } tile actors on ${w.runs[0].grid}, ${
        formatMcells(med((r) => r.actorsMcells))
      } against ${
        formatMcells(med((r) => r.referenceMcells))
      } for the single-threaded reference (${
        med((r) => r.ratio).toFixed(2)
      }×; medians of ${w.runs.length} processes).`,
    );
  }
  for (const c of results.cluster ?? []) {
    const f = c.result?.figures;
    if (f === undefined) continue;
    const pick = (prefix: string) =>
      Object.entries(f).find(([k]) => k.startsWith(prefix))?.[1];
    lines.push(
      `- Cluster, ${
        runtimeTitle(c.runtime)
      }: \`call()\` round trip to an actor in another process ` +
        `through nats-server ${
          formatFigure(pick("remote call round trip"))
        } µs (local ${
          formatFigure(pick("local call round trip"))
        } µs); remote calls ${
          formatFigure(pick("remote call throughput"))
        }/s with 64 in flight (local ${
          formatFigure(pick("local call throughput"))
        }/s); medians of ${c.result!.runs} runs.`,
    );
  }
  for (const line of batchSendCostLines(results)) {
    lines.push(
      `- ${
        line.replace(
          /: (met|MISSED)$/,
          (_, v) => `: **${v === "met" ? "met" : "missed"}**`,
        )
      }.`,
    );
  }
  for (const r of results.sustained) {
    if (r.summary) {
      lines.push(
        `- Sustained ${r.seconds} s, ${runtimeTitle(r.runtime)}: median ${
          formatRate(r.summary.all.median)
        } Mmsg/s ` +
          `echo round trips, CV ${
            formatPercent(r.summary.all.cv)
          } over the run, accounting ` +
          `${
            r.accounting?.ok ? "balanced (nothing lost)" : "**not balanced**"
          }.`,
      );
    }
  }
  return lines;
}

/** Renders the report and its charts from a results document. */
export function renderReport(
  results: ResultsDocument,
  options: RenderOptions = {},
): RenderedReport {
  const imageLink = options.imageLink ?? "img";
  const images = new Map<string, string>();
  const byId = new Map(results.benchmarks.map((b) => [b.id, b]));
  const m = results.machine;
  const minutes =
    (Date.parse(results.finishedAt) - Date.parse(results.startedAt)) / 60_000;
  const lines: string[] = [
    "# Benchmarks",
    "",
    "<!-- Generated by bench/e2e.ts from the results file named below. Do not edit: rerun the harness. -->",
    "",
    `Generated from ${
      options.resultsLink
        ? `[\`${
          options.resultsLink.replace(/^(\.\.\/)+/, "")
        }\`](${options.resultsLink})`
        : "a results file"
    }: run started ${
      results.startedAt.replace("T", " ").replace(/\.\d+Z$/, " UTC")
    }, took ${minutes.toFixed(1)} min` +
    `, command \`${results.command}\`${
      results.partial ? " (a **partial** run)" : ""
    }. Every figure below is computed ` +
    "by the harness from that file; none is typed by hand.",
    "",
    results.gpu.present
      ? `This machine has a GPU (${results.gpu.name}); the GPU section holds the GPU figures, everything else is the CPU backend.`
      : "**CPU backend only**: this machine has no GPU, so every end-to-end figure here is the CPU backend (actors in " +
        "Workers over SharedArrayBuffer rings). None of them is a GPU figure.",
    "",
    "## Machine",
    "",
    table(["", ""], [
      ["CPU", `${m.cpuModel}, ${m.cores} logical cores, ${m.arch}`],
      ["memory", `${m.memoryGiB} GiB`],
      ["OS", `${m.os}, kernel ${m.kernel}`],
      [
        "GPU",
        results.gpu.present
          ? `${results.gpu.name}, driver ${results.gpu.driver}, ${results.gpu.memory}`
          : `none (${results.gpu.detail})`,
      ],
      [
        "runtimes",
        results.runtimes.map((r) =>
          r.available
            ? `${runtimeTitle(r.name)} ${r.version}`
            : `${runtimeTitle(r.name)}: ${r.reason}`
        )
          .join(", ") + ` (the parent ran under ${results.parentRuntime})`,
      ],
      [
        "source",
        `commit ${results.source.commit.slice(0, 12)}` +
        (results.source.uncommitted.length === 0
          ? ""
          : ` plus uncommitted changes to ${
            results.source.uncommitted.join(", ")
          }`),
      ],
      [
        "load average (1/5/15 min)",
        `${m.loadAverageStart.join(" / ")} at the start, ${
          m.loadAverageEnd.join(" / ")
        } at the end`,
      ],
    ]),
    "",
  ];
  const busiest = Math.max(...m.loadAverageStart, ...m.loadAverageEnd);
  if (busiest > m.cores / 2) {
    lines.push(
      `> **Noisy machine.** The load average reached ${busiest} on ${m.cores} cores: other processes competed for ` +
        "the CPUs during this run, and a round trip between two threads suffers most from that. Read the CV " +
        "columns and confidence intervals before the means; rerun on a quiet machine for figures to quote.",
      "",
    );
  }
  const head = headline(results, byId);
  if (head.length > 0) {
    lines.push("## Headline figures (same run)", "", ...head, "");
  }
  lines.push(
    "## Method",
    "",
    `- **Fresh processes.** Each trial of each benchmark is a new process (\`deno run -A bench/e2e.ts child …\` or ` +
      `\`bun bench/e2e.ts child …\`) that warms up, measures, and prints one JSON line. Every trial runs all ` +
      `benchmarks of both runtimes in a shuffled order (seed ${results.settings.seed}), so slow drift of the ` +
      "machine spreads over all of them instead of biasing one.",
    "- **Latency samples** are single round trips timed with `performance.now()` around one awaited operation; " +
      "each benchmark's samples are pooled over its processes for the percentiles, mean, standard deviation, the " +
      "Student-t 95 % confidence interval of the mean and the coefficient of variation (CV = SD / mean).",
    "- **Outliers** are values whose modified z-score 0.6745·|x − median| / MAD exceeds 3.5; tables show figures " +
      "with and without them. Latency tails are real (scheduling, GC), so the figures with outliers are the ones " +
      "a user sees.",
    "- **Comparisons** use one value per process, its median, so that the observations are independent. Two " +
      "ratios are shown (> 1 means A is better: lower latency or higher throughput): of the medians of those " +
      "per-process values, robust to a few disturbed processes (targets are judged on it), and of their means, " +
      "which a disturbed process moves (the t-test compares means). The mean difference is " +
      "tested with Welch's two-sided t-test, with Cohen's d (pooled SD) for the effect size. Both sides of every " +
      "comparison come from the same run.",
    "- Statistics are computed by `bench/harness/stats.ts` (tested against SciPy in `tests/bench_stats_test.ts`).",
    "",
  );
  lines.push(...latencySection(results, images, imageLink));
  const comparisons = results.comparisons.filter((c) =>
    !c.id.startsWith("deno-vs-bun:")
  );
  if (comparisons.length > 0) {
    lines.push(
      "## Comparisons",
      "",
      table(COMPARISON_HEADERS, comparisonRows(comparisons, byId)),
      "",
    );
  }
  lines.push(...throughputSection(results, images, imageLink));
  lines.push(...floorSection(results));
  const runtimeComparisons = results.comparisons.filter((c) =>
    c.id.startsWith("deno-vs-bun:")
  );
  if (runtimeComparisons.length > 0) {
    lines.push(
      "## Deno vs Bun",
      "",
      "The same benchmark under each runtime, interleaved in the same run (A = Deno, B = Bun; a ratio above 1 " +
        "means Deno did better).",
      "",
      table(COMPARISON_HEADERS, comparisonRows(runtimeComparisons, byId)),
      "",
    );
  }
  lines.push(...sustainedSection(results, images, imageLink));
  lines.push(...waveSimSection(results));
  lines.push(...clusterSection(results));
  lines.push(...microSection(results));
  lines.push(...gpuSectionLines(results));
  const failures = results.benchmarks.filter((b) => b.failures.length > 0);
  if (failures.length > 0) {
    lines.push("## Failed trials", "");
    for (const b of failures) {
      for (const f of b.failures) lines.push(`- \`${b.id}\` ${f}`);
    }
    lines.push("");
  }
  lines.push(
    "## Reproduce",
    "",
    "```sh",
    "deno run -A bench/e2e.ts            # every section; writes bench/results/<date>-<machine>.json and this report",
    "deno run -A bench/e2e.ts --quick    # a smoke run: fewer trials and samples, writes nothing unless --out/--report",
    "deno run -A bench/e2e.ts sustained --seconds 60",
    "deno run -A bench/e2e.ts report bench/results/<file>.json   # regenerate this report from a results file",
    "deno run -A bench/micro.bench.ts    # host-only microbenchmarks (bun bench/micro.bench.ts for Bun)",
    "```",
    "",
    `Settings of this run: ${results.settings.trials} processes per benchmark, ${results.settings.latencySamples} ` +
      `round trips per latency process (${results.settings.latencyWarmup} warm-up), ` +
      `${results.settings.throughputRounds} rounds of ${results.settings.messagesPerRound} messages per throughput ` +
      `process, batch sizes ${
        results.settings.batchSizes.join(", ")
      }, sustained ${results.settings.sustainedSeconds} s ` +
      `with batches of ${results.settings.sustainedBatch}.`,
    "",
  );
  return { markdown: lines.join("\n"), images, headline: head };
}

/** Options of {@linkcode writeReportFiles}. */
export interface WriteReportOptions {
  /** Report path (default {@linkcode REPORT_PATH} under the repository root). */
  readonly reportPath?: string;
  /** The results file the report is generated from, to link it. */
  readonly resultsPath?: string;
  /** A README whose headline block (between the markers) is rewritten too. */
  readonly readmePath?: string;
}

/** Renders and writes the report and its charts; returns the paths written. */
export function writeReportFiles(
  results: ResultsDocument,
  options: WriteReportOptions = {},
): string[] {
  const reportPath = options.reportPath ?? join(REPO_ROOT, REPORT_PATH);
  const reportDir = dirname(reportPath);
  const imageDir = join(reportDir, "img");
  const rendered = renderReport(results, {
    imageLink: relative(reportDir, imageDir) || ".",
    resultsLink: options.resultsPath
      ? relative(reportDir, options.resultsPath)
      : undefined,
  });
  mkdirSync(imageDir, { recursive: true });
  const written: string[] = [];
  for (const [file, svg] of rendered.images) {
    const path = join(imageDir, file);
    writeFileSync(path, svg);
    written.push(path);
  }
  writeFileSync(reportPath, rendered.markdown);
  written.unshift(reportPath);
  if (options.readmePath !== undefined) {
    if (
      updateReadmeHeadline(
        options.readmePath,
        rendered.headline,
        relative(dirname(options.readmePath), reportPath),
      )
    ) {
      written.push(options.readmePath);
    }
  }
  return written;
}

/** Markers around the README's generated block of headline figures. */
export const README_HEADLINE_START =
  "<!-- benchmark headline: generated by bench/e2e.ts, do not edit -->";
/** End marker of the README's generated block. */
export const README_HEADLINE_END = "<!-- end of benchmark headline -->";

/**
 * Replaces the block between the README's headline markers with `headline`
 * and a link to the report; returns whether the README has the markers.
 */
export function updateReadmeHeadline(
  readmePath: string,
  headline: readonly string[],
  reportLink: string,
): boolean {
  const text = readFileSync(readmePath, "utf8");
  const start = text.indexOf(README_HEADLINE_START);
  const end = text.indexOf(README_HEADLINE_END);
  if (start < 0 || end < start) return false;
  const block = [
    README_HEADLINE_START,
    "",
    ...headline,
    "",
    `Method, every figure with its confidence interval, and charts: [${reportLink}](${reportLink}).`,
    "",
  ].join("\n");
  writeFileSync(readmePath, text.slice(0, start) + block + text.slice(end));
  return true;
}

/**
 * Formats a written report with `deno fmt`, so that the repository's format
 * check accepts it as generated. Returns `undefined` on success, or why it
 * could not (no Deno binary, or `deno fmt` failed); the report stays valid
 * Markdown either way.
 */
export function formatReport(
  reportPath: string,
  root: string = REPO_ROOT,
): string | undefined {
  const deno = resolveRuntime("deno", { root });
  if (!deno.available) return deno.reason;
  const run = spawnSync(deno.path, ["fmt", "--quiet", reportPath], {
    cwd: root,
    encoding: "utf8",
    timeout: 60_000,
  });
  if (run.status === 0) return undefined;
  return `deno fmt exited with ${run.status}: ${
    (run.stderr ?? "").trim() || run.error?.message
  }`;
}
