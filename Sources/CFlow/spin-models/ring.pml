/*
 * ring.pml — the claim / copy / commit protocol of array_queue.c, checked with spin for every
 * interleaving of a small configuration: every item pushed is popped exactly once, nothing is popped
 * that was not pushed, a consumer reads a slot only after its producer wrote it, a producer writes a
 * slot only after its last item was read, pushes after close fail, pops see "closed" only once the
 * ring is drained, and every process ends (a commit never gets stuck behind a finished range).
 *
 * What mirrors what (array_queue.c):
 *   claim_push / claim_pop   claim_push / claim_pop: free (available) positions from the opposite
 *                            side's done counter, a CAS on tail (head) that reloads on failure, full / empty
 *                            decided only when nobody of the other side is mid-copy
 *                            ([a claim takes a batch in one step], [full and empty decided after a fence])
 *   commit                   commit: CAS done from our first position to our end; else mark our range
 *                            finished (ends[]) and move done over every finished range at it
 *                            ([commits in claim order])
 *   push / pop               array_push_n / array_pop_n: claim, copy slot by slot, commit
 *   Closer                   array_close: fetch_or of the mark bit into tail
 *                            ([close drains what was claimed]), at any moment
 * Sizes: CAP slots (3: an exact, non-power-of-two capacity), positions p in slot p % CAP; the items
 * take the positions over more than one lap. The backoff between retries and the blocking / parking
 * layer (eventcount.pml) are left out: they only retry.
 * Mutants (CI checks that spin finds an error in each, so the model is not vacuous):
 *   -DMUTANT_COMMIT_FIRST   a producer commits its range before it writes the items
 *   -DMUTANT_STALE_CAS      the tail "CAS" succeeds even when another producer moved tail
 *   -DMUTANT_NO_HELP        a claimer that marks its range finished leaves without moving done over it
 * Memory model: sequential consistency; the seq_cst marks, loads and CAS, and the acquire/release on the done
 * counters that make the C code behave so are argued in array_queue.c ([commits in claim order],
 * [full and empty decided after a fence]).
 */
#ifndef CAP
#define CAP 3
#endif
#define MARK 64             /* the closed bit: above every position used here */
#define PRODUCERS 2
#define CONSUMERS 2
#ifndef PER_PRODUCER
#define PER_PRODUCER 3
#endif
#define BATCH 2
#define EMPTY 100
#define FULL 101
#define CLOSED 102
#define ITEMS (PRODUCERS * PER_PRODUCER)

byte tail = 0, head = 0;
byte done[2];               /* done[W]: tail_done, done[R]: head_done */
/* ends[side * CAP + slot]: end of the written (W) / read (R) range starting there */
byte ends[2 * CAP];
#define W 0
#define R 1
#define tail_done done[W]
#define head_done done[R]
byte data[CAP];             /* 0: free; an item is 1 + its number */
byte popped[ITEMS];         /* times each item was popped */
bit pushed_ok[ITEMS];       /* its push succeeded */
byte producers_done = 0, consumers_done = 0;

/* claim_push: k positions claimed at pos, or FULL / CLOSED */
inline claim_push(want, k, pos) {
    t = tail;
    do
    :: t & MARK -> k = CLOSED; break
    :: else ->
        d = head_done;
        if
        :: t - d > CAP -> t = tail                 /* stale tail */
        :: t - d == CAP ->
            /* [full and empty decided after a fence]: after the fence */
            atomic {
                if
                :: t == tail && head == head_done && t - head_done == CAP -> k = FULL
                :: else -> k = 0
                fi
            };
            if
            :: k == FULL -> break
            :: else -> t = tail                     /* a consumer is mid-read, or t was stale */
            fi
        :: t - d < CAP ->
            k = (CAP - (t - d) < want -> CAP - (t - d) : want);
            atomic {   /* CAS tail */
                if
#ifndef MUTANT_STALE_CAS
                :: tail == t -> tail = t + k; pos = t; won = 1
#else
                :: true -> tail = t + k; pos = t; won = 1
#endif
                :: else -> t = tail
                fi
            };
            if
            :: won -> won = 0; break
            :: else -> skip
            fi
        fi
    od;
    t = 0; d = 0
}

/* claim_pop: k positions claimed at pos, or EMPTY / CLOSED */
inline claim_pop(want, k, pos) {
    h = head;
    do
    :: d = tail_done;
       if
       :: h == d ->
           /* [full and empty decided after a fence]: after the fence */
           atomic {
               if
               :: h == head && h == tail_done && (tail & ~MARK) == h && (tail & MARK) -> k = CLOSED
               :: h == head && h == tail_done && (tail & ~MARK) == h && !(tail & MARK) -> k = EMPTY
               :: else -> k = 0                    /* a producer is mid-write, or h was stale */
               fi
           };
           if
           :: k == CLOSED || k == EMPTY -> break
           :: else -> h = head
           fi
       :: h < d ->
           k = (d - h < want -> d - h : want);
           atomic {   /* CAS head */
               if
               :: head == h -> head = h + k; pos = h; won = 1
               :: else -> h = head
               fi
           };
           if
           :: won -> won = 0; break
           :: else -> skip
           fi
       :: h > d -> h = head                         /* stale head */
       fi
    od;
    h = 0; d = 0
}

/* commit: finish [from, to) on side's done counter, marking its ends when a range before it is
   unfinished ([commits in claim order]) */
inline commit(side, from, to) {
    atomic {
        if
        :: done[side] == from -> done[side] = to; d = to; won = 1
        :: else -> won = 0
        fi
    };
    if
    :: !won ->
        ends[side * CAP + from % CAP] = to;
#ifndef MUTANT_NO_HELP
        d = done[side]
#else
        d = MARK   /* leave at once */
#endif
    :: else -> won = 0
    fi;
    do
    :: d == MARK -> break
    :: d != MARK && ends[side * CAP + d % CAP] <= d -> break   /* unfinished at d: its claimer moves done */
    :: d != MARK && ends[side * CAP + d % CAP] > d ->
        e = ends[side * CAP + d % CAP];
        atomic {
            if
            :: done[side] == d -> done[side] = e; d = e
            :: else -> d = done[side]
            fi
        }
    od;
    d = 0; e = 0
}

proctype Producer(byte me) {
    byte sent = 0, want, k, j, won, t, d, e, pos;
    do
    :: sent < PER_PRODUCER ->
        want = (PER_PRODUCER - sent < BATCH -> PER_PRODUCER - sent : BATCH);
        claim_push(want, k, pos);
        if
        :: k == CLOSED -> break
        :: k == FULL -> skip   /* retry (the blocking layer would park here) */
        :: else ->
#ifdef MUTANT_COMMIT_FIRST
            commit(W, pos, pos + k);
#endif
            j = 0;
            do   /* the memcpy, slot by slot */
            :: j < k ->
                assert(data[(pos + j) % CAP] == 0);   /* the slot's last item was read */
                data[(pos + j) % CAP] = 1 + me * PER_PRODUCER + sent + j;
                pushed_ok[me * PER_PRODUCER + sent + j] = 1;
                j++
            :: else -> break
            od;
#ifndef MUTANT_COMMIT_FIRST
            commit(W, pos, pos + k);
#endif
            sent = sent + k; j = 0; k = 0; pos = 0
        fi
    :: else -> break
    od;
    producers_done++
}

proctype Consumer(byte me) {
    byte k, j, won, item, h, d, e, pos;
    do
    :: claim_pop(BATCH, k, pos);
       if
       :: k == CLOSED -> break
       :: k == EMPTY -> skip
       :: else ->
           j = 0;
           do
           :: j < k ->
               item = data[(pos + j) % CAP];
               assert(item > 0 && pushed_ok[item - 1]);   /* written before it was committed */
               popped[item - 1]++;
               data[(pos + j) % CAP] = 0;
               j++
           :: else -> break
           od;
           commit(R, pos, pos + k);
           j = 0; k = 0; pos = 0; item = 0
       fi
    od;
    consumers_done++
}

proctype Closer() {
    /* close at any moment: while producers still push, or after they are done */
    if
    :: skip
    :: producers_done == PRODUCERS
    fi;
    atomic { tail = tail | MARK }   /* [close drains what was claimed]: fetch_or */
}

init {
    atomic {
        run Producer(0);
        run Producer(1);
        run Consumer(0);
        run Consumer(1);
        run Closer()
    };
    consumers_done == CONSUMERS;
    byte i = 0;
    do   /* every pushed item popped exactly once, nothing else */
    :: i < ITEMS -> assert(popped[i] == pushed_ok[i]); i++
    :: else -> break
    od;
    assert((tail & ~MARK) == head && head == tail_done && head == head_done)   /* drained, all committed */
}
