/*
 * gather, with and without return_exceptions (seeds "Asyncio Tasks",
 * "Running Concurrent Tasks", "Tasks and Concurrency", "Chapter 26").
 *
 *   results = await asyncio.gather(fetch_data("A", 0.3), fetch_data("B", 0.1),
 *                                  fetch_data("C", 0.2))
 *   # ["A: done", "B: done", "C: done"]: argument order, ~0.3 s
 *
 *   try:
 *       await asyncio.gather(might_fail(1), might_fail(2), might_fail(3))
 *   except ValueError as e: ...          # the first exception propagates
 *
 *   results = await asyncio.gather(..., return_exceptions=True)
 *   # [10, ValueError("oops!"), 30]
 *
 * spindle_gather(tasks, n, results, codes) waits for the tasks. With codes
 * NULL it returns the first failure as it happens (the other tasks keep
 * running); with codes, every task's status lands in codes[i] and its
 * result in results[i]: return_exceptions=True.
 */
#include "common.h"

enum { VALUE_ERROR = 1 };

struct fetch_arg {
    const char *name;
    double delay;
    int quiet;
};

/* async def fetch_data(name, delay): await asyncio.sleep(delay); return f"{name}: done" */
static int fetch_data(void *arg, void **result) {
    const struct fetch_arg *f = arg;
    if (!f->quiet)
        printf("  Task %s: starting\n", f->name);
    int rc = spindle_sleep(f->delay);
    if (rc != 0)
        return rc;
    if (!f->quiet)
        printf("  Task %s: done\n", f->name);
    char *text = malloc(32);
    if (text == NULL)
        return 1;
    snprintf(text, 32, "%s: done", f->name);
    *result = text;
    return 0;
}

/* async def might_fail(n): await asyncio.sleep(0.5)
 *     if n == 2: raise ValueError(f"Task {n} failed!")
 *     return n * 10 */
static int might_fail(void *arg, void **result) {
    int n = PTR_TO_INT(arg);
    int rc = spindle_sleep(0.5);
    if (rc != 0)
        return rc;
    if (n == 2)
        return VALUE_ERROR;
    *result = INT_TO_PTR(n * 10);
    return 0;
}

static void in_argument_order(void) {
    printf("-- gather(fetch_data(A, 0.3), fetch_data(B, 0.1), fetch_data(C, 0.2)) --\n");
    struct fetch_arg args[3] = {{"A", 0.3, 0}, {"B", 0.1, 0}, {"C", 0.2, 0}};
    spindle_task *tasks[3];
    double start = now();
    for (int i = 0; i < 3; i++)
        CHECK_RC(spindle_spawn(fetch_data, &args[i], args[i].name, &tasks[i]), 0);
    void *results[3] = {0};
    CHECK_RC(spindle_gather(tasks, 3, results, NULL), 0);
    double took = now() - start;
    printf("  Results: [%s, %s, %s]\n", results[0] ? (char *)results[0] : "?",
           results[1] ? (char *)results[1] : "?", results[2] ? (char *)results[2] : "?");
    CHECK(results[0] && strcmp(results[0], "A: done") == 0);
    CHECK(results[1] && strcmp(results[1], "B: done") == 0);
    CHECK(results[2] && strcmp(results[2], "C: done") == 0);
    for (int i = 0; i < 3; i++) {
        free(results[i]);
        spindle_task_free(tasks[i]);
    }
    report_timing("gather of 0.3, 0.1 and 0.2 s", took, "~0.3 s (the longest), not 0.6 s", 0.29,
                  0.45);
}

static void first_exception_propagates(void) {
    printf("-- gather(might_fail(1), might_fail(2), might_fail(3)) --\n");
    spindle_task *tasks[3];
    double start = now();
    for (int i = 0; i < 3; i++)
        CHECK_RC(spindle_spawn(might_fail, INT_TO_PTR(i + 1), NULL, &tasks[i]), 0);
    int rc = spindle_gather(tasks, 3, NULL, NULL);
    double took = now() - start;
    if (rc == VALUE_ERROR)
        printf("  Error: Task 2 failed! (ValueError)\n");
    CHECK(rc == VALUE_ERROR);
    /* The other tasks were not cancelled: they finish on their own. */
    for (int i = 0; i < 3; i++) {
        int cancelled = 1;
        CHECK_RC(spindle_task_join(tasks[i], NULL), i == 1 ? VALUE_ERROR : 0);
        CHECK_RC(spindle_task_cancelled(tasks[i], &cancelled), 0);
        CHECK(cancelled == 0);
        spindle_task_free(tasks[i]);
    }
    report_timing("gather until the first failure", took, "~0.5 s", 0.49, 0.8);
}

static void return_exceptions(void) {
    printf("-- gather(might_fail(1), might_fail(2), might_fail(3), return_exceptions=True) --\n");
    spindle_task *tasks[3];
    double start = now();
    for (int i = 0; i < 3; i++)
        CHECK_RC(spindle_spawn(might_fail, INT_TO_PTR(i + 1), NULL, &tasks[i]), 0);
    void *results[3] = {0};
    int codes[3] = {-1, -1, -1};
    CHECK_RC(spindle_gather(tasks, 3, results, codes), 0);
    double took = now() - start;
    for (int i = 0; i < 3; i++) {
        if (codes[i] != 0)
            printf("  Task %d: Error - %s\n", i + 1,
                   codes[i] == VALUE_ERROR ? "ValueError: Task 2 failed!" : spindle_strerror(codes[i]));
        else
            printf("  Task %d: %d\n", i + 1, PTR_TO_INT(results[i]));
        spindle_task_free(tasks[i]);
    }
    CHECK(codes[0] == 0 && PTR_TO_INT(results[0]) == 10);
    CHECK(codes[1] == VALUE_ERROR && results[1] == NULL);
    CHECK(codes[2] == 0 && PTR_TO_INT(results[2]) == 30);
    report_timing("gather with return_exceptions", took, "~0.5 s, all three ran to the end", 0.49,
                  0.8);
}

static void many_pages(void) {
    printf("-- gather(*(fetch_page(i) for i in range(1, 101))) --\n");
    enum { PAGES = 100 };
    static struct fetch_arg args[PAGES];
    static char names[PAGES][24];
    spindle_task *tasks[PAGES];
    double start = now();
    for (int i = 0; i < PAGES; i++) {
        snprintf(names[i], sizeof names[i], "page-%d", i + 1);
        args[i] = (struct fetch_arg){names[i], 0.1, 1};
        CHECK_RC(spindle_spawn(fetch_data, &args[i], names[i], &tasks[i]), 0);
    }
    void *results[PAGES] = {0};
    CHECK_RC(spindle_gather(tasks, PAGES, results, NULL), 0);
    double took = now() - start;
    int ok = 0;
    for (int i = 0; i < PAGES; i++) {
        char expected[32];
        snprintf(expected, sizeof expected, "page-%d: done", i + 1);
        ok += results[i] && strcmp(results[i], expected) == 0;
        free(results[i]);
        spindle_task_free(tasks[i]);
    }
    printf("  %d pages, in order\n", ok);
    CHECK(ok == PAGES);
    report_timing("100 pages of 0.1 s", took, "~0.1 s, not 10 s", 0.09, 1.0);
}

static int main_task(void *arg, void **result) {
    (void)arg;
    (void)result;
    in_argument_order();
    first_exception_propagates();
    return_exceptions();
    many_pages();
    return 0;
}

int main(void) {
    example_start("gather");
    return example_finish(spindle_run(NULL, main_task, NULL, NULL));
}
