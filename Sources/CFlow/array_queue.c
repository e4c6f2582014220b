/*
 * array_queue.c — the storage behind a FLOW_QUEUE_RING flow_ring (ring.c, through queue_ops.h): a bounded
 * MPMC array queue whose producers and consumers claim whole ranges and commit them in order, so a batch
 * costs two atomic read-modify-writes and one store on each side, whatever its length, and its items
 * move with one memcpy (two where the range wraps).
 *
 * Positions are 64-bit counters that only grow (2^63 items do not happen); position p lives in slot
 * p % cap, any capacity. Four counters, each on its own cache line:
 *   tail       producers' claims: [tail_done, tail) are being written. Bit 63 (MARK) is set by close().
 *   tail_done  producers' commits: [head, tail_done) are written and may be claimed by consumers.
 *   head       consumers' claims: [head_done, head) are being read.
 *   head_done  consumers' commits: slots of positions below head_done + cap are free to write.
 * So head_done <= head <= tail_done <= tail <= head_done + cap at every moment (the order of the
 * counters' loads below keeps each decision on the safe side of it).
 * Invariants:
 *  [each position claimed once] A position is claimed by exactly one producer (CAS on tail) and one consumer
 *    (CAS on head).
 *  [commits in claim order] A producer claims k <= cap - (tail - head_done) positions (their slots' previous
 *    items were read, head_done being released after the reads), writes the items, waits until tail_done
 *    reaches its first position, then release-stores tail_done = its end. A consumer claims k <= tail_done -
 *    head positions (acquire: it sees the bytes), reads them, waits until head_done reaches its first
 *    position, then release-stores head_done = its end. Commits are therefore in claim order; a claimer waits
 *    (backoff) only for claimers before it that are mid-copy.
 *  [a claim takes a batch in one step] Batches: a claim takes as many positions as are free (ready) up to n,
 *    in one CAS.
 *  [full and empty decided after a fence] "Full" / "empty" are decided only after a seq_cst fence followed by
 *    a load of the opposite done counter, and only when no claimer of the opposite side is mid-copy (else it
 *    backs off and retries: the decision would be stale in a moment); with the fence in flow_parker_notify
 *    this makes the parking protocol lossless (parker.c).
 *  [close drains what was claimed] close() sets MARK in tail (seq_cst RMW) and ring.c notifies both parkers:
 *    later claims see the mark; pops drain every committed item, then see tail == head with the mark set, so
 *    an item whose producer claimed before the close is still delivered.
 *  [positions are the queue's order] Positions are the queue's total order: pop_n_seq reports a batch's first
 *    position, so parallel consumers can restore queue order downstream.
 *  [producers resume at a size] With resume_at set, waiting producers wait for "size <= resume_at" (not just
 *    "a free slot"): a pop notifies them only when the size it computes after its own commit is <= resume_at.
 *    It reads tail before head_done, so it never overestimates the size at the moment head_done is read, and
 *    the pop that brings the ring down to resume_at always notifies; close() notifies regardless.
 *  [a starving pusher gets the room] A thread may reserve the pushes (reserve: a CAS of `reserved` from NULL to
 *    its thread's id; ring_serving.c's [an overtaken pusher reserves the room] says when): while it holds them,
 *    another thread's claim answers FLOW_FULL and its ready_to_push says no, both read after the seq_cst fence,
 *    so the room consumers make goes to the reserving thread (and to the jobs it runs on its own thread). It
 *    drops them with a seq_cst store, after which ring.c notifies the waiting producers: a producer refused
 *    meanwhile either re-checks after the drop or is announced before it and woken ([announce before re-checking]).
 *    Model-checked with a holder, another producer and a consumer: spin-models/reserve.pml.
 * Memory orderings: tail_done / head_done release (commit) and acquire (claim); tail / head CAS seq_cst
 * on success, relaxed loads elsewhere; the seq_cst fence guards the full/empty decision.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "queue_ops.h"

#define MARK ((uint64_t)1 << 63)

typedef struct array_queue {
    _Alignas(FLOW_CACHELINE) _Atomic uint64_t tail;
    _Alignas(FLOW_CACHELINE) _Atomic uint64_t tail_done;
    _Alignas(FLOW_CACHELINE) _Atomic uint64_t head;
    _Alignas(FLOW_CACHELINE) _Atomic uint64_t head_done;
    /* read-mostly after creation */
    _Alignas(FLOW_CACHELINE) uint64_t cap;
    size_t elem_size;
    /* [producers resume at a size]: wake waiting producers at this size or below (0: on any free slot) */
    uint64_t resume_at;
    /* [a starving pusher gets the room]: the id of the thread the pushes are reserved for, or NULL. Written
     * only while a pusher starves: it shares the read-mostly line. */
    _Atomic(const void *) reserved;
    /* per slot: the end of the written range that starts there ([commits in claim order]) */
    _Atomic uint64_t *written;
    _Atomic uint64_t *read;    /* per slot: the end of the read range that starts there */
    unsigned char *data;
} array_queue;

/* The layout [each position claimed once], [commits in claim order], [a claim takes a batch in one step],
 * [full and empty decided after a fence] rely on: each counter, and the read-mostly fields, on cache lines
 * of their own. */
_Static_assert(offsetof(array_queue, tail) % FLOW_CACHELINE == 0, "tail starts a cache line");
_Static_assert(offsetof(array_queue, tail_done) - offsetof(array_queue, tail) >= FLOW_CACHELINE,
               "tail and tail_done on separate cache lines");
_Static_assert(offsetof(array_queue, head) - offsetof(array_queue, tail_done) >= FLOW_CACHELINE,
               "tail_done and head on separate cache lines");
_Static_assert(offsetof(array_queue, head_done) - offsetof(array_queue, head) >= FLOW_CACHELINE,
               "head and head_done on separate cache lines");
_Static_assert(offsetof(array_queue, cap) - offsetof(array_queue, head_done) >= FLOW_CACHELINE,
               "head_done apart from the read-mostly fields");

void *flow_array_create(uint64_t cap, size_t elem_size, uint64_t resume_at) {
    array_queue *r = aligned_alloc(FLOW_CACHELINE, sizeof(array_queue));
    if (!r) return NULL;
    memset(r, 0, sizeof *r);
    r->cap = cap;
    r->elem_size = elem_size;
    r->resume_at = resume_at < cap ? resume_at : 0;
    atomic_init(&r->reserved, NULL);
    atomic_init(&r->tail, 0);
    atomic_init(&r->tail_done, 0);
    atomic_init(&r->head, 0);
    atomic_init(&r->head_done, 0);
    r->data = malloc(cap * elem_size);
    r->written = malloc(sizeof(_Atomic uint64_t) * cap);
    r->read = malloc(sizeof(_Atomic uint64_t) * cap);
    if (!r->data || !r->written || !r->read) {
        free(r->data);
        free(r->written);
        free(r->read);
        free(r);
        return NULL;
    }
    for (uint64_t i = 0; i < cap; i++) {
        atomic_init(&r->written[i], 0);
        atomic_init(&r->read[i], 0);
    }
    return r;
}

static void array_destroy(void *q) {
    array_queue *r = q;
    free(r->data);
    free(r->written);
    free(r->read);
    free(r);
}

static int array_is_closed(const void *q) {
    array_queue *r = (array_queue *)q;
    return (atomic_load_explicit(&r->tail, memory_order_acquire) & MARK) != 0;
}

/* Items in the ring, counting those being written or read, from one read of tail then head_done: may
 * underestimate, never overestimates the size at the moment head_done is read
 * ([producers resume at a size]). */
static inline uint64_t size_now(array_queue *r) {
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed) & ~MARK;
    uint64_t head = atomic_load_explicit(&r->head_done, memory_order_relaxed);
    return tail > head ? tail - head : 0;
}

static uint64_t array_size(const void *q) { return size_now((array_queue *)q); }

/* [a starving pusher gets the room]: each thread's id is the address of its own copy of this byte. */
static _Thread_local char thread_id;

/* [a starving pusher gets the room]: whether another thread holds the reservation (read after a seq_cst fence
 * where a decision to wait rests on it). */
static inline int reserved_for_another(array_queue *r) {
    const void *holder = atomic_load_explicit(&r->reserved, memory_order_relaxed);
    return holder != NULL && holder != &thread_id;
}

static int array_reserve(void *q) {
    array_queue *r = q;
    const void *none = NULL;
    if (atomic_compare_exchange_strong_explicit(&r->reserved, &none, &thread_id, memory_order_seq_cst,
                                                memory_order_relaxed))
        return 1;
    return none == &thread_id ? 2 : 0;
}

static int array_unreserve(void *q) {
    array_queue *r = q;
    if (atomic_load_explicit(&r->reserved, memory_order_relaxed) != &thread_id) return 0;
    atomic_store_explicit(&r->reserved, NULL, memory_order_seq_cst);
    return 1;
}

/* Positions claimed by producers so far: every claim is pushed (a claimer always commits). */
static uint64_t array_pushed(const void *q) {
    return atomic_load_explicit(&((array_queue *)q)->tail, memory_order_relaxed) & ~MARK;
}

/* Spin-wait helper for contended CAS / claimers mid-copy: exponential pause, then yield. */
typedef struct { unsigned step; } backoff;
static inline void backoff_snooze(backoff *b) {
    if (b->step <= 6) {
        for (unsigned i = 0; i < (1u << b->step); i++) flow_cpu_relax();
    } else {
        sched_yield();
    }
    if (b->step <= 10) b->step++;
}

/* Claim up to n positions for pushing ([each position claimed once], [commits in claim order],
 * [a claim takes a batch in one step], [full and empty decided after a fence]): the count (first position
 * in *pos) or a status. */
static int64_t claim_push(array_queue *r, int64_t n, uint64_t *pos) {
    backoff b = {0};
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (;;) {
        if (tail & MARK) return FLOW_CLOSED;
        if (reserved_for_another(r)) { /* [a starving pusher gets the room] */
            atomic_thread_fence(memory_order_seq_cst);
            if (reserved_for_another(r)) return FLOW_FULL;
        }
        uint64_t done = atomic_load_explicit(&r->head_done, memory_order_acquire);
        if (tail - done > r->cap) { /* tail is stale: a lap of pushes and pops went by since we read it */
            tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
            continue;
        }
        uint64_t free_slots = r->cap - (tail - done);
        if (free_slots == 0) {
            atomic_thread_fence(memory_order_seq_cst); /* [full and empty decided after a fence] */
            uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
            done = atomic_load_explicit(&r->head_done, memory_order_relaxed);
            uint64_t now = atomic_load_explicit(&r->tail, memory_order_relaxed);
            if (now == tail && head == done && tail - done == r->cap) return FLOW_FULL;
            backoff_snooze(&b); /* a consumer is mid-read, or our tail was stale */
            tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
            continue;
        }
        uint64_t k = (uint64_t)n < free_slots ? (uint64_t)n : free_slots;
        if (atomic_compare_exchange_weak_explicit(&r->tail, &tail, tail + k, memory_order_seq_cst,
                                                  memory_order_relaxed)) {
            *pos = tail;
            return (int64_t)k;
        }
        backoff_snooze(&b); /* lost the race: `tail` now holds the fresh value */
    }
}

static int64_t claim_pop(array_queue *r, int64_t n, uint64_t *pos) {
    backoff b = {0};
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (;;) {
        uint64_t done = atomic_load_explicit(&r->tail_done, memory_order_acquire);
        if (head > done) { /* head is stale */
            head = atomic_load_explicit(&r->head, memory_order_relaxed);
            continue;
        }
        if (head == done) {
            atomic_thread_fence(memory_order_seq_cst); /* [full and empty decided after a fence] */
            uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
            done = atomic_load_explicit(&r->tail_done, memory_order_relaxed);
            uint64_t now = atomic_load_explicit(&r->head, memory_order_relaxed);
            if (now == head && done == head && (tail & ~MARK) == head)
                return (tail & MARK) ? FLOW_CLOSED : FLOW_EMPTY;
            backoff_snooze(&b); /* a producer is mid-write, or our head was stale */
            head = atomic_load_explicit(&r->head, memory_order_relaxed);
            continue;
        }
        uint64_t avail = done - head;
        uint64_t k = (uint64_t)n < avail ? (uint64_t)n : avail;
        if (atomic_compare_exchange_weak_explicit(&r->head, &head, head + k, memory_order_seq_cst,
                                                  memory_order_relaxed)) {
            *pos = head;
            return (int64_t)k;
        }
        backoff_snooze(&b);
    }
}

/* [commits in claim order]: finish our range [from, to): when every range before it is finished (done ==
 * from), move `done` to its end; otherwise mark it finished, for the claimer that moves `done` to it.
 * Either way, then move `done` over every range after it whose claimer finished first (marked it and
 * left). */
static inline void commit(_Atomic uint64_t *done, _Atomic uint64_t *ends, uint64_t cap, uint64_t from,
                          uint64_t to) {
    uint64_t d = from;
    if (!atomic_compare_exchange_strong_explicit(done, &d, to, memory_order_seq_cst, memory_order_seq_cst)) {
        atomic_store_explicit(&ends[from % cap], to, memory_order_seq_cst);
        d = atomic_load_explicit(done, memory_order_seq_cst);
    } else {
        d = to;
    }
    for (;;) {
        uint64_t end = atomic_load_explicit(&ends[d % cap], memory_order_seq_cst);
        if (end <= d) return; /* the range at d is not finished: its claimer will move done */
        if (atomic_compare_exchange_strong_explicit(done, &d, end, memory_order_seq_cst, memory_order_seq_cst))
            d = end; /* else d holds the fresh value (somebody moved it past this range) */
    }
}

static int64_t array_push_n(void *q, const void *items, int64_t n) {
    array_queue *r = q;
    uint64_t pos;
    int64_t k = claim_push(r, n, &pos);
    if (k <= 0) return k;
    uint64_t idx = pos % r->cap, first = r->cap - idx < (uint64_t)k ? r->cap - idx : (uint64_t)k;
    memcpy(r->data + idx * r->elem_size, items, first * r->elem_size);
    if (first < (uint64_t)k)
        memcpy(r->data, (const unsigned char *)items + first * r->elem_size, ((uint64_t)k - first) * r->elem_size);
    commit(&r->tail_done, r->written, r->cap, pos, pos + (uint64_t)k);
    return k;
}

static int64_t array_pop_n(void *q, void *items, int64_t n, uint64_t *seq, int *resume) {
    array_queue *r = q;
    uint64_t pos;
    int64_t k = claim_pop(r, n, &pos);
    if (k <= 0) return k;
    if (seq) *seq = pos; /* [positions are the queue's order] */
    uint64_t idx = pos % r->cap, first = r->cap - idx < (uint64_t)k ? r->cap - idx : (uint64_t)k;
    memcpy(items, r->data + idx * r->elem_size, first * r->elem_size);
    if (first < (uint64_t)k)
        memcpy((unsigned char *)items + first * r->elem_size, r->data, ((uint64_t)k - first) * r->elem_size);
    commit(&r->head_done, r->read, r->cap, pos, pos + (uint64_t)k);
    *resume = r->resume_at == 0 || size_now(r) <= r->resume_at; /* [producers resume at a size] */
    return k;
}

static void array_close(void *q) {
    array_queue *r = q;
    atomic_fetch_or_explicit(&r->tail, MARK, memory_order_seq_cst); /* [close drains what was claimed] */
}

/* Readiness re-checks: the decision points (and fences) of the claims, without claiming. */
static int array_ready_to_pop(void *q) {
    array_queue *r = q;
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t done = atomic_load_explicit(&r->tail_done, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    return done != head || (tail & MARK);
}

static int array_ready_to_push(void *q) {
    array_queue *r = q;
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (tail & MARK) return 1;
    if (reserved_for_another(r)) return 0; /* [a starving pusher gets the room]: its drop notifies */
    uint64_t size = size_now(r);
    if (r->resume_at) return size <= r->resume_at; /* [producers resume at a size] */
    return size < r->cap;
}

static const flow_queue_ops array_ops = FLOW_QUEUE_OPS(array);
const flow_queue_ops *const flow_array_ops = &array_ops;
