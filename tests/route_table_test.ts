// The device route table of K2K sends (src/backend/cuda/route_table.ts).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MAX_ROUTES, ROUTE_TABLE } from "../src/backend/cuda/pool_layout.ts";
import {
  decodeRouteTable,
  emptyRouteTable,
  encodeRouteTableUpdate,
  nameHash,
} from "../src/backend/cuda/route_table.ts";
import { RingKernelError } from "../src/errors.ts";

describe("route table", () => {
  test("names hash with 64-bit FNV-1a", () => {
    assert.equal(nameHash(""), 0xcbf29ce484222325n);
    assert.equal(nameHash("a"), 0xaf63dc4c8601ec8cn);
    assert.notEqual(nameHash("sink"), nameHash("sinK"));
  });

  test("an update opens the seqlock, writes the entries and closes it", () => {
    const update = encodeRouteTableUpdate(4, [
      {
        name: "sink",
        actorId: 2,
        inbox: 0xd000n,
        slotSize: 64,
        inputTypeId: 0x524b0001,
        inputSize: 24,
      },
      { name: "fwd", actorId: 3, inbox: 0xe000n, slotSize: 256 },
    ]);
    assert.equal(update.sequence, 6);
    const image = emptyRouteTable();
    assert.equal(decodeRouteTable(image).count, 0);
    image.set(update.open);
    assert.equal(update.open.byteLength, 4);
    assert.equal(decodeRouteTable(image).sequence % 2, 1);
    assert.equal(decodeRouteTable(image).count, 0); // the old count until closed
    image.set(update.entries, ROUTE_TABLE.size);
    image.set(update.close);
    const table = decodeRouteTable(image);
    assert.equal(table.sequence, 6);
    assert.deepEqual(table.routes, [
      {
        nameHash: nameHash("sink"),
        inbox: 0xd000n,
        actorId: 2,
        slotSize: 64,
        inputTypeId: 0x524b0001,
        inputSize: 24,
      },
      {
        nameHash: nameHash("fwd"),
        inbox: 0xe000n,
        actorId: 3,
        slotSize: 256,
        inputTypeId: 0,
        inputSize: 0,
      },
    ]);
  });

  test("refuses an odd sequence, duplicate names and too many routes", () => {
    assert.throws(() => encodeRouteTableUpdate(1, []), RingKernelError);
    const twice = [{ name: "a", actorId: 1, inbox: 1n, slotSize: 64 }, {
      name: "a",
      actorId: 2,
      inbox: 2n,
      slotSize: 64,
    }];
    assert.throws(() => encodeRouteTableUpdate(0, twice), /two routes for "a"/);
    const many = Array.from(
      { length: MAX_ROUTES + 1 },
      (_, i) => ({ name: `a${i}`, actorId: i, inbox: 1n, slotSize: 64 }),
    );
    assert.throws(() => encodeRouteTableUpdate(0, many), RingKernelError);
  });
});
