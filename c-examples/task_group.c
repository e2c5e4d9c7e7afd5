/*
 * TaskGroup: structured concurrency (seeds "Tasks and Concurrency",
 * "Asyncio Tasks", "Chapter 26", "Tasks & Futures").
 *
 *   async with asyncio.TaskGroup() as tg:
 *       tasks = [tg.create_task(process(i)) for i in range(5)]
 *   print([t.result() for t in tasks])          # all done here, ~0.5 s
 *
 *   try:
 *       async with asyncio.TaskGroup() as tg:
 *           tg.create_task(might_fail()); tg.create_task(might_also_fail())
 *   except* ValueError as eg: ...
 *   except* OSError as eg: ...
 *
 * In C the `async with` block is the code between spindle_group_new and
 * spindle_group_wait. A child that fails cancels its siblings and the block
 * itself (its next blocking call returns SPINDLE_ECANCELED); the group then
 * ends with SPINDLE_EGROUP and spindle_group_errors lists every child's
 * failure code, which the C code sorts by kind as except* does.
 */
#include "common.h"

/* The tasks' own failure codes (positive): C's "exception types". */
enum { VALUE_ERROR = 1, OS_ERROR = 2 };

static const char *error_name(int code) {
    switch (code) {
    case VALUE_ERROR:
        return "ValueError";
    case OS_ERROR:
        return "OSError";
    default:
        return spindle_strerror(code);
    }
}

/* async def process(item): await asyncio.sleep(0.5); return item * 2 */
static int process(void *arg, void **result) {
    int item = PTR_TO_INT(arg);
    int rc = spindle_sleep(0.5);
    if (rc != 0)
        return rc;
    *result = INT_TO_PTR(item * 2);
    return 0;
}

static void all_succeed(void) {
    printf("-- a group of five 0.5 s tasks --\n");
    double start = now();
    spindle_group *tg;
    CHECK_RC(spindle_group_new(&tg), 0);
    spindle_task *tasks[5] = {0};
    for (int i = 0; i < 5; i++)
        CHECK_RC(spindle_group_spawn(tg, process, INT_TO_PTR(i), NULL, &tasks[i]), 0);
    /* the end of `async with`: waits for every child */
    CHECK_RC(spindle_group_wait(tg, 0), 0);
    double took = now() - start;
    CHECK_RC(spindle_group_free(tg), 0);

    printf("  results: [");
    for (int i = 0; i < 5; i++) {
        void *value = NULL;
        CHECK_RC(spindle_task_result(tasks[i], &value), 0); /* t.result() */
        printf("%s%d", i ? ", " : "", PTR_TO_INT(value));
        CHECK(PTR_TO_INT(value) == i * 2);
        spindle_task_free(tasks[i]);
    }
    printf("]\n");
    report_timing("five 0.5 s tasks in a group", took, "all done at the block's end, ~0.5 s", 0.49,
                  1.2);
}

/* async def good_task(): await asyncio.sleep(0.05); return "OK" */
static int good_task(void *arg, void **result) {
    (void)arg;
    int rc = spindle_sleep(0.05);
    if (rc != 0)
        return rc;
    *result = "OK";
    return 0;
}

/* async def might_fail(): await asyncio.sleep(0.1); raise ValueError(...)
 * The kind of failure is the argument. */
static int might_fail(void *arg, void **result) {
    (void)result;
    int rc = spindle_sleep(0.1);
    if (rc != 0)
        return rc;
    printf("  %s: failing\n", error_name(PTR_TO_INT(arg)));
    return PTR_TO_INT(arg);
}

/* A sibling that would take 5 s: the group cancels it. */
static atomic_int slow_cleaned_up;
static int slow_task(void *arg, void **result) {
    (void)arg;
    (void)result;
    int rc = spindle_sleep(5.0);
    if (rc == SPINDLE_ECANCELED) {
        printf("  slow task: cancelled by the group, cleaning up\n");
        atomic_store(&slow_cleaned_up, 1);
    }
    return rc;
}

static void one_fails(void) {
    printf("-- a failing child cancels its siblings and the block --\n");
    double start = now();
    spindle_group *tg;
    CHECK_RC(spindle_group_new(&tg), 0);
    spindle_task *good, *bad_value, *bad_os, *slow;
    CHECK_RC(spindle_group_spawn(tg, good_task, NULL, "good", &good), 0);
    CHECK_RC(spindle_group_spawn(tg, might_fail, INT_TO_PTR(VALUE_ERROR), "might_fail", &bad_value),
             0);
    CHECK_RC(spindle_group_spawn(tg, might_fail, INT_TO_PTR(OS_ERROR), "might_also_fail", &bad_os),
             0);
    CHECK_RC(spindle_group_spawn(tg, slow_task, NULL, "slow", &slow), 0);

    /* The body of the block goes on working until the group cancels it. */
    int status = spindle_sleep(10.0);
    printf("  the block's own work: %s\n", spindle_strerror(status));
    CHECK(status == SPINDLE_ECANCELED);
    /* Freeing a group before the end of its block is refused. */
    CHECK_RC(spindle_group_free(tg), SPINDLE_EBUSY);

    int rc = spindle_group_wait(tg, status);
    double took = now() - start;
    printf("  group: %s\n", spindle_strerror(rc));
    CHECK(rc == SPINDLE_EGROUP);

    /* except* ValueError / except* OSError */
    int codes[8];
    size_t count = 0;
    CHECK_RC(spindle_group_errors(tg, codes, 8, &count), 0);
    int value_errors = 0, os_errors = 0;
    for (size_t i = 0; i < count && i < 8; i++) {
        if (codes[i] == VALUE_ERROR)
            value_errors++;
        else if (codes[i] == OS_ERROR)
            os_errors++;
        else
            CHECK(!"only ValueError and OSError can fail the group");
    }
    if (value_errors)
        printf("  except* ValueError: %d occurred\n", value_errors);
    if (os_errors)
        printf("  except* OSError: %d occurred\n", os_errors);
    /* The two fail at the same moment: the first one's failure cancels
     * the other if it has not failed yet, so one or both are listed. */
    CHECK(count >= 1 && count <= 2);
    CHECK_RC(spindle_group_free(tg), 0);

    /* Which children completed, failed, or were cancelled. */
    spindle_task *all[] = {good, bad_value, bad_os, slow};
    for (int i = 0; i < 4; i++) {
        char name[32];
        int cancelled = 0;
        CHECK_RC(spindle_task_name(all[i], name, sizeof name, NULL), 0);
        CHECK_RC(spindle_task_cancelled(all[i], &cancelled), 0);
        void *value = NULL;
        int outcome = spindle_task_result(all[i], &value);
        if (cancelled)
            printf("  %-16s cancelled\n", name);
        else if (outcome != 0)
            printf("  %-16s failed: %s\n", name, error_name(outcome));
        else
            printf("  %-16s result = %s\n", name, (const char *)value);
        spindle_task_free(all[i]);
    }
    CHECK(atomic_load(&slow_cleaned_up) == 1);
    report_timing("group with a failing child", took, "siblings cancelled at once, not 5 s", 0.09,
                  1.0);
}

static int main_task(void *arg, void **result) {
    (void)arg;
    (void)result;
    all_succeed();
    one_fails();
    return 0;
}

int main(void) {
    example_start("task groups");
    return example_finish(spindle_run(NULL, main_task, NULL, NULL));
}
