/**
 * Durable remote sends across a restart of the serving node: a runtime
 * ("ledger") serves a tally actor (`actors/tally.ts`) durably and keeps its
 * checkpoints in the cluster's JetStream store; a second runtime sends it
 * numbered messages with `send(msg, { durable: true })`. The ledger
 * checkpoints and shuts down; the sender's next durable sends are stored
 * in the stream while no node runs the actor; a new ledger runtime launches
 * it restored from the latest checkpoint and serves it durably again, and
 * the stored messages reach it. Durable delivery is at least once across a
 * restart (exactly once while the serving node lives): the tally adds each
 * sequence number once and counts repeats.
 *
 * Starts its own `nats-server -js` on a free port (or pass a URL of one with
 * JetStream); without `nats-server` installed it prints a notice and skips.
 *
 * ```sh
 * deno run -A examples/cluster_durable.ts
 * bun examples/cluster_durable.ts
 * ```
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { type EchoFields, RingKernel } from "../mod.ts";

/** What the example did, for its test. */
export interface ClusterDurableResult {
  /** Why it did not run (no `nats-server`), or `undefined`. */
  readonly skipped?: string;
  /** The tally's report before the restart. */
  readonly before?: { count: number; sum: number };
  /** Durable sends stored while no node ran the actor. */
  readonly storedWhileDown?: number;
  /** The tally's report after the restart: count, sum, repeats seen. */
  readonly after?: { count: number; sum: number; repeats: number };
}

const TALLY = { module: new URL("./actors/tally.ts", import.meta.url) };

function findServer(): string | undefined {
  const dirs = (process.env.PATH ?? "").split(":").filter((d) => d !== "");
  for (const dir of [...dirs, "/usr/sbin", "/usr/local/sbin"]) {
    try {
      accessSync(join(dir, "nats-server"), constants.X_OK);
      return join(dir, "nats-server");
    } catch {
      // Not here.
    }
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        resolve(typeof address === "object" && address ? address.port : 0)
      );
    });
  });
}

/** Starts `nats-server -js`; resolves once it accepts connections (10 s at most). */
async function startServer(path: string): Promise<{
  url: string;
  stop: () => void;
}> {
  const port = await freePort();
  const store = mkdtempSync(join(tmpdir(), "rk-durable-example-"));
  const child: ChildProcess = spawn(
    path,
    ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", store],
    { stdio: "ignore" },
  );
  const stop = () => {
    child.kill("SIGKILL");
    rmSync(store, { recursive: true, force: true });
  };
  const end = Date.now() + 10_000;
  while (true) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
      socket.connect(port, "127.0.0.1");
    });
    if (up) break;
    if (Date.now() > end) {
      stop();
      throw new Error(`nats-server did not start on port ${port} in 10 s`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  // JetStream is ready a moment after the port opens.
  await new Promise((resolve) => setTimeout(resolve, 300));
  return { url: `nats://127.0.0.1:${port}`, stop };
}

/** A tally report: `{ seq: count, value: sum, tag: repeats }`. */
type Report = { count: number; sum: number; repeats: number };

async function report(
  actor: {
    call(
      m: { seq: bigint; value: number; tag: number },
      o: { timeoutMs: number },
    ): Promise<unknown>;
  },
): Promise<Report> {
  const r = await actor.call({ seq: 0n, value: 0, tag: 1 }, {
    timeoutMs: 5000,
  }) as { seq: bigint; value: number; tag: number };
  return { count: Number(r.seq), sum: r.value, repeats: r.tag };
}

/** Runs the example against `servers`, or a nats-server it starts. */
export async function main(servers?: string): Promise<ClusterDurableResult> {
  let stop = () => {};
  if (servers === undefined) {
    const path = findServer();
    if (path === undefined) {
      const skipped =
        "nats-server is not installed (apt-get install nats-server): skipped";
      console.log(`cluster_durable: ${skipped}`);
      return { skipped };
    }
    ({ url: servers, stop } = await startServer(path));
  }
  const runtimes: RingKernel[] = [];
  try {
    const node = async (name: string) => {
      const rt = await RingKernel.create({
        backend: "cpu",
        quiet: true,
        cluster: { servers, name },
      });
      runtimes.push(rt);
      return rt;
    };
    const ledger = await node("ledger");
    const sender = await node("sender");
    const store = await ledger.cluster!.checkpointStore();
    const tally = await ledger.launch("tally", { actor: TALLY });
    await ledger.cluster!.serve(tally, { durable: { ackWaitMs: 2000 } });

    const remote = await sender.cluster!.remote<EchoFields, EchoFields>(
      "tally",
    );
    const send = (seq: number) =>
      remote.send({ seq: BigInt(seq), value: seq, tag: 0 }, {
        durable: true,
        msgId: `tally-${seq}`, // a repeat of this send is stored once
        timeoutMs: 10_000,
      });
    for (let seq = 1; seq <= 10; seq++) await send(seq);
    // Durable sends are handled a moment after they are stored.
    let before = await report(tally);
    for (let i = 0; i < 100 && before.count < 10; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      before = await report(tally);
    }
    console.log(
      `before the restart: ${before.count} handled, sum ${before.sum}`,
    );

    // The ledger checkpoints its tally and goes away.
    await ledger.checkpoint("tally", { store });
    await ledger.shutdown({ timeoutMs: 5000 });
    runtimes.splice(runtimes.indexOf(ledger), 1);

    // Stored while no node runs the actor.
    for (let seq = 11; seq <= 20; seq++) await send(seq);
    console.log("10 durable sends stored while the ledger was down");

    // The ledger comes back: restored, and served durably again.
    const again = await node("ledger");
    const restored = await again.launch("tally", {
      actor: TALLY,
      restoreFrom: await again.cluster!.checkpointStore(),
    });
    await again.cluster!.serve(restored, { durable: { ackWaitMs: 2000 } });
    let after = await report(restored);
    for (let i = 0; i < 250 && after.count < 20; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      after = await report(restored);
    }
    console.log(
      `after the restart: ${after.count} handled, sum ${after.sum}, ${after.repeats} repeats ignored`,
    );
    return {
      before: { count: before.count, sum: before.sum },
      storedWhileDown: 10,
      after,
    };
  } finally {
    await Promise.allSettled(
      runtimes.map((rt) => rt.shutdown({ timeoutMs: 2000 })),
    );
    stop();
  }
}

if (import.meta.main) {
  await main(process.argv[2]);
}
