/**
 * The built-in `forwarder` actor: sends every {@linkcode EchoMessage} it
 * receives on to another actor (K2K), named by `config.target` at launch.
 *
 * @module
 */

import { type ActorDefinition, defineActor } from "../actor.ts";
import { RingKernelError } from "../errors.ts";
import { EchoMessage } from "./schemas.ts";

interface ForwarderState {
  target: string;
}

/** The `forwarder` actor's definition. */
const forwarder: ActorDefinition<
  typeof EchoMessage.spec,
  typeof EchoMessage.spec,
  ForwarderState
> = defineActor({
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
});
export default forwarder;
