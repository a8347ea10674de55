/**
 * WaveSim in the benchmark harness: the tile actors (CPU backend, halos by
 * K2K) and the single-threaded reference, timed in the same run on the same
 * grid, in Mcells/s (million cell updates per second), with their ratio.
 *
 * Run: `deno run -A bench/wavesim.ts [--width 1024 --height 1024 --tile 512
 * --steps 300]` or `bun bench/wavesim.ts …`. Prints one JSON line last.
 *
 * @module
 */

import { availableParallelism } from "node:os";
import { RingKernel } from "../mod.ts";
import { DEFAULT_PARAMS } from "../showcases/wavesim/messages.ts";
import { ReferenceWave } from "../showcases/wavesim/reference.ts";
import { startingPulses } from "../showcases/wavesim/server.ts";
import { WaveSimulation } from "../showcases/wavesim/simulation.ts";
import {
  numberArg,
  parseArgs,
  programArgs,
} from "../showcases/shared/serve.ts";

/** One measurement. */
export interface WaveBenchResult {
  /** Grid width × height. */
  grid: string;
  /** Tile actors. */
  tiles: number;
  /** Steps timed (after a warm-up of a tenth as many). */
  steps: number;
  /** The actors' Mcells/s. */
  actorsMcells: number;
  /** The reference's Mcells/s. */
  referenceMcells: number;
  /** actors / reference. */
  ratio: number;
  /** The runtime and the CPUs it had. */
  machine: string;
}

/** Times both on one grid. */
export async function benchWave(
  width: number,
  height: number,
  tile: number,
  steps: number,
): Promise<WaveBenchResult> {
  const pulses = startingPulses(width, height);
  const warm = Math.max(1, Math.floor(steps / 10));
  await using rt = await RingKernel.create({ backend: "cpu" });
  const sim = await WaveSimulation.create({
    runtime: rt,
    width,
    height,
    tile,
    pulses,
  });
  let actorsSeconds: number;
  try {
    await sim.runSteps(warm, { timeoutMs: 600_000 });
    const t0 = performance.now();
    await sim.runSteps(steps, { timeoutMs: 600_000 });
    actorsSeconds = (performance.now() - t0) / 1000;
  } finally {
    await sim.close();
  }
  const ref = new ReferenceWave(width, height, DEFAULT_PARAMS, pulses);
  ref.run(warm);
  const t1 = performance.now();
  ref.run(steps);
  const referenceSeconds = (performance.now() - t1) / 1000;
  const cells = width * height;
  const actorsMcells = (cells * steps) / actorsSeconds / 1e6;
  const referenceMcells = (cells * steps) / referenceSeconds / 1e6;
  const runtime =
    typeof (globalThis as { Bun?: { version: string } }).Bun !== "undefined"
      ? `Bun ${
        (globalThis as unknown as { Bun: { version: string } }).Bun.version
      }`
      : `Deno ${Deno.version.deno}`;
  return {
    grid: `${width}x${height}`,
    tiles: sim.tileCount,
    steps,
    actorsMcells,
    referenceMcells,
    ratio: actorsMcells / referenceMcells,
    machine: `${runtime}, ${availableParallelism()} CPUs`,
  };
}

if (import.meta.main) {
  const args = parseArgs(programArgs());
  const result = await benchWave(
    numberArg(args, "width", 1024),
    numberArg(args, "height", 1024),
    numberArg(args, "tile", 512),
    numberArg(args, "steps", 300),
  );
  console.log(
    `WaveSim ${result.grid}, ${result.tiles} tile actors (CPU backend): ` +
      `${
        result.actorsMcells.toFixed(1)
      } Mcells/s; single-threaded reference: ` +
      `${result.referenceMcells.toFixed(1)} Mcells/s; ratio ${
        result.ratio.toFixed(2)
      }× ` +
      `(${result.machine}). Not comparable with a GPU figure.`,
  );
  console.log(JSON.stringify(result));
}
