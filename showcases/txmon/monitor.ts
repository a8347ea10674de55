/**
 * The host side of TxMon: launches the generator and the rule actors,
 * subscribes the rules to the transaction topics with wildcards, drives the
 * generator at a set rate, listens to `alerts/#`, and measures throughput and
 * the latency from a transaction's creation to its alert.
 *
 * @module
 */

import type { Kernel, RingKernel, Subscription } from "../../mod.ts";
import {
  Alert,
  DEFAULT_RULES,
  type GenerateTick,
  type RuleName,
  type RuleParams,
  RULES,
  type RuleStatus,
  type Transaction,
  wallMs,
} from "./messages.ts";

/** Where each rule listens (MQTT wildcards over `tx/<country>/<channel>`). */
export const RULE_FILTERS: Readonly<Record<RuleName, string>> = Object.freeze({
  amount: "tx/#",
  velocity: "tx/+/+",
  country: "tx/+/+",
  score: "tx/#",
});

/** Options of {@linkcode TxMonitor.create}. */
export interface TxMonitorOptions {
  /** The runtime (CPU backend). */
  runtime: RingKernel;
  /** Transactions per second (default 5 000). */
  rate?: number;
  /** Called for every alert. */
  onAlert?: (alert: AlertEvent) => void;
}

/** An alert as the host saw it. */
export interface AlertEvent {
  /** The transaction's sequence number. */
  seq: bigint;
  /** Card number. */
  card: number;
  /** The rule that raised it. */
  rule: RuleName;
  /** The rule's parameter version. */
  version: number;
  /** Country index. */
  country: number;
  /** Amount. */
  amount: number;
  /** The rule's score. */
  score: number;
  /** Transaction to alert, ms. */
  latencyMs: number;
}

/** Counters over the monitor's life. */
export interface TxFigures {
  /** Transactions asked of the generator. */
  generated: number;
  /** Alerts received. */
  alerts: number;
  /** Alerts per rule. */
  alertsByRule: Record<RuleName, number>;
  /** Latencies of the alerts received since the last call, ms. */
  latencies: number[];
}

type RuleKernel = Kernel<typeof RuleParams.spec, typeof RuleStatus.spec>;
type GeneratorKernel = Kernel<
  typeof GenerateTick.spec,
  typeof Transaction.spec
>;

/** A running monitor. */
export class TxMonitor {
  readonly #rules: Map<RuleName, RuleKernel>;
  readonly #generator: GeneratorKernel;
  readonly #subscription: Subscription;
  readonly #versions = new Map<RuleName, number>();
  #rate: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #generated = 0;
  #alerts = 0;
  #byRule = Object.fromEntries(RULES.map((r) => [r, 0])) as Record<
    RuleName,
    number
  >;
  #latencies: number[] = [];
  #ticking: Promise<unknown> = Promise.resolve();

  private constructor(
    generator: GeneratorKernel,
    rules: Map<RuleName, RuleKernel>,
    subscription: Subscription,
    rate: number,
  ) {
    this.#generator = generator;
    this.#rules = rules;
    this.#subscription = subscription;
    this.#rate = rate;
  }

  /** Launches the actors and subscribes them; transactions flow after {@linkcode start}. */
  static async create(options: TxMonitorOptions): Promise<TxMonitor> {
    const rt = options.runtime;
    const rules = new Map<RuleName, RuleKernel>();
    for (const rule of RULES) {
      const kernel = await rt.launch(`rule-${rule}`, {
        actor: { module: new URL("./rule_actor.ts", import.meta.url) },
        config: { rule },
        queueCapacity: 16384,
      }) as unknown as RuleKernel;
      rt.subscribeKernel(kernel, RULE_FILTERS[rule]);
      rules.set(rule, kernel);
    }
    const generator = await rt.launch("generator", {
      actor: { module: new URL("./generator_actor.ts", import.meta.url) },
      queueCapacity: 256,
    }) as unknown as GeneratorKernel;
    const holder: { self?: TxMonitor } = {};
    const subscription = rt.subscribe("alerts/#", (message) => {
      // No actor takes alerts in, so the runtime hands over their bytes.
      const alert = message instanceof Uint8Array
        ? Alert.decode(
          new DataView(message.buffer, message.byteOffset, message.byteLength),
          0,
        )
        : message;
      holder.self?.onAlertFromTopic(
        alert as unknown as AlertLike,
        options.onAlert,
      );
    });
    const self = new TxMonitor(
      generator,
      rules,
      subscription,
      options.rate ?? 5_000,
    );
    for (const rule of RULES) self.#versions.set(rule, 1);
    holder.self = self;
    return self;
  }

  /** Transactions per second asked of the generator. */
  get rate(): number {
    return this.#rate;
  }

  /** The kernels, for their metrics. */
  get kernels(): Kernel[] {
    return [
      this.#generator as unknown as Kernel,
      ...this.#rules.values() as Iterable<Kernel>,
    ];
  }

  /** Sets the rate (transactions per second). */
  setRate(rate: number): void {
    if (!(rate >= 0 && rate <= 1e6)) {
      throw new RangeError(`rate ${rate}: 0..1e6`);
    }
    this.#rate = rate;
  }

  /** Starts the generator's ticks (every 10 ms, what is due at the rate). */
  start(): void {
    if (this.#timer !== undefined) return;
    let last = performance.now();
    let owed = 0;
    this.#timer = setInterval(() => {
      const now = performance.now();
      owed += (this.#rate * (now - last)) / 1000;
      last = now;
      const count = Math.min(Math.floor(owed), 20_000);
      if (count <= 0) return;
      owed -= count;
      this.#generated += count;
      this.#ticking = this.#ticking.then(() =>
        this.#generator.send({ count }, { timeoutMs: 10_000 })
      ).catch((error) => console.error("txmon generator:", error));
    }, 10);
  }

  /** Stops the generator's ticks (transactions already asked for still flow). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#ticking;
  }

  /**
   * Changes a rule's parameters while transactions flow: a message into the
   * rule's queue, between two transactions. Resolves with the rule's status
   * once it applied them.
   */
  async setRule(
    rule: RuleName,
    params: { a: number; b?: number; c?: number },
  ): Promise<{ version: number; seen: bigint; gaps: bigint }> {
    const kernel = this.#rules.get(rule);
    if (kernel === undefined) throw new RangeError(`unknown rule ${rule}`);
    const current = await this.status(rule);
    const version = (this.#versions.get(rule) ?? 1) + 1;
    this.#versions.set(rule, version);
    const status = await kernel.call({
      version,
      a: params.a,
      b: params.b ?? current.b,
      c: params.c ?? current.c,
    }, { timeoutMs: 10_000 });
    return status;
  }

  /** A rule's status: parameters, what it saw, gaps in the sequence. */
  status(rule: RuleName): Promise<
    {
      version: number;
      seen: bigint;
      gaps: bigint;
      nextSeq: bigint;
      alerts: bigint;
      a: number;
      b: number;
      c: number;
    }
  > {
    const kernel = this.#rules.get(rule);
    if (kernel === undefined) throw new RangeError(`unknown rule ${rule}`);
    return kernel.call({ version: 0, a: 0, b: 0, c: 0 }, { timeoutMs: 10_000 });
  }

  /** Waits until every rule saw every transaction asked for (or the deadline). */
  async drain(options: { timeoutMs?: number } = {}): Promise<void> {
    const deadline = performance.now() + (options.timeoutMs ?? 30_000);
    await this.#ticking;
    while (true) {
      const statuses = await Promise.all(RULES.map((r) => this.status(r)));
      if (statuses.every((s) => s.seen === BigInt(this.#generated))) return;
      if (performance.now() > deadline) {
        throw new Error(
          `rules saw ${
            statuses.map((s) => s.seen).join(", ")
          } of ${this.#generated}`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Counters; the latencies are those since the last call. */
  figures(): TxFigures {
    const latencies = this.#latencies;
    this.#latencies = [];
    return {
      generated: this.#generated,
      alerts: this.#alerts,
      alertsByRule: { ...this.#byRule },
      latencies,
    };
  }

  /** The default parameters and their meaning. */
  static get defaults(): typeof DEFAULT_RULES {
    return DEFAULT_RULES;
  }

  /** Stops the ticks and the alert subscription (the runtime ends the actors). */
  async close(): Promise<void> {
    await this.stop();
    this.#subscription.unsubscribe();
  }

  /** Counts one alert from `alerts/#` (called by the subscription). */
  private onAlertFromTopic(
    alert: AlertLike,
    onAlert?: (alert: AlertEvent) => void,
  ): void {
    const latencyMs = wallMs() - alert.createdMs;
    const rule = RULES[alert.rule];
    this.#alerts++;
    this.#byRule[rule]++;
    if (this.#latencies.length < 100_000) this.#latencies.push(latencyMs);
    onAlert?.({
      seq: alert.seq,
      card: alert.card,
      rule,
      version: alert.version,
      country: alert.country,
      amount: alert.amount,
      score: alert.score,
      latencyMs,
    });
  }
}

interface AlertLike {
  seq: bigint;
  card: number;
  rule: number;
  version: number;
  country: number;
  amount: number;
  score: number;
  createdMs: number;
}

/** The p-th percentile (0..100) of `values`, NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const i = Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length));
  return sorted[i];
}
