import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { availableParallelism } from "node:os";
import {
  SPIN_SHRINK_STREAK,
  spinShouldShrink,
} from "../src/backend/cpu/actor_memory.ts";

describe("spinShouldShrink: when an idle spin that found nothing shrinks", () => {
  const cores = availableParallelism();
  const load = (actors: number) => new Int32Array([actors]);

  test("with a core for every actor and the host: only after a run of wasted spins", () => {
    const spare = load(cores - 1);
    for (let streak = 0; streak < SPIN_SHRINK_STREAK; streak++) {
      assert.equal(spinShouldShrink(streak, spare), false, `streak ${streak}`);
    }
    assert.equal(spinShouldShrink(SPIN_SHRINK_STREAK, spare), true);
    assert.equal(spinShouldShrink(SPIN_SHRINK_STREAK + 10, spare), true);
  });

  test("with the actors and the host outnumbering the cores: every time", () => {
    for (const actors of [cores, cores + 3]) {
      assert.equal(spinShouldShrink(1, load(actors)), true);
      assert.equal(spinShouldShrink(0, load(actors)), true);
    }
  });
});
