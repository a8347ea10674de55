/*
 * The busy-word protocol between a CPU actor's Worker loop and the host's
 * kill (src/backend/cpu/actor_worker.ts #drain, src/backend/cpu/cpu_actor.ts
 * kill/#claimBusy), followed by what the host does next: terminate's drain
 * of the queue (dead letters), or the supervisor's restart of a new loop.
 *
 * Worker, for the message at its head h:
 *   CAS busy 0 -> 1 (else exit); handle; CAS 1 -> FINISHING (else exit);
 *   write the reply (waits while the host has not made room);
 *   processed++; release (head = h + 1); CAS FINISHING -> 0.
 * Host kill: Worker.terminate(); then claim: read busy; while it is
 *   FINISHING (and 100 ms have not passed) read again; CAS busy -> TAKEN.
 *   If it took 1, the head message is the one the loop was handling:
 *   dead-letter it and release it.
 *
 * How a terminated Worker stops: in Deno, Worker.terminate() does not
 * interrupt running JavaScript; the loop stops at its next await (modelled,
 * generously, as at the top of each message and inside the handler).
 *
 * Assumptions of the default model: Deno's stop semantics; the reply of a
 * handled message gets room before the host's 100 ms claim deadline (so the
 * host never takes a FINISHING word); every message is valid (the void and
 * invalid-message paths release slots without the busy word).
 *
 * Properties (assertions): every message is counted exactly once, processed
 * or dead-lettered; the message the host takes is the one the loop was
 * handling; the ring has one consumer at a time (no release under another
 * consumer); every process ends.
 *
 * Broken twins (-D...): BROKEN_PLAIN_CLAIM (the host reads busy and stores
 * TAKEN instead of a compare-and-swap), BROKEN_NO_FINISHING (the loop counts
 * and releases while busy is still 1).
 *
 * Findings (-D..., each drops one assumption and has a counterexample):
 * FINDING_FINISHING_TIMEOUT (the reply waits for room past the host's
 * deadline), FINDING_INTERRUPT (a runtime whose Worker.terminate() stops the
 * loop anywhere, or a thread that dies by itself), FINDING_UNGUARDED_SLOT
 * (an invalid message is dead-lettered by the loop without the busy word).
 */

#define N 3            /* messages queued (all published) */
#if defined(FINDING_FINISHING_TIMEOUT)
#define CAN_TIME_OUT true      /* the reply waits for room past the deadline */
#elif defined(FINDING_INTERRUPT)
#define CAN_TIME_OUT stopped   /* a stopped thread never leaves FINISHING */
#else
#define CAN_TIME_OUT false     /* assumption: FINISHING ends before the deadline */
#endif
#define FINISHING 3
#define TAKEN 255
#define NONE 255

byte head = 0;         /* input ring head; tail = N */
byte busy = 0;
byte counted[N];       /* ghost: times each message was accounted */
byte inflight = NONE;  /* ghost: message the loop handles under busy 1 */
bool killed = false;   /* the host terminated the first loop's Worker */
bool stopped = false;  /* the first loop's thread stopped (interrupting runtimes) */
bool room = false;     /* the host made room for replies */
bool outputFull = false;
byte workersDone = 0;
byte workers = 1;
bool hostDone = false;

proctype worker(byte gen) {
  byte h = head;       /* a new consumer reads the head */
  {
  do
  :: h == N -> break
  :: else ->
    /* an await point: a terminated Worker may stop here (Deno) */
    if
    :: killed && gen == 1 -> goto stop
    :: true -> skip
    fi;
#ifdef FINDING_UNGUARDED_SLOT
    if
    :: h == 1 ->
      /* message 1 is invalid: dead-lettered by the loop, no busy word */
      counted[h]++;
      assert(head == h);
      head = h + 1;
      h++;
      goto next
    :: else -> skip
    fi;
#endif
    atomic {
      if
      :: busy == 0 -> busy = 1; inflight = h
      :: else -> goto stop
      fi
    };
    /* the handler runs; an async handler awaits */
    if
    :: killed && gen == 1 -> goto stop
    :: true -> skip
    fi;
#ifdef BROKEN_NO_FINISHING
    counted[h]++;
    assert(head == h);
    head = h + 1;
    h++;
    atomic {
      if
      :: busy == 1 -> busy = 0
      :: else -> goto stop
      fi
    }
#else
    atomic {
      if
      :: busy == 1 -> busy = FINISHING
      :: else -> goto stop
      fi
    };
    /* the reply waits for room in the output ring */
    if
    :: outputFull -> room
    :: else -> skip
    fi;
    counted[h]++;      /* processed: counted before the release */
    assert(head == h);
    head = h + 1;
    h++;
    atomic {
      if
      :: busy == FINISHING -> busy = 0
      :: else -> skip
      fi
    }
#endif
    ;
next:
    skip
  od
  } unless { stopped && gen == 1 };
stop:
  workersDone++
}

/* When a stopped Worker's thread actually ends (interrupting runtimes). */
active proctype reaper() {
#ifdef FINDING_INTERRUPT
  if
  :: stopped = true          /* the thread dies by itself */
  :: killed -> stopped = true  /* terminate() stops it anywhere */
  :: killed -> skip
  fi
#else
  skip
#endif
}

/* The user takes replies at some point, making room. */
active proctype user() {
#ifdef FINDING_FINISHING_TIMEOUT
  hostDone;
#endif
  room = true
}

active proctype host() {
  byte b, hh, i;
  bool timedOut = false;
  /* kill at any moment (terminate timed out, fault injection), or after the thread died */
  if
  :: skip
  :: stopped -> skip
  fi;
  killed = true;
claim:
  b = busy;
  if
  :: b == FINISHING && !timedOut ->
    /* wait; the 100 ms deadline passes only if FINISHING outlasts it */
    if
    :: CAN_TIME_OUT -> timedOut = true
    :: true -> skip
    fi;
    goto claim
  :: else -> skip
  fi;
#ifdef BROKEN_PLAIN_CLAIM
  busy = TAKEN;
#else
  atomic {
    if
    :: busy == b -> busy = TAKEN
    :: else -> goto claim
    fi
  };
#endif
  if
  :: b == 1 ->
    hh = head;
    if
    :: hh < N ->
      assert(hh == inflight);
      counted[hh]++;   /* dead-lettered: handler-error / actor-terminated */
      head = hh + 1
    :: else -> skip
    fi
  :: else -> skip
  fi;
#ifdef FINDING_RESTART_ABA
  /* supervisor: restart a new loop on the same memory (start() stores busy 0) */
  busy = 0;
  workers++;
  run worker(2);
#else
  /* terminate: dead-letter everything left, then release it */
  hh = head;
  i = hh;
  do
  :: i < N -> counted[i]++; i++
  :: else -> break
  od;
  head = N;
#endif
  hostDone = true
}

active proctype check() {
  byte i = 0;
  hostDone && workersDone == workers;
  do
  :: i < N -> assert(counted[i] == 1); i++
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
