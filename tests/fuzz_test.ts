import { describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import fc from "fast-check";
import {
  checkReencodes,
  decodeSlot,
  FUZZ_SCHEMAS,
  FUZZ_TARGETS,
  type FuzzTarget,
  runTarget,
} from "../scripts/fuzz.ts";
import { ENVELOPE_SIZE, writeEnvelopeFor } from "../src/envelope.ts";
import {
  defineMessage,
  type MessageSchema,
  SchemaRegistry,
} from "../src/message.ts";

// A sample of the fuzz run of scripts/fuzz.ts (which checks a million inputs).
const SEED = Number(process.env.FUZZ_SEED ?? 20_240_601);
const RUNS: Record<string, number> = {
  "envelope-random-bytes": 3_000,
  "slot-mutation": 3_000,
  "schema-definition": 1_000,
  "enqueue-input": 400,
  "ring-corrupt-slots": 1_500,
  "ring-attach-header": 2_000,
  "ring-corrupt-indices-producer": 2_000,
  "string-bom": 1_000,
  "hostile-field-values": 1_000,
  "proto-field-name": 500,
};

describe("fuzz sample", () => {
  test("every target has a sample size", () => {
    assert.deepEqual(
      FUZZ_TARGETS.map((t) => t.name).filter((name) => !(name in RUNS)),
      [],
    );
  });
  for (const target of FUZZ_TARGETS) {
    if (target.knownIssue !== undefined) {
      // Run it with: deno run -A scripts/fuzz.ts --target <name>
      console.log(
        `fuzz_test: ${target.name} skipped: known issue: ${target.knownIssue}`,
      );
    }
    test(target.name, {
      skip: target.knownIssue && `known issue: ${target.knownIssue}`,
      timeout: 120_000,
    }, () => {
      const runs = RUNS[target.name];
      const result = runTarget(target, { runs, seed: SEED });
      assert.equal(result.failed, false, result.report);
      assert.equal(result.runs, runs);
    });
  }
});

describe("the fuzz harness catches bugs", () => {
  // A codec whose decode fails with a TypeError on some payloads.
  const base = defineMessage({
    name: "fuzz.Planted",
    typeId: 0x46000077,
    fields: { a: "u32", b: "u32" },
  });
  const sabotaged = {
    ...base,
    decode(view: DataView, offset: number) {
      const value = base.decode(view, offset);
      if (value.a % 7 === 3) throw new TypeError("planted crash");
      return value;
    },
  } as unknown as MessageSchema;
  const registry = new SchemaRegistry([sabotaged]);
  const u32 = fc.integer({ min: 0, max: 0xffffffff });

  function plantedTarget(
    check: (view: DataView, slotSize: number) => void,
  ): FuzzTarget {
    return {
      name: "planted",
      description: "a target over a sabotaged codec",
      weight: 1,
      property: () =>
        fc.property(u32, u32, (a, b) => {
          const view = new DataView(new ArrayBuffer(64));
          writeEnvelopeFor(view, 0, sabotaged);
          base.encode(view, ENVELOPE_SIZE, { a, b });
          check(view, 64);
        }),
    };
  }

  test("an untyped exception from decoding fails the property", () => {
    const result = runTarget(
      plantedTarget((view, slotSize) => {
        decodeSlot(view, 0, registry, slotSize);
      }),
      { runs: 2_000, seed: SEED },
    );
    assert.equal(result.failed, true);
    assert.match(
      result.report ?? "",
      /untyped outcome TypeError: planted crash/,
    );
  });

  test("a value that does not survive re-encoding fails the property", () => {
    const lossy = {
      ...base,
      decode: (view: DataView, offset: number) => ({
        ...base.decode(view, offset),
        b: 0,
      }),
    } as unknown as MessageSchema;
    const result = runTarget(
      plantedTarget((view) => {
        checkReencodes(lossy, {
          a: 1,
          b: view.getUint32(ENVELOPE_SIZE + 4, true),
        });
      }),
      { runs: 2_000, seed: SEED },
    );
    assert.equal(result.failed, true);
    assert.match(result.report ?? "", /decode\(encode\(v\)\) != v/);
  });

  test("the known schemas round-trip through the checks", () => {
    const view = new DataView(new ArrayBuffer(256));
    const registry = new SchemaRegistry(FUZZ_SCHEMAS);
    const schema = FUZZ_SCHEMAS[1];
    writeEnvelopeFor(view, 0, schema);
    schema.encode(view, ENVELOPE_SIZE, { a: 1n, b: -2n, c: 0.5 } as never);
    const decoded = decodeSlot(view, 0, registry, 256);
    assert.deepEqual(decoded?.value, { a: 1n, b: -2n, c: 0.5 });
    checkReencodes(schema, decoded?.value);
  });
});
