import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  DEAD_LETTER_REASONS,
  type DeadLetter,
  DeadLetterQueue,
  type DeadLetterReason,
  DEFAULT_DEAD_LETTER_CAPACITY,
} from "../src/dead_letter.ts";
import { RingKernelError } from "../src/errors.ts";

function assertAccounted<M>(queue: DeadLetterQueue<M>): void {
  assert.equal(
    queue.totalCount,
    queue.size + queue.drainedCount + queue.evictedCount,
  );
}

describe("DeadLetterQueue", () => {
  test("lists the required reasons", () => {
    for (
      const reason of [
        "queue-full",
        "actor-terminated",
        "aborted",
        "unknown-target",
        "handler-error",
        "expired",
        "invalid-message",
      ]
    ) {
      assert.ok(
        (DEAD_LETTER_REASONS as readonly string[]).includes(reason),
        reason,
      );
    }
  });

  test("stores letters with their details and a timestamp", () => {
    let now = 1000;
    const queue = new DeadLetterQueue<string>({ clock: () => now });
    assert.equal(queue.capacity, DEFAULT_DEAD_LETTER_CAPACITY);
    const first = queue.push({
      message: "m1",
      reason: "queue-full",
      actor: "a",
    });
    now = 2000;
    const second = queue.push({
      message: "m2",
      reason: "handler-error",
      actor: "b",
      detail: "boom",
    });
    const third = queue.push({
      message: "m3",
      reason: "expired",
      actor: "c",
      timestamp: 5,
    });
    assert.deepEqual(first, {
      message: "m1",
      reason: "queue-full",
      actor: "a",
      timestamp: 1000,
      sequence: 0,
    });
    assert.equal("detail" in first, false);
    assert.equal(second.detail, "boom");
    assert.equal(second.timestamp, 2000);
    assert.equal(second.sequence, 1);
    assert.equal(third.timestamp, 5);
    assert.equal(queue.size, 3);
    assert.equal(queue.totalCount, 3);
    assert.equal(queue.peek(), first);
    assert.equal(queue.size, 3);
  });

  test("drains oldest first, partially or fully", () => {
    const queue = new DeadLetterQueue<number>();
    for (let i = 0; i < 5; i++) {
      queue.push({ message: i, reason: "aborted", actor: "x" });
    }
    assert.deepEqual(queue.drain(2).map((l) => l.message), [0, 1]);
    assert.equal(queue.peek()?.message, 2);
    assert.deepEqual(queue.drain().map((l) => l.message), [2, 3, 4]);
    assert.deepEqual(queue.drain(), []);
    assert.equal(queue.peek(), undefined);
    assert.equal(queue.drainedCount, 5);
    assertAccounted(queue);
  });

  test("evicts the oldest beyond capacity and counts every eviction", () => {
    const queue = new DeadLetterQueue<number>({ capacity: 3 });
    for (let i = 0; i < 10; i++) {
      queue.push({ message: i, reason: "queue-full", actor: "x" });
      assertAccounted(queue);
      assert.ok(queue.size <= 3);
    }
    assert.equal(queue.evictedCount, 7);
    assert.deepEqual(queue.drain().map((l) => l.message), [7, 8, 9]);
    assertAccounted(queue);
  });

  test("keeps FIFO order across wrap-around with interleaved drains", () => {
    const queue = new DeadLetterQueue<number>({ capacity: 4 });
    const expected: number[] = [];
    const received: number[] = [];
    let next = 0;
    // A deterministic mix of pushes and partial drains.
    for (let round = 0; round < 50; round++) {
      const pushes = (round * 7) % 5;
      for (let i = 0; i < pushes; i++) {
        queue.push({ message: next, reason: "expired", actor: "x" });
        expected.push(next++);
        if (expected.length > 4) expected.shift(); // evicted
      }
      const take = (round * 3) % 4;
      const drained = queue.drain(take).map((l) => l.message);
      assert.deepEqual(drained, expected.splice(0, drained.length));
      received.push(...drained);
      assertAccounted(queue);
    }
    assert.equal(queue.totalCount, next);
    assert.ok(received.length > 0);
    for (let i = 1; i < received.length; i++) {
      assert.ok(received[i] > received[i - 1]);
    }
  });

  test("capacity 0 keeps nothing but counts everything", () => {
    const queue = new DeadLetterQueue<string>({ capacity: 0 });
    const seen: string[] = [];
    queue.onDeadLetter((letter) => seen.push(letter.message));
    queue.push({ message: "a", reason: "aborted", actor: "x" });
    queue.push({ message: "b", reason: "aborted", actor: "x" });
    assert.equal(queue.size, 0);
    assert.equal(queue.peek(), undefined);
    assert.deepEqual(queue.drain(), []);
    assert.equal(queue.evictedCount, 2);
    assert.deepEqual(seen, ["a", "b"]);
    assertAccounted(queue);
  });

  test("counts per reason, including evicted letters", () => {
    const queue = new DeadLetterQueue<number>({ capacity: 1 });
    const reasons: DeadLetterReason[] = [
      "queue-full",
      "queue-full",
      "unknown-target",
      "invalid-message",
    ];
    reasons.forEach((reason, i) =>
      queue.push({ message: i, reason, actor: "x" })
    );
    assert.equal(queue.countOf("queue-full"), 2);
    assert.equal(queue.countOf("unknown-target"), 1);
    assert.equal(queue.countOf("aborted"), 0);
    const counts = queue.counts();
    assert.deepEqual(
      Object.keys(counts).sort(),
      [...DEAD_LETTER_REASONS].sort(),
    );
    assert.equal(counts["invalid-message"], 1);
    counts["queue-full"] = 100;
    assert.equal(queue.countOf("queue-full"), 2);
  });

  test("listeners see every letter and can be removed", () => {
    const queue = new DeadLetterQueue<string>();
    const seen: DeadLetter<string>[] = [];
    const listening = queue.onDeadLetter((letter) => seen.push(letter));
    const stored = queue.push({ message: "a", reason: "aborted", actor: "x" });
    assert.equal(listening.unsubscribe(), true);
    assert.equal(listening.unsubscribe(), false);
    queue.push({ message: "b", reason: "aborted", actor: "x" });
    assert.deepEqual(seen, [stored]);
    {
      using _scoped = queue.onDeadLetter((letter) => seen.push(letter));
      queue.push({ message: "c", reason: "aborted", actor: "x" });
    }
    queue.push({ message: "d", reason: "aborted", actor: "x" });
    assert.deepEqual(seen.map((letter) => letter.message), ["a", "c"]);
  });

  test("a failing listener neither loses the letter nor stops the others", () => {
    const failures: unknown[] = [];
    const queue = new DeadLetterQueue<string>({
      onListenerError: (error) => failures.push(error),
    });
    const seen: string[] = [];
    queue.onDeadLetter(() => {
      throw new Error("listener");
    });
    queue.onDeadLetter((letter) => seen.push(letter.message));
    queue.push({ message: "a", reason: "aborted", actor: "x" });
    assert.equal(queue.size, 1);
    assert.deepEqual(seen, ["a"]);
    assert.equal(failures.length, 1);
    assert.equal((failures[0] as Error).message, "listener");
  });

  test("a listener may remove itself while being called", () => {
    const queue = new DeadLetterQueue<string>();
    const seen: string[] = [];
    const once = queue.onDeadLetter(() => {
      seen.push("once");
      once.unsubscribe();
    });
    queue.onDeadLetter(() => seen.push("always"));
    queue.push({ message: "a", reason: "aborted", actor: "x" });
    queue.push({ message: "b", reason: "aborted", actor: "x" });
    assert.deepEqual(seen, ["once", "always", "always"]);
  });

  test("rejects bad input with typed errors and records nothing", () => {
    const queue = new DeadLetterQueue<string>();
    assert.throws(
      () =>
        queue.push({
          message: "a",
          reason: "lost" as DeadLetterReason,
          actor: "x",
        }),
      (error: unknown) => {
        assert.ok(error instanceof RingKernelError);
        assert.match(error.message, /unknown dead-letter reason "lost"/);
        return true;
      },
    );
    assert.throws(
      () =>
        queue.push({
          message: "a",
          reason: "aborted",
          actor: 3 as unknown as string,
        }),
      RingKernelError,
    );
    assert.throws(() => queue.drain(-1), RingKernelError);
    assert.throws(() => queue.drain(1.5), RingKernelError);
    assert.throws(
      () => queue.onDeadLetter(null as unknown as () => void),
      RingKernelError,
    );
    assert.equal(queue.totalCount, 0);
    assert.equal(queue.countOf("aborted"), 0);
    for (const capacity of [-1, 1.5, NaN, Infinity]) {
      assert.throws(() => new DeadLetterQueue({ capacity }), RingKernelError);
    }
  });
});
