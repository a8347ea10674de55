/**
 * A tally of numbered messages for the durable cluster example: adds each
 * Echo message's `value` once per `seq` (below 4096; a repeat is counted,
 * not added), and answers `tag: 1` with `{ seq: count, value: sum, tag:
 * repeats }`. Its state snapshots to bytes, so it can be checkpointed and
 * restored.
 *
 * @module
 */

import { defineActor } from "../../mod.ts";
import { EchoMessage } from "../../schemas.ts";

const SEQS = 4096;

interface Tally {
  count: number;
  sum: number;
  repeats: number;
  seen: Uint8Array;
}

export default defineActor({
  input: EchoMessage,
  output: EchoMessage,
  init: (): Tally => ({
    count: 0,
    sum: 0,
    repeats: 0,
    seen: new Uint8Array(SEQS / 8),
  }),
  snapshot: (t) => {
    const bytes = new Uint8Array(16 + t.seen.byteLength);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, t.count, true);
    view.setFloat64(4, t.sum, true);
    view.setUint32(12, t.repeats, true);
    bytes.set(t.seen, 16);
    return bytes;
  },
  restore: (bytes): Tally => {
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    return {
      count: view.getUint32(0, true),
      sum: view.getFloat64(4, true),
      repeats: view.getUint32(12, true),
      seen: bytes.slice(16),
    };
  },
  handle: (message, ctx) => {
    const t = ctx.state;
    if (message.tag === 1) {
      return { seq: BigInt(t.count), value: t.sum, tag: t.repeats };
    }
    const i = Number(message.seq) % SEQS;
    const bit = 1 << (i & 7);
    if (t.seen[i >> 3] & bit) {
      t.repeats++;
      return;
    }
    t.seen[i >> 3] |= bit;
    t.count++;
    t.sum += message.value;
  },
});
