/**
 * Runs fuzz targets: one in this process ({@linkcode runTarget}), or many,
 * each in a child process of the same runtime under a deadline
 * ({@linkcode runTargetsInChildren}), so that a hang is reported and killed
 * rather than waited for.
 *
 * @module
 */

import fc from "fast-check";
import { spawn } from "node:child_process";
import process from "node:process";

/** One fuzz target: a fast-check property over one kind of input. */
export interface FuzzTarget {
  /** Short name, used by `--target`. */
  readonly name: string;
  /** What the target feeds in and what it checks. */
  readonly description: string;
  /** Share of the total input count (relative weight). */
  readonly weight: number;
  /**
   * Set when the code under test is known to fail this target (e.g. hang);
   * such a target runs only when asked for by name.
   */
  readonly knownIssue?: string;
  /** Builds the property (once per run). */
  property(): fc.IRawProperty<unknown, false>;
}

/** Result of one target. */
export interface FuzzTargetResult {
  /** Target name. */
  readonly name: string;
  /** Inputs generated and checked. */
  readonly runs: number;
  /** Whether a counterexample (or a hang) was found. */
  readonly failed: boolean;
  /** fast-check's report of the counterexample, or why the run stopped. */
  readonly report?: string;
  /** Seed of the run (replays it with `--seed`). */
  readonly seed: number;
  /** Wall time in ms. */
  readonly ms: number;
}

/** Options of {@linkcode runTarget}. */
export interface RunTargetOptions {
  /** Inputs to generate. */
  readonly runs: number;
  /** Seed (default: random). */
  readonly seed?: number;
}

/** Runs one target in this process. */
export function runTarget(
  target: FuzzTarget,
  options: RunTargetOptions,
): FuzzTargetResult {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const started = performance.now();
  const details = fc.check(target.property(), {
    numRuns: options.runs,
    seed,
    endOnFailure: false,
  });
  const ms = performance.now() - started;
  return {
    name: target.name,
    runs: details.numRuns,
    failed: details.failed,
    report: details.failed
      ? `${fc.defaultReportMessage(details)}\n${
        details.errorInstance instanceof Error
          ? details.errorInstance.message
          : String(details.errorInstance)
      }`
      : undefined,
    seed,
    ms,
  };
}

/** Options of {@linkcode runTargetsInChildren}. */
export interface ChildRunOptions {
  /**
   * The script that runs one target when given
   * `--child --target NAME --runs N --seed S`, printing its
   * {@linkcode FuzzTargetResult} as the last line of JSON (`scripts/fuzz.ts`).
   */
  readonly script: string;
  /** Inputs over all the targets, shared by weight. */
  readonly runs: number;
  /** Seed of the first target; target `i` runs with `seed + i`. */
  readonly seed: number;
  /** Children running at once. */
  readonly jobs: number;
  /** Deadline of each child in ms; a child past it is killed and reported as a hang. */
  readonly timeoutMs: number;
  /** Called with each target's result as it comes. */
  readonly onResult?: (result: FuzzTargetResult) => void;
}

/** Each target's share of `runs` inputs, by weight (at least 1 each; they add up to `runs`). */
export function shareRuns(
  targets: readonly FuzzTarget[],
  runs: number,
): number[] {
  const weight = targets.reduce((sum, t) => sum + t.weight, 0);
  const shares = targets.map((t) =>
    Math.max(1, Math.round(runs * t.weight / weight))
  );
  shares[shares.length - 1] += runs - shares.reduce((a, b) => a + b, 0);
  return shares.map((n) => Math.max(1, n));
}

/**
 * Runs every target in a child process of this runtime, `jobs` at a time,
 * with its share of the inputs; returns the results in the targets' order.
 */
export async function runTargetsInChildren(
  targets: readonly FuzzTarget[],
  options: ChildRunOptions,
): Promise<FuzzTargetResult[]> {
  const shares = shareRuns(targets, options.runs);
  const results: FuzzTargetResult[] = new Array(targets.length);
  let nextIndex = 0;
  const worker = async () => {
    for (;;) {
      const i = nextIndex++;
      if (i >= targets.length) return;
      results[i] = await runChild(
        options.script,
        targets[i].name,
        shares[i],
        options.seed + i,
        options.timeoutMs,
      );
      options.onResult?.(results[i]);
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(options.jobs, targets.length) }, worker),
  );
  return results;
}

/** The command that runs `script` with `args` in this runtime. */
function scriptCommand(script: string, args: string[]): [string, string[]] {
  if (process.versions.deno !== undefined) {
    return [process.execPath, ["run", "-A", script, ...args]];
  }
  return [process.execPath, [script, ...args]];
}

function runChild(
  script: string,
  name: string,
  runs: number,
  seed: number,
  timeoutMs: number,
): Promise<FuzzTargetResult> {
  const [command, args] = scriptCommand(script, [
    "--child",
    "--target",
    name,
    "--runs",
    String(runs),
    "--seed",
    String(seed),
  ]);
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => out += d);
    child.stderr.on("data", (d) => err += d);
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      const ms = performance.now() - started;
      const line = out.trim().split("\n").pop() ?? "";
      if (!hung && code === 0 && line.startsWith("{")) {
        resolve(JSON.parse(line) as FuzzTargetResult);
        return;
      }
      resolve({
        name,
        runs: 0,
        failed: true,
        report: hung
          ? `hang: no result within ${timeoutMs} ms (killed)`
          : `child exited with ${code}: ${err.slice(-2000)}`,
        seed,
        ms,
      });
    });
  });
}
