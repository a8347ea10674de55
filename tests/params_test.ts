import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  KERNEL_PARAM_SLOT_BYTES,
  type KernelArg,
  KernelParams,
  packKernelParams,
} from "../src/cuda/params.ts";
import { addressOf, mapMemory } from "../ffi/memory.ts";
import { RingKernelError } from "../src/errors.ts";

/** Reads the 8 bytes a `void*` entry points at, through native memory. */
function slotAt(address: bigint): DataView {
  return new DataView(mapMemory(address, KERNEL_PARAM_SLOT_BYTES));
}

describe("packKernelParams", () => {
  const args: KernelArg[] = [
    { type: "u32", value: 0xdead_beef },
    { type: "i32", value: -5 },
    { type: "u64", value: (1n << 40n) + 3n },
    { type: "i64", value: -(1n << 40n) },
    { type: "f32", value: 1.1 },
    { type: "f64", value: Math.PI },
    { type: "ptr", value: 0x7f00_1234_5678n },
    { type: "ptr", value: { deviceAddress: 0x7f00_0000_1000n } },
    { type: "u64", value: 42 },
  ];
  const params = packKernelParams(args);

  test("one 8-byte slot per argument", () => {
    assert.equal(params.count, args.length);
    assert.equal(params.values.byteLength, args.length * 8);
    assert.equal(params.pointers?.length, args.length);
  });

  test("each address points at its own 8-aligned slot", () => {
    const base = addressOf(params.values);
    assert.equal(base % 8n, 0n);
    for (let i = 0; i < args.length; i++) {
      assert.equal(params.pointers![i], base + BigInt(i * 8));
    }
  });

  test("the addresses lead to the values (read through native memory)", () => {
    const p = params.pointers!;
    assert.equal(slotAt(p[0]).getUint32(0, true), 0xdead_beef);
    assert.equal(slotAt(p[1]).getInt32(0, true), -5);
    assert.equal(slotAt(p[2]).getBigUint64(0, true), (1n << 40n) + 3n);
    assert.equal(slotAt(p[3]).getBigInt64(0, true), -(1n << 40n));
    assert.equal(slotAt(p[4]).getFloat32(0, true), Math.fround(1.1));
    assert.equal(slotAt(p[5]).getFloat64(0, true), Math.PI);
    assert.equal(slotAt(p[6]).getBigUint64(0, true), 0x7f00_1234_5678n);
    assert.equal(slotAt(p[7]).getBigUint64(0, true), 0x7f00_0000_1000n);
    assert.equal(slotAt(p[8]).getBigUint64(0, true), 42n);
  });

  test("narrow values leave the rest of their slot zero", () => {
    const p = params.pointers!;
    for (const index of [0, 1, 4]) {
      assert.equal(slotAt(p[index]).getUint32(4, true), 0, `slot ${index}`);
    }
  });

  test("no arguments gives a null parameter array", () => {
    const empty = packKernelParams([]);
    assert.equal(empty.count, 0);
    assert.equal(empty.pointers, null);
  });
});

describe("KernelParams.set", () => {
  test("replaces a value in place without moving addresses", () => {
    const params = packKernelParams([
      { type: "u32", value: 1 },
      { type: "f64", value: 2 },
    ]);
    const before = [...params.pointers!];
    params.set(0, { type: "u32", value: 77 });
    params.set(1, { type: "i32", value: -1 });
    assert.deepEqual([...params.pointers!], before);
    assert.equal(slotAt(before[0]).getUint32(0, true), 77);
    // A narrower value clears the upper half left by the f64.
    assert.equal(slotAt(before[1]).getBigInt64(0, true), 0xffff_ffffn);
  });

  test("a bad value leaves the previous one in place", () => {
    const params = packKernelParams([{ type: "u32", value: 9 }]);
    assert.throws(
      () => params.set(0, { type: "u32", value: -1 }),
      RingKernelError,
    );
    assert.equal(slotAt(params.pointers![0]).getUint32(0, true), 9);
  });

  test("an index out of range is refused", () => {
    const params = packKernelParams([{ type: "u32", value: 9 }]);
    assert.throws(() => params.set(1, { type: "u32", value: 1 }), /range/);
    assert.throws(() => params.set(-1, { type: "u32", value: 1 }), /range/);
    assert.throws(() => new KernelParams(-1), RingKernelError);
  });
});

describe("argument validation", () => {
  const bad: [string, unknown][] = [
    ["u32 negative", { type: "u32", value: -1 }],
    ["u32 too large", { type: "u32", value: 2 ** 32 }],
    ["u32 fraction", { type: "u32", value: 1.5 }],
    ["u32 string", { type: "u32", value: "1" }],
    ["i32 too large", { type: "i32", value: 2 ** 31 }],
    ["i32 too small", { type: "i32", value: -(2 ** 31) - 1 }],
    ["u64 negative", { type: "u64", value: -1n }],
    ["u64 too large", { type: "u64", value: 1n << 64n }],
    ["u64 unsafe number", { type: "u64", value: 2 ** 60 }],
    ["i64 too large", { type: "i64", value: 1n << 63n }],
    ["f32 bigint", { type: "f32", value: 1n }],
    ["ptr negative", { type: "ptr", value: -1n }],
    ["ptr number", { type: "ptr", value: 4096 }],
    ["ptr without bigint address", {
      type: "ptr",
      value: { deviceAddress: 1 },
    }],
    ["unknown type", { type: "u16", value: 1 }],
    ["not an object", 5],
  ];
  for (const [name, arg] of bad) {
    test(`refuses ${name}`, () => {
      assert.throws(
        () => packKernelParams([{ type: "u32", value: 0 }, arg as KernelArg]),
        (error: unknown) =>
          error instanceof RingKernelError &&
          /kernel argument 1/.test(error.message),
      );
    });
  }

  test("refuses a non-array argument list", () => {
    assert.throws(
      () => packKernelParams("u32" as unknown as KernelArg[]),
      RingKernelError,
    );
  });

  test("accepts the extremes of each integer type", () => {
    const params = packKernelParams([
      { type: "u32", value: 0xffff_ffff },
      { type: "i32", value: -(2 ** 31) },
      { type: "u64", value: (1n << 64n) - 1n },
      { type: "i64", value: -(1n << 63n) },
      { type: "ptr", value: 0n },
    ]);
    const p = params.pointers!;
    assert.equal(slotAt(p[0]).getUint32(0, true), 0xffff_ffff);
    assert.equal(slotAt(p[1]).getInt32(0, true), -(2 ** 31));
    assert.equal(slotAt(p[2]).getBigUint64(0, true), (1n << 64n) - 1n);
    assert.equal(slotAt(p[3]).getBigInt64(0, true), -(1n << 63n));
    assert.equal(slotAt(p[4]).getBigUint64(0, true), 0n);
  });
});
