/**
 * A K2K pipeline of three actors: two forwarders pass each message actor to
 * actor (through the receivers' queues, not through the host) to an echo
 * actor, which replies to the host.
 *
 * Run: `deno run -A examples/pipeline.ts` or `bun examples/pipeline.ts`
 *
 * @module
 */

import { type BackendRequest, RingKernel } from "../mod.ts";

/** What the example did, for its test. */
export interface PipelineResult {
  /** Sequence numbers in the order they came out of the pipeline. */
  sequence: bigint[];
  /** Messages each stage processed. */
  processed: Record<string, number>;
}

/** Runs the example on `backend` (default `"auto"`). */
export async function main(
  backend: BackendRequest = "auto",
  count = 100,
): Promise<PipelineResult> {
  await using rt = await RingKernel.create({ backend });
  // Launch the end first, so each forwarder's target exists.
  const sink = await rt.launch("sink", { actor: "echo" });
  await rt.launch("middle", { actor: "forwarder", config: { target: "sink" } });
  const head = await rt.launch("head", {
    actor: "forwarder",
    config: { target: "middle" },
  });

  for (let i = 0; i < count; i++) {
    await head.send({ seq: BigInt(i), value: i * 0.5, tag: 1 });
  }
  const sequence: bigint[] = [];
  for (let i = 0; i < count; i++) {
    sequence.push((await sink.receive({ timeoutMs: 5_000 })).seq);
  }

  // Each stage counts a message just after passing it on: let the counters settle.
  const settleBy = performance.now() + 5_000;
  while (rt.metrics().totals.inFlight > 0 && performance.now() < settleBy) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  const processed: Record<string, number> = {};
  for (const m of rt.metrics().kernels) processed[m.name] = m.processed;
  console.log(
    `${count} messages went head → middle → sink, in order: ${
      isInOrder(sequence)
    }`,
  );
  console.log(`processed per stage:`, processed);
  return { sequence, processed };
}

function isInOrder(values: bigint[]): boolean {
  return values.every((v, i) => i === 0 || values[i - 1] < v);
}

if (import.meta.main) await main();
