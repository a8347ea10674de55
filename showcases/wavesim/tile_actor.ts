/**
 * A WaveSim tile: one actor owns one rectangle of the grid and steps the 2-D
 * wave equation on it. Every step it sends its four edges to its neighbours
 * by K2K (`ctx.send`, actor to actor, no host in the path) and steps again
 * once the four edges of its neighbours for that step have arrived; the host
 * only says how far to run, drops pulses and asks for pictures.
 *
 * The stencil is the one of `reference.ts`, term for term, so a run of the
 * tiles equals the single-threaded reference exactly.
 *
 * The same actor has a GPU side (`tile_gpu.ts`): on the CUDA backend each
 * tile is a GPU actor that keeps its field in device memory and sends its
 * edges with `rk_send`; the host code is the same.
 *
 * @module
 */

import type { ActorContext, ActorDefinition, MessageValue } from "../../mod.ts";
import { defineGpuActor } from "../../cuda.ts";
import {
  Command,
  FIELD_CELLS_PER_PART,
  FRAME_CELLS_PER_PART,
  MAX_EDGE,
  PART_BYTES,
  type Pulse,
  pulseAt,
  Reply,
  Side,
  WaveCommand,
  WaveReply,
} from "./messages.ts";
import { tileGpuSide } from "./tile_gpu.ts";

/** What a tile is launched with (`config`). */
export interface TileConfig {
  /** The tile's index (row-major over the tiles). */
  readonly tile: number;
  /** Global column of its first cell. */
  readonly x0: number;
  /** Global row of its first cell. */
  readonly y0: number;
  /** Its width in cells (at most {@linkcode MAX_EDGE}). */
  readonly nx: number;
  /** Its height in cells (at most {@linkcode MAX_EDGE}). */
  readonly ny: number;
  /** Courant number squared. */
  readonly k: number;
  /** Damping factor per step. */
  readonly damping: number;
  /** Neighbours' actor names, north, south, west, east ("" at the grid's edge). */
  readonly neighbors: readonly [string, string, string, string];
  /** Bumps in the field at step 0. */
  readonly pulses: readonly Pulse[];
}

/** A tile's state. */
export interface TileState {
  /** Its configuration. */
  readonly config: TileConfig;
  /** Padded width (`nx + 2`). */
  readonly w: number;
  /** The field at `step`, with a ghost ring. */
  u: Float32Array;
  /** The field at `step - 1`, with a ghost ring. */
  prev: Float32Array;
  /** The step `u` holds. */
  step: number;
  /** Step to run to. */
  target: number;
  /** The last step whose edges were sent (-1: none yet). */
  sentStep: number;
  /** Neighbour edges by step parity and side. */
  readonly halos: Float32Array[][];
  /** The step each stored edge belongs to (-1: none). */
  readonly haloStep: Int32Array[];
  /** Pulses dropped at this step, to add to the ghost cells too. */
  ghostPulses: Pulse[];
  /** Scratch for outgoing edges. */
  readonly edge: Float32Array;
  /** Scratch for reply parts. */
  readonly part: Uint8Array;
  /** The last picture, taken at its part 0. */
  picture: Uint8Array;
}

function initTile(config: TileConfig): TileState {
  const { nx, ny } = config;
  if (nx < 1 || ny < 1 || nx > MAX_EDGE || ny > MAX_EDGE) {
    throw new RangeError(`tile ${nx}×${ny}: each side must be 1..${MAX_EDGE}`);
  }
  const w = nx + 2;
  const size = w * (ny + 2);
  const state: TileState = {
    config,
    w,
    u: new Float32Array(size),
    prev: new Float32Array(size),
    step: 0,
    target: 0,
    sentStep: -1,
    halos: [0, 1].map(() => [0, 1, 2, 3].map(() => new Float32Array(MAX_EDGE))),
    haloStep: [0, 1].map(() => new Int32Array(4).fill(-1)),
    ghostPulses: [],
    edge: new Float32Array(MAX_EDGE),
    part: new Uint8Array(PART_BYTES),
    picture: new Uint8Array(nx * ny),
  };
  for (const pulse of config.pulses) addPulse(state, pulse, false);
  return state;
}

/** Adds a bump to the interior of `u` and `prev` (zero velocity). */
function addPulse(state: TileState, pulse: Pulse, ghosts: boolean): void {
  const { nx, ny, x0, y0 } = state.config;
  const { w, u, prev } = state;
  const reach = Math.ceil(3 * pulse.radius) + 1;
  const i0 = Math.max(0, Math.floor(pulse.x - reach) - x0);
  const i1 = Math.min(nx - 1, Math.ceil(pulse.x + reach) - x0);
  const j0 = Math.max(0, Math.floor(pulse.y - reach) - y0);
  const j1 = Math.min(ny - 1, Math.ceil(pulse.y + reach) - y0);
  for (let j = j0; j <= j1; j++) {
    for (let i = i0; i <= i1; i++) {
      const p = pulseAt(pulse, x0 + i, y0 + j);
      if (p === 0) continue;
      const idx = (j + 1) * w + i + 1;
      u[idx] += p;
      prev[idx] += p;
    }
  }
  if (ghosts) state.ghostPulses.push(pulse);
}

/** Fills the ghost ring of `u` from the neighbours' edges of this step. */
function fillGhosts(state: TileState): void {
  const { nx, ny, neighbors, x0, y0 } = state.config;
  const { w, u } = state;
  const edges = state.halos[state.step & 1];
  if (neighbors[Side.north]) {
    u.set(edges[Side.north].subarray(0, nx), 1);
  }
  if (neighbors[Side.south]) {
    u.set(edges[Side.south].subarray(0, nx), (ny + 1) * w + 1);
  }
  if (neighbors[Side.west]) {
    const e = edges[Side.west];
    for (let j = 0; j < ny; j++) u[(j + 1) * w] = e[j];
  }
  if (neighbors[Side.east]) {
    const e = edges[Side.east];
    for (let j = 0; j < ny; j++) u[(j + 1) * w + nx + 1] = e[j];
  }
  // A pulse dropped at this step changed the neighbours' edges after they
  // sent them: add it to the ghost cells the same way they added it.
  for (const pulse of state.ghostPulses) {
    const add = (i: number, j: number) => {
      const p = pulseAt(pulse, x0 + i, y0 + j);
      if (p !== 0) u[(j + 1) * w + i + 1] += p;
    };
    if (neighbors[Side.north]) { for (let i = 0; i < nx; i++) add(i, -1); }
    if (neighbors[Side.south]) { for (let i = 0; i < nx; i++) add(i, ny); }
    if (neighbors[Side.west]) { for (let j = 0; j < ny; j++) add(-1, j); }
    if (neighbors[Side.east]) { for (let j = 0; j < ny; j++) add(nx, j); }
  }
  state.ghostPulses = [];
}

/** One leapfrog step of the interior: `prev` becomes the field at `step + 1`. */
export function stepInterior(
  u: Float32Array,
  prev: Float32Array,
  nx: number,
  ny: number,
  k: number,
  damping: number,
): void {
  const w = nx + 2;
  for (let j = 1; j <= ny; j++) {
    let idx = j * w + 1;
    for (let i = 0; i < nx; i++, idx++) {
      const c = u[idx];
      const lap = u[idx - 1] + u[idx + 1] + u[idx - w] + u[idx + w] - 4 * c;
      prev[idx] = (2 * c - prev[idx] + k * lap) * damping;
    }
  }
}

/** True when all of this step's neighbour edges are in. */
function haloComplete(state: TileState): boolean {
  const got = state.haloStep[state.step & 1];
  const { neighbors } = state.config;
  for (let side = 0; side < 4; side++) {
    if (neighbors[side] && got[side] !== state.step) return false;
  }
  return true;
}

/** Sends this step's four edges to the neighbours (K2K). */
async function sendEdges(
  state: TileState,
  ctx: ActorContext<TileState>,
): Promise<void> {
  const { nx, ny, neighbors } = state.config;
  const { w, u, edge, step } = state;
  state.sentStep = step;
  // To the north neighbour my top row is its south ghost, and so on.
  const plan: Array<[number, number, () => void, number]> = [
    [Side.north, Side.south, () => edge.set(u.subarray(w + 1, w + 1 + nx)), nx],
    [
      Side.south,
      Side.north,
      () => edge.set(u.subarray(ny * w + 1, ny * w + 1 + nx)),
      nx,
    ],
    [Side.west, Side.east, () => {
      for (let j = 0; j < ny; j++) edge[j] = u[(j + 1) * w + 1];
    }, ny],
    [Side.east, Side.west, () => {
      for (let j = 0; j < ny; j++) edge[j] = u[(j + 1) * w + nx];
    }, ny],
  ];
  for (const [mine, theirs, fill, len] of plan) {
    const target = neighbors[mine];
    if (!target) continue;
    fill();
    await ctx.send(target, {
      kind: Command.halo,
      step,
      side: theirs,
      len,
      x: 0,
      y: 0,
      amp: 0,
      radius: 0,
      data: edge,
    }, { schema: WaveCommand, timeoutMs: 10_000 });
  }
}

/** Steps while the edges are in and the target is ahead; sends each step's edges. */
async function advance(
  state: TileState,
  ctx: ActorContext<TileState>,
): Promise<ReplyValue | undefined> {
  const { nx, ny, k, damping, neighbors } = state.config;
  const alone = !neighbors.some((n) => n);
  let chunk = LONE_CHUNK;
  if (state.sentStep < state.step) await sendEdges(state, ctx);
  while (state.step < state.target && haloComplete(state)) {
    fillGhosts(state);
    stepInterior(state.u, state.prev, nx, ny, k, damping);
    const next = state.prev;
    state.prev = state.u;
    state.u = next;
    state.step++;
    await sendEdges(state, ctx);
    // A tile alone has no neighbour whose edges wake it: it runs a chunk
    // and reports, and the host tells it to go on.
    if (alone && --chunk === 0) return reply(state, Reply.done, 0, 0, 0);
  }
  if (state.step === state.target) {
    return reply(state, Reply.done, 0, 0, 0);
  }
  return undefined;
}

/** Steps a lone tile runs per message. */
const LONE_CHUNK = 64;

type ReplyValue = MessageValue<typeof WaveReply.spec>;

const NO_DATA = new Float32Array(MAX_EDGE);

/** A command to run to step `target`. */
export function runCommand(
  target: number,
): MessageValue<typeof WaveCommand.spec> {
  return {
    kind: Command.run,
    step: target,
    side: 0,
    len: 0,
    x: 0,
    y: 0,
    amp: 0,
    radius: 0,
    data: NO_DATA,
  };
}

function reply(
  state: TileState,
  kind: number,
  frame: number,
  part: number,
  count: number,
  offset = 0,
): ReplyValue {
  return {
    kind,
    tile: state.config.tile,
    step: state.step,
    frame,
    part,
    offset,
    count,
    data: state.part,
  };
}

/** The 8-bit picture of the interior: 128 is rest, ±1 maps to 1 and 255. */
function takePicture(state: TileState): void {
  const { nx, ny } = state.config;
  const { w, u, picture } = state;
  let o = 0;
  for (let j = 1; j <= ny; j++) {
    let idx = j * w + 1;
    for (let i = 0; i < nx; i++, idx++) {
      const v = 128 + u[idx] * 127;
      picture[o++] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
}

function framePart(state: TileState, frame: number, part: number): ReplyValue {
  if (part === 0) takePicture(state);
  const offset = part * FRAME_CELLS_PER_PART;
  const count = Math.max(
    0,
    Math.min(FRAME_CELLS_PER_PART, state.picture.length - offset),
  );
  state.part.set(state.picture.subarray(offset, offset + count));
  return reply(state, Reply.frame, frame, part, count, offset);
}

function fieldPart(state: TileState, part: number): ReplyValue {
  const { nx, ny } = state.config;
  const { w, u } = state;
  const values = new Float32Array(state.part.buffer, 0, FIELD_CELLS_PER_PART);
  const offset = part * FIELD_CELLS_PER_PART;
  const count = Math.max(0, Math.min(FIELD_CELLS_PER_PART, nx * ny - offset));
  for (let c = 0; c < count; c++) {
    const cell = offset + c;
    const j = Math.floor(cell / nx);
    values[c] = u[(j + 1) * w + (cell - j * nx) + 1];
  }
  return reply(state, Reply.field, 0, part, count, offset);
}

/**
 * The tile actor: this handler on the CPU backend, the same protocol in CUDA
 * C++ on the CUDA backend (`tile_gpu.ts`), both from the same starting field.
 */
const tile: ActorDefinition<
  typeof WaveCommand.spec,
  typeof WaveReply.spec,
  TileState
> = defineGpuActor({
  input: WaveCommand,
  output: WaveReply,
  init: ({ config }) => initTile(config as TileConfig),
  handle(message, ctx) {
    const state = ctx.state;
    switch (message.kind) {
      case Command.run:
        state.target = message.step;
        return advance(state, ctx);
      case Command.halo: {
        // Edges of a step this tile has passed are stale (a re-send): drop them.
        if (message.step < state.step) return undefined;
        const parity = message.step & 1;
        state.halos[parity][message.side].set(
          message.data.subarray(0, message.len),
        );
        state.haloStep[parity][message.side] = message.step;
        if (state.step >= state.target || !haloComplete(state)) {
          return undefined;
        }
        return advance(state, ctx);
      }
      case Command.pulse:
        addPulse(state, message, state.sentStep === state.step);
        return undefined;
      case Command.frame:
        return framePart(state, message.step, message.side);
      case Command.field:
        return fieldPart(state, message.side);
      default:
        throw new Error(`unknown command ${message.kind}`);
    }
  },
  gpu: tileGpuSide((config) => initTile(config as TileConfig)),
});
export default tile;
