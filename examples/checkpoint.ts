/**
 * Checkpoints: a counter actor (`actors/counter.ts`, with `snapshot` and
 * `restore`) adds up values; `rt.checkpoint` stores its state in a
 * `FileCheckpointStore`; the runtime shuts down; a new runtime launches the
 * actor with `restoreFrom` the store, and it goes on from its total. CPU
 * actors (GPU state is not snapshotted).
 *
 * Run: `deno run -A examples/checkpoint.ts` or `bun examples/checkpoint.ts`
 *
 * @module
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type AccumulatorAddFields,
  type AccumulatorTotalFields,
  FileCheckpointStore,
  RingKernel,
} from "../mod.ts";

/** What the example did, for its test. */
export interface CheckpointResult {
  /** Totals before the checkpoint. */
  before: number[];
  /** Totals after the restore. */
  after: number[];
}

const module = new URL("./actors/counter.ts", import.meta.url);

/** Runs the example with a store in a fresh temporary directory. */
export async function main(): Promise<CheckpointResult> {
  const dir = mkdtempSync(join(tmpdir(), "rk-checkpoint-"));
  try {
    const store = new FileCheckpointStore(dir);
    const before: number[] = [];
    {
      await using rt = await RingKernel.create({ backend: "cpu" });
      const totals = await rt.launch<
        AccumulatorAddFields,
        AccumulatorTotalFields
      >("totals", { actor: { module } });
      for (const value of [1, 2, 3]) {
        before.push((await totals.call({ value }, { timeoutMs: 5_000 })).total);
      }
      const info = await rt.checkpoint("totals", { store, timeoutMs: 10_000 });
      console.log(`checkpoint of "totals":`, info);
    } // the runtime shuts down here: the actor and its state are gone

    await using rt2 = await RingKernel.create({ backend: "cpu" });
    const totals = await rt2.launch<
      AccumulatorAddFields,
      AccumulatorTotalFields
    >("totals", { actor: { module }, restoreFrom: store });
    const after: number[] = [];
    for (const value of [4, 5]) {
      after.push((await totals.call({ value }, { timeoutMs: 5_000 })).total);
    }
    console.log(`totals before the checkpoint: ${before.join(", ")}`);
    console.log(`totals after the restore: ${after.join(", ")}`);
    return { before, after };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) await main();
