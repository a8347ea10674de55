// examples/cluster.ts against a real nats-server: three runtimes in three
// processes find each other's actors by name and hear each other's topics.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { main } from "../examples/cluster.ts";
import { NATS_SKIP, NatsServer } from "./fixtures/nats_server.ts";

describe("examples/cluster.ts", { skip: NATS_SKIP }, () => {
  test("three processes: remote calls and bridged topics", async () => {
    await using server = await NatsServer.start();
    const result = await main(server.url);
    assert.deepEqual(result.ups, ["nodes/left/up", "nodes/right/up"]);
    assert.deepEqual(result.totals, { left: [1, 3, 6], right: [1, 3, 6] });
  });
});
