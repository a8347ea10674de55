// Every example runs here, on the backend "auto" picks (the CPU backend
// without a GPU), and its observable results are checked; the examples over
// built-in actors run again, unchanged, with backend "cuda" where it works (a
// GPU, or the CPU emulator of the driver).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { main as hello } from "../examples/hello.ts";
import { main as pipeline } from "../examples/pipeline.ts";
import { main as pubsub } from "../examples/pubsub.ts";
import { main as supervision } from "../examples/supervision.ts";
import { main as demo } from "../examples/demo.ts";
import { main as gpuActor } from "../examples/gpu_actor.ts";
import { main as gpuReduce } from "../examples/gpu_reduce.ts";
import { main as receiveMany } from "../examples/receive_many.ts";
import { main as k2kBatch } from "../examples/k2k_batch.ts";
import { main as backpressure } from "../examples/backpressure.ts";
import { main as actorGroup } from "../examples/actor_group.ts";
import { main as keyedGroup } from "../examples/keyed_group.ts";
import { main as telemetry } from "../examples/telemetry.ts";
import { main as deadLetters } from "../examples/dead_letters.ts";
import { main as lifecycle } from "../examples/lifecycle.ts";
import { main as deferredReply } from "../examples/deferred_reply.ts";
import { main as wavesimTiles } from "../examples/wavesim_tiles.ts";
import { main as checkpoint } from "../examples/checkpoint.ts";
import { main as clusterDurable } from "../examples/cluster_durable.ts";
import { main as gpuPipeline } from "../examples/gpu_pipeline.ts";
import { main as gpuFanout } from "../examples/gpu_fanout.ts";
import fahrenheit from "../examples/actors/fahrenheit.ts";
import { gpuImplementationOf } from "../src/backend/cuda/gpu_actor.ts";
import { findOnPath } from "../bench/harness/spawn.ts";
import { Nvrtc } from "../src/backend/cuda/nvrtc.ts";
import { gpuTestOptions, requireGpu } from "./gpu_gate.ts";
import { memberIndexForKey } from "../mod.ts";

const EXPECTED_CONVERSIONS = [
  { sensor: 0, fahrenheit: -40, hot: false },
  { sensor: 1, fahrenheit: 32, hot: false },
  { sensor: 2, fahrenheit: 70.7, hot: false },
  { sensor: 3, fahrenheit: 98.6, hot: false },
  { sensor: 4, fahrenheit: 105.8, hot: true },
  { sensor: 5, fahrenheit: 212, hot: true },
];

const EXPECTED_REDUCE = {
  sum: -646400,
  min: -500,
  max: 499,
  rangeSum: -500,
  count: 1 << 20,
};

describe("examples", () => {
  test("hello: call, send and receive", async () => {
    const result = await hello("auto");
    assert.deepEqual(result.echoed, { seq: 1n, value: 3.14, tag: 42 });
    assert.deepEqual(result.totals, [1, 3, 6, 10]);
  });

  test("pipeline: three actors, K2K, in order", async () => {
    const result = await pipeline("auto", 200);
    assert.deepEqual(result.sequence, [...Array(200).keys()].map(BigInt));
    assert.deepEqual(result.processed, { sink: 200, middle: 200, head: 200 });
  });

  test("pubsub: wildcards for host handlers and actors", async () => {
    const result = await pubsub("auto");
    assert.deepEqual(result.seen, [
      "sensors/+/temperature <- sensors/kitchen/temperature",
      "sensors/# <- sensors/kitchen/temperature",
      "sensors/+/temperature <- sensors/hall/temperature",
      "sensors/# <- sensors/hall/temperature",
      "sensors/# <- sensors/kitchen",
      "sensors/# <- sensors",
    ]);
    assert.deepEqual(result.actorReceived, [0n, 2n]);
  });

  test("supervision: crash, restart with fresh state, dead letter", async () => {
    const result = await supervision();
    assert.deepEqual(result.events, ["crash (restart)", "restart"]);
    assert.deepEqual(result.tags, [1, 2, 1]);
    assert.equal(result.deadLetters.length, 1);
    assert.match(
      result.deadLetters[0],
      /^handler-error: Error: negative value -1/,
    );
  });

  test("gpu_actor: your own actor, converted on the CPU side", async () => {
    const result = await gpuActor("cpu");
    assert.deepEqual(result.converted, EXPECTED_CONVERSIONS);
  });

  test("gpu_reduce: a reduction across a group, on the CPU backend", async () => {
    const { backend, ...result } = await gpuReduce("cpu");
    assert.equal(backend, "cpu");
    assert.deepEqual(result, EXPECTED_REDUCE);
  });

  test("demo: runs end to end and accounts for every message", async () => {
    const result = await demo({ calls: 200, piped: 1_000 });
    assert.equal(result.calls, 200);
    assert.ok(result.p50Micros > 0);
    assert.equal(result.accounted, true);
  });
});

describe("examples on the CUDA backend", () => {
  const gpuTest = (name: string, fn: () => Promise<void>) =>
    test(name, { ...gpuTestOptions(), timeout: 60_000 }, async () => {
      requireGpu();
      await fn();
    });

  gpuTest("hello", async () => {
    const result = await hello("cuda");
    assert.equal(result.backend, "cuda");
    assert.deepEqual(result.echoed, { seq: 1n, value: 3.14, tag: 42 });
    assert.deepEqual(result.totals, [1, 3, 6, 10]);
  });

  gpuTest("pipeline (K2K on the device)", async () => {
    const result = await pipeline("cuda", 200);
    assert.deepEqual(result.sequence, [...Array(200).keys()].map(BigInt));
    assert.deepEqual(result.processed, { sink: 200, middle: 200, head: 200 });
  });

  const nvrtc = Nvrtc.probe();
  test(
    "gpu_actor (CUDA C++ compiled by NVRTC)",
    nvrtc.available ? { ...gpuTestOptions(), timeout: 60_000 } : {
      skip: `libnvrtc not installed: ${nvrtc.reason?.split("\n")[0]}`,
    },
    async () => {
      requireGpu();
      const result = await gpuActor("cuda");
      assert.equal(result.backend, "cuda");
      assert.deepEqual(result.converted, EXPECTED_CONVERSIONS);
    },
  );

  test(
    "gpu_reduce (a reduction across blocks, NVRTC)",
    nvrtc.available ? { ...gpuTestOptions(), timeout: 60_000 } : {
      skip: `libnvrtc not installed: ${nvrtc.reason?.split("\n")[0]}`,
    },
    async () => {
      requireGpu();
      const { backend, ...result } = await gpuReduce("cuda");
      assert.equal(backend, "cuda");
      assert.deepEqual(result, EXPECTED_REDUCE);
    },
  );

  gpuTest("pubsub", async () => {
    const result = await pubsub("cuda");
    assert.deepEqual(result.actorReceived, [0n, 2n]);
    assert.equal(result.seen.length, 6);
  });
});

describe("the GPU actor example's device code", () => {
  const nvcc = findOnPath("nvcc");
  test("compiles with nvcc against ringkernel.cuh", {
    skip: nvcc === undefined && "nvcc is not on PATH",
    timeout: 120_000,
  }, () => {
    const source = gpuImplementationOf(fahrenheit)?.source;
    assert.ok(source !== undefined && "cuda" in source);
    const dir = mkdtempSync(join(tmpdir(), "rk-example-cu-"));
    try {
      writeFileSync(join(dir, "fahrenheit.cu"), source.cuda);
      const result = spawnSync(nvcc!, [
        "-ptx",
        "-arch=compute_80",
        "-std=c++17",
        "-I",
        fileURLToPath(new URL("../cuda/", import.meta.url)),
        "-o",
        join(dir, "fahrenheit.ptx"),
        join(dir, "fahrenheit.cu"),
      ], { encoding: "utf8", timeout: 110_000 });
      assert.equal(result.status, 0, result.stderr);
      assert.match(
        readFileSync(join(dir, "fahrenheit.ptx"), "utf8"),
        /\.entry example_fahrenheit_pool\(/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The examples of the runtime's features, each on the backend "auto" picks
// and again on the CUDA backend where it works; every wait has a deadline.
const FEATURE_TIMEOUT = { timeout: 120_000 };

function checkReceiveMany(r: Awaited<ReturnType<typeof receiveMany>>): void {
  assert.deepEqual(r.sequence, [...Array(500).keys()].map(BigInt));
  assert.ok(r.batches.length < 500, "replies came several at a time");
  assert.ok(r.batches.every((n) => n >= 1 && n <= 256));
  assert.equal(r.leftOver, 0);
}

function checkBackpressure(r: Awaited<ReturnType<typeof backpressure>>): void {
  assert.equal(r.accepted, 16);
  assert.equal(r.queueFull, true);
  assert.equal(r.waitedAndSent, true);
  assert.equal(r.replies, 17);
}

function checkActorGroup(r: Awaited<ReturnType<typeof actorGroup>>): void {
  assert.deepEqual(r.members, ["worker-0", "worker-1", "worker-2", "worker-3"]);
  assert.deepEqual(r.echoed, [0, 10, 20, 30]);
  assert.deepEqual(r.states, ["terminated", "active", "active", "active"]);
}

function checkKeyedGroup(r: Awaited<ReturnType<typeof keyedGroup>>): void {
  const sensors = ["kitchen", "hall", "garage", "attic", "cellar"];
  const expected: Record<string, number> = {};
  sensors.forEach((sensor, i) => {
    const member = `totals-${memberIndexForKey(sensor, 3)}`;
    assert.equal(r.assignment[sensor], member);
    expected[member] = (expected[member] ?? 0) + 6 * (i + 1); // rounds 1+2+3
  });
  assert.deepEqual(r.totals, expected);
}

function checkTelemetry(r: Awaited<ReturnType<typeof telemetry>>): void {
  assert.equal(r.processed, 400);
  assert.equal(r.accounted, true);
  assert.ok(r.timedCalls >= 1);
  assert.ok(r.p50Micros > 0 && r.p99Micros >= r.p50Micros);
  assert.equal(r.stampIsRecent, true);
  assert.deepEqual(r.events, []);
}

function checkLifecycle(r: Awaited<ReturnType<typeof lifecycle>>): void {
  assert.deepEqual(r.states, [
    "launched",
    "active",
    "deactivated",
    "terminated",
  ]);
  assert.equal(r.processedWhilePaused, 0);
  assert.deepEqual(r.totals, [1, 3, 6]);
  assert.equal(r.invalid, "InvalidStateError");
}

describe("examples of the runtime's features", () => {
  test("receive_many: replies in batches", FEATURE_TIMEOUT, async () => {
    checkReceiveMany(await receiveMany("auto"));
  });

  test(
    "k2k_batch: ctx.sendBatch and ctx.trySend",
    FEATURE_TIMEOUT,
    async () => {
      const r = await k2kBatch();
      assert.equal(r.batchAccepted, 50);
      assert.equal(r.tryAccepted, 10);
      assert.deepEqual(r.received, [
        ...Array.from({ length: 50 }, (_, i) => 1000n + BigInt(i)),
        ...Array.from({ length: 10 }, (_, i) => 2000n + BigInt(i)),
      ]);
    },
  );

  test(
    "backpressure: trySend false, QueueFullError, a send that waits",
    FEATURE_TIMEOUT,
    async () => {
      checkBackpressure(await backpressure("auto"));
    },
  );

  test(
    "actor_group: launchGroup, a member terminated alone",
    FEATURE_TIMEOUT,
    async () => {
      checkActorGroup(await actorGroup("auto"));
    },
  );

  test("keyed_group: one key, one member", FEATURE_TIMEOUT, async () => {
    checkKeyedGroup(await keyedGroup("auto"));
  });

  test(
    "telemetry: metrics, accounting, latency, events",
    FEATURE_TIMEOUT,
    async () => {
      checkTelemetry(await telemetry("auto"));
    },
  );

  test("dead_letters: reasons, listener, drain", FEATURE_TIMEOUT, async () => {
    const r = await deadLetters("cpu");
    assert.deepEqual(r.counts, { "handler-error": 3, aborted: 4 });
    assert.equal(r.seen.length, 7);
    assert.equal(r.drained, 7);
    assert.match(r.detail, /UnknownActorError: no actor named "nobody"/);
  });

  test(
    "lifecycle: activate, deactivate, terminate, InvalidStateError",
    FEATURE_TIMEOUT,
    async () => {
      checkLifecycle(await lifecycle("auto"));
    },
  );

  test(
    "deferred_reply: without CUDA it says so and stops",
    FEATURE_TIMEOUT,
    async () => {
      const r = await deferredReply();
      if (r.backend !== "cuda") {
        assert.equal(r.ran, false);
        return;
      }
      assert.deepEqual(r.waited, [true, true, true]);
      assert.deepEqual(r.answers, [101, 102, 103]);
    },
  );

  test(
    "checkpoint: snapshot to a file store, restore in a new runtime",
    FEATURE_TIMEOUT,
    async () => {
      const r = await checkpoint();
      assert.deepEqual(r.before, [1, 3, 6]);
      assert.deepEqual(r.after, [10, 15]);
    },
  );

  test(
    "wavesim_tiles: the tiles equal the reference",
    FEATURE_TIMEOUT,
    async () => {
      const r = await wavesimTiles("cpu");
      assert.equal(r.backend, "cpu");
      assert.equal(r.tiles, 6);
      assert.equal(r.matchesReference, true);
    },
  );
});

describe("examples of the runtime's features on the CUDA backend", () => {
  const gpuTest = (name: string, fn: () => Promise<void>, nvrtc = false) =>
    test(
      name,
      nvrtc && !Nvrtc.probe().available
        ? { skip: "libnvrtc not installed" }
        : { ...gpuTestOptions(), timeout: 120_000 },
      async () => {
        requireGpu();
        await fn();
      },
    );

  gpuTest(
    "receive_many",
    async () => checkReceiveMany(await receiveMany("cuda")),
  );
  gpuTest(
    "backpressure",
    async () => checkBackpressure(await backpressure("cuda")),
  );
  gpuTest(
    "actor_group (one pool kernel)",
    async () => checkActorGroup(await actorGroup("cuda")),
  );
  gpuTest("keyed_group", async () => checkKeyedGroup(await keyedGroup("cuda")));
  gpuTest("telemetry", async () => checkTelemetry(await telemetry("cuda")));
  gpuTest("lifecycle", async () => checkLifecycle(await lifecycle("cuda")));
  gpuTest("dead_letters (unknown-target on the device)", async () => {
    const r = await deadLetters("cuda");
    assert.deepEqual(r.counts, { "unknown-target": 3, aborted: 4 });
    assert.equal(r.drained, 7);
  });
  gpuTest("deferred_reply (rk_defer, rk_reply_to)", async () => {
    const r = await deferredReply();
    assert.equal(r.backend, "cuda");
    assert.deepEqual(r.waited, [true, true, true]);
    assert.deepEqual(r.answers, [101, 102, 103]);
  }, true);
  gpuTest("wavesim_tiles (GPU tiles, rk_send halos)", async () => {
    const r = await wavesimTiles("cuda");
    assert.equal(r.backend, "cuda");
    assert.equal(r.matchesReference, true);
  }, true);
});

// The GPU-to-GPU examples: on the CPU backend always (their CPU-backend
// equivalent, the same actors in Workers), and with GPU actors where CUDA
// and libnvrtc work (a GPU, or the CPU emulator of the driver); the same
// results either way.
function checkGpuPipeline(r: Awaited<ReturnType<typeof gpuPipeline>>): void {
  assert.deepEqual(
    r.results,
    Array.from({ length: 8 }, (_, i) => ({ seq: i, value: 2 * i + 1, tag: 3 })),
  );
  for (const name of ["scale", "shift", "collect"]) {
    const { backend: _, ...account } = r.accounts[name];
    assert.deepEqual(account, { sent: 8, processed: 8, deadLettered: 0 }, name);
  }
  assert.equal(r.accounts.collect.backend, "cpu");
  assert.equal(r.accounts.scale.backend, r.ranOn);
  assert.equal(r.accounts.shift.backend, r.ranOn);
}

function checkGpuFanout(r: Awaited<ReturnType<typeof gpuFanout>>): void {
  const topic = (i: number) =>
    i % 2 ? "readings/humidity" : "readings/temperature";
  assert.deepEqual(r.codes, Array(6).fill(0));
  assert.deepEqual(
    r.host,
    Array.from({ length: 6 }, (_, i) => `${topic(i)} ${20 + i / 2}`),
  );
  assert.deepEqual(
    r.tally,
    Array.from({ length: 6 }, (_, i) => ({
      seq: i,
      value: 20 + i / 2,
      tag: i + 1,
    })),
  );
  for (const name of ["sensor", "tally"]) {
    const { backend: _, ...account } = r.accounts[name];
    assert.deepEqual(account, { sent: 6, processed: 6, deadLettered: 0 }, name);
  }
  assert.equal(r.accounts.tally.backend, "cpu");
  assert.equal(r.accounts.sensor.backend, r.ranOn);
}

describe("examples of GPU actors that talk to each other", () => {
  test(
    "gpu_pipeline: GPU → GPU → CPU by name, on the CPU backend",
    FEATURE_TIMEOUT,
    async () => {
      const r = await gpuPipeline("cpu");
      assert.equal(r.ranOn, "cpu");
      checkGpuPipeline(r);
    },
  );

  test(
    "gpu_fanout: a publication to a host handler and a CPU actor, on the CPU backend",
    FEATURE_TIMEOUT,
    async () => {
      const r = await gpuFanout("cpu");
      assert.equal(r.ranOn, "cpu");
      checkGpuFanout(r);
    },
  );

  const onGpu = (name: string, fn: () => Promise<void>) =>
    test(
      name,
      Nvrtc.probe().available
        ? { ...gpuTestOptions(), timeout: 120_000 }
        : { skip: "libnvrtc not installed" },
      async () => {
        requireGpu();
        await fn();
      },
    );

  onGpu("gpu_pipeline on the CUDA backend (rk_send by name)", async () => {
    const r = await gpuPipeline("cuda");
    assert.equal(r.ranOn, "cuda");
    checkGpuPipeline(r);
  });

  onGpu("gpu_fanout on the CUDA backend (rk_publish)", async () => {
    const r = await gpuFanout("cuda");
    assert.equal(r.ranOn, "cuda");
    checkGpuFanout(r);
  });
});

// The durable cluster example starts its own nats-server -js (it prints a
// notice and skips without one).
describe("the durable cluster example", () => {
  test("cluster_durable: durable sends across a restart of the serving node", async () => {
    const r = await clusterDurable();
    if (r.skipped !== undefined) return;
    assert.deepEqual(r.before, { count: 10, sum: 55 });
    assert.equal(r.storedWhileDown, 10);
    // At least once across the restart; the tally adds each sequence once.
    assert.equal(r.after?.count, 20);
    assert.equal(r.after?.sum, 210);
  });
});
