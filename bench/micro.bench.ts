/**
 * Host-only microbenchmarks of the hot paths: message encoding, ring
 * enqueue/dequeue, the hybrid logical clock, topic matching and pub/sub, and
 * the cost of one FFI call against a plain JavaScript call. Nothing here
 * crosses a thread or reaches an actor: these are the host's own costs, and
 * they are published under that name (end-to-end figures come from
 * `bench/e2e.ts`).
 *
 * Run with `deno run -A bench/micro.bench.ts` or `bun bench/micro.bench.ts`.
 * `--json` prints one JSON document (see {@linkcode MicroReport}) instead of
 * mitata's table, for the benchmark harness; `--filter <regexp>` runs a subset.
 *
 * @module
 */

import { bench, do_not_optimize, group, run, summary } from "mitata";
import process from "node:process";
import { parseArgs } from "node:util";
import { EchoMessage } from "../src/actors/schemas.ts";
import { ENVELOPE_SIZE, writeEnvelopeFor } from "../src/envelope.ts";
import { HybridClock } from "../src/hlc.ts";
import { defineMessage } from "../src/message.ts";
import { PubSub } from "../src/pubsub.ts";
import { Ring, ringByteLength } from "../src/ring.ts";
import { topicMatches, TopicTree } from "../src/topic.ts";
import { openLibrary } from "../ffi/dylib.ts";

/** One benchmark's figures, in nanoseconds per iteration. */
export interface MicroResult {
  /** The group it belongs to. */
  readonly group: string;
  /** What one iteration does. */
  readonly name: string;
  /** Mean time per iteration. */
  readonly avgNs: number;
  /** Median time per iteration. */
  readonly p50Ns: number;
  /** 99th percentile of the per-sample times. */
  readonly p99Ns: number;
  /** Fastest sample. */
  readonly minNs: number;
  /** Slowest sample. */
  readonly maxNs: number;
  /** Samples mitata took. */
  readonly samples: number;
}

/** What `--json` prints. */
export interface MicroReport {
  /** Always `"micro"`. */
  readonly kind: "micro";
  /** The runtime that ran it. */
  readonly runtime: string;
  /** Every benchmark's figures. */
  readonly results: readonly MicroResult[];
  /** Benchmarks that could not run, with the reason (e.g. no libc to open). */
  readonly skipped: readonly { name: string; reason: string }[];
}

/** The group each benchmark was registered in, by benchmark name. */
const groupNames = new Map<string, string>();
let currentGroup = "";

/** mitata's `group`, remembering the name for the JSON report. */
function section(name: string, body: () => void): void {
  currentGroup = name;
  group(name, body);
}

/** mitata's `bench`, remembering the group for the JSON report. */
function add(name: string, fn: () => void): void {
  groupNames.set(name, currentGroup);
  bench(name, fn);
}

const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  options: { json: { type: "boolean" }, filter: { type: "string" } },
  strict: true,
});

/** A 32-byte command: with the 32-byte envelope it fills one 64-byte slot. */
const Command = defineMessage({
  name: "bench.micro.Command",
  fields: {
    opcode: "u32",
    target: "u32",
    x: "f32",
    y: "f32",
    z: "f32",
    w: "f32",
    value: "f64",
  },
});
const command = { opcode: 1, target: 7, x: 1, y: 2, z: 3, w: 4, value: 0.5 };
const echo = { seq: 1n, value: 2.5, tag: 7 };
const scratch = new DataView(new ArrayBuffer(64));

section("encode one message in place (host only)", () => {
  summary(() => {
    add("32 B command: encode payload", () => {
      Command.encode(scratch, ENVELOPE_SIZE, command);
    });
    add("32 B command: envelope + payload", () => {
      writeEnvelopeFor(scratch, 0, Command);
      Command.encode(scratch, ENVELOPE_SIZE, command);
    });
    add("echo message (u64, f64, u32): envelope + payload", () => {
      writeEnvelopeFor(scratch, 0, EchoMessage);
      EchoMessage.encode(scratch, ENVELOPE_SIZE, echo);
    });
    add("32 B command: decode", () => {
      do_not_optimize(Command.decode(scratch, ENVELOPE_SIZE));
    });
  });
});

const CAPACITY = 4096;
function makeRing(kind: "spsc" | "mpsc"): Ring {
  const buffer = new SharedArrayBuffer(ringByteLength({ capacity: CAPACITY }));
  return Ring.create(buffer, { capacity: CAPACITY, kind });
}
const spsc = makeRing("spsc");
const spscProducer = spsc.producer();
const spscConsumer = spsc.consumer();
const mpsc = makeRing("mpsc");
const mpscProducer = mpsc.producer();
const mpscConsumer = mpsc.consumer();
const batch256 = Array.from({ length: 256 }, () => ({ ...command }));
let sink = 0;
const readOpcode = Command.field("opcode");
const touch = (view: DataView, offset: number) => {
  sink += readOpcode.get(view, offset + ENVELOPE_SIZE);
};

section(
  "ring enqueue/dequeue, one thread (SharedArrayBuffer, 64 B slots)",
  () => {
    summary(() => {
      add("SPSC tryEnqueue + tryDequeue (decode), one message", () => {
        spscProducer.tryEnqueue(Command, command);
        do_not_optimize(spscConsumer.tryDequeue(Command));
      });
      add("SPSC tryEnqueue + dequeueBatch(1) (read one field)", () => {
        spscProducer.tryEnqueue(Command, command);
        spscConsumer.dequeueBatch(1, touch);
      });
      add("MPSC tryEnqueue + dequeueBatch(1) (read one field)", () => {
        mpscProducer.tryEnqueue(Command, command);
        mpscConsumer.dequeueBatch(1, touch);
      });
      add("SPSC enqueueBatch(256) + dequeueBatch(256), per batch", () => {
        spscProducer.enqueueBatch(Command, batch256);
        spscConsumer.dequeueBatch(256, touch);
      });
    });
  },
);

const clock = new HybridClock({ nodeId: 1 });
const remote = new HybridClock({ nodeId: 2 });
const remoteStamp = remote.now();
section("hybrid logical clock", () => {
  add("HybridClock.now()", () => {
    do_not_optimize(clock.now());
  });
  add("HybridClock.writeNow(view, offset) (no allocation)", () => {
    clock.writeNow(scratch, 8);
  });
  add("HybridClock.update(received)", () => {
    do_not_optimize(clock.update(remoteStamp));
  });
});

const REGIONS = 20;
const DEVICES = 100;
const tree = new TopicTree<number>();
const broker = new PubSub<number>({ onError: () => {} });
for (let r = 0; r < REGIONS; r++) {
  for (let d = 0; d < DEVICES; d++) {
    tree.add(`sensors/r${r}/d${d}/temp`, r * DEVICES + d);
    broker.subscribe(`sensors/r${r}/d${d}/temp`, () => {}, {
      subscriberId: `actor-${r}-${d}`,
    });
  }
  tree.add(`sensors/r${r}/+/temp`, -1 - r);
  broker.subscribe(`sensors/r${r}/#`, () => {}, {
    subscriberId: `region-${r}`,
  });
}
const topics = Array.from(
  { length: 256 },
  (_, i) => `sensors/r${i % REGIONS}/d${(i * 7) % DEVICES}/temp`,
);
let topicIndex = 0;

section(`pub/sub topic matching (${tree.size} filters)`, () => {
  add("TopicTree.match, 2 hits", () => {
    do_not_optimize(tree.match(topics[topicIndex++ & 255]));
  });
  add("TopicTree.match, no hit", () => {
    do_not_optimize(tree.match("metrics/cpu/0"));
  });
  add("topicMatches(filter, topic), one filter", () => {
    do_not_optimize(
      topicMatches("sensors/+/+/temp", topics[topicIndex++ & 255]),
    );
  });
  add("PubSub.publish, 2 subscribers", () => {
    do_not_optimize(broker.publish(topics[topicIndex++ & 255], 1));
  });
});

const skipped: { name: string; reason: string }[] = [];
function plainAbs(x: number): number {
  return x < 0 ? -x : x;
}
let libc: ReturnType<typeof openLibc> | undefined;
function openLibc() {
  return openLibrary({
    getpid: { parameters: [], result: "i32" },
    abs: { parameters: ["i32"], result: "i32" },
  }, {
    name: "libc",
    candidates: ["libc.so.6", "libc.so", "/usr/lib/libSystem.B.dylib"],
  });
}
try {
  libc = openLibc();
} catch (error) {
  skipped.push({
    name: "FFI libc calls",
    reason: error instanceof Error ? error.message : String(error),
  });
}

section("FFI overhead: a trivial libc call vs a plain JavaScript call", () => {
  summary(() => {
    add("plain JavaScript call: abs(x) (the JIT may inline it)", () => {
      do_not_optimize(plainAbs(-7));
    });
    if (libc !== undefined) {
      const { abs, getpid } = libc.symbols;
      add("libc abs(x) through openLibrary (FFI call, no syscall)", () => {
        do_not_optimize(abs(-7));
      });
      add("libc getpid() through openLibrary (FFI call + syscall)", () => {
        do_not_optimize(getpid());
      });
    }
  });
});

const runtime = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined"
  ? "bun"
  : typeof (globalThis as { Deno?: unknown }).Deno !== "undefined"
  ? "deno"
  : "other";
const filter = flags.filter ? new RegExp(flags.filter) : undefined;

if (flags.json) {
  const { benchmarks } = await run({ format: "quiet", filter, throw: true });
  const results: MicroResult[] = [];
  for (const trial of benchmarks) {
    for (const one of trial.runs) {
      const groupName = groupNames.get(one.name) ?? "";
      if (one.stats === undefined) continue;
      results.push({
        group: groupName,
        name: one.name,
        avgNs: one.stats.avg,
        p50Ns: one.stats.p50,
        p99Ns: one.stats.p99,
        minNs: one.stats.min,
        maxNs: one.stats.max,
        samples: one.stats.samples.length,
      });
    }
  }
  const report: MicroReport = { kind: "micro", runtime, results, skipped };
  process.stdout.write(JSON.stringify(report) + "\n");
} else {
  await run({ filter });
  for (const s of skipped) console.log(`skipped ${s.name}: ${s.reason}`);
}
libc?.close();
do_not_optimize(sink);
