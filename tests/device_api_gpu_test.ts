// GPU tests of the device API of ringkernel.cuh, on user actors compiled from
// CUDA C++ (NVRTC, or the emulator's g++): rk_send by name from one GPU actor
// to another, its result codes (unknown name, full target) and counters, the
// name hash of the device against the host's, a deferred reply, rk_publish
// to subscribers of every kind, and the device's hybrid logical clock
// (stamps on sends, the receive rule, skew beyond the bound dead-lettered).
// Skipped without a GPU (gpu_gate.ts); with RINGKERNEL_REQUIRE_GPU=1 they run
// and fail without one.
import assert from "node:assert/strict";
import { describe } from "node:test";
import type { ActorDefinition } from "../src/actor.ts";
import { EchoMessage } from "../src/actors/schemas.ts";
import { pollUntil } from "../src/async.ts";
import type { CudaActorHost } from "../src/backend/cuda/cuda_actor.ts";
import { defineGpuActor } from "../src/backend/cuda/gpu_actor.ts";
import { Nvrtc } from "../src/backend/cuda/nvrtc.ts";
import { SendResult } from "../src/backend/cuda/pool_layout.ts";
import { nameHash } from "../src/backend/cuda/route_table.ts";
import { kernelInternals } from "../src/kernel.ts";
import { gpuTest } from "./gpu_gate.ts";
import { withRuntime } from "./helpers.ts";

type Echo = typeof EchoMessage.spec;

/**
 * Two actors of one source. `relay` sends each message on to the actor its
 * configuration names (rk_send) and replies with the result code in `tag`;
 * tag 7 asks it for rk_name("relay-b") instead. `doubler` replies to the host
 * with `value` doubled; tag 9 asks it for the HLC timestamp it received.
 */
const RELAY_SOURCE = `#include "ringkernel.cuh"
struct echo_msg { rk_u64 seq; double value; rk_u32 tag; };
static_assert(sizeof(echo_msg) == 24, "echo_msg mirrors ringkernel.Echo");
__device__ rk_i32 relay(const echo_msg& in, echo_msg& out, rk_actor_ctx& ctx) {
  out = in;
  if (in.tag == 7u) {
    out.seq = rk_name("relay-b");
    return RK_REPLY;
  }
  const rk_u64 target = *reinterpret_cast<const rk_u64*>(ctx.config);
  out.tag = static_cast<rk_u32>(rk_send(ctx, target, in));
  return RK_REPLY;
}
RK_DEFINE_ACTOR(relay_pool, echo_msg, echo_msg, relay)
__device__ rk_i32 doubler(const echo_msg& in, echo_msg& out, rk_actor_ctx& ctx) {
  out = in;
  out.value = in.value * 2.0;
  if (in.tag == 9u) out.seq = ctx.timestamp;
  return RK_REPLY;
}
RK_DEFINE_ACTOR(doubler_pool, echo_msg, echo_msg, doubler)
`;

/**
 * A stateful actor that defers: tag 1 keeps the call's correlation id
 * (rk_defer) and answers nothing; tag 2 answers the kept call (rk_reply_to)
 * with `value` + 100.
 */
const DEFER_SOURCE = `#include "ringkernel.cuh"
struct echo_msg { rk_u64 seq; double value; rk_u32 tag; };
struct defer_state { rk_u64 held; };
__device__ rk_i32 deferring(const echo_msg& in, echo_msg& out, defer_state& state, rk_actor_ctx& ctx) {
  if (in.tag == 1u) {
    state.held = rk_defer(ctx);
    return RK_HANDLED;
  }
  if (state.held == 0) return RK_REJECT;
  out = in;
  out.value = in.value + 100.0;
  const rk_u64 held = state.held;
  state.held = 0;
  return rk_reply_to(ctx, held);
}
RK_DEFINE_STATEFUL_ACTOR(defer_pool, echo_msg, echo_msg, defer_state, deferring)
`;

/**
 * Publishes each message (its own output type) on a topic its tag picks:
 * 0 sensors/temp, 1 sensors/hum, 2 other/x (a topic it does not declare);
 * replies with the result code in `tag`.
 */
const PUBLISHER_SOURCE = `#include "ringkernel.cuh"
struct echo_msg { rk_u64 seq; double value; rk_u32 tag; };
__device__ rk_i32 publisher(const echo_msg& in, echo_msg& out, rk_actor_ctx& ctx) {
  const rk_u64 topic = in.tag == 0u ? rk_topic("sensors/temp") : in.tag == 1u ? rk_topic("sensors/hum") : rk_topic("other/x");
  out = in;
  out.tag = static_cast<rk_u32>(rk_publish(ctx, topic, in));
  return RK_REPLY;
}
RK_DEFINE_ACTOR(publisher_pool, echo_msg, echo_msg, publisher)
`;

function encodeTarget(
  config: unknown,
  context: { nameHash(name: string): bigint },
): Uint8Array {
  const bytes = new Uint8Array(8);
  const target = (config as { target?: string } | undefined)?.target;
  if (target !== undefined) {
    new DataView(bytes.buffer).setBigUint64(0, context.nameHash(target), true);
  }
  return bytes;
}

/** Sends every message on to `config.target` with rk_send; replies with the result code. */
export const relay: ActorDefinition<Echo, Echo, unknown> = defineGpuActor({
  input: EchoMessage,
  output: EchoMessage,
  gpu: {
    source: { cuda: RELAY_SOURCE, entry: "relay_pool", name: "relay.cu" },
    encodeConfig: encodeTarget,
  },
});

/** Replies with `value` doubled. */
export const doubler: ActorDefinition<Echo, Echo, unknown> = defineGpuActor({
  input: EchoMessage,
  output: EchoMessage,
  gpu: {
    source: { cuda: RELAY_SOURCE, entry: "doubler_pool", name: "relay.cu" },
  },
});

/** Defers a call's reply to a later message. */
export const deferring: ActorDefinition<Echo, Echo, unknown> = defineGpuActor({
  input: EchoMessage,
  output: EchoMessage,
  gpu: {
    source: { cuda: DEFER_SOURCE, entry: "defer_pool", name: "defer.cu" },
    stateBytes: 8,
  },
});

/** Publishes from device code to the topic its message's tag picks. */
export const publisher: ActorDefinition<Echo, Echo, unknown> = defineGpuActor({
  input: EchoMessage,
  output: EchoMessage,
  gpu: {
    source: {
      cuda: PUBLISHER_SOURCE,
      entry: "publisher_pool",
      name: "publisher.cu",
    },
    topics: ["sensors/temp", "sensors/hum"],
  },
});

const nvrtc = Nvrtc.probe();
const needsNvrtc = {
  skip: nvrtc.available
    ? undefined
    : `libnvrtc not installed: ${nvrtc.reason?.split("\n")[0]}`,
};

const CUDA = { backend: "cuda" } as const;
const MODULE = import.meta.url;

const echo = (seq: number, value = seq / 4, tag = 0) => ({
  seq: BigInt(seq),
  value,
  tag,
});

function hostOf(kernel: Parameters<typeof kernelInternals>[0]): CudaActorHost {
  return kernelInternals(kernel).host as CudaActorHost;
}

describe("the device API: rk_send", () => {
  gpuTest(
    "a user GPU actor sends to another by name; the other replies to the host",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const b = await rt.launch<Echo, Echo>("relay-b", {
          actor: { module: MODULE, export: "doubler" },
        });
        const a = await rt.launch<Echo, Echo>("relay-a", {
          actor: { module: MODULE, export: "relay" },
          config: { target: "relay-b" },
        });
        // The device's rk_name is the host's nameHash.
        assert.equal(
          (await a.call(echo(0, 0, 7), { timeoutMs: 5_000 })).seq,
          nameHash("relay-b"),
        );
        const n = 50;
        for (let i = 1; i <= n; i++) {
          const reply = await a.call(echo(i, i), { timeoutMs: 5_000 });
          assert.equal(reply.tag, SendResult.Ok);
        }
        const values: number[] = [];
        for (let i = 1; i <= n; i++) {
          values.push((await b.receive({ timeoutMs: 5_000 })).value);
        }
        assert.deepEqual(
          values,
          Array.from({ length: n }, (_, i) => 2 * (i + 1)),
        );
        assert.equal(hostOf(a).deviceSends().sent, n);
        const m = b.metrics();
        assert.equal(m.sent, n); // what arrived through the device K2K inbox
        assert.equal(m.processed, n);
        assert.equal(m.sent, m.processed + m.deadLettered + m.inFlight);
      });
    },
    needsNvrtc,
  );

  gpuTest(
    "a send to a name without a route is RK_SEND_UNKNOWN, counted, and nothing is dead-lettered",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const a = await rt.launch<Echo, Echo>("lonely", {
          actor: { module: MODULE, export: "relay" },
          config: { target: "nobody" },
        });
        assert.equal(
          (await a.call(echo(1), { timeoutMs: 5_000 })).tag,
          SendResult.Unknown,
        );
        await pollUntil(() => hostOf(a).deviceSends().unknown === 1, {
          timeoutMs: 5_000,
        });
        assert.equal(rt.deadLetters.size, 0);
      });
    },
    needsNvrtc,
  );

  gpuTest(
    "a full target is RK_SEND_FULL at once, counted; nothing waits and nothing is lost",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const capacity = 16;
        const b = await rt.launch<Echo, Echo>("relay-b", {
          actor: { module: MODULE, export: "doubler" },
          queueCapacity: capacity,
          autoActivate: false, // it takes nothing: its K2K inbox fills
        });
        const a = await rt.launch<Echo, Echo>("relay-a", {
          actor: { module: MODULE, export: "relay" },
          config: { target: "relay-b" },
        });
        const results: number[] = [];
        for (let i = 0; i < capacity + 4; i++) {
          results.push((await a.call(echo(i), { timeoutMs: 5_000 })).tag);
        }
        assert.deepEqual(results, [
          ...Array(capacity).fill(SendResult.Ok),
          ...Array(4).fill(SendResult.Full),
        ]);
        await pollUntil(() => hostOf(a).deviceSends().full === 4, {
          timeoutMs: 5_000,
        });
        assert.equal(hostOf(a).deviceSends().sent, capacity);
        await b.activate();
        for (let i = 0; i < capacity; i++) {
          assert.equal(
            (await b.receive({ timeoutMs: 5_000 })).seq,
            BigInt(i),
          );
        }
        const m = b.metrics();
        assert.equal(m.processed, capacity);
        assert.equal(m.sent, m.processed + m.deadLettered + m.inFlight);
      });
    },
    needsNvrtc,
  );

  gpuTest(
    "sends carry the sender's HLC timestamp, after what it received",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const b = await rt.launch<Echo, Echo>("relay-b", {
          actor: { module: MODULE, export: "doubler" },
        });
        const a = await rt.launch<Echo, Echo>("relay-a", {
          actor: { module: MODULE, export: "relay" },
          config: { target: "relay-b" },
        });
        const stamps: bigint[] = [];
        for (let i = 0; i < 5; i++) {
          const before = Date.now();
          await a.call(echo(i, 0, 9), { timeoutMs: 5_000 });
          const stamp = (await b.receive({ timeoutMs: 5_000 })).seq;
          const ms = Number(stamp >> 16n);
          assert.ok(
            ms >= before - 1_000 && ms <= Date.now() + 1_000,
            `a device timestamp of ${ms} ms, sent at ${before}`,
          );
          stamps.push(stamp);
        }
        for (let i = 1; i < stamps.length; i++) {
          assert.ok(stamps[i] > stamps[i - 1], "one sender's stamps increase");
        }
      });
    },
    needsNvrtc,
  );
});

describe("the device API: deferred replies", () => {
  gpuTest(
    "a handler keeps a call's correlation id and answers it from a later message",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const d = await rt.launch<Echo, Echo>("deferring", {
          actor: { module: MODULE, export: "deferring" },
        });
        for (let round = 0; round < 3; round++) {
          const held = d.call(echo(round, round, 1), { timeoutMs: 10_000 });
          let settled = false;
          held.finally(() => settled = true).catch(() => {});
          await new Promise((resolve) => setTimeout(resolve, 20));
          assert.equal(settled, false, "the call waits for its deferred reply");
          await d.send(echo(round, round, 2));
          assert.deepEqual(await held, echo(round, round + 100, 2));
        }
        const m = d.metrics();
        assert.equal(m.processed, 6);
        assert.equal(m.sent, m.processed + m.deadLettered + m.inFlight);
      });
    },
    needsNvrtc,
  );
});

describe("the device API: rk_publish", () => {
  gpuTest(
    "device code publishes; host handlers and GPU subscribers of matching filters receive it",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const pub = await rt.launch<Echo, Echo>("publisher", {
          actor: { module: MODULE, export: "publisher" },
        });
        const sub = await rt.launch<Echo, Echo>("gpu-sub", { actor: "echo" });
        rt.subscribeKernel(sub, "sensors/+");
        const heard: [string, number][] = [];
        rt.subscribe("sensors/#", (message, topic) => {
          heard.push([topic, (message as { value: number }).value]);
        });
        const temps = rt.subscribe("sensors/temp", () => {});
        temps.unsubscribe();
        const n = 10;
        for (let i = 0; i < n; i++) {
          const reply = await pub.call(echo(i, i, i % 2), { timeoutMs: 5_000 });
          assert.equal(reply.tag, SendResult.Ok);
        }
        await pollUntil(() => heard.length === n, { timeoutMs: 5_000 });
        assert.deepEqual(
          heard,
          Array.from(
            { length: n },
            (_, i) => [i % 2 ? "sensors/hum" : "sensors/temp", i],
          ),
        );
        // The GPU subscriber's inbox got each publication once (echo replies it).
        const values: number[] = [];
        for (let i = 0; i < n; i++) {
          values.push((await sub.receive({ timeoutMs: 5_000 })).value);
        }
        assert.deepEqual(values, Array.from({ length: n }, (_, i) => i));
        const sends = hostOf(pub).deviceSends();
        assert.equal(sends.published, n);
        assert.equal(sends.delivered, n);
        const m = sub.metrics();
        assert.equal(m.processed, n);
        assert.equal(m.sent, m.processed + m.deadLettered + m.inFlight);
      });
    },
    needsNvrtc,
  );

  gpuTest(
    "a publication to a topic the actor does not declare is dead-lettered as unknown-target",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const pub = await rt.launch<Echo, Echo>("publisher", {
          actor: { module: MODULE, export: "publisher" },
        });
        rt.subscribe("#", () => assert.fail("nothing is delivered"));
        assert.equal(
          (await pub.call(echo(1, 1, 2), { timeoutMs: 5_000 })).tag,
          SendResult.Ok,
        );
        await pollUntil(() => rt.deadLetters.countOf("unknown-target") === 1, {
          timeoutMs: 5_000,
        });
        assert.equal(hostOf(pub).deviceSends().delivered, 0);
      });
    },
    needsNvrtc,
  );
});

describe("the device API: the hybrid logical clock", () => {
  gpuTest(
    "a receive merges the envelope's stamp; a stamp beyond the skew bound is dead-lettered",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        await rt.launch<Echo, Echo>("relay-b", {
          actor: { module: MODULE, export: "doubler" },
        });
        const b = rt.getKernel<Echo, Echo>("relay-b");
        const a = await rt.launch<Echo, Echo>("relay-a", {
          actor: { module: MODULE, export: "relay" },
          config: { target: "relay-b" },
        });
        // Raw sends with chosen stamps, through the host's own producer of
        // the input queue (the kernel's producer sends nothing here).
        const input = hostOf(a).input;
        const payload = new Uint8Array(EchoMessage.size);
        const raw = (seq: number, tag: number, timestamp: bigint) => {
          EchoMessage.encode(
            new DataView(payload.buffer),
            0,
            echo(seq, 0, tag),
          );
          assert.ok(
            input.tryEnqueueRaw(
              { typeId: EchoMessage.typeId, timestamp },
              payload,
            ),
          );
        };
        const dead: string[] = [];
        rt.deadLetters.onDeadLetter((letter) => dead.push(letter.detail ?? ""));
        // An hour ahead: beyond the bound (60 s), dead-lettered, not merged.
        raw(1, 9, BigInt(Date.now() + 3_600_000) << 16n);
        // Two seconds ahead, within the bound: merged, so what the relay
        // sends next is stamped after it.
        const ahead = (BigInt(Date.now() + 2_000) << 16n) | 5n;
        raw(2, 9, ahead);
        const received = await b.receive({ timeoutMs: 5_000 });
        assert.equal(received.tag, 9);
        assert.ok(
          received.seq > ahead,
          `the relay's send ${received.seq} follows the stamp it received ${ahead}`,
        );
        assert.ok(received.seq < BigInt(Date.now() + 3_000_000) << 16n);
        await pollUntil(() => dead.length === 1, { timeoutMs: 5_000 });
        assert.match(dead[0], /clock-skew/);
        assert.equal(rt.deadLetters.countOf("invalid-message"), 1);
      });
    },
    needsNvrtc,
  );
});
