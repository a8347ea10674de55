/**
 * The 32-byte envelope at the start of every queue slot (`ENVELOPE` in
 * `layout.ts`): type id, payload length, flags, correlation id, packed HLC
 * timestamp, source actor, and the MPSC publication `stamp`. The payload
 * follows at {@linkcode ENVELOPE_SIZE}.
 *
 * Reads and writes happen in place on a `DataView`. Writers never touch
 * `stamp`: it belongs to the queue protocol (see `ring.ts`).
 *
 * @module
 */

import { InvalidMessageError } from "./errors.ts";
import { HLC_MAX_PHYSICAL_MS, type HlcTimestamp, readHlc } from "./hlc.ts";
import { ENVELOPE } from "./layout.ts";
import {
  describeValue,
  type MessageSchema,
  type SchemaRegistry,
} from "./message.ts";

/** Size of the envelope in bytes; a slot's payload starts here. */
export const ENVELOPE_SIZE: number = ENVELOPE.size;

/**
 * Type id of a void slot: an MPSC slot that a producer reserved but did not
 * fill (e.g. its message failed validation) and published empty so the
 * consumer can move past it. Never a message; schemas never use it.
 */
export const VOID_TYPE_ID = 0;

const F = ENVELOPE.fields;
const TYPE_ID = F.typeId.offset;
const PAYLOAD_LENGTH = F.payloadLength.offset;
const FLAGS = F.flags.offset;
const CORRELATION_ID = F.correlationId.offset;
const TIMESTAMP = F.timestamp.offset;
const SOURCE_ACTOR = F.sourceActor.offset;
const STAMP = F.stamp.offset;
const TWO_32 = 0x1_0000_0000;

/** Every envelope field, as read by {@linkcode readEnvelope}. */
export interface EnvelopeFields {
  /** Message type id (0 only for void slots). */
  readonly typeId: number;
  /** Payload bytes following the envelope (u16). */
  readonly payloadLength: number;
  /** Application flags (u16), opaque to the queue. */
  readonly flags: number;
  /** Correlation id (u64) matching replies to requests; 0 when unused. */
  readonly correlationId: bigint;
  /** Packed HLC timestamp (`physicalMs << 16 | logical`); 0 when unused. */
  readonly timestamp: bigint;
  /** Sending actor id (u32). */
  readonly sourceActor: number;
  /** Queue publication word (MPSC: ticket + 1); not application data. */
  readonly stamp: number;
}

/**
 * The envelope fields a sender chooses; the queue fills in the type id and
 * payload length from the schema. Absent fields are written as 0.
 */
export interface EnvelopeHeader {
  /** Application flags (u16). */
  flags?: number;
  /** Correlation id: a bigint (u64) or a non-negative safe integer (written without a BigInt). */
  correlationId?: bigint | number;
  /** Timestamp: a packed bigint, or an {@linkcode HlcTimestamp} (written without a BigInt). */
  timestamp?: bigint | HlcTimestamp;
  /** Sending actor id (u32). */
  sourceActor?: number;
}

/** Everything {@linkcode writeEnvelope} writes. */
export interface EnvelopeInit extends EnvelopeHeader {
  /** Message type id (u32). */
  typeId: number;
  /** Payload length in bytes (u16). */
  payloadLength: number;
}

function invalid(message: string): never {
  throw new InvalidMessageError(message);
}

function badTimestamp(physicalMs: unknown, logical: unknown): never {
  invalid(
    `envelope timestamp {physicalMs: ${describeValue(physicalMs)}, logical: ${
      describeValue(logical)
    }} is not a 48+16-bit HLC reading`,
  );
}

function badFlagsOrSource(flags: unknown, sourceActor: unknown): never {
  if (typeof flags !== "number" || ((flags as number) & 0xffff) !== flags) {
    badField("flags", flags, "a u16");
  }
  badField("sourceActor", sourceActor, "a u32");
}

/** Refuses one envelope field (the message is built here, off the hot path). */
function badField(what: string, value: unknown, expected: string): never {
  invalid(`envelope ${what} ${describeValue(value)} is not ${expected}`);
}

function writeU64(
  view: DataView,
  at: number,
  value: bigint | number,
  what: string,
): void {
  if (typeof value === "number") {
    if (value <= 0xffffffff && (value >>> 0) === value) {
      view.setUint32(at, value, true);
      view.setUint32(at + 4, 0, true);
      return;
    }
    if (!Number.isSafeInteger(value) || value < 0) {
      badField(what, value, "a non-negative safe integer");
    }
    // Math.floor, not %: a double modulo is a slow library call.
    const high = Math.floor(value / TWO_32);
    view.setUint32(at, value - high * TWO_32, true);
    view.setUint32(at + 4, high, true);
    return;
  }
  if (typeof value !== "bigint" || value < 0n || value > 0xffffffffffffffffn) {
    badField(what, value, "a u64");
  }
  view.setBigUint64(at, value, true);
}

/**
 * Writes every envelope field except `stamp` at `offset` (the start of a
 * slot). Throws {@linkcode InvalidMessageError} on an out-of-range field.
 */
export function writeEnvelope(
  view: DataView,
  offset: number,
  init: EnvelopeInit,
): void {
  const { typeId, payloadLength } = init;
  // typeof first: bitwise operators would convert (and throw on) any other type.
  if (typeof typeId !== "number" || (typeId >>> 0) !== typeId) {
    badField("typeId", typeId, "a u32");
  }
  if (
    typeof payloadLength !== "number" ||
    (payloadLength & 0xffff) !== payloadLength
  ) badField("payloadLength", payloadLength, "a u16");
  writeEnvelopeParts(view, offset, typeId, payloadLength, init);
}

/**
 * Writes the envelope of a message of `schema` (its type id and size) with the
 * sender's `header` at `offset`, without building an intermediate object: the
 * hot path of every enqueue. Throws {@linkcode InvalidMessageError} on an
 * out-of-range header field.
 */
export function writeEnvelopeFor(
  view: DataView,
  offset: number,
  schema: Pick<MessageSchema, "typeId" | "size">,
  header?: EnvelopeHeader,
): void {
  if (header !== undefined) {
    writeEnvelopeParts(view, offset, schema.typeId, schema.size, header);
    return;
  }
  // A schema's type id and size are valid by construction; small enough to inline.
  view.setUint32(offset + TYPE_ID, schema.typeId, true);
  view.setUint16(offset + PAYLOAD_LENGTH, schema.size, true);
  // +0.0 is eight zero bytes: two stores clear correlation id and timestamp.
  view.setUint16(offset + FLAGS, 0);
  view.setFloat64(offset + CORRELATION_ID, 0);
  view.setFloat64(offset + TIMESTAMP, 0);
  view.setUint32(offset + SOURCE_ACTOR, 0);
}

function writeEnvelopeParts(
  view: DataView,
  offset: number,
  typeId: number,
  payloadLength: number,
  header: EnvelopeHeader,
): void {
  // Type id and payload length are valid here: a schema's by construction,
  // writeEnvelope's checked by it.
  view.setUint32(offset + TYPE_ID, typeId, true);
  view.setUint16(offset + PAYLOAD_LENGTH, payloadLength, true);
  // A primitive has no header fields (all absent); null has no properties at all.
  if (header === null) badField("header", header, "an object");
  const flags = header.flags ?? 0;
  const sourceActor = header.sourceActor ?? 0;
  // typeof first: bitwise operators would convert (and throw on) any other type.
  if (
    typeof flags !== "number" || (flags & 0xffff) !== flags ||
    typeof sourceActor !== "number" || (sourceActor >>> 0) !== sourceActor
  ) badFlagsOrSource(flags, sourceActor);
  view.setUint16(offset + FLAGS, flags, true);
  writeU64(
    view,
    offset + CORRELATION_ID,
    header.correlationId ?? 0,
    "correlationId",
  );
  const ts = header.timestamp;
  // Absent like the other fields (`?? 0`): undefined or null.
  if (ts === undefined || ts === null) {
    view.setUint32(offset + TIMESTAMP, 0, true);
    view.setUint32(offset + TIMESTAMP + 4, 0, true);
  } else if (typeof ts === "object") {
    // Packed as in hlc.ts (physical << 16 | logical), two u32 stores, no BigInt.
    const p = ts.physicalMs;
    const l = ts.logical;
    if (
      typeof l !== "number" || typeof p !== "number" ||
      (l & 0xffff) !== l || !(p >= 0 && p <= HLC_MAX_PHYSICAL_MS) ||
      Math.floor(p) !== p
    ) badTimestamp(p, l);
    const high = Math.floor(p / 0x10000);
    view.setUint32(
      offset + TIMESTAMP,
      (p - high * 0x10000) * 0x10000 + l,
      true,
    );
    view.setUint32(offset + TIMESTAMP + 4, high, true);
  } else {
    writeU64(view, offset + TIMESTAMP, ts, "timestamp");
  }
  view.setUint32(offset + SOURCE_ACTOR, sourceActor, true);
}

/** Reads every envelope field at `offset`. */
export function readEnvelope(view: DataView, offset: number): EnvelopeFields {
  return {
    typeId: view.getUint32(offset + TYPE_ID, true),
    payloadLength: view.getUint16(offset + PAYLOAD_LENGTH, true),
    flags: view.getUint16(offset + FLAGS, true),
    correlationId: view.getBigUint64(offset + CORRELATION_ID, true),
    timestamp: view.getBigUint64(offset + TIMESTAMP, true),
    sourceActor: view.getUint32(offset + SOURCE_ACTOR, true),
    stamp: view.getUint32(offset + STAMP, true),
  };
}

/** The type id of the envelope at `offset`. */
export function readTypeId(view: DataView, offset: number): number {
  return view.getUint32(offset + TYPE_ID, true);
}

/** The payload length of the envelope at `offset`. */
export function readPayloadLength(view: DataView, offset: number): number {
  return view.getUint16(offset + PAYLOAD_LENGTH, true);
}

/** The flags of the envelope at `offset`. */
export function readFlags(view: DataView, offset: number): number {
  return view.getUint16(offset + FLAGS, true);
}

/** The source actor of the envelope at `offset`. */
export function readSourceActor(view: DataView, offset: number): number {
  return view.getUint32(offset + SOURCE_ACTOR, true);
}

/**
 * The correlation id of the envelope at `offset` as a number, without a
 * BigInt; throws {@linkcode InvalidMessageError} if it exceeds 2^53 - 1.
 */
export function readCorrelationNumber(view: DataView, offset: number): number {
  const hi = view.getUint32(offset + CORRELATION_ID + 4, true);
  if (hi > 0x1fffff) {
    invalid(`envelope correlationId exceeds Number.MAX_SAFE_INTEGER`);
  }
  return hi * TWO_32 + view.getUint32(offset + CORRELATION_ID, true);
}

/** The timestamp of the envelope at `offset`, unpacked; `nodeId` is its `sourceActor`. */
export function readTimestamp(view: DataView, offset: number): HlcTimestamp {
  return readHlc(
    view,
    offset + TIMESTAMP,
    view.getUint32(offset + SOURCE_ACTOR, true),
  );
}

/** What {@linkcode validateEnvelope} checks against. */
export interface EnvelopeRules {
  /** Known message types (a registry, or a single schema the slot must hold). */
  schemas: SchemaRegistry | MessageSchema;
  /** Slot size of the queue; the payload may use `slotSize - ENVELOPE_SIZE` bytes. */
  slotSize: number;
}

/**
 * Checks an envelope and returns the schema of its payload. Throws
 * {@linkcode InvalidMessageError} for a void or unknown type id, a payload
 * larger than the slot, or a payload length other than the schema's size.
 */
export function validateEnvelopeFields(
  envelope: Pick<EnvelopeFields, "typeId" | "payloadLength">,
  rules: EnvelopeRules,
): MessageSchema {
  const { typeId, payloadLength } = envelope;
  const { schemas, slotSize } = rules;
  const room = slotSize - ENVELOPE_SIZE;
  if (typeId === VOID_TYPE_ID) invalid(`envelope has the void type id 0`);
  let schema: MessageSchema | undefined;
  if ("typeId" in schemas) {
    if (typeId !== schemas.typeId) {
      invalid(
        `envelope type id 0x${
          (typeId >>> 0).toString(16)
        } is not ${schemas.name} (0x${schemas.typeId.toString(16)})`,
      );
    }
    schema = schemas;
  } else {
    schema = schemas.get(typeId);
    if (!schema) {
      invalid(`unknown message type id 0x${(typeId >>> 0).toString(16)}`);
    }
  }
  if (payloadLength > room) {
    invalid(
      `payload of ${payloadLength} bytes exceeds the ${room} bytes of a ${slotSize} B slot`,
    );
  }
  if (payloadLength !== schema.size) {
    invalid(
      `payload length ${payloadLength} of ${schema.name} is not its size ${schema.size}`,
    );
  }
  return schema;
}

/** {@linkcode validateEnvelopeFields} on the envelope at `offset` of `view`. */
export function validateEnvelope(
  view: DataView,
  offset: number,
  rules: EnvelopeRules,
): MessageSchema {
  return validateEnvelopeFields({
    typeId: view.getUint32(offset + TYPE_ID, true),
    payloadLength: view.getUint16(offset + PAYLOAD_LENGTH, true),
  }, rules);
}
