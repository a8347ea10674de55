/**
 * The built-in `saxpy` actor: replies with `a * x + y` for the vectors in each
 * request (single-precision, like the GPU actor).
 *
 * @module
 */

import { type ActorDefinition, defineActor } from "../actor.ts";
import { SAXPY_LANES, SaxpyRequest, SaxpyResult } from "./schemas.ts";

/** The `saxpy` actor's definition. */
const saxpy: ActorDefinition<
  typeof SaxpyRequest.spec,
  typeof SaxpyResult.spec,
  undefined
> = defineActor({
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
});
export default saxpy;
