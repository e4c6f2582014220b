/*
 * eventcount.pml — the parking protocol of parker.c together with the ring's blocking and awaiting
 * calls (ring.c), checked with spin for every interleaving of a small configuration:
 * no lost wake-up (nobody sleeps forever: spin reports a blocked process as an invalid end state),
 * no lost or duplicated item (the final assertion), every announcement withdrawn (waiters back to 0).
 *
 * What mirrors what:
 *   prepare / cancel        flow_parker_prepare / flow_parker_cancel ([announce before re-checking],
 *                           [announcements withdrawn once])
 *   pwait                   flow_parker_wait: sleeps (futex) only while epoch == key, then withdraws
 *                           ([sleep only on the key])
 *   notify                  flow_parker_notify: waiters == 0 -> return; else epoch++, futex_wake(n),
 *                           then fire callbacks if any are registered ([notify after the condition],
 *                           [callbacks refused or fired])
 *   futex_wake              FUTEX_WAKE: wakes exactly min(n, sleepers) sleepers, any of them
 *   register_cb / fire_cbs  flow_parker_register / fire_callbacks, under the parker's lock
 *                           ([callbacks refused or fired])
 *   push_op / pop_op        flow_ring_push_n / ring_pop, the ring reduced to its item count (ring.pml
 *                           checks the slots); pop notifies producers only at size <= RESUME
 *                           ([producers resume at a size])
 *   blocking_push / _pop    ring_wait: op, prepare, op again (cancel if it worked), wait, op
 *                           (the spin phase only retries op, so it is left out)
 *   await_push / await_pop  flow_ring_await_push / _pop + flow_waiter (what Link uses for Swift tasks)
 *   closer                  flow_ring_close: closed, then notify both parkers
 * Mutants (CI checks that spin finds the lost wake-up in each, so the model is not vacuous):
 *   -DMUTANT_NO_RECHECK               ring_wait parks without re-checking after prepare
 *   -DMUTANT_REGISTER_IGNORES_EPOCH   register accepts a callback although a notify came since prepare
 * Memory model: spin interleaves atomic statements under sequential consistency. The C code gets that
 * ordering where this protocol needs it from seq_cst RMWs and fences ([announce before re-checking],
 * [notify after the condition], [full and empty decided after a fence]); the ordering argument itself is in
 * those comments, not in this model.
 */
#define CAP 2
#define RESUME 1            /* resume_producers_at */
#define BATCH 2             /* most items one call moves */
#ifndef PER_PRODUCER
#define PER_PRODUCER 3
#endif
/* process slots: 0 thread producer, 1 task producer, 2 thread consumer, 3 task consumer, 4 closer */
#define NPROC 5
#define PRODUCERS 2
#define CONSUMERS 2
#define NOT_EMPTY 0
#define NOT_FULL 1

#define EMPTY 100       /* statuses, apart from item counts (FLOW_EMPTY etc. are negative in C) */
#define FULL 101
#define CLOSED 102
#define MAXWAKE 127

byte items = 0;             /* the ring's contents */
bit closed = 0;
byte pushed = 0, consumed = 0, producers_done = 0, consumers_done = 0;

byte epoch[2], waiters[2], callbacks[2];
bit lock[2];
bit asleep[2 * NPROC];      /* a thread in futex_wait on parker p: asleep[p * NPROC + id] */
bit attached[2 * NPROC];    /* a registered callback waiter */
bit fired[NPROC];           /* its callback ran: the task is resumed */

inline futex_wake(p, n) {
    atomic {
        i = 0;
        do
        :: i < NPROC -> sleepers = sleepers + asleep[p * NPROC + i]; i++
        :: else -> break
        od;
        target = (n < sleepers -> n : sleepers);
        do
        :: woken < target ->
            select (i : 0 .. NPROC - 1);
            if
            :: asleep[p * NPROC + i] -> asleep[p * NPROC + i] = 0; woken++
            :: else -> skip
            fi
        :: else -> break
        od;
        i = 0; sleepers = 0; target = 0; woken = 0   /* scratch, cleared so it does not split states */
    }
}

/* fire_callbacks: detach every callback under the lock, withdraw their announcements, then call them. */
inline fire_cbs(p) {
    atomic {
        lock[p] == 0 -> i = 0;
        do
        :: i < NPROC ->
            if
            :: attached[p * NPROC + i] -> attached[p * NPROC + i] = 0; detached = detached | (1 << i); n_fired++
            :: else -> skip
            fi;
            i++
        :: else -> break
        od;
        callbacks[p] = callbacks[p] - n_fired;
        i = 0
    };
    /* [announcements withdrawn once]: withdrawn by this notify */
    atomic { waiters[p] = waiters[p] - n_fired; n_fired = 0 };
    atomic {
        do
        :: i < NPROC -> if :: detached & (1 << i) -> fired[i] = 1 :: else -> skip fi; i++
        :: else -> break
        od;
        i = 0; detached = 0
    }
}

inline notify(p, n) {
    if
    :: waiters[p] == 0 -> skip       /* the fast path: fence, load, branch */
    :: else ->
        epoch[p]++;
        futex_wake(p, n);
        if
        :: callbacks[p] > 0 -> fire_cbs(p)
        :: else -> skip
        fi
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

/* flow_parker_register: refused (ready) when a notify bumped the epoch since prepare. */
inline register_cb(p, key, accepted) {
    atomic { lock[p] == 0 -> lock[p] = 1; callbacks[p]++ };
    atomic {
        if
#ifndef MUTANT_REGISTER_IGNORES_EPOCH
        :: epoch[p] != key -> callbacks[p]--; lock[p] = 0; accepted = 0
#endif
        :: else -> attached[p * NPROC + me] = 1; lock[p] = 0; accepted = 1
        fi
    };
    if
    :: !accepted -> cancel(p)
    :: else -> skip
    fi
}

inline push_op(want, k) {
    atomic {
        if
        :: closed -> k = CLOSED
        :: !closed && items < CAP ->
            k = (want < CAP - items -> want : CAP - items);
            items = items + k; pushed = pushed + k
        :: else -> k = FULL
        fi
    };
    if
    :: k != CLOSED && k != FULL -> notify(NOT_EMPTY, k)
    :: else -> skip
    fi
}

inline pop_op(k) {
    atomic {
        if
        :: items > 0 -> k = (items < BATCH -> items : BATCH); items = items - k; consumed = consumed + k
        :: items == 0 && closed -> k = CLOSED
        :: else -> k = EMPTY
        fi
    };
    if
    :: k != CLOSED && k != EMPTY ->
        if   /* ring_size_now: read after the pop, not atomically with it */
        :: items <= RESUME -> notify(NOT_FULL, k)
        :: else -> skip
        fi
    :: else -> skip
    fi
}

/* ring_wait for a push of `want` items (flow_ring_push_n_wait) */
inline blocking_push(want, k) {
    push_op(want, k);
    if
    :: k == FULL ->
        do
        :: prepare(NOT_FULL, key);
           push_op(want, k);
           if
           :: k != FULL -> cancel(NOT_FULL); break
           :: else -> skip
           fi;
           pwait(NOT_FULL, key);
           push_op(want, k);
           if
           :: k != FULL -> break
           :: else -> skip
           fi
        od
    :: else -> skip
    fi
}

/* ring_wait for a pop (flow_ring_pop_n_wait) */
inline blocking_pop(k) {
    pop_op(k);
    if
    :: k == EMPTY ->
        do
        :: prepare(NOT_EMPTY, key);
#ifndef MUTANT_NO_RECHECK
           pop_op(k);
           if
           :: k != EMPTY -> cancel(NOT_EMPTY); break
           :: else -> skip
           fi;
#endif
           pwait(NOT_EMPTY, key);
           pop_op(k);
           if
           :: k != EMPTY -> break
           :: else -> skip
           fi
        od
    :: else -> skip
    fi
}

proctype ThreadProducer(byte me) {
    byte left = PER_PRODUCER, want, k, key, i, sleepers, target, woken, n_fired, detached;
    do
    :: left > 0 ->
        want = (left < BATCH -> left : BATCH);
        blocking_push(want, k);
        assert(k != CLOSED);
        left = left - k
    :: else -> break
    od;
    producers_done++
}

proctype TaskProducer(byte me) {
    byte left = PER_PRODUCER, want, k, key, i, sleepers, target, woken, n_fired, detached;
    bit accepted, ready;
    do
    :: left > 0 ->
        want = (left < BATCH -> left : BATCH);
        push_op(want, k);
        if
        :: k == FULL ->   /* flow_ring_await_push: announce, re-check readiness, register */
            prepare(NOT_FULL, key);
            ready = (closed || items <= RESUME);
            if
            :: ready -> cancel(NOT_FULL)
            :: else ->
                register_cb(NOT_FULL, key, accepted);
                if
                :: accepted -> fired[me] == 1; fired[me] = 0   /* the continuation resumes */
                :: else -> skip
                fi
            fi
        :: else -> assert(k != CLOSED); left = left - k
        fi
    :: else -> break
    od;
    producers_done++
}

proctype ThreadConsumer(byte me) {
    byte k, key, i, sleepers, target, woken, n_fired, detached;
    do
    :: blocking_pop(k);
       if
       :: k == CLOSED -> break
       :: else -> skip
       fi
    od;
    consumers_done++
}

proctype TaskConsumer(byte me) {
    byte k, key, i, sleepers, target, woken, n_fired, detached;
    bit accepted, ready;
    do
    :: pop_op(k);
       if
       :: k == CLOSED -> break
       :: k == EMPTY ->
           prepare(NOT_EMPTY, key);
           ready = (items > 0 || closed);
           if
           :: ready -> cancel(NOT_EMPTY)
           :: else ->
               register_cb(NOT_EMPTY, key, accepted);
               if
               :: accepted -> fired[me] == 1; fired[me] = 0
               :: else -> skip
               fi
           fi
       :: else -> skip
       fi
    od;
    consumers_done++
}

proctype Closer(byte me) {
    byte i, sleepers, target, woken, n_fired, detached;
    producers_done == PRODUCERS;
    closed = 1;
    notify(NOT_EMPTY, MAXWAKE);
    notify(NOT_FULL, MAXWAKE);
    consumers_done == CONSUMERS;
    assert(pushed == PRODUCERS * PER_PRODUCER);
    assert(consumed == pushed);
    assert(waiters[NOT_EMPTY] == 0 && waiters[NOT_FULL] == 0);
    assert(callbacks[NOT_EMPTY] == 0 && callbacks[NOT_FULL] == 0)
}

init {
    atomic {
        run ThreadProducer(0);
        run TaskProducer(1);
        run ThreadConsumer(2);
        run TaskConsumer(3);
        run Closer(4)
    }
}
