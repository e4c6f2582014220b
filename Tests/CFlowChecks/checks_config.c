/*
 * checks_config.c — the FLOW_* variables: every bad value is an error that names the variable and the
 * value.
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

/* ---------- configuration ---------- */

/* A pool loop for pools that must not be created. */
static void no_loop(flow_worker *w, void *ctx) {
    (void)w;
    (void)ctx;
}

static int expect_env_error(const char *name, const char *value, const char *needle) {
    flow_config cfg;
    flow_error e;
    memset(&e, 0, sizeof e);
    flow_config_init(&cfg, NULL);
    setenv(name, value, 1);
    int rc = flow_config_apply_env(&cfg, &e);
    unsetenv(name);
    CHECK(rc == FLOW_EINVAL, "%s=\"%s\" accepted", name, value);
    char quoted[300];
    snprintf(quoted, sizeof quoted, "%s=\"%.64s\"", name, value);
    CHECK(strstr(e.message, quoted) || (!*value && strstr(e.message, name)), "%s=\"%s\": message does not name it: %s", name, value, e.message);
    CHECK(strstr(e.message, needle), "%s=\"%s\": message lacks \"%s\": %s", name, value, needle, e.message);
    return FLOW_CHECK_PASS;
}

int check_config(void) {
    const char *vars[] = {"FLOW_WORKERS", "FLOW_CPUS", "FLOW_PIN", "FLOW_SPIN_NS", "FLOW_SCHED", "FLOW_SLICE_NS"};
    for (int i = 0; i < 6; i++) unsetenv(vars[i]);
    flow_config cfg;
    flow_error e;
    CHECK(flow_config_init(&cfg, &e) == FLOW_OK, "init: %s", e.message);
    flow_cpuset allowed;
    flow_cpuset_allowed(&allowed, NULL);
    CHECK(cfg.workers == flow_cpuset_count(&allowed) && cfg.pin == FLOW_PIN_NONE && cfg.spin_ns == FLOW_DEFAULT_SPIN_NS &&
              cfg.sched == FLOW_SCHED_NORMAL && cfg.slice_ns == FLOW_DEFAULT_SLICE_NS,
          "defaults: workers %u pin %d spin %lld sched %d slice %lld", cfg.workers, cfg.pin, (long long)cfg.spin_ns,
          (int)cfg.sched, (long long)cfg.slice_ns);
    /* cpulist grammar */
    flow_cpuset s;
    CHECK(flow_cpulist_parse("0-3,8,10-14:2", &s, "FLOW_CPUS", &e) == FLOW_OK, "parse: %s", e.message);
    char buf[64];
    flow_cpulist_format(&s, buf, sizeof buf);
    CHECK(strcmp(buf, "0-3,8,10,12,14") == 0 && flow_cpuset_count(&s) == 8, "0-3,8,10-14:2 became %s", buf);
    const char *bad_lists[] = {"0-x", "x", "1,", ",1", "1-", "3-1", "1-4:0", "0 1", "-1", "1--2", "0-3:", "5000"};
    for (size_t i = 0; i < sizeof bad_lists / sizeof bad_lists[0]; i++)
        CHECK(flow_cpulist_parse(bad_lists[i], &s, "FLOW_CPUS", &e) == FLOW_EINVAL, "cpulist \"%s\" accepted", bad_lists[i]);
    /* every variable with garbage, empty and out-of-range values */
    int rc;
    if ((rc = expect_env_error("FLOW_CPUS", "0-x", "not a CPU list")) ||
        (rc = expect_env_error("FLOW_CPUS", "", "empty")) ||
        (rc = expect_env_error("FLOW_CPUS", "3-1", "backwards")) ||
        (rc = expect_env_error("FLOW_CPUS", "1-4:0", "stride 0")) ||
        (rc = expect_env_error("FLOW_CPUS", "99999", "out of range")) ||
        (rc = expect_env_error("FLOW_WORKERS", "abc", "not a whole number")) ||
        (rc = expect_env_error("FLOW_WORKERS", "", "empty")) ||
        (rc = expect_env_error("FLOW_WORKERS", "0", "out of range")) ||
        (rc = expect_env_error("FLOW_WORKERS", "-2", "not a whole number")) ||
        (rc = expect_env_error("FLOW_WORKERS", "5000", "out of range")) ||
        (rc = expect_env_error("FLOW_WORKERS", "4 ", "not a whole number")) ||
        (rc = expect_env_error("FLOW_PIN", "tight", "expected none, compact or spread")) ||
        (rc = expect_env_error("FLOW_PIN", "", "expected none")) ||
        (rc = expect_env_error("FLOW_SCHED", "fifo", "expected normal, batch or idle")) ||
        (rc = expect_env_error("FLOW_SCHED", "", "expected normal")) ||
        (rc = expect_env_error("FLOW_SPIN_NS", "1e3", "not a whole number")) ||
        (rc = expect_env_error("FLOW_SPIN_NS", "", "empty")) ||
        (rc = expect_env_error("FLOW_SPIN_NS", "99999999999", "out of range")) ||
        (rc = expect_env_error("FLOW_SPIN_NS", "184467440737095516160", "not a whole number")) ||
        (rc = expect_env_error("FLOW_SLICE_NS", "99999", "out of range (0, or 100000-100000000)")) ||
        (rc = expect_env_error("FLOW_SLICE_NS", "100000001", "out of range")) ||
        (rc = expect_env_error("FLOW_SLICE_NS", "5ms", "not a whole number")) ||
        (rc = expect_env_error("FLOW_SLICE_NS", "", "empty")))
        return rc;
    /* a CPU outside the allowed set */
    uint32_t outside = FLOW_CPU_SETSIZE - 1;
    while (flow_cpuset_has(&allowed, outside)) outside--;
    snprintf(buf, sizeof buf, "%u", outside);
    if ((rc = expect_env_error("FLOW_CPUS", buf, "not in this process's allowed set"))) return rc;
    /* good values apply; FLOW_CPUS sets the default worker count unless FLOW_WORKERS is given */
    uint32_t first = 0;
    while (!flow_cpuset_has(&allowed, first)) first++;
    snprintf(buf, sizeof buf, "%u", first);
    setenv("FLOW_CPUS", buf, 1);
    setenv("FLOW_PIN", "spread", 1);
    setenv("FLOW_SPIN_NS", "0", 1);
    setenv("FLOW_SCHED", "idle", 1);
    setenv("FLOW_SLICE_NS", "0", 1);
    flow_config_init(&cfg, NULL);
    rc = flow_config_apply_env(&cfg, &e);
    CHECK(rc == FLOW_OK && cfg.workers == 1 && cfg.pin == FLOW_PIN_SPREAD && cfg.spin_ns == 0 &&
              cfg.sched == FLOW_SCHED_IDLE && cfg.slice_ns == 0 && flow_cpuset_count(&cfg.cpus) == 1,
          "good env: rc %d workers %u sched %d slice %lld", rc, cfg.workers, (int)cfg.sched, (long long)cfg.slice_ns);
    setenv("FLOW_SLICE_NS", "100000", 1);
    flow_config_init(&cfg, NULL);
    rc = flow_config_apply_env(&cfg, &e);
    CHECK(rc == FLOW_OK && cfg.slice_ns == FLOW_MIN_SLICE_NS, "FLOW_SLICE_NS=100000: rc %d slice %lld", rc,
          (long long)cfg.slice_ns);
    setenv("FLOW_WORKERS", "3", 1);
    flow_config_init(&cfg, NULL);
    rc = flow_config_apply_env(&cfg, &e);
    CHECK(rc == FLOW_OK && cfg.workers == 3, "FLOW_WORKERS with FLOW_CPUS: workers %u", cfg.workers);
    for (int i = 0; i < 6; i++) unsetenv(vars[i]);
    CHECK(flow_config_set(&cfg, "FLOW_THREADS", "2", &e) == FLOW_EINVAL && strstr(e.message, "FLOW_THREADS"),
          "unknown variable: %s", e.message);
    cfg.workers = 0;
    CHECK(flow_config_validate(&cfg, &e) == FLOW_EINVAL && strstr(e.message, "workers=0"), "workers 0: %s", e.message);
    flow_config_init(&cfg, NULL);
    cfg.slice_ns = 50000;
    CHECK(flow_config_validate(&cfg, &e) == FLOW_EINVAL && strstr(e.message, "slice_ns=50000"), "slice 50000: %s",
          e.message);
    cfg.workers = 0;
    flow_pool *p;
    CHECK(flow_pool_create(&cfg, no_loop, NULL, &p, &e) == FLOW_EINVAL && p == NULL, "pool with 0 workers created");
    snprintf(g_msg, g_len, "defaults, cpulist grammar, 24 bad values each named in its error, good values applied");
    return FLOW_CHECK_PASS;
}
