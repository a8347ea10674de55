/**
 * Runs the model-based test of the runtime API (`tests/model/runtime_model.ts`)
 * for longer than CI does:
 *
 * ```sh
 * deno run -A scripts/model_check.ts --commands 100000   # about 100,000 commands
 * bun scripts/model_check.ts --seed 7 --runs 20 --max-commands 40
 * ```
 *
 * `--commands N` sets the number of sequences so that about N commands run
 * (sequences average half of `--max-commands`). Exits 1 with fast-check's
 * report (seed, path, shrunk counterexample) when a property breaks; the
 * process must then also exit by itself, which is part of the check.
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { checkRuntimeModel } from "../tests/model/runtime_model.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    seed: { type: "string", default: String(Date.now() % 2 ** 31) },
    runs: { type: "string" },
    "max-commands": { type: "string", default: "40" },
    commands: { type: "string" },
  },
});

function positive(option: string, text: string | undefined): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${option} must be a positive integer, got ${text}`);
    process.exit(2);
  }
  return n;
}

const seed = Number(values.seed);
const maxCommands = positive("max-commands", values["max-commands"]);
const runs = values.commands !== undefined
  ? Math.ceil(positive("commands", values.commands) / (maxCommands / 2))
  : positive("runs", values.runs ?? "10");
console.log(
  `runtime model: seed ${seed}, ${runs} sequences of up to ${maxCommands} commands`,
);
try {
  await checkRuntimeModel({ seed, runs, maxCommands });
  console.log("runtime model: every property held");
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  // fast-check keeps the failing command's own error as the cause.
  if (error instanceof Error && error.cause !== undefined) {
    console.error("caused by:", error.cause);
  }
  process.exitCode = 1;
}
