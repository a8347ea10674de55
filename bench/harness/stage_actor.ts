/**
 * A CPU actor that forwards every echo message to the actor named in its
 * config (`{ next }`) with `ctx.trySend`, falling back to `ctx.send` (which
 * waits for room) only when the next inbox is full: a stage of the K2K
 * pipeline case, synchronous while there is room.
 *
 * @module
 */

import { type ActorDefinition, defineActor } from "../../src/actor.ts";
import { EchoMessage } from "../../src/actors/schemas.ts";

type Echo = typeof EchoMessage.spec;

function ignore(): void {}

/** Forwards each message to `config.next`; replies nothing. */
const stage: ActorDefinition<Echo, Echo, { next: string }> = defineActor({
  input: EchoMessage,
  output: EchoMessage,
  init: ({ config }) => config as { next: string },
  handle: (message, ctx) => {
    const next = ctx.state.next;
    if (!ctx.trySend(next, message)) {
      return ctx.send(next, message, { timeoutMs: 30_000 }).then(ignore);
    }
  },
});
export default stage;
