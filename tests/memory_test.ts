import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { openLibrary } from "../ffi/dylib.ts";
import {
  addressOf,
  addressToNumber,
  assertAddress,
  mapMemory,
  readCString,
  unmapMemory,
} from "../ffi/memory.ts";
import { RingKernelError } from "../src/errors.ts";

const libc = openLibrary({
  malloc: { parameters: ["usize"], result: "u64" },
  free: { parameters: ["u64"], result: "void" },
  memset: { parameters: ["u64", "i32", "usize"], result: "u64" },
  memcpy: { parameters: ["u64", "u64", "usize"], result: "u64" },
  memcmp: { parameters: ["u64", "buffer", "usize"], result: "i32" },
  strlen: { parameters: ["u64"], result: "usize" },
}, { name: "libc", candidates: ["libc.so.6"] });

after(() => libc.close());

/** Sum of bytes computed by C: memcpy into a C buffer, then read back. */
function cSum(address: bigint, length: number): number {
  const copy = new Uint8Array(length);
  libc.symbols.memcpy(addressOf(copy), address, length);
  return copy.reduce((sum, byte) => sum + byte, 0);
}

describe("memory shared between C and JavaScript", () => {
  const size = 256;
  const address = libc.symbols.malloc(size);
  const mapped = mapMemory(address, size);
  const bytes = new Uint8Array(mapped);
  after(() => {
    unmapMemory(mapped);
    libc.symbols.free(address);
  });

  test("malloc returns a non-null address and the mapping has its length", () => {
    assert.ok(address > 0n);
    assert.equal(mapped.byteLength, size);
  });

  test("bytes written by C are seen through the mapped buffer", () => {
    libc.symbols.memset(address, 0xab, size);
    assert.ok(bytes.every((byte) => byte === 0xab));
    libc.symbols.memset(address + 16n, 0x01, 8);
    assert.deepEqual([...bytes.subarray(14, 26)], [
      0xab,
      0xab,
      ...new Array(8).fill(0x01),
      0xab,
      0xab,
    ]);
  });

  test("bytes written by JavaScript are seen by C", () => {
    const text = new TextEncoder().encode("ring kernel\0");
    bytes.set(text, 32);
    assert.equal(libc.symbols.strlen(address + 32n), 11n);
    assert.equal(readCString(address + 32n), "ring kernel");
    assert.equal(libc.symbols.memcmp(address + 32n, text, text.length), 0);
    bytes[33] = "o".charCodeAt(0);
    assert.notEqual(libc.symbols.memcmp(address + 32n, text, text.length), 0);
  });

  test("a checksum computed through C matches the JavaScript one", () => {
    for (let i = 0; i < size; i++) bytes[i] = (i * 7) & 0xff;
    const expected = bytes.reduce((sum, byte) => sum + byte, 0);
    assert.equal(cSum(address, size), expected);
  });

  test("wider views and Atomics work on mapped memory", () => {
    const words = new Int32Array(mapped, 64, 4);
    Atomics.store(words, 1, 0x01020304);
    assert.equal(Atomics.load(words, 1), 0x01020304);
    assert.deepEqual([...bytes.subarray(68, 72)], [4, 3, 2, 1]);
  });

  test("readCString decodes UTF-8", () => {
    bytes.set(new TextEncoder().encode("größe µs\0"), 100);
    assert.equal(readCString(address + 100n), "größe µs");
  });
});

describe("addressOf", () => {
  test("points at the view's data, byte offset included", () => {
    const backing = new Uint8Array(64);
    const view = backing.subarray(8, 40);
    assert.equal(addressOf(view) - addressOf(backing), 8n);
    // C writes at addressOf(view) + 4: only those bytes of the view change.
    libc.symbols.memset(addressOf(view) + 4n, 7, 3);
    assert.deepEqual([...backing.subarray(10, 17)], [0, 0, 7, 7, 7, 0, 0]);
  });

  test("stays valid when the view's buffer is used afterwards", () => {
    // Small typed arrays may live in the GC heap until their buffer is read.
    const view = new Uint8Array(16);
    const address = addressOf(view);
    void view.buffer;
    void view.subarray(4);
    assert.equal(addressOf(view), address);
    libc.symbols.memset(address, 9, 16);
    assert.ok(view.every((byte) => byte === 9));
  });

  test("works for other typed arrays and DataView", () => {
    const buffer = new ArrayBuffer(64);
    const floats = new Float64Array(buffer, 16, 2);
    const data = new DataView(buffer, 24);
    const base = addressOf(new Uint8Array(buffer));
    assert.equal(addressOf(floats) - base, 16n);
    assert.equal(addressOf(data) - base, 24n);
    floats[1] = 1.5;
    assert.equal(mapMemory(addressOf(data), 8).byteLength, 8);
    assert.equal(
      new DataView(mapMemory(addressOf(data), 8)).getFloat64(0, true),
      1.5,
    );
  });

  test("refuses empty and detached views", () => {
    assert.throws(() => addressOf(new Uint8Array(0)), RingKernelError);
    const buffer = new ArrayBuffer(8);
    const view = new Uint8Array(buffer);
    buffer.transfer(0);
    assert.throws(() => addressOf(view), RingKernelError);
    assert.throws(() => addressOf({} as Uint8Array), RingKernelError);
  });
});

describe("argument validation", () => {
  const valid = addressOf(new Uint8Array(16));

  test("mapMemory refuses null addresses and bad lengths", () => {
    assert.throws(() => mapMemory(0n, 8), RingKernelError);
    assert.throws(() => mapMemory(-8n, 8), RingKernelError);
    assert.throws(() => mapMemory(1n << 64n, 8), RingKernelError);
    assert.throws(() => mapMemory(valid, 0), RingKernelError);
    assert.throws(() => mapMemory(valid, -1), RingKernelError);
    assert.throws(() => mapMemory(valid, 1.5), RingKernelError);
    assert.throws(() => mapMemory(valid, 2 ** 53), RingKernelError);
    assert.throws(() => mapMemory(valid, Number.NaN), RingKernelError);
    assert.throws(() => mapMemory((1n << 64n) - 4n, 8), RingKernelError);
    assert.throws(() => mapMemory(8 as unknown as bigint, 8), RingKernelError);
  });

  test("readCString refuses a null address", () => {
    assert.throws(() => readCString(0n), RingKernelError);
  });

  test("assertAddress and addressToNumber keep 64-bit values exact", () => {
    assert.equal(assertAddress(0x1000n), 0x1000n);
    assert.throws(() => assertAddress(0n), /null/);
    assert.equal(addressToNumber(0x7fff_ffff_f000n), 0x7fff_ffff_f000);
    assert.equal(addressToNumber(0n), 0);
    assert.throws(
      () => addressToNumber(BigInt(Number.MAX_SAFE_INTEGER) + 1n),
      RingKernelError,
    );
    assert.throws(() => addressToNumber(-1n), RingKernelError);
  });

  test("unmapMemory detaches the mapping and is idempotent", () => {
    const address = libc.symbols.malloc(16);
    try {
      const mapped = mapMemory(address, 16);
      const words = new Int32Array(mapped);
      unmapMemory(mapped);
      unmapMemory(mapped);
      assert.equal(mapped.byteLength, 0);
      assert.equal(words.length, 0);
      assert.throws(() => Atomics.load(words, 0), TypeError);
    } finally {
      libc.symbols.free(address);
    }
  });
});
