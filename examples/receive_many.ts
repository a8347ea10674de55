/**
 * Taking replies in batches: `receiveMany` waits for at least one reply and
 * returns every one that is ready (up to `max`); `tryReceiveMany` never
 * waits (an empty array when none is ready). One wake-up for many replies.
 *
 * Run: `deno run -A examples/receive_many.ts` or `bun examples/receive_many.ts`
 *
 * @module
 */

import { type BackendRequest, RingKernel } from "../mod.ts";

/** What the example did, for its test. */
export interface ReceiveManyResult {
  /** The backend that ran it. */
  backend: string;
  /** Sequence numbers of the replies, in the order they were taken. */
  sequence: bigint[];
  /** How many replies each receiveMany returned. */
  batches: number[];
  /** What tryReceiveMany returned once everything was taken. */
  leftOver: number;
}

/** Runs the example on `backend` (default `"auto"`), sending `count` messages. */
export async function main(
  backend: BackendRequest = "auto",
  count = 500,
): Promise<ReceiveManyResult> {
  await using rt = await RingKernel.create({ backend, quiet: true });
  const echo = await rt.launch("echo", { actor: "echo", queueCapacity: 1024 });

  // One batch send: encoded in place, one publication per run that fits.
  await echo.sendBatch(
    Array.from({ length: count }, (_, i) => ({
      seq: BigInt(i),
      value: i,
      tag: 0,
    })),
    { timeoutMs: 10_000 },
  );

  // Take the replies as they come, as many as are ready at a time.
  const sequence: bigint[] = [];
  const batches: number[] = [];
  while (sequence.length < count) {
    const replies = await echo.receiveMany({ max: 256, timeoutMs: 10_000 });
    batches.push(replies.length);
    for (const reply of replies) sequence.push(reply.seq);
  }
  // Nothing is left: tryReceiveMany returns at once with [].
  const leftOver = echo.tryReceiveMany().length;

  console.log(`backend: ${rt.backend}`);
  console.log(
    `${count} replies in ${batches.length} receiveMany calls ` +
      `(largest batch ${
        Math.max(...batches)
      }); tryReceiveMany then: ${leftOver}`,
  );
  return { backend: rt.backend, sequence, batches, leftOver };
}

if (import.meta.main) await main();
