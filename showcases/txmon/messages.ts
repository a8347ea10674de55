/**
 * TxMon's messages: card transactions (published by the generator on
 * `tx/<country>/<channel>`), ticks that tell the generator how many to make,
 * rule parameters (a hot reload, or with version 0 a status query), rule
 * status replies, and alerts (published on `alerts/<rule>`).
 *
 * @module
 */

import { defineMessage } from "../../mod.ts";

/** Countries of the synthetic cards (a card's home is `card % length`). */
export const COUNTRIES = [
  "US",
  "GB",
  "DE",
  "FR",
  "NL",
  "BR",
  "SG",
  "JP",
] as const;

/** Channels of a transaction. */
export const CHANNELS = ["pos", "online"] as const;

/** The rules, by id (an alert's `rule`). */
export const RULES = ["amount", "velocity", "country", "score"] as const;

/** A rule's name. */
export type RuleName = typeof RULES[number];

/** A card transaction. */
export const Transaction = defineMessage({
  name: "txmon.Transaction",
  fields: {
    seq: "u64",
    card: "u32",
    country: "u32",
    channel: "u32",
    amount: "f64",
    /** When the generator made it, ms since the epoch (fractional). */
    createdMs: "f64",
  },
});

/** Tells the generator to make `count` transactions now. */
export const GenerateTick = defineMessage({
  name: "txmon.GenerateTick",
  fields: { count: "u32" },
});

/** A rule's parameters; version 0 changes nothing (a status query). */
export const RuleParams = defineMessage({
  name: "txmon.RuleParams",
  fields: { version: "u32", a: "f64", b: "f64", c: "f64" },
});

/** What a rule reports on each {@linkcode RuleParams}. */
export const RuleStatus = defineMessage({
  name: "txmon.RuleStatus",
  fields: {
    version: "u32",
    seen: "u64",
    gaps: "u64",
    nextSeq: "u64",
    alerts: "u64",
    a: "f64",
    b: "f64",
    c: "f64",
  },
});

/** An alert. */
export const Alert = defineMessage({
  name: "txmon.Alert",
  fields: {
    seq: "u64",
    card: "u32",
    rule: "u32",
    /** The rule's parameter version that raised it. */
    version: "u32",
    country: "u32",
    amount: "f64",
    score: "f64",
    createdMs: "f64",
  },
});

/** Each rule's parameters, and what `a`, `b`, `c` mean for it. */
export const DEFAULT_RULES: Readonly<
  Record<RuleName, { a: number; b: number; c: number; meaning: string }>
> = Object.freeze({
  amount: { a: 900, b: 0, c: 0, meaning: "a: alert at or above this amount" },
  velocity: {
    a: 5,
    b: 1000,
    c: 0,
    meaning: "a: alert above this many transactions of one card within b ms",
  },
  country: {
    a: 100,
    b: 0,
    c: 0,
    meaning: "a: alert on a card used abroad for at least this amount",
  },
  score: {
    a: 1,
    b: 0.6,
    c: 1.1,
    meaning:
      "score = a·amount/1000 + b·(abroad) + 0.2·(online); alert at or above c",
  },
});

/** The wall clock in ms with a fraction, comparable across threads. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}
