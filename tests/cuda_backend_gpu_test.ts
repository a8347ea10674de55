// GPU tests of the CUDA backend: the runtime's scenarios on resident GPU
// actors (echo, accumulator, saxpy, reduce, lifecycle, drain and abort, K2K
// forwarder, supervision of a failing user actor), a pool of several actors
// in one launch, user actors from a PTX file, device heartbeats, and 1,000
// launch/terminate cycles without leaks. Skipped without a GPU (gpu_gate.ts);
// with RINGKERNEL_REQUIRE_GPU=1 they run and fail without one.
import assert from "node:assert/strict";
import { after, describe } from "node:test";
import { fileURLToPath } from "node:url";
import type { ActorDefinition } from "../src/actor.ts";
import { BUILTIN_ACTORS } from "../src/actors/builtins.ts";
import {
  EchoMessage,
  SAXPY_LANES,
  SaxpyRequest,
} from "../src/actors/schemas.ts";
import { delay, pollUntil } from "../src/async.ts";
import type {
  ActorExitReason,
  ActorHostEvents,
  ActorSpawnSpec,
} from "../src/backend/backend.ts";
import { BENCH_ACTORS_MODULE } from "../bench/k2k_actors.ts";
import type { CudaActorHost } from "../src/backend/cuda/cuda_actor.ts";
import { CudaBackend } from "../src/backend/cuda/cuda_backend.ts";
import { defineGpuActor } from "../src/backend/cuda/gpu_actor.ts";
import { Nvrtc } from "../src/backend/cuda/nvrtc.ts";
import { REDUCE_ACTOR_MODULE } from "../src/actors/reduce.ts";
import { ReduceOp } from "../src/actors/schemas.ts";
import { readTypeId } from "../src/envelope.ts";
import { InvalidStateError, RingKernelError } from "../src/errors.ts";
import { TerminationState } from "../src/layout.ts";
import { RingKernel } from "../src/runtime.ts";
import { kernelInternals } from "../src/kernel.ts";
import { gpuTest } from "./gpu_gate.ts";
import { withRuntime } from "./helpers.ts";

const BUNDLE_PTX = fileURLToPath(
  new URL("../cuda/bundle/ringkernel.compute_80.ptx", import.meta.url),
);

/** A user actor from a PTX file: doubles `value` (rk_example_double_pool in cuda/actor_pool.cu). */
export const doubler: ActorDefinition<
  typeof EchoMessage.spec,
  typeof EchoMessage.spec,
  unknown
> = defineGpuActor({
  input: EchoMessage,
  output: EchoMessage,
  gpu: { source: { file: BUNDLE_PTX, entry: "rk_example_double_pool" } },
});

/** A stateful user actor: counts; tag 0xdead makes its handler fail. */
export const counter: ActorDefinition<
  typeof EchoMessage.spec,
  typeof EchoMessage.spec,
  unknown
> = defineGpuActor({
  input: EchoMessage,
  output: EchoMessage,
  gpu: {
    source: { file: BUNDLE_PTX, entry: "rk_example_counter_pool" },
    stateBytes: 8,
  },
});

/** The counter declaring too little state: its start must fail on the device. */
export const counterWithoutState: ActorDefinition<
  typeof EchoMessage.spec,
  typeof EchoMessage.spec,
  unknown
> = defineGpuActor({
  input: EchoMessage,
  output: EchoMessage,
  gpu: { source: { file: BUNDLE_PTX, entry: "rk_example_counter_pool" } },
});

/** CUDA C++ of a stateful user actor: a running total of `value`, as `value`, and the count, as `seq`. */
const RUNNING_TOTAL_SOURCE = `#include "ringkernel.cuh"
struct total_echo { rk_u64 seq; double value; rk_u32 tag; };
static_assert(sizeof(total_echo) == 24, "total_echo mirrors ringkernel.Echo");
struct total_state { double total; rk_u64 count; };
__device__ rk_i32 running_total(const total_echo& in, total_echo& out, total_state& state, rk_actor_ctx&) {
  state.total += in.value;
  state.count += 1;
  out.seq = state.count;
  out.value = state.total;
  out.tag = in.tag;
  return RK_REPLY;
}
RK_DEFINE_STATEFUL_ACTOR(user_running_total_pool, total_echo, total_echo, total_state, running_total)
`;

/** A user actor from CUDA C++ source, compiled by libnvrtc at launch. */
export const runningTotal: ActorDefinition<
  typeof EchoMessage.spec,
  typeof EchoMessage.spec,
  unknown
> = defineGpuActor({
  input: EchoMessage,
  output: EchoMessage,
  gpu: {
    source: {
      cuda: RUNNING_TOTAL_SOURCE,
      entry: "user_running_total_pool",
      name: "running_total.cu",
    },
    stateBytes: 16,
  },
});

const nvrtc = Nvrtc.probe();

const echo = (seq: number, value = seq / 4, tag = 0) => ({
  seq: BigInt(seq),
  value,
  tag,
});

const CUDA = { backend: "cuda" } as const;

/** Asserts sent = processed + dead-lettered + in flight over `m`. */
function assertBalanced(
  m: {
    sent: number;
    processed: number;
    deadLettered: number;
    inFlight: number;
  },
): void {
  assert.equal(m.sent, m.processed + m.deadLettered + m.inFlight);
}

/** An echo "sink" and a forwarder "fwd" that sends it everything over K2K. */
async function sinkAndForwarder(rt: RingKernel) {
  const sink = await rt.launch("sink", { actor: "echo" });
  const fwd = await rt.launch("fwd", {
    actor: "forwarder",
    config: { target: "sink" },
  });
  return { sink, fwd };
}

describe("GPU actors through the runtime", () => {
  gpuTest("echo: call, send/receive and trySend", async () => {
    await withRuntime(CUDA, async (rt) => {
      const k = await rt.launch("echo", { actor: "echo" });
      assert.deepEqual(await k.call(echo(1), { timeoutMs: 5_000 }), echo(1));
      await k.send(echo(2));
      assert.deepEqual(await k.receive({ timeoutMs: 5_000 }), echo(2));
      assert.equal(k.trySend(echo(3)), true);
      assert.deepEqual(await k.receive({ timeoutMs: 5_000 }), echo(3));
      const batch = Array.from({ length: 500 }, (_, i) => echo(i + 10));
      assert.equal(await k.sendBatch(batch), 500);
      for (const expected of batch) {
        assert.deepEqual(await k.receive({ timeoutMs: 5_000 }), expected);
      }
      const m = k.metrics();
      assert.equal(m.processed, 503); // call, send, trySend and the batch
      assert.equal(m.sent, m.processed + m.deadLettered + m.inFlight);
    });
  });

  gpuTest(
    "the accumulator keeps state across messages and restarts fresh",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const k = await rt.launch("acc", { actor: "accumulator" });
        await k.call({ value: 1.5 }, { timeoutMs: 5_000 });
        await k.call({ value: 2.25 }, { timeoutMs: 5_000 });
        assert.deepEqual(await k.call({ value: -0.75 }, { timeoutMs: 5_000 }), {
          total: 3,
          count: 3n,
        });
      });
    },
  );

  gpuTest(
    "saxpy over 256-byte slots matches the CPU actor bit for bit",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const k = await rt.launch("saxpy", { actor: "saxpy" });
        const x = Float32Array.from(
          { length: SAXPY_LANES },
          (_, i) => Math.fround(0.1 * i + 1 / 3),
        );
        const y = Float32Array.from(
          { length: SAXPY_LANES },
          (_, i) => Math.fround(7 - i / 7),
        );
        const a = Math.fround(1.7);
        const reply = await k.call({ a, x, y }, { timeoutMs: 5_000 });
        const expected = new Float32Array(SAXPY_LANES);
        for (let i = 0; i < SAXPY_LANES; i++) {
          expected[i] = Math.fround(a * x[i]) + y[i];
        }
        assert.deepEqual(reply.out, expected);
        assert.equal(SaxpyRequest.size + 32 <= 256, true);
      });
    },
  );

  gpuTest(
    "reduce: sum, min and max of a device buffer, block-wide",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const data = Array.from({ length: 10_000 }, (_, i) => (i % 97) - 40);
        const k = await rt.launch("reduce", {
          actor: { module: REDUCE_ACTOR_MODULE },
          config: { data },
        });
        const sum = data.reduce((s, v) => s + v, 0);
        assert.deepEqual(
          await k.call({ op: ReduceOp.Sum, offset: 0, count: 10_000 }, {
            timeoutMs: 5_000,
          }),
          {
            value: sum,
            count: 10_000,
            op: ReduceOp.Sum,
          },
        );
        assert.deepEqual(
          await k.call({ op: ReduceOp.Min, offset: 100, count: 50 }, {
            timeoutMs: 5_000,
          }),
          {
            value: Math.min(...data.slice(100, 150)),
            count: 50,
            op: ReduceOp.Min,
          },
        );
        assert.deepEqual(
          await k.call({ op: ReduceOp.Max, offset: 9_990, count: 100 }, {
            timeoutMs: 5_000,
          }),
          {
            value: Math.max(...data.slice(9_990)),
            count: 10,
            op: ReduceOp.Max,
          },
        );
      });
    },
  );

  gpuTest(
    "lifecycle: deactivated actors queue, resume processes, invalid transitions are refused",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const k = await rt.launch("life", {
          actor: "echo",
          autoActivate: false,
        });
        assert.equal(k.state, "launched");
        await k.send(echo(1));
        await delay(50);
        assert.equal(k.metrics().processed, 0);
        await k.activate();
        assert.deepEqual(await k.receive({ timeoutMs: 5_000 }), echo(1));
        await k.deactivate();
        assert.equal(k.state, "deactivated");
        await assert.rejects(k.deactivate(), InvalidStateError);
        await k.send(echo(2));
        await delay(50);
        assert.equal(k.metrics().processed, 1);
        await k.activate();
        assert.deepEqual(await k.receive({ timeoutMs: 5_000 }), echo(2));
        await k.terminate();
        assert.equal(k.state, "terminated");
        assert.equal(
          kernelInternals(k).host.control.hasTerminated,
          TerminationState.Terminated,
        );
        await assert.rejects(k.activate(), InvalidStateError);
      });
    },
  );

  gpuTest(
    "once deactivate resolves, nothing sent is processed until activate (the device confirms the pause)",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const k = await rt.launch("paused", { actor: "echo" });
        for (let i = 0; i < 100; i++) {
          k.trySend(echo(2 * i));
          await k.deactivate({ timeoutMs: 5_000 });
          const processed = k.metrics().processed;
          assert.equal(k.trySend(echo(2 * i + 1)), true);
          await delay(1);
          assert.equal(k.metrics().processed, processed);
          await k.activate();
          assert.deepEqual(await k.receive({ timeoutMs: 5_000 }), echo(2 * i));
          assert.deepEqual(
            await k.receive({ timeoutMs: 5_000 }),
            echo(2 * i + 1),
          );
        }
      });
    },
  );

  gpuTest(
    "terminate drains what is queued; abort dead-letters it",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const drained = await rt.launch("drained", { actor: "echo" });
        await drained.deactivate();
        await drained.sendBatch([echo(1), echo(2), echo(3)]);
        await drained.terminate({ timeoutMs: 5_000 });
        assert.equal(drained.metrics().processed, 3);

        const aborted = await rt.launch("aborted", { actor: "echo" });
        await aborted.deactivate();
        await aborted.sendBatch([echo(1), echo(2)]);
        await aborted.terminate({ abort: true, timeoutMs: 5_000 });
        assert.equal(aborted.metrics().processed, 0);
        assert.equal(rt.deadLetters.countOf("aborted"), 2);
        assertBalanced(rt.metrics().totals);
      });
    },
  );

  gpuTest(
    "K2K: the forwarder sends through the device route table to its target",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const { sink, fwd } = await sinkAndForwarder(rt);
        for (let i = 0; i < 100; i++) await fwd.send(echo(i, 1.5));
        for (let i = 0; i < 100; i++) {
          assert.deepEqual(
            await sink.receive({ timeoutMs: 5_000 }),
            echo(i, 1.5),
          );
        }
        assert.equal(fwd.metrics().processed, 100);
        // What arrived through the device K2K inbox counts as sent to the sink.
        const m = sink.metrics();
        assert.equal(m.processed, 100);
        assert.equal(m.sent, 100);
        assertBalanced(m);
        assertBalanced(rt.metrics().totals);
      });
    },
  );

  gpuTest(
    "K2K: three forwarders feed one sink at once; every message arrives once and is counted",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const sink = await rt.launch("sink", { actor: "echo" });
        const forwarders = await Promise.all(
          [0, 1, 2].map((f) =>
            rt.launch(`fwd${f}`, {
              actor: "forwarder",
              config: { target: "sink" },
            })
          ),
        );
        const perForwarder = 2_000;
        // Concurrent producers into the sink's device inbox (its ticket CAS),
        // while the host drains the sink: backpressure runs all the way back.
        const sending = Promise.all(forwarders.map((fwd, f) =>
          fwd.sendBatch(
            Array.from(
              { length: perForwarder },
              (_, i) => echo(f * 100_000 + i, f),
            ),
            { timeoutMs: 30_000 },
          )
        ));
        const seen = new Map<number, number[]>();
        for (let n = 0; n < 3 * perForwarder; n++) {
          const m = await sink.receive({ timeoutMs: 10_000 });
          const f = Number(m.seq) / 100_000 | 0;
          seen.set(f, [...(seen.get(f) ?? []), Number(m.seq) % 100_000]);
        }
        assert.deepEqual(await sending, [
          perForwarder,
          perForwarder,
          perForwarder,
        ]);
        for (let f = 0; f < 3; f++) {
          // One forwarder's messages keep their order.
          assert.deepEqual(
            seen.get(f),
            Array.from({ length: perForwarder }, (_, i) => i),
          );
        }
        const m = sink.metrics();
        assert.equal(m.processed, 3 * perForwarder);
        assert.equal(m.sent, 3 * perForwarder);
        assert.equal(m.deadLettered, 0);
      });
    },
  );

  gpuTest(
    "K2K while the route table is rewritten: nothing is dead-lettered as unknown-target, nothing is lost",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const { sink, fwd } = await sinkAndForwarder(rt);
        const total = 2_000;
        const sending = fwd.sendBatch(
          Array.from({ length: total }, (_, i) => echo(i)),
          { timeoutMs: 30_000 },
        );
        // Every launch and terminate rewrites the device route table.
        const churn = (async () => {
          for (let i = 0; i < 20; i++) {
            const k = await rt.launch(`churn${i}`, { actor: "echo" });
            await k.terminate({ timeoutMs: 5_000 });
          }
        })();
        for (let i = 0; i < total; i++) {
          assert.deepEqual(await sink.receive({ timeoutMs: 10_000 }), echo(i));
        }
        assert.equal(await sending, total);
        await churn;
        assert.equal(rt.deadLetters.countOf("unknown-target"), 0);
      });
    },
  );

  gpuTest(
    "K2K to an actor without a route is dead-lettered as unknown-target",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const fwd = await rt.launch("lost", {
          actor: "forwarder",
          config: { target: "nobody" },
        });
        await fwd.send(echo(1));
        await pollUntil(() => rt.deadLetters.countOf("unknown-target") === 1, {
          timeoutMs: 5_000,
        });
        const m = fwd.metrics();
        assert.equal(m.deadLettered, 1);
        assertBalanced(m);
      });
    },
  );

  gpuTest(
    "a user actor from a PTX file runs; a failing handler crashes and is restarted",
    async () => {
      await withRuntime(CUDA, async (rt, events) => {
        const d = await rt.launch("doubler", {
          actor: { module: import.meta.url, export: "doubler" },
        });
        assert.deepEqual(
          await d.call(echo(3, 1.25), { timeoutMs: 5_000 }),
          echo(3, 2.5),
        );

        const c = await rt.launch<
          typeof EchoMessage.spec,
          typeof EchoMessage.spec
        >("counter", {
          actor: { module: import.meta.url, export: "counter" },
          restart: {
            strategy: "one-for-one",
            maxRestarts: 3,
            withinMs: 60_000,
          },
        });
        assert.equal((await c.call(echo(0), { timeoutMs: 5_000 })).seq, 1n);
        assert.equal((await c.call(echo(0), { timeoutMs: 5_000 })).seq, 2n);
        await assert.rejects(c.call(echo(0, 0, 0xdead), { timeoutMs: 5_000 }));
        await pollUntil(() => events.some((e) => e.type === "restart"), {
          timeoutMs: 10_000,
        });
        assert.equal(events[0].type, "crash");
        assert.equal(rt.deadLetters.countOf("handler-error"), 1);
        // Fresh state after the restart.
        assert.equal((await c.call(echo(0), { timeoutMs: 5_000 })).seq, 1n);
        assert.equal(c.metrics().crashes, 1);
      });
    },
  );

  gpuTest(
    "a user actor from CUDA C++ source (NVRTC at launch) keeps its state in device memory",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const k = await rt.launch<
          typeof EchoMessage.spec,
          typeof EchoMessage.spec
        >("total", {
          actor: { module: import.meta.url, export: "runningTotal" },
        });
        let total = 0;
        for (let i = 1; i <= 20; i++) {
          total += i / 2;
          assert.deepEqual(
            await k.call(echo(i, i / 2, 7), { timeoutMs: 5_000 }),
            { seq: BigInt(i), value: total, tag: 7 },
          );
        }
        const m = k.metrics();
        assert.equal(m.processed, 20);
        assertBalanced(m);
      });
    },
    {
      skip: nvrtc.available
        ? undefined
        : `libnvrtc not installed: ${nvrtc.reason?.split("\n")[0]}`,
    },
  );

  gpuTest(
    "a schema/state mismatch fails the launch with the device's reason",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        await assert.rejects(
          rt.launch("bad", {
            actor: { module: import.meta.url, export: "counterWithoutState" },
          }),
          (e: unknown) =>
            e instanceof RingKernelError &&
            /SchemaMismatch \(device error 6\)/.test(e.message),
        );
      });
    },
  );
});

// ---- backend level -------------------------------------------------------

let backend: CudaBackend | undefined;
function cuda(): CudaBackend {
  backend ??= CudaBackend.open();
  return backend;
}
after(async () => {
  await backend?.close();
});

let nextId = 1_000;

function spawn(
  b: CudaBackend,
  module: string,
  options: {
    exportName?: string;
    config?: unknown;
    name?: string;
    slotSize?: number;
    capacity?: number;
  } = {},
) {
  const id = nextId++;
  const exits: ActorExitReason[] = [];
  const deadLetters: string[] = [];
  const crashes: string[] = [];
  const spec: ActorSpawnSpec = {
    name: options.name ?? `gpu${id}`,
    id,
    queue: {
      queueCapacity: options.capacity ?? 1024,
      outputCapacity: options.capacity ?? 1024,
      slotSize: options.slotSize ?? 64,
    },
    module,
    exportName: options.exportName ?? "default",
    config: options.config,
    idleSpinMicros: 100,
    batchSize: 1024,
  };
  const events: ActorHostEvents = {
    onDeadLetter: (reason) => deadLetters.push(reason),
    onCrash: (error) => crashes.push(error.message),
    onExit: (reason) => exits.push(reason),
    onPublish: () => {},
    onSubscription: () => {},
  };
  const host = b.spawn(spec, events);
  host.control.isActive = true;
  return { host, exits, deadLetters, crashes };
}

async function stop(
  actor: { host: CudaActorHost; exits: ActorExitReason[] },
  abort = false,
): Promise<void> {
  if (abort) actor.host.control.shouldAbort = true;
  actor.host.control.shouldTerminate = true;
  await pollUntil(() => actor.exits.length > 0, {
    timeoutMs: 10_000,
    what: "actor exit",
  });
}

async function roundTrip(host: CudaActorHost, seq: number): Promise<void> {
  assert.ok(host.input.tryEnqueue(EchoMessage, echo(seq)));
  await pollUntil(() => host.output.available() > 0, { timeoutMs: 5_000 });
  host.output.dequeueBatch(1, (view, offset) => {
    assert.equal(readTypeId(view, offset), EchoMessage.typeId);
    assert.equal(view.getBigUint64(offset + 32, true), BigInt(seq));
  });
}

describe("GPU actors and the host's pollers", () => {
  gpuTest(
    "shutdown while a receive waits: the waiter fails typed and nothing polls the released queues",
    async () => {
      const rt = await RingKernel.create({ backend: "cuda" });
      const k = await rt.launch("idle", { actor: "echo" });
      const outcome = k.receive({ timeoutMs: 10_000 }).then(
        () => undefined,
        (error: unknown) => error,
      );
      await delay(5); // the pump is polling the output ring now
      await rt.shutdown({ timeoutMs: 10_000 });
      const error = await outcome;
      assert.ok(error instanceof RingKernelError, String(error));
      // Longer than the pump's wait: a poll of the released (detached) ring
      // would surface here as an uncaught TypeError.
      await delay(150);
    },
  );
});

describe("GPU actors at the backend level", () => {
  gpuTest(
    "four actors in ONE pool launch answer independently and stop one by one",
    async () => {
      const b = cuda();
      const actors = [0, 1, 2, 3].map(() =>
        spawn(b, BUILTIN_ACTORS.echo.module)
      );
      await b.startPool(actors.map((a) => a.host));
      for (const [i, actor] of actors.entries()) await roundTrip(actor.host, i);
      for (const actor of actors) {
        await stop(actor);
        assert.deepEqual(actor.exits, ["terminated"]);
        actor.host.dispose();
      }
    },
  );

  gpuTest("the heartbeat moves while the actor idles", async () => {
    const b = cuda();
    const actor = spawn(b, BUILTIN_ACTORS.echo.module);
    await actor.host.start(10_000);
    const first = actor.host.control.lastActivityTicks;
    assert.notEqual(first, 0n);
    await pollUntil(() => actor.host.control.lastActivityTicks > first, {
      timeoutMs: 5_000,
    });
    await stop(actor);
    actor.host.dispose();
  });

  gpuTest(
    "K2K generator → counter inside the device, counted exactly",
    async () => {
      const b = cuda();
      const sink = spawn(b, BENCH_ACTORS_MODULE, {
        exportName: "k2kSink",
        name: "bench-sink",
      });
      const source = spawn(b, BENCH_ACTORS_MODULE, {
        exportName: "k2kSource",
        name: "bench-source",
        config: { target: "bench-sink" },
      });
      await b.startPool([sink.host, source.host]);
      b.updateRoutes(
        new Map([["bench-sink", sink.host], ["bench-source", source.host]]),
      );
      const n = 100_000;
      assert.ok(
        source.host.input.tryEnqueue(EchoMessage, {
          seq: BigInt(n),
          value: 0,
          tag: 0,
        }),
      );
      const replies: { seq: bigint; value: number; tag: number }[] = [];
      await pollUntil(() => {
        sink.host.output.dequeueBatch(16, (view, offset) => {
          replies.push(EchoMessage.decode(view, offset + 32));
        });
        return replies.length >= 2;
      }, { timeoutMs: 20_000 });
      assert.equal(replies[1].tag, 1);
      assert.equal(replies[1].value, n);
      assert.ok(replies[1].seq >= replies[0].seq);
      b.updateRoutes(new Map());
      await stop(source);
      await stop(sink);
      source.host.dispose();
      sink.host.dispose();
    },
  );

  gpuTest(
    "1,000 launch/terminate cycles leave no memory, stream or launch behind",
    async () => {
      const b = cuda();
      const warm = spawn(b, BUILTIN_ACTORS.echo.module);
      await warm.host.start(10_000);
      await stop(warm);
      warm.host.dispose();
      await pollUntil(
        () => b.stats().launches === 0 && b.stats().pendingReleases === 0,
        { timeoutMs: 5_000 },
      );
      const before = b.stats();
      for (let i = 0; i < 1_000; i++) {
        const actor = spawn(b, BUILTIN_ACTORS.echo.module);
        await actor.host.start(10_000);
        if (i % 100 === 0) await roundTrip(actor.host, i);
        await stop(actor, i % 2 === 1);
        actor.host.dispose();
      }
      await pollUntil(
        () => b.stats().launches === 0 && b.stats().pendingReleases === 0,
        { timeoutMs: 10_000 },
      );
      const afterStats = b.stats();
      assert.equal(afterStats.mappedBytesInUse, before.mappedBytesInUse);
      assert.equal(afterStats.deviceBytesInUse, before.deviceBytesInUse);
      assert.equal(afterStats.mappedBytesReserved, before.mappedBytesReserved);
      assert.equal(afterStats.deviceBytesReserved, before.deviceBytesReserved);
      assert.ok(
        afterStats.streams <= before.streams + 1,
        `streams grew to ${afterStats.streams}`,
      );
      assert.equal(afterStats.actors, before.actors);
    },
    { timeout: 600_000 },
  );

  gpuTest(
    "close stops running actors, frees everything, and refuses further use",
    async () => {
      const b = CudaBackend.open();
      const actor = spawn(b, BUILTIN_ACTORS.echo.module);
      await actor.host.start(10_000);
      await b.close({ timeoutMs: 10_000 });
      assert.equal(actor.host.running, false);
      assert.throws(
        () => spawn(b, BUILTIN_ACTORS.echo.module),
        InvalidStateError,
      );
    },
  );
});
