/*
 * wait: FIRST_COMPLETED, the loop over what is left, and a timeout (seeds
 * "Running Concurrent Tasks", "Chapter 26", "Tasks & Futures", "Tasks and
 * Concurrency").
 *
 *   done, pending = await asyncio.wait(tasks, return_when=FIRST_COMPLETED)
 *   first_task = done.pop(); print(first_task.result())   # Server2 after 1 s
 *   for task in pending: task.cancel()
 *
 * spindle_wait(tasks, n, return_when, seconds, done, &done_count) marks in
 * done[i] which tasks are done; it cancels nothing (not at the timeout
 * either): the caller cancels what it no longer needs.
 */
#include "common.h"

struct server {
    const char *name;
    double delay;
};

/* async def fetch_from_server(server, delay): await sleep(delay); return f"Data from {server}" */
static int fetch_from_server(void *arg, void **result) {
    const struct server *s = arg;
    int rc = spindle_sleep(s->delay);
    if (rc != 0)
        return rc;
    *result = (void *)s->name;
    return 0;
}

static void race_the_servers(void) {
    printf("-- wait(FIRST_COMPLETED): race three servers, keep the fastest --\n");
    struct server servers[3] = {{"Server1", 2.0}, {"Server2", 1.0}, {"Server3", 3.0}};
    spindle_task *tasks[3];
    double start = now();
    for (int i = 0; i < 3; i++)
        CHECK_RC(spindle_spawn(fetch_from_server, &servers[i], servers[i].name, &tasks[i]), 0);
    int done[3] = {0};
    size_t done_count = 0;
    CHECK_RC(spindle_wait(tasks, 3, SPINDLE_FIRST_COMPLETED, -1.0, done, &done_count), 0);
    double first_at = now() - start;
    printf("  %zu done, %zu pending\n", done_count, 3 - done_count);
    CHECK(done_count == 1 && done[1] == 1);
    for (int i = 0; i < 3; i++) {
        if (done[i]) {
            void *value = NULL;
            CHECK_RC(spindle_task_result(tasks[i], &value), 0);
            printf("  First result: Data from %s\n", value ? (const char *)value : "?");
            CHECK(value && strcmp(value, "Server2") == 0);
        } else {
            /* Cancel the remaining ones, and wait for them to end. */
            CHECK_RC(spindle_task_cancel(tasks[i], NULL, NULL), 0);
            CHECK_RC(spindle_task_join(tasks[i], NULL), SPINDLE_ECANCELED);
        }
        spindle_task_free(tasks[i]);
    }
    double took = now() - start;
    report_timing("first of 2 s, 1 s and 3 s", first_at, "~1 s", 0.99, 1.4);
    report_timing("with the others cancelled", took, "~1 s, not 3 s", 0.99, 1.5);
}

static void loop_until_all_done(void) {
    printf("-- while tasks: wait(FIRST_COMPLETED) --\n");
    struct server timed[3] = {{"slow (0.3s)", 0.3}, {"fast (0.1s)", 0.1}, {"medium (0.2s)", 0.2}};
    spindle_task *tasks[3];
    int finished[3] = {0};
    const char *order[3] = {0};
    size_t seen = 0;
    double start = now();
    for (int i = 0; i < 3; i++)
        CHECK_RC(spindle_spawn(fetch_from_server, &timed[i], NULL, &tasks[i]), 0);
    while (seen < 3) {
        /* The pending set: the tasks not reported yet. */
        spindle_task *pending[3];
        int index[3];
        size_t n = 0;
        for (int i = 0; i < 3; i++)
            if (!finished[i]) {
                pending[n] = tasks[i];
                index[n++] = i;
            }
        int done[3] = {0};
        size_t count = 0;
        int rc = spindle_wait(pending, n, SPINDLE_FIRST_COMPLETED, -1.0, done, &count);
        CHECK_RC(rc, 0);
        if (rc != 0)
            break;
        for (size_t k = 0; k < n; k++) {
            if (!done[k])
                continue;
            void *value = NULL;
            CHECK_RC(spindle_task_result(pending[k], &value), 0);
            printf("  Completed: %s\n", value ? (const char *)value : "?");
            finished[index[k]] = 1;
            order[seen++] = value;
        }
    }
    CHECK(seen == 3);
    if (timing_is_checked()) { /* under valgrind they may all end together */
        CHECK(order[0] && strcmp(order[0], "fast (0.1s)") == 0);
        CHECK(order[2] && strcmp(order[2], "slow (0.3s)") == 0);
    }
    for (int i = 0; i < 3; i++)
        spindle_task_free(tasks[i]);
    report_timing("three tasks reported as they complete", now() - start, "~0.3 s", 0.29, 0.6);
}

static void with_a_timeout(void) {
    /* The tutorial's times (i * 0.1 s, timeout 0.25 s), doubled: a margin of
     * 0.1 s on each side of the timeout. */
    printf("-- wait(tasks, timeout=0.5) over work(i) = sleep(i * 0.2), i < 5 --\n");
    static struct server work[5];
    static char names[5][24];
    spindle_task *tasks[5];
    double start = now();
    for (int i = 0; i < 5; i++) {
        snprintf(names[i], sizeof names[i], "work-%d", i);
        work[i] = (struct server){names[i], i * 0.2};
        CHECK_RC(spindle_spawn(fetch_from_server, &work[i], names[i], &tasks[i]), 0);
    }
    int done[5] = {0};
    size_t count = 0;
    CHECK_RC(spindle_wait(tasks, 5, SPINDLE_ALL_COMPLETED, 0.5, done, &count), 0);
    double took = now() - start;
    printf("  Done: %zu, Pending: %zu\n", count, 5 - count);
    CHECK(count == 3 && done[0] && done[1] && done[2] && !done[3] && !done[4]);
    /* Don't forget to cancel pending tasks! */
    for (int i = 0; i < 5; i++) {
        if (!done[i]) {
            CHECK_RC(spindle_task_cancel(tasks[i], NULL, NULL), 0);
            CHECK_RC(spindle_task_join(tasks[i], NULL), SPINDLE_ECANCELED);
        }
        spindle_task_free(tasks[i]);
    }
    report_timing("wait with a 0.5 s timeout", took, "0.5 s", 0.49, 0.8);
}

static int main_task(void *arg, void **result) {
    (void)arg;
    (void)result;
    race_the_servers();
    loop_until_all_done();
    with_a_timeout();
    return 0;
}

int main(void) {
    example_start("wait");
    return example_finish(spindle_run(NULL, main_task, NULL, NULL));
}
