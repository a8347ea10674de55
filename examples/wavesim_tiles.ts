/**
 * WaveSim without its page: the 2-D wave equation on a grid of tile actors
 * that exchange their edges by K2K every step — GPU tile actors (CUDA C++,
 * `rk_send`) when CUDA and libnvrtc are usable, CPU tile actors otherwise,
 * the same code — compared with the single-threaded reference afterwards.
 * The live page: `deno task showcase:wavesim`.
 *
 * Run: `deno run -A examples/wavesim_tiles.ts` or `bun examples/wavesim_tiles.ts`
 *
 * @module
 */

import type { BackendRequest } from "../mod.ts";
import {
  type HeadlessFigures,
  runHeadless,
} from "../showcases/wavesim/server.ts";

/** Runs 100 steps on a 96×64 grid of 32-cell tiles on `backend` (default `"auto"`). */
export async function main(
  backend: BackendRequest = "auto",
): Promise<HeadlessFigures> {
  return await runHeadless({
    width: 96,
    height: 64,
    tile: 32,
    steps: 100,
    verify: true,
    backend,
  });
}

if (import.meta.main) await main();
