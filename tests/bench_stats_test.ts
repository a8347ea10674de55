// Reference values below were computed with SciPy 1.17 / NumPy (scipy.stats.t,
// scipy.special.betainc and gammaln, scipy.stats.ttest_ind(equal_var=False),
// numpy.quantile with its default linear method).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  bootstrapRatioInterval,
  cohensD,
  effectSizeLabel,
  logGamma,
  madOutliers,
  mean,
  meanConfidenceInterval,
  median,
  medianAbsoluteDeviation,
  quantile,
  regularizedIncompleteBeta,
  standardDeviation,
  studentTCdf,
  studentTQuantile,
  summarize,
  summarizeRobust,
  variance,
  welchTTest,
} from "../bench/harness/stats.ts";

function near(
  actual: number,
  expected: number,
  relative = 1e-10,
  what = "",
): void {
  const tolerance = Math.max(Math.abs(expected) * relative, 1e-300);
  assert.ok(
    Math.abs(actual - expected) <= tolerance,
    `${what} expected ${expected}, got ${actual} (difference ${
      Math.abs(actual - expected)
    })`,
  );
}

const A = [
  27.5,
  21.0,
  19.0,
  23.6,
  17.0,
  17.9,
  16.9,
  20.1,
  21.9,
  22.6,
  23.1,
  19.6,
  19.0,
  21.7,
  21.4,
];
const B = [
  27.1,
  22.0,
  20.8,
  23.4,
  23.4,
  23.5,
  25.8,
  22.0,
  24.8,
  20.2,
  21.9,
  22.1,
  22.9,
  20.5,
  24.4,
];
const C = [17.2, 20.9, 22.6, 18.1, 21.7, 21.4, 23.5, 24.2, 14.7, 21.8];
const D = [
  21.5,
  22.8,
  21.0,
  23.0,
  21.6,
  23.6,
  22.5,
  20.7,
  23.4,
  21.8,
  20.7,
  21.7,
  21.5,
  22.5,
  23.6,
  21.5,
  22.5,
  23.5,
  21.5,
  21.8,
];

describe("location and spread", () => {
  test("mean, standard deviation, median and MAD match NumPy", () => {
    near(mean(A), 20.819999999999997);
    near(standardDeviation(A), 2.8048936827317665);
    near(variance(A), 2.8048936827317665 ** 2);
    assert.equal(median(A), 21.0);
    assert.equal(medianAbsoluteDeviation(A), 2.0);
  });

  test("quantiles interpolate like numpy.quantile", () => {
    near(quantile(A, 0.95), 24.769999999999996);
    near(quantile(A, 0.99), 26.953999999999997);
    near(quantile(A, 0.999), 27.445400000000003);
    assert.equal(quantile(A, 0.25), 19.0);
    assert.equal(quantile(A, 0), 16.9);
    assert.equal(quantile(A, 1), 27.5);
    assert.equal(quantile([5], 0.99), 5);
    assert.equal(median([1, 2, 3, 4]), 2.5);
  });

  test("a single value has no spread", () => {
    assert.ok(Number.isNaN(standardDeviation([3])));
    const s = summarize([3]);
    assert.equal(s.mean, 3);
    assert.ok(Number.isNaN(s.ci95.low) && Number.isNaN(s.cv));
  });

  test("bad input throws a RangeError", () => {
    assert.throws(() => mean([]), RangeError);
    assert.throws(() => summarize([1, NaN]), RangeError);
    assert.throws(() => quantile([1, 2], 1.5), RangeError);
    assert.throws(() => median([1, Infinity]), RangeError);
    assert.throws(() => welchTTest([1], [1, 2]), RangeError);
    assert.throws(() => cohensD([1, 2], []), RangeError);
    assert.throws(() => madOutliers([1, 2], { threshold: 0 }), RangeError);
    assert.throws(() => meanConfidenceInterval([1, 2], 1), RangeError);
  });
});

describe("special functions", () => {
  test("logGamma matches scipy.special.gammaln", () => {
    near(logGamma(0.5), 0.5723649429247, 1e-12);
    near(logGamma(10), 12.801827480081469, 1e-13);
    near(logGamma(123.4), 469.3360974421906, 1e-13);
    assert.ok(Math.abs(logGamma(1)) < 1e-14);
    assert.throws(() => logGamma(0), RangeError);
  });

  test("regularized incomplete beta matches scipy.special.betainc", () => {
    near(regularizedIncompleteBeta(0.4, 2.5, 3.5), 0.4869041915261176, 1e-12);
    near(regularizedIncompleteBeta(0.9, 0.5, 0.5), 0.7951672353008665, 1e-12);
    near(regularizedIncompleteBeta(0.45, 50, 60), 0.4642352914306031, 1e-11);
    assert.equal(regularizedIncompleteBeta(0, 2, 3), 0);
    assert.equal(regularizedIncompleteBeta(1, 2, 3), 1);
    assert.throws(() => regularizedIncompleteBeta(1.2, 2, 3), RangeError);
  });
});

describe("Student's t distribution", () => {
  const q975: Array<[number, number]> = [
    [1, 12.706204736174694],
    [2, 4.302652729749462],
    [3, 3.1824463052837078],
    [5, 2.5705818356363146],
    [10, 2.228138851986274],
    [30, 2.0422724563012378],
    [100, 1.9839715185235518],
    [1000, 1.9623390808264083],
  ];
  const q995: Array<[number, number]> = [
    [1, 63.656741162871526],
    [2, 9.924843200918287],
    [5, 4.032142983555228],
    [30, 2.7499956535672254],
  ];

  test("quantiles match scipy.stats.t.ppf", () => {
    for (const [df, expected] of q975) {
      near(studentTQuantile(0.975, df), expected, 1e-12, `q0.975 df=${df}`);
    }
    for (const [df, expected] of q995) {
      near(studentTQuantile(0.995, df), expected, 1e-12, `q0.995 df=${df}`);
    }
    near(studentTQuantile(0.6, 3), 0.2766706623326898, 1e-12);
    near(studentTQuantile(0.6, 1000), 0.25341451583949876, 1e-11);
    near(studentTQuantile(0.025, 4.5), -2.658912347204404, 1e-12);
    near(studentTQuantile(1e-6, 3), -103.29946778041935, 1e-11);
    assert.equal(studentTQuantile(0.5, 7), 0);
  });

  test("the CDF matches scipy.stats.t.cdf, tails included", () => {
    assert.equal(studentTCdf(0, 5), 0.5);
    near(studentTCdf(1, 1), 0.75, 1e-14);
    near(studentTCdf(2, 3), 0.9303370157205785, 1e-13);
    near(studentTCdf(-2.5, 7), 0.020496109292876444, 1e-12);
    near(studentTCdf(10, 2), 0.9950737714883372, 1e-13);
    near(studentTCdf(1.5, 50.5), 0.9300795910127742, 1e-12);
    near(studentTCdf(0.3, 0.7), 0.5853824068143325, 1e-12);
    near(studentTCdf(40, 3), 0.9999828096596054, 1e-13);
    near(studentTCdf(-6, 12), 3.108369432429282e-05, 1e-10);
    assert.equal(studentTCdf(Infinity, 3), 1);
    assert.equal(studentTCdf(-Infinity, 3), 0);
  });

  test("quantile and CDF are inverses, and huge df approaches the normal", () => {
    for (const df of [0.5, 1, 2.5, 9, 77, 1e5]) {
      for (const p of [1e-9, 0.01, 0.2, 0.7, 0.999]) {
        near(
          studentTCdf(studentTQuantile(p, df), df),
          p,
          1e-9,
          `df=${df} p=${p}`,
        );
      }
    }
    near(studentTQuantile(0.975, 1e9), 1.959963984540054, 1e-6);
    assert.throws(() => studentTQuantile(0, 3), RangeError);
    assert.throws(() => studentTQuantile(0.5, 0), RangeError);
    assert.throws(() => studentTCdf(NaN, 3), RangeError);
  });
});

describe("summaries and outliers", () => {
  test("the 95 % CI of the mean matches scipy.stats.t.interval", () => {
    const ci = meanConfidenceInterval(A);
    near(ci.low, 19.26670165245124, 1e-12);
    near(ci.high, 22.373298347548754, 1e-12);
    const s = summarize(A);
    assert.equal(s.n, 15);
    assert.equal(s.min, 16.9);
    assert.equal(s.max, 27.5);
    near(s.cv, 2.8048936827317665 / 20.819999999999997);
    near(s.p999, 27.445400000000003);
  });

  test("MAD outliers use the modified z-score", () => {
    // median 10, MAD 1: fences at 10 ± 3.5 / 0.6745 = 10 ± 5.189
    const values = [9, 10, 11, 10, 9, 11, 10, 15.1, 15.3, 4.7];
    const split = madOutliers(values);
    assert.deepEqual(split.outliers, [15.3, 4.7]);
    assert.equal(split.kept.length, 8);
    near(split.highFence, 10 + 3.5 / 0.6745);
    const robust = summarizeRobust(values);
    assert.equal(robust.outliers, 2);
    assert.equal(robust.outliersLow, 1);
    assert.equal(robust.outliersHigh, 1);
    assert.equal(robust.withoutOutliers.n, 8);
    assert.equal(robust.all.n, 10);
    assert.equal(robust.withoutOutliers.max, 15.1);
  });

  test("with MAD = 0 the mean absolute deviation stands in; identical values have no outliers", () => {
    const split = madOutliers([5, 5, 5, 5, 5, 5, 6, 100]);
    assert.deepEqual(split.outliers, [100]);
    assert.deepEqual(madOutliers([2, 2, 2, 2]).outliers, []);
    const robust = summarizeRobust([1, 2, 3]);
    assert.equal(robust.withoutOutliers, robust.all);
  });
});

describe("comparisons", () => {
  test("Welch's t-test matches scipy.stats.ttest_ind(equal_var=False)", () => {
    const r = welchTTest(A, B);
    near(r.t, -2.455356398286006, 1e-12);
    near(r.df, 24.988529290231416, 1e-12);
    near(r.pValue, 0.021378001462866992, 1e-9);
    near(r.difference, mean(A) - mean(B));
    assert.ok(
      r.differenceCi95.low < r.difference &&
        r.difference < r.differenceCi95.high,
    );
    assert.ok(r.differenceCi95.high < 0, "the CI excludes 0 when p < 0.05");
    const r2 = welchTTest(C, D);
    near(r2.t, -1.5654335235985037, 1e-12);
    near(r2.df, 9.904741248650831, 1e-12);
    near(r2.pValue, 0.14884169660532817, 1e-9);
  });

  test("Welch's t-test degenerates cleanly without variance", () => {
    assert.equal(welchTTest([1, 1], [1, 1]).pValue, 1);
    const r = welchTTest([2, 2], [1, 1]);
    assert.equal(r.t, Infinity);
    assert.equal(r.pValue, 0);
  });

  test("Cohen's d uses the pooled standard deviation", () => {
    near(cohensD(A, B), -0.8965693907039232, 1e-12);
    near(cohensD(C, D), -0.8133457272674168, 1e-12);
    assert.ok(Number.isNaN(cohensD([1, 1], [1, 1])));
    assert.equal(cohensD([1, 1], [0, 0]), Infinity);
    assert.equal(effectSizeLabel(-0.9), "large");
    assert.equal(effectSizeLabel(0.6), "medium");
    assert.equal(effectSizeLabel(0.3), "small");
    assert.equal(effectSizeLabel(0.1), "negligible");
    assert.equal(effectSizeLabel(NaN), "undefined");
  });
});

describe("bootstrap interval of a ratio of medians", () => {
  test("it brackets the ratio, is reproducible, and narrows with agreeing processes", () => {
    const a = [6, 6.2, 5.8, 6.1, 5.9];
    const b = [10, 10.5, 9.5, 10.2, 9.8];
    const ci = bootstrapRatioInterval(a, b);
    assert.ok(ci.low <= 0.6 && 0.6 <= ci.high, JSON.stringify(ci));
    assert.ok(ci.low > 0.55 && ci.high < 0.66, JSON.stringify(ci));
    assert.deepEqual(bootstrapRatioInterval(a, b), ci);
    const point = bootstrapRatioInterval([2, 2, 2], [1, 1]);
    assert.deepEqual(point, { low: 2, high: 2 });
    const wide = bootstrapRatioInterval([1, 3, 9], [1, 3, 9]);
    assert.ok(wide.low < 1 && wide.high > 1);
  });

  test("empty, non-finite and bad levels are rejected", () => {
    assert.throws(() => bootstrapRatioInterval([], [1]), RangeError);
    assert.throws(() => bootstrapRatioInterval([1], [NaN]), RangeError);
    assert.throws(
      () => bootstrapRatioInterval([1], [1], { level: 1 }),
      RangeError,
    );
  });
});
