import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  isValidFilter,
  isValidTopic,
  MAX_TOPIC_BYTES,
  topicMatches,
  TopicTree,
  validateFilter,
  validateTopic,
} from "../src/topic.ts";
import { InvalidMessageError } from "../src/errors.ts";

/** [filter, topic, expected match]. */
const MATCH_TABLE: ReadonlyArray<readonly [string, string, boolean]> = [
  // Exact levels.
  ["a", "a", true],
  ["a", "b", false],
  ["a/b", "a/b", true],
  ["a/b", "a/c", false],
  ["a/b", "a", false],
  ["a", "a/b", false],
  ["ab", "a", false],
  ["a", "ab", false],
  // "+" matches exactly one level, including an empty one.
  ["a/+", "a/b", true],
  ["a/+", "a/b/c", false],
  ["a/+", "a", false],
  ["a/+", "a/", true],
  ["+", "a", true],
  ["+", "/", false],
  ["+/+", "/", true],
  ["+/+", "a/b", true],
  ["+/+", "a", false],
  ["+/b", "a/b", true],
  ["+/b", "/b", true],
  ["a/+/c", "a/b/c", true],
  ["a/+/c", "a//c", true],
  ["a/+/c", "a/b/d", false],
  // "#" matches the parent and any number of levels below it.
  ["#", "a", true],
  ["#", "a/b/c", true],
  ["#", "/", true],
  ["#", "/a", true],
  ["a/#", "a", true],
  ["a/#", "a/", true],
  ["a/#", "a/b", true],
  ["a/#", "a/b/c", true],
  ["a/#", "ab", false],
  ["a/#", "b/a", false],
  ["a/b/#", "a/b", true],
  ["a/b/#", "a/b/c/d", true],
  ["a/b/#", "a", false],
  ["+/#", "a", true],
  ["+/#", "a/b/c", true],
  ["a/+/#", "a", false],
  ["a/+/#", "a/b", true],
  // Empty levels and leading or trailing separators are ordinary levels.
  ["a//b", "a//b", true],
  ["a//b", "a/b", false],
  ["a/b", "a//b", false],
  ["/a", "/a", true],
  ["/a", "a", false],
  ["/+", "/a", true],
  ["/#", "/a/b", true],
  ["/#", "a", false],
  ["a/", "a/", true],
  ["a/", "a", false],
  ["/", "/", true],
  // "$" topics are not matched by a leading wildcard.
  ["#", "$SYS", false],
  ["#", "$SYS/uptime", false],
  ["+/uptime", "$SYS/uptime", false],
  ["+", "$SYS", false],
  ["$SYS/#", "$SYS/uptime", true],
  ["$SYS/#", "$SYS", true],
  ["$SYS/+", "$SYS/uptime", true],
  ["a/#", "a/$b", true],
  ["a/+", "a/$b", true],
  // Case and Unicode are compared exactly.
  ["A", "a", false],
  ["caf\u00e9/+", "caf\u00e9/x", true],
  ["\u{1F600}/#", "\u{1F600}/x", true],
];

describe("topicMatches", () => {
  test("has a table of at least 30 cases", () => {
    assert.ok(MATCH_TABLE.length >= 30);
  });

  for (const [filter, topic, expected] of MATCH_TABLE) {
    test(
      `${JSON.stringify(filter)} ${expected ? "matches" : "does not match"} ${
        JSON.stringify(topic)
      }`,
      () => {
        assert.equal(topicMatches(filter, topic), expected);
      },
    );
  }

  test("rejects an invalid filter or topic", () => {
    assert.throws(() => topicMatches("a/#/b", "a"), InvalidMessageError);
    assert.throws(() => topicMatches("a", "a/+"), InvalidMessageError);
  });
});

describe("validateTopic", () => {
  const valid = ["a", "/", "a//b", "/a", "a/", "$SYS/x", "caf\u00e9", " "];
  for (const topic of valid) {
    test(`accepts ${JSON.stringify(topic)}`, () => {
      assert.doesNotThrow(() => validateTopic(topic));
      assert.equal(isValidTopic(topic), true);
    });
  }

  const invalid: ReadonlyArray<readonly [string, RegExp]> = [
    ["", /empty/],
    ["a/+", /wildcard '\+'/],
    ["#", /wildcard '#'/],
    ["a+b", /wildcard/],
    ["a\u0000b", /NUL at index 1/],
    ["a\ud800", /lone surrogate/],
    ["\udc00", /lone surrogate/],
    ["x".repeat(MAX_TOPIC_BYTES + 1), /longer than/],
    ["\u00e9".repeat(40000), /bytes of UTF-8/],
  ];
  for (const [topic, pattern] of invalid) {
    test(`rejects ${JSON.stringify(topic.slice(0, 12))}`, () => {
      assert.throws(() => validateTopic(topic), (error: unknown) => {
        assert.ok(error instanceof InvalidMessageError);
        assert.match(error.message, /^invalid topic /);
        assert.match(error.message, pattern);
        return true;
      });
      assert.equal(isValidTopic(topic), false);
    });
  }

  test("rejects a non-string with a typed error", () => {
    assert.throws(
      () => validateTopic(42 as unknown as string),
      InvalidMessageError,
    );
  });

  test("accepts the longest topic allowed", () => {
    assert.doesNotThrow(() => validateTopic("x".repeat(MAX_TOPIC_BYTES)));
  });
});

describe("validateFilter", () => {
  const valid = ["#", "+", "+/+", "a/#", "a/+/b", "/#", "+/", "a//+", "$SYS/#"];
  for (const filter of valid) {
    test(`accepts ${JSON.stringify(filter)}`, () => {
      assert.doesNotThrow(() => validateFilter(filter));
      assert.equal(isValidFilter(filter), true);
    });
  }

  const invalid: ReadonlyArray<readonly [string, RegExp]> = [
    ["", /empty/],
    ["a/#/b", /must be the last level/],
    ["#/a", /must be the last level/],
    ["a#", /whole level/],
    ["a/b#", /whole level/],
    ["#a", /whole level/],
    ["a+", /whole level/],
    ["+a", /whole level/],
    ["a/+b/c", /whole level/],
    ["++", /whole level/],
    ["a\u0000", /NUL/],
  ];
  for (const [filter, pattern] of invalid) {
    test(`rejects ${JSON.stringify(filter)}`, () => {
      assert.throws(() => validateFilter(filter), (error: unknown) => {
        assert.ok(error instanceof InvalidMessageError);
        assert.match(error.message, /^invalid topic filter /);
        assert.match(error.message, pattern);
        return true;
      });
      assert.equal(isValidFilter(filter), false);
    });
  }
});

describe("TopicTree", () => {
  test("matches the same table as topicMatches", () => {
    const tree = new TopicTree<number>();
    MATCH_TABLE.forEach(([filter], index) => tree.add(filter, index));
    const topics = new Set(MATCH_TABLE.map(([, topic]) => topic));
    for (const topic of topics) {
      const expected = MATCH_TABLE.flatMap(([filter], index) =>
        topicMatches(filter, topic) ? [index] : []
      );
      const actual = tree.match(topic).sort((a, b) => a - b);
      assert.deepEqual(actual, expected, `topic ${JSON.stringify(topic)}`);
    }
  });

  test("returns a value once even when several of its filters match", () => {
    const tree = new TopicTree<string>();
    tree.add("a/#", "x");
    tree.add("a/+", "x");
    tree.add("a/b", "x");
    tree.add("#", "y");
    assert.deepEqual(tree.match("a/b").sort(), ["x", "y"]);
    assert.equal(tree.size, 4);
  });

  test("returns each value once when many values match several filters", () => {
    const tree = new TopicTree<number>();
    for (let value = 0; value < 20; value++) {
      tree.add("a/#", value);
      tree.add("a/+", value);
      tree.add("#", value);
    }
    tree.add("a/b", 99);
    const expected = [...Array.from({ length: 20 }, (_, i) => i), 99];
    assert.deepEqual(tree.match("a/b").sort((x, y) => x - y), expected);
  });

  test("add and remove report whether anything changed", () => {
    const tree = new TopicTree<string>();
    assert.equal(tree.add("a/+", "x"), true);
    assert.equal(tree.add("a/+", "x"), false);
    assert.equal(tree.add("a/+", "y"), true);
    assert.equal(tree.size, 2);
    assert.equal(tree.has("a/+", "x"), true);
    assert.equal(tree.has("a/#", "x"), false);
    assert.equal(tree.remove("a/+", "x"), true);
    assert.equal(tree.remove("a/+", "x"), false);
    assert.equal(tree.remove("a/#", "y"), false);
    assert.equal(tree.remove("zz/top", "y"), false);
    assert.equal(tree.has("a/+", "x"), false);
    assert.equal(tree.size, 1);
    assert.deepEqual(tree.match("a/b"), ["y"]);
  });

  test("removing leaves sibling and parent subscriptions intact", () => {
    const tree = new TopicTree<string>();
    tree.add("a/b/c", "deep");
    tree.add("a/b", "mid");
    tree.add("a/#", "hash");
    tree.add("a/+/c", "plus");
    assert.equal(tree.remove("a/b/c", "deep"), true);
    assert.deepEqual(tree.match("a/b/c").sort(), ["hash", "plus"]);
    assert.deepEqual(tree.match("a/b").sort(), ["hash", "mid"]);
    assert.equal(tree.remove("a/+/c", "plus"), true);
    assert.equal(tree.remove("a/#", "hash"), true);
    assert.deepEqual(tree.match("a/b/c"), []);
    assert.deepEqual(tree.match("a/b"), ["mid"]);
    assert.equal(tree.remove("a/b", "mid"), true);
    assert.equal(tree.size, 0);
    assert.deepEqual(tree.match("a/b"), []);
    // The pruned trie is still usable.
    tree.add("a/b/c", "again");
    assert.deepEqual(tree.match("a/b/c"), ["again"]);
  });

  test("applies the $ rule", () => {
    const tree = new TopicTree<string>();
    tree.add("#", "all");
    tree.add("+/x", "plus");
    tree.add("$SYS/#", "sys");
    assert.deepEqual(tree.match("$SYS/x"), ["sys"]);
    assert.deepEqual(tree.match("SYS/x").sort(), ["all", "plus"]);
  });

  test("returned arrays belong to the caller", () => {
    const tree = new TopicTree<string>();
    tree.add("a", "x");
    const first = tree.match("a");
    first.push("mutated");
    assert.deepEqual(tree.match("a"), ["x"]);
  });

  test("rejects invalid input without changing anything", () => {
    const tree = new TopicTree<string>();
    tree.add("a", "x");
    assert.throws(() => tree.add("a/#/b", "y"), InvalidMessageError);
    assert.throws(() => tree.remove("a+", "x"), InvalidMessageError);
    assert.throws(() => tree.has("", "x"), InvalidMessageError);
    assert.throws(() => tree.match("a/#"), InvalidMessageError);
    assert.equal(tree.size, 1);
    assert.deepEqual(tree.match("a"), ["x"]);
  });

  test("clear removes everything", () => {
    const tree = new TopicTree<string>();
    tree.add("#", "x");
    tree.add("a/b", "y");
    tree.clear();
    assert.equal(tree.size, 0);
    assert.deepEqual(tree.match("a/b"), []);
  });

  test("agrees with topicMatches on random filters and topics", () => {
    // A small deterministic generator keeps the case reproducible.
    let seed = 12345;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const words = ["a", "b", "", "$x"];
    const makeTopic = () => {
      const n = 1 + next(4);
      const topic = Array.from({ length: n }, () => words[next(words.length)])
        .join("/");
      return topic || "/";
    };
    const makeFilter = () => {
      const n = 1 + next(4);
      const levels = Array.from({ length: n }, () => {
        const r = next(6);
        return r === 0 ? "+" : words[next(words.length)];
      });
      if (next(3) === 0) levels.push("#");
      // A single empty level is the empty string, which is not a filter.
      return levels.join("/") || "+";
    };
    const tree = new TopicTree<number>();
    const filters = Array.from({ length: 200 }, makeFilter);
    filters.forEach((filter, index) => tree.add(filter, index));
    let matched = 0;
    for (let round = 0; round < 300; round++) {
      const topic = makeTopic();
      const expected = filters.flatMap((filter, index) =>
        topicMatches(filter, topic) ? [index] : []
      );
      matched += expected.length;
      assert.deepEqual(tree.match(topic).sort((a, b) => a - b), expected);
    }
    // The generator must produce real matches for the comparison to mean much.
    assert.ok(matched > 300, `only ${matched} matches`);
  });
});
