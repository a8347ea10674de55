// An actor's thread on the CPU backend: one that ends itself, a K2K send
// that does not encode, a handler that returns null, a handler stuck in a
// loop, and an actor that runs out of memory. Each is seen as the actor's
// crash (or reported), and the accounting stays exact.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { RuntimeEvent } from "../src/runtime.ts";
import { ActorCrashedError, TimeoutError } from "../src/errors.ts";
import { pollUntil } from "../src/async.ts";
import { EXIT_WAYS } from "./fixtures/exiting_actor.ts";
import {
  assertAccounted,
  type ChildResult,
  described,
  echo,
  fixture,
  isDeno as deno,
  lastJson,
  runScript,
  type RuntimeOptions,
  settle,
  withRuntime,
} from "./helpers.ts";

const denoOnly = deno ? undefined : "Deno only";

/** Generous: a wait that fails here is a bug, never a slow machine. */
const WAIT_MS = 20_000;

/** A CPU runtime that restarts a crashed actor at once, whatever the count. */
const CPU: RuntimeOptions = {
  backend: "cpu",
  quiet: true,
  heartbeatDeadlineMs: 0,
  restart: { maxRestarts: 1_000, withinMs: 60_000, backoff: { initialMs: 0 } },
};

function crashes(events: RuntimeEvent[]) {
  return events.flatMap((e) => e.type === "crash" ? [e] : []);
}

/** Runs a script of `fixtures/actor_thread_scripts/` in a child of this runtime. */
function script(
  name: string,
  args: string[],
  v8Flags: string[] = [],
): Promise<ChildResult> {
  return runScript(
    new URL(`./fixtures/actor_thread_scripts/${name}.ts`, import.meta.url),
    { args, v8Flags, timeoutMs: 90_000 },
  );
}

describe("a Worker that ends itself", () => {
  const ways = [
    { label: "process.exit()", tag: EXIT_WAYS.processExit, skip: undefined },
    { label: "Deno.exit()", tag: EXIT_WAYS.denoExit, skip: denoOnly },
    {
      label: "self.close()",
      tag: EXIT_WAYS.selfClose,
      // Bun's Workers have no self.close(): calling it throws, a plain handler error.
      skip: denoOnly,
    },
  ];
  for (const way of ways) {
    test(
      `a handler calling ${way.label} crashes its actor: the message in hand is dead-lettered, the actor restarts, the accounting is exact`,
      {
        skip: way.skip,
      },
      async () => {
        await withRuntime(CPU, async (rt, events) => {
          const k = await rt.launch("exiting", {
            actor: fixture("exiting_actor"),
            queueCapacity: 16,
          });
          assert.equal((await k.call(echo(1))).seq, 1n);
          await assert.rejects(
            k.call(echo(2, 0, way.tag), { timeoutMs: WAIT_MS }),
            (error) => {
              assert.ok(
                error instanceof ActorCrashedError,
                `expected ActorCrashedError, got ${error}`,
              );
              assert.match(error.message, /ended on its own/);
              return true;
            },
          );
          await pollUntil(() => events.some((e) => e.type === "restart"), {
            timeoutMs: WAIT_MS,
            what: "the restart",
          });
          const [crash] = crashes(events);
          assert.equal(crash.kernel, "exiting");
          assert.equal(crash.error.name, "WorkerExited");
          assert.equal(crash.decision.action, "restart");
          // The restarted actor answers.
          assert.equal((await k.call(echo(3))).seq, 3n);
          assert.equal(rt.deadLetters.countOf("handler-error"), 1);
          const m = await settle(k);
          assertAccounted(m);
          assert.equal(m.sent, 3);
          assert.equal(m.processed, 2);
          assert.equal(m.deadLettered, 1);
          assert.equal(m.crashes, 1);
          assert.equal(m.restarts, 1);
        });
      },
    );
  }

  test("with the restart strategy never, the kernel is given up at once and terminated", async () => {
    await withRuntime(
      { ...CPU, restart: { strategy: "never" } },
      async (rt, events) => {
        const k = await rt.launch("exiting", {
          actor: fixture("exiting_actor"),
          queueCapacity: 16,
        });
        await k.send(echo(1, 0, EXIT_WAYS.processExit));
        await k.send(echo(2));
        await pollUntil(() => k.state === "terminated", {
          timeoutMs: WAIT_MS,
          what: "the kernel to be given up",
        });
        assert.equal(crashes(events)[0]?.decision.action, "give-up");
        assert.equal(rt.deadLetters.countOf("handler-error"), 1);
        // The message queued behind it is dead-lettered with the kernel.
        assert.equal(rt.deadLetters.countOf("actor-terminated"), 1);
        const { totals } = rt.metrics();
        assert.equal(totals.sent, 2);
        assert.equal(totals.deadLettered, 2);
        assert.equal(totals.inFlight, 0);
      },
    );
  });

  test("an init that calls process.exit() fails the launch at once, not at its start deadline", async () => {
    await withRuntime(CPU, async (rt) => {
      await assert.rejects(
        rt.launch("exiting", {
          actor: fixture("exiting_actor"),
          config: { exitInInit: true },
          timeoutMs: WAIT_MS,
        }),
        (error) => {
          assert.ok(!(error instanceof TimeoutError), String(error));
          assert.match(String(error), /ended on its own \(exit code 7\)/);
          return true;
        },
      );
      assert.deepEqual(rt.listKernels(), []);
    });
  });
});

describe("K2K sends that do not encode", () => {
  test("the sender gets InvalidMessageError and the target's accounting stays balanced", async () => {
    await withRuntime(CPU, async (rt) => {
      const sink = await rt.launch("sink", {
        actor: fixture("sink_actor"),
        queueCapacity: 16,
      });
      const sender = await rt.launch("sender", {
        actor: fixture("k2k_sender_actor"),
        config: { target: "sink" },
        queueCapacity: 16,
      });
      for (let i = 1; i <= 3; i++) {
        const reply = await sender.call(echo(i, -1), { timeoutMs: WAIT_MS });
        assert.equal(reply.tag, 1, "the send threw InvalidMessageError");
      }
      const delivered = await sender.call(echo(4, 0), { timeoutMs: WAIT_MS });
      assert.equal(delivered.tag, 2);
      await pollUntil(() => sink.metrics().processed === 1, {
        timeoutMs: WAIT_MS,
        what: "the valid message",
      });
      const m = await settle(sink);
      assertAccounted(m);
      assert.equal(m.sent, 1);
      assert.equal(m.processed, 1);
      assert.equal(m.deadLettered, 0);
      assertAccounted(await settle(sender));
    });
  });
});

describe("ctx.trySend and ctx.sendBatch from a running actor", () => {
  test("trySend accepts until the target's inbox is full; sendBatch takes a run at once; accounting balances", async () => {
    await withRuntime(CPU, async (rt) => {
      // A deactivated target: its inbox fills and stays full.
      const sink = await rt.launch("sink", {
        actor: fixture("sink_actor"),
        queueCapacity: 8,
        autoActivate: false,
      });
      const sender = await rt.launch("sender", {
        actor: fixture("k2k_batch_actor"),
        config: { target: "sink" },
        queueCapacity: 16,
      });
      const batch = await sender.call(echo(1, 5, 1), { timeoutMs: WAIT_MS });
      assert.equal(batch.tag, 5, "sendBatch sent the whole run");
      const tried = await sender.call(echo(2, 6, 0), { timeoutMs: WAIT_MS });
      assert.equal(tried.tag, 3, "trySend took the 3 slots left, then false");
      const full = await sender.call(echo(3, 2, 1), { timeoutMs: WAIT_MS });
      assert.equal(
        full.tag,
        900,
        "sendBatch with timeoutMs 0 on a full inbox rejects",
      );
      await sink.activate();
      await pollUntil(() => sink.metrics().processed === 8, {
        timeoutMs: WAIT_MS,
        what: "the 8 accepted messages",
      });
      const m = await settle(sink);
      assertAccounted(m);
      assert.equal(m.sent, 8);
      assert.equal(m.deadLettered, 0);
      assertAccounted(await settle(sender));
    });
  });
});

describe("a handler that returns null", () => {
  for (const [how, tag] of [["synchronously", 0], ["from a promise", 1]]) {
    test(`${how}, with an output schema: a handler error naming the null reply (InvalidMessageError), not an internal TypeError`, async () => {
      await withRuntime(CPU, async (rt, events) => {
        const k = await rt.launch("nulls", {
          actor: fixture("null_actor"),
          queueCapacity: 16,
        });
        await assert.rejects(
          k.call(echo(1, 1, tag as number), { timeoutMs: WAIT_MS }),
          (error) => {
            assert.ok(error instanceof ActorCrashedError, String(error));
            assert.match(
              error.message,
              /InvalidMessageError: the handler of actor "nulls" returned null/,
            );
            return true;
          },
        );
        await pollUntil(() => crashes(events).length === 1, {
          timeoutMs: WAIT_MS,
          what: "the crash event",
        });
        assert.equal(crashes(events)[0].error.name, "InvalidMessageError");
        const [letter] = rt.deadLetters.drain();
        assert.equal(letter.reason, "handler-error");
        assert.match(String(letter.detail), /returned null/);
        const m = await settle(k);
        assertAccounted(m);
        assert.equal(m.deadLettered, 1);
      });
    });
  }

  test("without an output schema: no reply, no crash", async () => {
    await withRuntime(CPU, async (rt, events) => {
      const k = await rt.launch("nulls", {
        actor: fixture("null_actor", "noOutput"),
        queueCapacity: 16,
      });
      await k.send(echo(1, 1, 0));
      await k.send(echo(2, 2, 1));
      await pollUntil(() => k.metrics().processed === 2, {
        timeoutMs: WAIT_MS,
        what: "both messages",
      });
      const m = await settle(k);
      assertAccounted(m);
      assert.equal(m.deadLettered, 0);
      assert.deepEqual(crashes(events), []);
    });
  });
});

describe("a handler stuck in a loop", () => {
  test("terminate kills it; Deno's thread keeps running and is reported as stuck (Deno.exit() ends it), Bun's is stopped", async () => {
    const child = await script("stuck", []);
    assert.equal(child.code, 0, described(child));
    const result = lastJson(child.stdout);
    assert.equal(result.state, "terminated");
    if (deno) {
      const stuck = result.stuck as Record<string, unknown> | null;
      assert.ok(
        stuck !== null,
        `no stuck thread reported\n${described(child)}`,
      );
      assert.equal(stuck.actor, "spinner");
      assert.match(String(stuck.message), /Deno\.exit\(\)/);
      // The runtime reports it to its listeners as a "stuck" event.
      const events = result.events as Record<string, unknown>[];
      assert.equal(events.length, 1, described(child));
      assert.equal(events[0].kernel, "spinner");
      assert.match(String(events[0].message), /Deno\.exit\(\)/);
    } else {
      // Bun's terminate interrupts the handler, and the script exited by itself.
      assert.equal(result.stuck, null);
    }
  });
});

describe("an actor that runs out of memory", () => {
  const bunCannot =
    "Bun has no per-Worker heap limit: the actor takes the process down (docs/reliability.md)";

  test(
    "under the engine's default limit: the actor crashes and restarts, the process lives",
    {
      skip: deno ? undefined : bunCannot,
    },
    async () => {
      const child = await script("oom", ["unbounded"], [
        "--max-old-space-size=128",
      ]);
      assert.equal(child.code, 0, described(child));
      const r = lastJson(child.stdout);
      assert.equal(r.before, 1);
      assert.match(String(r.callError), /^ActorCrashedError: .*out of memory/);
      assert.equal((r.crash as { name: string }).name, "WorkerOutOfMemory");
      assert.equal(r.deadLetters, 1);
      assert.equal(r.after, 1);
      assert.equal(r.sent, 3);
      assert.equal(r.processed, 2);
      assert.equal(r.deadLettered, 1);
      assert.equal(r.inFlight, 0);
    },
  );

  test("maxHeapMb: past the actor's own limit it crashes, though the engine's would allow more", async () => {
    // The engine's default limit (GiBs) stays: only the actor's own is small.
    const child = await script("oom", ["limit"]);
    assert.equal(child.code, 0, described(child));
    const r = lastJson(child.stdout) as {
      replied: boolean;
      crashes: { name: string }[];
      deadLetters: { reason: string }[];
    };
    if (deno) {
      assert.equal(r.replied, false);
      assert.deepEqual(r.crashes.map((c) => c.name), ["WorkerOutOfMemory"]);
      assert.deepEqual(r.deadLetters, [{ reason: "handler-error" }]);
    } else {
      // Bun ignores the limit: the 160 MiB are allocated and the actor replies.
      assert.equal(r.replied, true);
      assert.deepEqual(r.crashes, []);
    }
  });
});
