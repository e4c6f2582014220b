/*
 * config.c — the one parser for FLOW_WORKERS, FLOW_CPUS, FLOW_PIN, FLOW_SPIN_NS, FLOW_SCHED, FLOW_NICE and
 * FLOW_SLICE_NS, whether the text comes from the environment or from code. Every error names the variable and
 * its value. No shared state: all functions are reentrant.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flow_config.h"
#include "internal.h"

uint32_t flow_cpuset_count(const flow_cpuset *set) {
    uint32_t n = 0;
    for (size_t i = 0; i < FLOW_CPU_SETSIZE / 64; i++) n += (uint32_t)__builtin_popcountll(set->bits[i]);
    return n;
}

int flow_cpuset_has(const flow_cpuset *set, uint32_t cpu) {
    return cpu < FLOW_CPU_SETSIZE && (set->bits[cpu / 64] >> (cpu % 64) & 1);
}

void flow_cpuset_add(flow_cpuset *set, uint32_t cpu) {
    if (cpu < FLOW_CPU_SETSIZE) set->bits[cpu / 64] |= (uint64_t)1 << (cpu % 64);
}

int flow_cpuset_allowed(flow_cpuset *out, flow_error *err) {
    memset(out, 0, sizeof *out);
#ifdef __linux__
    cpu_set_t cs;
    CPU_ZERO(&cs);
    if (sched_getaffinity(0, sizeof cs, &cs) != 0)
        return flow_fail(err, FLOW_ESYS, "sched_getaffinity: %s", strerror(errno));
    for (uint32_t c = 0; c < FLOW_CPU_SETSIZE && c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &cs)) flow_cpuset_add(out, c);
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    for (long c = 0; c < n && c < FLOW_CPU_SETSIZE; c++) flow_cpuset_add(out, (uint32_t)c);
#endif
    if (flow_cpuset_count(out) == 0) return flow_fail(err, FLOW_ESYS, "sched_getaffinity: no CPU allowed");
    return FLOW_OK;
}

void flow_cpulist_format(const flow_cpuset *set, char *buf, size_t len) {
    if (!len) return;
    buf[0] = 0;
    size_t used = 0;
    for (uint32_t c = 0; c < FLOW_CPU_SETSIZE; c++) {
        if (!flow_cpuset_has(set, c)) continue;
        uint32_t e = c;
        while (e + 1 < FLOW_CPU_SETSIZE && flow_cpuset_has(set, e + 1)) e++;
        int w = e == c ? snprintf(buf + used, len - used, "%s%u", used ? "," : "", c)
                       : snprintf(buf + used, len - used, "%s%u-%u", used ? "," : "", c, e);
        if (w < 0 || (size_t)w >= len - used) { /* truncated: end with "..." if room */
            if (len >= 4) strcpy(buf + len - 4, "...");
            return;
        }
        used += (size_t)w;
        c = e;
    }
}

/* Parse a decimal unsigned number at *p (no sign, no spaces); advance *p. 0 if none or > max. */
static int parse_uint(const char **p, uint64_t max, uint64_t *out) {
    const char *s = *p;
    if (!isdigit((unsigned char)*s)) return 0;
    uint64_t v = 0;
    while (isdigit((unsigned char)*s)) {
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max) return 0;
        s++;
    }
    *p = s;
    *out = v;
    return 1;
}

int flow_cpulist_parse(const char *text, flow_cpuset *out, const char *what, flow_error *err) {
    const char *name = what ? what : "cpulist";
    memset(out, 0, sizeof *out);
    if (!text) return flow_fail(err, FLOW_EINVAL, "%s: missing CPU list", name);
    if (!*text) return flow_fail(err, FLOW_EINVAL, "%s=\"\": empty (expected a CPU list such as 0-3,8)", name);
    const char *p = text;
    for (;;) {
        uint64_t a, b, stride = 1;
        const char *item = p;
        if (!parse_uint(&p, 1u << 30, &a)) goto bad;
        b = a;
        if (*p == '-') {
            p++;
            if (!parse_uint(&p, 1u << 30, &b)) goto bad;
            if (*p == ':') {
                p++;
                if (!parse_uint(&p, 1u << 30, &stride)) goto bad;
                if (stride == 0)
                    return flow_fail(err, FLOW_EINVAL, "%s=\"%.64s\": stride 0 in \"%.*s\"", name, text,
                                     (int)(p - item), item);
            }
            if (b < a)
                return flow_fail(err, FLOW_EINVAL, "%s=\"%.64s\": range %llu-%llu runs backwards", name,
                                 text, (unsigned long long)a, (unsigned long long)b);
        }
        if (b >= FLOW_CPU_SETSIZE)
            return flow_fail(err, FLOW_EINVAL, "%s=\"%.64s\": CPU %llu is out of range (0-%d)", name, text,
                             (unsigned long long)b, FLOW_CPU_SETSIZE - 1);
        for (uint64_t c = a; c <= b; c += stride) flow_cpuset_add(out, (uint32_t)c);
        if (*p == 0) break;
        if (*p != ',') goto bad;
        p++;
    }
    return FLOW_OK;
bad:
    memset(out, 0, sizeof *out);
    return flow_fail(err, FLOW_EINVAL,
                     "%s=\"%.64s\": not a CPU list (expected N, N-M or N-M:S, comma-separated)", name, text);
}

int flow_config_init(flow_config *cfg, flow_error *err) {
    memset(cfg, 0, sizeof *cfg);
    int rc = flow_cpuset_allowed(&cfg->cpus, err);
    if (rc != FLOW_OK) return rc;
    cfg->workers = flow_cpuset_count(&cfg->cpus);
    cfg->pin = FLOW_PIN_NONE;
    cfg->spin_ns = FLOW_DEFAULT_SPIN_NS;
    cfg->sched = FLOW_SCHED_NORMAL;
    cfg->nice = FLOW_DEFAULT_NICE;
    cfg->slice_ns = FLOW_DEFAULT_SLICE_NS;
    return FLOW_OK;
}

/* `value` as one of `count` keywords: its index in *out, or an error naming the variable, the value and
 * the keywords it expects (`expected`, as a sentence says them). */
static int parse_keyword_var(const char *name, const char *value, const char *const keywords[], int count,
                             const char *expected, int *out, flow_error *err) {
    for (int i = 0; i < count; i++)
        if (strcmp(value, keywords[i]) == 0) {
            *out = i;
            return FLOW_OK;
        }
    return flow_fail(err, FLOW_EINVAL, "%s=\"%.64s\": expected %s", name, value, expected);
}

/* FLOW_SLICE_NS: 0 (the kernel's own) or the kernel's range for a normal thread's slice. */
static int slice_in_range(uint64_t v) { return v == 0 || (v >= FLOW_MIN_SLICE_NS && v <= FLOW_MAX_SLICE_NS); }

/* Strict decimal integer within [lo, hi]: whole string, no sign, no spaces. */
static int parse_int_var(const char *name, const char *value, uint64_t lo, uint64_t hi, uint64_t *out,
                         flow_error *err) {
    if (!*value) return flow_fail(err, FLOW_EINVAL, "%s=\"\": empty (expected a whole number)", name);
    const char *p = value;
    uint64_t v;
    if (!parse_uint(&p, UINT64_MAX / 10 - 10, &v) || *p)
        return flow_fail(err, FLOW_EINVAL, "%s=\"%.64s\": not a whole number", name, value);
    if (v < lo || v > hi)
        return flow_fail(err, FLOW_EINVAL, "%s=\"%.64s\": out of range (%llu-%llu)", name, value,
                         (unsigned long long)lo, (unsigned long long)hi);
    *out = v;
    return FLOW_OK;
}

int flow_config_set(flow_config *cfg, const char *name, const char *value, flow_error *err) {
    if (!name) return flow_fail(err, FLOW_EINVAL, "configuration variable: missing name");
    if (!value) return flow_fail(err, FLOW_EINVAL, "%s: missing value", name);
    if (strcmp(name, "FLOW_WORKERS") == 0) {
        uint64_t v;
        int rc = parse_int_var(name, value, 1, FLOW_MAX_WORKERS, &v, err);
        if (rc == FLOW_OK) {
            cfg->workers = (uint32_t)v;
            cfg->workers_explicit = 1;
        }
        return rc;
    }
    if (strcmp(name, "FLOW_SPIN_NS") == 0) {
        uint64_t v;
        int rc = parse_int_var(name, value, 0, (uint64_t)FLOW_MAX_SPIN_NS, &v, err);
        if (rc == FLOW_OK) cfg->spin_ns = (int64_t)v;
        return rc;
    }
    if (strcmp(name, "FLOW_NICE") == 0) {
        uint64_t v;
        int rc = parse_int_var(name, value, 0, FLOW_MAX_NICE, &v, err);
        if (rc == FLOW_OK) cfg->nice = (int)v;
        return rc;
    }
    if (strcmp(name, "FLOW_SLICE_NS") == 0) {
        uint64_t v;
        int rc = parse_int_var(name, value, 0, UINT64_MAX / 10 - 10, &v, err);
        if (rc == FLOW_OK && !slice_in_range(v))
            return flow_fail(err, FLOW_EINVAL, "%s=\"%.64s\": out of range (0, or %d-%d)", name, value,
                             FLOW_MIN_SLICE_NS, FLOW_MAX_SLICE_NS);
        if (rc == FLOW_OK) cfg->slice_ns = (int64_t)v;
        return rc;
    }
    if (strcmp(name, "FLOW_PIN") == 0) {
        static const char *const modes[] = {"none", "compact", "spread"}; /* FLOW_PIN_* in order */
        int v = 0;
        int rc = parse_keyword_var(name, value, modes, 3, "none, compact or spread", &v, err);
        if (rc == FLOW_OK) cfg->pin = (flow_pin_mode)v;
        return rc;
    }
    if (strcmp(name, "FLOW_SCHED") == 0) {
        static const char *const modes[] = {"normal", "batch", "idle"}; /* FLOW_SCHED_* in order */
        int v = 0;
        int rc = parse_keyword_var(name, value, modes, 3, "normal, batch or idle", &v, err);
        if (rc == FLOW_OK) cfg->sched = (flow_sched_mode)v;
        return rc;
    }
    if (strcmp(name, "FLOW_CPUS") == 0) {
        flow_cpuset want, allowed;
        int rc = flow_cpulist_parse(value, &want, name, err);
        if (rc != FLOW_OK) return rc;
        rc = flow_cpuset_allowed(&allowed, err);
        if (rc != FLOW_OK) return rc;
        for (uint32_t c = 0; c < FLOW_CPU_SETSIZE; c++) {
            if (flow_cpuset_has(&want, c) && !flow_cpuset_has(&allowed, c)) {
                char list[128];
                flow_cpulist_format(&allowed, list, sizeof list);
                return flow_fail(err, FLOW_EINVAL,
                                 "FLOW_CPUS=\"%.64s\": CPU %u is not in this process's allowed set (%s)", value,
                                 c, list);
            }
        }
        /* the default worker count follows the CPU set unless a count was given explicitly */
        if (!cfg->workers_explicit) cfg->workers = flow_cpuset_count(&want);
        cfg->cpus = want;
        return FLOW_OK;
    }
    return flow_fail(err, FLOW_EINVAL, "%.64s: unknown configuration variable (expected FLOW_WORKERS, FLOW_CPUS, "
                     "FLOW_PIN, FLOW_SPIN_NS, FLOW_SCHED, FLOW_NICE or FLOW_SLICE_NS)", name);
}

int flow_config_apply_env(flow_config *cfg, flow_error *err) {
    static const char *const names[] = {"FLOW_WORKERS", "FLOW_CPUS", "FLOW_PIN", "FLOW_SPIN_NS", "FLOW_SCHED",
                                        "FLOW_NICE", "FLOW_SLICE_NS"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (!v) continue;
        int rc = flow_config_set(cfg, names[i], v, err);
        if (rc != FLOW_OK) return rc;
    }
    return FLOW_OK;
}

int flow_config_validate(const flow_config *cfg, flow_error *err) {
    if (!cfg) return flow_fail(err, FLOW_EINVAL, "configuration: NULL");
    if (cfg->workers < 1 || cfg->workers > FLOW_MAX_WORKERS)
        return flow_fail(err, FLOW_EINVAL, "workers=%u: must be between 1 and %d", cfg->workers, FLOW_MAX_WORKERS);
    if (cfg->spin_ns < 0 || cfg->spin_ns > FLOW_MAX_SPIN_NS)
        return flow_fail(err, FLOW_EINVAL, "spin_ns=%lld: must be between 0 and %lld", (long long)cfg->spin_ns,
                         (long long)FLOW_MAX_SPIN_NS);
    if (cfg->pin != FLOW_PIN_NONE && cfg->pin != FLOW_PIN_COMPACT && cfg->pin != FLOW_PIN_SPREAD)
        return flow_fail(err, FLOW_EINVAL, "pin=%d: expected none, compact or spread", (int)cfg->pin);
    if (cfg->sched != FLOW_SCHED_NORMAL && cfg->sched != FLOW_SCHED_BATCH && cfg->sched != FLOW_SCHED_IDLE)
        return flow_fail(err, FLOW_EINVAL, "sched=%d: expected normal, batch or idle", (int)cfg->sched);
    if (cfg->nice < 0 || cfg->nice > FLOW_MAX_NICE)
        return flow_fail(err, FLOW_EINVAL, "nice=%d: must be between 0 and %d", cfg->nice, FLOW_MAX_NICE);
    if (cfg->slice_ns < 0 || !slice_in_range((uint64_t)cfg->slice_ns))
        return flow_fail(err, FLOW_EINVAL, "slice_ns=%lld: must be 0 or between %d and %d", (long long)cfg->slice_ns,
                         FLOW_MIN_SLICE_NS, FLOW_MAX_SLICE_NS);
    if (flow_cpuset_count(&cfg->cpus) == 0) return flow_fail(err, FLOW_EINVAL, "cpus: empty CPU set");
    flow_cpuset allowed;
    int rc = flow_cpuset_allowed(&allowed, err);
    if (rc != FLOW_OK) return rc;
    for (uint32_t c = 0; c < FLOW_CPU_SETSIZE; c++)
        if (flow_cpuset_has(&cfg->cpus, c) && !flow_cpuset_has(&allowed, c))
            return flow_fail(err, FLOW_EINVAL, "cpus: CPU %u is not in this process's allowed set", c);
    return FLOW_OK;
}
