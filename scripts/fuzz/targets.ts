/**
 * Every fuzz target: a fast-check property over one kind of input to the
 * message path (envelopes, payloads, schema definitions, queue input, rings
 * with corrupt slots or headers), with the checks its outcomes must pass.
 *
 * @module
 */

import fc from "fast-check";
import {
  ENVELOPE_SIZE,
  type EnvelopeHeader,
  readEnvelope,
  writeEnvelopeFor,
} from "../../src/envelope.ts";
import { InvalidMessageError, InvalidStateError } from "../../src/errors.ts";
import { ENVELOPE, SLOT_TIERS } from "../../src/layout.ts";
import {
  defineMessage,
  type FieldsSpec,
  type MessageSchema,
} from "../../src/message.ts";
import {
  Ring,
  RING_HEADER_SIZE,
  ringByteLength,
  type RingKind,
} from "../../src/ring.ts";
import {
  corrupt,
  corruptionsArb,
  definitionArb,
  FUZZ_SCHEMAS,
  geometryArb,
  HEADER_WORDS,
  mangledValueArb,
  REGISTRY,
  SCALARS,
  schemaArb,
  schemasFor,
  validValueArb,
} from "./arbitraries.ts";
import {
  checkReencodes,
  checkRingWorks,
  decodeSlot,
  expectTyped,
  sameValue,
  show,
} from "./checks.ts";
import type { FuzzTarget } from "./runner.ts";

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
