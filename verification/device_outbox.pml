/*
 * Device publish outbox (cuda/ringkernel.cuh rk_publish_typed,
 * rk_run_store_counters and the reserve load at the block's start;
 * src/backend/cuda/cuda_actor.ts #drainOutbox): an MPSC ring in mapped memory
 * whose producers are the threads of ONE block and whose consumer is the host.
 *
 * - The block's tickets come from a word in shared memory, `sres`, not from
 *   the ring's header: a thread reads `sres` (volatile), then the host's
 *   `head` (acquire); used = ticket - head; used > C (a head newer than the
 *   ticket it read): read both again; used == C: the outbox is full, the
 *   publication is refused (RK_SEND_FULL, counted in `full`); otherwise a
 *   compare-and-swap of `sres` from the ticket to ticket + 1, retried on
 *   failure. It writes the slot, then (after a system fence) the stamp t + 1.
 * - Thread 0 stores `sres` to the header's `reserve` with the counters, after
 *   the batch's barrier (every ticket taken is published by then); a
 *   restarted block (the next generation) loads `sres` from that word.
 * - The host, at head h, takes the slots whose stamp is h + k + 1, reads them,
 *   and releases them with one store of `head` (src/ring.ts dequeueBatch).
 * - The ring is created with every stamp at its previous-lap value.
 *
 * The model runs G generations of the block, each with T threads publishing
 * K messages; indices modulo M wrap during the run.
 *
 * Properties (assertions, every interleaving):
 * - the host never reads a slot that was not written for this lap;
 * - a thread never writes a slot the host has not released;
 * - per thread and generation, publications arrive in order, none twice;
 * - at the end, delivered + refused (full) = published attempts, and the host
 *   delivered every slot reserved;
 * - no invalid end state (every process finishes).
 * LTL `bounded`: [] (0 <= sres - head <= C). LTL `drained`: <> host done.
 *
 * Broken twins (-D...): BROKEN_STAMP_FIRST (the stamp stored before the slot
 * is written: the host reads a slot before its contents), BROKEN_HOST_NO_STAMP
 * (the host takes every reserved slot without checking its stamp: it reads a
 * slot before the device published it), BROKEN_NO_FULL_CHECK (the device
 * takes a ticket without checking the host's head: it reuses a slot before
 * the host released it), BROKEN_RESUME_AT_HEAD (a restarted block takes its
 * tickets from the host's head instead of the stored reserve: it overwrites
 * published slots the host has not read yet).
 */

/* LTL runs (run.sh passes -DLTL_ONLY): only the formula may fail. */
#ifdef LTL_ONLY
#define assert(e) skip
#endif

#define C 2            /* outbox capacity: a power of two */
#define T 2            /* publishing threads of the block */
#define K 2            /* publications per thread and generation */
#define G 2            /* generations of the block (a restart between them) */
#define M 8            /* index modulus: a power of two, > C */
#define INIT 6         /* initial index: the indices wrap during the run */
#define dist(a, b) (((a) + M - (b)) % M)

byte head = INIT;      /* host-written (the ring's header) */
byte hres = INIT;      /* the header's reserve word: thread 0 stores it */
byte sres = INIT;      /* the block's reserve word in shared memory */
byte stamp[C];
byte data[C];          /* generation * 64 + thread * 16 + seq + 1 */
bool unread[C];        /* ghost: written this lap and not yet released */
byte threadsDone = 0;  /* threads of the running generation that finished */
byte refused = 0;      /* publications refused (RK_SEND_FULL) */
byte delivered = 0;
bool blockDone = false; /* every generation ran */
bool hostDone = false;

ltl bounded { [] (dist(sres, head) <= C) }
ltl drained { <> hostDone }

proctype publisher(byte gen; byte id) {
  byte seq = 0;
  byte t, h, used;
  bool won;
  do
  :: seq == K -> break
  :: else ->
retry:
    t = sres;
    h = head;
    used = dist(t, h);
#ifdef BROKEN_NO_FULL_CHECK
    used = 0;
#endif
    if
    :: used > C -> goto retry
    :: used == C -> refused++; seq++; goto next
    :: else -> skip
    fi;
    atomic {
      won = sres == t;
      if
      :: won -> sres = (t + 1) % M
      :: else -> skip
      fi
    };
    if
    :: !won -> goto retry
    :: else -> skip
    fi;
    assert(!unread[t % C]);
#ifdef BROKEN_STAMP_FIRST
    stamp[t % C] = (t + 1) % M;
#endif
    data[t % C] = gen * 64 + id * 16 + seq + 1;
    unread[t % C] = true;
#ifndef BROKEN_STAMP_FIRST
    stamp[t % C] = (t + 1) % M;
#endif
    seq++;
next:
    skip
  od;
  threadsDone++
}

/* The block: G generations, each loads the reserve, runs its threads to the
   barrier, and thread 0 stores the reserve with the counters. */
proctype block() {
  byte gen = 0;
  byte i;
  do
  :: gen == G -> break
  :: else ->
#ifdef BROKEN_RESUME_AT_HEAD
    if
    :: gen > 0 -> sres = head
    :: else -> sres = hres
    fi;
#else
    sres = hres;
#endif
    threadsDone = 0;
    atomic {
      i = 0;
      do
      :: i == T -> break
      :: else -> run publisher(gen, i); i++
      od
    };
    threadsDone == T;   /* the batch's barrier */
    hres = sres;        /* rk_run_store_counters (thread 0) */
    gen++
  od;
  blockDone = true
}

active proctype host() {
  byte h = INIT;
  byte last[8];        /* per generation * T + thread: next seq expected */
  byte ready, k, i, v, who;
  do
  :: blockDone && hres == h -> break
  :: else ->
    ready = 0;
    do
#ifdef BROKEN_HOST_NO_STAMP
    :: ready < dist(sres, h) -> ready++
#else
    :: ready < C && stamp[(h + ready) % C] == (h + ready + 1) % M -> ready++
#endif
    :: else -> break
    od;
    if
    :: ready == 0 ->
      /* empty: the watch polls again later */
#ifdef BROKEN_HOST_NO_STAMP
      sres != h || (blockDone && hres == h)
#else
      stamp[h % C] == (h + 1) % M || (blockDone && hres == h)
#endif
    :: else ->
      if
      :: k = 1
      :: k = ready
      fi;
      i = 0;
      do
      :: i == k -> break
      :: else ->
        assert(unread[(h + i) % C]);
        v = data[(h + i) % C] - 1;
        who = (v / 64) * T + (v % 64) / 16;
        assert(v % 16 >= last[who]);
        last[who] = v % 16 + 1;
        delivered++;
        i++
      od;
      atomic {
        i = 0;
        do
        :: i == k -> break
        :: else -> unread[(h + i) % C] = false; i++
        od;
        head = (h + k) % M
      };
      h = (h + k) % M
    fi
  od;
  assert(delivered + refused == G * T * K);
  hostDone = true
}

init {
  byte k = 0;
  atomic {
    /* each slot's stamp from the lap before its first ticket (src/ring.ts) */
    do
    :: k == C -> break
    :: else ->
      stamp[k] = (INIT + (k + M - INIT % C) % C + 1 + M - C) % M;
      k++
    od;
    run block()
  }
}
