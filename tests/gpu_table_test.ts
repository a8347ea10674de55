// The GPU table's target check (bench/gpu_table.ts targetsOf) over tables
// written by hand: met, not met, and a failed section.
import assert from "node:assert/strict";
import { test } from "node:test";
import { targetsOf } from "../bench/gpu_table.ts";

test("targets: each figure against its target; a failed section has no verdict", () => {
  const targets = targetsOf({
    roundTrip: {
      residentRoundTripRawQueues: { p50Ns: 1_570 },
      residentRoundTripCall: { p50Ns: 2_400 },
    },
    ratios: { launchPerMessageOverResidentP50: 6.2 },
    hostToGpu64B: { error: "TimeoutError: no reply" },
    injection: { tryEnqueue64BNs: 24.5 },
  });
  assert.deepEqual(targets.roundTripRawQueuesP50, {
    target: "round trip host → resident actor → host, p50 ≤ 2 µs",
    measured: "1.57 µs",
    met: true,
  });
  assert.equal(targets.roundTripCallP50.met, false);
  assert.equal(targets.roundTripCallP50.measured, "2.40 µs");
  assert.equal(targets.roundTripVsLaunchSync.met, true);
  assert.deepEqual(targets.hostToGpuSendBatch, {
    target: "64 B messages host → GPU ≥ 40 Mmsg/s (sendBatch)",
  });
  assert.equal(targets.injectionTryEnqueue.met, true);
  assert.equal(targets.injectionTryEnqueue.measured, "24.5 ns");
});
