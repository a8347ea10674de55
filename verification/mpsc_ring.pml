/*
 * MPSC ring (src/ring.ts, "MPSC"): P producers take tickets from `reserve`,
 * one consumer; free-running indices modulo a small M (the model's u32),
 * capacity C.
 *
 * - claim: start from the last `reserve` this producer saw (a guess), read
 *   `head` fresh, used = reserve - head; a guess behind head (used > C):
 *   read `reserve`; free = 0: read `reserve`, and if it equals the guess the
 *   ring is full (claim returns 0, the sender polls), else retry with it;
 *   otherwise compare-and-swap `reserve` from the guess to guess + granted
 *   (granted <= free), retrying with the witnessed value when it fails.
 * - publish: write the slot of each ticket t (a void slot for a ticket that
 *   is not filled), then store its stamp t + 1, the stamp last.
 * - consumer at head h: counts the slots whose stamp is h + k + 1, reads
 *   them (skipping void ones), releases them with one store of `head`.
 * - create: every slot's stamp starts at its previous-lap value.
 *
 * Properties (assertions, every interleaving):
 * - a consumer never reads a slot that was not written for this lap;
 * - a producer never writes a slot the consumer has not released;
 * - per producer, messages arrive in order; at the end every message was
 *   delivered or rejected (void), none twice; every process finishes.
 * LTL `bounded`: [] (0 <= reserve - head <= C).
 * LTL `delivered`: <> (consumer done).
 *
 * Assumption: no producer stays between its read of `head` and its
 * compare-and-swap while the other producers take a whole lap (M tickets;
 * 2^32 in the code). The model keeps the run shorter than a lap after the
 * wrap; -DFINDING_TICKET_LAP drops that bound to show the ABA case.
 *
 * Broken twins (-D...): BROKEN_STAMP_FIRST (stamp stored before the slot
 * write), BROKEN_UNBOUNDED_RESERVE (fetch-and-add without the capacity
 * bound), BROKEN_IGNORE_STAMP (the consumer takes every reserved slot
 * without checking its stamp).
 */

/* LTL runs (run.sh passes -DLTL_ONLY): only the formula may fail. */
#ifdef LTL_ONLY
#define assert(e) skip
#endif

#define C 2            /* capacity: a power of two */
#define P 2            /* producers */
#ifdef FINDING_TICKET_LAP
#define M 4            /* index modulus */
#define K 4            /* messages per producer */
#define INIT 0
#else
#define M 16           /* index modulus: a power of two, > C */
#define K 2            /* messages per producer */
#define INIT 14        /* initial index: the indices wrap during the run */
#endif
#define VOID 0
#define dist(a, b) (((a) + M - (b)) % M)

byte head = INIT;      /* consumer-written */
byte reserve = INIT;   /* producers' tickets (compare-and-swap) */
byte stamp[C];
byte data[C];          /* VOID, or producer * 16 + seq + 1 */
bool unread[C];        /* ghost: written this lap and not yet released */
byte finished = 0;     /* producers done */
byte rejected = 0;     /* messages published as void slots */
byte delivered = 0;
bool consumerDone = false;

ltl bounded { [] (dist(reserve, head) <= C) }
ltl delivered_all { <> consumerDone }

proctype producer(byte id) {
  byte seq = 0;
  byte expected = INIT;  /* the last `reserve` this producer saw */
  byte r, h, used, want, granted, fill, i, t, witnessed;
  bool voidUsed = false;
  do
  :: seq == K -> break
  :: else ->
    if
    :: want = 1
    :: want = 2
    fi;
    if
    :: want > K - seq -> want = K - seq
    :: else -> skip
    fi;
    /* claim(want): the CAS expects our last view of `reserve` */
    r = expected;
claim:
    h = head;
    used = dist(r, h);
#ifdef BROKEN_UNBOUNDED_RESERVE
    granted = want;
    atomic { r = reserve; reserve = (reserve + granted) % M };
#else
    if
    :: used > C ->
      /* the guess is behind head: read the real value */
      r = reserve;
      goto claim
    :: used == C ->
      witnessed = reserve;
      if
      :: witnessed == r ->
        /* full: claim returns 0; the sender polls until a slot is released */
        expected = r;
        dist(reserve, head) < C;
        r = expected;
        goto claim
      :: else -> r = witnessed; goto claim
      fi
    :: else -> skip
    fi;
    granted = C - used;
    if
    :: granted > want -> granted = want
    :: else -> skip
    fi;
    atomic {
      witnessed = reserve;
      if
      :: reserve == r -> reserve = (r + granted) % M
      :: else -> skip
      fi
    };
    if
    :: witnessed != r -> r = witnessed; goto claim
    :: else -> expected = (r + granted) % M
    fi;
#endif
    /* fill some of the tickets; at most once, leave the last one void */
    fill = granted;
    if
    :: !voidUsed && granted > 0 -> fill = granted - 1; voidUsed = true
    :: true -> skip
    fi;
    i = 0;
    do
    :: i == granted -> break
    :: else ->
      t = (r + i) % M;
      assert(!unread[t % C]);
#ifdef BROKEN_STAMP_FIRST
      stamp[t % C] = (t + 1) % M;
#endif
      if
      :: i < fill -> data[t % C] = id * 16 + seq + 1; seq++
      :: else -> data[t % C] = VOID; rejected++; seq++
      fi;
      unread[t % C] = true;
#ifndef BROKEN_STAMP_FIRST
      stamp[t % C] = (t + 1) % M;
#endif
      i++
    od
  od;
  finished++
}

active proctype consumer() {
  byte h = INIT;
  byte last[P];        /* last seq + 1 seen from each producer */
  byte ready, k, i, v;
  do
  :: finished == P && reserve == h -> break
  :: else ->
    /* count the published slots from the head */
    ready = 0;
    do
#ifdef BROKEN_IGNORE_STAMP
    :: ready < dist(reserve, h) -> ready++
#else
    :: ready < C && stamp[(h + ready) % C] == (h + ready + 1) % M -> ready++
#endif
    :: else -> break
    od;
    if
    :: ready == 0 ->
      /* empty: poll */
#ifdef BROKEN_IGNORE_STAMP
      reserve != h || finished == P
#else
      stamp[h % C] == (h + 1) % M || (finished == P && reserve == h)
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
        v = data[(h + i) % C];
        if
        :: v != VOID ->
          assert((v - 1) % 16 >= last[(v - 1) / 16]);
          last[(v - 1) / 16] = (v - 1) % 16 + 1;
          delivered++
        :: else -> skip
        fi;
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
  assert(delivered + rejected == P * K);
  consumerDone = true
}

init {
  byte k = 0;
  atomic {
    /* each slot's stamp from the lap before its first ticket */
    do
    :: k == C -> break
    :: else ->
      stamp[k] = (INIT + (k + M - INIT % C) % C + 1 + M - C) % M;
      k++
    od;
    run producer(0);
    run producer(1)
  }
}
