/**
 * Telemetry: what an actor did, from `kernel.metrics()` (messages sent,
 * processed, dead-lettered and in flight — at rest `sent = processed +
 * deadLettered + inFlight` — queue depth, the last handled message's HLC
 * stamp, call latency percentiles), the runtime's totals from
 * `rt.metrics()`, and its events (`rt.onEvent`: crashes, restarts, stale
 * heartbeats) as a subscription that ends with its block.
 *
 * Run: `deno run -A examples/telemetry.ts` or `bun examples/telemetry.ts`
 *
 * @module
 */

import { type BackendRequest, RingKernel } from "../mod.ts";

/** What the example measured, for its test. */
export interface TelemetryResult {
  /** The backend that ran it. */
  backend: string;
  /** Messages the echo actor processed. */
  processed: number;
  /** Whether sent = processed + deadLettered + inFlight held at rest. */
  accounted: boolean;
  /** Calls whose round trip was timed (one in 16, and the first). */
  timedCalls: number;
  /** Median call round trip, µs. */
  p50Micros: number;
  /** 99th percentile, µs. */
  p99Micros: number;
  /** Whether the last handled message's stamp is a time of today. */
  stampIsRecent: boolean;
  /** Runtime events seen (none in a quiet run). */
  events: string[];
}

/** Runs the example on `backend` (default `"auto"`) with `calls` calls. */
export async function main(
  backend: BackendRequest = "auto",
  calls = 400,
): Promise<TelemetryResult> {
  await using rt = await RingKernel.create({ backend, quiet: true });
  const events: string[] = [];
  using _listening = rt.onEvent((event) => events.push(event.type));
  const echo = await rt.launch("echo", { actor: "echo" });
  for (let i = 0; i < calls; i++) {
    await echo.call({ seq: BigInt(i), value: i, tag: 0 }, { timeoutMs: 5_000 });
  }

  // An actor counts a message just after replying to it, and writes its
  // telemetry at its heartbeat (at the latest when it goes idle): let both
  // settle (with a deadline) before reading them.
  const settleBy = performance.now() + 5_000;
  const settled = () => {
    const m = echo.metrics();
    return m.inFlight === 0 && m.telemetry.messagesProcessed === m.processed;
  };
  while (!settled() && performance.now() < settleBy) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  const m = echo.metrics();
  const accounted = m.sent === m.processed + m.deadLettered + m.inFlight;
  // The stamp is a hybrid logical clock: milliseconds since the epoch above
  // 16 bits of counter, reported in ns.
  const stampMs = Number(m.telemetry.lastProcessedTimestamp / 1_000_000n);
  const stampIsRecent = Math.abs(stampMs - Date.now()) < 60_000;
  const totals = rt.metrics().totals;

  console.log(`backend: ${rt.backend}`);
  console.log(
    `echo: sent ${m.sent}, processed ${m.processed}, dead-lettered ${m.deadLettered}, ` +
      `in flight ${m.inFlight} (accounted: ${accounted}); queue depth ${m.telemetry.queueDepth}`,
  );
  console.log(
    `call round trip over ${m.callLatency.count} timed calls: p50 ${
      (m.callLatency.p50 / 1000).toFixed(1)
    } µs, p99 ${(m.callLatency.p99 / 1000).toFixed(1)} µs`,
  );
  console.log(
    `last message handled at ${
      new Date(stampMs).toISOString()
    }; runtime totals:`,
    totals,
  );
  console.log(`events: ${events.length === 0 ? "none" : events.join(", ")}`);
  return {
    backend: rt.backend,
    processed: m.processed,
    accounted,
    timedCalls: m.callLatency.count,
    p50Micros: m.callLatency.p50 / 1000,
    p99Micros: m.callLatency.p99 / 1000,
    stampIsRecent,
    events,
  };
}

if (import.meta.main) await main();
