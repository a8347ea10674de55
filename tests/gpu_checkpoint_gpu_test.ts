// Checkpoints and migration of GPU actors, as of CPU actors: the host
// copies a paused actor's device state to the host (`rt.checkpoint`) and
// writes it back before its first launch instead of the device init
// (`launch({ restoreFrom })`, a restart after a crash with `checkpoint`,
// the adoption of a migration). The built-in accumulator and the user
// actors of tests/fixtures/gpu_checkpoint_actors.ts (a tally of sequences
// with a bitmap, and a sum kept in device data that is part of its
// checkpoints). GPU tests are skipped without a GPU (gpu_gate.ts); with
// RINGKERNEL_REQUIRE_GPU=1 they run (on the emulator when
// RINGKERNEL_LIBCUDA points at it). The migration needs nats-server.
import assert from "node:assert/strict";
import { after, before, describe } from "node:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import {
  CheckpointCorruptError,
  CheckpointError,
  type CheckpointStore,
  decodeCheckpoint,
  FileCheckpointStore,
  MemoryCheckpointStore,
} from "../src/checkpoint.ts";
import { RingKernel, type RuntimeEvent } from "../src/runtime.ts";
import type { Kernel } from "../src/kernel.ts";
import type { EchoMessage } from "../src/actors/schemas.ts";
import { Nvrtc } from "../src/backend/cuda/nvrtc.ts";
import { delay, pollUntil } from "../src/async.ts";
import { gpuTest } from "./gpu_gate.ts";
import {
  echo,
  type EchoCallable,
  tallyReport,
  withRuntime,
} from "./helpers.ts";
import { NATS_SKIP, NatsServer } from "./fixtures/nats_server.ts";
import { TALLY_STATE_BYTES } from "./fixtures/gpu_checkpoint_actors.ts";

type Echo = typeof EchoMessage.spec;
type Tally = Kernel<Echo, Echo>;

const CUDA = { backend: "cuda", quiet: true } as const;
const ACTORS = new URL("./fixtures/gpu_checkpoint_actors.ts", import.meta.url);
const tally = { module: ACTORS, export: "tally" };
const dataSum = { module: ACTORS, export: "dataSum" };

const nvrtc = Nvrtc.probe();
const needsNvrtc = {
  skip: nvrtc.available
    ? undefined
    : `libnvrtc not installed: ${nvrtc.reason?.split("\n")[0]}`,
};

/** The tally's report (a GPU actor answers more slowly on the emulator). */
const report = (target: EchoCallable) => tallyReport(target, 10_000);

/** The sequence of the latest record of `actor` in `store` (-1n for none). */
async function latestSequence(
  store: CheckpointStore,
  actor: string,
): Promise<bigint> {
  const bytes = await store.latest(actor);
  return bytes === undefined ? -1n : decodeCheckpoint(bytes).sequence;
}

/** Waits (polling, within `timeoutMs`) until `check` holds. */
async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!await check()) {
    if (Date.now() > end) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await delay(10);
  }
}

describe("GPU actors: checkpoints", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(os.tmpdir(), "rk-gpu-checkpoint-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  gpuTest(
    "accumulator: checkpoints to a file store and a memory store; new runtimes restore them and count on",
    async () => {
      const files = new FileCheckpointStore(join(dir, "acc"));
      const memory = new MemoryCheckpointStore();
      const N = 40;
      let total = 0;
      await withRuntime(CUDA, async (rt) => {
        const acc = await rt.launch("acc", { actor: "accumulator" });
        for (let i = 1; i <= N; i++) {
          total += i / 4;
          const r = await acc.call({ value: i / 4 }, { timeoutMs: 10_000 });
          assert.deepEqual(r, { total, count: BigInt(i) });
        }
        const infoFile = await rt.checkpoint("acc", { store: files });
        assert.equal(infoFile.kind, "full");
        assert.equal(infoFile.sequence, BigInt(N));
        assert.equal(infoFile.snapshotBytes, 16, "the device state: f64 + u64");
        assert.equal(acc.state, "active", "running again after it");
        const infoMemory = await rt.checkpoint("acc", { store: memory });
        assert.equal(infoMemory.sequence, BigInt(N));
        // Added after the checkpoints: lost with the runtime.
        await acc.call({ value: 1000 }, { timeoutMs: 10_000 });
      });
      for (const store of [files, memory]) {
        await withRuntime(CUDA, async (rt) => {
          const acc = await rt.launch("acc", {
            actor: "accumulator",
            restoreFrom: store,
          });
          assert.equal(acc.backend, "cuda");
          const r = await acc.call({ value: 0.5 }, { timeoutMs: 10_000 });
          assert.deepEqual(r, { total: total + 0.5, count: BigInt(N + 1) });
          // Its sequence counts on from the record's.
          const next = await rt.checkpoint("acc", { store });
          assert.equal(next.sequence, BigInt(N + 1));
        });
      }
    },
  );

  gpuTest(
    "tally: deltas against the parent, a corrupt record and a snapshot of another actor are typed errors",
    async () => {
      const store = new FileCheckpointStore(join(dir, "tally"));
      await withRuntime(CUDA, async (rt) => {
        const k = await rt.launch("tally", { actor: tally }) as Tally;
        for (let i = 0; i < 100; i++) await k.send(echo(i, i));
        assert.deepEqual(await report(k), {
          count: 100,
          sum: (99 * 100) / 2,
          repeats: 0,
        });
        const first = await rt.checkpoint("tally", { store });
        assert.equal(first.kind, "full");
        assert.equal(first.snapshotBytes, TALLY_STATE_BYTES);
        assert.equal(first.sequence, 101n);
        for (let i = 100; i < 150; i++) await k.send(echo(i, i));
        assert.equal((await report(k)).count, 150);
        const second = await rt.checkpoint("tally", { store });
        assert.equal(second.kind, "delta");
        assert.equal(second.parentId, first.id);
        assert.equal(second.sequence, 152n);
        assert.ok(second.storedBytes < second.snapshotBytes);
        await k.terminate();

        // Restored from the delta chain, in the same runtime.
        const again = await rt.launch("tally", {
          actor: tally,
          restoreFrom: store,
        }) as Tally;
        assert.deepEqual(await report(again), {
          count: 150,
          sum: (149 * 150) / 2,
          repeats: 0,
        });
        const distinct = await again.call(echo(150, 0, 3));
        assert.equal(distinct.seq, 150n, "every sequence 0..149 seen once");
        await again.terminate();

        // A corrupt record: the launch fails with its typed error, nothing left.
        const file = join(dir, "tally", "tally", `${second.id}.rkcp`);
        const bytes = readFileSync(file);
        bytes[bytes.length - 10] ^= 1;
        writeFileSync(file, bytes);
        await assert.rejects(
          rt.launch("tally", { actor: tally, restoreFrom: store }),
          CheckpointCorruptError,
        );
        assert.deepEqual(rt.listKernels(), []);

        // A snapshot whose size is not the actor's state: refused at its start.
        const acc = await rt.launch("acc", { actor: "accumulator" });
        await acc.call({ value: 1 }, { timeoutMs: 10_000 });
        const other = new MemoryCheckpointStore();
        const info = await rt.checkpoint("acc", { store: other });
        await other.put("tally", info.id, (await other.latest("acc"))!);
        await assert.rejects(
          rt.launch("tally", { actor: tally, restoreFrom: other }),
          (error: unknown) =>
            error instanceof CheckpointError &&
            /16 bytes, its state 1040/.test(error.message),
        );
        assert.deepEqual(rt.listKernels(), ["acc"]);
      });
    },
    needsNvrtc,
  );

  gpuTest(
    "device data that is part of the state (gpu.checkpointData) travels with the snapshot",
    async () => {
      const store = new MemoryCheckpointStore();
      await withRuntime(CUDA, async (rt) => {
        const k = await rt.launch("data", {
          actor: dataSum,
          config: { start: 100 },
        }) as Tally;
        let sum = 100;
        for (let i = 1; i <= 10; i++) {
          sum += i;
          assert.deepEqual(await k.call(echo(0, i, 5)), {
            seq: BigInt(i),
            value: sum,
            tag: 5,
          });
        }
        const info = await rt.checkpoint("data", { store });
        assert.equal(info.snapshotBytes, 8 + 8, "its state, then its data");
        await k.terminate();
        // The config's start is not what it restores: the data is.
        const again = await rt.launch("data", {
          actor: dataSum,
          config: { start: 100 },
          restoreFrom: store,
        }) as Tally;
        assert.deepEqual(await again.call(echo(0, 0.5, 6)), {
          seq: 11n,
          value: sum + 0.5,
          tag: 6,
        });
      });
    },
    needsNvrtc,
  );

  gpuTest(
    "restart after a crash restores the latest checkpoint (everyMessages), and counts on",
    async () => {
      await withRuntime(CUDA, async (rt, events: RuntimeEvent[]) => {
        const store = new MemoryCheckpointStore();
        const k = await rt.launch("counter", {
          actor: tally,
          checkpoint: { store, everyMessages: 10 },
        }) as Tally;
        for (let i = 0; i < 30; i++) await k.send(echo(i, i));
        assert.deepEqual(await report(k), {
          count: 30,
          sum: (29 * 30) / 2,
          repeats: 0,
        });
        // Taken by the policy: one of all 30 counted (the report's, or before it).
        await until(
          "a checkpoint of the 30 messages",
          async () => await latestSequence(store, "counter") >= 30n,
        );
        const kept = await latestSequence(store, "counter");
        // Handled after the latest checkpoint: lost to the state at a restart.
        for (let i = 30; i < 35; i++) await k.send(echo(i, i));
        assert.equal((await report(k)).count, 35);
        await assert.rejects(k.call(echo(0, 0, 4), { timeoutMs: 10_000 }));
        await pollUntil(() => events.some((e) => e.type === "restart"), {
          timeoutMs: 20_000,
          what: "the restart",
        });
        const restart = events.find((e) => e.type === "restart") as Extract<
          RuntimeEvent,
          { type: "restart" }
        >;
        assert.equal(restart.restored?.sequence, kept);
        assert.equal(
          restart.restored?.checkpointId,
          decodeCheckpoint((await store.latest("counter"))!).id,
        );
        assert.deepEqual(await report(k), {
          count: 30,
          sum: (29 * 30) / 2,
          repeats: 0,
        });
        for (let i = 30; i < 35; i++) await k.send(echo(i, i));
        assert.deepEqual(await report(k), {
          count: 35,
          sum: (34 * 35) / 2,
          repeats: 0,
        });
        // Its checkpoints count on from the restored sequence: the two
        // reports and five sends since.
        const next = await rt.checkpoint("counter", { store });
        assert.equal(next.sequence, kept + 7n);
      });
    },
    needsNvrtc,
  );
});

describe("GPU actors: migration between runtimes", { skip: NATS_SKIP }, () => {
  let server: NatsServer;
  const runtimes: RingKernel[] = [];
  const node = async (name: string, backend: "cpu" | "cuda") => {
    const rt = await RingKernel.create({
      backend,
      quiet: true,
      cluster: { servers: server.url, name },
    });
    runtimes.push(rt);
    return rt;
  };

  before(async () => {
    server = await NatsServer.start({ jetstream: true });
  });

  after(async () => {
    await Promise.allSettled(
      runtimes.map((rt) => rt.shutdown({ timeoutMs: 5000 })),
    );
    await server?.dispose();
  });

  gpuTest(
    "a GPU actor migrates there and back while durable messages stream: each sequence handled once, the state kept",
    async () => {
      const a = await node("gpu-mig-a", "cuda");
      const b = await node("gpu-mig-b", "cuda");
      const cpuOnly = await node("gpu-mig-cpu", "cpu");
      const sender = await node("gpu-mig-sender", "cpu");
      const kernel = await a.launch("acct", { actor: tally, public: true });
      assert.equal(kernel.backend, "cuda");
      await a.cluster!.serve(kernel, { durable: { ackWaitMs: 1000 } });
      const remote = await sender.cluster!.remote<Echo, Echo>("acct");
      const N = 300;
      const migrations: Promise<unknown>[] = [];
      for (let i = 0; i < N; i++) {
        if (i === 50) {
          // A node without CUDA cannot take it: the migration fails, it runs on.
          await assert.rejects(
            a.cluster!.migrate("acct", {
              to: "gpu-mig-cpu",
              timeoutMs: 20_000,
            }),
          );
          assert.equal(a.getKernel("acct").state, "active");
          assert.deepEqual(cpuOnly.listKernels(), []);
        }
        if (i === 100) {
          migrations.push(
            a.cluster!.migrate("acct", { to: "gpu-mig-b", timeoutMs: 30_000 }),
          );
        }
        if (i === 200) {
          await migrations[0];
          assert.equal(b.getKernel("acct").backend, "cuda");
          // Back, asked of a node that does not run it.
          migrations.push(
            a.cluster!.migrate("acct", { to: "gpu-mig-a", timeoutMs: 30_000 }),
          );
        }
        await remote.send(echo(i, i), { durable: true, timeoutMs: 30_000 });
      }
      const [out, back] = await Promise.all(migrations) as {
        from: string;
        to: string;
        sequence: bigint;
      }[];
      assert.equal(out.from, "gpu-mig-a");
      assert.equal(out.to, "gpu-mig-b");
      assert.equal(back.from, "gpu-mig-b");
      assert.equal(back.to, "gpu-mig-a");
      assert.ok(out.sequence > 0n, `left gpu-mig-a at ${out.sequence}`);
      assert.ok(
        back.sequence > out.sequence,
        `left gpu-mig-b at ${back.sequence}`,
      );
      const end = Date.now() + 60_000;
      let seen = { count: 0, sum: 0, repeats: 0 };
      while (Date.now() < end) {
        const local = a.listKernels().includes("acct")
          ? a.getKernel("acct")
          : undefined;
        if (local !== undefined) {
          seen = await report(local);
          if (seen.count >= N) break;
        }
        await delay(100);
      }
      // Nothing more arrives (no late repeats).
      await delay(1500);
      const home = a.getKernel<Echo, Echo>("acct");
      assert.equal(home.backend, "cuda");
      seen = await report(home);
      assert.deepEqual(seen, { count: N, sum: (N * (N - 1)) / 2, repeats: 0 });
      const distinct = await home.call(echo(N, 0, 3));
      assert.equal(distinct.seq, BigInt(N), "every sequence 0..N-1 handled");
      assert.deepEqual(b.listKernels(), []);
    },
    { ...needsNvrtc, timeout: 240_000 },
  );
});
