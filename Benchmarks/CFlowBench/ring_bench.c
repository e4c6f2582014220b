/*
 * ring_bench.c — the measurements of the CFlow ring alone, shared by `ring_bench` (CMake) and the
 * `ring` scenario of flow-bench. Threads are pinned to distinct allowed CPUs when there are two or more.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cflow.h"
#include "cflow_bench.h"

typedef struct { flow_ring *r; uint64_t n; int batch; int cpu; uint64_t sum; } side;

static void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t cs;
    CPU_ZERO(&cs);
    CPU_SET(cpu, &cs);
    pthread_setaffinity_np(pthread_self(), sizeof cs, &cs);
}

static void *producer(void *a) {
    side *s = a;
    pin(s->cpu);
    uint64_t buf[64];
    for (uint64_t i = 0; i < s->n;) {
        if (s->batch) {
            uint64_t k = s->n - i < 64 ? s->n - i : 64;
            for (uint64_t j = 0; j < k; j++) buf[j] = i + j;
            int64_t got = flow_ring_push_n_wait(s->r, buf, (int64_t)k, FLOW_FOREVER);
            if (got < 0) break;
            i += (uint64_t)got;
        } else {
            if (flow_ring_push_wait(s->r, &i, FLOW_FOREVER) != FLOW_OK) break;
            i++;
        }
    }
    return NULL;
}

static void *consumer(void *a) {
    side *s = a;
    pin(s->cpu);
    uint64_t buf[64], sum = 0;
    for (;;) { /* until the ring is closed and drained: consumers share the items unevenly */
        int64_t k = flow_ring_pop_n_wait(s->r, buf, s->batch ? 64 : 1, FLOW_FOREVER);
        if (k < 0) break;
        for (int64_t j = 0; j < k; j++) sum += buf[j];
    }
    s->sum = sum;
    return NULL;
}

static int cpus[64], ncpus = -1;

static void load_cpus(void) {
    if (ncpus >= 0) return;
    cpu_set_t cs;
    ncpus = 0;
    sched_getaffinity(0, sizeof cs, &cs);
    for (int c = 0; c < CPU_SETSIZE && ncpus < 64; c++)
        if (CPU_ISSET(c, &cs)) cpus[ncpus++] = c;
}

int flow_bench_pinned(void) {
    load_cpus();
    return ncpus >= 2;
}

double flow_bench_ring(flow_queue_kind kind, unsigned pairs, int batch, uint64_t items) {
    load_cpus();
    if (!flow_ring_kind_available(kind) || pairs < 1 || pairs > 4 || items < pairs) return -1;
    flow_ring_options o = {1024, 8, -1, kind, 0};
    flow_ring *r = flow_ring_create(&o, NULL);
    side s[8];
    pthread_t th[8];
    uint64_t per = items / pairs;
    uint64_t t0 = flow_now_ns();
    for (unsigned i = 0; i < 2 * pairs; i++) {
        s[i] = (side){r, per, batch, ncpus >= 2 ? cpus[i % (unsigned)ncpus] : -1, 0};
        pthread_create(&th[i], NULL, i % 2 ? consumer : producer, &s[i]);
    }
    for (unsigned i = 0; i < 2 * pairs; i += 2) pthread_join(th[i], NULL);
    flow_ring_close(r); /* producers are done */
    for (unsigned i = 1; i < 2 * pairs; i += 2) pthread_join(th[i], NULL);
    double ns = (double)(flow_now_ns() - t0) / (double)(per * pairs);
    flow_ring_destroy(r);
    return ns;
}

typedef struct { flow_ring *a, *b; uint64_t n; int cpu; } pp;
static void *ponger(void *x) {
    pp *p = x;
    pin(p->cpu);
    uint64_t v;
    for (uint64_t i = 0; i < p->n; i++) {
        flow_ring_pop_wait(p->a, &v, FLOW_FOREVER);
        flow_ring_push_wait(p->b, &v, FLOW_FOREVER);
    }
    return NULL;
}

double flow_bench_park_wake(uint64_t n) {
    load_cpus();
    flow_ring_options o = {1, 8, 0, FLOW_QUEUE_RING, 0};
    pp p = {flow_ring_create(&o, NULL), flow_ring_create(&o, NULL), n, ncpus >= 2 ? cpus[1] : -1};
    pin(ncpus >= 2 ? cpus[0] : -1);
    pthread_t th;
    uint64_t t0 = flow_now_ns(), v;
    pthread_create(&th, NULL, ponger, &p);
    for (uint64_t i = 0; i < n; i++) {
        flow_ring_push_wait(p.a, &i, FLOW_FOREVER);
        flow_ring_pop_wait(p.b, &v, FLOW_FOREVER);
    }
    pthread_join(th, NULL);
    double ns = (double)(flow_now_ns() - t0) / (double)n;
    flow_ring_destroy(p.a);
    flow_ring_destroy(p.b);
    cpu_set_t all;
    CPU_ZERO(&all);
    for (int i = 0; i < ncpus; i++) CPU_SET(cpus[i], &all);
    pthread_setaffinity_np(pthread_self(), sizeof all, &all);
    return ns;
}

