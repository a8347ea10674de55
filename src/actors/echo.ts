/**
 * The built-in `echo` actor: replies to every {@linkcode EchoMessage} with the
 * same message. On the CUDA backend it runs the bundle's `echo` handler.
 *
 * @module
 */

import type { ActorDefinition } from "../actor.ts";
import { defineGpuActor } from "../backend/cuda/gpu_actor.ts";
import { EchoMessage } from "./schemas.ts";

/** The `echo` actor's definition. */
const echo: ActorDefinition<
  typeof EchoMessage.spec,
  typeof EchoMessage.spec,
  undefined
> = defineGpuActor({
  input: EchoMessage,
  output: EchoMessage,
  handle: (message) => message,
  gpu: { source: { builtin: "echo" } },
});
export default echo;
