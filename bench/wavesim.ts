/**
 * WaveSim in the benchmark harness: the tile actors (halos by K2K; GPU
 * tiles when CUDA is usable, CPU tiles otherwise, or `--backend cpu|cuda`)
 * and the single-threaded reference, timed in the same run on the same grid,
 * in Mcells/s (million cell updates per second), with their ratio. The
 * specification's Rust project reports 78,000 Mcells/s for its 3-D version
 * on an H100: a figure of GPU tiles on a GPU is comparable with it, a CPU
 * figure is not (and GPU tiles on the CPU emulator of the driver mean
 * nothing).
 *
 * Run: `deno run -A bench/wavesim.ts [--width 1024 --height 1024 --tile 512
 * --steps 300]` or `bun bench/wavesim.ts …`. Prints one JSON line last.
 *
 * @module
 */

import { availableParallelism } from "node:os";
import type { BackendRequest } from "../mod.ts";
import { DEFAULT_PARAMS } from "../showcases/wavesim/messages.ts";
import { ReferenceWave } from "../showcases/wavesim/reference.ts";
import { startingPulses } from "../showcases/wavesim/server.ts";
import {
  createWaveRuntime,
  WaveSimulation,
} from "../showcases/wavesim/simulation.ts";
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
  /** The backend the tiles ran on (`"cpu"` or `"cuda"`). */
  backend: string;
  /** Steps timed (after a warm-up of a tenth as many). */
  steps: number;
  /** The actors' Mcells/s. */
  actorsMcells: number;
  /** The reference's Mcells/s. */
  referenceMcells: number;
  /** actors / reference. */
  ratio: number;
  /** Largest difference of the actors' field from the reference's afterwards. */
  maxDifference: number;
  /** The runtime and the CPUs it had. */
  machine: string;
}

/** Options of {@linkcode benchWave}. */
export interface WaveBenchOptions {
  /** Grid width (default 1024). */
  width?: number;
  /** Grid height (default 1024). */
  height?: number;
  /** Tile side (default 512). */
  tile?: number;
  /** Steps to time (default 300). */
  steps?: number;
  /** The backend (default `"auto"`: GPU tiles when they can run). */
  backend?: BackendRequest;
}

/** Times both on one grid, then compares their fields. */
export async function benchWave(
  options: WaveBenchOptions = {},
): Promise<WaveBenchResult> {
  const {
    width = 1024,
    height = 1024,
    tile = 512,
    steps = 300,
  } = options;
  const pulses = startingPulses(width, height);
  const warm = Math.max(1, Math.floor(steps / 10));
  await using rt = await createWaveRuntime({ backend: options.backend });
  const sim = await WaveSimulation.create({
    runtime: rt,
    width,
    height,
    tile,
    pulses,
  });
  let actorsSeconds: number;
  let field: Float32Array;
  try {
    await sim.runSteps(warm, { timeoutMs: 600_000 });
    const t0 = performance.now();
    await sim.runSteps(steps, { timeoutMs: 600_000 });
    actorsSeconds = (performance.now() - t0) / 1000;
    field = await sim.field({ timeoutMs: 60_000 });
  } finally {
    await sim.close();
  }
  const ref = new ReferenceWave(width, height, DEFAULT_PARAMS, pulses);
  ref.run(warm);
  const t1 = performance.now();
  ref.run(steps);
  const referenceSeconds = (performance.now() - t1) / 1000;
  const expected = ref.field();
  let maxDifference = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(field[i] - expected[i]);
    if (!(d <= maxDifference)) maxDifference = d;
  }
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
    backend: sim.backend,
    steps,
    actorsMcells,
    referenceMcells,
    ratio: actorsMcells / referenceMcells,
    maxDifference,
    machine: `${runtime}, ${availableParallelism()} CPUs`,
  };
}

if (import.meta.main) {
  const args = parseArgs(programArgs());
  const result = await benchWave({
    width: numberArg(args, "width", 1024),
    height: numberArg(args, "height", 1024),
    tile: numberArg(args, "tile", 512),
    steps: numberArg(args, "steps", 300),
    backend: typeof args.backend === "string"
      ? args.backend as BackendRequest
      : "auto",
  });
  const comparable = result.backend === "cuda"
    ? "GPU tiles: comparable with the specification's 78,000 Mcells/s (3-D, H100) only on a real GPU, not on the emulator"
    : "CPU tiles: not comparable with the specification's 78,000 Mcells/s (3-D, H100)";
  console.log(
    `WaveSim ${result.grid}, ${result.tiles} tile actors (${result.backend} backend): ` +
      `${
        result.actorsMcells.toFixed(1)
      } Mcells/s; single-threaded reference: ` +
      `${result.referenceMcells.toFixed(1)} Mcells/s; ratio ${
        result.ratio.toFixed(2)
      }× (${result.machine}); largest difference from the reference ${result.maxDifference}. ` +
      `${comparable}.`,
  );
  console.log(JSON.stringify(result));
}
