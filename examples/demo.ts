/**
 * The demo: starts a runtime on whatever backend `"auto"` picks, runs a few
 * actors end to end, and prints what happened (with measured figures).
 *
 * Run: `deno task demo` (or `bun examples/demo.ts`)
 *
 * @module
 */

import { RingKernel } from "../mod.ts";

/** What the demo measured, for its test. */
export interface DemoResult {
  /** The backend that ran it. */
  backend: string;
  /** Round trips measured. */
  calls: number;
  /** Median round trip host → actor → host, in µs. */
  p50Micros: number;
  /** Messages that went through the three-stage pipeline. */
  piped: number;
  /** Whether every message sent was processed (nothing lost). */
  accounted: boolean;
}

/** Runs the demo; `calls` and `piped` size it. */
export async function main(
  options: { calls?: number; piped?: number } = {},
): Promise<DemoResult> {
  const { calls = 5_000, piped = 20_000 } = options;
  await using rt = await RingKernel.create({ backend: "auto" });
  console.log(`ringkernel demo on the ${rt.backend.toUpperCase()} backend`);

  // 1. Request/response round trips through a resident echo actor.
  const echo = await rt.launch("echo", { actor: "echo" });
  for (let i = 0; i < calls; i++) {
    await echo.call({ seq: BigInt(i), value: i, tag: 0 });
  }
  // The kernel records every call's round trip, in ns.
  const rtt = echo.metrics().callLatency;
  const p50Micros = rtt.p50 / 1000;
  console.log(
    `1. ${calls} calls host → echo → host: p50 ${
      p50Micros.toFixed(1)
    } µs, p99 ${(rtt.p99 / 1000).toFixed(1)} µs`,
  );

  // 2. A K2K pipeline: head → middle → sink, each stage its own actor.
  const sink = await rt.launch("sink", { actor: "echo", queueCapacity: 4096 });
  await rt.launch("middle", {
    actor: "forwarder",
    config: { target: "sink" },
    queueCapacity: 4096,
  });
  const head = await rt.launch("head", {
    actor: "forwarder",
    config: { target: "middle" },
    queueCapacity: 4096,
  });
  const started = performance.now();
  const batch = Array.from(
    { length: 256 },
    (_, i) => ({ seq: BigInt(i), value: i, tag: 0 }),
  );
  let received = 0;
  for (let sent = 0; sent < piped; sent += batch.length) {
    await head.sendBatch(batch.slice(0, Math.min(batch.length, piped - sent)));
    while (sink.tryReceive() !== undefined) received++;
  }
  while (received < piped) {
    await sink.receive({ timeoutMs: 10_000 });
    received++;
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `2. ${piped} messages through head → middle → sink: ${
      (piped / seconds / 1e3).toFixed(0)
    } k msg/s end to end`,
  );

  // 3. Accounting: everything sent was processed or dead-lettered.
  const { totals } = rt.metrics();
  const accounted =
    totals.sent === totals.processed + totals.deadLettered + totals.inFlight;
  console.log(
    `3. accounting: sent ${totals.sent} = processed ${totals.processed} + dead-lettered ${totals.deadLettered} + in flight ${totals.inFlight}: ${accounted}`,
  );
  return { backend: rt.backend, calls, p50Micros, piped, accounted };
}

if (import.meta.main) await main();
