// Tenants as NATS accounts on a real nats-server: runtimes of account A (user
// and password, or an nkey) reach each other's actors and topics; a runtime of
// account B, even with the same tenant name, cannot address A's actors, does
// not receive A's topics and reads only its own dead letters; refused
// credentials fail with ClusterAuthError. TLS: a server with a certificate the
// test generates, reached with the CA that signed it and refused without it.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { nkeys } from "@nats-io/nats-core";
import { RingKernel } from "../src/runtime.ts";
import { EchoMessage } from "../src/actors/schemas.ts";
import { UnknownActorError } from "../src/errors.ts";
import {
  type ClusterAuth,
  ClusterAuthError,
  ClusterConnectionError,
  type ClusterTls,
  RemoteActor,
} from "../cluster.ts";
import { delay } from "../src/async.ts";
import { echo } from "./helpers.ts";
import { NATS_SKIP, NatsServer } from "./fixtures/nats_server.ts";
import { makeCertificates, OPENSSL_SKIP } from "./fixtures/nats_tls.ts";

type Echo = typeof EchoMessage.spec;
const TENANT = "shared";

describe("cluster: tenants are NATS accounts", { skip: NATS_SKIP }, () => {
  let server: NatsServer;
  const user = nkeys.createUser();
  const nkeySeed = new TextDecoder().decode(user.getSeed());
  const runtimes: RingKernel[] = [];
  const join = async (name: string, auth: ClusterAuth) => {
    const rt = await RingKernel.create({
      backend: "cpu",
      quiet: true,
      cluster: { servers: server.url, name, tenant: TENANT, auth },
    });
    runtimes.push(rt);
    return rt;
  };
  let a1: RingKernel;
  let a2: RingKernel;
  let b1: RingKernel;

  before(async () => {
    server = await NatsServer.start({
      jetstream: true,
      config: `accounts {
        A: {
          jetstream: enabled
          users: [{ user: alice, password: pa }, { nkey: ${user.getPublicKey()} }]
        }
        B: { jetstream: enabled, users: [{ user: bob, password: pb }] }
      }`,
    });
    a1 = await join("a1", { user: "alice", pass: "pa" });
    a2 = await join("a2", { nkeySeed });
    b1 = await join("b1", { user: "bob", pass: "pb" });
  });

  after(async () => {
    await Promise.allSettled(
      runtimes.map((rt) => rt.shutdown({ timeoutMs: 2000 })),
    );
    await server?.dispose();
  });

  test("one account: an nkey user calls a password user's actor", async () => {
    await a1.launch("vault", { actor: "echo", public: true });
    const vault = await a2.cluster!.actor<Echo, Echo>("vault");
    assert.ok(vault instanceof RemoteActor);
    assert.deepEqual(await vault.call(echo(1, 2, 3)), echo(1, 2, 3));
  });

  test("another account cannot address the actor, even under the same tenant name", async () => {
    await assert.rejects(b1.cluster!.actor("vault"), UnknownActorError);
    await assert.rejects(
      b1.cluster!.waitFor("vault", { timeoutMs: 300 }),
      /timed out/,
    );
    // B may serve its own "vault": a separate name space.
    await b1.launch("vault", { actor: "echo", public: true });
    const own = await b1.cluster!.actor("vault");
    assert.equal(own, b1.getKernel("vault"));
    const fromA = await a2.cluster!.remote<Echo, Echo>("vault");
    assert.equal(fromA.node, "a1");
    // A raw client of account B asking on the very subject of A's actor is
    // answered by B's node: A's is out of reach.
    const raw = await connect({ servers: server.url, user: "bob", pass: "pb" });
    try {
      const reply = await raw.request(
        `rk.${TENANT}.actor.vault.describe`,
        "",
        { timeout: 2000 },
      );
      assert.equal((reply.json() as { node: string }).node, "b1");
    } finally {
      await raw.close();
    }
  });

  test("another account does not receive the tenant's topics; one of its own does", async () => {
    const inA: unknown[] = [];
    const inB: unknown[] = [];
    using _a = a2.subscribe("secrets/#", (m) => inA.push(m));
    using _b = b1.subscribe("secrets/#", (m) => inB.push(m));
    const raw = await connect({ servers: server.url, user: "bob", pass: "pb" });
    const rawSeen: string[] = [];
    raw.subscribe(">", { callback: (_e, m) => void rawSeen.push(m.subject) });
    await raw.flush();
    await delay(50);
    a1.publish("secrets/plan", echo(9, 9, 9), { schema: EchoMessage });
    const end = Date.now() + 5000;
    while (inA.length === 0 && Date.now() < end) await delay(10);
    assert.equal(inA.length, 1, "the other runtime of the account gets it");
    await delay(300);
    assert.deepEqual(inB, []);
    assert.deepEqual(
      rawSeen.filter((s) => s.startsWith(`rk.${TENANT}.topic`)),
      [],
    );
    await raw.close();
  });

  test("dead letters stay in their account", async () => {
    const vault = await a2.cluster!.remote<Echo, Echo>("vault");
    await assert.rejects(
      vault.send(echo(5), { durable: true, timeoutMs: 5000 }),
      UnknownActorError,
    );
    const inA = await a2.cluster!.deadLetters({ actor: "vault" });
    assert.equal(inA.length, 1);
    assert.deepEqual(await b1.cluster!.deadLetters(), []);
  });

  test("refused credentials fail with ClusterAuthError", async () => {
    const attempt = (auth: ClusterAuth) =>
      RingKernel.create({
        backend: "cpu",
        quiet: true,
        cluster: { servers: server.url, tenant: TENANT, auth, timeoutMs: 3000 },
      });
    const wrong = attempt({ user: "alice", pass: "wrong" });
    await assert.rejects(wrong, ClusterAuthError);
    await assert.rejects(wrong, ClusterConnectionError);
    const stranger = new TextDecoder().decode(nkeys.createUser().getSeed());
    await assert.rejects(attempt({ nkeySeed: stranger }), ClusterAuthError);
    await assert.rejects(
      RingKernel.create({
        backend: "cpu",
        quiet: true,
        cluster: { servers: server.url, timeoutMs: 3000 },
      }),
      ClusterAuthError,
    );
  });
});

describe("cluster: TLS", { skip: NATS_SKIP ?? OPENSSL_SKIP }, () => {
  test("a server certificate the test generates: trusted through caFile, refused without", async () => {
    using certs = makeCertificates();
    await using server = await NatsServer.start({
      config: certs.serverConfig,
    });
    const join = (name: string, tls: ClusterTls | undefined) =>
      RingKernel.create({
        backend: "cpu",
        quiet: true,
        cluster: {
          servers: `tls://127.0.0.1:${server.port}`,
          name,
          tls,
          timeoutMs: 3000,
        },
      });
    await using a = await join("tls-a", { caFile: certs.caFile });
    await using b = await join("tls-b", { caFile: certs.caFile });
    await a.launch("sealed", { actor: "echo", public: true });
    const sealed = await b.cluster!.remote<Echo, Echo>("sealed");
    assert.deepEqual(await sealed.call(echo(4, 4, 4)), echo(4, 4, 4));
    // Without the CA (the system's roots), or trusting another CA: refused.
    await assert.rejects(join("tls-c", undefined), ClusterConnectionError);
    await assert.rejects(
      join("tls-d", { caFile: certs.otherCaFile }),
      ClusterConnectionError,
    );
    // A plain connection to a server that requires TLS is refused too.
    await assert.rejects(
      RingKernel.create({
        backend: "cpu",
        quiet: true,
        cluster: { servers: server.url, timeoutMs: 3000 },
      }),
      ClusterConnectionError,
    );
  });
});
