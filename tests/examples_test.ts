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
import fahrenheit from "../examples/actors/fahrenheit.ts";
import { gpuImplementationOf } from "../src/backend/cuda/gpu_actor.ts";
import { findOnPath } from "../bench/harness/spawn.ts";
import { Nvrtc } from "../src/backend/cuda/nvrtc.ts";
import { gpuTestOptions, requireGpu } from "./gpu_gate.ts";

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
