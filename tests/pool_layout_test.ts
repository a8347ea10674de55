// The pool's ABI (src/backend/cuda/pool_layout.ts) against the device header
// cuda/ringkernel.cuh: its structs, constants and codes, compiled under g++
// (and nvcc where there is one); and the pool kernels' entry points in the
// bundle's PTX, as the host launches them.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import {
  ACTOR_CONFIG_BYTES,
  ACTOR_CONFIG_OFFSET,
  ActorFlag,
  ActorKind,
  DEAD_LETTER_CAPACITY,
  DeadLetterCode,
  deadLetterReasonOf,
  DeviceError,
  deviceErrorName,
  MAX_ROUTES,
  POOL_LAYOUTS,
  POOL_SHARED_BYTES,
  POOL_THREADS,
  ROUTE_TABLE,
  ROUTE_TABLE_BYTES,
  STAGE_BYTES,
} from "../src/backend/cuda/pool_layout.ts";
import { nameHash } from "../src/backend/cuda/route_table.ts";
import { packKernelParams } from "../src/cuda/params.ts";
import {
  compileLayoutCheck,
  hasCompiler,
  headerStructMembers,
  layoutCheckSource,
  type LayoutConstant,
} from "../scripts/layout_header.ts";

const gxx = hasCompiler("g++");
const nvcc = hasCompiler("nvcc");
const gxxOptions = gxx ? {} : { skip: "g++ not found" };
const HEADER = readFileSync(
  new URL("../cuda/ringkernel.cuh", import.meta.url),
  "utf8",
);

function upperSnake(name: string): string {
  return name.replace(/[A-Z]/g, (c, i) => (i === 0 ? c : "_" + c))
    .toUpperCase();
}

/** Every pool constant the header must define, from src/backend/cuda/pool_layout.ts. */
function poolConstants(): LayoutConstant[] {
  const constants: LayoutConstant[] = [
    {
      expression: "RK_POOL_THREADS",
      value: POOL_THREADS,
      origin: "POOL_THREADS",
    },
    {
      expression: "RK_POOL_SHARED_BYTES",
      value: POOL_SHARED_BYTES,
      origin: "POOL_SHARED_BYTES",
    },
    { expression: "RK_STAGE_BYTES", value: STAGE_BYTES, origin: "STAGE_BYTES" },
    {
      expression: "RK_ACTOR_CONFIG_BYTES",
      value: ACTOR_CONFIG_BYTES,
      origin: "ACTOR_CONFIG_BYTES",
    },
    {
      expression: "offsetof(rk_actor_desc, config)",
      value: ACTOR_CONFIG_OFFSET,
      origin: "ACTOR_CONFIG_OFFSET",
    },
    { expression: "RK_MAX_ROUTES", value: MAX_ROUTES, origin: "MAX_ROUTES" },
    {
      expression: "RK_DEAD_LETTER_CAPACITY",
      value: DEAD_LETTER_CAPACITY,
      origin: "DEAD_LETTER_CAPACITY",
    },
  ];
  const group = (
    prefix: string,
    values: Record<string, number>,
    origin: string,
  ) => {
    for (const [key, value] of Object.entries(values)) {
      constants.push({
        expression: `${prefix}${upperSnake(key)}`,
        value,
        origin: `${origin}.${key}`,
      });
    }
  };
  group("RK_ACTOR_KIND_", ActorKind, "ActorKind");
  group("RK_ACTOR_FLAG_", ActorFlag, "ActorFlag");
  group("RK_ERROR_", DeviceError, "DeviceError");
  group("RK_DEAD_", DeadLetterCode, "DeadLetterCode");
  return constants;
}

describe("pool ABI: src/backend/cuda/pool_layout.ts against cuda/ringkernel.cuh", () => {
  test("the header declares exactly the layout fields (padding ends in _; config is the area after them)", () => {
    const members = headerStructMembers(HEADER);
    for (const layout of POOL_LAYOUTS) {
      const declared = members.get(layout.cName);
      assert.ok(declared, `${layout.cName} is not declared`);
      const named = declared.filter((n) => !n.endsWith("_") && n !== "config");
      const expected = Object.values(layout.fields).sort((a, b) =>
        a.offset - b.offset
      ).map((f) => f.cName);
      assert.deepEqual(named, expected, layout.cName);
    }
  });

  test(
    "compiles against the TS layouts and constants under g++",
    gxxOptions,
    () => {
      const names = ["", "a", "sink", "forwarder-target/with.dots"];
      const hashes = names.map((name) =>
        `static_assert(rk_fnv1a64(${JSON.stringify(name)}) == 0x${
          nameHash(name).toString(16)
        }ull, "fnv1a64 of ${name}");`
      );
      const source = layoutCheckSource({
        layouts: POOL_LAYOUTS,
        constants: poolConstants(),
      }) + hashes.join("\n") + "\n";
      const result = compileLayoutCheck({ source });
      assert.equal(result.ok, true, result.output);
    },
  );

  test(
    "a drifted constant or offset is rejected by g++, naming it",
    gxxOptions,
    () => {
      const constants = [{
        expression: "RK_POOL_SHARED_BYTES",
        value: 1,
        origin: "test",
      }];
      const wrong = compileLayoutCheck({
        source: layoutCheckSource({ layouts: [], constants }),
      });
      assert.equal(wrong.ok, false);
      assert.match(wrong.output, /RK_POOL_SHARED_BYTES must be 1/);
    },
  );

  test(
    "compiles as CUDA under nvcc (host and device passes)",
    nvcc ? { timeout: 120_000 } : { skip: "nvcc not found" },
    () => {
      const result = compileLayoutCheck({
        source: layoutCheckSource({
          layouts: POOL_LAYOUTS,
          constants: poolConstants(),
        }),
        compiler: "nvcc",
      });
      assert.equal(result.ok, true, result.output);
    },
  );

  test("the shared-memory plan fits a block without opt-in (48 KiB)", () => {
    assert.ok(POOL_SHARED_BYTES <= 48 * 1024);
    assert.ok(STAGE_BYTES * 2 < POOL_SHARED_BYTES);
    assert.equal(ROUTE_TABLE_BYTES, ROUTE_TABLE.size + MAX_ROUTES * 32);
  });

  test("device error codes have names, and dead-letter codes map to runtime reasons", () => {
    assert.equal(deviceErrorName(DeviceError.SchemaMismatch), "SchemaMismatch");
    assert.equal(deviceErrorName(99), "Error99");
    assert.equal(
      deadLetterReasonOf(DeadLetterCode.InvalidMessage),
      "invalid-message",
    );
    assert.equal(
      deadLetterReasonOf(DeadLetterCode.UnknownTarget),
      "unknown-target",
    );
    assert.equal(
      deadLetterReasonOf(DeadLetterCode.HandlerError),
      "handler-error",
    );
  });
});

describe("bundle entry points", () => {
  const ptx = readFileSync(
    new URL("../cuda/bundle/ringkernel.compute_80.ptx", import.meta.url),
    "utf8",
  );
  const params = (kernel: string) => {
    const match = new RegExp(
      `\\.entry ${kernel}\\(([^)]*)\\)\\s*\\.maxntid (\\d+), 1, 1`,
    ).exec(ptx);
    assert.ok(
      match,
      `${kernel} is not in the bundle's PTX (or has no launch bounds)`,
    );
    return {
      types: [...match[1].matchAll(/\.param \.(\w+)/g)].map((m) => m[1]),
      maxThreads: Number(match[2]),
    };
  };

  for (
    const kernel of [
      "rk_actor_pool",
      "rk_example_double_pool",
      "rk_example_counter_pool",
    ]
  ) {
    test(`${kernel}(const rk_u64* descriptors, rk_u32 count), ${POOL_THREADS} threads`, () => {
      assert.deepEqual(params(kernel), {
        types: ["u64", "u32"],
        maxThreads: POOL_THREADS,
      });
    });
  }

  test("the host packs the pool parameters as the kernel declares them", () => {
    const packed = packKernelParams([
      { type: "ptr", value: 0x7f00_1234_5600n },
      { type: "u32", value: 3 },
    ]);
    const view = new DataView(packed.values.buffer);
    assert.equal(packed.count, 2);
    assert.equal(view.getBigUint64(0, true), 0x7f00_1234_5600n);
    assert.equal(view.getUint32(8, true), 3);
    assert.equal(view.getUint32(12, true), 0);
    assert.ok(
      packed.pointers !== null &&
        packed.pointers[1] - packed.pointers[0] === 8n,
    );
  });

  test("pool blocks take their shared memory dynamically", () => {
    assert.match(
      ptx,
      /\.extern \.shared \.align 16 \.b8 rk_pool_dynamic_smem\[\];/,
    );
  });
});
