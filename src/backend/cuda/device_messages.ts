/**
 * The C structs of the built-in actors' messages, generated from their
 * schemas, as they appear in `cuda/actor_pool.cu` between two marker lines.
 * A test regenerates the block and compares, so the device structs cannot
 * drift from the schemas.
 *
 * @module
 */

import {
  AccumulatorAdd,
  AccumulatorTotal,
  EchoMessage,
  ReduceRequest,
  ReduceResult,
  SaxpyRequest,
  SaxpyResult,
} from "../../actors/schemas.ts";
import { toCStruct } from "../../c_struct.ts";
import type { MessageSchema } from "../../message.ts";

/** The line that opens the generated block in `cuda/actor_pool.cu`. */
export const GENERATED_BEGIN =
  "// BEGIN GENERATED MESSAGES (src/backend/cuda/device_messages.ts; do not edit)";
/** The line that closes it. */
export const GENERATED_END = "// END GENERATED MESSAGES";

/** Every schema the built-in GPU actors read or write. */
export const DEVICE_MESSAGE_SCHEMAS: readonly MessageSchema[] = Object.freeze([
  EchoMessage,
  AccumulatorAdd,
  AccumulatorTotal,
  SaxpyRequest,
  SaxpyResult,
  ReduceRequest,
  ReduceResult,
] as MessageSchema[]);

/** The generated block, marker lines included, ending with a newline. */
export function deviceMessagesBlock(): string {
  const parts = [GENERATED_BEGIN];
  for (const schema of DEVICE_MESSAGE_SCHEMAS) parts.push(toCStruct(schema));
  parts.push(GENERATED_END);
  return parts.join("\n") + "\n";
}

/**
 * The block as found in a source text (marker lines included), or undefined
 * when the markers are missing.
 */
export function findDeviceMessagesBlock(source: string): string | undefined {
  const begin = source.indexOf(GENERATED_BEGIN);
  const end = source.indexOf(GENERATED_END);
  if (begin < 0 || end < begin) return undefined;
  const close = source.indexOf("\n", end);
  return source.slice(begin, close < 0 ? source.length : close + 1);
}
