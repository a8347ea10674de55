// Injected faults of actors on the CPU backend (its loop, its Workers), each
// showing the typed error or the recovery, and that nothing is lost: handler
// failures, Worker deaths, a loop stopped inside its committed window,
// terminate under load, queue-full storms. On the CUDA backend:
// tests/faults_gpu_test.ts.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Kernel, kernelInternals } from "../src/kernel.ts";
import type { CpuActorHost } from "../src/backend/cpu/cpu_actor.ts";
import {
  busyIdle,
  BusyState,
  COMMIT_GROUP,
  CommitKind,
  WORKER_WORD_COUNT,
  WorkerWord,
} from "../src/backend/cpu/actor_memory.ts";
import { createGate, GATE_ENTERED, openGate } from "./fixtures/group_actor.ts";
import { EchoMessage } from "../src/actors/schemas.ts";
import { ENVELOPE_SIZE, writeEnvelopeFor } from "../src/envelope.ts";
import {
  ActorCrashedError,
  InvalidStateError,
  QueueFullError,
} from "../src/errors.ts";
import { delay, pollUntil } from "../src/async.ts";
import { HeartbeatWatchdog, type StaleHeartbeat } from "../src/watchdog.ts";
import {
  assertAccounted,
  echo,
  fixture,
  type RuntimeOptions,
  settle,
  withRuntime,
} from "./helpers.ts";

/** A CPU runtime that restarts a crashed actor at once, whatever the count. */
const CPU: RuntimeOptions = {
  backend: "cpu",
  quiet: true,
  restart: { maxRestarts: 1_000, withinMs: 60_000, backoff: { initialMs: 0 } },
};

describe("handler failures", () => {
  test("a throwing handler: the call fails typed, the message is dead-lettered with its reason, the actor restarts, nothing is lost", async () => {
    await withRuntime(CPU, async (rt, events) => {
      const k = await rt.launch("flaky", {
        actor: fixture("flaky_actor"),
        queueCapacity: 64,
      });
      await assert.rejects(
        k.call(echo(0, -1), { timeoutMs: 10_000 }),
        ActorCrashedError,
      );
      const replies = { count: 0 };
      let poisoned = 1;
      for (let i = 1; i <= 300; i++) {
        const poison = i % 37 === 0;
        if (poison) poisoned++;
        await k.send(echo(i, poison ? -1 : i), { timeoutMs: 10_000 });
        while (k.tryReceive() !== undefined) replies.count++;
      }
      const m = await settle(k, replies);
      assertAccounted(m);
      assert.equal(m.sent, 301);
      assert.equal(m.deadLettered, poisoned);
      assert.equal(m.processed, 301 - poisoned);
      assert.equal(replies.count, m.processed);
      assert.equal(rt.deadLetters.countOf("handler-error"), poisoned);
      await pollUntil(
        () => events.filter((e) => e.type === "restart").length === poisoned,
        { timeoutMs: 10_000 },
      );
      assert.equal(m.crashes, poisoned);
    });
  });
});

describe("Worker deaths", () => {
  test("a Worker killed mid-batch: at most its open group is dead-lettered, the restarted loop takes the rest", async () => {
    await withRuntime(CPU, async (rt, events) => {
      const k = await rt.launch("victim", {
        actor: fixture("slow_actor"),
        queueCapacity: 1024,
        autoActivate: false,
      });
      const total = 600;
      for (let i = 0; i < total; i += 100) {
        await k.sendBatch(
          Array.from({ length: 100 }, (_, j) => echo(i + j, 0.2)),
        );
      }
      await k.activate();
      await pollUntil(() => k.metrics().processed >= 50, { timeoutMs: 10_000 });
      (kernelInternals(k).host as CpuActorHost).injectDeath(
        "killed mid-batch by the test",
      );
      const replies = { count: 0 };
      const m = await settle(k, replies);
      assertAccounted(m);
      assert.equal(m.sent, total);
      // The messages of the group the loop had open, handled but not
      // committed, are taken with the one in its handler.
      assert.ok(
        m.deadLettered <= COMMIT_GROUP,
        `${m.deadLettered} dead-lettered`,
      );
      assert.equal(m.processed + m.deadLettered, total);
      assert.equal(replies.count, m.processed);
      await pollUntil(() => events.some((e) => e.type === "restart"), {
        timeoutMs: 10_000,
      });
      assert.equal(events[0].type, "crash");
      assert.equal(m.crashes, 1);
    });
  });

  // A loop handles a batch in groups and commits each group at once: a kill
  // while a group is open takes all of its messages (verification/
  // worker_kill.pml), the ones handled before the one in its handler too.
  for (const how of ["death", "terminate"] as const) {
    test(
      `a ${
        how === "death" ? "Worker death" : "terminate past its deadline"
      } while a group is open: every message of the group is dead-lettered once, the rest answered once`,
      {
        timeout: 60_000,
      },
      async () => {
        await withRuntime(CPU, async (rt, events) => {
          const gate = createGate();
          const k = await rt.launch("grouped", {
            actor: fixture("group_actor"),
            config: { gate: gate.buffer },
            autoActivate: false,
          });
          const host = kernelInternals(k).host as CpuActorHost;
          const words = new Int32Array(
            host.memory,
            host.plan.worker,
            WORKER_WORD_COUNT,
          );
          // Messages 1 and 2 are handled, then 3 waits at the gate.
          for (let i = 1; i <= 5; i++) {
            await k.send(echo(i, i, i === 3 ? 1 : 0));
          }
          await k.activate();
          try {
            await pollUntil(() => Atomics.load(gate, GATE_ENTERED) === 1, {
              timeoutMs: 10_000,
            });
            assert.ok(host.busy);
            assert.equal(Atomics.load(words, WorkerWord.taken) & 0xff, 3);
            assert.equal(k.metrics().processed, 0);
            if (how === "death") host.injectDeath("killed inside a group");
            else await k.terminate({ timeoutMs: 100 });
          } finally {
            // A Deno thread still in the handler goes on: it must touch nothing.
            openGate(gate);
          }
          const answered: bigint[] = [];
          if (how === "death") {
            await pollUntil(() => events.some((e) => e.type === "restart"), {
              timeoutMs: 10_000,
            });
            await pollUntil(() => {
              for (
                let r = k.tryReceive();
                r !== undefined;
                r = k.tryReceive()
              ) {
                answered.push((r as { seq: bigint }).seq);
              }
              return answered.length === 2 && k.metrics().inFlight === 0;
            }, { timeoutMs: 10_000 });
          }
          await delay(300);
          const m = k.metrics();
          assertAccounted(m);
          assert.equal(m.sent, 5);
          const letters = rt.deadLetters.drain();
          const dead = letters.map((l) =>
            (l.message.value as { seq: bigint }).seq
          );
          if (how === "death") {
            assert.equal(m.processed, 2);
            assert.equal(m.deadLettered, 3);
            assert.deepEqual(answered, [4n, 5n]);
            assert.deepEqual(dead, [1n, 2n, 3n]);
            for (const letter of letters) {
              assert.equal(letter.reason, "handler-error");
            }
          } else {
            assert.equal(m.processed, 0);
            assert.equal(m.deadLettered, 5);
            assert.deepEqual(dead, [1n, 2n, 3n, 4n, 5n]);
            assert.deepEqual(
              letters.map((l) => l.reason),
              [
                "actor-terminated",
                "actor-terminated",
                "actor-terminated",
                "actor-terminated",
                "actor-terminated",
              ],
            );
            assert.match(
              letters[2].detail ?? "",
              /killed: did not stop in time/,
            );
            assert.match(letters[4].detail ?? "", /left in the queue/);
          }
          assert.equal(k.tryReceive(), undefined);
        });
      },
    );
  }

  test(
    "a blocked handler: the watchdog reports it, terminate kills it after its deadline, and its messages are dead-lettered",
    {
      timeout: 60_000,
    },
    async () => {
      await withRuntime(CPU, async (rt) => {
        const k = await rt.launch("stuck", {
          actor: fixture("blocking_actor"),
        });
        const stale: StaleHeartbeat[] = [];
        const watchdog = new HeartbeatWatchdog({
          deadlineMs: 300,
          intervalMs: 20,
          onStale: (e) => stale.push(e),
        });
        watchdog.watch(
          k.name,
          (kernelInternals(k).host as CpuActorHost).control,
        );
        watchdog.start();
        try {
          await k.send(echo(1, 1_500));
          for (let i = 2; i <= 5; i++) await k.send(echo(i, 0));
          await pollUntil(() => stale.length > 0, { timeoutMs: 10_000 });
          assert.equal(stale[0].kernel, "stuck");
          await k.terminate({ timeoutMs: 100 });
        } finally {
          watchdog.stop();
        }
        const m = k.metrics();
        assertAccounted(m);
        assert.equal(m.sent, 5);
        assert.equal(m.processed, 0);
        assert.equal(m.deadLettered, 5);
        const letters = rt.deadLetters.drain();
        assert.equal(letters.length, 5);
        assert.match(letters[0].detail ?? "", /killed: did not stop in time/);
        assert.deepEqual(letters[0].message.value, echo(1, 1_500));
      });
    },
  );

  test(
    "a restart while the killed loop still runs its handler counts nothing twice",
    {
      // Deno's Worker.terminate() lets running JavaScript finish; the old loop
      // then would have passed a generation-less busy-word check on the new
      // loop's value (verification/README.md, FINDING_RESTART_ABA).
      timeout: 60_000,
    },
    async () => {
      await withRuntime(CPU, async (rt) => {
        const k = await rt.launch("victim", { actor: fixture("slow_actor") });
        for (let i = 0; i < 4; i++) await k.send(echo(i, 300));
        await pollUntil(() => (kernelInternals(k).host as CpuActorHost).busy, {
          timeoutMs: 5_000,
        });
        (kernelInternals(k).host as CpuActorHost).injectDeath(
          "killed mid-message by the test",
        );
        const replies = { count: 0 };
        const m = await settle(k, replies);
        await delay(500);
        const later = k.metrics();
        assertAccounted(later);
        assert.equal(m.sent, 4);
        assert.equal(later.processed + later.deadLettered, 4);
        assert.equal(later.deadLettered, 1);
      });
    },
  );

  test(
    "terminate after a reply waited past the kill deadline counts nothing twice",
    {
      // verification/README.md, FINDING_FINISHING_TIMEOUT: the reply is now
      // published only after the loop commits the busy word.
      timeout: 60_000,
    },
    async () => {
      await withRuntime(CPU, async (rt) => {
        const k = await rt.launch("echo", {
          actor: "echo",
          queueCapacity: 16,
          outputCapacity: 2,
        });
        for (let i = 0; i < 10; i++) await k.send(echo(i));
        // Nobody takes the replies: the loop waits for room with a message in hand.
        await pollUntil(() => k.metrics().pendingReplies === 2, {
          timeoutMs: 5_000,
        });
        await delay(100);
        await k.terminate({ timeoutMs: 200 });
        await delay(500);
        const m = k.metrics();
        assertAccounted(m);
        assert.equal(m.sent, 10);
      });
    },
  );
});

// A loop whose thread stops inside its committed window (Bun's
// Worker.terminate() stops JavaScript anywhere) is simulated: the test writes
// the busy word, the commit record and whatever the loop had done by then, as
// the loop would, into the memory of an actor whose loop is paused; then the
// Worker dies. verification/worker_kill.pml (-DINTERRUPT) models the protocol.
describe("a loop stopped inside its committed window", () => {
  type Stage = "committed" | "published" | "counted" | "released";
  type Commit = "reply" | "noReply" | "handlerError";
  const STAGES: Readonly<Record<Commit, readonly Stage[]>> = {
    reply: ["committed", "published", "counted", "released"],
    noReply: ["committed", "counted", "released"],
    handlerError: ["committed", "counted", "released"],
  };

  /**
   * Leaves the actor's memory as a loop that stopped at `stage` would, with
   * a commit of the `messages` messages at the head (a range: a group).
   */
  function stopInside(
    k: Kernel,
    commit: Commit,
    stage: Stage,
    messages = 1,
  ): void {
    const host = kernelInternals(k).host as CpuActorHost;
    const words = new Int32Array(
      host.memory,
      host.plan.worker,
      WORKER_WORD_COUNT,
    );
    const generation = Atomics.load(words, WorkerWord.generation);
    const processed = commit !== "handlerError";
    const replies = commit === "reply" ? messages : 0;
    // What the loop records before it commits, then the commit itself.
    Atomics.store(words, WorkerWord.commitKind, CommitKind[commit]);
    Atomics.store(words, WorkerWord.commitHead, host.inputRing.headIndex());
    Atomics.store(words, WorkerWord.commitMessages, messages);
    Atomics.store(words, WorkerWord.commitReply, host.outputRing.endIndex());
    Atomics.store(words, WorkerWord.commitReplies, replies);
    Atomics.store(
      words,
      WorkerWord.commitCount,
      processed
        ? host.control.messagesProcessedLow
        : host.telemetry.messagesDroppedLow,
    );
    Atomics.store(
      words,
      WorkerWord.busy,
      busyIdle(generation) | BusyState.input | BusyState.committed,
    );
    const done = STAGES[commit].indexOf(stage);
    if (commit === "reply" && done >= 1) {
      // The replies of a range go out in one store of the tail.
      const reply = host.outputRing.producer();
      assert.equal(reply.claim(replies), replies);
      for (let i = 0; i < replies; i++) {
        writeEnvelopeFor(reply.view, reply.slotOffset(i), EchoMessage, {
          correlationId: 0,
        });
        EchoMessage.encode(
          reply.view,
          reply.slotOffset(i) + ENVELOPE_SIZE,
          echo(i + 1),
        );
      }
      reply.publish(replies);
    }
    if (stage === "counted" || stage === "released") {
      if (processed) host.control.addProcessed(messages);
      else host.telemetry.recordDropped(1);
    }
    if (stage === "released") {
      const input = host.inputRing.consumer();
      assert.equal(input.available(), messages);
      input.release(messages);
    }
  }

  test("a running loop's commit record names its last message, reply slot and count", async () => {
    await withRuntime(CPU, async (rt) => {
      const k = await rt.launch("recorded", { actor: "echo" });
      for (let i = 0; i < 3; i++) await k.call(echo(i));
      const host = kernelInternals(k).host as CpuActorHost;
      // A reply is out before its loop counts and releases the message.
      await pollUntil(() => !host.busy && host.inputRing.headIndex() === 3, {
        timeoutMs: 5_000,
      });
      const words = new Int32Array(
        host.memory,
        host.plan.worker,
        WORKER_WORD_COUNT,
      );
      const record = [
        WorkerWord.commitKind,
        WorkerWord.commitHead,
        WorkerWord.commitMessages,
        WorkerWord.commitReply,
        WorkerWord.commitReplies,
        WorkerWord.commitCount,
      ].map((w) => Atomics.load(words, w) >>> 0);
      // One call at a time: each group is the one message.
      assert.deepEqual(record, [CommitKind.reply, 2, 1, 2, 1, 2]);
      assert.equal(host.inputRing.headIndex(), 3);
      assert.equal(host.outputRing.endIndex(), 3);
      assert.equal(host.control.messagesProcessedLow, 3);
    });
  });

  for (const messages of [1, 3]) {
    for (const commit of ["reply", "noReply"] as const) {
      for (const stage of STAGES[commit]) {
        const what = `${
          commit === "reply" ? "a reply's" : "a message without reply's"
        } window${messages > 1 ? ` (a range of ${messages})` : ""}`;
        test(`${what}, stopped once ${stage}: handled once, counted once, answered once`, async () => {
          await withRuntime(CPU, async (rt, events) => {
            const k = await rt.launch("victim", {
              actor: commit === "reply" ? "echo" : fixture("sink_actor"),
              autoActivate: false,
            });
            for (let i = 1; i <= messages; i++) await k.send(echo(i));
            stopInside(k, commit, stage, messages);
            (kernelInternals(k).host as CpuActorHost).injectDeath(
              "stopped while committed",
            );
            await pollUntil(() => events.some((e) => e.type === "restart"), {
              timeoutMs: 10_000,
            });
            await k.activate();
            const replies = { count: 0 };
            const m = await settle(
              k,
              commit === "reply" ? replies : undefined,
            );
            await delay(50);
            assertAccounted(k.metrics());
            assert.equal(m.sent, messages);
            assert.equal(m.processed, messages);
            assert.equal(m.deadLettered, 0);
            if (commit === "reply") {
              while (k.tryReceive() !== undefined) replies.count++;
              assert.equal(replies.count, messages);
            }
          });
        });
      }
    }
  }

  for (const stage of STAGES.handlerError) {
    test(`a dead letter's window, stopped once ${stage}: counted once`, async () => {
      await withRuntime(CPU, async (rt, events) => {
        const k = await rt.launch("victim", {
          actor: "echo",
          autoActivate: false,
        });
        await k.send(echo(1));
        stopInside(k, "handlerError", stage);
        (kernelInternals(k).host as CpuActorHost).injectDeath(
          "stopped while committed",
        );
        await pollUntil(() => events.some((e) => e.type === "restart"), {
          timeoutMs: 10_000,
        });
        await k.activate();
        const m = await settle(k);
        await delay(50);
        assertAccounted(k.metrics());
        assert.equal(m.sent, 1);
        const letters = rt.deadLetters.drain();
        if (stage === "committed") {
          // Not counted yet: left at the head, and the handler (which does
          // not fail this time) processes it after the restart.
          assert.equal(m.processed, 1);
          assert.equal(letters.length, 0);
        } else {
          assert.equal(m.processed, 0);
          assert.equal(m.deadLettered, 1);
        }
        if (stage === "counted") {
          // The loop had counted it but not reported it: the host does.
          assert.equal(letters.length, 1);
          assert.equal(letters[0].reason, "handler-error");
          assert.match(letters[0].detail ?? "", /stopped before it reported/);
          assert.deepEqual(letters[0].message.value, echo(1));
        }
      });
    });
  }
});

describe("terminate under load", () => {
  for (const abort of [false, true]) {
    test(`terminate({ abort: ${abort} }) while producers are sending: every accepted send is ${abort ? "processed or dead-lettered" : "processed"}`, async () => {
      await withRuntime(CPU, async (rt) => {
        const k = await rt.launch("sink", {
          actor: fixture("sink_actor"),
          queueCapacity: 64,
        });
        let accepted = 0;
        const unexpected: unknown[] = [];
        const producer = async (id: number) => {
          for (let i = 0;; i++) {
            try {
              await k.send(echo(id * 1_000_000 + i, 20), { timeoutMs: 10_000 });
              accepted++;
            } catch (error) {
              if (error instanceof InvalidStateError) return;
              unexpected.push(error);
              return;
            }
          }
        };
        const producers = Array.from({ length: 8 }, (_, id) => producer(id));
        await pollUntil(() => accepted >= 500, { timeoutMs: 10_000 });
        await k.terminate({ abort, timeoutMs: 10_000 });
        await Promise.all(producers);
        assert.deepEqual(unexpected, []);
        const m = k.metrics();
        assert.equal(m.state, "terminated");
        assertAccounted(m);
        assert.equal(m.sent, accepted);
        if (abort) {
          assert.equal(rt.deadLetters.countOf("aborted"), m.deadLettered);
        } else {
          assert.equal(m.deadLettered, 0);
          assert.equal(m.processed, accepted);
        }
        await assert.rejects(k.send(echo(0)), InvalidStateError);
      });
    });
  }
});

describe("queue-full storms", () => {
  test(
    "many senders on a tiny queue: each send succeeds or fails with QueueFullError, and the accounting holds",
    {
      timeout: 60_000,
    },
    async () => {
      await withRuntime(CPU, async (rt) => {
        const k = await rt.launch("sink", {
          actor: fixture("sink_actor"),
          queueCapacity: 2,
        });
        let accepted = 0;
        let refused = 0;
        let full = 0;
        const unexpected: unknown[] = [];
        const sender = async (id: number) => {
          for (let i = 0; i < 60; i++) {
            const message = echo(id * 1_000 + i, 50);
            const mode = (id + i) % 4;
            try {
              if (mode === 0) {
                if (k.trySend(message)) accepted++;
                else refused++;
                await delay(0);
                continue;
              }
              const timeoutMs = mode === 1 ? 0 : mode === 2 ? 3 : 5_000;
              await k.send(message, { timeoutMs });
              accepted++;
            } catch (error) {
              if (error instanceof QueueFullError) full++;
              else unexpected.push(error);
            }
          }
        };
        await Promise.all(Array.from({ length: 32 }, (_, id) => sender(id)));
        assert.deepEqual(unexpected, []);
        assert.equal(accepted + refused + full, 32 * 60);
        assert.ok(full + refused > 0, "the storm never filled the queue");
        const m = await settle(k);
        assertAccounted(m);
        assert.equal(m.sent, accepted);
        assert.equal(m.processed, accepted);
      });
    },
  );
});
