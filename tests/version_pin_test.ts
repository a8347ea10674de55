// The Deno and Bun releases are pinned in one place, tools/package.json: the
// files that run them derive the version from it, and the one literal that
// must stay (the README's documented `npx -y deno@… task …` commands) matches
// it.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PIN_FILE, pinnedRuntimes } from "../scripts/pinned_runtimes.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

function read(path: string): string {
  return readFileSync(join(ROOT, path), "utf8");
}

/** Files that start a pinned runtime, and must take its version from the pin file. */
const DERIVED = [
  "deno.json",
  "package.json",
  ".ci/run",
  "scripts/device_prepare.sh",
  "scripts/test_emulated.ts",
];

/** `deno@1.2.3`, `bun@1.2.3`, `@deno/linux-x64-glibc@1.2.3`, `deno_version=1.2.3`. */
const LITERAL_PIN = /\b(?:deno|bun)(?:@|_version=)\d+\.\d+\.\d+|glibc@\d/;

describe("runtime version pins", () => {
  const pins = pinnedRuntimes();

  test("tools/package.json pins exact releases, and its lock file agrees", () => {
    assert.match(pins.deno, /^\d+\.\d+\.\d+$/);
    assert.match(pins.bun, /^\d+\.\d+\.\d+$/);
    const lock = JSON.parse(read("tools/package-lock.json")) as {
      packages: Record<string, { version?: string; devDependencies?: object }>;
    };
    assert.deepEqual(lock.packages[""].devDependencies, {
      bun: pins.bun,
      deno: pins.deno,
    });
    assert.equal(lock.packages["node_modules/deno"]?.version, pins.deno);
    assert.equal(lock.packages["node_modules/bun"]?.version, pins.bun);
  });

  test("the README's npx commands name the pinned Deno", () => {
    const commands = [...read("README.md").matchAll(/npx -y deno@(\S+)/g)];
    assert.ok(commands.length >= 2, "the README documents npx -y deno@… task");
    for (const [command, version] of commands) {
      assert.equal(
        version,
        pins.deno,
        `README.md: "${command}" does not match ${PIN_FILE} (deno ${pins.deno})`,
      );
    }
  });

  test("tasks, scripts and CI take the version from the pin file", () => {
    for (const path of DERIVED) {
      const text = read(path);
      const literal = LITERAL_PIN.exec(text);
      assert.equal(
        literal,
        null,
        `${path} names a release (${literal?.[0]}); read it from ${PIN_FILE}`,
      );
      assert.match(
        text,
        /tools\/package\.json|pinned_runtimes\.ts/,
        `${path} does not read ${PIN_FILE}`,
      );
    }
  });

  test("the shell expression the tasks use reads the pins", {
    skip: spawnSync("node", ["--version"]).status === 0
      ? false
      : "node is not on PATH",
  }, () => {
    for (const name of ["deno", "bun"] as const) {
      const result = spawnSync("node", [
        "-p",
        `require('./tools/package.json').devDependencies.${name}`,
      ], { cwd: ROOT, encoding: "utf8" });
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout.trim(), pins[name]);
    }
  });
});
