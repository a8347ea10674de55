/*
 * The busy-word protocol between a CPU actor's Worker loop and the host's
 * kill (src/backend/cpu/actor_worker.ts #drain/#reply, src/backend/cpu/
 * cpu_actor.ts kill/#claimBusy, src/backend/cpu/actor_memory.ts), then what the
 * host does next: terminate's drain of the queue (dead letters), or the
 * supervisor's restart of a loop of the next generation on the same memory.
 *
 * busy = generation << 4 | state, or TAKEN (-1 in the code, 255 here).
 * state = source (1: input ring) | phase (0 handling, 4 finishing: the
 * handler returned and the reply waits for room, 8 committed: past the point
 * of no return). An idle loop of generation g holds g << 4.
 *
 * Loop of generation g, for the message at its head h:
 *   CAS idle -> handling (else exit); run the handler;
 *   CAS handling -> finishing (else exit);
 *   wait for room in the output ring, polling busy (exit once it changed);
 *   claim the reply slot and encode the reply into it;
 *   write the commit record (kind, head h, reply slot, processed counter);
 *   CAS finishing -> committed (else give the slot back and exit);
 *   committed window, no waits: publish the reply, count it processed,
 *   release it (head = h + 1), store idle.
 *   A handler that throws: record a dead letter's commit, CAS handling ->
 *   committed, count it dead-lettered, release it, store idle, exit (crash).
 * Host kill: Worker.terminate(); then loop reading busy: TAKEN -> nothing;
 *   committed -> wait (the 100 ms deadline passes only if the window can
 *   outlast it); otherwise CAS busy -> TAKEN and, for handling or finishing,
 *   take the head message of that ring as a dead letter. A word still
 *   committed after the deadline is taken, and the commit record says how far
 *   the loop got: once its reply is published, the host finishes the message
 *   (counts it unless the counter moved past the record, releases it unless
 *   head moved); once the loop counted a dead letter, the host releases it
 *   unless head moved; before that, the message stays at the head. Restart:
 *   busy = (g + 1) << 4, a new loop attaches.
 *
 * How a killed Worker stops: Deno's Worker.terminate() does not interrupt
 * running JavaScript; the loop stops at its next await (modelled, generously,
 * as optional stops at the top of each message and inside the handler) and
 * otherwise keeps running. Under -DINTERRUPT (Bun), terminate() stops the
 * thread anywhere, and a thread may also die by itself before the kill.
 *
 * Assumptions of the default model: Deno's stop semantics; every message is
 * valid (see FINDING_INVALID_UNCOMMITTED); a running loop gets through its
 * committed window (a few stores) within the host's 100 ms (see
 * FINDING_COMMIT_STALL); a loop writes its reply slot right after it last saw
 * its own finishing value (see FINDING_STALE_REPLY_WRITE); only the first
 * loop's handler throws (once: the host answers that crash); counts live in
 * shared memory (telemetry, control block), so a kill loses none.
 *
 * Properties (assertions): every message is counted exactly once, processed
 * or dead-lettered; a message gets at most one reply, only if it was
 * processed, never if it was dead-lettered, and every reply in the output
 * ring answers such a message; the message the host takes is the one the
 * loop was handling; each ring has one consumer (and the output ring one
 * producer) at a time: nobody releases or publishes behind another's back;
 * no invalid end state. LTL `done`: the kill, and the run, always complete.
 *
 * -DINTERRUPT (Bun, must verify): every property holds for every message
 * wherever the loop's thread stops. -DCODE_INTERRUPT is the same with every
 * FIX_* below (the code as it is). Not modelled: the dead letter's record (its
 * bytes and reason), which the loop posts to the host after the release; a
 * loop stopped between the two counts the message but leaves no record.
 *
 * Broken twins (-D..., must fail): BROKEN_NO_GENERATION (busy values carry
 * no generation: the old design, formerly FINDING_RESTART_ABA),
 * BROKEN_COMMIT_BEFORE_REPLY_WAIT (the commit point before the wait for room,
 * so the window can outlast the deadline: the old FINISHING state, formerly
 * FINDING_FINISHING_TIMEOUT),
 * BROKEN_PUBLISH_BEFORE_COMMIT, BROKEN_HOST_TAKES_COMMITTED,
 * BROKEN_PLAIN_CLAIM (the host reads busy and stores TAKEN, no CAS),
 * BROKEN_LEAVE_COMMITTED (Bun: the host leaves a committed message at the
 * head whatever the loop did, the design before the commit record: a reply
 * published twice, or a message counted twice), BROKEN_LEAVE_DEAD_COMMITTED
 * (the host finishes processed messages only: a dead letter counted twice).
 *
 * Findings (-D..., gaps of the code, must fail): FINDING_COMMIT_STALL (a
 * Deno loop descheduled for 100 ms inside its committed window), FINDING_INVALID_UNCOMMITTED (an
 * invalid or void slot is dead-lettered and released under `handling`),
 * FINDING_STALE_REPLY_WRITE (a loop encodes its reply into the claimed slot
 * after the host took its word and a restarted loop used that slot).
 * Proposed fixes (-D..., must verify): FIX_SLOT_COMMIT (commit before
 * dead-lettering an invalid or void slot), FIX_COMMIT_BEFORE_ENCODE (claim
 * the reply slot, commit, then encode).
 */

#define N 4            /* messages queued in the input ring (all published) */
#define NONE 255
#define TAKEN 255
#define SRC 1          /* source: the input ring (the inbox is symmetric) */
#define FINISHING 4
#define COMMITTED 8
#define KIND_DEAD 0    /* commit record: a dead letter (or a void slot) */
#define KIND_REPLY 1   /* commit record: processed, with a reply */

/* The code as it is (every fix below) under Bun's stop semantics. */
#ifdef CODE_INTERRUPT
#define INTERRUPT
#define FIX_SLOT_COMMIT
#define FIX_COMMIT_BEFORE_ENCODE
#endif
#if defined(BROKEN_LEAVE_COMMITTED) || defined(BROKEN_LEAVE_DEAD_COMMITTED)
#define INTERRUPT
#endif
#if defined(FINDING_INVALID_UNCOMMITTED) || defined(FIX_SLOT_COMMIT)
#define INVALID_MSG
#endif
#if defined(FINDING_STALE_REPLY_WRITE) || defined(FIX_COMMIT_BEFORE_ENCODE)
#define LATE_REPLY_WRITE
#endif

/* LTL runs (run.sh passes -DLTL_ONLY): only the formula may fail. */
#ifdef LTL_ONLY
#define assert(e) skip
#endif

#ifdef BROKEN_NO_GENERATION
#define IDLE(g) 0
#else
#define IDLE(g) ((g) * 16)
#endif
#define HANDLING(g) (IDLE(g) + SRC)
#define FIN(g) (HANDLING(g) + FINISHING)
#define COMMIT(g) (HANDLING(g) + COMMITTED)

/* When the host's 100 ms wait for a committed loop can run out. */
#if defined(INTERRUPT)
#define CAN_TIME_OUT stopped
#elif defined(FINDING_COMMIT_STALL)
#define CAN_TIME_OUT true
#elif defined(BROKEN_COMMIT_BEFORE_REPLY_WAIT)
#define CAN_TIME_OUT waitingForRoom
#else
#define CAN_TIME_OUT false
#endif

byte head = 0;              /* input ring head; tail = N */
byte total = 0;             /* the processed counter (control block) */
byte dtotal = 0;            /* the loop's dead-letter counter (telemetry) */
/* The commit record (worker words): what a loop is about to commit, written
   before its commit CAS; the host reads it only after taking a committed word. */
byte markKind = KIND_DEAD;
byte markHead = NONE;
byte markOut = NONE;
byte markCount = 0;
byte busy = IDLE(1);
byte processed[N];          /* ghost: times counted processed */
byte dead[N];               /* ghost: times counted dead-lettered */
byte replies[N];            /* ghost: replies published per message */
byte outTail = 0;           /* output ring tail (published replies) */
byte outSlot[N + 1] = NONE; /* reply slots: which message each answers */
byte inflight = NONE;       /* ghost: message of the last handling claim */
bool killed = false;        /* the host killed the first loop */
bool stopped = false;       /* the first loop's thread stopped (INTERRUPT) */
bool room = false;          /* the user took replies, making room */
bool outputFull = false;    /* the output ring starts full */
bool threw = false;         /* ghost: the handler threw once */
bool waitingForRoom = false;
bool hostDone = false;
byte workers = 1;
byte workersDone = 0;

ltl done { <> (hostDone && workersDone == workers) }


/* The commit record a loop writes before its commit CAS (separate stores). */
#define RECORD(kind) \
  markKind = kind; markHead = h; markOut = ot; \
  markCount = (kind == KIND_REPLY -> total : dtotal)

/* A consumer releases the slot it read: nobody moved head meanwhile. */
#define RELEASE(h) atomic { assert(head == h); head = h + 1 }

/* The output producer publishes its slot: nobody published meanwhile. */
#define PUBLISH(h) \
  d_step { \
    assert(outTail == ot); outTail = ot + 1; replies[h]++ \
  }; \
  ot++

proctype worker(byte gen) {
  byte h = head;       /* the consumer attaches: reads head */
  byte ot = outTail;   /* the output producer attaches: reads tail */
  {
  do
  :: h == N -> break
  :: else ->
    /* an await point: a killed Worker may stop here (Deno) */
    if
    :: killed && gen == 1 -> goto stop
    :: true -> skip
    fi;
    /* own the head slot before touching it */
    if
    :: d_step { busy == IDLE(gen) -> busy = HANDLING(gen); inflight = h }
    :: busy != IDLE(gen) -> goto stop
    fi;
#ifdef INVALID_MSG
    if
    :: h == 1 ->
      /* message 1 is invalid (or void): dead-lettered by the loop */
#ifdef FIX_SLOT_COMMIT
      RECORD(KIND_DEAD);
      if
      :: d_step {
           busy == HANDLING(gen) -> busy = COMMIT(gen);
         }
      :: busy != HANDLING(gen) -> goto stop
      fi;
#endif
      d_step { dead[h]++; dtotal++ };
      RELEASE(h);
     ;
      h++;
      busy = IDLE(gen);
      goto next
    :: else -> skip
    fi;
#endif
    /* the handler runs; an async one awaits (Deno: a killed Worker may stop) */
    if
    :: killed && gen == 1 -> goto stop
    :: true -> skip
    fi;
    if
    :: gen == 1 && !threw ->
      /* the handler throws: commit to dead-lettering it, then crash */
      threw = true;
      RECORD(KIND_DEAD);
      if
      :: d_step {
           busy == HANDLING(gen) -> busy = COMMIT(gen);
         }
      :: busy != HANDLING(gen) -> goto stop
      fi;
      d_step { dead[h]++; dtotal++ };
      RELEASE(h);
     ;
      h++;
      busy = IDLE(gen);
      goto stop
    :: true -> skip
    fi;
#ifdef BROKEN_COMMIT_BEFORE_REPLY_WAIT
    /* the old design: the commit point comes before the wait for room */
    RECORD(KIND_REPLY);
    if
    :: d_step {
         busy == HANDLING(gen) -> busy = COMMIT(gen);
       }
    :: busy != HANDLING(gen) -> goto stop
    fi;
    waitingForRoom = true;
    (room || !outputFull);
    waitingForRoom = false;
    outSlot[ot] = h;
#else
    if
    :: d_step { busy == HANDLING(gen) -> busy = FIN(gen) }
    :: busy != HANDLING(gen) -> goto stop
    fi;
    /* wait for room, giving up once the host took the word; then claim
       the reply slot and encode the reply into it */
#if defined(LATE_REPLY_WRITE)
    do
    :: room || !outputFull -> break
    :: busy != FIN(gen) -> goto stop
    od;
#ifndef FIX_COMMIT_BEFORE_ENCODE
    outSlot[ot] = h;   /* may come long after busy was last seen */
#endif
#else
    do
    :: d_step { (room || !outputFull) && busy == FIN(gen) -> outSlot[ot] = h };
       break
    :: busy != FIN(gen) -> goto stop
    od;
#endif
    skip;              /* where the wait ends (no jump into a d_step) */
#ifdef BROKEN_PUBLISH_BEFORE_COMMIT
    PUBLISH(h);
#endif
    /* the point of no return, recorded first */
    RECORD(KIND_REPLY);
    if
    :: d_step {
         busy == FIN(gen) -> busy = COMMIT(gen);
       }
    :: busy != FIN(gen) -> goto stop   /* gives the claimed slot back */
    fi;
#ifdef FIX_COMMIT_BEFORE_ENCODE
    outSlot[ot] = h;
#endif
#endif
    /* the committed window: no waits */
#ifndef BROKEN_PUBLISH_BEFORE_COMMIT
    PUBLISH(h);
#endif
    d_step { processed[h]++; total++ };
    RELEASE(h);
   ;
    h++;
    busy = IDLE(gen);
next:
    skip
  od
  } unless {
    stopped && gen == 1
  };
stop:
  workersDone++
}

/* When the first loop's thread actually stops (INTERRUPT: Bun). */
active proctype reaper() {
#ifdef INTERRUPT
  if
  :: stopped = true            /* the thread dies by itself */
  :: killed -> stopped = true  /* terminate() stops it anywhere */
  :: killed -> skip            /* ... or only after the run */
  fi
#else
  skip
#endif
}

/* The user takes replies at some point, making room in the output ring. */
active proctype user() {
  room = true
}

active proctype host() {
  byte b, hh, i;
  bool timedOut = false;
  /* kill at any moment (terminate timed out, a crash, fault injection) */
#ifdef INTERRUPT
  if
  :: skip
  :: stopped -> skip           /* the Worker died: the host kills it */
  fi;
#endif
  killed = true;
claim:
  b = busy;
  if
  :: b == TAKEN -> goto decided
  :: b != TAKEN && (b & COMMITTED) != 0 && !timedOut ->
#ifdef BROKEN_HOST_TAKES_COMMITTED
    skip
#else
    /* wait for the loop to finish its committed message (up to 100 ms) */
    if
    :: CAN_TIME_OUT -> timedOut = true
    :: else -> skip
    fi;
    goto claim
#endif
  :: else -> skip
  fi;
#ifdef BROKEN_PLAIN_CLAIM
  busy = TAKEN;
#else
  if
  :: d_step { busy == b -> busy = TAKEN }
  :: busy != b -> goto claim
  fi;
#endif
  if
#ifdef BROKEN_HOST_TAKES_COMMITTED
  :: (b & SRC) != 0 ->
#else
  :: (b & SRC) != 0 && (b & COMMITTED) == 0 ->
#endif
    /* handling or finishing: the loop's message is at the head; take it */
    hh = head;
    if
    :: hh < N ->
      assert(hh == inflight);
      dead[hh]++;      /* dead-lettered: handler-error / actor-terminated */
      RELEASE(hh)
    :: else -> skip
    fi
#if !defined(BROKEN_HOST_TAKES_COMMITTED) && !defined(BROKEN_LEAVE_COMMITTED)
  :: (b & SRC) != 0 && (b & COMMITTED) != 0 ->
    /* committed past the deadline: the host finishes what the loop started.
       A processed message whose reply is out is counted unless the counter
       moved, and released unless head moved; a dead letter the loop counted
       is released unless head moved. Otherwise the message stays at the
       head, to be handled again or dead-lettered. */
    if
    :: markKind == KIND_REPLY && outTail != markOut ->
      if
      :: total == markCount -> d_step { processed[markHead]++; total++ }
      :: else -> skip
      fi;
      if
      :: head == markHead -> RELEASE(markHead)
      :: else -> skip
      fi
#ifndef BROKEN_LEAVE_DEAD_COMMITTED
    :: markKind == KIND_DEAD && dtotal != markCount ->
      if
      :: head == markHead -> RELEASE(markHead)
      :: else -> skip
      fi
#endif
    :: else -> skip
    fi
#endif
  :: else -> skip      /* idle, or (old host) committed past the deadline: left in place */
  fi;
decided:
  if
  :: /* the supervisor restarts the actor: a loop of the next generation */
    atomic { busy = IDLE(2); workers++; run worker(2) }
  :: /* terminate: dead-letter everything left, then release it at once */
    hh = head;
    i = hh;
    do
    :: i < N -> dead[i]++; i++
    :: else -> break
    od;
    atomic { assert(head == hh); head = N }
  fi;
  hostDone = true
}

active proctype check() {
  byte m = 0;
  hostDone && workersDone == workers;
  do
  :: m < N ->
    assert(processed[m] + dead[m] == 1);  /* counted exactly once */
    assert(replies[m] <= processed[m]);   /* at most one reply, if processed */
    assert(replies[m] == 0 || dead[m] == 0);
    m++
  :: else -> break
  od;
  /* every reply the host reads answers a message that was processed */
  m = 0;
  do
  :: m < outTail ->
    assert(outSlot[m] != NONE && processed[outSlot[m]] > 0 &&
           dead[outSlot[m]] == 0);
    m++
  :: else -> break
  od
}

init {
  if
  :: outputFull = true
  :: outputFull = false
  fi;
  run worker(1)
}
