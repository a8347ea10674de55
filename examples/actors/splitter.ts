/**
 * An actor for the K2K batch example: on each message it sends `value`
 * copies of it to the actor `config.target`, straight into that actor's
 * queue. With `tag` 0 it sends them as one batch (`ctx.sendBatch`: one claim,
 * one publication); with `tag` 1 one by one with `ctx.trySend`, which never
 * waits (false when the target's queue is full). It replies with how many
 * the target accepted.
 *
 * @module
 */

import {
  type ActorDefinition,
  defineActor,
  type EchoFields,
} from "../../mod.ts";
import { EchoMessage } from "../../schemas.ts";

/** The splitter actor. */
const splitter: ActorDefinition<EchoFields, EchoFields, { target: string }> =
  defineActor({
    input: EchoMessage,
    output: EchoMessage,
    init: ({ config }) => config as { target: string },
    handle: async (message, ctx) => {
      const copies = Array.from({ length: message.value }, (_, i) => ({
        seq: message.seq * 1000n + BigInt(i),
        value: i,
        tag: message.tag,
      }));
      let accepted = 0;
      if (message.tag === 0) {
        accepted = await ctx.sendBatch(ctx.state.target, copies, {
          timeoutMs: 5_000,
        });
      } else {
        for (const copy of copies) {
          if (ctx.trySend(ctx.state.target, copy)) accepted++;
        }
      }
      return { ...message, tag: accepted };
    },
  });
export default splitter;
