import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  compareHlc,
  DEFAULT_MAX_SKEW_MS,
  HLC_MAX_LOGICAL,
  HLC_MAX_PHYSICAL_MS,
  type HlcTimestamp,
  HybridClock,
  packHlc,
  readHlc,
  unpackHlc,
  writeHlc,
} from "../src/hlc.ts";
import { ClockSkewError } from "../src/errors.ts";
import { Prng } from "./workers/prng.ts";

/** A physical clock the test moves by hand. */
function manualTime(
  start: number,
): { now: () => number; set: (ms: number) => void } {
  let t = start;
  return { now: () => t, set: (ms) => (t = ms) };
}

describe("HybridClock", () => {
  test("follows physical time and counts within one millisecond", () => {
    const time = manualTime(1000);
    const clock = new HybridClock({ nodeId: 3, physicalTime: time.now });
    assert.deepEqual(clock.now(), { physicalMs: 1000, logical: 0, nodeId: 3 });
    assert.deepEqual(clock.now(), { physicalMs: 1000, logical: 1, nodeId: 3 });
    time.set(1005);
    assert.deepEqual(clock.now(), { physicalMs: 1005, logical: 0, nodeId: 3 });
    time.set(900); // physical time went backwards: the clock does not
    assert.deepEqual(clock.now(), { physicalMs: 1005, logical: 1, nodeId: 3 });
    assert.deepEqual(clock.peek(), { physicalMs: 1005, logical: 1, nodeId: 3 });
  });

  test("readings are strictly increasing under random physical time", () => {
    const rng = new Prng(1);
    let t = 1_700_000_000_000;
    const clock = new HybridClock({ physicalTime: () => t });
    let last = clock.now();
    for (let i = 0; i < 20_000; i++) {
      t += rng.int(-5, 5);
      const next = rng.chance(0.3)
        ? clock.update({
          physicalMs: t + rng.int(-100, 100),
          logical: rng.int(0, 65535),
          nodeId: 9,
        })
        : clock.now();
      assert.ok(compareHlc(next, last) > 0, `reading ${i} did not advance`);
      last = next;
    }
  });

  test("a receive is ordered after its send (causality across nodes)", () => {
    const rng = new Prng(2);
    const base = 1_700_000_000_000;
    const offsets = [0, 40, -30]; // three nodes with skewed physical clocks
    const times = offsets.map((o) => base + o);
    const clocks = offsets.map((_, i) =>
      new HybridClock({ nodeId: i, physicalTime: () => times[i] })
    );
    const history: HlcTimestamp[][] = clocks.map(() => []);
    for (let step = 0; step < 5000; step++) {
      for (let i = 0; i < times.length; i++) times[i] += rng.int(0, 2);
      const from = rng.int(0, 2);
      const to = (from + rng.int(1, 2)) % 3;
      const sent = clocks[from].now();
      const received = clocks[to].update(sent);
      assert.ok(
        compareHlc(received, sent) > 0,
        `step ${step}: receive not after send`,
      );
      for (const [node, ts] of [[from, sent], [to, received]] as const) {
        const seen = history[node];
        if (seen.length) assert.ok(compareHlc(ts, seen[seen.length - 1]) > 0);
        seen.push(ts);
      }
    }
  });

  test("update rejects a timestamp too far ahead and stays unchanged", () => {
    const time = manualTime(10_000_000);
    const clock = new HybridClock({ physicalTime: time.now });
    assert.equal(clock.maxSkewMs, DEFAULT_MAX_SKEW_MS);
    const before = clock.now();
    const ahead = {
      physicalMs: 10_000_000 + DEFAULT_MAX_SKEW_MS + 1,
      logical: 0,
      nodeId: 1,
    };
    assert.throws(() => clock.update(ahead), (error: unknown) => {
      assert.ok(error instanceof ClockSkewError);
      assert.equal(error.skewMs, DEFAULT_MAX_SKEW_MS + 1);
      assert.equal(error.maxSkewMs, DEFAULT_MAX_SKEW_MS);
      return true;
    });
    assert.deepEqual(clock.peek(), before);
    const edge = clock.update({
      ...ahead,
      physicalMs: 10_000_000 + DEFAULT_MAX_SKEW_MS,
    });
    assert.equal(edge.physicalMs, 10_000_000 + DEFAULT_MAX_SKEW_MS);
    const strict = new HybridClock({ physicalTime: time.now, maxSkewMs: 5 });
    assert.throws(
      () => strict.update({ physicalMs: 10_000_006, logical: 0, nodeId: 0 }),
      ClockSkewError,
    );
    // Far behind is fine: old messages are ordinary.
    const strictBefore = strict.now();
    assert.ok(
      compareHlc(
        strict.update({ physicalMs: 1, logical: 0, nodeId: 0 }),
        strictBefore,
      ) > 0,
    );
  });

  test("logical overflow carries into the physical component", () => {
    const clock = new HybridClock({ physicalTime: () => 500 });
    let last = clock.now();
    for (let i = 0; i < HLC_MAX_LOGICAL + 10; i++) {
      const next = clock.now();
      assert.ok(compareHlc(next, last) > 0);
      assert.ok(next.logical <= HLC_MAX_LOGICAL);
      packHlc(next);
      last = next;
    }
    assert.equal(last.physicalMs, 501);
    const merged = clock.update({
      physicalMs: 501,
      logical: HLC_MAX_LOGICAL,
      nodeId: 1,
    });
    assert.deepEqual([merged.physicalMs, merged.logical], [502, 0]);
  });

  test("rejects bad options and bad inputs", () => {
    assert.throws(() => new HybridClock({ nodeId: -1 }), RangeError);
    assert.throws(() => new HybridClock({ maxSkewMs: -1 }), RangeError);
    assert.throws(
      () => new HybridClock({ physicalTime: () => 1.5 }).now(),
      RangeError,
    );
    assert.throws(
      () => new HybridClock({ physicalTime: () => NaN }).now(),
      RangeError,
    );
    const clock = new HybridClock();
    assert.throws(
      () => clock.update({ physicalMs: 1, logical: 70000, nodeId: 0 }),
      RangeError,
    );
    assert.throws(
      () => clock.update({ physicalMs: -1, logical: 0, nodeId: 0 }),
      RangeError,
    );
  });

  test("the default physical time source is the wall clock", () => {
    const before = Date.now();
    const ts = new HybridClock().now();
    assert.ok(ts.physicalMs >= before && ts.physicalMs <= Date.now());
  });
});

describe("ordering and packing", () => {
  test("compareHlc orders by physical, logical, then node id", () => {
    const a = { physicalMs: 1, logical: 5, nodeId: 9 };
    assert.ok(compareHlc(a, { physicalMs: 2, logical: 0, nodeId: 0 }) < 0);
    assert.ok(compareHlc(a, { physicalMs: 1, logical: 6, nodeId: 0 }) < 0);
    assert.ok(compareHlc(a, { physicalMs: 1, logical: 5, nodeId: 10 }) < 0);
    assert.ok(compareHlc(a, { physicalMs: 1, logical: 5, nodeId: 8 }) > 0);
    assert.equal(compareHlc(a, { ...a }), 0);
  });

  test("pack/unpack and write/read round-trip, and packed order matches", () => {
    const rng = new Prng(3);
    const view = new DataView(new ArrayBuffer(16));
    const edges = [
      { physicalMs: 0, logical: 0, nodeId: 0 },
      { physicalMs: HLC_MAX_PHYSICAL_MS, logical: HLC_MAX_LOGICAL, nodeId: 7 },
      { physicalMs: 2 ** 32, logical: 1, nodeId: 0 },
    ];
    let previous: HlcTimestamp | undefined;
    for (let i = 0; i < 5000; i++) {
      const ts = i < edges.length ? edges[i] : {
        physicalMs: rng.int(0, HLC_MAX_PHYSICAL_MS),
        logical: rng.int(0, HLC_MAX_LOGICAL),
        nodeId: 5,
      };
      const packed = packHlc(ts);
      assert.equal(packed, (BigInt(ts.physicalMs) << 16n) + BigInt(ts.logical));
      assert.deepEqual(unpackHlc(packed, ts.nodeId), ts);
      writeHlc(view, 4, ts);
      assert.equal(view.getBigUint64(4, true), packed);
      assert.deepEqual(readHlc(view, 4, ts.nodeId), ts);
      if (previous) {
        const order = Math.sign(
          compareHlc(ts, { ...previous, nodeId: ts.nodeId }),
        );
        const packedOrder = packed === packHlc(previous)
          ? 0
          : packed > packHlc(previous)
          ? 1
          : -1;
        assert.equal(packedOrder, order);
      }
      previous = ts;
    }
  });

  test("packing rejects values outside 48 + 16 bits", () => {
    const view = new DataView(new ArrayBuffer(8));
    for (
      const bad of [
        { physicalMs: 2 ** 48, logical: 0, nodeId: 0 },
        { physicalMs: -1, logical: 0, nodeId: 0 },
        { physicalMs: 1.5, logical: 0, nodeId: 0 },
        { physicalMs: 1, logical: 65536, nodeId: 0 },
        { physicalMs: 1, logical: -1, nodeId: 0 },
      ]
    ) {
      assert.throws(() => packHlc(bad), RangeError);
      assert.throws(() => writeHlc(view, 0, bad), RangeError);
    }
  });

  test("writeNow ticks and writes the packed reading", () => {
    const time = manualTime(123_456);
    const clock = new HybridClock({ nodeId: 2, physicalTime: time.now });
    const view = new DataView(new ArrayBuffer(8));
    clock.writeNow(view, 0);
    clock.writeNow(view, 0);
    assert.deepEqual(readHlc(view, 0, 2), {
      physicalMs: 123_456,
      logical: 1,
      nodeId: 2,
    });
    assert.deepEqual(clock.peek(), {
      physicalMs: 123_456,
      logical: 1,
      nodeId: 2,
    });
  });
});
