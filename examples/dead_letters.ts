/**
 * Dead letters: nothing is dropped silently. A message that cannot be
 * delivered or handled goes to `rt.deadLetters` with a reason and a detail
 * — here a forwarder whose target does not exist (its send fails: on the
 * CPU backend the handler's `UnknownActorError`, `handler-error`; on the
 * CUDA backend `unknown-target`) and messages still queued when an actor is
 * stopped at once (`aborted`). A listener sees each as it happens;
 * `counts()` and `drain()` read them.
 *
 * Run: `deno run -A examples/dead_letters.ts` or `bun examples/dead_letters.ts`
 *
 * @module
 */

import { type BackendRequest, RingKernel } from "../mod.ts";

/** What the example did, for its test. */
export interface DeadLettersResult {
  /** The backend that ran it. */
  backend: string;
  /** Dead letters by reason (only the reasons that occurred). */
  counts: Record<string, number>;
  /** What the listener saw, as `actor: reason`. */
  seen: string[];
  /** Entries drained from the queue. */
  drained: number;
  /** The detail of the first dead letter of the forwarder. */
  detail: string;
}

/** Runs the example on `backend` (default `"auto"`). */
export async function main(
  backend: BackendRequest = "auto",
): Promise<DeadLettersResult> {
  await using rt = await RingKernel.create({ backend, quiet: true });
  const seen: string[] = [];
  using _listening = rt.deadLetters.onDeadLetter((letter) =>
    seen.push(`${letter.actor}: ${letter.reason}`)
  );
  const msg = (seq: number) => ({ seq: BigInt(seq), value: seq, tag: 0 });

  // 1. A forwarder to an actor that does not exist.
  const lost = await rt.launch("lost", {
    actor: "forwarder",
    config: { target: "nobody" },
  });
  for (let i = 0; i < 3; i++) await lost.send(msg(i));

  // 2. An actor stopped at once with messages still in its queue.
  const idle = await rt.launch("idle", { actor: "echo", autoActivate: false });
  for (let i = 0; i < 4; i++) await idle.send(msg(i));
  await idle.terminate({ abort: true, timeoutMs: 10_000 });

  // Wait (with a deadline) until the listener has seen all seven.
  const deadline = performance.now() + 10_000;
  while (seen.length < 7 && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const counts = Object.fromEntries(
    Object.entries(rt.deadLetters.counts()).filter(([, n]) => n > 0),
  );
  const letters = rt.deadLetters.drain();
  const drained = letters.length;
  const detail = letters.find((l) => l.actor === "lost")?.detail ?? "";

  console.log(`backend: ${rt.backend}`);
  console.log("dead letters by reason:", counts);
  console.log(`the listener saw: ${seen.join("; ")}`);
  console.log(`the forwarder's: ${detail}`);
  console.log(`drained ${drained}; left: ${rt.deadLetters.size}`);
  return { backend: rt.backend, counts, seen, drained, detail };
}

if (import.meta.main) await main();
