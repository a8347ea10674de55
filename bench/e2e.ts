/**
 * End-to-end benchmarks, each trial in a fresh process, with statistics,
 * side-by-side comparisons, a sustained run, and a generated report.
 *
 * ```sh
 * deno run -A bench/e2e.ts                 # full run: JSON in bench/results/, report in docs/benchmarks.md
 * deno run -A bench/e2e.ts --quick         # a short smoke run (prints a summary, writes nothing by default)
 * deno run -A bench/e2e.ts sustained --seconds 60   # the sustained run alone
 * deno run -A bench/e2e.ts report bench/results/<file>.json   # regenerate docs/benchmarks.md
 * bun bench/e2e.ts …                       # the same under Bun (children still run under both)
 * ```
 *
 * The parent spawns `deno run -A bench/e2e.ts child …` and `bun
 * bench/e2e.ts child …` for every trial; a child runs one case and prints one
 * JSON line. Run `… --help` for every option.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { CHILD_MARKER, isCaseName } from "./harness/catalog.ts";
import { runCase } from "./harness/cases.ts";
import {
  defaultSuiteConfig,
  runSuite,
  type SuiteConfig,
} from "./harness/suite.ts";
import { join } from "node:path";
import {
  batchSendCostLines,
  floorSummaryLines,
  formatReport,
  writeReportFiles,
} from "./harness/report.ts";
import {
  readResults,
  REPO_ROOT,
  resultsFileName,
  writeResults,
} from "./harness/results.ts";
import { machineSlug } from "./harness/machine.ts";
import { type RuntimeName, RUNTIMES } from "./harness/spawn.ts";

const HELP = `bench/e2e.ts — end-to-end benchmarks in fresh processes

commands:
  run (default)      every section; a full run writes bench/results/<date>-<machine>.json
                     and docs/benchmarks.md (+ docs/img/benchmarks-*.svg)
  sustained          the sustained run alone (--seconds, --batch)
  report <json>      regenerate the Markdown report and charts from a results file
  child --case <c>   (internal) run one case in this process and print its JSON

options of run / sustained:
  --trials N            fresh processes per benchmark and runtime (default 12)
  --samples N           timed round trips per latency trial (default 5000)
  --warmup N            untimed round trips first (default 2000)
  --rounds N            timed rounds per throughput trial (default 8)
  --messages N          messages per throughput round (default 65536)
  --batches a,b,…       sendBatch sizes (default 1,8,64,256,1024,4096)
  --seconds S           sustained duration (default 60; 0 skips it in run)
  --batch N             sustained sendBatch size (default 256)
  --runtimes deno,bun   runtimes to spawn (default both)
  --cases a,b,…         only these cases (actor-call, worker-postmessage, channel-worker,
                        channel-local, sendbatch-sink, sendbatch-echo, pipeline-k2k,
                        batch-encode, sustained, and the bare floors floor-pingpong,
                        floor-ring, floor-echo)
  --no-micro            skip the mitata microbenchmarks
  --no-wavesim          skip the WaveSim showcase (tile actors vs its reference)
  --no-cluster          skip the cross-process figures through nats-server
  --no-gpu              skip the GPU section
  --deno PATH, --bun PATH   runtime binaries (default: tools/node_modules/.bin, node_modules/.bin,
                        the running runtime, then PATH)
  --seed N              order of the jobs in each trial (default 1)
  --quick               3 trials, fewer samples, 5 s sustained
  --out FILE            results JSON (default for a full run: bench/results/<date>-<machine>.json)
  --report FILE         Markdown report (default for a full run: docs/benchmarks.md)
`;

function parseCommandLine() {
  try {
    return parseArgs({
      args: process.argv.slice(2),
      allowPositionals: true,
      strict: true,
      options: {
        help: { type: "boolean", short: "h" },
        case: { type: "string" },
        trials: { type: "string" },
        samples: { type: "string" },
        warmup: { type: "string" },
        rounds: { type: "string" },
        messages: { type: "string" },
        batches: { type: "string" },
        batch: { type: "string" },
        seconds: { type: "string" },
        runtimes: { type: "string" },
        cases: { type: "string" },
        "no-micro": { type: "boolean" },
        "no-wavesim": { type: "boolean" },
        "no-cluster": { type: "boolean" },
        "no-gpu": { type: "boolean" },
        deno: { type: "string" },
        bun: { type: "string" },
        seed: { type: "string" },
        quick: { type: "boolean" },
        out: { type: "string" },
        report: { type: "string" },
        "deadline-ms": { type: "string" },
      },
    });
  } catch (error) {
    console.error(
      `${error instanceof Error ? error.message : error}\n\n${HELP}`,
    );
    process.exit(2);
  }
}

const { values, positionals } = parseCommandLine();

function integer(
  name: string,
  text: string | undefined,
  min = 0,
): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    throw new RangeError(
      `--${name} must be an integer ≥ ${min}, got "${text}"`,
    );
  }
  return n;
}

function list(text: string | undefined): string[] | undefined {
  return text?.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

async function child(): Promise<void> {
  const name = values.case ?? "";
  if (!isCaseName(name)) throw new RangeError(`--case "${name}" is not a case`);
  const deadline = integer("deadline-ms", values["deadline-ms"], 1) ?? 300_000;
  // A stuck child must not outlive its deadline even if the parent is gone.
  const watchdog = setTimeout(() => {
    process.stderr.write(`child ${name} passed its ${deadline} ms deadline\n`);
    process.exit(3);
  }, deadline);
  const result = await runCase(name, {
    samples: integer("samples", values.samples, 1) ?? 2000,
    warmup: integer("warmup", values.warmup) ?? 1000,
    batch: integer("batch", values.batch, 1),
    messagesPerRound: integer("messages", values.messages, 1),
    seconds: integer("seconds", values.seconds, 1),
  });
  clearTimeout(watchdog);
  await new Promise<void>((resolve) =>
    process.stdout.write(
      CHILD_MARKER + JSON.stringify(result) + "\n",
      () => resolve(),
    )
  );
  // Workers the runtime keeps around must not delay the exit.
  process.exit(0);
}

function suiteConfig(command: "run" | "sustained"): SuiteConfig {
  const base = defaultSuiteConfig({ quick: values.quick === true });
  const runtimes = list(values.runtimes) ?? [...RUNTIMES];
  for (const r of runtimes) {
    if (!RUNTIMES.includes(r as RuntimeName)) {
      throw new RangeError(`--runtimes: unknown runtime "${r}"`);
    }
  }
  const cases = command === "sustained"
    ? ["sustained"]
    : list(values.cases) ?? base.cases;
  for (const c of cases) {
    if (!isCaseName(c)) throw new RangeError(`--cases: unknown case "${c}"`);
  }
  const batches = list(values.batches)?.map((b) => integer("batches", b, 1)!) ??
    base.batchSizes;
  const partial = command === "sustained" || values.cases !== undefined ||
    values.quick === true;
  return {
    ...base,
    trials: integer("trials", values.trials, 1) ?? base.trials,
    latencySamples: integer("samples", values.samples, 1) ??
      base.latencySamples,
    latencyWarmup: integer("warmup", values.warmup) ?? base.latencyWarmup,
    throughputRounds: integer("rounds", values.rounds, 1) ??
      base.throughputRounds,
    messagesPerRound: integer("messages", values.messages, 1) ??
      base.messagesPerRound,
    batchSizes: batches,
    sustainedSeconds: integer("seconds", values.seconds) ??
      base.sustainedSeconds,
    sustainedBatch: integer("batch", values.batch, 1) ?? base.sustainedBatch,
    runtimes: runtimes as RuntimeName[],
    cases: cases as SuiteConfig["cases"],
    micro: command === "run" && values["no-micro"] !== true &&
      values.cases === undefined,
    wavesimRuns: command === "run" && values["no-wavesim"] !== true &&
        values.cases === undefined
      ? base.wavesimRuns
      : 0,
    clusterRuns: command === "run" && values["no-cluster"] !== true &&
        values.cases === undefined
      ? base.clusterRuns
      : 0,
    gpu: command === "run" && values["no-gpu"] !== true &&
      values.cases === undefined,
    runtimePaths: { deno: values.deno, bun: values.bun },
    seed: integer("seed", values.seed) ?? base.seed,
    partial,
  };
}

function reportFormatted(path: string): void {
  const problem = formatReport(path);
  if (problem !== undefined) {
    console.error(`the report is not formatted (${problem})`);
  }
}

async function main(): Promise<void> {
  const command = positionals[0] ?? "run";
  if (values.help) {
    console.log(HELP);
    return;
  }
  if (command === "child") return await child();
  if (command === "report") {
    const file = positionals[1];
    if (file === undefined) {
      throw new RangeError(
        "report needs the results file: bench/e2e.ts report <json>",
      );
    }
    const results = readResults(file);
    const written = writeReportFiles(results, {
      reportPath: values.report,
      resultsPath: file,
      readmePath: values.report === undefined
        ? join(REPO_ROOT, "README.md")
        : undefined,
    });
    console.error(`wrote ${written.join(", ")}`);
    for (const path of written) {
      if (/\.(md|svg)$/.test(path)) reportFormatted(path);
    }
    return;
  }
  if (command !== "run" && command !== "sustained") {
    throw new RangeError(`unknown command "${command}"\n\n${HELP}`);
  }
  const config = suiteConfig(command);
  const results = await runSuite(config, {
    commandLine: ["bench/e2e.ts", ...process.argv.slice(2)].join(" "),
    log: (line) => process.stderr.write(line + "\n"),
  });
  const floors = [
    ...floorSummaryLines(results),
    ...batchSendCostLines(results),
  ];
  if (floors.length > 0) {
    console.error(["library ÷ floor (same run):", ...floors].join("\n  "));
  }
  const out = values.out ?? (config.partial ? undefined : "");
  if (out !== undefined) {
    const path = writeResults(
      results,
      out === ""
        ? resultsFileName(
          REPO_ROOT,
          new Date(results.startedAt),
          machineSlug(results.machine, results.gpu),
        )
        : out,
    );
    console.error(`results: ${path}`);
    const reportPath = values.report ?? (config.partial ? undefined : "");
    if (reportPath !== undefined) {
      const written = writeReportFiles(results, {
        reportPath: reportPath === "" ? undefined : reportPath,
        resultsPath: path,
        readmePath: reportPath === ""
          ? join(REPO_ROOT, "README.md")
          : undefined,
      });
      console.error(`report: ${written.join(", ")}`);
      for (const path of written) {
        if (/\.(md|svg)$/.test(path)) reportFormatted(path);
      }
    }
  } else if (values.report !== undefined) {
    const written = writeReportFiles(results, { reportPath: values.report });
    console.error(`report: ${written.join(", ")}`);
    reportFormatted(written[0]);
  }
}

try {
  await main();
} catch (error) {
  console.error(
    error instanceof Error ? `${error.name}: ${error.message}` : error,
  );
  process.exit(1);
}
