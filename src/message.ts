/**
 * Fixed-layout message schemas.
 *
 * A schema lays its fields out in declaration order with C rules (each field
 * at its natural alignment, the struct padded to its largest alignment), so the
 * same bytes read as a plain C struct on the device (see `c_struct.ts`). All
 * values are little-endian. Encoding writes fields in place at an offset of a
 * `DataView` — into a queue slot, never into a temporary message that is then
 * copied — through code generated once per schema.
 *
 * ```ts
 * const Command = defineMessage({
 *   name: "Command",
 *   fields: { opcode: "u32", target: "u32", x: "f64", label: utf8(16) },
 * });
 * Command.encode(view, offset, { opcode: 1, target: 7, x: 0.5, label: "go" });
 * ```
 *
 * @module
 */

import { InvalidMessageError } from "./errors.ts";

/** Numeric scalar field types (64-bit integers are `bigint` in TypeScript). */
export type NumericType =
  | "u8"
  | "u16"
  | "u32"
  | "i8"
  | "i16"
  | "i32"
  | "u64"
  | "i64"
  | "f32"
  | "f64";

/** Scalar field types: the numeric ones and `bool` (one byte, 0 or 1). */
export type ScalarType = NumericType | "bool";

/** A fixed-length array of a numeric type; see {@linkcode array}. */
export interface ArrayFieldSpec<E extends NumericType = NumericType> {
  /** Discriminant. */
  readonly kind: "array";
  /** Element type. */
  readonly element: E;
  /** Number of elements (every value must have exactly this many). */
  readonly length: number;
}

/** Up to `capacity` raw bytes behind a u16 length prefix; see {@linkcode bytes}. */
export interface BytesFieldSpec {
  /** Discriminant. */
  readonly kind: "bytes";
  /** Largest number of bytes a value may hold. */
  readonly capacity: number;
}

/** A UTF-8 string of up to `capacity` bytes behind a u16 length prefix; see {@linkcode utf8}. */
export interface StringFieldSpec {
  /** Discriminant. */
  readonly kind: "string";
  /** Largest number of UTF-8 bytes a value may encode to. */
  readonly capacity: number;
}

/** The type of one field. */
export type FieldSpec =
  | ScalarType
  | ArrayFieldSpec
  | BytesFieldSpec
  | StringFieldSpec;

/** The fields of a schema, in layout order. */
export type FieldsSpec = Readonly<Record<string, FieldSpec>>;

/** Typed array returned when decoding an array of each element type. */
export interface TypedArrayOf {
  /** u8 arrays. */
  u8: Uint8Array;
  /** u16 arrays. */
  u16: Uint16Array;
  /** u32 arrays. */
  u32: Uint32Array;
  /** i8 arrays. */
  i8: Int8Array;
  /** i16 arrays. */
  i16: Int16Array;
  /** i32 arrays. */
  i32: Int32Array;
  /** u64 arrays. */
  u64: BigUint64Array;
  /** i64 arrays. */
  i64: BigInt64Array;
  /** f32 arrays. */
  f32: Float32Array;
  /** f64 arrays. */
  f64: Float64Array;
}

/** The TypeScript type accepted when encoding one field. */
export type FieldValue<S> = S extends "u64" | "i64" ? bigint
  : S extends "bool" ? boolean
  : S extends NumericType ? number
  : S extends ArrayFieldSpec<infer E>
    ? E extends "u64" | "i64" ? ArrayLike<bigint> : ArrayLike<number>
  : S extends BytesFieldSpec ? Uint8Array
  : S extends StringFieldSpec ? string
  : never;

/** The TypeScript type produced when decoding one field. */
export type DecodedFieldValue<S> = S extends ArrayFieldSpec<infer E>
  ? TypedArrayOf[E]
  : FieldValue<S>;

/** A value that {@linkcode MessageSchema.encode} accepts. */
export type MessageValue<F extends FieldsSpec> = {
  [K in keyof F]: FieldValue<F[K]>;
};

/** A value that {@linkcode MessageSchema.decode} returns (arrays become typed arrays, bytes are copied). */
export type DecodedMessage<F extends FieldsSpec> = {
  [K in keyof F]: DecodedFieldValue<F[K]>;
};

/** Layout of one field, as computed by {@linkcode defineMessage}. */
export interface FieldInfo {
  /** Field name. */
  readonly name: string;
  /** Field type. */
  readonly spec: FieldSpec;
  /** Byte offset from the start of the payload. */
  readonly offset: number;
  /** Size in bytes (for bytes/strings: 2-byte length prefix plus capacity). */
  readonly size: number;
  /** Alignment in bytes. */
  readonly align: number;
}

/** Reads and writes one field of a message in place; see {@linkcode MessageSchema.field}. */
export interface FieldAccessor<S extends FieldSpec = FieldSpec> {
  /** The field's layout. */
  readonly info: FieldInfo;
  /** Reads the field of the message that starts at `offset`. */
  get(view: DataView, offset: number): DecodedFieldValue<S>;
  /** Validates and writes the field of the message that starts at `offset`. */
  set(view: DataView, offset: number, value: FieldValue<S>): void;
}

/** A fixed-layout message type; create one with {@linkcode defineMessage}. */
export interface MessageSchema<F extends FieldsSpec = FieldsSpec> {
  /** Schema name (the type id is derived from it and the layout unless given). */
  readonly name: string;
  /**
   * Stable, non-zero u32 type id carried in the envelope: unless given, the
   * FNV-1a hash of the name and the {@linkcode MessageSchema.layout}, so two
   * schemas of the same name with different fields have different ids.
   */
  readonly typeId: number;
  /**
   * The canonical field layout: `name:type` for each field in layout order,
   * comma-separated (`seq:u64,value:f64,tag:u32`; arrays `f32[16]`, bytes
   * `bytes(32)`, strings `utf8(16)`). Two schemas with the same layout read
   * the same bytes the same way.
   */
  readonly layout: string;
  /** Encoded size in bytes (a multiple of `align`). */
  readonly size: number;
  /** Alignment in bytes (the largest field alignment, at least 1). */
  readonly align: number;
  /** Fields in layout order. */
  readonly fields: readonly FieldInfo[];
  /** The field specs as declared. */
  readonly spec: F;
  /**
   * Validates `value` and writes it at `offset` in place, padding zeroed.
   * Throws {@linkcode InvalidMessageError} on a bad value; the bytes at
   * `offset` may then be partly written (queues never publish such a slot).
   */
  encode(view: DataView, offset: number, value: MessageValue<F>): void;
  /** Decodes the whole message at `offset`; throws InvalidMessageError on corrupt lengths or UTF-8. */
  decode(view: DataView, offset: number): DecodedMessage<F>;
  /** Reads one field without decoding the rest. */
  read<K extends keyof F & string>(
    view: DataView,
    offset: number,
    name: K,
  ): DecodedFieldValue<F[K]>;
  /** Validates and writes one field in place. */
  write<K extends keyof F & string>(
    view: DataView,
    offset: number,
    name: K,
    value: FieldValue<F[K]>,
  ): void;
  /** The accessor of one field (cache it for hot loops). */
  field<K extends keyof F & string>(name: K): FieldAccessor<F[K]>;
  /** Throws {@linkcode InvalidMessageError} unless `value` would encode. */
  validate(value: MessageValue<F>): void;
  /**
   * Encodes `values[i]` at `offset + i * stride` for every i; `stride` must be
   * at least `size`. Returns the number of values written.
   */
  encodeMany(
    view: DataView,
    offset: number,
    stride: number,
    values: ArrayLike<MessageValue<F>>,
  ): number;
  /** Decodes `count` messages at `offset + i * stride`. */
  decodeMany(
    view: DataView,
    offset: number,
    stride: number,
    count: number,
  ): DecodedMessage<F>[];
}

/** Options of {@linkcode defineMessage}. */
export interface MessageDefinition<F extends FieldsSpec> {
  /**
   * Schema name: letters, digits, `_`, `.`, `-`. The default type id is the
   * FNV-1a hash of the name and the canonical field layout.
   */
  name: string;
  /** Explicit type id (u32, non-zero); overrides the hash of the name and layout. */
  typeId?: number;
  /** Fields in layout order. Names must be identifiers (letters, digits, `_`). */
  fields: F;
}

/** A fixed-length array field of `length` elements of type `element`. */
export function array<E extends NumericType>(
  element: E,
  length: number,
): ArrayFieldSpec<E> {
  return Object.freeze({ kind: "array", element, length });
}

/** A byte-string field holding up to `capacity` bytes (u16 length prefix + data). */
export function bytes(capacity: number): BytesFieldSpec {
  return Object.freeze({ kind: "bytes", capacity });
}

/** A UTF-8 string field holding up to `capacity` encoded bytes (u16 length prefix + data). */
export function utf8(capacity: number): StringFieldSpec {
  return Object.freeze({ kind: "string", capacity });
}

/** Size (and natural alignment) of each scalar type. */
export const SCALAR_SIZE: Readonly<Record<ScalarType, number>> = Object.freeze({
  u8: 1,
  i8: 1,
  bool: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  u64: 8,
  i64: 8,
  f64: 8,
});

/** Largest encoded size of a message: the envelope's payload length is a u16. */
export const MAX_MESSAGE_SIZE = 0xffff;

/** Largest capacity of a bytes or string field (its length prefix is a u16). */
export const MAX_VARIABLE_CAPACITY = 0xffff;

/**
 * FNV-1a 32-bit hash of the UTF-8 bytes of `text`, never 0 (a 0 hash maps to
 * the FNV offset basis): the default type id of a schema.
 */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  hash >>>= 0;
  return hash === 0 ? 0x811c9dc5 : hash;
}

/** The canonical text of one field type: `u32`, `f32[16]`, `bytes(32)`, `utf8(16)`. */
function canonicalSpec(spec: FieldSpec): string {
  if (typeof spec === "string") return spec;
  switch (spec.kind) {
    case "array":
      return `${spec.element}[${spec.length}]`;
    case "bytes":
      return `bytes(${spec.capacity})`;
    case "string":
      return `utf8(${spec.capacity})`;
  }
}

/**
 * The canonical layout of fields in layout order (see
 * {@linkcode MessageSchema.layout}).
 */
export function canonicalLayout(
  fields: readonly Pick<FieldInfo, "name" | "spec">[],
): string {
  return fields.map((f) => `${f.name}:${canonicalSpec(f.spec)}`).join(",");
}

/**
 * The default type id of a schema: the FNV-1a hash of its name and its
 * canonical layout, so a schema's identity covers its fields, not only its
 * name.
 */
export function defaultTypeId(name: string, layout: string): number {
  return fnv1a32(`${name}{${layout}}`);
}

const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.\-]*$/;
const FIELD_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

function invalid(message: string): never {
  throw new InvalidMessageError(message);
}

/**
 * Whether a plain object takes `name` as an own data property, both when
 * assigned and in an object literal (what `decode` builds). `__proto__` does
 * not: in a literal it sets the prototype, and so does assigning it where
 * `Object.prototype.__proto__` exists (Bun; Deno removes that accessor).
 */
function roundTripsAsProperty(name: string): boolean {
  if (name === "__proto__") return false;
  const probe: Record<string, unknown> = {};
  probe[name] = 0;
  return Object.hasOwn(probe, name) && probe[name] === 0;
}

function layoutOf(
  name: string,
  spec: FieldSpec,
): { size: number; align: number } {
  if (typeof spec === "string") {
    const size = SCALAR_SIZE[spec];
    if (size === undefined || !Object.hasOwn(SCALAR_SIZE, spec)) {
      invalid(`field ${name}: unknown type ${JSON.stringify(spec)}`);
    }
    return { size, align: size };
  }
  if (spec === null || typeof spec !== "object") {
    invalid(`field ${name}: bad field spec ${describe(spec)}`);
  }
  switch (spec.kind) {
    case "array": {
      const element: unknown = spec.element;
      if (
        typeof element !== "string" || !Object.hasOwn(SCALAR_SIZE, element) ||
        element === "bool"
      ) {
        invalid(
          `field ${name}: arrays hold numeric types, not ${describe(element)}`,
        );
      }
      const size = SCALAR_SIZE[element as NumericType];
      const length: unknown = spec.length;
      if (!Number.isInteger(length) || (length as number) < 1) {
        invalid(
          `field ${name}: array length ${
            describe(length)
          } must be an integer >= 1`,
        );
      }
      return { size: size * (length as number), align: size };
    }
    case "bytes":
    case "string": {
      const capacity: unknown = spec.capacity;
      if (
        !Number.isInteger(capacity) || (capacity as number) < 1 ||
        (capacity as number) > MAX_VARIABLE_CAPACITY
      ) {
        invalid(
          `field ${name}: capacity ${
            describe(capacity)
          } must be an integer within 1..${MAX_VARIABLE_CAPACITY}`,
        );
      }
      return { size: 2 + (capacity as number), align: 2 };
    }
    default:
      invalid(
        `field ${name}: unknown field kind ${
          describe((spec as { kind: unknown }).kind)
        }`,
      );
  }
}

const SETTER: Record<NumericType, string> = {
  u8: "setUint8",
  i8: "setInt8",
  u16: "setUint16",
  i16: "setInt16",
  u32: "setUint32",
  i32: "setInt32",
  f32: "setFloat32",
  f64: "setFloat64",
  u64: "setBigUint64",
  i64: "setBigInt64",
};

const GETTER: Record<NumericType, string> = {
  u8: "getUint8",
  i8: "getInt8",
  u16: "getUint16",
  i16: "getInt16",
  u32: "getUint32",
  i32: "getInt32",
  f32: "getFloat32",
  f64: "getFloat64",
  u64: "getBigUint64",
  i64: "getBigInt64",
};

const TYPED_ARRAY: Record<NumericType, string> = {
  u8: "Uint8Array",
  i8: "Int8Array",
  u16: "Uint16Array",
  i16: "Int16Array",
  u32: "Uint32Array",
  i32: "Int32Array",
  f32: "Float32Array",
  f64: "Float64Array",
  u64: "BigUint64Array",
  i64: "BigInt64Array",
};

/** JS condition that is true when `x` is NOT a valid value of `type`. */
function badCondition(type: ScalarType, x: string): string {
  switch (type) {
    case "u8":
      return `typeof ${x} !== "number" || (${x} & 255) !== ${x}`;
    case "i8":
      return `typeof ${x} !== "number" || ((${x} << 24) >> 24) !== ${x}`;
    case "u16":
      return `typeof ${x} !== "number" || (${x} & 65535) !== ${x}`;
    case "i16":
      return `typeof ${x} !== "number" || ((${x} << 16) >> 16) !== ${x}`;
    case "u32":
      return `typeof ${x} !== "number" || (${x} >>> 0) !== ${x}`;
    case "i32":
      return `typeof ${x} !== "number" || (${x} | 0) !== ${x}`;
    case "f32":
    case "f64":
      return `typeof ${x} !== "number"`;
    case "bool":
      return `typeof ${x} !== "boolean"`;
    case "u64":
      return `typeof ${x} !== "bigint" || ${x} < 0n || ${x} > 0xffffffffffffffffn`;
    case "i64":
      return `typeof ${x} !== "bigint" || ${x} < -0x8000000000000000n || ${x} > 0x7fffffffffffffffn`;
  }
}

/**
 * Describes any value for an error message, and never throws: `String()`
 * throws for a null-prototype object, a symbol inside a template, or an
 * object whose `toString` throws, which would turn a refusal of bad input
 * into a `TypeError`. Objects are described by their tag, without calling
 * their own methods.
 */
export function describeValue(value: unknown): string {
  try {
    switch (typeof value) {
      case "bigint":
        return `${value}n`;
      case "string":
        return JSON.stringify(
          value.length > 40 ? value.slice(0, 40) + "…" : value,
        );
      case "number":
        return Object.is(value, -0) ? "-0" : String(value);
      case "symbol":
        return value.toString();
      case "object":
      case "function": {
        if (value === null) return "null";
        if (Array.isArray(value)) return `array(${value.length})`;
        const tag = Object.prototype.toString.call(value);
        if (ArrayBuffer.isView(value) && "length" in value) {
          return `${tag.slice(8, -1)}(${(value as Uint8Array).length})`;
        }
        return Object.getPrototypeOf(value) === null
          ? "[object Object] (null prototype)"
          : tag;
      }
      default:
        return String(value);
    }
  } catch {
    return `a ${typeof value} that cannot be described`;
  }
}

const describe = describeValue;

// ignoreBOM: a U+FEFF at the start of a field is text, not a byte-order mark.
const textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const textEncoder = new TextEncoder();

/** Writes a UTF-8 string with its u16 length prefix at `offset`. */
function writeString(
  view: DataView,
  offset: number,
  value: unknown,
  capacity: number,
  field: string,
): void {
  if (typeof value !== "string") {
    invalid(`field ${field}: expected a string, got ${describe(value)}`);
  }
  const n = value.length;
  if (n > capacity) {
    invalid(
      `field ${field}: string of ${n}+ UTF-8 bytes exceeds capacity ${capacity}`,
    );
  }
  const data = offset + 2;
  let i = 0;
  // ASCII fast path: one byte per code unit, no allocation.
  for (; i < n; i++) {
    const code = value.charCodeAt(i);
    if (code >= 0x80) break;
    view.setUint8(data + i, code);
  }
  if (i === n) {
    view.setUint16(offset, n, true);
    return;
  }
  if (!value.isWellFormed()) {
    invalid(
      `field ${field}: string holds a lone surrogate (not encodable as UTF-8)`,
    );
  }
  const target = new Uint8Array(
    view.buffer,
    view.byteOffset + data + i,
    capacity - i,
  );
  const { read, written } = textEncoder.encodeInto(value.slice(i), target);
  if (read !== n - i) {
    const total = i + textEncoder.encode(value.slice(i)).length;
    invalid(
      `field ${field}: string of ${total} UTF-8 bytes exceeds capacity ${capacity}`,
    );
  }
  view.setUint16(offset, i + written, true);
}

function readString(
  view: DataView,
  offset: number,
  capacity: number,
  field: string,
): string {
  const n = view.getUint16(offset, true);
  if (n > capacity) {
    invalid(`field ${field}: length prefix ${n} exceeds capacity ${capacity}`);
  }
  const data = offset + 2;
  let text = "";
  let i = 0;
  for (; i < n; i++) {
    const byte = view.getUint8(data + i);
    if (byte >= 0x80) break;
    text += String.fromCharCode(byte);
  }
  if (i === n) return text;
  try {
    return text +
      textDecoder.decode(
        new Uint8Array(view.buffer, view.byteOffset + data + i, n - i),
      );
  } catch (cause) {
    throw new InvalidMessageError(`field ${field}: invalid UTF-8`, { cause });
  }
}

function writeBytes(
  view: DataView,
  offset: number,
  value: unknown,
  capacity: number,
  field: string,
): void {
  if (!(value instanceof Uint8Array)) {
    invalid(`field ${field}: expected a Uint8Array, got ${describe(value)}`);
  }
  if (value.length > capacity) {
    invalid(
      `field ${field}: ${value.length} bytes exceed capacity ${capacity}`,
    );
  }
  view.setUint16(offset, value.length, true);
  new Uint8Array(view.buffer, view.byteOffset + offset + 2, value.length).set(
    value,
  );
}

function readBytes(
  view: DataView,
  offset: number,
  capacity: number,
  field: string,
): Uint8Array {
  const n = view.getUint16(offset, true);
  if (n > capacity) {
    invalid(`field ${field}: length prefix ${n} exceeds capacity ${capacity}`);
  }
  return new Uint8Array(view.buffer, view.byteOffset + offset + 2, n).slice();
}

function notObject(name: string, value: unknown): never {
  invalid(`message ${name}: expected an object, got ${describe(value)}`);
}

function fail(field: string, type: string, value: unknown): never {
  invalid(`field ${field}: ${describe(value)} is not a valid ${type}`);
}

function failArray(field: string, length: number, value: unknown): never {
  invalid(
    `field ${field}: expected an array of exactly ${length} elements, got ${
      describe(value)
    }`,
  );
}

/** Helpers passed to generated code (by position). */
const HELPER_NAMES = [
  "notObject",
  "fail",
  "failArray",
  "writeString",
  "readString",
  "writeBytes",
  "readBytes",
];
const HELPERS = [
  notObject,
  fail,
  failArray,
  writeString,
  readString,
  writeBytes,
  readBytes,
];

/** Generated code writing field `f` of value `v` at `o + f.offset` (the value is read into `x`). */
function encodeFieldCode(f: FieldInfo, base: string, input: string): string {
  const key = JSON.stringify(f.name);
  const at = `${base} + ${f.offset}`;
  const spec = f.spec;
  if (typeof spec === "string") {
    const type = JSON.stringify(spec);
    if (spec === "bool") {
      return `x = ${input}; if (${
        badCondition(spec, "x")
      }) fail(${key}, ${type}, x); ` +
        `dv.setUint8(${at}, x ? 1 : 0);\n`;
    }
    return `x = ${input}; if (${
      badCondition(spec, "x")
    }) fail(${key}, ${type}, x); ` +
      `dv.${SETTER[spec]}(${at}, x, true);\n`;
  }
  switch (spec.kind) {
    case "array": {
      const width = SCALAR_SIZE[spec.element];
      const type = JSON.stringify(spec.element);
      return `a = ${input}; if (a == null || a.length !== ${spec.length}) failArray(${key}, ${spec.length}, a);\n` +
        `for (let j = 0; j < ${spec.length}; j++) { x = a[j]; ` +
        `if (${
          badCondition(spec.element, "x")
        }) fail(${key} + "[" + j + "]", ${type}, x); ` +
        `dv.${SETTER[spec.element]}(${at} + j * ${width}, x, true); }\n`;
    }
    case "bytes":
      return `writeBytes(dv, ${at}, ${input}, ${spec.capacity}, ${key});\n`;
    case "string":
      return `writeString(dv, ${at}, ${input}, ${spec.capacity}, ${key});\n`;
  }
}

/** Generated expression reading field `f` at `o + f.offset`. */
function decodeFieldCode(f: FieldInfo, base: string): string {
  const key = JSON.stringify(f.name);
  const at = `${base} + ${f.offset}`;
  const spec = f.spec;
  if (typeof spec === "string") {
    if (spec === "bool") return `dv.getUint8(${at}) !== 0`;
    return `dv.${GETTER[spec]}(${at}, true)`;
  }
  switch (spec.kind) {
    case "array": {
      const width = SCALAR_SIZE[spec.element];
      return `((t) => { for (let j = 0; j < ${spec.length}; j++) t[j] = dv.${
        GETTER[spec.element]
      }(${at} + j * ${width}, true); return t; })(new ${
        TYPED_ARRAY[spec.element]
      }(${spec.length}))`;
    }
    case "bytes":
      return `readBytes(dv, ${at}, ${spec.capacity}, ${key})`;
    case "string":
      return `readString(dv, ${at}, ${spec.capacity}, ${key})`;
  }
}

/** Generated statements zeroing the padding bytes in [start, end). */
function zeroCode(start: number, end: number): string {
  let code = "";
  let at = start;
  while (at < end) {
    const left = end - at;
    if (left >= 4 && at % 4 === 0) {
      code += `dv.setUint32(o + ${at}, 0);\n`;
      at += 4;
    } else if (left >= 2 && at % 2 === 0) {
      code += `dv.setUint16(o + ${at}, 0);\n`;
      at += 2;
    } else {
      code += `dv.setUint8(o + ${at}, 0);\n`;
      at += 1;
    }
  }
  return code;
}

// deno-lint-ignore ban-types
function compile(params: string[], body: string): Function {
  // Generated once per schema: straight-line code is what makes in-place
  // encoding cost a few nanoseconds per field instead of a loop of closures.
  return new Function(
    ...HELPER_NAMES,
    `"use strict"; return function (${params.join(", ")}) {\n${body}};`,
  )(
    ...HELPERS,
  );
}

/**
 * Defines a message schema: computes the layout, the type id, and generates
 * the codec. Throws {@linkcode InvalidMessageError} on a bad definition.
 */
export function defineMessage<const F extends FieldsSpec>(
  definition: MessageDefinition<F>,
): MessageSchema<F> {
  if (definition === null || typeof definition !== "object") {
    invalid(`message definition ${describe(definition)} must be an object`);
  }
  const { name, fields: spec } = definition;
  if (typeof name !== "string" || !NAME_PATTERN.test(name)) {
    invalid(`message name ${describe(name)} must match ${NAME_PATTERN}`);
  }
  const explicitTypeId: unknown = definition.typeId;
  if (
    explicitTypeId !== undefined &&
    (typeof explicitTypeId !== "number" ||
      (explicitTypeId >>> 0) !== explicitTypeId || explicitTypeId === 0)
  ) {
    invalid(
      `message ${name}: type id ${
        describe(explicitTypeId)
      } must be a non-zero u32`,
    );
  }
  if (spec === null || typeof spec !== "object") {
    invalid(`message ${name}: fields must be an object`);
  }
  const infos: FieldInfo[] = [];
  let offset = 0;
  let align = 1;
  for (const fieldName of Object.keys(spec)) {
    if (!FIELD_PATTERN.test(fieldName)) {
      invalid(
        `message ${name}: field name ${
          JSON.stringify(fieldName)
        } must match ${FIELD_PATTERN}`,
      );
    }
    if (!roundTripsAsProperty(fieldName)) {
      invalid(
        `message ${name}: field name ${
          JSON.stringify(fieldName)
        } cannot be an own property of a plain object (values and decode could not carry it)`,
      );
    }
    const fieldSpec = spec[fieldName];
    const layout = layoutOf(fieldName, fieldSpec);
    offset = Math.ceil(offset / layout.align) * layout.align;
    infos.push(
      Object.freeze({ name: fieldName, spec: fieldSpec, offset, ...layout }),
    );
    offset += layout.size;
    align = Math.max(align, layout.align);
  }
  const size = Math.ceil(offset / align) * align;
  const layout = canonicalLayout(infos);
  const typeId = (explicitTypeId as number | undefined) ??
    defaultTypeId(name, layout);
  if (size > MAX_MESSAGE_SIZE) {
    invalid(
      `message ${name}: size ${size} exceeds ${MAX_MESSAGE_SIZE} (the envelope's u16 payload length)`,
    );
  }

  let encodeBody = `if (v === null || typeof v !== "object") notObject(${
    JSON.stringify(name)
  }, v);\nlet x, a;\n`;
  let end = 0;
  for (const f of infos) {
    encodeBody += zeroCode(end, f.offset);
    encodeBody += encodeFieldCode(f, "o", `v[${JSON.stringify(f.name)}]`);
    end = f.offset + f.size;
  }
  encodeBody += zeroCode(end, size);
  let decodeBody = "return {\n";
  for (const f of infos) {
    decodeBody += `${JSON.stringify(f.name)}: ${decodeFieldCode(f, "o")},\n`;
  }
  decodeBody += "};\n";

  const encodeRaw = compile(["dv", "o", "v"], encodeBody) as (
    dv: DataView,
    o: number,
    v: MessageValue<F>,
  ) => void;
  const decode = compile(["dv", "o"], decodeBody) as (
    dv: DataView,
    o: number,
  ) => DecodedMessage<F>;

  const accessors = new Map<string, FieldAccessor>();
  for (const f of infos) {
    const get = compile(
      ["dv", "o"],
      `return ${decodeFieldCode(f, "o")};\n`,
    ) as FieldAccessor["get"];
    const set = compile(
      ["dv", "o", "value"],
      "let x, a;\n" + encodeFieldCode(f, "o", "value"),
    ) as FieldAccessor[
      "set"
    ];
    accessors.set(f.name, Object.freeze({ info: f, get, set }));
  }
  const accessor = (fieldName: string): FieldAccessor => {
    const found = accessors.get(fieldName);
    if (!found) {
      invalid(`message ${name} has no field ${describe(fieldName)}`);
    }
    return found;
  };

  const scratch = new DataView(new ArrayBuffer(Math.max(size, 1)));

  const schema: MessageSchema<F> = {
    name,
    typeId,
    layout,
    size,
    align,
    fields: Object.freeze(infos),
    spec,
    encode: encodeRaw,
    decode,
    read(view, at, fieldName) {
      return accessor(fieldName).get(view, at) as never;
    },
    write(view, at, fieldName, value) {
      accessor(fieldName).set(view, at, value);
    },
    field(fieldName) {
      return accessor(fieldName) as never;
    },
    validate(value) {
      encodeRaw(scratch, 0, value);
    },
    encodeMany(view, at, stride, values) {
      if (typeof stride !== "number" || !(stride >= size)) {
        invalid(
          `message ${name}: stride ${
            describe(stride)
          } is below its size ${size}`,
        );
      }
      const n = values.length;
      for (let i = 0; i < n; i++) {
        encodeRaw(view, at + i * stride, values[i]);
      }
      return n;
    },
    decodeMany(view, at, stride, count) {
      if (typeof stride !== "number" || !(stride >= size)) {
        invalid(
          `message ${name}: stride ${
            describe(stride)
          } is below its size ${size}`,
        );
      }
      if (!Number.isSafeInteger(count) || count < 0) {
        invalid(
          `message ${name}: count ${
            describe(count)
          } must be a non-negative integer`,
        );
      }
      const out = new Array<DecodedMessage<F>>(count);
      for (let i = 0; i < count; i++) out[i] = decode(view, at + i * stride);
      return out;
    },
  };
  return Object.freeze(schema);
}

/** The canonical layout of a schema (computed when it lacks one). */
function layoutOfSchema(schema: MessageSchema): string {
  return typeof schema.layout === "string"
    ? schema.layout
    : canonicalLayout(schema.fields);
}

/** Whether two schemas are the same message type: name, type id and layout. */
function sameType(a: MessageSchema, b: MessageSchema): boolean {
  return a === b ||
    (a.name === b.name && a.typeId === b.typeId && a.size === b.size &&
      layoutOfSchema(a) === layoutOfSchema(b));
}

/**
 * Type ids to schemas, for queues that carry several message types. A type
 * id and a schema name each name one message type: registering a schema
 * whose type id is taken by another type (a collision), or whose name is
 * taken by a schema with other fields or another type id, throws
 * {@linkcode InvalidMessageError}. The same type registered again (the same
 * object, or the same name, type id and layout, e.g. defined by two modules)
 * is a no-op.
 */
export class SchemaRegistry {
  #byId = new Map<number, MessageSchema>();
  #byName = new Map<string, MessageSchema>();

  /** Creates a registry holding `schemas`. */
  constructor(schemas: Iterable<MessageSchema> = []) {
    for (const schema of schemas) this.register(schema);
  }

  /**
   * Why `schema` cannot be registered (a message naming the schema it
   * conflicts with), or `undefined` when it can (or already is).
   */
  conflict(schema: MessageSchema): string | undefined {
    const taken = this.#byId.get(schema.typeId);
    if (taken !== undefined && !sameType(taken, schema)) {
      return `type id 0x${schema.typeId.toString(16)} of ${schema.name} (${
        layoutOfSchema(schema)
      }) is already taken by ${taken.name} (${layoutOfSchema(taken)})`;
    }
    const named = this.#byName.get(schema.name);
    if (named !== undefined && !sameType(named, schema)) {
      return `message name ${schema.name} is already registered with another ${
        named.typeId === schema.typeId ? "layout" : "type id"
      }: ${layoutOfSchema(named)} (type id 0x${
        named.typeId.toString(16)
      }), not ${layoutOfSchema(schema)} (type id 0x${
        schema.typeId.toString(16)
      })`;
    }
    return undefined;
  }

  /**
   * Adds a schema; re-adding the same type is a no-op.
   *
   * @throws {InvalidMessageError} when its type id or name is taken by another type.
   */
  register(schema: MessageSchema): this {
    const problem = this.conflict(schema);
    if (problem !== undefined) invalid(problem);
    if (!this.#byId.has(schema.typeId)) {
      this.#byId.set(schema.typeId, schema);
      this.#byName.set(schema.name, schema);
    }
    return this;
  }

  /** The schema registered for `typeId`, if any. */
  get(typeId: number): MessageSchema | undefined {
    return this.#byId.get(typeId);
  }

  /** Whether `typeId` is registered. */
  has(typeId: number): boolean {
    return this.#byId.has(typeId);
  }

  /** The schema for `typeId`; throws {@linkcode InvalidMessageError} if it is unknown. */
  require(typeId: number): MessageSchema {
    const schema = this.#byId.get(typeId);
    if (!schema) {
      invalid(`unknown message type id 0x${(typeId >>> 0).toString(16)}`);
    }
    return schema;
  }

  /** Number of registered schemas. */
  get size(): number {
    return this.#byId.size;
  }

  /** The registered schemas. */
  [Symbol.iterator](): IterableIterator<MessageSchema> {
    return this.#byId.values();
  }
}
