// Built-in actors of the kernel bundle, hosted by one pool kernel,
// rk_actor_pool: each block runs the actor kind its descriptor names, with
// the device actor runtime of ringkernel.cuh. Also two small actors written
// the way a user writes one (RK_DEFINE_ACTOR, RK_DEFINE_STATEFUL_ACTOR).
#include <stddef.h>
#include <stdint.h>

#include "ringkernel.cuh"

// BEGIN GENERATED MESSAGES (src/backend/cuda/device_messages.ts; do not edit)
/* Message "ringkernel.Echo": 24 bytes, align 8. Generated; do not edit. */
#define RINGKERNEL_ECHO_TYPE_ID 0x524b0001u
#define RINGKERNEL_ECHO_SIZE 24u
typedef struct ringkernel_echo {
  uint64_t seq;
  double value;
  uint32_t tag;
} ringkernel_echo;
static_assert(sizeof(ringkernel_echo) == 24, "ringkernel_echo: size");
static_assert(alignof(ringkernel_echo) == 8, "ringkernel_echo: alignment");
static_assert(offsetof(ringkernel_echo, seq) == 0, "ringkernel_echo.seq: offset");
static_assert(offsetof(ringkernel_echo, value) == 8, "ringkernel_echo.value: offset");
static_assert(offsetof(ringkernel_echo, tag) == 16, "ringkernel_echo.tag: offset");

/* Message "ringkernel.AccumulatorAdd": 8 bytes, align 8. Generated; do not edit. */
#define RINGKERNEL_ACCUMULATOR_ADD_TYPE_ID 0x524b0002u
#define RINGKERNEL_ACCUMULATOR_ADD_SIZE 8u
typedef struct ringkernel_accumulator_add {
  double value;
} ringkernel_accumulator_add;
static_assert(sizeof(ringkernel_accumulator_add) == 8, "ringkernel_accumulator_add: size");
static_assert(alignof(ringkernel_accumulator_add) == 8, "ringkernel_accumulator_add: alignment");
static_assert(offsetof(ringkernel_accumulator_add, value) == 0, "ringkernel_accumulator_add.value: offset");

/* Message "ringkernel.AccumulatorTotal": 16 bytes, align 8. Generated; do not edit. */
#define RINGKERNEL_ACCUMULATOR_TOTAL_TYPE_ID 0x524b0003u
#define RINGKERNEL_ACCUMULATOR_TOTAL_SIZE 16u
typedef struct ringkernel_accumulator_total {
  double total;
  uint64_t count;
} ringkernel_accumulator_total;
static_assert(sizeof(ringkernel_accumulator_total) == 16, "ringkernel_accumulator_total: size");
static_assert(alignof(ringkernel_accumulator_total) == 8, "ringkernel_accumulator_total: alignment");
static_assert(offsetof(ringkernel_accumulator_total, total) == 0, "ringkernel_accumulator_total.total: offset");
static_assert(offsetof(ringkernel_accumulator_total, count) == 8, "ringkernel_accumulator_total.count: offset");

/* Message "ringkernel.SaxpyRequest": 132 bytes, align 4. Generated; do not edit. */
#define RINGKERNEL_SAXPY_REQUEST_TYPE_ID 0x524b0004u
#define RINGKERNEL_SAXPY_REQUEST_SIZE 132u
typedef struct ringkernel_saxpy_request {
  float a;
  float x[16];
  float y[16];
} ringkernel_saxpy_request;
static_assert(sizeof(ringkernel_saxpy_request) == 132, "ringkernel_saxpy_request: size");
static_assert(alignof(ringkernel_saxpy_request) == 4, "ringkernel_saxpy_request: alignment");
static_assert(offsetof(ringkernel_saxpy_request, a) == 0, "ringkernel_saxpy_request.a: offset");
static_assert(offsetof(ringkernel_saxpy_request, x) == 4, "ringkernel_saxpy_request.x: offset");
static_assert(offsetof(ringkernel_saxpy_request, y) == 68, "ringkernel_saxpy_request.y: offset");

/* Message "ringkernel.SaxpyResult": 64 bytes, align 4. Generated; do not edit. */
#define RINGKERNEL_SAXPY_RESULT_TYPE_ID 0x524b0005u
#define RINGKERNEL_SAXPY_RESULT_SIZE 64u
typedef struct ringkernel_saxpy_result {
  float out[16];
} ringkernel_saxpy_result;
static_assert(sizeof(ringkernel_saxpy_result) == 64, "ringkernel_saxpy_result: size");
static_assert(alignof(ringkernel_saxpy_result) == 4, "ringkernel_saxpy_result: alignment");
static_assert(offsetof(ringkernel_saxpy_result, out) == 0, "ringkernel_saxpy_result.out: offset");

/* Message "ringkernel.ReduceRequest": 12 bytes, align 4. Generated; do not edit. */
#define RINGKERNEL_REDUCE_REQUEST_TYPE_ID 0x524b0101u
#define RINGKERNEL_REDUCE_REQUEST_SIZE 12u
typedef struct ringkernel_reduce_request {
  uint32_t op;
  uint32_t offset;
  uint32_t count;
} ringkernel_reduce_request;
static_assert(sizeof(ringkernel_reduce_request) == 12, "ringkernel_reduce_request: size");
static_assert(alignof(ringkernel_reduce_request) == 4, "ringkernel_reduce_request: alignment");
static_assert(offsetof(ringkernel_reduce_request, op) == 0, "ringkernel_reduce_request.op: offset");
static_assert(offsetof(ringkernel_reduce_request, offset) == 4, "ringkernel_reduce_request.offset: offset");
static_assert(offsetof(ringkernel_reduce_request, count) == 8, "ringkernel_reduce_request.count: offset");

/* Message "ringkernel.ReduceResult": 16 bytes, align 8. Generated; do not edit. */
#define RINGKERNEL_REDUCE_RESULT_TYPE_ID 0x524b0102u
#define RINGKERNEL_REDUCE_RESULT_SIZE 16u
typedef struct ringkernel_reduce_result {
  double value;
  uint32_t count;
  uint32_t op;
} ringkernel_reduce_result;
static_assert(sizeof(ringkernel_reduce_result) == 16, "ringkernel_reduce_result: size");
static_assert(alignof(ringkernel_reduce_result) == 8, "ringkernel_reduce_result: alignment");
static_assert(offsetof(ringkernel_reduce_result, value) == 0, "ringkernel_reduce_result.value: offset");
static_assert(offsetof(ringkernel_reduce_result, count) == 8, "ringkernel_reduce_result.count: offset");
static_assert(offsetof(ringkernel_reduce_result, op) == 12, "ringkernel_reduce_result.op: offset");

// END GENERATED MESSAGES

/** Copies `n` payload bytes in 4-byte words (payloads start 16-byte aligned in a slot). */
__device__ __forceinline__ void rk_copy_payload(rk_u8* to, const rk_u8* from, rk_u32 n, rk_u32 out_size) {
  const rk_u32 words = (n + 3u) / 4u;
  for (rk_u32 w = 0; w < words; ++w) reinterpret_cast<rk_u32*>(to)[w] = reinterpret_cast<const rk_u32*>(from)[w];
  for (rk_u32 w = words; w < (out_size + 3u) / 4u; ++w) reinterpret_cast<rk_u32*>(to)[w] = 0u;
}

/** echo: replies with the message it received. */
struct rk_builtin_echo : rk_actor_base<rk_raw_payload, rk_raw_payload, rk_no_state, RK_MODE_PARALLEL> {
  static constexpr bool raw = true;
  __device__ static rk_i32 handle(const rk_raw_payload& in, rk_raw_payload& out, rk_no_state&, rk_actor_ctx& ctx) {
    const rk_u32 n = ctx.input_size < ctx.output_size ? ctx.input_size : ctx.output_size;
    rk_copy_payload(out.bytes, in.bytes, n, ctx.output_size);
    return RK_REPLY;
  }
};

/** State of the accumulator. */
struct rk_accumulator_state {
  double total;
  unsigned long long count;
};

/** accumulator: adds each value to a running total; replies with the total and the count. */
struct rk_builtin_accumulator : rk_actor_base<ringkernel_accumulator_add, ringkernel_accumulator_total,
                                              rk_accumulator_state, RK_MODE_SEQUENTIAL> {
  __device__ static rk_i32 handle(const ringkernel_accumulator_add& in, ringkernel_accumulator_total& out,
                                  rk_accumulator_state& state, rk_actor_ctx&) {
    state.total = __dadd_rn(state.total, in.value);
    state.count += 1;
    out.total = state.total;
    out.count = state.count;
    return RK_REPLY;
  }
};

/** saxpy: replies with a*x + y over 16 lanes, rounded as the CPU actor rounds (no fused multiply-add). */
struct rk_builtin_saxpy
    : rk_actor_base<ringkernel_saxpy_request, ringkernel_saxpy_result, rk_no_state, RK_MODE_PARALLEL> {
  __device__ static rk_i32 handle(const ringkernel_saxpy_request& in, ringkernel_saxpy_result& out, rk_no_state&,
                                  rk_actor_ctx&) {
#pragma unroll
    for (int k = 0; k < 16; ++k) out.out[k] = __fadd_rn(__fmul_rn(in.a, in.x[k]), in.y[k]);
    return RK_REPLY;
  }
};

/** Combines two partial results of a reduction. */
__device__ __forceinline__ double rk_reduce_combine(rk_u32 op, double a, double b) {
  return op == 0u ? a + b : op == 1u ? fmin(a, b) : fmax(a, b);
}

/** reduce: sum, min or max over a range of the actor's device buffer, block-wide; an unknown op fails. */
struct rk_builtin_reduce
    : rk_actor_base<ringkernel_reduce_request, ringkernel_reduce_result, rk_no_state, RK_MODE_BLOCK> {
  __device__ static rk_i32 handle(const ringkernel_reduce_request& in, ringkernel_reduce_result& out, rk_no_state&,
                                  rk_actor_ctx& ctx) {
    const rk_u32 op = in.op;
    if (op > 2u) return RK_FAIL;  // as the CPU actor, which throws
    const rk_reduce_config* config = reinterpret_cast<const rk_reduce_config*>(ctx.config);
    const float* data = reinterpret_cast<const float*>(config->data);
    const rk_u64 length = data == nullptr ? 0u : config->length;
    const rk_u64 begin = in.offset < length ? in.offset : length;
    const rk_u64 want = begin + in.count;
    const rk_u64 end = want < length ? want : length;
    const double identity = op == 0u ? 0.0 : op == 1u ? __longlong_as_double(0x7ff0000000000000ll)
                                                      : __longlong_as_double(0xfff0000000000000ll);
    double acc = identity;
    for (rk_u64 j = begin + threadIdx.x; j < end; j += blockDim.x) acc = rk_reduce_combine(op, acc, data[j]);
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      acc = rk_reduce_combine(op, acc, __shfl_down_sync(0xffffffffu, acc, offset));
    }
    if ((threadIdx.x & 31u) == 0) ctx.scratch[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
      double total = identity;
      for (rk_u32 w = 0; w < blockDim.x / 32u; ++w) total = rk_reduce_combine(op, total, ctx.scratch[w]);
      out.value = end > begin ? total : 0.0;
      out.count = static_cast<uint32_t>(end - begin);
      out.op = op;
    }
    __syncthreads();
    return RK_REPLY;
  }
};

/** forwarder: sends every message on, K2K, to the actor its configuration names. */
struct rk_builtin_forwarder : rk_actor_base<rk_raw_payload, rk_raw_payload, rk_no_state, RK_MODE_PARALLEL> {
  static constexpr bool raw = true;
  static constexpr bool replies = false;
  static constexpr bool forwards = true;
  __device__ static rk_i32 handle(const rk_raw_payload&, rk_raw_payload&, rk_no_state&, rk_actor_ctx&) {
    return RK_FORWARD;
  }
};

/**
 * K2K generator (benchmarks): for each command, an Echo whose `seq` is N,
 * emits N Echo messages (seq 0..N-1, tag 1 on the last) to the actor its
 * configuration names, or to its own reply queue when it names none.
 */
struct rk_builtin_k2k_source : rk_actor_base<ringkernel_echo, ringkernel_echo, rk_no_state, RK_MODE_BLOCK> {
  static constexpr bool replies = false;
  __device__ static rk_i32 handle(const ringkernel_echo& in, ringkernel_echo&, rk_no_state&, rk_actor_ctx& ctx) {
    rk_pool_shared& sh = rk_pool_smem();
    rk_run& r = *static_cast<rk_run*>(ctx.run);
    const bool leader = threadIdx.x == 0;
    const rk_u64 total = in.seq;
    const rk_u64 hash = reinterpret_cast<const rk_target_config*>(ctx.config)->target_hash;
    rk_queue target;
    if (leader) {
      rk_route route;
      // While the host rewrites the table, wait for it (about 100 ms at most) rather than reject.
      rk_u32 lookup = RK_ROUTE_ABSENT;
      for (rk_u32 attempt = 0; hash != 0 && attempt < 100000u; ++attempt) {
        lookup = rk_route_lookup(reinterpret_cast<const rk_route_table*>(sh.desc.routes), hash, &route);
        if (lookup != RK_ROUTE_BUSY) break;
        __nanosleep(1000);
      }
      const bool found = lookup == RK_ROUTE_FOUND && route.slot_size >= 64u;
      sh.words[10] = hash == 0 ? 2u : found ? 1u : 0u;
      if (found) {
        sh.route = route;
        sh.words[11] = rk_load_volatile(&reinterpret_cast<rk_queue_header*>(route.inbox)->capacity) - 1u;
      }
    }
    __syncthreads();
    const rk_u32 mode = sh.words[10];
    if (mode == 0u) {
      __syncthreads();
      return RK_REJECT;
    }
    const bool to_host = mode == 2u;
    target.header = reinterpret_cast<rk_queue_header*>(sh.route.inbox);
    target.slots = reinterpret_cast<rk_u8*>(sh.route.inbox) + RK_QUEUE_HEADER_SIZE;
    target.mask = sh.words[11];
    target.slot_size = sh.route.slot_size;
    __syncthreads();
    rk_u64 emitted = 0;
    rk_u32 chunks = 0;
    while (emitted < total) {
      // A long run still stops when told to abort (one flag read per 64 chunks).
      if ((++chunks & 63u) == 0u && (rk_read_run_flags(r.cb) & RK_RUN_ABORT)) return RK_HANDLED;
      const rk_u64 left = total - emitted;
      const rk_u32 chunk = left < RK_POOL_THREADS ? static_cast<rk_u32>(left) : RK_POOL_THREADS;
      rk_u32 granted = 0;
      rk_u32 first = 0;
      if (to_host) {
        granted = rk_block_producer_reserve(r.out, &r.out_p, chunk);
        first = r.out_p.tail;
      } else {
        if (leader) {
          sh.words[12] = rk_mpsc_reserve(target, chunk, &sh.words[13]);
        }
        __syncthreads();
        granted = sh.words[12];
        first = sh.words[13];
        __syncthreads();
      }
      if (granted == 0) {
        // Full: wait for the consumer, unless told to stop.
        const rk_u32 flags = rk_read_run_flags(r.cb);
        if (flags & RK_RUN_ABORT) return RK_HANDLED;
        __nanosleep(512);
        continue;
      }
      if (leader) sh.wide[3] = rk_hlc_reserve(&r.clock, granted);
      __syncthreads();
      const rk_u64 stamp_base = sh.wide[3];
      for (rk_u32 k = threadIdx.x; k < granted * 4u; k += blockDim.x) {
        const rk_u32 m = k >> 2;
        const rk_u64 seq = emitted + m;
        const rk_u32 index = first + m;
        uint4 v;
        switch (k & 3u) {
          case 0u:
            v = make_uint4(sh.desc.input_type_id, RINGKERNEL_ECHO_SIZE, 0u, 0u);
            break;
          case 1u: {
            const rk_u64 ts = stamp_base + m;
            // The stamp (.w) is not stored to a K2K slot here; host slots have none.
            v = make_uint4(static_cast<rk_u32>(ts), static_cast<rk_u32>(ts >> 32), sh.desc.actor_id, 0u);
            break;
          }
          case 2u:
            v = make_uint4(static_cast<rk_u32>(seq), static_cast<rk_u32>(seq >> 32), 0u, 0u);
            break;
          default:
            v = make_uint4(seq + 1u == total ? 1u : 0u, 0u, 0u, 0u);
            break;
        }
        if (to_host) {
          __stcs(reinterpret_cast<uint4*>(rk_queue_slot(r.out, index)) + (k & 3u), v);
        } else {
          uint4* to = reinterpret_cast<uint4*>(rk_queue_slot(target, index)) + (k & 3u);
          if ((k & 3u) == 1u) {
            rk_store_stamp_word(to, v);  // the stamp is published after the fence
          } else {
            *to = v;
          }
        }
      }
      // Barrier, then a fence by each publishing thread, then its store.
      __syncthreads();
      if (to_host ? leader : threadIdx.x < granted) {
        if (to_host) {
          __threadfence_system();
        } else {
          __threadfence();
        }
      }
      if (to_host) {
        r.out_p.tail += granted;
        if (leader) rk_store_volatile(&r.out.header->tail, r.out_p.tail);
      } else if (threadIdx.x < granted) {
        rk_store_volatile(rk_queue_stamp(target, first + threadIdx.x), first + threadIdx.x + 1u);
      }
      emitted += granted;
    }
    return RK_HANDLED;
  }
};

/**
 * K2K counter (benchmarks): counts Echo messages; replies to the first of a
 * run (seq 0) and the last (tag 1) with seq = %globaltimer ns, value = the
 * count so far, and the message's tag.
 */
struct rk_builtin_k2k_sink : rk_actor_base<ringkernel_echo, ringkernel_echo, rk_no_state, RK_MODE_PARALLEL> {
  __device__ static rk_i32 handle(const ringkernel_echo& in, ringkernel_echo& out, rk_no_state&, rk_actor_ctx& ctx) {
    if (in.seq != 0u && in.tag != 1u) return RK_HANDLED;
    out.seq = rk_globaltimer_ns();
    out.value = static_cast<double>(ctx.sequence + 1u);
    out.tag = in.tag;
    return RK_REPLY;
  }
};

/**
 * The pool kernel of the built-in actors: launch one block of RK_POOL_THREADS
 * threads per actor, with RK_POOL_SHARED_BYTES of dynamic shared memory;
 * `descriptors[b]` is the device address of block b's rk_actor_desc.
 */
extern "C" __global__ void __launch_bounds__(RK_POOL_THREADS) rk_actor_pool(const rk_u64* descriptors, rk_u32 count) {
  if (blockIdx.x >= count || !rk_pool_enter(descriptors)) return;
  rk_pool_shared& sh = rk_pool_smem();
  switch (sh.desc.kind) {
    case RK_ACTOR_KIND_ECHO:
      rk_actor_run<rk_builtin_echo>(sh);
      break;
    case RK_ACTOR_KIND_ACCUMULATOR:
      rk_actor_run<rk_builtin_accumulator>(sh);
      break;
    case RK_ACTOR_KIND_SAXPY:
      rk_actor_run<rk_builtin_saxpy>(sh);
      break;
    case RK_ACTOR_KIND_REDUCE:
      rk_actor_run<rk_builtin_reduce>(sh);
      break;
    case RK_ACTOR_KIND_FORWARDER:
      rk_actor_run<rk_builtin_forwarder>(sh);
      break;
    case RK_ACTOR_KIND_K2K_SOURCE:
      rk_actor_run<rk_builtin_k2k_source>(sh);
      break;
    case RK_ACTOR_KIND_K2K_SINK:
      rk_actor_run<rk_builtin_k2k_sink>(sh);
      break;
    default:
      rk_actor_refuse(sh.desc, RK_ERROR_UNKNOWN_ACTOR_KIND);
      break;
  }
}

// ---------------------------------------------------------------------------
// User-style actors: what a user's .cu file looks like (include
// ringkernel.cuh, declare the message structs, write a handler, one macro).
// ---------------------------------------------------------------------------

/** Doubles `value`, keeps the rest. */
__device__ rk_i32 rk_example_double(const ringkernel_echo& in, ringkernel_echo& out, rk_actor_ctx&) {
  out = in;
  out.value = in.value * 2.0;
  return RK_REPLY;
}
RK_DEFINE_ACTOR(rk_example_double_pool, ringkernel_echo, ringkernel_echo, rk_example_double)

/** State of the counting example. */
struct rk_example_counter_state {
  unsigned long long count;
};

/** Replies with seq = messages counted so far; tag 0xdead makes it fail (a crash). */
__device__ rk_i32 rk_example_count(const ringkernel_echo& in, ringkernel_echo& out, rk_example_counter_state& state,
                                   rk_actor_ctx&) {
  if (in.tag == 0xdeadu) return RK_FAIL;
  state.count += 1;
  out = in;
  out.seq = state.count;
  return RK_REPLY;
}
RK_DEFINE_STATEFUL_ACTOR(rk_example_counter_pool, ringkernel_echo, ringkernel_echo, rk_example_counter_state,
                         rk_example_count)
