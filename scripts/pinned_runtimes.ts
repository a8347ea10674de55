/**
 * The Deno and Bun releases this repository pins, read from the one file that
 * declares them: `tools/package.json` (what `npm ci --prefix tools` installs).
 * Scripts import them from here; tasks and shell scripts read the same file
 * with `node -p "require('./tools/package.json').devDependencies.deno"`.
 * Where a literal must stay (the README's `npx -y deno@… task test`),
 * `tests/version_pin_test.ts` checks that it matches.
 *
 * ```sh
 * deno run -A scripts/pinned_runtimes.ts   # {"deno":"2.9.6","bun":"1.4.5"}, say
 * ```
 *
 * @module
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root. */
const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** Where the pins are declared, relative to the repository root. */
export const PIN_FILE = "tools/package.json";

/** The pinned releases, as exact versions (`"2.9.6"`). */
export interface PinnedRuntimes {
  /** The Deno release (npm package `deno`). */
  readonly deno: string;
  /** The Bun release (npm package `bun`). */
  readonly bun: string;
}

const EXACT_VERSION = /^\d+\.\d+\.\d+$/;

/**
 * Reads the pins from `tools/package.json` under `root` (default: this
 * repository). Throws when either is missing or is not an exact version.
 */
export function pinnedRuntimes(root: string = ROOT): PinnedRuntimes {
  const path = join(root, PIN_FILE);
  const manifest = JSON.parse(readFileSync(path, "utf8")) as {
    devDependencies?: Record<string, unknown>;
  };
  const pin = (name: string): string => {
    const version = manifest.devDependencies?.[name];
    if (typeof version !== "string" || !EXACT_VERSION.test(version)) {
      throw new Error(
        `${path}: devDependencies.${name} must be an exact version, got ${
          JSON.stringify(version)
        }`,
      );
    }
    return version;
  };
  return { deno: pin("deno"), bun: pin("bun") };
}

if (import.meta.main) {
  console.log(JSON.stringify(pinnedRuntimes()));
}
