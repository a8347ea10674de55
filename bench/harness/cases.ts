/**
 * The measurements themselves, run inside a fresh child process: the actor
 * round trip through `call()`, the `postMessage` and `MessageChannel`
 * ping-pong baselines, `sendBatch` throughput, and the sustained run with
 * its message accounting. Each returns a {@linkcode ChildResult}.
 *
 * @module
 */

import process from "node:process";
import { Worker as ThreadWorker } from "node:worker_threads";
import { EchoMessage } from "../../src/actors/schemas.ts";
import { Ring, ringByteLength } from "../../src/ring.ts";
import { sleepSync } from "../../src/async.ts";
import { RingKernelError, TimeoutError } from "../../src/errors.ts";
import type { Kernel } from "../../src/kernel.ts";
import { RingKernel } from "../../src/runtime.ts";
import {
  type Accounting,
  type CaseName,
  CASES,
  type ChildResult,
} from "./catalog.ts";
import {
  CONTROL_BYTES,
  type FloorJob,
  FloorRing,
  floorRingBuffer,
  PING,
  PONG,
  STOP,
} from "./floor_ring.ts";

type Echo = typeof EchoMessage.spec;
type EchoValue = { seq: bigint; value: number; tag: number };

/** Options of {@linkcode runCase}. */
export interface CaseOptions {
  /** Latency: timed round trips. Throughput: timed rounds. Sustained: ignored. */
  samples: number;
  /** Latency: untimed round trips first. Throughput: untimed rounds. Sustained: untimed messages. */
  warmup: number;
  /** Messages per `sendBatch` (batched cases). */
  batch?: number;
  /** Messages per timed round (throughput cases; a multiple of `batch` is used). */
  messagesPerRound?: number;
  /** Duration of a sustained run, in seconds. */
  seconds?: number;
  /** Slots of the actor's queues (default 8192). */
  queueCapacity?: number;
}

/** Longest wait for any single reply or drain inside a case. */
const STEP_TIMEOUT_MS = 30_000;

/** The runtime running this process, and its version. */
export function currentRuntime(): { name: string; version: string } {
  const versions = process.versions as Record<string, string | undefined>;
  if (versions.bun !== undefined) return { name: "bun", version: versions.bun };
  if (versions.deno !== undefined) {
    return { name: "deno", version: versions.deno };
  }
  return { name: "node", version: versions.node ?? "unknown" };
}

function checkPositiveInteger(
  name: string,
  value: number | undefined,
  min = 1,
): number {
  if (value === undefined || !Number.isInteger(value) || value < min) {
    throw new RangeError(`${name} must be an integer ≥ ${min}, got ${value}`);
  }
  return value;
}

function checkEcho(sent: EchoValue, reply: { seq: bigint }): void {
  if (reply.seq !== sent.seq) {
    throw new RingKernelError(
      `reply carries seq ${reply.seq}, expected ${sent.seq}`,
    );
  }
}

/** Times `warmup` untimed and then `samples` timed calls of `roundTrip`, in µs each. */
async function timeRoundTrips(
  roundTrip: (message: EchoValue) => Promise<void>,
  options: CaseOptions,
): Promise<number[]> {
  const message: EchoValue = { seq: 0n, value: 0.5, tag: 7 };
  for (let i = 0; i < options.warmup; i++) {
    message.seq = BigInt(i);
    await roundTrip(message);
  }
  const samples = new Array<number>(options.samples);
  for (let i = 0; i < options.samples; i++) {
    message.seq = BigInt(options.warmup + i);
    const start = performance.now();
    await roundTrip(message);
    samples[i] = (performance.now() - start) * 1000;
  }
  return samples;
}

/** Rejects with a {@linkcode TimeoutError} when `promise` is not settled within `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(what, ms)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function withRuntime<T>(
  body: (rt: RingKernel) => Promise<T>,
): Promise<T> {
  const rt = await RingKernel.create({ backend: "cpu", quiet: true });
  try {
    return await body(rt);
  } finally {
    await rt.shutdown({ timeoutMs: 10_000 });
  }
}

function launchEcho(
  rt: RingKernel,
  queueCapacity = 1024,
): Promise<Kernel<Echo, Echo>> {
  return rt.launch<Echo, Echo>("echo", { actor: "echo", queueCapacity });
}

async function actorCall(options: CaseOptions): Promise<number[]> {
  return await withRuntime(async (rt) => {
    const kernel = await launchEcho(rt);
    return await timeRoundTrips(async (message) => {
      checkEcho(
        message,
        await kernel.call(message, { timeoutMs: STEP_TIMEOUT_MS }),
      );
    }, options);
  });
}

/** A one-at-a-time ping-pong over anything with `postMessage` and `onmessage`. */
function pingPong(
  send: (message: EchoValue) => void,
  listen: (handler: (event: MessageEvent) => void) => void,
): (message: EchoValue) => Promise<void> {
  let pending: ((reply: EchoValue) => void) | undefined;
  listen((event) => {
    const resolve = pending;
    pending = undefined;
    resolve?.(event.data as EchoValue);
  });
  return (message) =>
    within(
      new Promise<EchoValue>((resolve) => {
        pending = resolve;
        send(message);
      }),
      STEP_TIMEOUT_MS,
      "ping-pong reply",
    ).then((reply) => checkEcho(message, reply));
}

const PING_WORKER = new URL("./ping_worker.ts", import.meta.url);

async function workerPostMessage(options: CaseOptions): Promise<number[]> {
  const worker = new Worker(PING_WORKER, { type: "module" });
  try {
    const roundTrip = pingPong(
      (message) => worker.postMessage(message),
      (handler) => (worker.onmessage = handler),
    );
    return await timeRoundTrips(roundTrip, options);
  } finally {
    worker.terminate();
  }
}

async function channelWorker(options: CaseOptions): Promise<number[]> {
  const worker = new Worker(PING_WORKER, { type: "module" });
  const channel = new MessageChannel();
  try {
    const ready = new Promise<void>((resolve) => {
      worker.onmessage = () => resolve();
    });
    worker.postMessage({ port: channel.port2 }, [channel.port2]);
    await within(ready, STEP_TIMEOUT_MS, "Worker start");
    const roundTrip = pingPong(
      (message) => channel.port1.postMessage(message),
      (handler) => (channel.port1.onmessage = handler),
    );
    return await timeRoundTrips(roundTrip, options);
  } finally {
    channel.port1.close();
    worker.terminate();
  }
}

async function channelLocal(options: CaseOptions): Promise<number[]> {
  const channel = new MessageChannel();
  try {
    channel.port2.onmessage = (event) => channel.port2.postMessage(event.data);
    const roundTrip = pingPong(
      (message) => channel.port1.postMessage(message),
      (handler) => (channel.port1.onmessage = handler),
    );
    return await timeRoundTrips(roundTrip, options);
  } finally {
    channel.port1.close();
    channel.port2.close();
  }
}

function makeBatch(size: number): EchoValue[] {
  return Array.from(
    { length: size },
    (_, i) => ({ seq: BigInt(i), value: i * 0.5, tag: 7 }),
  );
}

/**
 * How long the host polls before it waits instead: long enough to catch a
 * reply that is about to arrive, short enough not to starve the actor's
 * thread when both share one core.
 */
const POLL_BEFORE_WAIT_MS = 0.05;

/**
 * Takes `count` replies, checking their order, with `receiveMany()` (the
 * library's own batch receive: it polls briefly, then waits, yielding the
 * thread, and resolves with every reply ready). Returns `count`.
 */
async function drainReplies(
  kernel: Kernel<Echo, Echo>,
  batch: readonly EchoValue[],
  count: number,
): Promise<number> {
  let got = 0;
  while (got < count) {
    const replies = await kernel.receiveMany({
      max: count - got,
      timeoutMs: STEP_TIMEOUT_MS,
    });
    for (const reply of replies) checkEcho(batch[got++], reply);
  }
  return got;
}

/**
 * Waits until the kernel has processed `target` messages: polls its
 * counters briefly, then sleeps 20 µs at a time so that an actor sharing the
 * core can run.
 */
function waitProcessed(kernel: Kernel<Echo, Echo>, target: number): void {
  const deadline = performance.now() + STEP_TIMEOUT_MS;
  const pollEnd = performance.now() + POLL_BEFORE_WAIT_MS;
  while (kernel.metrics().processed < target) {
    const now = performance.now();
    if (now > deadline) throw new TimeoutError("sink drain", STEP_TIMEOUT_MS);
    if (now > pollEnd) sleepSync(0.02);
  }
}

/** Runs `warmup` untimed and `samples` timed rounds; each sample is messages per second. */
async function timeRounds(
  options: CaseOptions,
  round: () => Promise<number>,
): Promise<number[]> {
  for (let i = 0; i < options.warmup; i++) await round();
  const samples: number[] = [];
  for (let i = 0; i < options.samples; i++) {
    const start = performance.now();
    const messages = await round();
    samples.push(messages / ((performance.now() - start) / 1000));
  }
  return samples;
}

function roundSize(options: CaseOptions): { batch: number; perRound: number } {
  const batch = checkPositiveInteger("batch", options.batch);
  const wanted = checkPositiveInteger(
    "messagesPerRound",
    options.messagesPerRound ?? 32_768,
  );
  return {
    batch,
    perRound: Math.max(batch, Math.ceil(wanted / batch) * batch),
  };
}

async function sendBatchSink(
  options: CaseOptions,
): Promise<{ samples: number[]; perRound: number }> {
  const { batch: size, perRound } = roundSize(options);
  return await withRuntime(async (rt) => {
    const kernel = await rt.launch<Echo, Echo>("sink", {
      actor: { module: new URL("./sink_actor.ts", import.meta.url) },
      queueCapacity: options.queueCapacity ?? 8192,
    });
    const batch = makeBatch(size);
    let target = 0;
    const samples = await timeRounds(options, async () => {
      for (let sent = 0; sent < perRound; sent += size) {
        await kernel.sendBatch(batch, { timeoutMs: STEP_TIMEOUT_MS });
      }
      target += perRound;
      waitProcessed(kernel, target);
      return perRound;
    });
    return { samples, perRound };
  });
}

async function sendBatchEcho(
  options: CaseOptions,
): Promise<{ samples: number[]; perRound: number }> {
  const { batch: size, perRound } = roundSize(options);
  return await withRuntime(async (rt) => {
    const kernel = await launchEcho(rt, options.queueCapacity ?? 8192);
    const batch = makeBatch(size);
    const samples = await timeRounds(options, async () => {
      for (let sent = 0; sent < perRound; sent += size) {
        await kernel.sendBatch(batch, { timeoutMs: STEP_TIMEOUT_MS });
        await drainReplies(kernel, batch, size);
      }
      return perRound;
    });
    return { samples, perRound };
  });
}

async function pipelineK2k(
  options: CaseOptions,
): Promise<{ samples: number[]; perRound: number }> {
  const { batch: size, perRound } = roundSize(options);
  return await withRuntime(async (rt) => {
    const queueCapacity = options.queueCapacity ?? 8192;
    const sink = await rt.launch<Echo, Echo>("p3", {
      actor: { module: new URL("./sink_actor.ts", import.meta.url) },
      queueCapacity,
    });
    const stage = { module: new URL("./stage_actor.ts", import.meta.url) };
    await rt.launch("p2", {
      actor: stage,
      config: { next: "p3" },
      queueCapacity,
    });
    const first = await rt.launch<Echo, Echo>("p1", {
      actor: stage,
      config: { next: "p2" },
      queueCapacity,
    });
    const batch = makeBatch(size);
    let target = 0;
    const samples = await timeRounds(options, async () => {
      for (let sent = 0; sent < perRound; sent += size) {
        await first.sendBatch(batch, { timeoutMs: STEP_TIMEOUT_MS });
      }
      target += perRound;
      waitProcessed(sink, target);
      return perRound;
    });
    return { samples, perRound };
  });
}

/** Messages per `enqueueBatch` of the batch-encode case. */
const ENCODE_BATCH = 1024;

function batchEncode(
  options: CaseOptions,
): { samples: number[]; perRound: number } {
  const perRound = Math.max(
    ENCODE_BATCH,
    Math.ceil(
      checkPositiveInteger(
        "messagesPerRound",
        options.messagesPerRound ?? 1 << 20,
      ) /
        ENCODE_BATCH,
    ) * ENCODE_BATCH,
  );
  const capacity = ENCODE_BATCH * 2;
  const ring = Ring.create(
    new SharedArrayBuffer(ringByteLength({ capacity })),
    { capacity },
  );
  const producer = ring.producer();
  const consumer = ring.consumer();
  const batch = makeBatch(ENCODE_BATCH);
  const round = () => {
    for (let sent = 0; sent < perRound; sent += ENCODE_BATCH) {
      if (producer.enqueueBatch(EchoMessage, batch) !== ENCODE_BATCH) {
        throw new RingKernelError("batch-encode: the ring had no room");
      }
      consumer.release(consumer.available());
    }
    return perRound;
  };
  for (let i = 0; i < options.warmup; i++) round();
  const samples: number[] = [];
  for (let i = 0; i < options.samples; i++) {
    const start = performance.now();
    const messages = round();
    samples.push(messages / ((performance.now() - start) / 1000));
  }
  return { samples, perRound };
}

const FLOOR_WORKER = new URL("./floor_worker.ts", import.meta.url);
/** Slots of each bare ring: the actor queues' capacity in the sendBatch cases. */
const FLOOR_RING_SLOTS = 8192;
/** Spins between two looks at the clock while a floor waits. */
const SPINS_PER_CLOCK_CHECK = 1 << 16;

/** Spins until `done()`; throws a {@linkcode TimeoutError} after {@linkcode STEP_TIMEOUT_MS}. */
function spinUntil(done: () => boolean, what: string): void {
  let spins = 0;
  let deadline = 0;
  while (!done()) {
    if (++spins === SPINS_PER_CLOCK_CHECK) {
      spins = 0;
      const now = performance.now();
      if (deadline === 0) deadline = now + STEP_TIMEOUT_MS;
      else if (now > deadline) throw new TimeoutError(what, STEP_TIMEOUT_MS);
    }
  }
}

/**
 * Starts the floor Worker on `job`, runs `body` once it is spinning, then
 * raises the stop word and checks what the Worker reports.
 */
async function withFloorWorker<T>(
  job: FloorJob,
  body: () => Promise<T>,
): Promise<T> {
  const worker = new ThreadWorker(FLOOR_WORKER, { workerData: job });
  let ready!: () => void;
  let failed!: (error: Error) => void;
  let done!: (report: { count?: number; error?: string }) => void;
  const started = new Promise<void>((resolve, reject) => {
    ready = resolve;
    failed = reject;
  });
  const finished = new Promise<{ count?: number; error?: string }>(
    (resolve) => (done = resolve),
  );
  worker.on(
    "message",
    (m: { kind: string; count?: number; error?: string }) =>
      m.kind === "ready" ? ready() : done(m),
  );
  worker.on("error", (error: Error) => {
    failed(error);
    done({ error: String(error) });
  });
  try {
    await within(started, STEP_TIMEOUT_MS, "floor Worker start");
    const result = await body();
    Atomics.store(new Int32Array(job.control), STOP, 1);
    const report = await within(finished, STEP_TIMEOUT_MS, "floor Worker end");
    if (report.error !== undefined) throw new RingKernelError(report.error);
    return result;
  } finally {
    Atomics.store(new Int32Array(job.control), STOP, 1);
    await worker.terminate();
  }
}

async function floorPingPong(options: CaseOptions): Promise<number[]> {
  const control = new SharedArrayBuffer(CONTROL_BYTES);
  const words = new Int32Array(control);
  return await withFloorWorker({ mode: "pingpong", control }, () => {
    const samples = new Array<number>(options.samples);
    const total = options.warmup + options.samples;
    for (let i = 0; i < total; i++) {
      const seq = i + 1;
      const start = performance.now();
      Atomics.store(words, PING, seq);
      if (Atomics.load(words, PONG) !== seq) {
        spinUntil(() => Atomics.load(words, PONG) === seq, "ping-pong reply");
      }
      const end = performance.now();
      if (i >= options.warmup) {
        samples[i - options.warmup] = (end - start) * 1000;
      }
    }
    return Promise.resolve(samples);
  });
}

async function floorRing(
  options: CaseOptions,
): Promise<{ samples: number[]; perRound: number }> {
  const perRound = checkPositiveInteger(
    "messagesPerRound",
    options.messagesPerRound ?? 32_768,
  );
  const buffer = floorRingBuffer(FLOOR_RING_SLOTS);
  const control = new SharedArrayBuffer(CONTROL_BYTES);
  const ring = new FloorRing(buffer);
  let seq = 0;
  const samples = await withFloorWorker(
    { mode: "consume", control, rings: [buffer] },
    () =>
      timeRounds(options, () => {
        for (let i = 0; i < perRound; i++) {
          ring.write(seq, 0.5);
          seq = (seq + 1) | 0;
        }
        ring.publish();
        const target = seq;
        spinUntil(() => ring.released() === target, "ring drained");
        return Promise.resolve(perRound);
      }),
  );
  return { samples, perRound };
}

async function floorEcho(
  options: CaseOptions,
): Promise<{ samples: number[]; perRound: number }> {
  const { batch, perRound } = roundSize(options);
  if (batch > FLOOR_RING_SLOTS) {
    throw new RangeError(`batch must be ≤ ${FLOOR_RING_SLOTS}, got ${batch}`);
  }
  const out = floorRingBuffer(FLOOR_RING_SLOTS);
  const back = floorRingBuffer(FLOOR_RING_SLOTS);
  const control = new SharedArrayBuffer(CONTROL_BYTES);
  const requests = new FloorRing(out);
  const replies = new FloorRing(back);
  let sent = 0;
  let received = 0;
  const samples = await withFloorWorker(
    { mode: "echo", control, rings: [out, back] },
    () =>
      timeRounds(options, () => {
        for (let done = 0; done < perRound; done += batch) {
          for (let i = 0; i < batch; i++) {
            requests.write(sent, 0.5);
            sent = (sent + 1) | 0;
          }
          requests.publish();
          for (let i = 0; i < batch; i++) {
            let seq = replies.tryRead();
            if (seq === undefined) {
              spinUntil(
                () => (seq = replies.tryRead()) !== undefined,
                "echo reply",
              );
            }
            if (seq !== received) {
              throw new RingKernelError(
                `echo reply ${seq}, expected ${received}`,
              );
            }
            received = (received + 1) | 0;
          }
        }
        return Promise.resolve(perRound);
      }),
  );
  return { samples, perRound };
}

/** Result of the sustained run. */
interface SustainedOutcome {
  samples: number[];
  intervals: number[];
  accounting: Accounting;
}

async function sustained(options: CaseOptions): Promise<SustainedOutcome> {
  const size = checkPositiveInteger("batch", options.batch);
  const seconds = options.seconds ?? 60;
  if (!(seconds >= 1)) {
    throw new RangeError(`seconds must be ≥ 1, got ${seconds}`);
  }
  return await withRuntime(async (rt) => {
    const kernel = await launchEcho(rt, options.queueCapacity ?? 8192);
    const batch = makeBatch(size);
    let received = 0;
    while (received < options.warmup) {
      await kernel.sendBatch(batch, { timeoutMs: STEP_TIMEOUT_MS });
      received += await drainReplies(kernel, batch, size);
    }
    const samples: number[] = [];
    const intervals: number[] = [];
    const start = performance.now();
    const end = start + seconds * 1000;
    let markTime = start;
    let markCount = received;
    let now = start;
    while (now < end) {
      await kernel.sendBatch(batch, { timeoutMs: STEP_TIMEOUT_MS });
      received += await drainReplies(kernel, batch, size);
      now = performance.now();
      if (now - markTime >= 1000) {
        const elapsed = (now - markTime) / 1000;
        samples.push((received - markCount) / elapsed);
        intervals.push(elapsed);
        markTime = now;
        markCount = received;
      }
    }
    const m = kernel.metrics();
    const unaccounted = m.sent - m.processed - m.deadLettered - m.inFlight;
    const lostReplies = m.processed - received;
    return {
      samples,
      intervals,
      accounting: {
        sent: m.sent,
        processed: m.processed,
        deadLettered: m.deadLettered,
        inFlight: m.inFlight,
        received,
        unaccounted,
        lostReplies,
        ok: unaccounted === 0 && m.inFlight === 0 && lostReplies === 0 &&
          m.deadLettered === 0,
      },
    };
  });
}

/** Runs one case in this process and returns its result. */
export async function runCase(
  name: CaseName,
  options: CaseOptions,
): Promise<ChildResult> {
  const info = CASES[name];
  if (info === undefined) throw new RangeError(`unknown case "${name}"`);
  if (info.kind !== "sustained") {
    checkPositiveInteger("samples", options.samples);
  }
  checkPositiveInteger("warmup", options.warmup, 0);
  const runtime = currentRuntime();
  const base = {
    case: name,
    runtime: runtime.name,
    version: runtime.version,
    warmup: options.warmup,
  };
  switch (name) {
    case "actor-call":
      return { ...base, samples: await actorCall(options), opsPerSample: 1 };
    case "worker-postmessage":
      return {
        ...base,
        samples: await workerPostMessage(options),
        opsPerSample: 1,
      };
    case "channel-worker":
      return {
        ...base,
        samples: await channelWorker(options),
        opsPerSample: 1,
      };
    case "channel-local":
      return { ...base, samples: await channelLocal(options), opsPerSample: 1 };
    case "sendbatch-sink": {
      const { samples, perRound } = await sendBatchSink(options);
      return { ...base, batch: options.batch, samples, opsPerSample: perRound };
    }
    case "sendbatch-echo": {
      const { samples, perRound } = await sendBatchEcho(options);
      return { ...base, batch: options.batch, samples, opsPerSample: perRound };
    }
    case "pipeline-k2k": {
      const { samples, perRound } = await pipelineK2k(options);
      return { ...base, batch: options.batch, samples, opsPerSample: perRound };
    }
    case "batch-encode": {
      const { samples, perRound } = batchEncode(options);
      return { ...base, samples, opsPerSample: perRound };
    }
    case "floor-pingpong":
      return {
        ...base,
        samples: await floorPingPong(options),
        opsPerSample: 1,
      };
    case "floor-ring": {
      const { samples, perRound } = await floorRing(options);
      return { ...base, samples, opsPerSample: perRound };
    }
    case "floor-echo": {
      const { samples, perRound } = await floorEcho(options);
      return { ...base, batch: options.batch, samples, opsPerSample: perRound };
    }
    case "sustained": {
      const outcome = await sustained(options);
      return {
        ...base,
        batch: options.batch,
        samples: outcome.samples,
        opsPerSample: 0,
        intervalSeconds: outcome.intervals,
        accounting: outcome.accounting,
      };
    }
  }
}
