import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { RingKernelError } from "../src/errors.ts";
import {
  readResults,
  REPO_ROOT,
  RESULTS_DIR,
  RESULTS_SCHEMA,
  resultsFileName,
  sourceRevision,
  writeResults,
} from "../bench/harness/results.ts";
import { sampleResults } from "./fixtures/bench_results.ts";

describe("results files", () => {
  test("names carry the date and machine and never overwrite", () => {
    const root = mkdtempSync(join(os.tmpdir(), "rk-results-"));
    try {
      const date = new Date("2026-03-04T05:06:07Z");
      const first = resultsFileName(root, date, "amd-epyc-2c");
      assert.equal(
        first,
        join(root, RESULTS_DIR, "2026-03-04-amd-epyc-2c.json"),
      );
      mkdirSync(join(root, RESULTS_DIR), { recursive: true });
      writeFileSync(first, "{}");
      assert.equal(
        resultsFileName(root, date, "amd-epyc-2c"),
        join(root, RESULTS_DIR, "2026-03-04-amd-epyc-2c-2.json"),
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("a written document reads back; NaN becomes null", () => {
    const dir = mkdtempSync(join(os.tmpdir(), "rk-results-"));
    try {
      const results = sampleResults();
      const path = writeResults(results, join(dir, "nested", "r.json"));
      const back = readResults(path);
      assert.equal(back.schema, RESULTS_SCHEMA);
      assert.equal(back.benchmarks.length, results.benchmarks.length);
      assert.equal(
        back.benchmarks[0].samples!.all.p99,
        results.benchmarks[0].samples!.all.p99,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a file of another format is rejected", () => {
    const dir = mkdtempSync(join(os.tmpdir(), "rk-results-"));
    try {
      const path = join(dir, "other.json");
      writeFileSync(path, JSON.stringify({ schema: "something-else" }));
      assert.throws(() => readResults(path), RingKernelError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the source revision names the commit, or says it is unknown", () => {
    const here = sourceRevision(REPO_ROOT);
    assert.ok(here.commit === "unknown" || /^[0-9a-f]{40}$/.test(here.commit));
    assert.ok(Array.isArray(here.uncommitted));
    const nowhere = mkdtempSync(join(os.tmpdir(), "rk-nogit-"));
    try {
      assert.deepEqual(sourceRevision(nowhere), {
        commit: "unknown",
        uncommitted: [],
      });
    } finally {
      rmSync(nowhere, { recursive: true, force: true });
    }
  });
});
