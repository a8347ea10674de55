/**
 * The built-in actors, by name. Each is a module of this folder whose
 * definition holds both its CPU handler and its GPU side (a handler of the
 * kernel bundle, declared with `defineGpuActor` like a user's GPU actor),
 * with the same message schemas (`schemas.ts`). The `reduce` actor
 * (`reduce.ts`) lives here too, launched by its module.
 *
 * @module
 */

/** What the runtime needs to launch a built-in actor. */
export interface BuiltinActor {
  /** URL of the CPU actor's module. */
  readonly module: string;
  /** Smallest slot size its messages need. */
  readonly slotSize: number;
  /** What it does, in a line. */
  readonly description: string;
}

/** Names of the built-in actors. */
export type BuiltinActorName = "echo" | "accumulator" | "saxpy" | "forwarder";

/** Every built-in actor. */
export const BUILTIN_ACTORS: Readonly<Record<BuiltinActorName, BuiltinActor>> =
  Object.freeze({
    echo: {
      module: new URL("./echo.ts", import.meta.url).href,
      slotSize: 64,
      description: "replies with the message it received",
    },
    accumulator: {
      module: new URL("./accumulator.ts", import.meta.url).href,
      slotSize: 64,
      description: "adds each value to a running total and replies with it",
    },
    saxpy: {
      module: new URL("./saxpy.ts", import.meta.url).href,
      slotSize: 256,
      description: "replies with a*x + y over 16 single-precision lanes",
    },
    forwarder: {
      module: new URL("./forwarder.ts", import.meta.url).href,
      slotSize: 64,
      description:
        "forwards each message to the actor named by config.target (K2K)",
    },
  });

/** True when `name` is a built-in actor's name. */
export function isBuiltinActor(name: string): name is BuiltinActorName {
  return Object.hasOwn(BUILTIN_ACTORS, name);
}
