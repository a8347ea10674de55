// The process's device session (src/backend/cuda/device_session.ts) over a
// fake libcuda; on a GPU or the CPU emulator of the driver:
// tests/device_session_gpu_test.ts.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DeviceSession } from "../src/backend/cuda/device_session.ts";
import {
  POOL_SHARED_BYTES,
  POOL_THREADS,
} from "../src/backend/cuda/pool_layout.ts";
import { GpuResidencyError } from "../src/errors.ts";
import { FakeLibcuda } from "./fixtures/fake_libcuda.ts";
import { thrown } from "./helpers.ts";

describe("the device session over a fake driver", () => {
  test("a device keeps at most 128 grids resident: the 129th launch is refused up front", () => {
    const cuda = new FakeLibcuda();
    const session = DeviceSession.acquire({
      driver: { library: cuda },
      reserve: false,
    });
    try {
      const fn = session.poolFunction;
      let running = true;
      const admit = (stopped: () => boolean) =>
        session.admit({
          fn,
          blocks: 1,
          threads: POOL_THREADS,
          sharedBytes: POOL_SHARED_BYTES,
          stopped,
        });
      const tokens = Array.from({ length: 128 }, () => admit(() => !running));
      assert.equal(session.residency().grids, 128);
      const refused = thrown(() => admit(() => false));
      assert.ok(refused instanceof GpuResidencyError);
      assert.equal(refused.limit, "grids");
      assert.match(refused.message, /at most|the most a device keeps/);
      // A refused launch is not counted; ended ones are forgotten.
      assert.equal(session.residency().grids, 128);
      tokens[0].cancel();
      assert.equal(session.residency().grids, 127);
      running = false;
      assert.equal(session.residency().grids, 0);
    } finally {
      session.release();
    }
    assert.deepEqual(cuda.violations, []);
  });
});
