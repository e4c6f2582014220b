/* internal.h — private helpers shared by the CFlow sources (not installed). */
#ifndef CFLOW_INTERNAL_H
#define CFLOW_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "flow_base.h"
#include "flow_parker.h"

#define FLOW_CACHELINE 128

#if defined(__x86_64__) || defined(__i386__)
#define flow_cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define flow_cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define flow_cpu_relax() ((void)0)
#endif

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

/* Fill err (if any) with code and a formatted message; returns code. */
int flow_fail(flow_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The calling thread's pool counters, or NULL outside a pool thread (parks are counted there). */
extern _Thread_local _Atomic uint64_t *flow_tls_parked;

#endif
