// Differential test of the two backends: random sequences of calls, sends,
// batches, pauses and topic publications (with the right schema, or another
// one the actor must dead-letter) over the built-in actors (echo, accumulator, saxpy, and a
// forwarder into an echo sink over K2K) run on the CPU backend and on the CUDA
// backend, and must give the same replies in the same order and the same
// final metrics. It needs the CUDA backend: a GPU, or the CPU emulator of the
// driver (deno task test:emulated).
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  AccumulatorAdd,
  EchoMessage,
  SAXPY_LANES,
  SaxpyRequest,
} from "../src/actors/schemas.ts";
import type { MessageSchema } from "../src/message.ts";
import { delay } from "../src/async.ts";
import type { Kernel } from "../src/kernel.ts";
import { RingKernel } from "../src/runtime.ts";
import { gpuTestOptions, requireGpu } from "./gpu_gate.ts";

type ActorName = "echo" | "acc" | "saxpy" | "fwd";
type Mode = "call" | "send" | "batch" | "paused" | "publish" | "publish-wrong";

/** The schema each actor takes, and one it does not. */
const SCHEMAS: Record<
  ActorName,
  { right: MessageSchema; wrong: MessageSchema }
> = {
  echo: { right: EchoMessage, wrong: AccumulatorAdd },
  fwd: { right: EchoMessage, wrong: AccumulatorAdd },
  acc: { right: AccumulatorAdd, wrong: EchoMessage },
  saxpy: { right: SaxpyRequest, wrong: EchoMessage },
} as unknown as Record<
  ActorName,
  { right: MessageSchema; wrong: MessageSchema }
>;

interface Step {
  readonly actor: ActorName;
  readonly mode: Mode;
  readonly count: number;
  readonly seed: number;
}

/** A small deterministic generator, so both backends get the same messages. */
function prng(seed: number): () => number {
  let s = (seed >>> 0) || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

function messagesFor(step: Step): unknown[] {
  const next = prng(step.seed);
  const schema = SCHEMAS[step.actor][
    step.mode === "publish-wrong" ? "wrong" : "right"
  ];
  const float = () => (next() / 2 ** 32 - 0.5) * 2 ** ((next() % 40) - 20);
  return Array.from({ length: step.count }, () => {
    switch (schema) {
      case AccumulatorAdd:
        return { value: float() };
      case SaxpyRequest:
        return {
          a: Math.fround(float()),
          x: Float32Array.from({ length: SAXPY_LANES }, () => float()),
          y: Float32Array.from({ length: SAXPY_LANES }, () => float()),
        };
      default:
        return {
          seq: (BigInt(next()) << 32n) | BigInt(next()),
          value: next() % 17 === 0 ? -0 : float(),
          tag: next(),
        };
    }
  });
}

interface Outcome {
  readonly replies: unknown[][];
  readonly metrics: Record<string, unknown>;
  readonly deadLetters: Record<string, number>;
}

/** Runs `steps` on a fresh runtime of `backend`; what the host observed. */
async function run(
  backend: "cpu" | "cuda",
  steps: readonly Step[],
): Promise<Outcome> {
  const rt = await RingKernel.create({ backend, quiet: true });
  try {
    const kernels: Record<ActorName | "sink", Kernel> = {
      echo: await rt.launch("echo", { actor: "echo" }),
      acc: await rt.launch("acc", { actor: "accumulator" }),
      saxpy: await rt.launch("saxpy", { actor: "saxpy" }),
      sink: await rt.launch("sink", { actor: "echo" }),
      fwd: await rt.launch("fwd", {
        actor: "forwarder",
        config: { target: "sink" },
      }),
    } as unknown as Record<ActorName | "sink", Kernel>;
    for (const name of ["echo", "acc", "saxpy", "fwd"] as const) {
      rt.subscribeKernel(kernels[name], `parity/${name}`);
    }
    const replies: unknown[][] = [];
    for (const step of steps) {
      const k = kernels[step.actor];
      // The forwarder never replies: its messages come back from the sink.
      const from = step.actor === "fwd" ? kernels.sink : k;
      const messages = messagesFor(step);
      const got: unknown[] = [];
      const receiveAll = async () => {
        for (let i = 0; i < messages.length; i++) {
          got.push(await from.receive({ timeoutMs: 10_000 }));
        }
      };
      if (step.mode === "call" && step.actor !== "fwd") {
        for (const m of messages) {
          got.push(await k.call(m as never, { timeoutMs: 10_000 }));
        }
      } else if (step.mode === "send" || step.mode === "call") {
        for (const m of messages) {
          await k.send(m as never, { timeoutMs: 10_000 });
        }
        await receiveAll();
      } else if (step.mode === "publish" || step.mode === "publish-wrong") {
        const schema = SCHEMAS[step.actor][
          step.mode === "publish" ? "right" : "wrong"
        ];
        for (const m of messages) {
          assert.equal(
            rt.publish(`parity/${step.actor}`, m as never, { schema }),
            1,
          );
        }
        if (step.mode === "publish") await receiveAll();
      } else if (step.mode === "batch") {
        assert.equal(
          await k.sendBatch(messages as never[], { timeoutMs: 10_000 }),
          messages.length,
        );
        await receiveAll();
      } else {
        await k.deactivate();
        await k.sendBatch(messages as never[], { timeoutMs: 10_000 });
        // Paused: the messages wait (the last step's release may still be
        // on its way, so at least these), and nothing comes back.
        assert.ok(k.metrics().inFlight >= messages.length);
        await delay(10);
        assert.equal(from.tryReceive(), undefined);
        await k.activate();
        await receiveAll();
      }
      replies.push(got);
    }
    const metrics: Record<string, unknown> = {};
    for (const name of ["fwd", "echo", "acc", "saxpy", "sink"] as const) {
      const k = kernels[name];
      await k.terminate({ timeoutMs: 10_000 });
      const { sent, processed, deadLettered, inFlight, pendingReplies } = k
        .metrics();
      metrics[name] = {
        sent,
        processed,
        deadLettered,
        inFlight,
        pendingReplies,
      };
    }
    const deadLetters: Record<string, number> = {};
    for (
      const reason of ["invalid-message", "handler-error", "unknown-target"]
    ) {
      deadLetters[reason] = rt.deadLetters.countOf(reason as never);
    }
    return { replies, metrics, deadLetters };
  } finally {
    await rt.shutdown({ timeoutMs: 10_000 });
  }
}

const stepArbitrary: fc.Arbitrary<Step> = fc.record({
  actor: fc.constantFrom<ActorName>("echo", "acc", "saxpy", "fwd"),
  mode: fc.constantFrom<Mode>(
    "call",
    "send",
    "batch",
    "paused",
    "publish",
    "publish-wrong",
  ),
  count: fc.integer({ min: 1, max: 40 }),
  seed: fc.integer(),
});

test(
  "the CPU and CUDA backends give the same replies, in order, and the same metrics",
  { ...gpuTestOptions(), timeout: 300_000 },
  async () => {
    requireGpu();
    await fc.assert(
      fc.asyncProperty(
        fc.array(stepArbitrary, { minLength: 1, maxLength: 8 }),
        async (steps) => {
          const cpu = await run("cpu", steps);
          const cuda = await run("cuda", steps);
          assert.deepStrictEqual(cuda.replies, cpu.replies);
          assert.deepStrictEqual(cuda.metrics, cpu.metrics);
          assert.deepStrictEqual(cuda.deadLetters, cpu.deadLetters);
        },
      ),
      { numRuns: 25, seed: 20261128 },
    );
  },
);
