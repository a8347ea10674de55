/*
 * Hybrid logical clock (src/hlc.ts) on a small bound: two nodes exchange
 * timestamps; physical time is any value in 0..PMAX at every read (it may
 * jump backwards, as wall clocks do); the logical counter holds 0..LMAX.
 *
 * - now(): pt > l ? (pt, 0) : (l, c + 1).
 * - update(m): reject (clock unchanged) when m.l - pt > MAXSKEW; else
 *   next = max(l, m.l, pt) and the counter is max(c, m.c) + 1, c + 1,
 *   m.c + 1 or 0, as next equals both, l, m.l or neither.
 * - An overflowing counter carries: (l, LMAX + 1) becomes (l + 1, 0).
 *
 * Properties (assertions): each node's readings strictly increase; a
 * receive is ordered after the send it merges; a reading is never behind
 * the physical time it read; a rejected update changes nothing.
 * LTL `packable`: [] (both counters <= LMAX).
 *
 * Broken twins (-D...): BROKEN_WRAP (the counter wraps instead of
 * carrying), BROKEN_NO_CARRY (the counter grows past LMAX),
 * BROKEN_IGNORE_LOCAL (update forgets the local reading),
 * BROKEN_NO_INCREMENT (a receive takes the sender's counter as is).
 */

/* LTL runs (run.sh passes -DLTL_ONLY): only the formula may fail. */
#ifdef LTL_ONLY
#define assert(e) skip
#endif

#define PMAX 2         /* physical time: 0..PMAX */
#define LMAX 2         /* logical counter: 0..LMAX (65535 in the code) */
#define MAXSKEW 1      /* accepted lead of a received timestamp */
#define EVENTS 5       /* events per node */

#define after(l1, c1, l2, c2) ((l1) > (l2) || ((l1) == (l2) && (c1) > (c2)))

chan toNode[2] = [2] of { byte, byte };
byte lc[2];            /* each node's logical counter, for the LTL formula */

ltl packable { [] (lc[0] <= LMAX && lc[1] <= LMAX) }

/* Moves to (nl, nc), carrying an overflowing counter into l. */
inline set(nl, nc) {
  /* inline parameters are substituted as text: parenthesise them */
#if defined(BROKEN_WRAP)
  l = (nl);
  c = (nc) % (LMAX + 1);
#elif defined(BROKEN_NO_CARRY)
  l = (nl);
  c = (nc);
#else
  if
  :: (nc) > LMAX -> l = (nl) + 1; c = 0
  :: else -> l = (nl); c = (nc)
  fi;
#endif
  lc[id] = c
}

/* Any physical time in 0..PMAX: wall clocks may also jump backwards. */
inline read_physical() {
  pt = 0;
  do
  :: pt < PMAX -> pt++
  :: true -> break
  od
}

proctype node(byte id) {
  byte l = 0, c = 0;   /* the clock */
  byte pl, pc;         /* previous reading */
  byte ml, mc;         /* a received timestamp */
  byte pt, next, e = 0;
  do
  :: e == EVENTS -> break
  :: else ->
    /* an event is local to its node but for the channel: one atomic step */
    atomic {
    pl = l;
    pc = c;
    if
    :: true ->
      /* local or send event: now() */
      read_physical();
      if
      :: pt > l -> set(pt, 0)
      :: else -> set(l, c + 1)
      fi;
      assert(after(l, c, pl, pc));
      assert(l >= pt);
      if
      :: nfull(toNode[1 - id]) -> toNode[1 - id]!l, c   /* send */
      :: true -> skip                                    /* local */
      fi
    :: toNode[id]?ml, mc ->
      /* receive event: update(m) */
      read_physical();
      if
      :: ml > pt && ml - pt > MAXSKEW ->
        /* ClockSkewError: unchanged */
        assert(l == pl && c == pc)
      :: else ->
        next = l;
        if
        :: ml > next -> next = ml
        :: else -> skip
        fi;
        if
        :: pt > next -> next = pt
        :: else -> skip
        fi;
#ifdef BROKEN_IGNORE_LOCAL
        if
        :: ml >= pt -> next = ml
        :: else -> next = pt
        fi;
#endif
        if
        :: next == l && next == ml ->
          if
          :: mc > c -> set(next, mc + 1)
          :: else -> set(next, c + 1)
          fi
        :: next == l && next != ml -> set(next, c + 1)
        :: next != l && next == ml ->
#ifdef BROKEN_NO_INCREMENT
          set(next, mc)
#else
          set(next, mc + 1)
#endif
        :: next != l && next != ml -> set(next, 0)
        fi;
        assert(after(l, c, pl, pc));
        assert(after(l, c, ml, mc));
        assert(l >= pt)
      fi
    fi;
    e++;
    /* forget the temporaries, or they would multiply the states */
    pl = 0; pc = 0; ml = 0; mc = 0; pt = 0; next = 0
    }
  od
}

init {
  atomic {
    run node(0);
    run node(1)
  }
}
