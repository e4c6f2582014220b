/*
 * queue_ops.h — the storage behind a flow_ring (private, not installed). A ring does what every kind of
 * storage shares (argument checks, the two parkers, spinning and parking, await) and calls these for the
 * storage itself: the array (array_queue.c) or liburcu's queue (urcu_queue.c). `q` is the storage object.
 */
#ifndef CFLOW_QUEUE_OPS_H
#define CFLOW_QUEUE_OPS_H

#include <stddef.h>
#include <stdint.h>

typedef struct flow_queue_ops {
    /** Push up to n (>= 1) items: the count pushed (>= 1), FLOW_FULL or FLOW_CLOSED. */
    int64_t (*push_n)(void *q, const void *items, int64_t n);
    /** Pop up to n (>= 1) items: the count (>= 1), FLOW_EMPTY or FLOW_CLOSED (closed and drained).
     *  With seq, also the queue-order number of the first (FLOW_ENOTSUP where the kind has none). After a
     *  pop, *resume says whether producers waiting for space may go on (the array's
     *  [producers resume at a size] hysteresis). */
    int64_t (*pop_n)(void *q, void *items, int64_t n, uint64_t *seq, int *resume);
    /** Refuse pushes from now on; pops drain what is left. Idempotent. */
    void (*close)(void *q);
    int (*is_closed)(const void *q);
    /** Items inside, approximate while others push and pop. */
    uint64_t (*size)(const void *q);
    /** Items pushed since the queue was made (a count that only grows), or 0 where the kind keeps none. */
    uint64_t (*pushed)(const void *q);
    /** Reserve the pushes for the calling thread (the array's [a starving pusher gets the room]): 1 when it
     *  took the reservation, 2 when it held it already, 0 when another thread holds it or the kind has none. */
    int (*reserve)(void *q);
    /** Drop the calling thread's reservation: 1 when it held one (then notify waiting producers). */
    int (*unreserve)(void *q);
    /** Await re-checks, after the caller announced itself on a parker ([announce before re-checking]):
     *  whether a pop (push) would not answer FLOW_EMPTY (FLOW_FULL), or the queue is closed. */
    int (*ready_to_pop)(void *q);
    int (*ready_to_push)(void *q);
    void (*destroy)(void *q);
} flow_queue_ops;

/* A kind's table of operations, from its functions named PREFIX_push_n, PREFIX_pop_n, ... : every kind
 * names them so, and its table is FLOW_QUEUE_OPS(PREFIX). */
#define FLOW_QUEUE_OPS(prefix)                                                                               \
    {                                                                                                        \
        .push_n = prefix##_push_n, .pop_n = prefix##_pop_n, .close = prefix##_close,                         \
        .is_closed = prefix##_is_closed, .size = prefix##_size, .pushed = prefix##_pushed,                   \
        .reserve = prefix##_reserve, .unreserve = prefix##_unreserve, .ready_to_pop = prefix##_ready_to_pop, \
        .ready_to_push = prefix##_ready_to_push, .destroy = prefix##_destroy,                                \
    }

/** The array; its queue of `cap` items of `elem_size` bytes (producers waiting for space resume at
 *  `resume_at` items or fewer, 0: at any free slot), or NULL (no memory). */
extern const flow_queue_ops *const flow_array_ops;
void *flow_array_create(uint64_t cap, size_t elem_size, uint64_t resume_at);
/** liburcu's queue, or NULL when this build has none (FLOW_HAVE_URCU unset). */
extern const flow_queue_ops *const flow_urcu_ops;
/** A liburcu queue of `cap` items of `elem_size` bytes, or NULL (no memory, or no liburcu). */
void *flow_urcu_create(uint64_t cap, size_t elem_size);

#endif
