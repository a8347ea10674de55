/**
 * Property-based and mutation fuzzing of the message path with fast-check:
 * envelope and payload decoding of random and mutated slots, schema
 * definitions and values into `encode`, queue input validation, and rings
 * whose slots or headers were corrupted.
 *
 * The outcome of every input must be a valid message or a typed error of
 * `src/errors.ts` — never another exception, never a hang, never a queue
 * left inconsistent (each target checks the ring's invariants afterwards and
 * that the ring still carries messages).
 *
 * ```sh
 * deno run -A scripts/fuzz.ts                     # 1 000 000 inputs over every target
 * deno run -A scripts/fuzz.ts --runs 20000 --seed 42 --target slot-mutation
 * deno run -A scripts/fuzz.ts --json fuzz.json    # also write the figures
 * bun scripts/fuzz.ts --runs 100000
 * ```
 *
 * Each target runs in a child process of the same runtime with a deadline,
 * so a hang is reported (and killed) rather than waited for. Exits 1 when
 * any target fails or hangs.
 *
 * @module
 */

import fc from "fast-check";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import process from "node:process";
import { fileURLToPath } from "node:url";
import {
  ENVELOPE_SIZE,
  type EnvelopeHeader,
  readEnvelope,
  validateEnvelope,
  writeEnvelopeFor,
} from "../src/envelope.ts";
import {
  InvalidMessageError,
  InvalidStateError,
  type RingKernelError,
} from "../src/errors.ts";
import {
  ENVELOPE,
  FIELD_SIZE,
  QUEUE_HEADER,
  SLOT_TIERS,
} from "../src/layout.ts";
import {
  array,
  bytes,
  defineMessage,
  type FieldSpec,
  type FieldsSpec,
  type MessageSchema,
  type NumericType,
  SchemaRegistry,
  utf8,
} from "../src/message.ts";
import {
  Ring,
  RING_HEADER_SIZE,
  ringByteLength,
  type RingKind,
} from "../src/ring.ts";

/** One fuzz target: a fast-check property over one kind of input. */
export interface FuzzTarget {
  /** Short name, used by `--target`. */
  readonly name: string;
  /** What the target feeds in and what it checks. */
  readonly description: string;
  /** Share of the total input count (relative weight). */
  readonly weight: number;
  /**
   * Set when the code under test is known to fail this target (e.g. hang);
   * such a target runs only when asked for by name.
   */
  readonly knownIssue?: string;
  /** Builds the property (once per run). */
  property(): fc.IRawProperty<unknown, false>;
}

/** Result of one target. */
export interface FuzzTargetResult {
  /** Target name. */
  readonly name: string;
  /** Inputs generated and checked. */
  readonly runs: number;
  /** Whether a counterexample (or a hang) was found. */
  readonly failed: boolean;
  /** fast-check's report of the counterexample, or why the run stopped. */
  readonly report?: string;
  /** Seed of the run (replays it with `--seed`). */
  readonly seed: number;
  /** Wall time in ms. */
  readonly ms: number;
}

/** Options of {@linkcode runTarget}. */
export interface RunTargetOptions {
  /** Inputs to generate. */
  readonly runs: number;
  /** Seed (default: random). */
  readonly seed?: number;
}

// ---------------------------------------------------------------------------
// Outcome checks

/** Fails the property unless `error` is one of the typed errors allowed here. */
function expectTyped(
  error: unknown,
  allowed: readonly (abstract new (...args: never[]) => RingKernelError)[],
  what: string,
): void {
  if (allowed.some((type) => error instanceof type)) return;
  const detail = error instanceof Error
    ? `${error.name}: ${error.message}`
    : String(error);
  throw new Error(`${what}: untyped outcome ${detail}`, { cause: error });
}

/** Structural equality that treats NaN as equal, typed arrays as arrays. */
function sameValue(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b) || Array.isArray(a)) {
    const x = Array.from(a as ArrayLike<unknown>);
    const y = Array.from(b as ArrayLike<unknown>);
    return x.length === y.length && x.every((v, i) => sameValue(v, y[i]));
  }
  if (
    a !== null && b !== null && typeof a === "object" && typeof b === "object"
  ) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length &&
      ka.every((k) =>
        sameValue(
          (a as Record<string, unknown>)[k],
          (b as Record<string, unknown>)[k],
        )
      );
  }
  return false;
}

function show(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v) =>
      typeof v === "bigint"
        ? `${v}n`
        : ArrayBuffer.isView(v)
        ? Array.from(v as unknown as ArrayLike<unknown>, String)
        : v,
  );
}

/**
 * A decoded value must be a valid value: it encodes again, and decodes to
 * the same value. Throws (failing the property) otherwise.
 */
export function checkReencodes(schema: MessageSchema, value: unknown): void {
  const view = new DataView(new ArrayBuffer(schema.size + 8));
  try {
    schema.encode(view, 8, value as never);
  } catch (error) {
    throw new Error(
      `${schema.name}: a decoded value does not encode again: ${String(error)}`,
    );
  }
  const again = schema.decode(view, 8);
  if (!sameValue(again, value)) {
    throw new Error(
      `${schema.name}: decode(encode(v)) != v for ${show(value)} -> ${
        show(again)
      }`,
    );
  }
}

/**
 * Validates and decodes the slot at `offset`: returns the schema and value,
 * or undefined after an {@linkcode InvalidMessageError}; any other outcome
 * throws (failing the property).
 */
export function decodeSlot(
  view: DataView,
  offset: number,
  schemas: SchemaRegistry,
  slotSize: number,
): { schema: MessageSchema; value: unknown } | undefined {
  try {
    readEnvelope(view, offset);
    const schema = validateEnvelope(view, offset, { schemas, slotSize });
    const value = schema.decode(view, offset + ENVELOPE_SIZE);
    return { schema, value };
  } catch (error) {
    expectTyped(error, [InvalidMessageError], "decode slot");
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// Schemas and values

const SCALARS = [
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
const NUMERIC = SCALARS.filter((s) => s !== "bool") as NumericType[];

/** The schema, printed by its name in counterexamples. */
function named(schema: MessageSchema): MessageSchema {
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
const REGISTRY = new SchemaRegistry(FUZZ_SCHEMAS);

function scalarArb(type: (typeof SCALARS)[number]): fc.Arbitrary<unknown> {
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
function validFieldArb(spec: FieldSpec): fc.Arbitrary<unknown> {
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
const anythingArb: fc.Arbitrary<unknown> = fc.anything({
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
function invalidFieldArb(spec: FieldSpec): fc.Arbitrary<unknown> {
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
function validValueArb(schema: MessageSchema): fc.Arbitrary<unknown> {
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of schema.fields) fields[f.name] = validFieldArb(f.spec);
  return fc.record(fields);
}

/** A value of `schema` with some fields replaced by likely-invalid ones, or not an object at all. */
function mangledValueArb(schema: MessageSchema): fc.Arbitrary<unknown> {
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

const schemaArb = fc.constantFrom(...FUZZ_SCHEMAS);

/** Field specs, valid and not. */
const fieldSpecArb: fc.Arbitrary<unknown> = fc.oneof(
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

const fieldNameArb = fc.oneof(
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

const definitionArb = fc.record({
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
const HEADER_WORDS = {
  head: H.head.offset / 4,
  tail: H.tail.offset / 4,
  reserve: H.reserve.offset / 4,
  capacity: H.capacity.offset / 4,
  slotSize: H.slotSize.offset / 4,
  kind: H.kind.offset / 4,
  magic: H.magic.offset / 4,
} as const;
const STAMP_OFFSET = ENVELOPE.fields.stamp.offset;
const STAMP_SIZE = FIELD_SIZE[ENVELOPE.fields.stamp.type];

const geometryArb = fc.record({
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
function schemasFor(slotSize: number): MessageSchema[] {
  return FUZZ_SCHEMAS.filter((s) => s.size <= slotSize - ENVELOPE_SIZE);
}

/**
 * The ring works: it is empty, takes `capacity` messages, refuses one more,
 * and gives them back in order. Throws (failing the property) otherwise.
 */
function checkRingWorks(ring: Ring, round: number): void {
  const depth = ring.depth();
  if (depth !== 0) {
    throw new Error(`ring not empty after the run: depth ${depth}`);
  }
  const schema = FUZZ_SCHEMAS[1];
  const producer = ring.producer();
  const consumer = ring.consumer();
  for (let i = 0; i < ring.capacity; i++) {
    if (
      !producer.tryEnqueue(schema, { a: BigInt(round + i), b: 0n, c: i })
    ) {
      throw new Error(`ring full after ${i} of ${ring.capacity} messages`);
    }
  }
  if (producer.tryEnqueue(schema, { a: 0n, b: 0n, c: 0 })) {
    throw new Error(`ring took more than its ${ring.capacity} slots`);
  }
  for (let i = 0; i < ring.capacity; i++) {
    const got = consumer.tryDequeue(schema);
    if (got === undefined || got.value.c !== i) {
      throw new Error(`ring returned ${show(got?.value)} as message ${i}`);
    }
  }
  if (consumer.tryDequeue(schema) !== undefined || ring.depth() !== 0) {
    throw new Error("ring not empty after taking everything back");
  }
}

interface Corruption {
  readonly slot: number;
  readonly at: number;
  readonly value: number;
}

const corruptionsArb = fc.array(
  fc.record({
    slot: fc.nat({ max: 15 }),
    at: fc.nat({ max: 255 }),
    value: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constant(-1)),
  }),
  { maxLength: 12 },
);

/** Applies corruptions to the slot bytes of ticket indices `first..first+count`, sparing MPSC stamps. */
function corrupt(
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

// ---------------------------------------------------------------------------
// Targets

/** Every fuzz target. */
export const FUZZ_TARGETS: readonly FuzzTarget[] = [
  {
    name: "envelope-random-bytes",
    description:
      "random slot bytes (some shaped like a known envelope) through readEnvelope, validateEnvelope and decode; decoded values must encode again to themselves",
    weight: 3,
    property: () =>
      fc.property(
        fc.constantFrom(64, 256),
        fc.uint8Array({ minLength: 256, maxLength: 256 }),
        fc.option(fc.tuple(schemaArb, fc.boolean()), { nil: undefined }),
        (slotSize, raw, shape) => {
          const view = new DataView(raw.buffer, 0, slotSize);
          if (shape !== undefined) {
            // Make the envelope name a known type, with its size or not.
            const [schema, exactLength] = shape;
            view.setUint32(ENVELOPE.fields.typeId.offset, schema.typeId, true);
            if (exactLength) {
              view.setUint16(
                ENVELOPE.fields.payloadLength.offset,
                schema.size,
                true,
              );
            }
          }
          const decoded = decodeSlot(view, 0, REGISTRY, slotSize);
          if (decoded) checkReencodes(decoded.schema, decoded.value);
        },
      ),
  },
  {
    name: "slot-mutation",
    description:
      "valid messages encoded into a slot, checked to round-trip, then mutated (bit flips, byte writes, length prefixes) and decoded again",
    weight: 3,
    property: () =>
      fc.property(
        schemaArb.chain((schema) =>
          fc.tuple(fc.constant(schema), validValueArb(schema))
        ),
        corruptionsArb,
        fc.option(
          fc.record({
            correlationId: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
            flags: fc.integer({ min: 0, max: 0xffff }),
            sourceActor: fc.integer({ min: 0, max: 0xffffffff }),
          }),
          { nil: undefined },
        ),
        ([schema, value], mutations, header) => {
          const slotSize = schema.size + ENVELOPE_SIZE <= 64 ? 64 : 256;
          const view = new DataView(new ArrayBuffer(slotSize));
          writeEnvelopeFor(view, 0, schema, header);
          schema.encode(view, ENVELOPE_SIZE, value as never);
          const clean = decodeSlot(view, 0, REGISTRY, slotSize);
          if (clean === undefined || !sameValue(clean.value, value)) {
            throw new Error(
              `${schema.name}: ${show(value)} does not round-trip: ${
                show(clean?.value)
              }`,
            );
          }
          const envelope = readEnvelope(view, 0);
          if (
            header !== undefined &&
            (envelope.correlationId !== header.correlationId ||
              envelope.flags !== header.flags ||
              envelope.sourceActor !== header.sourceActor)
          ) {
            throw new Error(`envelope does not round-trip: ${show(envelope)}`);
          }
          const bytesOf = new Uint8Array(view.buffer);
          for (const { at, value: byte } of mutations) {
            const i = at % slotSize;
            bytesOf[i] = byte < 0 ? bytesOf[i] ^ (1 << (at & 7)) : byte;
          }
          const decoded = decodeSlot(view, 0, REGISTRY, slotSize);
          if (decoded) checkReencodes(decoded.schema, decoded.value);
        },
      ),
  },
  {
    name: "schema-definition",
    description:
      "random schema definitions into defineMessage (a schema or InvalidMessageError); valid ones round-trip generated values and reject mangled ones with InvalidMessageError",
    weight: 1,
    property: () =>
      fc.property(
        definitionArb,
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        (definition, seed) => {
          let schema: MessageSchema;
          try {
            schema = defineMessage(
              definition as unknown as { name: string; fields: FieldsSpec },
            );
          } catch (error) {
            expectTyped(error, [InvalidMessageError], "defineMessage");
            return;
          }
          const [valid, mangled] = fc.sample(
            fc.tuple(validValueArb(schema), mangledValueArb(schema)),
            { numRuns: 1, seed },
          )[0];
          const view = new DataView(new ArrayBuffer(schema.size + 16));
          schema.encode(view, 16, valid as never);
          const back = schema.decode(view, 16);
          if (!sameValue(back, valid)) {
            throw new Error(
              `${schema.name}: ${show(valid)} decodes as ${show(back)}`,
            );
          }
          try {
            schema.validate(mangled as never);
            schema.encode(view, 16, mangled as never);
          } catch (error) {
            expectTyped(error, [InvalidMessageError], "encode mangled");
            return;
          }
          checkReencodes(schema, schema.decode(view, 16));
        },
      ),
  },
  {
    name: "enqueue-input",
    description:
      "random values and envelope headers into tryEnqueue / enqueueBatch / tryEnqueueRaw of SPSC and MPSC rings: accepted messages come out intact and in order, refused ones leave nothing behind",
    weight: 1,
    property: () =>
      fc.property(
        geometryArb,
        fc.array(
          fc.tuple(
            schemaArb.chain((schema) =>
              fc.tuple(
                fc.constant(schema),
                fc.oneof(validValueArb(schema), mangledValueArb(schema)),
              )
            ),
            fc.option(
              fc.record({
                flags: fc.oneof(
                  fc.integer({ min: 0, max: 0xffff }),
                  fc.constantFrom(-1, 65_536, 0.5, NaN),
                ),
                correlationId: fc.oneof(
                  fc.bigInt({ min: -2n, max: 2n ** 64n + 2n }),
                  fc.oneof(
                    fc.nat(),
                    fc.constantFrom(-1, 2 ** 53, 2 ** 64, NaN, 1.5),
                  ),
                ),
                timestamp: fc.oneof(
                  fc.bigInt({ min: -1n, max: 2n ** 64n }),
                  fc.record({
                    physicalMs: fc.oneof(
                      fc.integer({ min: 0, max: 2 ** 48 - 1 }),
                      fc.constantFrom(-1, 2 ** 48, 0.5, NaN),
                    ),
                    logical: fc.oneof(
                      fc.integer({ min: 0, max: 0xffff }),
                      fc.constantFrom(-1, 65_536),
                    ),
                    nodeId: fc.nat(),
                  }),
                ),
                sourceActor: fc.oneof(
                  fc.integer({ min: 0, max: 0xffffffff }),
                  fc.constantFrom(-1, 2 ** 32, 0.5),
                ),
              }, { requiredKeys: [] }),
              { nil: undefined },
            ),
            fc.constantFrom("try", "batch", "raw"),
          ),
          { maxLength: 24 },
        ),
        (geometry, sends) => {
          const buffer = new ArrayBuffer(ringByteLength(geometry));
          const ring = Ring.create(buffer, geometry);
          const producer = ring.producer();
          const consumer = ring.consumer();
          const fits = new Set(schemasFor(ring.slotSize));
          const expected: unknown[] = [];
          const take = () => {
            for (;;) {
              let got;
              try {
                got = consumer.tryDequeue(REGISTRY);
              } catch (error) {
                expectTyped(error, [InvalidMessageError], "dequeue");
                throw new Error(
                  `an accepted message does not decode: ${error}`,
                );
              }
              if (got === undefined) return;
              const want = expected.shift();
              if (!sameValue(got.value, want)) {
                throw new Error(
                  `dequeued ${show(got.value)}, expected ${show(want)}`,
                );
              }
            }
          };
          for (const [[schema, value], header, how] of sends) {
            const depth = ring.depth();
            let accepted = false;
            try {
              if (how === "try") {
                accepted = producer.tryEnqueue(
                  schema,
                  value as never,
                  header as EnvelopeHeader,
                );
              } else if (how === "batch") {
                accepted = producer.enqueueBatch(
                  schema,
                  [value as never],
                  header as EnvelopeHeader,
                ) === 1;
              } else {
                const payload = new Uint8Array(schema.size);
                schema.encode(new DataView(payload.buffer), 0, value as never);
                accepted = producer.tryEnqueueRaw(
                  { typeId: schema.typeId, ...(header as EnvelopeHeader) },
                  payload,
                );
              }
            } catch (error) {
              expectTyped(error, [InvalidMessageError], "enqueue");
              if (fits.has(schema) && ring.kind === "spsc") {
                if (ring.depth() !== depth) {
                  throw new Error("a refused message changed the ring");
                }
              }
              take();
              continue;
            }
            if (accepted) {
              expected.push(schema.decode(
                (() => {
                  const v = new DataView(new ArrayBuffer(schema.size));
                  schema.encode(v, 0, value as never);
                  return v;
                })(),
                0,
              ));
            } else if (ring.depth() < ring.capacity) {
              throw new Error(
                `refused with room left (depth ${ring.depth()} of ${ring.capacity})`,
              );
            }
            if (ring.depth() === ring.capacity) take();
          }
          take();
          if (expected.length !== 0) {
            throw new Error(
              `${expected.length} accepted messages never came out`,
            );
          }
          checkRingWorks(ring, sends.length);
        },
      ),
  },
  {
    name: "ring-corrupt-slots",
    description:
      "valid messages enqueued, then random bytes of their slots corrupted (MPSC stamps spared); the consumer yields each as a message or an InvalidMessageError, the ring ends empty and still works",
    weight: 2,
    property: () =>
      fc.property(
        geometryArb,
        fc.array(
          schemaArb.chain((schema) =>
            fc.tuple(fc.constant(schema), validValueArb(schema))
          ),
          { minLength: 1, maxLength: 16 },
        ),
        corruptionsArb,
        fc.constantFrom("tryDequeue", "dequeueMessages", "dequeueBatch"),
        (geometry, messages, corruptions, how) => {
          const buffer = new ArrayBuffer(ringByteLength(geometry));
          const ring = Ring.create(buffer, geometry);
          const producer = ring.producer();
          const fits = new Set(schemasFor(ring.slotSize));
          let sent = 0;
          const first = Atomics.load(ring.words, HEADER_WORDS.head);
          for (const [schema, value] of messages) {
            if (!fits.has(schema)) continue;
            if (!producer.tryEnqueue(schema, value as never)) break;
            sent++;
          }
          corrupt(ring, first, sent, corruptions);
          let rejected = 0;
          let decoded = 0;
          const consumer = ring.consumer({
            onInvalid: (slot) => {
              if (!(slot.error instanceof InvalidMessageError)) {
                throw new Error(`onInvalid got ${String(slot.error)}`);
              }
              rejected++;
            },
          });
          if (how === "tryDequeue") {
            for (let i = 0; i <= sent; i++) {
              if (consumer.tryDequeue(REGISTRY) === undefined) break;
              decoded++;
            }
          } else if (how === "dequeueMessages") {
            decoded = consumer.dequeueMessages(REGISTRY, ring.capacity, (r) => {
              checkReencodes(r.schema, r.value);
            });
          } else {
            const skipped = consumer.dequeueBatch(ring.capacity, (view, at) => {
              const d = decodeSlot(view, at, REGISTRY, ring.slotSize);
              if (d) {
                decoded++;
                checkReencodes(d.schema, d.value);
              } else rejected++;
            });
            // dequeueBatch skips void slots (type id 0): a corrupted type id may make one.
            if (skipped !== decoded + rejected) {
              throw new Error(
                `dequeueBatch saw ${skipped}, counted ${decoded + rejected}`,
              );
            }
            rejected = sent - decoded;
          }
          if (how !== "dequeueBatch" && decoded + rejected > sent) {
            throw new Error(
              `${decoded} decoded + ${rejected} rejected > ${sent} sent`,
            );
          }
          // Void slots (a corrupted type id of 0) are skipped silently by design.
          if (ring.depth() !== 0) {
            throw new Error(
              `ring depth ${ring.depth()} after draining ${sent}`,
            );
          }
          checkRingWorks(ring, sent);
        },
      ),
  },
  {
    name: "ring-attach-header",
    description:
      "random and mutated queue headers into Ring.attach (a ring or InvalidStateError); an attached ring is drained by its consumer with only typed errors and bounded work",
    weight: 2,
    property: () =>
      fc.property(
        geometryArb,
        fc.oneof(
          fc.array(
            fc.record({
              word: fc.constantFrom(
                ...Object.keys(HEADER_WORDS) as (keyof typeof HEADER_WORDS)[],
              ),
              value: fc.oneof(
                fc.integer({ min: 0, max: 0xffffffff }),
                fc.constantFrom(0, 1, 3, 64, 100, 2 ** 30, 2 ** 31, 0xffffffff),
              ),
            }),
            { maxLength: 4 },
          ),
          fc.uint8Array({
            minLength: RING_HEADER_SIZE,
            maxLength: RING_HEADER_SIZE,
          }),
        ),
        fc.record({
          kind: fc.option(fc.constantFrom<RingKind>("spsc", "mpsc"), {
            nil: undefined,
          }),
          capacity: fc.option(fc.constantFrom(1, 4, 16, 3), { nil: undefined }),
          slotSize: fc.option(fc.constantFrom(64, 256, 100), {
            nil: undefined,
          }),
        }),
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        (geometry, mutation, expect, fill) => {
          const length = ringByteLength(geometry);
          const buffer = new ArrayBuffer(length + 4096);
          const ring = Ring.create(buffer, geometry);
          // Slots hold random bytes too.
          for (let at = RING_HEADER_SIZE; at < length; at += fill.length) {
            ring.bytes.set(
              fill.subarray(0, Math.min(fill.length, length - at)),
              at,
            );
          }
          const words = new Uint32Array(buffer, 0, RING_HEADER_SIZE / 4);
          if (mutation instanceof Uint8Array) {
            new Uint8Array(buffer, 0, RING_HEADER_SIZE).set(mutation);
          } else {
            for (const { word, value } of mutation) {
              words[HEADER_WORDS[word]] = value;
            }
          }
          let attached: Ring;
          try {
            attached = Ring.attach(buffer, {
              kind: expect.kind ?? undefined,
              capacity: expect.capacity ?? undefined,
              slotSize: expect.slotSize ?? undefined,
            });
          } catch (error) {
            expectTyped(error, [InvalidStateError], "attach");
            return;
          }
          if (
            attached.byteLength > buffer.byteLength ||
            !SLOT_TIERS.includes(attached.slotSize) ||
            (attached.capacity & (attached.capacity - 1)) !== 0
          ) {
            throw new Error(
              `attach accepted a bad geometry: ${attached.capacity} x ${attached.slotSize}`,
            );
          }
          const consumer = attached.consumer({ onInvalid: () => {} });
          let taken = 0;
          try {
            for (let i = 0; i <= attached.capacity; i++) {
              if (consumer.tryDequeue(REGISTRY) === undefined) break;
              taken++;
            }
          } catch (error) {
            expectTyped(
              error,
              [InvalidStateError, InvalidMessageError],
              "drain",
            );
          }
          if (taken > attached.capacity) {
            throw new Error(
              `consumer took ${taken} from ${attached.capacity} slots`,
            );
          }
        },
      ),
  },
  {
    name: "ring-corrupt-indices-producer",
    description:
      "header indices overwritten (tail, reserve or head anywhere in u32): Ring.attach refuses exactly the headers whose producers' end is more than capacity past head; producers made before the damage return or throw InvalidStateError, never spin",
    weight: 1,
    property: () =>
      fc.property(
        geometryArb,
        fc.constantFrom("tail", "reserve", "head"),
        fc.oneof(
          fc.integer({ min: 0, max: 0xffffffff }),
          fc.integer({ min: -20, max: 20 }),
        ),
        fc.nat({ max: 16 }),
        fc.constantFrom("try", "drop", "batch", "raw", "claim"),
        (geometry, word, value, fill, how) => {
          const buffer = new ArrayBuffer(ringByteLength(geometry));
          const ring = Ring.create(buffer, geometry);
          const producer = ring.producer();
          const schema = FUZZ_SCHEMAS[1];
          const message = { a: 1n, b: 2n, c: 3 };
          // Full or not: an SPSC producer re-reads head only when it needs room.
          for (let i = 0; i < Math.min(fill, ring.capacity); i++) {
            producer.tryEnqueue(schema, message);
          }
          const words = new Uint32Array(buffer, 0, RING_HEADER_SIZE / 4);
          const target = HEADER_WORDS[word as "tail"];
          // Small values are offsets from the current word, so the damage is
          // sometimes within capacity (a valid-looking header).
          words[target] = value <= 20 && value >= -20
            ? (words[target] + value) >>> 0
            : value;
          const end = ring.kind === "spsc"
            ? words[HEADER_WORDS.tail]
            : words[HEADER_WORDS.reserve];
          const corrupt =
            ((end - words[HEADER_WORDS.head]) >>> 0) > ring.capacity;
          let attached: Ring | undefined;
          try {
            attached = Ring.attach(buffer);
          } catch (error) {
            expectTyped(error, [InvalidStateError], "attach");
          }
          if ((attached === undefined) !== corrupt) {
            throw new Error(
              `attach ${
                attached ? "accepted" : "refused"
              } ${ring.kind} indices end ${end}, head ${
                words[HEADER_WORDS.head]
              }, capacity ${ring.capacity}`,
            );
          }
          const producers = [producer];
          if (attached) producers.push(attached.producer());
          for (const p of producers) {
            try {
              if (how === "try") p.tryEnqueue(schema, message);
              else if (how === "drop") p.enqueueOrDrop(schema, message);
              else if (how === "batch") p.enqueueBatch(schema, [message]);
              else if (how === "raw") {
                p.tryEnqueueRaw({ typeId: schema.typeId }, new Uint8Array(24));
              } else {
                const granted = p.claim(ring.capacity);
                if (granted < 0 || granted > ring.capacity) {
                  throw new Error(`claim granted ${granted} slots`);
                }
                p.publish(0);
              }
            } catch (error) {
              expectTyped(
                error,
                [InvalidStateError],
                "enqueue on a corrupt ring",
              );
            }
            if (p.pending !== 0) {
              throw new Error(`${p.pending} slots left claimed`);
            }
          }
        },
      ),
  },
  {
    name: "string-bom",
    description:
      "UTF-8 string fields holding U+FEFF round-trip through encode and decode",
    weight: 1,
    property: () =>
      fc.property(
        fc.string({ unit: "binary-ascii", maxLength: 6 }),
        fc.string({ unit: "binary", maxLength: 6 }),
        (before, after) => {
          const schema = FUZZ_SCHEMAS[5];
          const value = {
            text: `${before}\ufeff${after}`,
            raw: new Uint8Array(0),
            v: [0, 0, 0, 0],
          };
          const view = new DataView(new ArrayBuffer(schema.size));
          schema.encode(view, 0, value as never);
          const back = schema.decode(view, 0) as { text: string };
          if (back.text !== value.text) {
            throw new Error(
              `${show(value.text)} decodes as ${show(back.text)}`,
            );
          }
        },
      ),
  },
  {
    name: "hostile-field-values",
    description:
      "values that String() or a bitwise operator cannot convert (null-prototype objects, symbols, throwing toString / toPrimitive) as field values, field specs, schema names and type ids, envelope header fields: refused with InvalidMessageError, nothing published",
    weight: 1,
    property: () =>
      fc.property(
        fc.constantFrom(
          () => Object.create(null),
          () => ({ toString: 1, valueOf: 1 }),
          () => ({
            [Symbol.toPrimitive]() {
              throw new Error("no primitive");
            },
          }),
          () => ({
            toString() {
              throw new Error("no string");
            },
          }),
          () => Symbol("hostile"),
        ),
        fc.constantFrom(
          "value",
          "some-field",
          "length",
          "element",
          "capacity",
          "kind",
          "name",
          "typeId",
          "flags",
          "sourceActor",
          "correlationId",
          "timestamp",
          "physicalMs",
          "logical",
          "header",
        ),
        fc.nat({ max: FUZZ_SCHEMAS.length - 1 }),
        fc.constantFrom<RingKind>("spsc", "mpsc"),
        (make, where, pick, kind) => {
          const hostile = make();
          const schema = FUZZ_SCHEMAS[pick];
          const ring = Ring.create(
            new ArrayBuffer(ringByteLength({ capacity: 4, slotSize: 256 })),
            { capacity: 4, slotSize: 256, kind },
          );
          const producer = ring.producer();
          const good = fc.sample(validValueArb(schema), {
            numRuns: 1,
            seed: pick,
          })[0] as Record<string, unknown>;
          try {
            if (where === "value" || where === "some-field") {
              const value: Record<string, unknown> = { ...good };
              for (const [i, f] of schema.fields.entries()) {
                if (where === "value" || i === pick % schema.fields.length) {
                  value[f.name] = hostile;
                }
              }
              producer.tryEnqueue(schema, value as never);
            } else if (
              where === "length" || where === "element" ||
              where === "capacity" || where === "kind"
            ) {
              const spec = where === "length"
                ? { kind: "array", element: "u8", length: hostile }
                : where === "element"
                ? { kind: "array", element: hostile, length: 2 }
                : where === "capacity"
                ? { kind: "bytes", capacity: hostile }
                : { kind: hostile, capacity: 4 };
              defineMessage({
                name: "Hostile",
                fields: { f: spec } as unknown as FieldsSpec,
              });
            } else if (where === "name" || where === "typeId") {
              defineMessage({
                name: where === "name" ? hostile as string : "Hostile",
                typeId: where === "typeId" ? hostile as number : undefined,
                fields: {},
              });
            } else {
              const header: Record<string, unknown> = where === "physicalMs"
                ? { timestamp: { physicalMs: hostile, logical: 0, nodeId: 0 } }
                : where === "logical"
                ? { timestamp: { physicalMs: 0, logical: hostile, nodeId: 0 } }
                : { [where]: hostile };
              producer.tryEnqueue(
                schema,
                good as never,
                (where === "header" ? hostile : header) as EnvelopeHeader,
              );
            }
          } catch (error) {
            expectTyped(error, [InvalidMessageError], `hostile ${where}`);
            if (ring.consumer().tryDequeue(REGISTRY) !== undefined) {
              throw new Error(`a refused message was published`);
            }
            return;
          }
          if (where === "header") {
            // Any value but null without header fields is an empty header.
            const got = ring.consumer().tryDequeue(REGISTRY);
            if (got === undefined || !sameValue(got.value, good)) {
              throw new Error(`an empty header lost the message`);
            }
            return;
          }
          throw new Error(`hostile ${where} accepted`);
        },
      ),
  },
  {
    name: "proto-field-name",
    description:
      "a schema with a field named __proto__ is refused, or its values round-trip",
    weight: 1,
    property: () =>
      fc.property(
        fc.constantFrom(...SCALARS.filter((t) => t !== "bool")),
        (type) => {
          let schema: MessageSchema;
          try {
            schema = defineMessage({
              name: "Proto",
              fields: JSON.parse(`{"__proto__": "${type}"}`),
            });
          } catch (error) {
            expectTyped(error, [InvalidMessageError], "defineMessage");
            return;
          }
          const value = JSON.parse(`{"__proto__": 1}`);
          if (type === "u64" || type === "i64") value["__proto__"] = 1n;
          const view = new DataView(new ArrayBuffer(schema.size));
          try {
            schema.encode(view, 0, value);
          } catch (error) {
            throw new Error(
              `a value with its one field set does not encode: ${error}`,
            );
          }
          checkReencodes(schema, schema.decode(view, 0));
          if (!Object.hasOwn(schema.decode(view, 0), "__proto__")) {
            throw new Error("decode lost the __proto__ field");
          }
        },
      ),
  },
];

/** Runs one target in this process. */
export function runTarget(
  target: FuzzTarget,
  options: RunTargetOptions,
): FuzzTargetResult {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const started = performance.now();
  const details = fc.check(target.property(), {
    numRuns: options.runs,
    seed,
    endOnFailure: false,
  });
  const ms = performance.now() - started;
  return {
    name: target.name,
    runs: details.numRuns,
    failed: details.failed,
    report: details.failed
      ? `${fc.defaultReportMessage(details)}\n${
        details.errorInstance instanceof Error
          ? details.errorInstance.message
          : String(details.errorInstance)
      }`
      : undefined,
    seed,
    ms,
  };
}

// ---------------------------------------------------------------------------
// Command line

interface Cli {
  runs: number;
  seed?: number;
  targets: string[];
  json?: string;
  child: boolean;
  timeoutMs: number;
  jobs: number;
}

function parseCli(argv: string[]): Cli {
  const cli: Cli = {
    runs: 1_000_000,
    targets: [],
    child: false,
    timeoutMs: 600_000,
    jobs: Math.max(1, availableParallelism()),
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => {
      const value = argv[++i];
      if (value === undefined) throw new RangeError(`${arg} needs a value`);
      return value;
    };
    if (arg === "--runs") cli.runs = Number(next());
    else if (arg === "--seed") cli.seed = Number(next());
    else if (arg === "--target") cli.targets.push(next());
    else if (arg === "--json") cli.json = next();
    else if (arg === "--timeout-ms") cli.timeoutMs = Number(next());
    else if (arg === "--jobs") cli.jobs = Number(next());
    else if (arg === "--child") cli.child = true;
    else throw new RangeError(`unknown argument ${arg}`);
  }
  if (!Number.isSafeInteger(cli.runs) || cli.runs < 1) {
    throw new RangeError(`--runs must be a positive integer`);
  }
  return cli;
}

/** The command that runs this script again in the same runtime. */
function selfCommand(args: string[]): [string, string[]] {
  const script = fileURLToPath(import.meta.url);
  if (process.versions.deno !== undefined) {
    return [process.execPath, ["run", "-A", script, ...args]];
  }
  return [process.execPath, [script, ...args]];
}

function runChild(
  name: string,
  runs: number,
  seed: number,
  timeoutMs: number,
): Promise<FuzzTargetResult> {
  const [command, args] = selfCommand([
    "--child",
    "--target",
    name,
    "--runs",
    String(runs),
    "--seed",
    String(seed),
  ]);
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => out += d);
    child.stderr.on("data", (d) => err += d);
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      const ms = performance.now() - started;
      const line = out.trim().split("\n").pop() ?? "";
      if (!hung && code === 0 && line.startsWith("{")) {
        resolve(JSON.parse(line) as FuzzTargetResult);
        return;
      }
      resolve({
        name,
        runs: 0,
        failed: true,
        report: hung
          ? `hang: no result within ${timeoutMs} ms (killed)`
          : `child exited with ${code}: ${err.slice(-2000)}`,
        seed,
        ms,
      });
    });
  });
}

async function main(argv: string[]): Promise<number> {
  const cli = parseCli(argv);
  const chosen = cli.targets.length > 0
    ? cli.targets.map((name) => {
      const target = FUZZ_TARGETS.find((t) => t.name === name);
      if (target === undefined) {
        throw new RangeError(
          `unknown target ${name} (known: ${
            FUZZ_TARGETS.map((t) => t.name).join(", ")
          })`,
        );
      }
      return target;
    })
    : FUZZ_TARGETS.filter((t) => t.knownIssue === undefined);
  if (cli.child) {
    const result = runTarget(chosen[0], { runs: cli.runs, seed: cli.seed });
    console.log(JSON.stringify(result));
    return 0;
  }
  const seed = cli.seed ?? Math.floor(Math.random() * 2 ** 31);
  const weight = chosen.reduce((sum, t) => sum + t.weight, 0);
  const shares = chosen.map((t) =>
    Math.max(1, Math.round(cli.runs * t.weight / weight))
  );
  shares[shares.length - 1] += cli.runs - shares.reduce((a, b) => a + b, 0);
  const runtime = process.versions.deno !== undefined
    ? `deno ${process.versions.deno}`
    : `bun ${process.versions.bun}`;
  console.log(
    `fuzz: ${cli.runs} inputs over ${chosen.length} targets, seed ${seed}, ${runtime}, ${cli.jobs} jobs`,
  );
  for (const t of chosen) {
    if (t.knownIssue) {
      console.log(`fuzz: ${t.name} has a known issue: ${t.knownIssue}`);
    }
  }
  const started = performance.now();
  const results: FuzzTargetResult[] = new Array(chosen.length);
  let nextIndex = 0;
  const worker = async () => {
    for (;;) {
      const i = nextIndex++;
      if (i >= chosen.length) return;
      results[i] = await runChild(
        chosen[i].name,
        Math.max(1, shares[i]),
        seed + i,
        cli.timeoutMs,
      );
      const r = results[i];
      console.log(
        `${r.failed ? "FAIL" : "ok  "} ${r.name.padEnd(30)} ${
          String(r.runs).padStart(9)
        } inputs ${(r.ms / 1000).toFixed(1).padStart(7)} s ${
          Math.round(r.runs / (r.ms / 1000)).toString().padStart(8)
        } /s`,
      );
      if (r.failed) console.log(r.report);
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(cli.jobs, chosen.length) }, worker),
  );
  const wallMs = performance.now() - started;
  const total = results.reduce((sum, r) => sum + r.runs, 0);
  const failures = results.filter((r) => r.failed).length;
  console.log(
    `fuzz: ${total} inputs, ${failures} failing targets, ${
      (wallMs / 1000).toFixed(1)
    } s wall`,
  );
  if (cli.json !== undefined) {
    writeFileSync(
      cli.json,
      JSON.stringify(
        { runtime, seed, inputs: total, failures, wallMs, results },
        null,
        2,
      ) + "\n",
    );
  }
  return failures === 0 ? 0 : 1;
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error) => {
      console.error(error);
      process.exit(2);
    },
  );
}
