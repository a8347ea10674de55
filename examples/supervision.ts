/**
 * Supervision: an actor whose handler throws is restarted by its supervisor
 * (with fresh state) and goes on with the next message; the message it
 * crashed on goes to the dead-letter queue with the reason.
 *
 * Run: `deno run -A examples/supervision.ts` or `bun examples/supervision.ts`
 *
 * @module
 */

import {
  ActorCrashedError,
  type EchoFields,
  RingKernel,
  type RuntimeEvent,
} from "../mod.ts";

/** What the example did, for its test. */
export interface SupervisionResult {
  /** Runtime events, in order. */
  events: string[];
  /** `tag` of each successful reply: handled count of the incarnation. */
  tags: number[];
  /** Dead letters, as `reason: detail`. */
  deadLetters: string[];
}

/** Runs the example (a CPU actor written in TypeScript). */
export async function main(): Promise<SupervisionResult> {
  const events: string[] = [];
  await using rt = await RingKernel.create({
    backend: "cpu",
    onEvent: (e: RuntimeEvent) =>
      events.push(e.type === "crash" ? `crash (${e.decision.action})` : e.type),
  });
  const flaky = await rt.launch<EchoFields, EchoFields>("flaky", {
    actor: { module: new URL("./actors/flaky.ts", import.meta.url) },
    restart: { maxRestarts: 3, withinMs: 10_000 },
  });
  const tags: number[] = [];
  for (const value of [1, 2, -1, 3]) {
    try {
      tags.push(
        (await flaky.call({ seq: 0n, value, tag: 0 }, { timeoutMs: 5_000 }))
          .tag,
      );
    } catch (error) {
      if (!(error instanceof ActorCrashedError)) throw error;
      console.log(`call with ${value} failed: ${error.message}`);
    }
  }
  while (events.length < 2) await new Promise((r) => setTimeout(r, 10));
  const deadLetters = rt.deadLetters.drain().map((l) =>
    `${l.reason}: ${l.detail}`
  );
  console.log(`events: ${events.join(" → ")}`);
  console.log(`reply tags (handled count per incarnation): ${tags.join(", ")}`);
  console.log(`dead letters: ${deadLetters.join("; ")}`);
  return { events, tags, deadLetters };
}

if (import.meta.main) await main();
