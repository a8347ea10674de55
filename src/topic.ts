/**
 * MQTT topic names, topic filters and a subscription trie.
 *
 * Semantics follow MQTT 3.1.1 / 5.0 (section 4.7):
 * - Levels are separated by `/`. Empty levels are legal: `a//b` has three
 *   levels, `/a` starts with an empty level and `a/` ends with one.
 * - A topic name (what is published) is at least one character, contains no
 *   wildcard (`+`, `#`) and no NUL, is well-formed UTF-16 and encodes to at
 *   most {@linkcode MAX_TOPIC_BYTES} bytes of UTF-8.
 * - In a topic filter (what is subscribed), `+` occupies a whole level and
 *   matches exactly one level (which may be empty); `#` occupies the whole last
 *   level and matches the parent and any number of child levels, so `a/b/#`
 *   matches `a/b`, `a/b/c` and `a/b/c/d`, and `#` alone matches every topic.
 * - Topics that start with `$` (such as `$SYS/...`) are not matched by a filter
 *   whose first level is a wildcard: `#` and `+/x` never match `$SYS/x`, while
 *   `$SYS/#` does.
 *
 * Invalid topics and filters raise {@linkcode InvalidMessageError}.
 *
 * @module
 */

import { InvalidMessageError } from "./errors.ts";

/** Largest topic or filter, in bytes of UTF-8 (the MQTT string limit). */
export const MAX_TOPIC_BYTES = 65535;

const SLASH = 0x2f;
const PLUS = 0x2b;
const HASH = 0x23;
const DOLLAR = 0x24;
/** Up to this many matched values, duplicates are removed by a linear scan. */
const SMALL_MATCH = 16;

/** UTF-8 length of one UTF-16 unit that is not part of a surrogate pair. */
function utf8Width(code: number): number {
  return code < 0x80 ? 1 : code < 0x800 ? 2 : 3;
}

/**
 * Scans a topic name or filter once and returns what is wrong with it, or
 * `undefined` when it is valid.
 */
function problemOf(text: unknown, isFilter: boolean): string | undefined {
  if (typeof text !== "string") return `must be a string, got ${typeof text}`;
  const length = text.length;
  if (length === 0) return "must not be empty";
  if (length > MAX_TOPIC_BYTES) {
    return `is longer than ${MAX_TOPIC_BYTES} bytes`;
  }
  let bytes = 0;
  let levelStart = 0;
  for (let i = 0; i < length; i++) {
    const code = text.charCodeAt(i);
    if (code === SLASH) {
      levelStart = i + 1;
      bytes += 1;
      continue;
    }
    if (code === 0) return `contains NUL at index ${i}`;
    if (code === PLUS || code === HASH) {
      const wildcard = code === PLUS ? "+" : "#";
      if (!isFilter) {
        return `contains the wildcard '${wildcard}' at index ${i}; ` +
          "wildcards are only allowed in subscription filters";
      }
      const next = i + 1 === length ? -1 : text.charCodeAt(i + 1);
      if (i !== levelStart || (next !== -1 && next !== SLASH)) {
        return `'${wildcard}' at index ${i} must occupy a whole level`;
      }
      if (code === HASH && next !== -1) {
        return `'#' at index ${i} must be the last level`;
      }
      bytes += 1;
      continue;
    }
    if ((code & 0xfc00) === 0xd800) {
      const low = i + 1 < length ? text.charCodeAt(i + 1) : 0;
      if ((low & 0xfc00) !== 0xdc00) {
        return `contains a lone surrogate at index ${i}`;
      }
      bytes += 4;
      i++;
      continue;
    }
    if ((code & 0xfc00) === 0xdc00) {
      return `contains a lone surrogate at index ${i}`;
    }
    bytes += utf8Width(code);
  }
  if (bytes > MAX_TOPIC_BYTES) {
    return `is ${bytes} bytes of UTF-8, more than ${MAX_TOPIC_BYTES}`;
  }
  return undefined;
}

function quote(text: unknown): string {
  if (typeof text !== "string") return String(text);
  return JSON.stringify(text.length > 80 ? text.slice(0, 77) + "..." : text);
}

/** Whether `topic` is a valid topic name to publish to (see the module doc). */
export function isValidTopic(topic: string): boolean {
  return problemOf(topic, false) === undefined;
}

/** Whether `filter` is a valid subscription filter (see the module doc). */
export function isValidFilter(filter: string): boolean {
  return problemOf(filter, true) === undefined;
}

/**
 * Checks a topic name to publish to.
 *
 * @throws {InvalidMessageError} when it is empty, contains `+`, `#` or NUL, is
 * not well-formed UTF-16, or is longer than {@linkcode MAX_TOPIC_BYTES}.
 */
export function validateTopic(topic: string): void {
  const problem = problemOf(topic, false);
  if (problem !== undefined) {
    throw new InvalidMessageError(`invalid topic ${quote(topic)}: ${problem}`);
  }
}

/**
 * Checks a subscription filter.
 *
 * @throws {InvalidMessageError} when it is empty, contains NUL, uses `+` or
 * `#` other than as a whole level, has `#` before the last level, is not
 * well-formed UTF-16, or is longer than {@linkcode MAX_TOPIC_BYTES}.
 */
export function validateFilter(filter: string): void {
  const problem = problemOf(filter, true);
  if (problem !== undefined) {
    throw new InvalidMessageError(
      `invalid topic filter ${quote(filter)}: ${problem}`,
    );
  }
}

/**
 * Whether the subscription `filter` matches the published `topic`, with MQTT
 * semantics (see the module doc, including the `$` rule).
 *
 * @throws {InvalidMessageError} when either argument is invalid.
 */
export function topicMatches(filter: string, topic: string): boolean {
  validateFilter(filter);
  validateTopic(topic);
  const filterLength = filter.length;
  const topicLength = topic.length;
  if (topic.charCodeAt(0) === DOLLAR) {
    const first = filter.charCodeAt(0);
    if (first === PLUS || first === HASH) return false;
  }
  let fi = 0;
  let ti = 0;
  while (true) {
    // fi and ti are at the start of a level in the filter and the topic.
    const head = filter.charCodeAt(fi);
    if (head === HASH) return true;
    let fEnd = filter.indexOf("/", fi);
    if (fEnd === -1) fEnd = filterLength;
    let tEnd = topic.indexOf("/", ti);
    if (tEnd === -1) tEnd = topicLength;
    if (!(head === PLUS && fEnd === fi + 1)) {
      if (fEnd - fi !== tEnd - ti) return false;
      for (let k = 0; k < fEnd - fi; k++) {
        if (filter.charCodeAt(fi + k) !== topic.charCodeAt(ti + k)) {
          return false;
        }
      }
    }
    const filterDone = fEnd === filterLength;
    const topicDone = tEnd === topicLength;
    if (filterDone) return topicDone;
    fi = fEnd + 1;
    ti = tEnd + 1;
    // The topic ran out: only a final "#" (matching the parent) remains valid.
    if (topicDone) {
      return fi === filterLength - 1 && filter.charCodeAt(fi) === HASH;
    }
  }
}

class TrieNode<T> {
  children: Map<string, TrieNode<T>> | undefined = undefined;
  plus: TrieNode<T> | undefined = undefined;
  /** Values subscribed with a filter ending in `#` at this node. */
  hash: Set<T> | undefined = undefined;
  /** Values subscribed with a filter ending exactly at this node. */
  exact: Set<T> | undefined = undefined;

  isEmpty(): boolean {
    return this.children === undefined && this.plus === undefined &&
      this.hash === undefined && this.exact === undefined;
  }
}

/**
 * A trie of subscription filters mapping each filter to a set of values, for
 * fast matching of published topics against many subscriptions.
 *
 * A value may be added under several filters; {@linkcode TopicTree.match}
 * returns it once even when several of its filters match.
 *
 * @typeParam T The values stored (for instance subscription records).
 */
export class TopicTree<T> {
  #root = new TrieNode<T>();
  #size = 0;

  /** Number of (filter, value) pairs stored. */
  get size(): number {
    return this.#size;
  }

  /**
   * Adds `value` under `filter`.
   *
   * @returns `false` when that pair was already present (nothing changes).
   * @throws {InvalidMessageError} when `filter` is invalid.
   */
  add(filter: string, value: T): boolean {
    validateFilter(filter);
    let node = this.#root;
    const levels = filter.split("/");
    const last = levels.length - 1;
    for (let i = 0; i < levels.length; i++) {
      const level = levels[i];
      if (level === "#") {
        node.hash ??= new Set();
        return this.#insert(node.hash, value);
      }
      if (level === "+") {
        node = node.plus ??= new TrieNode();
      } else {
        node.children ??= new Map();
        let child = node.children.get(level);
        if (child === undefined) {
          child = new TrieNode();
          node.children.set(level, child);
        }
        node = child;
      }
      if (i === last) {
        node.exact ??= new Set();
        return this.#insert(node.exact, value);
      }
    }
    return false; // unreachable: a valid filter has at least one level
  }

  #insert(set: Set<T>, value: T): boolean {
    if (set.has(value)) return false;
    set.add(value);
    this.#size++;
    return true;
  }

  /**
   * Removes `value` from under `filter`, pruning nodes left empty.
   *
   * @returns whether the pair was present.
   * @throws {InvalidMessageError} when `filter` is invalid.
   */
  remove(filter: string, value: T): boolean {
    validateFilter(filter);
    const levels = filter.split("/");
    const path: TrieNode<T>[] = [this.#root];
    let node: TrieNode<T> | undefined = this.#root;
    let removed = false;
    for (let i = 0; i < levels.length && node !== undefined; i++) {
      const level = levels[i];
      if (level === "#") {
        removed = node.hash?.delete(value) ?? false;
        if (node.hash?.size === 0) node.hash = undefined;
        break;
      }
      node = level === "+" ? node.plus : node.children?.get(level);
      if (node === undefined) break;
      path.push(node);
      if (i === levels.length - 1) {
        removed = node.exact?.delete(value) ?? false;
        if (node.exact?.size === 0) node.exact = undefined;
      }
    }
    if (!removed) return false;
    this.#size--;
    // Prune empty nodes from the leaf upwards; path[k] is the child of path[k-1]
    // reached through levels[k-1].
    for (let k = path.length - 1; k > 0; k--) {
      const child = path[k];
      if (!child.isEmpty()) break;
      const parent = path[k - 1];
      const level = levels[k - 1];
      if (level === "+") {
        parent.plus = undefined;
      } else {
        parent.children!.delete(level);
        if (parent.children!.size === 0) parent.children = undefined;
      }
    }
    return true;
  }

  /**
   * Whether `value` is stored under `filter`.
   *
   * @throws {InvalidMessageError} when `filter` is invalid.
   */
  has(filter: string, value: T): boolean {
    validateFilter(filter);
    const levels = filter.split("/");
    let node: TrieNode<T> | undefined = this.#root;
    for (let i = 0; i < levels.length; i++) {
      const level = levels[i];
      if (level === "#") return node.hash?.has(value) ?? false;
      node = level === "+" ? node.plus : node.children?.get(level);
      if (node === undefined) return false;
    }
    return node.exact?.has(value) ?? false;
  }

  /**
   * Every value whose filter matches `topic`, each value once.
   *
   * @returns a fresh array (in no particular order) that the caller may keep.
   * @throws {InvalidMessageError} when `topic` is not a valid topic name.
   */
  match(topic: string): T[] {
    validateTopic(topic);
    const levels = topic.split("/");
    const hits: Set<T>[] = [];
    const root = this.#root;
    // MQTT: a leading wildcard does not match a topic that starts with "$".
    if (topic.charCodeAt(0) === DOLLAR) {
      const child = root.children?.get(levels[0]);
      if (child !== undefined) collect(child, levels, 1, hits);
    } else {
      collect(root, levels, 0, hits);
    }
    if (hits.length === 0) return [];
    if (hits.length === 1) return Array.from(hits[0]);
    let total = 0;
    for (let i = 0; i < hits.length; i++) total += hits[i].size;
    if (total > SMALL_MATCH) {
      const unique = new Set<T>(hits[0]);
      for (let i = 1; i < hits.length; i++) {
        for (const value of hits[i]) unique.add(value);
      }
      return Array.from(unique);
    }
    // Few values: a linear scan dedupes faster than building a Set.
    const out = Array.from(hits[0]);
    for (let i = 1; i < hits.length; i++) {
      for (const value of hits[i]) {
        if (!out.includes(value)) out.push(value);
      }
    }
    return out;
  }

  /** Removes every filter and value. */
  clear(): void {
    this.#root = new TrieNode();
    this.#size = 0;
  }
}

/** Gathers the value sets of every node matching `levels[index...]` under `node`. */
function collect<T>(
  node: TrieNode<T>,
  levels: string[],
  index: number,
  hits: Set<T>[],
): void {
  if (node.hash !== undefined) hits.push(node.hash);
  if (index === levels.length) {
    if (node.exact !== undefined) hits.push(node.exact);
    return;
  }
  const child = node.children?.get(levels[index]);
  if (child !== undefined) collect(child, levels, index + 1, hits);
  if (node.plus !== undefined) collect(node.plus, levels, index + 1, hits);
}
