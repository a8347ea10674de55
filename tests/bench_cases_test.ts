import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { CASES, isCaseName } from "../bench/harness/catalog.ts";
import { currentRuntime, runCase } from "../bench/harness/cases.ts";

describe("benchmark cases", () => {
  test("every case says what it measures", () => {
    for (const info of Object.values(CASES)) {
      assert.ok(info.measures.length > 40, `${info.name} has a description`);
      assert.equal(isCaseName(info.name), true);
    }
    assert.equal(isCaseName("nope"), false);
    assert.equal(isCaseName("toString"), false);
  });

  test("the runtime names itself", () => {
    const runtime = currentRuntime();
    assert.ok(["deno", "bun"].includes(runtime.name));
    assert.match(runtime.version, /^\d+\.\d+\.\d+/);
  });

  test("the actor round trip returns one positive sample per call", async () => {
    const result = await runCase("actor-call", { samples: 20, warmup: 5 });
    assert.equal(result.samples.length, 20);
    assert.ok(result.samples.every((s) => s > 0 && Number.isFinite(s)));
    assert.equal(result.opsPerSample, 1);
  });

  test("the Worker and MessageChannel baselines echo every message", async () => {
    for (
      const name of [
        "worker-postmessage",
        "channel-worker",
        "channel-local",
      ] as const
    ) {
      const result = await runCase(name, { samples: 10, warmup: 2 });
      assert.equal(result.samples.length, 10, name);
    }
  });

  test("sendBatch cases measure whole rounds", async () => {
    for (const name of ["sendbatch-sink", "sendbatch-echo"] as const) {
      const result = await runCase(name, {
        samples: 2,
        warmup: 1,
        batch: 16,
        messagesPerRound: 100,
      });
      assert.equal(result.samples.length, 2, name);
      assert.equal(result.opsPerSample, 112, "rounded up to whole batches");
      assert.equal(result.batch, 16);
    }
  });

  test("the K2K pipeline and the host cost of a batch send measure whole rounds", async () => {
    const pipeline = await runCase("pipeline-k2k", {
      samples: 2,
      warmup: 1,
      batch: 16,
      messagesPerRound: 100,
    });
    assert.equal(pipeline.samples.length, 2);
    assert.equal(pipeline.opsPerSample, 112);
    const encode = await runCase("batch-encode", {
      samples: 2,
      warmup: 1,
      messagesPerRound: 5000,
    });
    assert.equal(encode.opsPerSample, 5120, "whole batches of 1024");
    assert.ok(encode.samples.every((s) => s > 0 && Number.isFinite(s)));
  });

  test("the bare floors run and give sane figures", async () => {
    const ping = await runCase("floor-pingpong", { samples: 50, warmup: 10 });
    assert.equal(ping.samples.length, 50);
    assert.equal(ping.opsPerSample, 1);
    // A spin round trip between two threads: above zero, far below a millisecond's median.
    assert.ok(ping.samples.every((s) => s > 0 && Number.isFinite(s)));
    const sortedPing = [...ping.samples].sort((a, b) => a - b);
    assert.ok(sortedPing[25] < 1000, `ping-pong median ${sortedPing[25]} µs`);

    const ring = await runCase("floor-ring", {
      samples: 2,
      warmup: 1,
      messagesPerRound: 20_000,
    });
    assert.equal(ring.samples.length, 2);
    assert.equal(ring.opsPerSample, 20_000);
    assert.equal(ring.batch, undefined);
    assert.ok(ring.samples.every((s) => s > 1e4 && Number.isFinite(s)));

    for (const batch of [1, 100]) {
      const echo = await runCase("floor-echo", {
        samples: 2,
        warmup: 1,
        batch,
        messagesPerRound: 1000,
      });
      assert.equal(echo.batch, batch);
      assert.equal(echo.opsPerSample, batch === 1 ? 1000 : 1000);
      assert.ok(echo.samples.every((s) => s > 1e3 && Number.isFinite(s)));
    }
    await assert.rejects(
      runCase("floor-echo", { samples: 1, warmup: 0, batch: 1 << 14 }),
      RangeError,
    );
  });

  test("the sustained run balances its accounting", async () => {
    const result = await runCase("sustained", {
      samples: 1,
      warmup: 64,
      batch: 32,
      seconds: 1,
    });
    const a = result.accounting!;
    assert.equal(a.ok, true);
    assert.equal(a.sent, a.processed + a.deadLettered + a.inFlight);
    assert.equal(a.received, a.processed);
    assert.equal(result.samples.length, result.intervalSeconds!.length);
  });

  test("bad options are rejected before anything starts", async () => {
    await assert.rejects(
      runCase("actor-call", { samples: 0, warmup: 1 }),
      RangeError,
    );
    await assert.rejects(
      runCase("sendbatch-echo", { samples: 1, warmup: 0 }),
      RangeError,
    );
    await assert.rejects(
      runCase("sustained", { samples: 1, warmup: 0, batch: 8, seconds: 0.5 }),
      RangeError,
    );
    await assert.rejects(
      runCase("nope" as "actor-call", { samples: 1, warmup: 0 }),
      RangeError,
    );
  });
});
