/*
 * shield: a task that must not be interrupted (seeds "Tasks & Futures",
 * "Tasks and Concurrency").
 *
 *   task = asyncio.create_task(important_work())        # takes 1 s
 *   try:
 *       result = await asyncio.wait_for(asyncio.shield(task), timeout=0.5)
 *   except asyncio.TimeoutError:
 *       print("Timeout, but task still running!")
 *       result = await task                              # at ~1 s
 *
 *   async def handler(data):
 *       await asyncio.shield(critical_save(data))       # survives cancel
 *
 * spindle_shield(task, &result) waits for the task like a join, but a
 * cancellation of the caller (here: a timeout scope's deadline, or a
 * spindle_task_cancel) stops only the wait, never the task.
 */
#include "common.h"

/* async def important_work(): await asyncio.sleep(1); return "Critical result" */
static int important_work(void *arg, void **result) {
    (void)arg;
    int rc = spindle_sleep(1.0);
    if (rc != 0)
        return rc;
    *result = "Critical result";
    return 0;
}

static atomic_int saves;

/* async def critical_save(data): await db.commit(data) */
static int critical_save(void *arg, void **result) {
    (void)result;
    int rc = spindle_sleep(0.3); /* the commit */
    if (rc != 0)
        return rc;
    printf("  critical_save: committed %s\n", (const char *)arg);
    atomic_fetch_add(&saves, 1);
    return 0;
}

/* async def handler(data): await asyncio.shield(critical_save(data)) */
static int handler(void *arg, void **result) {
    (void)result;
    spindle_task *save;
    int rc = spindle_spawn(critical_save, arg, "critical_save", &save);
    if (rc != 0)
        return rc;
    rc = spindle_shield(save, NULL);
    if (rc == SPINDLE_ECANCELED)
        printf("  handler: cancelled; the save goes on without it\n");
    spindle_task_free(save); /* detaches the save, which keeps running */
    return rc;
}

static int main_task(void *arg, void **result) {
    (void)arg;
    (void)result;

    printf("-- wait_for(shield(task), timeout=0.5) on 1 s of work --\n");
    double start = now();
    spindle_task *task;
    CHECK_RC(spindle_spawn(important_work, NULL, "important_work", &task), 0);
    spindle_timeout *scope;
    CHECK_RC(spindle_timeout_begin(0.5, &scope), 0);
    void *value = NULL;
    int rc = spindle_shield(task, &value);
    rc = spindle_timeout_end(scope, rc);
    CHECK_RC(spindle_timeout_free(scope), 0);
    double timed_out_at = now() - start;
    CHECK(rc == SPINDLE_ETIMEDOUT);
    int done = 1, cancelled = 1;
    CHECK_RC(spindle_task_done(task, &done), 0);
    CHECK_RC(spindle_task_cancelled(task, &cancelled), 0);
    if (rc == SPINDLE_ETIMEDOUT && !done)
        printf("  Timeout, but task still running!\n");
    CHECK(done == 0 && cancelled == 0);
    /* We can still await it. */
    CHECK_RC(spindle_task_join(task, &value), 0);
    double took = now() - start;
    printf("  Got result: %s\n", value ? (const char *)value : "?");
    CHECK(value && strcmp(value, "Critical result") == 0);
    spindle_task_free(task);
    report_timing("timeout of the shielded wait", timed_out_at, "0.5 s", 0.49, 0.9);
    report_timing("the shielded task's result", took, "~1 s, the task ran to the end", 0.99, 1.5);

    printf("-- a cancelled handler does not cancel its shielded save --\n");
    spindle_task *h;
    CHECK_RC(spindle_spawn(handler, "order #42", "handler", &h), 0);
    CHECK_RC(spindle_sleep(0.1), 0);
    CHECK_RC(spindle_task_cancel(h, NULL, NULL), 0);
    CHECK_RC(spindle_task_join(h, NULL), SPINDLE_ECANCELED);
    spindle_task_free(h);
    CHECK(atomic_load(&saves) == 0 || !timing_is_checked()); /* not yet: 0.2 s remain */
    CHECK_RC(spindle_sleep(0.4), 0);
    printf("  saves committed: %d\n", atomic_load(&saves));
    CHECK(atomic_load(&saves) == 1);
    return 0;
}

int main(void) {
    example_start("shield");
    return example_finish(spindle_run(NULL, main_task, NULL, NULL));
}
