/*
 * Doorbell sleep/wake (src/ring.ts "Doorbell"; the Worker loop's sleep in
 * src/backend/cpu/actor_worker.ts). The consumer drains two rings (the host's
 * SPSC input and the K2K MPSC inbox, both ringing the input ring's doorbell)
 * and the host's terminate flag.
 *
 * - Consumer about to sleep: bell = doorbell; sleeping = 1; re-check the
 *   rings and the flags; only if nothing is there, Atomics.wait(doorbell,
 *   bell) (blocks while doorbell == bell); then sleeping = 0.
 * - Producer (and the host's wake()): publish, then read `sleeping` and only
 *   if it is set increment `doorbell` and notify.
 * - The loop reads the terminate flag before it drains, and exits when a
 *   drain after seeing the flag finds nothing.
 * Atomics.wait is modelled without its timeout: correctness must not depend
 * on it (the Worker's 100 ms cap only bounds the damage of a lost wake-up).
 *
 * Properties: no lost wake-up (every run ends: no invalid end state), and
 * the consumer exits only after taking every message published before the
 * terminate flag was set (assertion).
 * LTL `wakes`: <> consumerDone (with weak fairness).
 *
 * Broken twins (-D...): BROKEN_NO_RECHECK (sleeps without re-checking),
 * BROKEN_SLEEPING_FIRST (the producer reads `sleeping` before publishing),
 * BROKEN_BELL_LATE (the consumer reads the doorbell after its re-check),
 * BROKEN_FLAG_AFTER_DRAIN (the loop reads the terminate flag after draining).
 */

/* LTL runs (run.sh passes -DLTL_ONLY): only the formula may fail. */
#ifdef LTL_ONLY
#define assert(e) skip
#endif

#define N 2            /* messages from the host */
#define NK 2           /* messages from another actor (K2K) */

byte tail = 0;         /* input ring: host-written */
byte head = 0;         /* input ring: consumer-written */
byte itail = 0;        /* inbox: published count */
byte ihead = 0;        /* inbox: consumer-written */
byte doorbell = 0;
bool sleeping = false;
bool shouldTerminate = false;
byte beforeTerminate = 0;  /* ghost: messages published when the flag was set */
bool consumerDone = false;

ltl wakes { <> consumerDone }

/* Publish with `s`, then ring the doorbell if the consumer is sleeping. */
#ifdef BROKEN_SLEEPING_FIRST
#define PUBLISH(s) rang = sleeping; s; if :: rang -> doorbell++ :: else -> skip fi
#else
#define PUBLISH(s) s; if :: sleeping -> doorbell++ :: else -> skip fi
#endif

active proctype host() {
  byte i = 0;
  bool rang;
  do
  :: i == N -> break
  :: else -> PUBLISH(tail++); i++
  od;
  /* terminate(): set the flag, then wake() */
  PUBLISH(atomic { shouldTerminate = true; beforeTerminate = tail + itail })
}

active proctype peer() {
  byte i = 0;
  bool rang;
  do
  :: i == NK -> break
  :: else -> PUBLISH(itail++); i++
  od
}

active proctype consumer() {
  byte bell, t, taken;
  bool terminating;
  do
  :: true ->
#ifndef BROKEN_FLAG_AFTER_DRAIN
    terminating = shouldTerminate;
#endif
    taken = 0;
    t = tail;
    if
    :: t != head -> taken = taken + t - head; head = t
    :: else -> skip
    fi;
    t = itail;
    if
    :: t != ihead -> taken = taken + t - ihead; ihead = t
    :: else -> skip
    fi;
#ifdef BROKEN_FLAG_AFTER_DRAIN
    terminating = shouldTerminate;
#endif
    if
    :: taken > 0 -> skip
    :: else ->
      if
      :: terminating -> break
      :: else ->
#ifndef BROKEN_BELL_LATE
        bell = doorbell;
#endif
        sleeping = true;
#ifdef BROKEN_NO_RECHECK
        doorbell != bell;
#else
        if
        :: tail != head || itail != ihead || shouldTerminate -> skip
        :: else ->
#ifdef BROKEN_BELL_LATE
          bell = doorbell;
#endif
          doorbell != bell
        fi;
#endif
        sleeping = false
      fi
    fi
  od;
  assert(head + ihead >= beforeTerminate);
  consumerDone = true
}
