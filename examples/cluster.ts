/**
 * Three runtimes in three processes as one cluster on NATS: this process
 * ("main") starts two more of itself ("left" and "right"); each serves an
 * accumulator under its own name and publishes a reading on
 * `nodes/<name>/up`. Main subscribes to `nodes/+/up`, waits for both, adds
 * to each remote accumulator with `call()`, and stops the two processes.
 *
 * Needs a running `nats-server` (`nats-server -p 4222`, or pass its URL):
 *
 * ```sh
 * deno run -A examples/cluster.ts nats://127.0.0.1:4222
 * bun examples/cluster.ts nats://127.0.0.1:4222
 * ```
 *
 * @module
 */

import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { RingKernel } from "../mod.ts";
import { EchoMessage } from "../schemas.ts";

/** What the main process saw. */
export interface ClusterExampleResult {
  /** The topics main received from the other processes, sorted. */
  readonly ups: string[];
  /** Each remote accumulator's totals after adding 1, 2 and 3. */
  readonly totals: Record<string, number[]>;
}

/** Serves an accumulator named `name` and announces it, until killed. */
async function serve(servers: string, name: string): Promise<void> {
  const rt = await RingKernel.create({
    backend: "cpu",
    quiet: true,
    cluster: { servers, name },
  });
  await rt.launch(name, { actor: "accumulator", public: true });
  // Announce until main has seen it (a topic is at most once, not stored).
  const announce = setInterval(() => {
    rt.publish(`nodes/${name}/up`, { seq: 1n, value: 0, tag: 0 }, {
      schema: EchoMessage,
    });
  }, 100);
  process.on("SIGTERM", async () => {
    clearInterval(announce);
    await rt.shutdown({ timeoutMs: 2000 });
    process.exit(0);
  });
}

/** Runs main: starts the two other processes, uses their actors, stops them. */
export async function main(servers: string): Promise<ClusterExampleResult> {
  const script = fileURLToPath(import.meta.url);
  const isDeno = "Deno" in globalThis;
  const children = ["left", "right"].map((name) =>
    spawn(
      process.execPath,
      [...(isDeno ? ["run", "-A"] : []), script, servers, name],
      { stdio: "inherit" },
    )
  );
  await using rt = await RingKernel.create({
    backend: "cpu",
    quiet: true,
    cluster: { servers, name: "main" },
  });
  try {
    const ups = new Set<string>();
    using _up = rt.subscribe("nodes/+/up", (_message, topic) => ups.add(topic));
    const totals: Record<string, number[]> = {};
    for (const name of ["left", "right"]) {
      const accumulator = await rt.cluster!.waitFor(name, {
        timeoutMs: 30_000,
      });
      totals[name] = [];
      for (const value of [1, 2, 3]) {
        const reply = await accumulator.call({ value }, { timeoutMs: 5000 });
        totals[name].push(reply.total as number);
      }
    }
    const deadline = Date.now() + 10_000;
    while (ups.size < 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return { ups: [...ups].sort(), totals };
  } finally {
    for (const child of children) child.kill("SIGTERM");
  }
}

if (import.meta.main) {
  const [servers = "nats://127.0.0.1:4222", role] = process.argv.slice(2);
  if (role === undefined) {
    console.log(JSON.stringify(await main(servers)));
  } else {
    await serve(servers, role);
  }
}
