/**
 * TxMon, the live page: `deno task showcase:txmon` (or
 * `bun showcases/txmon/server.ts`) starts the generator and the rules,
 * prints the page's address, and streams alerts, throughput and latency to
 * every open page four times a second; the page changes a rule's parameters
 * while transactions flow. Ctrl-C stops it.
 *
 * `--headless` runs `--seconds` seconds (default 5) at `--rate` transactions
 * per second (default 5 000), reloads the amount rule halfway, and prints the
 * figures. Options: `--port` (8000), `--rate`.
 *
 * @module
 */

import { RingKernel } from "../../mod.ts";
import { COUNTRIES, DEFAULT_RULES, type RuleName, RULES } from "./messages.ts";
import {
  type AlertEvent,
  percentile,
  RULE_FILTERS,
  TxMonitor,
} from "./monitor.ts";
import {
  numberArg,
  parseArgs,
  programArgs,
  serveShowcase,
  type ShowcaseServer,
  type ShowcaseSocket,
  stopOnSignal,
} from "../shared/serve.ts";

/** Options of {@linkcode runHeadless}. */
export interface TxHeadlessOptions {
  /** Transactions per second. */
  rate: number;
  /** How long to run, s. */
  seconds: number;
  /** Where the report lines go (default console.log). */
  log?: (line: string) => void;
}

/** What {@linkcode runHeadless} measured. */
export interface TxHeadlessFigures {
  /** Transactions generated. */
  generated: number;
  /** Transactions per second achieved (generated / seconds until drained). */
  txPerSecond: number;
  /** Alerts received. */
  alerts: number;
  /** Transactions some rule missed or saw out of sequence (0: none lost). */
  lost: number;
  /** Median transaction-to-alert latency, ms. */
  p50Ms: number;
  /** 99th percentile of the same, ms. */
  p99Ms: number;
}

/** Runs the monitor without a page and reports. */
export async function runHeadless(
  options: TxHeadlessOptions,
): Promise<TxHeadlessFigures> {
  const log = options.log ?? console.log;
  await using rt = await RingKernel.create({ backend: "cpu" });
  const monitor = await TxMonitor.create({ runtime: rt, rate: options.rate });
  try {
    const t0 = performance.now();
    monitor.start();
    await new Promise((r) => setTimeout(r, options.seconds * 500));
    const reload = await monitor.setRule("amount", {
      a: DEFAULT_RULES.amount.a / 2,
    });
    await new Promise((r) => setTimeout(r, options.seconds * 500));
    await monitor.stop();
    await monitor.drain({ timeoutMs: 60_000 });
    const seconds = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 100));
    const figures = monitor.figures();
    let lost = 0;
    for (const rule of RULES) {
      const s = await monitor.status(rule);
      lost += figures.generated - Number(s.seen) + Number(s.gaps);
    }
    const result: TxHeadlessFigures = {
      generated: figures.generated,
      txPerSecond: figures.generated / seconds,
      alerts: figures.alerts,
      lost,
      p50Ms: percentile(figures.latencies, 50),
      p99Ms: percentile(figures.latencies, 99),
    };
    log(
      `TxMon: ${result.generated} transactions in ${seconds.toFixed(2)} s ` +
        `(${result.txPerSecond.toFixed(0)} tx/s asked ${options.rate}), ` +
        `${result.alerts} alerts (${
          RULES.map((r) => `${r} ${figures.alertsByRule[r]}`).join(", ")
        }), transaction → alert p50 ${result.p50Ms.toFixed(2)} ms, ` +
        `p99 ${result.p99Ms.toFixed(2)} ms (CPU backend)`,
    );
    log(
      `hot reload of the amount rule (version ${reload.version}) while flowing: ` +
        `${
          lost === 0 ? "nothing lost" : `${lost} LOST`
        } (sequence numbers checked by all ${RULES.length} rules)`,
    );
    return result;
  } finally {
    await monitor.close();
  }
}

/** Options of {@linkcode startTxServer}. */
export interface TxServerOptions {
  /** Port (0: a free one). */
  port: number;
  /** Initial rate, transactions per second. */
  rate: number;
}

/** Starts the monitor and the page server. */
export async function startTxServer(
  options: TxServerOptions,
): Promise<ShowcaseServer> {
  const rt = await RingKernel.create({ backend: "cpu" });
  const sockets = new Set<ShowcaseSocket>();
  let recent: Array<AlertEvent & { countryCode: string }> = [];
  const monitor = await TxMonitor.create({
    runtime: rt,
    rate: options.rate,
    onAlert(alert) {
      recent.push({ ...alert, countryCode: COUNTRIES[alert.country] });
      if (recent.length > 200) recent = recent.slice(-100);
    },
  });
  monitor.start();
  const send = (message: unknown) => {
    const text = JSON.stringify(
      message,
      (_k, v) => typeof v === "bigint" ? v.toString() : v,
    );
    for (const socket of sockets) socket.send(text);
  };
  const describe = async () => ({
    type: "rules",
    rate: monitor.rate,
    rules: await Promise.all(RULES.map(async (rule) => ({
      rule,
      filter: RULE_FILTERS[rule],
      meaning: DEFAULT_RULES[rule].meaning,
      ...(await monitor.status(rule)),
    }))),
  });

  let last = {
    at: performance.now(),
    generated: 0,
    alerts: 0,
    processed: new Map<string, number>(),
  };
  let ticking = false;
  const timer = setInterval(() => {
    if (ticking || sockets.size === 0) return;
    ticking = true;
    try {
      const now = performance.now();
      const dt = (now - last.at) / 1000;
      const f = monitor.figures();
      const actors = monitor.kernels.map((k) => {
        const m = k.metrics();
        const before = last.processed.get(m.name) ?? m.processed;
        return {
          name: m.name,
          state: m.state,
          processed: m.processed,
          rate: (m.processed - before) / dt,
          queueDepth: m.telemetry.queueDepth,
          inFlight: m.inFlight,
        };
      });
      send({
        type: "tick",
        generated: f.generated,
        txPerSecond: (f.generated - last.generated) / dt,
        alerts: f.alerts,
        alertsPerSecond: (f.alerts - last.alerts) / dt,
        alertsByRule: f.alertsByRule,
        p50Ms: percentile(f.latencies, 50),
        p99Ms: percentile(f.latencies, 99),
        recent: recent.slice(-25).reverse(),
        actors,
      });
      recent = recent.slice(-25);
      last = {
        at: now,
        generated: f.generated,
        alerts: f.alerts,
        processed: new Map(actors.map((a) => [a.name, a.processed])),
      };
    } finally {
      ticking = false;
    }
  }, 250);

  const server = await serveShowcase({
    publicDir: new URL("./public/", import.meta.url),
    port: options.port,
    socket: {
      open(socket) {
        sockets.add(socket);
        describe().then((d) =>
          socket.send(
            JSON.stringify(
              d,
              (_k, v) => typeof v === "bigint" ? v.toString() : v,
            ),
          )
        );
      },
      message(_socket, text) {
        let request: Record<string, unknown>;
        try {
          request = JSON.parse(text);
        } catch {
          return;
        }
        if (
          request.type === "rule" && RULES.includes(request.rule as RuleName)
        ) {
          const a = Number(request.a);
          const b = request.b === undefined ? undefined : Number(request.b);
          const c = request.c === undefined ? undefined : Number(request.c);
          if (![a, b ?? 0, c ?? 0].every(Number.isFinite)) return;
          monitor.setRule(request.rule as RuleName, { a, b, c })
            .then(describe)
            .then(send)
            .catch((error) => send({ type: "error", message: String(error) }));
        } else if (request.type === "rate") {
          try {
            monitor.setRate(Number(request.rate));
            describe().then(send);
          } catch (error) {
            send({ type: "error", message: String(error) });
          }
        }
      },
      close(socket) {
        sockets.delete(socket);
      },
    },
  });

  return {
    url: server.url,
    port: server.port,
    async close() {
      clearInterval(timer);
      await server.close();
      await monitor.close();
      await rt.shutdown({ timeoutMs: 10_000 });
    },
  };
}

if (import.meta.main) {
  const args = parseArgs(programArgs());
  const rate = numberArg(args, "rate", 5_000);
  if (args.headless) {
    await runHeadless({ rate, seconds: numberArg(args, "seconds", 5) });
  } else {
    const server = await startTxServer({
      port: numberArg(args, "port", 8000),
      rate,
    });
    console.log(`TxMon: open ${server.url}  (Ctrl-C stops)`);
    stopOnSignal(() => server.close());
  }
}
