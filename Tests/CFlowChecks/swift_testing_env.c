/*
 * swift_testing_env.c — runs when the Swift test binary loads, before Swift Testing starts.
 *
 * Swift Testing records a backtrace for every error thrown while a test runs (a swift_willThrow hook)
 * and keeps it until the test ends. The leak test (LeakTests.swift) throws thousands of errors on
 * purpose (failing and cancelled pipelines) and measures the heap, which those records would grow by
 * ~100 bytes an error. Turning the capture off (SWT_SWIFT_ERROR_BACKTRACING_ENABLED=0, read once at
 * start-up) leaves the heap to AsyncFlow. An explicit setting in the environment wins.
 */
#include <stdlib.h>

__attribute__((constructor)) static void flow_checks_quiet_error_backtraces(void) {
    setenv("SWT_SWIFT_ERROR_BACKTRACING_ENABLED", "0", 0);
}
