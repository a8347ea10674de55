/**
 * The far end of the bare JavaScript floors, a `node:worker_threads` Worker
 * (the kind the CPU backend runs its actors in) that spins on a
 * SharedArrayBuffer with `Atomics.load`/`Atomics.store` only, no
 * `Atomics.wait`: the ping-pong's echoer, the one-way ring's consumer, and
 * the two-ring echo's middle. It reports "ready" once, spins until the host
 * raises the stop word, then reports "done" with the messages it handled or
 * the first sequence error.
 *
 * @module
 */

import { parentPort, workerData } from "node:worker_threads";
import { type FloorJob, FloorRing, PING, PONG, STOP } from "./floor_ring.ts";

function pingPong(words: Int32Array): number {
  let last = 0;
  let count = 0;
  for (;;) {
    let value: number;
    while ((value = Atomics.load(words, PING)) === last) {
      if (Atomics.load(words, STOP) !== 0) return count;
    }
    Atomics.store(words, PONG, value);
    last = value;
    count++;
  }
}

function consume(words: Int32Array, ring: FloorRing): number {
  let expected = 0;
  for (;;) {
    const seq = ring.tryRead();
    if (seq === undefined) {
      if (Atomics.load(words, STOP) !== 0) return expected;
      continue;
    }
    if (seq !== expected) {
      throw new Error(`ring message ${seq}, expected ${expected}`);
    }
    expected = (expected + 1) | 0;
  }
}

function echo(words: Int32Array, input: FloorRing, output: FloorRing): number {
  let count = 0;
  for (;;) {
    const seq = input.tryRead();
    if (seq === undefined) {
      output.publish();
      if (Atomics.load(words, STOP) !== 0) return count;
      continue;
    }
    output.write(seq, input.lastValue);
    count++;
  }
}

const job = workerData as FloorJob;
const words = new Int32Array(job.control);
parentPort!.postMessage({ kind: "ready" });
try {
  const count = job.mode === "pingpong"
    ? pingPong(words)
    : job.mode === "consume"
    ? consume(words, new FloorRing(job.rings![0]))
    : echo(words, new FloorRing(job.rings![0]), new FloorRing(job.rings![1]));
  parentPort!.postMessage({ kind: "done", count });
} catch (error) {
  parentPort!.postMessage({ kind: "done", error: String(error) });
}
