/*
 * Cancellation with cleanup (seeds "Asyncio Tasks", "Running Concurrent
 * Tasks", "Tasks & Futures", "Tasks and Concurrency").
 *
 *   async def task_with_cleanup():
 *       try:
 *           await asyncio.sleep(10)
 *       except asyncio.CancelledError:
 *           print("Cleaning up resources...")
 *           await asyncio.sleep(0.1)      # cleanup can still await
 *           raise                         # always re-raise
 *       finally:
 *           print("Finally block executed")
 *
 * In C, spindle_task_cancel records a request; the task's current or next
 * blocking call returns SPINDLE_ECANCELED, once. Later blocking calls work
 * again, so cleanup can sleep, join or take a lock. The task then returns
 * SPINDLE_ECANCELED from its function: that is the `raise`.
 */
#include "common.h"

/* async def long_running(): while True: print("Working..."); await sleep(0.1) */
static int long_running(void *arg, void **result) {
    (void)arg;
    (void)result;
    for (;;) {
        printf("  Working...\n");
        int rc = spindle_sleep(0.1);
        if (rc == SPINDLE_ECANCELED) {
            printf("  Task was cancelled! Cleaning up...\n");
            return SPINDLE_ECANCELED; /* re-raise */
        }
        if (rc != 0)
            return rc;
    }
}

static atomic_int cleanup_done;

static int task_with_cleanup(void *arg, void **result) {
    (void)arg;
    (void)result;
    printf("  Acquiring resources...\n");
    int rc = spindle_sleep(10.0);
    if (rc == SPINDLE_ECANCELED) {
        printf("  Cleaning up resources...\n");
        /* The cancellation was delivered once: this sleep runs normally. */
        int cleanup = spindle_sleep(0.1);
        CHECK_RC(cleanup, 0);
        printf("  Cleanup complete\n");
        atomic_store(&cleanup_done, 1);
    }
    printf("  Finally block executed\n");
    return rc; /* SPINDLE_ECANCELED: the task ends cancelled */
}

/* A task that swallows the cancellation (discouraged): it is not
 * cancelled() in the end. */
static int stubborn(void *arg, void **result) {
    (void)arg;
    int rc = spindle_sleep(10.0);
    printf("  stubborn: %s, carrying on anyway\n", spindle_strerror(rc));
    rc = spindle_sleep(0.01);
    *result = "finished regardless";
    return rc;
}

static int main_task(void *arg, void **result) {
    (void)arg;
    (void)result;

    printf("-- cancel a working loop after 0.3 s --\n");
    spindle_task *task;
    CHECK_RC(spindle_spawn(long_running, NULL, "long_running", &task), 0);
    CHECK_RC(spindle_sleep(0.3), 0); /* let it run for a bit */
    int requested = 0;
    CHECK_RC(spindle_task_cancel(task, NULL, &requested), 0); /* request cancellation */
    CHECK(requested == 1);
    int rc = spindle_task_join(task, NULL);
    if (rc == SPINDLE_ECANCELED)
        printf("  Confirmed: task is cancelled\n");
    CHECK(rc == SPINDLE_ECANCELED);
    spindle_task_free(task);

    printf("-- cleanup that awaits, cancelled after 1 s of a 10 s sleep --\n");
    double start = now();
    CHECK_RC(spindle_spawn(task_with_cleanup, NULL, "task_with_cleanup", &task), 0);
    CHECK_RC(spindle_sleep(1.0), 0);
    printf("  Main: Cancelling task\n");
    /* task.cancel(msg="Timeout exceeded") */
    CHECK_RC(spindle_task_cancel(task, "Timeout exceeded", &requested), 0);
    CHECK(requested == 1);
    rc = spindle_task_join(task, NULL);
    double took = now() - start;
    int cancelled = 0;
    CHECK_RC(spindle_task_cancelled(task, &cancelled), 0);
    printf("  Main: Task was cancelled: join -> %s, cancelled() = %d\n", spindle_strerror(rc),
           cancelled);
    CHECK(rc == SPINDLE_ECANCELED && cancelled == 1);
    CHECK(atomic_load(&cleanup_done) == 1);
    /* Cancelling a task that is done records nothing. */
    CHECK_RC(spindle_task_cancel(task, NULL, &requested), 0);
    CHECK(requested == 0);
    spindle_task_free(task);
    report_timing("cancel at 1 s, 0.1 s of cleanup", took, "~1.1 s, not 10 s", 1.09, 1.7);

    printf("-- a task that swallows its cancellation is not cancelled --\n");
    CHECK_RC(spindle_spawn(stubborn, NULL, "stubborn", &task), 0);
    CHECK_RC(spindle_sleep(0.05), 0);
    CHECK_RC(spindle_task_cancel(task, NULL, NULL), 0);
    void *value = NULL;
    CHECK_RC(spindle_task_join(task, &value), 0);
    CHECK_RC(spindle_task_cancelled(task, &cancelled), 0);
    printf("  join -> %s, cancelled() = %d\n", value ? (const char *)value : "?", cancelled);
    CHECK(cancelled == 0);
    spindle_task_free(task);
    return 0;
}

int main(void) {
    example_start("cancellation with cleanup");
    return example_finish(spindle_run(NULL, main_task, NULL, NULL));
}
