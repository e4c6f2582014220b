/*
 * checks.c — the registry of CFlow's behavioural checks, one file a subject: checks_ring.c (a ring's own
 * semantics), checks_exact.c (exactness under contention), checks_park.c (waiting and waking),
 * checks_pool.c (the worker pool), checks_config.c (the FLOW_* variables). Hangs are detected inside each
 * check (deadlines and timed waits), never left to the CI time-out. Sizes scale with FLOW_CHECK_SCALE
 * (default 1).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cflow.h"
#include "cflow_checks.h"
#include "check_support.h"

char *g_msg;
size_t g_len;
uint64_t g_resume_at;

/* ---------- registry ---------- */

typedef struct { const char *name; int (*fn)(void); } check_entry;
static const check_entry checks[] = {
    {"ring_basic", check_ring_basic},
    {"exact_single", check_exact_single},
    {"exact_batch", check_exact_batch},
    {"exact_blocking", check_exact_blocking},
    {"exact_blocking_batch", check_exact_blocking_batch},
    {"exact_10m", check_exact_10m},
    {"urcu_exact", check_urcu_exact},
    {"pop_seq", check_pop_seq},
    {"resume_watermark", check_resume_watermark},
    {"close_blocked", check_close_blocked},
    {"close_midstream", check_close_midstream},
    {"wake_one", check_wake_one},
    {"park_wake", check_park_wake},
    {"callbacks", check_callbacks},
    {"unawait_race", check_unawait_race},
    {"serving", check_serving},
    {"serving_fair", check_serving_fair},
    {"pool", check_pool},
    {"pool_parks", check_pool_parks},
    {"pool_start_failure", check_pool_start_failure},
    {"config", check_config},
};

int flow_check_count(void) { return (int)(sizeof checks / sizeof checks[0]); }
const char *flow_check_name(int i) { return i >= 0 && i < flow_check_count() ? checks[i].name : NULL; }

int flow_check_run(const char *name, char *msg, size_t len) {
    g_msg = msg;
    g_len = len;
    if (len) msg[0] = 0;
    for (int i = 0; i < flow_check_count(); i++)
        if (strcmp(checks[i].name, name) == 0) return checks[i].fn();
    snprintf(msg, len, "no check named %s", name);
    return FLOW_CHECK_FAIL;
}

size_t flow_check_heap_in_use(void) {
    malloc_trim(0);
    return mallinfo2().uordblks;
}
