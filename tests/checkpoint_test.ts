// Checkpoints of actor state: CRC32 against known vectors, the record format
// (round trip, corruption and version typed errors), deltas and delta
// chains, the file store, and rt.checkpoint / launch({ restoreFrom }) across
// a runtime's restart.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import { join } from "node:path";
import {
  applyDelta,
  buildCheckpoint,
  CheckpointCorruptError,
  CheckpointNotFoundError,
  CheckpointVersionError,
  crc32,
  decodeCheckpoint,
  encodeDelta,
  FileCheckpointStore,
  loadCheckpoint,
  MemoryCheckpointStore,
} from "../src/checkpoint.ts";
import { RingKernel } from "../src/runtime.ts";
import { InvalidStateError } from "../src/errors.ts";
import { echo, fixture } from "./helpers.ts";

const text = (s: string) => new TextEncoder().encode(s);

/** A deterministic pseudo-random byte source. */
function bytesOf(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

describe("checkpoint format", () => {
  test("CRC32 (IEEE) of known vectors", () => {
    assert.equal(crc32(new Uint8Array(0)), 0);
    assert.equal(crc32(text("a")), 0xe8b7be43);
    assert.equal(crc32(text("123456789")), 0xcbf43926);
    assert.equal(
      crc32(text("The quick brown fox jumps over the lazy dog")),
      0x414fa339,
    );
    // Continued over pieces: the same as at once.
    assert.equal(crc32(text("6789"), crc32(text("12345"))), 0xcbf43926);
  });

  test("a record round-trips; corruption and another version are typed errors", () => {
    const snapshot = bytesOf(300, 7);
    const { record, bytes } = buildCheckpoint({
      actor: "counter/ü",
      sequence: 123n,
      snapshot,
      base: undefined,
    });
    const back = decodeCheckpoint(bytes);
    assert.deepEqual(back, record);
    assert.equal(back.kind, "full");
    assert.equal(back.actor, "counter/ü");
    assert.equal(back.sequence, 123n);
    assert.deepEqual(back.payload, snapshot);
    for (const at of [0, 9, 20, 60, bytes.length - 1]) {
      const bad = bytes.slice();
      bad[at] ^= 0x10;
      assert.throws(() => decodeCheckpoint(bad), CheckpointCorruptError);
    }
    assert.throws(
      () => decodeCheckpoint(bytes.subarray(0, bytes.length - 1)),
      CheckpointCorruptError,
    );
    const future = bytes.slice();
    new DataView(future.buffer).setUint16(4, 2, true);
    assert.throws(
      () => decodeCheckpoint(future),
      (e: unknown) => e instanceof CheckpointVersionError && e.version === 2,
    );
  });

  test("deltas: smaller than the snapshot when little changed, exact when applied", () => {
    for (let seed = 1; seed < 60; seed++) {
      const base = bytesOf(200 + seed * 7, seed);
      const next = base.slice(0, base.length + (seed % 5) * 3 - 6);
      const noise = bytesOf(16, seed + 1000);
      for (let k = 0; k < (seed % 6); k++) {
        next[(noise[k] * 7 + k * 31) % next.length] ^= noise[k] | 1;
      }
      const delta = encodeDelta(base, next);
      assert.ok(delta !== undefined && delta.length < next.length);
      assert.deepEqual(applyDelta(base, delta, next.length), next);
    }
    // Everything changed: no delta.
    assert.equal(encodeDelta(bytesOf(100, 1), bytesOf(100, 2)), undefined);
  });

  test("a chain of deltas restores the newest snapshot; a missing parent is a typed error", async () => {
    const store = new MemoryCheckpointStore();
    let base;
    const snapshots: Uint8Array[] = [];
    let state = bytesOf(1000, 3);
    for (let i = 0; i < 12; i++) {
      state = state.slice();
      state[(i * 37) % state.length] ^= 0xff;
      snapshots.push(state);
      const built = buildCheckpoint({
        actor: "a",
        sequence: BigInt(i),
        snapshot: state,
        base,
      });
      await store.put("a", built.record.id, built.bytes);
      base = built.base;
      // Full every MAX_DELTA_CHAIN + 1 records.
      assert.equal(built.record.kind, i % 9 === 0 ? "full" : "delta");
    }
    const loaded = await loadCheckpoint(store, "a");
    assert.deepEqual(loaded.snapshot, snapshots[11]);
    assert.equal(loaded.record.sequence, 11n);
    assert.equal(loaded.chain, 3);
    const broken = new MemoryCheckpointStore();
    await broken.put("a", loaded.record.id, (await store.latest("a"))!);
    await assert.rejects(loadCheckpoint(broken, "a"), CheckpointNotFoundError);
    await assert.rejects(
      loadCheckpoint(new MemoryCheckpointStore(), "a"),
      CheckpointNotFoundError,
    );
  });
});

describe("checkpoints of a running actor", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(os.tmpdir(), "rk-checkpoint-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const report = async (
    kernel: Awaited<ReturnType<RingKernel["launch"]>>,
  ) => {
    const r = await kernel.call(echo(0, 0, 1), { timeoutMs: 5000 }) as {
      seq: bigint;
      value: number;
      tag: number;
    };
    return { count: Number(r.seq), sum: r.value, repeats: r.tag };
  };

  test("rt.checkpoint to a file store, restored by a new runtime (restart); deltas after the first", async () => {
    const store = new FileCheckpointStore(join(dir, "files"));
    {
      await using rt = await RingKernel.create({ backend: "cpu", quiet: true });
      const kernel = await rt.launch("counter", {
        actor: fixture("checkpoint_actor"),
      });
      for (let i = 0; i < 100; i++) await kernel.send(echo(i, i));
      // Handled in order: once the report is back, all 100 were handled.
      assert.equal((await report(kernel)).count, 100);
      const first = await rt.checkpoint("counter", { store });
      assert.equal(first.kind, "full");
      assert.equal(first.sequence, 101n);
      assert.equal(kernel.state, "active", "running again after it");
      for (let i = 100; i < 150; i++) await kernel.send(echo(i, i));
      assert.equal((await report(kernel)).count, 150);
      const second = await rt.checkpoint("counter", { store });
      assert.equal(second.kind, "delta");
      assert.equal(second.parentId, first.id);
      assert.equal(second.sequence, 152n);
      assert.ok(second.storedBytes < second.snapshotBytes);
      // Sent after the checkpoint: lost with the runtime.
      await kernel.send(echo(150, 150));
    }
    await using rt = await RingKernel.create({ backend: "cpu", quiet: true });
    const kernel = await rt.launch("counter", {
      actor: fixture("checkpoint_actor"),
      restoreFrom: store,
    });
    assert.deepEqual(await report(kernel), {
      count: 150,
      sum: (149 * 150) / 2,
      repeats: 0,
    });
    // Counts on: the next checkpoint's sequence includes what came before.
    for (let i = 150; i < 160; i++) await kernel.send(echo(i, i));
    assert.equal((await report(kernel)).count, 160);
    const third = await rt.checkpoint("counter", { store });
    // 152 restored + 12 handled here (two reports and 10 sends).
    assert.equal(third.sequence, 164n);
    assert.equal(third.kind, "delta");
    const files = readdirSync(join(dir, "files", "counter"));
    assert.ok(files.includes("latest"));
    assert.equal(files.filter((f) => f.endsWith(".rkcp")).length, 3);
  });

  test("a corrupt record fails the launch with CheckpointCorruptError, leaving nothing", async () => {
    const store = new FileCheckpointStore(join(dir, "corrupt"));
    await using rt = await RingKernel.create({ backend: "cpu", quiet: true });
    const kernel = await rt.launch("c2", {
      actor: fixture("checkpoint_actor"),
    });
    await kernel.send(echo(1, 1));
    const info = await rt.checkpoint("c2", { store });
    await kernel.terminate();
    const file = join(dir, "corrupt", "c2", `${info.id}.rkcp`);
    const bytes = readFileSync(file);
    bytes[bytes.length - 10] ^= 1;
    writeFileSync(file, bytes);
    await assert.rejects(
      rt.launch("c2", {
        actor: fixture("checkpoint_actor"),
        restoreFrom: store,
      }),
      CheckpointCorruptError,
    );
    assert.deepEqual(rt.listKernels(), []);
    await assert.rejects(
      rt.launch("c3", {
        actor: fixture("checkpoint_actor"),
        restoreFrom: { store, id: "0123456789abcdef" },
      }),
      CheckpointNotFoundError,
    );
  });

  test("an actor without snapshot cannot be checkpointed; it runs on", async () => {
    await using rt = await RingKernel.create({ backend: "cpu", quiet: true });
    const kernel = await rt.launch("e", { actor: "echo" });
    await assert.rejects(
      rt.checkpoint("e", { store: new MemoryCheckpointStore() }),
      InvalidStateError,
    );
    assert.equal(kernel.state, "active");
    assert.equal((await kernel.call(echo(5))).seq, 5n);
  });
});
