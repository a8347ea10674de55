// The nats-server fixture: a node that accepts clients, a JetStream store that
// survives a kill -9 and a restart on the same port, a three-node cluster
// whose nodes route messages between each other, and a stop by PID.
import { after, describe, test } from "node:test";
import process from "node:process";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { NATS_SKIP, NatsCluster, NatsServer } from "./fixtures/nats_server.ts";

describe("nats-server fixture", { skip: NATS_SKIP }, () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  test("a node accepts a client; stop() ends the process by its PID", async () => {
    const server = await NatsServer.start();
    cleanups.push(() => server.dispose());
    const pid = server.pid!;
    assert.ok(pid > 0);
    const nc = await connect({ servers: server.url, timeout: 5000 });
    const sub = nc.subscribe("fixture.echo", { max: 1 });
    nc.publish("fixture.echo", "hi");
    for await (const m of sub) assert.equal(m.string(), "hi");
    await nc.close();
    await server.stop();
    assert.equal(server.running, false);
    assert.throws(() => process.kill(pid, 0), /ESRCH|no such process/i);
  });

  test("JetStream keeps a stream across kill -9 and a restart on the same port", async () => {
    const server = await NatsServer.start({ jetstream: true });
    cleanups.push(() => server.dispose());
    let nc = await connect({ servers: server.url, timeout: 5000 });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "FIXTURE", subjects: ["fixture.js.>"] });
    const js = jetstream(nc);
    for (let i = 0; i < 5; i++) await js.publish("fixture.js.a", `m${i}`);
    await nc.close();
    const port = server.port;
    await server.kill();
    assert.equal(server.running, false);
    await server.restart();
    assert.equal(server.port, port);
    nc = await connect({ servers: server.url, timeout: 5000 });
    const info = await (await jetstreamManager(nc)).streams.info("FIXTURE");
    assert.equal(info.state.messages, 5);
    await nc.close();
  });

  test("a three-node cluster routes between its nodes", async () => {
    const cluster = await NatsCluster.start({ size: 3 });
    cleanups.push(() => cluster.dispose());
    assert.equal(new Set(cluster.urls).size, 3);
    const a = await connect({ servers: cluster.urls[0], timeout: 5000 });
    const c = await connect({ servers: cluster.urls[2], timeout: 5000 });
    const sub = c.subscribe("fixture.route", { max: 1 });
    await c.flush();
    // Interest crosses the route asynchronously: publish until it arrives.
    const got = (async () => {
      for await (const m of sub) return m.string();
    })();
    let answer: string | undefined;
    got.then((v) => answer = v);
    for (let i = 0; i < 100 && answer === undefined; i++) {
      a.publish("fixture.route", "across");
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(await got, "across");
    await a.close();
    await c.close();
  });

  test("accounts isolate users; a bad password is refused", async () => {
    const server = await NatsServer.start({
      config: `accounts {
        A: { users: [{ user: a, password: pa }] }
        B: { users: [{ user: b, password: pb }] }
      }`,
    });
    cleanups.push(() => server.dispose());
    const a = await connect({ servers: server.url, user: "a", pass: "pa" });
    const b = await connect({ servers: server.url, user: "b", pass: "pb" });
    const seen: string[] = [];
    const sub = b.subscribe(">", {
      callback: (_e, m) => void seen.push(m.subject),
    });
    await b.flush();
    a.publish("fixture.secret", "x");
    await a.flush();
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(seen, []);
    sub.unsubscribe();
    await assert.rejects(
      connect({ servers: server.url, user: "a", pass: "wrong" }),
      /Authorization|auth/i,
    );
    await a.close();
    await b.close();
  });

  test("a three-node cluster with JetStream gets ready and replicates a stream", async () => {
    const cluster = await NatsCluster.start({ size: 3, jetstream: true });
    cleanups.push(() => cluster.dispose());
    const nc = await connect({ servers: cluster.urls, timeout: 5000 });
    const jsm = await jetstreamManager(nc, { timeout: 10_000 });
    await jsm.streams.add({
      name: "R3",
      subjects: ["fixture.r3.>"],
      num_replicas: 3,
    });
    await jetstream(nc).publish("fixture.r3.a", "x");
    assert.equal((await jsm.streams.info("R3")).state.messages, 1);
    await nc.close();
  });
});
