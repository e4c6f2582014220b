/* parker_internal.h — the parker's layout, for the units that embed one (rings). Not installed. */
#ifndef CFLOW_PARKER_INTERNAL_H
#define CFLOW_PARKER_INTERNAL_H

#include "flow_parker.h"
#include "internal.h"

/* The parker is embedded in rings, so its layout is known here (opaque in the public header). */
struct flow_parker {
    /* low 32 bits: announced waiters; high 32 bits: epoch, bumped by every notify that saw waiters */
    _Alignas(FLOW_CACHELINE) _Atomic uint64_t state;
    _Atomic uint32_t callbacks; /* registered callback waiters (a count kept under `lock`) */
    void *lock;                 /* pthread_mutex_t*, guards the callback list */
    flow_waiter *head;          /* registered callback waiters */
#ifndef __linux__
    void *cond;                 /* pthread_cond_t* fallback where there is no futex */
#endif
};

int flow_parker_init(struct flow_parker *p);
void flow_parker_fini(struct flow_parker *p);

#endif
