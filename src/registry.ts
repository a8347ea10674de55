/**
 * A registry of actors by name, with glob lookup.
 *
 * Names are hierarchical with `/` as separator (`pool/worker-3`). A valid
 * name is 1 to {@linkcode MAX_ACTOR_NAME_LENGTH} characters, has no empty
 * segment (no leading, trailing or doubled `/`), and contains no whitespace,
 * no control character and no glob character (`*`, `?`).
 *
 * Glob patterns (see {@linkcode globMatches}): `?` matches one character other
 * than `/`, `*` any run of characters other than `/`, `**` any run of
 * characters including `/`. When `**` is a whole segment with another segment
 * after it, it also matches zero segments: the pattern made of the segments
 * `pool`, `**` and `x` matches `pool/x` as well as `pool/a/b/x`.
 *
 * @module
 */

import { InvalidStateError, RingKernelError } from "./errors.ts";

/** Longest actor name accepted, in UTF-16 code units. */
export const MAX_ACTOR_NAME_LENGTH = 255;

const SLASH = 0x2f;
const STAR = 0x2a;
const QUESTION = 0x3f;

/** Why `text` is not a valid name (or pattern, when `isPattern`), or `undefined`. */
function problemOf(text: unknown, isPattern: boolean): string | undefined {
  if (typeof text !== "string") return `must be a string, got ${typeof text}`;
  const length = text.length;
  if (length === 0) return "must not be empty";
  if (length > MAX_ACTOR_NAME_LENGTH) {
    return `is longer than ${MAX_ACTOR_NAME_LENGTH} characters`;
  }
  if (text.charCodeAt(0) === SLASH || text.charCodeAt(length - 1) === SLASH) {
    return "must not start or end with '/'";
  }
  let stars = 0;
  for (let i = 0; i < length; i++) {
    const code = text.charCodeAt(i);
    if (code === STAR) {
      if (!isPattern) return `contains the glob character '*' at index ${i}`;
      if (++stars > 2) return `has more than two '*' in a row at index ${i}`;
      continue;
    }
    stars = 0;
    if (code === QUESTION && !isPattern) {
      return `contains the glob character '?' at index ${i}`;
    }
    if (code === SLASH && text.charCodeAt(i + 1) === SLASH) {
      return `has an empty segment at index ${i + 1}`;
    }
    if (code <= 0x20 || code === 0x7f || (code >= 0x80 && code <= 0x9f)) {
      return `contains a whitespace or control character at index ${i}`;
    }
    if (
      code === 0x2028 || code === 0x2029 || code === 0xa0 || code === 0xfeff
    ) {
      return `contains a whitespace character at index ${i}`;
    }
  }
  return undefined;
}

/** Whether `name` is a valid actor name (see the module doc). */
export function isValidActorName(name: string): boolean {
  return problemOf(name, false) === undefined;
}

/**
 * Checks an actor name.
 *
 * @throws {RingKernelError} when the name is invalid (see the module doc).
 */
export function validateActorName(name: string): void {
  const problem = problemOf(name, false);
  if (problem !== undefined) {
    throw new RingKernelError(`invalid actor name ${show(name)}: ${problem}`);
  }
}

function show(text: unknown): string {
  return typeof text === "string" ? JSON.stringify(text) : String(text);
}

const REGEXP_SPECIAL = /[\\^$.+()[\]{}|]/g;
const compiledGlobs = new Map<string, RegExp>();
const GLOB_CACHE_LIMIT = 128;

/** Translates a glob into an anchored regular expression (cached). */
function compileGlob(glob: string): RegExp {
  const cached = compiledGlobs.get(glob);
  if (cached !== undefined) return cached;
  const problem = problemOf(glob, true);
  if (problem !== undefined) {
    throw new RingKernelError(
      `invalid actor name pattern ${show(glob)}: ${problem}`,
    );
  }
  let source = "^";
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i];
    if (char === "*") {
      if (glob[i + 1] === "*") {
        const wholeSegment = (i === 0 || glob[i - 1] === "/") &&
          glob[i + 2] === "/";
        if (wholeSegment) {
          source += "(?:.*/)?"; // zero or more whole segments
          i += 2;
        } else {
          source += ".*";
          i += 1;
        }
      } else {
        source += "[^/]*";
      }
    } else if (char === "?") {
      source += "[^/]";
    } else {
      source += char.replace(REGEXP_SPECIAL, "\\$&");
    }
  }
  const regexp = new RegExp(source + "$", "s");
  if (compiledGlobs.size >= GLOB_CACHE_LIMIT) {
    compiledGlobs.delete(compiledGlobs.keys().next().value!);
  }
  compiledGlobs.set(glob, regexp);
  return regexp;
}

/**
 * Whether the actor `name` matches the glob `pattern` (see the module doc).
 *
 * @throws {RingKernelError} when `pattern` is not a valid pattern.
 */
export function globMatches(pattern: string, name: string): boolean {
  return compileGlob(pattern).test(name);
}

/**
 * Actors (or anything else) by unique name. Iteration and lookups by pattern
 * return entries in registration order.
 *
 * @typeParam T The registered value (an actor handle, a queue, ...).
 */
export class ActorRegistry<T> implements Iterable<[string, T]> {
  #entries = new Map<string, T>();

  /** Number of registered names. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Registers `value` under `name`.
   *
   * @throws {RingKernelError} when `name` is invalid.
   * @throws {InvalidStateError} when `name` is already registered.
   */
  register(name: string, value: T): void {
    validateActorName(name);
    if (this.#entries.has(name)) {
      throw new InvalidStateError(
        `register actor ${JSON.stringify(name)}`,
        "registered",
        "the name is already in use; unregister it first",
      );
    }
    this.#entries.set(name, value);
  }

  /**
   * Removes `name`.
   *
   * @returns whether it was registered.
   */
  unregister(name: string): boolean {
    return this.#entries.delete(name);
  }

  /** The value registered under `name`, or `undefined`. */
  get(name: string): T | undefined {
    return this.#entries.get(name);
  }

  /** Whether `name` is registered. */
  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /**
   * Every entry whose name matches the glob `pattern`, in registration order.
   *
   * @throws {RingKernelError} when `pattern` is not a valid pattern.
   */
  find(pattern: string): Array<[name: string, value: T]> {
    const regexp = compileGlob(pattern);
    const found: Array<[string, T]> = [];
    for (const entry of this.#entries) {
      if (regexp.test(entry[0])) found.push([entry[0], entry[1]]);
    }
    return found;
  }

  /** Every registered name, in registration order. */
  names(): string[] {
    return Array.from(this.#entries.keys());
  }

  /** Every registered value, in registration order. */
  values(): T[] {
    return Array.from(this.#entries.values());
  }

  /** Removes every entry. */
  clear(): void {
    this.#entries.clear();
  }

  /** Iterates `[name, value]` pairs in registration order. */
  [Symbol.iterator](): IterableIterator<[string, T]> {
    return this.#entries.entries();
  }
}
