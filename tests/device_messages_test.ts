// The message structs of cuda/actor_pool.cu, generated from the schemas
// (src/backend/cuda/device_messages.ts).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  deviceMessagesBlock,
  findDeviceMessagesBlock,
} from "../src/backend/cuda/device_messages.ts";

const POOL_SOURCE = readFileSync(
  new URL("../cuda/actor_pool.cu", import.meta.url),
  "utf8",
);

describe("device message structs", () => {
  test("cuda/actor_pool.cu holds exactly the structs generated from the schemas", () => {
    const found = findDeviceMessagesBlock(POOL_SOURCE);
    assert.ok(found, "the generated block's markers are missing");
    assert.equal(found, deviceMessagesBlock());
  });

  test("a missing marker is reported as no block", () => {
    assert.equal(findDeviceMessagesBlock("// nothing here\n"), undefined);
  });
});
