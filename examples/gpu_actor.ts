/**
 * Your own GPU actor: `actors/fahrenheit.ts` declares a handler in CUDA C++
 * (compiled at launch by libnvrtc) and the same handler in TypeScript for the
 * CPU backend. This launches it on the backend `"auto"` picks, sends a batch
 * of readings and collects the conversions.
 *
 * Run: `deno run -A examples/gpu_actor.ts` or `bun examples/gpu_actor.ts`
 * (on the CUDA backend it needs libnvrtc; without it, use `"cpu"`).
 *
 * @module
 */

import { type BackendRequest, RingKernel } from "../mod.ts";
import type { Converted, Reading } from "./actors/fahrenheit.ts";

/** What the example did, for its test. */
export interface GpuActorResult {
  /** The backend that ran it. */
  backend: string;
  /** The conversions, in the order of the readings. */
  converted: { sensor: number; fahrenheit: number; hot: boolean }[];
}

/** Runs the example on `backend` (default `"auto"`). */
export async function main(
  backend: BackendRequest = "auto",
): Promise<GpuActorResult> {
  await using rt = await RingKernel.create({ backend });
  const thermometer = await rt.launch<
    typeof Reading.spec,
    typeof Converted.spec
  >(
    "thermometer",
    { actor: { module: new URL("./actors/fahrenheit.ts", import.meta.url) } },
  );

  const celsius = [-40, 0, 21.5, 37, 41, 100];
  await thermometer.sendBatch(
    celsius.map((value, sensor) => ({ sensor, celsius: value })),
  );
  const converted = [];
  for (let i = 0; i < celsius.length; i++) {
    converted.push(await thermometer.receive({ timeoutMs: 10_000 }));
  }

  console.log(`backend: ${rt.backend}`);
  for (const { sensor, fahrenheit, hot } of converted) {
    console.log(
      `sensor ${sensor}: ${celsius[sensor]} °C = ${fahrenheit} °F${
        hot ? " (hot)" : ""
      }`,
    );
  }
  return { backend: rt.backend, converted };
}

if (import.meta.main) await main();
