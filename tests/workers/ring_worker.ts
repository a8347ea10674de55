/**
 * Worker for the ring tests: produces or consumes sequence-numbered messages
 * on a ring in a SharedArrayBuffer and reports what it saw. Every loop has a
 * deadline, so a lost message ends in a reported error rather than a hang.
 *
 * @module
 */

import { defineMessage } from "../../src/message.ts";
import { Ring } from "../../src/ring.ts";
import { sleepSync } from "../../src/async.ts";
import { Prng } from "./prng.ts";

/** The test message: who sent it, its sequence number, and a check word. */
export const SeqMessage = defineMessage({
  name: "test.Seq",
  fields: { producer: "u32", seq: "u32", check: "u64", value: "f64" },
});

/** The check word of (producer, seq): detects torn or stale payloads. */
export function checkOf(producer: number, seq: number): bigint {
  return (BigInt(Math.imul(producer + 1, 0x9e3779b1) >>> 0) << 32n) |
    BigInt(Math.imul(seq ^ 0x5bd1e995, 0x85ebca6b) >>> 0);
}

/** What the parent asks a worker to do. */
export interface RingJob {
  /** "producer" sends `count` messages; "consumer" receives `expected` messages. */
  role: "producer" | "consumer";
  /** The buffer holding the ring. */
  buffer: SharedArrayBuffer;
  /** Ring offset in the buffer. */
  byteOffset: number;
  /** Producer id (producers). */
  producer?: number;
  /** Messages to send (producers). */
  count?: number;
  /** Messages to receive, in total (consumer). */
  expected?: number;
  /** Number of producers (consumer; for per-producer order). */
  producers?: number;
  /** Largest batch per claim or dequeue. */
  maxBatch: number;
  /** Seed of the batch sizes. */
  seed: number;
  /** Give up after this many ms. */
  timeoutMs: number;
}

/** What a worker reports. */
export interface RingReport {
  /** Messages sent or received. */
  count: number;
  /** Problems found (empty when all is well). */
  errors: string[];
  /** Messages received per producer (consumer). */
  perProducer?: number[];
}

function produce(job: RingJob): RingReport {
  const ring = Ring.attach(job.buffer, { byteOffset: job.byteOffset });
  const producer = ring.producer();
  const rng = new Prng(job.seed);
  const id = job.producer ?? 0;
  const count = job.count ?? 0;
  const end = performance.now() + job.timeoutMs;
  const view = producer.view;
  let sent = 0;
  let idle = 0;
  while (sent < count) {
    if (performance.now() > end) {
      return { count: sent, errors: [`producer ${id} timed out at ${sent}`] };
    }
    const want = Math.min(count - sent, rng.int(1, job.maxBatch));
    const granted = producer.claim(want);
    if (granted === 0) {
      producer.publish(0);
      // Full: spin a little, then sleep briefly so the consumer gets the CPU.
      if (++idle > 64) sleepSync(0.05);
      continue;
    }
    idle = 0;
    if (rng.chance(0.5)) {
      // Encode in place through the raw API.
      for (let i = 0; i < granted; i++) {
        const offset = producer.slotOffset(i);
        const seq = sent + i;
        view.setUint32(offset, SeqMessage.typeId, true);
        view.setUint16(offset + 4, SeqMessage.size, true);
        SeqMessage.encode(view, offset + 32, {
          producer: id,
          seq,
          check: checkOf(id, seq),
          value: seq / 2,
        });
      }
      producer.publish(granted);
      sent += granted;
    } else {
      producer.publish(0);
      const values = [];
      for (let i = 0; i < want; i++) {
        const seq = sent + i;
        values.push({
          producer: id,
          seq,
          check: checkOf(id, seq),
          value: seq / 2,
        });
      }
      sent += producer.enqueueBatch(SeqMessage, values, { sourceActor: id });
    }
  }
  return { count: sent, errors: [] };
}

function consume(job: RingJob): RingReport {
  const ring = Ring.attach(job.buffer, { byteOffset: job.byteOffset });
  const consumer = ring.consumer();
  const rng = new Prng(job.seed);
  const expected = job.expected ?? 0;
  const next = new Array<number>(job.producers ?? 1).fill(0);
  const errors: string[] = [];
  const end = performance.now() + job.timeoutMs;
  let received = 0;
  const fail = (message: string) => {
    if (errors.length < 20) errors.push(message);
  };
  while (received < expected) {
    const left = end - performance.now();
    if (left <= 0) {
      fail(`consumer timed out after ${received} of ${expected}`);
      break;
    }
    if (!consumer.waitReadable(Math.min(left, 100))) continue;
    received += consumer.dequeueBatch(
      rng.int(1, job.maxBatch),
      (view, offset) => {
        const typeId = view.getUint32(offset, true);
        if (typeId !== SeqMessage.typeId) {
          return fail(`slot with type id ${typeId}`);
        }
        const { producer, seq, check, value } = SeqMessage.decode(
          view,
          offset + 32,
        );
        if (producer >= next.length) {
          return fail(`unknown producer ${producer}`);
        }
        if (seq !== next[producer]) {
          fail(
            `producer ${producer}: got seq ${seq}, expected ${next[producer]}`,
          );
        }
        if (check !== checkOf(producer, seq) || value !== seq / 2) {
          fail(`producer ${producer} seq ${seq}: torn payload`);
        }
        next[producer] = seq + 1;
      },
    );
  }
  if (consumer.available() !== 0) {
    fail(`${consumer.available()} unexpected extra messages`);
  }
  return { count: received, errors, perProducer: next };
}

/** The Worker's global scope, as far as this script uses it. */
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<RingJob>) => void) | null;
  postMessage(message: RingReport): void;
};

scope.onmessage = (event) => {
  const job = event.data;
  try {
    const report = job.role === "producer" ? produce(job) : consume(job);
    scope.postMessage(report);
  } catch (error) {
    scope.postMessage({
      count: -1,
      errors: [String((error as Error)?.stack ?? error)],
    });
  }
};
