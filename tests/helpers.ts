/**
 * Helpers shared by the test modules.
 *
 * @module
 */

import assert from "node:assert/strict";

/** Runs `body` and returns what it throws (failing when it does not). */
export function thrown(body: () => unknown): unknown {
  try {
    body();
  } catch (error) {
    return error;
  }
  assert.fail("expected an error");
}
