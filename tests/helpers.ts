/**
 * Helpers shared by the test modules: what a call throws, an environment
 * variable for the length of a call, the actor fixtures, the Echo messages
 * most tests send and the accounting every actor keeps, a runtime for the
 * length of a test, and child processes (a script run in a fresh process of
 * this runtime, its output and exit).
 *
 * @example
 * ```ts ignore
 * import assert from "node:assert/strict";
 * import { lastJson, runScript } from "./helpers.ts";
 *
 * const result = await runScript(new URL("./script.ts", import.meta.url), {
 *   env: { NO_COLOR: "1", RINGKERNEL_LIBCUDA: undefined },
 * });
 * assert.equal(result.code, 0, result.stderr);
 * console.log(lastJson(result.stdout));
 * ```
 *
 * @module
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { pollUntil } from "../src/async.ts";
import type { Kernel, KernelMetrics } from "../src/kernel.ts";
import { RingKernel, type RuntimeEvent } from "../src/runtime.ts";

/**
 * Runs `body` and returns what it throws, failing when it throws nothing (or,
 * given a `type`, something else).
 */
export function thrown(body: () => unknown): unknown;
export function thrown<E>(
  body: () => unknown,
  type: abstract new (...args: never[]) => E,
): E;
export function thrown(
  body: () => unknown,
  type?: abstract new (...args: never[]) => unknown,
): unknown {
  try {
    body();
  } catch (error) {
    if (type !== undefined) {
      assert.ok(error instanceof type, `expected a ${type.name}: ${error}`);
    }
    return error;
  }
  assert.fail(`expected ${type === undefined ? "an error" : `a ${type.name}`}`);
}

/**
 * Runs `body` with the environment variable `name` set to `value` (removed
 * when undefined), then puts it back as it was: when `body` returns, or when
 * the promise it returns settles.
 */
export function withEnv<T>(
  name: string,
  value: string | undefined,
  body: () => T,
): T {
  const previous = process.env[name];
  const restore = () => {
    if (previous === undefined) delete process.env[name];
    else process.env[name] = previous;
  };
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  let result: T;
  try {
    result = body();
  } catch (error) {
    restore();
    throw error;
  }
  if (result instanceof Promise) return result.finally(restore) as T;
  restore();
  return result;
}

/** An actor of `tests/fixtures/`, by file name (and export). */
export function fixture(
  name: string,
  exportName?: string,
): { module: URL; export?: string } {
  return {
    module: new URL(`./fixtures/${name}.ts`, import.meta.url),
    ...(exportName === undefined ? {} : { export: exportName }),
  };
}

/** An Echo message (`ringkernel.Echo`). */
export function echo(
  seq: number,
  value = seq,
  tag = 0,
): { seq: bigint; value: number; tag: number } {
  return { seq: BigInt(seq), value, tag };
}

/** Anything with an echo `call()`: a kernel, or a remote actor. */
export interface EchoCallable {
  /** Sends an echo message and resolves with the reply. */
  call(
    message: { seq: bigint; value: number; tag: number },
    options?: { timeoutMs?: number },
  ): Promise<unknown>;
}

/**
 * What a counting test actor (`fixtures/checkpoint_actor.ts`, the GPU tally)
 * answers to a message tagged 1: the messages it counted, their sum, and how
 * many it saw twice.
 */
export async function tallyReport(
  target: EchoCallable,
  timeoutMs = 5000,
): Promise<{ count: number; sum: number; repeats: number }> {
  const r = await target.call(echo(0, 0, 1), { timeoutMs }) as {
    seq: bigint;
    value: number;
    tag: number;
  };
  return { count: Number(r.seq), sum: r.value, repeats: r.tag };
}

/** Sent = processed + dead-lettered, nothing left in flight. */
export function assertAccounted(m: KernelMetrics): void {
  assert.equal(m.inFlight, 0, `${m.name}: ${m.inFlight} in flight`);
  assert.equal(
    m.sent,
    m.processed + m.deadLettered,
    `${m.name}: sent ${m.sent} != processed ${m.processed} + dead-lettered ${m.deadLettered}`,
  );
}

/**
 * Waits until everything sent to `k` is processed or dead-lettered (and,
 * with `replies`, every reply taken and counted); returns the metrics then.
 */
export async function settle(
  k: Kernel,
  replies?: { count: number },
): Promise<KernelMetrics> {
  await pollUntil(() => {
    if (replies) { while (k.tryReceive() !== undefined) replies.count++; }
    const m = k.metrics();
    return m.inFlight === 0 &&
      (replies === undefined || m.pendingReplies === 0);
  }, { timeoutMs: 20_000, what: `settle "${k.name}"` });
  return k.metrics();
}

/** Options of `RingKernel.create`. */
export type RuntimeOptions = NonNullable<
  Parameters<typeof RingKernel.create>[0]
>;

/**
 * Creates a runtime with `options`, runs `body` with it and the events it
 * reports, and shuts it down (10 s at most) however `body` ends. When `body`
 * fails, its error is the one thrown, not the shutdown's (a failed launch can
 * fail the shutdown too).
 */
export async function withRuntime<T>(
  options: RuntimeOptions,
  body: (rt: RingKernel, events: RuntimeEvent[]) => Promise<T>,
): Promise<T> {
  const events: RuntimeEvent[] = [];
  const rt = await RingKernel.create({
    ...options,
    onEvent: (event) => {
      events.push(event);
      options.onEvent?.(event);
    },
  });
  let failed = false;
  try {
    return await body(rt, events);
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    await rt.shutdown({ timeoutMs: 10_000 }).catch((error) => {
      if (!failed) throw error;
    });
  }
}

/** Whether this is Deno (else Bun). */
export const isDeno: boolean = "Deno" in globalThis;

/** How a child process ended, and what it printed. */
export interface ChildResult {
  /** Its exit code; null when a signal ended it (the deadline's included). */
  readonly code: number | null;
  /** The signal that ended it, if one did. */
  readonly signal: string | null;
  /** Everything it wrote to stdout. */
  readonly stdout: string;
  /** Everything it wrote to stderr. */
  readonly stderr: string;
}

/** Options of {@linkcode runProcess} and {@linkcode runScript}. */
export interface ChildOptions {
  /** Its working directory (default: this process's). */
  readonly cwd?: string;
  /** Variables added to this process's environment; `undefined` removes one. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** It is killed (SIGKILL) after this long (default 60 s). */
  readonly timeoutMs?: number;
}

/**
 * Runs `command` to its end, or kills it at the deadline; never rejects.
 * Variables `env` removes are removed with `env -u`: a runtime may hand its
 * own environment to a child whatever the `env` option says.
 */
export function runProcess(
  command: string,
  args: readonly string[],
  options: ChildOptions = {},
): Promise<ChildResult> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined) env[key] = value;
  }
  const unset: string[] = [];
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) {
      delete env[key];
      unset.push("-u", key);
    } else {
      env[key] = value;
    }
  }
  const [file, argv] = unset.length > 0
    ? ["env", [...unset, command, ...args]]
    : [command, [...args]];
  return new Promise((resolve) => {
    const child = execFile(
      file,
      argv,
      {
        cwd: options.cwd,
        env,
        encoding: "utf8",
        maxBuffer: 64 << 20,
        timeout: options.timeoutMs ?? 60_000,
        killSignal: "SIGKILL",
      },
      (error, stdout, stderr) => {
        const e = error as
          | (Error & { code?: number | string; signal?: string | null })
          | null;
        resolve({
          code: e === null ? 0 : typeof e.code === "number" ? e.code : null,
          signal: e?.signal ?? null,
          stdout: String(stdout),
          stderr: String(stderr),
        });
      },
    );
    // Nothing to read: the child sees its stdin closed.
    child.stdin?.end();
  });
}

/**
 * Runs a script in a fresh process of this runtime (`deno run -A` or `bun`),
 * with `args` after it; under Deno, `v8Flags` go to the engine (Bun has no
 * such option).
 */
export function runScript(
  script: string | URL,
  options: ChildOptions & {
    readonly args?: readonly string[];
    readonly v8Flags?: readonly string[];
  } = {},
): Promise<ChildResult> {
  const file = script instanceof URL ? fileURLToPath(script) : script;
  const v8 = options.v8Flags ?? [];
  const argv = isDeno
    ? [
      "run",
      "-A",
      ...(v8.length > 0 ? [`--v8-flags=${v8.join(",")}`] : []),
      file,
    ]
    : [file];
  return runProcess(
    process.execPath,
    [...argv, ...options.args ?? []],
    options,
  );
}

/** The last line a child wrote to stdout, parsed as JSON. */
export function lastJson(stdout: string): Record<string, unknown> {
  const line = stdout.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`the child's last line is not JSON:\n${stdout}`);
  }
}

/** A child's exit and output, for an assertion's message. */
export function described(result: ChildResult): string {
  return `exit ${
    result.code ?? result.signal
  }\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}
