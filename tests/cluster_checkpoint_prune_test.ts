// Pruning of the JetStream checkpoint stream: when a full record starts a
// new chain, the store deletes the records of the actor outside its newest
// `keepChains` chains (default 1: the latest full record and its deltas);
// what is kept restores, what went is not in the stream.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { RingKernel } from "../src/runtime.ts";
import { loadCheckpoint, MAX_DELTA_CHAIN } from "../src/checkpoint.ts";
import { InvalidOptionError } from "../src/errors.ts";
import type { CheckpointInfo } from "../mod.ts";
import { echo, fixture } from "./helpers.ts";
import { NATS_SKIP, NatsServer } from "./fixtures/nats_server.ts";

describe("cluster: pruning the checkpoint stream", { skip: NATS_SKIP }, () => {
  let server: NatsServer;
  let rt: RingKernel;

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
    rt = await RingKernel.create({
      backend: "cpu",
      quiet: true,
      cluster: { servers: server.url, name: "prune-a" },
    });
  });

  after(async () => {
    await rt?.shutdown({ timeoutMs: 2000 });
    await server?.dispose();
  });

  /** Takes `n` checkpoints of `name`, a message handled before each. */
  async function checkpoints(
    name: string,
    n: number,
    store: Parameters<RingKernel["checkpoint"]>[1]["store"],
  ): Promise<CheckpointInfo[]> {
    const kernel = rt.getKernel(name);
    const infos: CheckpointInfo[] = [];
    for (let i = 0; i < n; i++) {
      await kernel.send(echo(infos.length + i, 1));
      infos.push(await rt.checkpoint(name, { store }));
    }
    return infos;
  }

  test("keepChains 1 (default): only the latest full record and its deltas stay", async () => {
    const store = await rt.cluster!.checkpointStore();
    assert.equal(store.keepChains, 1);
    await rt.launch("pruned", { actor: fixture("checkpoint_actor") });
    const chain = MAX_DELTA_CHAIN + 1; // a full record, then 8 deltas
    const infos = await checkpoints("pruned", 2 * chain + 3, store);
    assert.deepEqual(
      infos.map((i) => i.kind === "full" ? "F" : "d").join(""),
      ("F" + "d".repeat(MAX_DELTA_CHAIN)).repeat(2) + "Fdd",
    );
    const kept = infos.slice(2 * chain).map((i) => i.id).sort();
    assert.deepEqual((await store.ids("pruned")).sort(), kept);
    const loaded = await loadCheckpoint(store, "pruned");
    assert.equal(loaded.record.id, infos.at(-1)!.id);
    assert.equal(loaded.chain, 3);
  });

  test("keepChains 2: the chain before the latest stays too, and restores", async () => {
    const store = await rt.cluster!.checkpointStore({ keepChains: 2 });
    await rt.launch("kept", { actor: fixture("checkpoint_actor") });
    const chain = MAX_DELTA_CHAIN + 1;
    const infos = await checkpoints("kept", 3 * chain + 1, store);
    const kept = infos.slice(2 * chain).map((i) => i.id).sort();
    assert.deepEqual((await store.ids("kept")).sort(), kept);
    // The older chain's last record still restores through its deltas.
    const older = infos[3 * chain - 1];
    const loaded = await loadCheckpoint(store, "kept", older.id);
    assert.equal(loaded.chain, chain);
    assert.equal(loaded.record.sequence, older.sequence);
    await assert.rejects(
      rt.cluster!.checkpointStore({ keepChains: 0 }),
      InvalidOptionError,
    );
  });
});
