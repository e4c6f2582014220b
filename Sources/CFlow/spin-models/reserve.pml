/*
 * reserve.pml — a ring's pushes reserved for one thread (array_queue.c [a starving pusher gets the room],
 * ring_serving.c [an overtaken pusher reserves the room]), checked with spin for every interleaving of a
 * small configuration: while the reservation is held, another producer's push answers "full" and its
 * re-check says "not ready", so it parks; the holder drops the reservation when its push is in and then
 * notifies the producers' parker. No lost wake-up (a process blocked forever is an invalid end state), every
 * item popped once, no push by another while the reservation is held (assertion in push_op).
 *
 * What mirrors what (the parker is eventcount.pml's: prepare, re-check, wait; notify bumps the epoch):
 *   Holder       a pool thread in flow_ring_push_all_serving: at any moment it reserves (reserve: the CAS
 *                from none), pushes its items waiting as ring_wait does, then drops the reservation
 *                (unreserve) and notifies NOT_FULL. Its serving of jobs only runs other work, so it is left out.
 *   Other        a producer pushing with ring_wait (blocking_push), refused while another holds the reservation
 *   Consumer     a thread popping with ring_wait; a pop notifies NOT_FULL when it leaves at most RESUME items
 *                ([producers resume at a size])
 * Mutants (CI checks that spin finds the error in each):
 *   -DMUTANT_NO_NOTIFY          the holder drops the reservation without notifying: the other producer sleeps
 *   -DMUTANT_NO_REFUSAL         another thread's push ignores the reservation: the assertion in push_op fails
 * Memory model: sequential consistency; the seq_cst fence before the refusal's second look, the CAS and the
 * seq_cst store of the drop that make the C code behave so are argued in array_queue.c.
 */
#define CAP 2
#define RESUME 1
#ifndef PER_PRODUCER
#define PER_PRODUCER 2
#endif
#define NPROC 3             /* 0 holder, 1 other producer, 2 consumer */
#define NOT_EMPTY 0
#define NOT_FULL 1
#define FULL 101
#define EMPTY 100
#define NONE 9

byte items = 0;
byte pushed = 0, consumed = 0;
byte reserved = NONE;       /* the id of the thread the pushes are reserved for */
bit holding = 0;            /* the holder's push is under way with the reservation */
byte epoch[2], waiters[2];
bit asleep[2 * NPROC];

inline futex_wake(p) {
    atomic {
        i = 0;
        do
        :: i < NPROC -> asleep[p * NPROC + i] = 0; i++
        :: else -> break
        od;
        i = 0
    }
}

inline notify(p) {
    if
    :: waiters[p] == 0 -> skip       /* the fast path: fence, load, branch */
    :: else -> epoch[p]++; futex_wake(p)
    fi
}

inline prepare(p, key) { atomic { key = epoch[p]; waiters[p]++ } }
inline cancel(p) { waiters[p]-- }

inline pwait(p, key) {
    do
    :: epoch[p] != key -> break
    :: else ->
        atomic {   /* FUTEX_WAIT: compare and sleep in one step */
            if
            :: epoch[p] == key -> asleep[p * NPROC + me] = 1
            :: else -> skip
            fi
        };
        asleep[p * NPROC + me] == 0
    od;
    waiters[p]--
}

/* array_push_n through claim_push: refused while another thread holds the reservation */
inline push_op(k) {
    atomic {
        if
#ifndef MUTANT_NO_REFUSAL
        :: reserved != NONE && reserved != me -> k = FULL
#endif
        :: else ->
            if
            :: items < CAP ->
                assert(!(holding && reserved != me));   /* nobody else pushes while the holder holds it */
                items++; pushed++; k = 1
            :: else -> k = FULL
            fi
        fi
    };
    if
    :: k == 1 -> notify(NOT_EMPTY)
    :: else -> skip
    fi
}

inline pop_op(k) {
    atomic {
        if
        :: items > 0 -> items--; consumed++; k = 1
        :: else -> k = EMPTY
        fi
    };
    if
    :: k == 1 && items <= RESUME -> notify(NOT_FULL)   /* [producers resume at a size] */
    :: else -> skip
    fi
}

/* ring_wait for one push: try; announce; re-check (a push that is refused or finds the ring full is "not
   ready", as array_ready_to_push says); wait */
inline blocking_push(k) {
    push_op(k);
    do
    :: k != FULL -> break
    :: else ->
        prepare(NOT_FULL, key);
        push_op(k);
        if
        :: k != FULL -> cancel(NOT_FULL); break
        :: else -> pwait(NOT_FULL, key); push_op(k)
        fi
    od
}

inline blocking_pop(k) {
    pop_op(k);
    do
    :: k != EMPTY -> break
    :: else ->
        prepare(NOT_EMPTY, key);
        pop_op(k);
        if
        :: k != EMPTY -> cancel(NOT_EMPTY); break
        :: else -> pwait(NOT_EMPTY, key); pop_op(k)
        fi
    od
}

proctype Holder(byte me) {
    byte left = PER_PRODUCER, k, key, i;
    do   /* pushes before it reserves, then it reserves at any moment */
    :: left > 0 -> blocking_push(k); left--
    :: left > 0 -> break
    :: left == 0 -> break
    od;
    atomic {   /* reserve: CAS from none */
        if
        :: reserved == NONE -> reserved = me; holding = 1
        :: else -> skip
        fi
    };
    do
    :: left > 0 -> blocking_push(k); left--
    :: else -> break
    od;
    atomic { holding = 0; reserved = NONE };   /* unreserve: a seq_cst store */
#ifndef MUTANT_NO_NOTIFY
    notify(NOT_FULL)
#endif
}

proctype Other(byte me) {
    byte left = PER_PRODUCER, k, key, i;
    do
    :: left > 0 -> blocking_push(k); left--
    :: else -> break
    od
}

proctype Consumer(byte me) {
    byte k, key, i;
    do
    :: consumed < 2 * PER_PRODUCER -> blocking_pop(k)
    :: else -> break
    od
}

init {
    atomic {
        run Holder(0);
        run Other(1);
        run Consumer(2)
    };
    _nr_pr == 1;   /* every other process has ended */
    assert(pushed == 2 * PER_PRODUCER && consumed == pushed && items == 0);
    assert(waiters[NOT_EMPTY] == 0 && waiters[NOT_FULL] == 0 && reserved == NONE)
}
