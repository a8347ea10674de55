/**
 * The command every data-plane benchmark moves: 32 bytes of payload, so with
 * the 32-byte envelope it fills one 64-byte slot.
 *
 * @module
 */

import { defineMessage } from "../../src/message.ts";

/** A 32-byte command: opcode, target, four floats and a double. */
export const BenchCommand = defineMessage({
  name: "bench.Command",
  fields: {
    opcode: "u32",
    target: "u32",
    x: "f32",
    y: "f32",
    z: "f32",
    w: "f32",
    value: "f64",
  },
});
