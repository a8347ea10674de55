import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  assertFfiRuntime,
  bunFfi,
  classifyRuntime,
  detectRuntime,
  requireFfiRuntime,
} from "../ffi/runtime.ts";
import { BackendUnavailableError } from "../src/errors.ts";

const RUNNING = "Bun" in globalThis ? "bun" : "deno";

describe("runtime detection", () => {
  test("names the running runtime", () => {
    assert.equal(detectRuntime(), RUNNING);
    assert.equal(requireFfiRuntime(), RUNNING);
    assert.equal(classifyRuntime(), RUNNING);
  });

  test("classifies other sets of globals", () => {
    const node = { process: { versions: { node: "22.0.0" } } };
    assert.equal(classifyRuntime(node), "node");
    assert.equal(classifyRuntime({}), "unknown");
    // Bun and Deno also report a Node.js version; they still win.
    assert.equal(classifyRuntime({ ...node, Bun: {} }), "bun");
    assert.equal(classifyRuntime({ ...node, Deno: {} }), "deno");
  });

  test("runtimes without FFI get a typed error naming them", () => {
    assert.equal(assertFfiRuntime("deno"), "deno");
    assert.equal(assertFfiRuntime("bun"), "bun");
    for (const other of ["node", "unknown"] as const) {
      assert.throws(
        () => assertFfiRuntime(other),
        (error: unknown) =>
          error instanceof BackendUnavailableError &&
          error.backend === "ffi" && error.reason.includes(other),
      );
    }
  });

  test("bun:ffi is loaded under Bun only", () => {
    if (RUNNING === "bun") {
      const ffi = bunFfi();
      assert.equal(typeof ffi.dlopen, "function");
      assert.equal(typeof ffi.ptr, "function");
      assert.equal(typeof ffi.toArrayBuffer, "function");
    } else {
      assert.throws(() => bunFfi(), BackendUnavailableError);
    }
  });
});
