/*
 * pool.c — a pool of pthreads, optionally pinned, each running a caller-supplied loop.
 *
 * Invariants:
 *  [every thread joined once] Every thread that pthread_create started is joined exactly once
 *    (flow_pool_join; destroy joins if the caller did not). `started` counts them; join walks exactly that
 *    many.
 *  [settings before the first instruction] A pinned thread is created with its affinity already set
 *    (pthread_attr_setaffinity_np), so it never runs a single instruction of the loop elsewhere. A thread of
 *    another scheduling class (FLOW_SCHED; glibc's attributes take only SCHED_OTHER/FIFO/RR) waits at `go`
 *    until its creator has set its class (pthread_setschedparam), so it runs no instruction of the loop in
 *    another class; if that fails, `go` says so, the thread leaves without running the loop, and start()
 *    fails. Likewise a thread with a nice increment (FLOW_NICE; on Linux each thread has its own nice value)
 *    or a time slice (FLOW_SLICE_NS) first sets them on itself, reports the outcome in `niced`, and waits at
 *    `go` until its creator has read it.
 *  [stop is polled] `stop` is a flag the loops poll (relaxed store/load + release/acquire on the transition):
 *    it never interrupts a blocked call; whoever stops a pool also closes the rings its loops block on.
 *  [worker counters on their own lines] Each worker's counters sit on their own 128-byte lines; only the
 *    worker writes items/busy_ns (relaxed), `parked` is incremented by its own thread inside blocking ring
 *    calls (flow_tls_parked).
 *  [live workers counted exactly] `live_workers` counts, process-wide, the workers between the first and the
 *    last statement of worker_main (release decrement), so after flow_pool_join it no longer counts that
 *    pool's threads.
 *  [workers take a longer slice] A worker's slice (FLOW_SLICE_NS, sched_setattr's sched_runtime: Linux 6.12+
 *    keeps it as the thread's EEVDF slice and keeps it across pthread_setschedparam, older kernels ignore it)
 *    is set on itself before its loop, as its nice value is ([settings before the first instruction]), in the
 *    class the thread inherited (a real-time one has no slice: only the nice value is set there); by default
 *    it is longer than the kernel's slice for every other thread. A waking thread whose slice is shorter than
 *    the running one's may preempt it at once (PREEMPT_SHORT); with equal slices a thread that wakes beside a
 *    busy worker can wait for the scheduler tick (up to 4 ms). The slice sets no share: shares follow the
 *    nice values alone.
 *  [a worker knows it is in its loop] flow_current_worker() is the calling thread's worker while that thread
 *    runs its loop (set just before the loop is called, cleared just after it returns), else NULL: what lets
 *    code that must run only on a pool's threads check where it is.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "flow_pool.h"
#include "internal.h"
#include "pool_internal.h"

static _Atomic uint32_t live_workers = 0; /* [live workers counted exactly] */

uint32_t flow_pool_live_workers(void) { return atomic_load_explicit(&live_workers, memory_order_acquire); }

struct flow_worker {
    _Alignas(FLOW_CACHELINE) _Atomic uint64_t items;
    _Atomic uint64_t busy_ns;
    _Atomic uint64_t parked;
    struct flow_pool *pool;
    uint32_t index;
    int cpu;
    pthread_t thread;
    /* [settings before the first instruction]: 0 wait, 1 run the loop, -1 leave (the class could not be
     * set) */
    _Atomic int go;
    /* [settings before the first instruction]: -1 not yet, else 0 or the errno of setting the thread's
     * nice value and slice */
    _Atomic int niced;
};

struct flow_pool {
    _Alignas(FLOW_CACHELINE) _Atomic int stop;
    flow_config cfg;
    flow_worker_fn fn;
    void *ctx;
    uint32_t size;
    uint32_t started;
    uint32_t fail_after; /* fault injection: start fails after this many threads (0: off) */
    int joined;
    struct flow_worker *workers;
};

int flow_pool_create(const flow_config *cfg, flow_worker_fn fn, void *ctx, flow_pool **out, flow_error *err) {
    if (!out) return flow_fail(err, FLOW_EINVAL, "pool: NULL output pointer");
    *out = NULL;
    if (!fn) return flow_fail(err, FLOW_EINVAL, "pool: NULL worker function");
    int rc = flow_config_validate(cfg, err);
    if (rc != FLOW_OK) return rc;
    flow_pool *p = aligned_alloc(FLOW_CACHELINE, sizeof(struct flow_pool));
    if (!p) return flow_fail(err, FLOW_ENOMEM, "pool: out of memory");
    memset(p, 0, sizeof *p);
    size_t wbytes = sizeof(struct flow_worker) * cfg->workers;
    p->workers = aligned_alloc(FLOW_CACHELINE, (wbytes + FLOW_CACHELINE - 1) / FLOW_CACHELINE * FLOW_CACHELINE);
    if (!p->workers) {
        free(p);
        return flow_fail(err, FLOW_ENOMEM, "pool: out of memory for %u workers", cfg->workers);
    }
    memset(p->workers, 0, wbytes);
    p->cfg = *cfg;
    p->fn = fn;
    p->ctx = ctx;
    p->size = cfg->workers;
    atomic_init(&p->stop, 0);
    uint32_t order[FLOW_CPU_SETSIZE];
    uint32_t ncpu = cfg->pin == FLOW_PIN_NONE ? 0 : flow_pin_order(cfg, order);
    if (cfg->pin != FLOW_PIN_NONE && ncpu == 0) {
        free(p->workers);
        free(p);
        return flow_fail(err, FLOW_ENOMEM, "pool: out of memory ordering CPUs");
    }
    for (uint32_t i = 0; i < p->size; i++) {
        struct flow_worker *w = &p->workers[i];
        atomic_init(&w->items, 0);
        atomic_init(&w->busy_ns, 0);
        atomic_init(&w->parked, 0);
        atomic_init(&w->go, 0);
        atomic_init(&w->niced, -1);
        w->pool = p;
        w->index = i;
        w->cpu = ncpu ? (int)order[i % ncpu] : -1;
    }
    *out = p;
    return FLOW_OK;
}

/* Put a started thread in FLOW_SCHED's class (priority 0: the only one these classes have). */
static int set_sched(pthread_t thread, flow_sched_mode mode) {
#if defined(__linux__) && defined(SCHED_IDLE) && defined(SCHED_BATCH)
    struct sched_param param = {.sched_priority = 0};
    return pthread_setschedparam(thread, mode == FLOW_SCHED_IDLE ? SCHED_IDLE : SCHED_BATCH, &param);
#else
    (void)thread;
    (void)mode;
    return ENOTSUP;
#endif
}

/* sched_setattr's argument (SCHED_ATTR_SIZE_VER0; glibc before 2.41 has neither the call nor the struct, and
 * <linux/sched/types.h> clashes with <sched.h> over struct sched_param). */
struct flow_sched_attr {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
};

/* On the calling thread: a nice value `increment` above the process's (its main thread's), at most
 * FLOW_MAX_NICE, and, when slice_ns > 0, that time slice ([workers take a longer slice]). 0 or an errno. */
static int set_own_share(int increment, int64_t slice_ns) {
#ifdef __linux__
    errno = 0;
    int base = getpriority(PRIO_PROCESS, (id_t)getpid());
    if (base == -1 && errno != 0) return errno;
    int target = base + increment > FLOW_MAX_NICE ? FLOW_MAX_NICE : base + increment;
    pid_t self = (pid_t)syscall(SYS_gettid);
    /* the class the thread inherited (a process started under `chrt --batch` or `--idle` keeps it) */
    int inherited = sched_getscheduler(0);
    int policy = inherited & ~SCHED_RESET_ON_FORK;
    if (slice_ns == 0 || (policy != SCHED_OTHER && policy != SCHED_BATCH && policy != SCHED_IDLE))
        return setpriority(PRIO_PROCESS, (id_t)self, target) == 0 ? 0 : errno;
    struct flow_sched_attr attr = {.size = sizeof attr,
                                   .policy = (uint32_t)policy,
                                   /* SCHED_FLAG_RESET_ON_FORK */
                                   .flags = inherited & SCHED_RESET_ON_FORK ? 1u : 0u,
                                   .nice = target,
                                   .runtime = (uint64_t)slice_ns};
    return syscall(SYS_sched_setattr, self, &attr, 0u) == 0 ? 0 : errno;
#else
    (void)increment; /* elsewhere a nice value is the whole process's: left alone */
    (void)slice_ns;
    return 0;
#endif
}

static const char *sched_name(flow_sched_mode mode) {
    return mode == FLOW_SCHED_IDLE ? "idle" : mode == FLOW_SCHED_BATCH ? "batch" : "normal";
}

/* Whether a worker sets its own nice value and slice before its loop
 * ([settings before the first instruction], [workers take a longer slice]); its creator then waits for the
 * outcome. */
static int sets_own_share(const flow_config *cfg) { return cfg->nice > 0 || cfg->slice_ns > 0; }

static _Thread_local flow_worker *current_worker = NULL; /* [a worker knows it is in its loop] */

static void *worker_main(void *arg) {
    struct flow_worker *w = arg;
    atomic_fetch_add_explicit(&live_workers, 1, memory_order_relaxed); /* [live workers counted exactly] */
#ifdef __linux__
    char name[16]; /* "flow-worker-N": what top -H, gdb and /proc/self/task/N/comm show */
    snprintf(name, sizeof name, "flow-worker-%u", w->index);
    pthread_setname_np(pthread_self(), name);
#endif
    const flow_config *cfg = &w->pool->cfg;
    if (sets_own_share(cfg)) /* [settings before the first instruction] */
        atomic_store_explicit(&w->niced, set_own_share(cfg->nice, cfg->slice_ns), memory_order_release);
    int go;
    /* [settings before the first instruction] */
    while ((go = atomic_load_explicit(&w->go, memory_order_acquire)) == 0) sched_yield();
    flow_tls_parked = &w->parked; /* [worker counters on their own lines] */
    current_worker = w;           /* [a worker knows it is in its loop] */
    if (go > 0) w->pool->fn(w, w->pool->ctx);
    current_worker = NULL;
    flow_tls_parked = NULL;
    atomic_fetch_sub_explicit(&live_workers, 1, memory_order_release); /* [live workers counted exactly] */
    return NULL;
}

int flow_pool_start(flow_pool *p, flow_error *err) {
    if (p->started || p->joined) return flow_fail(err, FLOW_ESTATE, "pool: already started");
    for (uint32_t i = 0; i < p->size; i++) {
        struct flow_worker *w = &p->workers[i];
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        int rc = 0;
        if (w->cpu >= 0) { /* [settings before the first instruction] */
            cpu_set_t cs;
            CPU_ZERO(&cs);
            CPU_SET((unsigned)w->cpu, &cs);
            rc = pthread_attr_setaffinity_np(&attr, sizeof cs, &cs);
        }
        if (rc == 0 && p->fail_after && i == p->fail_after) rc = EAGAIN; /* injected (tests) */
        int shared = sets_own_share(&p->cfg);
        int handshake = p->cfg.sched != FLOW_SCHED_NORMAL || shared;
        atomic_store_explicit(&w->go, handshake ? 0 : 1, memory_order_relaxed);
        if (rc == 0) rc = pthread_create(&w->thread, &attr, worker_main, w);
        pthread_attr_destroy(&attr);
        if (rc == 0 && handshake) { /* [settings before the first instruction] */
            int nice_rc = 0;
            if (shared)
                while ((nice_rc = atomic_load_explicit(&w->niced, memory_order_acquire)) == -1) sched_yield();
            int sched_rc = nice_rc == 0 && p->cfg.sched != FLOW_SCHED_NORMAL ? set_sched(w->thread, p->cfg.sched) : 0;
            atomic_store_explicit(&w->go, nice_rc == 0 && sched_rc == 0 ? 1 : -1, memory_order_release);
            if (nice_rc != 0 || sched_rc != 0) {
                /* it runs (to leave at once): joined as every started thread is
                 * ([every thread joined once]) */
                p->started++;
                flow_pool_request_stop(p);
                if (nice_rc != 0 && p->cfg.slice_ns > 0)
                    return flow_fail(err, FLOW_ESYS,
                                     "pool: starting worker %u with FLOW_NICE=%d and FLOW_SLICE_NS=%lld: %s "
                                     "(FLOW_SLICE_NS=0 leaves the slice to the kernel)",
                                     i, p->cfg.nice, (long long)p->cfg.slice_ns, strerror(nice_rc));
                if (nice_rc != 0)
                    return flow_fail(err, FLOW_ESYS, "pool: starting worker %u with FLOW_NICE=%d: %s", i,
                                     p->cfg.nice, strerror(nice_rc));
                return flow_fail(err, FLOW_ESYS, "pool: starting worker %u with FLOW_SCHED=%s: %s", i,
                                 sched_name(p->cfg.sched), strerror(sched_rc));
            }
        }
        if (rc != 0) {
            /* The threads already started keep running: their loops may be blocked in ring calls that only
             * closing the rings ends, which is the caller's to do before flow_pool_join ([stop is polled]). */
            flow_pool_request_stop(p);
            if (w->cpu >= 0)
                return flow_fail(err, FLOW_ESYS, "pool: starting worker %u pinned to CPU %d (FLOW_CPUS/FLOW_PIN): %s",
                                 i, w->cpu, strerror(rc));
            return flow_fail(err, FLOW_ESYS, "pool: starting worker %u: %s", i, strerror(rc));
        }
        p->started++;
    }
    return FLOW_OK;
}

void flow_pool_inject_start_failure(flow_pool *p, uint32_t started) { p->fail_after = started; }

void flow_pool_request_stop(flow_pool *p) { atomic_store_explicit(&p->stop, 1, memory_order_release); }

int flow_pool_join(flow_pool *p) {
    if (p->joined) return FLOW_OK;
    /* [every thread joined once] */
    for (uint32_t i = 0; i < p->started; i++) pthread_join(p->workers[i].thread, NULL);
    p->joined = 1;
    return FLOW_OK;
}

void flow_pool_destroy(flow_pool *p) {
    if (!p) return;
    flow_pool_join(p);
    free(p->workers);
    free(p);
}

uint32_t flow_pool_size(const flow_pool *p) { return p->size; }
int flow_pool_worker_cpu(const flow_pool *p, uint32_t i) { return i < p->size ? p->workers[i].cpu : -1; }

flow_worker_stats flow_pool_worker_stats(const flow_pool *p, uint32_t i) {
    flow_worker_stats s = {0, 0, 0};
    if (i >= p->size) return s;
    struct flow_worker *w = &p->workers[i];
    s.items = atomic_load_explicit(&w->items, memory_order_relaxed);
    s.busy_ns = atomic_load_explicit(&w->busy_ns, memory_order_relaxed);
    s.parked = atomic_load_explicit(&w->parked, memory_order_relaxed);
    return s;
}

uint32_t flow_worker_index(const flow_worker *w) { return w->index; }
flow_worker *flow_current_worker(void) { return current_worker; } /* [a worker knows it is in its loop] */
int flow_worker_cpu(const flow_worker *w) { return w->cpu; }
int flow_worker_should_stop(const flow_worker *w) {
    return atomic_load_explicit(&w->pool->stop, memory_order_acquire); /* [stop is polled] */
}

void flow_worker_record(flow_worker *w, uint64_t items, uint64_t busy_ns) {
    /* single writer: plain add via relaxed load/store keeps it one instruction each */
    atomic_store_explicit(&w->items, atomic_load_explicit(&w->items, memory_order_relaxed) + items,
                          memory_order_relaxed);
    atomic_store_explicit(&w->busy_ns, atomic_load_explicit(&w->busy_ns, memory_order_relaxed) + busy_ns,
                          memory_order_relaxed);
}
