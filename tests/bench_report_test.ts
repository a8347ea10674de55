import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { resolveRuntime } from "../bench/harness/spawn.ts";
import { REPO_ROOT } from "../bench/harness/results.ts";
import {
  BATCH_SEND_COST_TARGET_NS,
  batchSendCostLines,
  clusterSection,
  FLOOR_LIMITS,
  floorLimitLines,
  floorRows,
  floorSummaryLines,
  floorVerdict,
  formatMicros,
  formatP,
  formatPercent,
  formatRate,
  formatReport,
  percentileX,
  renderReport,
  waveSimSection,
  writeReportFiles,
} from "../bench/harness/report.ts";
import { CASES } from "../bench/harness/catalog.ts";
import { sampleResults } from "./fixtures/bench_results.ts";
import { summarizeRobust } from "../bench/harness/stats.ts";
import type { BenchmarkResult } from "../bench/harness/results.ts";

describe("formatting", () => {
  test("figures keep a precision that suits their size; missing ones show a dash", () => {
    assert.equal(formatMicros(1.234), "1.23");
    assert.equal(formatMicros(12.34), "12.3");
    assert.equal(formatMicros(1234.5), "1235");
    assert.equal(formatMicros(-12.34), "-12.3");
    assert.equal(formatMicros(NaN), "–");
    assert.equal(formatMicros(null), "–");
    assert.equal(formatRate(12_345_678), "12.3");
    assert.equal(formatPercent(0.0123), "1.23 %");
    assert.equal(formatPercent(0.5), "50.0 %");
    assert.equal(formatP(0.04567), "0.0457");
    assert.equal(formatP(1e-7), "1.0e-7");
  });

  test("percentile positions grow with the nines", () => {
    assert.equal(percentileX(0), 0);
    assert.ok(Math.abs(percentileX(90) - 1) < 1e-12);
    assert.ok(Math.abs(percentileX(99.9) - 3) < 1e-9);
    assert.equal(percentileX(100), 5);
  });
});

describe("report", () => {
  test("every figure carries what it measures, and targets are judged from the same run", () => {
    const { markdown, images } = renderReport(sampleResults(), {
      resultsLink: "../bench/results/x.json",
    });
    for (
      const name of [
        "actor-call",
        "worker-postmessage",
        "channel-worker",
        "channel-local",
      ] as const
    ) {
      assert.ok(
        markdown.includes(CASES[name].measures),
        `${name}'s description is in the report`,
      );
    }
    assert.ok(
      markdown.includes("round trip host → CPU actor → host through `call()`"),
    );
    assert.match(markdown, /Target 20× .*: \*\*met\*\*/);
    assert.ok(markdown.includes("**CPU backend only**"));
    assert.ok(
      markdown.includes(
        "commit 0123456789ab plus uncommitted changes to src/kernel.ts",
      ),
    );
    assert.ok(markdown.includes("Noisy machine"));
    assert.ok(markdown.includes("](../bench/results/x.json)"));
    assert.ok(markdown.includes("not** end-to-end"));
    assert.ok(markdown.includes("Skipped: no GPU on this machine"));
    assert.ok(markdown.includes("skipped FFI libc calls: no libc"));
    assert.ok(markdown.includes("failed: exit 1: boom"));
    assert.ok(markdown.includes("## Deno vs Bun"));
    assert.match(markdown, /\| actor call\(\) \| (\d+\.\d+, ){3}\d+\.\d+ \|/);
    assert.ok(markdown.includes("yes (sent = processed + dead-lettered"));
    assert.ok(!markdown.includes("NaN"));
    assert.ok(!markdown.includes("undefined"));
    assert.deepEqual([...images.keys()].sort(), [
      "benchmarks-latency-bun.svg",
      "benchmarks-latency-deno.svg",
      "benchmarks-sustained.svg",
      "benchmarks-throughput.svg",
    ]);
    for (const file of images.keys()) {
      assert.ok(markdown.includes(`(img/${file})`));
    }
  });

  test("the floors table states every library figure as a ratio to its floor, with a CI and a verdict", () => {
    const results = sampleResults();
    const floors = results.floors!;
    const byId = new Map(floors.map((f) => [f.id, f]));
    // Fixture: Deno's call() at 2 µs vs a 1.6 µs ping-pong, Bun's 3 µs vs 1 µs.
    const deno = byId.get("deno:actor-call:p50")!;
    assert.ok(Math.abs(deno.ratio - 2 / 1.6) < 0.1, String(deno.ratio));
    assert.equal(deno.target?.met, true);
    assert.ok(deno.ci95.low <= deno.ratio && deno.ratio <= deno.ci95.high);
    const bun = byId.get("bun:actor-call:p50")!;
    assert.ok(Math.abs(bun.ratio - 3) < 0.3, String(bun.ratio));
    assert.equal(bun.target?.met, false);
    assert.equal(byId.get("bun:actor-call:p99")!.target?.bound, 3);
    const sink = byId.get("deno:sendbatch-sink@1024:rate")!;
    assert.ok(Math.abs(sink.ratio - 0.64) < 0.1, String(sink.ratio));
    assert.equal(sink.target?.met, true);
    const echo = byId.get("deno:sendbatch-echo@1024:rate")!;
    assert.ok(Math.abs(echo.ratio - 0.4) < 0.1, String(echo.ratio));
    assert.equal(echo.target?.met, false);
    assert.equal(byId.get("deno:sendbatch-echo@1:rate")!.target, undefined);
    assert.match(floorVerdict(echo), /^missed at \d+\.\d %$/);
    assert.match(floorVerdict(deno), /^met at 1\.\d\d×$/);

    const { markdown } = renderReport(results);
    assert.ok(
      markdown.includes("## Floors: the library against bare JavaScript"),
    );
    assert.ok(markdown.includes(CASES["floor-pingpong"].measures));
    const rows = floorRows(results);
    assert.equal(rows.length, floors.length);
    const row = rows.find((r) =>
      r[0] === "Deno" && r[1].startsWith("actor call() p50")
    )!;
    assert.match(row[4], /^1\.\d\d×$/);
    assert.match(row[5], /^\d\.\d\d× … \d\.\d\d×$/);
    assert.equal(row[6], "≤ 1.50×");
    assert.match(row[7], /^met at /);
    const missed = rows.find((r) =>
      r[0] === "Deno" && r[1].includes("echo of 1024")
    )!;
    assert.equal(missed[6], "≥ 50.0 %");
    assert.match(missed[7], /^\*\*missed at \d+\.\d %\*\*$/);
    assert.match(
      markdown,
      /Deno: `sendBatch` echo of 1024 .*Target ≥ 50\.0 %: \*\*missed\*\*/,
    );

    const lines = floorSummaryLines(results);
    assert.equal(lines.length, floors.length);
    assert.ok(
      lines.some((l) => /^Bun: actor call\(\) p50 .*: MISSED$/.test(l)),
    );
    assert.deepEqual(
      floorSummaryLines({}),
      [],
      "older results files have no floors",
    );
  });

  test("the GPU table's JSON is shown as tables, section by section", () => {
    const table = {
      card: "NVIDIA H200",
      cudaDriverVersion: 13000,
      roundTrip: {
        residentRoundTripCall: { n: 1000, p50Ns: 1650, p99Ns: 2770 },
        residentRoundTripRawQueues: { n: 1000, p50Ns: 1520, p99Ns: 2100 },
      },
      ratios: { launchPerMessageOverResidentP50: 6.25 },
      k2kOnDevice: { error: "CudaError: boom" },
      odd: [1, 2],
    };
    const { markdown } = renderReport(sampleResults({ gpuTable: table }));
    assert.ok(markdown.includes("| card | NVIDIA H200 |"));
    assert.ok(markdown.includes("| measurement | n | p50Ns | p99Ns |"));
    assert.ok(
      markdown.includes("| residentRoundTripCall | 1000 | 1650 | 2770 |"),
    );
    assert.ok(markdown.includes("| launchPerMessageOverResidentP50 | 6.250 |"));
    assert.ok(markdown.includes("| error | CudaError: boom |"));
    assert.ok(markdown.includes("Card: NVIDIA H200, driver 580.65"));
    const raw = renderReport(sampleResults({ gpuTable: [1, 2] })).markdown;
    assert.ok(raw.includes("```json"));
  });

  test("writing puts the report and its charts side by side", () => {
    const dir = mkdtempSync(join(os.tmpdir(), "rk-report-"));
    try {
      const written = writeReportFiles(sampleResults(), {
        reportPath: join(dir, "docs", "benchmarks.md"),
        resultsPath: join(dir, "bench", "results", "r.json"),
      });
      assert.equal(written[0], join(dir, "docs", "benchmarks.md"));
      assert.ok(
        existsSync(join(dir, "docs", "img", "benchmarks-throughput.svg")),
      );
      const markdown = readFileSync(written[0], "utf8");
      assert.ok(
        markdown.includes("[`bench/results/r.json`](../bench/results/r.json)"),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a written report is formatted so that the repository's format check accepts it", () => {
    const deno = resolveRuntime("deno", { root: REPO_ROOT });
    const dir = mkdtempSync(join(os.tmpdir(), "rk-report-"));
    try {
      const [path] = writeReportFiles(sampleResults(), {
        reportPath: join(dir, "benchmarks.md"),
      });
      const problem = formatReport(path);
      if (!deno.available) {
        assert.match(problem!, /no deno binary/);
        return;
      }
      assert.equal(problem, undefined);
      const check = spawnSync(deno.path, ["fmt", "--check", path], {
        encoding: "utf8",
        timeout: 60_000,
      });
      assert.equal(check.status, 0, check.stderr);
      assert.match(formatReport(join(dir, "missing.md"))!, /deno fmt exited/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("host cost of a batch send", () => {
  test("1e9 ÷ the median per-process rate, its spread and the verdict against the target", () => {
    const encode = (runtime: string, rates: number[]) =>
      ({
        runtime,
        case: "batch-encode",
        trialValues: summarizeRobust(rates),
      }) as unknown as BenchmarkResult;
    const lines = batchSendCostLines({
      benchmarks: [
        encode("deno", [80e6, 100e6, 90e6]),
        encode("bun", [20e6, 30e6, 25e6]),
        { runtime: "deno", case: "actor-call" } as unknown as BenchmarkResult,
      ],
    });
    assert.equal(lines.length, 2);
    assert.match(
      lines[0],
      /^Deno: .* 11\.1 ns per message \(processes: 10\.0–12\.5 ns, n = 3\); target ≤ 25 ns: met$/,
    );
    assert.match(lines[1], /^Bun: .* 40\.0 ns per message .*: MISSED$/);
    assert.equal(BATCH_SEND_COST_TARGET_NS, 25);
    assert.deepEqual(batchSendCostLines({ benchmarks: [] }), []);
  });
});

describe("what limits a missed floor target", () => {
  test("one paragraph per kind of figure that missed its target, none for those met or without one", () => {
    const floor = (id: string, met: boolean | undefined) => ({
      id,
      target: met === undefined ? undefined : { met },
    });
    const floors = [
      floor("deno:actor-call:p50", false),
      floor("bun:actor-call:p99", false),
      floor("deno:sendbatch-echo@1024:rate", true),
      floor("deno:sendbatch-sink@1024:rate", false),
      floor("deno:sendbatch-sink@64:rate", undefined),
    ] as unknown as Parameters<typeof floorLimitLines>[0]["floors"];
    const lines = floorLimitLines({ floors });
    assert.deepEqual(lines, [
      `- **actor-call**: ${FLOOR_LIMITS["actor-call"]}`,
      `- **sendbatch-sink**: ${FLOOR_LIMITS["sendbatch-sink"]}`,
    ]);
    assert.deepEqual(floorLimitLines({}), []);
    for (
      const kind of [
        "actor-call",
        "sendbatch-sink",
        "sendbatch-echo",
        "pipeline-k2k",
      ]
    ) {
      assert.ok(FLOOR_LIMITS[kind].length > 0, kind);
      assert.doesNotMatch(
        FLOOR_LIMITS[kind],
        /\d+(\.\d+)? ?(µs|Mmsg|%)/,
        "no figure typed by hand",
      );
    }
  });
});

describe("the WaveSim section", () => {
  test("medians over the processes, the ratio, the largest difference, and what the figure compares with", () => {
    const run = (actors: number, reference: number, difference = 0) => ({
      grid: "1024x1024",
      tiles: 4,
      backend: "cpu",
      steps: 300,
      actorsMcells: actors,
      referenceMcells: reference,
      ratio: actors / reference,
      maxDifference: difference,
      machine: "Deno, 2 CPUs",
    });
    const lines = waveSimSection({
      wavesim: [
        {
          runtime: "deno",
          runs: [run(500, 400), run(560, 400, 1e-9), run(600, 420)],
          failures: [],
        },
        { runtime: "bun", runs: [], failures: ["exit 1: boom"] },
      ],
    });
    const text = lines.join("\n");
    assert.match(text, /^## WaveSim/);
    assert.match(
      text,
      /\| Deno +\| 1024x1024, 4 tiles, 300 steps \| cpu +\| 3 +\| 560\.0 Mcells\/s \| 400\.0 Mcells\/s \| 1\.40× +\| 1e-9 /,
    );
    assert.match(text, /\| Bun .*exit 1: boom/);
    assert.match(
      text,
      /not comparable with the specification's 78,000 Mcells\/s/,
    );
    assert.deepEqual(waveSimSection({}), []);
    assert.deepEqual(waveSimSection({ wavesim: [] }), []);
  });
});

describe("the cluster section", () => {
  test("one column per runtime, a line saying why a runtime has no figures", () => {
    const lines = clusterSection({
      cluster: [
        {
          runtime: "deno",
          result: {
            runtime: "Deno 2.9.6",
            runs: 5,
            figures: {
              "local call round trip (µs)": 0.93,
              "remote call round trip (µs)": 285.2,
            },
          },
        },
        { runtime: "bun", reason: "nats-server is not installed" },
      ],
    });
    const text = lines.join("\n");
    assert.match(text, /\| remote call round trip \(µs\) +\| 285 +\| — +\|/);
    assert.match(text, /\| local call round trip \(µs\) +\| 0\.9 +\| — +\|/);
    assert.match(text, /- Deno: Deno 2\.9\.6, median of 5 runs\./);
    assert.match(text, /- Bun: not run: nats-server is not installed\./);
    assert.deepEqual(clusterSection({}), []);
  });
});
