// The model-based test of the runtime API (tests/model/runtime_model.ts): a
// fixed-seed sample in this process, and one in a child process that must
// then exit by itself (no Worker or timer left behind).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { checkRuntimeModel } from "./model/runtime_model.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

describe("the runtime against its model", () => {
  test(
    "random concurrent sequences keep every property (fixed seed)",
    { timeout: 300_000 },
    async () => {
      await checkRuntimeModel({ seed: 20261205, runs: 60, maxCommands: 30 });
    },
  );

  test("after a sample, the process exits by itself", {
    timeout: 180_000,
  }, () => {
    const deno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
    const script = "scripts/model_check.ts";
    const args = ["--seed", "7", "--runs", "3", "--max-commands", "15"];
    const result = spawnSync(
      process.execPath,
      deno ? ["run", "-A", script, ...args] : [script, ...args],
      { cwd: ROOT, encoding: "utf8", timeout: 120_000 },
    );
    assert.equal(
      result.signal,
      null,
      `the process did not exit by itself: ${result.stdout}${result.stderr}`,
    );
    assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /every property held/);
  });
});
