/**
 * A CPU actor that takes echo messages and sends nothing back: the host →
 * actor throughput case measures the input path alone with it.
 *
 * @module
 */

import { type ActorDefinition, defineActor } from "../../src/actor.ts";
import { EchoMessage } from "../../src/actors/schemas.ts";

/** Handles every message by doing nothing; no output schema, so no replies. */
const sink: ActorDefinition<
  typeof EchoMessage.spec,
  typeof EchoMessage.spec,
  undefined
> = defineActor({
  input: EchoMessage,
  handle: () => undefined,
});
export default sink;
