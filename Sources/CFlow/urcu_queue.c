/*
 * urcu_queue.c — FLOW_QUEUE_URCU: liburcu's wait-free concurrent queue (wfcqueue), bounded by a counter.
 * Compiled in only with FLOW_HAVE_URCU (SwiftPM trait URCU, CMake option FLOW_URCU); otherwise every
 * flow_urcu_ops is NULL and flow_ring_create refuses the kind with FLOW_ENOTSUP. The ring calls it through
 * queue_ops.h.
 *
 * Invariants:
 *  [the urcu bound is exact] `count` counts reserved + enqueued items. A push first reserves with fetch_add
 *    (acq_rel) and backs out if that went past cap, so at most cap items are ever reserved: the bound is
 *    exact.
 *  [a node per item] Every enqueued node carries its item bytes (one malloc per item: this is the comparison
 *    baseline, not the fast path). A pop dequeues (wfcqueue's blocking dequeue serialises dequeuers with its
 *    own mutex), copies, frees, then releases its reservation.
 *  [node bytes published] A node's bytes are published by a release store before the enqueue and read after
 *    an acquire load (the queue orders them already; the pair makes that visible to ThreadSanitizer).
 *  [no push accepted after close] close sets `closed` (seq_cst) before the ring notifies; a push reserves,
 *    then re-checks `closed` after the reservation and backs out, so no item is accepted after close is
 *    observed. Pops drain.
 */
#include "queue_ops.h"

#ifdef FLOW_HAVE_URCU
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <urcu/wfcqueue.h>

#include "flow_base.h"

struct node {
    struct cds_wfcq_node link;
    _Atomic int published; /* release/acquire pair on the bytes, visible to ThreadSanitizer, which does
                              not see liburcu's own (inline-assembly) barriers */
    unsigned char bytes[];
};

struct flow_urcu_queue {
    struct cds_wfcq_head head;
    struct cds_wfcq_tail tail;
    uint64_t cap;
    size_t elem_size;
    _Atomic uint64_t count;
    _Atomic int closed;
};

void *flow_urcu_create(uint64_t cap, size_t elem_size) {
    struct flow_urcu_queue *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    cds_wfcq_init(&q->head, &q->tail);
    q->cap = cap;
    q->elem_size = elem_size;
    atomic_init(&q->count, 0);
    atomic_init(&q->closed, 0);
    return q;
}

static void urcu_destroy(void *queue) {
    struct flow_urcu_queue *q = queue;
    struct cds_wfcq_node *n;
    while ((n = cds_wfcq_dequeue_blocking(&q->head, &q->tail)) != NULL) free(n);
    cds_wfcq_destroy(&q->head, &q->tail);
    free(q);
}

static int64_t urcu_push_n(void *queue, const void *items, int64_t n) {
    struct flow_urcu_queue *q = queue;
    const unsigned char *src = items;
    int64_t done = 0;
    for (; done < n; done++) {
        if (atomic_load_explicit(&q->closed, memory_order_seq_cst)) break;
        /* [the urcu bound is exact] */
        if (atomic_fetch_add_explicit(&q->count, 1, memory_order_acq_rel) >= q->cap) {
            atomic_fetch_sub_explicit(&q->count, 1, memory_order_acq_rel);
            break;
        }
        if (atomic_load_explicit(&q->closed, memory_order_seq_cst)) { /* [no push accepted after close] */
            atomic_fetch_sub_explicit(&q->count, 1, memory_order_acq_rel);
            break;
        }
        struct node *nd = malloc(sizeof *nd + q->elem_size);
        if (!nd) {
            atomic_fetch_sub_explicit(&q->count, 1, memory_order_acq_rel);
            return done ? done : FLOW_ENOMEM;
        }
        cds_wfcq_node_init(&nd->link);
        memcpy(nd->bytes, src + (size_t)done * q->elem_size, q->elem_size);
        atomic_store_explicit(&nd->published, 1, memory_order_release);
        cds_wfcq_enqueue(&q->head, &q->tail, &nd->link);
    }
    if (done) return done;
    return atomic_load_explicit(&q->closed, memory_order_seq_cst) ? FLOW_CLOSED : FLOW_FULL;
}

static int64_t urcu_pop_n(void *queue, void *items, int64_t n, uint64_t *seq, int *resume) {
    struct flow_urcu_queue *q = queue;
    if (seq) return FLOW_ENOTSUP; /* no queue-order numbers */
    *resume = 1;                  /* no hysteresis: any free slot */
    unsigned char *dst = items;
    int64_t done = 0;
    for (; done < n; done++) {
        if (atomic_load_explicit(&q->count, memory_order_acquire) == 0) break;
        struct cds_wfcq_node *ln = cds_wfcq_dequeue_blocking(&q->head, &q->tail);
        if (!ln) break; /* reserved by a pusher whose enqueue has not landed yet */
        struct node *nd = caa_container_of(ln, struct node, link);
        (void)atomic_load_explicit(&nd->published, memory_order_acquire);
        memcpy(dst + (size_t)done * q->elem_size, nd->bytes, q->elem_size);
        free(nd);
        atomic_fetch_sub_explicit(&q->count, 1, memory_order_acq_rel); /* [a node per item] */
    }
    if (done) return done;
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&q->closed, memory_order_seq_cst) &&
        atomic_load_explicit(&q->count, memory_order_acquire) == 0)
        return FLOW_CLOSED;
    return FLOW_EMPTY;
}

static void urcu_close(void *q) {
    /* [no push accepted after close] */
    atomic_store_explicit(&((struct flow_urcu_queue *)q)->closed, 1, memory_order_seq_cst);
}
static int urcu_is_closed(const void *q) {
    return atomic_load_explicit(&((struct flow_urcu_queue *)q)->closed, memory_order_seq_cst);
}
static uint64_t urcu_size(const void *q) {
    return atomic_load_explicit(&((struct flow_urcu_queue *)q)->count, memory_order_acquire);
}
/* The count of items inside is all this queue keeps: no count of what was pushed, and no reservation. */
static uint64_t urcu_pushed(const void *q) {
    (void)q;
    return 0;
}
static int urcu_reserve(void *q) {
    (void)q;
    return 0;
}
static int urcu_unreserve(void *q) {
    (void)q;
    return 0;
}
static int urcu_ready_to_pop(void *q) { return urcu_size(q) > 0 || urcu_is_closed(q); }
static int urcu_ready_to_push(void *q) {
    return urcu_size(q) < ((struct flow_urcu_queue *)q)->cap || urcu_is_closed(q);
}

static const flow_queue_ops urcu_ops = FLOW_QUEUE_OPS(urcu);
const flow_queue_ops *const flow_urcu_ops = &urcu_ops;

#else /* !FLOW_HAVE_URCU */

const flow_queue_ops *const flow_urcu_ops = NULL;
void *flow_urcu_create(uint64_t cap, size_t elem_size) {
    (void)cap;
    (void)elem_size;
    return NULL;
}

#endif
