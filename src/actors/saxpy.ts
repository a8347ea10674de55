/**
 * The built-in `saxpy` actor: replies with `a * x + y` for the vectors in each
 * request, in single precision like the bundle's `saxpy` handler, which it
 * runs on the CUDA backend.
 *
 * @module
 */

import type { ActorDefinition } from "../actor.ts";
import { defineGpuActor } from "../backend/cuda/gpu_actor.ts";
import { SAXPY_LANES, SaxpyRequest, SaxpyResult } from "./schemas.ts";

/** The `saxpy` actor's definition. */
const saxpy: ActorDefinition<
  typeof SaxpyRequest.spec,
  typeof SaxpyResult.spec,
  undefined
> = defineGpuActor({
  input: SaxpyRequest,
  output: SaxpyResult,
  handle: (message) => {
    const out = new Float32Array(SAXPY_LANES);
    const a = Math.fround(message.a);
    for (let i = 0; i < SAXPY_LANES; i++) {
      out[i] = Math.fround(a * message.x[i]) + message.y[i];
    }
    return { out };
  },
  gpu: { source: { builtin: "saxpy" } },
});
export default saxpy;
