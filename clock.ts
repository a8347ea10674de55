/**
 * The hybrid logical clock (HLC) that timestamps every message: wall-clock
 * milliseconds with a logical counter, so that timestamps never go backwards
 * and a message received is always older than what its receiver sends next.
 *
 * ```ts
 * import { compareHlc, HybridClock } from "./clock.ts";
 *
 * const a = new HybridClock({ nodeId: 1 });
 * const b = new HybridClock({ nodeId: 2 });
 * const sent = a.now();
 * const received = b.update(sent);
 * console.log(compareHlc(sent, received) < 0); // true
 * ```
 *
 * @module
 */

export {
  compareHlc,
  type HlcTimestamp,
  HybridClock,
  type HybridClockOptions,
  packHlc,
  unpackHlc,
} from "./src/hlc.ts";
export { ClockSkewError } from "./src/errors.ts";
