/*
 * as_completed: results in the order they finish (seeds "Asyncio Tasks",
 * "Running Concurrent Tasks", "Tasks & Futures").
 *
 *   tasks = [create_task(fetch("slow.com", 0.3)), create_task(fetch("fast.com", 0.1)),
 *            create_task(fetch("medium.com", 0.2))]
 *   for coro in asyncio.as_completed(tasks):
 *       print(await coro)      # fast.com, medium.com, slow.com
 *
 * spindle_as_completed_new(tasks, n, timeout, &it), then
 * spindle_as_completed_next(it, &task) until SPINDLE_EEMPTY.
 */
#include "common.h"

struct site {
    const char *url;
    double delay;
};

/* async def fetch(url, delay): await asyncio.sleep(delay); return f"Data from {url}" */
static int fetch(void *arg, void **result) {
    const struct site *s = arg;
    int rc = spindle_sleep(s->delay);
    if (rc != 0)
        return rc;
    *result = (void *)s->url;
    return 0;
}

static void fastest_first(void) {
    printf("-- as_completed: fastest first --\n");
    struct site sites[3] = {{"slow.com", 0.3}, {"fast.com", 0.1}, {"medium.com", 0.2}};
    const char *expected[3] = {"fast.com", "medium.com", "slow.com"};
    spindle_task *tasks[3];
    double start = now();
    for (int i = 0; i < 3; i++)
        CHECK_RC(spindle_spawn(fetch, &sites[i], sites[i].url, &tasks[i]), 0);
    spindle_as_completed *it;
    CHECK_RC(spindle_as_completed_new(tasks, 3, -1.0, &it), 0);
    int k = 0;
    for (;;) {
        spindle_task *next = NULL;
        int rc = spindle_as_completed_next(it, &next);
        if (rc == SPINDLE_EEMPTY)
            break;
        CHECK_RC(rc, 0);
        if (rc != 0)
            break;
        void *value = NULL;
        CHECK_RC(spindle_task_join(next, &value), 0); /* result = await coro */
        printf("  [%d/3] Data from %s (at %.2f s)\n", k + 1, value ? (const char *)value : "?",
               now() - start);
        /* Under valgrind (timings unchecked) the runtime may stall long
         * enough for all three to end together, in any order. */
        CHECK(k < 3 && value && (!timing_is_checked() || strcmp(value, expected[k]) == 0));
        spindle_task_free(next);
        k++;
    }
    CHECK(k == 3);
    CHECK_RC(spindle_as_completed_free(it), 0);
    for (int i = 0; i < 3; i++)
        spindle_task_free(tasks[i]);
    report_timing("three fetches of 0.3, 0.1 and 0.2 s", now() - start, "~0.3 s, not 0.6 s", 0.29,
                  0.45);
}

static void with_a_deadline(void) {
    printf("-- as_completed(tasks, timeout=0.5) --\n");
    struct site sites[3] = {{"a.com", 0.1}, {"b.com", 0.2}, {"c.com", 2.0}};
    spindle_task *tasks[3];
    double start = now();
    for (int i = 0; i < 3; i++)
        CHECK_RC(spindle_spawn(fetch, &sites[i], sites[i].url, &tasks[i]), 0);
    spindle_as_completed *it;
    CHECK_RC(spindle_as_completed_new(tasks, 3, 0.5, &it), 0);
    int got = 0, timed_out = 0;
    for (;;) {
        spindle_task *next = NULL;
        int rc = spindle_as_completed_next(it, &next);
        if (rc == SPINDLE_EEMPTY)
            break;
        if (rc == SPINDLE_ETIMEDOUT) {
            printf("  a task was not done in time (at %.2f s)\n", now() - start);
            timed_out++;
            continue;
        }
        CHECK_RC(rc, 0);
        if (rc != 0)
            break;
        void *value = NULL;
        CHECK_RC(spindle_task_result(next, &value), 0);
        printf("  Got: Data from %s\n", value ? (const char *)value : "?");
        spindle_task_free(next);
        got++;
    }
    double took = now() - start;
    CHECK(got + timed_out == 3 && (got == 2 || !timing_is_checked()));
    CHECK_RC(spindle_as_completed_free(it), 0);
    /* Nothing was cancelled: c.com still runs. Cancel it now. */
    int done = 1;
    CHECK_RC(spindle_task_done(tasks[2], &done), 0);
    CHECK(done == 0);
    CHECK_RC(spindle_task_cancel(tasks[2], NULL, NULL), 0);
    CHECK_RC(spindle_task_join(tasks[2], NULL), SPINDLE_ECANCELED);
    for (int i = 0; i < 3; i++)
        spindle_task_free(tasks[i]);
    report_timing("as_completed with a 0.5 s timeout", took, "0.5 s, not 2 s", 0.49, 0.9);
}

static int main_task(void *arg, void **result) {
    (void)arg;
    (void)result;
    fastest_first();
    with_a_deadline();
    return 0;
}

int main(void) {
    example_start("as_completed");
    return example_finish(spindle_run(NULL, main_task, NULL, NULL));
}
