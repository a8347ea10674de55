// WaveSim on GPU tiles: the same showcase code on the CUDA backend, where each
// tile is a GPU actor (tile_gpu.ts, CUDA C++ compiled by NVRTC, or the
// emulator's g++) that keeps its field in device memory and sends its edges
// to its neighbours with rk_send every step. After N steps, after a pulse
// dropped across a tile corner, and for a lone tile, the field equals the
// single-threaded reference (the check of tests/wavesim_test.ts); the tiles
// pause and resume. Skipped without a GPU (gpu_gate.ts); with
// RINGKERNEL_REQUIRE_GPU=1 it runs and fails without one.
import assert from "node:assert/strict";
import { describe } from "node:test";
import type { CudaActorHost } from "../src/backend/cuda/cuda_actor.ts";
import { Nvrtc } from "../src/backend/cuda/nvrtc.ts";
import { kernelInternals } from "../src/kernel.ts";
import { ReferenceWave } from "../showcases/wavesim/reference.ts";
import { WaveSimulation } from "../showcases/wavesim/simulation.ts";
import { DEFAULT_PARAMS, type Pulse } from "../showcases/wavesim/messages.ts";
import { gpuTest } from "./gpu_gate.ts";
import { withRuntime } from "./helpers.ts";

const TOLERANCE = 1e-5;

function assertClose(actual: Float32Array, expected: Float32Array): void {
  assert.equal(actual.length, expected.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  assert.ok(
    worst <= TOLERANCE,
    `largest difference ${worst} at cell ${at}: ${actual[at]} vs ${
      expected[at]
    }`,
  );
}

function energy(field: Float32Array): number {
  let sum = 0;
  for (const v of field) sum += v * v;
  return sum;
}

const nvrtc = Nvrtc.probe();
const needsNvrtc = {
  skip: nvrtc.available
    ? undefined
    : `libnvrtc not installed: ${nvrtc.reason?.split("\n")[0]}`,
  timeout: 240_000,
};

function hostOf(kernel: Parameters<typeof kernelInternals>[0]): CudaActorHost {
  return kernelInternals(kernel).host as CudaActorHost;
}

const CUDA = { backend: "cuda" } as const;
const WAIT = { timeoutMs: 120_000 };

describe("WaveSim on GPU tile actors", () => {
  gpuTest(
    "GPU tiles equal the single-threaded reference after N steps, and after a pulse",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const width = 40;
        const height = 30;
        const start: Pulse[] = [
          { x: 12, y: 10, amp: 1, radius: 3 },
          { x: 30, y: 20, amp: -0.7, radius: 2.5 },
        ];
        const sim = await WaveSimulation.create({
          runtime: rt,
          width,
          height,
          tile: 16, // 3 × 2 tiles, the last column and row narrower
          pulses: start,
          prefix: "gpu",
        });
        try {
          assert.equal(sim.backend, "cuda");
          assert.equal(sim.tileCount, 6);
          const ref = new ReferenceWave(width, height, DEFAULT_PARAMS, start);
          assertClose(await sim.field(WAIT), ref.field());

          await sim.runSteps(40, WAIT);
          ref.run(40);
          const after40 = await sim.field(WAIT);
          assertClose(after40, ref.field());
          // The same arithmetic in the same order: bit for bit, in fact.
          assert.deepEqual(after40, ref.field());
          assert.ok(energy(after40) > 0.1, "the waves are still there");

          // A pulse across a tile corner (16, 16) while every tile is at step 40.
          const drop: Pulse = { x: 16, y: 16, amp: 0.8, radius: 3 };
          await sim.pulse(drop);
          ref.pulse(drop);
          await sim.runSteps(30, WAIT);
          ref.run(30);
          assert.equal(sim.step, 70);
          assertClose(await sim.field(WAIT), ref.field());

          // Every step's edges went from device to device by rk_send: one
          // per neighbour and step (steps 0..70), none refused.
          const neighbours = [2, 3, 2, 2, 3, 2]; // 3 × 2 tiles
          sim.names.forEach((name, i) => {
            const sends = hostOf(rt.getKernel(name)).deviceSends();
            const expected = 71 * neighbours[i];
            assert.equal(sends.sent, expected, `${name} sent ${sends.sent}`);
            assert.equal(sends.full + sends.unknown + sends.refused, 0);
          });
        } finally {
          await sim.close();
        }
      });
    },
    needsNvrtc,
  );

  gpuTest(
    "a lone GPU tile runs in chunks, and frames come back",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const pulses: Pulse[] = [{ x: 10, y: 8, amp: 1, radius: 2 }];
        const sim = await WaveSimulation.create({
          runtime: rt,
          width: 24,
          height: 20,
          tile: 64,
          pulses,
          prefix: "lone",
        });
        try {
          const ref = new ReferenceWave(24, 20, DEFAULT_PARAMS, pulses);
          const first = await sim.frame(WAIT);
          await sim.runSteps(100, WAIT); // more than one chunk of 64
          ref.run(100);
          assertClose(await sim.field(WAIT), ref.field());
          const second = await sim.frame(WAIT);
          assert.equal(second.step, 100);
          assert.notDeepEqual(second.pixels, first.pixels);
        } finally {
          await sim.close();
        }
      });
    },
    needsNvrtc,
  );

  gpuTest(
    "free run on the device: pause holds the step, resume goes on",
    async () => {
      await withRuntime(CUDA, async (rt) => {
        const sim = await WaveSimulation.create({
          runtime: rt,
          width: 32,
          height: 16,
          tile: 16,
          pulses: [{ x: 16, y: 8, amp: 1, radius: 3 }],
          prefix: "free",
        });
        try {
          const first = await sim.frame(WAIT);
          await sim.start();
          await new Promise((r) => setTimeout(r, 300));
          const second = await sim.frame(WAIT);
          assert.ok(
            second.step > first.step,
            `step ${second.step} > ${first.step}`,
          );
          await sim.pause();
          const processed = sim.metrics().map((m) => m.processed);
          await new Promise((r) => setTimeout(r, 200));
          assert.deepEqual(sim.metrics().map((m) => m.processed), processed);
          await sim.resume();
          const third = await sim.frame(WAIT);
          await new Promise((r) => setTimeout(r, 300));
          const fourth = await sim.frame(WAIT);
          assert.ok(
            fourth.step > third.step,
            `step ${fourth.step} > ${third.step}`,
          );
        } finally {
          await sim.close();
        }
      });
    },
    needsNvrtc,
  );
});
