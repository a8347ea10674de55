// ringkernel.cuh — the device ABI of ringkernel-ts.
//
// The structs below mirror the layouts declared once in src/layout.ts; the
// layout test compiles this header as C++17 host code against those
// declarations, so any drift fails a test. Device-only helpers are guarded by
// __CUDACC__ so the header also compiles under a plain host compiler; with
// RK_EMULATION (emulator/rk_emulation.h) they compile as host code for the CPU
// emulator of the driver.
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
  /** Messages taken from the device K2K inbox (processed or dead-lettered); the host cannot see that queue. */
  rk_i64 k2k_received;
  /** Host: bumped by every deactivate, after is_active = 0. */
  rk_i32 pause_request;
  /** Actor: the last pause_request it read while it saw is_active == 0; from then on it takes nothing until active. */
  rk_i32 pause_ack;
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
  rk_i32 room_bell;    /* host producers waiting for room sleep on it (CPU consumers ring it) */
  rk_i32 room_waiting; /* how many producers wait for room */
  rk_u8 line3_pad_[96];
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
static_assert(RK_OFFSETOF(rk_control_block, k2k_received) == 112, "k2k_received");
static_assert(RK_OFFSETOF(rk_control_block, pause_ack) == 124, "pause_ack");
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
static_assert(RK_OFFSETOF(rk_queue_header, room_waiting) == 412, "room_waiting");
static_assert(sizeof(rk_envelope) == RK_ENVELOPE_SIZE, "rk_envelope is 32 B");
static_assert(RK_OFFSETOF(rk_envelope, correlation_id) == 8, "correlation_id");
static_assert(RK_OFFSETOF(rk_envelope, stamp) == 28, "stamp");

// ---------------------------------------------------------------------------
// Device runtime
// ---------------------------------------------------------------------------
#if defined(__CUDACC__) || defined(RK_EMULATION)

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
/** Most slots one block takes per poll (docs/architecture.md: batch per poll). */
#define RK_MAX_BATCH 1024u
#endif

/** Nanoseconds of the GPU's global timer (%globaltimer). */
__device__ __forceinline__ rk_u64 rk_globaltimer_ns() {
#if defined(RK_EMULATION)
  return rk_emu_globaltimer_ns();
#else
  rk_u64 t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
#endif
}

/** Acquire load at system scope: later loads see what the writer published before this word. */
__device__ __forceinline__ rk_u32 rk_load_acquire_sys(const rk_u32* p) {
#if defined(RK_EMULATION)
  return rk_emu_load_acquire(p);
#else
  rk_u32 v;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
#endif
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

#endif  // __CUDACC__ || RK_EMULATION


// ---------------------------------------------------------------------------
// Actor pool ABI (src/backend/cuda/pool_layout.ts declares the same layouts;
// a test compiles this header against those declarations).
//
// One launch of a pool kernel hosts `count` actors, one thread block each:
// block b runs the actor described by `descriptors[b]`. The host writes a
// descriptor before the launch; the device only reads it (except nothing).
// ---------------------------------------------------------------------------

/** Threads per block of every pool kernel (launch with exactly this many). */
#define RK_POOL_THREADS 256u
/** Dynamic shared memory of every pool launch, in bytes. */
#define RK_POOL_SHARED_BYTES 36864u
/** Bytes of one staging buffer: the most slot bytes one block handles at once. */
#define RK_STAGE_BYTES 16384u
/** Most messages one block stages at once (64-byte slots). */
#define RK_STAGE_SLOTS_MAX 256u
/** Bytes of an actor's configuration area in its descriptor. */
#define RK_ACTOR_CONFIG_BYTES 128u
/** Entries a route table holds. */
#define RK_MAX_ROUTES 1024u
/** Slots of every actor's dead-letter queue. */
#define RK_DEAD_LETTER_CAPACITY 256u

// Actor kinds (rk_actor_desc.kind): 0 runs the kernel's own handler.
/** The kernel's own (user) handler. */
#define RK_ACTOR_KIND_USER 0u
/** Built-in echo: replies with the message. */
#define RK_ACTOR_KIND_ECHO 1u
/** Built-in accumulator: running total and count. */
#define RK_ACTOR_KIND_ACCUMULATOR 2u
/** Built-in saxpy over 16 lanes. */
#define RK_ACTOR_KIND_SAXPY 3u
/** Built-in reduction over a device buffer. */
#define RK_ACTOR_KIND_REDUCE 4u
/** Built-in forwarder: K2K to the actor named in its configuration. */
#define RK_ACTOR_KIND_FORWARDER 5u
/** Built-in generator: emits N messages K2K (or to the host) per command. */
#define RK_ACTOR_KIND_K2K_SOURCE 6u
/** Built-in counter: counts messages, replies on the last of a run. */
#define RK_ACTOR_KIND_K2K_SINK 7u
/** One past the largest kind. */
#define RK_ACTOR_KIND_COUNT 8u

/** rk_actor_desc.flags: run the actor's init on its state at start. */
#define RK_ACTOR_FLAG_INIT_STATE 1u
/** rk_actor_desc.flags: initialise the (new) K2K inbox, with the input queue's geometry, before opening it. */
#define RK_ACTOR_FLAG_INIT_K2K 2u

// More error codes a device actor stores in ControlBlock.last_error_code.
/** A message size in the descriptor differs from the handler's struct. */
#define RK_ERROR_SCHEMA_MISMATCH 6
/** The descriptor names an actor kind this kernel does not implement. */
#define RK_ERROR_UNKNOWN_ACTOR_KIND 7
/** A handler reported failure (the actor stops, like a crash). */
#define RK_ERROR_HANDLER_FAILED 8
/** The descriptor is malformed (missing queue, ABI version, sizes). */
#define RK_ERROR_BAD_DESCRIPTOR 9

// Why a message went to the dead-letter queue: the device stores the code in
// the stamp word of the dead-letter slot (SPSC queues do not use stamps).
/** Unknown type id or wrong payload length. */
#define RK_DEAD_INVALID_MESSAGE 1u
/** The handler failed on it. */
#define RK_DEAD_HANDLER_ERROR 2u
/** A K2K send named an actor that has no route. */
#define RK_DEAD_UNKNOWN_TARGET 3u
/** Its HLC timestamp is further ahead of the actor's clock than rk_actor_io.max_skew_ms (src/hlc.ts: ClockSkewError). */
#define RK_DEAD_CLOCK_SKEW 4u

/** What one actor of a pool is: its memory, its schemas and its configuration. */
struct alignas(128) rk_actor_desc {
  rk_u64 control;
  rk_u64 telemetry;
  rk_u64 input;
  rk_u64 output;
  rk_u64 inbox;
  rk_u64 dead_letters;
  rk_u64 k2k_inbox;
  rk_u64 routes;
  rk_u64 state;
  rk_u32 state_bytes;
  rk_u32 kind;
  rk_u32 actor_id;
  rk_u32 input_type_id;
  rk_u32 input_size;
  rk_u32 output_type_id;
  rk_u32 output_size;
  rk_u32 max_batch;
  rk_i64 host_time_ns;
  rk_u32 flags;
  rk_u32 abi_version;
  /** Address of the actor's rk_actor_io (mapped memory; 0: none, the device API's publish is refused). */
  rk_u64 io;
  rk_u8 config[RK_ACTOR_CONFIG_BYTES];
};

/** One route: an actor's name hash (FNV-1a 64), id, K2K inbox, and the message it takes. */
struct alignas(16) rk_route {
  rk_u64 name_hash;
  rk_u64 inbox;
  rk_u32 actor_id;
  rk_u32 slot_size;
  /** Type id of the actor's input: what rk_send writes into the envelope. */
  rk_u32 input_type_id;
  /** Payload bytes of that input: rk_send refuses a struct of another size. */
  rk_u32 input_size;
};

/**
 * The device API's block of one actor (mapped memory, 64 B): the host writes
 * the outbox address and the clock bound before each launch; the actor's
 * thread 0 stores the counters with the others (cumulative across restarts).
 */
struct alignas(64) rk_actor_io {
  /** The outbox (MPSC ring in mapped memory, one producer block, the host consumes): publications. */
  rk_u64 outbox;
  /** A received timestamp further ahead of the actor's clock than this is a dead letter (0: no bound). */
  rk_u32 max_skew_ms;
  rk_u32 reserved0_;
  /** rk_send calls that delivered. */
  rk_u64 sent;
  /** rk_publish calls that reached the outbox. */
  rk_u64 published;
  /** Sends and publications refused because the target queue was full. */
  rk_u64 full;
  /** Sends to a name without a route (and publications without an outbox). */
  rk_u64 unknown;
  /** Sends and publications refused for their size (too big, or not the target's input). */
  rk_u64 refused;
};

/**
 * Header of the route table (device memory); RK_MAX_ROUTES rk_route entries
 * follow it. `sequence` is a seqlock: odd while the host rewrites the table.
 */
struct alignas(128) rk_route_table {
  rk_u32 sequence;
  rk_u32 count;
  rk_u32 capacity;
  rk_u8 reserved_[116];
};

/** Configuration of the forwarder and the generator: where to send. */
struct alignas(8) rk_target_config {
  rk_u64 target_hash;
};

/** Configuration of the reduction actor: its device buffer of f32. */
struct alignas(8) rk_reduce_config {
  rk_u64 data;
  rk_u32 length;
  rk_u32 reserved_;
};

/** 64-bit FNV-1a of a NUL-terminated name: how routes name actors (src/backend/cuda/route_table.ts). */
RK_HOST_DEVICE constexpr rk_u64 rk_fnv1a64(const char* s, rk_u64 h = 0xcbf29ce484222325ull) {
  return *s == 0 ? h : rk_fnv1a64(s + 1, (h ^ static_cast<rk_u8>(*s)) * 0x100000001b3ull);
}

/** The handle of the actor named `name` for rk_send: its route key (the host's nameHash computes the same). */
RK_HOST_DEVICE constexpr rk_u64 rk_name(const char* name) { return rk_fnv1a64(name); }

/** The key of a topic for rk_publish (the same hash; the host maps it back to the topic's name). */
RK_HOST_DEVICE constexpr rk_u64 rk_topic(const char* topic) { return rk_fnv1a64(topic); }

// Results of rk_send and rk_publish (a send never waits: a full target is a result).
/** Delivered to the target's queue. */
#define RK_SEND_OK 0
/** The target's queue is full: nothing was sent; try again later (e.g. from a later message). */
#define RK_SEND_FULL 1
/** No actor has that name (no route), or the actor has no outbox to publish through. */
#define RK_SEND_UNKNOWN 2
/** The message does not fit the target's slots. */
#define RK_SEND_TOO_BIG 3
/** The message's size is not that of the target's input (or of the publisher's output). */
#define RK_SEND_MISMATCH 4
/** The host is rewriting the route table: nothing was sent; try again. */
#define RK_SEND_BUSY 5

static_assert(sizeof(rk_actor_desc) == 256, "rk_actor_desc is 256 B");
static_assert(RK_OFFSETOF(rk_actor_desc, config) == 128, "rk_actor_desc.config");
static_assert(sizeof(rk_route) == 32, "rk_route is 32 B");
static_assert(sizeof(rk_actor_io) == 64, "rk_actor_io is 64 B");
static_assert(RK_OFFSETOF(rk_actor_desc, io) == 120, "rk_actor_desc.io");
static_assert(sizeof(rk_route_table) == 128, "rk_route_table is 128 B");
static_assert(RK_STAGE_SLOTS_MAX * RK_SLOT_SIZE_DEFAULT == RK_STAGE_BYTES, "stage holds 256 small slots");
static_assert(RK_STAGE_SLOTS_MAX <= RK_POOL_THREADS, "one thread per staged message");
static_assert(RK_DEAD_LETTER_CAPACITY >= RK_STAGE_SLOTS_MAX, "a stage of dead letters fits");

// ---------------------------------------------------------------------------
// Device actor runtime: the loop every pool kernel runs, and the macros that
// turn a handler function into a pool kernel.
//
// A block polls its sources (the host input queue, the host inbox, the K2K
// inbox) with one load each, in parallel warps; takes up to a stage of
// messages at once with coalesced 16-byte loads into shared memory; runs the
// handler; and publishes replies, dead letters and K2K messages in batches,
// with one system fence per batch. It never waits on other blocks.
// ---------------------------------------------------------------------------
#if defined(__CUDACC__) || defined(RK_EMULATION)

#ifndef RK_HEARTBEAT_NS
/** Idle actors refresh last_activity_ticks at least this often. */
#define RK_HEARTBEAT_NS 100000ull
#endif

/** Handler mode: one thread per message, all messages of a batch at once. */
#define RK_MODE_PARALLEL 0u
/** Handler mode: thread 0 handles the messages of a batch in order (stateful actors). */
#define RK_MODE_SEQUENTIAL 1u
/** Handler mode: the whole block handles each message in order (block-wide work). */
#define RK_MODE_BLOCK 2u

/** Handler result: handled, no reply. */
#define RK_HANDLED 0
/** Handler result: handled; the reply written to `out` goes to the host. */
#define RK_REPLY 1
/** Handler result: the message is invalid; it is dead-lettered and the actor goes on. */
#define RK_REJECT 2
/** Handler result: failure; the message is dead-lettered and the actor stops (a crash). */
#define RK_FAIL 3
/** Handler result (built-in forwarder): send the message on to the configured target. */
#define RK_FORWARD 4

// Per-message status inside a batch.
#define RK_S_VOID 0u
#define RK_S_HANDLED 1u
#define RK_S_REPLY 2u
#define RK_S_FORWARD 3u
#define RK_S_DEAD_INVALID 4u
#define RK_S_DEAD_HANDLER 5u
#define RK_S_DEAD_TARGET 6u
#define RK_S_DEAD_SKEW 7u

/** Payload of an actor that handles raw bytes (sizes from the descriptor). */
struct rk_raw_payload {
  rk_u8 bytes[16];
};

/** State of an actor that keeps none. */
struct rk_no_state {
  rk_u32 unused_;
};

/** What a handler knows about the message it handles and about its actor. */
struct rk_actor_ctx {
  /** This actor's id (the source_actor of what it sends). */
  rk_u32 actor_id;
  /** Id of the sender (0 = the host). */
  rk_u32 source_actor;
  /** Correlation id of the message (copied to the reply). */
  rk_u64 correlation_id;
  /** Packed HLC timestamp of the message (0 when the sender set none). */
  rk_u64 timestamp;
  /** Messages this actor handled before this one. */
  rk_u64 sequence;
  /** Index of the message in its batch. */
  rk_u32 index;
  /** Payload bytes of the input and of the reply (from the schemas). */
  rk_u32 input_size;
  rk_u32 output_size;
  /** Bytes of state (device memory). */
  rk_u32 state_bytes;
  /** The actor's configuration bytes (RK_ACTOR_CONFIG_BYTES). */
  const rk_u8* config;
  /** Shared scratch for block-mode handlers: 32 doubles. */
  double* scratch;
  /** The runtime state of the block (built-in actors that publish themselves; the device API). */
  void* run;
  /** Correlation id the reply carries: the message's own, or the one rk_reply_to names. */
  rk_u64 reply_correlation;
};

/**
 * Base of an actor's traits: message structs, state, handler mode, and a
 * default init that zeroes the state. Derive and add
 * `__device__ static rk_i32 handle(const In&, Out&, State&, rk_actor_ctx&)`.
 */
template <class In, class Out, class State, rk_u32 Mode>
struct rk_actor_base {
  typedef In Input;
  typedef Out Output;
  typedef State StateType;
  /** How messages are handed to `handle`. */
  static constexpr rk_u32 mode = Mode;
  /** Raw actors take their payload sizes from the descriptor instead of sizeof. */
  static constexpr bool raw = false;
  /** Whether the actor may reply (the runtime reserves reply slots). */
  static constexpr bool replies = true;
  /** Whether the actor forwards K2K (built-in forwarder). */
  static constexpr bool forwards = false;
  /** Called by thread 0 at every start: fresh state, as a CPU actor's init. */
  __device__ static void init(State& state, rk_actor_ctx&) { state = State(); }
};

#if defined(RK_EMULATION)
#define rk_pool_dynamic_smem (static_cast<uint4*>(rk_emu_dynamic_smem))
#else
/** Dynamic shared memory of a pool block. */
extern __shared__ uint4 rk_pool_dynamic_smem[];
#endif

/** Shared memory of a pool block: descriptor copy, staging, per-message bookkeeping. */
struct rk_pool_shared {
  rk_actor_desc desc;
  uint4 in_stage[RK_STAGE_BYTES / 16u];
  uint4 out_stage[RK_STAGE_BYTES / 16u];
  rk_u32 status[RK_STAGE_SLOTS_MAX];
  rk_u32 rank[RK_STAGE_SLOTS_MAX];
  rk_u32 warp_totals[2u * (RK_POOL_THREADS / 32u)];
  double scratch[32];
  rk_u32 words[16];
  rk_u64 wide[8];
  rk_route route;
  /** Device API: the first HLC timestamp of this batch's sends and publications, and how many were taken. */
  rk_u64 send_stamp_base;
  rk_u32 send_stamp_next;
  /** Device API: the outbox's next ticket (this block is its only producer). */
  rk_u32 outbox_reserve;
  /** Device API counters (rk_actor_io order: sent, published, full, unknown, refused). */
  unsigned long long send_counts[5];
};
static_assert(sizeof(rk_pool_shared) <= RK_POOL_SHARED_BYTES, "pool shared memory fits its launch size");

/** The pool block's shared memory. */
__device__ __forceinline__ rk_pool_shared& rk_pool_smem() {
  return *reinterpret_cast<rk_pool_shared*>(rk_pool_dynamic_smem);
}

/** Acquire load of a 64-bit word at system scope. */
__device__ __forceinline__ rk_u64 rk_load_acquire_sys64(const rk_u64* p) {
#if defined(RK_EMULATION)
  return rk_emu_load_acquire(p);
#else
  rk_u64 v;
  asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
#endif
}

/** Volatile store of an unsigned 64-bit word (no fence). */
__device__ __forceinline__ void rk_store_volatile(rk_u64* p, rk_u64 v) {
  *reinterpret_cast<volatile rk_u64*>(p) = v;
}

/** Volatile load of a signed 64-bit word. */
__device__ __forceinline__ rk_i64 rk_load_volatile(const rk_i64* p) {
  return *reinterpret_cast<const volatile rk_i64*>(p);
}

/** Volatile load of an unsigned 64-bit word. */
__device__ __forceinline__ rk_u64 rk_load_volatile(const rk_u64* p) {
  return *reinterpret_cast<const volatile rk_u64*>(p);
}

// ---- hybrid logical clock (48-bit ms << 16 | 16-bit counter, as src/hlc.ts)

/** One block's hybrid logical clock (thread 0's). */
struct rk_hlc {
  rk_u64 physical_ms;
  rk_u32 logical;
  rk_i64 offset_ns;
};

/** Starts a clock: host_time_ns is the host's Unix time when it launched. */
__device__ __forceinline__ void rk_hlc_start(rk_hlc* c, rk_i64 host_time_ns) {
  c->offset_ns = host_time_ns - static_cast<rk_i64>(rk_globaltimer_ns());
  c->physical_ms = 0;
  c->logical = 0;
}

/** Unix time in ns as the clock sees it. */
__device__ __forceinline__ rk_u64 rk_hlc_wall_ns(const rk_hlc* c) {
  return static_cast<rk_u64>(static_cast<rk_i64>(rk_globaltimer_ns()) + c->offset_ns);
}

/** Reserves `n` (1..65536) consecutive timestamps; returns the packed first one. */
__device__ __forceinline__ rk_u64 rk_hlc_reserve(rk_hlc* c, rk_u32 n) {
  const rk_u64 now_ms = rk_hlc_wall_ns(c) / 1000000ull;
  if (now_ms > c->physical_ms) {
    c->physical_ms = now_ms;
    c->logical = 0;
  }
  if (c->logical + n > 0x10000u) {
    c->physical_ms += 1;  // counter overflow: move ahead one millisecond (src/hlc.ts)
    c->logical = 0;
  }
  const rk_u64 packed = (c->physical_ms << 16) | c->logical;
  c->logical += n;
  return packed;
}

/** Merges a received packed timestamp, so later ones order after it. */
__device__ __forceinline__ void rk_hlc_observe(rk_hlc* c, rk_u64 packed) {
  const rk_u64 ms = packed >> 16;
  const rk_u32 logical = static_cast<rk_u32>(packed & 0xffffu) + 1u;
  if (ms > c->physical_ms) {
    c->physical_ms = ms;
    c->logical = logical;
  } else if (ms == c->physical_ms && logical > c->logical) {
    c->logical = logical;
  }
  if (c->logical > 0xffffu) {
    c->physical_ms += 1;
    c->logical = 0;
  }
}

// ---- MPSC queues (ticketed producers, per-slot stamps; src/ring.ts protocol)

/** Address of the stamp of counter `index`'s slot. */
__device__ __forceinline__ rk_u32* rk_queue_stamp(const rk_queue& q, rk_u32 index) {
  return reinterpret_cast<rk_u32*>(rk_queue_slot(q, index) + RK_OFFSETOF(rk_envelope, stamp));
}

/**
 * Stores the 16-byte word of an MPSC slot that holds the envelope's stamp,
 * except the stamp: its publisher stores it after the fence, and the consumer
 * may be reading it meanwhile.
 */
__device__ __forceinline__ void rk_store_stamp_word(uint4* to, uint4 v) {
  rk_u32* words = reinterpret_cast<rk_u32*>(to);
  words[0] = v.x;
  words[1] = v.y;
  words[2] = v.z;
}

/** Whether the slot of counter `index` is published (one acquire load). */
__device__ __forceinline__ bool rk_mpsc_ready(const rk_queue& q, rk_u32 index) {
  return rk_load_acquire_sys(rk_queue_stamp(q, index)) == index + 1u;
}

/**
 * Block-wide: how many consecutive slots from `head` are published, at most
 * `limit` (<= blockDim.x); the same in every thread. Thread t checks slot t.
 */
__device__ __forceinline__ rk_u32 rk_block_mpsc_available(const rk_queue& q, rk_u32 head, rk_u32 limit,
                                                          rk_u32* scratch_word) {
  if (threadIdx.x == 0) *scratch_word = limit;
  __syncthreads();
  if (threadIdx.x < limit && !rk_mpsc_ready(q, head + threadIdx.x)) atomicMin(scratch_word, threadIdx.x);
  __syncthreads();
  const rk_u32 n = *scratch_word;
  __syncthreads();
  return n;
}

/**
 * One thread: reserves up to `wanted` tickets of an MPSC queue in device
 * memory (never more than free slots). Returns how many, 0 when full; the
 * first ticket goes to `*first`. Every ticket must be published. Only for
 * queues in device memory (K2K inboxes): the CAS is device-scope; a queue in
 * host memory would need atomicCAS_system and host atomics over the bus.
 */
__device__ __forceinline__ rk_u32 rk_mpsc_reserve(const rk_queue& q, rk_u32 wanted, rk_u32* first) {
  const rk_u32 capacity = q.mask + 1u;
  for (int attempt = 0; attempt < 64; ++attempt) {
    const rk_u32 reserve = rk_load_volatile(&q.header->reserve);
    const rk_u32 head = rk_load_acquire_sys(&q.header->head);
    const rk_u32 used = reserve - head;
    if (used > capacity) continue;  // head read after a stale reserve: read both again
    const rk_u32 free_slots = capacity - used;
    if (free_slots == 0) return 0;
    const rk_u32 granted = wanted < free_slots ? wanted : free_slots;
    if (atomicCAS(&q.header->reserve, reserve, reserve + granted) == reserve) {
      *first = reserve;
      return granted;
    }
  }
  return 0;
}

/** rk_route_lookup: no route for the name. */
#define RK_ROUTE_ABSENT 0u
/** rk_route_lookup: the route is in `out`. */
#define RK_ROUTE_FOUND 1u
/** rk_route_lookup: the host is rewriting the table; look again later (not an unknown target). */
#define RK_ROUTE_BUSY 2u
/**
 * rk_route_lookup: the name is an actor the host serves (a CPU actor of the
 * same runtime): no inbox in device memory (`inbox` 0), so rk_send goes
 * through the sender's outbox, which the host drains into that actor's inbox.
 */
#define RK_ROUTE_HOST 3u

/** One thread: looks a name hash up in a route table (seqlock read): RK_ROUTE_FOUND, _ABSENT or _BUSY. */
__device__ __forceinline__ rk_u32 rk_route_lookup(const rk_route_table* table, rk_u64 name_hash, rk_route* out) {
  if (table == nullptr || name_hash == 0) return RK_ROUTE_ABSENT;
  const rk_route* entries = reinterpret_cast<const rk_route*>(table + 1);
  for (int attempt = 0; attempt < 256; ++attempt) {
    const rk_u32 before = rk_load_acquire_sys(&table->sequence);
    if (before & 1u) {
      __nanosleep(256);
      continue;
    }
    rk_u32 count = rk_load_volatile(&table->count);
    if (count > RK_MAX_ROUTES) count = RK_MAX_ROUTES;
    bool found = false;
    for (rk_u32 i = 0; i < count && !found; ++i) {
      const rk_route* e = entries + i;
      if (rk_load_volatile(&e->name_hash) == name_hash) {
        out->name_hash = name_hash;
        out->inbox = rk_load_volatile(&e->inbox);
        out->actor_id = rk_load_volatile(&e->actor_id);
        out->slot_size = rk_load_volatile(&e->slot_size);
        out->input_type_id = rk_load_volatile(&e->input_type_id);
        out->input_size = rk_load_volatile(&e->input_size);
        found = true;
      }
    }
    __threadfence_system();  // the entries are read before the sequence is read again
    if (rk_load_volatile(&table->sequence) == before) {
      if (!found) return RK_ROUTE_ABSENT;
      if (out->inbox != 0) return RK_ROUTE_FOUND;
      return out->slot_size != 0 ? RK_ROUTE_HOST : RK_ROUTE_ABSENT;
    }
  }
  return RK_ROUTE_BUSY;
}

// ---- the actor loop

/** Control flags as one word. */
#define RK_RUN_ACTIVE 1u
#define RK_RUN_TERMINATE 2u
#define RK_RUN_ABORT 4u

/** Sources of messages, in the order a block serves them. */
#define RK_SOURCE_INPUT 0u
#define RK_SOURCE_INBOX 1u
#define RK_SOURCE_K2K 2u
#define RK_SOURCE_COUNT 3u

/** A block's runtime state. Every thread holds the same copy; thread 0 alone keeps the counters and clock. */
struct rk_run {
  rk_control_block* cb;
  rk_telemetry* tm;
  rk_queue src[RK_SOURCE_COUNT];
  rk_u32 head[RK_SOURCE_COUNT];
  bool present[RK_SOURCE_COUNT];
  rk_queue out;
  rk_queue dl;
  rk_producer out_p;
  rk_producer dl_p;
  rk_u32 max_batch;
  rk_u32 stage_cap;
  rk_u32 words_per_slot;
  rk_u64 sequence;
  rk_u32 queue_depth;
  // thread 0 only
  rk_i64 processed;
  rk_i64 k2k_received;
  rk_i32 pause_ack;
  rk_u64 dropped;
  rk_u64 total_latency;
  rk_u64 max_latency;
  rk_u64 min_latency;
  rk_u64 last_heartbeat;
  rk_hlc clock;
  /** The device API's block and outbox (every thread). */
  rk_actor_io* io;
  rk_queue outbox;
  bool has_outbox;
  /** The clock bound (rk_actor_io.max_skew_ms; 0: none). */
  rk_u32 max_skew_ms;
  /** A received timestamp whose milliseconds exceed this is a dead letter (0: none; set per batch). */
  rk_u64 skew_limit_ms;
};

/** Block-wide: reads the control flags (thread 0) and broadcasts them. */
__device__ __forceinline__ rk_u32 rk_read_run_flags(const rk_control_block* cb) {
  rk_u32 flags = 0;
  if (threadIdx.x == 0) {
    if (rk_load_volatile(&cb->is_active) != 0) flags |= RK_RUN_ACTIVE;
    // Acquire: the host sets should_terminate after its last send.
    if (rk_load_acquire_sys(&cb->should_terminate) != 0) flags |= RK_RUN_TERMINATE;
    if (rk_load_volatile(&cb->should_abort) != 0) flags |= RK_RUN_ABORT;
  }
  return rk_block_broadcast(flags);
}

/** Thread 0: stores the counters, telemetry and heartbeat (no fence). */
__device__ __forceinline__ void rk_run_store_counters(rk_run& r) {
  rk_store_volatile(&r.cb->messages_processed, r.processed);
  rk_store_volatile(&r.cb->k2k_received, r.k2k_received);
  rk_store_volatile(&r.tm->messages_processed, static_cast<rk_u64>(r.processed));
  rk_store_volatile(&r.tm->messages_dropped, r.dropped);
  rk_store_volatile(&r.tm->total_latency_nanos, r.total_latency);
  rk_store_volatile(&r.tm->max_latency_nanos, r.max_latency);
  rk_store_volatile(&r.tm->min_latency_nanos, r.min_latency);
  rk_store_volatile(&r.tm->queue_depth, static_cast<rk_i32>(r.queue_depth));
  if (r.io != nullptr) {
    const rk_pool_shared& sh = rk_pool_smem();
    rk_store_volatile(&r.io->sent, static_cast<rk_u64>(sh.send_counts[0]));
    rk_store_volatile(&r.io->published, static_cast<rk_u64>(sh.send_counts[1]));
    rk_store_volatile(&r.io->full, static_cast<rk_u64>(sh.send_counts[2]));
    rk_store_volatile(&r.io->unknown, static_cast<rk_u64>(sh.send_counts[3]));
    rk_store_volatile(&r.io->refused, static_cast<rk_u64>(sh.send_counts[4]));
    // Every ticket taken is published by now: a restart resumes after them.
    if (r.has_outbox) rk_store_volatile(&r.outbox.header->reserve, sh.outbox_reserve);
  }
  const rk_u64 now = rk_globaltimer_ns();
  r.last_heartbeat = now;
  rk_store_volatile(&r.cb->last_activity_ticks, static_cast<rk_i64>(now));
}

// ---- the device API of a handler: send, publish, defer a reply
//
// A handler (any mode; in RK_MODE_BLOCK call these from one thread) may send
// to any GPU actor by name (rk_name("b"), or a handle the host computed with
// nameHash), publish to a topic, and answer a call it deferred. Nothing here
// waits for room: a full target is RK_SEND_FULL, counted in rk_actor_io.
// Every send and publication takes its own HLC timestamp, after those of the
// batch's replies.

/** Counts one result of the device API (rk_actor_io order) and returns it. */
__device__ __forceinline__ rk_i32 rk_send_count(rk_u32 counter, rk_i32 result) {
  atomicAdd(&rk_pool_smem().send_counts[counter], 1ull);
  return result;
}

/** The next HLC timestamp of the batch's sends and publications. */
__device__ __forceinline__ rk_u64 rk_send_stamp() {
  rk_pool_shared& sh = rk_pool_smem();
  return sh.send_stamp_base + atomicAdd(&sh.send_stamp_next, 1u);
}

/** Copies a message into a slot's payload (4-byte words when it allows). */
template <class T>
__device__ __forceinline__ void rk_write_payload(rk_u8* to, const T& msg) {
  rk_u32 words = alignof(T) >= 4u ? static_cast<rk_u32>(sizeof(T) / 4u) : 0u;
  for (rk_u32 w = 0; w < words; ++w) reinterpret_cast<rk_u32*>(to)[w] = reinterpret_cast<const rk_u32*>(&msg)[w];
  for (rk_u32 b = words * 4u; b < sizeof(T); ++b) to[b] = reinterpret_cast<const rk_u8*>(&msg)[b];
}

/** Writes an envelope's fields but its stamp (an MPSC slot's stamp is stored last, after a fence). */
__device__ __forceinline__ void rk_write_send_envelope(rk_u8* slot, rk_u32 type_id, rk_u32 size, rk_u64 correlation,
                                                       rk_u32 source) {
  rk_envelope* e = reinterpret_cast<rk_envelope*>(slot);
  e->type_id = type_id;
  e->payload_length = static_cast<rk_u16>(size);
  e->flags = 0;
  e->correlation_id = correlation;
  e->timestamp = rk_send_stamp();
  e->source_actor = source;
}

/**
 * Outbox flag of a send to an actor the host serves (RK_ROUTE_HOST): the
 * envelope's correlation id holds the target's name hash, not a topic's. The
 * host clears it before delivery (src/backend/cuda/pool_layout.ts,
 * OUTBOX_DIRECT_FLAG).
 */
#define RK_OUTBOX_DIRECT 0x8000u

/**
 * Puts `msg` into the actor's outbox as a message of type `type_id` with
 * `key` in the correlation id (a topic's hash, or a target's name hash with
 * `flags` RK_OUTBOX_DIRECT). Never waits: RK_SEND_OK, RK_SEND_FULL,
 * RK_SEND_TOO_BIG or RK_SEND_UNKNOWN (no outbox); counted as a publication
 * (`counter` 1) or a send (`counter` 0).
 */
template <class T>
__device__ rk_i32 rk_outbox_put(rk_actor_ctx& ctx, rk_u32 type_id, rk_u64 key, rk_u16 flags, rk_u32 counter,
                                const T& msg) {
  rk_pool_shared& sh = rk_pool_smem();
  const rk_run& r = *static_cast<const rk_run*>(ctx.run);
  if (!r.has_outbox) return rk_send_count(3u, RK_SEND_UNKNOWN);
  if (RK_ENVELOPE_SIZE + sizeof(T) > r.outbox.slot_size) return rk_send_count(4u, RK_SEND_TOO_BIG);
  const rk_u32 capacity = r.outbox.mask + 1u;
  rk_u32 ticket = 0;
  for (;;) {
    // This block is the outbox's only producer: its tickets come from shared memory.
    ticket = *reinterpret_cast<volatile rk_u32*>(&sh.outbox_reserve);
    const rk_u32 used = ticket - rk_load_acquire_sys(&r.outbox.header->head);
    if (used > capacity) continue;  // a newer head than the ticket read: read both again
    if (used == capacity) return rk_send_count(2u, RK_SEND_FULL);
    if (atomicCAS(&sh.outbox_reserve, ticket, ticket + 1u) == ticket) break;
  }
  rk_u8* slot = rk_queue_slot(r.outbox, ticket);
  rk_write_send_envelope(slot, type_id, sizeof(T), key, ctx.actor_id);
  reinterpret_cast<rk_envelope*>(slot)->flags = flags;
  rk_write_payload(slot + RK_ENVELOPE_SIZE, msg);
  __threadfence_system();  // the slot before its stamp (the consumer is the host)
  rk_store_volatile(rk_queue_stamp(r.outbox, ticket), ticket + 1u);
  return rk_send_count(counter, RK_SEND_OK);
}

/**
 * Sends `msg` to the actor `target` (rk_name("its-name"), or a handle from
 * the host's nameHash) as a message of the target's input type: a GPU actor
 * through its K2K inbox in device memory, with `correlation` in the envelope
 * (0: none); a CPU actor of the same runtime through this actor's outbox,
 * which the host drains into the target's inbox (no correlation; a full
 * inbox there is a dead letter, `queue-full`, since this call has returned).
 * Never waits: returns RK_SEND_OK, RK_SEND_FULL (the target's inbox, or for
 * a CPU target the outbox, is full), RK_SEND_UNKNOWN, RK_SEND_TOO_BIG,
 * RK_SEND_MISMATCH (sizeof(T) is not the target's input size) or
 * RK_SEND_BUSY. Any thread may call it; each call sends once.
 */
template <class T>
__device__ rk_i32 rk_send(rk_actor_ctx& ctx, rk_u64 target, const T& msg, rk_u64 correlation = 0) {
  rk_pool_shared& sh = rk_pool_smem();
  rk_route route;
  const rk_u32 lookup = rk_route_lookup(reinterpret_cast<const rk_route_table*>(sh.desc.routes), target, &route);
  if (lookup == RK_ROUTE_BUSY) return RK_SEND_BUSY;
  if (lookup != RK_ROUTE_FOUND && lookup != RK_ROUTE_HOST) return rk_send_count(3u, RK_SEND_UNKNOWN);
  if (RK_ENVELOPE_SIZE + sizeof(T) > route.slot_size) return rk_send_count(4u, RK_SEND_TOO_BIG);
  if (sizeof(T) != route.input_size) return rk_send_count(4u, RK_SEND_MISMATCH);
  if (lookup == RK_ROUTE_HOST) {
    return rk_outbox_put(ctx, route.input_type_id, target, static_cast<rk_u16>(RK_OUTBOX_DIRECT), 0u, msg);
  }
  rk_queue q;
  q.header = reinterpret_cast<rk_queue_header*>(route.inbox);
  q.slots = reinterpret_cast<rk_u8*>(route.inbox) + RK_QUEUE_HEADER_SIZE;
  q.mask = rk_load_volatile(&q.header->capacity) - 1u;
  q.slot_size = route.slot_size;
  rk_u32 ticket = 0;
  if (rk_mpsc_reserve(q, 1u, &ticket) == 0) return rk_send_count(2u, RK_SEND_FULL);
  rk_u8* slot = rk_queue_slot(q, ticket);
  rk_write_send_envelope(slot, route.input_type_id, sizeof(T), correlation, ctx.actor_id);
  rk_write_payload(slot + RK_ENVELOPE_SIZE, msg);
  __threadfence();  // the slot before its stamp (the consumer is a block of this device)
  rk_store_volatile(rk_queue_stamp(q, ticket), ticket + 1u);
  return rk_send_count(0u, RK_SEND_OK);
}

/**
 * Publishes `msg` as a message of type `type_id` on the topic `topic`
 * (rk_topic("a/b")): it goes to the actor's outbox, which the host drains
 * and delivers to every subscriber of a matching filter (GPU and CPU actors,
 * host handlers; MQTT wildcards), as `rt.publish` does. The topic must be one
 * the actor declares (`gpu.topics`). Never waits: RK_SEND_OK, RK_SEND_FULL
 * (the outbox is full), RK_SEND_TOO_BIG or RK_SEND_UNKNOWN (no outbox).
 */
template <class T>
__device__ rk_i32 rk_publish_typed(rk_actor_ctx& ctx, rk_u64 topic, rk_u32 type_id, const T& msg) {
  return rk_outbox_put(ctx, type_id, topic, static_cast<rk_u16>(0u), 1u, msg);
}

/** rk_publish_typed with the actor's own output type (RK_SEND_MISMATCH when sizeof(T) is not its size). */
template <class T>
__device__ rk_i32 rk_publish(rk_actor_ctx& ctx, rk_u64 topic, const T& msg) {
  const rk_pool_shared& sh = rk_pool_smem();
  if (sizeof(T) != sh.desc.output_size || sh.desc.output_type_id == 0u) return rk_send_count(4u, RK_SEND_MISMATCH);
  return rk_publish_typed(ctx, topic, sh.desc.output_type_id, msg);
}

/**
 * Defers the reply to the message being handled: returns its correlation id
 * (0 when it was not a call) for the handler to keep, e.g. in its state, and
 * answer later with rk_reply_to; the handler then returns RK_HANDLED.
 */
__device__ __forceinline__ rk_u64 rk_defer(const rk_actor_ctx& ctx) { return ctx.correlation_id; }

/**
 * Makes this handler's reply (what it wrote to `out`) answer the call
 * `correlation` deferred earlier, instead of the message being handled (one
 * reply per message handled). Returns RK_REPLY: `return rk_reply_to(ctx, c);`.
 */
__device__ __forceinline__ rk_i32 rk_reply_to(rk_actor_ctx& ctx, rk_u64 correlation) {
  ctx.reply_correlation = correlation;
  return RK_REPLY;
}

/**
 * Block-wide: one poll of every source at once (thread 0 of warps 0..3 each
 * issue one load) and of the flags. Returns the flags; `ready[s]` is how many
 * messages wait in SPSC source s, or 1 when MPSC source s has its head
 * published.
 */
__device__ __forceinline__ rk_u32 rk_block_poll(rk_pool_shared& sh, const rk_run& r, rk_u32 ready[RK_SOURCE_COUNT]) {
  const rk_u32 warp = threadIdx.x >> 5;
  if ((threadIdx.x & 31u) == 0) {
    if (warp == 0) {
      // Two plain loads, then the acquire (which orders only what follows it):
      // all three are in flight at once.
      const rk_i32 active = rk_load_volatile(&r.cb->is_active);
      const rk_i32 abort = rk_load_volatile(&r.cb->should_abort);
      const rk_i32 terminate = rk_load_acquire_sys(&r.cb->should_terminate);
      sh.words[0] = (active != 0 ? RK_RUN_ACTIVE : 0u) | (terminate != 0 ? RK_RUN_TERMINATE : 0u) |
                    (abort != 0 ? RK_RUN_ABORT : 0u);
    } else if (warp == 1) {
      sh.words[1] = rk_load_acquire_sys(&r.src[RK_SOURCE_INPUT].header->tail) - r.head[RK_SOURCE_INPUT];
    } else if (warp == 2) {
      sh.words[2] = r.present[RK_SOURCE_INBOX] && rk_mpsc_ready(r.src[RK_SOURCE_INBOX], r.head[RK_SOURCE_INBOX]);
    } else if (warp == 3) {
      sh.words[3] = r.present[RK_SOURCE_K2K] && rk_mpsc_ready(r.src[RK_SOURCE_K2K], r.head[RK_SOURCE_K2K]);
    }
  }
  __syncthreads();
  const rk_u32 flags = sh.words[0];
  ready[0] = sh.words[1];
  ready[1] = sh.words[2];
  ready[2] = sh.words[3];
  __syncthreads();
  return flags;
}

/** Exclusive prefix count of `flag` over the block's threads; `total` gets the sum (block-wide). */
__device__ __forceinline__ rk_u32 rk_block_rank(bool flag, rk_u32* warp_totals, rk_u32* total) {
  const rk_u32 lane = threadIdx.x & 31u;
  const rk_u32 warp = threadIdx.x >> 5;
  const rk_u32 ballot = __ballot_sync(0xffffffffu, flag);
  if (lane == 0) warp_totals[warp] = __popc(ballot);
  __syncthreads();
  rk_u32 offset = 0;
  rk_u32 sum = 0;
  for (rk_u32 w = 0; w < blockDim.x / 32u; ++w) {
    const rk_u32 t = warp_totals[w];
    if (w < warp) offset += t;
    sum += t;
  }
  __syncthreads();
  *total = sum;
  return offset + __popc(ballot & ((1u << lane) - 1u));
}

/** Writes the envelope of a reply into a staged slot (one thread). */
__device__ __forceinline__ void rk_write_reply_envelope(rk_u8* slot, const rk_actor_desc& d, rk_u64 correlation,
                                                        rk_u64 timestamp) {
  rk_envelope* e = reinterpret_cast<rk_envelope*>(slot);
  e->type_id = d.output_type_id;
  e->payload_length = static_cast<rk_u16>(d.output_size);
  e->flags = 0;
  e->correlation_id = correlation;
  e->timestamp = timestamp;
  e->source_actor = d.actor_id;
  e->stamp = 0;
}

/** Maps a handler result to a batch status. */
__device__ __forceinline__ rk_u32 rk_status_of(rk_i32 result) {
  switch (result) {
    case RK_HANDLED: return RK_S_HANDLED;
    case RK_REPLY: return RK_S_REPLY;
    case RK_REJECT: return RK_S_DEAD_INVALID;
    case RK_FORWARD: return RK_S_FORWARD;
    default: return RK_S_DEAD_HANDLER;
  }
}

/**
 * Checks the envelope of staged message `i` and fills `ctx` for it; returns
 * RK_S_VOID, RK_S_DEAD_INVALID, or RK_S_HANDLED when the handler may run.
 */
__device__ __forceinline__ rk_u32 rk_prepare_message(rk_pool_shared& sh, const rk_run& r, rk_u32 i,
                                                     rk_actor_ctx* ctx) {
  const rk_u8* slot = reinterpret_cast<const rk_u8*>(sh.in_stage) + static_cast<rk_u64>(i) * r.words_per_slot * 16u;
  const rk_envelope* e = reinterpret_cast<const rk_envelope*>(slot);
  if (e->type_id == 0u) return RK_S_VOID;
  if (e->type_id != sh.desc.input_type_id || e->payload_length != sh.desc.input_size) return RK_S_DEAD_INVALID;
  if (r.skew_limit_ms != 0 && (e->timestamp >> 16) > r.skew_limit_ms) return RK_S_DEAD_SKEW;
  ctx->source_actor = e->source_actor;
  ctx->correlation_id = e->correlation_id;
  ctx->reply_correlation = e->correlation_id;
  ctx->timestamp = e->timestamp;
  ctx->index = i;
  ctx->sequence = r.sequence + i;
  return RK_S_HANDLED;
}

/** The payload of staged input `i`, and of staged reply `i`. */
__device__ __forceinline__ rk_u8* rk_staged_in(rk_pool_shared& sh, const rk_run& r, rk_u32 i) {
  return reinterpret_cast<rk_u8*>(sh.in_stage) + static_cast<rk_u64>(i) * r.words_per_slot * 16u;
}
__device__ __forceinline__ rk_u8* rk_staged_out(rk_pool_shared& sh, const rk_run& r, rk_u32 i) {
  return reinterpret_cast<rk_u8*>(sh.out_stage) + static_cast<rk_u64>(i) * r.words_per_slot * 16u;
}

/** Runs the handler on staged message `i` (the calling threads per mode); returns its status. */
template <class A>
__device__ __forceinline__ rk_u32 rk_handle_staged(rk_pool_shared& sh, rk_run& r, rk_u32 i, rk_u64 stamp_base,
                                                   rk_actor_ctx ctx) {
  const rk_u32 prepared = rk_prepare_message(sh, r, i, &ctx);
  if (prepared != RK_S_HANDLED) return prepared;
  rk_u8* in_slot = rk_staged_in(sh, r, i);
  rk_u8* out_slot = rk_staged_out(sh, r, i);
  typename A::StateType* state = reinterpret_cast<typename A::StateType*>(sh.desc.state);
  typename A::StateType none{};
  const rk_i32 result = A::handle(*reinterpret_cast<const typename A::Input*>(in_slot + RK_ENVELOPE_SIZE),
                                  *reinterpret_cast<typename A::Output*>(out_slot + RK_ENVELOPE_SIZE),
                                  state != nullptr ? *state : none, ctx);
  const rk_u32 status = rk_status_of(result);
  if (status == RK_S_REPLY && (A::mode != RK_MODE_BLOCK || threadIdx.x == 0)) {
    rk_write_reply_envelope(out_slot, sh.desc, ctx.reply_correlation, stamp_base + i);
  }
  return status;
}

/**
 * Block-wide: serves one source. Takes up to a stage of messages, runs the
 * handler, publishes replies, dead letters and K2K sends, releases the
 * messages, and returns how many it took (0 when none could be taken, e.g.
 * because the reply queue is full). Sets `*failed` when a handler failed.
 */
template <class A>
__device__ rk_u32 rk_serve_source(rk_pool_shared& sh, rk_run& r, rk_u32 which, rk_u32 ready, bool* failed) {
  const rk_queue& q = r.src[which];
  const bool mpsc = which != RK_SOURCE_INPUT;
  const bool leader = threadIdx.x == 0;
  rk_u32 limit = r.max_batch < r.stage_cap ? r.max_batch : r.stage_cap;
  rk_u32 n = mpsc ? rk_block_mpsc_available(q, r.head[which], limit, &sh.words[4]) : (ready < limit ? ready : limit);
  if (n == 0) return 0;
  if (A::replies) n = rk_block_producer_reserve(r.out, &r.out_p, n);
  if (n != 0) n = rk_block_producer_reserve(r.dl, &r.dl_p, n);

  // Forwarders: find the target and reserve one ticket per message.
  bool routed = false;
  rk_queue target;
  rk_u32 first_ticket = 0;
  if (A::forwards && n != 0) {
    if (leader) {
      rk_u32 granted = 0;
      const rk_u64 hash = reinterpret_cast<const rk_target_config*>(sh.desc.config)->target_hash;
      rk_route route;
      const rk_u32 lookup = rk_route_lookup(reinterpret_cast<const rk_route_table*>(sh.desc.routes), hash, &route);
      bool found = lookup == RK_ROUTE_FOUND;
      if (found && route.slot_size < RK_ENVELOPE_SIZE + sh.desc.input_size) found = false;
      if (found) {
        rk_queue t;
        t.header = reinterpret_cast<rk_queue_header*>(route.inbox);
        t.slots = reinterpret_cast<rk_u8*>(route.inbox) + RK_QUEUE_HEADER_SIZE;
        t.mask = rk_load_volatile(&t.header->capacity) - 1u;
        t.slot_size = route.slot_size;
        granted = rk_mpsc_reserve(t, n, &first_ticket);
        sh.route = route;
        sh.words[6] = t.mask;
      }
      sh.words[5] = found ? 1u : 0u;
      // A busy table takes nothing: the messages wait for the next poll.
      sh.words[7] = found ? granted : lookup == RK_ROUTE_BUSY ? 0u : n;
      sh.words[8] = first_ticket;
    }
    __syncthreads();
    routed = sh.words[5] != 0;
    n = sh.words[7];
    first_ticket = sh.words[8];
    target.header = reinterpret_cast<rk_queue_header*>(sh.route.inbox);
    target.slots = reinterpret_cast<rk_u8*>(sh.route.inbox) + RK_QUEUE_HEADER_SIZE;
    target.mask = sh.words[6];
    target.slot_size = sh.route.slot_size;
    __syncthreads();
  }
  if (n == 0) return 0;

  // Stage the messages in shared memory with coalesced 16-byte loads.
  const rk_u32 wps = r.words_per_slot;
  const rk_u32 shift = __ffs(wps) - 1u;
  for (rk_u32 k = threadIdx.x; k < n * wps; k += blockDim.x) {
    const uint4* from = reinterpret_cast<const uint4*>(rk_queue_slot(q, r.head[which] + (k >> shift))) + (k & (wps - 1u));
    sh.in_stage[k] = __ldcv(from);
  }
  if (leader) {
    sh.wide[0] = rk_globaltimer_ns();
    sh.wide[2] = 0;  // largest timestamp received
    sh.words[9] = n;  // index of the first failure (n: none)
    sh.wide[4] = r.max_skew_ms == 0 ? 0ull : rk_hlc_wall_ns(&r.clock) / 1000000ull + r.max_skew_ms;
  }
  __syncthreads();
  r.skew_limit_ms = sh.wide[4];
  // HLC receive rule, before the batch takes a timestamp: the clock moves past
  // every timestamp received (one too far ahead is a dead letter instead).
  for (rk_u32 m = threadIdx.x; m < n; m += blockDim.x) {
    const rk_envelope* e = reinterpret_cast<const rk_envelope*>(rk_staged_in(sh, r, m));
    const bool valid = e->type_id == sh.desc.input_type_id && e->payload_length == sh.desc.input_size;
    const bool skewed = r.skew_limit_ms != 0 && (e->timestamp >> 16) > r.skew_limit_ms;
    if (valid && !skewed && e->timestamp != 0) {
      atomicMax(reinterpret_cast<unsigned long long*>(&sh.wide[2]), static_cast<unsigned long long>(e->timestamp));
    }
  }
  __syncthreads();
  if (leader) {
    if (sh.wide[2] != 0) rk_hlc_observe(&r.clock, sh.wide[2]);
    sh.wide[1] = rk_hlc_reserve(&r.clock, n);
    sh.send_stamp_base = sh.wide[1] + n;  // sends and publications of the batch: after its replies
    sh.send_stamp_next = 0;
  }
  __syncthreads();
  const rk_u64 stamp_base = sh.wide[1];

  rk_actor_ctx ctx;
  ctx.actor_id = sh.desc.actor_id;
  ctx.source_actor = 0;
  ctx.correlation_id = 0;
  ctx.timestamp = 0;
  ctx.sequence = r.sequence;
  ctx.index = 0;
  ctx.input_size = sh.desc.input_size;
  ctx.output_size = sh.desc.output_size;
  ctx.state_bytes = sh.desc.state_bytes;
  ctx.config = sh.desc.config;
  ctx.scratch = sh.scratch;
  ctx.run = &r;
  ctx.reply_correlation = 0;

  if (A::mode == RK_MODE_PARALLEL) {
    for (rk_u32 i = threadIdx.x; i < n; i += blockDim.x) {
      const rk_u32 status = rk_handle_staged<A>(sh, r, i, stamp_base, ctx);
      sh.status[i] = status;
      if (status == RK_S_DEAD_HANDLER) atomicMin(&sh.words[9], i);
    }
  } else if (A::mode == RK_MODE_SEQUENTIAL) {
    if (leader) {
      for (rk_u32 i = 0; i < n; ++i) {
        const rk_u32 status = rk_handle_staged<A>(sh, r, i, stamp_base, ctx);
        sh.status[i] = status;
        if (status == RK_S_DEAD_HANDLER) {
          sh.words[9] = i;
          break;
        }
      }
    }
  } else {
    // Every thread must leave after the same message, so the leader's verdict
    // goes through shared memory. A handler that fails may return before any
    // barrier: the leader can then write the verdict on message i + 1 while
    // slower threads still read the one on message i. So the verdicts
    // alternate between two words; the leader rewrites a word only after the
    // next barrier, which every thread reaches after reading it.
    for (rk_u32 i = 0; i < n; ++i) {
      const rk_u32 status = rk_handle_staged<A>(sh, r, i, stamp_base, ctx);
      rk_u32* stop = &sh.words[14u + (i & 1u)];
      if (leader) {
        sh.status[i] = status;
        if (status == RK_S_DEAD_HANDLER) sh.words[9] = i;
        *stop = status == RK_S_DEAD_HANDLER ? 1u : 0u;
      }
      __syncthreads();
      if (*stop != 0u) break;
    }
  }
  __syncthreads();
  if (A::forwards) {
    for (rk_u32 i = threadIdx.x; i < n; i += blockDim.x) {
      if (sh.status[i] == RK_S_FORWARD && !routed) sh.status[i] = RK_S_DEAD_TARGET;
    }
  }
  // Messages after a failure stay queued, as on the CPU backend.
  const bool handler_failed = sh.words[9] < n;
  const rk_u32 taken = handler_failed ? sh.words[9] + 1u : n;
  __syncthreads();

  // Where each reply and dead letter goes.
  const rk_u32 i = threadIdx.x;
  const rk_u32 status = i < taken ? sh.status[i] : RK_S_VOID;
  const bool is_reply = status == RK_S_REPLY;
  const bool is_dead = status >= RK_S_DEAD_INVALID;
  rk_u32 replies = 0;
  rk_u32 deads = 0;
  rk_u32 handled = 0;
  const rk_u32 reply_rank = rk_block_rank(is_reply, sh.warp_totals, &replies);
  const rk_u32 dead_rank = rk_block_rank(is_dead, sh.warp_totals + RK_POOL_THREADS / 32u, &deads);
  rk_block_rank(status == RK_S_HANDLED || status == RK_S_REPLY || status == RK_S_FORWARD, sh.warp_totals,
                &handled);
  if (i < taken) sh.rank[i] = is_reply ? reply_rank : dead_rank;
  __syncthreads();

  // Replies, dead letters and forwards leave with coalesced 16-byte stores.
  for (rk_u32 k = threadIdx.x; k < n * wps; k += blockDim.x) {
    const rk_u32 m = k >> shift;
    const rk_u32 word = k & (wps - 1u);
    const rk_u32 s = m < taken ? sh.status[m] : RK_S_VOID;
    if (s == RK_S_REPLY) {
      uint4* to = reinterpret_cast<uint4*>(rk_queue_slot(r.out, r.out_p.tail + sh.rank[m])) + word;
      __stcs(to, sh.out_stage[k]);
    } else if (s >= RK_S_DEAD_INVALID) {
      uint4 v = sh.in_stage[k];
      if (word == 1u) v.w = s == RK_S_DEAD_INVALID ? RK_DEAD_INVALID_MESSAGE
                          : s == RK_S_DEAD_TARGET ? RK_DEAD_UNKNOWN_TARGET
                          : s == RK_S_DEAD_SKEW   ? RK_DEAD_CLOCK_SKEW
                                                  : RK_DEAD_HANDLER_ERROR;
      __stcs(reinterpret_cast<uint4*>(rk_queue_slot(r.dl, r.dl_p.tail + sh.rank[m])) + word, v);
    }
    if (A::forwards && routed && word * 16u < target.slot_size) {
      // Every reserved ticket is written: forwarded messages, or void slots.
      const rk_u32 ticket = first_ticket + m;
      uint4 v = s == RK_S_FORWARD ? sh.in_stage[k] : make_uint4(0u, 0u, 0u, 0u);
      if (word == 1u) {
        if (s == RK_S_FORWARD) {
          const rk_u64 ts = stamp_base + m;
          v.x = static_cast<rk_u32>(ts);
          v.y = static_cast<rk_u32>(ts >> 32);
          v.z = sh.desc.actor_id;
        }
      }
      uint4* to = reinterpret_cast<uint4*>(rk_queue_slot(target, ticket)) + word;
      if (word == 1u) {
        rk_store_stamp_word(to, v);  // the stamp keeps its previous-lap value until published
      } else {
        *to = v;
      }
    }
  }

  // Counters before release, so sent = processed + dead-lettered + queued at every instant.
  if (leader) {
    const rk_u64 now = rk_globaltimer_ns();
    const rk_u64 elapsed = now - sh.wide[0];
    // The batch's sends and publications took timestamps after its replies': the clock moves past them.
    if (sh.send_stamp_next != 0) rk_hlc_observe(&r.clock, sh.send_stamp_base + sh.send_stamp_next - 1u);
    r.processed += handled;
    r.dropped += deads;
    if (which == RK_SOURCE_K2K) r.k2k_received += handled + deads;
    if (handled != 0) {
      const rk_u64 per = elapsed / handled;
      r.total_latency += elapsed;
      if (per > r.max_latency) r.max_latency = per;
      if (per < r.min_latency) r.min_latency = per;
      rk_store_volatile(&r.tm->last_processed_timestamp, static_cast<rk_i64>(rk_hlc_wall_ns(&r.clock)));
    }
    rk_run_store_counters(r);
  }
  // Barrier, then a fence by each publishing thread, then its stores: the
  // fence orders every thread's slot writes (seen through the barrier) first.
  __syncthreads();
  if (leader || (A::forwards && routed && threadIdx.x < n)) __threadfence_system();
  if (A::forwards && routed) {
    for (rk_u32 m = threadIdx.x; m < n; m += blockDim.x) {
      rk_store_volatile(rk_queue_stamp(target, first_ticket + m), first_ticket + m + 1u);
    }
  }
  r.out_p.tail += replies;
  r.dl_p.tail += deads;
  r.head[which] += taken;
  r.sequence += handled;
  if (leader) {
    if (replies != 0) rk_store_volatile(&r.out.header->tail, r.out_p.tail);
    if (deads != 0) rk_store_volatile(&r.dl.header->tail, r.dl_p.tail);
    rk_store_volatile(&q.header->head, r.head[which]);
  }
  *failed = handler_failed;  // also when the failing message was the batch's last
  __syncthreads();
  return taken;
}

/** Whether two types are the same (no <type_traits> under NVRTC). */
template <class T, class U>
struct rk_is_same {
  static constexpr bool value = false;
};
template <class T>
struct rk_is_same<T, T> {
  static constexpr bool value = true;
};

/**
 * Block-wide: initialises an empty queue in device memory, as Ring.create
 * does on the host: every stamp at its previous-lap value, indices 0, and the
 * magic written last.
 */
__device__ __forceinline__ void rk_block_queue_init(rk_queue_header* h, rk_u32 capacity, rk_u32 slot_size,
                                                    rk_u32 kind) {
  if (threadIdx.x == 0) rk_store_volatile(&h->magic, 0u);
  __threadfence();
  __syncthreads();  // the queue reads as uninitialised before any stamp changes
  rk_u8* slots = reinterpret_cast<rk_u8*>(h) + RK_QUEUE_HEADER_SIZE;
  for (rk_u32 k = threadIdx.x; k < capacity; k += blockDim.x) {
    rk_store_volatile(reinterpret_cast<rk_u32*>(slots + static_cast<rk_u64>(k) * slot_size +
                                                RK_OFFSETOF(rk_envelope, stamp)),
                      k + 1u - capacity);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    rk_store_volatile(&h->head, 0u);
    rk_store_volatile(&h->tail, 0u);
    rk_store_volatile(&h->dropped, 0u);
    rk_store_volatile(&h->reserve, 0u);
    rk_store_volatile(&h->capacity, capacity);
    rk_store_volatile(&h->slot_size, slot_size);
    rk_store_volatile(&h->kind, kind);
    rk_store_volatile(&h->doorbell, 0);
    rk_store_volatile(&h->sleeping, 0);
    rk_store_volatile(&h->room_bell, 0);
    rk_store_volatile(&h->room_waiting, 0);
    __threadfence();
    rk_store_volatile(&h->magic, RK_QUEUE_MAGIC);
    __threadfence();
  }
  __syncthreads();
}

/** Block-wide: opens one queue of the descriptor (`kind` SPSC or MPSC). */
__device__ __forceinline__ rk_i32 rk_open_queue(rk_u64 address, rk_u32 kind, rk_queue* q) {
  return rk_block_queue_open(reinterpret_cast<rk_queue_header*>(address), kind, q);
}

/**
 * Block-wide: checks the descriptor, opens the queues and resumes the indices
 * where the last run left them. Returns RK_ERROR_NONE or an error code.
 */
template <class A>
__device__ rk_i32 rk_actor_open(rk_pool_shared& sh, rk_run& r) {
  const rk_actor_desc& d = sh.desc;
  const bool leader = threadIdx.x == 0;
  r.cb = reinterpret_cast<rk_control_block*>(d.control);
  r.tm = reinterpret_cast<rk_telemetry*>(d.telemetry);
  if (d.abi_version != RK_ABI_VERSION || d.control == 0 || d.telemetry == 0 || d.input == 0 || d.output == 0 ||
      d.dead_letters == 0 || blockDim.x != RK_POOL_THREADS) {
    return RK_ERROR_BAD_DESCRIPTOR;
  }
  if (rk_block_broadcast(leader ? rk_load_volatile(&r.cb->abi_version) : 0u) != RK_ABI_VERSION) {
    return RK_ERROR_ABI_MISMATCH;
  }
  rk_i32 error = rk_open_queue(d.input, RK_QUEUE_KIND_SPSC, &r.src[RK_SOURCE_INPUT]);
  r.present[RK_SOURCE_INPUT] = true;
  r.present[RK_SOURCE_INBOX] = d.inbox != 0;
  r.present[RK_SOURCE_K2K] = d.k2k_inbox != 0;
  if (error == RK_ERROR_NONE && d.inbox != 0) error = rk_open_queue(d.inbox, RK_QUEUE_KIND_MPSC, &r.src[RK_SOURCE_INBOX]);
  if (error == RK_ERROR_NONE && d.k2k_inbox != 0) {
    if (d.flags & RK_ACTOR_FLAG_INIT_K2K) {
      const rk_queue& in = r.src[RK_SOURCE_INPUT];
      rk_block_queue_init(reinterpret_cast<rk_queue_header*>(d.k2k_inbox), in.mask + 1u, in.slot_size,
                          RK_QUEUE_KIND_MPSC);
    }
    error = rk_open_queue(d.k2k_inbox, RK_QUEUE_KIND_MPSC, &r.src[RK_SOURCE_K2K]);
  }
  if (error == RK_ERROR_NONE) error = rk_open_queue(d.output, RK_QUEUE_KIND_SPSC, &r.out);
  if (error == RK_ERROR_NONE) error = rk_open_queue(d.dead_letters, RK_QUEUE_KIND_SPSC, &r.dl);
  r.io = reinterpret_cast<rk_actor_io*>(d.io);
  r.has_outbox = false;
  r.max_skew_ms = 0;
  r.skew_limit_ms = 0;
  if (error == RK_ERROR_NONE && d.io != 0) {
    // Host-written before the launch: every thread reads the same values.
    const rk_u64 outbox = rk_load_volatile(&r.io->outbox);
    r.max_skew_ms = rk_load_volatile(&r.io->max_skew_ms);
    if (outbox != 0) {
      error = rk_open_queue(outbox, RK_QUEUE_KIND_MPSC, &r.outbox);
      r.has_outbox = error == RK_ERROR_NONE;
    }
  }
  if (error != RK_ERROR_NONE) return error;
  const rk_u32 slot = r.src[RK_SOURCE_INPUT].slot_size;
  for (rk_u32 s = 1; s < RK_SOURCE_COUNT; ++s) {
    if (r.present[s] && r.src[s].slot_size != slot) return RK_ERROR_BAD_SLOT_SIZE;
  }
  if (r.dl.slot_size != slot || r.out.slot_size != slot) return RK_ERROR_BAD_SLOT_SIZE;
  if (RK_ENVELOPE_SIZE + d.input_size > slot || RK_ENVELOPE_SIZE + d.output_size > slot) {
    return RK_ERROR_BAD_SLOT_SIZE;
  }
  if (!A::raw) {
    if (sizeof(typename A::Input) != d.input_size) return RK_ERROR_SCHEMA_MISMATCH;
    if (A::replies && sizeof(typename A::Output) != d.output_size) return RK_ERROR_SCHEMA_MISMATCH;
  }
  if (!rk_is_same<typename A::StateType, rk_no_state>::value &&
      (d.state == 0 || d.state_bytes < sizeof(typename A::StateType))) {
    return RK_ERROR_SCHEMA_MISMATCH;
  }
  r.words_per_slot = slot / 16u;
  r.stage_cap = RK_STAGE_BYTES / slot;
  r.max_batch = d.max_batch == 0 ? RK_MAX_BATCH : d.max_batch;
  for (rk_u32 s = 0; s < RK_SOURCE_COUNT; ++s) {
    r.head[s] = rk_block_broadcast(leader && r.present[s] ? rk_load_volatile(&r.src[s].header->head) : 0u);
  }
  r.out_p.tail = rk_block_broadcast(leader ? rk_load_volatile(&r.out.header->tail) : 0u);
  r.out_p.head_seen = rk_block_broadcast(leader ? rk_load_acquire_sys(&r.out.header->head) : 0u);
  r.dl_p.tail = rk_block_broadcast(leader ? rk_load_volatile(&r.dl.header->tail) : 0u);
  r.dl_p.head_seen = rk_block_broadcast(leader ? rk_load_acquire_sys(&r.dl.header->head) : 0u);
  r.sequence = 0;
  r.queue_depth = 0;
  return RK_ERROR_NONE;
}

/** Block-wide: records a startup error and marks the actor exited (thread 0). */
__device__ __forceinline__ void rk_actor_refuse(const rk_actor_desc& d, rk_i32 error) {
  if (threadIdx.x == 0 && d.control != 0) {
    rk_control_block* cb = reinterpret_cast<rk_control_block*>(d.control);
    rk_control_fail(cb, error);
    rk_control_exit(cb, RK_TERMINATION_TERMINATED);
  }
}

/**
 * Block-wide: runs one actor until it is told to terminate (after draining
 * every source), to abort, or its handler fails. Exits with has_terminated
 * = 1 after a terminate, 2 (relaunchable) after an abort or a failure.
 */
template <class A>
__device__ void rk_actor_run(rk_pool_shared& sh) {
  rk_run r;
  const bool leader = threadIdx.x == 0;
  const rk_i32 error = rk_actor_open<A>(sh, r);
  if (error != RK_ERROR_NONE) {
    rk_actor_refuse(sh.desc, error);
    return;
  }
  if (leader) {
    r.processed = rk_load_volatile(&r.cb->messages_processed);
    r.k2k_received = rk_load_volatile(&r.cb->k2k_received);
    r.pause_ack = rk_load_volatile(&r.cb->pause_ack);
    r.dropped = rk_load_volatile(&r.tm->messages_dropped);
    r.total_latency = rk_load_volatile(&r.tm->total_latency_nanos);
    r.max_latency = rk_load_volatile(&r.tm->max_latency_nanos);
    r.min_latency = rk_load_volatile(&r.tm->min_latency_nanos);
    rk_hlc_start(&r.clock, sh.desc.host_time_ns);
    if (r.io != nullptr) {
      sh.send_counts[0] = rk_load_volatile(&r.io->sent);
      sh.send_counts[1] = rk_load_volatile(&r.io->published);
      sh.send_counts[2] = rk_load_volatile(&r.io->full);
      sh.send_counts[3] = rk_load_volatile(&r.io->unknown);
      sh.send_counts[4] = rk_load_volatile(&r.io->refused);
    } else {
      for (rk_u32 k = 0; k < 5u; ++k) sh.send_counts[k] = 0;
    }
    sh.outbox_reserve = r.has_outbox ? rk_load_volatile(&r.outbox.header->reserve) : 0u;
    sh.send_stamp_base = rk_hlc_reserve(&r.clock, 1u);  // for sends from init
    sh.send_stamp_next = 0;
    typename A::StateType* state = reinterpret_cast<typename A::StateType*>(sh.desc.state);
    if ((sh.desc.flags & RK_ACTOR_FLAG_INIT_STATE) != 0 && state != nullptr) {
      rk_actor_ctx ctx;
      ctx.actor_id = sh.desc.actor_id;
      ctx.source_actor = 0;
      ctx.correlation_id = 0;
      ctx.timestamp = 0;
      ctx.sequence = 0;
      ctx.index = 0;
      ctx.input_size = sh.desc.input_size;
      ctx.output_size = sh.desc.output_size;
      ctx.state_bytes = sh.desc.state_bytes;
      ctx.config = sh.desc.config;
      ctx.scratch = sh.scratch;
      ctx.run = &r;
      ctx.reply_correlation = 0;
      A::init(*state, ctx);
      __threadfence();
    }
    // The first heartbeat tells the host the actor runs (and that its K2K
    // inbox and state are initialised: fence first).
    __threadfence_system();
    rk_run_store_counters(r);
    __threadfence_system();
  }
  __syncthreads();

  rk_backoff backoff;
  rk_backoff_reset(&backoff);
  bool terminate_seen = false;
  bool aborted = false;
  bool failed = false;
  for (;;) {
    rk_u32 ready[RK_SOURCE_COUNT];
    const rk_u32 flags = rk_block_poll(sh, r, ready);
    if (flags & RK_RUN_ABORT) {
      aborted = true;
      break;
    }
    r.queue_depth = ready[RK_SOURCE_INPUT];
    if (leader && (flags & RK_RUN_ACTIVE) == 0) {
      // Acquire: later polls see the is_active the host stored before this request.
      const rk_i32 request = rk_load_acquire_sys(&r.cb->pause_request);
      if (request != r.pause_ack) {
        r.pause_ack = request;
        __threadfence_system();  // the previous batch's heads, tails and counters first
        rk_store_volatile(&r.cb->pause_ack, request);
      }
    }
    rk_u32 work = 0;
    bool waiting = false;
    if (flags & (RK_RUN_ACTIVE | RK_RUN_TERMINATE)) {
      for (rk_u32 s = 0; s < RK_SOURCE_COUNT && !failed; ++s) {
        if (!r.present[s] || ready[s] == 0) continue;
        waiting = true;
        work += rk_serve_source<A>(sh, r, s, ready[s], &failed);
      }
    }
    if (failed) break;
    if (work != 0) {
      rk_backoff_reset(&backoff);
      if (flags & RK_RUN_TERMINATE) terminate_seen = true;
      continue;
    }
    // Drained: a whole poll issued after the terminate flag was seen found nothing.
    if (!waiting && terminate_seen) break;
    if (flags & RK_RUN_TERMINATE) {
      terminate_seen = true;
      if (!waiting) continue;  // confirm at once with one more poll
    }
    rk_backoff_idle(&backoff);
    if (leader && rk_globaltimer_ns() - r.last_heartbeat > RK_HEARTBEAT_NS) rk_run_store_counters(r);
  }

  if (leader) {
    rk_run_store_counters(r);
    if (failed) rk_control_fail(r.cb, RK_ERROR_HANDLER_FAILED);
    rk_control_exit(r.cb, failed || aborted ? RK_TERMINATION_RELAUNCHABLE : RK_TERMINATION_TERMINATED);
  }
}

/** Block-wide: copies this block's descriptor into shared memory; false when it has none. */
__device__ __forceinline__ bool rk_pool_enter(const rk_u64* descriptors) {
  rk_pool_shared& sh = rk_pool_smem();
  if (threadIdx.x == 0) sh.wide[7] = rk_load_volatile(descriptors + blockIdx.x);
  __syncthreads();
  const rk_u64 address = sh.wide[7];
  if (address == 0) return false;
  const uint4* from = reinterpret_cast<const uint4*>(address);
  uint4* to = reinterpret_cast<uint4*>(&sh.desc);
  for (rk_u32 k = threadIdx.x; k < sizeof(rk_actor_desc) / 16u; k += blockDim.x) to[k] = __ldcv(from + k);
  __syncthreads();
  return true;
}

#if defined(RK_EMULATION)
/** Under the CPU emulator, a pool kernel registers itself by name. */
#define RK_EMU_KERNEL_DEFINED(kernel_name) RK_EMU_REGISTER(kernel_name)
#else
#define RK_EMU_KERNEL_DEFINED(kernel_name)
#endif

/**
 * Defines `kernel_name(const rk_u64* descriptors, rk_u32 count)`, a pool
 * kernel whose actors all run `Actor` (traits derived from rk_actor_base).
 * Launch it with RK_POOL_THREADS threads per block, one block per actor, and
 * RK_POOL_SHARED_BYTES of dynamic shared memory.
 */
#define RK_ACTOR_KERNEL(kernel_name, Actor)                                                              \
  extern "C" __global__ void __launch_bounds__(RK_POOL_THREADS) kernel_name(const rk_u64* descriptors, \
                                                                            rk_u32 count) {            \
    if (blockIdx.x >= count || !rk_pool_enter(descriptors)) return;                                    \
    rk_pool_shared& sh = rk_pool_smem();                                                               \
    if (sh.desc.kind != RK_ACTOR_KIND_USER) {                                                          \
      rk_actor_refuse(sh.desc, RK_ERROR_UNKNOWN_ACTOR_KIND);                                           \
      return;                                                                                          \
    }                                                                                                  \
    rk_actor_run<Actor>(sh);                                                                           \
  }                                                                                                    \
  RK_EMU_KERNEL_DEFINED(kernel_name)

/**
 * A stateless actor from one handler,
 * `rk_i32 handler(const InType& in, OutType& out, rk_actor_ctx& ctx)`, run on
 * one thread per message: return RK_REPLY to send `out` to the host,
 * RK_HANDLED for no reply, RK_REJECT for an invalid message, RK_FAIL to crash.
 */
#define RK_DEFINE_ACTOR(kernel_name, InType, OutType, handler)                                        \
  struct kernel_name##_traits : rk_actor_base<InType, OutType, rk_no_state, RK_MODE_PARALLEL> {      \
    __device__ static rk_i32 handle(const InType& in, OutType& out, rk_no_state&, rk_actor_ctx& ctx) { \
      return handler(in, out, ctx);                                                                    \
    }                                                                                                  \
  };                                                                                                   \
  RK_ACTOR_KERNEL(kernel_name, kernel_name##_traits)

/**
 * A stateful actor from one handler,
 * `rk_i32 handler(const InType& in, OutType& out, StateType& state, rk_actor_ctx& ctx)`,
 * run on one thread, message after message. The state lives in device memory
 * (declare its size as the actor's stateBytes); it is zeroed at every start.
 */
#define RK_DEFINE_STATEFUL_ACTOR(kernel_name, InType, OutType, StateType, handler)                        \
  struct kernel_name##_traits : rk_actor_base<InType, OutType, StateType, RK_MODE_SEQUENTIAL> {          \
    __device__ static rk_i32 handle(const InType& in, OutType& out, StateType& state, rk_actor_ctx& ctx) { \
      return handler(in, out, state, ctx);                                                               \
    }                                                                                                    \
  };                                                                                                     \
  RK_ACTOR_KERNEL(kernel_name, kernel_name##_traits)

#endif  // __CUDACC__ || RK_EMULATION

#endif  // RINGKERNEL_CUH
