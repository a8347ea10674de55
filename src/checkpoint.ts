/**
 * Checkpoints of actor state: the record format (versioned, CRC32-checked,
 * a delta against its parent where that is smaller than the whole
 * snapshot), delta chains, and the store interface with a store on a file
 * directory ({@linkcode FileCheckpointStore}). The cluster adds a store on
 * JetStream (`rt.cluster.checkpointStore()`).
 *
 * A record, little-endian:
 *
 * | bytes | field |
 * | ----- | ----- |
 * | 4 | magic `"RKCP"` |
 * | 2 | format version ({@linkcode CHECKPOINT_VERSION}) |
 * | 1 | kind: 0 full, 1 delta |
 * | 1 | reserved (0) |
 * | 8 | sequence: messages the actor had handled (since its first launch) |
 * | 8 | id (random) |
 * | 8 | parent id (0 for none; a delta's base) |
 * | 8 | creation time, ms since the epoch |
 * | 4 | length of the whole snapshot |
 * | 4 | payload length |
 * | 2 | length of the actor's name (UTF-8) |
 * | n | the name |
 * | m | payload: the snapshot, or the delta |
 * | 4 | CRC32 (IEEE) of every byte before it |
 *
 * A delta is a list of runs against the parent's whole snapshot (cut or
 * zero-extended to this snapshot's length): `skip` (LEB128), `length`
 * (LEB128), then `length` bytes to put there; a zero-length run ends it.
 *
 * @module
 */

import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  InvalidOptionError,
  RingKernelError,
  type RingKernelErrorOptions,
} from "./errors.ts";

/** The record's magic, `"RKCP"`. */
export const CHECKPOINT_MAGIC = 0x50434b52;
/** The record format version this library writes and reads. */
export const CHECKPOINT_VERSION = 1;
/** Deltas in a row after which the next checkpoint is written whole. */
export const MAX_DELTA_CHAIN = 8;

const HEADER_FIXED = 4 + 2 + 1 + 1 + 8 + 8 + 8 + 8 + 4 + 4 + 2;

// ---- CRC32 ------------------------------------------------------------------

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * CRC-32 (IEEE 802.3, the polynomial of zip and PNG) of `bytes`, continuing
 * from `crc` (the CRC of the bytes before, default 0).
 *
 * @example
 * ```ts
 * import { crc32 } from "./checkpoint.ts";
 * crc32(new TextEncoder().encode("123456789")); // 0xcbf43926
 * ```
 */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  }
  return ~c >>> 0;
}

// ---- errors -----------------------------------------------------------------

/** A checkpoint could not be taken, stored, read or restored. */
export class CheckpointError extends RingKernelError {}

/** A checkpoint record failed its checks: magic, lengths or CRC32. */
export class CheckpointCorruptError extends CheckpointError {
  /** Creates the error; `detail` says which check failed. */
  constructor(detail: string, options?: RingKernelErrorOptions) {
    super(`corrupt checkpoint: ${detail}`, options);
  }
}

/** A checkpoint record was written in a format version this library does not read. */
export class CheckpointVersionError extends CheckpointError {
  /** The record's version. */
  readonly version: number;
  /** Creates the error for a record of `version`. */
  constructor(version: number) {
    super(
      `checkpoint format version ${version} is not supported (this library reads version ${CHECKPOINT_VERSION})`,
    );
    this.version = version;
  }
}

/** A store holds no checkpoint of an actor (or not the one asked for). */
export class CheckpointNotFoundError extends CheckpointError {
  /** The actor. */
  readonly actor: string;
  /** The id asked for, if any. */
  readonly id: string | undefined;
  /** Creates the error. */
  constructor(actor: string, id?: string) {
    super(
      id === undefined
        ? `no checkpoint of actor "${actor}" in the store`
        : `checkpoint ${id} of actor "${actor}" is not in the store`,
    );
    this.actor = actor;
    this.id = id;
  }
}

// ---- records ----------------------------------------------------------------

/** A checkpoint record, decoded. */
export interface CheckpointRecord {
  /** The record's id (16 hex digits). */
  readonly id: string;
  /** The parent's id (a delta's base; a full record may name one too), or `undefined`. */
  readonly parentId: string | undefined;
  /** `"full"`: the payload is the snapshot; `"delta"`: runs against the parent. */
  readonly kind: "full" | "delta";
  /** The actor's name. */
  readonly actor: string;
  /** Messages the actor had handled when it was taken (since its first launch). */
  readonly sequence: bigint;
  /** When it was taken, ms since the epoch. */
  readonly createdAt: number;
  /** Length of the whole snapshot. */
  readonly snapshotLength: number;
  /** The payload (the snapshot or the delta). */
  readonly payload: Uint8Array;
}

/** What {@linkcode RingKernel.checkpoint} reports. */
export interface CheckpointInfo {
  /** The record's id. */
  readonly id: string;
  /** Its parent's id, if any. */
  readonly parentId: string | undefined;
  /** Whether it was stored whole or as a delta. */
  readonly kind: "full" | "delta";
  /** The actor. */
  readonly actor: string;
  /** Messages the actor had handled (since its first launch). */
  readonly sequence: bigint;
  /** Bytes of the whole snapshot. */
  readonly snapshotBytes: number;
  /** Bytes of the stored record. */
  readonly storedBytes: number;
}

/** A fresh record id: 64 random bits as 16 hex digits (never all zeros). */
export function newCheckpointId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  bytes[0] |= 1;
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function writeId(view: DataView, at: number, id: string | undefined): void {
  view.setBigUint64(at, id === undefined ? 0n : BigInt(`0x${id}`), false);
}

function readId(view: DataView, at: number): string | undefined {
  const value = view.getBigUint64(at, false);
  return value === 0n ? undefined : value.toString(16).padStart(16, "0");
}

/** Encodes a record (header, name, payload, CRC32). */
export function encodeCheckpoint(record: CheckpointRecord): Uint8Array {
  const name = new TextEncoder().encode(record.actor);
  if (name.byteLength > 0xffff) {
    throw new CheckpointError(`actor name too long for a checkpoint`);
  }
  const total = HEADER_FIXED + name.byteLength + record.payload.byteLength + 4;
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, CHECKPOINT_MAGIC, true);
  view.setUint16(4, CHECKPOINT_VERSION, true);
  view.setUint8(6, record.kind === "full" ? 0 : 1);
  view.setUint8(7, 0);
  view.setBigUint64(8, record.sequence, true);
  writeId(view, 16, record.id);
  writeId(view, 24, record.parentId);
  view.setFloat64(32, record.createdAt, true);
  view.setUint32(40, record.snapshotLength, true);
  view.setUint32(44, record.payload.byteLength, true);
  view.setUint16(48, name.byteLength, true);
  bytes.set(name, HEADER_FIXED);
  bytes.set(record.payload, HEADER_FIXED + name.byteLength);
  view.setUint32(total - 4, crc32(bytes.subarray(0, total - 4)), true);
  return bytes;
}

/**
 * Decodes and checks a record. Throws {@linkcode CheckpointCorruptError}
 * for a bad magic, inconsistent lengths or a CRC32 mismatch, and
 * {@linkcode CheckpointVersionError} for another format version.
 */
export function decodeCheckpoint(bytes: Uint8Array): CheckpointRecord {
  if (bytes.byteLength < HEADER_FIXED + 4) {
    throw new CheckpointCorruptError(
      `${bytes.byteLength} bytes is shorter than a record header`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== CHECKPOINT_MAGIC) {
    throw new CheckpointCorruptError("not a checkpoint record (bad magic)");
  }
  const version = view.getUint16(4, true);
  if (version !== CHECKPOINT_VERSION) throw new CheckpointVersionError(version);
  const nameLength = view.getUint16(48, true);
  const payloadLength = view.getUint32(44, true);
  const total = HEADER_FIXED + nameLength + payloadLength + 4;
  if (total !== bytes.byteLength) {
    throw new CheckpointCorruptError(
      `the header announces ${total} bytes, the record has ${bytes.byteLength}`,
    );
  }
  const stored = view.getUint32(total - 4, true);
  const computed = crc32(bytes.subarray(0, total - 4));
  if (stored !== computed) {
    throw new CheckpointCorruptError(
      `CRC32 mismatch (stored 0x${stored.toString(16)}, computed 0x${
        computed.toString(16)
      })`,
    );
  }
  const kind = view.getUint8(6);
  if (kind > 1) throw new CheckpointCorruptError(`unknown kind ${kind}`);
  const id = readId(view, 16);
  if (id === undefined) throw new CheckpointCorruptError("a zero id");
  const parentId = readId(view, 24);
  if (kind === 1 && parentId === undefined) {
    throw new CheckpointCorruptError("a delta without a parent");
  }
  return {
    id,
    parentId,
    kind: kind === 0 ? "full" : "delta",
    sequence: view.getBigUint64(8, true),
    createdAt: view.getFloat64(32, true),
    snapshotLength: view.getUint32(40, true),
    actor: new TextDecoder().decode(
      bytes.subarray(HEADER_FIXED, HEADER_FIXED + nameLength),
    ),
    payload: bytes.slice(
      HEADER_FIXED + nameLength,
      HEADER_FIXED + nameLength + payloadLength,
    ),
  };
}

// ---- deltas -----------------------------------------------------------------

function pushLeb(out: number[], value: number): void {
  while (value >= 0x80) {
    out.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
}

/**
 * The runs that turn `base` into `next` (see the module's documentation),
 * or `undefined` as soon as they would not be smaller than `next` itself.
 */
export function encodeDelta(
  base: Uint8Array,
  next: Uint8Array,
): Uint8Array | undefined {
  const out: number[] = [];
  let last = 0;
  let i = 0;
  const n = next.byteLength;
  while (i < n) {
    if (i < base.byteLength && base[i] === next[i]) {
      i++;
      continue;
    }
    // A run of changed bytes; equal stretches shorter than 4 bytes stay inside it.
    let end = i + 1;
    let same = 0;
    while (end < n) {
      const equal = end < base.byteLength && base[end] === next[end];
      end++;
      if (!equal) same = 0;
      else if (++same >= 4) break;
    }
    end -= same;
    pushLeb(out, i - last);
    pushLeb(out, end - i);
    for (let k = i; k < end; k++) out.push(next[k]);
    if (out.length >= n) return undefined;
    last = end;
    i = end;
  }
  pushLeb(out, 0);
  pushLeb(out, 0);
  if (out.length >= n) return undefined;
  return Uint8Array.from(out);
}

/**
 * Applies `delta` to `base`; the result is `length` bytes long. Throws
 * {@linkcode CheckpointCorruptError} for runs that do not fit.
 */
export function applyDelta(
  base: Uint8Array,
  delta: Uint8Array,
  length: number,
): Uint8Array {
  const out = new Uint8Array(length);
  out.set(base.subarray(0, Math.min(length, base.byteLength)));
  let p = 0;
  const leb = (): number => {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (p >= delta.byteLength) {
        throw new CheckpointCorruptError("a delta ends inside a run header");
      }
      const b = delta[p++];
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return value;
      scale *= 128;
    }
  };
  let at = 0;
  for (;;) {
    const skip = leb();
    const count = leb();
    if (count === 0) break;
    at += skip;
    if (at + count > length || p + count > delta.byteLength) {
      throw new CheckpointCorruptError("a delta run goes past the snapshot");
    }
    out.set(delta.subarray(p, p + count), at);
    p += count;
    at += count;
  }
  return out;
}

// ---- stores -----------------------------------------------------------------

/**
 * Where checkpoint records are kept. Records are opaque bytes to a store
 * (they check themselves); `latest` is the one put last for the actor.
 */
export interface CheckpointStore {
  /** Stores `record` (encoded) as `actor`'s checkpoint `id`, and makes it the latest. */
  put(actor: string, id: string, record: Uint8Array): Promise<void>;
  /** The record `id` of `actor`, or `undefined`. */
  get(actor: string, id: string): Promise<Uint8Array | undefined>;
  /** The latest record of `actor`, or `undefined`. */
  latest(actor: string): Promise<Uint8Array | undefined>;
}

/** A snapshot rebuilt from a store: the newest record and the whole snapshot. */
export interface LoadedCheckpoint {
  /** The record the snapshot is of (full or delta). */
  readonly record: CheckpointRecord;
  /** The whole snapshot. */
  readonly snapshot: Uint8Array;
  /** How many records were read (1 for a full record). */
  readonly chain: number;
}

/**
 * Reads `actor`'s checkpoint `id` (default: the latest) from `store` and
 * rebuilds its whole snapshot through its chain of deltas. Throws
 * {@linkcode CheckpointNotFoundError} when a record is missing, and the
 * errors of {@linkcode decodeCheckpoint}.
 */
export async function loadCheckpoint(
  store: CheckpointStore,
  actor: string,
  id?: string,
): Promise<LoadedCheckpoint> {
  const first = id === undefined
    ? await store.latest(actor)
    : await store.get(actor, id);
  if (first === undefined) throw new CheckpointNotFoundError(actor, id);
  const top = decodeCheckpoint(first);
  const chain: CheckpointRecord[] = [top];
  let record = top;
  while (record.kind === "delta") {
    if (chain.length > 1024) {
      throw new CheckpointCorruptError(`a delta chain of ${actor} loops`);
    }
    const bytes = await store.get(actor, record.parentId!);
    if (bytes === undefined) {
      throw new CheckpointNotFoundError(actor, record.parentId);
    }
    record = decodeCheckpoint(bytes);
    chain.push(record);
  }
  let snapshot = record.payload;
  for (let i = chain.length - 2; i >= 0; i--) {
    snapshot = applyDelta(snapshot, chain[i].payload, chain[i].snapshotLength);
  }
  if (snapshot.byteLength !== top.snapshotLength) {
    throw new CheckpointCorruptError(
      `the snapshot has ${snapshot.byteLength} bytes, the record announces ${top.snapshotLength}`,
    );
  }
  return { record: top, snapshot, chain: chain.length };
}

/** The base a writer diffs against: the last record it wrote or read. */
export interface CheckpointBase {
  /** Its id. */
  readonly id: string;
  /** Its whole snapshot. */
  readonly snapshot: Uint8Array;
  /** Deltas in a row up to it (0 for a full record). */
  readonly depth: number;
}

/**
 * Builds the record of a new checkpoint: a delta against `base` when that
 * is smaller and the chain is shorter than {@linkcode MAX_DELTA_CHAIN},
 * otherwise whole. Returns the encoded record and the next base.
 */
export function buildCheckpoint(init: {
  actor: string;
  sequence: bigint;
  snapshot: Uint8Array;
  base: CheckpointBase | undefined;
}): { record: CheckpointRecord; bytes: Uint8Array; base: CheckpointBase } {
  const { actor, sequence, snapshot, base } = init;
  const delta = base !== undefined && base.depth < MAX_DELTA_CHAIN
    ? encodeDelta(base.snapshot, snapshot)
    : undefined;
  const record: CheckpointRecord = {
    id: newCheckpointId(),
    parentId: base?.id,
    kind: delta === undefined ? "full" : "delta",
    actor,
    sequence,
    createdAt: Date.now(),
    snapshotLength: snapshot.byteLength,
    payload: delta ?? snapshot,
  };
  return {
    record,
    bytes: encodeCheckpoint(record),
    base: {
      id: record.id,
      snapshot,
      depth: delta === undefined ? 0 : base!.depth + 1,
    },
  };
}

/** Escapes an actor name into one path segment (`%xx` for anything but `[A-Za-z0-9_.-]`). */
function fileToken(name: string): string {
  return [...new TextEncoder().encode(name)].map((b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9_-]/.test(c) ? c : `%${b.toString(16).padStart(2, "0")}`;
  }).join("");
}

/**
 * A {@linkcode CheckpointStore} on a directory: `<dir>/<actor>/<id>.rkcp`
 * for each record and `<dir>/<actor>/latest` naming the latest, each
 * written to a temporary file and renamed into place (a reader sees a whole
 * file or the previous one).
 */
export class FileCheckpointStore implements CheckpointStore {
  /** The directory. */
  readonly directory: string;

  /** A store in `directory` (created when first written). */
  constructor(directory: string | URL) {
    this.directory = typeof directory === "string"
      ? directory
      : decodeURIComponent(directory.pathname);
  }

  #dir(actor: string): string {
    return join(this.directory, fileToken(actor));
  }

  async #write(path: string, data: Uint8Array | string): Promise<void> {
    const temporary = `${path}.${newCheckpointId()}.tmp`;
    await writeFile(temporary, data);
    await rename(temporary, path);
  }

  /** See {@linkcode CheckpointStore.put}. */
  async put(actor: string, id: string, record: Uint8Array): Promise<void> {
    checkId(id);
    const dir = this.#dir(actor);
    await mkdir(dir, { recursive: true });
    await this.#write(join(dir, `${id}.rkcp`), record);
    await this.#write(join(dir, "latest"), id);
  }

  /** See {@linkcode CheckpointStore.get}. */
  async get(actor: string, id: string): Promise<Uint8Array | undefined> {
    checkId(id);
    try {
      return new Uint8Array(
        await readFile(join(this.#dir(actor), `${id}.rkcp`)),
      );
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") return undefined;
      throw error;
    }
  }

  /** See {@linkcode CheckpointStore.latest}. */
  async latest(actor: string): Promise<Uint8Array | undefined> {
    let id: string;
    try {
      id = (await readFile(join(this.#dir(actor), "latest"), "utf8")).trim();
    } catch (error) {
      if ((error as { code?: string }).code === "ENOENT") return undefined;
      throw error;
    }
    return await this.get(actor, id);
  }
}

/** Refuses an id that is not 16 hex digits. */
export function checkId(id: string): void {
  if (!/^[0-9a-f]{16}$/.test(id)) {
    throw new CheckpointError(`"${id}" is not a checkpoint id (16 hex digits)`);
  }
}

/**
 * A {@linkcode CheckpointStore} in memory (one process): for tests, and for
 * handing one record to a launch (`restoreFrom`).
 */
export class MemoryCheckpointStore implements CheckpointStore {
  readonly #records = new Map<string, Map<string, Uint8Array>>();
  readonly #latest = new Map<string, string>();

  /** See {@linkcode CheckpointStore.put}. */
  put(actor: string, id: string, record: Uint8Array): Promise<void> {
    checkId(id);
    let records = this.#records.get(actor);
    if (records === undefined) this.#records.set(actor, records = new Map());
    records.set(id, record.slice());
    this.#latest.set(actor, id);
    return Promise.resolve();
  }

  /** See {@linkcode CheckpointStore.get}. */
  get(actor: string, id: string): Promise<Uint8Array | undefined> {
    return Promise.resolve(this.#records.get(actor)?.get(id)?.slice());
  }

  /** See {@linkcode CheckpointStore.latest}. */
  latest(actor: string): Promise<Uint8Array | undefined> {
    const id = this.#latest.get(actor);
    return id === undefined ? Promise.resolve(undefined) : this.get(actor, id);
  }
}

/** Options of {@linkcode RingKernel.checkpoint}. */
export interface CheckpointOptions {
  /** Where to store the record. */
  store: CheckpointStore;
  /**
   * How long the actor may take to pause and answer with its snapshot, in
   * ms (default 10 000): past it the checkpoint fails with `TimeoutError`
   * and the actor runs on.
   */
  timeoutMs?: number;
  /** Aborting rejects with `signal.reason` (the actor runs on). */
  signal?: AbortSignal;
}

/**
 * Where a launch restores its actor's state from (`launch(name, { restoreFrom })`):
 * a store (its latest checkpoint of the name) or a store and a record id.
 */
export type RestoreFrom = CheckpointStore | {
  /** The store. */
  readonly store: CheckpointStore;
  /** The record to restore (default: the latest of the actor's name). */
  readonly id?: string;
};

/** Whether `value` looks like a {@linkcode CheckpointStore}. */
export function isCheckpointStore(value: unknown): value is CheckpointStore {
  if (typeof value !== "object" || value === null) return false;
  const s = value as Record<string, unknown>;
  return typeof s.put === "function" && typeof s.get === "function" &&
    typeof s.latest === "function";
}

/** Checks `restoreFrom`; returns the store and id, or throws `InvalidOptionError`. */
export function checkRestoreFrom(
  value: unknown,
): { store: CheckpointStore; id: string | undefined } | undefined {
  if (value === undefined) return undefined;
  if (isCheckpointStore(value)) return { store: value, id: undefined };
  const o = value as { store?: unknown; id?: unknown };
  if (
    typeof value === "object" && value !== null && isCheckpointStore(o.store) &&
    (o.id === undefined ||
      (typeof o.id === "string" && /^[0-9a-f]{16}$/.test(o.id)))
  ) return { store: o.store, id: o.id as string | undefined };
  throw new InvalidOptionError(
    "restoreFrom",
    value,
    "a CheckpointStore, or { store, id? } (id: 16 hex digits)",
  );
}

/**
 * Checkpoints a launch keeps of its actor (`launch(name, { checkpoint })`):
 * the store its restarts restore from, and when to take them by itself.
 */
export interface CheckpointPolicy {
  /**
   * Where checkpoints of the actor go: those taken by the policy, and
   * those asked for with `rt.checkpoint(name, { store })` into it. A
   * restart after a crash restores the latest record of the actor's name in
   * this store (running `restore` instead of `init`).
   */
  store: CheckpointStore;
  /**
   * Take a checkpoint once this many messages (an integer ≥ 1) were
   * handled since the last one (looked at every 25 ms, or `everyMs` when
   * shorter). Default: none.
   */
  everyMessages?: number;
  /**
   * Take a checkpoint this often, in ms (≥ 1), when messages were handled
   * since the last one. Default: none.
   */
  everyMs?: number;
  /**
   * Deadline of each checkpoint the policy takes, and of reading the latest
   * record at a restart, in ms (default 10 000).
   */
  timeoutMs?: number;
}

/** A {@linkcode CheckpointPolicy} checked, with its defaults. */
export interface CheckedCheckpointPolicy {
  /** The store. */
  readonly store: CheckpointStore;
  /** See {@linkcode CheckpointPolicy.everyMessages}. */
  readonly everyMessages: number | undefined;
  /** See {@linkcode CheckpointPolicy.everyMs}. */
  readonly everyMs: number | undefined;
  /** See {@linkcode CheckpointPolicy.timeoutMs}. */
  readonly timeoutMs: number;
}

/** Checks a launch's `checkpoint` option; throws `InvalidOptionError`. */
export function checkCheckpointPolicy(
  value: unknown,
): CheckedCheckpointPolicy | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "object" || value === null) {
    throw new InvalidOptionError(
      "checkpoint",
      value,
      "{ store, everyMessages?, everyMs?, timeoutMs? }",
    );
  }
  const o = value as CheckpointPolicy;
  if (!isCheckpointStore(o.store)) {
    throw new InvalidOptionError(
      "checkpoint.store",
      o.store,
      "a CheckpointStore (put, get, latest)",
    );
  }
  const positive = (name: string, v: unknown, integer: boolean) => {
    if (v === undefined) return undefined;
    if (
      typeof v !== "number" || !(v >= 1) || v > 2 ** 31 - 1 ||
      (integer && !Number.isInteger(v))
    ) {
      throw new InvalidOptionError(
        `checkpoint.${name}`,
        v,
        integer ? "an integer in 1..2^31-1" : "a number of ms in 1..2^31-1",
      );
    }
    return v;
  };
  return {
    store: o.store,
    everyMessages: positive("everyMessages", o.everyMessages, true),
    everyMs: positive("everyMs", o.everyMs, false),
    timeoutMs: positive("timeoutMs", o.timeoutMs, false) ?? 10_000,
  };
}
