/**
 * Hybrid logical clocks (Kulkarni et al., "Logical Physical Clocks", 2014).
 *
 * A timestamp is `(physicalMs, logical, nodeId)`: the largest physical time
 * seen so far in milliseconds, a counter that orders events within that
 * millisecond, and the issuing node as a final tie-break, so the order is total.
 *
 * On the wire (the envelope's `timestamp`), a timestamp is packed into 64 bits:
 * `physicalMs << 16 | logical` — 48 bits of milliseconds (good until the year
 * 10889) and 16 bits of counter. The node id travels separately (the
 * envelope's `sourceActor`).
 *
 * Logical overflow: if more than 65 535 events share one millisecond, the clock
 * moves its physical component one millisecond ahead and restarts the counter
 * at 0. Order stays strictly monotonic and every timestamp stays packable; the
 * price is that the clock may run ahead of wall time by 1 ms per 65 536 events
 * issued faster than real time, which the skew bound on `update` limits.
 *
 * @module
 */

import { ClockSkewError } from "./errors.ts";

/** One hybrid logical clock reading. */
export interface HlcTimestamp {
  /** Physical component: milliseconds since the Unix epoch (integer, < 2^48). */
  readonly physicalMs: number;
  /** Logical counter within `physicalMs` (integer, 0..65535). */
  readonly logical: number;
  /** Issuing node (u32); breaks ties so that the order is total. */
  readonly nodeId: number;
}

/** Largest value of {@linkcode HlcTimestamp.logical}. */
export const HLC_MAX_LOGICAL = 0xffff;
/** Largest value of {@linkcode HlcTimestamp.physicalMs} (2^48 - 1). */
export const HLC_MAX_PHYSICAL_MS = 2 ** 48 - 1;
/** Default maximum skew accepted by {@linkcode HybridClock.update}: 60 s. */
export const DEFAULT_MAX_SKEW_MS = 60_000;

const LOGICAL_SPAN = 0x10000;

function checkTimestamp(ts: HlcTimestamp, what: string): void {
  const { physicalMs, logical } = ts;
  if (
    !Number.isInteger(physicalMs) || physicalMs < 0 ||
    physicalMs > HLC_MAX_PHYSICAL_MS
  ) {
    throw new RangeError(
      `${what}: physicalMs ${physicalMs} is not a 48-bit integer`,
    );
  }
  if ((logical & HLC_MAX_LOGICAL) !== logical) {
    throw new RangeError(`${what}: logical ${logical} is not a 16-bit integer`);
  }
}

/**
 * Total order of timestamps: by physical time, then logical counter, then
 * node id. Returns a negative number, 0 or a positive number.
 */
export function compareHlc(a: HlcTimestamp, b: HlcTimestamp): number {
  return (a.physicalMs - b.physicalMs) || (a.logical - b.logical) ||
    (a.nodeId - b.nodeId);
}

/** Packs a timestamp into its 64-bit wire form `physicalMs << 16 | logical` (node id not included). */
export function packHlc(ts: HlcTimestamp): bigint {
  checkTimestamp(ts, "packHlc");
  return (BigInt(ts.physicalMs) << 16n) | BigInt(ts.logical);
}

/** Unpacks the 64-bit wire form; `nodeId` is supplied by the caller (default 0). */
export function unpackHlc(packed: bigint, nodeId = 0): HlcTimestamp {
  const bits = BigInt.asUintN(64, packed);
  return {
    physicalMs: Number(bits >> 16n),
    logical: Number(bits & 0xffffn),
    nodeId,
  };
}

/**
 * Writes the packed form of `ts` as a little-endian u64 at `byteOffset`
 * without creating a BigInt (two u32 stores).
 */
export function writeHlc(
  view: DataView,
  byteOffset: number,
  ts: HlcTimestamp,
): void {
  const p = ts.physicalMs;
  const l = ts.logical;
  if (
    (l & HLC_MAX_LOGICAL) !== l || !(p >= 0 && p <= HLC_MAX_PHYSICAL_MS) ||
    Math.floor(p) !== p
  ) {
    checkTimestamp(ts, "writeHlc");
  }
  // Math.floor, not %: a double modulo is a slow library call.
  const high = Math.floor(p / LOGICAL_SPAN);
  view.setUint32(
    byteOffset,
    (p - high * LOGICAL_SPAN) * LOGICAL_SPAN + l,
    true,
  );
  view.setUint32(byteOffset + 4, high, true);
}

/** Reads a packed timestamp (little-endian u64) at `byteOffset` without creating a BigInt. */
export function readHlc(
  view: DataView,
  byteOffset: number,
  nodeId = 0,
): HlcTimestamp {
  const lo = view.getUint32(byteOffset, true);
  const hi = view.getUint32(byteOffset + 4, true);
  return {
    physicalMs: hi * LOGICAL_SPAN + (lo >>> 16),
    logical: lo & HLC_MAX_LOGICAL,
    nodeId,
  };
}

/** Options of {@linkcode HybridClock}. */
export interface HybridClockOptions {
  /** This node's id (u32, default 0), the final tie-break of the order. */
  nodeId?: number;
  /** Largest lead, in ms, of a received timestamp over local physical time (default 60 000). */
  maxSkewMs?: number;
  /** Physical time source in integer milliseconds (default `Date.now`); inject one in tests. */
  physicalTime?: () => number;
}

/**
 * A hybrid logical clock. `now()` stamps local and send events; `update()`
 * merges a received timestamp. Readings are strictly increasing and a receive
 * is always ordered after the matching send.
 */
export class HybridClock {
  /** This node's id. */
  readonly nodeId: number;
  /** Largest accepted lead of a received timestamp over local physical time, in ms. */
  readonly maxSkewMs: number;
  #physicalTime: () => number;
  #l = 0;
  #c = 0;

  /** Creates a clock; see {@linkcode HybridClockOptions}. */
  constructor(options: HybridClockOptions = {}) {
    const { nodeId = 0, maxSkewMs = DEFAULT_MAX_SKEW_MS } = options;
    if ((nodeId >>> 0) !== nodeId) {
      throw new RangeError(`nodeId ${nodeId} is not a u32`);
    }
    if (!(maxSkewMs >= 0)) {
      throw new RangeError(`maxSkewMs ${maxSkewMs} must be >= 0`);
    }
    this.nodeId = nodeId;
    this.maxSkewMs = maxSkewMs;
    this.#physicalTime = options.physicalTime ?? Date.now;
  }

  /** The last physical reading: a lower bound of physical time now. */
  #lastPhysical = 0;

  #physical(): number {
    const pt = this.#physicalTime();
    if (!Number.isInteger(pt) || pt < 0 || pt > HLC_MAX_PHYSICAL_MS) {
      throw new RangeError(
        `physical time source returned ${pt}, not a 48-bit integer of ms`,
      );
    }
    this.#lastPhysical = pt;
    return pt;
  }

  /** Moves to (l, c), carrying a logical overflow into the physical component. */
  #set(l: number, c: number): void {
    if (c > HLC_MAX_LOGICAL) {
      l += 1;
      c = 0;
    }
    this.#l = l;
    this.#c = c;
  }

  /** Ticks the clock for a local or send event and returns the new reading. */
  now(): HlcTimestamp {
    this.#tick();
    return { physicalMs: this.#l, logical: this.#c, nodeId: this.nodeId };
  }

  #tick(): void {
    const pt = this.#physical();
    if (pt > this.#l) this.#set(pt, 0);
    else this.#set(this.#l, this.#c + 1);
  }

  /**
   * Ticks the clock and writes the packed reading at `byteOffset` (e.g. an
   * envelope's timestamp) without allocating.
   */
  writeNow(view: DataView, byteOffset: number): void {
    this.#tick();
    const high = Math.floor(this.#l / LOGICAL_SPAN);
    view.setUint32(
      byteOffset,
      (this.#l - high * LOGICAL_SPAN) * LOGICAL_SPAN + this.#c,
      true,
    );
    view.setUint32(byteOffset + 4, high, true);
  }

  /**
   * Ticks the clock for `n` events at once (a batch of sends: one physical
   * reading for all of them) and returns the first of the `n` consecutive
   * readings; the others follow it in packed order (`packed + k`, a logical
   * overflow carrying into the physical component as {@linkcode now} does).
   * Throws `RangeError` unless `n` is an integer in 1..2^32-1.
   */
  reserve(n: number): HlcTimestamp {
    if ((n >>> 0) !== n || n === 0) {
      throw new RangeError(`reserve count ${n} must be an integer >= 1`);
    }
    this.#tick();
    const first = {
      physicalMs: this.#l,
      logical: this.#c,
      nodeId: this.nodeId,
    };
    if (n > 1) {
      const c = this.#c + n - 1;
      const carry = Math.floor(c / LOGICAL_SPAN);
      this.#l += carry;
      this.#c = c - carry * LOGICAL_SPAN;
    }
    return first;
  }

  /**
   * Merges a received packed timestamp given as its two little-endian u32
   * words (as it lies in an envelope), so that every later reading orders
   * after it. Allocation-free, and it reads physical time only when the
   * stamp leads the last physical reading by more than `maxSkewMs`: then,
   * if it still leads the current time by more, the clock is left unchanged
   * and the lead in ms is returned; otherwise 0. A zero stamp (unused)
   * changes nothing.
   */
  observeWords(lo: number, hi: number): number {
    const ml = hi * LOGICAL_SPAN + (lo >>> 16);
    if (ml > this.#lastPhysical + this.maxSkewMs) {
      const lead = ml - this.#physical();
      if (lead > this.maxSkewMs) return lead;
    }
    const l = this.#l;
    if (ml < l) return 0;
    const mc = lo & HLC_MAX_LOGICAL;
    if (ml > l || mc > this.#c) {
      this.#l = ml;
      this.#c = mc;
    }
    return 0;
  }

  /**
   * Merges a received timestamp (a receive event) and returns the new reading,
   * which orders after both `received` and every earlier reading. Throws
   * {@linkcode ClockSkewError}, leaving the clock unchanged, when `received`
   * is ahead of local physical time by more than `maxSkewMs`.
   */
  update(received: HlcTimestamp): HlcTimestamp {
    checkTimestamp(received, "HybridClock.update");
    const pt = this.#physical();
    const lead = received.physicalMs - pt;
    if (lead > this.maxSkewMs) throw new ClockSkewError(lead, this.maxSkewMs);
    const l = this.#l;
    const c = this.#c;
    const ml = received.physicalMs;
    const next = Math.max(l, ml, pt);
    if (next === l && next === ml) {
      this.#set(next, Math.max(c, received.logical) + 1);
    } else if (next === l) this.#set(next, c + 1);
    else if (next === ml) this.#set(next, received.logical + 1);
    else this.#set(next, 0);
    return { physicalMs: this.#l, logical: this.#c, nodeId: this.nodeId };
  }

  /** The last reading, without ticking. */
  peek(): HlcTimestamp {
    return { physicalMs: this.#l, logical: this.#c, nodeId: this.nodeId };
  }
}
