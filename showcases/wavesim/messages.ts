/**
 * WaveSim's messages: one command schema for everything a tile actor
 * receives (from the host and, as halos, from its neighbours by K2K), and one
 * reply schema for what it answers (frame parts, field parts, step reports).
 * Both fit the largest queue slot (4096 bytes with the envelope).
 *
 * @module
 */

import { array, defineMessage } from "../../mod.ts";

/** Longest tile edge: a halo carries one edge, `MAX_EDGE` f32 values. */
export const MAX_EDGE = 1000;

/** Payload bytes of one reply part. */
export const PART_BYTES = 4000;

/** Cells of the 8-bit picture in one frame part. */
export const FRAME_CELLS_PER_PART = PART_BYTES;

/** Cells of the exact f32 field in one field part. */
export const FIELD_CELLS_PER_PART = PART_BYTES / 4;

/** What a {@linkcode WaveCommand} asks for (its `kind`). */
export const Command = {
  /** Run until step `step` (0xffffffff: without end); sends this step's halos first. */
  run: 1,
  /** A neighbour's edge at step `step`, for ghost side `side`, `len` values. */
  halo: 2,
  /** Add a Gaussian bump of height `amp` and radius `radius` at (`x`, `y`). */
  pulse: 3,
  /** Reply with part `side` of an 8-bit picture of the field (frame `step`). */
  frame: 4,
  /** Reply with part `side` of the exact f32 field. */
  field: 5,
} as const;

/** What a {@linkcode WaveReply} carries (its `kind`). */
export const Reply = {
  /** The tile reached the step it was told to run to. */
  done: 1,
  /** An 8-bit picture part (`count` cells from cell `offset`). */
  frame: 2,
  /** An f32 field part (`count` cells from cell `offset`). */
  field: 3,
} as const;

/** Ghost sides of a tile. */
export const Side = { north: 0, south: 1, west: 2, east: 3 } as const;

/** Run without end. */
export const FOREVER = 0xffffffff;

/** A command to a tile actor. */
export const WaveCommand = defineMessage({
  name: "wavesim.Command",
  fields: {
    kind: "u32",
    step: "u32",
    side: "u32",
    len: "u32",
    x: "f64",
    y: "f64",
    amp: "f64",
    radius: "f64",
    data: array("f32", MAX_EDGE),
  },
});

/** A tile actor's reply. */
export const WaveReply = defineMessage({
  name: "wavesim.Reply",
  fields: {
    kind: "u32",
    tile: "u32",
    step: "u32",
    frame: "u32",
    part: "u32",
    offset: "u32",
    count: "u32",
    data: array("u8", PART_BYTES),
  },
});

/** A Gaussian bump: height `amp`, radius `radius` cells, centre (`x`, `y`). */
export interface Pulse {
  /** Column of the centre. */
  readonly x: number;
  /** Row of the centre. */
  readonly y: number;
  /** Height. */
  readonly amp: number;
  /** Radius in cells (the bump is cut at three radii). */
  readonly radius: number;
}

/** The physics of a run, shared by the actors and the reference. */
export interface WaveParams {
  /** Courant number squared, (c·dt/dx)²: at most 0.5 for a stable run. */
  readonly k: number;
  /** Factor applied to every cell each step (1: no damping). */
  readonly damping: number;
}

/** Default physics: a stable step with light damping. */
export const DEFAULT_PARAMS: WaveParams = Object.freeze({
  k: 0.25,
  damping: 0.999,
});

/**
 * The bump's value at cell (`x`, `y`), 0 outside three radii. Both the tile
 * actors and the reference use this one function, so both add the same
 * value to a cell.
 */
export function pulseAt(pulse: Pulse, x: number, y: number): number {
  const dx = x - pulse.x;
  const dy = y - pulse.y;
  const d2 = dx * dx + dy * dy;
  const r2 = pulse.radius * pulse.radius;
  if (d2 > 9 * r2) return 0;
  return pulse.amp * Math.exp(-d2 / r2);
}
