/**
 * Actor groups: `rt.launchGroup` starts several actors in one step — on the
 * CUDA backend ONE pool kernel with a block per actor, admitted as a whole
 * (one member that fails to start fails the group); on the CPU backend
 * actor by actor. Afterwards each member is an ordinary kernel: here one is
 * terminated alone while the others go on.
 *
 * Run: `deno run -A examples/actor_group.ts` or `bun examples/actor_group.ts`
 *
 * @module
 */

import {
  type BackendRequest,
  type EchoFields,
  type Kernel,
  RingKernel,
} from "../mod.ts";

/** What the example did, for its test. */
export interface ActorGroupResult {
  /** The backend that ran it. */
  backend: string;
  /** The members' names, in launch order. */
  members: string[];
  /** Each member's reply to one call (value × 1, echoed). */
  echoed: number[];
  /** Each member's state after the first was terminated. */
  states: string[];
}

/** Runs the example on `backend` (default `"auto"`). */
export async function main(
  backend: BackendRequest = "auto",
): Promise<ActorGroupResult> {
  await using rt = await RingKernel.create({ backend, quiet: true });
  const group = await rt.launchGroup(
    [0, 1, 2, 3].map((i) => ({
      name: `worker-${i}`,
      options: { actor: "echo" as const, queueCapacity: 64 },
    })),
  ) as Kernel<EchoFields, EchoFields>[];
  const echoed: number[] = [];
  for (const [i, member] of group.entries()) {
    const reply = await member.call({ seq: BigInt(i), value: i * 10, tag: i }, {
      timeoutMs: 10_000,
    });
    echoed.push(reply.value);
  }
  // A member has a life of its own: terminate one, the others run on.
  await group[0].terminate({ timeoutMs: 10_000 });
  await group[1].call({ seq: 9n, value: 9, tag: 9 }, { timeoutMs: 10_000 });
  const states = group.map((member) => member.state);

  console.log(`backend: ${rt.backend}`);
  console.log(
    `group of ${group.length}: ${group.map((m) => m.name).join(", ")}`,
  );
  console.log(`echoed: ${echoed.join(", ")}`);
  console.log(`after terminating worker-0: ${states.join(", ")}`);
  return {
    backend: rt.backend,
    members: group.map((m) => m.name),
    echoed,
    states,
  };
}

if (import.meta.main) await main();
