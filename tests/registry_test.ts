import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  ActorRegistry,
  globMatches,
  isValidActorName,
  MAX_ACTOR_NAME_LENGTH,
  validateActorName,
} from "../src/registry.ts";
import { InvalidStateError, RingKernelError } from "../src/errors.ts";

describe("actor names", () => {
  const valid = [
    "a",
    "processor",
    "pool/worker-3",
    "gpu0/pool/w_1",
    "a.b:c@d",
    "caf\u00e9",
    "x".repeat(MAX_ACTOR_NAME_LENGTH),
  ];
  for (const name of valid) {
    test(`accepts ${JSON.stringify(name.slice(0, 20))}`, () => {
      assert.doesNotThrow(() => validateActorName(name));
      assert.equal(isValidActorName(name), true);
    });
  }

  const invalid: ReadonlyArray<readonly [string, RegExp]> = [
    ["", /empty/],
    ["/a", /start or end/],
    ["a/", /start or end/],
    ["a//b", /empty segment/],
    ["a*", /glob character '\*'/],
    ["a?b", /glob character '\?'/],
    ["a b", /whitespace/],
    ["a\tb", /whitespace or control/],
    ["a\u0000", /control/],
    ["a\u0085", /control/],
    ["a\u00a0b", /whitespace/],
    ["x".repeat(MAX_ACTOR_NAME_LENGTH + 1), /longer than/],
  ];
  for (const [name, pattern] of invalid) {
    test(`rejects ${JSON.stringify(name.slice(0, 20))}`, () => {
      assert.throws(() => validateActorName(name), (error: unknown) => {
        assert.ok(error instanceof RingKernelError);
        assert.match(error.message, /^invalid actor name /);
        assert.match(error.message, pattern);
        return true;
      });
      assert.equal(isValidActorName(name), false);
    });
  }

  test("rejects a non-string", () => {
    assert.throws(
      () => validateActorName(7 as unknown as string),
      RingKernelError,
    );
  });
});

describe("globMatches", () => {
  /** [pattern, name, expected]. */
  const table: ReadonlyArray<readonly [string, string, boolean]> = [
    ["a", "a", true],
    ["a", "ab", false],
    ["*", "abc", true],
    ["*", "a/b", false],
    ["a*", "a", true],
    ["a*", "abc", true],
    ["*c", "abc", true],
    ["a*c", "abbbc", true],
    ["a*c", "a/c", false],
    ["pool/*", "pool/w1", true],
    ["pool/*", "pool/w1/x", false],
    ["pool/*", "pool", false],
    ["pool/**", "pool/w1/x", true],
    ["pool/**", "pool", false],
    ["**", "a/b/c", true],
    ["**", "a", true],
    ["**/x", "x", true],
    ["**/x", "a/b/x", true],
    ["**/x", "a/bx", false],
    ["pool/**/x", "pool/x", true],
    ["pool/**/x", "pool/a/b/x", true],
    ["pool/**/x", "poolx", false],
    ["a**", "a/b/c", true],
    ["?", "a", true],
    ["?", "ab", false],
    ["?", "/", false],
    ["w?", "w1", true],
    ["w??", "w1", false],
    ["*/w?", "pool/w3", true],
    ["a.b", "a.b", true],
    ["a.b", "axb", false],
    ["(x)", "(x)", true],
    ["a+", "a+", true],
    ["a+", "aa", false],
    ["[ab]", "[ab]", true],
    ["[ab]", "a", false],
    ["$x^", "$x^", true],
  ];
  for (const [pattern, name, expected] of table) {
    test(
      `${JSON.stringify(pattern)} ${expected ? "matches" : "does not match"} ${
        JSON.stringify(name)
      }`,
      () => {
        assert.equal(globMatches(pattern, name), expected);
      },
    );
  }

  const badPatterns = ["", "***", "a/***", "/a", "a//*", "a b"];
  for (const pattern of badPatterns) {
    test(`rejects the pattern ${JSON.stringify(pattern)}`, () => {
      assert.throws(() => globMatches(pattern, "a"), (error: unknown) => {
        assert.ok(error instanceof RingKernelError);
        assert.match(error.message, /^invalid actor name pattern /);
        return true;
      });
    });
  }

  test("stays correct beyond the compiled-pattern cache", () => {
    for (let i = 0; i < 300; i++) {
      assert.equal(globMatches(`w${i}/*`, `w${i}/x`), true);
      assert.equal(globMatches(`w${i}/*`, `w${i + 1}/x`), false);
    }
    assert.equal(globMatches("w0/*", "w0/y"), true);
  });
});

describe("ActorRegistry", () => {
  test("registers, looks up and unregisters", () => {
    const registry = new ActorRegistry<number>();
    registry.register("a", 1);
    registry.register("pool/w1", 2);
    assert.equal(registry.size, 2);
    assert.equal(registry.get("a"), 1);
    assert.equal(registry.has("pool/w1"), true);
    assert.equal(registry.get("missing"), undefined);
    assert.equal(registry.has("missing"), false);
    assert.equal(registry.unregister("a"), true);
    assert.equal(registry.unregister("a"), false);
    assert.equal(registry.has("a"), false);
    assert.equal(registry.size, 1);
    registry.register("a", 3);
    assert.equal(registry.get("a"), 3);
  });

  test("a duplicate name is a typed error and keeps the first value", () => {
    const registry = new ActorRegistry<string>();
    registry.register("k", "first");
    assert.throws(() => registry.register("k", "second"), (error: unknown) => {
      assert.ok(error instanceof InvalidStateError);
      assert.match(error.message, /"k"/);
      assert.match(error.message, /already in use/);
      return true;
    });
    assert.equal(registry.get("k"), "first");
    assert.equal(registry.size, 1);
  });

  test("an invalid name is a typed error and registers nothing", () => {
    const registry = new ActorRegistry<string>();
    assert.throws(() => registry.register("a b", "x"), RingKernelError);
    assert.throws(() => registry.register("", "x"), RingKernelError);
    assert.equal(registry.size, 0);
  });

  test("find, names, values and iteration keep registration order", () => {
    const registry = new ActorRegistry<number>();
    const names = ["pool/w2", "pool/w1", "router", "pool/sub/w3", "pool"];
    names.forEach((name, index) => registry.register(name, index));
    assert.deepEqual(registry.names(), names);
    assert.deepEqual(registry.values(), [0, 1, 2, 3, 4]);
    assert.deepEqual([...registry], names.map((name, index) => [name, index]));
    assert.deepEqual(registry.find("pool/*"), [["pool/w2", 0], ["pool/w1", 1]]);
    assert.deepEqual(registry.find("pool/**"), [
      ["pool/w2", 0],
      ["pool/w1", 1],
      ["pool/sub/w3", 3],
    ]);
    assert.deepEqual(registry.find("**/w?"), [
      ["pool/w2", 0],
      ["pool/w1", 1],
      ["pool/sub/w3", 3],
    ]);
    assert.deepEqual(registry.find("r*"), [["router", 2]]);
    assert.deepEqual(registry.find("nothing*"), []);
    assert.throws(() => registry.find("***"), RingKernelError);
  });

  test("find results belong to the caller", () => {
    const registry = new ActorRegistry<number>();
    registry.register("a", 1);
    const found = registry.find("*");
    found[0][1] = 99;
    found.push(["b", 2]);
    assert.equal(registry.get("a"), 1);
    assert.equal(registry.size, 1);
  });

  test("clear removes everything", () => {
    const registry = new ActorRegistry<number>();
    registry.register("a", 1);
    registry.register("b", 2);
    registry.clear();
    assert.equal(registry.size, 0);
    assert.deepEqual(registry.names(), []);
  });
});
