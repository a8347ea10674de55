/**
 * Pub/sub with MQTT wildcards: `+` matches one level, `#` the rest
 * (including the parent). Host handlers and actors subscribe; an actor's
 * subscription delivers into its queue.
 *
 * Run: `deno run -A examples/pubsub.ts` or `bun examples/pubsub.ts`
 *
 * @module
 */

import { type BackendRequest, RingKernel } from "../mod.ts";
import { EchoMessage } from "../schemas.ts";

/** What the example did, for its test. */
export interface PubSubResult {
  /** What each host subscription saw, as `filter <- topic`. */
  seen: string[];
  /** Sequence numbers the subscribed actor received. */
  actorReceived: bigint[];
}

/** Runs the example on `backend` (default `"auto"`). */
export async function main(
  backend: BackendRequest = "auto",
): Promise<PubSubResult> {
  await using rt = await RingKernel.create({ backend });
  const seen: string[] = [];
  // A subscription lasts until its unsubscribe(), or, held with `using`, to
  // the end of its block.
  using _temperatures = rt.subscribe(
    "sensors/+/temperature",
    (_m, topic) => seen.push(`sensors/+/temperature <- ${topic}`),
  );
  rt.subscribe("sensors/#", (_m, topic) => seen.push(`sensors/# <- ${topic}`));

  // An actor subscribed to one room: matching messages arrive in its queue.
  const kitchen = await rt.launch("kitchen", { actor: "echo" });
  rt.subscribeKernel(kitchen, "sensors/kitchen/#");

  let seq = 0n;
  for (
    const topic of [
      "sensors/kitchen/temperature",
      "sensors/hall/temperature",
      "sensors/kitchen",
      "sensors",
    ]
  ) {
    rt.publish(topic, { seq: seq++, value: 21.5, tag: 0 }, {
      schema: EchoMessage,
    });
  }
  const actorReceived: bigint[] = [];
  for (let i = 0; i < 2; i++) {
    actorReceived.push((await kitchen.receive({ timeoutMs: 5_000 })).seq);
  }

  for (const line of seen) console.log(line);
  console.log(`kitchen actor received messages ${actorReceived.join(", ")}`);
  return { seen, actorReceived };
}

if (import.meta.main) await main();
