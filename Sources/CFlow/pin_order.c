/*
 * pin_order.c — the order in which a pool pins its workers to the CPUs it may use (FLOW_PIN): compact
 * keeps a core's hardware threads (SMT siblings) adjacent, spread takes one hardware thread of every core
 * before any second sibling. The machine's layout is read from sysfs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>

#include "pool_internal.h"

/* One CPU's place in the machine, read from sysfs (falls back to "own core, package 0"). */
typedef struct { uint32_t cpu, core, package, rank; } cpu_place;

static long read_sys_int(uint32_t cpu, const char *leaf) {
    char path[128];
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%u/topology/%s", cpu, leaf);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    if (fscanf(f, "%ld", &v) != 1) v = -1;
    fclose(f);
    return v;
}

static int cmp_compact(const void *a, const void *b) {
    const cpu_place *x = a, *y = b;
    if (x->package != y->package) return x->package < y->package ? -1 : 1;
    if (x->core != y->core) return x->core < y->core ? -1 : 1;
    return x->cpu < y->cpu ? -1 : x->cpu > y->cpu;
}

static int cmp_spread(const void *a, const void *b) {
    const cpu_place *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1; /* one thread per core first */
    return cmp_compact(a, b);
}

/* Order the allowed CPUs for the pin mode: compact keeps SMT siblings adjacent; spread takes one
 * hardware thread of every core before any second sibling. */
uint32_t flow_pin_order(const flow_config *cfg, uint32_t *out) {
    uint32_t n = 0;
    cpu_place *pl = malloc(sizeof *pl * FLOW_CPU_SETSIZE);
    if (!pl) return 0;
    for (uint32_t c = 0; c < FLOW_CPU_SETSIZE; c++) {
        if (!flow_cpuset_has(&cfg->cpus, c)) continue;
        long core = read_sys_int(c, "core_id"), pkg = read_sys_int(c, "physical_package_id");
        pl[n] = (cpu_place){c, core < 0 ? c : (uint32_t)core, pkg < 0 ? 0 : (uint32_t)pkg, 0};
        n++;
    }
    qsort(pl, n, sizeof *pl, cmp_compact);
    for (uint32_t i = 1; i < n; i++) /* rank = how many siblings of the same core come before */
        if (pl[i].package == pl[i - 1].package && pl[i].core == pl[i - 1].core) pl[i].rank = pl[i - 1].rank + 1;
    if (cfg->pin == FLOW_PIN_SPREAD) qsort(pl, n, sizeof *pl, cmp_spread);
    for (uint32_t i = 0; i < n; i++) out[i] = pl[i].cpu;
    free(pl);
    return n;
}
