/**
 * What the cluster puts on the wire. A message travels as its slot: the
 * envelope (type id, payload length, correlation id, the sender's HLC
 * timestamp, source actor) followed by the schema's encoded payload, exactly
 * as it sits in a ring. A failure travels as NATS headers, `Rk-Error` (a
 * code) and `Rk-Detail` (the message), and turns back into the typed error
 * on the other side. An actor's schemas travel as JSON (name, type id,
 * fields) and are defined again, checked against their layout.
 *
 * @module
 */

import { ENVELOPE_SIZE, readEnvelope, writeEnvelopeFor } from "../envelope.ts";
import {
  ActorCrashedError,
  ClockSkewError,
  InvalidMessageError,
  InvalidStateError,
  QueueFullError,
  TimeoutError,
  UnknownActorError,
} from "../errors.ts";
import { type HlcTimestamp, unpackHlc } from "../hlc.ts";
import {
  defineMessage,
  type FieldsSpec,
  type MessageSchema,
  type MessageValue,
} from "../message.ts";
import { RemoteActorGoneError, RemoteError } from "./errors.ts";

/** The header naming a failure's code. */
export const ERROR_HEADER = "Rk-Error";
/** The header carrying a failure's message. */
export const DETAIL_HEADER = "Rk-Detail";
/** The header carrying the deadline the serving node applies, in ms. */
export const TIMEOUT_HEADER = "Rk-Timeout";

/** Encodes `value` of `schema` into a slot stamped with `timestamp`. */
export function encodeSlot<F extends FieldsSpec>(
  schema: MessageSchema<F>,
  value: MessageValue<F>,
  timestamp: HlcTimestamp,
): Uint8Array {
  const slot = new Uint8Array(ENVELOPE_SIZE + schema.size);
  const view = new DataView(slot.buffer);
  writeEnvelopeFor(view, 0, schema, { timestamp });
  schema.encode(view, ENVELOPE_SIZE, value);
  return slot;
}

/** A slot read back: its type id, timestamp and payload bytes. */
export interface ReadSlot {
  /** The message's type id. */
  readonly typeId: number;
  /** The sender's HLC reading (node id 0). */
  readonly timestamp: HlcTimestamp;
  /** The slot as a view. */
  readonly view: DataView;
}

/**
 * Reads a slot's envelope; throws {@linkcode InvalidMessageError} when the
 * bytes are shorter than the envelope and the payload it announces.
 */
export function readSlot(bytes: Uint8Array): ReadSlot {
  if (bytes.byteLength < ENVELOPE_SIZE) {
    throw new InvalidMessageError(
      `a cluster message of ${bytes.byteLength} bytes is shorter than an envelope (${ENVELOPE_SIZE})`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const envelope = readEnvelope(view, 0);
  if (bytes.byteLength < ENVELOPE_SIZE + envelope.payloadLength) {
    throw new InvalidMessageError(
      `a cluster message announces ${envelope.payloadLength} payload bytes but carries ${
        bytes.byteLength - ENVELOPE_SIZE
      }`,
    );
  }
  return {
    typeId: envelope.typeId,
    timestamp: unpackHlc(envelope.timestamp),
    view,
  };
}

/**
 * Decodes a slot of `schema`; throws {@linkcode InvalidMessageError} when it
 * carries another type or is too short.
 */
export function decodeSlot<F extends FieldsSpec>(
  schema: MessageSchema<F>,
  slot: Pick<ReadSlot, "typeId" | "view">,
): ReturnType<MessageSchema<F>["decode"]> {
  if (slot.typeId !== schema.typeId) {
    throw new InvalidMessageError(
      `expected a ${schema.name} (type id 0x${
        schema.typeId.toString(16)
      }), got type id 0x${slot.typeId.toString(16)}`,
    );
  }
  return schema.decode(slot.view, ENVELOPE_SIZE);
}

/** The failure codes of the wire. */
export type ErrorCode =
  | "unknown-actor"
  | "timeout"
  | "queue-full"
  | "crashed"
  | "invalid-message"
  | "clock-skew"
  | "gone"
  | "error";

/** The code and message a failure travels as. */
export function errorHeaders(error: unknown): Record<string, string> {
  const code: ErrorCode = error instanceof UnknownActorError
    ? "unknown-actor"
    : error instanceof TimeoutError
    ? "timeout"
    : error instanceof QueueFullError
    ? "queue-full"
    : error instanceof ActorCrashedError
    ? "crashed"
    : error instanceof InvalidMessageError
    ? "invalid-message"
    : error instanceof ClockSkewError
    ? "clock-skew"
    : error instanceof InvalidStateError
    ? "gone"
    : "error";
  const headers: Record<string, string> = {
    [ERROR_HEADER]: code,
    [DETAIL_HEADER]: error instanceof Error
      ? (code === "error" ? `${error.name}: ${error.message}` : error.message)
      : String(error),
  };
  if (error instanceof ClockSkewError) {
    headers["Rk-Skew"] = String(error.skewMs);
    headers["Rk-Max-Skew"] = String(error.maxSkewMs);
  }
  if (error instanceof TimeoutError) {
    headers[TIMEOUT_HEADER] = String(error.timeoutMs);
  }
  return headers;
}

/** What a failure was on the serving node, for {@linkcode errorFromHeaders}. */
export interface RemoteFailureContext {
  /** The actor's name. */
  readonly actor: string;
  /** The node that served it. */
  readonly node: string;
  /** What was asked, e.g. `call to "echo"`. */
  readonly what: string;
}

/** The typed error a failure's headers stand for. */
export function errorFromHeaders(
  get: (name: string) => string,
  context: RemoteFailureContext,
): Error {
  const code = get(ERROR_HEADER) as ErrorCode;
  const detail = get(DETAIL_HEADER);
  switch (code) {
    case "unknown-actor":
      return new UnknownActorError(context.actor, detail);
    case "timeout":
      return new TimeoutError(
        context.what,
        Number(get(TIMEOUT_HEADER)) || 0,
      );
    case "queue-full":
      return new QueueFullError(detail);
    case "crashed":
      return new ActorCrashedError(context.actor, detail);
    case "invalid-message":
      return new InvalidMessageError(detail);
    case "clock-skew":
      return new ClockSkewError(
        Number(get("Rk-Skew")),
        Number(get("Rk-Max-Skew")),
      );
    case "gone":
      return new RemoteActorGoneError(context.actor, context.node, detail);
    default: {
      const colon = detail.indexOf(": ");
      return colon > 0
        ? new RemoteError(detail.slice(0, colon), detail.slice(colon + 2))
        : new RemoteError("Error", detail);
    }
  }
}

/** A schema as it travels: enough to define it again. */
export interface SchemaDescription {
  /** Its name. */
  readonly name: string;
  /** Its type id. */
  readonly typeId: number;
  /** Its layout, to check the schema defined again. */
  readonly layout: string;
  /** Its field specs. */
  readonly fields: FieldsSpec;
}

/** An actor as its serving node describes it. */
export interface ActorDescription {
  /** The serving node's name. */
  readonly node: string;
  /** The schema of its input. */
  readonly input: SchemaDescription;
  /** The schema of its replies, if it replies. */
  readonly output: SchemaDescription | null;
}

/** Describes `schema` for the wire. */
export function describeSchema(schema: MessageSchema): SchemaDescription {
  return {
    name: schema.name,
    typeId: schema.typeId,
    layout: schema.layout,
    fields: schema.spec,
  };
}

/**
 * Defines a described schema again; throws {@linkcode InvalidMessageError}
 * when the result does not have the described layout and type id.
 */
export function schemaFrom(description: SchemaDescription): MessageSchema {
  const schema = defineMessage({
    name: description.name,
    typeId: description.typeId,
    fields: description.fields,
  });
  if (
    schema.layout !== description.layout ||
    schema.typeId !== description.typeId
  ) {
    throw new InvalidMessageError(
      `schema ${description.name} does not define again as described (${description.layout})`,
    );
  }
  return schema;
}
