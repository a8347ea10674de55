/**
 * The oracles of the fuzz targets: what every input's outcome must satisfy.
 * Each check throws, failing the property, when it does not hold: an outcome
 * other than a message or an allowed typed error of `src/errors.ts`, a decoded
 * value that does not encode again to itself, or a ring that no longer works
 * after a run.
 *
 * @module
 */

import {
  ENVELOPE_SIZE,
  readEnvelope,
  validateEnvelope,
} from "../../src/envelope.ts";
import { InvalidMessageError, type RingKernelError } from "../../src/errors.ts";
import type { MessageSchema, SchemaRegistry } from "../../src/message.ts";
import type { Ring } from "../../src/ring.ts";
import { FUZZ_SCHEMAS } from "./arbitraries.ts";

/** Fails the property unless `error` is one of the typed errors allowed here. */
export function expectTyped(
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
export function sameValue(a: unknown, b: unknown): boolean {
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

/** A value as JSON, with bigints and typed arrays readable, for counterexamples. */
export function show(value: unknown): string {
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

/**
 * The ring works: it is empty, takes `capacity` messages, refuses one more,
 * and gives them back in order. Throws (failing the property) otherwise.
 */
export function checkRingWorks(ring: Ring, round: number): void {
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
