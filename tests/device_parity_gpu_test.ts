// Parity of the device API with the CPU backend: the same actors (a CUDA C++
// side and a TypeScript side written to behave the same,
// fixtures/device_parity_actors.ts) get the same messages once as GPU actors
// (a CUDA runtime, placement "gpu") and once as CPU actors (a CPU runtime),
// and must give the same replies, in the same order where the order is
// defined, and the same accounting (sent, processed, dead-lettered) on every
// kernel: rk_send by name against ctx.send, rk_publish against ctx.publish,
// and rk_defer / rk_reply_to against a kept ctx.correlationId and
// ctx.replyTo. Skipped without a GPU (gpu_gate.ts); with
// RINGKERNEL_REQUIRE_GPU=1 they run (on the emulator when RINGKERNEL_LIBCUDA
// points at it).
import assert from "node:assert/strict";
import { describe } from "node:test";
import type { EchoMessage } from "../src/actors/schemas.ts";
import { delay, pollUntil } from "../src/async.ts";
import { Nvrtc } from "../src/backend/cuda/nvrtc.ts";
import { SendResult } from "../src/backend/cuda/pool_layout.ts";
import type { Kernel } from "../src/kernel.ts";
import type { RingKernel } from "../src/runtime.ts";
import { gpuTest } from "./gpu_gate.ts";
import { assertAccounted, echo, withRuntime } from "./helpers.ts";

type Echo = typeof EchoMessage.spec;
type Side = "gpu" | "cpu";
type Reply = { seq: number; value: number; tag: number };
type Account = { sent: number; processed: number; deadLettered: number };

const ACTORS = new URL("./fixtures/device_parity_actors.ts", import.meta.url)
  .href;

const nvrtc = Nvrtc.probe();
const needsNvrtc = {
  skip: nvrtc.available
    ? undefined
    : `libnvrtc not installed: ${nvrtc.reason?.split("\n")[0]}`,
};

/**
 * Runs `scenario` with GPU actors (a CUDA runtime) and with CPU actors (a
 * CPU runtime); returns what each observed.
 */
async function onBothSides<T>(
  scenario: (rt: RingKernel, side: Side) => Promise<T>,
): Promise<{ gpu: T; cpu: T }> {
  const gpu = await withRuntime(
    { backend: "cuda", quiet: true },
    (rt) => scenario(rt, "gpu"),
  );
  const cpu = await withRuntime(
    { backend: "cpu", quiet: true },
    (rt) => scenario(rt, "cpu"),
  );
  return { gpu, cpu };
}

/** Launches the fixture `exportName` as `name`, on `side` (listeners: CPU). */
async function launch(
  rt: RingKernel,
  side: Side,
  name: string,
  exportName: string,
  extra: { config?: unknown; queueCapacity?: number; autoActivate?: boolean } =
    {},
): Promise<Kernel<Echo, Echo>> {
  const kernel = await rt.launch<Echo, Echo>(name, {
    actor: { module: ACTORS, export: exportName },
    placement: exportName === "listener" ? "cpu" : side,
    ...extra,
  });
  assert.equal(
    kernel.backend,
    side === "gpu" && exportName !== "listener" ? "cuda" : "cpu",
  );
  return kernel;
}

const reply = (m: { seq: bigint; value: number; tag: number }): Reply => ({
  seq: Number(m.seq),
  value: m.value,
  tag: m.tag,
});

/** `n` replies of `k`, in the order they came. */
async function replies(k: Kernel<Echo, Echo>, n: number): Promise<Reply[]> {
  const got: Reply[] = [];
  for (let i = 0; i < n; i++) {
    got.push(reply(await k.receive({ timeoutMs: 10_000 })));
  }
  return got;
}

/** Once nothing is in flight: each kernel's accounting, checked and by name. */
async function accounts(
  kernels: readonly Kernel[],
): Promise<Record<string, Account>> {
  await pollUntil(
    () => kernels.every((k) => k.metrics().inFlight === 0),
    { timeoutMs: 10_000, what: "the kernels settle" },
  );
  const out: Record<string, Account> = {};
  for (const k of kernels) {
    const m = k.metrics();
    assertAccounted(m);
    out[k.name] = {
      sent: m.sent,
      processed: m.processed,
      deadLettered: m.deadLettered,
    };
  }
  return out;
}

describe("device API parity with the CPU backend", () => {
  gpuTest(
    "send by name, A → B → reply: the same results, replies and accounting",
    async () => {
      const n = 24;
      const capacity = 16;
      const { gpu, cpu } = await onBothSides(async (rt, side) => {
        const b = await launch(rt, side, "b", "counter");
        const a = await launch(rt, side, "a", "relay", {
          config: { target: "b" },
        });
        const lost = await launch(rt, side, "lost", "relay", {
          config: { target: "nobody" },
        });
        // A target that takes nothing: its inbox fills, then the sends are
        // refused at once (RK_SEND_FULL; ctx.send with timeoutMs 0).
        const held = await launch(rt, side, "held", "counter", {
          queueCapacity: capacity,
          autoActivate: false,
        });
        const toHeld = await launch(rt, side, "to-held", "relay", {
          config: { target: "held" },
        });
        const codes: number[] = [];
        for (let i = 1; i <= n; i++) {
          codes.push((await a.call(echo(i, i), { timeoutMs: 10_000 })).tag);
        }
        const lostCode = (await lost.call(echo(0), { timeoutMs: 10_000 })).tag;
        const fullCodes: number[] = [];
        for (let i = 0; i < capacity + 4; i++) {
          fullCodes.push(
            (await toHeld.call(echo(100 + i, i), { timeoutMs: 10_000 })).tag,
          );
        }
        const fromB = await replies(b, n);
        await held.activate();
        const fromHeld = await replies(held, capacity);
        return {
          codes,
          lostCode,
          fullCodes,
          fromB,
          fromHeld,
          deadLetters: rt.deadLetters.size,
          accounts: await accounts([a, b, lost, held, toHeld]),
        };
      });
      assert.deepEqual(gpu, cpu);
      // And what both gave is what the actors are written to give.
      assert.deepEqual(gpu.codes, Array(n).fill(SendResult.Ok));
      assert.equal(gpu.lostCode, SendResult.Unknown);
      assert.deepEqual(gpu.fullCodes, [
        ...Array(capacity).fill(SendResult.Ok),
        ...Array(4).fill(SendResult.Full),
      ]);
      assert.deepEqual(
        gpu.fromB,
        Array.from({ length: n }, (_, i) => ({
          seq: i + 1,
          value: 2 * (i + 2),
          tag: i + 1,
        })),
      );
      assert.deepEqual(
        gpu.fromHeld.map((r) => r.seq),
        Array.from({ length: capacity }, (_, i) => 100 + i),
      );
      assert.equal(gpu.deadLetters, 0);
      assert.deepEqual(gpu.accounts, {
        a: { sent: n, processed: n, deadLettered: 0 },
        b: { sent: n, processed: n, deadLettered: 0 },
        lost: { sent: 1, processed: 1, deadLettered: 0 },
        held: { sent: capacity, processed: capacity, deadLettered: 0 },
        "to-held": {
          sent: capacity + 4,
          processed: capacity + 4,
          deadLettered: 0,
        },
      });
    },
    needsNvrtc,
  );

  gpuTest(
    "deferred reply: the kept call answered from the later message, the same answers and accounting",
    async () => {
      const rounds = 3;
      const { gpu, cpu } = await onBothSides(async (rt, side) => {
        const d = await launch(rt, side, "deferring", "deferring");
        // A tag 2 with no call kept: rejected on the GPU (invalid-message),
        // a handler error on the CPU (handler-error, then a restart).
        await d.send(echo(0, 0, 2));
        await pollUntil(() => d.metrics().deadLettered === 1, {
          timeoutMs: 10_000,
        });
        await pollUntil(() => d.state === "active", { timeoutMs: 10_000 });
        const answers: Reply[] = [];
        const waited: boolean[] = [];
        const callOutcomes: string[] = [];
        for (let round = 1; round <= rounds; round++) {
          let settled = false;
          const call = d.call(echo(round, round, 1), { timeoutMs: 5_000 })
            .then(
              (m) => ({ answer: reply(m) }),
              (error: Error) => ({ error: error.name }),
            )
            .finally(() => settled = true);
          await delay(50);
          waited.push(!settled);
          await d.send(echo(round, round, 2));
          const outcome = await call;
          if ("answer" in outcome) {
            callOutcomes.push("answered");
            answers.push(outcome.answer);
          } else {
            callOutcomes.push(outcome.error);
            answers.push(reply(await d.receive({ timeoutMs: 10_000 })));
          }
        }
        return {
          waited,
          answers,
          callOutcomes,
          unread: d.tryReceive(),
          accounts: await accounts([d]),
        };
      });
      assert.deepEqual(gpu.answers, cpu.answers);
      assert.deepEqual(gpu.waited, cpu.waited);
      assert.deepEqual(gpu.accounts, cpu.accounts);
      assert.deepEqual(
        gpu.answers,
        Array.from({ length: rounds }, (_, i) => ({
          seq: i + 1,
          value: i + 101,
          tag: 2,
        })),
      );
      assert.deepEqual(gpu.waited, Array(rounds).fill(true));
      assert.deepEqual(gpu.accounts, {
        deferring: {
          sent: 2 * rounds + 1,
          processed: 2 * rounds,
          deadLettered: 1,
        },
      });
      assert.deepEqual(gpu.callOutcomes, cpu.callOutcomes);
      assert.deepEqual(gpu.callOutcomes, Array(rounds).fill("answered"));
      assert.equal(gpu.unread, undefined);
      assert.equal(cpu.unread, undefined);
    },
    needsNvrtc,
  );

  gpuTest(
    "publish: rk_publish and ctx.publish reach the same subscribers with the same messages and accounting",
    async () => {
      const n = 10;
      const { gpu, cpu } = await onBothSides(async (rt, side) => {
        const all = await launch(rt, side, "all", "listener");
        const temps = await launch(rt, side, "temps", "listener");
        const pub = await launch(rt, side, "publisher", "publisher");
        rt.subscribeKernel(all, "sensors/+");
        rt.subscribeKernel(temps, "sensors/temp");
        const heard: string[] = [];
        rt.subscribe("sensors/#", (message, topic) => {
          heard.push(`${topic} ${(message as { seq: bigint }).seq}`);
        });
        const codes: number[] = [];
        for (let i = 0; i < n; i++) {
          codes.push(
            (await pub.call(echo(i, i / 2, i % 2), { timeoutMs: 10_000 })).tag,
          );
        }
        const toAll = await replies(all, n);
        const toTemps = await replies(temps, n / 2);
        await pollUntil(() => heard.length === n, { timeoutMs: 10_000 });
        return {
          codes,
          heard,
          toAll,
          toTemps,
          deadLetters: rt.deadLetters.size,
          accounts: await accounts([pub, all, temps]),
        };
      });
      assert.deepEqual(gpu, cpu);
      assert.deepEqual(gpu.codes, Array(n).fill(SendResult.Ok));
      const topic = (i: number) => i % 2 ? "sensors/hum" : "sensors/temp";
      assert.deepEqual(
        gpu.heard,
        Array.from({ length: n }, (_, i) => `${topic(i)} ${i}`),
      );
      assert.deepEqual(
        gpu.toAll,
        Array.from({ length: n }, (_, i) => ({
          seq: i,
          value: i / 2,
          tag: i + 1,
        })),
      );
      assert.deepEqual(
        gpu.toTemps.map((r) => r.seq),
        Array.from({ length: n / 2 }, (_, i) => 2 * i),
      );
      assert.equal(gpu.deadLetters, 0);
      assert.deepEqual(gpu.accounts, {
        publisher: { sent: n, processed: n, deadLettered: 0 },
        all: { sent: n, processed: n, deadLettered: 0 },
        temps: { sent: n / 2, processed: n / 2, deadLettered: 0 },
      });
    },
    needsNvrtc,
  );
});
