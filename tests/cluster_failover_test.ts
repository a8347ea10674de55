// Runtimes on a three-node nats-server cluster: each runtime connects to its
// own node, so traffic between them crosses the servers' routes. Killing the
// node a runtime is connected to (kill -9) must not end the cluster for it:
// its client reconnects to a surviving node, its public actors are served
// again, and calls between the runtimes go on (each call answered once or
// failed with a typed error within its deadline; none hangs), sequence-checked.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { RingKernel } from "../src/runtime.ts";
import type { EchoMessage } from "../src/actors/schemas.ts";
import { RingKernelError } from "../src/errors.ts";
import { echo } from "./helpers.ts";
import { NATS_SKIP, NatsCluster } from "./fixtures/nats_server.ts";

type Echo = typeof EchoMessage.spec;

/** How long the surviving runtimes may take to find each other again. */
const RECOVERY_MS = 20_000;

describe(
  "cluster: a three-node nats-server cluster",
  { skip: NATS_SKIP },
  () => {
    let servers: NatsCluster;
    let a: RingKernel;
    let b: RingKernel;

    before(async () => {
      servers = await NatsCluster.start({ size: 3 });
      // Each runtime prefers its own node, and knows the others to fail over to.
      const [n0, n1, n2] = servers.urls;
      a = await RingKernel.create({
        backend: "cpu",
        quiet: true,
        cluster: { servers: [n0, n1, n2], name: "a" },
      });
      b = await RingKernel.create({
        backend: "cpu",
        quiet: true,
        cluster: { servers: [n1, n2, n0], name: "b" },
      });
    });

    after(async () => {
      await Promise.allSettled([
        a?.shutdown({ timeoutMs: 2000 }),
        b?.shutdown({ timeoutMs: 2000 }),
      ]);
      await servers?.dispose();
    });

    test("calls cross the routes; a node killed under a runtime is survived", async () => {
      await a.launch("echo", { actor: "echo", public: true });
      // Interest crosses the routes asynchronously: wait for the name.
      const remote = await b.cluster!.waitFor<Echo, Echo>("echo", {
        timeoutMs: RECOVERY_MS,
      });
      for (let i = 0; i < 50; i++) {
        const reply = await remote.call(echo(i), { timeoutMs: 5000 });
        assert.equal(reply.seq, BigInt(i));
      }

      // The node a's client is connected to goes away without a word.
      await servers.nodes[0].kill();

      // Calls during the failover: each settles within its deadline, answered
      // with its own reply or failed with a typed error.
      const during = await Promise.allSettled(
        Array.from(
          { length: 20 },
          (_, i) => remote.call(echo(1000 + i), { timeoutMs: 3000 }),
        ),
      );
      during.forEach((r, i) => {
        if (r.status === "fulfilled") {
          assert.equal(r.value.seq, BigInt(1000 + i));
        } else {
          assert.ok(
            r.reason instanceof RingKernelError,
            `a call during the failover failed with ${r.reason}`,
          );
        }
      });

      // Then the cluster serves the name again, through the surviving nodes.
      const deadline = Date.now() + RECOVERY_MS;
      let answered = false;
      let last: unknown;
      while (!answered && Date.now() < deadline) {
        try {
          const again = await b.cluster!.remote<Echo, Echo>("echo", {
            timeoutMs: 2000,
          });
          const reply = await again.call(echo(2000), { timeoutMs: 2000 });
          answered = reply.seq === 2000n;
        } catch (error) {
          last = error;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
      assert.ok(answered, `no answer after the failover: ${last}`);
      const again = await b.cluster!.remote<Echo, Echo>("echo");
      for (let i = 0; i < 50; i++) {
        const reply = await again.call(echo(3000 + i), { timeoutMs: 5000 });
        assert.equal(reply.seq, BigInt(3000 + i));
      }
    });
  },
);
