/**
 * An actor's lifecycle: Launched → Active ⇄ Deactivated → Terminated. A
 * deactivated actor keeps what it is sent in its queue and handles it once
 * activated again; `terminate()` drains the queue first; a transition that
 * makes no sense (activating a terminated actor) is an `InvalidStateError`.
 *
 * Run: `deno run -A examples/lifecycle.ts` or `bun examples/lifecycle.ts`
 *
 * @module
 */

import { type BackendRequest, InvalidStateError, RingKernel } from "../mod.ts";

/** What the example did, for its test. */
export interface LifecycleResult {
  /** The backend that ran it. */
  backend: string;
  /** The actor's state after each step. */
  states: string[];
  /** Messages processed while deactivated (none). */
  processedWhilePaused: number;
  /** Totals the accumulator replied, in order. */
  totals: number[];
  /** The error of activating a terminated actor. */
  invalid: string;
}

/** Runs the example on `backend` (default `"auto"`). */
export async function main(
  backend: BackendRequest = "auto",
): Promise<LifecycleResult> {
  await using rt = await RingKernel.create({ backend, quiet: true });
  const acc = await rt.launch("acc", {
    actor: "accumulator",
    autoActivate: false,
  });
  const states = [acc.state]; // launched: started, not taking messages
  await acc.send({ value: 1 });
  await acc.activate();
  states.push(acc.state);
  const totals = [(await acc.receive({ timeoutMs: 5_000 })).total];

  await acc.deactivate({ timeoutMs: 5_000 }); // resolves once the actor paused
  states.push(acc.state);
  const before = acc.metrics().processed;
  await acc.send({ value: 2 });
  await new Promise((resolve) => setTimeout(resolve, 100));
  const processedWhilePaused = acc.metrics().processed - before;

  await acc.activate();
  totals.push((await acc.receive({ timeoutMs: 5_000 })).total);
  await acc.send({ value: 3 });
  await acc.terminate({ timeoutMs: 5_000 }); // drains: value 3 is handled
  states.push(acc.state);
  totals.push((await acc.receive({ timeoutMs: 5_000 })).total);

  let invalid = "";
  try {
    await acc.activate();
  } catch (error) {
    if (!(error instanceof InvalidStateError)) throw error;
    invalid = error.name;
  }

  console.log(`backend: ${rt.backend}`);
  console.log(`states: ${states.join(" → ")}`);
  console.log(`processed while deactivated: ${processedWhilePaused}`);
  console.log(`totals: ${totals.join(", ")}`);
  console.log(`activate() after terminate: ${invalid}`);
  return {
    backend: rt.backend,
    states,
    processedWhilePaused,
    totals,
    invalid,
  };
}

if (import.meta.main) await main();
