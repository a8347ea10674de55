/**
 * Dispatch by key: a `KeyedGroup` over a group of accumulators sends each
 * message to the member its key picks (FNV-1a 64 of the key, modulo the
 * group's size — the hash `rk_fnv1a64` computes on the device), so all the
 * readings of one sensor add up in the same member.
 *
 * Run: `deno run -A examples/keyed_group.ts` or `bun examples/keyed_group.ts`
 *
 * @module
 */

import {
  type AccumulatorAddFields,
  type AccumulatorTotalFields,
  type BackendRequest,
  type Kernel,
  KeyedGroup,
  memberIndexForKey,
  RingKernel,
} from "../mod.ts";

/** What the example did, for its test. */
export interface KeyedGroupResult {
  /** The backend that ran it. */
  backend: string;
  /** The member each key went to. */
  assignment: Record<string, string>;
  /** Each member's running total after the last reading it got. */
  totals: Record<string, number>;
}

/** Runs the example on `backend` (default `"auto"`). */
export async function main(
  backend: BackendRequest = "auto",
): Promise<KeyedGroupResult> {
  await using rt = await RingKernel.create({ backend, quiet: true });
  const members = await rt.launchGroup(
    [0, 1, 2].map((i) => ({
      name: `totals-${i}`,
      options: { actor: "accumulator" as const },
    })),
  ) as Kernel<AccumulatorAddFields, AccumulatorTotalFields>[];
  const group = new KeyedGroup(members);

  const sensors = ["kitchen", "hall", "garage", "attic", "cellar"];
  const assignment: Record<string, string> = {};
  const totals: Record<string, number> = {};
  for (let round = 1; round <= 3; round++) {
    for (const [i, sensor] of sensors.entries()) {
      // The same key always reaches the same member.
      const reply = await group.call(sensor, { value: round * (i + 1) }, {
        timeoutMs: 10_000,
      });
      const member = group.memberFor(sensor).name;
      assignment[sensor] = member;
      totals[member] = reply.total;
    }
  }

  console.log(`backend: ${rt.backend}`);
  for (const sensor of sensors) {
    console.log(
      `${sensor} → ${assignment[sensor]} (index ${
        memberIndexForKey(sensor, members.length)
      })`,
    );
  }
  console.log("totals per member:", totals);
  return { backend: rt.backend, assignment, totals };
}

if (import.meta.main) await main();
