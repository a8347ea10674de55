import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  assertState,
  canTransition,
  type KernelState,
  type LifecycleOperation,
  nextState,
} from "../src/lifecycle.ts";
import { InvalidStateError } from "../src/errors.ts";

const STATES: KernelState[] = [
  "launched",
  "active",
  "deactivated",
  "terminated",
];
const OPS: LifecycleOperation[] = ["activate", "deactivate", "terminate"];

// The seed's diagram, written out as the full table of expected outcomes.
const EXPECTED: Record<
  KernelState,
  Record<LifecycleOperation, KernelState | null>
> = {
  launched: { activate: "active", deactivate: null, terminate: "terminated" },
  active: {
    activate: null,
    deactivate: "deactivated",
    terminate: "terminated",
  },
  deactivated: {
    activate: "active",
    deactivate: null,
    terminate: "terminated",
  },
  terminated: { activate: null, deactivate: null, terminate: null },
};

describe("lifecycle state machine", () => {
  for (const state of STATES) {
    for (const op of OPS) {
      const expected = EXPECTED[state][op];
      test(`${state} --${op}--> ${expected ?? "InvalidState"}`, () => {
        assert.equal(canTransition(state, op), expected !== null);
        if (expected === null) {
          assert.throws(() => nextState(state, op), (e: unknown) => {
            assert.ok(e instanceof InvalidStateError);
            assert.equal(e.state, state);
            assert.equal(e.operation, op);
            return true;
          });
        } else {
          assert.equal(nextState(state, op), expected);
        }
      });
    }
  }

  test("assertState accepts allowed states and names the refused operation", () => {
    assertState("active", ["active", "deactivated"], "send");
    assert.throws(
      () => assertState("terminated", ["active"], "send"),
      /cannot send in state terminated/,
    );
  });
});
