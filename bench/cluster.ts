/**
 * The cluster beside the local figures: `call()` round trip and throughput
 * to an actor in another process through a real `nats-server` (started here,
 * on 127.0.0.1, with JetStream), next to the same operations on a local
 * kernel; plain and durable remote sends. Each figure is the median over
 * `--runs` runs (default 5).
 *
 * ```sh
 * deno run -A bench/cluster.ts            # 5 runs
 * bun bench/cluster.ts --runs 9
 * deno run -A bench/cluster.ts --quick    # 3 short runs
 * ```
 *
 * The serving process is this script again (`… child <url>`), under the same
 * runtime: it serves the built-in `echo` (calls) and a sink actor (sends,
 * also served durably).
 *
 * @module
 */

import { spawn } from "node:child_process";
import os from "node:os";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { RingKernel } from "../src/runtime.ts";
import type { EchoMessage } from "../src/actors/schemas.ts";
import type { RemoteActor } from "../cluster.ts";
import { NatsServer } from "../tests/fixtures/nats_server.ts";

type Echo = typeof EchoMessage.spec;
const isDeno = "Deno" in globalThis;
const SINK = new URL("../tests/fixtures/sink_actor.ts", import.meta.url);

function msg(i: number) {
  return { seq: BigInt(i), value: 0, tag: 0 };
}

async function child(url: string): Promise<void> {
  const rt = await RingKernel.create({
    backend: "cpu",
    quiet: true,
    cluster: { servers: url, name: "bench-server" },
  });
  await rt.launch("echo", { actor: "echo", public: true });
  const sink = await rt.launch("sink", {
    actor: { module: SINK },
    public: true,
    queueCapacity: 4096,
  });
  await rt.cluster!.serve(sink, { durable: true });
  console.log("ready");
  setInterval(() => {}, 1 << 30);
}

interface Target {
  call(m: ReturnType<typeof msg>): Promise<unknown>;
}

/** Median of `n` sequential calls' round trips, in µs. */
async function roundTrip(target: Target, n: number): Promise<number> {
  for (let i = 0; i < Math.min(100, n); i++) await target.call(msg(i));
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await target.call(msg(i));
    times.push((performance.now() - t) * 1000);
  }
  return median(times);
}

/** Operations per second with `window` of them in flight at once. */
async function throughput(
  op: (i: number) => Promise<unknown>,
  n: number,
  window: number,
): Promise<number> {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < n) await op(next++);
    }),
  );
  return n / ((performance.now() - start) / 1000);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: {
      runs: { type: "string" },
      quick: { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean" },
    },
    allowPositionals: true,
  });
  if (positionals[0] === "child") return await child(positionals[1]);
  if (values.help) {
    console.log("usage: bench/cluster.ts [--runs N] [--quick] [--json]");
    return;
  }
  const runs = Number(values.runs ?? (values.quick ? 3 : 5));
  const scale = values.quick ? 0.2 : 1;
  const calls = Math.round(2000 * scale);
  const bulk = Math.round(20_000 * scale);
  const window = 64;

  await using server = await NatsServer.start({ jetstream: true });
  const script = fileURLToPath(import.meta.url);
  const proc = spawn(
    process.execPath,
    isDeno
      ? ["run", "-A", script, "child", server.url]
      : [script, "child", server.url],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error("the serving process did not start in 30 s")),
        30_000,
      );
      proc.stdout!.on("data", (chunk) => {
        if (String(chunk).includes("ready")) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`the serving process exited (${code})`));
      });
    });
    await using rt = await RingKernel.create({
      backend: "cpu",
      quiet: true,
      cluster: { servers: server.url, name: "bench-client" },
    });
    const local = await rt.launch("local-echo", { actor: "echo" });
    const remote = await rt.cluster!.remote<Echo, Echo>("echo");
    const sink = await rt.cluster!.remote<Echo, Echo>("sink") as RemoteActor<
      Echo,
      Echo
    >;
    const rows: Record<string, number[]> = {
      "local call round trip (µs)": [],
      "remote call round trip (µs)": [],
      [`local call throughput, ${window} in flight (calls/s)`]: [],
      [`remote call throughput, ${window} in flight (calls/s)`]: [],
      [`remote send throughput, ${window} in flight (msgs/s)`]: [],
      [`durable send throughput, ${window} in flight (msgs/s)`]: [],
    };
    const keys = Object.keys(rows);
    for (let r = 0; r < runs; r++) {
      rows[keys[0]].push(await roundTrip(local, calls));
      rows[keys[1]].push(await roundTrip(remote, calls));
      rows[keys[2]].push(
        await throughput((i) => local.call(msg(i)), bulk, window),
      );
      rows[keys[3]].push(
        await throughput((i) => remote.call(msg(i)), bulk, window),
      );
      rows[keys[4]].push(
        await throughput(
          (i) => sink.send(msg(i), { timeoutMs: 30_000 }),
          bulk,
          window,
        ),
      );
      rows[keys[5]].push(
        await throughput(
          (i) => sink.send(msg(i), { durable: true, timeoutMs: 30_000 }),
          Math.round(bulk / 4),
          window,
        ),
      );
    }
    const runtime = isDeno
      ? `Deno ${
        (globalThis as { Deno?: { version: { deno: string } } }).Deno!
          .version.deno
      }`
      : `Bun ${process.versions.bun}`;
    const cpus = os.cpus();
    console.log(
      `bench/cluster.ts on ${runtime}, ${
        cpus[0]?.model?.trim() ?? "unknown CPU"
      } (${cpus.length} cores), nats-server on 127.0.0.1; median of ${runs} runs`,
    );
    for (const key of keys) {
      const value = median(rows[key]);
      console.log(
        `  ${key.padEnd(56)} ${
          value >= 100
            ? Math.round(value).toLocaleString("en")
            : value.toFixed(1)
        }`,
      );
    }
    if (values.json) {
      // Last line, for the benchmark harness: the median of each figure.
      const result: ClusterBenchResult = {
        runtime,
        runs,
        figures: Object.fromEntries(keys.map((k) => [k, median(rows[k])])),
      };
      console.log(JSON.stringify(result));
    }
  } finally {
    proc.kill("SIGKILL");
  }
}

/** What `--json` prints last: the median of each figure over the runs. */
export interface ClusterBenchResult {
  /** The runtime and its version. */
  runtime: string;
  /** Runs each median is over. */
  runs: number;
  /** Figure name (with its unit) → median. */
  figures: Record<string, number>;
}

if (import.meta.main) await main();
if (import.meta.main && !process.argv.includes("child")) process.exit(0);
