/**
 * Backpressure: an actor's queue is bounded. While it is full, `trySend`
 * returns false (nothing dropped), `send` waits for room — and fails with
 * `QueueFullError` at its deadline if none comes; a `send` that waits goes
 * through as soon as the actor takes messages again.
 *
 * Run: `deno run -A examples/backpressure.ts` or `bun examples/backpressure.ts`
 *
 * @module
 */

import { type BackendRequest, QueueFullError, RingKernel } from "../mod.ts";

/** What the example did, for its test. */
export interface BackpressureResult {
  /** The backend that ran it. */
  backend: string;
  /** Messages trySend put into the paused actor's queue before it was full. */
  accepted: number;
  /** Whether a send with a 50 ms deadline failed with QueueFullError. */
  queueFull: boolean;
  /** Whether a send waited while the queue was full, and went through once the actor ran again. */
  waitedAndSent: boolean;
  /** Replies received in the end (every message sent, nothing lost). */
  replies: number;
}

/** Runs the example on `backend` (default `"auto"`). */
export async function main(
  backend: BackendRequest = "auto",
): Promise<BackpressureResult> {
  await using rt = await RingKernel.create({ backend, quiet: true });
  // A small queue, and the actor not started: nothing drains it yet.
  const echo = await rt.launch("slowpoke", {
    actor: "echo",
    queueCapacity: 16,
    autoActivate: false,
  });
  const msg = (seq: number) => ({ seq: BigInt(seq), value: seq, tag: 0 });

  let accepted = 0;
  while (echo.trySend(msg(accepted))) accepted++;
  console.log(`trySend: ${accepted} accepted, then false (the queue is full)`);

  let queueFull = false;
  try {
    await echo.send(msg(accepted), { timeoutMs: 50 });
  } catch (error) {
    if (!(error instanceof QueueFullError)) throw error;
    queueFull = true;
    console.log(`send with a 50 ms deadline: ${error.name}`);
  }

  // This send waits for room; activating the actor makes some.
  let settled = false;
  const waiting = echo.send(msg(accepted), { timeoutMs: 10_000 })
    .finally(() => settled = true);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const waited = !settled;
  await echo.activate();
  await waiting;
  const waitedAndSent = waited && settled;
  console.log(
    `a send waited ${
      waited ? "while the queue was full" : "(did not wait?)"
    }, ` +
      "then went through once the actor ran",
  );

  let replies = 0;
  while (replies < accepted + 1) {
    replies += (await echo.receiveMany({ timeoutMs: 5_000 })).length;
  }
  console.log(`${replies} replies: every message sent was handled`);
  return { backend: rt.backend, accepted, queueFull, waitedAndSent, replies };
}

if (import.meta.main) await main();
