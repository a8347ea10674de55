// Cluster membership on a real nats-server: actors launched `public` on one
// runtime are reached by name from another (call, send, receive), local
// traffic stays local, typed errors (unknown name, deadline, full outbound
// buffer, a node killed mid-call), HLC stamps merged with the skew bound, and
// topics bridged both ways with MQTT wildcards.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { headers } from "@nats-io/nats-core";
import { RingKernel } from "../src/runtime.ts";
import { EchoMessage } from "../src/actors/schemas.ts";
import {
  ClockSkewError,
  InvalidOptionError,
  InvalidStateError,
  QueueFullError,
  TimeoutError,
  UnknownActorError,
} from "../src/errors.ts";
import { ENVELOPE_SIZE, writeEnvelopeFor } from "../src/envelope.ts";
import { ClusterConnectionError, RemoteActor } from "../cluster.ts";
import { RemoteActorGoneError } from "../src/cluster/errors.ts";
import { Subjects } from "../src/cluster/subjects.ts";
import { describeSchema, ERROR_HEADER } from "../src/cluster/wire.ts";
import { delay } from "../src/async.ts";
import { echo, fixture, isDeno } from "./helpers.ts";
import { NATS_SKIP, NatsServer } from "./fixtures/nats_server.ts";
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";

describe("cluster: remote actors and topics", { skip: NATS_SKIP }, () => {
  let server: NatsServer;
  let a: RingKernel;
  let b: RingKernel;
  const node = (name: string, extra: Record<string, unknown> = {}) =>
    RingKernel.create({
      backend: "cpu",
      quiet: true,
      cluster: { servers: server.url, name, ...extra },
    });

  before(async () => {
    server = await NatsServer.start();
    a = await node("a");
    b = await node("b");
  });

  after(async () => {
    await Promise.allSettled([
      a?.shutdown({ timeoutMs: 2000 }),
      b?.shutdown({ timeoutMs: 2000 }),
    ]);
    await server?.dispose();
  });

  test("call, send and receive reach an actor on another node", async () => {
    await a.launch("echo", { actor: "echo", public: true });
    assert.deepEqual(a.cluster!.served, ["echo"]);
    const remote = await b.cluster!.actor<
      typeof EchoMessage.spec,
      typeof EchoMessage.spec
    >("echo");
    assert.ok(remote instanceof RemoteActor);
    assert.equal(remote.node, "a");
    assert.equal(remote.inputSchema.typeId, EchoMessage.typeId);
    const reply = await remote.call(echo(1, 2.5, 7), { timeoutMs: 5000 });
    assert.deepEqual(reply, echo(1, 2.5, 7));
    await remote.send(echo(2, 3.5, 8), { timeoutMs: 5000 });
    assert.deepEqual(
      await remote.receive({ timeoutMs: 5000 }),
      echo(2, 3.5, 8),
    );
    // Sequence-checked: 200 calls in flight at once, each its own answer.
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) => remote.call(echo(i, i))),
    );
    replies.forEach((r, i) => assert.equal(r.seq, BigInt(i)));
  });

  test("a local actor is the local kernel: no NATS hop", async () => {
    const before = a.cluster!.metrics().requests;
    const local = await a.cluster!.actor("echo");
    assert.equal(local, a.getKernel("echo"));
    await (local as ReturnType<typeof a.getKernel>).call(echo(1));
    assert.equal(a.cluster!.metrics().requests, before);
  });

  test("an unknown name fails at once with UnknownActorError", async () => {
    const started = Date.now();
    await assert.rejects(b.cluster!.actor("nobody"), UnknownActorError);
    assert.ok(Date.now() - started < 2000);
    // A handle whose actor terminated: the name is no longer served.
    await a.launch("brief", { actor: "echo", public: true });
    const brief = await b.cluster!.remote("brief");
    await a.getKernel("brief").terminate();
    await assert.rejects(brief.call(echo(1)), UnknownActorError);
  });

  test("a name served by another node is refused; public needs a cluster", async () => {
    await assert.rejects(
      b.launch("echo", { actor: "echo", public: true }),
      InvalidStateError,
    );
    assert.deepEqual(b.listKernels(), []);
    await using lone = await RingKernel.create({ backend: "cpu", quiet: true });
    await assert.rejects(
      lone.launch("x", { actor: "echo", public: true }),
      InvalidOptionError,
    );
    assert.equal(lone.cluster, undefined);
  });

  test("deadlines: TimeoutError from a slow remote actor", async () => {
    await a.launch("slow", { actor: fixture("slow_actor"), public: true });
    const slow = await b.cluster!.remote("slow");
    await assert.rejects(
      slow.call(echo(1, 300), { timeoutMs: 50 }),
      TimeoutError,
    );
    // The look-up has its deadline too, and an abort cuts a call short.
    const controller = new AbortController();
    const call = slow.call(echo(2, 300), { signal: controller.signal });
    controller.abort(new Error("stop"));
    await assert.rejects(call, /stop/);
  });

  test("backpressure: the outbound bound fails with QueueFullError", async () => {
    await using c = await node("c", { maxInFlight: 2 });
    const slow = await c.cluster!.remote("slow");
    const first = [slow.call(echo(1, 200)), slow.call(echo(2, 200))];
    await assert.rejects(
      slow.call(echo(3, 1), { timeoutMs: 0 }),
      QueueFullError,
    );
    await assert.rejects(
      slow.call(echo(4, 1), { timeoutMs: 20 }),
      QueueFullError,
    );
    await Promise.all(first);
    // Room again once they are answered.
    assert.equal((await slow.call(echo(5, 1))).seq, 5n);
  });

  test("HLC: a reply's stamp moves the caller's clock; one beyond the skew bound is refused", async () => {
    const subjects = new Subjects("default");
    const stamped = (value: number, aheadMs: number) => {
      const slot = new Uint8Array(ENVELOPE_SIZE + EchoMessage.size);
      const view = new DataView(slot.buffer);
      writeEnvelopeFor(view, 0, EchoMessage, {
        timestamp: { physicalMs: Date.now() + aheadMs, logical: 0, nodeId: 0 },
      });
      EchoMessage.encode(view, ENVELOPE_SIZE, echo(1, value));
      return slot;
    };
    // A hand-made node serving "clocky": its replies are stamped ahead.
    const nc = await connect({ servers: server.url });
    try {
      let aheadMs = 10_000;
      nc.subscribe(subjects.actorAll("clocky"), {
        callback: (_e, m) => {
          if (m.subject.endsWith(".describe")) {
            const d = {
              node: "hand",
              input: describeSchema(EchoMessage),
              output: describeSchema(EchoMessage),
            };
            m.respond(JSON.stringify(d));
          } else m.respond(stamped(1, aheadMs));
        },
      });
      const seen: bigint[] = [];
      nc.subscribe(subjects.topic("clock/out"), {
        callback: (_e, m) =>
          void seen.push(
            new DataView(m.data.buffer, m.data.byteOffset).getBigUint64(
              16,
              true,
            ),
          ),
      });
      await nc.flush();
      const clocky = await b.cluster!.remote("clocky");
      const sentAt = Date.now();
      await clocky.call(echo(1));
      b.publish("clock/out", echo(2), { schema: EchoMessage });
      const deadline = Date.now() + 5000;
      while (seen.length === 0 && Date.now() < deadline) await delay(10);
      const physicalMs = Number(seen[0] >> 16n);
      assert.ok(
        physicalMs >= sentAt + 10_000,
        `the publication after the reply is stamped ${
          physicalMs - sentAt
        } ms ahead`,
      );
      aheadMs = 3_600_000;
      await assert.rejects(clocky.call(echo(2)), ClockSkewError);
      // A request stamped beyond the bound is refused by the serving node.
      const h = headers();
      h.set("Rk-Timeout", "1000");
      const reply = await nc.request(
        subjects.actor("echo", "call"),
        stamped(1, 3_600_000),
        { timeout: 5000, headers: h },
      );
      assert.equal(reply.headers?.get(ERROR_HEADER), "clock-skew");
      // A topic message from the future is dropped, not delivered.
      const got: unknown[] = [];
      using _sub = a.subscribe("skew/#", (m) => got.push(m));
      const rejected = a.cluster!.metrics().skewRejected;
      nc.publish(subjects.topic("skew/x"), stamped(1, 3_600_000));
      await nc.flush();
      await delay(100);
      assert.deepEqual(got, []);
      assert.equal(a.cluster!.metrics().skewRejected, rejected + 1);
    } finally {
      await nc.close();
    }
  });

  test("topics: host and actor subscribers get other nodes' publications, wildcards mapped", async () => {
    const got: Array<[string, unknown]> = [];
    using _s1 = b.subscribe("sensors/+/temp", (m, t) => got.push([t, m]));
    using _s2 = b.subscribe("odd/#", (m, t) => got.push([t, m]));
    const k = await b.launch("listener", {
      actor: fixture("topic_actor"),
      config: { filter: "jobs/#" },
    });
    await k.call(echo(0, 0, 0)); // subscribes
    await delay(50);
    a.publish("sensors/k1/temp", echo(1, 21.5, 1), { schema: EchoMessage });
    a.publish("sensors/k1/humidity", echo(2), { schema: EchoMessage });
    a.publish("odd", echo(3), { schema: EchoMessage });
    a.publish("odd/with.dots and spaces//~", echo(4), { schema: EchoMessage });
    a.publish("jobs/x", echo(5, 5, 1), { schema: EchoMessage });
    const deadline = Date.now() + 5000;
    while (got.length < 3 && Date.now() < deadline) await delay(10);
    assert.deepEqual(got.map(([t]) => t), [
      "sensors/k1/temp",
      "odd",
      "odd/with.dots and spaces//~",
    ]);
    assert.deepEqual(got[0][1], echo(1, 21.5, 1));
    assert.deepEqual(await k.receive({ timeoutMs: 5000 }), echo(5, 5, 1));
    // Nothing comes back to the publishing node from NATS.
    const mine: unknown[] = [];
    using _s3 = a.subscribe("echoes/#", (m) => mine.push(m));
    a.publish("echoes/x", echo(6), { schema: EchoMessage });
    await delay(100);
    assert.equal(mine.length, 1);
  });

  test("a node killed mid-call: RemoteActorGoneError, not a timeout", async () => {
    const script = fileURLToPath(
      new URL("./fixtures/nats_cluster_node.ts", import.meta.url),
    );
    const child = spawn(
      process.execPath,
      isDeno
        ? ["run", "-A", script, server.url, "doomed"]
        : [script, server.url, "doomed"],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    try {
      const doomed = await b.cluster!.waitFor("doomed", { timeoutMs: 20_000 });
      const call = doomed.call(echo(1, 5000), { timeoutMs: 20_000 });
      await delay(200);
      const killedAt = Date.now();
      child.kill("SIGKILL");
      await assert.rejects(call, RemoteActorGoneError);
      assert.ok(
        Date.now() - killedAt < 5000,
        "noticed within the liveness period",
      );
      await assert.rejects(b.cluster!.actor("doomed"), UnknownActorError);
    } finally {
      child.kill("SIGKILL");
    }
  });

  test("a node that cannot reach the servers fails with ClusterConnectionError", async () => {
    await assert.rejects(
      RingKernel.create({
        backend: "cpu",
        quiet: true,
        cluster: { servers: "nats://127.0.0.1:1", timeoutMs: 500 },
      }),
      ClusterConnectionError,
    );
    await assert.rejects(
      RingKernel.create({ backend: "cpu", cluster: { servers: [] } }),
      InvalidOptionError,
    );
  });
});
