/**
 * Hello, actor: launch the built-in `echo` and `accumulator` actors, then
 * send, receive and call.
 *
 * Run: `deno run -A examples/hello.ts` or `bun examples/hello.ts`
 *
 * @module
 */

import { type BackendRequest, RingKernel } from "../mod.ts";

/** What the example did, for its test. */
export interface HelloResult {
  /** The backend that ran it. */
  backend: string;
  /** The echo actor's reply to a call. */
  echoed: { seq: bigint; value: number; tag: number };
  /** The accumulator's running totals. */
  totals: number[];
}

/** Runs the example on `backend` (default `"auto"`). */
export async function main(
  backend: BackendRequest = "auto",
): Promise<HelloResult> {
  await using rt = await RingKernel.create({ backend });

  // call(): send a request and wait for the reply to it.
  const echo = await rt.launch("echo", { actor: "echo" });
  const echoed = await echo.call({ seq: 1n, value: 3.14, tag: 42 }, {
    timeoutMs: 5_000,
  });

  // send() + receive(): fire messages, take replies as they come.
  const acc = await rt.launch("totals", { actor: "accumulator" });
  for (const value of [1, 2, 3, 4]) await acc.send({ value });
  const totals: number[] = [];
  for (let i = 0; i < 4; i++) {
    totals.push((await acc.receive({ timeoutMs: 5_000 })).total);
  }

  console.log(`backend: ${rt.backend}`);
  console.log(`echo replied`, echoed);
  console.log(`accumulator totals: ${totals.join(", ")}`);
  return { backend: rt.backend, echoed, totals };
}

if (import.meta.main) await main();
