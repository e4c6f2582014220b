/* urcu_queue.h — the liburcu-backed queue behind FLOW_QUEUE_URCU (private; see urcu_queue.c). */
#ifndef CFLOW_URCU_QUEUE_H
#define CFLOW_URCU_QUEUE_H
#include <stddef.h>
#include <stdint.h>

struct flow_urcu_queue;
int flow_urcu_available(void);
struct flow_urcu_queue *flow_urcu_create(uint64_t cap, size_t elem_size);
void flow_urcu_destroy(struct flow_urcu_queue *q);
int64_t flow_urcu_push_n(struct flow_urcu_queue *q, const void *items, int64_t n);
int64_t flow_urcu_pop_n(struct flow_urcu_queue *q, void *items, int64_t n);
void flow_urcu_close(struct flow_urcu_queue *q);
int flow_urcu_is_closed(const struct flow_urcu_queue *q);
uint64_t flow_urcu_size(const struct flow_urcu_queue *q);
#endif
