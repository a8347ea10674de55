import { describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import {
  createWithCudaProbe,
  defaultIdleSpinMicros,
  RingKernel,
  type RuntimeEvent,
} from "../src/runtime.ts";
import { AccumulatorAdd, EchoMessage } from "../src/actors/schemas.ts";
import {
  ActorCrashedError,
  ActorModuleError,
  BackendUnavailableError,
  InvalidMessageError,
  InvalidOptionError,
  InvalidStateError,
  QueueFullError,
  TimeoutError,
  UnknownActorError,
} from "../src/errors.ts";
import { delay, pollUntil } from "../src/async.ts";
import { type Kernel, kernelInternals } from "../src/kernel.ts";
import type { CpuActorHost } from "../src/backend/cpu/cpu_actor.ts";

const fixture = (name: string) => ({
  module: new URL(`./fixtures/${name}.ts`, import.meta.url),
});
const unusableCuda = () =>
  Promise.resolve({ usable: false, reason: "no GPU in this test" });

async function withRuntime(
  fn: (rt: RingKernel, events: RuntimeEvent[]) => Promise<void>,
  options: Parameters<typeof RingKernel.create>[0] = {},
): Promise<void> {
  const events: RuntimeEvent[] = [];
  const rt = await RingKernel.create({
    backend: "cpu",
    quiet: true,
    onEvent: (e) => events.push(e),
    ...options,
  });
  try {
    await fn(rt, events);
  } finally {
    await rt.shutdown({ timeoutMs: 5_000 });
  }
}

function echo(seq: number, value = seq, tag = 0) {
  return { seq: BigInt(seq), value, tag };
}

/** Waits until every message sent to `kernel` is processed or dead-lettered. */
async function settled(kernel: Kernel, timeoutMs = 10_000): Promise<void> {
  await pollUntil(() => kernel.metrics().inFlight === 0, {
    timeoutMs,
    what: "settle",
  });
}

describe("idle", () => {
  // Runs first: killed Workers of later fault tests may still finish a busy handler.
  test("an idle runtime does not burn a core", async () => {
    await withRuntime(async (rt) => {
      for (let i = 0; i < 3; i++) {
        await rt.launch(`idle${i}`, { actor: "echo" });
      }
      await new Promise((r) => setTimeout(r, 300));
      const before = process.cpuUsage();
      const started = performance.now();
      await new Promise((r) => setTimeout(r, 2_000));
      const used = process.cpuUsage(before);
      const cpuMs = (used.user + used.system) / 1000;
      const wallMs = performance.now() - started;
      // Three spinning actors would use ~3 cores; idle ones sleep on their doorbells.
      assert.ok(
        cpuMs < wallMs * 0.25,
        `idle runtime used ${cpuMs.toFixed(0)} ms CPU in ${
          wallMs.toFixed(0)
        } ms`,
      );
    });
  });

  test("an idle actor spins only where another CPU can feed it", () => {
    assert.equal(defaultIdleSpinMicros(1), 0);
    assert.equal(defaultIdleSpinMicros(2), 100);
    assert.equal(defaultIdleSpinMicros(64), 100);
  });
});

describe("backend selection", () => {
  test("cpu is always available", async () => {
    const rt = await RingKernel.create({ backend: "cpu" });
    assert.equal(rt.backend, "cpu");
    assert.equal(rt.fallbackReason, undefined);
    await rt.shutdown();
  });

  test("on the CPU backend prepare() checks the actor and gpuInfo() is undefined", async () => {
    const rt = await RingKernel.create({ backend: "cpu" });
    try {
      assert.equal(rt.gpuInfo(), undefined);
      await rt.prepare({ actor: "echo" });
      await assert.rejects(
        rt.prepare({
          actor: {
            module: new URL("./fixtures/missing_module.ts", import.meta.url),
          },
        }),
        ActorModuleError,
      );
      const echo = await rt.launch("echo", { actor: "echo" });
      assert.deepEqual(await echo.call({ seq: 1n, value: 2, tag: 3 }), {
        seq: 1n,
        value: 2,
        tag: 3,
      });
    } finally {
      await rt.shutdown();
    }
  });

  test("auto falls back to the CPU and says why", async () => {
    const rt = await createWithCudaProbe(
      { backend: "auto", quiet: true },
      unusableCuda,
    );
    assert.equal(rt.backend, "cpu");
    assert.equal(rt.fallbackReason, "no GPU in this test");
    await rt.shutdown();
  });

  test("cuda without a usable GPU throws BackendUnavailable with the reason", async () => {
    await assert.rejects(
      createWithCudaProbe({ backend: "cuda" }, unusableCuda),
      (e: unknown) =>
        e instanceof BackendUnavailableError &&
        e.reason === "no GPU in this test",
    );
  });

  test("cuda with the real probe names what was tried when there is no driver", async () => {
    try {
      const rt = await RingKernel.create({ backend: "cuda" });
      // A machine with a GPU: the backend was found usable.
      assert.equal(rt.backend, "cuda");
      await rt.shutdown();
    } catch (error) {
      assert.ok(error instanceof BackendUnavailableError, String(error));
      assert.match(error.reason, /libcuda|CUDA|device|FFI|ffi|CPU backend/);
    }
  });

  test("an unknown backend name is refused", async () => {
    await assert.rejects(
      RingKernel.create({ backend: "tpu" as never }),
      (e: unknown) => e instanceof InvalidOptionError && e.option === "backend",
    );
  });
});

describe("kernel messaging", () => {
  test("call, send/receive and trySend on the echo actor", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", { actor: "echo" });
      assert.equal(k.state, "active");
      assert.equal(k.isActive, true);
      assert.deepEqual(
        await k.call(echo(1, 2.5, 7), { timeoutMs: 5_000 }),
        echo(1, 2.5, 7),
      );
      await k.send(echo(2));
      assert.equal(k.trySend(echo(3)), true);
      assert.deepEqual(await k.receive({ timeoutMs: 5_000 }), echo(2));
      assert.deepEqual(await k.receive({ timeoutMs: 5_000 }), echo(3));
      assert.equal(await k.sendBatch([echo(4), echo(5), echo(6)]), 3);
      for (const seq of [4, 5, 6]) {
        assert.deepEqual(await k.receive({ timeoutMs: 5_000 }), echo(seq));
      }
      await settled(k);
      const m = k.metrics();
      assert.equal(m.sent, 6);
      assert.equal(m.processed, 6);
      assert.equal(m.deadLettered, 0);
    });
  });

  test("a stateful actor keeps state across messages", async () => {
    await withRuntime(async (rt) => {
      const acc = await rt.launch("acc", { actor: "accumulator" });
      for (let i = 1; i <= 10; i++) await acc.send({ value: i });
      let last;
      for (let i = 1; i <= 10; i++) {
        last = await acc.receive({ timeoutMs: 5_000 });
      }
      assert.deepEqual(last, { total: 55, count: 10n });
      assert.deepEqual(await acc.call({ value: 0.5 }), {
        total: 55.5,
        count: 11n,
      });
    });
  });

  test("saxpy runs over 256-byte slots", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("saxpy", { actor: "saxpy" });
      const x = Float32Array.from({ length: 16 }, (_, i) => i);
      const y = Float32Array.from({ length: 16 }, () => 1);
      const reply = await k.call({ a: 2, x, y }) as { out: Float32Array };
      assert.deepEqual(Array.from(reply.out), Array.from(x, (v) => 2 * v + 1));
    });
  });

  test("bad messages are rejected with InvalidMessage before reaching the queue", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", { actor: "echo", autoActivate: false });
      assert.throws(
        () => k.trySend({ seq: -1n, value: 0, tag: 0 }),
        InvalidMessageError,
      );
      assert.throws(
        () => k.trySend({ seq: 1n, value: 0, tag: 2 ** 40 }),
        InvalidMessageError,
      );
      await assert.rejects(
        k.send({ seq: 1n, value: 0 } as never),
        InvalidMessageError,
      );
      assert.equal(k.metrics().inFlight, 0);
      assert.equal(k.metrics().sent, 0);
    });
  });

  test("receive and call honour their deadlines", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", { actor: "echo", autoActivate: false });
      await assert.rejects(k.receive({ timeoutMs: 30 }), TimeoutError);
      await assert.rejects(k.call(echo(1), { timeoutMs: 30 }), TimeoutError);
      // The late reply to the expired call is kept as a dead letter, not lost.
      await k.activate();
      // Looking for replies finds the late one and files it.
      await pollUntil(
        () =>
          k.tryReceive() === undefined &&
          rt.deadLetters.countOf("expired") === 1,
        {
          timeoutMs: 5_000,
        },
      );
    });
  });

  test("a full queue applies backpressure: trySend false, send times out with QueueFull", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", {
        actor: "echo",
        queueCapacity: 4,
        autoActivate: false,
      });
      for (let i = 0; i < 4; i++) assert.equal(k.trySend(echo(i)), true);
      assert.equal(k.trySend(echo(99)), false);
      await assert.rejects(
        k.send(echo(100), { timeoutMs: 30 }),
        QueueFullError,
      );
      await assert.rejects(k.send(echo(101), { timeoutMs: 0 }), QueueFullError);
      // Space frees once the actor runs: a waiting send completes.
      const pending = k.send(echo(5), { timeoutMs: 5_000 });
      await k.activate();
      await pending;
      for (let i = 0; i < 5; i++) await k.receive({ timeoutMs: 5_000 });
      await settled(k);
      assert.equal(k.metrics().sent, 5);
      assert.equal(k.metrics().processed, 5);
    });
  });
});

describe("lifecycle", () => {
  test("launched → active ⇄ deactivated → terminated, with invalid transitions refused", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", { actor: "echo", autoActivate: false });
      assert.equal(k.state, "launched");
      await assert.rejects(k.deactivate(), InvalidStateError);
      // Launched: messages queue but are not processed.
      await k.send(echo(1));
      await assert.rejects(k.receive({ timeoutMs: 50 }), TimeoutError);
      assert.equal(k.metrics().inFlight, 1);
      await k.activate();
      assert.equal(k.state, "active");
      assert.deepEqual(await k.receive({ timeoutMs: 5_000 }), echo(1));
      await assert.rejects(k.activate(), InvalidStateError);
      await k.deactivate();
      assert.equal(k.state, "deactivated");
      await k.send(echo(2));
      await assert.rejects(k.receive({ timeoutMs: 50 }), TimeoutError);
      await assert.rejects(k.deactivate(), InvalidStateError);
      await k.activate();
      assert.deepEqual(await k.receive({ timeoutMs: 5_000 }), echo(2));
      await k.terminate();
      assert.equal(k.state, "terminated");
      await assert.rejects(k.activate(), InvalidStateError);
      await assert.rejects(k.deactivate(), InvalidStateError);
      await assert.rejects(k.send(echo(3)), InvalidStateError);
      assert.throws(() => k.trySend(echo(3)), InvalidStateError);
      await assert.rejects(k.terminate(), InvalidStateError);
      assert.deepEqual(rt.listKernels(), []);
    });
  });

  test("once deactivate resolves, nothing sent is processed until activate", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("paused", { actor: "echo" });
      for (let i = 0; i < 200; i++) {
        // A busy loop: the pause lands while it polls or handles.
        k.trySend(echo(2 * i));
        await k.deactivate();
        const processed = k.metrics().processed;
        assert.equal(k.trySend(echo(2 * i + 1)), true);
        await new Promise((resolve) => setTimeout(resolve, 0));
        assert.equal(k.metrics().processed, processed);
        await k.activate();
        assert.deepEqual(await k.receive({ timeoutMs: 5_000 }), echo(2 * i));
        assert.deepEqual(
          await k.receive({ timeoutMs: 5_000 }),
          echo(2 * i + 1),
        );
      }
    });
  });

  test("deactivate times out when the loop cannot confirm; the kernel stays deactivated", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("blocked", {
        actor: fixture("blocking_actor"),
      });
      k.trySend(echo(1, 1_500)); // blocks its Worker for 1.5 s
      await new Promise((resolve) => setTimeout(resolve, 50));
      await assert.rejects(
        k.deactivate({ timeoutMs: 100 }),
        (e: unknown) =>
          e instanceof TimeoutError &&
          /deactivate of "blocked"/.test(e.message),
      );
      assert.equal(k.state, "deactivated");
      await k.terminate({ abort: true, timeoutMs: 5_000 });
    });
  });

  test("terminate from launched and from deactivated", async () => {
    await withRuntime(async (rt) => {
      const a = await rt.launch("a", { actor: "echo", autoActivate: false });
      await a.terminate();
      assert.equal(a.state, "terminated");
      const b = await rt.launch("b", { actor: "echo" });
      await b.deactivate();
      await b.terminate();
      assert.equal(b.state, "terminated");
    });
  });

  test("terminate drains queued messages by default", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("slow", {
        actor: fixture("slow_actor"),
        autoActivate: false,
      });
      for (let i = 0; i < 20; i++) await k.send(echo(i, 1));
      await k.terminate({ timeoutMs: 10_000 });
      const m = k.metrics();
      assert.equal(m.processed, 20);
      assert.equal(m.deadLettered, 0);
      assert.equal(m.inFlight, 0);
      // Replies produced before termination can still be taken.
      assert.deepEqual(k.tryReceive(), echo(0, 1));
    });
  });

  test("terminate({ abort }) stops at once and dead-letters what was queued", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", { actor: "echo", autoActivate: false });
      for (let i = 0; i < 25; i++) await k.send(echo(i));
      await k.terminate({ abort: true });
      const m = k.metrics();
      assert.equal(m.processed, 0);
      assert.equal(m.deadLettered, 25);
      assert.equal(rt.deadLetters.countOf("aborted"), 25);
      const letters = rt.deadLetters.drain();
      assert.deepEqual(
        letters.map((l) => (l.message.value as { seq: bigint }).seq),
        [...Array(25).keys()].map(BigInt),
      );
      assert.ok(letters.every((l) => l.actor === "echo"));
    });
  });

  test("a kernel that does not stop in time is killed and its queue dead-lettered", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("slow", { actor: fixture("slow_actor") });
      await k.send(echo(1, 400));
      await k.send(echo(2, 400));
      await pollUntil(
        () => k.metrics().inFlight <= 1 || k.metrics().processed > 0,
        { timeoutMs: 5_000 },
      );
      await k.terminate({ timeoutMs: 50 });
      const m = k.metrics();
      assert.equal(m.sent, m.processed + m.deadLettered + m.inFlight);
      assert.equal(m.inFlight, 0);
    });
  });
});

describe("registry", () => {
  test("getKernel, listKernels with globs, duplicate and invalid names", async () => {
    await withRuntime(async (rt) => {
      await rt.launch("pool/a", { actor: "echo" });
      await rt.launch("pool/b", { actor: "echo" });
      await rt.launch("other", { actor: "echo" });
      assert.deepEqual(rt.listKernels().sort(), ["other", "pool/a", "pool/b"]);
      assert.deepEqual(rt.listKernels("pool/*").sort(), ["pool/a", "pool/b"]);
      assert.equal(rt.getKernel("pool/a").name, "pool/a");
      assert.throws(() => rt.getKernel("nope"), UnknownActorError);
      await assert.rejects(
        rt.launch("other", { actor: "echo" }),
        /already running/,
      );
      await assert.rejects(rt.launch("bad name", { actor: "echo" }));
      await assert.rejects(
        rt.launch("x", { actor: "no-such-builtin" as never }),
        UnknownActorError,
      );
      await assert.rejects(
        rt.launch("y", { actor: "echo", queueCapacity: 3 }),
        (e: unknown) =>
          e instanceof InvalidOptionError && e.option === "queueCapacity",
      );
      await assert.rejects(
        rt.launch("z", { actor: "saxpy", slotSize: 64 }),
        (e: unknown) =>
          e instanceof InvalidOptionError && e.option === "slotSize",
      );
    });
  });
});

describe("launch failures", () => {
  test("an actor whose init throws fails the launch and leaves nothing behind", async () => {
    await withRuntime(async (rt) => {
      await assert.rejects(
        rt.launch("fwd", { actor: "forwarder" }),
        /failed to start: forwarder needs config\.target/,
      );
      assert.deepEqual(rt.listKernels(), []);
      const ok = await rt.launch("fwd", {
        actor: "forwarder",
        config: { target: "x" },
      });
      assert.equal(ok.state, "active");
    });
  });

  test("a module that is not an actor is refused", async () => {
    await withRuntime(async (rt) => {
      await assert.rejects(
        rt.launch("nope", {
          actor: {
            module: new URL("./fixtures/stage_actor.ts", import.meta.url),
            export: "missing",
          },
        }),
        (error: unknown) =>
          error instanceof ActorModuleError && error.exportName === "missing" &&
          /is not an actor/.test(error.message),
      );
      const missing = new URL("./fixtures/no_such_actor.ts", import.meta.url);
      await assert.rejects(
        rt.launch("gone", { actor: { module: missing } }),
        (error: unknown) =>
          error instanceof ActorModuleError &&
          error.module === missing.href &&
          /cannot be imported/.test(error.message) &&
          error.cause !== undefined,
      );
      assert.deepEqual(rt.metrics().kernels, []);
    });
  });
});

describe("K2K", () => {
  test("a pipeline of three actors passes messages actor to actor", async () => {
    await withRuntime(async (rt) => {
      const last = await rt.launch("stage3", {
        actor: fixture("stage_actor"),
        config: { add: 100 },
      });
      await rt.launch("stage2", {
        actor: fixture("stage_actor"),
        config: { add: 10, next: "stage3" },
      });
      const first = await rt.launch("stage1", {
        actor: fixture("stage_actor"),
        config: { add: 1, next: "stage2" },
      });
      for (let i = 0; i < 50; i++) await first.send(echo(i, i));
      for (let i = 0; i < 50; i++) {
        assert.deepEqual(await last.receive({ timeoutMs: 5_000 }), {
          seq: BigInt(i),
          value: i + 111,
          tag: 3,
        });
      }
      // Counters are updated just after each reply is written: let them settle.
      await pollUntil(() => rt.metrics().totals.inFlight === 0, {
        timeoutMs: 5_000,
      });
      const totals = rt.metrics().totals;
      assert.equal(totals.sent, 150);
      assert.equal(totals.processed, 150);
    });
  });

  test("the forwarder built-in sends to its configured target", async () => {
    await withRuntime(async (rt) => {
      const sink = await rt.launch("sink", { actor: "echo" });
      const fwd = await rt.launch("fwd", {
        actor: "forwarder",
        config: { target: "sink" },
      });
      await fwd.send(echo(9, 1.5));
      assert.deepEqual(await sink.receive({ timeoutMs: 5_000 }), echo(9, 1.5));
    });
  });

  test("sending to an unknown actor fails the handler with UnknownActor, dead-lettered with the reason", async () => {
    await withRuntime(async (rt, events) => {
      const k = await rt.launch("lost", {
        actor: fixture("stage_actor"),
        config: { add: 1, next: "nobody" },
        restart: { strategy: "never" },
      });
      await k.send(echo(1));
      await pollUntil(() => rt.deadLetters.countOf("handler-error") === 1, {
        timeoutMs: 5_000,
      });
      const [letter] = rt.deadLetters.drain();
      assert.match(
        letter.detail ?? "",
        /UnknownActorError: no actor named "nobody"/,
      );
      await pollUntil(() => events.length >= 1, { timeoutMs: 5_000 });
      assert.equal(events[0].type, "crash");
    });
  });
});

describe("pub/sub", () => {
  test("host subscribers with wildcards, and kernels subscribed by the host", async () => {
    await withRuntime(async (rt) => {
      const seen: Array<[string, unknown]> = [];
      rt.subscribe("sensors/+/temp", (m, topic) => seen.push([topic, m]));
      rt.subscribe("sensors/#", (_m, topic) => seen.push(["#", topic]));
      const k = await rt.launch("listener", { actor: "echo" });
      const sub = rt.subscribeKernel(k, "sensors/a/#");
      assert.equal(
        rt.publish("sensors/a/temp", echo(1), { schema: EchoMessage }),
        3,
      );
      assert.equal(
        rt.publish("sensors/b/temp", echo(2), { schema: EchoMessage }),
        2,
      );
      assert.equal(rt.publish("sensors", echo(3), { schema: EchoMessage }), 1);
      assert.equal(
        rt.publish("other/a/temp", echo(4), { schema: EchoMessage }),
        0,
      );
      assert.deepEqual(seen, [
        ["sensors/a/temp", echo(1)],
        ["#", "sensors/a/temp"],
        ["sensors/b/temp", echo(2)],
        ["#", "sensors/b/temp"],
        ["#", "sensors"],
      ]);
      assert.deepEqual(await k.receive({ timeoutMs: 5_000 }), echo(1));
      sub.unsubscribe();
      assert.equal(
        rt.publish("sensors/a/temp", echo(5), { schema: EchoMessage }),
        2,
      );
      assert.throws(
        () => rt.publish("sensors/+", echo(6), { schema: EchoMessage }),
        InvalidMessageError,
      );
    });
  });

  test("actors subscribe and publish", async () => {
    await withRuntime(async (rt) => {
      const relay = await rt.launch("relay", {
        actor: fixture("topic_actor"),
        config: { filter: "in/#", republish: "out/relay" },
      });
      const received: unknown[] = [];
      rt.subscribe("out/+", (m) => received.push(m));
      await relay.call(echo(0, 0, 0)); // tag 0: subscribe
      await pollUntil(
        () =>
          rt.publish("in/x", { value: 1 }, { schema: AccumulatorAdd }) >= 0 &&
          received.length >= 0,
        {
          timeoutMs: 100,
        },
      );
      // The subscription is registered asynchronously: publish until it is.
      await pollUntil(
        () =>
          rt.publish("in/probe", echo(1, 1, 1), { schema: EchoMessage }) === 1,
        { timeoutMs: 5_000 },
      );
      await pollUntil(() => received.length >= 1, { timeoutMs: 5_000 });
      assert.deepEqual(received[0], echo(1, 1, 1));
    });
  });

  test("an actor's subscriptions end with their unsubscribe(), the filter with the last", async () => {
    await withRuntime(async (rt) => {
      const relay = await rt.launch("relay", {
        actor: fixture("topic_actor"),
        config: { filter: "in/#" },
      });
      await relay.call(echo(0, 0, 0)); // tag 0: subscribe
      await relay.call(echo(0, 0, 0)); // the same filter again
      const probe = () =>
        rt.publish("in/probe", echo(1, 1, 1), { schema: EchoMessage });
      // Registered asynchronously; one delivery however many subscriptions.
      await pollUntil(() => probe() === 1, { timeoutMs: 5_000 });
      assert.equal((await relay.call(echo(2, 0, 2))).value, 1); // one ended
      assert.equal(probe(), 1);
      assert.equal((await relay.call(echo(3, 0, 2))).value, 0); // the last
      await pollUntil(() => probe() === 0, { timeoutMs: 5_000 });
      // A host subscription of the kernel to the same filter is its own.
      const own = rt.subscribeKernel(relay, "in/#");
      await relay.call(echo(0, 0, 0));
      await relay.call(echo(4, 0, 2));
      await delay(50);
      assert.equal(probe(), 1);
      own.unsubscribe();
      assert.equal(probe(), 0);
    });
  });

  test("subscriptions are Disposable, with one way to end them", async () => {
    await withRuntime(async (rt) => {
      const seen: string[] = [];
      {
        using sub = rt.subscribe("a/#", (_m, topic) => seen.push(topic));
        assert.equal(sub.active, true);
        assert.equal(sub.filter, "a/#");
        assert.equal(sub.subscriberId, undefined);
        rt.publish("a/b", echo(1), { schema: EchoMessage });
      }
      assert.equal(rt.publish("a/b", echo(2), { schema: EchoMessage }), 0);
      assert.deepEqual(seen, ["a/b"]);
      const k = await rt.launch("k", { actor: "echo" });
      const byKernel = rt.subscribeKernel("k", "a/#");
      assert.equal(byKernel.subscriberId, "k");
      assert.equal(byKernel.unsubscribe(), true);
      assert.equal(byKernel.unsubscribe(), false);
      byKernel[Symbol.dispose]();
      assert.equal(byKernel.active, false);
      const events: RuntimeEvent[] = [];
      const listening = rt.onEvent((e) => events.push(e));
      assert.equal(listening.active, true);
      listening[Symbol.dispose]();
      assert.equal(listening.active, false);
      assert.equal(listening.unsubscribe(), false);
      assert.throws(() => rt.onEvent("log" as never), InvalidOptionError);
      assert.throws(
        () => rt.subscribe("a", undefined as never),
        InvalidOptionError,
      );
      await k.terminate();
    });
  });
});

describe("actor context options", () => {
  test("ctx.send and ctx.publish check their options; send's signal aborts its wait", async () => {
    await withRuntime(async (rt) => {
      const sink = await rt.launch("sink", {
        actor: "echo",
        queueCapacity: 4,
        autoActivate: false,
      });
      const k = await rt.launch("options", {
        actor: fixture("options_actor"),
        config: { target: "sink" },
      });
      const outcome = async (tag: number) =>
        (await k.call(echo(tag, 0, tag), { timeoutMs: 10_000 })).tag;
      // timeoutMs, signal, options, schema of send; schema of publish.
      for (const tag of [1, 2, 3, 4, 5]) assert.equal(await outcome(tag), 1);
      assert.equal(await outcome(6), 2); // an aborted signal: its reason
      assert.equal(sink.metrics().sent, 0); // nothing was sent so far
      assert.equal(await outcome(7), 3); // aborted while waiting for space
      assert.equal(sink.metrics().sent, 4);
      await sink.terminate({ abort: true });
    });
  });
});

describe("supervision", () => {
  test("a crashing handler is restarted with fresh state and the crash is reported", async () => {
    await withRuntime(async (rt, events) => {
      const k = await rt.launch("flaky", { actor: fixture("flaky_actor") });
      assert.equal((await k.call(echo(1)) as { tag: number }).tag, 1);
      assert.equal((await k.call(echo(2)) as { tag: number }).tag, 2);
      await assert.rejects(k.call(echo(3, -1)), ActorCrashedError);
      // After the restart the actor continues, with fresh state.
      const after = await k.call(echo(4), { timeoutMs: 5_000 }) as {
        tag: number;
      };
      assert.equal(after.tag, 1);
      // Events arrive on the host's event loop, possibly after the reply.
      await pollUntil(() => events.length >= 2, { timeoutMs: 5_000 });
      assert.deepEqual(events.map((e) => e.type), ["crash", "restart"]);
      const m = k.metrics();
      assert.equal(m.crashes, 1);
      assert.equal(m.restarts, 1);
      assert.equal(m.deadLettered, 1);
      assert.equal(rt.deadLetters.countOf("handler-error"), 1);
    });
  });

  test("a reply that does not encode counts as a handler error: crash, restart, dead letter", async () => {
    await withRuntime(async (rt, events) => {
      const k = await rt.launch("flaky", { actor: fixture("flaky_actor") });
      await assert.rejects(
        k.call(echo(1, 1e9), { timeoutMs: 5_000 }),
        ActorCrashedError,
      );
      assert.equal(
        (await k.call(echo(2), { timeoutMs: 5_000 }) as { tag: number }).tag,
        1,
      );
      await pollUntil(() => events.length >= 2, { timeoutMs: 5_000 });
      assert.deepEqual(events.map((e) => e.type), ["crash", "restart"]);
      await settled(k);
      const m = k.metrics();
      assert.equal(m.sent, 2);
      assert.equal(m.processed, 1);
      assert.equal(m.deadLettered, 1);
      assert.match(
        rt.deadLetters.drain()[0].detail ?? "",
        /InvalidMessageError/,
      );
    });
  });

  test("after max restarts within the window the supervisor gives up and reports it", async () => {
    await withRuntime(async (rt, events) => {
      const k = await rt.launch("flaky", {
        actor: fixture("flaky_actor"),
        restart: {
          maxRestarts: 2,
          withinMs: 60_000,
          backoff: { initialMs: 0 },
        },
      });
      for (let i = 0; i < 3; i++) {
        await assert.rejects(
          k.call(echo(i, -1), { timeoutMs: 5_000 }),
          ActorCrashedError,
        );
        if (i < 2) {
          await pollUntil(() => k.metrics().restarts === i + 1, {
            timeoutMs: 5_000,
          });
        }
      }
      await pollUntil(() => k.state === "terminated", { timeoutMs: 5_000 });
      const crashes = events.filter((e) => e.type === "crash");
      assert.equal(crashes.length, 3);
      const last = crashes[2];
      assert.ok(last.type === "crash" && last.decision.action === "give-up");
      assert.throws(() => rt.getKernel("flaky"), UnknownActorError);
      await assert.rejects(k.send(echo(9)), InvalidStateError);
    });
  });

  test("a Worker that dies mid-message is detected, its message accounted, and it is restarted", async () => {
    await withRuntime(async (rt, events) => {
      const k = await rt.launch("victim", { actor: fixture("slow_actor") });
      const host = kernelInternals(k).host as CpuActorHost;
      await k.send(echo(1, 300));
      await pollUntil(() => host.busy, { timeoutMs: 5_000 });
      await k.send(echo(2, 0));
      host.injectDeath("killed mid-message by the test");
      // The supervisor restarts the loop, which takes the next message.
      assert.deepEqual(await k.receive({ timeoutMs: 5_000 }), echo(2, 0));
      // Events arrive on the host's event loop, possibly after the reply.
      await pollUntil(() => events.length >= 2, { timeoutMs: 5_000 });
      assert.deepEqual(events.map((e) => e.type), ["crash", "restart"]);
      await settled(k);
      const m = k.metrics();
      assert.equal(m.sent, 2);
      assert.equal(m.processed, 1);
      assert.equal(m.deadLettered, 1);
      assert.equal(m.inFlight, 0);
      const [letter] = rt.deadLetters.drain();
      assert.equal(letter.reason, "handler-error");
      assert.deepEqual(letter.message.value, echo(1, 300));
    });
  });

  test("accounting holds after a load run with injected crashes: sent = processed + dead-lettered", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("flaky", {
        actor: fixture("flaky_actor"),
        queueCapacity: 256,
        restart: {
          maxRestarts: 1_000,
          withinMs: 60_000,
          backoff: { initialMs: 0 },
        },
      });
      let crashes = 0;
      let replies = 0;
      const total = 3_000;
      for (let i = 0; i < total; i++) {
        const poison = i % 250 === 17;
        if (poison) crashes++;
        await k.send(echo(i, poison ? -1 : i), { timeoutMs: 10_000 });
        // Take the replies too, or the actor would (rightly) wait for room to reply.
        while (k.tryReceive() !== undefined) replies++;
      }
      await settled(k, 20_000);
      while (k.tryReceive() !== undefined) replies++;
      const m = k.metrics();
      assert.equal(m.sent, total);
      assert.equal(m.inFlight, 0);
      assert.equal(m.sent, m.processed + m.deadLettered + m.inFlight);
      assert.equal(m.deadLettered, crashes);
      assert.equal(m.processed, total - crashes);
      assert.equal(replies, total - crashes);
      assert.equal(m.crashes, crashes);
      assert.equal(rt.deadLetters.countOf("handler-error"), crashes);
    });
  });
});

describe("heartbeat watchdog", () => {
  test("a handler that blocks past the deadline is reported, then its recovery", async () => {
    await withRuntime(async (rt, events) => {
      const k = await rt.launch("stuck", { actor: fixture("blocking_actor") });
      await k.send(echo(1, 1_000));
      await pollUntil(
        () => events.some((e) => e.type === "heartbeat-recovered"),
        { timeoutMs: 10_000 },
      );
      const stale = events.find((e) => e.type === "heartbeat-stale");
      assert.ok(
        stale && stale.type === "heartbeat-stale" && stale.kernel === "stuck",
      );
      assert.ok(stale.staleMs >= 200);
    }, { heartbeatDeadlineMs: 200 });
  });
});

describe("telemetry and metrics", () => {
  test("kernel and runtime metrics read the telemetry blocks", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", { actor: "echo" });
      for (let i = 0; i < 100; i++) await k.call(echo(i));
      // Telemetry is written once per batch, just after the batch's replies.
      await pollUntil(() => k.metrics().telemetry.messagesProcessed === 100, {
        timeoutMs: 5_000,
      });
      const m = k.metrics();
      assert.equal(m.telemetry.messagesProcessed, 100);
      assert.ok(
        m.telemetry.maxLatencyNanos >= (m.telemetry.minLatencyNanos ?? 0),
      );
      assert.ok(m.telemetry.lastProcessedTimestamp > 0n);
      // Sampled: the first call and one in 16 after it are timed.
      assert.equal(m.callLatency.count, Math.ceil(100 / 16));
      assert.ok(
        m.callLatency.p50 > 0 && m.callLatency.p50 <= m.callLatency.p99,
      );
      const r = rt.metrics();
      assert.equal(r.backend, "cpu");
      assert.equal(r.kernels.length, 1);
      assert.equal(r.totals.processed, 100);
    });
  });
});
