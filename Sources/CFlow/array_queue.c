/*
 * array_queue.c — the storage behind a FLOW_QUEUE_RING flow_ring (ring.c, through queue_ops.h): a bounded
 * MPMC array queue with per-slot sequence numbers ("stamps"), after Vyukov's bounded queue and
 * crossbeam's array queue/channel (the lap trick gives an exact, non-power-of-two capacity).
 *
 * Positions. head and tail are 64-bit words `lap | index`: index < cap lives in the low bits, `lap` is a
 * multiple of one_lap = 2 * mark_bit, where mark_bit = next_pow2(cap + 1). The mark bit is set in tail
 * when the ring is closed (head never carries it). Advancing past index cap - 1 goes to (lap + one_lap, 0).
 * 64-bit laps do not wrap in practice (2^63 operations).
 *
 * Stamps (one per slot, separate array so a batch's items are contiguous bytes):
 *   stamp == pos         slot free for the producer of position pos
 *   stamp == pos + 1     slot holds the item of position pos, ready for its consumer
 *   stamp == pos+one_lap slot consumed; free for the producer of the next lap's position
 * Invariants:
 *  R1. A position is owned by exactly one producer (won by CAS on tail) and one consumer (CAS on head);
 *      only the owner of position pos changes the stamp of its slot, and only forward.
 *  R2. Producer: acquire-load stamp == pos (the previous consumer is done reading), CAS tail (seq_cst),
 *      write the bytes, release-store stamp = pos + 1. Consumer: acquire-load stamp == pos + 1 (sees the
 *      bytes), CAS head, read the bytes, release-store stamp = pos + one_lap.
 *  R3. Batches: before the CAS a claimer counts the consecutive slots whose stamps are already ready,
 *      within the current lap; since nobody else can own those positions, they stay ready until it
 *      commits. A batch commits slot by slot, so consumers may take its prefix early.
 *  R4. "Full" / "empty" are decided only after a seq_cst fence followed by a load of the opposite index,
 *      which together with the fence in flow_parker_notify makes the parking protocol lossless (parker.c).
 *  R6. Positions are a total order of the queue: pop_n_seq reports a claimed batch's first position as a
 *      linear number (laps x cap + index), so parallel consumers can restore queue order downstream.
 *  R7. With resume_at set, waiting producers wait for "size <= resume_at" (not just "a free slot"): a
 *      pop notifies them only when the size it computes after its own head CAS is <= resume_at. That
 *      size never overestimates (head is ours or later; tail may be stale, i.e. lower), so the pop that
 *      brings the ring down to resume_at always notifies; close() notifies regardless.
 *  R5. close() sets the tail mark bit (seq_cst RMW) and notifies both parkers: later pushes see the mark;
 *      pops drain every committed item and then see tail == head with the mark set.
 * Memory orderings: stamps acquire/release (they carry the bytes); head/tail CAS seq_cst on success,
 * relaxed loads elsewhere (stamps guard the data; the seq_cst fence guards the full/empty decision).
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

typedef struct array_queue {
    _Alignas(FLOW_CACHELINE) _Atomic uint64_t head;
    _Alignas(FLOW_CACHELINE) _Atomic uint64_t tail;
    /* read-mostly after creation */
    _Alignas(FLOW_CACHELINE) uint64_t cap;
    uint64_t one_lap;
    uint64_t mark_bit;
    size_t elem_size;
    uint64_t resume_at; /* R7: wake waiting producers at this size or below (0: on any free slot) */
    _Atomic uint64_t *stamps;
    unsigned char *data;
} array_queue;

/* The layout R1-R4 rely on: producers (tail), consumers (head) and the read-mostly fields never share a
   cache line. */
_Static_assert(offsetof(array_queue, head) % FLOW_CACHELINE == 0, "head starts a cache line");
_Static_assert(offsetof(array_queue, tail) - offsetof(array_queue, head) >= FLOW_CACHELINE,
               "head and tail on separate cache lines");
_Static_assert(offsetof(array_queue, cap) - offsetof(array_queue, tail) >= FLOW_CACHELINE,
               "tail apart from the read-mostly fields");
_Static_assert(sizeof(_Atomic uint64_t) == sizeof(uint64_t), "a stamp is one 64-bit word");

static uint64_t next_pow2(uint64_t x) {
    uint64_t p = 1;
    while (p < x) p <<= 1;
    return p;
}

void *flow_array_create(uint64_t cap, size_t elem_size, uint64_t resume_at) {
    array_queue *r = aligned_alloc(FLOW_CACHELINE, sizeof(array_queue));
    if (!r) return NULL;
    memset(r, 0, sizeof *r);
    r->cap = cap;
    r->mark_bit = next_pow2(cap + 1);
    r->one_lap = r->mark_bit * 2;
    r->elem_size = elem_size;
    r->resume_at = resume_at < cap ? resume_at : 0;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    r->stamps = malloc(sizeof(_Atomic uint64_t) * cap);
    r->data = malloc(cap * elem_size);
    if (!r->stamps || !r->data) {
        free(r->stamps);
        free(r->data);
        free(r);
        return NULL;
    }
    for (uint64_t i = 0; i < cap; i++) atomic_init(&r->stamps[i], i);
    return r;
}

static void array_destroy(void *q) {
    array_queue *r = q;
    free(r->stamps);
    free(r->data);
    free(r);
}

static int array_is_closed(const void *q) {
    const array_queue *r = q;
    return (atomic_load_explicit(&((array_queue *)r)->tail, memory_order_acquire) & r->mark_bit) != 0;
}

static uint64_t array_size(const void *q) {
    const array_queue *r = q;
    array_queue *m = (array_queue *)r;
    for (;;) { /* a consistent (head, tail) pair: tail unchanged across the read of head */
        uint64_t tail = atomic_load_explicit(&m->tail, memory_order_seq_cst);
        uint64_t head = atomic_load_explicit(&m->head, memory_order_seq_cst);
        if (atomic_load_explicit(&m->tail, memory_order_seq_cst) != tail) continue;
        tail &= ~r->mark_bit;
        uint64_t hix = head & (r->mark_bit - 1), tix = tail & (r->mark_bit - 1);
        if (hix < tix) return tix - hix;
        if (hix > tix) return r->cap - hix + tix;
        return tail == head ? 0 : r->cap;
    }
}

/* Items in the ring from one read of tail then head (no retry): may underestimate, never overestimate
 * the size at the moment head is read (R7). */
static inline uint64_t size_now(array_queue *r) {
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed) & ~r->mark_bit;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (head >= tail) return 0; /* positions are monotonic; head may have passed our (older) tail */
    uint64_t laps = tail / r->one_lap - head / r->one_lap;
    return laps * r->cap + (tail & (r->mark_bit - 1)) - (head & (r->mark_bit - 1));
}

/* Spin-wait helper for contended CAS / in-progress neighbours: exponential pause, then yield. */
typedef struct { unsigned step; } backoff;
static inline void backoff_snooze(backoff *b) {
    if (b->step <= 6) {
        for (unsigned i = 0; i < (1u << b->step); i++) flow_cpu_relax();
    } else {
        sched_yield();
    }
    if (b->step <= 10) b->step++;
}

/* Claim up to n slots for pushing. Returns the count claimed (pos = first position) or a status. */
static int64_t claim_push(array_queue *r, int64_t n, uint64_t *pos) {
    backoff b = {0};
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (;;) {
        if (tail & r->mark_bit) return FLOW_CLOSED;
        uint64_t idx = tail & (r->mark_bit - 1);
        uint64_t lap = tail & ~(r->one_lap - 1);
        uint64_t stamp = atomic_load_explicit(&r->stamps[idx], memory_order_acquire);
        if (stamp == tail) {
            uint64_t limit = r->cap - idx, k = 1;
            if ((uint64_t)n < limit) limit = (uint64_t)n;
            while (k < limit && atomic_load_explicit(&r->stamps[idx + k], memory_order_acquire) == tail + k)
                k++; /* R3 */
            uint64_t next = idx + k < r->cap ? tail + k : lap + r->one_lap;
            if (atomic_compare_exchange_weak_explicit(&r->tail, &tail, next, memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                *pos = tail;
                return (int64_t)k;
            }
            backoff_snooze(&b); /* lost the race: `tail` now holds the fresh value */
        } else if (stamp + r->one_lap == tail + 1) {
            atomic_thread_fence(memory_order_seq_cst); /* R4 */
            uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
            if (head + r->one_lap == tail) return FLOW_FULL;
            backoff_snooze(&b); /* a consumer is mid-read of this slot */
            tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        } else {
            backoff_snooze(&b); /* another producer moved on; our tail is stale */
            tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        }
    }
}

static int64_t claim_pop(array_queue *r, int64_t n, uint64_t *pos) {
    backoff b = {0};
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (;;) {
        uint64_t idx = head & (r->mark_bit - 1);
        uint64_t lap = head & ~(r->one_lap - 1);
        uint64_t stamp = atomic_load_explicit(&r->stamps[idx], memory_order_acquire);
        if (stamp == head + 1) {
            uint64_t limit = r->cap - idx, k = 1;
            if ((uint64_t)n < limit) limit = (uint64_t)n;
            while (k < limit &&
                   atomic_load_explicit(&r->stamps[idx + k], memory_order_acquire) == head + k + 1)
                k++; /* R3 */
            uint64_t next = idx + k < r->cap ? head + k : lap + r->one_lap;
            if (atomic_compare_exchange_weak_explicit(&r->head, &head, next, memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                *pos = head;
                return (int64_t)k;
            }
            backoff_snooze(&b);
        } else if (stamp == head) {
            atomic_thread_fence(memory_order_seq_cst); /* R4 */
            uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
            if ((tail & ~r->mark_bit) == head) return (tail & r->mark_bit) ? FLOW_CLOSED : FLOW_EMPTY;
            backoff_snooze(&b); /* a producer claimed this slot and is mid-write */
            head = atomic_load_explicit(&r->head, memory_order_relaxed);
        } else {
            backoff_snooze(&b);
            head = atomic_load_explicit(&r->head, memory_order_relaxed);
        }
    }
}

static inline void copy_items(void *dst, const void *src, size_t size, uint64_t k) {
    if (size == 8 && k == 1)
        memcpy(dst, src, 8);
    else
        memcpy(dst, src, size * k);
}

static int64_t array_push_n(void *q, const void *items, int64_t n) {
    array_queue *r = q;
    uint64_t pos;
    int64_t k = claim_push(r, n, &pos);
    if (k <= 0) return k;
    uint64_t idx = pos & (r->mark_bit - 1);
    copy_items(r->data + idx * r->elem_size, items, r->elem_size, (uint64_t)k);
    for (int64_t j = 0; j < k; j++) /* R2: publish each slot */
        atomic_store_explicit(&r->stamps[idx + (uint64_t)j], pos + (uint64_t)j + 1, memory_order_release);
    return k;
}

/* The queue-order number of a position: laps completed x capacity + index. */
static inline uint64_t position_seq(const array_queue *r, uint64_t pos) {
    return (pos / r->one_lap) * r->cap + (pos & (r->mark_bit - 1));
}

static int64_t array_pop_n(void *q, void *items, int64_t n, uint64_t *seq, int *resume) {
    array_queue *r = q;
    uint64_t pos;
    int64_t k = claim_pop(r, n, &pos);
    if (k <= 0) return k;
    if (seq) *seq = position_seq(r, pos);
    uint64_t idx = pos & (r->mark_bit - 1);
    copy_items(items, r->data + idx * r->elem_size, r->elem_size, (uint64_t)k);
    for (int64_t j = 0; j < k; j++) /* R2: hand each slot to the next lap */
        atomic_store_explicit(&r->stamps[idx + (uint64_t)j], pos + (uint64_t)j + r->one_lap, memory_order_release);
    *resume = r->resume_at == 0 || size_now(r) <= r->resume_at; /* R7 */
    return k;
}

static void array_close(void *q) {
    array_queue *r = q;
    atomic_fetch_or_explicit(&r->tail, r->mark_bit, memory_order_seq_cst); /* R5 */
}

/* Readiness re-checks: same decision points (and fences) as the claims, without claiming. */
static int array_ready_to_pop(void *q) {
    array_queue *r = q;
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    return (tail & ~r->mark_bit) != head || (tail & r->mark_bit);
}

static int array_ready_to_push(void *q) {
    array_queue *r = q;
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (tail & r->mark_bit) return 1;
    if (r->resume_at) return size_now(r) <= r->resume_at; /* R7 */
    return head + r->one_lap != tail;
}

static const flow_queue_ops array_ops = {
    .push_n = array_push_n,
    .pop_n = array_pop_n,
    .close = array_close,
    .is_closed = array_is_closed,
    .size = array_size,
    .ready_to_pop = array_ready_to_pop,
    .ready_to_push = array_ready_to_push,
    .destroy = array_destroy,
};
const flow_queue_ops *const flow_array_ops = &array_ops;
