/*
 * cflow_checks.h — CFlow's behavioural checks, written in C so that ctest (through main.c) and
 * `swift test` (through Tests/AsyncFlowTests/CFlowChecksTests.swift) run the very same code.
 */
#ifndef CFLOW_CHECKS_H
#define CFLOW_CHECKS_H
#include <stddef.h>

#define FLOW_CHECK_PASS 0
#define FLOW_CHECK_FAIL 1
#define FLOW_CHECK_SKIP 2

int flow_check_count(void);
const char *flow_check_name(int i);
/** Run the named check. Returns FLOW_CHECK_PASS / _FAIL / _SKIP; msg receives a summary or the failure. */
int flow_check_run(const char *name, char *msg, size_t len);

/** For the Swift leak test: bytes the C heap has handed out and not got back (glibc mallinfo2), after
 *  returning free memory at the top of the heap to the system (malloc_trim). */
size_t flow_check_heap_in_use(void);

/** The calling thread's scheduling class as a flow_sched_mode (FLOW_SCHED_*), or -1 for another class. */
int flow_check_thread_sched(void);

/** The calling thread's nice value (Linux: each thread has its own), and the process's (its main thread's). */
int flow_check_thread_nice(void);
int flow_check_process_nice(void);

/** The time slice in ns the kernel reports for the calling thread, and for the process's main thread
 *  (sched_getattr: Linux 6.12+ reports every normal thread's; older kernels 0; -1 where the call fails). */
long long flow_check_thread_slice_ns(void);
long long flow_check_process_slice_ns(void);

/** Whether the calling thread is a CFlow pool thread (named "flow-worker-N"). */
int flow_check_on_pool_thread(void);
#endif
