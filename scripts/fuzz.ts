/**
 * Property-based and mutation fuzzing of the message path with fast-check:
 * envelope and payload decoding of random and mutated slots, schema
 * definitions and values into `encode`, queue input validation, and rings
 * whose slots or headers were corrupted.
 *
 * The outcome of every input must be a valid message or a typed error of
 * `src/errors.ts` — never another exception, never a hang, never a queue
 * left inconsistent (each target checks the ring's invariants afterwards and
 * that the ring still carries messages).
 *
 * ```sh
 * deno run -A scripts/fuzz.ts                     # 1 000 000 inputs over every target
 * deno run -A scripts/fuzz.ts --runs 20000 --seed 42 --target slot-mutation
 * deno run -A scripts/fuzz.ts --json fuzz.json    # also write the figures
 * bun scripts/fuzz.ts --runs 100000
 * ```
 *
 * Each target runs in a child process of the same runtime with a deadline,
 * so a hang is reported (and killed) rather than waited for. Exits 1 when
 * any target fails or hangs.
 *
 * This file is the command line; the rest is in `scripts/fuzz/`: the
 * generators (`arbitraries.ts`), the checks every outcome must pass
 * (`checks.ts`), the targets (`targets.ts`) and the runner (`runner.ts`).
 *
 * @module
 */

import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { FUZZ_TARGETS } from "./fuzz/targets.ts";
import {
  type FuzzTarget,
  type FuzzTargetResult,
  runTarget,
  runTargetsInChildren,
} from "./fuzz/runner.ts";

export { FUZZ_SCHEMAS } from "./fuzz/arbitraries.ts";
export { checkReencodes, decodeSlot } from "./fuzz/checks.ts";
export {
  type FuzzTarget,
  type FuzzTargetResult,
  runTarget,
  type RunTargetOptions,
} from "./fuzz/runner.ts";
export { FUZZ_TARGETS } from "./fuzz/targets.ts";

/** The command line of the fuzz run. */
interface Cli {
  runs: number;
  seed?: number;
  targets: string[];
  json?: string;
  child: boolean;
  timeoutMs: number;
  jobs: number;
}

/** A number option: `text` as a number, refused unless `valid`. */
function numberOption(
  option: string,
  text: string,
  valid: (n: number) => boolean,
  expected: string,
): number {
  const n = Number(text);
  if (text.trim() === "" || !valid(n)) {
    throw new RangeError(`--${option} must be ${expected}, got ${text}`);
  }
  return n;
}

function parseCli(argv: string[]): Cli {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      runs: { type: "string", default: "1000000" },
      seed: { type: "string" },
      target: { type: "string", multiple: true, default: [] },
      json: { type: "string" },
      "timeout-ms": { type: "string", default: "600000" },
      jobs: { type: "string" },
      child: { type: "boolean", default: false },
    },
  });
  const positive = (n: number) => Number.isSafeInteger(n) && n >= 1;
  return {
    runs: numberOption("runs", values.runs, positive, "a positive integer"),
    seed: values.seed === undefined
      ? undefined
      : numberOption("seed", values.seed, Number.isSafeInteger, "an integer"),
    targets: values.target,
    json: values.json,
    child: values.child,
    timeoutMs: numberOption(
      "timeout-ms",
      values["timeout-ms"],
      positive,
      "a positive integer",
    ),
    jobs: values.jobs === undefined
      ? Math.max(1, availableParallelism())
      : numberOption("jobs", values.jobs, positive, "a positive integer"),
  };
}

/** The targets named on the command line, or every target without a known issue. */
function chooseTargets(names: readonly string[]): FuzzTarget[] {
  if (names.length === 0) {
    return FUZZ_TARGETS.filter((t) => t.knownIssue === undefined);
  }
  return names.map((name) => {
    const target = FUZZ_TARGETS.find((t) => t.name === name);
    if (target === undefined) {
      throw new RangeError(
        `unknown target ${name} (known: ${
          FUZZ_TARGETS.map((t) => t.name).join(", ")
        })`,
      );
    }
    return target;
  });
}

async function main(argv: string[]): Promise<number> {
  const cli = parseCli(argv);
  const chosen = chooseTargets(cli.targets);
  if (cli.child) {
    const result = runTarget(chosen[0], { runs: cli.runs, seed: cli.seed });
    console.log(JSON.stringify(result));
    return 0;
  }
  const seed = cli.seed ?? Math.floor(Math.random() * 2 ** 31);
  const runtime = process.versions.deno !== undefined
    ? `deno ${process.versions.deno}`
    : `bun ${process.versions.bun}`;
  console.log(
    `fuzz: ${cli.runs} inputs over ${chosen.length} targets, seed ${seed}, ${runtime}, ${cli.jobs} jobs`,
  );
  for (const t of chosen) {
    if (t.knownIssue) {
      console.log(`fuzz: ${t.name} has a known issue: ${t.knownIssue}`);
    }
  }
  const started = performance.now();
  const results: FuzzTargetResult[] = await runTargetsInChildren(chosen, {
    script: fileURLToPath(import.meta.url),
    runs: cli.runs,
    seed,
    jobs: cli.jobs,
    timeoutMs: cli.timeoutMs,
    onResult: (r) => {
      console.log(
        `${r.failed ? "FAIL" : "ok  "} ${r.name.padEnd(30)} ${
          String(r.runs).padStart(9)
        } inputs ${(r.ms / 1000).toFixed(1).padStart(7)} s ${
          Math.round(r.runs / (r.ms / 1000)).toString().padStart(8)
        } /s`,
      );
      if (r.failed) console.log(r.report);
    },
  });
  const wallMs = performance.now() - started;
  const total = results.reduce((sum, r) => sum + r.runs, 0);
  const failures = results.filter((r) => r.failed).length;
  console.log(
    `fuzz: ${total} inputs, ${failures} failing targets, ${
      (wallMs / 1000).toFixed(1)
    } s wall`,
  );
  if (cli.json !== undefined) {
    writeFileSync(
      cli.json,
      JSON.stringify(
        { runtime, seed, inputs: total, failures, wallMs, results },
        null,
        2,
      ) + "\n",
    );
  }
  return failures === 0 ? 0 : 1;
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
