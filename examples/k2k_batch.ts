/**
 * Actor to actor, in batches: a CPU actor (`actors/splitter.ts`) fans each
 * message out to an echo actor with `ctx.sendBatch` (many messages, one claim
 * of the target's queue) or `ctx.trySend` (never waits; false when full).
 * The host only talks to the two ends.
 *
 * Run: `deno run -A examples/k2k_batch.ts` or `bun examples/k2k_batch.ts`
 *
 * @module
 */

import { type EchoFields, RingKernel } from "../mod.ts";

/** What the example did, for its test. */
export interface K2kBatchResult {
  /** How many copies the sink accepted from the batch send. */
  batchAccepted: number;
  /** How many copies the sink accepted from the trySend loop. */
  tryAccepted: number;
  /** Sequence numbers the sink echoed, in order. */
  received: bigint[];
}

/** Runs the example (CPU actors: the splitter is written in TypeScript). */
export async function main(): Promise<K2kBatchResult> {
  await using rt = await RingKernel.create({ backend: "cpu" });
  const sink = await rt.launch<EchoFields, EchoFields>("sink", {
    actor: "echo",
    queueCapacity: 256,
  });
  const splitter = await rt.launch<EchoFields, EchoFields>("splitter", {
    actor: { module: new URL("./actors/splitter.ts", import.meta.url) },
    config: { target: "sink" },
  });

  // 50 copies as one batch, then 10 copies one trySend at a time.
  const batch = await splitter.call({ seq: 1n, value: 50, tag: 0 }, {
    timeoutMs: 5_000,
  });
  const single = await splitter.call({ seq: 2n, value: 10, tag: 1 }, {
    timeoutMs: 5_000,
  });
  const received: bigint[] = [];
  while (received.length < batch.tag + single.tag) {
    const replies = await sink.receiveMany({ timeoutMs: 5_000 });
    for (const reply of replies) received.push(reply.seq);
  }

  console.log(`sendBatch: the sink accepted ${batch.tag} of 50`);
  console.log(`trySend: the sink accepted ${single.tag} of 10`);
  console.log(
    `the sink echoed ${received.length} messages, first ${received[0]}, last ${
      received.at(-1)
    }`,
  );
  return { batchAccepted: batch.tag, tryAccepted: single.tag, received };
}

if (import.meta.main) await main();
