/*
 * ring_bench_main.c — `ring_bench [items] [runs]`: ns/item of the CFlow ring alone (not run by ctest).
 * Default 10 M items, median of 5 runs (min and max too). Rows: 1P1C single, 1P1C batch 64, 2P2C single,
 * 2P2C batch 64, and the park/wake round trip (spin 0); the liburcu queue too when built with it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cflow.h"
#include "cflow_bench.h"

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
    struct { const char *name; flow_queue_kind kind; unsigned pairs; int batch; } rows[] = {
        {"ring 1P1C single", FLOW_QUEUE_RING, 1, 0}, {"ring 1P1C batch 64", FLOW_QUEUE_RING, 1, 1},
        {"ring 2P2C single", FLOW_QUEUE_RING, 2, 0}, {"ring 2P2C batch 64", FLOW_QUEUE_RING, 2, 1},
        {"urcu 1P1C single", FLOW_QUEUE_URCU, 1, 0}, {"urcu 1P1C batch 64", FLOW_QUEUE_URCU, 1, 1},
        {"urcu 2P2C single", FLOW_QUEUE_URCU, 2, 0},
    };
    printf("# ring_bench: %llu items, capacity 1024, 8-byte items, median of %d runs%s\n",
           (unsigned long long)items, runs, flow_bench_pinned() ? ", pinned" : "");
    printf("%-22s %10s %10s %10s\n", "row", "median", "min", "max");
    double t[99];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (!flow_ring_kind_available(rows[i].kind)) continue;
        for (int k = 0; k < runs; k++) t[k] = flow_bench_ring(rows[i].kind, rows[i].pairs, rows[i].batch, items);
        qsort(t, (size_t)runs, sizeof t[0], cmp);
        printf("%-22s %7.2f ns %7.2f ns %7.2f ns /item\n", rows[i].name, t[runs / 2], t[0], t[runs - 1]);
        fflush(stdout);
    }
    uint64_t trips = items / 200 < 20000 ? 20000 : items / 200;
    for (int k = 0; k < runs; k++) t[k] = flow_bench_park_wake(trips);
    qsort(t, (size_t)runs, sizeof t[0], cmp);
    printf("%-22s %7.2f us %7.2f us %7.2f us /round trip (%llu trips, spin 0: both sides park)\n", "park/wake round trip",
           t[runs / 2] / 1000, t[0] / 1000, t[runs - 1] / 1000, (unsigned long long)trips);
    return 0;
}
