// Restart after a crash restores from the latest checkpoint: an actor
// launched with `checkpoint: { store, everyMessages | everyMs }` is
// checkpointed by the runtime as it works; when a handler throws, the
// supervisor's restart runs its `restore` on the latest record instead of
// `init`, and it counts on from the checkpointed count (what it handled
// after that checkpoint is lost to its state, as documented).
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  type CheckpointStore,
  decodeCheckpoint,
  loadCheckpoint,
  MemoryCheckpointStore,
} from "../src/checkpoint.ts";
import { RingKernel, type RuntimeEvent } from "../src/runtime.ts";
import {
  ActorCrashedError,
  InvalidOptionError,
  InvalidStateError,
} from "../src/errors.ts";
import type { Kernel } from "../src/kernel.ts";
import type { EchoMessage } from "../src/actors/schemas.ts";
import { echo, fixture, tallyReport } from "./helpers.ts";

type Counter = Kernel<typeof EchoMessage.spec, typeof EchoMessage.spec>;

/** Waits (polling, within `timeoutMs`) until `check` holds. */
async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!await check()) {
    if (Date.now() > end) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The sequence of the latest record of `actor` in `store` (-1n for none). */
async function latestSequence(
  store: CheckpointStore,
  actor: string,
): Promise<bigint> {
  const bytes = await store.latest(actor);
  return bytes === undefined ? -1n : decodeCheckpoint(bytes).sequence;
}

describe("checkpoints: restart after a crash restores the latest", () => {
  const runtimes: RingKernel[] = [];
  const runtime = async () => {
    const events: RuntimeEvent[] = [];
    const rt = await RingKernel.create({
      backend: "cpu",
      quiet: true,
      onEvent: (event) => events.push(event),
    });
    runtimes.push(rt);
    return { rt, events };
  };

  after(async () => {
    await Promise.allSettled(runtimes.map((rt) => rt.shutdown()));
  });

  test("everyMessages: checkpointed as it counts, crashes, restarts from the checkpointed count", async () => {
    const { rt, events } = await runtime();
    const store = new MemoryCheckpointStore();
    const kernel = await rt.launch("counter", {
      actor: fixture("checkpoint_actor"),
      checkpoint: { store, everyMessages: 10 },
    }) as unknown as Counter;
    for (let i = 0; i < 30; i++) await kernel.send(echo(i, i));
    assert.deepEqual(await tallyReport(kernel), {
      count: 30,
      sum: (29 * 30) / 2,
      repeats: 0,
    });
    // 30 counted and one report: the policy takes a checkpoint at 31.
    await until(
      "a checkpoint of all 31 messages",
      async () => await latestSequence(store, "counter") === 31n,
    );
    // Handled after the latest checkpoint: lost to the state at a restart.
    // (Fewer than everyMessages, so no checkpoint is taken of them.)
    for (let i = 30; i < 35; i++) await kernel.send(echo(i, i));
    assert.equal((await tallyReport(kernel)).count, 35);
    await assert.rejects(
      kernel.call(echo(0, 0, 4), { timeoutMs: 5000 }),
      ActorCrashedError,
    );
    await until("the restart", () => events.some((e) => e.type === "restart"));
    const restart = events.find((e) => e.type === "restart") as Extract<
      RuntimeEvent,
      { type: "restart" }
    >;
    assert.equal(restart.restored?.sequence, 31n);
    assert.equal(
      restart.restored?.checkpointId,
      decodeCheckpoint((await store.latest("counter"))!).id,
    );
    // It counts on from the checkpointed count; the five lost sequences
    // come again without counting as repeats.
    assert.deepEqual(await tallyReport(kernel), {
      count: 30,
      sum: (29 * 30) / 2,
      repeats: 0,
    });
    for (let i = 30; i < 35; i++) await kernel.send(echo(i, i));
    assert.deepEqual(await tallyReport(kernel), {
      count: 35,
      sum: (34 * 35) / 2,
      repeats: 0,
    });
    // Its sequence counts on from the record's: 31 + 1 + 5 + 1 (the crash
    // message is not counted as handled) and the next checkpoint deltas on.
    const info = await rt.checkpoint("counter", { store });
    assert.equal(info.kind, "delta");
    assert.ok(
      info.sequence >= 31n + 7n && info.sequence <= 31n + 8n,
      `sequence ${info.sequence}`,
    );
    const loaded = await loadCheckpoint(store, "counter");
    assert.equal(loaded.record.id, info.id);
  });

  test("everyMs: a checkpoint once time passed with messages handled; none while idle", async () => {
    const { rt, events } = await runtime();
    const store = new MemoryCheckpointStore();
    const kernel = await rt.launch("timed", {
      actor: fixture("checkpoint_actor"),
      checkpoint: { store, everyMs: 40 },
    }) as unknown as Counter;
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(await store.latest("timed"), undefined, "idle: none taken");
    for (let i = 0; i < 12; i++) await kernel.send(echo(i, 1));
    assert.equal((await tallyReport(kernel)).count, 12);
    await until(
      "a checkpoint of the 13 messages",
      async () => await latestSequence(store, "timed") === 13n,
    );
    await assert.rejects(
      kernel.call(echo(0, 0, 4), { timeoutMs: 5000 }),
      ActorCrashedError,
    );
    await until("the restart", () => events.some((e) => e.type === "restart"));
    assert.deepEqual(await tallyReport(kernel), {
      count: 12,
      sum: 12,
      repeats: 0,
    });
  });

  test("no checkpoint yet: the restart runs init; the launch's restoreFrom record where the store has none", async () => {
    const { rt, events } = await runtime();
    const empty = new MemoryCheckpointStore();
    const fresh = await rt.launch("fresh", {
      actor: fixture("checkpoint_actor"),
      checkpoint: { store: empty },
    }) as unknown as Counter;
    for (let i = 0; i < 4; i++) await fresh.send(echo(i, i));
    await assert.rejects(
      fresh.call(echo(0, 0, 4), { timeoutMs: 5000 }),
      ActorCrashedError,
    );
    await until("the restart", () => events.some((e) => e.type === "restart"));
    const first = events.find((e) => e.type === "restart") as Extract<
      RuntimeEvent,
      { type: "restart" }
    >;
    assert.equal(first.restored, undefined);
    assert.equal((await tallyReport(fresh)).count, 0, "init ran");

    // A record to launch from, in another store.
    const origin = new MemoryCheckpointStore();
    const seed = await rt.launch("seed", {
      actor: fixture("checkpoint_actor"),
    });
    for (let i = 0; i < 7; i++) await seed.send(echo(i, 2));
    await tallyReport(seed as unknown as Counter);
    await rt.checkpoint("seed", { store: origin });
    await seed.terminate();
    const kept = new MemoryCheckpointStore();
    const seeded = await rt.launch("seed", {
      actor: fixture("checkpoint_actor"),
      restoreFrom: origin,
      checkpoint: { store: kept },
    }) as unknown as Counter;
    await seeded.send(echo(7, 2));
    await assert.rejects(
      seeded.call(echo(0, 0, 4), { timeoutMs: 5000 }),
      ActorCrashedError,
    );
    await until(
      "the second restart",
      () => events.filter((e) => e.type === "restart").length === 2,
    );
    assert.deepEqual(await tallyReport(seeded), {
      count: 7,
      sum: 14,
      repeats: 0,
    });
  });

  test("refusals: an actor without snapshot/restore, a bad policy", async () => {
    const { rt } = await runtime();
    const store = new MemoryCheckpointStore();
    await assert.rejects(
      rt.launch("plain", { actor: "echo", checkpoint: { store } }),
      InvalidStateError,
    );
    for (
      const bad of [
        {},
        { store: {} },
        { store, everyMessages: 0 },
        { store, everyMessages: 1.5 },
        { store, everyMs: -1 },
        { store, timeoutMs: "1s" },
      ]
    ) {
      await assert.rejects(
        rt.launch("bad", {
          actor: fixture("checkpoint_actor"),
          checkpoint: bad as never,
        }),
        InvalidOptionError,
        JSON.stringify(bad),
      );
    }
    assert.deepEqual(rt.listKernels(), []);
  });
});
