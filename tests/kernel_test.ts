// The Kernel handle: replies under backpressure.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { RingKernel } from "../src/runtime.ts";
import { deadline } from "../src/async.ts";
import type { Kernel } from "../src/kernel.ts";

async function withRuntime(fn: (rt: RingKernel) => Promise<void>) {
  const rt = await RingKernel.create({ backend: "cpu", quiet: true });
  try {
    await fn(rt);
  } finally {
    await rt.shutdown({ timeoutMs: 5_000 });
  }
}

function echo(seq: number) {
  return { seq: BigInt(seq), value: seq, tag: 0 };
}

/** Fails, instead of hanging, when `promise` does not settle in time. */
function settles<T>(promise: Promise<T>, what: string): Promise<T> {
  return deadline(promise, 20_000, { what });
}

function balanced(k: Kernel): void {
  const m = k.metrics();
  assert.equal(
    m.sent,
    m.processed + m.deadLettered + m.inFlight,
    `sent ${m.sent} = processed ${m.processed} + dead-lettered ${m.deadLettered} + in flight ${m.inFlight}`,
  );
}

describe("replies", () => {
  test("no reply is lost to a race with its call: rounds of 10,000 concurrent calls through a 16-slot queue", async () => {
    await withRuntime(async (rt) => {
      const k = await rt.launch("echo", { actor: "echo", queueCapacity: 16 });
      const n = 10_000;
      // The race is a matter of timing: a few rounds make a miss unlikely.
      for (let round = 0; round < 3; round++) {
        const calls = Array.from(
          { length: n },
          (_, i) => k.call(echo(round * n + i), { timeoutMs: 15_000 }),
        );
        const results = await settles(Promise.allSettled(calls), "the calls");
        const failed = results.filter((r) => r.status === "rejected");
        assert.deepEqual(
          failed.slice(0, 3).map((r) =>
            String((r as PromiseRejectedResult).reason)
          ),
          [],
          `round ${round}: ${failed.length} of ${n} calls failed`,
        );
        results.forEach((r, i) =>
          assert.equal(
            (r as PromiseFulfilledResult<{ seq: bigint }>).value.seq,
            BigInt(round * n + i),
          )
        );
      }
      assert.equal(rt.deadLetters.countOf("expired"), 0);
      const m = k.metrics();
      assert.equal(m.sent, 3 * n);
      assert.equal(m.processed, 3 * n);
      balanced(k);
    });
  });
});
