/*
 * parker.c — eventcount (prepare-wait / re-check / wait-or-cancel) on Linux futexes.
 *
 * State: one 64-bit word, epoch in the high half, announced waiters in the low half.
 * Invariants:
 *  [announce before re-checking] A waiter announces itself (prepare: seq_cst RMW adding 1 waiter, which also
 *    reads the epoch = its key) BEFORE re-checking the condition; the re-check reads the condition after a
 *    seq_cst fence or seq_cst operation.
 *  [notify after the condition] A notifier makes the condition true BEFORE `atomic_thread_fence(seq_cst)` and
 *    then loads the state. By the seq_cst fence rules, either the waiter's re-check sees the condition, or
 *    the notifier sees waiters > 0, bumps the epoch and wakes: no wake-up is lost.
 *  [sleep only on the key] A thread sleeps only while epoch == key (futex compares the epoch word atomically
 *    with the sleep), so a notify between prepare and futex_wait makes the wait return at once.
 *  [callbacks refused or fired] Callback waiters: register increments `callbacks` (seq_cst) and checks the
 *    epoch under `lock`; notify bumps the epoch (seq_cst) and then loads `callbacks`. One of the two sees the
 *    other, so a callback is either refused (FLOW_READY) or fired by that notify. Fired callbacks are
 *    detached under the lock and called outside it, each exactly once; unregister removes only an attached
 *    node.
 *  [announcements withdrawn once] Each waiter's announcement is withdrawn exactly once: by cancel, by the end
 *    of wait, by a refused register, by unregister, or by the notify that detaches its callback.
 *  [a node's owner read atomically] A node's `owner` is written only under its owner's lock, but read by
 *    unregister under the lock of whichever parker it is asked to leave (flow_ring_unawait tries both of a
 *    ring's), so it is accessed atomically (relaxed: only the owner's own lock orders what matters, and a
 *    parker that does not own the node never sees itself there).
 * Fast path: notify with no waiter is a fence, a relaxed load and a branch.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parker_internal.h"

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define WAITER_ONE ((uint64_t)1)
#define EPOCH_ONE ((uint64_t)1 << 32)
#define WAITERS(s) ((uint32_t)((s) & 0xffffffffu))
#define EPOCH(s) ((uint32_t)((s) >> 32))

static inline uint32_t *epoch_word(struct flow_parker *p) {
    /* the epoch is the high 32-bit half of `state` */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (uint32_t *)&p->state + 1;
#else
    return (uint32_t *)&p->state;
#endif
}

int flow_parker_init(struct flow_parker *p) {
    atomic_init(&p->state, 0);
    atomic_init(&p->callbacks, 0);
    p->head = NULL;
    pthread_mutex_t *m = malloc(sizeof *m);
    if (!m) return FLOW_ENOMEM;
    pthread_mutex_init(m, NULL);
    p->lock = m;
#ifndef __linux__
    pthread_cond_t *c = malloc(sizeof *c);
    if (!c) { pthread_mutex_destroy(m); free(m); return FLOW_ENOMEM; }
    pthread_cond_init(c, NULL);
    p->cond = c;
#endif
    return FLOW_OK;
}

void flow_parker_fini(struct flow_parker *p) {
    if (p->lock) {
        pthread_mutex_destroy(p->lock);
        free(p->lock);
        p->lock = NULL;
    }
#ifndef __linux__
    if (p->cond) {
        pthread_cond_destroy(p->cond);
        free(p->cond);
        p->cond = NULL;
    }
#endif
}

flow_parker *flow_parker_create(void) {
    flow_parker *p = aligned_alloc(FLOW_CACHELINE, sizeof(struct flow_parker));
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    if (flow_parker_init(p) != FLOW_OK) {
        free(p);
        return NULL;
    }
    return p;
}

void flow_parker_destroy(flow_parker *p) {
    if (!p) return;
    flow_parker_fini(p);
    free(p);
}

uint32_t flow_parker_prepare(flow_parker *p) {
    /* seq_cst: [announce before re-checking], the announcement precedes the caller's re-check */
    return EPOCH(atomic_fetch_add_explicit(&p->state, WAITER_ONE, memory_order_seq_cst));
}

void flow_parker_cancel(flow_parker *p) {
    /* [announcements withdrawn once] */
    atomic_fetch_sub_explicit(&p->state, WAITER_ONE, memory_order_relaxed);
}

uint32_t flow_parker_waiters(const flow_parker *p) {
    return WAITERS(atomic_load_explicit(&((struct flow_parker *)p)->state, memory_order_relaxed));
}

#ifdef __linux__
static int futex_wait(uint32_t *addr, uint32_t expected, const struct timespec *rel) {
    return (int)syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expected, rel, NULL, 0);
}
static void futex_wake(uint32_t *addr, int32_t n) {
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}
#endif

int flow_parker_wait(flow_parker *p, uint32_t key, int64_t timeout_ns) {
    int rc = FLOW_OK;
    uint64_t deadline = timeout_ns < 0 ? 0 : flow_now_ns() + (uint64_t)timeout_ns;
    if (flow_tls_parked) atomic_fetch_add_explicit(flow_tls_parked, 1, memory_order_relaxed);
#ifdef __linux__
    /* acquire: what the notifier wrote before bumping the epoch is visible after we return */
    while (EPOCH(atomic_load_explicit(&p->state, memory_order_acquire)) == key) {
        struct timespec rel, *relp = NULL;
        if (timeout_ns >= 0) {
            uint64_t now = flow_now_ns();
            if (now >= deadline) {
                rc = FLOW_TIMEDOUT;
                break;
            }
            uint64_t left = deadline - now;
            rel.tv_sec = (time_t)(left / 1000000000u);
            rel.tv_nsec = (long)(left % 1000000000u);
            relp = &rel;
        }
        /* [sleep only on the key]: sleeps only while the epoch is still `key` */
        futex_wait(epoch_word(p), key, relp);
    }
#else
    pthread_mutex_lock(p->lock);
    while (EPOCH(atomic_load_explicit(&p->state, memory_order_acquire)) == key) {
        if (timeout_ns < 0) {
            pthread_cond_wait(p->cond, p->lock);
        } else {
            uint64_t now = flow_now_ns();
            if (now >= deadline) { rc = FLOW_TIMEDOUT; break; }
            struct timespec abs;
            clock_gettime(CLOCK_REALTIME, &abs);
            uint64_t t = (uint64_t)abs.tv_nsec + (deadline - now);
            abs.tv_sec += (time_t)(t / 1000000000u);
            abs.tv_nsec = (long)(t % 1000000000u);
            pthread_cond_timedwait(p->cond, p->lock, &abs);
        }
    }
    pthread_mutex_unlock(p->lock);
#endif
    /* [announcements withdrawn once] */
    atomic_fetch_sub_explicit(&p->state, WAITER_ONE, memory_order_relaxed);
    return rc;
}

int flow_parker_register(flow_parker *p, uint32_t key, flow_waiter *w) {
    pthread_mutex_lock(p->lock);
    atomic_fetch_add_explicit(&p->callbacks, 1, memory_order_seq_cst); /* [callbacks refused or fired] */
    if (EPOCH(atomic_load_explicit(&p->state, memory_order_seq_cst)) != key) {
        atomic_fetch_sub_explicit(&p->callbacks, 1, memory_order_relaxed);
        pthread_mutex_unlock(p->lock);
        flow_parker_cancel(p); /* [announcements withdrawn once]: refused */
        return FLOW_READY;
    }
    __atomic_store_n(&w->owner, (void *)p, __ATOMIC_RELAXED); /* [a node's owner read atomically] */
    w->prev = NULL;
    w->next = p->head;
    if (p->head) p->head->prev = w;
    p->head = w;
    pthread_mutex_unlock(p->lock);
    return FLOW_OK;
}

int flow_parker_unregister(flow_parker *p, flow_waiter *w) {
    int removed = 0;
    pthread_mutex_lock(p->lock);
    if (__atomic_load_n(&w->owner, __ATOMIC_RELAXED) == p) { /* [a node's owner read atomically] */
        if (w->prev) w->prev->next = w->next; else p->head = w->next;
        if (w->next) w->next->prev = w->prev;
        __atomic_store_n(&w->owner, NULL, __ATOMIC_RELAXED);
        w->next = w->prev = NULL;
        atomic_fetch_sub_explicit(&p->callbacks, 1, memory_order_relaxed);
        removed = 1;
    }
    pthread_mutex_unlock(p->lock);
    if (removed) flow_parker_cancel(p); /* [announcements withdrawn once] */
    return removed;
}

static void fire_callbacks(struct flow_parker *p) {
    pthread_mutex_lock(p->lock);
    flow_waiter *list = p->head;
    uint32_t n = 0;
    p->head = NULL;
    for (flow_waiter *w = list; w; w = w->next) {
        /* detached: unregister now returns 0 ([a node's owner read atomically]) */
        __atomic_store_n(&w->owner, NULL, __ATOMIC_RELAXED);
        n++;
    }
    atomic_fetch_sub_explicit(&p->callbacks, n, memory_order_relaxed);
    pthread_mutex_unlock(p->lock);
    /* [announcements withdrawn once] */
    if (n) atomic_fetch_sub_explicit(&p->state, (uint64_t)n * WAITER_ONE, memory_order_relaxed);
    while (list) {
        flow_waiter *next = list->next; /* fn may free the node */
        list->next = list->prev = NULL;
        list->fn(list->ctx);
        list = next;
    }
}

void flow_parker_notify(flow_parker *p, int32_t n) {
    /* [notify after the condition]: the caller's change precedes the waiter check */
    atomic_thread_fence(memory_order_seq_cst);
    if (WAITERS(atomic_load_explicit(&p->state, memory_order_relaxed)) == 0) return;
    /* release: a woken waiter that sees the new epoch also sees the caller's change */
    atomic_fetch_add_explicit(&p->state, EPOCH_ONE, memory_order_seq_cst);
#ifdef __linux__
    futex_wake(epoch_word(p), n <= 0 ? INT_MAX : n);
#else
    (void)n;
    pthread_mutex_lock(p->lock);
    pthread_cond_broadcast(p->cond);
    pthread_mutex_unlock(p->lock);
#endif
    /* [callbacks refused or fired] */
    if (atomic_load_explicit(&p->callbacks, memory_order_seq_cst) != 0) fire_callbacks(p);
}
