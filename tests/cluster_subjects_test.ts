// The subject mapping of the cluster: names and topic levels escape into
// NATS tokens one-to-one, MQTT filters map onto NATS wildcards (`+` → `*`,
// `#` → `>` plus its parent), and bad tenants or cluster options are refused.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  checkTenant,
  decodeToken,
  encodeToken,
  Subjects,
} from "../src/cluster/subjects.ts";
import { checkClusterOptions } from "../src/cluster/options.ts";
import { InvalidMessageError, InvalidOptionError } from "../src/errors.ts";
import { topicMatches } from "../src/topic.ts";

const s = new Subjects("t1");

/** Whether the NATS `pattern` matches `subject` (`*` one token, `>` the rest). */
function natsMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const t = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return t.length > i;
    if (i >= t.length) return false;
    if (p[i] !== "*" && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

describe("cluster subjects", () => {
  test("tokens: plain text stays, the rest escapes, one-to-one", () => {
    assert.equal(encodeToken("echo-1_a"), "echo-1_a");
    assert.equal(encodeToken(""), "~");
    assert.equal(encodeToken("a.b c"), "a~2Eb~20c");
    assert.equal(encodeToken("*"), "~2A");
    assert.equal(encodeToken("é"), "~C3~A9");
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), (text) => {
        const token = encodeToken(text);
        assert.match(token, /^[A-Za-z0-9_~-]+$/);
        assert.equal(decodeToken(token), text);
      }),
    );
  });

  test("actor, node and topic subjects", () => {
    assert.equal(s.actor("echo", "call"), "rk.t1.actor.echo.call");
    assert.equal(s.actorAll("a/b"), "rk.t1.actor.a~2Fb.*");
    assert.equal(s.nodePing("n 1"), "rk.t1.node.n~201.ping");
    assert.equal(s.topic("sensors/k1/temp"), "rk.t1.topic.sensors.k1.temp");
    assert.equal(s.topic("/a//"), "rk.t1.topic.~.a.~.~");
    assert.equal(s.topicOf("rk.t1.topic.~.a.~.~"), "/a//");
    assert.equal(s.topicOf("rk.t2.topic.a"), undefined);
    assert.throws(() => s.topic("a/+"), InvalidMessageError);
  });

  test("filters: + is *, # is > and its parent", () => {
    assert.deepEqual(s.filter("sensors/+/temp"), [
      "rk.t1.topic.sensors.*.temp",
    ]);
    assert.deepEqual(s.filter("a/#"), ["rk.t1.topic.a", "rk.t1.topic.a.>"]);
    assert.deepEqual(s.filter("#"), ["rk.t1.topic.>"]);
    assert.throws(() => s.filter("a/#/b"), InvalidMessageError);
  });

  test("a filter's subjects match exactly the topics the filter matches", () => {
    const level = fc.constantFrom("a", "b", "", "x.y", "$s");
    const topic = fc.array(level, { minLength: 1, maxLength: 4 }).map((l) =>
      l.join("/")
    ).filter((t) => t !== "");
    const filter = fc.tuple(
      fc.array(fc.constantFrom("a", "b", "", "+", "x.y"), { maxLength: 3 }),
      fc.boolean(),
    ).map(([levels, hash]) =>
      [...levels, ...(hash || levels.length === 0 ? ["#"] : [])].join("/")
    ).filter((f) => f !== "");
    fc.assert(
      fc.property(filter, topic, (f, t) => {
        if (t.startsWith("$")) return; // MQTT's $ rule is applied locally.
        const subject = s.topic(t);
        const nats = s.filter(f).some((p) => natsMatches(p, subject));
        assert.equal(nats, topicMatches(f, t), `${f} vs ${t}`);
      }),
      { numRuns: 2000 },
    );
  });

  test("tenants and cluster options are checked", () => {
    assert.equal(checkTenant("t", "acme-1"), "acme-1");
    assert.throws(() => checkTenant("t", "a.b"), InvalidOptionError);
    assert.throws(() => new Subjects(""), InvalidOptionError);
    const name = () => "n";
    const ok = checkClusterOptions({ servers: "nats://h:1" }, name);
    assert.deepEqual(ok.servers, ["nats://h:1"]);
    assert.equal(ok.tenant, "default");
    assert.equal(ok.name, "n");
    for (
      const bad of [
        undefined,
        { servers: [] },
        { servers: "x", tenant: "a b" },
        { servers: "x", auth: { user: "u" } },
        { servers: "x", auth: {} },
        { servers: "x", maxInFlight: 0 },
        { servers: "x", timeoutMs: 0 },
        { servers: "x", tls: { caFile: 1 } },
      ]
    ) {
      assert.throws(
        () => checkClusterOptions(bad, name),
        InvalidOptionError,
        JSON.stringify(bad),
      );
    }
  });
});
