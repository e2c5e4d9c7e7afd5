/*
 * Helpers shared by the C examples: a monotonic clock, checks that count
 * failures, and the timing line every example prints next to the seed
 * tutorial's claim.
 *
 * Include this first: it asks for POSIX.1-2008 before any system header
 * (the examples are compiled with -std=c11, which hides clock_gettime).
 */
#ifndef SPINDLE_EXAMPLE_COMMON_H
#define SPINDLE_EXAMPLE_COMMON_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spindle.h"

/* Wrong outcomes seen so far, by any task on any worker thread (C tasks run
 * in parallel, so shared counters are atomic). */
static atomic_int example_failures;

/* Seconds on the monotonic clock. */
static inline double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Records a wrong outcome. */
static inline void example_fail(const char *file, int line, const char *what) {
    fprintf(stderr, "FAILED %s:%d: %s\n", file, line, what);
    fflush(stderr);
    atomic_fetch_add(&example_failures, 1);
}

/* Checks a condition; on failure, says which and counts it. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            example_fail(__FILE__, __LINE__, #cond);                                               \
    } while (0)

/* Checks that a call returned the expected status code. */
#define CHECK_RC(expr, expected)                                                                   \
    do {                                                                                           \
        int check_rc_got_ = (expr);                                                                \
        int check_rc_want_ = (expected);                                                           \
        if (check_rc_got_ != check_rc_want_) {                                                     \
            char check_rc_msg_[512];                                                               \
            snprintf(check_rc_msg_, sizeof check_rc_msg_, "%s returned %d (%s), expected %d (%s)", \
                     #expr, check_rc_got_, spindle_strerror(check_rc_got_), check_rc_want_,        \
                     spindle_strerror(check_rc_want_));                                            \
            example_fail(__FILE__, __LINE__, check_rc_msg_);                                       \
        }                                                                                          \
    } while (0)

/* Whether timings are only reported, not judged (set under valgrind, which
 * slows every instruction down). */
static inline int timing_is_checked(void) {
    const char *off = getenv("SPINDLE_EXAMPLES_NO_TIMING");
    return off == NULL || off[0] == '\0' || strcmp(off, "0") == 0;
}

/*
 * Prints one timing line, the measured time next to what the seed tutorial
 * claims, and checks it lies in [min, max]:
 *
 *   [timing] two 1 s fetches: 1.002 s (seed: ~1 s, not ~2 s) [ok: 0.95..1.50 s]
 *
 * tests/c_examples.rs reads these lines. The bounds are generous: a sleep
 * never ends early, and `max` sits well between the concurrent time and the
 * sequential one, so a loaded machine does not make them fail.
 */
static inline void report_timing(const char *what, double measured, const char *claim, double min,
                                 double max) {
    const char *verdict;
    if (!timing_is_checked())
        verdict = "unchecked";
    else if (measured >= min && measured <= max)
        verdict = "ok";
    else
        verdict = "WRONG";
    printf("[timing] %s: %.3f s (seed: %s) [%s: %.2f..%.2f s]\n", what, measured, claim, verdict,
           min, max);
    fflush(stdout);
    if (strcmp(verdict, "WRONG") == 0)
        example_fail(__FILE__, __LINE__, what);
}

/* Line-buffered output, so that a pipe sees every line even if the
 * program dies. Call first in main(). */
static inline void example_start(const char *title) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("== %s (libspindle %s) ==\n", title, spindle_version());
}

/* The exit status of an example: 0 if the run returned `rc == 0` and every
 * check held. */
static inline int example_finish(int rc) {
    if (rc != 0) {
        fprintf(stderr, "FAILED: the main task returned %d (%s)\n", rc, spindle_strerror(rc));
        atomic_fetch_add(&example_failures, 1);
    }
    int failures = atomic_load(&example_failures);
    if (failures == 0) {
        printf("== OK ==\n");
        return 0;
    }
    printf("== FAILED: %d wrong outcome(s) ==\n", failures);
    return 1;
}

/* Task results are `void *`: small integers travel as intptr_t. */
#define INT_TO_PTR(i) ((void *)(intptr_t)(i))
#define PTR_TO_INT(p) ((int)(intptr_t)(p))

#endif /* SPINDLE_EXAMPLE_COMMON_H */
