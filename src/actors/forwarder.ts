/**
 * The built-in `forwarder` actor: sends every {@linkcode EchoMessage} it
 * receives on to another actor (K2K), named by `config.target` at launch. On
 * the CUDA backend the bundle's `forwarder` handler does it on the device,
 * with the target's route key in its configuration.
 *
 * @module
 */

import type { ActorDefinition } from "../actor.ts";
import { defineGpuActor } from "../backend/cuda/gpu_actor.ts";
import { RingKernelError } from "../errors.ts";
import { EchoMessage } from "./schemas.ts";
import { encodeTargetConfig } from "./target_config.ts";

interface ForwarderState {
  target: string;
}

/** The `forwarder` actor's definition. */
const forwarder: ActorDefinition<
  typeof EchoMessage.spec,
  typeof EchoMessage.spec,
  ForwarderState
> = defineGpuActor({
  input: EchoMessage,
  output: EchoMessage,
  init: ({ config }): ForwarderState => {
    const target = (config as { target?: unknown } | undefined)?.target;
    if (typeof target !== "string" || target.length === 0) {
      throw new RingKernelError(
        `forwarder needs config.target, the name of the next actor`,
      );
    }
    return { target };
  },
  handle: async (message, ctx) => {
    await ctx.send(ctx.state.target, message);
  },
  gpu: {
    source: { builtin: "forwarder" },
    encodeConfig: (config, { nameHash }) =>
      encodeTargetConfig(config, nameHash, true),
  },
});
export default forwarder;
