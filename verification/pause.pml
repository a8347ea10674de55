/*
 * Pause handshake (Kernel.deactivate in src/kernel.ts; the actor loops of
 * src/backend/cpu/actor_worker.ts and cuda/ringkernel.cuh rk_actor_run).
 *
 * - Host deactivate(): isActive = 0; pauseRequest++; wake the loop; wait
 *   until pauseAck == pauseRequest. Then the host sends a message: it was
 *   sent after deactivate resolved. activate(): isActive = 1.
 * - Loop, every poll: one load of isActive; when active, one load of the
 *   queue's tail and it takes everything up to it; when inactive, it reads
 *   pauseRequest (after the flag) and stores it in pauseAck.
 *
 * Property (assertion): a message sent after deactivate resolved is not taken
 * before the next activate. LTL `completes`: <> done (every deactivate is
 * confirmed, with weak fairness).
 *
 * Broken twins (-D...): BROKEN_NO_WAIT (deactivate does not wait: the old
 * code), BROKEN_ACK_WHILE_ACTIVE (the loop confirms in a poll where it saw
 * the actor active), BROKEN_NO_ACK (the loop never confirms: deactivate
 * never completes).
 */

/* LTL runs (run.sh passes -DLTL_ONLY): only the formula may fail. */
#ifdef LTL_ONLY
#define assert(e) skip
#endif

#define ROUNDS 2

byte tail = 0;           /* input queue: host-written */
byte head = 0;           /* input queue: loop-written */
bool isActive = true;
byte pauseRequest = 0;   /* host-written */
byte pauseAck = 0;       /* loop-written */
bool paused = false;     /* ghost: deactivate resolved, activate not called yet */
byte tailAtPause = 0;    /* ghost: tail when deactivate resolved */
bool done = false;

ltl completes { <> done }

active proctype host() {
  byte round = 0;
  do
  :: round == ROUNDS -> break
  :: else ->
    tail++;                        /* a message while active */
    isActive = false;              /* deactivate() */
    pauseRequest++;
#ifndef BROKEN_NO_WAIT
    pauseAck == pauseRequest;      /* the loop's confirmation */
#endif
    atomic { paused = true; tailAtPause = tail };
    tail++;                        /* sent after deactivate resolved */
    atomic { paused = false; isActive = true };   /* activate() */
    round++
  od;
  done = true
}

active proctype actorLoop() {
  bool seenActive;
  byte t;
end:
  do
  :: seenActive = isActive;
#ifdef BROKEN_ACK_WHILE_ACTIVE
    pauseAck = pauseRequest;
#endif
    if
    :: seenActive ->
      t = tail;
      assert(!(paused && t > tailAtPause));
      head = t
    :: else ->
#if !defined(BROKEN_ACK_WHILE_ACTIVE) && !defined(BROKEN_NO_ACK)
      pauseAck = pauseRequest
#else
      skip
#endif
    fi
  od
}
