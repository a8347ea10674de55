// Durable mode on a real nats-server with JetStream: sequence-numbered durable
// sends to an actor served durably, with the serving node's process killed
// (SIGKILL) and started again mid-stream, and with the nats-server killed and
// restarted mid-stream; every sequence is checked from the actor's side (the
// ledger file it appends to). Dead letters of durable sends to an unknown
// actor and of handler errors are read back from the dead-letter stream, also
// after a server restart.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { RingKernel } from "../src/runtime.ts";
import { EchoMessage } from "../src/actors/schemas.ts";
import { InvalidStateError, UnknownActorError } from "../src/errors.ts";
import type { RemoteActor } from "../cluster.ts";
import { delay } from "../src/async.ts";
import { echo, fixture, isDeno } from "./helpers.ts";
import { NATS_SKIP, NatsServer } from "./fixtures/nats_server.ts";

type Echo = typeof EchoMessage.spec;

const NODE_SCRIPT = fileURLToPath(
  new URL("./fixtures/nats_durable_node.ts", import.meta.url),
);

/** The sequence numbers in a ledger file, in the order the actor wrote them. */
function ledger(file: string): number[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8").split("\n").filter((l) => l !== "").map(
    Number,
  );
}

/** Waits until the ledger holds every sequence below `n`; returns it. */
async function waitLedger(
  file: string,
  n: number,
  timeoutMs: number,
): Promise<number[]> {
  const end = Date.now() + timeoutMs;
  while (true) {
    const seen = ledger(file);
    if (new Set(seen).size >= n) return seen;
    if (Date.now() > end) {
      const missing = [];
      const set = new Set(seen);
      for (let i = 0; i < n && missing.length < 20; i++) {
        if (!set.has(i)) missing.push(i);
      }
      throw new Error(
        `ledger holds ${set.size} of ${n} sequences after ${timeoutMs} ms; missing ${missing}`,
      );
    }
    await delay(50);
  }
}

/** Counts of each sequence: [missing, duplicated]. */
function check(
  seen: number[],
  n: number,
): { missing: number[]; dups: number[] } {
  const counts = new Map<number, number>();
  for (const s of seen) counts.set(s, (counts.get(s) ?? 0) + 1);
  const missing: number[] = [];
  const dups: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = counts.get(i) ?? 0;
    if (c === 0) missing.push(i);
    if (c > 1) dups.push(i);
  }
  assert.equal(
    [...counts.keys()].filter((s) => s < 0 || s >= n).length,
    0,
    "only sequences that were sent",
  );
  return { missing, dups };
}

describe("cluster: durable mode on JetStream", { skip: NATS_SKIP }, () => {
  let server: NatsServer;
  let dir: string;
  const runtimes: RingKernel[] = [];
  const children: ChildProcess[] = [];
  const node = async (name: string) => {
    const rt = await RingKernel.create({
      backend: "cpu",
      quiet: true,
      cluster: { servers: server.url, name },
    });
    runtimes.push(rt);
    return rt;
  };
  const spawnNode = (
    node: string,
    actor: string,
    file: string,
    ackWaitMs: number,
  ) => {
    const args = [server.url, node, actor, file, String(ackWaitMs)];
    const child = spawn(
      process.execPath,
      isDeno ? ["run", "-A", NODE_SCRIPT, ...args] : [NODE_SCRIPT, ...args],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    children.push(child);
    return child;
  };

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
    dir = mkdtempSync(join(os.tmpdir(), "rk-durable-"));
  });

  after(async () => {
    for (const child of children) child.kill("SIGKILL");
    await Promise.allSettled(
      runtimes.map((rt) => rt.shutdown({ timeoutMs: 2000 })),
    );
    await server?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("serving node killed (SIGKILL) mid-stream and started again: every sequence handled, repeats only of the unacknowledged window", async () => {
    const a = await node("sender-1");
    assert.equal(a.cluster!.durable, true);
    const file = join(dir, "ledger-kill.txt");
    const ackWaitMs = 1500;
    const maxAckPending = 1024; // the serving default
    spawnNode("keeper-1", "ledger", file, ackWaitMs);
    const remote = await a.cluster!.waitFor<Echo, Echo>("ledger", {
      timeoutMs: 30_000,
    }) as RemoteActor<Echo, Echo>;
    const N = 900;
    let killedAt = -1;
    for (let i = 0; i < N; i++) {
      if (i === 300) {
        // Mid-stream: the serving process dies without a word.
        children[children.length - 1].kill("SIGKILL");
        killedAt = i;
      }
      if (i === 600) spawnNode("keeper-2", "ledger", file, ackWaitMs);
      await remote.send(echo(i, 1), { durable: true, timeoutMs: 20_000 });
    }
    assert.ok(ledger(file).length < N, "the stream was cut by the kill");
    const seen = await waitLedger(file, N, 60_000);
    // A moment more: nothing else arrives (no late repeats of handled ones).
    await delay(ackWaitMs + 500);
    const { missing, dups } = check(ledger(file), N);
    assert.deepEqual(missing, [], "every sequence handled at least once");
    // Repeats are only messages the killed node handled but had not yet
    // acknowledged: sent before the kill, each seen twice at most.
    assert.ok(dups.every((s) => s < killedAt), `repeats ${dups}`);
    assert.ok(dups.length <= maxAckPending);
    assert.ok(seen.length - new Set(seen).size === dups.length);
    assert.equal(a.cluster!.metrics().durableSent, N);
  });

  test("nats-server killed and restarted mid-stream: every sequence handled exactly once", async () => {
    const a = await node("sender-2");
    const b = await node("keeper-3");
    const file = join(dir, "ledger-restart.txt");
    const kernel = await b.launch("ledger2", {
      actor: fixture("nats_ledger_actor"),
      config: { file },
    });
    await b.cluster!.serve(kernel, { durable: { ackWaitMs: 1000 } });
    const remote = await a.cluster!.remote<Echo, Echo>("ledger2");
    const N = 600;
    let restarted: Promise<void> | undefined;
    for (let i = 0; i < N; i++) {
      if (i === 200) {
        await server.kill();
        // Sends wait (and repeat, with their message id) while it is down.
        restarted = delay(300).then(() => server.restart());
      }
      await remote.send(echo(i, 0), { durable: true, timeoutMs: 20_000 });
    }
    await restarted;
    await waitLedger(file, N, 30_000);
    await delay(1500);
    const seen = ledger(file);
    const { missing, dups } = check(seen, N);
    assert.deepEqual(missing, []);
    assert.deepEqual(dups, [], "no repeats while the serving node lives");
    assert.equal(seen.length, N);
    const m = b.cluster!.metrics();
    assert.equal(m.durableDelivered, N);
    assert.ok(m.durableAcked >= N - 1);
  });

  test("dead letters: a durable send nobody serves durably, handler errors of remote sends; kept across a server restart", async () => {
    const a = await node("sender-3");
    const b = await node("keeper-4");
    const file = join(dir, "ledger-dead.txt");
    await b.launch("plain", { actor: "echo", public: true });
    const plain = await a.cluster!.remote<Echo, Echo>("plain");
    await assert.rejects(
      plain.send(echo(7, 7, 7), { durable: true, timeoutMs: 5000 }),
      UnknownActorError,
    );
    const kernel = await b.launch("picky", {
      actor: fixture("nats_ledger_actor"),
      config: { file },
      public: true,
    });
    await b.cluster!.serve(kernel, { durable: true });
    const picky = await a.cluster!.remote<Echo, Echo>("picky");
    await picky.send(echo(1, 0, 13), { durable: true, timeoutMs: 5000 });
    await picky.send(echo(2, 0, 13), { timeoutMs: 5000 }); // a plain send
    await picky.send(echo(3, 0, 0), { durable: true, timeoutMs: 5000 });
    await waitLedger(file, 1, 10_000);
    const read = async () => {
      const end = Date.now() + 10_000;
      while (true) {
        const letters = await a.cluster!.deadLetters({ limit: 10 });
        if (letters.length >= 3 || Date.now() > end) return letters;
        await delay(50);
      }
    };
    const letters = await read();
    const seqOf = (l: (typeof letters)[number]) =>
      EchoMessage.decode(new DataView(l.payload.buffer), 0).seq;
    // The durable and the plain send travel different ways: either may fail first.
    const summary = [
      letters[0],
      ...letters.slice(1).sort((x, y) => Number(seqOf(x) - seqOf(y))),
    ].map((l) => [l.actor, l.reason, seqOf(l)]);
    assert.deepEqual(summary, [
      ["plain", "unknown-target", 7n],
      ["picky", "handler-error", 1n],
      ["picky", "handler-error", 2n],
    ]);
    assert.equal(letters[0].node, "sender-3");
    const first = letters.find((l) => seqOf(l) === 1n)!;
    assert.equal(first.node, "keeper-4");
    assert.ok(first.detail.includes("refused 1"), first.detail);
    assert.ok(letters.every((l) => l.typeId === EchoMessage.typeId));
    assert.deepEqual(
      (await a.cluster!.deadLetters({ actor: "plain" })).map((l) => l.actor),
      ["plain"],
    );
    // Kept by the servers: still there after a kill -9 and a restart.
    await server.kill();
    await server.restart();
    const end = Date.now() + 10_000;
    let again: unknown[] = [];
    while (Date.now() < end) {
      try {
        again = await a.cluster!.deadLetters({ limit: 10, timeoutMs: 2000 });
        break;
      } catch {
        await delay(100);
      }
    }
    assert.deepEqual(
      (again as typeof letters).map((l) => [l.sequence, l.actor, l.reason]),
      letters.map((l) => [l.sequence, l.actor, l.reason]),
    );
  });

  test("without JetStream: durable mode is refused with InvalidStateError", async () => {
    await using plainServer = await NatsServer.start();
    const join = (name: string) =>
      RingKernel.create({
        backend: "cpu",
        quiet: true,
        cluster: { servers: plainServer.url, name },
      });
    await using c = await join("no-js-1");
    await using d = await join("no-js-2");
    assert.equal(c.cluster!.durable, false);
    const k = await c.launch("e", { actor: "echo", public: true });
    await assert.rejects(
      c.cluster!.serve(k, { durable: true }),
      InvalidStateError,
    );
    const remote = await d.cluster!.remote<Echo, Echo>("e");
    await assert.rejects(
      remote.send(echo(1), { durable: true }),
      InvalidStateError,
    );
    await assert.rejects(c.cluster!.deadLetters(), InvalidStateError);
    // Plain sends still work.
    await remote.send(echo(2), { timeoutMs: 5000 });
    assert.equal((await remote.receive({ timeoutMs: 5000 })).seq, 2n);
  });
});
