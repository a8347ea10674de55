// The arenas GPU actors' memory comes from (src/backend/cuda/arena.ts).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Arena, type ArenaChunk } from "../src/backend/cuda/arena.ts";
import { InvalidStateError, RingKernelError } from "../src/errors.ts";

function plainChunks() {
  const released: number[] = [];
  let next = 0x1000_0000n;
  const allocate = (bytes: number): ArenaChunk => {
    const base = next;
    next += BigInt(bytes) + 0x1000n;
    const chunk: ArenaChunk = {
      byteLength: bytes,
      deviceAddress: base,
      buffer: new ArrayBuffer(bytes),
      release: () => released.push(bytes),
    };
    return chunk;
  };
  return { allocate, released };
}

describe("arena", () => {
  test("hands out aligned blocks, reuses and coalesces freed ones", () => {
    const chunks = plainChunks();
    const arena = new Arena({
      name: "test",
      chunkBytes: 4096,
      alignment: 256,
      allocateChunk: chunks.allocate,
    });
    const a = arena.allocate(100);
    const b = arena.allocate(300);
    const c = arena.allocate(256);
    assert.deepEqual([a.offset, b.offset, c.offset], [0, 256, 768]);
    assert.equal(b.byteLength, 512);
    assert.equal(b.deviceAddress, a.deviceAddress + 256n);
    arena.free(a);
    arena.free(b);
    // a and b coalesced: a 768-byte request fits at 0.
    assert.equal(arena.allocate(700).offset, 0);
    assert.equal(arena.chunkCount, 1);
  });

  test("grows by a chunk when full, or refuses with the reason", () => {
    const chunks = plainChunks();
    const growth: { blocked?: string } = {};
    const arena = new Arena({
      name: "mapped",
      chunkBytes: 1024,
      allocateChunk: chunks.allocate,
      growthBlockedBecause: () => growth.blocked,
    });
    arena.allocate(1024);
    const big = arena.allocate(5000);
    assert.equal(big.offset, 0);
    assert.equal(arena.chunkCount, 2);
    assert.equal(arena.reservedBytes, 1024 + 5120);
    growth.blocked = "a kernel is running";
    assert.throws(
      () => arena.allocate(512),
      (e: unknown) =>
        e instanceof RingKernelError &&
        /mapped: no room for 512 bytes.*a kernel is running/.test(e.message),
    );
  });

  test("refuses a double free and bad sizes; releases empty chunks and everything at close", () => {
    const chunks = plainChunks();
    const arena = new Arena({
      name: "t",
      chunkBytes: 1024,
      allocateChunk: chunks.allocate,
    });
    const a = arena.allocate(1024);
    const b = arena.allocate(1024);
    arena.free(a);
    assert.throws(() => arena.free(a), InvalidStateError);
    assert.throws(() => arena.allocate(0), RangeError);
    assert.equal(arena.releaseEmptyChunks(0), 1);
    assert.equal(arena.chunkCount, 1);
    arena.free(b);
    arena.close();
    assert.equal(chunks.released.length, 2);
    assert.throws(() => arena.allocate(8), InvalidStateError);
  });

  test("a thousand allocate/free cycles of mixed sizes never grow it", () => {
    const chunks = plainChunks();
    const arena = new Arena({
      name: "t",
      chunkBytes: 1 << 20,
      allocateChunk: chunks.allocate,
    });
    const live = [];
    for (let i = 0; i < 1000; i++) {
      live.push(arena.allocate(1000 + (i * 7919) % 60000));
      if (live.length > 8) {
        arena.free(live.splice((i * 31) % live.length, 1)[0]);
      }
    }
    for (const block of live) arena.free(block);
    assert.equal(arena.chunkCount, 1);
    assert.equal(arena.usedBytes, 0);
    assert.equal(arena.liveBlocks, 0);
  });
});
