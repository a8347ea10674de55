// Layout drift test: cuda/ringkernel.cuh must agree with src/layout.ts.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  ALL_LAYOUTS,
  CONTROL_BLOCK,
  defineLayout,
  ENVELOPE,
  FIELD_SIZE,
  type FieldType,
  QUEUE_HEADER,
  QUEUE_LINE,
  TELEMETRY_BUFFER,
} from "../src/layout.ts";
import {
  compileLayoutCheck,
  CUDA_DIR,
  hasCompiler,
  HEADER_FILE,
  headerStructMembers,
  layoutCheckSource,
  layoutConstants,
} from "../scripts/layout_header.ts";

const gxx = hasCompiler("g++");
const nvcc = hasCompiler("nvcc");
if (!gxx) console.log("layout_test: g++ not found, compile checks skipped");
if (!nvcc) {
  console.log("layout_test: nvcc not found, the CUDA compile check is skipped");
}
const gxxOptions = gxx ? {} : { skip: "g++ not found" };

/** CONTROL_BLOCK with isActive and shouldTerminate swapped: a plausible mistake. */
function swappedControlBlock() {
  const fields: Record<string, readonly [number, FieldType]> = {};
  for (const [key, f] of Object.entries(CONTROL_BLOCK.fields)) {
    fields[key] = [f.offset, f.type];
  }
  fields.isActive = [4, "i32"];
  fields.shouldTerminate = [0, "i32"];
  return defineLayout(
    CONTROL_BLOCK.cName,
    CONTROL_BLOCK.size,
    CONTROL_BLOCK.align,
    fields,
  );
}

describe("defineLayout validation", () => {
  test("accepts a well-formed layout and derives snake_case C names", () => {
    const layout = defineLayout("rk_probe", 16, 8, {
      firstWord: [0, "u32"],
      secondValue: [8, "u64"],
    });
    assert.equal(layout.fields.firstWord.cName, "first_word");
    assert.equal(layout.fields.secondValue.offset, 8);
    assert.ok(Object.isFrozen(layout) && Object.isFrozen(layout.fields));
  });

  test("rejects overlapping fields", () => {
    assert.throws(
      () => defineLayout("rk_probe", 16, 8, { a: [0, "u64"], b: [4, "u32"] }),
      /overlaps/,
    );
  });

  test("rejects a misaligned field", () => {
    assert.throws(
      () => defineLayout("rk_probe", 16, 8, { a: [2, "u32"] }),
      /bad offset 2/,
    );
    assert.throws(
      () => defineLayout("rk_probe", 16, 8, { a: [4, "u64"] }),
      /bad offset 4/,
    );
  });

  test("rejects a field out of bounds, or a negative offset", () => {
    assert.throws(
      () => defineLayout("rk_probe", 16, 8, { a: [16, "u32"] }),
      RangeError,
    );
    assert.throws(
      () => defineLayout("rk_probe", 16, 8, { a: [12, "u64"] }),
      RangeError,
    );
    assert.throws(
      () => defineLayout("rk_probe", 16, 8, { a: [-4, "u32"] }),
      RangeError,
    );
  });

  test("rejects a size that is not a multiple of the alignment", () => {
    assert.throws(
      () => defineLayout("rk_probe", 20, 8, { a: [0, "u32"] }),
      /not a multiple/,
    );
  });
});

describe("shared layouts", () => {
  test("have the sizes and alignments of the design", () => {
    assert.deepEqual(
      ALL_LAYOUTS.map((l) => [l.cName, l.size, l.align]),
      [
        ["rk_control_block", 128, 128],
        ["rk_telemetry", 64, 64],
        ["rk_queue_header", 512, 128],
        ["rk_envelope", 32, 8],
      ],
    );
  });

  test("keep head, tail and reserve on their own queue lines", () => {
    const line = (offset: number) => Math.floor(offset / QUEUE_LINE);
    const { head, tail, reserve, capacity } = QUEUE_HEADER.fields;
    assert.deepEqual([
      line(head.offset),
      line(tail.offset),
      line(reserve.offset),
      line(capacity.offset),
    ], [0, 1, 2, 3]);
    for (const [key, f] of Object.entries(QUEUE_HEADER.fields)) {
      if (key !== "head") {
        assert.notEqual(line(f.offset), line(head.offset), key);
      }
      if (key !== "tail" && key !== "dropped") {
        assert.notEqual(line(f.offset), line(tail.offset), key);
      }
    }
  });

  test("put both bells (messages and room) on the configuration line", () => {
    const f = QUEUE_HEADER.fields;
    assert.deepEqual(
      [f.doorbell, f.sleeping, f.roomBell, f.roomWaiting].map((
        x,
      ) => [x.offset, x.type, x.cName]),
      [
        [400, "i32", "doorbell"],
        [404, "i32", "sleeping"],
        [408, "i32", "room_bell"],
        [412, "i32", "room_waiting"],
      ],
    );
    for (const x of [f.roomBell, f.roomWaiting]) {
      assert.equal(Math.floor(x.offset / QUEUE_LINE), 3);
    }
  });

  test("leave at least 32 payload bytes in a 64 B slot", () => {
    const end = Math.max(
      ...Object.values(ENVELOPE.fields).map((f) =>
        f.offset + FIELD_SIZE[f.type]
      ),
    );
    assert.ok(end <= 32 && ENVELOPE.size === 32);
    assert.equal(TELEMETRY_BUFFER.size, 64);
  });
});

describe("cuda/ringkernel.cuh", () => {
  const headerText = readFileSync(join(CUDA_DIR, HEADER_FILE), "utf8");

  test("declares exactly the fields of src/layout.ts (others are padding ending in _)", () => {
    const members = headerStructMembers(headerText);
    for (const layout of ALL_LAYOUTS) {
      const declared = members.get(layout.cName);
      assert.ok(declared, `${layout.cName} is not declared in ${HEADER_FILE}`);
      const named = declared.filter((name) => !name.endsWith("_"));
      const expected = Object.values(layout.fields).sort((a, b) =>
        a.offset - b.offset
      ).map((f) => f.cName);
      assert.deepEqual(named, expected, layout.cName);
    }
  });

  test("the parser sees a field the layouts lack", () => {
    const members = headerStructMembers(
      "struct alignas(8) rk_envelope { rk_u32 type_id; rk_u32 extra; rk_u8 pad_[3]; rk_u8* ptr; };",
    );
    assert.deepEqual(members.get("rk_envelope"), [
      "type_id",
      "extra",
      "pad_",
      "ptr",
    ]);
  });

  test("the generated check covers every field and constant", () => {
    const source = layoutCheckSource();
    for (const layout of ALL_LAYOUTS) {
      for (const f of Object.values(layout.fields)) {
        assert.ok(
          source.includes(
            `offsetof(${layout.cName}, ${f.cName}) == ${f.offset}`,
          ),
          f.cName,
        );
      }
    }
    for (const c of layoutConstants()) {
      assert.ok(
        source.includes(`(${c.expression}) == ${c.value}`),
        c.expression,
      );
    }
    assert.ok(
      layoutConstants().some((c) =>
        c.expression === "RK_QUEUE_KIND_MPSC" && c.value === 2
      ),
    );
    assert.ok(
      layoutConstants().some((c) =>
        c.expression === "RK_TERMINATION_RELAUNCHABLE" && c.value === 2
      ),
    );
  });

  test(
    "compiles against src/layout.ts under g++ -std=c++17",
    gxxOptions,
    () => {
      const result = compileLayoutCheck({ source: layoutCheckSource() });
      assert.equal(result.ok, true, result.output);
    },
  );

  test(
    "a wrong offset is rejected by g++, naming the field",
    gxxOptions,
    () => {
      const layouts = ALL_LAYOUTS.map((
        l,
      ) => (l === CONTROL_BLOCK ? swappedControlBlock() : l));
      const result = compileLayoutCheck({
        source: layoutCheckSource({ layouts }),
      });
      assert.equal(result.ok, false);
      assert.match(
        result.output,
        /rk_control_block\.is_active: offset must be 4/,
      );
      assert.match(
        result.output,
        /rk_control_block\.should_terminate: offset must be 0/,
      );
    },
  );

  test("a wrong type, size or alignment is rejected by g++", gxxOptions, () => {
    const envelopeFields: Record<string, readonly [number, FieldType]> = {};
    for (const [key, f] of Object.entries(ENVELOPE.fields)) {
      envelopeFields[key] = [f.offset, f.type];
    }
    envelopeFields.sourceActor = [24, "i32"];
    const envelope = defineLayout(
      ENVELOPE.cName,
      ENVELOPE.size,
      ENVELOPE.align,
      envelopeFields,
    );
    const telemetry = defineLayout(TELEMETRY_BUFFER.cName, 128, 128, {});
    const result = compileLayoutCheck({
      source: layoutCheckSource({ layouts: [envelope, telemetry] }),
    });
    assert.equal(result.ok, false);
    assert.match(
      result.output,
      /rk_envelope\.source_actor: type must be rk_i32/,
    );
    assert.match(result.output, /rk_telemetry: size must be 128/);
    assert.match(result.output, /rk_telemetry: alignment must be 128/);
  });

  test("a wrong constant is rejected by g++", gxxOptions, () => {
    const constants = [{
      expression: "RK_ABI_VERSION",
      value: 99,
      origin: "ABI_VERSION",
    }];
    const result = compileLayoutCheck({
      source: layoutCheckSource({ layouts: [], constants }),
    });
    assert.equal(result.ok, false);
    assert.match(result.output, /RK_ABI_VERSION must be 99/);
  });

  test(
    "compiles as CUDA (host and device passes) under nvcc",
    nvcc ? { timeout: 120_000 } : { skip: "nvcc not found" },
    () => {
      const result = compileLayoutCheck({
        source: layoutCheckSource(),
        compiler: "nvcc",
      });
      assert.equal(result.ok, true, result.output);
    },
  );
});
