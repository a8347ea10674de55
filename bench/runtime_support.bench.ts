/**
 * Microbenchmarks of the runtime's pure support modules: topic matching with
 * many subscriptions, pub/sub delivery, the latency histogram, telemetry and
 * the dead-letter queue.
 *
 * Run with `deno run -A bench/runtime_support.bench.ts` or
 * `bun bench/runtime_support.bench.ts`.
 *
 * @module
 */

import { bench, do_not_optimize, group, run, summary } from "mitata";
import { topicMatches, TopicTree } from "../src/topic.ts";
import { PubSub } from "../src/pubsub.ts";
import { LatencyHistogram } from "../src/histogram.ts";
import { TelemetryView } from "../src/telemetry.ts";
import { DeadLetterQueue } from "../src/dead_letter.ts";
import { ActorRegistry } from "../src/registry.ts";

/** A deterministic generator, so every run measures the same work. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 4294967296;
  };
}

const REGIONS = 20;
const DEVICES = 500;

/**
 * 10 000 exact subscriptions (`sensors/rN/dM/temp`), plus one `+` and one `#`
 * subscription per region: a realistic mix for actors subscribing by device.
 */
function buildTree(): TopicTree<number> {
  const tree = new TopicTree<number>();
  let id = 0;
  for (let r = 0; r < REGIONS; r++) {
    for (let d = 0; d < DEVICES; d++) {
      tree.add(`sensors/r${r}/d${d}/temp`, id++);
    }
    tree.add(`sensors/r${r}/+/temp`, id++);
    tree.add(`sensors/r${r}/#`, id++);
  }
  tree.add("$SYS/#", id++);
  return tree;
}

const tree = buildTree();
const next = random(7);
const topics = Array.from(
  { length: 1024 },
  () =>
    `sensors/r${Math.floor(next() * REGIONS)}/d${
      Math.floor(next() * DEVICES)
    }/temp`,
);
let topicIndex = 0;

group(`topic matching (${tree.size} subscriptions)`, () => {
  bench("TopicTree.match, 3 hits", () => {
    do_not_optimize(tree.match(topics[topicIndex++ & 1023]));
  });
  bench("TopicTree.match, no hit", () => {
    do_not_optimize(tree.match("metrics/cpu/0"));
  });
  bench("topicMatches, one filter", () => {
    do_not_optimize(
      topicMatches("sensors/+/+/temp", topics[topicIndex++ & 1023]),
    );
  });
});

const broker = new PubSub<number>({ onError: () => {} });
for (let r = 0; r < REGIONS; r++) {
  for (let d = 0; d < DEVICES; d++) {
    broker.subscribe(`sensors/r${r}/d${d}/temp`, () => {}, {
      subscriberId: `actor-${r}-${d}`,
    });
  }
  broker.subscribe(`sensors/r${r}/#`, () => {}, {
    subscriberId: `region-${r}`,
  });
}

group(`pub/sub (${broker.size} subscriptions)`, () => {
  bench("PubSub.publish, 2 subscribers", () => {
    do_not_optimize(broker.publish(topics[topicIndex++ & 1023], 1));
  });
});

const histogram = new LatencyHistogram();
const latencies = Float64Array.from(
  { length: 4096 },
  () => Math.floor(Math.exp(next() * 20)),
);
let latencyIndex = 0;
for (const value of latencies) histogram.record(value);

summary(() => {
  group("latency histogram", () => {
    bench("LatencyHistogram.record", () => {
      histogram.record(latencies[latencyIndex++ & 4095]);
    });
    bench("LatencyHistogram.percentile(99)", () => {
      do_not_optimize(histogram.percentile(99));
    });
    bench("LatencyHistogram.snapshot", () => {
      do_not_optimize(histogram.snapshot());
    });
  });
});

const telemetry = TelemetryView.create({ clock: () => 1n });
group("telemetry (SharedArrayBuffer)", () => {
  bench("TelemetryView.recordMessage", () => {
    telemetry.recordMessage(latencies[latencyIndex++ & 4095]);
  });
  bench("TelemetryView.recordProcessed, batch of 64", () => {
    telemetry.recordProcessed(64, {
      totalLatencyNs: 64_000,
      minLatencyNs: 500,
      maxLatencyNs: 4000,
    });
  });
  bench("TelemetryView.snapshot", () => {
    do_not_optimize(telemetry.snapshot());
  });
});

const deadLetters = new DeadLetterQueue<number>({
  capacity: 1024,
  clock: () => 0,
});
const registry = new ActorRegistry<number>();
for (let i = 0; i < 1000; i++) registry.register(`pool/w${i}`, i);
group("dead letters and registry", () => {
  bench("DeadLetterQueue.push at capacity", () => {
    deadLetters.push({ message: 1, reason: "queue-full", actor: "a" });
  });
  bench("ActorRegistry.get (1000 names)", () => {
    do_not_optimize(registry.get("pool/w500"));
  });
  bench("ActorRegistry.find('pool/w9*') (1000 names)", () => {
    do_not_optimize(registry.find("pool/w9*"));
  });
});

await run();
