import { test } from "node:test";
import assert from "node:assert/strict";
import { runSoak, type SoakSample } from "../scripts/soak.ts";

// A short version of `scripts/soak.ts --seconds 60`.
test(
  "a few seconds of sustained load: everything sent is processed and replied to",
  {
    timeout: 120_000,
  },
  async () => {
    const seen: SoakSample[] = [];
    const report = await runSoak({
      seconds: 3,
      actors: 1,
      queueCapacity: 256,
      onSample: (s) => seen.push(s),
    });
    assert.ok(report.processed > 0);
    assert.equal(report.hostSent, report.sent);
    assert.equal(report.sent, report.processed + report.deadLettered);
    assert.equal(report.deadLettered, 0);
    assert.equal(report.inFlight, 0);
    assert.equal(report.replies, report.processed);
    assert.equal(report.accountingHolds, true);
    assert.ok(report.samples.length >= 1);
    assert.deepEqual(seen, report.samples);
    for (const s of report.samples) {
      assert.ok(s.rssMB > 0 && s.heapMB > 0);
      assert.ok(Number.isFinite(s.processedPerSecond));
    }
    assert.ok(Number.isFinite(report.rssSlopeMBPerMin));
    assert.ok(Number.isFinite(report.heapSlopeMBPerMin));
    assert.ok(Number.isFinite(report.medianSlopeMBPerMin.rss));
    assert.ok(Number.isFinite(report.medianSlopeMBPerMin.heap));
  },
);

test("bad soak options are refused", async () => {
  await assert.rejects(runSoak({ seconds: 0 }), RangeError);
  await assert.rejects(runSoak({ seconds: 1, actors: 0 }), RangeError);
});
