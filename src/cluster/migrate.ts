/**
 * Migration of an actor between nodes: what travels from the node that
 * runs it to the node that takes it (`rk.<tenant>.node.<to>.adopt`), and
 * the request that asks a node to move one of its actors
 * (`rk.<tenant>.node.<from>.migrate`). The steps are those of
 * `ClusterMember.migrate` (see `MigrateOptions`).
 *
 * The transfer: a 4-byte little-endian length, that many bytes of JSON
 * ({@linkcode TransferHeader}), then a full checkpoint record (CRC32
 * checked by the receiver).
 *
 * @module
 */

import { InvalidMessageError, InvalidStateError } from "../errors.ts";
import type { DurableServeOptions } from "./durable.ts";
import type { MigratingLaunch } from "./member.ts";

/** The JSON head of a transfer. */
export interface TransferHeader {
  /** The migration's id: the source confirms or aborts the adoption by it. */
  readonly migrationId: string;
  /** The actor's name. */
  readonly actor: string;
  /** The node it leaves. */
  readonly from: string;
  /** How it was launched. */
  readonly launch: MigratingLaunch;
  /** Whether it was served durably, and how. */
  readonly durable: Required<DurableServeOptions> | null;
  /** Durable stream sequences it handled (the newest kept), oldest first. */
  readonly handled: readonly number[];
  /** The deadline the receiver has, in ms. */
  readonly timeoutMs: number;
  /**
   * How long the receiver keeps its copy, once launched, waiting for the
   * confirmation before it drops it, in ms.
   */
  readonly confirmWithinMs: number;
}

/** The source's decision on an adoption (`rk.<tenant>.node.<to>.decide`). */
export interface AdoptionDecision {
  /** The migration's id. */
  readonly id: string;
  /** `commit`: serve it; `abort`: drop the copy (unless it serves already). */
  readonly decision: "commit" | "abort";
}

/** What the target answers a decision with: where the adoption stands. */
export interface AdoptionState {
  /** `committed`: the target serves the actor; `aborted`: it holds no copy. */
  readonly state: "committed" | "aborted";
}

/** A request to migrate an actor, to the node that runs it. */
export interface MigrateRequest {
  /** The actor. */
  readonly actor: string;
  /** The node to move it to. */
  readonly to: string;
  /** Deadline, ms. */
  readonly timeoutMs: number;
}

/** Encodes a transfer. Throws `InvalidStateError` when the launch's config is not JSON. */
export function encodeTransfer(
  header: TransferHeader,
  record: Uint8Array,
): Uint8Array {
  let json: string;
  try {
    json = JSON.stringify(header);
  } catch (error) {
    throw new InvalidStateError(
      `migrate "${header.actor}"`,
      "config",
      `its launch config does not travel as JSON: ${
        error instanceof Error ? error.message : String(error)
      }`,
    );
  }
  const head = new TextEncoder().encode(json);
  const bytes = new Uint8Array(4 + head.byteLength + record.byteLength);
  new DataView(bytes.buffer).setUint32(0, head.byteLength, true);
  bytes.set(head, 4);
  bytes.set(record, 4 + head.byteLength);
  return bytes;
}

/** Decodes a transfer; throws `InvalidMessageError` when it is not one. */
export function decodeTransfer(
  bytes: Uint8Array,
): { header: TransferHeader; record: Uint8Array } {
  if (bytes.byteLength < 4) {
    throw new InvalidMessageError("a migration transfer too short");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(0, true);
  if (4 + length > bytes.byteLength) {
    throw new InvalidMessageError("a migration transfer's head is cut");
  }
  const header = JSON.parse(
    new TextDecoder().decode(bytes.subarray(4, 4 + length)),
  ) as TransferHeader;
  if (
    typeof header?.actor !== "string" || typeof header.launch !== "object" ||
    typeof header.migrationId !== "string"
  ) {
    throw new InvalidMessageError("not a migration transfer");
  }
  return { header, record: bytes.slice(4 + length) };
}

/**
 * Waits until `quiet()` holds, polling every 2 ms, until `end` (a
 * `Date.now()` reading); false when it never did.
 */
export async function waitUntil(
  quiet: () => boolean,
  end: number,
): Promise<boolean> {
  while (!quiet()) {
    if (Date.now() >= end) return false;
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return true;
}
