import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  DEFAULT_RESTART_POLICY,
  resolveRestartPolicy,
  restartDelayMs,
  Supervisor,
  type SupervisorEvent,
} from "../src/supervisor.ts";
import { RingKernelError } from "../src/errors.ts";

/** A supervisor on a manual clock. */
function manual(options: ConstructorParameters<typeof Supervisor>[0] = {}) {
  const clock = { now: 0 };
  const events: SupervisorEvent[] = [];
  const supervisor = new Supervisor({
    clock: () => clock.now,
    onEvent: (event) => events.push(event),
    ...options,
  });
  return { supervisor, clock, events };
}

describe("restart policy", () => {
  test("has the documented defaults", () => {
    assert.deepEqual(resolveRestartPolicy(), DEFAULT_RESTART_POLICY);
    assert.equal(DEFAULT_RESTART_POLICY.strategy, "one-for-one");
    assert.equal(DEFAULT_RESTART_POLICY.maxRestarts, 3);
    assert.equal(DEFAULT_RESTART_POLICY.withinMs, 5000);
    assert.ok(Object.isFrozen(DEFAULT_RESTART_POLICY));
    assert.ok(Object.isFrozen(DEFAULT_RESTART_POLICY.backoff));
  });

  test("fills in missing fields", () => {
    const policy = resolveRestartPolicy({
      maxRestarts: 5,
      backoff: { initialMs: 2000 },
    });
    assert.equal(policy.maxRestarts, 5);
    assert.equal(policy.withinMs, 5000);
    assert.equal(policy.backoff.initialMs, 2000);
    assert.equal(policy.backoff.maxMs, 2000, "maxMs never below initialMs");
    assert.equal(policy.backoff.multiplier, 2);
  });

  const invalid: ReadonlyArray<readonly [string, object]> = [
    ["strategy", { strategy: "one-for-all" }],
    ["maxRestarts", { maxRestarts: -1 }],
    ["maxRestarts", { maxRestarts: 1.5 }],
    ["maxRestarts", { maxRestarts: NaN }],
    ["withinMs", { withinMs: 0 }],
    ["withinMs", { withinMs: -5 }],
    ["withinMs", { withinMs: NaN }],
    ["backoff.initialMs", { backoff: { initialMs: -1 } }],
    ["backoff.initialMs", { backoff: { initialMs: Infinity } }],
    ["backoff.maxMs", { backoff: { initialMs: 100, maxMs: 50 } }],
    ["backoff.multiplier", { backoff: { multiplier: 0.5 } }],
    ["backoff.multiplier", { backoff: { multiplier: NaN } }],
  ];
  for (const [field, options] of invalid) {
    test(`rejects a bad ${field}: ${JSON.stringify(options)}`, () => {
      assert.throws(() => resolveRestartPolicy(options), (error: unknown) => {
        assert.ok(error instanceof RingKernelError);
        assert.match(
          error.message,
          new RegExp(`${field.replace(".", "\\.")} must be`),
        );
        return true;
      });
    });
  }

  test("accepts unlimited restarts and an unbounded window", () => {
    const policy = resolveRestartPolicy({
      maxRestarts: Infinity,
      withinMs: Infinity,
    });
    assert.equal(policy.maxRestarts, Infinity);
    assert.equal(policy.withinMs, Infinity);
  });

  test("restartDelayMs grows geometrically up to maxMs", () => {
    const backoff = { initialMs: 10, maxMs: 100, multiplier: 3 };
    assert.deepEqual(
      [1, 2, 3, 4, 5, 1000].map((n) => restartDelayMs(backoff, n)),
      [10, 30, 90, 100, 100, 100],
    );
    const zero = { initialMs: 0, maxMs: 0, multiplier: 2 };
    assert.equal(restartDelayMs(zero, 5000), 0);
    assert.throws(() => restartDelayMs(backoff, 0), RingKernelError);
    assert.throws(() => restartDelayMs(backoff, 1.5), RingKernelError);
  });
});

describe("Supervisor", () => {
  test("restarts with growing delays, then gives up", () => {
    const { supervisor, clock, events } = manual();
    const decisions = [];
    for (let i = 0; i < 4; i++) {
      decisions.push(supervisor.onFailure("worker", new Error(`crash ${i}`)));
      clock.now += 20;
    }
    assert.deepEqual(decisions.slice(0, 3), [
      { action: "restart", delayMs: 10, attempt: 1 },
      { action: "restart", delayMs: 20, attempt: 2 },
      { action: "restart", delayMs: 40, attempt: 3 },
    ]);
    assert.equal(decisions[3].action, "give-up");
    assert.match(
      (decisions[3] as { reason: string }).reason,
      /3 restarts within 5000 ms reached the limit of 3/,
    );
    assert.equal(events.length, 4);
    assert.equal(events[0].child, "worker");
    assert.equal((events[0].error as Error).message, "crash 0");
    assert.deepEqual(events[0].decision, decisions[0]);
    assert.equal(events[3].timestamp, 60);
    assert.equal(supervisor.history("worker")?.gaveUp, true);
    // Later failures keep getting the same answer.
    assert.equal(supervisor.onFailure("worker", "again").action, "give-up");
  });

  test("old restarts slide out of the window", () => {
    const { supervisor, clock } = manual({
      policy: { maxRestarts: 2, withinMs: 1000, backoff: { initialMs: 0 } },
    });
    // Two failures 1 ms after each (re)start: never a stable run.
    assert.equal(supervisor.onFailure("w", 0).action, "restart"); // t = 0
    clock.now = 600;
    assert.equal(supervisor.onFailure("w", 0).action, "restart"); // t = 600
    clock.now = 999;
    supervisor.started("w", 998);
    assert.equal(supervisor.onFailure("w", 0).action, "give-up");
    assert.deepEqual(supervisor.history("w")?.restartTimes, [0, 600]);
    // The same pattern two milliseconds later: the restart at 0 has left.
    clock.now = 0;
    supervisor.onFailure("v", 0);
    clock.now = 600;
    supervisor.onFailure("v", 0);
    clock.now = 1001;
    supervisor.started("v", 1000);
    assert.equal(supervisor.onFailure("v", 0).action, "restart");
    assert.deepEqual(supervisor.history("v")?.restartTimes, [600, 1001]);
  });

  test("a restart leaves the window exactly withinMs later", () => {
    const { supervisor, clock } = manual({
      policy: { maxRestarts: 1, withinMs: 1000, backoff: { initialMs: 0 } },
    });
    assert.equal(supervisor.onFailure("w", 0).action, "restart"); // t = 0
    clock.now = 1000;
    supervisor.started("w", 999);
    const decision = supervisor.onFailure("w", 0);
    assert.equal(decision.action, "restart");
    assert.deepEqual(supervisor.history("w")?.restartTimes, [1000]);
    // Not stable (ran 1 ms), so the attempt keeps counting.
    assert.equal((decision as { attempt: number }).attempt, 2);
  });

  test("a stable run resets the attempt and the backoff", () => {
    const { supervisor, clock } = manual({ policy: { withinMs: 1000 } });
    assert.deepEqual(supervisor.onFailure("w", 0), {
      action: "restart",
      delayMs: 10,
      attempt: 1,
    });
    clock.now = 50;
    assert.deepEqual(supervisor.onFailure("w", 0), {
      action: "restart",
      delayMs: 20,
      attempt: 2,
    });
    // Restarted at 70 (50 + 20 ms); failing at 1070 is a full window later.
    clock.now = 1070;
    assert.deepEqual(supervisor.onFailure("w", 0), {
      action: "restart",
      delayMs: 10,
      attempt: 1,
    });
    assert.deepEqual(supervisor.history("w")?.restartTimes, [1070]);
  });

  test("the start time defaults to the decision plus its delay", () => {
    const { supervisor, clock } = manual({ policy: { withinMs: 1000 } });
    supervisor.onFailure("w", 0); // restarts at 10
    assert.equal(supervisor.history("w")?.startedAt, 10);
    clock.now = 1009; // ran 999 ms: not yet stable
    assert.equal(
      (supervisor.onFailure("w", 0) as { attempt: number }).attempt,
      2,
    );
  });

  test("started() without a time uses the clock", () => {
    const { supervisor, clock } = manual();
    clock.now = 123;
    supervisor.started("w");
    assert.equal(supervisor.history("w")?.startedAt, 123);
  });

  test('"never" gives up at once', () => {
    const { supervisor, events } = manual({ policy: { strategy: "never" } });
    const decision = supervisor.onFailure("w", new Error("x"));
    assert.deepEqual(decision, {
      action: "give-up",
      reason: 'the restart strategy is "never"',
    });
    assert.equal(events.length, 1);
  });

  test("maxRestarts 0 gives up at once", () => {
    const { supervisor } = manual({ policy: { maxRestarts: 0 } });
    assert.equal(supervisor.onFailure("w", 0).action, "give-up");
  });

  test("children are supervised independently, with their own policies", () => {
    const { supervisor } = manual({ policy: { maxRestarts: 1 } });
    supervisor.setPolicy("patient", { maxRestarts: 5 });
    assert.equal(supervisor.policyOf("patient").maxRestarts, 5);
    assert.equal(supervisor.policyOf("other").maxRestarts, 1);
    assert.equal(supervisor.onFailure("fragile", 0).action, "restart");
    assert.equal(supervisor.onFailure("fragile", 0).action, "give-up");
    for (let i = 0; i < 5; i++) {
      assert.equal(supervisor.onFailure("patient", 0).action, "restart");
    }
    assert.equal(supervisor.onFailure("patient", 0).action, "give-up");
    supervisor.setPolicy("patient", undefined);
    assert.equal(supervisor.policyOf("patient").maxRestarts, 1);
    assert.deepEqual(supervisor.children().sort(), ["fragile", "patient"]);
  });

  test("reset clears history but keeps the policy; remove forgets all", () => {
    const { supervisor } = manual({ policy: { maxRestarts: 1 } });
    supervisor.setPolicy("w", { maxRestarts: 2 });
    supervisor.onFailure("w", 0);
    supervisor.onFailure("w", 0);
    assert.equal(supervisor.onFailure("w", 0).action, "give-up");
    supervisor.reset("w");
    assert.deepEqual(supervisor.history("w"), {
      restartTimes: [],
      attempt: 0,
      startedAt: undefined,
      gaveUp: false,
    });
    assert.equal(supervisor.policyOf("w").maxRestarts, 2);
    assert.deepEqual(supervisor.onFailure("w", 0), {
      action: "restart",
      delayMs: 10,
      attempt: 1,
    });
    assert.equal(supervisor.remove("w"), true);
    assert.equal(supervisor.remove("w"), false);
    assert.equal(supervisor.history("w"), undefined);
    assert.equal(supervisor.policyOf("w").maxRestarts, 1);
    supervisor.reset("unknown"); // no effect, no error
  });

  test("history is a copy", () => {
    const { supervisor } = manual();
    supervisor.onFailure("w", 0);
    const history = supervisor.history("w")!;
    (history.restartTimes as number[]).push(999);
    assert.deepEqual(supervisor.history("w")?.restartTimes, [0]);
  });

  test("a failing onEvent hook does not change the decision", () => {
    const hookErrors: unknown[] = [];
    const supervisor = new Supervisor({
      clock: () => 0,
      onEvent: () => {
        throw new Error("hook");
      },
      onEventError: (error) => hookErrors.push(error),
    });
    assert.deepEqual(supervisor.onFailure("w", 0), {
      action: "restart",
      delayMs: 10,
      attempt: 1,
    });
    assert.equal(hookErrors.length, 1);
  });

  test("is deterministic for the same clock readings", () => {
    const run = () => {
      const { supervisor, clock } = manual({ policy: { maxRestarts: 4 } });
      const out = [];
      for (const t of [0, 5, 40, 3000, 9000, 9001, 9002, 9003, 9004]) {
        clock.now = t;
        out.push(supervisor.onFailure(t % 2 ? "a" : "b", t));
      }
      return out;
    };
    assert.deepEqual(run(), run());
  });

  test("the default clock is usable", () => {
    const supervisor = new Supervisor();
    assert.equal(supervisor.onFailure("w", 0).action, "restart");
    assert.equal(typeof supervisor.history("w")?.startedAt, "number");
  });

  test("rejects bad input with typed errors", () => {
    const { supervisor } = manual();
    assert.throws(() => supervisor.onFailure("", 0), RingKernelError);
    assert.throws(
      () => supervisor.onFailure(7 as unknown as string, 0),
      RingKernelError,
    );
    assert.throws(() => supervisor.started("", 0), RingKernelError);
    assert.throws(
      () => supervisor.setPolicy("w", { maxRestarts: -1 }),
      RingKernelError,
    );
    assert.equal(supervisor.policyOf("w").maxRestarts, 3);
    assert.throws(
      () => new Supervisor({ policy: { withinMs: 0 } }),
      RingKernelError,
    );
  });
});
