import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import process from "node:process";
import { RingKernelError, TimeoutError } from "../src/errors.ts";
import { CHILD_MARKER } from "../bench/harness/catalog.ts";
import { REPO_ROOT } from "../bench/harness/results.ts";
import {
  childCommand,
  findOnPath,
  parseChildOutput,
  parseVersion,
  resolveRuntime,
  runChild,
  runProcess,
  runtimeCandidates,
  type RuntimeName,
} from "../bench/harness/spawn.ts";

const runtime: RuntimeName = process.versions.bun !== undefined
  ? "bun"
  : "deno";

describe("runtime binaries", () => {
  test("versions are read from each runtime's --version output", () => {
    assert.equal(
      parseVersion(
        "deno",
        "deno 2.9.6 (stable, release, x86_64-unknown-linux-gnu)\nv8 15.0",
      ),
      "2.9.6",
    );
    assert.equal(parseVersion("bun", "1.4.5\n"), "1.4.5");
    assert.equal(parseVersion("deno", "not a version"), undefined);
  });

  test("the child command line runs the entry under each runtime", () => {
    assert.deepEqual(
      childCommand({ name: "deno", path: "/x/deno" }, "bench/e2e.ts", [
        "child",
      ]),
      {
        command: "/x/deno",
        args: ["run", "-A", "bench/e2e.ts", "child"],
      },
    );
    assert.deepEqual(
      childCommand({ name: "bun", path: "/x/bun" }, "bench/e2e.ts", ["child"]),
      {
        command: "/x/bun",
        args: ["bench/e2e.ts", "child"],
      },
    );
  });

  test("PATH lookup finds executables only", () => {
    const dir = mkdtempSync(join(os.tmpdir(), "rk-path-"));
    try {
      writeFileSync(join(dir, "tool"), "#!/bin/sh\n");
      chmodSync(join(dir, "tool"), 0o755);
      writeFileSync(join(dir, "plain"), "");
      assert.equal(findOnPath("tool", dir), join(dir, "tool"));
      assert.equal(findOnPath("plain", dir), undefined);
      assert.equal(findOnPath("missing", dir), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the pinned runtimes are preferred, then the repository's, then the running one, then PATH", () => {
    const list = runtimeCandidates(runtime, {
      root: "/repo",
      path: "/explicit/bin",
    });
    assert.deepEqual(list.slice(0, 3), [
      "/explicit/bin",
      join("/repo", "tools", "node_modules", ".bin", runtime),
      join("/repo", "node_modules", ".bin", runtime),
    ]);
    assert.equal(list[3], process.execPath);
    const other = runtime === "deno" ? "bun" : "deno";
    assert.ok(
      !runtimeCandidates(other, { root: "/repo" }).includes(process.execPath),
    );
  });

  test("the running runtime resolves with its version; a bad path is reported, not thrown", () => {
    const found = resolveRuntime(runtime, {
      root: REPO_ROOT,
      path: process.execPath,
    });
    assert.equal(found.available, true);
    assert.match(found.version, /^\d+\.\d+\.\d+/);
    const missing = resolveRuntime(runtime, {
      root: REPO_ROOT,
      path: "/nonexistent/runtime",
    });
    assert.equal(missing.available, false);
    assert.match(missing.reason!, /--version failed/);
  });
});

describe("child output", () => {
  test("the result line is found among other output", () => {
    const line = JSON.stringify({
      case: "channel-local",
      samples: [1, 2],
      runtime: "deno",
    });
    const parsed = parseChildOutput(
      `noise\n${CHILD_MARKER}${line}\nmore noise\n`,
    );
    assert.deepEqual(parsed.samples, [1, 2]);
  });

  test("missing or malformed results throw", () => {
    assert.throws(() => parseChildOutput("nothing here\n"), RingKernelError);
    assert.throws(
      () => parseChildOutput(`${CHILD_MARKER}{"case":"x"}\n`),
      RingKernelError,
    );
  });
});

describe("processes", () => {
  test("runProcess collects output and the exit code", async () => {
    const outcome = await runProcess("sh", [
      "-c",
      "echo out; echo err >&2; exit 3",
    ], {
      cwd: REPO_ROOT,
      timeoutMs: 20_000,
    });
    assert.equal(outcome.code, 3);
    assert.equal(outcome.stdout, "out\n");
    assert.equal(outcome.stderr, "err\n");
    assert.equal(outcome.timedOut, false);
  });

  test("runProcess kills a process at its deadline", async () => {
    const outcome = await runProcess("sleep", ["30"], {
      cwd: REPO_ROOT,
      timeoutMs: 200,
    });
    assert.equal(outcome.timedOut, true);
    assert.equal(outcome.signal, "SIGKILL");
  });

  test("a spawn failure is an outcome, not a crash", async () => {
    const outcome = await runProcess("/nonexistent/binary", [], {
      cwd: REPO_ROOT,
      timeoutMs: 5_000,
    });
    assert.notEqual(outcome.code, 0);
    assert.match(outcome.stderr, /spawn failed/);
  });

  test("runChild runs a case in a fresh process and returns its samples", async () => {
    const binary = resolveRuntime(runtime, {
      root: REPO_ROOT,
      path: process.execPath,
    });
    const run = await runChild(binary, "bench/e2e.ts", [
      "child",
      "--case",
      "channel-local",
      "--samples",
      "5",
      "--warmup",
      "2",
    ], { cwd: REPO_ROOT, timeoutMs: 60_000 });
    assert.equal(run.result.case, "channel-local");
    assert.equal(run.result.runtime, runtime);
    assert.equal(run.result.samples.length, 5);
    assert.ok(run.result.samples.every((s) => s > 0));
  });

  test("runChild reports a failing child with its error", async () => {
    const binary = resolveRuntime(runtime, {
      root: REPO_ROOT,
      path: process.execPath,
    });
    await assert.rejects(
      runChild(binary, "bench/e2e.ts", ["child", "--case", "no-such-case"], {
        cwd: REPO_ROOT,
        timeoutMs: 60_000,
      }),
      (error: Error) =>
        error instanceof RingKernelError && /is not a case/.test(error.message),
    );
  });

  test("runChild throws a TimeoutError when the child passes its deadline", async () => {
    const binary = resolveRuntime(runtime, {
      root: REPO_ROOT,
      path: process.execPath,
    });
    await assert.rejects(
      runChild(binary, "bench/e2e.ts", [
        "child",
        "--case",
        "sustained",
        "--batch",
        "8",
        "--seconds",
        "30",
      ], {
        cwd: REPO_ROOT,
        timeoutMs: 300,
      }),
      TimeoutError,
    );
  });
});
