/*
 * flow_config.h — worker-pool settings, from the environment or set in code, with one parser.
 *
 *   FLOW_WORKERS  threads in a pool                      default: CPUs the process may use
 *   FLOW_CPUS     CPUs to use, a cpulist as `taskset -c` takes it ("0-3,8,10-14:2"); must lie inside
 *                 the process's affinity mask (sched_getaffinity)       default: that mask
 *   FLOW_PIN      none | compact | spread                               default: none
 *   FLOW_SPIN_NS  spin budget in ns before a worker parks, 0..10000000000 default: FLOW_DEFAULT_SPIN_NS
 *   FLOW_SCHED    normal | batch | idle: the workers' scheduling class   default: normal
 *                 (Linux: SCHED_OTHER, SCHED_BATCH, SCHED_IDLE; idle threads run only when no other
 *                 thread of normal class wants the CPU, so an app's own threads go first)
 *   FLOW_NICE     0..19: how much nicer than the process the workers run  default: FLOW_DEFAULT_NICE
 *                 (Linux, where each thread has its own nice value; the process's others keep theirs,
 *                 so a thread of the app that wakes gets a CPU from a busy worker at once)
 *   FLOW_SLICE_NS 0 | 100000..100000000: the workers' time slice in ns  default: FLOW_DEFAULT_SLICE_NS
 *                 (Linux 6.12+, whose EEVDF scheduler lets a waking thread with a shorter slice than
 *                 the running one's take its CPU at once; 0: the kernel's own; older kernels ignore it)
 *
 * A bad value is an error whose message names the variable and the value, e.g.
 *   FLOW_CPUS="0-x": not a CPU list (expected N, N-M or N-M:S, comma-separated)
 * Nothing falls back silently and nothing crashes on bad input.
 */
#ifndef CFLOW_CONFIG_H
#define CFLOW_CONFIG_H

#include "flow_base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FLOW_CPU_SETSIZE 1024
#define FLOW_MAX_WORKERS 4096
/** The workers' nice increment over the process's by default: the kernel then runs a cooperative task that
 *  wakes beside a busy pipeline soon (docs/performance: the coexist scenario), while a pipeline alone on its
 *  CPUs keeps its whole speed. */
#define FLOW_DEFAULT_NICE 5
#define FLOW_MAX_NICE 19
/** The workers' time slice by default: longer than the kernel's own for every other thread (about
 *  0.7 ms × (1 + log2 CPUs, counting up to 8): 0.7–2.8 ms), so a waking app thread has the shorter slice
 *  and can take the CPU at once instead of waiting out a worker's (up to a scheduler tick, 4 ms at 250 Hz),
 *  and short enough that workers which outnumber the CPUs still take turns within milliseconds. */
#define FLOW_DEFAULT_SLICE_NS 5000000
#define FLOW_MIN_SLICE_NS 100000    /* the kernel's range for sched_attr.sched_runtime of a normal thread */
#define FLOW_MAX_SLICE_NS 100000000

/** A set of CPU numbers 0..FLOW_CPU_SETSIZE-1. */
typedef struct flow_cpuset {
    uint64_t bits[FLOW_CPU_SETSIZE / 64];
} flow_cpuset;

typedef enum flow_pin_mode {
    FLOW_PIN_NONE = 0,    /**< threads float over the allowed CPUs */
    FLOW_PIN_COMPACT = 1, /**< worker i on the i-th allowed CPU (wrapping), SMT siblings next to each other */
    FLOW_PIN_SPREAD = 2,  /**< workers spread over distinct physical cores first, then their siblings */
} flow_pin_mode;

typedef enum flow_sched_mode {
    FLOW_SCHED_NORMAL = 0, /**< the OS's time-sharing class (SCHED_OTHER) */
    FLOW_SCHED_BATCH = 1,  /**< SCHED_BATCH: CPU-bound, does not preempt others when it wakes */
    FLOW_SCHED_IDLE = 2,   /**< SCHED_IDLE: runs only when no normal-class thread wants the CPU */
} flow_sched_mode;

typedef struct flow_config {
    uint32_t workers;    /**< >= 1 */
    flow_cpuset cpus;    /**< non-empty; a subset of the process's affinity mask */
    flow_pin_mode pin;
    int64_t spin_ns;     /**< 0 .. FLOW_MAX_SPIN_NS */
    int workers_explicit; /**< set by flow_config_set("FLOW_WORKERS"): FLOW_CPUS then keeps `workers` */
    flow_sched_mode sched; /**< the worker threads' scheduling class */
    int nice;              /**< 0 .. FLOW_MAX_NICE: the workers' nice value over the process's (Linux) */
    int64_t slice_ns;      /**< 0 (the kernel's) or FLOW_MIN_SLICE_NS .. FLOW_MAX_SLICE_NS (Linux 6.12+) */
} flow_config;

/** Defaults: the process's affinity mask, one worker per CPU in it, no pinning, the default spin, nice
 *  and slice. */
int flow_config_init(flow_config *cfg, flow_error *err);
/** Set one variable by name ("FLOW_WORKERS", "FLOW_CPUS", "FLOW_PIN", "FLOW_SPIN_NS", "FLOW_SCHED",
 *  "FLOW_NICE", "FLOW_SLICE_NS") from its text.
 *  The same parser reads the environment and programmatic overrides. An unknown name is FLOW_EINVAL.
 *  Setting FLOW_CPUS also sets workers to the new set's size unless FLOW_WORKERS was set (either order). */
int flow_config_set(flow_config *cfg, const char *name, const char *value, flow_error *err);
/** Apply every FLOW_* variable present in the environment. Unset variables leave cfg as it is;
 *  the first bad one stops the call with its error. */
int flow_config_apply_env(flow_config *cfg, flow_error *err);
/** Check a configuration filled in by hand (workers range, CPU set inside the affinity mask...). */
int flow_config_validate(const flow_config *cfg, flow_error *err);

/** Parse a cpulist ("0-3,8,10-14:2") into out. Errors name the variable `what` (may be NULL). */
int flow_cpulist_parse(const char *text, flow_cpuset *out, const char *what, flow_error *err);
/** Format a set as a cpulist ("0-3,8") into buf (always NUL-terminated). */
void flow_cpulist_format(const flow_cpuset *set, char *buf, size_t len);
/** The CPUs this process may run on (sched_getaffinity; all online CPUs where that is unknown). */
int flow_cpuset_allowed(flow_cpuset *out, flow_error *err);
uint32_t flow_cpuset_count(const flow_cpuset *set);
int flow_cpuset_has(const flow_cpuset *set, uint32_t cpu);
void flow_cpuset_add(flow_cpuset *set, uint32_t cpu);

#ifdef __cplusplus
}
#endif
#endif
