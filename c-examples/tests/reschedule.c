/*
 * spindle_timeout_reschedule from outside the scope's task: a scope of 100 s
 * around a 30 s sleep, moved to 0 s (now, so already passed) by another C
 * task and by a plain thread outside the runtime, expires at once, as
 * asyncio's reschedule does (the expiry is scheduled with call_soon). The
 * sleep returns the cancellation, the scope's end turns it into
 * SPINDLE_ETIMEDOUT, and the scope says it expired. Moved by the scope's own
 * task, the same: its next blocking call returns the cancellation (the
 * scope cannot see the C code's suspensions, so it expires at once). On 1
 * and 2 workers. Exits non-zero on any wrong outcome.
 */
#include "common.h"

#include <pthread.h>

static void sleep_ms(long ms) {
    struct timespec delay = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&delay, NULL);
}

/* Moves the scope's deadline to now, 10 ms after it is started (the
 * scope's task is asleep by then; if not, it sees the cancellation at its
 * sleep all the same). */
static int move_from_a_task(void *scope, void **result) {
    (void)result;
    CHECK_RC(spindle_sleep(0.01), SPINDLE_OK);
    CHECK_RC(spindle_timeout_reschedule(scope, 0.0), SPINDLE_OK);
    return 0;
}

/* The same from a thread that is not the runtime's. */
static void *move_from_a_thread(void *scope) {
    sleep_ms(10);
    CHECK_RC(spindle_timeout_reschedule(scope, 0.0), SPINDLE_OK);
    return NULL;
}

enum mover { BY_A_TASK, BY_A_THREAD, BY_ITSELF };

/* Sleeps 30 s in a 100 s scope whose deadline `mover` moves to now. */
static void sleep_until_moved(enum mover mover) {
    double start = now();
    spindle_timeout *scope = NULL;
    CHECK_RC(spindle_timeout_begin(100.0, &scope), SPINDLE_OK);
    spindle_task *task = NULL;
    pthread_t thread;
    switch (mover) {
    case BY_A_TASK:
        CHECK_RC(spindle_spawn(move_from_a_task, scope, "mover", &task), SPINDLE_OK);
        break;
    case BY_A_THREAD:
        CHECK(pthread_create(&thread, NULL, move_from_a_thread, scope) == 0);
        break;
    case BY_ITSELF:
        CHECK_RC(spindle_timeout_reschedule(scope, 0.0), SPINDLE_OK);
        break;
    }
    int rc = spindle_sleep(30.0);
    CHECK_RC(rc, SPINDLE_ECANCELED);
    CHECK_RC(spindle_timeout_end(scope, rc), SPINDLE_ETIMEDOUT);
    if (mover == BY_A_TASK) {
        CHECK_RC(spindle_task_join(task, NULL), SPINDLE_OK);
        CHECK_RC(spindle_task_free(task), SPINDLE_OK);
    } else if (mover == BY_A_THREAD) {
        CHECK(pthread_join(thread, NULL) == 0);
    }
    int expired = 0;
    CHECK_RC(spindle_timeout_expired(scope, &expired), SPINDLE_OK);
    CHECK(expired == 1);
    CHECK_RC(spindle_timeout_free(scope), SPINDLE_OK);
    /* Generous: the move comes after about 10 ms; waiting for the sleep
     * would take 30 s. */
    CHECK(now() - start < 10.0);
}

static int reschedule_main(void *arg, void **result) {
    (void)arg;
    (void)result;
    sleep_until_moved(BY_A_TASK);
    sleep_until_moved(BY_A_THREAD);
    sleep_until_moved(BY_ITSELF);
    return 0;
}

int main(void) {
    example_start("moving a timeout scope's deadline from outside");
    for (uint32_t workers = 1; workers <= 2; workers++) {
        spindle_options options;
        CHECK_RC(spindle_options_init(&options), SPINDLE_OK);
        options.workers = workers;
        spindle_runtime *rt = NULL;
        CHECK_RC(spindle_runtime_new(&options, &rt), SPINDLE_OK);
        CHECK_RC(spindle_runtime_run(rt, reschedule_main, NULL, NULL), SPINDLE_OK);
        CHECK_RC(spindle_runtime_free(rt), SPINDLE_OK);
    }
    if (atomic_load(&example_failures) == 0)
        printf("a deadline moved into the past from outside expires the scope at once\n");
    return example_finish(0);
}
