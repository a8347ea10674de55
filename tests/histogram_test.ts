import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  HISTOGRAM_BUCKET_COUNT,
  HISTOGRAM_MAX_VALUE,
  HISTOGRAM_RELATIVE_PRECISION,
  LatencyHistogram,
} from "../src/histogram.ts";
import { RingKernelError } from "../src/errors.ts";

/** Deterministic uniform numbers in [0, 1) (mulberry32). */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The exact nearest-rank percentile of ascending `sorted`. */
function exactPercentile(sorted: readonly number[], p: number): number {
  const exact = (p * sorted.length) / 100;
  const rank = Math.max(1, Math.ceil(exact - exact * 1e-12));
  return sorted[Math.min(rank, sorted.length) - 1];
}

const PERCENTILES = [0, 0.1, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100];

function checkAgainstExact(values: number[], label: string): void {
  const histogram = new LatencyHistogram();
  for (const value of values) histogram.record(value);
  const sorted = values.slice().sort((a, b) => a - b);
  for (const p of PERCENTILES) {
    const exact = exactPercentile(sorted, p);
    const reported = histogram.percentile(p);
    const error = Math.abs(reported - exact) / Math.max(exact, 1);
    assert.ok(
      error <= HISTOGRAM_RELATIVE_PRECISION,
      `${label} p${p}: reported ${reported}, exact ${exact}, error ${error}`,
    );
  }
  assert.equal(histogram.count, values.length);
  assert.equal(histogram.min, sorted[0]);
  assert.equal(histogram.max, sorted[sorted.length - 1]);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  assert.ok(Math.abs(histogram.mean - mean) <= mean * 1e-9);
}

describe("LatencyHistogram", () => {
  test("documents about 1 % precision in fixed memory", () => {
    assert.ok(HISTOGRAM_RELATIVE_PRECISION <= 0.01);
    assert.ok(HISTOGRAM_MAX_VALUE >= 60e9, "covers at least 60 s");
    assert.ok(HISTOGRAM_BUCKET_COUNT < 4096);
  });

  test("is exact for small values", () => {
    const histogram = new LatencyHistogram();
    for (let v = 0; v < 128; v++) histogram.record(v);
    for (let v = 0; v < 128; v++) {
      // Rank v + 1 of 128 values is percentile (v + 1) / 128 * 100.
      assert.equal(histogram.percentile(((v + 1) / 128) * 100), v);
    }
  });

  test("is within the documented precision on log-uniform data, 1 ns to 60 s", () => {
    const next = random(1);
    const values = Array.from(
      { length: 100_000 },
      () => Math.floor(Math.exp(next() * Math.log(60e9))),
    );
    checkAgainstExact(values, "log-uniform");
  });

  test("is within the documented precision on uniform data", () => {
    const next = random(2);
    const values = Array.from(
      { length: 50_000 },
      () => 1 + Math.floor(next() * 5_000_000),
    );
    checkAgainstExact(values, "uniform");
  });

  test("is within the documented precision on a heavy-tailed latency mix", () => {
    const next = random(3);
    const values = Array.from({ length: 50_000 }, () => {
      // Mostly ~1.6 µs, with rare multi-millisecond stalls.
      const base = 1500 + Math.floor(next() * 300);
      return next() < 0.001 ? base * (1000 + Math.floor(next() * 9000)) : base;
    });
    checkAgainstExact(values, "heavy-tailed");
  });

  test("is within the documented precision at every power-of-two boundary", () => {
    const values: number[] = [];
    for (let e = 0; e < 40; e++) {
      const power = 2 ** e;
      values.push(power - 1, power, power + 1);
    }
    const filtered = values.filter((v) => v >= 1);
    for (const value of filtered) checkAgainstExact([value], `single ${value}`);
    checkAgainstExact(filtered, "boundaries");
  });

  test("empty histograms report zeros", () => {
    const histogram = new LatencyHistogram();
    assert.equal(histogram.count, 0);
    assert.equal(histogram.min, 0);
    assert.equal(histogram.max, 0);
    assert.equal(histogram.mean, 0);
    assert.equal(histogram.sum, 0);
    assert.equal(histogram.percentile(50), 0);
    assert.deepEqual(histogram.snapshot(), {
      count: 0,
      min: 0,
      max: 0,
      mean: 0,
      p50: 0,
      p90: 0,
      p99: 0,
      p999: 0,
    });
  });

  test("snapshot matches the individual percentiles", () => {
    const next = random(4);
    const histogram = new LatencyHistogram();
    for (let i = 0; i < 10_000; i++) {
      histogram.record(Math.floor(next() * 1e6));
    }
    const snapshot = histogram.snapshot();
    assert.equal(snapshot.count, 10_000);
    assert.equal(snapshot.min, histogram.min);
    assert.equal(snapshot.max, histogram.max);
    assert.equal(snapshot.mean, histogram.mean);
    assert.equal(snapshot.p50, histogram.percentile(50));
    assert.equal(snapshot.p90, histogram.percentile(90));
    assert.equal(snapshot.p99, histogram.percentile(99));
    assert.equal(snapshot.p999, histogram.percentile(99.9));
    assert.ok(snapshot.p50 <= snapshot.p90);
    assert.ok(snapshot.p90 <= snapshot.p99);
    assert.ok(snapshot.p99 <= snapshot.p999);
    assert.ok(snapshot.p999 <= snapshot.max);
  });

  test("merge equals recording everything into one histogram", () => {
    const next = random(5);
    const all = new LatencyHistogram();
    const left = new LatencyHistogram();
    const right = new LatencyHistogram();
    for (let i = 0; i < 20_000; i++) {
      const value = Math.floor(Math.exp(next() * 20));
      all.record(value);
      (i % 3 === 0 ? left : right).record(value);
    }
    left.merge(right);
    left.merge(new LatencyHistogram());
    assert.deepEqual(left.snapshot(), all.snapshot());
    for (const p of PERCENTILES) {
      assert.equal(left.percentile(p), all.percentile(p));
    }
    // Merging into an empty histogram copies.
    const copy = new LatencyHistogram();
    copy.merge(all);
    assert.deepEqual(copy.snapshot(), all.snapshot());
  });

  test("reset forgets everything", () => {
    const histogram = new LatencyHistogram();
    histogram.record(5);
    histogram.record(5000);
    histogram.reset();
    assert.equal(histogram.count, 0);
    assert.equal(histogram.percentile(99), 0);
    histogram.record(42);
    assert.equal(histogram.min, 42);
    assert.equal(histogram.max, 42);
    assert.equal(histogram.percentile(50), 42);
  });

  test("values beyond the bucketed range keep exact min, max and mean", () => {
    const histogram = new LatencyHistogram();
    const huge = HISTOGRAM_MAX_VALUE * 4;
    histogram.record(huge);
    histogram.record(huge * 2);
    assert.equal(histogram.min, huge);
    assert.equal(histogram.max, huge * 2);
    assert.equal(histogram.mean, huge * 1.5);
    assert.equal(histogram.percentile(100), huge * 2);
    // Every percentile stays within [min, max].
    assert.ok(histogram.percentile(50) >= huge);
  });

  test("fractional values are accepted", () => {
    const histogram = new LatencyHistogram();
    histogram.record(1.5);
    histogram.record(2.25);
    assert.equal(histogram.min, 1.5);
    assert.equal(histogram.max, 2.25);
    assert.equal(histogram.sum, 3.75);
    assert.equal(histogram.percentile(50), 1.5);
  });

  test("rejects bad input with typed errors and records nothing", () => {
    const histogram = new LatencyHistogram();
    for (const bad of [-1, NaN, Infinity, -Infinity]) {
      assert.throws(() => histogram.record(bad), RingKernelError);
    }
    assert.throws(
      () => histogram.record("5" as unknown as number),
      RingKernelError,
    );
    assert.equal(histogram.count, 0);
    for (const bad of [-0.1, 100.1, NaN]) {
      assert.throws(() => histogram.percentile(bad), RingKernelError);
    }
    assert.throws(
      () => histogram.merge({} as LatencyHistogram),
      RingKernelError,
    );
  });
});
