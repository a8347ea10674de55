/**
 * A TxMon rule: subscribed to transactions with a topic wildcard (the
 * monitor subscribes it at launch, `rt.subscribeKernel`), it checks each, and publishes an alert on `alerts/<rule>`. Its parameters change
 * while transactions flow (a {@linkcode RuleParams} message in its queue,
 * between two transactions): nothing is restarted, so nothing is lost, and
 * the next alerts carry the new version. It counts what it saw and any gap
 * in the sequence numbers.
 *
 * @module
 */

import { type ActorDefinition, defineActor } from "../../mod.ts";
import {
  Alert,
  COUNTRIES,
  DEFAULT_RULES,
  type RuleName,
  RuleParams,
  RULES,
  RuleStatus,
  Transaction,
} from "./messages.ts";

/** A rule's launch configuration. */
export interface RuleConfig {
  /** Which rule. */
  readonly rule: RuleName;
}

interface RuleState {
  rule: RuleName;
  ruleId: number;
  version: number;
  a: number;
  b: number;
  c: number;
  seen: bigint;
  gaps: bigint;
  nextSeq: bigint;
  alerts: bigint;
  /** Velocity: recent transaction times per card. */
  recent: Map<number, number[]>;
}

type Tx = {
  seq: bigint;
  card: number;
  country: number;
  channel: number;
  amount: number;
  createdMs: number;
};

/** The score of the combined rule. */
export function combinedScore(tx: Tx, a: number, b: number): number {
  const abroad = tx.country !== tx.card % COUNTRIES.length ? 1 : 0;
  return a * tx.amount / 1000 + b * abroad + (tx.channel === 1 ? 0.2 : 0);
}

function check(s: RuleState, tx: Tx): number | undefined {
  switch (s.rule) {
    case "amount":
      return tx.amount >= s.a ? tx.amount / s.a : undefined;
    case "velocity": {
      let times = s.recent.get(tx.card);
      if (times === undefined) s.recent.set(tx.card, times = []);
      times.push(tx.createdMs);
      while (times.length > 0 && times[0] < tx.createdMs - s.b) times.shift();
      if (s.recent.size > 50_000) s.recent.clear();
      return times.length > s.a ? times.length : undefined;
    }
    case "country":
      return tx.country !== tx.card % COUNTRIES.length && tx.amount >= s.a
        ? tx.amount / s.a
        : undefined;
    case "score": {
      const score = combinedScore(tx, s.a, s.b);
      return score >= s.c ? score : undefined;
    }
  }
}

/** The rule actor. */
const rule: ActorDefinition<
  typeof RuleParams.spec,
  typeof RuleStatus.spec,
  RuleState
> = defineActor({
  input: RuleParams,
  output: RuleStatus,
  accepts: [Transaction],
  init: ({ config }) => {
    const { rule } = config as RuleConfig;
    const defaults = DEFAULT_RULES[rule];
    if (defaults === undefined) throw new Error(`unknown rule ${rule}`);
    return {
      rule,
      ruleId: RULES.indexOf(rule),
      version: 1,
      a: defaults.a,
      b: defaults.b,
      c: defaults.c,
      seen: 0n,
      gaps: 0n,
      nextSeq: 0n,
      alerts: 0n,
      recent: new Map(),
    };
  },
  handle(message, ctx) {
    const s = ctx.state;
    if ("version" in message) {
      // Parameters (or, with version 0, only a status query).
      if (message.version !== 0) {
        s.version = message.version;
        s.a = message.a;
        s.b = message.b;
        s.c = message.c;
      }
      return {
        version: s.version,
        seen: s.seen,
        gaps: s.gaps,
        nextSeq: s.nextSeq,
        alerts: s.alerts,
        a: s.a,
        b: s.b,
        c: s.c,
      };
    }
    const tx = message as unknown as Tx;
    s.seen++;
    if (tx.seq !== s.nextSeq) s.gaps++;
    s.nextSeq = tx.seq + 1n;
    const score = check(s, tx);
    if (score !== undefined) {
      s.alerts++;
      ctx.publish(`alerts/${s.rule}`, {
        seq: tx.seq,
        card: tx.card,
        rule: s.ruleId,
        version: s.version,
        country: tx.country,
        amount: tx.amount,
        score,
        createdMs: tx.createdMs,
      }, { schema: Alert });
    }
    return undefined;
  },
});
export default rule;
