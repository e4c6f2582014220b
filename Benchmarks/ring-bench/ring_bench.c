/*
 * ring_bench.c — ns/item of the CFlow ring alone (not run by ctest).
 *   ring_bench [items] [runs]      default 10 M items, median of 5 runs (min and max shown too)
 * Rows: 1P1C single, 1P1C batch 64, 2P2C single, 2P2C batch 64, park/wake round trip (spin 0);
 * the liburcu queue too when the library was built with it. Threads are pinned to distinct CPUs
 * when the process may use at least two.
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

static int cpus[64], ncpus;

static double run_pc(flow_queue_kind kind, unsigned pairs, int batch, uint64_t items) {
    flow_ring_options o = {1024, 8, -1, kind};
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

static double run_parkwake(uint64_t n) {
    flow_ring_options o = {1, 8, 0, FLOW_QUEUE_RING};
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

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    uint64_t items = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (items == 0 || runs < 1 || runs > 99) {
        fprintf(stderr, "usage: ring_bench [items >= 1] [runs 1..99]\n");
        return 2;
    }
    cpu_set_t cs;
    sched_getaffinity(0, sizeof cs, &cs);
    for (int c = 0; c < CPU_SETSIZE && ncpus < 64; c++)
        if (CPU_ISSET(c, &cs)) cpus[ncpus++] = c;
    struct { const char *name; flow_queue_kind kind; unsigned pairs; int batch; } rows[] = {
        {"ring 1P1C single", FLOW_QUEUE_RING, 1, 0}, {"ring 1P1C batch 64", FLOW_QUEUE_RING, 1, 1},
        {"ring 2P2C single", FLOW_QUEUE_RING, 2, 0}, {"ring 2P2C batch 64", FLOW_QUEUE_RING, 2, 1},
        {"urcu 1P1C single", FLOW_QUEUE_URCU, 1, 0}, {"urcu 1P1C batch 64", FLOW_QUEUE_URCU, 1, 1},
        {"urcu 2P2C single", FLOW_QUEUE_URCU, 2, 0},
    };
    printf("# ring_bench: %llu items, capacity 1024, 8-byte items, median of %d runs, %d CPUs%s\n",
           (unsigned long long)items, runs, ncpus, ncpus >= 2 ? ", pinned" : "");
    printf("%-22s %10s %10s %10s\n", "row", "median", "min", "max");
    double t[99];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (!flow_ring_kind_available(rows[i].kind)) continue;
        for (int k = 0; k < runs; k++) t[k] = run_pc(rows[i].kind, rows[i].pairs, rows[i].batch, items);
        qsort(t, (size_t)runs, sizeof t[0], cmp);
        printf("%-22s %7.2f ns %7.2f ns %7.2f ns /item\n", rows[i].name, t[runs / 2], t[0], t[runs - 1]);
        fflush(stdout);
    }
    uint64_t trips = items / 200 < 20000 ? 20000 : items / 200;
    for (int k = 0; k < runs; k++) t[k] = run_parkwake(trips);
    qsort(t, (size_t)runs, sizeof t[0], cmp);
    printf("%-22s %7.2f us %7.2f us %7.2f us /round trip (%llu trips, spin 0: both sides park)\n", "park/wake round trip",
           t[runs / 2] / 1000, t[0] / 1000, t[runs - 1] / 1000, (unsigned long long)trips);
    return 0;
}
