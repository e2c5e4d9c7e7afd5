/*
 * Semaphores limit concurrency (seeds "Chapter 26", "Asyncio Tasks").
 *
 *   async def limited_task(sem, task_id):
 *       async with sem:                 # at most 2 inside
 *           ...; await asyncio.sleep(0.01)
 *
 *   async def rate_limited_fetch(sem, url):
 *       async with sem:                 # Semaphore(3): max 3 requests at once
 *           await asyncio.sleep(0.1)
 *   await asyncio.gather(*(rate_limited_fetch(sem, u) for u in urls))  # 10 urls
 *
 * `async with sem:` is spindle_sem_acquire ... spindle_sem_release. The
 * concurrency counters are atomic: unlike asyncio's one thread, C tasks run
 * in parallel on every core.
 */
#include "common.h"

static atomic_int current;
static atomic_int max_concurrent;

struct limited {
    spindle_sem *sem;
    int id;
    double hold;
    int quiet;
};

static void note_entry(void) {
    int now_inside = atomic_fetch_add(&current, 1) + 1;
    int seen = atomic_load(&max_concurrent);
    while (now_inside > seen && !atomic_compare_exchange_weak(&max_concurrent, &seen, now_inside)) {
    }
}

static int limited_task(void *arg, void **result) {
    struct limited *t = arg;
    (void)result;
    int rc = spindle_sem_acquire(t->sem); /* async with sem: */
    if (rc != 0)
        return rc; /* cancelled while waiting: no permit taken */
    note_entry();
    if (!t->quiet)
        printf("  Task %d: running (concurrent: %d)\n", t->id, atomic_load(&current));
    rc = spindle_sleep(t->hold);
    atomic_fetch_sub(&current, 1);
    spindle_sem_release(t->sem); /* always, also after a cancellation */
    return rc;
}

/* Runs n tasks through a semaphore of `permits`; returns the elapsed time. */
static double run_limited(int permits, int n, double hold, int quiet) {
    spindle_sem *sem;
    CHECK_RC(spindle_sem_new(permits, &sem), 0);
    struct limited args[16];
    spindle_task *tasks[16];
    atomic_store(&current, 0);
    atomic_store(&max_concurrent, 0);
    double start = now();
    for (int i = 0; i < n; i++) {
        args[i] = (struct limited){sem, i, hold, quiet};
        CHECK_RC(spindle_spawn(limited_task, &args[i], NULL, &tasks[i]), 0);
    }
    CHECK_RC(spindle_gather(tasks, (size_t)n, NULL, NULL), 0);
    double took = now() - start;
    for (int i = 0; i < n; i++)
        spindle_task_free(tasks[i]);
    size_t value = 0;
    CHECK_RC(spindle_sem_value(sem, &value), 0);
    CHECK(value == (size_t)permits); /* every permit came back */
    CHECK_RC(spindle_sem_free(sem), 0);
    return took;
}

static int main_task(void *arg, void **result) {
    (void)arg;
    (void)result;

    printf("-- Semaphore(2) over 5 tasks of 0.05 s --\n");
    double took = run_limited(2, 5, 0.05, 0);
    printf("  Max concurrent tasks: %d (limit was 2)\n", atomic_load(&max_concurrent));
    CHECK(atomic_load(&max_concurrent) == 2);
    report_timing("5 tasks of 0.05 s, 2 at a time", took, "3 rounds, ~0.15 s", 0.149, 0.4);

    printf("-- rate-limited fetch: Semaphore(3), 10 URLs of 0.1 s --\n");
    took = run_limited(3, 10, 0.1, 1);
    printf("  Fetched 10 URLs, at most %d at once\n", atomic_load(&max_concurrent));
    CHECK(atomic_load(&max_concurrent) == 3);
    report_timing("10 fetches of 0.1 s, 3 at a time", took,
                  "4 rounds, ~0.4 s (unlimited: 0.1 s, one by one: 1 s)", 0.399, 0.75);

    printf("-- a bounded semaphore refuses an extra release --\n");
    spindle_sem *bounded;
    CHECK_RC(spindle_bounded_sem_new(1, &bounded), 0);
    CHECK_RC(spindle_sem_acquire(bounded), 0);
    CHECK_RC(spindle_sem_release(bounded), 0);
    int rc = spindle_sem_release(bounded);
    printf("  release beyond the initial value: %s\n", spindle_strerror(rc));
    CHECK(rc == SPINDLE_ESTATE);
    CHECK_RC(spindle_sem_free(bounded), 0);
    return 0;
}

int main(void) {
    example_start("semaphores");
    return example_finish(spindle_run(NULL, main_task, NULL, NULL));
}
