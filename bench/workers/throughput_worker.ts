/**
 * Worker for the data-plane throughput benchmark: moves `count` 64-byte
 * commands from a producer Worker to a consumer Worker, either through an
 * SPSC ring in a SharedArrayBuffer or with `postMessage` over a MessagePort.
 * The consumer checks the sequence of every message it receives.
 *
 * @module
 */

import { sleepSync } from "../../src/async.ts";
import { ENVELOPE_SIZE, writeEnvelopeFor } from "../../src/envelope.ts";
import { Ring } from "../../src/ring.ts";
import { BenchCommand } from "./command.ts";

/** A job for this Worker. */
export interface ThroughputJob {
  /** What this Worker does. */
  role: "ring-producer" | "ring-consumer" | "port-producer" | "port-consumer";
  /** Messages to move. */
  count: number;
  /** Messages per claim / dequeue (ring) or per postMessage (port; 1 = one message each). */
  batch: number;
  /** The ring's buffer (ring roles). */
  buffer?: SharedArrayBuffer;
  /** The channel end (port roles). */
  port?: MessagePort;
}

/** What the Worker reports: "ready" after setup, then "done" with a count and any error. */
export interface ThroughputReport {
  /** Phase. */
  kind: "ready" | "done";
  /** Messages moved. */
  count?: number;
  /** A problem, if any. */
  error?: string;
}

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: ThroughputReport): void;
};

const DEADLINE_MS = 120_000;

function ringProducer(job: ThroughputJob): number {
  const producer = Ring.attach(job.buffer!).producer();
  const view = producer.view;
  const end = performance.now() + DEADLINE_MS;
  let sent = 0;
  let idle = 0;
  const value = { opcode: 0, target: 7, x: 1, y: 2, z: 3, w: 4, value: 0.5 };
  while (sent < job.count) {
    const granted = producer.claim(Math.min(job.batch, job.count - sent));
    if (granted === 0) {
      producer.publish(0);
      if (++idle > 256) {
        if (performance.now() > end) {
          throw new Error("producer deadline passed");
        }
        sleepSync(0.02);
      }
      continue;
    }
    idle = 0;
    for (let i = 0; i < granted; i++) {
      const offset = producer.slotOffset(i);
      value.opcode = sent + i;
      writeEnvelopeFor(view, offset, BenchCommand);
      BenchCommand.encode(view, offset + ENVELOPE_SIZE, value);
    }
    producer.publish(granted);
    sent += granted;
  }
  return sent;
}

function ringConsumer(job: ThroughputJob): number {
  const consumer = Ring.attach(job.buffer!).consumer();
  const opcode = BenchCommand.field("opcode");
  const end = performance.now() + DEADLINE_MS;
  let received = 0;
  let bad = 0;
  const check = (view: DataView, offset: number) => {
    if (opcode.get(view, offset + ENVELOPE_SIZE) !== received++) bad++;
  };
  while (received < job.count) {
    if (!consumer.waitReadable(100)) {
      if (performance.now() > end) throw new Error("consumer deadline passed");
      continue;
    }
    consumer.dequeueBatch(job.batch, check);
  }
  if (bad) throw new Error(`${bad} messages out of order`);
  return received;
}

function portProducer(job: ThroughputJob): number {
  const port = job.port!;
  const value = { opcode: 0, target: 7, x: 1, y: 2, z: 3, w: 4, value: 0.5 };
  const slot = 32 + BenchCommand.size;
  let sent = 0;
  while (sent < job.count) {
    const n = Math.min(job.batch, job.count - sent);
    const bytes = new Uint8Array(n * slot);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < n; i++) {
      value.opcode = sent + i;
      writeEnvelopeFor(view, i * slot, BenchCommand);
      BenchCommand.encode(view, i * slot + ENVELOPE_SIZE, value);
    }
    // One message each is a structured clone per message; batches transfer their buffer.
    if (job.batch === 1) port.postMessage(bytes);
    else port.postMessage(bytes, [bytes.buffer]);
    sent += n;
  }
  return sent;
}

function portConsumer(job: ThroughputJob): Promise<number> {
  const port = job.port!;
  const opcode = BenchCommand.field("opcode");
  const slot = 32 + BenchCommand.size;
  return new Promise((resolve, reject) => {
    let received = 0;
    const timer = setTimeout(
      () => reject(new Error("consumer deadline passed")),
      DEADLINE_MS,
    );
    port.onmessage = (event: MessageEvent<Uint8Array>) => {
      const bytes = event.data;
      const view = new DataView(
        bytes.buffer,
        bytes.byteOffset,
        bytes.byteLength,
      );
      for (let at = 0; at < bytes.byteLength; at += slot) {
        if (opcode.get(view, at + ENVELOPE_SIZE) !== received++) {
          clearTimeout(timer);
          reject(new Error("message out of order"));
        }
      }
      if (received >= job.count) {
        clearTimeout(timer);
        port.close();
        resolve(received);
      }
    };
  });
}

let pending: ThroughputJob | undefined;

scope.onmessage = (event: MessageEvent) => {
  const data = event.data as ThroughputJob | "start";
  if (data !== "start") {
    pending = data;
    if (data.role === "port-consumer") {
      // Listen before the producer starts, so nothing waits on setup.
      portConsumer(data).then(
        (count) => scope.postMessage({ kind: "done", count }),
        (error) => scope.postMessage({ kind: "done", error: String(error) }),
      );
    }
    scope.postMessage({ kind: "ready" });
    return;
  }
  const job = pending!;
  try {
    if (job.role === "port-consumer") return;
    const count = job.role === "ring-producer"
      ? ringProducer(job)
      : job.role === "ring-consumer"
      ? ringConsumer(job)
      : portProducer(job);
    scope.postMessage({ kind: "done", count });
  } catch (error) {
    scope.postMessage({ kind: "done", error: String(error) });
  }
};
