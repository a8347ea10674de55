/**
 * What the fuzz targets generate: the schemas the decoding targets know
 * ({@linkcode FUZZ_SCHEMAS}), valid and mangled values of them, field specs
 * and schema definitions valid and not, any JS value, ring geometries whose
 * indices wrap during a run, and corruptions of slot bytes.
 *
 * @module
 */

import fc from "fast-check";
import { ENVELOPE_SIZE } from "../../src/envelope.ts";
import { ENVELOPE, FIELD_SIZE, QUEUE_HEADER } from "../../src/layout.ts";
import {
  array,
  bytes,
  defineMessage,
  type FieldSpec,
  type MessageSchema,
  type NumericType,
  SchemaRegistry,
  utf8,
} from "../../src/message.ts";
import { type Ring, RING_HEADER_SIZE, type RingKind } from "../../src/ring.ts";

// ---------------------------------------------------------------------------
// Schemas and values

export const SCALARS = [
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
  "bool",
] as const;
export const NUMERIC = SCALARS.filter((s) => s !== "bool") as NumericType[];

/** The schema, printed by its name in counterexamples. */
export function named(schema: MessageSchema): MessageSchema {
  return Object.create(schema, {
    [fc.toStringMethod]: { value: () => schema.name },
  });
}

/** Schemas the decoding targets know: every field kind, 64 B and 256 B slots. */
export const FUZZ_SCHEMAS: readonly MessageSchema[] = [
  defineMessage({
    name: "fuzz.Scalars",
    typeId: 0x46000001,
    fields: {
      a: "u8",
      b: "i8",
      c: "bool",
      d: "u16",
      e: "i16",
      f: "u32",
      g: "i32",
      h: "f32",
    },
  }),
  defineMessage({
    name: "fuzz.Wide",
    typeId: 0x46000002,
    fields: { a: "u64", b: "i64", c: "f64" },
  }),
  defineMessage({
    name: "fuzz.Text",
    typeId: 0x46000003,
    fields: { id: "u16", label: utf8(20) },
  }),
  defineMessage({
    name: "fuzz.Blob",
    typeId: 0x46000004,
    fields: { n: "u8", data: bytes(27) },
  }),
  defineMessage({
    name: "fuzz.Arrays",
    typeId: 0x46000005,
    fields: { x: array("f32", 8), y: array("i16", 4), z: array("u64", 2) },
  }),
  defineMessage({
    name: "fuzz.Large",
    typeId: 0x46000006,
    fields: { text: utf8(120), raw: bytes(60), v: array("f64", 4) },
  }),
].map(named);
export const REGISTRY = new SchemaRegistry(FUZZ_SCHEMAS);

export function scalarArb(
  type: (typeof SCALARS)[number],
): fc.Arbitrary<unknown> {
  switch (type) {
    case "u8":
      return fc.integer({ min: 0, max: 0xff });
    case "i8":
      return fc.integer({ min: -0x80, max: 0x7f });
    case "u16":
      return fc.integer({ min: 0, max: 0xffff });
    case "i16":
      return fc.integer({ min: -0x8000, max: 0x7fff });
    case "u32":
      return fc.integer({ min: 0, max: 0xffffffff });
    case "i32":
      return fc.integer({ min: -0x80000000, max: 0x7fffffff });
    case "u64":
      return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    case "i64":
      return fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
    case "f32":
      return fc.float();
    case "f64":
      return fc.double();
    case "bool":
      return fc.boolean();
  }
}

/** Values a field of `spec` accepts. */
export function validFieldArb(spec: FieldSpec): fc.Arbitrary<unknown> {
  if (typeof spec === "string") return scalarArb(spec);
  switch (spec.kind) {
    case "array":
      return fc.array(scalarArb(spec.element), {
        minLength: spec.length,
        maxLength: spec.length,
      });
    case "bytes":
      return fc.uint8Array({ maxLength: spec.capacity });
    case "string":
      // A code point takes at most 4 UTF-8 bytes.
      return fc.string({
        unit: "binary",
        maxLength: Math.floor(spec.capacity / 4),
      });
  }
}

/**
 * Any JS value, including the ones `String()` cannot convert (null-prototype
 * objects), boxed values, typed arrays, maps, sets and sparse arrays.
 */
export const anythingArb: fc.Arbitrary<unknown> = fc.anything({
  withNullPrototype: true,
  withBigInt: true,
  withBoxedValues: true,
  withMap: true,
  withSet: true,
  withTypedArray: true,
  withSparseArray: true,
  withObjectString: true,
});

/** Values that are (mostly) invalid for a field of `spec`. */
export function invalidFieldArb(spec: FieldSpec): fc.Arbitrary<unknown> {
  const common: fc.Arbitrary<unknown>[] = [
    anythingArb,
    fc.constantFrom(
      undefined,
      null,
      NaN,
      -1,
      0.5,
      2 ** 53,
      -(2 ** 64),
      "",
      "\ud800",
      true,
      0n,
      -1n,
      2n ** 64n,
      [],
      {},
    ),
    fc.double(),
    fc.bigInt(),
  ];
  if (typeof spec === "object") {
    if (spec.kind === "array") {
      common.push(
        fc.array(fc.oneof(scalarArb(spec.element), anythingArb), {
          maxLength: spec.length + 2,
        }),
      );
    } else if (spec.kind === "bytes") {
      common.push(fc.uint8Array({ maxLength: spec.capacity + 8 }));
    } else {
      common.push(
        fc.string({ unit: "binary", maxLength: spec.capacity + 8 }),
        fc.string({ unit: "grapheme", maxLength: spec.capacity }),
        fc.constantFrom("\udc00", "a\ud83d", "é".repeat(spec.capacity)),
      );
    }
  }
  return fc.oneof(...common);
}

/** A valid value of `schema`. */
export function validValueArb(schema: MessageSchema): fc.Arbitrary<unknown> {
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of schema.fields) fields[f.name] = validFieldArb(f.spec);
  return fc.record(fields);
}

/** A value of `schema` with some fields replaced by likely-invalid ones, or not an object at all. */
export function mangledValueArb(schema: MessageSchema): fc.Arbitrary<unknown> {
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of schema.fields) {
    fields[f.name] = fc.oneof(
      { arbitrary: validFieldArb(f.spec), weight: 3 },
      { arbitrary: invalidFieldArb(f.spec), weight: 1 },
    );
  }
  return fc.oneof(
    { arbitrary: fc.record(fields, { requiredKeys: [] }), weight: 8 },
    { arbitrary: anythingArb, weight: 1 },
  );
}

export const schemaArb = fc.constantFrom(...FUZZ_SCHEMAS);

/** Field specs, valid and not. */
export const fieldSpecArb: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.constantFrom(...SCALARS), weight: 6 },
  {
    arbitrary: fc.record({
      kind: fc.constant("array"),
      element: fc.oneof(
        fc.constantFrom(...NUMERIC),
        fc.constantFrom("bool", "u128", "", "__proto__"),
      ),
      length: fc.oneof(
        fc.integer({ min: 1, max: 8 }),
        fc.constantFrom(0, -1, 1.5, NaN, 2 ** 31, 70_000),
      ),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constantFrom("bytes", "string"),
      capacity: fc.oneof(
        fc.integer({ min: 1, max: 40 }),
        fc.constantFrom(0, -3, 2.5, NaN, 65_535, 65_536, Infinity),
      ),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.oneof(
      anythingArb,
      fc.constantFrom("f16", "int", "constructor", "toString"),
    ),
    weight: 1,
  },
);

export const fieldNameArb = fc.oneof(
  { arbitrary: fc.stringMatching(/^[a-z_][a-z0-9_]{0,6}$/), weight: 8 },
  { arbitrary: fc.string({ maxLength: 5 }), weight: 1 },
  {
    arbitrary: fc.constantFrom(
      "constructor",
      "toString",
      "__proto__",
      "hasOwnProperty",
      "1x",
      "a-b",
      "",
    ),
    weight: 1,
  },
);

export const definitionArb = fc.record({
  name: fc.oneof(
    {
      arbitrary: fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_.-]{0,12}$/),
      weight: 8,
    },
    { arbitrary: fc.string({ maxLength: 8 }), weight: 1 },
  ),
  typeId: fc.option(
    fc.oneof(
      fc.integer({ min: 1, max: 0xffffffff }),
      fc.constantFrom(0, -1, 2 ** 32, 1.5, NaN),
    ),
    { nil: undefined },
  ),
  fields: fc.oneof(
    {
      arbitrary: fc.dictionary(fieldNameArb, fieldSpecArb, { maxKeys: 6 }),
      weight: 12,
    },
    { arbitrary: anythingArb, weight: 1 },
  ),
});

// ---------------------------------------------------------------------------
// Rings

const H = QUEUE_HEADER.fields;
export const HEADER_WORDS = {
  head: H.head.offset / 4,
  tail: H.tail.offset / 4,
  reserve: H.reserve.offset / 4,
  capacity: H.capacity.offset / 4,
  slotSize: H.slotSize.offset / 4,
  kind: H.kind.offset / 4,
  magic: H.magic.offset / 4,
} as const;
export const STAMP_OFFSET = ENVELOPE.fields.stamp.offset;
export const STAMP_SIZE = FIELD_SIZE[ENVELOPE.fields.stamp.type];

export const geometryArb = fc.record({
  kind: fc.constantFrom<RingKind>("spsc", "mpsc"),
  capacity: fc.constantFrom(1, 2, 4, 8, 16),
  slotSize: fc.constantFrom(64, 256),
  // Near 2^32, so the indices wrap during the run.
  initialIndex: fc.oneof(
    fc.constant(0),
    fc.integer({ min: 0xffffffff - 20, max: 0xffffffff }),
    fc.integer({ min: 0, max: 0xffffffff }),
  ),
});

/** Schemas that fit a slot of `slotSize`. */
export function schemasFor(slotSize: number): MessageSchema[] {
  return FUZZ_SCHEMAS.filter((s) => s.size <= slotSize - ENVELOPE_SIZE);
}

export interface Corruption {
  readonly slot: number;
  readonly at: number;
  readonly value: number;
}

export const corruptionsArb = fc.array(
  fc.record({
    slot: fc.nat({ max: 15 }),
    at: fc.nat({ max: 255 }),
    value: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constant(-1)),
  }),
  { maxLength: 12 },
);

/** Applies corruptions to the slot bytes of ticket indices `first..first+count`, sparing MPSC stamps. */
export function corrupt(
  ring: Ring,
  first: number,
  count: number,
  corruptions: readonly Corruption[],
): void {
  if (count === 0) return;
  for (const { slot, at, value } of corruptions) {
    const index = (first + (slot % count)) >>> 0;
    const byte = at % ring.slotSize;
    if (
      ring.kind === "mpsc" && byte >= STAMP_OFFSET &&
      byte < STAMP_OFFSET + STAMP_SIZE
    ) continue;
    const offset = RING_HEADER_SIZE + (index & ring.mask) * ring.slotSize +
      byte;
    // -1 flips one bit instead of setting the byte.
    ring.bytes[offset] = value < 0
      ? ring.bytes[offset] ^ (1 << (at & 7))
      : value;
  }
}
