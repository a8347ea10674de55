import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cIdentifier, toCHeader, toCStruct } from "../src/c_struct.ts";
import {
  array,
  bytes,
  defineMessage,
  type FieldSpec,
  type MessageSchema,
  utf8,
} from "../src/message.ts";
import { InvalidMessageError } from "../src/errors.ts";
import { Prng } from "./workers/prng.ts";

const hasGxx = spawnSync("g++", ["--version"]).status === 0;

/** Compiles `source` as C++17 with `g++ -fsyntax-only`; returns the diagnostics on failure. */
function compile(
  source: string,
  extraArgs: readonly string[] = [],
): { ok: boolean; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), "rk-cstruct-"));
  try {
    const file = join(dir, "messages.cpp");
    writeFileSync(file, source);
    const result = spawnSync("g++", [
      "-std=c++17",
      "-fsyntax-only",
      "-Wall",
      "-Werror",
      ...extraArgs,
      file,
    ], {
      encoding: "utf8",
    });
    return { ok: result.status === 0, stderr: result.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const Sample = defineMessage({
  name: "VectorAdd",
  typeId: 0x1234,
  fields: {
    opcode: "u8",
    scale: "f64",
    values: array("f32", 3),
    label: utf8(5),
    blob: bytes(3),
    ok: "bool",
    count: "i64",
  },
});

/** Sample, an empty message, and 40 random schemas of every field kind. */
function randomSchemas(): MessageSchema[] {
  const rng = new Prng(99);
  const types = [
    "u8",
    "u16",
    "u32",
    "u64",
    "i8",
    "i16",
    "i32",
    "i64",
    "f32",
    "f64",
    "bool",
  ] as const;
  const schemas: MessageSchema[] = [
    Sample,
    defineMessage({ name: "Ping", fields: {} }),
  ];
  for (let i = 0; i < 40; i++) {
    const fields: Record<string, FieldSpec> = {};
    for (let k = rng.int(1, 7); k > 0; k--) {
      const roll = rng.int(0, 9);
      fields[`field${k}`] = roll < 7
        ? rng.pick(types)
        : roll === 7
        ? array(rng.pick(types.filter((t) => t !== "bool")), rng.int(1, 5))
        : roll === 8
        ? utf8(rng.int(1, 9))
        : bytes(rng.int(1, 9));
    }
    schemas.push(defineMessage({ name: `Random${i}`, fields }));
  }
  return schemas;
}

describe("toCStruct", () => {
  test("declares members, defines and asserted offsets", () => {
    const c = toCStruct(Sample);
    assert.match(c, /#define VECTOR_ADD_TYPE_ID 0x00001234u/);
    assert.match(c, new RegExp(`#define VECTOR_ADD_SIZE ${Sample.size}u`));
    assert.match(c, /typedef struct vector_add \{/);
    assert.match(c, / {2}double scale;/);
    assert.match(c, / {2}float values\[3\];/);
    assert.match(c, / {2}uint16_t label_len;\n {2}char label\[5\];/);
    assert.match(c, / {2}uint8_t blob\[3\];/);
    assert.match(c, /static_assert\(offsetof\(vector_add, scale\) == 8/);
    assert.match(
      c,
      /static_assert\(offsetof\(vector_add, label_len\) == 28, "[^"]*"\);\nstatic_assert\(offsetof\(vector_add, label\) == 30/,
    );
  });

  test("names are snake_case C identifiers, keywords escaped", () => {
    assert.equal(cIdentifier("VectorAdd"), "vector_add");
    assert.equal(cIdentifier("app.Request-v2"), "app_request_v2");
    assert.equal(cIdentifier("float"), "float_");
    assert.equal(cIdentifier("9lives"), "_9lives");
  });

  test("a member name clash is rejected", () => {
    const clash = defineMessage({
      name: "Clash",
      fields: { name: utf8(4), name_len: "u16" },
    });
    assert.throws(() => toCStruct(clash), InvalidMessageError);
    assert.throws(
      () => toCStruct(Sample, { cName: "not valid" }),
      InvalidMessageError,
    );
  });

  test("a message without fields has defines only", () => {
    const c = toCStruct(defineMessage({ name: "Ping", fields: {} }));
    assert.match(c, /#define PING_SIZE 0u/);
    assert.doesNotMatch(c, /struct/);
  });

  test("generated headers compile and their static_asserts hold", {
    skip: !hasGxx && "g++ not found",
  }, () => {
    const schemas = randomSchemas();
    const header = toCHeader(schemas);
    const result = compile(header + "\nint main() { return 0; }\n");
    assert.ok(result.ok, result.stderr);
    // A wrong offset must fail to compile: the asserts are real.
    const broken = header.replace(
      "offsetof(vector_add, scale) == 8",
      "offsetof(vector_add, scale) == 4",
    );
    assert.notEqual(broken, header);
    assert.equal(compile(broken).ok, false);
  });

  test("standalone declarations compile without any header, for NVRTC", {
    skip: !hasGxx && "g++ not found",
  }, () => {
    const schemas = randomSchemas();
    const source = schemas.map((schema) =>
      toCStruct(schema, { standalone: true })
    ).join("\n");
    assert.doesNotMatch(source, /int\d+_t|#include|[^_]offsetof/);
    const result = compile(source + "\nint main() { return 0; }\n", [
      "-nostdinc",
    ]);
    assert.ok(result.ok, result.stderr);
    const broken = source.replace(
      "__builtin_offsetof(vector_add, scale) == 8",
      "__builtin_offsetof(vector_add, scale) == 4",
    );
    assert.notEqual(broken, source);
    assert.equal(compile(broken, ["-nostdinc"]).ok, false);
  });
});
