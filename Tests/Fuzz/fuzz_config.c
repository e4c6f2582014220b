/*
 * fuzz_config.c — libFuzzer target for CFlow's FLOW_* parsers (config.c): flow_config_set for each
 * variable (and unknown names) and flow_cpulist_parse, under AddressSanitizer and UBSan.
 * Input: first byte picks the variable, the rest is its value (as getenv would hand it over).
 * Besides "no crash, no sanitizer report", it checks what a caller relies on:
 *  - an error leaves a non-empty, NUL-terminated message that names the variable;
 *  - success leaves a configuration that flow_config_validate accepts;
 *  - a CPU list that parses prints (flow_cpulist_format) as a list that parses to the same set.
 * Build and run: Tests/Fuzz/run.sh [libFuzzer flags]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "flow_config.h"

static const char *const names[] = {"FLOW_WORKERS", "FLOW_CPUS", "FLOW_PIN", "FLOW_SPIN_NS",
                                    "FLOW_BOGUS", "FLOW_SCHED", "FLOW_NICE", "FLOW_SLICE_NS"};

static void check_error(const flow_error *e, const char *name) {
    size_t len = strnlen(e->message, sizeof e->message);
    if (len == 0 || len == sizeof e->message) abort(); /* empty, or not terminated */
    if (strstr(e->message, name) == NULL) abort();     /* must name what is wrong */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const char *name = names[data[0] % (sizeof names / sizeof names[0])];
    char *value = malloc(size); /* the rest, as a C string (a NUL inside ends it, as in the environment) */
    memcpy(value, data + 1, size - 1);
    value[size - 1] = 0;

    flow_config cfg;
    flow_error err;
    if (flow_config_init(&cfg, &err) != FLOW_OK) abort();
    memset(&err, 0, sizeof err);
    if (flow_config_set(&cfg, name, value, &err) == FLOW_OK) {
        if (strcmp(name, "FLOW_BOGUS") == 0) abort();
        if (flow_config_validate(&cfg, &err) != FLOW_OK) abort();
    } else {
        check_error(&err, name);
    }

    flow_cpuset set, again;
    memset(&err, 0, sizeof err);
    if (flow_cpulist_parse(value, &set, "FUZZ_CPUS", &err) == FLOW_OK) {
        if (flow_cpuset_count(&set) == 0) abort();
        char text[8 * FLOW_CPU_SETSIZE];
        flow_cpulist_format(&set, text, sizeof text);
        if (flow_cpulist_parse(text, &again, "FUZZ_CPUS", &err) != FLOW_OK) abort();
        if (memcmp(&set, &again, sizeof set) != 0) abort();
    } else {
        check_error(&err, "FUZZ_CPUS");
    }
    free(value);
    return 0;
}
