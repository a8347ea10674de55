/*
 * SPSC ring (src/ring.ts, "SPSC"): one producer, one consumer, free-running
 * indices modulo a small M (the model's u32), capacity C slots, batches.
 *
 * - `tail` is written only by the producer, `head` only by the consumer.
 * - Producer: free = C - (tail - headCache); re-reads `head` only when that
 *   is too small; writes the slots of a batch, then publishes them with one
 *   store of `tail`.
 * - Consumer: ready = tailCache - head; re-reads `tail` only when that is 0;
 *   reads a batch of slots, then releases them with one store of `head`.
 *
 * Properties (assertions, checked in every interleaving):
 * - FIFO: the consumer reads 1, 2, ..., N in order (no loss, no duplicate,
 *   no stale read);
 * - the producer never writes a slot the consumer has not released;
 * - 0 <= tail - head <= C whenever either side reads the other's index;
 * - both sides finish (no invalid end state: nothing is lost).
 * LTL `bounded`: [] (0 <= tail - head <= C).
 * LTL `delivered`: <> (received == N).
 *
 * Broken twins (-D...): BROKEN_PUBLISH_FIRST (tail stored before the slot
 * writes), BROKEN_CONSUMER_WRITES_TAIL (the consumer rewrites the whole
 * header, tail included, from its cached view), BROKEN_CAPACITY (off by one
 * in the free-space check).
 */

/* LTL runs (run.sh passes -DLTL_ONLY): only the formula may fail. */
#ifdef LTL_ONLY
#define assert(e) skip
#endif

#define C 4            /* capacity: a power of two */
#define M 8            /* index modulus: a power of two; M = 2C is the tightest */
#define N 14           /* messages: more than one lap of M */
#define INIT 5         /* initial index, so the indices wrap during the run */
#define dist(a, b) (((a) + M - (b)) % M)

byte head = INIT;      /* consumer-written */
byte tail = INIT;      /* producer-written */
byte slot[C];          /* the payload: a sequence number */
bool unread[C];        /* ghost: written and not yet released */
byte received = 0;

ltl bounded { [] (dist(tail, head) <= C) }
ltl delivered { <> (received == N) }

active proctype producer() {
  byte t = INIT;       /* own index */
  byte hc = INIT;      /* cached head */
  byte sent = 0;
  byte n, free, i;
  do
  :: sent == N -> break
  :: else ->
    /* ask for a batch of 1, 2 or C */
    if
    :: n = 1
    :: n = 2
    :: n = C
    fi;
    if
    :: n > N - sent -> n = N - sent
    :: else -> skip
    fi;
#ifdef BROKEN_CAPACITY
    free = C + 1 - dist(t, hc);
#else
    free = C - dist(t, hc);
#endif
    if
    :: free < n ->
      hc = head;
      assert(dist(t, hc) <= C);
#ifdef BROKEN_CAPACITY
      free = C + 1 - dist(t, hc)
#else
      free = C - dist(t, hc)
#endif
    :: else -> skip
    fi;
    if
    :: free < n -> n = free
    :: else -> skip
    fi;
    if
    :: n == 0 ->
      /* full: poll until the consumer releases something */
      dist(t, head) < C
    :: else ->
#ifdef BROKEN_PUBLISH_FIRST
      tail = (t + n) % M;
#endif
      i = 0;
      do
      :: i == n -> break
      :: else ->
        assert(!unread[(t + i) % C]);
        slot[(t + i) % C] = sent + i + 1;
        unread[(t + i) % C] = true;
        i++
      od;
#ifndef BROKEN_PUBLISH_FIRST
      tail = (t + n) % M;  /* one store publishes the whole batch */
#endif
      t = (t + n) % M;
      sent = sent + n
    fi
  od
}

active proctype consumer() {
  byte h = INIT;       /* own index */
  byte tc = INIT;      /* cached tail */
  byte n, k, i;
  do
  :: received == N -> break
  :: else ->
    n = dist(tc, h);
    if
    :: n == 0 ->
      tc = tail;
      n = dist(tc, h);
      assert(n <= C)
    :: else -> skip
    fi;
    if
    :: n == 0 ->
      /* empty: poll until the producer publishes */
      tail != h
    :: else ->
      /* read a batch of 1 or of everything ready */
      if
      :: k = 1
      :: k = n
      fi;
      i = 0;
      do
      :: i == k -> break
      :: else ->
        assert(slot[(h + i) % C] == received + 1);
        received++;
        i++
      od;
      /* release the batch with one store */
      atomic {
        i = 0;
        do
        :: i == k -> break
        :: else -> unread[(h + i) % C] = false; i++
        od;
        head = (h + k) % M
      }
#ifdef BROKEN_CONSUMER_WRITES_TAIL
      ;
      tail = tc
#endif
      ;
      h = (h + k) % M
    fi
  od
}
