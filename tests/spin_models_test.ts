import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const RUNNER = fileURLToPath(
  new URL("../verification/run.sh", import.meta.url),
);
const RUN_TIMEOUT_MS = 600_000;

function missingTool(): string | undefined {
  for (const [tool, args] of [["spin", ["-V"]], ["gcc", ["--version"]]]) {
    const probe = spawnSync(tool as string, args as string[], {
      encoding: "utf8",
      timeout: 10_000,
    });
    if (probe.error !== undefined || probe.status !== 0) {
      return `${tool} is not installed (apt-get install -y spin gcc)`;
    }
  }
  return undefined;
}

const missing = missingTool();
if (missing !== undefined) {
  console.log(`spin_models_test: skipped: ${missing}`);
}

function runner(args: string[], env: Record<string, string> = {}) {
  return spawnSync("bash", [RUNNER, ...args], {
    encoding: "utf8",
    timeout: RUN_TIMEOUT_MS,
    env: { ...process.env, ...env },
  });
}

describe("Spin models", { skip: missing }, () => {
  test(
    "every model verifies, every broken twin and finding has a counterexample",
    {
      timeout: RUN_TIMEOUT_MS + 10_000,
    },
    () => {
      const result = runner([]);
      const output = `${result.stdout}\n${result.stderr}`;
      assert.equal(result.error, undefined, String(result.error));
      assert.equal(result.status, 0, output);
      const summary = /verification: (\d+) checks, (\d+) as expected, 0 not/
        .exec(output);
      assert.ok(summary, output);
      assert.equal(summary[1], summary[2]);
      for (
        const model of [
          "spsc_ring",
          "mpsc_ring",
          "doorbell",
          "lifecycle",
          "worker_kill",
          "hlc",
          "pause",
          "device_outbox",
        ]
      ) {
        assert.match(
          output,
          new RegExp(`ok +${model} +- +safety +pass +verified`),
        );
        assert.match(
          output,
          new RegExp(`ok +${model} +BROKEN_\\w+ .*counterexample`),
        );
      }
      // The kill protocol under Bun's semantics, and the proposed fixes.
      assert.match(
        output,
        /ok +worker_kill +INTERRUPT +safety +pass +verified/,
      );
      assert.match(output, /ok +worker_kill +FIX_\w+ .*fix +verified/);
      // The range takeover of a loop's open group of messages.
      for (
        const twin of [
          "BROKEN_TAKE_HEAD_ONLY",
          "BROKEN_PLAIN_TAKEN",
          "BROKEN_FINISH_HEAD_ONLY",
        ]
      ) {
        assert.match(
          output,
          new RegExp(`ok +worker_kill +${twin} +safety +twin +counterexample`),
        );
      }
    },
  );

  test("the runner fails when a model does not behave as its table says", {
    timeout: 120_000,
  }, () => {
    const dir = mkdtempSync(join(tmpdir(), "ringkernel-spin-test-"));
    try {
      const table = join(dir, "checks.txt");
      // A broken twin declared correct, a correct model declared broken, and
      // a finding declared fixed.
      writeFileSync(
        table,
        "doorbell | BROKEN_NO_RECHECK | safety | pass\n" +
          "doorbell | - | safety | twin\n" +
          "worker_kill | FINDING_INVALID_UNCOMMITTED | safety | fix\n",
      );
      const result = runner([], { CHECKS_FILE: table });
      const output = `${result.stdout}\n${result.stderr}`;
      assert.equal(result.status, 1, output);
      assert.match(
        output,
        /FAIL +doorbell +BROKEN_NO_RECHECK .*counterexample/,
      );
      assert.match(output, /FAIL +doorbell +- +safety +twin +verified/);
      assert.match(
        output,
        /FAIL +worker_kill +FINDING_INVALID_UNCOMMITTED .*fix +counterexample/,
      );
      assert.match(output, /3 checks, 0 as expected, 3 not/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
