import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import {
  type DynamicLibrary,
  libraryCandidates,
  openLibrary,
  toBunSymbolDefinition,
  validateSymbolTable,
} from "../ffi/dylib.ts";
import { detectRuntime } from "../ffi/js_runtime.ts";
import {
  InvalidStateError,
  LibraryLoadError,
  RingKernelError,
} from "../src/errors.ts";
import { thrown, withEnv } from "./helpers.ts";

const LIBC = "libc.so.6";
const MISSING_A = "libringkernel-test-missing-a.so";
const MISSING_B = "/nonexistent/ringkernel/libmissing-b.so";
const ENV_VAR = "RINGKERNEL_TEST_DYLIB_OVERRIDE";

const LIBC_SYMBOLS = {
  getpid: { parameters: [], result: "i32" },
  strlen: { parameters: ["buffer"], result: "usize" },
  labs: { parameters: ["i64"], result: "i64" },
  abs: { parameters: ["i32"], result: "i32" },
  malloc: { parameters: ["usize"], result: "pointer" },
  free: { parameters: ["pointer"], result: "void" },
  memset: { parameters: ["u64", "i32", "usize"], result: "u64" },
  ringkernel_absent_symbol: {
    parameters: ["u64"],
    result: "i32",
    optional: true,
  },
} as const;

describe("openLibrary against libc", () => {
  const libc: DynamicLibrary<typeof LIBC_SYMBOLS> = openLibrary(LIBC_SYMBOLS, {
    name: "libc",
    candidates: [LIBC],
  });
  after(() => libc.close());

  test("loads the first candidate that opens", () => {
    assert.equal(libc.path, LIBC);
    assert.equal(libc.runtime, detectRuntime());
  });

  test("calls return the process id and string lengths", () => {
    assert.equal(libc.symbols.getpid(), process.pid);
    const text = new TextEncoder().encode("persistent actors\0");
    assert.equal(libc.symbols.strlen(text), 17n);
  });

  test("64-bit integers cross as bigint and accept numbers", () => {
    assert.equal(libc.symbols.labs(-(2n ** 40n)), 2n ** 40n);
    assert.equal(libc.symbols.labs(-7), 7n);
    assert.equal(libc.symbols.abs(-3), 3);
  });

  test("pointer results and arguments are bigint addresses", () => {
    const address = libc.symbols.malloc(64);
    assert.equal(typeof address, "bigint");
    assert.ok(address > 0n);
    // memset returns its first argument: the same address round-trips.
    assert.equal(libc.symbols.memset(address, 0, 64), address);
    libc.symbols.free(address);
    libc.symbols.free(0n); // free(NULL) is a no-op: 0n passes as null
  });

  test("pointer arguments refuse non-bigint values", () => {
    assert.throws(
      () => (libc.symbols.free as (value: unknown) => void)(12),
      RingKernelError,
    );
  });

  test("an absent optional symbol does not stop loading", () => {
    assert.equal(libc.symbols.ringkernel_absent_symbol, undefined);
    assert.deepEqual(libc.missing, ["ringkernel_absent_symbol"]);
    assert.equal(typeof libc.symbols.getpid, "function");
  });
});

describe("load failures", () => {
  test("a missing library names every candidate and why it failed", () => {
    const error = thrown(
      () =>
        openLibrary({ getpid: { parameters: [], result: "i32" } }, {
          name: "libmissing",
          candidates: [MISSING_A, MISSING_B],
        }),
      LibraryLoadError,
    );
    assert.equal(error.tried.length, 2);
    assert.ok(error.tried[0].startsWith(`${MISSING_A}: `), error.tried[0]);
    assert.ok(error.tried[1].startsWith(`${MISSING_B}: `), error.tried[1]);
    for (const entry of error.tried) {
      assert.match(entry, /cannot open shared object file/);
    }
    assert.match(error.message, /libmissing could not be loaded/);
    assert.ok(error.message.includes(MISSING_A));
    assert.ok(error.message.includes(MISSING_B));
  });

  test("a missing required symbol fails that candidate, naming the symbol", () => {
    const error = thrown(() =>
      openLibrary({
        ringkernel_absent_symbol: { parameters: [], result: "i32" },
      }, { name: "libc", candidates: [LIBC] }), LibraryLoadError);
    assert.equal(error.tried.length, 1);
    assert.ok(error.tried[0].startsWith(`${LIBC}: `));
    assert.match(error.tried[0], /ringkernel_absent_symbol/);
  });

  test("a later candidate loads when earlier ones fail", () => {
    const library = openLibrary({ getpid: { parameters: [], result: "i32" } }, {
      name: "libc",
      candidates: [MISSING_A, LIBC],
    });
    try {
      assert.equal(library.path, LIBC);
      assert.equal(library.symbols.getpid(), process.pid);
    } finally {
      library.close();
    }
  });

  test("no candidates at all is a load error", () => {
    assert.throws(
      () => openLibrary({}, { name: "nothing", candidates: [] }),
      LibraryLoadError,
    );
  });
});

describe("environment override", () => {
  test("the override is tried first", () => {
    const library = withEnv(
      ENV_VAR,
      LIBC,
      () =>
        openLibrary({ getpid: { parameters: [], result: "i32" } }, {
          name: "libc",
          candidates: [MISSING_A],
          envVar: ENV_VAR,
        }),
    );
    try {
      assert.equal(library.path, LIBC);
    } finally {
      library.close();
    }
  });

  test("a bogus override is named first in the error", () => {
    const bogus = "/nonexistent/override/libbogus.so";
    const error = withEnv(
      ENV_VAR,
      bogus,
      () =>
        thrown(
          () =>
            openLibrary({ getpid: { parameters: [], result: "i32" } }, {
              name: "libmissing",
              candidates: [MISSING_A],
              envVar: ENV_VAR,
            }),
          LibraryLoadError,
        ),
    );
    assert.equal(error.tried.length, 2);
    assert.ok(error.tried[0].startsWith(`${bogus}: `));
    assert.ok(error.tried[1].startsWith(`${MISSING_A}: `));
    assert.ok(error.message.includes(ENV_VAR));
  });

  test("candidates list the override first, without repeats", () => {
    withEnv(ENV_VAR, "libx.so", () => {
      assert.deepEqual(
        libraryCandidates({
          candidates: ["liby.so", "libx.so"],
          envVar: ENV_VAR,
        }),
        ["libx.so", "liby.so"],
      );
    });
    withEnv(ENV_VAR, "", () => {
      assert.deepEqual(
        libraryCandidates({ candidates: ["liby.so"], envVar: ENV_VAR }),
        ["liby.so"],
      );
    });
    withEnv(ENV_VAR, undefined, () => {
      assert.deepEqual(
        libraryCandidates({ candidates: ["liby.so"], envVar: ENV_VAR }),
        ["liby.so"],
      );
    });
  });
});

describe("lifecycle", () => {
  test("close is idempotent and symbols are refused afterwards", () => {
    const library = openLibrary({ getpid: { parameters: [], result: "i32" } }, {
      name: "libc",
      candidates: [LIBC],
    });
    assert.equal(library.closed, false);
    library.close();
    library.close();
    assert.equal(library.closed, true);
    assert.throws(() => library.symbols, InvalidStateError);
  });
});

describe("symbol tables", () => {
  test("the Bun adapter maps types to bun:ffi names", () => {
    assert.deepEqual(
      toBunSymbolDefinition({
        parameters: [
          "buffer",
          "pointer",
          "usize",
          "isize",
          "u64",
          "u32",
          "f64",
        ],
        result: "pointer",
      }),
      {
        args: ["ptr", "ptr", "u64", "i64", "u64", "u32", "f64"],
        returns: "ptr",
      },
    );
    assert.deepEqual(
      toBunSymbolDefinition({ parameters: [], result: "void" }),
      { args: [], returns: "void" },
    );
  });

  test("malformed tables are rejected with the symbol's name", () => {
    const cases: unknown[] = [
      { f: { parameters: ["function"], result: "i32" } },
      { f: { parameters: [], result: "buffer" } },
      { f: { parameters: "u32", result: "i32" } },
      { f: { parameters: [], result: "i32", optional: "yes" } },
      { f: null },
    ];
    for (const table of cases) {
      assert.throws(
        () => validateSymbolTable(table as never),
        (error: unknown) =>
          error instanceof RingKernelError && /symbol f/.test(error.message),
      );
      assert.throws(
        () => openLibrary(table as never, { name: "libc", candidates: [LIBC] }),
        RingKernelError,
      );
    }
  });
});
