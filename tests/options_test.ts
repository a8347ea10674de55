// Option and deadline checks: every bad value is an InvalidOptionError naming the option.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { InvalidOptionError, RingKernelError } from "../src/errors.ts";
import {
  checkBoolean,
  checkChoice,
  checkInteger,
  checkOptionsObject,
  checkSignal,
  checkTimeoutMs,
  checkWaitOptions,
  MAX_TIMEOUT_MS,
} from "../src/options.ts";

function refused(fn: () => unknown, option: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof InvalidOptionError);
    assert.ok(error instanceof RingKernelError);
    assert.equal(error.option, option);
    assert.match(error.message, new RegExp(`^${option} must be`));
    return true;
  });
}

describe("option checks", () => {
  test("deadlines: finite, not negative, within a timer's range", () => {
    assert.equal(checkTimeoutMs("timeoutMs", undefined, 100), 100);
    assert.equal(checkTimeoutMs("timeoutMs", 0, 100), 0);
    assert.equal(checkTimeoutMs("timeoutMs", 2.5, 100), 2.5);
    assert.equal(
      checkTimeoutMs("timeoutMs", MAX_TIMEOUT_MS, 1),
      MAX_TIMEOUT_MS,
    );
    for (const bad of [NaN, Infinity, -Infinity, -1, MAX_TIMEOUT_MS + 1, "5"]) {
      refused(() => checkTimeoutMs("timeoutMs", bad, 100), "timeoutMs");
    }
  });

  test("integers, booleans, choices and signals", () => {
    const range = { min: 1, max: 4096, fallback: 256 };
    assert.equal(checkInteger("batchSize", undefined, range), 256);
    assert.equal(checkInteger("batchSize", 1, range), 1);
    for (const bad of [0, -1, 1.5, NaN, Infinity, 4097, "2"]) {
      refused(() => checkInteger("batchSize", bad, range), "batchSize");
    }
    assert.equal(checkBoolean("quiet", undefined, false), false);
    refused(() => checkBoolean("quiet", 1, false), "quiet");
    assert.equal(checkChoice("backend", "cpu", ["cpu", "cuda"], "cuda"), "cpu");
    refused(
      () => checkChoice("backend", "tpu", ["cpu", "cuda"], "cpu"),
      "backend",
    );
    const signal = new AbortController().signal;
    assert.equal(checkSignal("signal", signal), signal);
    refused(() => checkSignal("signal", {}), "signal");
  });

  test("an options object, and the options of a wait", () => {
    assert.deepEqual(checkOptionsObject("options", undefined), {});
    for (const bad of [null, 3, "x", []]) {
      refused(() => checkOptionsObject("options", bad), "options");
    }
    assert.deepEqual(checkWaitOptions(undefined, 50), {
      timeoutMs: 50,
      signal: undefined,
    });
    const signal = AbortSignal.abort();
    // An aborted signal is the caller's to act on: it may have refusals to make first.
    assert.deepEqual(checkWaitOptions({ timeoutMs: 0, signal }, 50), {
      timeoutMs: 0,
      signal,
    });
    refused(() => checkWaitOptions(7, 50), "options");
    refused(() => checkWaitOptions({ timeoutMs: NaN }, 50), "timeoutMs");
    refused(() => checkWaitOptions({ signal: true }, 50), "signal");
  });
});
