/**
 * Generates a C++ translation unit that checks `cuda/ringkernel.cuh` against
 * the layouts of src/layout.ts with `static_assert`s (offset, size, type of
 * every field; size and alignment of every struct; every shared constant),
 * and compiles it. The layout drift test runs it; so can a person:
 *
 * ```sh
 * deno run -A scripts/layout_header.ts          # compile the check with g++ (exit 1 on drift)
 * deno run -A scripts/layout_header.ts --print  # print the generated translation unit
 * ```
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  ABI_VERSION,
  ALL_LAYOUTS,
  ENVELOPE,
  FIELD_SIZE,
  type FieldType,
  QUEUE_HEADER,
  QUEUE_LINE,
  QUEUE_MAGIC,
  QueueKind,
  SLOT_TIERS,
  type StructLayout,
  TerminationState,
} from "../src/layout.ts";

export type { FieldLayout, FieldType, StructLayout } from "../src/layout.ts";

/** Directory holding `ringkernel.cuh`. */
export const CUDA_DIR: string = fileURLToPath(
  new URL("../cuda/", import.meta.url),
);

/** The header the check includes. */
export const HEADER_FILE = "ringkernel.cuh";

/** The `ringkernel.cuh` typedef of each {@linkcode FieldType}. */
export const C_FIELD_TYPE: Readonly<Record<FieldType, string>> = Object.freeze({
  u8: "rk_u8",
  u16: "rk_u16",
  i32: "rk_i32",
  u32: "rk_u32",
  i64: "rk_i64",
  u64: "rk_u64",
});

/** A constant the header must define with a given value. */
export interface LayoutConstant {
  /** C expression in the header, e.g. `RK_ABI_VERSION` or `rk_slot_tier(0)`. */
  readonly expression: string;
  /** The value src/layout.ts gives it. */
  readonly value: number;
  /** Where the value comes from in src/layout.ts. */
  readonly origin: string;
}

/** Options of {@linkcode layoutCheckSource}. */
export interface LayoutCheckOptions {
  /** Layouts to check; every layout of src/layout.ts by default. */
  readonly layouts?: readonly StructLayout[];
  /** Constants to check; {@linkcode layoutConstants} by default. */
  readonly constants?: readonly LayoutConstant[];
}

/** Options of {@linkcode compileLayoutCheck}. */
export interface CompileLayoutCheckOptions {
  /** The translation unit to compile. */
  readonly source: string;
  /** Directory holding `ringkernel.cuh`; {@linkcode CUDA_DIR} by default. */
  readonly includeDir?: string;
  /** `g++` (host C++17, syntax only) or `nvcc` (CUDA, host and device passes). */
  readonly compiler?: "g++" | "nvcc";
}

/** Result of {@linkcode compileLayoutCheck}. */
export interface CompileResult {
  /** Whether the compiler accepted the translation unit. */
  readonly ok: boolean;
  /** The compiler's diagnostics. */
  readonly output: string;
}

function upperSnake(name: string): string {
  return name.replace(/[A-Z]/g, (c, i) => (i === 0 ? c : "_" + c))
    .toUpperCase();
}

/** Every constant of src/layout.ts that the header mirrors, with its C name. */
export function layoutConstants(): LayoutConstant[] {
  const constants: LayoutConstant[] = [
    { expression: "RK_ABI_VERSION", value: ABI_VERSION, origin: "ABI_VERSION" },
    { expression: "RK_QUEUE_MAGIC", value: QUEUE_MAGIC, origin: "QUEUE_MAGIC" },
    { expression: "RK_QUEUE_LINE", value: QUEUE_LINE, origin: "QUEUE_LINE" },
    {
      expression: "RK_QUEUE_HEADER_SIZE",
      value: QUEUE_HEADER.size,
      origin: "QUEUE_HEADER.size",
    },
    {
      expression: "RK_ENVELOPE_SIZE",
      value: ENVELOPE.size,
      origin: "ENVELOPE.size",
    },
    {
      expression: "RK_SLOT_TIER_COUNT",
      value: SLOT_TIERS.length,
      origin: "SLOT_TIERS.length",
    },
    {
      expression: "RK_SLOT_SIZE_DEFAULT",
      value: SLOT_TIERS[0],
      origin: "SLOT_TIERS[0]",
    },
    {
      expression: "RK_SLOT_SIZE_MAX",
      value: Math.max(...SLOT_TIERS),
      origin: "max(SLOT_TIERS)",
    },
  ];
  for (const [key, value] of Object.entries(QueueKind)) {
    constants.push({
      expression: `RK_QUEUE_KIND_${upperSnake(key)}`,
      value,
      origin: `QueueKind.${key}`,
    });
  }
  for (const [key, value] of Object.entries(TerminationState)) {
    constants.push({
      expression: `RK_TERMINATION_${upperSnake(key)}`,
      value,
      origin: `TerminationState.${key}`,
    });
  }
  SLOT_TIERS.forEach((size, i) => {
    constants.push({
      expression: `rk_slot_tier(${i})`,
      value: size,
      origin: `SLOT_TIERS[${i}]`,
    });
    constants.push({
      expression: `rk_is_slot_tier(${size})`,
      value: 1,
      origin: `SLOT_TIERS[${i}]`,
    });
  });
  return constants;
}

function message(text: string): string {
  return JSON.stringify(`${text} (src/layout.ts)`);
}

/** The C++17 translation unit that checks the header against the layouts. */
export function layoutCheckSource(options: LayoutCheckOptions = {}): string {
  const layouts = options.layouts ?? ALL_LAYOUTS;
  const constants = options.constants ?? layoutConstants();
  const lines = [
    "// Generated from src/layout.ts by scripts/layout_header.ts; do not edit.",
    "#include <cstddef>",
    "#include <type_traits>",
    `#include "${HEADER_FILE}"`,
    "",
  ];
  for (const layout of layouts) {
    const s = layout.cName;
    lines.push(
      `// ${s}`,
      `static_assert(sizeof(${s}) == ${layout.size}, ${
        message(`${s}: size must be ${layout.size}`)
      });`,
      `static_assert(alignof(${s}) == ${layout.align}, ${
        message(`${s}: alignment must be ${layout.align}`)
      });`,
      `static_assert(std::is_standard_layout<${s}>::value, ${
        message(`${s}: must be standard-layout`)
      });`,
      `static_assert(std::is_trivially_copyable<${s}>::value, ${
        message(`${s}: must be trivially copyable`)
      });`,
    );
    const fields = Object.values(layout.fields).sort((a, b) =>
      a.offset - b.offset
    );
    for (const field of fields) {
      const f = `${s}.${field.cName}`;
      const member = `${s}::${field.cName}`;
      const cType = C_FIELD_TYPE[field.type];
      lines.push(
        `static_assert(offsetof(${s}, ${field.cName}) == ${field.offset}, ${
          message(`${f}: offset must be ${field.offset}`)
        });`,
        `static_assert(sizeof(${member}) == ${FIELD_SIZE[field.type]}, ${
          message(`${f}: size must be ${FIELD_SIZE[field.type]}`)
        });`,
        `static_assert(std::is_same<decltype(${member}), ${cType}>::value, ${
          message(`${f}: type must be ${cType} (${field.type})`)
        });`,
      );
    }
    lines.push("");
  }
  lines.push("// constants");
  for (const c of constants) {
    lines.push(
      `static_assert((${c.expression}) == ${c.value}, ${
        message(`${c.expression} must be ${c.value} (${c.origin})`)
      });`,
    );
  }
  lines.push("");
  return lines.join("\n");
}

/** Whether a compiler can be run at all (`--version` succeeds). */
export function hasCompiler(compiler: "g++" | "nvcc"): boolean {
  const result = spawnSync(compiler, ["--version"], { encoding: "utf8" });
  return !result.error && result.status === 0;
}

/**
 * Compiles a translation unit with g++ (`-std=c++17 -fsyntax-only -Wall
 * -Wextra -Werror`) or nvcc (`-std=c++17 -x cu -c` for sm_80, host and device
 * passes), with `includeDir` on the include path.
 */
export function compileLayoutCheck(
  options: CompileLayoutCheckOptions,
): CompileResult {
  const includeDir = options.includeDir ?? CUDA_DIR;
  const work = mkdtempSync(join(tmpdir(), "rk-layout-"));
  try {
    const file = join(work, "layout_check.cpp");
    writeFileSync(file, options.source);
    const result = options.compiler === "nvcc"
      ? spawnSync("nvcc", [
        "-std=c++17",
        "-x",
        "cu",
        "-arch=sm_80",
        "-I",
        includeDir,
        "-c",
        file,
        "-o",
        join(work, "layout_check.o"),
      ], { encoding: "utf8" })
      : spawnSync("g++", [
        "-std=c++17",
        "-fsyntax-only",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-I",
        includeDir,
        file,
      ], {
        encoding: "utf8",
      });
    if (result.error) return { ok: false, output: result.error.message };
    return {
      ok: result.status === 0,
      output: `${result.stdout ?? ""}${result.stderr ?? ""}`,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Member names of every struct of a header text, in declaration order
 * (a plain parse of `struct [alignas(N)] name { type member[...]; ... };`).
 */
export function headerStructMembers(text: string): Map<string, string[]> {
  const structs = new Map<string, string[]>();
  const withoutComments = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(
    /\/\/.*$/gm,
    "",
  );
  for (
    const match of withoutComments.matchAll(
      /struct\s+(?:alignas\(\d+\)\s+)?(\w+)\s*\{([^}]*)\};/g,
    )
  ) {
    const members = [
      ...match[2].matchAll(/\b\w+[\s*&]+(\w+)\s*(?:\[[^\]]*\])?\s*;/g),
    ].map((m) => m[1]);
    structs.set(match[1], members);
  }
  return structs;
}

if (import.meta.main) {
  let print = false;
  try {
    ({ values: { print } } = parseArgs({
      args: process.argv.slice(2),
      strict: true,
      allowPositionals: false,
      options: { print: { type: "boolean", default: false } },
    }));
  } catch (error) {
    console.error(
      `${(error as Error).message}\nusage: layout_header.ts [--print]`,
    );
    process.exit(2);
  }
  const source = layoutCheckSource();
  if (print) {
    console.log(source);
  } else {
    const result = compileLayoutCheck({ source });
    if (!result.ok) console.error(result.output);
    console.log(
      result.ok
        ? "layout: cuda/ringkernel.cuh matches src/layout.ts"
        : "layout: DRIFT",
    );
    process.exit(result.ok ? 0 : 1);
  }
}
