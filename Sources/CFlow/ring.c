/*
 * ring.c — bounded MPMC array queue with per-slot sequence numbers ("stamps"), after Vyukov's bounded
 * queue and crossbeam's array queue/channel (the lap trick gives an exact, non-power-of-two capacity).
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
 *
 * Storage kinds. The array above is one flow_queue_ops (queue_ops.h); FLOW_QUEUE_URCU is the other
 * (urcu_queue.c). The public functions below the array's own do what both share: argument checks, the
 * parkers, spinning then parking, await. R1–R7 describe the array; the parking protocol holds for both.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flow_ring.h"
#include "parker_internal.h"
#include "queue_ops.h"

struct flow_ring {
    _Alignas(FLOW_CACHELINE) _Atomic uint64_t head;
    _Alignas(FLOW_CACHELINE) _Atomic uint64_t tail;
    /* read-mostly after creation */
    _Alignas(FLOW_CACHELINE) uint64_t cap;
    uint64_t one_lap;
    uint64_t mark_bit;
    size_t elem_size;
    int64_t spin_ns;
    uint64_t resume_at; /* R7: wake waiting producers at this size or below (0: on any free slot) */
    _Atomic uint64_t *stamps;
    unsigned char *data;
    const flow_queue_ops *ops; /* the storage: array_ops (q == this ring) or flow_urcu_ops */
    void *q;
    struct flow_parker not_empty; /* consumers park here; notified by pushes and close */
    struct flow_parker not_full;  /* producers park here; notified by pops and close */
};

/* The layout R1-R4 rely on: producers (tail), consumers (head) and the read-mostly fields never share a
   cache line, and the parkers start lines of their own. */
_Static_assert(offsetof(struct flow_ring, head) % FLOW_CACHELINE == 0, "head starts a cache line");
_Static_assert(offsetof(struct flow_ring, tail) - offsetof(struct flow_ring, head) >= FLOW_CACHELINE,
               "head and tail on separate cache lines");
_Static_assert(offsetof(struct flow_ring, cap) - offsetof(struct flow_ring, tail) >= FLOW_CACHELINE,
               "tail apart from the read-mostly fields");
_Static_assert(offsetof(struct flow_ring, not_empty) % FLOW_CACHELINE == 0 &&
                   offsetof(struct flow_ring, not_full) % FLOW_CACHELINE == 0,
               "each parker on its own cache lines");
_Static_assert(sizeof(_Atomic uint64_t) == sizeof(uint64_t), "a stamp is one 64-bit word");

static const flow_queue_ops array_ops;

int flow_ring_kind_available(flow_queue_kind kind) {
    return kind == FLOW_QUEUE_RING || (kind == FLOW_QUEUE_URCU && flow_urcu_ops != NULL);
}

static uint64_t next_pow2(uint64_t x) {
    uint64_t p = 1;
    while (p < x) p <<= 1;
    return p;
}

flow_ring *flow_ring_create(const flow_ring_options *o, flow_error *err) {
    if (!o) {
        flow_fail(err, FLOW_EINVAL, "ring options: NULL");
        return NULL;
    }
    if (o->capacity < 1 || o->capacity > ((uint64_t)1 << 40)) {
        flow_fail(err, FLOW_EINVAL, "ring capacity %llu: must be between 1 and 2^40",
                  (unsigned long long)o->capacity);
        return NULL;
    }
    if (o->elem_size < 1 || o->elem_size > FLOW_MAX_ELEM_SIZE) {
        flow_fail(err, FLOW_EINVAL, "ring elem_size %zu: must be between 1 and 1 MiB", o->elem_size);
        return NULL;
    }
    if (o->kind != FLOW_QUEUE_RING && o->kind != FLOW_QUEUE_URCU) {
        flow_fail(err, FLOW_EINVAL, "ring kind %d: unknown queue kind", (int)o->kind);
        return NULL;
    }
    if (!flow_ring_kind_available(o->kind)) {
        flow_fail(err, FLOW_ENOTSUP, "ring kind FLOW_QUEUE_URCU: this build has no liburcu (build with the URCU trait)");
        return NULL;
    }
    if (o->capacity * o->elem_size / o->elem_size != o->capacity ||
        o->capacity * o->elem_size > ((uint64_t)1 << 40)) {
        flow_fail(err, FLOW_EINVAL, "ring capacity %llu x elem_size %zu: too large",
                  (unsigned long long)o->capacity, o->elem_size);
        return NULL;
    }
    if (o->spin_ns > FLOW_MAX_SPIN_NS) {
        flow_fail(err, FLOW_EINVAL, "ring spin_ns %lld: must be at most 10 s", (long long)o->spin_ns);
        return NULL;
    }
    flow_ring *r = aligned_alloc(FLOW_CACHELINE, sizeof(struct flow_ring));
    if (!r) {
        flow_fail(err, FLOW_ENOMEM, "ring: out of memory");
        return NULL;
    }
    memset(r, 0, sizeof *r);
    r->cap = o->capacity;
    r->mark_bit = next_pow2(o->capacity + 1);
    r->one_lap = r->mark_bit * 2;
    r->elem_size = o->elem_size;
    r->spin_ns = o->spin_ns < 0 ? FLOW_DEFAULT_SPIN_NS : o->spin_ns;
    /* R7 is the array's: another kind wakes producers on any free slot */
    r->resume_at = o->kind == FLOW_QUEUE_RING && o->resume_producers_at < o->capacity ? o->resume_producers_at : 0;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    int ok = flow_parker_init(&r->not_empty) == FLOW_OK && flow_parker_init(&r->not_full) == FLOW_OK;
    if (ok && o->kind == FLOW_QUEUE_RING) {
        r->ops = &array_ops;
        r->q = r;
        r->stamps = malloc(sizeof(_Atomic uint64_t) * r->cap);
        r->data = malloc(r->cap * r->elem_size);
        ok = r->stamps && r->data;
        if (ok)
            for (uint64_t i = 0; i < r->cap; i++) atomic_init(&r->stamps[i], i);
    } else if (ok) {
        r->ops = flow_urcu_ops;
        r->q = flow_urcu_create(r->cap, r->elem_size);
        ok = r->q != NULL;
    }
    if (!ok) {
        flow_ring_destroy(r);
        flow_fail(err, FLOW_ENOMEM, "ring capacity %llu x %zu bytes: out of memory",
                  (unsigned long long)o->capacity, o->elem_size);
        return NULL;
    }
    return r;
}

void flow_ring_destroy(flow_ring *r) {
    if (!r) return;
    flow_parker_fini(&r->not_empty);
    flow_parker_fini(&r->not_full);
    if (r->ops && r->q) r->ops->destroy(r->q);
    free(r);
}

uint64_t flow_ring_capacity(const flow_ring *r) { return r->cap; }
size_t flow_ring_elem_size(const flow_ring *r) { return r->elem_size; }
flow_parker *flow_ring_not_empty(flow_ring *r) { return &r->not_empty; }
flow_parker *flow_ring_not_full(flow_ring *r) { return &r->not_full; }

int flow_ring_is_closed(const flow_ring *r) { return r->ops->is_closed(r->q); }
uint64_t flow_ring_size_approx(const flow_ring *r) { return r->ops->size(r->q); }

/* ---- the array (R1-R7) ---- */

static void array_destroy(void *q) {
    flow_ring *r = q;
    free(r->stamps);
    free(r->data);
}

static int array_is_closed(const void *q) {
    const flow_ring *r = q;
    return (atomic_load_explicit(&((flow_ring *)r)->tail, memory_order_acquire) & r->mark_bit) != 0;
}

static uint64_t array_size(const void *q) {
    const flow_ring *r = q;
    flow_ring *m = (flow_ring *)r;
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
static inline uint64_t ring_size_now(flow_ring *r) {
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
static int64_t ring_claim_push(flow_ring *r, int64_t n, uint64_t *pos) {
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

static int64_t ring_claim_pop(flow_ring *r, int64_t n, uint64_t *pos) {
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
    flow_ring *r = q;
    uint64_t pos;
    int64_t k = ring_claim_push(r, n, &pos);
    if (k <= 0) return k;
    uint64_t idx = pos & (r->mark_bit - 1);
    copy_items(r->data + idx * r->elem_size, items, r->elem_size, (uint64_t)k);
    for (int64_t j = 0; j < k; j++) /* R2: publish each slot */
        atomic_store_explicit(&r->stamps[idx + (uint64_t)j], pos + (uint64_t)j + 1, memory_order_release);
    return k;
}

/* The queue-order number of a position: laps completed x capacity + index. */
static inline uint64_t position_seq(const flow_ring *r, uint64_t pos) {
    return (pos / r->one_lap) * r->cap + (pos & (r->mark_bit - 1));
}

static int64_t array_pop_n(void *q, void *items, int64_t n, uint64_t *seq) {
    flow_ring *r = q;
    uint64_t pos;
    int64_t k = ring_claim_pop(r, n, &pos);
    if (k <= 0) return k;
    if (seq) *seq = position_seq(r, pos);
    uint64_t idx = pos & (r->mark_bit - 1);
    copy_items(items, r->data + idx * r->elem_size, r->elem_size, (uint64_t)k);
    for (int64_t j = 0; j < k; j++) /* R2: hand each slot to the next lap */
        atomic_store_explicit(&r->stamps[idx + (uint64_t)j], pos + (uint64_t)j + r->one_lap, memory_order_release);
    return k;
}

static void array_close(void *q) {
    flow_ring *r = q;
    atomic_fetch_or_explicit(&r->tail, r->mark_bit, memory_order_seq_cst); /* R5 */
}

/* Readiness re-checks: same decision points (and fences) as the claims, without claiming. */
static int array_ready_to_pop(void *q) {
    flow_ring *r = q;
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    return (tail & ~r->mark_bit) != head || (tail & r->mark_bit);
}

static int array_ready_to_push(void *q) {
    flow_ring *r = q;
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (tail & r->mark_bit) return 1;
    if (r->resume_at) return ring_size_now(r) <= r->resume_at; /* R7 */
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

/* ---- what every kind shares ---- */

int64_t flow_ring_push_n(flow_ring *r, const void *items, int64_t n) {
    if (n <= 0) return n == 0 ? 0 : FLOW_EINVAL;
    int64_t k = r->ops->push_n(r->q, items, n);
    if (k > 0)
        flow_parker_notify(&r->not_empty, (int32_t)(k < INT32_MAX ? k : INT32_MAX));
    else if (k == FLOW_CLOSED)
        /* a push refused by close may have held a reservation a consumer waits on before it can see
           "closed and drained" (liburcu, urcu_queue.c U3): wake consumers (close already woke them once) */
        flow_parker_notify(&r->not_empty, INT32_MAX);
    return k;
}

static int64_t ring_pop(flow_ring *r, void *items, int64_t n, uint64_t *seq) {
    if (n <= 0) return n == 0 ? 0 : FLOW_EINVAL;
    int64_t k = r->ops->pop_n(r->q, items, n, seq);
    if (k > 0 && (r->resume_at == 0 || ring_size_now(r) <= r->resume_at)) /* R7 (resume_at: array only) */
        flow_parker_notify(&r->not_full, (int32_t)(k < INT32_MAX ? k : INT32_MAX));
    return k;
}

int64_t flow_ring_pop_n(flow_ring *r, void *items, int64_t n) { return ring_pop(r, items, n, NULL); }

int64_t flow_ring_pop_n_seq(flow_ring *r, void *items, int64_t n, uint64_t *first_seq) {
    if (!first_seq) return FLOW_EINVAL;
    return ring_pop(r, items, n, first_seq);
}

int flow_ring_try_push(flow_ring *r, const void *item) {
    int64_t k = flow_ring_push_n(r, item, 1);
    return k == 1 ? FLOW_OK : (int)k;
}

int flow_ring_try_pop(flow_ring *r, void *item) {
    int64_t k = flow_ring_pop_n(r, item, 1);
    return k == 1 ? FLOW_OK : (int)k;
}

void flow_ring_close(flow_ring *r) {
    r->ops->close(r->q);
    flow_parker_notify(&r->not_empty, INT32_MAX);
    flow_parker_notify(&r->not_full, INT32_MAX);
}

typedef int64_t (*ring_op)(flow_ring *, void *, int64_t, uint64_t *);

/* Spin for the budget, then park on `parker` until `op` stops answering `would_block`. */
static int64_t ring_wait(flow_ring *r, ring_op op, void *buf, int64_t n, uint64_t *seq, int64_t would_block,
                         struct flow_parker *parker, int64_t timeout_ns) {
    int64_t k = op(r, buf, n, seq);
    if (k != would_block) return k;
    uint64_t start = flow_now_ns();
    uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : start + (uint64_t)timeout_ns;
    uint64_t spin_end = start + (uint64_t)r->spin_ns;
    if (spin_end > deadline) spin_end = deadline;
    /* Spin for the budget (0: park at once): busy-wait with pause for the first ~2 us, then yield
       between re-checks, so a thread this one waits for (often on the same core when CPUs are
       oversubscribed, e.g. a Swift task consuming our output) gets the CPU instead of our spinning. */
    uint64_t busy_end = start + 2000 < spin_end ? start + 2000 : spin_end;
    for (unsigned i = 1; r->spin_ns > 0; i++) {
        uint64_t t = (i & 7) == 0 ? flow_now_ns() : 0;
        if (t && t >= spin_end) break;
        if (t && t >= busy_end)
            sched_yield();
        else
            for (int j = 0; j < 16; j++) flow_cpu_relax();
        k = op(r, buf, n, seq);
        if (k != would_block) return k;
    }
    for (;;) {
        uint32_t key = flow_parker_prepare(parker);
        k = op(r, buf, n, seq); /* re-check after announcing (parker.c I1) */
        if (k != would_block) {
            flow_parker_cancel(parker);
            return k;
        }
        int64_t left = -1;
        if (deadline != UINT64_MAX) {
            uint64_t now = flow_now_ns();
            if (now >= deadline) {
                flow_parker_cancel(parker);
                return FLOW_TIMEDOUT;
            }
            left = (int64_t)(deadline - now);
        }
        flow_parker_wait(parker, key, left);
        k = op(r, buf, n, seq);
        if (k != would_block) return k;
    }
}

static int64_t push_op(flow_ring *r, void *buf, int64_t n, uint64_t *seq) {
    (void)seq;
    return flow_ring_push_n(r, buf, n);
}
static int64_t pop_op(flow_ring *r, void *buf, int64_t n, uint64_t *seq) { return ring_pop(r, buf, n, seq); }

int64_t flow_ring_push_n_wait(flow_ring *r, const void *items, int64_t n, int64_t timeout_ns) {
    if (n <= 0) return n == 0 ? 0 : FLOW_EINVAL;
    return ring_wait(r, push_op, (void *)items, n, NULL, FLOW_FULL, &r->not_full, timeout_ns);
}

int64_t flow_ring_pop_n_wait(flow_ring *r, void *items, int64_t n, int64_t timeout_ns) {
    if (n <= 0) return n == 0 ? 0 : FLOW_EINVAL;
    return ring_wait(r, pop_op, items, n, NULL, FLOW_EMPTY, &r->not_empty, timeout_ns);
}

int64_t flow_ring_pop_n_wait_seq(flow_ring *r, void *items, int64_t n, int64_t timeout_ns, uint64_t *first_seq) {
    if (n <= 0) return n == 0 ? 0 : FLOW_EINVAL;
    if (!first_seq) return FLOW_EINVAL;
    return ring_wait(r, pop_op, items, n, first_seq, FLOW_EMPTY, &r->not_empty, timeout_ns);
}

int flow_ring_push_wait(flow_ring *r, const void *item, int64_t timeout_ns) {
    int64_t k = flow_ring_push_n_wait(r, item, 1, timeout_ns);
    return k == 1 ? FLOW_OK : (int)k;
}

int flow_ring_pop_wait(flow_ring *r, void *item, int64_t timeout_ns) {
    int64_t k = flow_ring_pop_n_wait(r, item, 1, timeout_ns);
    return k == 1 ? FLOW_OK : (int)k;
}

int64_t flow_ring_push_all_wait(flow_ring *r, const void *items, int64_t n, int64_t timeout_ns,
                                int64_t *pushed) {
    const unsigned char *p = items;
    int64_t done = 0;
    uint64_t deadline = timeout_ns < 0 ? UINT64_MAX : flow_now_ns() + (uint64_t)timeout_ns;
    while (done < n) {
        int64_t left = -1;
        if (deadline != UINT64_MAX) {
            uint64_t now = flow_now_ns();
            left = now >= deadline ? 0 : (int64_t)(deadline - now);
        }
        int64_t k = flow_ring_push_n_wait(r, p + (size_t)done * r->elem_size, n - done, left);
        if (k < 0) {
            if (pushed) *pushed = done;
            return k;
        }
        done += k;
    }
    if (pushed) *pushed = done;
    return done;
}

/* Register w on `parker` unless `ready` holds after the announcement (parker.c I1/I4). */
static int ring_await(flow_ring *r, struct flow_parker *parker, int (*ready)(void *), flow_waiter *w) {
    uint32_t key = flow_parker_prepare(parker);
    if (ready(r->q)) {
        flow_parker_cancel(parker);
        return FLOW_READY;
    }
    return flow_parker_register(parker, key, w);
}

int flow_ring_await_pop(flow_ring *r, flow_waiter *w) {
    return ring_await(r, &r->not_empty, r->ops->ready_to_pop, w);
}
int flow_ring_await_push(flow_ring *r, flow_waiter *w) {
    return ring_await(r, &r->not_full, r->ops->ready_to_push, w);
}

int flow_ring_unawait(flow_ring *r, flow_waiter *w) {
    /* unregister checks ownership under each parker's lock, so trying both is safe */
    return flow_parker_unregister(&r->not_empty, w) || flow_parker_unregister(&r->not_full, w);
}
