/*
 * spindle_yield with nothing else to run: the task goes on in place,
 * without switching stacks, yet everything that must run between two of
 * its steps still does. Covered, on 1 and 2 workers, for a task spinning
 * on spindle_yield and on spindle_sleep(0): a sibling's timer fires; a
 * task spawned from another thread runs; a pipe's readiness reaches a
 * sibling waiting on it; a cancel from another thread reaches the spinner
 * (while the spawner waits in a join); a timeout scope around the spin
 * expires. And shutdown ends a task that yields in a loop and ignores its
 * cancellation (it is aborted). Exits non-zero on any wrong outcome.
 */
#include "common.h"

#include <pthread.h>
#include <unistd.h>

/* What the spinning task waits for. */
static atomic_int flag;

/* A spin that outlasts this has been starved: fail instead of hanging.
 * Under valgrind (timings not checked), whose threads take turns on one
 * lock, a spinning thread leaves the others little time: a pipe written
 * 20 ms after a sibling started waiting was written 5 s later under
 * helgrind. The limits are generous there. */
static double spin_limit_seconds(void) { return timing_is_checked() ? 30.0 : 300.0; }
static double fd_wait_seconds(void) { return timing_is_checked() ? 10.0 : 300.0; }

/* How the spinner yields. */
enum yield_kind { BY_YIELD, BY_SLEEP_0 };

/* Yields until `flag` is set: 0, or the status that ended the spin. */
static int spin_until_flag(enum yield_kind kind) {
    double give_up = now() + spin_limit_seconds();
    while (!atomic_load(&flag)) {
        int rc = kind == BY_YIELD ? spindle_yield() : spindle_sleep(0);
        if (rc != 0)
            return rc;
        if (now() > give_up) {
            example_fail(__FILE__, __LINE__, "the spinning task starved the others");
            return SPINDLE_ETIMEDOUT;
        }
    }
    return 0;
}

static void sleep_ms(long ms) {
    struct timespec delay = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&delay, NULL);
}

static int set_flag(void *arg, void **result) {
    (void)arg;
    (void)result;
    atomic_store(&flag, 1);
    return 0;
}

static int sleep_then_set_flag(void *arg, void **result) {
    (void)arg;
    (void)result;
    int rc = spindle_sleep(0.02);
    atomic_store(&flag, 1);
    return rc;
}

/* Waits until the pipe end `arg` is readable, reads a byte, sets `flag`. */
static int read_then_set_flag(void *arg, void **result) {
    (void)result;
    int fd = (int)(intptr_t)arg;
    int revents = 0;
    int rc = spindle_fd_wait(fd, SPINDLE_READABLE, fd_wait_seconds(), &revents);
    char byte = 0;
    if (rc == 0 && read(fd, &byte, 1) != 1)
        rc = SPINDLE_EIO;
    atomic_store(&flag, 1);
    return rc;
}

/* Thread bodies: act after 20 ms, from outside the runtime. */
static void *spawn_later(void *rt) {
    sleep_ms(20);
    CHECK_RC(spindle_runtime_spawn(rt, set_flag, NULL, NULL, NULL), SPINDLE_OK);
    return NULL;
}

static void *write_later(void *fd) {
    sleep_ms(20);
    CHECK(write((int)(intptr_t)fd, "x", 1) == 1);
    return NULL;
}

static void *cancel_later(void *task) {
    sleep_ms(20);
    CHECK_RC(spindle_task_cancel(task, "from a thread", NULL), SPINDLE_OK);
    return NULL;
}

static int spinner(void *arg, void **result) {
    (void)result;
    return spin_until_flag((enum yield_kind)(intptr_t)arg);
}

static int spin_main(void *rt, void **result) {
    (void)result;
    for (int k = BY_YIELD; k <= BY_SLEEP_0; k++) {
        enum yield_kind kind = k;
        spindle_task *task = NULL;
        pthread_t thread;

        /* A sibling's timer. */
        atomic_store(&flag, 0);
        CHECK_RC(spindle_spawn(sleep_then_set_flag, NULL, NULL, &task), SPINDLE_OK);
        CHECK_RC(spin_until_flag(kind), SPINDLE_OK);
        CHECK_RC(spindle_task_join(task, NULL), SPINDLE_OK);
        CHECK_RC(spindle_task_free(task), SPINDLE_OK);

        /* A task spawned from another thread. */
        atomic_store(&flag, 0);
        CHECK(pthread_create(&thread, NULL, spawn_later, rt) == 0);
        CHECK_RC(spin_until_flag(kind), SPINDLE_OK);
        CHECK(pthread_join(thread, NULL) == 0);

        /* I/O readiness, for a sibling waiting on a pipe. */
        int fds[2];
        CHECK(pipe(fds) == 0);
        atomic_store(&flag, 0);
        CHECK_RC(spindle_spawn(read_then_set_flag, (void *)(intptr_t)fds[0], NULL, &task),
                 SPINDLE_OK);
        CHECK(pthread_create(&thread, NULL, write_later, (void *)(intptr_t)fds[1]) == 0);
        CHECK_RC(spin_until_flag(kind), SPINDLE_OK);
        CHECK_RC(spindle_task_join(task, NULL), SPINDLE_OK);
        CHECK_RC(spindle_task_free(task), SPINDLE_OK);
        CHECK(pthread_join(thread, NULL) == 0);
        close(fds[0]);
        close(fds[1]);

        /* A cancel from another thread, while the spawner waits. */
        atomic_store(&flag, 0);
        CHECK_RC(spindle_spawn(spinner, (void *)(intptr_t)kind, NULL, &task), SPINDLE_OK);
        CHECK(pthread_create(&thread, NULL, cancel_later, task) == 0);
        CHECK_RC(spindle_task_join(task, NULL), SPINDLE_ECANCELED);
        CHECK(pthread_join(thread, NULL) == 0);
        CHECK_RC(spindle_task_free(task), SPINDLE_OK);

        /* A timeout scope around the spin. */
        atomic_store(&flag, 0);
        spindle_timeout *scope = NULL;
        CHECK_RC(spindle_timeout_begin(0.02, &scope), SPINDLE_OK);
        int rc = spin_until_flag(kind);
        CHECK_RC(rc, SPINDLE_ECANCELED);
        CHECK_RC(spindle_timeout_end(scope, rc), SPINDLE_ETIMEDOUT);
        CHECK_RC(spindle_timeout_free(scope), SPINDLE_OK);
    }
    return 0;
}

/* Yields forever, ignoring cancellations; returns once aborted (every
 * call then fails at once). */
static atomic_int stubborn_started;

static int stubborn(void *arg, void **result) {
    (void)arg;
    (void)result;
    atomic_store(&stubborn_started, 1);
    int cancels = 0;
    for (;;) {
        int rc = spindle_yield();
        if (rc == SPINDLE_ECANCELED && ++cancels > 1000)
            return rc;
    }
}

static int leave_a_stubborn_task(void *arg, void **result) {
    (void)arg;
    (void)result;
    CHECK_RC(spindle_spawn(stubborn, NULL, NULL, NULL), SPINDLE_OK);
    while (!atomic_load(&stubborn_started))
        CHECK_RC(spindle_sleep(0.001), SPINDLE_OK);
    return 0;
}

int main(void) {
    example_start("yielding with nothing else to run");
    for (uint32_t workers = 1; workers <= 2; workers++) {
        spindle_options options;
        CHECK_RC(spindle_options_init(&options), SPINDLE_OK);
        options.workers = workers;
        options.shutdown_timeout = 0.1;
        spindle_runtime *rt = NULL;
        CHECK_RC(spindle_runtime_new(&options, &rt), SPINDLE_OK);
        CHECK_RC(spindle_runtime_run(rt, spin_main, rt, NULL), SPINDLE_OK);
        atomic_store(&stubborn_started, 0);
        CHECK_RC(spindle_runtime_run(rt, leave_a_stubborn_task, NULL, NULL), SPINDLE_OK);
        CHECK_RC(spindle_runtime_free(rt), SPINDLE_OK);
    }
    if (atomic_load(&example_failures) == 0)
        printf("a lone yielding task leaves the others their turn\n");
    return example_finish(0);
}
