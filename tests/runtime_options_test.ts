// Every option of RingKernel.create, launch and shutdown is checked before
// anything starts, and a bad value is an InvalidOptionError naming it — never
// an actor that handles nothing, a spinning core, a silent default, or a
// RangeError / TypeError / DataCloneError.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { RingKernel } from "../src/runtime.ts";
import { defineActor } from "../src/actor.ts";
import { EchoMessage } from "../src/actors/schemas.ts";
import { InvalidOptionError, RingKernelError } from "../src/errors.ts";

const ECHO_MODULE = new URL("../src/actors/echo.ts", import.meta.url);

function refusedAs(option: string) {
  return (error: unknown) => {
    assert.ok(
      error instanceof InvalidOptionError,
      `expected an InvalidOptionError naming ${option}, got ${String(error)}`,
    );
    assert.equal(error.option, option, error.message);
    return true;
  };
}

async function withRuntime(fn: (rt: RingKernel) => Promise<void>) {
  const rt = await RingKernel.create({ backend: "cpu", quiet: true });
  try {
    await fn(rt);
  } finally {
    await rt.shutdown({ timeoutMs: 5_000 });
  }
}

const fn = () => {};

describe("RingKernel.create options", () => {
  const cases: Array<[string, unknown]> = [
    ["options", "cpu"],
    ["options", null],
    ["backend", "tpu"],
    ["backend", 1],
    ["restart", 3],
    ["restart.strategy", { strategy: "sometimes" }],
    ["restart.maxRestarts", { maxRestarts: -1 }],
    ["restart.maxRestarts", { maxRestarts: 1.5 }],
    ["restart.maxRestarts", { maxRestarts: NaN }],
    ["restart.withinMs", { withinMs: 0 }],
    ["restart.withinMs", { withinMs: NaN }],
    ["restart.backoff", { backoff: 5 }],
    ["restart.backoff.initialMs", { backoff: { initialMs: -1 } }],
    ["restart.backoff.initialMs", { backoff: { initialMs: Infinity } }],
    ["restart.backoff.maxMs", { backoff: { maxMs: 2 ** 40 } }],
    ["restart.backoff.maxMs", { backoff: { initialMs: 100, maxMs: 10 } }],
    ["restart.backoff.multiplier", { backoff: { multiplier: 0.5 } }],
    ["restart.backoff.multiplier", { backoff: { multiplier: NaN } }],
    ["deadLetterCapacity", -1],
    ["deadLetterCapacity", 1.5],
    ["deadLetterCapacity", NaN],
    ["deadLetterCapacity", "10"],
    ["onEvent", "log"],
    ["heartbeatDeadlineMs", NaN],
    ["heartbeatDeadlineMs", -1],
    ["heartbeatDeadlineMs", Infinity],
    ["heartbeatDeadlineMs", "5000"],
    ["quiet", "yes"],
    ["cuda", 0],
    ["cuda.device", { device: -1 }],
    ["cuda.device", { device: 0.5 }],
    ["cuda.hostArenaBytes", { hostArenaBytes: 0 }],
    ["cuda.deviceArenaBytes", { deviceArenaBytes: NaN }],
  ];
  for (const [option, value] of cases) {
    const name = option.split(".")[0];
    const options = option === "options" ? value : {
      backend: "cpu",
      quiet: true,
      [name]: value,
    };
    test(`${option}: ${show(value)} is refused`, async () => {
      await assert.rejects(
        RingKernel.create(options as never),
        refusedAs(option),
      );
    });
  }

  test("valid values are taken", async () => {
    const rt = await RingKernel.create({
      backend: "cpu",
      quiet: true,
      restart: {
        strategy: "one-for-one",
        maxRestarts: Infinity,
        withinMs: Infinity,
        backoff: { initialMs: 0, maxMs: 5, multiplier: 1 },
      },
      deadLetterCapacity: 0,
      heartbeatDeadlineMs: 0,
      cuda: { device: 0, hostArenaBytes: 1 << 20, deviceArenaBytes: 1 << 20 },
      onEvent: fn,
    });
    await rt.shutdown();
  });
});

describe("RingKernel.launch options", () => {
  const cases: Array<[string, unknown]> = [
    ["options", "echo"],
    ["actor", undefined],
    ["actor", 5],
    ["actor", ""],
    ["actor.module", {}],
    ["actor.module", { module: 5 }],
    ["actor.export", { module: ECHO_MODULE, export: 5 }],
    ["queueCapacity", 0],
    ["queueCapacity", 3],
    ["queueCapacity", 2 ** 21],
    ["queueCapacity", NaN],
    ["queueCapacity", "1024"],
    ["outputCapacity", 3],
    ["slotSize", 100],
    ["slotSize", "256"],
    ["autoActivate", "no"],
    ["config", { f: fn }],
    ["config", Symbol("x")],
    ["restart.maxRestarts", { maxRestarts: -1 }],
    ["idleSpinMicros", Infinity],
    ["idleSpinMicros", -1],
    ["idleSpinMicros", NaN],
    ["batchSize", 0],
    ["batchSize", -1],
    ["batchSize", 1.5],
    ["batchSize", Infinity],
    ["maxHeapMb", 0],
    ["maxHeapMb", 8],
    ["maxHeapMb", 64.5],
    ["maxHeapMb", NaN],
    ["timeoutMs", 0],
    ["timeoutMs", -1],
    ["timeoutMs", NaN],
    ["timeoutMs", Infinity],
    ["signal", {}],
    ["signal", "abort"],
  ];
  for (const [option, value] of cases) {
    const name = option.split(".")[0];
    const options = option === "options"
      ? value
      : option === "actor" && value === undefined
      ? undefined
      : { actor: "echo", [name]: value };
    test(`${option}: ${show(value)} is refused and starts nothing`, async () => {
      await withRuntime(async (rt) => {
        await assert.rejects(
          rt.launch("k", options as never),
          refusedAs(option),
        );
        assert.deepEqual(rt.listKernels(), []);
        assert.deepEqual(rt.metrics().kernels, []);
      });
    });
  }

  test("a slot too small for the actor's messages is refused, naming slotSize", async () => {
    await withRuntime(async (rt) => {
      await assert.rejects(
        rt.launch("s", { actor: "saxpy", slotSize: 64 }),
        refusedAs("slotSize"),
      );
    });
  });

  test("a config that cannot be cloned keeps the clone error as its cause", async () => {
    await withRuntime(async (rt) => {
      const error = await rt.launch("c", { actor: "echo", config: { fn } })
        .then(() => undefined, (e: unknown) => e);
      assert.ok(error instanceof InvalidOptionError, String(error));
      assert.ok(error.cause instanceof Error, String(error.cause));
    });
  });

  test("prepare checks its actor like launch", async () => {
    await withRuntime(async (rt) => {
      await assert.rejects(
        rt.prepare({ actor: 5 as never }),
        refusedAs("actor"),
      );
      await assert.rejects(rt.prepare(undefined as never), refusedAs("actor"));
    });
  });

  test("shutdown checks its deadline and its signal", async () => {
    const rt = await RingKernel.create({ backend: "cpu", quiet: true });
    await assert.rejects(
      rt.shutdown({ timeoutMs: NaN }),
      refusedAs("timeoutMs"),
    );
    await assert.rejects(
      rt.shutdown({ signal: "stop" as never }),
      refusedAs("signal"),
    );
    await rt.shutdown();
  });

  test("publish refuses a missing or bad schema", async () => {
    await withRuntime((rt) => {
      for (const options of [undefined, {}, { schema: "echo" }, "x"]) {
        assert.throws(
          () => rt.publish("t", {}, options as never),
          refusedAs(options === "x" ? "options" : "schema"),
        );
      }
      return Promise.resolve();
    });
  });

  test("the smallest valid values run an actor that answers", async () => {
    await withRuntime(async (rt) => {
      const echo = await rt.launch("e", {
        actor: "echo",
        queueCapacity: 2,
        outputCapacity: 2,
        slotSize: 64,
        batchSize: 1,
        idleSpinMicros: 0,
        timeoutMs: 30_000,
        config: { plain: [1, "two", new Uint8Array(3)] },
      });
      const reply = await echo.call({ seq: 1n, value: 2, tag: 3 }, {
        timeoutMs: 10_000,
      });
      assert.deepEqual(reply, { seq: 1n, value: 2, tag: 3 });
    });
  });
});

describe("defineActor", () => {
  test("a definition without handle or input is an InvalidOptionError", () => {
    assert.throws(
      () => defineActor({ input: EchoMessage } as never),
      refusedAs("handle"),
    );
    assert.throws(
      () => defineActor({ handle: fn } as never),
      refusedAs("input"),
    );
    assert.throws(() => defineActor(undefined as never), RingKernelError);
  });
});

function show(value: unknown): string {
  if (typeof value === "symbol") return value.toString();
  if (typeof value === "function") return "a function";
  if (typeof value === "number" || value === undefined) return String(value);
  try {
    return JSON.stringify(
      value,
      (_, v) =>
        typeof v === "function"
          ? "fn"
          : typeof v === "number" && !Number.isFinite(v)
          ? String(v)
          : v,
    );
  } catch {
    return typeof value;
  }
}
