/**
 * Fresh processes for benchmark trials: finds the Deno and Bun binaries,
 * builds the command line that runs an entry under each, runs a child with a
 * deadline, and reads the JSON result it prints.
 *
 * @module
 */

import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import process from "node:process";
import { RingKernelError, TimeoutError } from "../../src/errors.ts";
import { CHILD_MARKER, type ChildResult } from "./catalog.ts";

/** Runtimes the harness can spawn. */
export type RuntimeName = "deno" | "bun";

/** Every runtime the harness knows, in report order. */
export const RUNTIMES: readonly RuntimeName[] = ["deno", "bun"];

/** A runtime binary found on this machine, or why none was. */
export interface RuntimeBinary {
  /** Which runtime. */
  readonly name: RuntimeName;
  /** Path of the binary (empty when missing). */
  readonly path: string;
  /** Its version (empty when missing). */
  readonly version: string;
  /** Whether it can be used. */
  readonly available: boolean;
  /** Why it cannot, when it cannot. */
  readonly reason?: string;
}

/** Options of {@linkcode resolveRuntime}. */
export interface ResolveRuntimeOptions {
  /** The repository root (where `node_modules/.bin` lives). */
  readonly root: string;
  /** An explicit path to use instead of searching. */
  readonly path?: string;
}

function isExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Finds `name` in the directories of `PATH`. */
export function findOnPath(
  name: string,
  pathVariable = process.env.PATH ?? "",
): string | undefined {
  for (const dir of pathVariable.split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** Extracts the version from `deno --version` or `bun --version` output. */
export function parseVersion(
  name: RuntimeName,
  output: string,
): string | undefined {
  const pattern = name === "deno"
    ? /^deno (\d+\.\d+\.\d+\S*)/m
    : /^(\d+\.\d+\.\d+\S*)/m;
  return pattern.exec(output.trim())?.[1];
}

/** Where {@linkcode resolveRuntime} looks for `name`, in order (explicit path first, PATH last). */
export function runtimeCandidates(
  name: RuntimeName,
  options: ResolveRuntimeOptions,
): string[] {
  const versions = process.versions as Record<string, string | undefined>;
  const running = versions[name] !== undefined ? [process.execPath] : [];
  const onPath = findOnPath(name);
  return [
    ...(options.path === undefined ? [] : [options.path]),
    join(options.root, "tools", "node_modules", ".bin", name),
    join(options.root, "node_modules", ".bin", name),
    ...running,
    ...(onPath === undefined ? [] : [onPath]),
  ];
}

/**
 * Finds a runtime: the explicit path, else the pinned one under
 * `tools/node_modules/.bin`, else `node_modules/.bin`, else the binary running
 * this process when it is that runtime, else `<name>` on `PATH`; then asks it
 * for its version.
 */
export function resolveRuntime(
  name: RuntimeName,
  options: ResolveRuntimeOptions,
): RuntimeBinary {
  const candidates = runtimeCandidates(name, options);
  const path = options.path ?? candidates.find(isExecutable);
  if (path === undefined) {
    return {
      name,
      path: "",
      version: "",
      available: false,
      reason:
        `no ${name} binary found (looked in tools/node_modules/.bin, node_modules/.bin and PATH)`,
    };
  }
  const probe = spawnSync(path, ["--version"], {
    encoding: "utf8",
    timeout: 30_000,
  });
  const version = probe.status === 0
    ? parseVersion(name, probe.stdout)
    : undefined;
  if (version === undefined) {
    const why = probe.error?.message ??
      `exit ${probe.status}: ${(probe.stderr ?? "").trim()}`;
    return {
      name,
      path,
      version: "",
      available: false,
      reason: `${path} --version failed (${why})`,
    };
  }
  return { name, path, version, available: true };
}

/** The command line that runs `entry` with `args` under `runtime`. */
export function childCommand(
  runtime: Pick<RuntimeBinary, "name" | "path">,
  entry: string,
  args: readonly string[],
): { command: string; args: string[] } {
  if (runtime.name === "deno") {
    return { command: runtime.path, args: ["run", "-A", entry, ...args] };
  }
  return { command: runtime.path, args: [entry, ...args] };
}

/** What a finished child process left. */
export interface ProcessOutcome {
  /** Exit code (null when killed by a signal). */
  readonly code: number | null;
  /** Signal that ended it, if any. */
  readonly signal: string | null;
  /** Everything it wrote to stdout. */
  readonly stdout: string;
  /** Everything it wrote to stderr. */
  readonly stderr: string;
  /** Whether it was killed for passing its deadline. */
  readonly timedOut: boolean;
  /** Wall-clock time from spawn to exit, in ms. */
  readonly wallMs: number;
}

/** Options of {@linkcode runProcess}. */
export interface RunProcessOptions {
  /** Working directory. */
  readonly cwd: string;
  /** Kill the process (SIGKILL) after this many ms. */
  readonly timeoutMs: number;
}

/** Runs a process to completion, collecting its output; kills it at the deadline. */
export function runProcess(
  command: string,
  args: readonly string[],
  options: RunProcessOptions,
): Promise<ProcessOutcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(command, args, {
      cwd: options.cwd,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const stdout: string[] = [];
    const stderr: string[] = [];
    let timedOut = false;
    let settled = false;
    child.stdout!.setEncoding("utf8");
    child.stderr!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => stdout.push(chunk));
    child.stderr!.on("data", (chunk: string) => stderr.push(chunk));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs);
    const finish = (code: number | null, signal: string | null, extra = "") => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: stdout.join(""),
        stderr: stderr.join("") + extra,
        timedOut,
        wallMs: performance.now() - started,
      });
    };
    child.on(
      "error",
      (error: Error) => finish(null, null, `\nspawn failed: ${error.message}`),
    );
    child.on(
      "close",
      (code: number | null, signal: string | null) => finish(code, signal),
    );
  });
}

/** Finds the result line in a child's stdout and parses it; throws when there is none. */
export function parseChildOutput(stdout: string): ChildResult {
  const line = stdout.split("\n").reverse().find((l) =>
    l.startsWith(CHILD_MARKER)
  );
  if (line === undefined) {
    throw new RingKernelError("the child printed no result line");
  }
  const parsed = JSON.parse(line.slice(CHILD_MARKER.length)) as ChildResult;
  if (!Array.isArray(parsed.samples) || typeof parsed.case !== "string") {
    throw new RingKernelError(
      "the child's result line is not a benchmark result",
    );
  }
  return parsed;
}

/** A child's result, with how long its process ran. */
export interface ChildRun {
  /** The parsed result. */
  readonly result: ChildResult;
  /** Wall-clock time of the whole process (start-up included), in ms. */
  readonly wallMs: number;
}

/**
 * Runs `entry` under `runtime` in a fresh process and returns its result.
 * Throws {@linkcode TimeoutError} when it passes `timeoutMs`, and
 * {@linkcode RingKernelError} (with the end of its stderr) when it fails.
 */
export async function runChild(
  runtime: RuntimeBinary,
  entry: string,
  args: readonly string[],
  options: RunProcessOptions,
): Promise<ChildRun> {
  const { command, args: argv } = childCommand(runtime, entry, args);
  const outcome = await runProcess(command, argv, options);
  if (outcome.timedOut) {
    throw new TimeoutError(
      `${runtime.name} ${args.join(" ")}`,
      options.timeoutMs,
    );
  }
  if (outcome.code !== 0) {
    const tail = outcome.stderr.trim().split("\n").slice(-6).join("\n");
    throw new RingKernelError(
      `${runtime.name} ${args.join(" ")} exited with ${
        outcome.code ?? outcome.signal
      }: ${tail}`,
    );
  }
  return { result: parseChildOutput(outcome.stdout), wallMs: outcome.wallMs };
}
