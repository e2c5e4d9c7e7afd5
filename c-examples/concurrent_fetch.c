/*
 * create_task: fetches run concurrently as tasks (seed "Tasks and
 * Concurrency", "Asyncio Tasks", "Chapter 26").
 *
 *   task1 = asyncio.create_task(fetch("https://api.example.com/a"))
 *   task2 = asyncio.create_task(fetch("https://api.example.com/b"))
 *   result1 = await task1; result2 = await task2   # ~1 s, not ~2 s
 *
 * In C a task is a function `int f(void *arg, void **result)`; it runs as a
 * fiber, and spindle_sleep suspends only that task. Network I/O is
 * simulated with spindle_sleep, as the tutorials do with asyncio.sleep.
 */
#include "common.h"

struct fetch_arg {
    const char *url;
    double delay;
};

/* async def fetch(url): await asyncio.sleep(delay); return f"Data from {url}" */
static int fetch(void *arg, void **result) {
    const struct fetch_arg *f = arg;
    printf("  Fetching %s\n", f->url);
    int rc = spindle_sleep(f->delay); /* simulate network I/O */
    if (rc != 0)
        return rc; /* SPINDLE_ECANCELED: nothing to clean up, end cancelled */
    size_t size = strlen(f->url) + sizeof "Data from ";
    char *data = malloc(size);
    if (data == NULL)
        return 1; /* the task's own failure code */
    snprintf(data, size, "Data from %s", f->url);
    *result = data; /* the joiner owns it */
    return 0;
}

static void two_fetches(void) {
    printf("-- create_task: two 1 s fetches run concurrently --\n");
    struct fetch_arg a = {"https://api.example.com/a", 1.0};
    struct fetch_arg b = {"https://api.example.com/b", 1.0};
    double start = now();
    spindle_task *task1, *task2;
    CHECK_RC(spindle_spawn(fetch, &a, NULL, &task1), 0);
    CHECK_RC(spindle_spawn(fetch, &b, NULL, &task2), 0);
    void *result1 = NULL, *result2 = NULL;
    CHECK_RC(spindle_task_join(task1, &result1), 0);
    CHECK_RC(spindle_task_join(task2, &result2), 0);
    double took = now() - start;
    printf("  %s %s\n", result1 ? (char *)result1 : "?", result2 ? (char *)result2 : "?");
    CHECK(result1 && strcmp(result1, "Data from https://api.example.com/a") == 0);
    CHECK(result2 && strcmp(result2, "Data from https://api.example.com/b") == 0);
    report_timing("two 1 s fetches", took, "~1 s, not ~2 s", 0.95, 1.5);
    free(result1);
    free(result2);
    spindle_task_free(task1);
    spindle_task_free(task2);
}

static void tasks_vs_coroutines(void) {
    printf("-- calling a task function directly is sequential; spawning is concurrent --\n");
    struct fetch_arg a = {"A", 0.2}, b = {"B", 0.2};
    void *r1 = NULL, *r2 = NULL;

    /* result1 = await fetch_data("A", 0.2); result2 = await fetch_data("B", 0.2) */
    double start = now();
    CHECK_RC(fetch(&a, &r1), 0);
    CHECK_RC(fetch(&b, &r2), 0);
    report_timing("sequential, 2 x 0.2 s", now() - start, "0.4 s", 0.39, 1.0);
    free(r1);
    free(r2);

    /* task1 = create_task(...); task2 = create_task(...); await both */
    start = now();
    spindle_task *t1, *t2;
    CHECK_RC(spindle_spawn(fetch, &a, "A", &t1), 0);
    CHECK_RC(spindle_spawn(fetch, &b, "B", &t2), 0);
    r1 = r2 = NULL;
    CHECK_RC(spindle_task_join(t1, &r1), 0);
    CHECK_RC(spindle_task_join(t2, &r2), 0);
    report_timing("concurrent, 2 x 0.2 s", now() - start, "0.2 s", 0.19, 0.35);
    free(r1);
    free(r2);
    spindle_task_free(t1);
    spindle_task_free(t2);
}

static void names_and_states(void) {
    printf("-- task names and states --\n");
    struct fetch_arg a = {"https://api.example.com/a", 0.5};
    char name[128];
    size_t length = 0;

    /* asyncio.create_task(fetch(url), name=f"fetch-{url}") */
    snprintf(name, sizeof name, "fetch-%s", a.url);
    spindle_task *named;
    CHECK_RC(spindle_spawn(fetch, &a, name, &named), 0);
    memset(name, 0, sizeof name);
    CHECK_RC(spindle_task_name(named, name, sizeof name, &length), 0);
    printf("  named task:   %s\n", name);
    CHECK(strcmp(name, "fetch-https://api.example.com/a") == 0);
    CHECK(length == strlen(name));

    /* A task without a name gets asyncio's default, Task-<id>. */
    struct fetch_arg quick = {"quick", 0.0};
    spindle_task *unnamed;
    CHECK_RC(spindle_spawn(fetch, &quick, NULL, &unnamed), 0);
    uint64_t id = 0;
    CHECK_RC(spindle_task_id(unnamed, &id), 0);
    CHECK_RC(spindle_task_name(unnamed, name, sizeof name, NULL), 0);
    printf("  default name: %s (id %llu)\n", name, (unsigned long long)id);
    char expected[64];
    snprintf(expected, sizeof expected, "Task-%llu", (unsigned long long)id);
    CHECK(strcmp(name, expected) == 0);

    int done = -1, cancelled = -1;
    CHECK_RC(spindle_task_done(named, &done), 0);
    CHECK_RC(spindle_task_cancelled(named, &cancelled), 0);
    printf("  before: done=%d cancelled=%d\n", done, cancelled);
    CHECK(done == 0 && cancelled == 0);
    /* task.result() before the task is done: InvalidStateError */
    int rc = spindle_task_result(named, NULL);
    printf("  result() too early: %s\n", spindle_strerror(rc));
    CHECK(rc == SPINDLE_ESTATE);

    void *data = NULL;
    CHECK_RC(spindle_task_join(named, &data), 0);
    printf("  awaited: %s\n", data ? (char *)data : "?");
    CHECK_RC(spindle_task_done(named, &done), 0);
    CHECK_RC(spindle_task_cancelled(named, &cancelled), 0);
    printf("  after: done=%d cancelled=%d\n", done, cancelled);
    CHECK(done == 1 && cancelled == 0);
    free(data);

    /* task.result() of a task that is done (the quick one finished long
     * ago): its value, without waiting. */
    CHECK_RC(spindle_task_done(unnamed, &done), 0);
    CHECK(done == 1);
    data = NULL;
    CHECK_RC(spindle_task_result(unnamed, &data), 0);
    printf("  result() of %s: %s\n", name, data ? (char *)data : "?");
    CHECK(data && strcmp(data, "Data from quick") == 0);
    free(data);
    spindle_task_free(named);
    spindle_task_free(unnamed);
}

static int main_task(void *arg, void **result) {
    (void)arg;
    (void)result;
    two_fetches();
    tasks_vs_coroutines();
    names_and_states();
    return 0;
}

int main(void) {
    example_start("concurrent fetches with spindle_spawn");
    return example_finish(spindle_run(NULL, main_task, NULL, NULL));
}
