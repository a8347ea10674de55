/**
 * A {@linkcode CheckpointStore} on JetStream: the tenant's stream
 * `RK_<tenant>_CHECKPOINTS` keeps each record on its own subject
 * `rk.<tenant>.ckpt.<actor>.<id>` and the latest id on
 * `rk.<tenant>.ckpt.<actor>.head` (one message per subject, file storage):
 * every node of the tenant reads what another wrote, and records survive
 * the servers' restarts. A record must fit the servers' largest message
 * (`max_payload`, 1 MiB by default).
 *
 * Pruning: when a full record is put, the store deletes the actor's records
 * that are not in its newest `keepChains` chains (a chain: a full record
 * and the deltas on it, found through the records' parent ids from the new
 * one; default 1), so the stream holds what a restore may still read. One
 * writer per actor at a time is assumed: a record another writer puts while
 * the store prunes may go.
 *
 * @module
 */

import {
  DiscardPolicy,
  type JetStreamClient,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import {
  checkId,
  type CheckpointStore,
  decodeCheckpoint,
} from "../checkpoint.ts";
import { InvalidOptionError } from "../errors.ts";
import { isStreamNotFound } from "./durable.ts";
import type { Subjects } from "./subjects.ts";

/** Makes sure the tenant's checkpoint stream exists. */
export async function ensureCheckpointStream(
  jsm: JetStreamManager,
  subjects: Subjects,
): Promise<void> {
  try {
    await jsm.streams.info(subjects.checkpointStream);
  } catch (error) {
    if (!isStreamNotFound(error)) throw error;
    try {
      await jsm.streams.add({
        name: subjects.checkpointStream,
        subjects: [subjects.allCheckpoints],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        max_msgs_per_subject: 1,
        discard: DiscardPolicy.Old,
      });
    } catch (addError) {
      if (!/already in use|exists/i.test(String(addError))) throw addError;
    }
  }
}

/** Options of `rt.cluster.checkpointStore()`. */
export interface JetStreamCheckpointStoreOptions {
  /**
   * Chains of records kept per actor (an integer ≥ 1, default 1): when a
   * full record is put, the records of older chains are deleted.
   */
  keepChains?: number;
}

/** Checks `keepChains`; returns it with its default. */
export function checkKeepChains(value: unknown): number {
  if (value === undefined) return 1;
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 1 ||
    value > 1 << 20
  ) {
    throw new InvalidOptionError("keepChains", value, "an integer in 1..2^20");
  }
  return value;
}

/** Checkpoints in the tenant's JetStream stream; get it with `rt.cluster.checkpointStore()`. */
export class JetStreamCheckpointStore implements CheckpointStore {
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #subjects: Subjects;
  readonly #timeoutMs: number;
  /** Chains kept per actor. */
  readonly keepChains: number;

  /** A store on the stream of `subjects`' tenant (it must exist). */
  constructor(init: {
    js: JetStreamClient;
    jsm: JetStreamManager;
    subjects: Subjects;
    timeoutMs: number;
    keepChains?: number;
  }) {
    this.#js = init.js;
    this.#jsm = init.jsm;
    this.#subjects = init.subjects;
    this.#timeoutMs = init.timeoutMs;
    this.keepChains = checkKeepChains(init.keepChains);
  }

  /**
   * See {@linkcode CheckpointStore.put}: the record, then the head; after
   * a full record, the records of chains older than the newest
   * `keepChains` are deleted (see the module's documentation).
   */
  async put(actor: string, id: string, record: Uint8Array): Promise<void> {
    checkId(id);
    const timeout = this.#timeoutMs;
    await this.#js.publish(this.#subjects.checkpoint(actor, id), record, {
      timeout,
    });
    await this.#js.publish(this.#subjects.checkpointHead(actor), id, {
      timeout,
    });
    // Byte 6 of a record is its kind: 0 full.
    if (record.byteLength > 6 && record[6] === 0) {
      await this.#prune(actor, decodeCheckpoint(record).parentId, id);
    }
  }

  /** The ids of the records of `actor` the stream holds. */
  async ids(actor: string): Promise<string[]> {
    const prefix = this.#subjects.checkpoint(actor, "");
    const info = await this.#jsm.streams.info(this.#subjects.checkpointStream, {
      subjects_filter: `${prefix}*`,
    });
    return Object.keys(info.state.subjects ?? {})
      .map((subject) => subject.slice(prefix.length))
      .filter((token) => /^[0-9a-f]{16}$/.test(token));
  }

  /**
   * Deletes the records of `actor` outside the newest `keepChains` chains:
   * the one of the full record `id` just put, and those found from its
   * parent `parentId` backwards.
   */
  async #prune(
    actor: string,
    parentId: string | undefined,
    id: string,
  ): Promise<void> {
    const keep = new Set([id]);
    let next = parentId;
    for (let chain = 1; chain < this.keepChains && next !== undefined;) {
      const bytes = await this.get(actor, next);
      if (bytes === undefined) break;
      const record = decodeCheckpoint(bytes);
      keep.add(record.id);
      if (record.kind === "full") chain++;
      next = record.parentId;
    }
    for (const old of await this.ids(actor)) {
      if (keep.has(old)) continue;
      await this.#jsm.streams.purge(this.#subjects.checkpointStream, {
        filter: this.#subjects.checkpoint(actor, old),
      });
    }
  }

  async #last(subject: string): Promise<Uint8Array | undefined> {
    try {
      const stored = await this.#jsm.streams.getMessage(
        this.#subjects.checkpointStream,
        { last_by_subj: subject },
      );
      return stored === null ? undefined : new Uint8Array(stored.data);
    } catch (error) {
      if (/no message found|not found/i.test(String(error))) return undefined;
      throw error;
    }
  }

  /** See {@linkcode CheckpointStore.get}. */
  get(actor: string, id: string): Promise<Uint8Array | undefined> {
    checkId(id);
    return this.#last(this.#subjects.checkpoint(actor, id));
  }

  /** See {@linkcode CheckpointStore.latest}. */
  async latest(actor: string): Promise<Uint8Array | undefined> {
    const head = await this.#last(this.#subjects.checkpointHead(actor));
    if (head === undefined) return undefined;
    return await this.get(actor, new TextDecoder().decode(head));
  }
}
