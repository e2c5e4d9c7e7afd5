/*
 * wait_for: a time limit on one task, and the retry pattern (seeds
 * "Chapter 26", "Asyncio Tasks", "Tasks and Concurrency").
 *
 *   try:
 *       result = await asyncio.wait_for(slow_operation(), timeout=0.1)
 *   except asyncio.TimeoutError:
 *       print("Operation timed out after 0.1s")
 *
 *   for attempt in range(1, max_retries + 1):
 *       try:
 *           return await asyncio.wait_for(unreliable_fetch(attempt), timeout)
 *       except asyncio.TimeoutError:
 *           print(f"  Attempt {attempt}: timed out")
 *
 * spindle_wait_for(task, seconds, &result) waits for a task; at the limit it
 * cancels the task, waits for it to finish, and returns SPINDLE_ETIMEDOUT.
 */
#include "common.h"

/* async def slow_operation(): await asyncio.sleep(5); return "finally done" */
static int slow_operation(void *arg, void **result) {
    (void)arg;
    int rc = spindle_sleep(5.0);
    if (rc != 0)
        return rc; /* cancelled by wait_for at its limit */
    *result = "finally done";
    return 0;
}

static int fast_operation(void *arg, void **result) {
    (void)arg;
    int rc = spindle_sleep(0.01);
    if (rc != 0)
        return rc;
    *result = "quick result";
    return 0;
}

/* async def unreliable_fetch(attempt):
 *     delay = 0.5 if attempt < 3 else 0.01   # fast on the third attempt */
static int unreliable_fetch(void *arg, void **result) {
    int attempt = PTR_TO_INT(arg);
    int rc = spindle_sleep(attempt < 3 ? 0.5 : 0.01);
    if (rc != 0)
        return rc;
    static char data[3][32];
    snprintf(data[attempt - 1], sizeof data[0], "data (attempt %d)", attempt);
    *result = data[attempt - 1];
    return 0;
}

/* Retries with a time limit per attempt; 0 and the data, or the last
 * failure. */
static int fetch_with_retries(int max_retries, double timeout, const char **out) {
    int rc = SPINDLE_ETIMEDOUT;
    for (int attempt = 1; attempt <= max_retries; attempt++) {
        spindle_task *task;
        rc = spindle_spawn(unreliable_fetch, INT_TO_PTR(attempt), "unreliable_fetch", &task);
        if (rc != 0)
            return rc;
        void *value = NULL;
        rc = spindle_wait_for(task, timeout, &value);
        spindle_task_free(task);
        if (rc == 0) {
            printf("  Attempt %d: success\n", attempt);
            *out = value;
            return 0;
        }
        if (rc != SPINDLE_ETIMEDOUT)
            return rc; /* our own cancellation, say: stop retrying */
        printf("  Attempt %d: timed out\n", attempt);
    }
    return rc;
}

static int main_task(void *arg, void **result) {
    (void)arg;
    (void)result;

    printf("-- wait_for(slow_operation(), timeout=0.1) --\n");
    double start = now();
    spindle_task *slow;
    CHECK_RC(spindle_spawn(slow_operation, NULL, "slow_operation", &slow), 0);
    int rc = spindle_wait_for(slow, 0.1, NULL);
    double took = now() - start;
    if (rc == SPINDLE_ETIMEDOUT)
        printf("  Operation timed out after 0.1s\n");
    CHECK(rc == SPINDLE_ETIMEDOUT);
    int done = 0, cancelled = 0;
    CHECK_RC(spindle_task_done(slow, &done), 0);
    CHECK_RC(spindle_task_cancelled(slow, &cancelled), 0);
    printf("  the slow task: done=%d cancelled=%d (wait_for cancelled it and waited)\n", done,
           cancelled);
    CHECK(done == 1 && cancelled == 1);
    spindle_task_free(slow);
    report_timing("wait_for a 5 s operation, limit 0.1 s", took, "0.1 s, not 5 s", 0.095, 0.6);

    spindle_task *fast;
    CHECK_RC(spindle_spawn(fast_operation, NULL, "fast_operation", &fast), 0);
    void *value = NULL;
    CHECK_RC(spindle_wait_for(fast, 1.0, &value), 0);
    printf("  Fast result: %s\n", value ? (const char *)value : "?");
    CHECK(value && strcmp(value, "quick result") == 0);
    spindle_task_free(fast);

    printf("-- retries: three attempts, 0.1 s each, the third is fast --\n");
    start = now();
    const char *data = NULL;
    rc = fetch_with_retries(3, 0.1, &data);
    took = now() - start;
    CHECK_RC(rc, 0);
    printf("  Final result: %s\n", data ? data : "?");
    CHECK(data && strcmp(data, "data (attempt 3)") == 0);
    report_timing("two timeouts of 0.1 s, then a 0.01 s success", took, "~0.21 s", 0.2, 0.7);
    return 0;
}

int main(void) {
    example_start("wait_for with retries");
    return example_finish(spindle_run(NULL, main_task, NULL, NULL));
}
