/**
 * The built-in `echo` actor: replies to every {@linkcode EchoMessage} with the
 * same message.
 *
 * @module
 */

import { type ActorDefinition, defineActor } from "../actor.ts";
import { EchoMessage } from "./schemas.ts";

/** The `echo` actor's definition. */
const echo: ActorDefinition<
  typeof EchoMessage.spec,
  typeof EchoMessage.spec,
  undefined
> = defineActor({
  input: EchoMessage,
  output: EchoMessage,
  handle: (message) => message,
});
export default echo;
