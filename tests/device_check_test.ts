// The staged GPU check (scripts/device_check.sh): its plan fits the lease
// (every stage under `timeout`, the limits summing to at most 240 s, so a
// rerun after a fix still fits), it runs every GPU test file and nothing
// CPU-only, and the probe and facts scripts check their arguments. The full
// rehearsal on the CPU emulator takes about a minute: it runs with
// RINGKERNEL_REHEARSE=1.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  DEFAULT_RELEASE_MS,
  parseProbeArgs,
  PROBE_CALL_DESCRIPTIONS,
  PROBE_CALLS,
  ProbeUsageError,
} from "../scripts/device_probe.ts";
import {
  loadingModeName,
  parseFactsArgs,
  parseNvidiaSmiCsv,
} from "../scripts/device_facts.ts";
import { GPU_TEST_FILES as EMULATED_TEST_FILES } from "../scripts/test_emulated.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const SCRIPT = join(ROOT, "scripts", "device_check.sh");

/** The GPU lease's share one check may take: half of it, so a rerun fits. */
const CHECK_BUDGET_S = 240;

interface Plan {
  mode: string;
  scale: number;
  budgetSeconds: number;
  stages: { stage: string; limitSeconds: number }[];
  probeCallSeconds: number;
  probePatienceMs: number;
  probeModes: string[];
  testFileSeconds: number;
  testFiles: string[];
}

/** The environment without any override of the check's limits. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^RINGKERNEL_(CHECK|PROBE|TEST)_/.test(key)) env[key] = value;
  }
  return { ...env, ...extra };
}

const bash = spawnSync("bash", ["--version"], { encoding: "utf8" });
const noBash = bash.status === 0 ? undefined : "no bash on this machine";

function plan(args: string[] = [], extra: Record<string, string> = {}): Plan {
  const result = spawnSync("bash", [SCRIPT, "--plan", ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env: cleanEnv(extra),
  });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as Plan;
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
const limitOf = (p: Plan, stage: string) =>
  p.stages.find((s) => s.stage === stage)?.limitSeconds ?? NaN;

describe("the device check's plan", () => {
  test("the script's plan lines sum to at most 240 s", () => {
    const text = readFileSync(SCRIPT, "utf8");
    const lines = [...text.matchAll(/^plan (\S+) (RINGKERNEL_\w+) (\d+)$/gm)];
    assert.deepEqual(
      lines.map((m) => m[1]),
      ["runtime", "facts", "probe", "tests", "bench-quick", "bench"],
    );
    const total = sum(lines.map((m) => Number(m[3])));
    assert.ok(total <= CHECK_BUDGET_S, `the stages sum to ${total} s`);
    const budget = /^knob RINGKERNEL_CHECK_BUDGET_S (\d+) scaled/m.exec(text);
    assert.ok(budget, "the script has a budget knob");
    assert.ok(Number(budget[1]) <= CHECK_BUDGET_S);
    // Every stage and every process in it runs under timeout.
    assert.match(text, /timeout -k 2 "\$\(seconds_of "\$limit_ms"\)" "\$@"/);
  });

  test("on a GPU: each stage within its share, the whole within 240 s", {
    skip: noBash,
  }, () => {
    const p = plan();
    assert.equal(p.mode, "gpu");
    assert.equal(p.scale, 1);
    assert.ok(p.budgetSeconds <= CHECK_BUDGET_S);
    const total = sum(p.stages.map((s) => s.limitSeconds));
    assert.ok(total <= p.budgetSeconds, `${total} s > ${p.budgetSeconds} s`);
    assert.ok(limitOf(p, "facts") <= 20);
    assert.ok(limitOf(p, "probe") <= 60);
    assert.ok(limitOf(p, "tests") <= 120);
    assert.ok(limitOf(p, "bench-quick") + limitOf(p, "bench") <= 60);
    // One probe process: its patience and the wait after the kernel's exit
    // fit inside its own limit, with room to start.
    assert.ok(
      p.probePatienceMs + DEFAULT_RELEASE_MS + 2000 <=
        p.probeCallSeconds * 1000,
    );
    assert.ok(p.probeCallSeconds <= limitOf(p, "probe"));
    assert.deepEqual(p.probeModes, ["LAZY", "EAGER"]);
    assert.ok(p.testFileSeconds <= limitOf(p, "tests"));
  });

  test("the rehearsal keeps the stages and scales the limits", {
    skip: noBash,
  }, () => {
    const gpu = plan();
    const rehearsal = plan(["--rehearse"]);
    assert.equal(rehearsal.mode, "rehearsal");
    assert.deepEqual(
      rehearsal.stages.map((s) => s.stage),
      gpu.stages.map((s) => s.stage),
    );
    assert.deepEqual(rehearsal.testFiles, gpu.testFiles);
    for (const stage of gpu.stages) {
      assert.equal(
        limitOf(rehearsal, stage.stage),
        stage.limitSeconds * rehearsal.scale,
      );
    }
  });

  test("each limit can be overridden by its variable", { skip: noBash }, () => {
    const p = plan([], {
      RINGKERNEL_CHECK_PROBE_S: "7",
      RINGKERNEL_CHECK_BUDGET_S: "100",
      RINGKERNEL_TEST_FILE_S: "9",
    });
    assert.equal(limitOf(p, "probe"), 7);
    assert.equal(p.budgetSeconds, 100);
    assert.equal(p.testFileSeconds, 9);
    assert.equal(limitOf(p, "facts"), limitOf(plan(), "facts"));
  });

  test(
    "every GPU test file runs, and nothing CPU-only",
    { skip: noBash },
    () => {
      const { testFiles } = plan();
      const gpuFiles = readdirSync(join(ROOT, "tests"))
        .filter((name) => name.endsWith("_gpu_test.ts"))
        .map((name) => `tests/${name}`);
      for (const file of gpuFiles) {
        assert.ok(
          testFiles.includes(file),
          `${file} is not in the device check`,
        );
      }
      for (const file of testFiles) {
        assert.ok(
          file.endsWith("_gpu_test.ts") || EMULATED_TEST_FILES.includes(file),
          `${file} is neither a GPU test file nor run on the emulator`,
        );
        assert.notEqual(file, "tests/emulator_test.ts");
      }
      assert.equal(new Set(testFiles).size, testFiles.length);
    },
  );

  test("the script is valid bash", { skip: noBash }, () => {
    for (
      const script of ["device_check.sh", "device_prepare.sh"]
    ) {
      const result = spawnSync("bash", ["-n", join(ROOT, "scripts", script)], {
        encoding: "utf8",
      });
      assert.equal(result.status, 0, `${script}: ${result.stderr}`);
    }
  });

  test("an unknown argument is refused", { skip: noBash }, () => {
    const result = spawnSync("bash", [SCRIPT, "--bogus"], {
      cwd: ROOT,
      encoding: "utf8",
      env: cleanEnv(),
    });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /unknown argument --bogus/);
  });
});

describe("scripts/device_probe.ts arguments", () => {
  test("one known call, with optional output and timings", () => {
    assert.deepEqual(parseProbeArgs(["--call", "first-launch"]), {
      call: "first-launch",
      list: false,
      out: undefined,
      patienceMs: 3000,
      releaseMs: DEFAULT_RELEASE_MS,
    });
    const options = parseProbeArgs([
      "--call=unload",
      "--out",
      "/tmp/p.json",
      "--patience-ms",
      "500",
      "--release-ms",
      "700",
    ]);
    assert.equal(options.call, "unload");
    assert.equal(options.out, "/tmp/p.json");
    assert.equal(options.patienceMs, 500);
    assert.equal(options.releaseMs, 700);
    assert.deepEqual(parseProbeArgs(["--list"]).list, true);
  });

  test("every call is described", () => {
    assert.deepEqual(
      Object.keys(PROBE_CALL_DESCRIPTIONS).sort(),
      [...PROBE_CALLS].sort(),
    );
    assert.equal(PROBE_CALLS[0], "first-launch");
  });

  test("bad command lines are usage errors", () => {
    const bad: [string[], RegExp][] = [
      [[], /--call is required/],
      [["--call", "cuMemFree"], /unknown call "cuMemFree"/],
      [["--call", "first-fetch", "extra"], /positional|Unexpected argument/i],
      [["--call", "first-fetch", "--nope"], /Unknown option '--nope'/],
      [["--call"], /argument missing|requires|--call/i],
      [["--call", "unload", "--patience-ms", "0"], /--patience-ms needs/],
      [["--call", "unload", "--patience-ms", "1.5"], /--patience-ms needs/],
      [["--call", "unload", "--release-ms", "soon"], /--release-ms needs/],
      [["--call", "unload", "--out", ""], /--out needs a path/],
      [["--list", "--call", "unload"], /--list takes no --call/],
    ];
    for (const [args, message] of bad) {
      assert.throws(
        () => parseProbeArgs(args),
        (error: unknown) =>
          error instanceof ProbeUsageError && message.test(error.message),
        JSON.stringify(args),
      );
    }
  });
});

describe("scripts/device_facts.ts helpers", () => {
  test("nvidia-smi CSV, loading modes, arguments", () => {
    assert.deepEqual(
      parseNvidiaSmiCsv(
        "NVIDIA H200, 580.65.06, 00000000:19:00.0, 143771 MiB\n\n",
        ["name", "driver_version", "pci.bus_id", "memory.total"],
      ),
      [{
        name: "NVIDIA H200",
        driver_version: "580.65.06",
        "pci.bus_id": "00000000:19:00.0",
        "memory.total": "143771 MiB",
      }],
    );
    assert.equal(loadingModeName(1), "EAGER");
    assert.equal(loadingModeName(2), "LAZY");
    assert.equal(loadingModeName(7), "unknown (7)");
    assert.deepEqual(parseFactsArgs(["--out", "f.json"]), { out: "f.json" });
    assert.throws(() => parseFactsArgs(["f.json"]));
    assert.throws(() => parseFactsArgs(["--out", ""]));
  });
});

const rehearse = process.env.RINGKERNEL_REHEARSE === "1";
const rehearsalSkip = noBash ??
  (rehearse
    ? undefined
    : "set RINGKERNEL_REHEARSE=1 to run the rehearsal (about a minute, needs g++ and .device/ from scripts/device_prepare.sh)");
if (rehearsalSkip) {
  console.log(`device check rehearsal skipped: ${rehearsalSkip}`);
}

test("the rehearsal on the CPU emulator passes every stage", {
  skip: rehearsalSkip,
  timeout: 20 * 60_000,
}, () => {
  assert.ok(
    existsSync(join(ROOT, ".device", "deno_dir")),
    "no .device/deno_dir: run scripts/device_prepare.sh first",
  );
  const out = mkdtempSync(join(tmpdir(), "rk-rehearsal-"));
  try {
    const result = spawnSync("bash", [SCRIPT, "--rehearse"], {
      cwd: ROOT,
      encoding: "utf8",
      env: cleanEnv({ OUT: out }),
      timeout: 19 * 60_000,
    });
    assert.equal(result.status, 0, result.stdout.slice(-4000));
    const files = readdirSync(out);
    assert.ok(files.length <= 8, `${files.length} files come back at most 8`);
    const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
    assert.equal(summary.finished, true);
    const stages = summary.stages as { stage: string; status: string }[];
    for (const name of ["facts", "probe", "tests", "bench-quick", "bench"]) {
      assert.equal(
        stages.find((s) => s.stage === name)?.status,
        "ok",
        `stage ${name}`,
      );
    }
    const facts = JSON.parse(readFileSync(join(out, "facts.json"), "utf8"));
    assert.equal(facts.emulated, true);
    const probes = readFileSync(join(out, "probe.jsonl"), "utf8").trim()
      .split("\n").map((line) => JSON.parse(line));
    assert.equal(probes.length, PROBE_CALLS.length * 2);
    for (const probe of probes) {
      assert.equal(probe.status, "ok", JSON.stringify(probe));
      assert.equal(probe.record.requestedMode, probe.mode);
    }
    // The control waits for the resident kernel in both modes.
    assert.deepEqual(
      probes.filter((p) => p.call === "ctx-synchronize").map((p) => p.verdict),
      ["waited", "waited"],
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
