/**
 * TxMon's generator: on each tick it publishes that many synthetic card
 * transactions, numbered from 0 with no gap, on `tx/<country>/<channel>`.
 * Now and then a card makes a burst (the velocity rule's prey), and a few
 * cards are used abroad.
 *
 * @module
 */

import { type ActorDefinition, defineActor } from "../../mod.ts";
import {
  CHANNELS,
  COUNTRIES,
  GenerateTick,
  Transaction,
  wallMs,
} from "./messages.ts";

/** Cards the generator draws from. */
export const CARDS = 20_000;

interface GeneratorState {
  seq: bigint;
  rng: number;
  burstCard: number;
  burstLeft: number;
}

function next(state: GeneratorState): number {
  // xorshift32: deterministic, fast.
  let x = state.rng;
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  state.rng = x >>> 0;
  return state.rng / 4294967296;
}

/** The generator actor. */
const generator: ActorDefinition<
  typeof GenerateTick.spec,
  typeof Transaction.spec,
  GeneratorState
> = defineActor({
  input: GenerateTick,
  output: Transaction,
  init: () => ({ seq: 0n, rng: 0x9e3779b9, burstCard: 0, burstLeft: 0 }),
  handle(tick, ctx) {
    const s = ctx.state;
    for (let n = 0; n < tick.count; n++) {
      let card: number;
      if (s.burstLeft > 0) {
        s.burstLeft--;
        card = s.burstCard;
      } else {
        card = Math.floor(next(s) * CARDS);
        if (next(s) < 0.002) {
          s.burstCard = card;
          s.burstLeft = 6;
        }
      }
      const home = card % COUNTRIES.length;
      const country = next(s) < 0.03
        ? Math.floor(next(s) * COUNTRIES.length)
        : home;
      const channel = next(s) < 0.35 ? 1 : 0;
      // Mostly small amounts, a long tail of large ones.
      const amount = Math.round(Math.exp(next(s) * 7.2) * 100) / 100;
      ctx.publish(`tx/${COUNTRIES[country]}/${CHANNELS[channel]}`, {
        seq: s.seq++,
        card,
        country,
        channel,
        amount,
        createdMs: wallMs(),
      });
    }
  },
});
export default generator;
