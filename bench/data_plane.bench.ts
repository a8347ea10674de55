/**
 * Data-plane benchmarks: the host cost of encoding one 64-byte command in
 * place and enqueueing it, the effect of batching, and SPSC throughput between
 * two Workers against `postMessage` of the same payloads, measured in one run.
 *
 * Run with `deno run -A bench/data_plane.bench.ts` or
 * `bun bench/data_plane.bench.ts`. Add `--quick` for fewer Worker messages.
 *
 * @module
 */

import { bench, do_not_optimize, group, run, summary } from "mitata";
import process from "node:process";
import { parseArgs } from "node:util";
import { ENVELOPE_SIZE, writeEnvelopeFor } from "../src/envelope.ts";
import { HybridClock } from "../src/hlc.ts";
import { Ring, ringByteLength, type RingKind } from "../src/ring.ts";
import { BenchCommand } from "./workers/command.ts";
import type {
  ThroughputJob,
  ThroughputReport,
} from "./workers/throughput_worker.ts";

const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  strict: true,
  allowPositionals: false,
  options: {
    /** Fewer Worker messages. */
    quick: { type: "boolean", default: false },
  },
});

const CAPACITY = 4096;
const command = { opcode: 1, target: 7, x: 1, y: 2, z: 3, w: 4, value: 0.5 };

function makeRing(kind: RingKind, shared: boolean): Ring {
  const length = ringByteLength({ capacity: CAPACITY });
  const buffer = shared
    ? new SharedArrayBuffer(length)
    : new ArrayBuffer(length);
  return Ring.create(buffer, { capacity: CAPACITY, kind });
}

/**
 * A producer whose ring never stays full: when it is, the consumer releases
 * everything (one store per 4096 messages), so the figure is the producer's cost.
 */
function producerBench(kind: RingKind, shared: boolean) {
  const ring = makeRing(kind, shared);
  const consumer = ring.consumer();
  return {
    ring,
    producer: ring.producer(),
    drain: () => consumer.release(consumer.available()),
  };
}

const mapped = producerBench("spsc", false);
const inPlace = producerBench("spsc", false);
const sharedSpsc = producerBench("spsc", true);
const sharedMpsc = producerBench("mpsc", true);
const stamped = producerBench("spsc", false);
const clock = new HybridClock({ nodeId: 1 });
const header = { correlationId: 0, sourceActor: 1, timestamp: clock.now() };
const scratch = new DataView(new ArrayBuffer(64));

group(
  "encode + enqueue one 64 B command (32 B envelope + 32 B payload)",
  () => {
    summary(() => {
      bench("tryEnqueue · SPSC · ArrayBuffer (mapped-memory path)", () => {
        if (!mapped.producer.tryEnqueue(BenchCommand, command)) mapped.drain();
      });
      bench("claim · encode in place · publish · SPSC · ArrayBuffer", () => {
        const p = inPlace.producer;
        if (p.claim(1) === 0) {
          p.publish(0);
          inPlace.drain();
          return;
        }
        const offset = p.slotOffset(0);
        writeEnvelopeFor(p.view, offset, BenchCommand);
        BenchCommand.encode(p.view, offset + ENVELOPE_SIZE, command);
        p.publish(1);
      });
      bench("tryEnqueue · SPSC · SharedArrayBuffer (doorbell check)", () => {
        if (!sharedSpsc.producer.tryEnqueue(BenchCommand, command)) {
          sharedSpsc.drain();
        }
      });
      bench(
        "tryEnqueue · MPSC · SharedArrayBuffer (ticket CAS + stamp)",
        () => {
          if (
            !sharedMpsc.producer.tryEnqueue(BenchCommand, command)
          ) sharedMpsc.drain();
        },
      );
      bench(
        "tryEnqueue + correlation id + HLC timestamp · SPSC · ArrayBuffer",
        () => {
          header.correlationId = (header.correlationId + 1) % 0x1_0000_0000;
          if (
            !stamped.producer.tryEnqueue(BenchCommand, command, header)
          ) stamped.drain();
        },
      );
      bench("encode only (no envelope, no publish)", () => {
        BenchCommand.encode(scratch, ENVELOPE_SIZE, command);
      });
    });
  },
);

const BATCH_SIZES = [1, 8, 64, 256, 1024];
const batchRing = producerBench("spsc", false);
const batchConsumer = batchRing.ring.consumer();
const batches = new Map(
  BATCH_SIZES.map((
    n,
  ) => [n, Array.from({ length: n }, () => ({ ...command }))]),
);

group(
  "batch size: enqueueBatch of N commands, then one release (time per batch)",
  () => {
    bench(
      "enqueueBatch N=$n",
      function* (state: { get(name: string): unknown }) {
        const values = batches.get(state.get("n") as number)!;
        yield () => {
          do_not_optimize(
            batchRing.producer.enqueueBatch(BenchCommand, values),
          );
          batchConsumer.release(batchConsumer.available());
        };
      },
    ).args("n", BATCH_SIZES);
  },
);

const decodeRing = producerBench("spsc", false);
const decodeConsumer = decodeRing.ring.consumer();
const opcode = BenchCommand.field("opcode");
let sink = 0;
const readOpcode = (view: DataView, offset: number) => {
  sink += opcode.get(view, offset + ENVELOPE_SIZE);
};
const decodeAll = (view: DataView, offset: number) => {
  do_not_optimize(BenchCommand.decode(view, offset + ENVELOPE_SIZE));
};

group("consumer: dequeueBatch of 256 commands (time per batch)", () => {
  bench("read one field per message (lazy access)", () => {
    decodeRing.producer.enqueueBatch(BenchCommand, batches.get(256)!);
    decodeConsumer.dequeueBatch(256, readOpcode);
  });
  bench("decode every message", () => {
    decodeRing.producer.enqueueBatch(BenchCommand, batches.get(256)!);
    decodeConsumer.dequeueBatch(256, decodeAll);
  });
});

const results = await run();
do_not_optimize(sink);

// Per-message figures for the batch group, derived from mitata's averages.
const perMessage: string[] = [];
for (const benchmark of results.benchmarks) {
  for (const trial of benchmark.runs) {
    const n = trial.args?.n as number | undefined;
    if (trial.name.startsWith("enqueueBatch") && n && trial.stats) {
      perMessage.push(
        `  N=${String(n).padStart(4)}: ${
          (trial.stats.avg / n).toFixed(2)
        } ns per command`,
      );
    }
  }
}
console.log("\nenqueueBatch, per command (avg / N):\n" + perMessage.join("\n"));

// ---------------------------------------------------------------------------
// SPSC between two Workers vs postMessage, timed by a small custom loop: each
// case runs a producer and a consumer Worker, and the clock spans "start" to
// the consumer's "done". Figures are measured here, in this process.

const WORKER_URL = new URL("./workers/throughput_worker.ts", import.meta.url);
const quick = flags.quick;
const RING_MESSAGES = quick ? 1_000_000 : 5_000_000;
const PORT_MESSAGES = quick ? 100_000 : 300_000;
const REPEATS = 3;

function startWorker(job: ThroughputJob, transfer: Transferable[]): {
  worker: Worker;
  ready: Promise<void>;
  done: Promise<number>;
} {
  const worker = new Worker(WORKER_URL, { type: "module" });
  let onReady!: () => void;
  let onDone!: (count: number) => void;
  let onError!: (error: Error) => void;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  const done = new Promise<number>((resolve, reject) => {
    onDone = resolve;
    onError = reject;
  });
  worker.onmessage = (event: MessageEvent<ThroughputReport>) => {
    if (event.data.kind === "ready") onReady();
    else if (event.data.error) onError(new Error(event.data.error));
    else onDone(event.data.count!);
  };
  worker.onerror = (event: ErrorEvent) => {
    event.preventDefault?.();
    onError(new Error(event.message));
  };
  worker.postMessage(job, transfer);
  return { worker, ready, done };
}

/** Runs one producer/consumer pair and returns messages per second. */
async function measurePair(
  producerJob: ThroughputJob,
  consumerJob: ThroughputJob,
  transfer: [Transferable[], Transferable[]],
): Promise<number> {
  const consumer = startWorker(consumerJob, transfer[1]);
  const producer = startWorker(producerJob, transfer[0]);
  const timeout = setTimeout(() => {
    consumer.worker.terminate();
    producer.worker.terminate();
  }, 180_000);
  try {
    await Promise.all([consumer.ready, producer.ready]);
    const start = performance.now();
    consumer.worker.postMessage("start");
    producer.worker.postMessage("start");
    const [received] = await Promise.all([consumer.done, producer.done]);
    const seconds = (performance.now() - start) / 1000;
    return received / seconds;
  } finally {
    clearTimeout(timeout);
    consumer.worker.terminate();
    producer.worker.terminate();
  }
}

function ringCase(batch: number, count: number): () => Promise<number> {
  return () => {
    const buffer = new SharedArrayBuffer(
      ringByteLength({ capacity: CAPACITY }),
    );
    Ring.create(buffer, { capacity: CAPACITY });
    const job = { count, batch, buffer };
    return measurePair({ ...job, role: "ring-producer" }, {
      ...job,
      role: "ring-consumer",
    }, [[], []]);
  };
}

function portCase(batch: number, count: number): () => Promise<number> {
  return () => {
    const channel = new MessageChannel();
    const job = { count, batch };
    return measurePair(
      { ...job, role: "port-producer", port: channel.port1 },
      { ...job, role: "port-consumer", port: channel.port2 },
      [[channel.port1], [channel.port2]],
    );
  };
}

const cases: Array<[string, () => Promise<number>]> = [
  [
    "SPSC ring, SharedArrayBuffer, batches of 256",
    ringCase(256, RING_MESSAGES),
  ],
  [
    "SPSC ring, SharedArrayBuffer, batches of 1",
    ringCase(1, RING_MESSAGES / 5),
  ],
  ["postMessage, one 64 B message each", portCase(1, PORT_MESSAGES)],
  [
    "postMessage, 256 messages per transferred buffer",
    portCase(256, RING_MESSAGES / 5),
  ],
];

console.log(
  `\nWorker → Worker, 64 B commands (${REPEATS} runs each, best and median), ${
    typeof Deno !== "undefined" ? "Deno" : "Bun"
  }:`,
);
const best = new Map<string, number>();
for (const [name, measure] of cases) {
  const rates: number[] = [];
  for (let i = 0; i < REPEATS; i++) rates.push(await measure());
  rates.sort((a, b) => a - b);
  best.set(name, rates[rates.length - 1]);
  console.log(
    `  ${name.padEnd(50)} best ${
      (rates[rates.length - 1] / 1e6).toFixed(2).padStart(7)
    } Mmsg/s · median ${
      (rates[Math.floor(rates.length / 2)] / 1e6).toFixed(2).padStart(7)
    } Mmsg/s`,
  );
}
const ratio = best.get(cases[0][0])! / best.get(cases[2][0])!;
console.log(`  ratio (batched ring / postMessage each): ${ratio.toFixed(1)}×`);
