/*
 * ring_serving.c — the calls of a pool thread that serves jobs while it waits on a ring
 * (flow_ring_pop_n_serving, flow_ring_push_all_serving): it runs queued jobs, spins, and parks where
 * either a job or the ring wakes it.
 *
 * Invariants:
 *  [a serving waiter misses no job] A waiter that serves jobs (the *_serving calls) runs every queued job
 *    before it spins or parks, and parks on the jobs' parker only after announcing itself there, registering
 *    a node on the ring's parker (whose callback notifies the jobs' parker: all of its threads, since each
 *    waits on its own ring) and re-checking that no job is queued: so a push, pop or close on its ring
 *    ([every change notifies]) and a queued job both wake it, and none is lost. Its node is taken back from
 *    that parker before the call returns (if a notify took it first, the call waits until its callback has
 *    run). Model-checked with a job queue, a pushing thread and a close: spin-models/serve.pml.
 *  [one long spinner] Adaptive spin, for a pool thread waiting for items (pop_n_serving): each thread keeps
 *    an average of how long its recent waits lasted, from finding its ring empty until items came. While that
 *    average is under FLOW_ADAPTIVE_SPIN_FACTOR x spin_ns (240 us by default), one thread of the process at a
 *    time (it holds `long_spinner`, taken with a CAS and given back when its spin ends) spins for up to twice
 *    the average, within that bound, instead of spin_ns; the others spin spin_ns as before. So a steady
 *    trickle of items (10 k/s: 100 us apart) is caught by a spinning thread rather than after a futex wake
 *    (tens of microseconds on a virtual machine), at the cost of that thread's CPU (niced, FLOW_NICE, and
 *    yielding after ~2 us); a source that falls silent shows as one long wait, after which every thread
 *    spins spin_ns and parks. Only how long a thread spins changes: the park / wake protocol
 *    ([waits announce and re-check], [a serving waiter misses no job]) is untouched. spin_ns = 0 turns spinning
 *    off, this one too.
 *  [an overtaken pusher reserves the room] A pool thread waiting to push runs the jobs it finds, and a job is
 *    often the ring's consumer: its pop makes room while this thread is still inside the job, and another
 *    producer spinning for room takes it first, again and again (a worker's batch waited seconds so, behind
 *    the other worker's). So once the ring has taken its capacity of items from others since this push-all first
 *    waited, the waiter reserves the ring's pushes for its thread (array_queue.c's [a starving pusher gets the room])
 *    and keeps them until its whole push (flow_ring_push_all_serving) has gone in or the ring has closed; then
 *    it drops them and notifies the waiting producers. One thread holds them at a time; another that is
 *    overtaken meanwhile waits its turn as an ordinary waiter. A waiter is so passed over by about one ring's
 *    capacity, not without bound. The liburcu kind keeps no count of pushes: no reservation there.
 *  [a job knows it runs under a wait] While a serving waiter runs a job, its thread's `jobs_under_wait` is one
 *    more (flow_jobs_under_wait): the waiter under the job gets its thread back only when the job returns, so
 *    a job that could loop for ever without suspending (a source whose pushes keep finding room) checks it
 *    and returns the thread after each batch (AsyncFlow's [a job under a wait yields each batch]).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdatomic.h>
#include <stdint.h>

#include "ring_internal.h"

/* A pool thread serving jobs parks on the jobs' parker, with this node registered on the ring's parker
 * so that a push / pop / close on the ring wakes it too ([a serving waiter misses no job]). */
typedef struct serve_node {
    flow_waiter w;
    flow_parker *wake;
    _Atomic int fired;
} serve_node;

static void serve_fired(void *ctx) {
    serve_node *node = ctx;
    flow_parker *wake = node->wake; /* read before `fired`: the node may be gone once it is set */
    atomic_store_explicit(&node->fired, 1, memory_order_release);
    flow_parker_notify(wake, INT32_MAX); /* all: the threads parked there wait on different rings */
}

/* Take the node back from the ring's parker it is on; when a notify already took it, wait until its
 * callback has run (it is on its way), so the node can go. */
static void serve_withdraw(struct flow_parker *on, serve_node *node) {
    if (flow_parker_unregister(on, &node->w)) return;
    while (!atomic_load_explicit(&node->fired, memory_order_acquire)) flow_cpu_relax();
}

/* [a job knows it runs under a wait]: how many of this thread's serving waits are running a job now. */
static _Thread_local int jobs_under_wait;

int flow_jobs_under_wait(void) { return jobs_under_wait; }

/* Run one queued job under this thread's wait ([a job knows it runs under a wait]): 1 when one ran. */
static int run_job_under_wait(const flow_jobs *jobs) {
    jobs_under_wait++;
    int ran = jobs->run_one(jobs->ctx);
    jobs_under_wait--;
    return ran;
}

/* [one long spinner]: the process's one long spinner, and each thread's average wait for items (ns; -1:
 * none yet). */
static _Atomic int long_spinner;
static _Thread_local int64_t wait_average_ns = -1;

/* [one long spinner]: the spin budget of a thread about to wait for items; *held is set when it took the
 * long spin. */
static int64_t adaptive_budget(const flow_ring *r, int *held) {
    *held = 0;
    int64_t average = wait_average_ns, most = FLOW_ADAPTIVE_SPIN_FACTOR * r->spin_ns;
    if (average < 0 || average >= most) return r->spin_ns; /* (spin_ns 0: most is 0) */
    int64_t want = 2 * average < most ? 2 * average : most;
    if (want <= r->spin_ns) return r->spin_ns;
    int free = 0;
    if (!atomic_compare_exchange_strong_explicit(&long_spinner, &free, 1, memory_order_relaxed,
                                                 memory_order_relaxed))
        return r->spin_ns;
    *held = 1;
    return want;
}

/* [one long spinner]: a wait for items that began at `since` has ended with items. */
static void record_wait(uint64_t since) {
    int64_t waited = (int64_t)(flow_now_ns() - since);
    wait_average_ns = wait_average_ns < 0 ? waited : (3 * wait_average_ns + waited) / 4;
}

/* A serving push-all, over all its blocking pushes ([an overtaken pusher reserves the room]): the jobs to serve;
 * since its first wait, the ring's push count then and what it pushed itself; and whether it took the ring's
 * reservation (1), or an outer push-all of this thread holds it (2). */
typedef struct serving_push {
    const flow_jobs *jobs;
    int waited;
    uint64_t pushed_at;
    uint64_t mine;
    int reserved;
} serving_push;

/* ring_wait for a thread that serves jobs ([a serving waiter misses no job]): run queued jobs first, spin
 * for the budget re-checking both ([one long spinner]: adaptively, when waiting for items), then park on
 * the jobs' parker with a node on the ring's parker. A push-all (`push`) that others have overtaken by the
 * ring's capacity since it first waited reserves the ring's pushes ([an overtaken pusher reserves the room]). */
static int64_t ring_serve(flow_ring *r, ring_op op, void *buf, int64_t n, uint64_t *seq, int64_t would_block,
                          struct flow_parker *on, int (*ready)(void *), const flow_jobs *jobs, serving_push *push) {
    int adaptive = would_block == FLOW_EMPTY; /* [one long spinner]: waits for items only */
    uint64_t since = 0;                       /* when the ring was first found empty */
    for (;;) {
        int64_t k = op(r, buf, n, seq);
        if (k != would_block) {
            if (since && k > 0) record_wait(since);
            return k;
        }
        if (adaptive && !since) since = flow_now_ns();
        if (push) { /* [an overtaken pusher reserves the room] */
            uint64_t now = r->ops->pushed(r->q);
            if (!push->waited) {
                push->waited = 1;
                push->pushed_at = now;
            }
            if (!push->reserved && now - push->pushed_at - push->mine >= r->cap)
                push->reserved = r->ops->reserve(r->q);
        }
        if (run_job_under_wait(jobs)) continue;
        uint64_t start = flow_now_ns();
        int job = 0, held = 0;
        int64_t budget = adaptive ? adaptive_budget(r, &held) : r->spin_ns;
        k = ring_spin(r, op, buf, n, seq, would_block, start, start + (uint64_t)budget, jobs, &job);
        if (held) atomic_store_explicit(&long_spinner, 0, memory_order_relaxed);
        if (k != would_block) {
            if (since && k > 0) record_wait(since);
            return k;
        }
        if (job) continue;
        uint32_t key = flow_parker_prepare(jobs->parker);
        serve_node node = {.w = {.fn = serve_fired}, .wake = jobs->parker};
        node.w.ctx = &node;
        atomic_init(&node.fired, 0);
        if (ring_await(r, on, ready, &node.w) != FLOW_OK) { /* the ring is ready already */
            flow_parker_cancel(jobs->parker);
            continue;
        }
        if (jobs->pending(jobs->ctx)) { /* re-check after announcing ([announce before re-checking]) */
            serve_withdraw(on, &node);
            flow_parker_cancel(jobs->parker);
            continue;
        }
        flow_parker_wait(jobs->parker, key, FLOW_FOREVER);
        serve_withdraw(on, &node);
    }
}

int64_t flow_ring_pop_n_serving(flow_ring *r, void *items, int64_t n, uint64_t *first_seq, const flow_jobs *jobs) {
    if (n <= 0) return n == 0 ? 0 : FLOW_EINVAL;
    if (!first_seq || !jobs) return FLOW_EINVAL;
    return ring_serve(r, ring_pop_op, items, n, first_seq, FLOW_EMPTY, &r->not_empty, r->ops->ready_to_pop, jobs,
                      NULL);
}

/* flow_ring_push_all_serving's one blocking push: up to n items, serving the jobs while the ring is full. */
static int64_t push_serving(flow_ring *r, const void *items, int64_t n, const void *ctx) {
    serving_push *push = (serving_push *)ctx;
    int64_t k = ring_serve(r, ring_push_op, (void *)items, n, NULL, FLOW_FULL, &r->not_full, r->ops->ready_to_push,
                           push->jobs, push);
    if (k > 0 && push->waited) push->mine += (uint64_t)k; /* counted in the ring's pushes since it first waited */
    return k;
}

int64_t flow_ring_push_all_serving(flow_ring *r, const void *items, int64_t n, const flow_jobs *jobs,
                                   int64_t *pushed) {
    if (!jobs) return FLOW_EINVAL;
    serving_push push = {.jobs = jobs, .waited = 0, .pushed_at = 0, .mine = 0, .reserved = 0};
    int64_t k = ring_push_all(r, items, n, pushed, push_serving, &push);
    /* [an overtaken pusher reserves the room]: the whole push is in (or the ring closed): let the others on */
    if (push.reserved == 1 && r->ops->unreserve(r->q)) flow_parker_notify(&r->not_full, INT32_MAX);
    return k;
}
