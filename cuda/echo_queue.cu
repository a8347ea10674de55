// Resident echo actor over the shared queue layout: the simplest complete
// actor loop (batch consume, batch publish, control block, heartbeat, backoff).
#include "ringkernel.cuh"

#ifndef RK_FLAG_POLL_IDLE
/** Idle polls between two reads of the control flags (and heartbeats). */
#define RK_FLAG_POLL_IDLE 4u
#endif
#ifndef RK_FLAG_POLL_BUSY
/** Busy batches between two reads of the control flags. */
#define RK_FLAG_POLL_BUSY 64u
#endif

/** Control flags as one word, so one broadcast carries all of them. */
#define RK_FLAG_ACTIVE 1u
#define RK_FLAG_TERMINATE 2u
#define RK_FLAG_ABORT 4u

/** Block-wide: thread 0 reads is_active/should_terminate/should_abort. */
__device__ __forceinline__ rk_u32 rk_echo_read_flags(const rk_control_block* cb) {
  rk_u32 flags = 0;
  if (threadIdx.x == 0) {
    if (rk_load_volatile(&cb->is_active) != 0) flags |= RK_FLAG_ACTIVE;
    // Acquire: the host sets should_terminate after its last tail store, so a
    // drain that follows this read sees every message sent before it.
    if (rk_load_acquire_sys(&cb->should_terminate) != 0) flags |= RK_FLAG_TERMINATE;
    if (rk_load_volatile(&cb->should_abort) != 0) flags |= RK_FLAG_ABORT;
  }
  return rk_block_broadcast(flags);
}

/**
 * Echoes every message (the whole slot: envelope and payload) of the H2K
 * queue `in_queue` into the K2H queue `out_queue`. One block (any size; 256
 * threads suit); other blocks return at once. Both queues are SPSC with the
 * same slot size, and, like `cb`, live in mapped host memory.
 *
 * Consumes only while `is_active` is set. `should_terminate` drains the input
 * (even when inactive), `should_abort` exits at once; either way the kernel
 * publishes its counters, then sets `has_terminated` = 1. A bad ABI version or
 * queue header sets `last_error_code`, counts an error, and exits likewise.
 */
extern "C" __global__ void rk_echo_queue(rk_control_block* cb, rk_queue_header* in_queue,
                                         rk_queue_header* out_queue) {
  if (blockIdx.x != 0) return;
  const bool leader = threadIdx.x == 0;

  rk_queue in, out;
  rk_i32 error = (rk_i32)rk_block_broadcast(leader ? rk_load_volatile(&cb->abi_version) : 0u) == (rk_i32)RK_ABI_VERSION
                     ? RK_ERROR_NONE
                     : RK_ERROR_ABI_MISMATCH;
  if (error == RK_ERROR_NONE) error = rk_block_queue_open(in_queue, RK_QUEUE_KIND_SPSC, &in);
  if (error == RK_ERROR_NONE) error = rk_block_queue_open(out_queue, RK_QUEUE_KIND_SPSC, &out);
  if (error == RK_ERROR_NONE && in.slot_size != out.slot_size) error = RK_ERROR_BAD_SLOT_SIZE;
  if (error != RK_ERROR_NONE) {
    if (leader) {
      rk_control_fail(cb, error);
      rk_control_exit(cb, RK_TERMINATION_TERMINATED);
    }
    return;
  }

  // Each side owns its index: resume from where the last run left them.
  rk_u32 head = rk_block_broadcast(leader ? rk_load_volatile(&in.header->head) : 0u);
  rk_producer producer;
  producer.tail = rk_block_broadcast(leader ? rk_load_volatile(&out.header->tail) : 0u);
  producer.head_seen = rk_block_broadcast(leader ? rk_load_acquire_sys(&out.header->head) : 0u);
  rk_i64 processed = 0;
  if (leader) {
    processed = *reinterpret_cast<volatile rk_i64*>(&cb->messages_processed);
    rk_control_heartbeat(cb, processed);
  }
  const rk_u32 max_batch = in.mask + 1u < RK_MAX_BATCH ? in.mask + 1u : RK_MAX_BATCH;

  rk_backoff backoff;
  rk_backoff_reset(&backoff);
  rk_u32 flags = rk_echo_read_flags(cb);
  rk_u32 since_flags = 0;
  for (;;) {
    if (flags & RK_FLAG_ABORT) break;
    rk_u32 available = 0;
    rk_u32 n = 0;
    if (flags & (RK_FLAG_ACTIVE | RK_FLAG_TERMINATE)) {
      available = rk_block_consumer_poll(in, head, max_batch);
      if (available != 0) n = rk_block_producer_reserve(out, &producer, available);
    }
    if (n != 0) {
      rk_block_copy_slots(out, producer.tail, in, head, n);
      rk_block_commit(in, &head, n, out, &producer, n);
      if (leader) {
        processed += n;
        rk_control_heartbeat(cb, processed);
      }
      rk_backoff_reset(&backoff);
      if (++since_flags >= RK_FLAG_POLL_BUSY) {
        since_flags = 0;
        flags = rk_echo_read_flags(cb);
      }
      continue;
    }
    // Drained: nothing waits and termination was asked for.
    if (available == 0 && (flags & RK_FLAG_TERMINATE)) break;
    rk_backoff_idle(&backoff);
    if (++since_flags >= RK_FLAG_POLL_IDLE) {
      since_flags = 0;
      flags = rk_echo_read_flags(cb);
      if (leader) rk_control_heartbeat(cb, processed);
    }
  }

  if (leader) {
    rk_control_heartbeat(cb, processed);
    rk_control_exit(cb, RK_TERMINATION_TERMINATED);
  }
}
