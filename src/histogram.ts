/**
 * A fixed-memory latency histogram with log-linear buckets (HDR-like).
 *
 * Values are nanoseconds. Values below 128 ns have a bucket each (exact);
 * above, every power-of-two range is split into 64 equal buckets, so a bucket
 * spans at most 1/64 of its lower bound. A percentile is reported as the
 * middle of its bucket, clamped to the exact `min` and `max`, which bounds the
 * relative error by {@linkcode HISTOGRAM_RELATIVE_PRECISION} (1/128, about
 * 0.78 %) for integer nanosecond values from 1 ns up to
 * {@linkcode HISTOGRAM_MAX_VALUE} (about 18 minutes). Larger values are
 * counted in the top bucket (their `min`, `max` and `mean` stay exact).
 * Fractional values are bucketed by their whole nanoseconds.
 *
 * `count`, `min`, `max` and `mean` are exact. Percentiles use the
 * nearest-rank definition: the value at rank `ceil(p / 100 * count)`.
 *
 * Memory is fixed whatever is recorded: {@linkcode HISTOGRAM_BUCKET_COUNT}
 * bucket counts and one count per group of 64 buckets, as `Float64Array`s
 * (about 18 KB).
 *
 * @module
 */

import { RingKernelError } from "./errors.ts";

/** Bits of mantissa kept per power of two (64 buckets per octave). */
const SUB_BITS = 6;
const SUB_COUNT = 1 << SUB_BITS; // 64
/** Values below this are stored exactly, one bucket each. */
const LINEAR_LIMIT = SUB_COUNT * 2; // 128
/** log2 of LINEAR_LIMIT: the first exponent using log-linear buckets. */
const FIRST_EXPONENT = SUB_BITS + 1; // 7
/** Exclusive upper exponent: values below 2^MAX_EXPONENT are bucketed precisely. */
const MAX_EXPONENT = 40;
const TWO_POW_32 = 4294967296;

/** Number of buckets (fixed). */
export const HISTOGRAM_BUCKET_COUNT: number = LINEAR_LIMIT +
  (MAX_EXPONENT - FIRST_EXPONENT) * SUB_COUNT;

/**
 * Buckets are also counted in groups of 64 (one octave each above 128 ns), so
 * a percentile skips whole groups instead of scanning every bucket.
 */
const GROUP_SHIFT = SUB_BITS;
const GROUP_COUNT = HISTOGRAM_BUCKET_COUNT >> GROUP_SHIFT;

/** Largest value, in ns, bucketed within the documented precision (2^40 - 1). */
export const HISTOGRAM_MAX_VALUE = 2 ** MAX_EXPONENT - 1;

/** Bound on the relative error of a reported percentile (1/128). */
export const HISTOGRAM_RELATIVE_PRECISION = 1 / 128;

/** Bucket index of a whole, non-negative value no larger than HISTOGRAM_MAX_VALUE. */
function bucketOf(value: number): number {
  if (value < LINEAR_LIMIT) return value;
  let exponent: number;
  let mantissa: number;
  if (value < TWO_POW_32) {
    exponent = 31 - Math.clz32(value);
    mantissa = value >>> (exponent - SUB_BITS);
  } else {
    exponent = 63 - Math.clz32(Math.floor(value / TWO_POW_32));
    mantissa = Math.floor(value / 2 ** (exponent - SUB_BITS));
  }
  return LINEAR_LIMIT + (exponent - FIRST_EXPONENT) * SUB_COUNT +
    (mantissa - SUB_COUNT);
}

/** The middle of the whole values in bucket `index`. */
function middleOf(index: number): number {
  if (index < LINEAR_LIMIT) return index;
  const offset = index - LINEAR_LIMIT;
  const exponent = FIRST_EXPONENT + Math.floor(offset / SUB_COUNT);
  const mantissa = SUB_COUNT + (offset % SUB_COUNT);
  const width = 2 ** (exponent - SUB_BITS);
  return mantissa * width + (width - 1) / 2;
}

/** Plain summary of a {@linkcode LatencyHistogram}; all values in ns, 0 when empty. */
export interface HistogramSnapshot {
  /** Values recorded. */
  count: number;
  /** Smallest value (exact). */
  min: number;
  /** Largest value (exact). */
  max: number;
  /** Arithmetic mean (exact up to floating-point rounding). */
  mean: number;
  /** Median. */
  p50: number;
  /** 90th percentile. */
  p90: number;
  /** 99th percentile. */
  p99: number;
  /** 99.9th percentile. */
  p999: number;
}

/** Nearest rank (1-based) of percentile `p` among `count` values. */
function rankOf(p: number, count: number): number {
  const exact = (p * count) / 100;
  // Absorb floating-point noise such as 99.9 * 1000 / 100 = 999.0000000000001.
  const rank = Math.ceil(exact - exact * 1e-12);
  return rank < 1 ? 1 : rank > count ? count : rank;
}

function checkPercentile(p: number): void {
  if (typeof p !== "number" || !(p >= 0 && p <= 100)) {
    throw new RingKernelError(`percentile must be within [0, 100], got ${p}`);
  }
}

/** A latency histogram in nanoseconds; see the module doc for its precision. */
export class LatencyHistogram {
  #counts = new Float64Array(HISTOGRAM_BUCKET_COUNT);
  #groups = new Float64Array(GROUP_COUNT);
  #count = 0;
  #sum = 0;
  #min = Infinity;
  #max = -Infinity;

  /** Values recorded. */
  get count(): number {
    return this.#count;
  }

  /** Smallest value recorded (exact), or 0 when empty. */
  get min(): number {
    return this.#count === 0 ? 0 : this.#min;
  }

  /** Largest value recorded (exact), or 0 when empty. */
  get max(): number {
    return this.#count === 0 ? 0 : this.#max;
  }

  /** Sum of every value recorded. */
  get sum(): number {
    return this.#sum;
  }

  /** Mean of the values recorded, or 0 when empty. */
  get mean(): number {
    return this.#count === 0 ? 0 : this.#sum / this.#count;
  }

  /**
   * Records one value.
   *
   * @param ns A duration in nanoseconds (finite, non-negative).
   * @throws {RingKernelError} when `ns` is negative, NaN or infinite.
   */
  record(ns: number): void {
    if (typeof ns !== "number" || !(ns >= 0 && ns < Infinity)) {
      throw new RingKernelError(
        `histogram value must be a finite non-negative number of ns, got ${ns}`,
      );
    }
    const whole = ns < HISTOGRAM_MAX_VALUE
      ? Math.floor(ns)
      : HISTOGRAM_MAX_VALUE;
    const bucket = bucketOf(whole);
    this.#counts[bucket]++;
    this.#groups[bucket >> GROUP_SHIFT]++;
    this.#count++;
    this.#sum += ns;
    if (ns < this.#min) this.#min = ns;
    if (ns > this.#max) this.#max = ns;
  }

  /**
   * The value at percentile `p` (nearest rank), within the documented
   * precision; `percentile(0)` is `min` and `percentile(100)` is `max`.
   *
   * @returns 0 when the histogram is empty.
   * @throws {RingKernelError} when `p` is outside [0, 100].
   */
  percentile(p: number): number {
    checkPercentile(p);
    return this.#valuesAtRanks([p])[0];
  }

  /** Values at each percentile of `ps`. */
  #valuesAtRanks(ps: readonly number[]): number[] {
    const count = this.#count;
    const out = new Array<number>(ps.length).fill(0);
    if (count === 0) return out;
    for (let k = 0; k < ps.length; k++) {
      const rank = rankOf(ps[k], count);
      if (rank === count) {
        out[k] = this.#max;
        continue;
      }
      const value = middleOf(this.#bucketAtRank(rank));
      out[k] = value < this.#min
        ? this.#min
        : value > this.#max
        ? this.#max
        : value;
    }
    return out;
  }

  /** Index of the bucket holding the value of 1-based `rank`. */
  #bucketAtRank(rank: number): number {
    const groups = this.#groups;
    const counts = this.#counts;
    let seen = 0;
    let group = 0;
    while (seen + groups[group] < rank) seen += groups[group++];
    let bucket = group << GROUP_SHIFT;
    while (seen + counts[bucket] < rank) seen += counts[bucket++];
    return bucket;
  }

  /** Adds every value recorded by `other` to this histogram. */
  merge(other: LatencyHistogram): void {
    if (!(other instanceof LatencyHistogram)) {
      throw new RingKernelError("can only merge another LatencyHistogram");
    }
    if (other.#count === 0) return;
    const mine = this.#counts;
    const theirs = other.#counts;
    for (let i = 0; i < mine.length; i++) mine[i] += theirs[i];
    const myGroups = this.#groups;
    const theirGroups = other.#groups;
    for (let i = 0; i < myGroups.length; i++) myGroups[i] += theirGroups[i];
    this.#count += other.#count;
    this.#sum += other.#sum;
    if (other.#min < this.#min) this.#min = other.#min;
    if (other.#max > this.#max) this.#max = other.#max;
  }

  /** Forgets every value. */
  reset(): void {
    this.#counts.fill(0);
    this.#groups.fill(0);
    this.#count = 0;
    this.#sum = 0;
    this.#min = Infinity;
    this.#max = -Infinity;
  }

  /** A plain summary with the usual percentiles. */
  snapshot(): HistogramSnapshot {
    const [p50, p90, p99, p999] = this.#valuesAtRanks([50, 90, 99, 99.9]);
    return {
      count: this.#count,
      min: this.min,
      max: this.max,
      mean: this.mean,
      p50,
      p90,
      p99,
      p999,
    };
  }
}
