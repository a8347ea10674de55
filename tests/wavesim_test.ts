// WaveSim: the tile actors (halos by K2K every step) against the plain
// single-threaded reference, after N steps and after a pulse dropped while
// stopped; pause and resume; the headless mode's figures.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { RingKernel } from "../mod.ts";
import { ReferenceWave } from "../showcases/wavesim/reference.ts";
import { WaveSimulation } from "../showcases/wavesim/simulation.ts";
import { DEFAULT_PARAMS, type Pulse } from "../showcases/wavesim/messages.ts";
import { runHeadless } from "../showcases/wavesim/server.ts";

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

describe("WaveSim", () => {
  let rt: RingKernel;
  before(async () => {
    rt = await RingKernel.create({ backend: "cpu" });
  });
  after(async () => {
    await rt.shutdown({ timeoutMs: 10_000 });
  });

  test("tiles equal the single-threaded reference after N steps, and after a pulse", async () => {
    const width = 70;
    const height = 45;
    const start: Pulse[] = [
      { x: 20, y: 15, amp: 1, radius: 4 },
      { x: 52, y: 30, amp: -0.7, radius: 3 },
    ];
    const sim = await WaveSimulation.create({
      runtime: rt,
      width,
      height,
      tile: 16, // 5 × 3 tiles, the last column and row narrower
      pulses: start,
      prefix: "ref",
    });
    try {
      assert.equal(sim.tileCount, 15);
      const ref = new ReferenceWave(width, height, DEFAULT_PARAMS, start);
      assertClose(await sim.field(), ref.field());

      await sim.runSteps(60);
      ref.run(60);
      const after60 = await sim.field();
      assertClose(after60, ref.field());
      assert.ok(energy(after60) > 0.1, "the waves are still there");

      // A pulse across a tile corner (32, 32) while every tile is at step 60.
      const drop: Pulse = { x: 32, y: 32, amp: 0.8, radius: 3 };
      await sim.pulse(drop);
      ref.pulse(drop);
      await sim.runSteps(40);
      ref.run(40);
      assert.equal(sim.step, 100);
      assertClose(await sim.field(), ref.field());
    } finally {
      await sim.close();
    }
  });

  test("a lone tile runs too (the host drives it in chunks)", async () => {
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
      await sim.runSteps(25);
      ref.run(25);
      assertClose(await sim.field(), ref.field());
    } finally {
      await sim.close();
    }
  });

  test("free run: frames change, pause holds the step, resume goes on", async () => {
    const sim = await WaveSimulation.create({
      runtime: rt,
      width: 96,
      height: 64,
      tile: 32,
      pulses: [{ x: 48, y: 32, amp: 1, radius: 4 }],
      prefix: "free",
    });
    try {
      const first = await sim.frame();
      await sim.start();
      await new Promise((r) => setTimeout(r, 200));
      const second = await sim.frame();
      assert.ok(
        second.step > first.step,
        `step ${second.step} > ${first.step}`,
      );
      assert.notDeepEqual(second.pixels, first.pixels);

      await sim.pause();
      const held = sim.metrics().map((m) => m.state);
      assert.ok(held.every((s) => s === "deactivated"), held.join());
      const processed = sim.metrics().map((m) => m.processed);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(sim.metrics().map((m) => m.processed), processed);

      await sim.resume();
      const third = await sim.frame();
      assert.ok(third.step >= second.step);
      await new Promise((r) => setTimeout(r, 100));
      const fourth = await sim.frame();
      assert.ok(
        fourth.step > third.step,
        `step ${fourth.step} > ${third.step}`,
      );
    } finally {
      await sim.close();
    }
  });

  test("headless mode runs the steps and reports the figures", async () => {
    const lines: string[] = [];
    const figures = await runHeadless({
      width: 128,
      height: 128,
      tile: 64,
      steps: 50,
      verify: true,
      log: (line) => lines.push(line),
    });
    assert.equal(figures.steps, 50);
    assert.equal(figures.tiles, 4);
    assert.ok(figures.mcellsPerSecond > 0);
    assert.equal(figures.matchesReference, true);
    assert.match(lines.join("\n"), /Mcells\/s/);
  });
});
