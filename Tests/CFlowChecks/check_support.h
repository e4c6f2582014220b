/*
 * check_support.h — what every file of CFlow's checks shares: failing with a message, the size scale
 * (FLOW_CHECK_SCALE), the deadline that turns a hang into a failure, and making a ring.
 */
#ifndef CHECK_SUPPORT_H
#define CHECK_SUPPORT_H
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cflow.h"
#include "cflow_checks.h"

#define DEADLINE_NS (240ull * 1000000000ull)

/* Where the running check writes its summary or failure (set by flow_check_run). */
extern char *g_msg;
extern size_t g_len;

static inline int failf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, g_len, fmt, ap);
    va_end(ap);
    return FLOW_CHECK_FAIL;
}

#define CHECK(cond, ...) do { if (!(cond)) return failf(__VA_ARGS__); } while (0)

static inline double scale(void) {
    const char *s = getenv("FLOW_CHECK_SCALE");
    double v = s ? atof(s) : 1.0;
    return v > 0 ? v : 1.0;
}

/* resume_producers_at for the rings mk_ring makes (0: default) */
extern uint64_t g_resume_at;

static inline flow_ring *mk_ring(uint64_t cap, size_t elem, int64_t spin, flow_queue_kind kind) {
    flow_ring_options o = {cap, elem, spin, kind, g_resume_at};
    return flow_ring_create(&o, NULL);
}

/* Wait until `n` waiters are announced on `p`: 1, or 0 after 10 s (checks_ring.c). */
int wait_for_waiters(flow_parker *p, uint32_t n);

/* P producers and C consumers move `total` items of `elem` bytes through a ring of `cap`, and every item
 * must arrive exactly once (checks_exact.c). */
int run_exact(unsigned P, unsigned C, uint64_t cap, uint64_t total, int batch, int blocking, size_t elem,
              flow_queue_kind kind, int64_t spin);

/* Each subject's checks (checks_*.c), for the registry in checks.c. */
int check_ring_basic(void);
int check_exact_single(void);
int check_exact_batch(void);
int check_exact_blocking(void);
int check_exact_blocking_batch(void);
int check_exact_10m(void);
int check_urcu_exact(void);
int check_pop_seq(void);
int check_resume_watermark(void);
int check_close_blocked(void);
int check_close_midstream(void);
int check_wake_one(void);
int check_park_wake(void);
int check_callbacks(void);
int check_unawait_race(void);
int check_serving(void);
int check_serving_fair(void);
int check_pool(void);
int check_pool_parks(void);
int check_pool_start_failure(void);
int check_config(void);
#endif
