import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import {
  type CaseName,
  type ChildResult,
  FLOOR_MIN_MESSAGES,
} from "../bench/harness/catalog.ts";
import { REPO_ROOT } from "../bench/harness/results.ts";
import { resolveRuntime } from "../bench/harness/spawn.ts";
import {
  aggregate,
  benchmarkId,
  buildComparisons,
  buildFloorComparisons,
  compare,
  defaultSuiteConfig,
  FLOOR_TARGET_BATCH,
  percentileCurve,
  planJobs,
  runGpuSection,
  seededRandom,
  shuffled,
} from "../bench/harness/suite.ts";

function child(samples: number[], batch?: number): ChildResult {
  return {
    case: "actor-call",
    runtime: "deno",
    version: "1",
    samples,
    opsPerSample: 1,
    warmup: 0,
    batch,
  };
}

function runs(values: number[][], batch?: number) {
  return values.map((samples, trial) => ({
    trial,
    result: child(samples, batch),
    wallMs: 10,
  }));
}

describe("planning", () => {
  test("every latency case once and every throughput case per batch size, per runtime", () => {
    const config = { ...defaultSuiteConfig(), batchSizes: [1, 64] };
    const jobs = planJobs(config, ["deno", "bun"]);
    // 5 latency cases + the unbatched floor ring and batch-encode + 4 batched
    // cases × 2 sizes, per runtime; sustained runs separately.
    assert.equal(jobs.length, 2 * (5 + 2 + 4 * 2));
    assert.ok(!jobs.some((j) => j.case === "sustained"));
    const batched = jobs.find((j) =>
      j.case === "sendbatch-echo" && j.batch === 64 && j.runtime === "bun"
    )!;
    assert.deepEqual(batched.args.slice(0, 5), [
      "child",
      "--case",
      "sendbatch-echo",
      "--batch",
      "64",
    ]);
    const latency = jobs.find((j) => j.case === "actor-call")!;
    assert.ok(latency.args.includes("--samples"));
    assert.equal(latency.batch, undefined);
  });

  test("the floors are planned like the cases they are compared with", () => {
    const config = {
      ...defaultSuiteConfig(),
      batchSizes: [1, 1024],
      cases: ["floor-pingpong", "floor-ring", "floor-echo"] as CaseName[],
    };
    const jobs = planJobs(config, ["deno"]);
    assert.deepEqual(jobs.map((j) => benchmarkId(j.runtime, j.case, j.batch)), [
      "deno/floor-pingpong",
      "deno/floor-ring",
      "deno/floor-echo@1",
      "deno/floor-echo@1024",
    ]);
    const ring = jobs.find((j) => j.case === "floor-ring")!;
    assert.ok(!ring.args.includes("--batch"));
    const messages = (args: string[]) =>
      Number(args[args.indexOf("--messages") + 1]);
    assert.equal(messages(ring.args), FLOOR_MIN_MESSAGES);
    assert.equal(
      messages(
        planJobs({ ...config, cases: ["sendbatch-sink"] }, ["deno"])[0].args,
      ),
      config.messagesPerRound,
    );
  });

  test("only the requested cases are planned", () => {
    const config = {
      ...defaultSuiteConfig(),
      cases: ["channel-local" as const],
    };
    assert.deepEqual(
      planJobs(config, ["bun"]).map((j) =>
        benchmarkId(j.runtime, j.case, j.batch)
      ),
      [
        "bun/channel-local",
      ],
    );
  });

  test("the job order is a seeded permutation", () => {
    const items = Array.from({ length: 20 }, (_, i) => i);
    const a = shuffled(items, 7);
    assert.deepEqual(shuffled(items, 7), a);
    assert.notDeepEqual(shuffled(items, 8), a);
    assert.deepEqual([...a].sort((x, y) => x - y), items);
    const random = seededRandom(3);
    for (let i = 0; i < 100; i++) {
      const r = random();
      assert.ok(r >= 0 && r < 1);
    }
  });

  test("quick settings are smaller than the full suite", () => {
    const full = defaultSuiteConfig();
    const quick = defaultSuiteConfig({ quick: true });
    assert.ok(
      quick.trials < full.trials &&
        quick.sustainedSeconds < full.sustainedSeconds,
    );
    assert.equal(full.sustainedSeconds, 60);
    assert.equal(quick.partial, true);
    assert.equal(full.partial, false);
  });
});

describe("aggregation", () => {
  test("the percentile curve covers only what the sample size resolves", () => {
    const samples = Array.from({ length: 1000 }, (_, i) => i + 1);
    const curve = percentileCurve(samples);
    const ps = curve.map(([p]) => p);
    assert.ok(ps.includes(99.9));
    assert.ok(!ps.includes(99.95));
    assert.deepEqual(curve[0], [0, 1]);
    assert.deepEqual(curve[curve.length - 1], [100, 1000]);
    assert.deepEqual(percentileCurve([]), []);
  });

  test("a benchmark pools samples and keeps one median per process", () => {
    const result = aggregate(
      { runtime: "deno", case: "actor-call" },
      runs([[1, 2, 3], [4, 5, 6, 100]]),
      ["trial 2: x"],
    );
    assert.equal(result.id, "deno/actor-call");
    assert.equal(result.samples!.all.n, 7);
    assert.deepEqual(result.trials.map((t) => t.value), [2, 5.5]);
    assert.equal(result.trialValues!.all.mean, 3.75);
    assert.equal(result.unit, "µs");
    assert.deepEqual(result.failures, ["trial 2: x"]);
  });

  test("a benchmark whose trials all failed has no figures", () => {
    const result = aggregate(
      { runtime: "bun", case: "sendbatch-sink", batch: 8 },
      [],
      ["trial 0: boom"],
    );
    assert.equal(result.id, "bun/sendbatch-sink@8");
    assert.equal(result.samples, null);
    assert.equal(result.trialValues, null);
  });
});

describe("comparisons", () => {
  const fast = aggregate(
    { runtime: "deno", case: "actor-call" },
    runs([[2], [2.2], [1.8], [2]]),
    [],
  );
  const slow = aggregate(
    { runtime: "deno", case: "worker-postmessage" },
    runs([[50], [55], [45], [50]]),
    [],
  );

  test("latency: the ratio says how many times faster A is", () => {
    const c = compare("x", "x", fast, slow, { minRatio: 20, source: "test" })!;
    assert.equal(c.ratio, 25);
    assert.equal(c.target!.met, true);
    assert.ok(c.welch!.pValue < 0.001);
    assert.ok(c.cohensD! < 0);
    assert.equal(c.effect, "large");
    const reverse = compare("y", "y", slow, fast, {
      minRatio: 20,
      source: "test",
    })!;
    assert.equal(reverse.ratio, 1 / 25);
    assert.equal(reverse.target!.met, false);
  });

  test("a disturbed process moves the ratio of means, not the ratio of medians", () => {
    const disturbed = aggregate(
      { runtime: "deno", case: "actor-call" },
      runs([[2], [2], [2], [300]]),
      [],
    );
    const c = compare("d", "d", disturbed, slow, {
      minRatio: 20,
      source: "test",
    })!;
    assert.equal(c.ratio, 25);
    assert.equal(c.ratioOfMeans, 50 / 76.5);
    assert.equal(c.target!.met, true, "targets are judged on the medians");
  });

  test("throughput: the ratio is A's rate over B's", () => {
    const big = aggregate(
      { runtime: "deno", case: "sendbatch-sink", batch: 64 },
      runs([[4e6], [4e6]], 64),
      [],
    );
    const small = aggregate(
      { runtime: "deno", case: "sendbatch-sink", batch: 1 },
      runs([[1e6], [1e6]], 1),
      [],
    );
    assert.equal(compare("t", "t", big, small)!.ratio, 4);
  });

  test("one trial gives a ratio but no test; none gives no comparison", () => {
    const one = aggregate(
      { runtime: "deno", case: "actor-call" },
      runs([[2]]),
      [],
    );
    const c = compare("x", "x", one, slow)!;
    assert.equal(c.welch, null);
    assert.equal(c.cohensD, null);
    assert.equal(c.effect, "untested");
    const none = aggregate({ runtime: "deno", case: "actor-call" }, [], []);
    assert.equal(compare("x", "x", none, slow), undefined);
  });

  test("the suite compares the actor with every baseline, batch extremes, and Deno with Bun", () => {
    const bunFast = aggregate(
      { runtime: "bun", case: "actor-call" },
      runs([[3], [3]]),
      [],
    );
    const b1 = aggregate(
      { runtime: "deno", case: "sendbatch-echo", batch: 1 },
      runs([[1e5], [1e5]], 1),
      [],
    );
    const b8 = aggregate(
      { runtime: "deno", case: "sendbatch-echo", batch: 8 },
      runs([[2e5], [2e5]], 8),
      [],
    );
    const b64 = aggregate(
      { runtime: "deno", case: "sendbatch-echo", batch: 64 },
      runs([[4e5], [4e5]], 64),
      [],
    );
    const ids = buildComparisons([fast, slow, bunFast, b1, b8, b64]).map((c) =>
      c.id
    );
    assert.deepEqual(ids, [
      "deno:actor-call-vs-worker-postmessage",
      "deno:sendbatch-echo-batch-64-vs-1",
      "deno-vs-bun:actor-call",
    ]);
    const target = buildComparisons([fast, slow])[0].target!;
    assert.equal(target.minRatio, 20);
  });
});

describe("GPU section", () => {
  const deno = resolveRuntime("deno", { root: REPO_ROOT });

  function withTable(
    source: string | undefined,
    body: (root: string) => Promise<void>,
  ): Promise<void> {
    const root = mkdtempSync(join(os.tmpdir(), "rk-gpu-"));
    mkdirSync(join(root, "bench"));
    if (source !== undefined) {
      writeFileSync(join(root, "bench", "gpu_table.ts"), source);
    }
    return body(root).finally(() =>
      rmSync(root, { recursive: true, force: true })
    );
  }

  const config = (root: string) => ({ ...defaultSuiteConfig(), root });

  test("without a GPU, or when not asked, it is skipped with the reason", async () => {
    const none = await runGpuSection(
      defaultSuiteConfig(),
      false,
      "no nvidia-smi on this machine",
      deno,
    );
    assert.deepEqual(none, {
      status: "skipped",
      reason: "no GPU on this machine (no nvidia-smi on this machine)",
    });
    const off = await runGpuSection(
      { ...defaultSuiteConfig(), gpu: false },
      true,
      "nvidia-smi",
      deno,
    );
    assert.equal(off.status, "skipped");
    await withTable(undefined, async (root) => {
      const missing = await runGpuSection(
        config(root),
        true,
        "nvidia-smi",
        deno,
      );
      assert.match(missing.reason, /gpu_table.ts is not in this checkout/);
    });
  });

  test("the table's JSON is kept, also when a section failed", {
    skip: !deno.available,
  }, async () => {
    const writes = (code: number) =>
      `import { writeFileSync } from "node:fs";
       import process from "node:process";
       writeFileSync(process.argv[process.argv.indexOf("--out") + 1], JSON.stringify({ card: "Test GPU" }));
       process.exit(${code});`;
    await withTable(writes(0), async (root) => {
      const ran = await runGpuSection(config(root), true, "nvidia-smi", deno);
      assert.equal(ran.status, "ran");
      assert.deepEqual(ran.table, { card: "Test GPU" });
    });
    await withTable(writes(1), async (root) => {
      const partial = await runGpuSection(
        config(root),
        true,
        "nvidia-smi",
        deno,
      );
      assert.equal(partial.status, "ran");
      assert.match(partial.reason, /exited with 1/);
    });
  });

  test("a table that measured nothing is skipped; one that crashed failed", {
    skip: !deno.available,
  }, async () => {
    await withTable(
      `console.log("gpu_table: no usable GPU, nothing measured (no libcuda)");`,
      async (root) => {
        const skipped = await runGpuSection(
          config(root),
          true,
          "nvidia-smi",
          deno,
        );
        assert.equal(skipped.status, "skipped");
        assert.match(skipped.reason, /no usable GPU/);
      },
    );
    await withTable(`console.error("broken"); Deno.exit(2);`, async (root) => {
      const failed = await runGpuSection(
        config(root),
        true,
        "nvidia-smi",
        deno,
      );
      assert.equal(failed.status, "failed");
      assert.match(failed.reason, /exit 2: broken/);
    });
  });
});

describe("floors", () => {
  const bench = (
    name: CaseName,
    values: number[][],
    batch?: number,
    runtime: "deno" | "bun" = "deno",
  ) => aggregate({ runtime, case: name, batch }, runs(values, batch), []);

  test("call() p50 and p99 are stated as multiples of the ping-pong's, with targets", () => {
    const floors = buildFloorComparisons([
      // Per-process p99 of 100 samples is the 99th value.
      bench("actor-call", [
        Array.from({ length: 100 }, (_, i) => (i < 99 ? 2 : 30)),
        Array.from({ length: 100 }, (_, i) => (i < 99 ? 2 : 30)),
      ]),
      bench("floor-pingpong", [
        Array.from({ length: 100 }, (_, i) => (i < 99 ? 1 : 5)),
        Array.from({ length: 100 }, (_, i) => (i < 99 ? 1 : 5)),
      ]),
    ]);
    assert.deepEqual(floors.map((f) => f.id), [
      "deno:actor-call:p50",
      "deno:actor-call:p99",
    ]);
    const [p50, p99] = floors;
    assert.equal(p50.ratio, 2);
    assert.deepEqual(p50.target?.met, false, "2× > 1.5×");
    assert.equal(p50.target?.bound, 1.5);
    assert.ok(p99.ratio > 2 && p99.ratio < 6, String(p99.ratio));
    assert.equal(p99.target?.direction, "at most");
    assert.equal(p99.target?.bound, 3);
    assert.equal(p50.ci95.low, 2, "identical processes: a point interval");
    assert.equal(p50.ci95.high, 2);
  });

  test("one-way and echo throughput are shares of the bare ring's, judged at batch 1024", () => {
    const floors = buildFloorComparisons([
      bench("sendbatch-sink", [[6e6], [6e6], [6e6]], FLOOR_TARGET_BATCH),
      bench("sendbatch-sink", [[1e6], [1e6], [1e6]], 1),
      bench("floor-ring", [[1e7], [1.2e7], [0.8e7]]),
      bench("sendbatch-echo", [[4e6], [4e6], [4e6]], FLOOR_TARGET_BATCH),
      bench("floor-echo", [[1e7], [1e7], [1e7]], FLOOR_TARGET_BATCH),
      bench("sendbatch-echo", [[1e5], [1e5], [1e5]], 1),
      bench("floor-ring", [[1e7]], undefined, "bun"),
    ]);
    const byId = new Map(floors.map((f) => [f.id, f]));
    assert.deepEqual([...byId.keys()], [
      "deno:sendbatch-sink@1:rate",
      "deno:sendbatch-sink@1024:rate",
      "deno:sendbatch-echo@1024:rate",
    ], "no floor-echo@1 measured: no ratio for echo batch 1");
    const sink = byId.get("deno:sendbatch-sink@1024:rate")!;
    assert.equal(sink.ratio, 0.6);
    assert.equal(sink.target?.met, true);
    assert.equal(sink.target?.direction, "at least");
    assert.ok(sink.ci95.low <= 0.6 && sink.ci95.high >= 0.6);
    assert.ok(sink.ci95.low >= 0.5 && sink.ci95.high <= 0.75);
    assert.equal(byId.get("deno:sendbatch-sink@1:rate")!.target, undefined);
    const echo = byId.get("deno:sendbatch-echo@1024:rate")!;
    assert.equal(echo.ratio, 0.4);
    assert.equal(echo.target?.met, false);
  });

  test("a floor with one process gives a ratio without an interval; a missing one gives none", () => {
    const [one] = buildFloorComparisons([
      bench("actor-call", [[3]]),
      bench("floor-pingpong", [[2]]),
    ]);
    assert.equal(one.ratio, 1.5);
    assert.equal(one.target?.met, true);
    assert.ok(Number.isNaN(one.ci95.low));
    assert.deepEqual(buildFloorComparisons([bench("actor-call", [[3]])]), []);
  });
});
