import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Ring, ringByteLength } from "../src/ring.ts";
import { deadline } from "../src/async.ts";
import type { RingJob, RingReport } from "./workers/ring_worker.ts";

const WORKER_URL = new URL("./workers/ring_worker.ts", import.meta.url);
const TIMEOUT_MS = 60_000;

/** Runs one job in a fresh Worker; the Worker is terminated whatever happens. */
function runWorker(job: RingJob, workers: Worker[]): Promise<RingReport> {
  const worker = new Worker(WORKER_URL, { type: "module" });
  workers.push(worker);
  const report = new Promise<RingReport>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<RingReport>) => resolve(event.data);
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault?.();
      reject(new Error(`worker failed: ${event.message}`));
    };
  });
  worker.postMessage(job);
  return deadline(report, TIMEOUT_MS + 10_000, { what: `${job.role} worker` });
}

async function withWorkers<T>(
  fn: (workers: Worker[]) => Promise<T>,
): Promise<T> {
  const workers: Worker[] = [];
  try {
    return await fn(workers);
  } finally {
    for (const worker of workers) worker.terminate();
  }
}

describe("rings across Workers", () => {
  test("SPSC delivers every message once, in order, across index wraparound", {
    timeout: TIMEOUT_MS + 20_000,
  }, async () => {
    const capacity = 16;
    const count = 200_000;
    const byteOffset = 256;
    const buffer = new SharedArrayBuffer(
      byteOffset + ringByteLength({ capacity }),
    );
    // Start just below 2^32 so the u32 indices wrap during the run.
    const ring = Ring.create(buffer, {
      capacity,
      byteOffset,
      initialIndex: 2 ** 32 - 1000,
    });
    await withWorkers(async (workers) => {
      const common = { buffer, byteOffset, timeoutMs: TIMEOUT_MS };
      const [consumed, produced] = await Promise.all([
        runWorker({
          ...common,
          role: "consumer",
          expected: count,
          producers: 1,
          maxBatch: 7,
          seed: 1,
        }, workers),
        runWorker({
          ...common,
          role: "producer",
          producer: 0,
          count,
          maxBatch: 12,
          seed: 2,
        }, workers),
      ]);
      assert.deepEqual(produced.errors, []);
      assert.deepEqual(consumed.errors, []);
      assert.equal(produced.count, count);
      assert.equal(consumed.count, count);
      assert.deepEqual(consumed.perProducer, [count]);
    });
    assert.equal(ring.depth(), 0);
    assert.equal(ring.stats().released, (2 ** 32 - 1000 + count) >>> 0);
  });

  test(
    "MPSC with four producer Workers loses nothing, duplicates nothing, keeps per-producer order",
    {
      timeout: TIMEOUT_MS + 20_000,
    },
    async () => {
      const capacity = 32;
      const producers = 4;
      const perProducer = 50_000;
      const buffer = new SharedArrayBuffer(ringByteLength({ capacity }));
      const ring = Ring.create(buffer, {
        capacity,
        kind: "mpsc",
        initialIndex: 2 ** 32 - 5000,
      });
      await withWorkers(async (workers) => {
        const common = { buffer, byteOffset: 0, timeoutMs: TIMEOUT_MS };
        const jobs = [
          runWorker({
            ...common,
            role: "consumer",
            expected: producers * perProducer,
            producers,
            maxBatch: 9,
            seed: 10,
          }, workers),
        ];
        for (let p = 0; p < producers; p++) {
          jobs.push(runWorker({
            ...common,
            role: "producer",
            producer: p,
            count: perProducer,
            maxBatch: 5,
            seed: 20 + p,
          }, workers));
        }
        const [consumed, ...produced] = await Promise.all(jobs);
        for (const report of produced) {
          assert.deepEqual(report.errors, []);
          assert.equal(report.count, perProducer);
        }
        assert.deepEqual(consumed.errors, []);
        assert.equal(consumed.count, producers * perProducer);
        assert.deepEqual(
          consumed.perProducer,
          new Array(producers).fill(perProducer),
        );
      });
      assert.equal(ring.depth(), 0);
    },
  );
});
