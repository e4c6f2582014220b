/*
 * serve.pml — the wait of a pool thread that serves jobs (ring_serving.c ring_serve,
 * [a serving waiter misses no job]; [a queued job wakes a parked thread]), checked with spin for every
 * interleaving of a small configuration: a thread that pops a ring and runs queued jobs parks on the jobs'
 * parker with a callback node on the ring's parker, and is woken by a push or a close (the node's callback
 * notifies the jobs' parker) and by a queued job (enqueue notifies the jobs' parker after queuing). No lost
 * wake-up (a process blocked forever is an invalid end state), every item popped once and every job run once
 * (the final assertions), every announcement and node withdrawn.
 *
 * What mirrors what (the eventcount and ring machinery is eventcount.pml's, unchanged):
 *   Server       ring_serve for a pop: op; run a job if one is queued; prepare on JOBS; register a node
 *                on NOT_EMPTY (ring_await: prepare, ready re-check, register); re-check the jobs; wait
 *                on JOBS; withdraw the node (unregister, or wait for its callback: serve_withdraw).
 *                The spin phase only retries, so it is left out. At the close it runs what is queued
 *                (serve(until:) after the loop).
 *   Enqueuer     PoolExecutor.enqueue: queue, then notify(JOBS, 1)
 *   Producer     a thread pushing with ring_wait (blocking_push)
 *   Closer       flow_ring_close once the producer is done and every job has run: in a pipeline the
 *                close comes from a job (the source's end), so nothing else wakes a server that missed
 *                a job
 * Mutants (CI checks that spin finds the lost wake-up in each):
 *   -DMUTANT_NO_JOB_RECHECK   the server parks without re-checking the jobs after announcing
 *   -DMUTANT_NO_RING_NODE     the server parks on JOBS without a node on the ring's parker
 * Memory model: sequential consistency, as in eventcount.pml.
 */
#define CAP 2
#define RESUME 1
#define BATCH 1
#ifndef PER_PRODUCER
#define PER_PRODUCER 2
#endif
#ifndef JOBS_QUEUED
#define JOBS_QUEUED 2
#endif
#define NPROC 4             /* 0 server, 1 producer, 2 enqueuer, 3 closer */
#define SERVER 0
#define NOT_EMPTY 0
#define NOT_FULL 1
#define JOBS 2

#define EMPTY 100       /* statuses, apart from item counts (FLOW_EMPTY etc. are negative in C) */
#define FULL 101
#define CLOSED 102
#define MAXWAKE 127

byte items = 0;             /* the ring's contents */
bit closed = 0;
byte pushed = 0, consumed = 0, producers_done = 0;
byte jobs = 0, ran = 0;     /* jobs queued, jobs run */
bit serve_cb = 0;

byte epoch[3], waiters[3], callbacks[3];
bit lock[3];
bit asleep[3 * NPROC];      /* a thread in futex_wait on parker p: asleep[p * NPROC + id] */
bit attached[3 * NPROC];    /* a registered callback waiter */
bit fired[NPROC];           /* its callback ran */

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

/* fire_callbacks: detach every callback under the lock, withdraw their announcements, then call them.
   The server's node (ring_serving.c serve_fired) sets its flag and then notifies the jobs' parker: this model's
   notifiers do that second step right after notify (serve_cb). */
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
        :: i < NPROC ->
            if
            :: detached & (1 << i) -> fired[i] = 1; if :: i == SERVER -> serve_cb = 1 :: else -> skip fi
            :: else -> skip
            fi;
            i++
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

/* ring_serving.c serve_fired's second step, by the notifier that fired the server's node */
inline serve_cb_notify() {
    if
    :: serve_cb -> serve_cb = 0; notify(JOBS, MAXWAKE)
    :: else -> skip
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
    :: k != CLOSED && k != FULL -> notify(NOT_EMPTY, k); serve_cb_notify()
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


/* serve_withdraw: unregister the node; if a notify took it first, wait until its callback has run */
inline withdraw() {
    atomic {
        if
        :: attached[NOT_EMPTY * NPROC + me] ->
            /* [announcements withdrawn once] */
            attached[NOT_EMPTY * NPROC + me] = 0; callbacks[NOT_EMPTY]--; waiters[NOT_EMPTY]--
        :: else -> fired[me] == 1
        fi
    };
    fired[me] = 0
}

proctype Server(byte me) {
    byte k, key, key2, i, sleepers, target, woken, n_fired, detached;
    bit accepted, ready;
    do
    :: pop_op(k);
       if
       :: k == CLOSED -> break
       :: k != EMPTY -> skip                              /* got items */
       :: k == EMPTY && jobs > 0 -> jobs--; ran++          /* run_one */
       :: k == EMPTY && jobs == 0 ->
           prepare(JOBS, key);
#ifndef MUTANT_NO_RING_NODE
           prepare(NOT_EMPTY, key2);                       /* ring_await */
           ready = (items > 0 || closed);
           if
           :: ready -> cancel(NOT_EMPTY); cancel(JOBS)
           :: else ->
               register_cb(NOT_EMPTY, key2, accepted);
               if
               :: !accepted -> cancel(JOBS)
               :: else ->
#ifndef MUTANT_NO_JOB_RECHECK
                   if
                   :: jobs > 0 -> withdraw(); cancel(JOBS)   /* re-check after announcing */
                   :: else -> pwait(JOBS, key); withdraw()
                   fi
#else
                   pwait(JOBS, key); withdraw()
#endif
               fi
           fi
#else
           if
           :: jobs > 0 -> cancel(JOBS)
           :: else -> pwait(JOBS, key)
           fi
#endif
       fi
    od;
    do   /* after the loop: run what is queued */
    :: jobs > 0 -> jobs--; ran++
    :: else -> break
    od
}

proctype Producer(byte me) {
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

proctype Enqueuer(byte me) {
    byte n = 0, i, sleepers, target, woken, n_fired, detached;
    do
    :: n < JOBS_QUEUED -> jobs++; n++; notify(JOBS, 1)
    :: else -> break
    od
}

proctype Closer(byte me) {
    byte i, sleepers, target, woken, n_fired, detached;
    /* in a pipeline the close itself waits on jobs (the source) */
    producers_done == 1 && ran == JOBS_QUEUED;
    closed = 1;
    notify(NOT_EMPTY, MAXWAKE);
    serve_cb_notify();
    notify(NOT_FULL, MAXWAKE)
}

init {
    atomic {
        run Server(0);
        run Producer(1);
        run Enqueuer(2);
        run Closer(3)
    };
    _nr_pr == 1;   /* every other process has ended */
    assert(pushed == PER_PRODUCER && consumed == pushed);
    assert(ran == JOBS_QUEUED && jobs == 0);
    assert(waiters[NOT_EMPTY] == 0 && waiters[NOT_FULL] == 0 && waiters[JOBS] == 0);
    assert(callbacks[NOT_EMPTY] == 0 && callbacks[JOBS] == 0)
}
