// ringkernel.cuh — the device ABI of ringkernel-ts.
//
// The structs below mirror the layouts declared once in src/layout.ts; the
// layout test compiles this header as C++17 host code against those
// declarations, so any drift fails a test. Device-only helpers are guarded by
// __CUDACC__ so the header also compiles under a plain host compiler.
//
// Queue protocol (src/layout.ts, QUEUE_HEADER): `head` and `tail` are
// free-running 32-bit counters; a message's slot is `counter & (capacity - 1)`.
// The consumer alone writes `head`, the producer alone writes `tail`, and a
// producer publishes `tail` only after its slot writes are visible.
#ifndef RINGKERNEL_CUH
#define RINGKERNEL_CUH

// Fixed-width scalars without <stdint.h>, so NVRTC needs no system headers.
// 64-bit fields are (unsigned) long long to match the CUDA atomic overloads.
typedef unsigned char rk_u8;
typedef unsigned short rk_u16;
typedef int rk_i32;
typedef unsigned int rk_u32;
typedef long long rk_i64;
typedef unsigned long long rk_u64;

static_assert(sizeof(rk_u8) == 1, "rk_u8 must be 1 byte");
static_assert(sizeof(rk_u16) == 2, "rk_u16 must be 2 bytes");
static_assert(sizeof(rk_i32) == 4, "rk_i32 must be 4 bytes");
static_assert(sizeof(rk_u32) == 4, "rk_u32 must be 4 bytes");
static_assert(sizeof(rk_i64) == 8, "rk_i64 must be 8 bytes");
static_assert(sizeof(rk_u64) == 8, "rk_u64 must be 8 bytes");

#define RK_OFFSETOF(type, field) __builtin_offsetof(type, field)

#if defined(__CUDACC__)
#define RK_HOST_DEVICE __host__ __device__
#else
#define RK_HOST_DEVICE
#endif

// ---------------------------------------------------------------------------
// Constants (values from src/layout.ts)
// ---------------------------------------------------------------------------

/** Version of the host/device ABI; stored in every control block. */
#define RK_ABI_VERSION 1u

/** QUEUE_HEADER.magic of an initialised queue ("RKQ1"). */
#define RK_QUEUE_MAGIC 0x31514b52u
/** QUEUE_HEADER.kind: one producer, one consumer. */
#define RK_QUEUE_KIND_SPSC 1u
/** QUEUE_HEADER.kind: many ticketed producers, one consumer. */
#define RK_QUEUE_KIND_MPSC 2u
/** Bytes of one queue line; head, tail and reserve each own one. */
#define RK_QUEUE_LINE 128u
/** Bytes of the queue header; slots follow it. */
#define RK_QUEUE_HEADER_SIZE 512u

/** ControlBlock.has_terminated: the actor loop is running. */
#define RK_TERMINATION_RUNNING 0
/** ControlBlock.has_terminated: the loop exited and will not run again. */
#define RK_TERMINATION_TERMINATED 1
/** ControlBlock.has_terminated: the loop exited and may be relaunched. */
#define RK_TERMINATION_RELAUNCHABLE 2

/** Bytes of the envelope at the start of every slot. */
#define RK_ENVELOPE_SIZE 32u
/** Number of slot size tiers. */
#define RK_SLOT_TIER_COUNT 4u
/** Default (smallest) slot size. */
#define RK_SLOT_SIZE_DEFAULT 64u
/** Largest slot size. */
#define RK_SLOT_SIZE_MAX 4096u

/** Slot size of tier `i` (64, 256, 1024, 4096); 0 when out of range. */
RK_HOST_DEVICE constexpr rk_u32 rk_slot_tier(rk_u32 i) {
  return i == 0 ? 64u : i == 1 ? 256u : i == 2 ? 1024u : i == 3 ? 4096u : 0u;
}

/** Whether `size` is one of the slot size tiers. */
RK_HOST_DEVICE constexpr bool rk_is_slot_tier(rk_u32 size) {
  return size == 64u || size == 256u || size == 1024u || size == 4096u;
}

// Error codes a device actor stores in ControlBlock.last_error_code.
/** No error. */
#define RK_ERROR_NONE 0
/** A queue header has the wrong magic. */
#define RK_ERROR_BAD_QUEUE_MAGIC 1
/** A queue's capacity is not a power of two (or is 0). */
#define RK_ERROR_BAD_QUEUE_CAPACITY 2
/** A queue's slot size is not a slot tier, or the actor needs matching slot sizes. */
#define RK_ERROR_BAD_SLOT_SIZE 3
/** A queue's kind is not one this actor supports. */
#define RK_ERROR_UNSUPPORTED_QUEUE_KIND 4
/** The control block's abi_version differs from RK_ABI_VERSION. */
#define RK_ERROR_ABI_MISMATCH 5

// ---------------------------------------------------------------------------
// Shared structs (src/layout.ts: CONTROL_BLOCK, TELEMETRY_BUFFER,
// QUEUE_HEADER, ENVELOPE)
// ---------------------------------------------------------------------------

/** Per-actor control block: the host writes the flags, the actor the counters. */
struct alignas(128) rk_control_block {
  rk_i32 is_active;
  rk_i32 should_terminate;
  rk_i32 has_terminated;
  rk_i32 errors_encountered;
  rk_i64 messages_processed;
  rk_i64 last_activity_ticks;
  rk_u64 input_queue_head_ptr;
  rk_u64 input_queue_tail_ptr;
  rk_u64 input_queue_buffer_ptr;
  rk_i32 input_queue_capacity;
  rk_i32 input_queue_message_size;
  rk_u64 output_queue_head_ptr;
  rk_u64 output_queue_tail_ptr;
  rk_u64 output_queue_buffer_ptr;
  rk_i32 output_queue_capacity;
  rk_i32 output_queue_message_size;
  rk_u32 abi_version;
  rk_u32 actor_id;
  rk_i32 should_abort;
  rk_i32 last_error_code;
  rk_u8 reserved_[16];
};

/** Per-actor telemetry. */
struct alignas(64) rk_telemetry {
  rk_u64 messages_processed;
  rk_u64 messages_dropped;
  rk_i64 last_processed_timestamp;
  rk_i32 queue_depth;
  rk_u32 reserved0_;
  rk_u64 total_latency_nanos;
  rk_u64 max_latency_nanos;
  rk_u64 min_latency_nanos;
  rk_i32 error_code;
  rk_u32 reserved1_;
};

/**
 * Queue header: head (consumer), tail and dropped (producer), reserve (MPSC
 * tickets), and configuration each on their own 128-byte line. Slots follow.
 */
struct alignas(128) rk_queue_header {
  rk_u32 head;
  rk_u8 line0_pad_[124];
  rk_u32 tail;
  rk_u32 dropped;
  rk_u8 line1_pad_[120];
  rk_u32 reserve;
  rk_u8 line2_pad_[124];
  rk_u32 capacity;
  rk_u32 slot_size;
  rk_u32 kind;
  rk_u32 magic;
  rk_i32 doorbell;
  rk_i32 sleeping;
  rk_u8 line3_pad_[104];
};

/** Envelope at the start of every slot; the payload follows it. */
struct alignas(8) rk_envelope {
  rk_u32 type_id;
  rk_u16 payload_length;
  rk_u16 flags;
  rk_u64 correlation_id;
  rk_u64 timestamp;
  rk_u32 source_actor;
  rk_u32 stamp;
};

static_assert(sizeof(rk_control_block) == 128, "rk_control_block is 128 B");
static_assert(alignof(rk_control_block) == 128, "rk_control_block is 128-aligned");
static_assert(RK_OFFSETOF(rk_control_block, messages_processed) == 16, "control block counters");
static_assert(RK_OFFSETOF(rk_control_block, input_queue_head_ptr) == 32, "input queue descriptor");
static_assert(RK_OFFSETOF(rk_control_block, output_queue_head_ptr) == 64, "output queue descriptor");
static_assert(RK_OFFSETOF(rk_control_block, abi_version) == 96, "abi_version");
static_assert(RK_OFFSETOF(rk_control_block, last_error_code) == 108, "last_error_code");
static_assert(sizeof(rk_telemetry) == 64, "rk_telemetry is 64 B");
static_assert(alignof(rk_telemetry) == 64, "rk_telemetry is 64-aligned");
static_assert(RK_OFFSETOF(rk_telemetry, total_latency_nanos) == 32, "telemetry latency");
static_assert(RK_OFFSETOF(rk_telemetry, error_code) == 56, "telemetry error_code");
static_assert(sizeof(rk_queue_header) == RK_QUEUE_HEADER_SIZE, "rk_queue_header is 512 B");
static_assert(RK_OFFSETOF(rk_queue_header, head) == 0, "head owns line 0");
static_assert(RK_OFFSETOF(rk_queue_header, tail) == RK_QUEUE_LINE, "tail owns line 1");
static_assert(RK_OFFSETOF(rk_queue_header, reserve) == 2 * RK_QUEUE_LINE, "reserve owns line 2");
static_assert(RK_OFFSETOF(rk_queue_header, capacity) == 3 * RK_QUEUE_LINE, "config on line 3");
static_assert(RK_OFFSETOF(rk_queue_header, sleeping) == 404, "sleeping");
static_assert(sizeof(rk_envelope) == RK_ENVELOPE_SIZE, "rk_envelope is 32 B");
static_assert(RK_OFFSETOF(rk_envelope, correlation_id) == 8, "correlation_id");
static_assert(RK_OFFSETOF(rk_envelope, stamp) == 28, "stamp");

// ---------------------------------------------------------------------------
// Device runtime
// ---------------------------------------------------------------------------
#if defined(__CUDACC__)

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 700
#error "ringkernel.cuh needs compute capability 7.0 or newer (__nanosleep, sys-scope loads)"
#endif

#ifndef RK_BACKOFF_SPIN_POLLS
/** Idle polls before the first sleep; one poll of host memory is ~1 µs already. */
#define RK_BACKOFF_SPIN_POLLS 16u
#endif
#ifndef RK_BACKOFF_MIN_NS
/** First sleep of an idle actor. */
#define RK_BACKOFF_MIN_NS 64u
#endif
#ifndef RK_BACKOFF_MAX_NS
/** Longest sleep of an idle actor; bounds the latency added to a message after idling. */
#define RK_BACKOFF_MAX_NS 4096u
#endif
#ifndef RK_MAX_BATCH
/** Most slots one block takes per poll (DESIGN.md: batch per poll). */
#define RK_MAX_BATCH 1024u
#endif

/** Nanoseconds of the GPU's global timer (%globaltimer). */
__device__ __forceinline__ rk_u64 rk_globaltimer_ns() {
  rk_u64 t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

/** Acquire load at system scope: later loads see what the writer published before this word. */
__device__ __forceinline__ rk_u32 rk_load_acquire_sys(const rk_u32* p) {
  rk_u32 v;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

/** Acquire load at system scope of a signed word (e.g. a flag that orders what follows it). */
__device__ __forceinline__ rk_i32 rk_load_acquire_sys(const rk_i32* p) {
  return static_cast<rk_i32>(rk_load_acquire_sys(reinterpret_cast<const rk_u32*>(p)));
}

/** Relaxed load at system scope (volatile): always re-read, never cached. */
__device__ __forceinline__ rk_u32 rk_load_volatile(const rk_u32* p) {
  return *reinterpret_cast<const volatile rk_u32*>(p);
}

/** Relaxed load at system scope of a signed word. */
__device__ __forceinline__ rk_i32 rk_load_volatile(const rk_i32* p) {
  return *reinterpret_cast<const volatile rk_i32*>(p);
}

/** Volatile store of an unsigned word (no fence). */
__device__ __forceinline__ void rk_store_volatile(rk_u32* p, rk_u32 v) {
  *reinterpret_cast<volatile rk_u32*>(p) = v;
}

/** Volatile store of a signed word (no fence). */
__device__ __forceinline__ void rk_store_volatile(rk_i32* p, rk_i32 v) {
  *reinterpret_cast<volatile rk_i32*>(p) = v;
}

/** Volatile store of a signed 64-bit word (no fence). */
__device__ __forceinline__ void rk_store_volatile(rk_i64* p, rk_i64 v) {
  *reinterpret_cast<volatile rk_i64*>(p) = v;
}

/** Publishes `v` at `p` after every earlier write of this thread is visible system-wide. */
__device__ __forceinline__ void rk_publish_sys(rk_u32* p, rk_u32 v) {
  __threadfence_system();
  rk_store_volatile(p, v);
}

/** Idle backoff: spin a few polls, then sleep with exponentially growing naps. */
struct rk_backoff {
  rk_u32 polls;
  rk_u32 sleep_ns;
};

/** A fresh backoff; call again after every busy poll. */
__device__ __forceinline__ void rk_backoff_reset(rk_backoff* b) {
  b->polls = 0;
  b->sleep_ns = RK_BACKOFF_MIN_NS;
}

/** Waits once after an idle poll: nothing for the first polls, then 64 ns up to 4 µs. */
__device__ __forceinline__ void rk_backoff_idle(rk_backoff* b) {
  if (b->polls < RK_BACKOFF_SPIN_POLLS) {
    ++b->polls;
    return;
  }
  __nanosleep(b->sleep_ns);
  rk_u32 next = b->sleep_ns * 2u;
  b->sleep_ns = next < RK_BACKOFF_MAX_NS ? next : RK_BACKOFF_MAX_NS;
}

/** A validated view of one queue: header, slots and configuration read once. */
struct rk_queue {
  rk_queue_header* header;
  rk_u8* slots;
  rk_u32 mask;
  rk_u32 slot_size;
};

/** The value of thread 0's `v` in every thread of the block (block-wide). */
__device__ __forceinline__ rk_u32 rk_block_broadcast(rk_u32 v) {
  __shared__ rk_u32 rk_broadcast_word;
  if (threadIdx.x == 0) rk_broadcast_word = v;
  __syncthreads();
  const rk_u32 out = rk_broadcast_word;
  __syncthreads();
  return out;
}

/**
 * Block-wide: validates a queue header and fills `q` identically in every
 * thread (thread 0 reads the configuration once). Returns RK_ERROR_NONE or an
 * error code; `kind` is the queue kind the caller supports.
 */
__device__ __forceinline__ rk_i32 rk_block_queue_open(rk_queue_header* h, rk_u32 kind, rk_queue* q) {
  const bool leader = threadIdx.x == 0;
  const rk_u32 magic = rk_block_broadcast(leader ? rk_load_volatile(&h->magic) : 0u);
  const rk_u32 capacity = rk_block_broadcast(leader ? rk_load_volatile(&h->capacity) : 0u);
  const rk_u32 slot_size = rk_block_broadcast(leader ? rk_load_volatile(&h->slot_size) : 0u);
  const rk_u32 actual_kind = rk_block_broadcast(leader ? rk_load_volatile(&h->kind) : 0u);
  if (magic != RK_QUEUE_MAGIC) return RK_ERROR_BAD_QUEUE_MAGIC;
  if (capacity == 0u || (capacity & (capacity - 1u)) != 0u || capacity > 0x80000000u) {
    return RK_ERROR_BAD_QUEUE_CAPACITY;
  }
  if (!rk_is_slot_tier(slot_size)) return RK_ERROR_BAD_SLOT_SIZE;
  if (actual_kind != kind) return RK_ERROR_UNSUPPORTED_QUEUE_KIND;
  q->header = h;
  q->slots = reinterpret_cast<rk_u8*>(h) + RK_QUEUE_HEADER_SIZE;
  q->mask = capacity - 1u;
  q->slot_size = slot_size;
  return RK_ERROR_NONE;
}

/** The slot of free-running counter `index`. */
__device__ __forceinline__ rk_u8* rk_queue_slot(const rk_queue& q, rk_u32 index) {
  return q.slots + static_cast<rk_u64>(index & q.mask) * q.slot_size;
}

/**
 * Consumer side, block-wide: how many messages wait in `q` after `head`, at
 * most `max_batch`, the same in every thread. Thread 0 does the one read of the
 * producer's `tail` (an acquire, so the slots it covers are visible after it).
 */
__device__ __forceinline__ rk_u32 rk_block_consumer_poll(const rk_queue& q, rk_u32 head, rk_u32 max_batch) {
  rk_u32 available = 0;
  if (threadIdx.x == 0) {
    available = rk_load_acquire_sys(&q.header->tail) - head;
    if (available > max_batch) available = max_batch;
  }
  return rk_block_broadcast(available);
}

/**
 * Consumer side, block-wide: returns `n` slots after `head` to the producer.
 * Every thread must be done reading them; returns the new head.
 */
__device__ __forceinline__ rk_u32 rk_block_consumer_release(const rk_queue& q, rk_u32 head, rk_u32 n) {
  __syncthreads();
  const rk_u32 next = head + n;
  if (threadIdx.x == 0) rk_publish_sys(&q.header->head, next);
  return next;
}

/** Producer state of one K2H queue: the local tail and the last head seen. */
struct rk_producer {
  rk_u32 tail;
  rk_u32 head_seen;
};

/**
 * Producer side, block-wide: free slots after `p->tail`, at most `wanted`, the
 * same in every thread. Re-reads the consumer's `head` only when the cached
 * value leaves fewer than `wanted` free, so a busy producer polls rarely.
 */
__device__ __forceinline__ rk_u32 rk_block_producer_reserve(const rk_queue& q, rk_producer* p, rk_u32 wanted) {
  const rk_u32 capacity = q.mask + 1u;
  if (capacity - (p->tail - p->head_seen) < wanted) {
    rk_u32 head = 0;
    if (threadIdx.x == 0) head = rk_load_acquire_sys(&q.header->head);
    p->head_seen = rk_block_broadcast(head);
  }
  const rk_u32 space = capacity - (p->tail - p->head_seen);
  return space < wanted ? space : wanted;
}

/**
 * Producer side, block-wide: publishes `n` written slots after `p->tail`
 * (barrier, system fence, then the tail store), and advances `p->tail`.
 */
__device__ __forceinline__ void rk_block_producer_publish(const rk_queue& q, rk_producer* p, rk_u32 n) {
  __syncthreads();
  p->tail += n;
  if (threadIdx.x == 0) rk_publish_sys(&q.header->tail, p->tail);
}

/**
 * Block-wide copy of `n` whole slots from `src` (starting at counter
 * `src_index`) to `dst` (at `dst_index`) with 16-byte loads that bypass the
 * cache (`__ldcv`) and streaming stores. Both queues must share a slot size.
 */
__device__ __forceinline__ void rk_block_copy_slots(const rk_queue& dst, rk_u32 dst_index, const rk_queue& src,
                                                    rk_u32 src_index, rk_u32 n) {
  const rk_u32 words_per_slot = src.slot_size / 16u;
  const rk_u32 shift = __ffs(words_per_slot) - 1u;  // slot sizes are powers of two
  const rk_u32 total = n * words_per_slot;
  for (rk_u32 k = threadIdx.x; k < total; k += blockDim.x) {
    const rk_u32 message = k >> shift;
    const rk_u32 word = k & (words_per_slot - 1u);
    const uint4* from = reinterpret_cast<const uint4*>(rk_queue_slot(src, src_index + message)) + word;
    uint4* to = reinterpret_cast<uint4*>(rk_queue_slot(dst, dst_index + message)) + word;
    __stcs(to, __ldcv(from));
  }
}

/**
 * Block-wide commit of one batch that was consumed from `in` and produced into
 * `out`: a barrier, ONE system fence, then the K2H tail and the H2K head.
 * Cheaper than a separate publish and release (each would fence).
 */
__device__ __forceinline__ void rk_block_commit(const rk_queue& in, rk_u32* head, rk_u32 consumed, const rk_queue& out,
                                                rk_producer* p, rk_u32 produced) {
  __syncthreads();
  *head += consumed;
  p->tail += produced;
  if (threadIdx.x == 0) {
    __threadfence_system();
    rk_store_volatile(&out.header->tail, p->tail);
    rk_store_volatile(&in.header->head, *head);
  }
}

/** Stores the heartbeat and processed count of an actor (thread 0's job; no fence). */
__device__ __forceinline__ void rk_control_heartbeat(rk_control_block* cb, rk_i64 processed) {
  rk_store_volatile(&cb->messages_processed, processed);
  rk_store_volatile(&cb->last_activity_ticks, static_cast<rk_i64>(rk_globaltimer_ns()));
}

/** Records an error in the control block (thread 0's job; no fence). */
__device__ __forceinline__ void rk_control_fail(rk_control_block* cb, rk_i32 code) {
  rk_store_volatile(&cb->last_error_code, code);
  rk_store_volatile(&cb->errors_encountered, rk_load_volatile(&cb->errors_encountered) + 1);
}

/** Marks the actor as exited with `state` after every earlier write is visible (thread 0's job). */
__device__ __forceinline__ void rk_control_exit(rk_control_block* cb, rk_i32 state) {
  __threadfence_system();
  rk_store_volatile(&cb->has_terminated, state);
  __threadfence_system();
}

#endif  // __CUDACC__

#endif  // RINGKERNEL_CUH
