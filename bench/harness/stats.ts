/**
 * Statistics for benchmark results: location and spread, percentiles,
 * Student-t confidence intervals, MAD-based outliers, Welch's t-test and
 * Cohen's d. Everything is computed here, with no dependency, so the
 * published figures can be checked line by line.
 *
 * Conventions: percentiles interpolate linearly between order statistics
 * (the default of R and NumPy, "type 7"); the standard deviation is the
 * sample one (n − 1); a figure that a sample cannot define (the spread of one
 * value) is `NaN`, which JSON stores as `null`.
 *
 * @module
 */

/** Throws a RangeError unless `values` is a non-empty array of finite numbers. */
function checkSample(
  values: ArrayLike<number>,
  what: string,
  atLeast = 1,
): void {
  if (values.length < atLeast) {
    throw new RangeError(
      `${what} needs at least ${atLeast} value${
        atLeast === 1 ? "" : "s"
      }, got ${values.length}`,
    );
  }
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      throw new RangeError(
        `${what}: value ${i} is ${values[i]}, not a finite number`,
      );
    }
  }
}

/** Arithmetic mean; throws a RangeError for an empty or non-finite sample. */
export function mean(values: ArrayLike<number>): number {
  checkSample(values, "mean");
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i];
  return sum / values.length;
}

/** Sample variance (divides by n − 1); `NaN` for a single value. */
export function variance(values: ArrayLike<number>): number {
  const m = mean(values);
  if (values.length < 2) return NaN;
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += (values[i] - m) ** 2;
  return sum / (values.length - 1);
}

/** Sample standard deviation (n − 1); `NaN` for a single value. */
export function standardDeviation(values: ArrayLike<number>): number {
  return Math.sqrt(variance(values));
}

/** A sorted copy of `values`, ascending. */
export function sorted(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

/**
 * The `q`-quantile (0 ≤ q ≤ 1) of an ascending-sorted sample, interpolating
 * linearly between order statistics (R and NumPy's default, "type 7").
 */
export function quantileSorted(
  ascending: ArrayLike<number>,
  q: number,
): number {
  checkSample(ascending, "quantile");
  if (!(q >= 0 && q <= 1)) {
    throw new RangeError(`quantile ${q} is not within 0..1`);
  }
  const position = (ascending.length - 1) * q;
  const below = Math.floor(position);
  const above = Math.min(below + 1, ascending.length - 1);
  const fraction = position - below;
  return ascending[below] + fraction * (ascending[above] - ascending[below]);
}

/** The `q`-quantile (0 ≤ q ≤ 1) of an unsorted sample; see {@linkcode quantileSorted}. */
export function quantile(values: ArrayLike<number>, q: number): number {
  return quantileSorted(sorted(values), q);
}

/** The median. */
export function median(values: ArrayLike<number>): number {
  return quantile(values, 0.5);
}

/** Median absolute deviation from the median (unscaled). */
export function medianAbsoluteDeviation(values: ArrayLike<number>): number {
  const m = median(values);
  const deviations = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    deviations[i] = Math.abs(values[i] - m);
  }
  return median(deviations);
}

// ---------------------------------------------------------------------------
// Special functions

const LANCZOS = [
  0.99999999999980993,
  676.5203681218851,
  -1259.1392167224028,
  771.32342877765313,
  -176.61502916214059,
  12.507343278686905,
  -0.13857109526572012,
  9.9843695780195716e-6,
  1.5056327351493116e-7,
];

/** Natural logarithm of the gamma function, for x > 0 (Lanczos, g = 7; ~15 digits). */
export function logGamma(x: number): number {
  if (!(x > 0)) throw new RangeError(`logGamma needs x > 0, got ${x}`);
  if (x < 0.5) {
    // Reflection keeps the approximation in its accurate range.
    return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  }
  const z = x - 1;
  let sum = LANCZOS[0];
  for (let i = 1; i < LANCZOS.length; i++) sum += LANCZOS[i] / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t +
    Math.log(sum);
}

/** Continued fraction of the incomplete beta function (modified Lentz). */
function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  const maxIterations = 100_000;
  let c = 1;
  let d = 1 - (a + b) * x / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let result = d;
  for (let m = 1; m <= maxIterations; m++) {
    const m2 = 2 * m;
    let step = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
    d = 1 + step * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + step / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    result *= d * c;
    step = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
    d = 1 + step * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + step / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    result *= delta;
    if (Math.abs(delta - 1) < 1e-16) return result;
  }
  throw new RangeError(
    `incomplete beta did not converge for x=${x}, a=${a}, b=${b}`,
  );
}

/** The regularized incomplete beta function I_x(a, b), for 0 ≤ x ≤ 1 and a, b > 0. */
export function regularizedIncompleteBeta(
  x: number,
  a: number,
  b: number,
): number {
  if (!(a > 0 && b > 0)) {
    throw new RangeError(`incomplete beta needs a, b > 0, got ${a}, ${b}`);
  }
  if (!(x >= 0 && x <= 1)) {
    throw new RangeError(`incomplete beta needs 0 ≤ x ≤ 1, got ${x}`);
  }
  if (x === 0 || x === 1) return x;
  const logFront = logGamma(a + b) - logGamma(a) - logGamma(b) +
    a * Math.log(x) +
    b * Math.log1p(-x);
  const front = Math.exp(logFront);
  // The fraction converges fast on this side of the mean; use symmetry on the other.
  if (x < (a + 1) / (a + b + 2)) {
    return front * betaContinuedFraction(x, a, b) / a;
  }
  return 1 - front * betaContinuedFraction(1 - x, b, a) / b;
}

/** Degrees of freedom beyond which the t distribution is computed at this cap (the difference is below 1e-7). */
const MAX_DEGREES = 1e7;

function checkDegrees(df: number): number {
  if (!(df > 0)) {
    throw new RangeError(`degrees of freedom must be > 0, got ${df}`);
  }
  return Math.min(df, MAX_DEGREES);
}

/** P(T > t) for t ≥ 0, computed directly so that small tails keep their precision. */
function upperTail(t: number, df: number): number {
  return 0.5 * regularizedIncompleteBeta(df / (df + t * t), df / 2, 0.5);
}

/** Cumulative distribution function of Student's t with `df` degrees of freedom (df may be fractional). */
export function studentTCdf(t: number, df: number): number {
  const nu = checkDegrees(df);
  if (Number.isNaN(t)) throw new RangeError("studentTCdf: t is NaN");
  if (t === Infinity) return 1;
  if (t === -Infinity) return 0;
  const tail = upperTail(Math.abs(t), nu);
  return t >= 0 ? 1 - tail : tail;
}

/**
 * The `p`-quantile of Student's t with `df` degrees of freedom: the t with
 * `studentTCdf(t, df) = p`. Solved by bisection on the upper tail, so tails
 * as small as 1e-300 keep full relative precision.
 */
export function studentTQuantile(p: number, df: number): number {
  const nu = checkDegrees(df);
  if (!(p > 0 && p < 1)) {
    throw new RangeError(`probability ${p} is not within (0, 1)`);
  }
  if (p === 0.5) return 0;
  const tail = p < 0.5 ? p : 1 - p;
  let low = 0;
  let high = 1;
  while (upperTail(high, nu) > tail) {
    low = high;
    high *= 2;
    if (high > 1e300) break;
  }
  for (let i = 0; i < 2000 && high - low > 1e-15 * high; i++) {
    const middle = (low + high) / 2;
    if (middle === low || middle === high) break;
    if (upperTail(middle, nu) > tail) low = middle;
    else high = middle;
  }
  const t = (low + high) / 2;
  return p < 0.5 ? -t : t;
}

// ---------------------------------------------------------------------------
// Summaries

/** A confidence interval. */
export interface Interval {
  /** Lower bound. */
  readonly low: number;
  /** Upper bound. */
  readonly high: number;
}

/** Student-t confidence interval of the mean (`level` default 0.95); `NaN` bounds for one value. */
export function meanConfidenceInterval(
  values: ArrayLike<number>,
  level = 0.95,
): Interval {
  if (!(level > 0 && level < 1)) {
    throw new RangeError(`confidence level ${level} is not within (0, 1)`);
  }
  const m = mean(values);
  if (values.length < 2) return { low: NaN, high: NaN };
  const half = studentTQuantile(0.5 + level / 2, values.length - 1) *
    standardDeviation(values) / Math.sqrt(values.length);
  return { low: m - half, high: m + half };
}

/** Everything published about one sample. */
export interface Summary {
  /** Number of values. */
  readonly n: number;
  /** Arithmetic mean. */
  readonly mean: number;
  /** Median (= p50). */
  readonly median: number;
  /** Smallest value. */
  readonly min: number;
  /** Largest value. */
  readonly max: number;
  /** 50th percentile. */
  readonly p50: number;
  /** 95th percentile. */
  readonly p95: number;
  /** 99th percentile. */
  readonly p99: number;
  /** 99.9th percentile. */
  readonly p999: number;
  /** Sample standard deviation (n − 1). */
  readonly stdDev: number;
  /** 95 % Student-t confidence interval of the mean. */
  readonly ci95: Interval;
  /** Coefficient of variation: stdDev / mean. */
  readonly cv: number;
}

/** Summarizes a sample: location, percentiles, spread, the mean's 95 % CI and the CV. */
export function summarize(values: ArrayLike<number>): Summary {
  checkSample(values, "summarize");
  const ascending = sorted(values);
  const m = mean(ascending);
  const sd = standardDeviation(ascending);
  const p50 = quantileSorted(ascending, 0.5);
  return {
    n: ascending.length,
    mean: m,
    median: p50,
    min: ascending[0],
    max: ascending[ascending.length - 1],
    p50,
    p95: quantileSorted(ascending, 0.95),
    p99: quantileSorted(ascending, 0.99),
    p999: quantileSorted(ascending, 0.999),
    stdDev: sd,
    ci95: meanConfidenceInterval(ascending),
    cv: m === 0 ? NaN : sd / Math.abs(m),
  };
}

/** Options of {@linkcode madOutliers}. */
export interface OutlierOptions {
  /** A value is an outlier when its modified z-score exceeds this (default 3.5, Iglewicz & Hoaglin). */
  threshold?: number;
}

/** A sample split into the values kept and the MAD-based outliers. */
export interface OutlierSplit {
  /** Values within the fences, in their original order. */
  readonly kept: number[];
  /** Values outside, in their original order. */
  readonly outliers: number[];
  /** Lowest value kept by the rule. */
  readonly lowFence: number;
  /** Highest value kept by the rule. */
  readonly highFence: number;
}

/**
 * Splits off outliers by the modified z-score 0.6745·|x − median| / MAD
 * (Iglewicz & Hoaglin). When more than half the values are equal (MAD = 0)
 * the mean absolute deviation, scaled by 1.253314 to estimate the same
 * quantity, takes its place; when that is 0 too, nothing is an outlier.
 */
export function madOutliers(
  values: ArrayLike<number>,
  options: OutlierOptions = {},
): OutlierSplit {
  const { threshold = 3.5 } = options;
  if (!(threshold > 0)) {
    throw new RangeError(`outlier threshold must be > 0, got ${threshold}`);
  }
  const m = median(values);
  let scale = medianAbsoluteDeviation(values) / 0.6745;
  if (scale === 0) {
    let sum = 0;
    for (let i = 0; i < values.length; i++) sum += Math.abs(values[i] - m);
    scale = 1.253314 * (sum / values.length);
  }
  const lowFence = scale === 0 ? -Infinity : m - threshold * scale;
  const highFence = scale === 0 ? Infinity : m + threshold * scale;
  const kept: number[] = [];
  const outliers: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    (v < lowFence || v > highFence ? outliers : kept).push(v);
  }
  return { kept, outliers, lowFence, highFence };
}

/** A sample's summary with all values and without its MAD-based outliers. */
export interface RobustSummary {
  /** Summary of every value. */
  readonly all: Summary;
  /** Summary without the outliers (the same as `all` when there are none). */
  readonly withoutOutliers: Summary;
  /** How many values were outliers. */
  readonly outliers: number;
  /** Outliers below the low fence. */
  readonly outliersLow: number;
  /** Outliers above the high fence. */
  readonly outliersHigh: number;
}

/** {@linkcode summarize} with and without the {@linkcode madOutliers}. */
export function summarizeRobust(
  values: ArrayLike<number>,
  options: OutlierOptions = {},
): RobustSummary {
  const all = summarize(values);
  const split = madOutliers(values, options);
  const low = split.outliers.filter((v) => v < split.lowFence).length;
  return {
    all,
    withoutOutliers: split.outliers.length === 0 ? all : summarize(split.kept),
    outliers: split.outliers.length,
    outliersLow: low,
    outliersHigh: split.outliers.length - low,
  };
}

// ---------------------------------------------------------------------------
// Comparisons

/** Result of {@linkcode welchTTest}. */
export interface WelchResult {
  /** The t statistic of mean(a) − mean(b). */
  readonly t: number;
  /** Welch–Satterthwaite degrees of freedom. */
  readonly df: number;
  /** Two-sided p-value. */
  readonly pValue: number;
  /** mean(a) − mean(b). */
  readonly difference: number;
  /** 95 % confidence interval of the difference. */
  readonly differenceCi95: Interval;
}

/**
 * Welch's unequal-variance t-test of mean(a) = mean(b), two-sided. Each
 * sample needs at least two values. When both have zero variance the test
 * degenerates: t is 0 (equal means) or ±Infinity, with p 1 or 0.
 */
export function welchTTest(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
): WelchResult {
  checkSample(a, "welchTTest (first sample)", 2);
  checkSample(b, "welchTTest (second sample)", 2);
  const difference = mean(a) - mean(b);
  const va = variance(a) / a.length;
  const vb = variance(b) / b.length;
  const se = Math.sqrt(va + vb);
  if (se === 0) {
    const t = difference === 0 ? 0 : Math.sign(difference) * Infinity;
    return {
      t,
      df: a.length + b.length - 2,
      pValue: difference === 0 ? 1 : 0,
      difference,
      differenceCi95: { low: difference, high: difference },
    };
  }
  const t = difference / se;
  const df = (va + vb) ** 2 /
    (va ** 2 / (a.length - 1) + vb ** 2 / (b.length - 1));
  const pValue = Math.min(1, 2 * studentTCdf(-Math.abs(t), df));
  const half = studentTQuantile(0.975, df) * se;
  return {
    t,
    df,
    pValue,
    difference,
    differenceCi95: { low: difference - half, high: difference + half },
  };
}

/**
 * Cohen's d: (mean(a) − mean(b)) / pooled standard deviation. `NaN` when
 * both samples have zero spread and equal means; ±Infinity when their
 * means differ.
 */
export function cohensD(a: ArrayLike<number>, b: ArrayLike<number>): number {
  checkSample(a, "cohensD (first sample)", 2);
  checkSample(b, "cohensD (second sample)", 2);
  const pooled = Math.sqrt(
    ((a.length - 1) * variance(a) + (b.length - 1) * variance(b)) /
      (a.length + b.length - 2),
  );
  const difference = mean(a) - mean(b);
  if (pooled === 0) {
    return difference === 0 ? NaN : Math.sign(difference) * Infinity;
  }
  return difference / pooled;
}

/** How large an effect is, by Cohen's conventional thresholds on |d|. */
export function effectSizeLabel(
  d: number,
): "negligible" | "small" | "medium" | "large" | "undefined" {
  const size = Math.abs(d);
  if (Number.isNaN(size)) return "undefined";
  if (size < 0.2) return "negligible";
  if (size < 0.5) return "small";
  if (size < 0.8) return "medium";
  return "large";
}

/** Options of {@linkcode bootstrapRatioInterval}. */
export interface BootstrapOptions {
  /** Resamples drawn (default 2000). */
  readonly resamples?: number;
  /** Confidence level (default 0.95). */
  readonly level?: number;
  /** Uniform numbers in [0, 1) (default: a fixed-seed generator, so the interval is reproducible). */
  readonly random?: () => number;
}

/** A deterministic uniform generator (mulberry32). */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Percentile-bootstrap confidence interval of median(a) / median(b), `a` and
 * `b` independent samples (one value per process each), each resampled with
 * replacement on its own. With one value on a side that side does not vary.
 */
export function bootstrapRatioInterval(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  options: BootstrapOptions = {},
): Interval {
  checkSample(a, "bootstrapRatioInterval (A)");
  checkSample(b, "bootstrapRatioInterval (B)");
  const level = options.level ?? 0.95;
  if (!(level > 0 && level < 1)) {
    throw new RangeError(`confidence level ${level} is not within (0, 1)`);
  }
  const resamples = options.resamples ?? 2000;
  const random = options.random ?? mulberry32(0x5eed);
  const draw = (values: ArrayLike<number>, into: Float64Array) => {
    for (let i = 0; i < into.length; i++) {
      into[i] = values[Math.floor(random() * values.length)];
    }
    return median(into);
  };
  const da = new Float64Array(a.length);
  const db = new Float64Array(b.length);
  const ratios = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) ratios[r] = draw(a, da) / draw(b, db);
  ratios.sort();
  const tail = (1 - level) / 2;
  return {
    low: quantileSorted(ratios, tail),
    high: quantileSorted(ratios, 1 - tail),
  };
}
