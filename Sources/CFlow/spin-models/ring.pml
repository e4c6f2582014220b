/*
 * ring.pml — the slot protocol of array_queue.c (claim / commit with per-slot stamps, the lap trick, batch
 * claims, close), checked with spin for every interleaving of a small configuration: every item
 * pushed is popped exactly once, nothing is popped that was not pushed, a consumer reads an item only
 * after its producer wrote it, pushes after close fail, and pops see "closed" only once the ring is
 * drained (the final assertions). A lost or duplicated item or a torn read fails an assertion.
 *
 * What mirrors what (array_queue.c):
 *   claim_push / claim_pop   claim_push / claim_pop: load the stamp at the local head/tail,
 *                            count the ready neighbours within the lap (R3), CAS the index (a failed CAS
 *                            reloads it), full/empty decided by a load of the opposite index (R4)
 *   push / pop               array_push_n / array_pop_n: claim, copy, publish each slot's stamp (R2)
 *   Closer                   array_close: fetch_or of the mark bit into tail (R5), at any moment
 * Sizes: CAP slots (3: an exact, non-power-of-two capacity), mark bit next_pow2(CAP + 1), one lap = 2 x
 * mark bit; the producers' items take the positions over more than one lap. The backoff between
 * retries and the blocking/parking layer (eventcount.pml) are left out: they only retry.
 * Mutants (CI checks that spin finds an error in each, so the model is not vacuous):
 *   -DMUTANT_PUBLISH_FIRST   a producer publishes the stamps before it writes the items
 *   -DMUTANT_STALE_CAS       the tail "CAS" succeeds even when another producer moved tail
 * Memory model: sequential consistency; the acquire/release pairs on stamps and the seq_cst CAS/fence
 * that make the C code behave so are argued in array_queue.c (R2, R4).
 */
#ifndef CAP
#define CAP 3
#endif
#ifndef MARK
#define MARK 4              /* next_pow2(CAP + 1) */
#endif
#define ONE_LAP (2 * MARK)
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

int head = 0, tail = 0;
int stamps[CAP];
byte data[CAP];             /* 0: never written; an item is 1 + its number */
byte popped[ITEMS];         /* times each item was popped */
bit pushed_ok[ITEMS];       /* its push succeeded */
byte producers_done = 0, consumers_done = 0;

/* ring_claim_push: k slots claimed at position pos, or FULL / CLOSED */
inline claim_push(want, k, pos) {
    t = tail;
    do
    :: t & MARK -> k = CLOSED; break
    :: else ->
        idx = t & (MARK - 1);
        lap = t & ~(ONE_LAP - 1);
        if
        :: stamps[idx] == t ->
            limit = (CAP - idx < want -> CAP - idx : want);
            k = 1;
            do   /* R3: count neighbours already free for this lap */
            :: k < limit && stamps[idx + k] == t + k -> k++
            :: else -> break
            od;
            next = (idx + k < CAP -> t + k : lap + ONE_LAP);
            atomic {   /* CAS tail */
                if
#ifndef MUTANT_STALE_CAS
                :: tail == t -> tail = next; pos = t; won = 1
#else
                :: true -> tail = next; pos = t; won = 1   /* claims with a stale tail */
#endif
                :: else -> t = tail
                fi
            };
            if
            :: won -> won = 0; limit = 0; next = 0; lap = 0; break
            :: else -> skip
            fi
        :: stamps[idx] + ONE_LAP == t + 1 ->   /* the slot still holds last lap's item */
            if
            :: head + ONE_LAP == t -> k = FULL; break   /* R4: full */
            :: else -> t = tail                          /* a consumer is mid-read */
            fi
        :: else -> t = tail                              /* stale tail */
        fi
    od;
    t = 0; idx = 0; lap = 0; next = 0; limit = 0
}

/* ring_claim_pop: k slots claimed at position pos, or EMPTY / CLOSED */
inline claim_pop(want, k, pos) {
    h = head;
    do
    :: idx = h & (MARK - 1);
       lap = h & ~(ONE_LAP - 1);
       if
       :: stamps[idx] == h + 1 ->
           limit = (CAP - idx < want -> CAP - idx : want);
           k = 1;
           do
           :: k < limit && stamps[idx + k] == h + k + 1 -> k++
           :: else -> break
           od;
           next = (idx + k < CAP -> h + k : lap + ONE_LAP);
           atomic {   /* CAS head */
               if
               :: head == h -> head = next; pos = h; won = 1
               :: else -> h = head
               fi
           };
           if
           :: won -> won = 0; break
           :: else -> skip
           fi
       :: stamps[idx] == h ->   /* nothing committed here for this lap */
           atomic {
               t = tail;
               if
               :: (t & ~MARK) == h && (t & MARK) -> k = CLOSED
               :: (t & ~MARK) == h && !(t & MARK) -> k = EMPTY
               :: else -> k = 0   /* a producer claimed this slot and is mid-write */
               fi
           };
           if
           :: k == CLOSED || k == EMPTY -> break
           :: else -> h = head
           fi
       :: else -> h = head
       fi
    od;
    h = 0; t = 0; idx = 0; lap = 0; next = 0; limit = 0
}

proctype Producer(byte me) {
    byte sent = 0, want, k, j, idx, lap, limit, won;
    int t, next, pos;
    do
    :: sent < PER_PRODUCER ->
        want = (PER_PRODUCER - sent < BATCH -> PER_PRODUCER - sent : BATCH);
        claim_push(want, k, pos);
        if
        :: k == CLOSED -> break
        :: k == FULL -> skip   /* retry (the blocking layer would park here) */
        :: else ->
            idx = pos & (MARK - 1);
#ifdef MUTANT_PUBLISH_FIRST
            do
            :: j < k -> stamps[idx + j] = pos + j + 1; j++
            :: else -> break
            od;
            j = 0;
#endif
            atomic {   /* copy the batch into its slots, then mark them pushed */
                j = 0;
                do
                :: j < k -> data[idx + j] = 1 + me * PER_PRODUCER + sent + j; pushed_ok[me * PER_PRODUCER + sent + j] = 1; j++
                :: else -> break
                od;
                j = 0
            };
#ifndef MUTANT_PUBLISH_FIRST
            do   /* R2: publish slot by slot; consumers may take the prefix early */
            :: j < k -> stamps[idx + j] = pos + j + 1; j++
            :: else -> break
            od;
#endif
            sent = sent + k; j = 0; k = 0; idx = 0; pos = 0
        fi
    :: else -> break
    od;
    producers_done++
}

proctype Consumer(byte me) {
    byte k, j, idx, lap, limit, won, item;
    int h, t, next, pos;
    do
    :: claim_pop(BATCH, k, pos);
       if
       :: k == CLOSED -> break
       :: k == EMPTY -> skip
       :: else ->
           idx = pos & (MARK - 1);
           atomic {
               j = 0;
               do
               :: j < k ->
                   item = data[idx + j];
                   assert(item > 0 && pushed_ok[item - 1]);   /* written before it was published */
                   popped[item - 1]++;
                   data[idx + j] = 0;   /* a later read of this slot before a new write would see 0 */
                   j++
               :: else -> break
               od;
               j = 0; item = 0
           };
           do
           :: j < k -> stamps[idx + j] = pos + j + ONE_LAP; j++
           :: else -> break
           od;
           j = 0; k = 0; idx = 0; pos = 0
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
    atomic { tail = tail | MARK }   /* R5: fetch_or */
}

init {
    byte i;
    atomic {
        i = 0;
        do
        :: i < CAP -> stamps[i] = i; i++
        :: else -> break
        od;
        run Producer(0);
        run Producer(1);
        run Consumer(0);
        run Consumer(1);
        run Closer()
    };
    consumers_done == CONSUMERS;
    i = 0;
    do   /* every pushed item popped exactly once, nothing else */
    :: i < ITEMS -> assert(popped[i] == pushed_ok[i]); i++
    :: else -> break
    od;
    assert((tail & ~MARK) == head)   /* drained */
}
