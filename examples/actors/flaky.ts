/**
 * An actor for the supervision example: echoes, counting the messages this
 * incarnation handled in `tag`, and throws on a negative value.
 *
 * @module
 */

import {
  type ActorDefinition,
  defineActor,
  type EchoFields,
} from "../../mod.ts";
import { EchoMessage } from "../../schemas.ts";

/** The flaky actor. */
const flaky: ActorDefinition<EchoFields, EchoFields, { handled: number }> =
  defineActor({
    input: EchoMessage,
    output: EchoMessage,
    init: () => ({ handled: 0 }),
    handle: (message, ctx) => {
      if (message.value < 0) throw new Error(`negative value ${message.value}`);
      ctx.state.handled++;
      return { ...message, tag: ctx.state.handled };
    },
  });
export default flaky;
