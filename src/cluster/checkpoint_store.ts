/**
 * A {@linkcode CheckpointStore} on JetStream: the tenant's stream
 * `RK_<tenant>_CHECKPOINTS` keeps each record on its own subject
 * `rk.<tenant>.ckpt.<actor>.<id>` and the latest id on
 * `rk.<tenant>.ckpt.<actor>.head` (one message per subject, file storage):
 * every node of the tenant reads what another wrote, and records survive
 * the servers' restarts. A record must fit the servers' largest message
 * (`max_payload`, 1 MiB by default).
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
import { checkId, type CheckpointStore } from "../checkpoint.ts";
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

/** Checkpoints in the tenant's JetStream stream; get it with `rt.cluster.checkpointStore()`. */
export class JetStreamCheckpointStore implements CheckpointStore {
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #subjects: Subjects;
  readonly #timeoutMs: number;

  /** A store on the stream of `subjects`' tenant (it must exist). */
  constructor(init: {
    js: JetStreamClient;
    jsm: JetStreamManager;
    subjects: Subjects;
    timeoutMs: number;
  }) {
    this.#js = init.js;
    this.#jsm = init.jsm;
    this.#subjects = init.subjects;
    this.#timeoutMs = init.timeoutMs;
  }

  /** See {@linkcode CheckpointStore.put}: the record, then the head. */
  async put(actor: string, id: string, record: Uint8Array): Promise<void> {
    checkId(id);
    const timeout = this.#timeoutMs;
    await this.#js.publish(this.#subjects.checkpoint(actor, id), record, {
      timeout,
    });
    await this.#js.publish(this.#subjects.checkpointHead(actor), id, {
      timeout,
    });
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
