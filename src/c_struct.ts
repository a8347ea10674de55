/**
 * C declarations of message schemas, for device code under `cuda/`.
 *
 * The struct declares the fields in layout order with natural C alignment, so
 * the compiler lays it out exactly as {@linkcode defineMessage} does; the
 * emitted `static_assert`s on size, alignment and every offset turn any drift
 * into a compile error. The output is C++ (CUDA C++), using `<stdint.h>` and
 * `<stddef.h>`, or, with `standalone`, no header at all (for NVRTC, which has
 * no system headers).
 *
 * @module
 */

import { InvalidMessageError } from "./errors.ts";
import type {
  FieldInfo,
  MessageSchema,
  NumericType,
  ScalarType,
} from "./message.ts";

const C_SCALAR: Readonly<Record<ScalarType, string>> = {
  u8: "uint8_t",
  u16: "uint16_t",
  u32: "uint32_t",
  u64: "uint64_t",
  i8: "int8_t",
  i16: "int16_t",
  i32: "int32_t",
  i64: "int64_t",
  f32: "float",
  f64: "double",
  // One byte holding 0 or 1; uint8_t rather than bool so the size is certain.
  bool: "uint8_t",
};

/** The same sizes in built-in types (LP64, as CUDA on Linux): no `<stdint.h>` needed. */
const BUILTIN_SCALAR: Readonly<Record<ScalarType, string>> = {
  u8: "unsigned char",
  u16: "unsigned short",
  u32: "unsigned int",
  u64: "unsigned long long",
  i8: "signed char",
  i16: "short",
  i32: "int",
  i64: "long long",
  f32: "float",
  f64: "double",
  bool: "unsigned char",
};

const C_KEYWORDS = new Set(
  ("alignas alignof and asm auto bool break case catch char char16_t char32_t class const " +
    "constexpr continue decltype default delete do double else enum explicit export extern " +
    "false float for friend goto if inline int long mutable namespace new noexcept not " +
    "nullptr operator or private protected public register reinterpret_cast restrict return " +
    "short signed sizeof static static_assert struct switch template this throw true try " +
    "typedef typeid typename union unsigned using virtual void volatile while")
    .split(" "),
);

/** snake_case of a TypeScript name, made a valid, non-keyword C identifier. */
export function cIdentifier(name: string): string {
  let id = name
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/[^A-Za-z0-9_]/g, "_")
    .toLowerCase();
  if (/^[0-9]/.test(id)) id = "_" + id;
  if (C_KEYWORDS.has(id)) id += "_";
  return id;
}

/** Options of {@linkcode toCStruct}. */
export interface CStructOptions {
  /** Struct name (default: snake_case of the schema name). */
  cName?: string;
  /**
   * Use only built-in types and `__builtin_offsetof`, so the declaration
   * compiles without `<stdint.h>` and `<stddef.h>`: for CUDA C++ given to
   * NVRTC (a GPU actor's `gpu.source.cuda`). Default false.
   */
  standalone?: boolean;
}

interface CMember {
  name: string;
  decl: string;
  offset: number;
}

function membersOf(
  field: FieldInfo,
  scalar: Readonly<Record<ScalarType, string>>,
): CMember[] {
  const name = cIdentifier(field.name);
  const spec = field.spec;
  if (typeof spec === "string") {
    return [{ name, decl: `${scalar[spec]} ${name};`, offset: field.offset }];
  }
  switch (spec.kind) {
    case "array":
      return [{
        name,
        decl: `${scalar[spec.element as NumericType]} ${name}[${spec.length}];`,
        offset: field.offset,
      }];
    case "bytes":
    case "string": {
      const element = spec.kind === "bytes" ? scalar.u8 : "char";
      return [
        {
          name: `${name}_len`,
          decl: `${scalar.u16} ${name}_len;`,
          offset: field.offset,
        },
        {
          name,
          decl: `${element} ${name}[${spec.capacity}];`,
          offset: field.offset + 2,
        },
      ];
    }
  }
}

/**
 * The C declaration of `schema`: a `#define` of its type id and size, the
 * struct, and `static_assert`s of its size, alignment and member offsets.
 * Bytes and string fields become a `uint16_t <name>_len` followed by the data
 * array (`unsigned short` with `standalone`). A schema without fields has no struct (C++ would give it size 1),
 * only the defines. Throws {@linkcode InvalidMessageError} when two members
 * would get the same C name.
 */
export function toCStruct(
  schema: MessageSchema,
  options: CStructOptions = {},
): string {
  const cName = options.cName ?? cIdentifier(schema.name);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(cName)) {
    throw new InvalidMessageError(
      `C struct name ${JSON.stringify(cName)} is not an identifier`,
    );
  }
  const macro = cName.toUpperCase();
  const lines = [
    `/* Message "${schema.name}": ${schema.size} bytes, align ${schema.align}. Generated; do not edit. */`,
    `#define ${macro}_TYPE_ID 0x${
      schema.typeId.toString(16).padStart(8, "0")
    }u`,
    `#define ${macro}_SIZE ${schema.size}u`,
  ];
  if (schema.fields.length === 0) return lines.join("\n") + "\n";
  const scalar = options.standalone ? BUILTIN_SCALAR : C_SCALAR;
  const offsetof = options.standalone ? "__builtin_offsetof" : "offsetof";
  const members = schema.fields.flatMap((field) => membersOf(field, scalar));
  const seen = new Set<string>();
  for (const member of members) {
    if (seen.has(member.name)) {
      throw new InvalidMessageError(
        `message ${schema.name}: two members map to the C name ${member.name}`,
      );
    }
    seen.add(member.name);
  }
  lines.push(`typedef struct ${cName} {`);
  for (const member of members) lines.push(`  ${member.decl}`);
  lines.push(`} ${cName};`);
  lines.push(
    `static_assert(sizeof(${cName}) == ${schema.size}, "${cName}: size");`,
  );
  lines.push(
    `static_assert(alignof(${cName}) == ${schema.align}, "${cName}: alignment");`,
  );
  for (const member of members) {
    lines.push(
      `static_assert(${offsetof}(${cName}, ${member.name}) == ${member.offset}, "${cName}.${member.name}: offset");`,
    );
  }
  return lines.join("\n") + "\n";
}

/** Options of {@linkcode toCHeader}. */
export interface CHeaderOptions {
  /** Include-guard macro (default `RINGKERNEL_MESSAGES_H`). */
  guard?: string;
}

/** A complete header declaring every schema in `schemas`, with includes and an include guard. */
export function toCHeader(
  schemas: Iterable<MessageSchema>,
  options: CHeaderOptions = {},
): string {
  const guard = options.guard ?? "RINGKERNEL_MESSAGES_H";
  const parts = [
    `#ifndef ${guard}`,
    `#define ${guard}`,
    "#include <stddef.h>",
    "#include <stdint.h>",
    "",
  ];
  for (const schema of schemas) parts.push(toCStruct(schema));
  parts.push(`#endif /* ${guard} */`, "");
  return parts.join("\n");
}
