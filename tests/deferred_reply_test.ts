// Deferred replies of CPU actors (ctx.replyTo): a call answered from a later
// message resolves with that answer; one answered after its deadline is
// dead-lettered as expired; the accounting counts the deferred message once.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { TimeoutError } from "../src/errors.ts";
import { pollUntil } from "../src/async.ts";
import { assertAccounted, echo, settle, withRuntime } from "./helpers.ts";

const deferring = {
  module: new URL("./fixtures/deferring_actor.ts", import.meta.url),
};

describe("deferred replies (ctx.replyTo)", () => {
  test("a call answered from a later message resolves with the deferred answer; the later call with its own", async () => {
    await withRuntime({ backend: "cpu", quiet: true }, async (rt) => {
      const k = await rt.launch("deferring", { actor: deferring });
      for (let round = 1; round <= 3; round++) {
        const first = k.call(echo(round, round, 1), { timeoutMs: 10_000 });
        await pollUntil(() => k.metrics().processed === 2 * round - 1, {
          timeoutMs: 10_000,
        });
        const second = await k.call(echo(10 + round, round, 2), {
          timeoutMs: 10_000,
        });
        assert.deepEqual(second, {
          seq: BigInt(10 + round),
          value: 2 * round,
          tag: 2,
        });
        assert.deepEqual(await first, {
          seq: BigInt(round),
          value: round + 100,
          tag: 1,
        });
      }
      const m = await settle(k);
      assertAccounted(m);
      assert.equal(m.sent, 6);
      assert.equal(m.processed, 6);
      assert.equal(m.deadLettered, 0);
      assert.equal(m.pendingReplies, 0);
      assert.equal(rt.deadLetters.size, 0);
    });
  });

  test("a deferred reply after the call's deadline is dead-lettered as expired", async () => {
    await withRuntime({ backend: "cpu", quiet: true }, async (rt) => {
      const k = await rt.launch("deferring", { actor: deferring });
      await assert.rejects(
        k.call(echo(1, 1, 1), { timeoutMs: 100 }),
        TimeoutError,
      );
      await k.send(echo(2, 2, 2));
      // The later message's own reply has no call: it is received.
      assert.deepEqual(await k.receive({ timeoutMs: 10_000 }), {
        seq: 2n,
        value: 4,
        tag: 2,
      });
      await pollUntil(() => rt.deadLetters.countOf("expired") === 1, {
        timeoutMs: 10_000,
      });
      const [letter] = rt.deadLetters.drain();
      assert.equal(letter.reason, "expired");
      assert.equal(letter.actor, "deferring");
      const m = await settle(k);
      assertAccounted(m);
      assert.equal(m.sent, 2);
      assert.equal(m.processed, 2);
      assert.equal(m.deadLettered, 0);
      assert.equal(k.tryReceive(), undefined);
    });
  });

  test("a reply to an id no call had is received like any reply", async () => {
    await withRuntime({ backend: "cpu", quiet: true }, async (rt) => {
      const k = await rt.launch("deferring", { actor: deferring });
      await k.send(echo(1000, 5, 3));
      assert.deepEqual(await k.receive({ timeoutMs: 10_000 }), {
        seq: 1000n,
        value: 4,
        tag: 3,
      });
      const m = await settle(k);
      assertAccounted(m);
      assert.equal(m.processed, 1);
      assert.equal(rt.deadLetters.size, 0);
    });
  });
});
