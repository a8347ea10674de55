// Migration under load and when it fails: plain calls and sends in flight
// while an actor migrates away and back are each answered once (the
// callers' nodes ask again while the source says where it goes) or fail
// with a typed error within their deadlines, none hang; and the two-phase
// adoption: a target too slow to launch the actor before the source gives
// up, or killed while it launches, never serves it beside the source, which
// runs on with its state.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { EchoMessage } from "../src/actors/schemas.ts";
import { RingKernelError, TimeoutError } from "../src/errors.ts";
import type { RemoteActor } from "../cluster.ts";
import { delay } from "../src/async.ts";
import { echo, type EchoCallable, fixture, tallyReport } from "./helpers.ts";
import { NATS_SKIP } from "./fixtures/nats_server.ts";
import { useJetStreamNodes } from "./fixtures/cluster_nodes.ts";

type Echo = typeof EchoMessage.spec;
describe("cluster: plain requests during a migration, two-phase adoption", {
  skip: NATS_SKIP,
}, () => {
  const { node, spawnNode } = useJetStreamNodes();

  test("plain sends and calls in flight while the actor migrates away and back: each answered once, none hang", async () => {
    const a = await node("load-a");
    const b = await node("load-b");
    const c = await node("load-c");
    await a.launch("busy", {
      actor: fixture("checkpoint_actor"),
      public: true,
    });
    const remote = await c.cluster!.remote<Echo, Echo>("busy");
    const TIMEOUT = 5000;
    let seq = 0;
    let running = true;
    const sent: number[] = [];
    const failures: unknown[] = [];
    let calls = 0;
    let slowest = 0;
    const timed = async (work: () => Promise<unknown>) => {
      const start = Date.now();
      try {
        await work();
        return true;
      } catch (error) {
        failures.push(error);
        return false;
      } finally {
        slowest = Math.max(slowest, Date.now() - start);
      }
    };
    const loops = Array.from({ length: 4 }, async () => {
      while (running) {
        const s = seq++;
        if (
          await timed(() => remote.send(echo(s, 1), { timeoutMs: TIMEOUT }))
        ) {
          sent.push(s);
        }
        if (s % 5 === 0) {
          if (
            await timed(() =>
              remote.call(echo(0, 0, 3), { timeoutMs: TIMEOUT })
            )
          ) calls++;
        }
      }
    });
    await delay(200);
    const out = await a.cluster!.migrate("busy", { to: "load-b" });
    await delay(200);
    // Back, asked of a node that does not run it.
    const back = await a.cluster!.migrate("busy", { to: "load-a" });
    await delay(200);
    running = false;
    await Promise.all(loops);
    assert.equal(out.to, "load-b");
    assert.equal(back.to, "load-a");
    assert.ok(b.listKernels().length === 0, "the target's copy went back");
    assert.ok(
      slowest <= TIMEOUT + 1000,
      `an operation took ${slowest} ms (deadline ${TIMEOUT})`,
    );
    for (const error of failures) {
      assert.ok(error instanceof RingKernelError, `untyped: ${error}`);
    }
    assert.deepEqual(failures, [], "every request answered");
    assert.ok(sent.length > 50, `${sent.length} sends`);
    assert.ok(calls > 10, `${calls} calls`);
    const kernel = a.getKernel("busy") as unknown as EchoCallable;
    assert.deepEqual(await tallyReport(kernel), {
      count: sent.length,
      sum: sent.length,
      repeats: 0,
    });
    const distinct = await kernel.call(echo(seq, 0, 3)) as { seq: bigint };
    assert.equal(distinct.seq, BigInt(sent.length), "each send handled once");
  });

  test("a target too slow to adopt before the source gives up drops its copy; the source runs on, served alone", async () => {
    const a = await node("slow-a");
    const b = await node("slow-b");
    const kernel = await a.launch("slowpoke", {
      actor: fixture("checkpoint_actor"),
      config: { restoreDelayMs: 3300 },
      public: true,
    });
    for (let i = 0; i < 10; i++) await kernel.send(echo(i, i));
    const started = Date.now();
    await assert.rejects(
      a.cluster!.migrate("slowpoke", { to: "slow-b", timeoutMs: 4000 }),
      TimeoutError,
    );
    assert.ok(Date.now() - started < 4000 + 1500, "failed near its deadline");
    // The target finishes launching after the source gave up, then drops
    // its copy (the abort came while it launched); never two serve it.
    const end = Date.now() + 6000;
    while (Date.now() < end) {
      assert.deepEqual(b.cluster!.served, [], "the target never serves it");
      if (b.listKernels().length === 0 && Date.now() - started > 4500) break;
      await delay(50);
    }
    assert.deepEqual(b.listKernels(), [], "the target holds no copy");
    assert.equal(kernel.state, "active");
    assert.deepEqual(a.cluster!.served, ["slowpoke"]);
    const fromB = await b.cluster!.remote("slowpoke");
    assert.equal(fromB.node, "slow-a");
    assert.deepEqual(await tallyReport(fromB as unknown as EchoCallable), {
      count: 10,
      sum: 45,
      repeats: 0,
    });
  });

  test("a target killed while it adopts: the source aborts and runs on", async () => {
    const a = await node("kill-a");
    const child = await spawnNode("kill-b");
    const kernel = await a.launch("doomed-move", {
      actor: fixture("checkpoint_actor"),
      config: { restoreDelayMs: 3000 },
      public: true,
    });
    for (let i = 0; i < 5; i++) await kernel.send(echo(i, 2));
    const migration = a.cluster!.migrate("doomed-move", {
      to: "kill-b",
      timeoutMs: 6000,
    });
    await delay(800);
    child.kill("SIGKILL");
    await assert.rejects(migration, TimeoutError);
    assert.equal(kernel.state, "active");
    assert.deepEqual(a.cluster!.served, ["doomed-move"]);
    // Asked of another node (a node does not hear its own requests).
    const c = await node("kill-c");
    const remote = await c.cluster!.remote("doomed-move") as RemoteActor;
    assert.equal(remote.node, "kill-a");
    assert.deepEqual(await tallyReport(remote as unknown as EchoCallable), {
      count: 5,
      sum: 10,
      repeats: 0,
    });
  });
});
