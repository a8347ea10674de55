/*
 * The busy-word protocol between a CPU actor's Worker loop and the host's
 * kill (src/backend/cpu/actor_worker.ts #drain/#commit, src/backend/cpu/
 * cpu_actor.ts kill/#claimBusy/#finishCommitted, src/backend/cpu/
 * actor_memory.ts), then what the host does next: terminate's drain of the
 * queue (dead letters), or the supervisor's restart of a loop of the next
 * generation on the same memory.
 *
 * busy = generation << 4 | state, or TAKEN (-1 in the code, 255 here).
 * state = source (1: input ring) | phase (0 handling, 4 finishing: the
 * group's last handler returned and its reply waits for room, 8 committed:
 * past the point of no return). An idle loop of generation g holds g << 4.
 * taken = the messages the loop's open group holds (generation-tagged), or
 * TAKEN once the host swapped it.
 *
 * Loop of generation g handles its queue in groups of up to G messages:
 *   taken = 1 (CAS from what it last wrote, else exit); CAS busy idle ->
 *   handling (else exit); run the handler of the head message; its reply goes
 *   to the loop's private scratch; for each further message of the group,
 *   CAS taken k -> k + 1 (else exit) first. The group commits (at G, at the
 *   end of the batch, or earlier: "every few messages"): write the commit
 *   record (kind, head h, k messages, reply tail, m replies, processed
 *   counter), CAS handling -> committed (else exit), then the committed
 *   window, no waits: copy the m replies into their claimed slots, publish
 *   them in one store, count the k messages in one add, release them in one
 *   store, CAS committed -> idle.
 *   A group commits early before an async handler's await (the message then
 *   heads the group: taken = 1, CAS committed -> handling; a killed Deno loop
 *   may stop at the await), before an invalid or void slot or a handler that
 *   throws (each then committed alone as a dead letter, straight from
 *   handling), and when the output ring has no room for its next reply: that
 *   message then waits alone as finishing, polling busy (exit once it
 *   changed), and commits as a group of one from finishing.
 *   A handler that throws: its group before it commits, then record a dead
 *   letter's commit, CAS handling -> committed, count it dead-lettered,
 *   release it, CAS committed -> idle, exit (crash).
 * Host kill: Worker.terminate(); then loop reading busy: TAKEN -> nothing;
 *   committed -> wait (the 100 ms deadline passes only if the window can
 *   outlast it); otherwise CAS busy -> TAKEN, then swap taken -> TAKEN, and
 *   for handling or finishing take the group's messages [head, head + taken)
 *   of that ring as dead letters (handled ones lose their replies). A word
 *   still committed after the deadline is taken, and the commit record says
 *   how far the loop got: once its replies are published (or it has none),
 *   the host finishes the range (counts its k messages unless the counter
 *   moved past the record, releases them unless head moved); once the loop
 *   counted a dead letter, the host releases it unless head moved; before
 *   that, the messages stay at the head. Restart: taken = (g + 1, 0), busy =
 *   (g + 1) << 4, a new loop attaches.
 *
 * How a killed Worker stops: Deno's Worker.terminate() does not interrupt
 * running JavaScript; the loop stops at its next await (modelled, generously,
 * as optional stops at the top of each group and at a handler's await) and
 * otherwise keeps running. Under -DINTERRUPT (Bun), terminate() stops the
 * thread anywhere, and a thread may also die by itself before the kill.
 *
 * Assumptions of the default model: Deno's stop semantics; every message is
 * valid (see FINDING_INVALID_UNCOMMITTED); a running loop gets through its
 * committed window (a few stores and copies) within the host's 100 ms (see
 * FINDING_COMMIT_STALL); only the first loop's handler throws (once: the host
 * answers that crash); every message has a reply; the output ring is either
 * full until the user makes room or has room for everything; counts live in
 * shared memory (telemetry, control block), so a kill loses none.
 *
 * Properties (assertions): every message is counted exactly once, processed
 * or dead-lettered; a message gets at most one reply, only if it was
 * processed, never if it was dead-lettered, and every reply in the output
 * ring answers such a message; the first message the host takes is the head
 * of the loop's group; the host takes every message of a killed loop's open
 * group, so no handler runs twice on a message (not under -DINTERRUPT, where
 * a loop stopped in its committed window before publishing leaves its range
 * to be handled again); each ring has one consumer (and the output ring one
 * producer) at a time: nobody releases or publishes behind another's back;
 * no invalid end state. LTL `done`: the kill, and the run, always complete.
 *
 * -DINTERRUPT (Bun, must verify): every property holds for every message
 * wherever the loop's thread stops. -DCODE_INTERRUPT is the same with every
 * FIX_* below (the code as it is). Not modelled: the dead letter's record (its
 * bytes and reason), which the loop posts to the host after the release; a
 * loop stopped between the two counts the message but leaves no record.
 *
 * Broken twins (-D..., must fail): BROKEN_NO_GENERATION (busy and taken
 * values carry no generation: the old design, formerly FINDING_RESTART_ABA),
 * BROKEN_COMMIT_BEFORE_REPLY_WAIT (the commit point before the wait for room,
 * so the window can outlast the deadline: the old FINISHING state, formerly
 * FINDING_FINISHING_TIMEOUT), BROKEN_PUBLISH_BEFORE_COMMIT (replies copied and
 * published before the record and the commit), BROKEN_HOST_TAKES_COMMITTED,
 * BROKEN_PLAIN_CLAIM (the host reads busy and stores TAKEN, no CAS),
 * BROKEN_LEAVE_COMMITTED (Bun: the host leaves a committed range at the head
 * whatever the loop did, the design before the commit record: a reply
 * published twice, or a message counted twice), BROKEN_LEAVE_DEAD_COMMITTED
 * (the host finishes processed messages only: a dead letter counted twice),
 * BROKEN_TAKE_HEAD_ONLY (the host takes only the head message of an open
 * group: a handled message stays, to be handled again),
 * BROKEN_PLAIN_TAKEN (the loop stores taken without a CAS: after the host
 * read it, the killed loop runs one more handler on a message left at the
 * head), BROKEN_FINISH_HEAD_ONLY (Bun: the host finishes only the first
 * message of a committed range: the rest are answered twice).
 *
 * Findings (-D..., gaps of the code, must fail): FINDING_COMMIT_STALL (a
 * Deno loop descheduled for 100 ms inside its committed window),
 * FINDING_INVALID_UNCOMMITTED (an invalid or void slot is dead-lettered and
 * released under `handling`), FINDING_STALE_REPLY_WRITE (replies encoded
 * straight into their output slots as each handler returns, before the
 * commit: a killed loop writes into a slot a restarted loop has filled).
 * Proposed fixes (-D..., must verify): FIX_SLOT_COMMIT (commit before
 * dead-lettering an invalid or void slot), FIX_COMMIT_BEFORE_ENCODE (the
 * replies stay in the loop's scratch until the commit: the default model).
 */

#define N 4            /* messages queued in the input ring (all published) */
#define G 2            /* most messages of one group (COMMIT_GROUP in the code) */
#define NONE 255
#define TAKEN 255
#define SRC 1          /* source: the input ring (the inbox is symmetric) */
#define FINISHING 4
#define COMMITTED 8
#define KIND_DEAD 0    /* commit record: a dead letter (or a void slot) */
#define KIND_REPLY 1   /* commit record: a range of processed messages */

/* The code as it is (every fix below) under Bun's stop semantics. */
#ifdef CODE_INTERRUPT
#define INTERRUPT
#define FIX_SLOT_COMMIT
#define FIX_COMMIT_BEFORE_ENCODE
#endif
#if defined(BROKEN_LEAVE_COMMITTED) || defined(BROKEN_LEAVE_DEAD_COMMITTED) || defined(BROKEN_FINISH_HEAD_ONLY)
#define INTERRUPT
#endif
#if defined(FINDING_INVALID_UNCOMMITTED) || defined(FIX_SLOT_COMMIT)
#define INVALID_MSG
#endif

/* LTL runs (run.sh passes -DLTL_ONLY): only the formula may fail. */
#ifdef LTL_ONLY
#define assert(e) skip
#endif

#ifdef BROKEN_NO_GENERATION
#define IDLE(g) 0
#define TK(g, c) (c)
#else
#define IDLE(g) ((g) * 16)
#define TK(g, c) ((g) * 16 + (c))   /* the taken word: generation, messages held */
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
byte markK = 0;             /* messages of the range */
byte markOut = NONE;
byte markM = 0;             /* replies of the range */
byte markCount = 0;
byte busy = IDLE(1);
byte taken = TK(1, 0);      /* how many messages the loop's open group holds */
byte processed[N];          /* ghost: times counted processed */
byte dead[N];               /* ghost: times counted dead-lettered */
byte replies[N];            /* ghost: replies published per message */
byte handled[N];            /* ghost: times a handler started on the message */
byte outTail = 0;           /* output ring tail (published replies) */
byte outSlot[N + 1] = NONE; /* reply slots: which message each answers */
byte inflight = NONE;       /* ghost: the head message of the last group opened */
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
#define RECORD(kind, nk, nm) \
  markKind = kind; markHead = h; markK = nk; markOut = ot; markM = nm; \
  markCount = (kind == KIND_REPLY -> total : dtotal)

/* A consumer releases the slots it read: nobody moved head meanwhile. */
#define RELEASE(from, n) atomic { assert(head == from); head = from + n }

/* An await point: a killed Worker may stop here (Deno). */
#define AWAIT_POINT \
  if \
  :: killed && gen == 1 -> goto stop \
  :: true -> skip \
  fi

/* The loop moves `taken` to c messages held: a CAS from what it last wrote. */
#ifdef BROKEN_PLAIN_TAKEN
#define TAKE(c) taken = TK(gen, c); tk = TK(gen, c)
#else
#define TAKE(c) \
  if \
  :: d_step { taken == tk -> taken = TK(gen, c); tk = TK(gen, c) } \
  :: taken != tk -> goto stop \
  fi
#endif

/* The loop leaves its committed window: CAS committed -> idle. */
#define END_GROUP \
  if \
  :: d_step { busy == COMMIT(gen) -> busy = IDLE(gen) } \
  :: busy != COMMIT(gen) -> goto stop \
  fi

/* The output producer publishes the replies of messages h .. h + nm - 1 in
   one store of its tail: nobody published meanwhile. */
inline publish(nm) {
  d_step {
    assert(outTail == ot);
    outTail = ot + nm;
    i = 0;
    do
    :: i < nm -> replies[h + i]++; i++
    :: else -> break
    od
  };
  ot = ot + nm
}

/* The replies of the group, encoded in the loop's private scratch, are copied
   into their claimed slots. */
inline copyReplies(nm) {
  d_step {
    i = 0;
    do
    :: i < nm -> outSlot[ot + i] = h + i; i++
    :: else -> break
    od
  }
}

/* Commits the nk messages at the head with their nm replies (room for them
   known), from busy value `from`: the record, CAS from -> committed, then the
   committed window, no waits: copy and publish the replies at once, count the
   messages at once, release them at once. Leaves the loop committed. */
inline commitRange(nk, nm, from) {
#ifdef BROKEN_PUBLISH_BEFORE_COMMIT
  copyReplies(nm);
  publish(nm);
#endif
  RECORD(KIND_REPLY, nk, nm);
  if
  :: d_step { busy == from -> busy = COMMIT(gen) }
  :: busy != from -> goto stop   /* gives the claimed slots back */
  fi;
#ifndef BROKEN_PUBLISH_BEFORE_COMMIT
#ifndef FINDING_STALE_REPLY_WRITE
  copyReplies(nm);
#endif
  publish(nm);
#endif
  d_step {
    i = 0;
    do
    :: i < nk -> processed[h + i]++; i++
    :: else -> break
    od;
    total = total + nk
  };
  RELEASE(h, nk);
  h = h + nk
}

/* From the committed window straight to handling the next message (it is at
   the head now): taken = 1, then CAS committed -> handling. */
inline nextHandling() {
  TAKE(1);
  if
  :: d_step { busy == COMMIT(gen) -> busy = HANDLING(gen); inflight = h }
  :: busy != COMMIT(gen) -> goto stop
  fi
}

proctype worker(byte gen) {
  byte h = head;       /* the consumer attaches: reads head */
  byte ot = outTail;   /* the output producer attaches: reads tail */
  byte tk = TK(gen, 0);/* the taken value this loop last wrote */
  byte k;              /* messages of the open group handled, not committed */
  byte i;
  {
  do
  :: h == N -> break
  :: else ->
    AWAIT_POINT;
    /* open a group: taken = 1, then own the head */
    TAKE(1);
    if
    :: d_step { busy == IDLE(gen) -> busy = HANDLING(gen); inflight = h }
    :: busy != IDLE(gen) -> goto stop
    fi;
    k = 0;
group:
    if
    :: k > 0 ->
      if
      :: k == G || h + k == N -> goto commit
      :: else -> skip
      fi;
      if
      :: goto commit   /* commits early ("every few messages") */
      :: TAKE(k + 1)   /* message h + k joins the group */
      fi
    :: else -> skip
    fi;
#ifdef INVALID_MSG
    if
    :: h + k == 1 ->
      /* message 1 is invalid (or void): the group before it commits, then
         it is dead-lettered alone */
      if
      :: k > 0 -> commitRange(k, k, HANDLING(gen)); nextHandling(); k = 0
      :: else -> skip
      fi;
#ifdef FIX_SLOT_COMMIT
      RECORD(KIND_DEAD, 1, 0);
      if
      :: d_step { busy == HANDLING(gen) -> busy = COMMIT(gen) }
      :: busy != HANDLING(gen) -> goto stop
      fi;
#endif
      d_step { dead[h]++; dtotal++ };
      RELEASE(h, 1);
      h++;
#ifdef FIX_SLOT_COMMIT
      END_GROUP;
#else
      busy = IDLE(gen);
#endif
      goto next
    :: else -> skip
    fi;
#endif
    /* the handler of message h + k runs */
    d_step { handled[h + k]++ };
    if
    :: k > 0 ->
      /* an async handler: the group before it commits first (a group never
         spans an await); it goes on as the head of the group, then awaits */
      commitRange(k, k, HANDLING(gen));
      nextHandling();
      k = 0;
      AWAIT_POINT
    :: k == 0 -> AWAIT_POINT
    :: true -> skip
    fi;
    if
    :: gen == 1 && !threw ->
      /* the handler throws: the group before it commits, then it is
         committed to dead-lettering alone, and the loop crashes */
      threw = true;
      if
      :: k > 0 -> commitRange(k, k, HANDLING(gen)); nextHandling(); k = 0
      :: else -> skip
      fi;
      RECORD(KIND_DEAD, 1, 0);
      if
      :: d_step { busy == HANDLING(gen) -> busy = COMMIT(gen) }
      :: busy != HANDLING(gen) -> goto stop
      fi;
      d_step { dead[h]++; dtotal++ };
      RELEASE(h, 1);
      h++;
      END_GROUP;
      goto stop
    :: true -> skip
    fi;
#ifdef FINDING_STALE_REPLY_WRITE
    /* the reply is encoded straight into its output slot, long after busy
       was last seen */
    outSlot[ot + k] = h + k;
#endif
    k++;
    if
    :: room || !outputFull -> goto group
    :: else -> skip
    fi;
    /* no room for this reply: the messages before it commit (their replies
       had room), and it waits for room alone */
    if
    :: k > 1 -> commitRange(k - 1, k - 1, HANDLING(gen)); nextHandling(); k = 1
    :: else -> skip
    fi;
#ifdef BROKEN_COMMIT_BEFORE_REPLY_WAIT
    /* the old design: the commit point comes before the wait for room */
    RECORD(KIND_REPLY, 1, 1);
    if
    :: d_step { busy == HANDLING(gen) -> busy = COMMIT(gen) }
    :: busy != HANDLING(gen) -> goto stop
    fi;
    waitingForRoom = true;
    (room || !outputFull);
    waitingForRoom = false;
    copyReplies(1);
    publish(1);
    d_step { processed[h]++; total++ };
    RELEASE(h, 1);
    h++;
#else
    if
    :: d_step { busy == HANDLING(gen) -> busy = FIN(gen) }
    :: busy != HANDLING(gen) -> goto stop
    fi;
    /* wait for room, giving up once the host took the word */
    do
    :: room || !outputFull -> break
    :: busy != FIN(gen) -> goto stop
    od;
    commitRange(1, 1, FIN(gen));
#endif
    END_GROUP;
    goto next;
commit:
    commitRange(k, k, HANDLING(gen));
    END_GROUP;
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
  byte b, t, hh, c, i;
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
    /* wait for the loop to finish its committed group (up to 100 ms) */
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
  /* how many messages the loop's group holds; swapped, so that a loop still
     running can take no further message */
  d_step { t = taken; taken = TAKEN };
  if
#ifdef BROKEN_HOST_TAKES_COMMITTED
  :: (b & SRC) != 0 ->
#else
  :: (b & SRC) != 0 && (b & COMMITTED) == 0 ->
#endif
    /* handling or finishing: the loop's group is at the head; take it all */
    hh = head;
#ifdef BROKEN_TAKE_HEAD_ONLY
    c = 1;
#else
    c = t % 16;
#endif
    i = 0;
    do
    :: i < c && hh + i < N ->
      assert(i > 0 || hh == inflight);
      dead[hh + i]++;  /* dead-lettered: handler-error / actor-terminated */
      i++
    :: else -> break
    od;
    if
    :: i > 0 -> RELEASE(hh, i)
    :: else -> skip
    fi
#if !defined(BROKEN_HOST_TAKES_COMMITTED) && !defined(BROKEN_LEAVE_COMMITTED)
  :: (b & SRC) != 0 && (b & COMMITTED) != 0 ->
    /* committed past the deadline: the host finishes what the loop started.
       A range of processed messages whose replies are out (or that has none)
       is counted unless the counter moved, and released unless head moved; a
       dead letter the loop counted is released unless head moved. Otherwise
       the messages stay at the head, to be handled again or dead-lettered. */
#ifdef BROKEN_FINISH_HEAD_ONLY
    c = 1;
#else
    c = markK;
#endif
    if
    :: markKind == KIND_REPLY && (markM == 0 || outTail != markOut) ->
      if
      :: total == markCount ->
        d_step {
          i = 0;
          do
          :: i < c -> processed[markHead + i]++; i++
          :: else -> break
          od;
          total = total + c
        }
      :: else -> skip
      fi;
      if
      :: head == markHead -> RELEASE(markHead, c)
      :: else -> skip
      fi
#ifndef BROKEN_LEAVE_DEAD_COMMITTED
    :: markKind == KIND_DEAD && dtotal != markCount ->
      if
      :: head == markHead -> RELEASE(markHead, 1)
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
    atomic { taken = TK(2, 0); busy = IDLE(2); workers++; run worker(2) }
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
#ifndef INTERRUPT
    /* the host takes every message of a killed loop's open group: none is
       handled again (Bun may stop a loop inside its committed window before
       it published, which leaves the range at the head to be handled again) */
    assert(handled[m] <= 1);
#endif
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
