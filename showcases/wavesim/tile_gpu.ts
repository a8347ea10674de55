/**
 * The GPU side of a WaveSim tile: the same tile actor as `tile_actor.ts`,
 * in CUDA C++ against `ringkernel.cuh` (compiled at launch by libnvrtc), for
 * the CUDA backend. It speaks the same messages and the same protocol as the
 * CPU side, so the host code does not know which one runs:
 *
 * - the tile's field (`u` and `prev` with their ghost ring), the neighbours'
 *   edges by step parity, the picture and the outgoing edges live in device
 *   memory (the actor's `deviceData`, filled by the host with the starting
 *   field, the same bytes the CPU side starts from);
 * - the step, the target, the step of each stored edge and the pulses to add
 *   to the ghost cells live in the actor's device state;
 * - every step the tile sends its four edges to its neighbours with
 *   `rk_send(ctx, neighbour, edge)` (K2K, device to device, no host in the
 *   path) and steps again once the four edges of that step have arrived;
 * - the whole block (256 threads) works on each message (block mode): the
 *   stencil, the ghost ring, pictures and field parts are block-wide.
 *
 * The arithmetic is the reference's, term for term, in double precision with
 * `__dadd_rn`/`__dmul_rn` (no fused multiply-add), rounded to f32 on store
 * as the TypeScript `Float32Array` stores round: the GPU tiles equal the
 * single-threaded reference bit for bit, but for the `exp` of pulses dropped
 * while running (the device's `exp` may differ from `Math.exp` in the last
 * bit).
 *
 * Bounds: an edge is one message (`MAX_EDGE` = 1000 f32 in a 4096-byte
 * slot), so a tile side is at most 1000 cells; the field is in device memory
 * of any size; at most {@linkcode MAX_GHOST_PULSES} pulses per step (more are
 * rejected, i.e. dead-lettered).
 *
 * @module
 */

import {
  type GpuActorImplementation,
  type GpuConfigContext,
  toCStruct,
} from "../../cuda.ts";
import {
  FIELD_CELLS_PER_PART,
  FRAME_CELLS_PER_PART,
  MAX_EDGE,
  WaveCommand,
  WaveReply,
} from "./messages.ts";

/** What the GPU side needs from a tile's configuration. */
export interface GpuTileConfig {
  /** The tile's index. */
  readonly tile: number;
  /** Global column of its first cell. */
  readonly x0: number;
  /** Global row of its first cell. */
  readonly y0: number;
  /** Width in cells. */
  readonly nx: number;
  /** Height in cells. */
  readonly ny: number;
  /** Courant number squared. */
  readonly k: number;
  /** Damping per step. */
  readonly damping: number;
  /** Neighbours' names, north, south, west, east ("" at the grid's edge). */
  readonly neighbors: readonly [string, string, string, string];
}

/** The field a tile starts from: `u` and `prev`, `(nx + 2) × (ny + 2)` with the ghost ring. */
export interface InitialField {
  /** The field at step 0. */
  readonly u: Float32Array;
  /** The field at step -1. */
  readonly prev: Float32Array;
}

/** Pulses a GPU tile keeps for its ghost cells within one step. */
export const MAX_GHOST_PULSES = 8;

/** Bytes of the device state (`wave_state`). */
export const TILE_STATE_BYTES = 312;

/** Bytes of the configuration (`wave_config`). */
const CONFIG_BYTES = 96;

const align16 = (n: number) => Math.ceil(n / 16) * 16;

/** Where each part of a tile's device memory starts, in bytes. */
export interface TileLayout {
  /** `u` at step 0 (f32, with the ghost ring). */
  readonly u: number;
  /** `prev` at step 0. */
  readonly prev: number;
  /** Neighbours' edges: `[parity][side][MAX_EDGE]` f32. */
  readonly halos: number;
  /** The 8-bit picture, `nx × ny`. */
  readonly picture: number;
  /** Four outgoing edge messages (`wavesim_command`). */
  readonly send: number;
  /** The whole block. */
  readonly bytes: number;
}

/** The device memory layout of an `nx × ny` tile. */
export function tileLayout(nx: number, ny: number): TileLayout {
  const field = align16((nx + 2) * (ny + 2) * 4);
  const u = 0;
  const prev = u + field;
  const halos = prev + field;
  const picture = halos + 2 * 4 * MAX_EDGE * 4;
  const send = picture + align16(nx * ny);
  return { u, prev, halos, picture, send, bytes: send + 4 * WaveCommand.size };
}

/** The CUDA C++ of the tile actor (entry `wavesim_tile_pool`). */
export const TILE_CUDA_SOURCE = `#include "ringkernel.cuh"
${toCStruct(WaveCommand, { standalone: true })}
${toCStruct(WaveReply, { standalone: true })}

#define WAVE_MAX_EDGE ${MAX_EDGE}u
#define WAVE_FRAME_PER_PART ${FRAME_CELLS_PER_PART}u
#define WAVE_FIELD_PER_PART ${FIELD_CELLS_PER_PART}u
#define WAVE_LONE_CHUNK 64u
#define WAVE_MAX_GHOST_PULSES ${MAX_GHOST_PULSES}u
#define WAVE_SEND_TRIES 100000u
#define WAVE_FOREVER 0xffffffffu
// Commands and replies (messages.ts).
#define WAVE_RUN 1u
#define WAVE_HALO 2u
#define WAVE_PULSE 3u
#define WAVE_FRAME 4u
#define WAVE_FIELD 5u
#define WAVE_REPLY_DONE 1u
#define WAVE_REPLY_FRAME 2u
#define WAVE_REPLY_FIELD 3u

/** The tile's configuration (tile_gpu.ts encodeTileConfig). */
struct wave_config {
  rk_u64 data;          // device memory: the layout below
  rk_u64 neighbors[4];  // rk_name of north, south, west, east (0: none)
  double k;
  double damping;
  rk_u32 tile, x0, y0, nx, ny;
  rk_u32 u_offset, prev_offset, halo_offset, picture_offset, send_offset;
};
static_assert(sizeof(wave_config) == ${CONFIG_BYTES}, "wave_config mirrors encodeTileConfig");

struct wave_pulse { double x, y, amp, radius; };

/** The device state: zeroed at every start but for the -1s of init. */
struct wave_state {
  rk_u32 step;              // the step u holds
  rk_u32 target;            // the step to run to
  rk_i32 sent_step;         // the last step whose edges were sent (-1: none)
  rk_u32 flip;              // 1: u and prev have swapped places
  rk_i32 halo_step[2][4];   // the step each stored edge belongs to (-1: none)
  rk_u32 ghost_count;       // pulses dropped at this step, for the ghost cells
  rk_u32 reserved;
  wave_pulse ghost[WAVE_MAX_GHOST_PULSES];
};
static_assert(sizeof(wave_state) == ${TILE_STATE_BYTES}, "wave_state is TILE_STATE_BYTES");

/** Pointers into the tile's device memory. */
struct wave_view {
  float* u;
  float* prev;
  float* halos;
  rk_u8* picture;
  wavesim_command* send;
  rk_u32 nx, ny, w;
};

__device__ __forceinline__ wave_view wave_open(const wave_config& c, const wave_state& s) {
  rk_u8* base = reinterpret_cast<rk_u8*>(c.data);
  float* a = reinterpret_cast<float*>(base + c.u_offset);
  float* b = reinterpret_cast<float*>(base + c.prev_offset);
  wave_view v;
  v.u = s.flip ? b : a;
  v.prev = s.flip ? a : b;
  v.halos = reinterpret_cast<float*>(base + c.halo_offset);
  v.picture = base + c.picture_offset;
  v.send = reinterpret_cast<wavesim_command*>(base + c.send_offset);
  v.nx = c.nx;
  v.ny = c.ny;
  v.w = c.nx + 2u;
  return v;
}

/** messages.ts pulseAt, operation for operation. */
__device__ __forceinline__ double wave_pulse_at(const wave_pulse& p, double x, double y) {
  const double dx = x - p.x;
  const double dy = y - p.y;
  const double d2 = __dadd_rn(__dmul_rn(dx, dx), __dmul_rn(dy, dy));
  const double r2 = __dmul_rn(p.radius, p.radius);
  if (d2 > __dmul_rn(9.0, r2)) return 0.0;
  return __dmul_rn(p.amp, exp(-d2 / r2));
}

/** A Float32Array's += of a double. */
__device__ __forceinline__ void wave_add(float* cell, double value) {
  *cell = static_cast<float>(__dadd_rn(static_cast<double>(*cell), value));
}

/** Block-wide: thread 0's value to every thread (through the block-mode scratch). */
__device__ __forceinline__ rk_i32 wave_share(rk_actor_ctx& ctx, rk_i32 value) {
  if (threadIdx.x == 0) ctx.scratch[0] = static_cast<double>(value);
  __syncthreads();
  const rk_i32 shared = static_cast<rk_i32>(ctx.scratch[0]);
  __syncthreads();
  return shared;
}

/** Block-wide: adds a bump to the interior of u and prev (tile_actor.ts addPulse). */
__device__ void wave_add_pulse(const wave_config& c, const wave_view& v, const wave_pulse& p) {
  const double reach = ceil(3.0 * p.radius) + 1.0;
  const double lo_x = floor(p.x - reach) - c.x0;
  const double hi_x = ceil(p.x + reach) - c.x0;
  const double lo_y = floor(p.y - reach) - c.y0;
  const double hi_y = ceil(p.y + reach) - c.y0;
  const rk_i32 i0 = lo_x < 0.0 ? 0 : lo_x > v.nx ? static_cast<rk_i32>(v.nx) : static_cast<rk_i32>(lo_x);
  const rk_i32 i1 = hi_x < -1.0 ? -1 : hi_x > v.nx - 1.0 ? static_cast<rk_i32>(v.nx) - 1 : static_cast<rk_i32>(hi_x);
  const rk_i32 j0 = lo_y < 0.0 ? 0 : lo_y > v.ny ? static_cast<rk_i32>(v.ny) : static_cast<rk_i32>(lo_y);
  const rk_i32 j1 = hi_y < -1.0 ? -1 : hi_y > v.ny - 1.0 ? static_cast<rk_i32>(v.ny) - 1 : static_cast<rk_i32>(hi_y);
  if (i1 >= i0 && j1 >= j0) {
    const rk_u32 bw = static_cast<rk_u32>(i1 - i0 + 1);
    const rk_u32 cells = bw * static_cast<rk_u32>(j1 - j0 + 1);
    for (rk_u32 cell = threadIdx.x; cell < cells; cell += blockDim.x) {
      const rk_u32 i = static_cast<rk_u32>(i0) + cell % bw;
      const rk_u32 j = static_cast<rk_u32>(j0) + cell / bw;
      const double value = wave_pulse_at(p, static_cast<double>(c.x0 + i), static_cast<double>(c.y0 + j));
      if (value == 0.0) continue;
      const rk_u32 idx = (j + 1u) * v.w + i + 1u;
      wave_add(v.u + idx, value);
      wave_add(v.prev + idx, value);
    }
  }
  __syncthreads();
}

/** True when every neighbour's edge of this step is in (every thread reads the same state). */
__device__ __forceinline__ bool wave_halo_complete(const wave_config& c, const wave_state& s) {
  const rk_i32* got = s.halo_step[s.step & 1u];
  for (rk_u32 side = 0; side < 4u; ++side) {
    if (c.neighbors[side] != 0 && got[side] != static_cast<rk_i32>(s.step)) return false;
  }
  return true;
}

/** Block-wide: fills the ghost ring of u from the neighbours' edges, then adds this step's pulses to it. */
__device__ void wave_fill_ghosts(const wave_config& c, wave_state& s, const wave_view& v) {
  const float* edges = v.halos + (s.step & 1u) * 4u * WAVE_MAX_EDGE;
  const rk_u32 longest = v.nx > v.ny ? v.nx : v.ny;
  const rk_u32 ghosts = s.ghost_count;
  for (rk_u32 t = threadIdx.x; t < longest; t += blockDim.x) {
    if (t < v.nx) {
      const rk_u32 north = 1u + t;
      const rk_u32 south = (v.ny + 1u) * v.w + 1u + t;
      if (c.neighbors[0] != 0) {
        v.u[north] = edges[t];
        for (rk_u32 g = 0; g < ghosts; ++g) {
          wave_add(v.u + north, wave_pulse_at(s.ghost[g], c.x0 + static_cast<double>(t), c.y0 - 1.0));
        }
      }
      if (c.neighbors[1] != 0) {
        v.u[south] = edges[WAVE_MAX_EDGE + t];
        for (rk_u32 g = 0; g < ghosts; ++g) {
          wave_add(v.u + south, wave_pulse_at(s.ghost[g], c.x0 + static_cast<double>(t),
                                              c.y0 + static_cast<double>(v.ny)));
        }
      }
    }
    if (t < v.ny) {
      const rk_u32 west = (t + 1u) * v.w;
      const rk_u32 east = (t + 1u) * v.w + v.nx + 1u;
      if (c.neighbors[2] != 0) {
        v.u[west] = edges[2u * WAVE_MAX_EDGE + t];
        for (rk_u32 g = 0; g < ghosts; ++g) {
          wave_add(v.u + west, wave_pulse_at(s.ghost[g], c.x0 - 1.0, c.y0 + static_cast<double>(t)));
        }
      }
      if (c.neighbors[3] != 0) {
        v.u[east] = edges[3u * WAVE_MAX_EDGE + t];
        for (rk_u32 g = 0; g < ghosts; ++g) {
          wave_add(v.u + east, wave_pulse_at(s.ghost[g], c.x0 + static_cast<double>(v.nx),
                                             c.y0 + static_cast<double>(t)));
        }
      }
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) s.ghost_count = 0;
  __syncthreads();
}

/** Block-wide: one leapfrog step of the interior into prev, then u and prev swap. */
__device__ void wave_step(const wave_config& c, wave_state& s, const wave_view& v) {
  const rk_u32 cells = v.nx * v.ny;
  const rk_i32 w = static_cast<rk_i32>(v.w);
  for (rk_u32 cell = threadIdx.x; cell < cells; cell += blockDim.x) {
    const rk_u32 j = cell / v.nx;
    const rk_i32 idx = static_cast<rk_i32>((j + 1u) * v.w + (cell - j * v.nx) + 1u);
    const double centre = v.u[idx];
    double lap = __dadd_rn(static_cast<double>(v.u[idx - 1]), static_cast<double>(v.u[idx + 1]));
    lap = __dadd_rn(lap, static_cast<double>(v.u[idx - w]));
    lap = __dadd_rn(lap, static_cast<double>(v.u[idx + w]));
    lap = __dadd_rn(lap, -4.0 * centre);
    const double next = __dadd_rn(__dadd_rn(2.0 * centre, -static_cast<double>(v.prev[idx])), __dmul_rn(c.k, lap));
    v.prev[idx] = static_cast<float>(__dmul_rn(next, c.damping));
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    s.flip ^= 1u;
    s.step += 1u;
  }
  __syncthreads();
}

/**
 * Block-wide: sends this step's four edges to the neighbours (rk_send, one
 * message per edge). A full or busy inbox is tried again for a while; the
 * protocol keeps at most two edges in flight per pair, so it does not fill.
 * Returns RK_SEND_OK or the code of the send that failed.
 */
__device__ rk_i32 wave_send_edges(rk_actor_ctx& ctx, const wave_config& c, wave_state& s, const wave_view& v) {
  const rk_u32 step = s.step;
  const rk_u32 theirs[4] = {1u, 0u, 3u, 2u};  // my north edge is my north neighbour's south ghost
  for (rk_u32 side = 0; side < 4u; ++side) {
    if (c.neighbors[side] == 0) continue;
    wavesim_command& m = v.send[side];
    const rk_u32 len = side < 2u ? v.nx : v.ny;
    for (rk_u32 t = threadIdx.x; t < len; t += blockDim.x) {
      rk_u32 idx;
      if (side == 0u) idx = v.w + 1u + t;                       // top row
      else if (side == 1u) idx = v.ny * v.w + 1u + t;           // bottom row
      else if (side == 2u) idx = (t + 1u) * v.w + 1u;           // left column
      else idx = (t + 1u) * v.w + v.nx;                          // right column
      m.data[t] = v.u[idx];
    }
    if (threadIdx.x == 0) {
      m.kind = WAVE_HALO;
      m.step = step;
      m.side = theirs[side];
      m.len = len;
      m.x = 0.0;
      m.y = 0.0;
      m.amp = 0.0;
      m.radius = 0.0;
    }
  }
  __syncthreads();
  rk_i32 failed = RK_SEND_OK;
  if (threadIdx.x == 0) {
    s.sent_step = static_cast<rk_i32>(step);
    for (rk_u32 side = 0; side < 4u && failed == RK_SEND_OK; ++side) {
      if (c.neighbors[side] == 0) continue;
      rk_i32 result = RK_SEND_OK;
      for (rk_u32 attempt = 0;; ++attempt) {
        result = rk_send(ctx, c.neighbors[side], v.send[side]);
        if (result != RK_SEND_FULL && result != RK_SEND_BUSY) break;
        if (attempt + 1u >= WAVE_SEND_TRIES) break;
        __nanosleep(1000u);
      }
      failed = result;
    }
  }
  return wave_share(ctx, failed);
}

/** Block-wide: the reply that the tile reached its target. */
__device__ rk_i32 wave_done(const wave_config& c, const wave_state& s, wavesim_reply& out) {
  if (threadIdx.x == 0) {
    out.kind = WAVE_REPLY_DONE;
    out.tile = c.tile;
    out.step = s.step;
    out.frame = 0u;
    out.part = 0u;
    out.offset = 0u;
    out.count = 0u;
  }
  __syncthreads();
  return RK_REPLY;
}

/** Block-wide: steps while the edges are in and the target is ahead (tile_actor.ts advance). */
__device__ rk_i32 wave_advance(rk_actor_ctx& ctx, const wave_config& c, wave_state& s, wavesim_reply& out) {
  const bool alone = c.neighbors[0] == 0 && c.neighbors[1] == 0 && c.neighbors[2] == 0 && c.neighbors[3] == 0;
  if (s.sent_step < static_cast<rk_i32>(s.step)) {
    if (wave_send_edges(ctx, c, s, wave_open(c, s)) != RK_SEND_OK) return RK_FAIL;
  }
  rk_u32 chunk = WAVE_LONE_CHUNK;
  while (s.step < s.target && wave_halo_complete(c, s)) {
    wave_fill_ghosts(c, s, wave_open(c, s));
    wave_step(c, s, wave_open(c, s));
    if (wave_send_edges(ctx, c, s, wave_open(c, s)) != RK_SEND_OK) return RK_FAIL;
    // A lone tile has no neighbour whose edges wake it: it runs a chunk and
    // reports, and the host tells it to go on.
    if (alone && --chunk == 0u) return wave_done(c, s, out);
  }
  if (s.step == s.target) return wave_done(c, s, out);
  return RK_HANDLED;
}

/** Block-wide: part of an 8-bit picture (part 0 takes it). */
__device__ rk_i32 wave_frame(const wave_config& c, const wave_state& s, const wavesim_command& in,
                             wavesim_reply& out) {
  const wave_view v = wave_open(c, s);
  const rk_u32 cells = v.nx * v.ny;
  if (in.side == 0u) {
    for (rk_u32 cell = threadIdx.x; cell < cells; cell += blockDim.x) {
      const rk_u32 j = cell / v.nx;
      const double value = __dadd_rn(128.0, __dmul_rn(static_cast<double>(v.u[(j + 1u) * v.w + (cell - j * v.nx) + 1u]), 127.0));
      v.picture[cell] = !(value == value) ? 0u : value < 0.0 ? 0u : value > 255.0 ? 255u
                                                   : static_cast<rk_u8>(static_cast<rk_u32>(value));
    }
    __syncthreads();
  }
  const rk_u32 offset = in.side * WAVE_FRAME_PER_PART;
  const rk_u32 count = offset >= cells ? 0u : cells - offset < WAVE_FRAME_PER_PART ? cells - offset
                                                                                   : WAVE_FRAME_PER_PART;
  for (rk_u32 t = threadIdx.x; t < count; t += blockDim.x) out.data[t] = v.picture[offset + t];
  if (threadIdx.x == 0) {
    out.kind = WAVE_REPLY_FRAME;
    out.tile = c.tile;
    out.step = s.step;
    out.frame = in.step;
    out.part = in.side;
    out.offset = offset;
    out.count = count;
  }
  __syncthreads();
  return RK_REPLY;
}

/** Block-wide: part of the exact f32 field. */
__device__ rk_i32 wave_field(const wave_config& c, const wave_state& s, const wavesim_command& in,
                             wavesim_reply& out) {
  const wave_view v = wave_open(c, s);
  const rk_u32 cells = v.nx * v.ny;
  const rk_u32 offset = in.side * WAVE_FIELD_PER_PART;
  const rk_u32 count = offset >= cells ? 0u : cells - offset < WAVE_FIELD_PER_PART ? cells - offset
                                                                                   : WAVE_FIELD_PER_PART;
  float* values = reinterpret_cast<float*>(out.data);
  for (rk_u32 t = threadIdx.x; t < count; t += blockDim.x) {
    const rk_u32 cell = offset + t;
    const rk_u32 j = cell / v.nx;
    values[t] = v.u[(j + 1u) * v.w + (cell - j * v.nx) + 1u];
  }
  if (threadIdx.x == 0) {
    out.kind = WAVE_REPLY_FIELD;
    out.tile = c.tile;
    out.step = s.step;
    out.frame = 0u;
    out.part = in.side;
    out.offset = offset;
    out.count = count;
  }
  __syncthreads();
  return RK_REPLY;
}

struct wave_tile_traits : rk_actor_base<wavesim_command, wavesim_reply, wave_state, RK_MODE_BLOCK> {
  __device__ static void init(wave_state& s, rk_actor_ctx&) {
    s = wave_state();
    s.sent_step = -1;
    for (rk_u32 k = 0; k < 8u; ++k) s.halo_step[k >> 2][k & 3u] = -1;
  }

  __device__ static rk_i32 handle(const wavesim_command& in, wavesim_reply& out, wave_state& s, rk_actor_ctx& ctx) {
    const wave_config& c = *reinterpret_cast<const wave_config*>(ctx.config);
    const rk_u32 step = s.step;
    __syncthreads();  // every thread has read the state before thread 0 changes it
    switch (in.kind) {
      case WAVE_RUN:
        if (threadIdx.x == 0) s.target = in.step;
        __syncthreads();
        return wave_advance(ctx, c, s, out);
      case WAVE_HALO: {
        // Edges of a step this tile has passed are stale (a re-send): drop them.
        if (in.step < step) return RK_HANDLED;
        if (in.side > 3u || in.len > WAVE_MAX_EDGE) return RK_REJECT;
        const wave_view v = wave_open(c, s);
        float* edge = v.halos + ((in.step & 1u) * 4u + in.side) * WAVE_MAX_EDGE;
        for (rk_u32 t = threadIdx.x; t < in.len; t += blockDim.x) edge[t] = in.data[t];
        if (threadIdx.x == 0) s.halo_step[in.step & 1u][in.side] = static_cast<rk_i32>(in.step);
        __syncthreads();
        if (s.step >= s.target || !wave_halo_complete(c, s)) return RK_HANDLED;
        return wave_advance(ctx, c, s, out);
      }
      case WAVE_PULSE: {
        // The neighbours sent this step's edges without it: keep it for the ghost cells.
        const bool ghosts = s.sent_step == static_cast<rk_i32>(step);
        if (ghosts && s.ghost_count >= WAVE_MAX_GHOST_PULSES) return RK_REJECT;
        const wave_pulse p = {in.x, in.y, in.amp, in.radius};
        wave_add_pulse(c, wave_open(c, s), p);
        if (ghosts && threadIdx.x == 0) s.ghost[s.ghost_count++] = p;
        __syncthreads();
        return RK_HANDLED;
      }
      case WAVE_FRAME:
        return wave_frame(c, s, in, out);
      case WAVE_FIELD:
        return wave_field(c, s, in, out);
      default:
        return RK_REJECT;
    }
  }
};
RK_ACTOR_KERNEL(wavesim_tile_pool, wave_tile_traits)
`;

/** The tile's `wave_config`: its device memory, neighbours' handles, physics and geometry. */
export function encodeTileConfig(
  config: GpuTileConfig,
  context: GpuConfigContext,
): Uint8Array {
  const layout = tileLayout(config.nx, config.ny);
  if (context.dataBytes < layout.bytes) {
    throw new RangeError(
      `WaveSim GPU tile ${config.tile}: device data of ${context.dataBytes} B, needs ${layout.bytes} B`,
    );
  }
  const bytes = new Uint8Array(CONFIG_BYTES);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, context.dataAddress, true);
  config.neighbors.forEach((name, side) => {
    view.setBigUint64(8 + 8 * side, name ? context.nameHash(name) : 0n, true);
  });
  view.setFloat64(40, config.k, true);
  view.setFloat64(48, config.damping, true);
  const words = [
    config.tile,
    config.x0,
    config.y0,
    config.nx,
    config.ny,
    layout.u,
    layout.prev,
    layout.halos,
    layout.picture,
    layout.send,
  ];
  words.forEach((word, i) => view.setUint32(56 + 4 * i, word, true));
  return bytes;
}

/** The tile's device memory at step 0: the starting field, everything else zero. */
export function tileDeviceData(
  config: GpuTileConfig,
  initial: InitialField,
): Uint8Array {
  const layout = tileLayout(config.nx, config.ny);
  const bytes = new Uint8Array(layout.bytes);
  const cells = (config.nx + 2) * (config.ny + 2);
  new Float32Array(bytes.buffer, layout.u, cells).set(initial.u);
  new Float32Array(bytes.buffer, layout.prev, cells).set(initial.prev);
  return bytes;
}

/**
 * The GPU side of the tile actor; `initial` computes a tile's starting
 * field (the CPU side's own initialisation, so both start from the same
 * bytes).
 */
export function tileGpuSide(
  initial: (config: GpuTileConfig) => InitialField,
): GpuActorImplementation {
  return {
    source: {
      cuda: TILE_CUDA_SOURCE,
      entry: "wavesim_tile_pool",
      name: "wavesim_tile.cu",
    },
    stateBytes: TILE_STATE_BYTES,
    deviceData: (config) =>
      tileDeviceData(
        config as GpuTileConfig,
        initial(config as GpuTileConfig),
      ),
    encodeConfig: (config, context) =>
      encodeTileConfig(config as GpuTileConfig, context),
  };
}
