// Checkpoints in JetStream, migration of an actor between runtimes in two
// processes while durable, sequence-numbered messages stream to it (checked
// from the actor's own state: every sequence handled exactly once, the
// running sum), and K2K sends from an actor to a name another node serves.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { EchoMessage } from "../src/actors/schemas.ts";
import { ActorCrashedError, InvalidStateError } from "../src/errors.ts";
import type { RemoteActor } from "../cluster.ts";
import { delay } from "../src/async.ts";
import { echo, type EchoCallable, fixture, tallyReport } from "./helpers.ts";
import { NATS_SKIP } from "./fixtures/nats_server.ts";
import { useJetStreamNodes } from "./fixtures/cluster_nodes.ts";

type Echo = typeof EchoMessage.spec;
describe("cluster: checkpoints, migration, K2K to remote names", {
  skip: NATS_SKIP,
}, () => {
  const { node, spawnNode } = useJetStreamNodes();

  test("ctx.send from an actor to a name another node serves", async () => {
    const a = await node("k2k-a");
    const b = await node("k2k-b");
    await b.launch("sink", {
      actor: fixture("checkpoint_actor"),
      public: true,
    });
    const fwd = await a.launch("fwd", {
      actor: fixture("checkpoint_actor"),
      config: { forwardTo: "sink" },
    });
    for (let i = 0; i < 20; i++) {
      const r = await fwd.call(echo(i, i + 1, 2), { timeoutMs: 10_000 });
      assert.equal(r.seq, 0n, "the receipt's targetId is -1: another node");
    }
    const sink = await a.cluster!.actor("sink");
    assert.deepEqual(await tallyReport(sink as EchoCallable), {
      count: 20,
      sum: (20 * 21) / 2,
      repeats: 0,
    });
    // A name no node serves: UnknownActorError in the handler (its crash).
    const lost = await a.launch("fwd-lost", {
      actor: fixture("checkpoint_actor"),
      config: { forwardTo: "nobody" },
      restart: { maxRestarts: 0 },
    });
    await assert.rejects(
      lost.call(echo(1, 1, 2), { timeoutMs: 10_000 }),
      (e: unknown) =>
        e instanceof ActorCrashedError && /nobody/.test(String(e.message)),
    );
  });

  test("checkpoints in JetStream: a delta chain restored by another node after the first shut down", async () => {
    const a = await node("ckpt-a");
    const store = await a.cluster!.checkpointStore();
    const kernel = await a.launch("tally", {
      actor: fixture("checkpoint_actor"),
    });
    const infos = [];
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 50; i++) {
        await kernel.send(echo(round * 50 + i, round * 50 + i));
      }
      await tallyReport(kernel as unknown as EchoCallable);
      infos.push(await a.checkpoint("tally", { store }));
    }
    assert.deepEqual(infos.map((i) => i.kind), ["full", "delta", "delta"]);
    assert.equal(infos[2].parentId, infos[1].id);
    await a.shutdown();
    const b = await node("ckpt-b");
    const restored = await b.launch("tally", {
      actor: fixture("checkpoint_actor"),
      restoreFrom: await b.cluster!.checkpointStore(),
    });
    assert.deepEqual(await tallyReport(restored as unknown as EchoCallable), {
      count: 150,
      sum: (149 * 150) / 2,
      repeats: 0,
    });
  });

  test("migration between two processes while durable messages stream: each sequence handled once, the sum kept", async () => {
    const a = await node("mig-a");
    const sender = await node("mig-sender");
    await spawnNode("mig-b");
    const kernel = await a.launch("acct", {
      actor: fixture("checkpoint_actor"),
      public: true,
    });
    await a.cluster!.serve(kernel, { durable: { ackWaitMs: 1000 } });
    const remote = await sender.cluster!.remote<Echo, Echo>("acct");
    const N = 600;
    const migrations: Promise<unknown>[] = [];
    for (let i = 0; i < N; i++) {
      if (i === 150) {
        // Away to the other process, from the node that runs it.
        migrations.push(a.cluster!.migrate("acct", { to: "mig-b" }));
      }
      if (i === 400) {
        await migrations[0];
        // Back, asked of a node that does not run it (it asks mig-b).
        migrations.push(a.cluster!.migrate("acct", { to: "mig-a" }));
      }
      // The last messages go once it is back: it moves mid-stream however
      // fast the stream is handled (sends 400..499 travel during the move).
      if (i === 500) await migrations[1];
      await remote.send(echo(i, i), { durable: true, timeoutMs: 20_000 });
    }
    const [out, back] = await Promise.all(migrations) as {
      from: string;
      to: string;
      sequence: bigint;
    }[];
    assert.equal(out.from, "mig-a");
    assert.equal(out.to, "mig-b");
    assert.equal(back.from, "mig-b");
    assert.equal(back.to, "mig-a");
    // It handled messages on both nodes: before the first move, on mig-b
    // (its sequence grew there), and after it came back.
    assert.ok(out.sequence > 0n, `left mig-a at ${out.sequence}`);
    assert.ok(back.sequence > out.sequence, `left mig-b at ${back.sequence}`);
    assert.ok(back.sequence < BigInt(N), "moved back mid-stream");
    const end = Date.now() + 30_000;
    let seen = { count: 0, sum: 0, repeats: 0 };
    while (Date.now() < end) {
      const local = a.listKernels().includes("acct")
        ? a.getKernel("acct")
        : undefined;
      if (local !== undefined) {
        seen = await tallyReport(local as unknown as EchoCallable);
        if (seen.count >= N) break;
      }
      await delay(100);
    }
    // Nothing more arrives (no late repeats).
    await delay(1500);
    seen = await tallyReport(a.getKernel("acct") as unknown as EchoCallable);
    assert.deepEqual(seen, { count: N, sum: (N * (N - 1)) / 2, repeats: 0 });
    const distinct = await a.getKernel("acct").call(echo(N, 0, 3));
    assert.equal(distinct.seq, BigInt(N), "every sequence 0..N-1 handled");
  });

  test("migration refusals: an actor without snapshot, an unknown node; the actor runs on", async () => {
    const a = await node("ref-a");
    const b = await node("ref-b");
    const plain = await a.launch("plain-echo", { actor: "echo", public: true });
    await assert.rejects(
      a.cluster!.migrate("plain-echo", { to: "ref-b" }),
      InvalidStateError,
    );
    await assert.rejects(
      a.cluster!.migrate("plain-echo", { to: "nowhere" }),
      InvalidStateError,
    );
    assert.equal(plain.state, "active");
    const remote = await b.cluster!.remote("plain-echo") as RemoteActor;
    assert.equal(
      (await remote.call(echo(3), { timeoutMs: 5000 }) as { seq: bigint }).seq,
      3n,
    );
  });
});
