import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  type DeliveryErrorContext,
  PubSub,
  subscription,
  type TopicSubscription,
} from "../src/pubsub.ts";
import { InvalidMessageError, RingKernelError } from "../src/errors.ts";

/** A broker whose errors are collected instead of printed. */
function quietBroker<M>() {
  const errors: Array<[unknown, DeliveryErrorContext<M>]> = [];
  const broker = new PubSub<M>({
    onError: (error, context) => errors.push([error, context]),
  });
  return { broker, errors };
}

describe("PubSub", () => {
  test("delivers to matching subscriptions and counts deliveries", () => {
    const { broker } = quietBroker<number>();
    const got: string[] = [];
    broker.subscribe("sensors/+/temp", (m, t) => got.push(`a:${t}:${m}`));
    broker.subscribe("sensors/#", (m, t) => got.push(`b:${t}:${m}`));
    broker.subscribe("other", (m, t) => got.push(`c:${t}:${m}`));
    assert.equal(broker.publish("sensors/k1/temp", 21), 2);
    assert.deepEqual(got, ["a:sensors/k1/temp:21", "b:sensors/k1/temp:21"]);
    assert.equal(broker.publish("nobody/listens", 0), 0);
    assert.equal(broker.size, 3);
  });

  test("delivers in subscription order", () => {
    const { broker } = quietBroker<string>();
    const order: number[] = [];
    broker.subscribe("#", () => order.push(0));
    broker.subscribe("a/b", () => order.push(1));
    broker.subscribe("a/+", () => order.push(2));
    broker.subscribe("a/#", () => order.push(3));
    broker.publish("a/b", "x");
    assert.deepEqual(order, [0, 1, 2, 3]);
  });

  test("unsubscribe is idempotent and stops delivery", () => {
    const { broker } = quietBroker<string>();
    let count = 0;
    const subscription = broker.subscribe("t", () => count++);
    assert.equal(subscription.active, true);
    assert.equal(broker.publish("t", "x"), 1);
    assert.equal(subscription.unsubscribe(), true);
    assert.equal(subscription.unsubscribe(), false);
    assert.equal(subscription.active, false);
    assert.equal(broker.publish("t", "x"), 0);
    assert.equal(count, 1);
    assert.equal(broker.size, 0);
  });

  test("a subscription is Disposable: `using` ends it with its block", () => {
    const { broker } = quietBroker<string>();
    let count = 0;
    {
      using subscription = broker.subscribe("t", () => count++);
      assert.equal(broker.publish("t", "x"), 1);
      assert.equal(subscription.active, true);
    }
    assert.equal(broker.publish("t", "x"), 0);
    assert.equal(broker.size, 0);
    const later = broker.subscribe("t", () => count++);
    later[Symbol.dispose]();
    later[Symbol.dispose]();
    assert.equal(later.unsubscribe(), false);
    assert.equal(count, 1);
  });

  test("subscription() makes a Subscription that cancels once", () => {
    let cancelled = 0;
    const s = subscription(() => cancelled++);
    assert.equal(s.active, true);
    assert.equal(s.unsubscribe(), true);
    assert.equal(s.active, false);
    assert.equal(s.unsubscribe(), false);
    s[Symbol.dispose]();
    assert.equal(cancelled, 1);
    {
      using _scoped = subscription(() => cancelled++);
    }
    assert.equal(cancelled, 2);
  });

  test("a subscriber id receives a message once across overlapping filters", () => {
    const { broker } = quietBroker<string>();
    const got: string[] = [];
    broker.subscribe("a/#", (m) => got.push(`first:${m}`), {
      subscriberId: "actor-1",
    });
    broker.subscribe("a/+", (m) => got.push(`second:${m}`), {
      subscriberId: "actor-1",
    });
    broker.subscribe("a/+", (m) => got.push(`other:${m}`), {
      subscriberId: "actor-2",
    });
    assert.equal(broker.publish("a/b", "x"), 2);
    assert.deepEqual(got, ["first:x", "other:x"]);
    // Of actor-1's filters only "a/#" matches "a/b/c".
    got.length = 0;
    assert.equal(broker.publish("a/b/c", "y"), 1);
    assert.deepEqual(got, ["first:y"]);
  });

  test("anonymous subscriptions are delivered separately", () => {
    const { broker } = quietBroker<string>();
    let count = 0;
    const handler = () => {
      count++;
    };
    broker.subscribe("a/#", handler);
    broker.subscribe("a/+", handler);
    assert.equal(broker.publish("a/b", "x"), 2);
    assert.equal(count, 2);
  });

  test("subscriptionsOf and unsubscribeAll work by subscriber id", () => {
    const { broker } = quietBroker<string>();
    const s1 = broker.subscribe("a", () => {}, { subscriberId: "k" });
    const s2 = broker.subscribe("b/#", () => {}, { subscriberId: "k" });
    broker.subscribe("c", () => {}, { subscriberId: "other" });
    broker.subscribe("c", () => {});
    assert.deepEqual(broker.subscriptionsOf("k"), [s1, s2]);
    assert.deepEqual(broker.subscriptionsOf("missing"), []);
    assert.equal(broker.unsubscribeAll("k"), 2);
    assert.equal(broker.unsubscribeAll("k"), 0);
    assert.equal(s1.active, false);
    assert.equal(s2.active, false);
    assert.equal(s1.unsubscribe(), false);
    assert.equal(broker.size, 2);
    assert.equal(broker.publish("a", "x"), 0);
    assert.equal(broker.publish("c", "x"), 2);
  });

  test("a throwing subscriber does not stop the others", () => {
    const { broker, errors } = quietBroker<string>();
    const got: string[] = [];
    broker.subscribe("t", () => got.push("before"));
    const bad = broker.subscribe("t", () => {
      throw new Error("boom");
    }, { subscriberId: "bad" });
    broker.subscribe("t", () => got.push("after"));
    assert.equal(broker.publish("t", "m"), 2);
    assert.deepEqual(got, ["before", "after"]);
    assert.equal(errors.length, 1);
    const [error, context] = errors[0];
    assert.equal((error as Error).message, "boom");
    assert.equal(context.topic, "t");
    assert.equal(context.message, "m");
    assert.equal(context.subscription, bad);
    assert.equal(broker.errorCount, 1);
  });

  test("a rejected promise from a subscriber goes to onError", async () => {
    const { broker, errors } = quietBroker<string>();
    broker.subscribe("t", () => Promise.reject(new Error("later")));
    assert.equal(broker.publish("t", "m"), 1);
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(errors.length, 1);
    assert.equal((errors[0][0] as Error).message, "later");
  });

  test("a throwing onError hook does not break delivery", () => {
    const broker = new PubSub<string>({
      onError: () => {
        throw new Error("hook");
      },
    });
    const originalConsoleError = console.error;
    const printed: unknown[][] = [];
    console.error = (...args: unknown[]) => printed.push(args);
    try {
      let count = 0;
      broker.subscribe("t", () => {
        throw new Error("boom");
      });
      broker.subscribe("t", () => count++);
      assert.equal(broker.publish("t", "m"), 1);
      assert.equal(count, 1);
      assert.equal(printed.length, 1);
    } finally {
      console.error = originalConsoleError;
    }
  });

  test("the default onError writes to console.error", () => {
    const broker = new PubSub<string>();
    const originalConsoleError = console.error;
    const printed: unknown[][] = [];
    console.error = (...args: unknown[]) => printed.push(args);
    try {
      broker.subscribe("t", () => {
        throw new Error("boom");
      }, { subscriberId: "actor-9" });
      assert.equal(broker.publish("t", "m"), 0);
    } finally {
      console.error = originalConsoleError;
    }
    assert.equal(printed.length, 1);
    assert.match(String(printed[0][0]), /actor-9/);
  });

  test("unsubscribing during delivery skips the removed subscription", () => {
    const { broker } = quietBroker<string>();
    const got: string[] = [];
    const later: { subscription?: TopicSubscription } = {};
    broker.subscribe("t", () => {
      got.push("first");
      later.subscription?.unsubscribe();
    });
    later.subscription = broker.subscribe("t", () => got.push("second"));
    assert.equal(broker.publish("t", "m"), 1);
    assert.deepEqual(got, ["first"]);
  });

  test("subscribing during delivery takes effect from the next publish", () => {
    const { broker } = quietBroker<string>();
    const got: string[] = [];
    broker.subscribe("t", () => {
      got.push("outer");
      if (got.length === 1) broker.subscribe("t", () => got.push("inner"));
    });
    assert.equal(broker.publish("t", "m"), 1);
    assert.deepEqual(got, ["outer"]);
    assert.equal(broker.publish("t", "m"), 2);
    assert.deepEqual(got, ["outer", "outer", "inner"]);
  });

  test("hasSubscribers reflects the current subscriptions", () => {
    const { broker } = quietBroker<string>();
    assert.equal(broker.hasSubscribers("a/b"), false);
    const s = broker.subscribe("a/+", () => {});
    assert.equal(broker.hasSubscribers("a/b"), true);
    assert.equal(broker.hasSubscribers("$SYS/b"), false);
    s.unsubscribe();
    assert.equal(broker.hasSubscribers("a/b"), false);
  });

  test("clear cancels everything", () => {
    const { broker } = quietBroker<string>();
    const a = broker.subscribe("#", () => {});
    const b = broker.subscribe("x", () => {}, { subscriberId: "k" });
    broker.clear();
    assert.equal(a.active, false);
    assert.equal(b.active, false);
    assert.equal(broker.size, 0);
    assert.equal(broker.publish("x", "m"), 0);
    assert.deepEqual(broker.subscriptionsOf("k"), []);
  });

  test("rejects bad input with typed errors and changes nothing", () => {
    const { broker } = quietBroker<string>();
    broker.subscribe("ok", () => {});
    assert.throws(
      () => broker.subscribe("a/#/b", () => {}),
      InvalidMessageError,
    );
    assert.throws(() => broker.publish("a/+", "m"), InvalidMessageError);
    assert.throws(() => broker.publish("", "m"), InvalidMessageError);
    assert.throws(
      () => broker.subscribe("a", () => {}, { subscriberId: "" }),
      RingKernelError,
    );
    assert.throws(
      () => broker.subscribe("a", "nope" as unknown as () => void),
      RingKernelError,
    );
    assert.equal(broker.size, 1);
  });
});
