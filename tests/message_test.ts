import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  array,
  bytes,
  defineMessage,
  describeValue,
  type FieldSpec,
  type FieldsSpec,
  fnv1a32,
  type MessageSchema,
  type NumericType,
  SchemaRegistry,
  utf8,
} from "../src/message.ts";
import { InvalidMessageError } from "../src/errors.ts";
import { Prng } from "./workers/prng.ts";

const NUMERIC: readonly NumericType[] = [
  "u8",
  "u16",
  "u32",
  "i8",
  "i16",
  "i32",
  "u64",
  "i64",
  "f32",
  "f64",
];

const INT_RANGE: Record<string, readonly [number, number]> = {
  u8: [0, 0xff],
  u16: [0, 0xffff],
  u32: [0, 0xffffffff],
  i8: [-0x80, 0x7f],
  i16: [-0x8000, 0x7fff],
  i32: [-0x80000000, 0x7fffffff],
};

/** Deep equality with SameValue for numbers (NaN equals NaN, -0 differs from 0). */
function assertSame(actual: unknown, expected: unknown, path = "value"): void {
  if (typeof expected === "number" || typeof expected === "bigint") {
    assert.ok(
      Object.is(actual, expected),
      `${path}: ${String(actual)} !== ${String(expected)}`,
    );
    return;
  }
  if (typeof expected !== "object" || expected === null) {
    assert.equal(actual, expected, path);
    return;
  }
  if (ArrayBuffer.isView(expected) || Array.isArray(expected)) {
    const e = expected as ArrayLike<unknown>;
    const a = actual as ArrayLike<unknown>;
    assert.equal(a.length, e.length, `${path}.length`);
    for (let i = 0; i < e.length; i++) assertSame(a[i], e[i], `${path}[${i}]`);
    return;
  }
  const keys = Object.keys(expected);
  assert.deepEqual(
    Object.keys(actual as object).sort(),
    keys.sort(),
    `${path} keys`,
  );
  for (const key of keys) {
    assertSame(
      (actual as Record<string, unknown>)[key],
      (expected as Record<string, unknown>)[key],
      `${path}.${key}`,
    );
  }
}

const UTF8_SAMPLES = [
  "a",
  "é",
  "€",
  "😀",
  "ß",
  "中",
  "\u0000",
  "~",
  "\u07ff",
  "\uffff",
];

function randomString(rng: Prng, capacity: number): string {
  const target = rng.int(0, capacity);
  let text = "";
  let used = 0;
  for (;;) {
    const piece = rng.chance(0.5)
      ? String.fromCharCode(rng.int(0x20, 0x7e))
      : rng.pick(UTF8_SAMPLES);
    const size = new TextEncoder().encode(piece).length;
    if (used + size > target) return text;
    text += piece;
    used += size;
  }
}

function randomScalar(rng: Prng, type: NumericType | "bool"): unknown {
  const edge = rng.chance(0.3);
  switch (type) {
    case "bool":
      return rng.chance(0.5);
    case "u64":
      return edge
        ? rng.pick([0n, 1n, 2n ** 53n + 1n, 2n ** 64n - 1n, 2n ** 63n])
        : rng.u64();
    case "i64":
      return edge
        ? rng.pick([0n, -1n, -(2n ** 63n), 2n ** 63n - 1n, -(2n ** 53n) - 1n])
        : BigInt.asIntN(64, rng.u64());
    case "f64":
      return edge
        ? rng.pick([
          NaN,
          -0,
          0,
          Infinity,
          -Infinity,
          Number.MAX_VALUE,
          Number.MIN_VALUE,
          -1e-300,
        ])
        : (rng.float() - 0.5) * 2 ** rng.int(-60, 60);
    case "f32":
      return edge
        ? rng.pick([
          NaN,
          -0,
          0,
          Infinity,
          -Infinity,
          3.4028234663852886e38,
          1.401298464324817e-45,
        ])
        : Math.fround((rng.float() - 0.5) * 2 ** rng.int(-30, 30));
    default: {
      const [min, max] = INT_RANGE[type];
      return edge
        ? rng.pick([min, max, 0, min + 1, max - 1])
        : rng.int(min, max);
    }
  }
}

function randomField(rng: Prng): FieldSpec {
  const roll = rng.int(0, 9);
  if (roll < 6) return rng.pick([...NUMERIC, "bool"] as const);
  if (roll === 6) return array(rng.pick(NUMERIC), rng.int(1, 6));
  if (roll === 7) return bytes(rng.int(1, 40));
  return utf8(rng.int(1, 40));
}

function randomValue(rng: Prng, spec: FieldSpec): unknown {
  if (typeof spec === "string") return randomScalar(rng, spec);
  switch (spec.kind) {
    case "array":
      return Array.from(
        { length: spec.length },
        () => randomScalar(rng, spec.element),
      );
    case "bytes": {
      const length = rng.chance(0.2)
        ? rng.pick([0, spec.capacity])
        : rng.int(0, spec.capacity);
      return Uint8Array.from({ length }, () => rng.int(0, 255));
    }
    case "string":
      return randomString(rng, spec.capacity);
  }
}

/** What decoding should return for an encoded value. */
function expectedOf(spec: FieldSpec, value: unknown): unknown {
  if (spec === "f32") return Math.fround(value as number);
  if (typeof spec === "object" && spec.kind === "array") {
    const values = value as number[];
    return spec.element === "f32" ? values.map((v) => Math.fround(v)) : values;
  }
  return value;
}

describe("defineMessage layout", () => {
  test("lays fields out in order with C alignment and tail padding", () => {
    const s = defineMessage({
      name: "Mixed",
      fields: { a: "u8", b: "u32", c: "u16" },
    });
    assert.deepEqual(s.fields.map((f) => f.offset), [0, 4, 8]);
    assert.equal(s.size, 12);
    assert.equal(s.align, 4);
    const wide = defineMessage({
      name: "Wide",
      fields: { a: "u8", b: "u64", c: "bool" },
    });
    assert.deepEqual(wide.fields.map((f) => f.offset), [0, 8, 16]);
    assert.equal(wide.size, 24);
    assert.equal(wide.align, 8);
  });

  test("arrays align to their element, bytes and strings to their u16 prefix", () => {
    const s = defineMessage({
      name: "Composite",
      fields: {
        tag: "u8",
        v: array("f64", 3),
        name: utf8(5),
        raw: bytes(3),
        n: "u16",
      },
    });
    assert.deepEqual(
      s.fields.map((f) => [f.name, f.offset, f.size, f.align]),
      [
        ["tag", 0, 1, 1],
        ["v", 8, 24, 8],
        ["name", 32, 7, 2],
        ["raw", 40, 5, 2],
        ["n", 46, 2, 2],
      ],
    );
    assert.equal(s.size, 48);
  });

  test("a message without fields is empty", () => {
    const s = defineMessage({ name: "Ping", fields: {} });
    assert.equal(s.size, 0);
    assert.equal(s.align, 1);
    assert.deepEqual(s.decode(new DataView(new ArrayBuffer(0)), 0), {});
  });

  test("type ids: explicit, or FNV-1a of the name and layout, never 0", () => {
    assert.equal(fnv1a32(""), 0x811c9dc5);
    assert.equal(fnv1a32("a"), 0xe40c292c);
    assert.equal(fnv1a32("foobar"), 0xbf9cf968);
    const derived = defineMessage({ name: "Command", fields: { x: "u32" } });
    assert.equal(derived.layout, "x:u32");
    assert.equal(derived.typeId, fnv1a32("Command{x:u32}"));
    assert.equal(
      defineMessage({ name: "Command", fields: { x: "u32" } }).typeId,
      derived.typeId,
    );
    assert.notEqual(
      defineMessage({ name: "Command", fields: {} }).typeId,
      derived.typeId,
    );
    assert.equal(
      defineMessage({ name: "X", typeId: 42, fields: {} }).typeId,
      42,
    );
    const rng = new Prng(7);
    for (let i = 0; i < 2000; i++) {
      assert.notEqual(fnv1a32(String(rng.u32())), 0);
    }
    for (const bad of [0, -1, 2 ** 32, 1.5, NaN]) {
      assert.throws(
        () => defineMessage({ name: "X", typeId: bad, fields: {} }),
        InvalidMessageError,
      );
    }
  });

  test("rejects bad definitions with InvalidMessageError", () => {
    const bad: Array<() => unknown> = [
      () => defineMessage({ name: "", fields: {} }),
      () => defineMessage({ name: "has space", fields: {} }),
      () => defineMessage({ name: "X", fields: { "bad-name": "u8" } }),
      () => defineMessage({ name: "X", fields: { a: "u128" as never } }),
      () => defineMessage({ name: "X", fields: { a: "toString" as never } }),
      () =>
        defineMessage({ name: "X", fields: { a: array("bool" as never, 2) } }),
      () => defineMessage({ name: "X", fields: { a: array("u8", 0) } }),
      () => defineMessage({ name: "X", fields: { a: array("u8", 1.5) } }),
      () => defineMessage({ name: "X", fields: { a: utf8(0) } }),
      () => defineMessage({ name: "X", fields: { a: bytes(65536) } }),
      () =>
        defineMessage({ name: "X", fields: { a: { kind: "map" } as never } }),
      () => defineMessage({ name: "X", fields: null as never }),
    ];
    for (const fn of bad) assert.throws(fn, InvalidMessageError);
  });
});

describe("codec properties", () => {
  test("random schemas round-trip random values at random offsets", () => {
    const rng = new Prng(0x5eed);
    for (let round = 0; round < 300; round++) {
      const fields: Record<string, FieldSpec> = {};
      const count = rng.int(1, 8);
      for (let i = 0; i < count; i++) fields[`f${i}`] = randomField(rng);
      const schema = defineMessage({ name: `Random${round}`, fields });
      assert.equal(schema.size % schema.align, 0);
      const buffer = new ArrayBuffer(schema.size + 64);
      const bytesView = new Uint8Array(buffer);
      for (let i = 0; i < bytesView.length; i++) bytesView[i] = rng.int(0, 255);
      const before = bytesView.slice();
      const offset = rng.int(0, 32);
      const view = new DataView(buffer);
      for (let k = 0; k < 3; k++) {
        const value: Record<string, unknown> = {};
        const expected: Record<string, unknown> = {};
        for (const [name, spec] of Object.entries(fields)) {
          value[name] = randomValue(rng, spec);
          expected[name] = expectedOf(spec, value[name]);
        }
        schema.encode(view, offset, value as never);
        assertSame(schema.decode(view, offset), expected, `round ${round}`);
        for (const [name, spec] of Object.entries(fields)) {
          assertSame(
            schema.read(view, offset, name),
            expected[name],
            `${name} lazily`,
          );
          const next = randomValue(rng, spec);
          schema.write(view, offset, name, next as never);
          assertSame(
            schema.field(name).get(view, offset),
            expectedOf(spec, next),
            `${name} rewritten`,
          );
        }
      }
      for (let i = 0; i < bytesView.length; i++) {
        if (i < offset || i >= offset + schema.size) {
          assert.equal(
            bytesView[i],
            before[i],
            `byte ${i} outside the message changed`,
          );
        }
      }
    }
  });

  test("edge values survive exactly", () => {
    const s = defineMessage({
      name: "Edges",
      fields: {
        u8: "u8",
        i8: "i8",
        u16: "u16",
        i16: "i16",
        u32: "u32",
        i32: "i32",
        u64: "u64",
        i64: "i64",
        f32: "f32",
        f64: "f64",
        flag: "bool",
        f64s: array("f64", 4),
        i64s: array("i64", 2),
        text: utf8(8),
        raw: bytes(4),
      },
    });
    const view = new DataView(new ArrayBuffer(s.size));
    const cases = [
      {
        u8: 255,
        i8: -128,
        u16: 65535,
        i16: -32768,
        u32: 0xffffffff,
        i32: -0x80000000,
        u64: 2n ** 64n - 1n,
        i64: -(2n ** 63n),
        f32: -0,
        f64: NaN,
        flag: true,
        f64s: [-0, NaN, Infinity, -Infinity],
        i64s: [2n ** 63n - 1n, -1n],
        text: "😀😀",
        raw: new Uint8Array([0, 255, 1, 254]),
      },
      {
        u8: 0,
        i8: 127,
        u16: 0,
        i16: 32767,
        u32: 0,
        i32: 0x7fffffff,
        u64: 2n ** 53n + 1n,
        i64: 2n ** 63n - 1n,
        f32: NaN,
        f64: -0,
        flag: false,
        f64s: [Number.MAX_VALUE, Number.MIN_VALUE, 0, 1],
        i64s: [0n, -(2n ** 53n) - 1n],
        text: "",
        raw: new Uint8Array(0),
      },
      {
        u8: 1,
        i8: -1,
        u16: 1,
        i16: -1,
        u32: 1,
        i32: -1,
        u64: 0n,
        i64: 0n,
        f32: Infinity,
        f64: -Infinity,
        flag: true,
        f64s: [1, 2, 3, 4],
        i64s: [1n, 2n],
        text: "é€ab",
        raw: new Uint8Array([9]),
      },
    ];
    for (const value of cases) {
      s.encode(view, 0, value);
      const decoded = s.decode(view, 0);
      assertSame(decoded, value);
      assert.ok(decoded.f64s instanceof Float64Array);
      assert.ok(decoded.i64s instanceof BigInt64Array);
    }
  });

  test("strings: full capacity counts UTF-8 bytes, one byte more is rejected", () => {
    const s = defineMessage({ name: "Text", fields: { t: utf8(6) } });
    const view = new DataView(new ArrayBuffer(s.size));
    for (const ok of ["abcdef", "€€", "😀ab", "ééé", "a€ab", ""]) {
      s.encode(view, 0, { t: ok });
      assert.equal(s.decode(view, 0).t, ok);
    }
    for (const tooLong of ["abcdefg", "€€a", "😀😀", "éééa", "a".repeat(100)]) {
      assert.throws(
        () => s.encode(view, 0, { t: tooLong }),
        InvalidMessageError,
      );
    }
    assert.throws(
      () => s.encode(view, 0, { t: "a\ud800" }),
      InvalidMessageError,
    );
  });

  test("padding is zeroed", () => {
    const s = defineMessage({
      name: "Padded",
      fields: { a: "u8", b: "u64", c: "u16" },
    });
    const buffer = new Uint8Array(s.size).fill(0xaa);
    s.encode(new DataView(buffer.buffer), 0, { a: 1, b: 2n, c: 3 });
    assert.deepEqual([...buffer.subarray(1, 8)], [0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual([...buffer.subarray(18, 24)], [0, 0, 0, 0, 0, 0]);
  });

  test("batches encode and decode at a stride", () => {
    const s = defineMessage({ name: "Point", fields: { x: "i32", y: "i32" } });
    const values = Array.from({ length: 10 }, (_, i) => ({ x: i, y: 0 - i }));
    const view = new DataView(new ArrayBuffer(16 * values.length));
    assert.equal(s.encodeMany(view, 0, 16, values), 10);
    assertSame(s.decodeMany(view, 0, 16, 10), values);
    assert.throws(() => s.encodeMany(view, 0, 4, values), InvalidMessageError);
  });
});

describe("validation", () => {
  const s = defineMessage({
    name: "Checked",
    fields: {
      u8: "u8",
      i8: "i8",
      u16: "u16",
      i16: "i16",
      u32: "u32",
      i32: "i32",
      u64: "u64",
      i64: "i64",
      f32: "f32",
      f64: "f64",
      flag: "bool",
      arr: array("u16", 2),
      text: utf8(4),
      raw: bytes(2),
    },
  });
  const good = {
    u8: 1,
    i8: 1,
    u16: 1,
    i16: 1,
    u32: 1,
    i32: 1,
    u64: 1n,
    i64: 1n,
    f32: 1,
    f64: 1,
    flag: true,
    arr: [1, 2],
    text: "ok",
    raw: new Uint8Array(2),
  };
  const view = new DataView(new ArrayBuffer(s.size));

  test("accepts a good value", () => {
    s.validate(good);
    s.encode(view, 0, good);
  });

  test("rejects each kind of bad field", () => {
    const bad: Array<[string, unknown]> = [];
    for (const [type, [min, max]] of Object.entries(INT_RANGE)) {
      for (
        const v of [
          min - 1,
          max + 1,
          0.5,
          NaN,
          Infinity,
          "1",
          1n,
          undefined,
          null,
          true,
        ]
      ) {
        bad.push([type, v]);
      }
    }
    for (const v of [-1n, 2n ** 64n, 1, "1", undefined]) bad.push(["u64", v]);
    for (const v of [-(2n ** 63n) - 1n, 2n ** 63n, 1, undefined]) {
      bad.push(["i64", v]);
    }
    for (const v of ["1", 1n, undefined, null]) {
      bad.push(["f32", v], ["f64", v]);
    }
    for (const v of [1, 0, "true", undefined]) bad.push(["flag", v]);
    for (const v of [[1], [1, 2, 3], [1, 70000], [1, -1], undefined, "ab"]) {
      bad.push(["arr", v]);
    }
    for (const v of ["abcde", "€€", 5, undefined, "\udc00"]) {
      bad.push(["text", v]);
    }
    for (const v of [new Uint8Array(3), [1, 2], "ab", undefined]) {
      bad.push(["raw", v]);
    }
    for (const [field, v] of bad) {
      const value = { ...good, [field]: v };
      assert.throws(
        () => s.validate(value as never),
        InvalidMessageError,
        `${field} = ${String(v)}`,
      );
      assert.throws(
        () => s.encode(view, 0, value as never),
        InvalidMessageError,
        `${field} = ${String(v)}`,
      );
    }
  });

  test("rejects values that are not objects", () => {
    for (const v of [null, undefined, 5, "x"]) {
      assert.throws(() => s.encode(view, 0, v as never), InvalidMessageError);
      assert.throws(() => s.validate(v as never), InvalidMessageError);
    }
  });

  test("decoding rejects corrupt length prefixes and invalid UTF-8", () => {
    const t = defineMessage({
      name: "Corrupt",
      fields: { text: utf8(4), raw: bytes(2) },
    });
    const dv = new DataView(new ArrayBuffer(t.size));
    t.encode(dv, 0, { text: "ab", raw: new Uint8Array(1) });
    dv.setUint16(0, 5, true);
    assert.throws(() => t.decode(dv, 0), InvalidMessageError);
    dv.setUint16(0, 2, true);
    dv.setUint8(2, 0xff);
    assert.throws(() => t.decode(dv, 0), InvalidMessageError);
    assert.throws(() => t.read(dv, 0, "text"), InvalidMessageError);
    dv.setUint16(0, 0, true);
    dv.setUint16(6, 3, true);
    assert.throws(() => t.read(dv, 0, "raw"), InvalidMessageError);
  });

  test("unknown field names are rejected", () => {
    assert.throws(() => s.read(view, 0, "nope" as never), InvalidMessageError);
    assert.throws(() => s.field("nope" as never), InvalidMessageError);
  });
});

describe("hostile input", () => {
  /** Values that String() cannot convert, or converts by running a throwing method. */
  const hostile = (): unknown[] => [
    Object.create(null),
    { toString: 1, valueOf: 1 },
    {
      [Symbol.toPrimitive]() {
        throw new Error("no primitive");
      },
    },
    {
      toString() {
        throw new Error("no string");
      },
    },
    Symbol("s"),
  ];
  const s = defineMessage({
    name: "Hostile",
    fields: {
      a: "u32",
      b: "u64",
      c: "bool",
      d: "f64",
      e: array("i16", 2),
      f: utf8(8),
      g: bytes(4),
    },
  });
  const good = {
    a: 1,
    b: 2n,
    c: true,
    d: 0.5,
    e: [1, 2],
    f: "x",
    g: new Uint8Array(1),
  };

  test("describeValue never throws and names what it saw", () => {
    for (const value of hostile()) {
      assert.equal(typeof describeValue(value), "string");
    }
    assert.equal(
      describeValue(Object.create(null)),
      "[object Object] (null prototype)",
    );
    assert.equal(describeValue(-0), "-0");
    assert.equal(describeValue(3n), "3n");
    assert.equal(describeValue("a"), '"a"');
    assert.equal(describeValue([1, 2]), "array(2)");
    assert.equal(describeValue(new Float32Array(3)), "Float32Array(3)");
    assert.equal(describeValue(Symbol("s")), "Symbol(s)");
    assert.equal(describeValue(undefined), "undefined");
    assert.equal(describeValue(null), "null");
  });

  test("a field value String() cannot convert is an InvalidMessageError", () => {
    for (const field of Object.keys(good)) {
      for (const value of hostile()) {
        const bad = { ...good, [field]: value };
        assert.throws(
          () => s.encode(new DataView(new ArrayBuffer(s.size)), 0, bad),
          InvalidMessageError,
          `${field} = ${describeValue(value)}`,
        );
        assert.throws(
          () =>
            s.write(
              new DataView(new ArrayBuffer(s.size)),
              0,
              field as never,
              value as never,
            ),
          InvalidMessageError,
          `${field} = ${describeValue(value)}`,
        );
      }
    }
    for (const value of hostile()) {
      if (typeof value === "object") continue;
      assert.throws(() => s.validate(value as never), InvalidMessageError);
    }
    assert.throws(
      () => s.validate({ ...good, e: [1, Object.create(null)] }),
      InvalidMessageError,
    );
  });

  test("a spec value String() cannot convert is an InvalidMessageError", () => {
    const specs: unknown[] = [];
    for (const value of hostile()) {
      specs.push(
        { kind: "array", element: "u8", length: value },
        { kind: "array", element: value, length: 2 },
        { kind: "bytes", capacity: value },
        { kind: "string", capacity: value },
        { kind: value },
        value,
      );
    }
    specs.push({ kind: 1n }, { kind: "array", element: "u8", length: 2n });
    for (const spec of specs) {
      assert.throws(
        () => defineMessage({ name: "X", fields: { f: spec as FieldSpec } }),
        InvalidMessageError,
        describeValue(spec),
      );
    }
    for (const value of [...hostile(), 1n, 5]) {
      assert.throws(
        () => defineMessage({ name: value as string, fields: {} }),
        InvalidMessageError,
      );
    }
    for (const value of [...hostile(), 1n, "5"]) {
      assert.throws(
        () => defineMessage({ name: "X", typeId: value as number, fields: {} }),
        InvalidMessageError,
      );
    }
    assert.throws(() => defineMessage(null as never), InvalidMessageError);
  });

  test("strides and counts that are not numbers are refused", () => {
    const view = new DataView(new ArrayBuffer(s.size * 2));
    for (const value of [...hostile(), 1n, NaN]) {
      assert.throws(
        () => s.encodeMany(view, 0, value as number, [good]),
        InvalidMessageError,
      );
      assert.throws(
        () => s.decodeMany(view, 0, value as number, 1),
        InvalidMessageError,
      );
      assert.throws(
        () => s.decodeMany(view, 0, s.size, value as number),
        InvalidMessageError,
      );
    }
    assert.equal(s.decodeMany(view, 0, s.size, 0).length, 0);
  });

  test("a field named __proto__ is refused; other Object.prototype names round-trip", () => {
    for (
      const fields of [
        JSON.parse('{"__proto__": "u8"}'),
        { ["__proto__"]: "u32" },
        JSON.parse('{"a": "u8", "__proto__": "u16"}'),
      ]
    ) {
      assert.throws(
        () => defineMessage({ name: "Proto", fields }),
        (error) =>
          error instanceof InvalidMessageError &&
          /__proto__/.test(error.message),
      );
    }
    const t = defineMessage({
      name: "Inherited",
      fields: {
        constructor: "u8",
        toString: "u16",
        hasOwnProperty: "u32",
        valueOf: utf8(4),
      },
    });
    const value = {
      constructor: 1,
      toString: 2,
      hasOwnProperty: 3,
      valueOf: "v",
    };
    const view = new DataView(new ArrayBuffer(t.size));
    t.encode(view, 0, value as never);
    assert.deepEqual({ ...t.decode(view, 0) }, value);
    // Missing, they are not taken from Object.prototype.
    assert.throws(() => t.encode(view, 0, {} as never), InvalidMessageError);
  });
});

describe("UTF-8 and U+FEFF", () => {
  const t = defineMessage({ name: "Bom", fields: { text: utf8(16) } });
  test("a U+FEFF anywhere in a field survives encode and decode", () => {
    for (
      const text of [
        "\ufeff",
        "\ufeffa",
        "a\ufeff",
        "ab\ufeffé",
        "\ufeff\ufeff",
        "é\ufeff",
        "\ufeff😀",
      ]
    ) {
      const view = new DataView(new ArrayBuffer(t.size));
      t.encode(view, 0, { text });
      assert.equal(t.decode(view, 0).text, text, JSON.stringify(text));
      assert.equal(t.read(view, 0, "text"), text, JSON.stringify(text));
    }
  });
});

describe("SchemaRegistry", () => {
  const a = defineMessage({ name: "A", fields: { x: "u8" } });
  const b = defineMessage({ name: "B", fields: {} });
  test("finds schemas by type id and rejects unknown ids", () => {
    const registry = new SchemaRegistry([a, b]);
    assert.equal(registry.size, 2);
    assert.equal(registry.get(a.typeId), a);
    assert.equal(registry.require(b.typeId), b);
    assert.equal(registry.get(12345), undefined);
    assert.equal(registry.has(12345), false);
    assert.throws(() => registry.require(12345), InvalidMessageError);
    assert.deepEqual([...registry], [a, b]);
    registry.register(a);
    assert.equal(registry.size, 2);
  });

  test("a different schema under a taken type id is a collision", () => {
    const registry = new SchemaRegistry([a]);
    const clash: MessageSchema<FieldsSpec> = defineMessage({
      name: "Other",
      typeId: a.typeId,
      fields: {},
    });
    assert.throws(() => registry.register(clash), InvalidMessageError);
    assert.equal(registry.get(a.typeId), a);
  });
});
