/*
 * Kernel lifecycle with drain/abort termination (src/lifecycle.ts,
 * src/kernel.ts terminate/#stop, the actor loop of
 * src/backend/cpu/actor_worker.ts). The user's calls and the asynchronous
 * rest of terminate() interleave with the actor's loop.
 *
 * - States: launched -> active <-> deactivated -> terminated (the table of
 *   lifecycle.ts); any other operation, and any lifecycle operation while
 *   terminating, is refused. Sends are refused once terminate began.
 * - terminate(): abort sets should_abort, drain sets is_active; then
 *   should_terminate; wakes the actor; waits for it to exit; becomes
 *   terminated; dead-letters what is left in the queue.
 * - Actor loop: exits at once on should_abort; reads should_terminate, then
 *   drains when active or terminating (checking should_abort before each
 *   message; counting a message before releasing it), and exits when a drain
 *   after seeing the flag finds nothing; otherwise sleeps until woken
 *   (doorbell.pml proves no wake-up is lost, so the sleep is a guard here).
 * The kill path of a kernel that does not stop in time is worker_kill.pml.
 *
 * Properties (assertions): after terminate, sent = processed + dead-lettered;
 * a draining terminate dead-letters nothing; the queue has one consumer at a
 * time (the host drains only after the actor exited).
 * LTL `terminated_final`: [] (terminated -> [] terminated).
 * LTL `never_lost`: [] (processed + dead-lettered + queued >= sent).
 * LTL `terminate_completes`: [] (stopping -> <> terminated) (weak fairness).
 *
 * Broken twins (-D...): BROKEN_TERMINATED_NOT_FINAL (activate accepted from
 * terminated), BROKEN_NO_DEAD_LETTER (what is left after an abort is
 * dropped), BROKEN_DRAIN_BEFORE_EXIT (the host empties the queue without
 * waiting for the actor to exit), BROKEN_RELEASE_BEFORE_COUNT (the actor
 * releases a message before counting it: for an instant it is nowhere).
 */

/* LTL runs (run.sh passes -DLTL_ONLY): only the formula may fail. */
#ifdef LTL_ONLY
#define assert(e) skip
#endif

#define S 3            /* sends the user attempts */
#define BATCH 2        /* messages per drain */

mtype = { LAUNCHED, ACTIVE, DEACTIVATED, TERMINATED };
mtype = { ACTIVATE, DEACTIVATE };

mtype st = LAUNCHED;
bool stopping = false;
bool aborting = false;     /* ghost: terminate({ abort: true }) */
bool isActive = false;
bool shouldTerminate = false;
bool shouldAbort = false;
bool exited = false;
byte tail = 0;             /* host-written */
byte head = 0;             /* written by the single consumer */
byte sent = 0;
byte processed = 0;
byte deadLettered = 0;
bool done = false;

ltl terminated_final { [] (st == TERMINATED -> [] (st == TERMINATED)) }
ltl never_lost { [] (processed + deadLettered + tail - head >= sent) }
ltl terminate_completes { [] (stopping -> <> (st == TERMINATED)) }

/* Kernel.#transition for activate/deactivate: the lifecycle.ts table. */
inline transition(op) {
  atomic {
    if
    :: stopping && st != TERMINATED -> skip   /* refused: terminating */
    :: op == ACTIVATE && (st == LAUNCHED || st == DEACTIVATED) ->
      st = ACTIVE; isActive = true
#ifdef BROKEN_TERMINATED_NOT_FINAL
    :: op == ACTIVATE && st == TERMINATED -> st = ACTIVE; isActive = true
#endif
    :: op == DEACTIVATE && st == ACTIVE -> st = DEACTIVATED; isActive = false
    :: else -> skip                           /* refused: invalid */
    fi
  }
}

proctype stopper() {
  /* the rest of terminate(), after its synchronous part */
#ifndef BROKEN_DRAIN_BEFORE_EXIT
  exited;
#endif
  st = TERMINATED;
  /* dead-letter what is left: count, then release */
#ifndef BROKEN_DRAIN_BEFORE_EXIT
  assert(exited);
#endif
#ifdef BROKEN_NO_DEAD_LETTER
  if
  :: !aborting -> deadLettered = deadLettered + tail - head; head = tail
  :: else -> skip
  fi;
#else
  byte t = tail;
  deadLettered = deadLettered + t - head;
  head = t;
#endif
  done = true
}

active proctype user() {
  byte sends = 0;
  do
  :: sends < S ->
    /* send / trySend: refused once terminate began */
    atomic {
      if
      :: !stopping && st != TERMINATED -> tail++; sent++
      :: else -> skip
      fi;
      sends++
    }
  :: true -> transition(ACTIVATE)
  :: true -> transition(DEACTIVATE)
  :: atomic { !stopping && st != TERMINATED ->
      /* terminate(): the synchronous part */
      stopping = true;
      if
      :: aborting = true; shouldAbort = true
      :: aborting = false; isActive = true
      fi;
      shouldTerminate = true;
      run stopper()
    }
  :: done -> break
  od;
  assert(sent == processed + deadLettered);
  assert(aborting || deadLettered == 0)
}

active proctype actor() {
  bool terminating;
  byte n, taken;
  do
  :: shouldAbort -> break
  :: else ->
    terminating = shouldTerminate;
    if
    :: isActive || terminating ->
      taken = 0;
      n = tail - head;
      if
      :: n > BATCH -> n = BATCH
      :: else -> skip
      fi;
      do
      :: taken == n -> break
      :: taken < n && shouldAbort -> break
      :: taken < n && !shouldAbort ->
#ifdef BROKEN_RELEASE_BEFORE_COUNT
        head++;
        processed++;
#else
        processed++;       /* count before releasing */
        head++;
#endif
        taken++
      od;
      if
      :: shouldAbort -> break
      :: taken > 0 -> skip
      :: taken == 0 && terminating -> break
      :: else ->
        /* sleep until a message (while active) or a flag */
        (isActive && tail != head) || shouldTerminate || shouldAbort
      fi
    :: else ->
      (isActive && tail != head) || shouldTerminate || shouldAbort
    fi
  od;
  exited = true
}
