/**
 * The K2K route table in device memory: which K2K inbox serves which actor
 * name. The host rewrites it when actors come and go, under a seqlock the
 * device readers check (`sequence` odd while a rewrite is in progress).
 *
 * @module
 */

import { RingKernelError } from "../../errors.ts";
import {
  MAX_ROUTES,
  ROUTE,
  ROUTE_TABLE,
  ROUTE_TABLE_BYTES,
} from "./pool_layout.ts";

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK64 = (1n << 64n) - 1n;

/**
 * 64-bit FNV-1a of a name's UTF-8 bytes: how routes and the forwarder's
 * configuration name an actor (the header's `rk_fnv1a64` computes the same).
 * Never 0 for a valid actor name.
 */
export function nameHash(name: string): bigint {
  let hash = FNV_OFFSET;
  for (const byte of new TextEncoder().encode(name)) {
    hash = ((hash ^ BigInt(byte)) * FNV_PRIME) & MASK64;
  }
  return hash;
}

/** One entry of the route table. */
export interface RouteEntry {
  /** The actor's name. */
  readonly name: string;
  /** The actor's id. */
  readonly actorId: number;
  /** Device address of its K2K inbox. */
  readonly inbox: bigint;
  /** Slot size of its K2K inbox. */
  readonly slotSize: number;
  /** Type id of its input (what a device send writes; default 0). */
  readonly inputTypeId?: number;
  /** Payload bytes of its input (a device send of another size is refused; default 0). */
  readonly inputSize?: number;
}

/** The three writes of one table update, in the order they must reach the device. */
export interface RouteTableUpdate {
  /**
   * The odd sequence word alone (4 bytes at offset 0): readers retry while
   * they see it. The count stays as it was until `close`, so no reader can
   * pair a new count with old entries.
   */
  readonly open: Uint8Array;
  /** The entries, at byte offset `ROUTE_TABLE.size`. */
  readonly entries: Uint8Array;
  /** Header bytes with the next even sequence and the new count. */
  readonly close: Uint8Array;
  /** The sequence after the update. */
  readonly sequence: number;
}

function header(sequence: number, count: number): Uint8Array {
  const bytes = new Uint8Array(ROUTE_TABLE.size);
  const view = new DataView(bytes.buffer);
  view.setUint32(ROUTE_TABLE.fields.sequence.offset, sequence >>> 0, true);
  view.setUint32(ROUTE_TABLE.fields.count.offset, count, true);
  view.setUint32(ROUTE_TABLE.fields.capacity.offset, MAX_ROUTES, true);
  return bytes;
}

/**
 * Encodes an update of a table whose sequence is now `sequence` (even).
 * Throws {@linkcode RingKernelError} for more than {@linkcode MAX_ROUTES}
 * entries or two entries of one name.
 */
export function encodeRouteTableUpdate(
  sequence: number,
  routes: readonly RouteEntry[],
): RouteTableUpdate {
  if ((sequence & 1) !== 0) {
    throw new RingKernelError(
      `route table sequence ${sequence} is odd: an update is in progress`,
    );
  }
  if (routes.length > MAX_ROUTES) {
    throw new RingKernelError(
      `${routes.length} routes exceed the table's ${MAX_ROUTES}`,
    );
  }
  const entries = new Uint8Array(Math.max(routes.length, 1) * ROUTE.size);
  const view = new DataView(entries.buffer);
  const seen = new Set<bigint>();
  routes.forEach((route, i) => {
    const hash = nameHash(route.name);
    if (seen.has(hash)) {
      throw new RingKernelError(
        `two routes for "${route.name}" (or two names with one hash)`,
      );
    }
    seen.add(hash);
    const at = i * ROUTE.size;
    view.setBigUint64(at + ROUTE.fields.nameHash.offset, hash, true);
    view.setBigUint64(at + ROUTE.fields.inbox.offset, route.inbox, true);
    view.setUint32(at + ROUTE.fields.actorId.offset, route.actorId, true);
    view.setUint32(at + ROUTE.fields.slotSize.offset, route.slotSize, true);
    view.setUint32(
      at + ROUTE.fields.inputTypeId.offset,
      route.inputTypeId ?? 0,
      true,
    );
    view.setUint32(
      at + ROUTE.fields.inputSize.offset,
      route.inputSize ?? 0,
      true,
    );
  });
  const next = (sequence + 2) >>> 0;
  return {
    open: header((sequence + 1) >>> 0, 0).subarray(
      ROUTE_TABLE.fields.sequence.offset,
      ROUTE_TABLE.fields.sequence.offset + 4,
    ),
    entries: entries.subarray(0, routes.length * ROUTE.size),
    close: header(next, routes.length),
    sequence: next,
  };
}

/** The bytes of an empty table (sequence 0), for its first upload. */
export function emptyRouteTable(): Uint8Array {
  const bytes = new Uint8Array(ROUTE_TABLE_BYTES);
  bytes.set(header(0, 0));
  return bytes;
}

/** Reads a table image back (tests, diagnostics): sequence, count and entries. */
export function decodeRouteTable(bytes: Uint8Array): {
  sequence: number;
  count: number;
  routes: {
    nameHash: bigint;
    inbox: bigint;
    actorId: number;
    slotSize: number;
    inputTypeId: number;
    inputSize: number;
  }[];
} {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const sequence = view.getUint32(ROUTE_TABLE.fields.sequence.offset, true);
  const count = view.getUint32(ROUTE_TABLE.fields.count.offset, true);
  const routes = [];
  for (let i = 0; i < count; i++) {
    const at = ROUTE_TABLE.size + i * ROUTE.size;
    routes.push({
      nameHash: view.getBigUint64(at + ROUTE.fields.nameHash.offset, true),
      inbox: view.getBigUint64(at + ROUTE.fields.inbox.offset, true),
      actorId: view.getUint32(at + ROUTE.fields.actorId.offset, true),
      slotSize: view.getUint32(at + ROUTE.fields.slotSize.offset, true),
      inputTypeId: view.getUint32(at + ROUTE.fields.inputTypeId.offset, true),
      inputSize: view.getUint32(at + ROUTE.fields.inputSize.offset, true),
    });
  }
  return { sequence, count, routes };
}
