/**
 * A deferred reply on the GPU: a call to `actors/deferring.ts` stays open
 * while the actor keeps its correlation id in device state; a later message
 * makes the actor answer it (`rk_defer` / `rk_reply_to`). Needs CUDA with
 * libnvrtc (a GPU, or `RINGKERNEL_LIBCUDA` and `RINGKERNEL_LIBNVRTC` pointing
 * at the CPU emulator of the driver); without it, it says so and stops.
 *
 * Run: `deno run -A examples/deferred_reply.ts` or `bun examples/deferred_reply.ts`
 *
 * @module
 */

import { type EchoFields, RingKernel } from "../mod.ts";
import { Nvrtc } from "../src/backend/cuda/nvrtc.ts";

/** What the example did, for its test. */
export interface DeferredReplyResult {
  /** The backend that ran it. */
  backend: string;
  /** Whether it ran (false: CUDA or libnvrtc is missing). */
  ran: boolean;
  /** For each round: whether the call was still open before the answer came. */
  waited: boolean[];
  /** The answered values. */
  answers: number[];
}

/** Runs the example on the CUDA backend when it can. */
export async function main(): Promise<DeferredReplyResult> {
  await using rt = await RingKernel.create({ backend: "auto", quiet: true });
  if (rt.backend !== "cuda" || !Nvrtc.probe().available) {
    console.log(
      "This example needs CUDA and libnvrtc (a GPU, or RINGKERNEL_LIBCUDA and " +
        "RINGKERNEL_LIBNVRTC pointing at the CPU emulator): not available here.",
    );
    return { backend: rt.backend, ran: false, waited: [], answers: [] };
  }
  const actor = await rt.launch<EchoFields, EchoFields>("deferring", {
    actor: { module: new URL("./actors/deferring.ts", import.meta.url) },
  });
  const waited: boolean[] = [];
  const answers: number[] = [];
  for (let round = 1; round <= 3; round++) {
    let settled = false;
    const call = actor.call({ seq: BigInt(round), value: round, tag: 1 }, {
      timeoutMs: 10_000,
    }).finally(() => settled = true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    waited.push(!settled); // the actor kept the call without answering
    await actor.send({ seq: BigInt(round), value: round, tag: 2 });
    answers.push((await call).value);
  }
  console.log(`backend: ${rt.backend}`);
  console.log(`calls open until the later message: ${waited.join(", ")}`);
  console.log(`answers: ${answers.join(", ")}`);
  return { backend: rt.backend, ran: true, waited, answers };
}

if (import.meta.main) await main();
