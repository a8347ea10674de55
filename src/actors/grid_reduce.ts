/**
 * Grid-scale reduction: a group of actors, one GPU block each, that reduce
 * one shared buffer of single-precision values (sum, min or max) across
 * blocks with no grid-wide barrier in the resident loop.
 *
 * Each member owns a shard of the buffer (member `m` of `n`: values
 * `⌊length·m/n⌋` to `⌊length·(m+1)/n⌋`, intersected with the request's
 * range). On a request it reduces its shard block-wide, writes its partial
 * into its slot of the group's shared memory, fences, and takes a ticket of
 * the group's arrival counter (`atomicAdd`): the member that takes the last
 * ticket (`n − 1`) — whichever it is — combines the `n` partials in member
 * order, resets the counter, and answers with the total (`final: 1`); the
 * others answer with their partial (`final: 0`). Nobody waits for anybody:
 * a block that is not last goes back to its queues at once. The host sends
 * the request to every member and takes the final answer
 * ({@linkcode GridReduce.reduce}), one reduction at a time.
 *
 * The buffer and the partials live in memory both sides see: on the CUDA
 * backend a host-mapped block shared by the members (`sharedMapped`), on the
 * CPU backend a `SharedArrayBuffer` (the members are Workers; the counter is
 * an `Atomics.add`). Filling the buffer is a host write
 * ({@linkcode GridReduce.fill}); no message carries values. Sums accumulate
 * in double precision, in a different order on each backend: exact for
 * integer values, within rounding otherwise; min and max are exact.
 *
 * ```ts
 * import { RingKernel } from "../runtime.ts";
 * import { launchGridReduce } from "./grid_reduce.ts";
 * import { ReduceOp } from "./schemas.ts";
 *
 * await using rt = await RingKernel.create({ backend: "auto", quiet: true });
 * const grid = await launchGridReduce(rt, "sum", { members: 4, length: 1000 });
 * grid.fill(Array.from({ length: 1000 }, (_, i) => i));
 * console.log(await grid.reduce(ReduceOp.Sum)); // { value: 499500, count: 1000, op: 0 }
 * ```
 *
 * @module
 */

import type { ActorContext, ActorDefinition } from "../actor.ts";
import {
  defineGpuActor,
  type GpuConfigContext,
} from "../backend/cuda/gpu_actor.ts";
import { RingKernelError } from "../errors.ts";
import type { Kernel } from "../kernel.ts";
import { defineMessage, type MessageSchema } from "../message.ts";
import type { RingKernel } from "../runtime.ts";
import { ReduceOp, ReduceRequest } from "./schemas.ts";

/** URL of this module, for `launch(name, { actor: { module: GRID_REDUCE_MODULE } })`. */
export const GRID_REDUCE_MODULE: string = import.meta.url;

/** Most members of one group. */
export const MAX_GRID_MEMBERS = 64;
/** Largest buffer of one group. */
export const MAX_GRID_LENGTH = 2 ** 26;

/**
 * Answer of a member: its partial (`final: 0`) or, from the member that
 * arrived last, the total of the group (`final: 1`); `count` values reduced
 * (0 gives a value of 0).
 */
export const GridReduceResult: MessageSchema<{
  readonly value: "f64";
  readonly count: "u32";
  readonly op: "u32";
  readonly member: "u32";
  readonly final: "u32";
}> = defineMessage({
  name: "ringkernel.GridReduceResult",
  typeId: 0x524b0111,
  fields: {
    value: "f64",
    count: "u32",
    op: "u32",
    member: "u32",
    final: "u32",
  },
});

/** Bytes before the partials: the arrival counter and the group's shape. */
const HEADER_BYTES = 16;
/** Bytes of one member's partial: f64 value, u32 count, u32 reserved. */
const PARTIAL_BYTES = 16;

/** Byte offset of the values in a group of `members`. */
function valuesOffset(members: number): number {
  return (HEADER_BYTES + members * PARTIAL_BYTES + 15) & ~15;
}

/** The shard of member `member` of `members` over `length` values. */
export function gridShard(
  member: number,
  members: number,
  length: number,
): { begin: number; end: number } {
  return {
    begin: Math.floor(length * member / members),
    end: Math.floor(length * (member + 1) / members),
  };
}

/**
 * The memory a group shares: the arrival counter, one partial per member,
 * then the values. It starts as a `SharedArrayBuffer` (what CPU members
 * use); on the CUDA backend the first member's start moves it into a
 * host-mapped block (the values written so far go along), which the host's
 * {@linkcode GridMemory.values} then shows.
 */
export class GridMemory {
  /** Members of the group. */
  readonly members: number;
  /** Values in the buffer. */
  readonly length: number;
  /** Bytes of the whole block. */
  readonly byteLength: number;
  /** The CPU members' memory (and the host's until the CUDA binding). */
  readonly buffer: SharedArrayBuffer;
  #mapped: Uint8Array | undefined;

  /** A zeroed group memory of `members` members and `length` values. */
  constructor(options: { members: number; length: number }) {
    const { members, length } = options;
    if (
      !Number.isSafeInteger(members) || members < 1 ||
      members > MAX_GRID_MEMBERS
    ) {
      throw new RangeError(
        `grid reduce: members ${members} must be an integer in 1..${MAX_GRID_MEMBERS}`,
      );
    }
    if (
      !Number.isSafeInteger(length) || length < 0 || length > MAX_GRID_LENGTH
    ) {
      throw new RangeError(
        `grid reduce: length ${length} must be an integer in 0..${MAX_GRID_LENGTH}`,
      );
    }
    this.members = members;
    this.length = length;
    this.byteLength = valuesOffset(members) + 4 * Math.max(length, 1);
    this.buffer = new SharedArrayBuffer(this.byteLength);
    const header = new Uint32Array(this.buffer, 0, 4);
    header[1] = members;
    header[2] = length;
  }

  /** The bytes every side sees now. */
  get bytes(): Uint8Array {
    return this.#mapped ?? new Uint8Array(this.buffer);
  }

  /** The values (writes are seen by the members). */
  get values(): Float32Array {
    const bytes = this.bytes;
    return new Float32Array(
      bytes.buffer,
      bytes.byteOffset + valuesOffset(this.members),
      this.length,
    );
  }

  /** Whether the memory moved into host-mapped memory (the CUDA backend). */
  get mapped(): boolean {
    return this.#mapped !== undefined;
  }

  /** @internal Moves the memory into the mapped block `bytes` (once; later calls check the size). */
  bindMapped(bytes: Uint8Array): void {
    if (this.#mapped !== undefined) return;
    if (bytes.byteLength < this.byteLength) {
      throw new RingKernelError(
        `grid reduce: a mapped block of ${bytes.byteLength} bytes for ${this.byteLength}`,
      );
    }
    bytes.set(new Uint8Array(this.buffer));
    this.#mapped = bytes;
  }
}

/** A member's configuration: the group's memory and its index. */
export interface GridMemberConfig {
  /** The group's memory. */
  readonly grid: GridMemory;
  /** Its index in the group. */
  readonly member: number;
}

/** The structured clone a CPU member receives of {@linkcode GridMemory}. */
interface GridMemoryClone {
  readonly members: number;
  readonly length: number;
  readonly buffer: SharedArrayBuffer;
}

/** What a CPU member keeps: views of the group's memory. */
interface CpuMemberState {
  readonly member: number;
  readonly members: number;
  readonly counter: Int32Array;
  readonly partials: DataView;
  readonly values: Float32Array;
}

function configOf(config: unknown): { grid: GridMemoryClone; member: number } {
  const c = config as Partial<GridMemberConfig> | undefined;
  const grid = c?.grid as GridMemoryClone | undefined;
  if (
    grid === undefined || !(grid.buffer instanceof SharedArrayBuffer) ||
    !Number.isSafeInteger(c?.member) || c!.member! < 0 ||
    c!.member! >= grid.members
  ) {
    throw new RingKernelError(
      "grid reduce: config must be { grid: GridMemory, member } (use launchGridReduce)",
    );
  }
  return { grid, member: c!.member! };
}

/** Combines two partial results of `op`. */
function combine(op: number, a: number, b: number): number {
  return op === ReduceOp.Sum
    ? a + b
    : op === ReduceOp.Min
    ? Math.min(a, b)
    : Math.max(a, b);
}

/** The CPU member's handler: the device code's algorithm with `Atomics`. */
function handleCpu(
  request: { op: number; offset: number; count: number },
  ctx: ActorContext<CpuMemberState>,
) {
  const s = ctx.state;
  const op = request.op;
  if (op !== ReduceOp.Sum && op !== ReduceOp.Min && op !== ReduceOp.Max) {
    throw new RingKernelError(`grid reduce: unknown op ${op}`);
  }
  const length = s.values.length;
  const shard = gridShard(s.member, s.members, length);
  const from = Math.min(request.offset, length);
  const to = Math.min(from + request.count, length);
  const begin = Math.max(shard.begin, from);
  const end = Math.max(begin, Math.min(shard.end, to));
  let acc = op === ReduceOp.Sum
    ? 0
    : op === ReduceOp.Min
    ? Infinity
    : -Infinity;
  for (let i = begin; i < end; i++) acc = combine(op, acc, s.values[i]);
  const count = end - begin;
  s.partials.setFloat64(s.member * PARTIAL_BYTES, count > 0 ? acc : 0, true);
  s.partials.setUint32(s.member * PARTIAL_BYTES + 8, count, true);
  // Sequentially consistent: the partial above is seen by whoever is last.
  const ticket = Atomics.add(s.counter, 0, 1);
  if (ticket !== s.members - 1) {
    return {
      value: count > 0 ? acc : 0,
      count,
      op,
      member: s.member,
      final: 0,
    };
  }
  let total = op === ReduceOp.Sum
    ? 0
    : op === ReduceOp.Min
    ? Infinity
    : -Infinity;
  let totalCount = 0;
  for (let m = 0; m < s.members; m++) {
    const n = s.partials.getUint32(m * PARTIAL_BYTES + 8, true);
    if (n === 0) continue;
    total = combine(op, total, s.partials.getFloat64(m * PARTIAL_BYTES, true));
    totalCount += n;
  }
  Atomics.store(s.counter, 0, 0);
  return {
    value: totalCount > 0 ? total : 0,
    count: totalCount,
    op,
    member: s.member,
    final: 1,
  };
}

/**
 * The device code: a block-mode actor (the whole block reduces each
 * request's shard); thread 0 publishes the partial and takes the ticket.
 */
export const GRID_REDUCE_SOURCE = `#include "ringkernel.cuh"
struct grid_request { rk_u32 op; rk_u32 offset; rk_u32 count; };
struct grid_result { double value; rk_u32 count; rk_u32 op; rk_u32 member; rk_u32 final_; };
static_assert(sizeof(grid_result) == 24, "grid_result mirrors ringkernel.GridReduceResult");
/** The member's configuration (src/actors/grid_reduce.ts encodeGridConfig). */
struct grid_config { rk_u64 shared; rk_u32 length; rk_u32 member; rk_u32 members; rk_u32 values_offset; };
/** One member's partial in the shared block, after the 16-byte header (its first word: the counter). */
struct grid_partial { double value; rk_u32 count; rk_u32 reserved; };

__device__ __forceinline__ double grid_combine(rk_u32 op, double a, double b) {
  return op == 0u ? a + b : op == 1u ? fmin(a, b) : fmax(a, b);
}

struct grid_reduce_traits : rk_actor_base<grid_request, grid_result, rk_no_state, RK_MODE_BLOCK> {
  __device__ static rk_i32 handle(const grid_request& in, grid_result& out, rk_no_state&, rk_actor_ctx& ctx) {
    const rk_u32 op = in.op;
    if (op > 2u) return RK_REJECT;  // every member rejects it: nobody arrives
    const grid_config* c = reinterpret_cast<const grid_config*>(ctx.config);
    rk_u8* base = reinterpret_cast<rk_u8*>(c->shared);
    rk_u32* arrived = reinterpret_cast<rk_u32*>(base);
    volatile grid_partial* partials = reinterpret_cast<volatile grid_partial*>(base + 16);
    const float* values = reinterpret_cast<const float*>(base + c->values_offset);
    const rk_u64 length = c->length;
    const rk_u64 shard_begin = length * c->member / c->members;
    const rk_u64 shard_end = length * (c->member + 1u) / c->members;
    const rk_u64 from = in.offset < length ? in.offset : length;
    const rk_u64 want = from + in.count;
    const rk_u64 to = want < length ? want : length;
    const rk_u64 begin = shard_begin > from ? shard_begin : from;
    const rk_u64 end_ = shard_end < to ? shard_end : to;
    const rk_u64 end = end_ > begin ? end_ : begin;
    const double identity = op == 0u ? 0.0 : op == 1u ? __longlong_as_double(0x7ff0000000000000ll)
                                                      : __longlong_as_double(0xfff0000000000000ll);
    double acc = identity;
    for (rk_u64 j = begin + threadIdx.x; j < end; j += blockDim.x) acc = grid_combine(op, acc, values[j]);
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      acc = grid_combine(op, acc, __shfl_down_sync(0xffffffffu, acc, offset));
    }
    if ((threadIdx.x & 31u) == 0) ctx.scratch[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
      double mine = identity;
      for (rk_u32 w = 0; w < blockDim.x / 32u; ++w) mine = grid_combine(op, mine, ctx.scratch[w]);
      const rk_u32 count = static_cast<rk_u32>(end - begin);
      partials[c->member].value = count > 0u ? mine : 0.0;
      partials[c->member].count = count;
      __threadfence();  // the partial before the ticket: the last member reads it
      const rk_u32 ticket = atomicAdd(arrived, 1u);
      out.op = op;
      out.member = c->member;
      if (ticket != c->members - 1u) {
        out.value = count > 0u ? mine : 0.0;
        out.count = count;
        out.final_ = 0u;
      } else {
        __threadfence();  // every partial after every ticket
        double total = identity;
        rk_u32 total_count = 0u;
        for (rk_u32 m = 0; m < c->members; ++m) {
          const rk_u32 n = partials[m].count;
          if (n == 0u) continue;
          total = grid_combine(op, total, partials[m].value);
          total_count += n;
        }
        atomicExch(arrived, 0u);  // the next reduction starts from 0
        out.value = total_count > 0u ? total : 0.0;
        out.count = total_count;
        out.final_ = 1u;
      }
    }
    __syncthreads();
    return RK_REPLY;
  }
};
RK_ACTOR_KERNEL(grid_reduce_pool, grid_reduce_traits)
`;

/** The member's \`grid_config\`. */
function encodeGridConfig(
  config: unknown,
  context: GpuConfigContext,
): Uint8Array {
  const c = config as Partial<GridMemberConfig> | undefined;
  const grid = c?.grid;
  if (!(grid instanceof GridMemory)) {
    throw new RingKernelError(
      "grid reduce: config.grid must be a GridMemory (use launchGridReduce)",
    );
  }
  const { member } = configOf(config);
  const block = context.sharedMapped(grid, grid.byteLength);
  grid.bindMapped(block.bytes);
  const bytes = new Uint8Array(24);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, block.deviceAddress, true);
  view.setUint32(8, grid.length, true);
  view.setUint32(12, member, true);
  view.setUint32(16, grid.members, true);
  view.setUint32(20, valuesOffset(grid.members), true);
  return bytes;
}

/** A member of a grid reduction (launch it through {@linkcode launchGridReduce}). */
export const gridReduceMember: ActorDefinition<
  typeof ReduceRequest.spec,
  typeof GridReduceResult.spec,
  CpuMemberState
> = defineGpuActor({
  input: ReduceRequest,
  output: GridReduceResult,
  init: ({ config }): CpuMemberState => {
    const { grid, member } = configOf(config);
    return {
      member,
      members: grid.members,
      counter: new Int32Array(grid.buffer, 0, 1),
      partials: new DataView(grid.buffer, HEADER_BYTES),
      values: new Float32Array(
        grid.buffer,
        valuesOffset(grid.members),
        grid.length,
      ),
    };
  },
  handle: handleCpu,
  gpu: {
    source: {
      cuda: GRID_REDUCE_SOURCE,
      entry: "grid_reduce_pool",
      name: "grid_reduce.cu",
    },
    encodeConfig: encodeGridConfig,
  },
});
export default gridReduceMember;

/** Options of {@linkcode launchGridReduce}. */
export interface GridReduceOptions {
  /** Members (blocks) of the group: 1 to {@linkcode MAX_GRID_MEMBERS}. */
  readonly members: number;
  /** Values in the buffer (zeros until {@linkcode GridReduce.fill}). */
  readonly length: number;
}

/** Options of {@linkcode GridReduce.reduce}. */
export interface GridReduceRequestOptions {
  /** First value of the range (default 0). */
  readonly offset?: number;
  /** Values in the range (default: to the end). */
  readonly count?: number;
  /** Deadline of the whole reduction, in ms (default 10 000). */
  readonly timeoutMs?: number;
}

/** A reduction's result: the value, the values reduced, the op. */
export interface GridReduceValue {
  /** Sum, min or max (0 when no value was reduced). */
  readonly value: number;
  /** Values reduced. */
  readonly count: number;
  /** The op ({@linkcode ReduceOp}). */
  readonly op: number;
}

/** A launched grid reduction: its members, its buffer, and its requests. */
export class GridReduce {
  /** The members, in shard order. */
  readonly members: readonly Kernel[];
  /** The group's memory. */
  readonly memory: GridMemory;
  #queue: Promise<unknown> = Promise.resolve();

  /** @internal Use {@linkcode launchGridReduce}. */
  constructor(members: readonly Kernel[], memory: GridMemory) {
    this.members = members;
    this.memory = memory;
  }

  /** The buffer's values (a view: writes are seen by the members). */
  get values(): Float32Array {
    return this.memory.values;
  }

  /**
   * Writes `data` into the buffer from `offset` (a host write into memory
   * the members read; do not fill during a reduction).
   */
  fill(data: ArrayLike<number>, offset = 0): void {
    const values = this.memory.values;
    if (
      !Number.isSafeInteger(offset) || offset < 0 ||
      offset + data.length > values.length
    ) {
      throw new RangeError(
        `grid reduce: ${data.length} values at ${offset} do not fit ${values.length}`,
      );
    }
    values.set(data, offset);
  }

  /**
   * Reduces the range with `op` across every member and resolves with the
   * total (one reduction at a time: a second call waits for the first).
   *
   * @throws {RangeError} for an unknown op.
   * @throws {TimeoutError} when a member does not answer in time.
   */
  reduce(
    op: number,
    options: GridReduceRequestOptions = {},
  ): Promise<GridReduceValue> {
    if (op !== ReduceOp.Sum && op !== ReduceOp.Min && op !== ReduceOp.Max) {
      return Promise.reject(new RangeError(`grid reduce: unknown op ${op}`));
    }
    const offset = options.offset ?? 0;
    const count = options.count ?? Math.max(0, this.memory.length - offset);
    for (const [name, v] of [["offset", offset], ["count", count]] as const) {
      if (!Number.isSafeInteger(v) || v < 0 || v > 0xffff_ffff) {
        return Promise.reject(
          new RangeError(`grid reduce: ${name} ${v} must be a u32`),
        );
      }
    }
    const timeoutMs = options.timeoutMs ?? 10_000;
    const run = async () => {
      const replies = await Promise.all(
        this.members.map((k) =>
          k.call({ op, offset, count }, { timeoutMs }) as Promise<
            { value: number; count: number; op: number; final: number }
          >
        ),
      );
      const finals = replies.filter((r) => r.final === 1);
      if (finals.length !== 1) {
        throw new RingKernelError(
          `grid reduce: ${finals.length} members answered last (expected 1)`,
        );
      }
      const { value, count: n } = finals[0];
      return { value, count: n, op };
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => {});
    return result;
  }

  /** Terminates every member. */
  async terminate(options: { timeoutMs?: number } = {}): Promise<void> {
    await Promise.all(this.members.map((k) => k.terminate(options)));
  }
}

/**
 * Launches a grid reduction of `options.members` members named
 * `${name}-0` … as one group ({@linkcode RingKernel.launchGroup}: one pool
 * kernel on the CUDA backend, Workers on the CPU backend).
 */
export async function launchGridReduce(
  rt: RingKernel,
  name: string,
  options: GridReduceOptions,
): Promise<GridReduce> {
  const memory = new GridMemory(options);
  const kernels = await rt.launchGroup(
    Array.from({ length: memory.members }, (_, member) => ({
      name: `${name}-${member}`,
      options: {
        actor: { module: GRID_REDUCE_MODULE, export: "gridReduceMember" },
        config: { grid: memory, member } satisfies GridMemberConfig,
      },
    })),
  );
  return new GridReduce(kernels, memory);
}
