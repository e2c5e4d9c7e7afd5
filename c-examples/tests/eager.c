/*
 * Eager C tasks: `spindle_options.eager_tasks = 1` (asyncio's
 * eager_task_factory). Covered: a task that never blocks is done, with its
 * result, when spindle_spawn returns; one that blocks ran up to its first
 * block inside the call, then the spawner goes on and joins it; a chain of
 * 200 tasks each spawning the next (past the 64 eager starts that nest on
 * one thread, where spawns are queued) ends with every result; a group's
 * children start eagerly, and one failing in its eager step fails the
 * group; an eager task that blocked can be cancelled; spindle_runtime_spawn
 * from one of the runtime's own tasks still queues its task (asyncio's
 * run_coroutine_threadsafe); without the option a spawn starts nothing;
 * any value but 0 and 1 is refused. Exits non-zero on any wrong outcome.
 */
#include "common.h"

static atomic_int reached_first_block;

static int returns_seven(void *arg, void **result) {
    (void)arg;
    *result = (void *)(intptr_t)7;
    return 0;
}

static int blocks_then_returns_eight(void *arg, void **result) {
    (void)arg;
    atomic_store(&reached_first_block, 1);
    int rc = spindle_sleep(0.01);
    if (rc != SPINDLE_OK)
        return rc;
    *result = (void *)(intptr_t)8;
    return 0;
}

static int sleeps_an_hour(void *arg, void **result) {
    (void)arg;
    (void)result;
    return spindle_sleep(3600);
}

static int fails_at_once(void *arg, void **result) {
    (void)arg;
    (void)result;
    return 42;
}

/* Spawns the next link (arg: links left) and returns its result plus one. */
static int link_of_chain(void *arg, void **result) {
    intptr_t left = (intptr_t)arg;
    if (left == 0) {
        *result = (void *)(intptr_t)0;
        return 0;
    }
    spindle_task *next = NULL;
    int rc = spindle_spawn(link_of_chain, (void *)(left - 1), NULL, &next);
    if (rc != SPINDLE_OK)
        return rc;
    void *value = NULL;
    rc = spindle_task_join(next, &value);
    spindle_task_free(next);
    if (rc != SPINDLE_OK)
        return rc;
    *result = (void *)((intptr_t)value + 1);
    return 0;
}

/* The runtime `eager_main` runs on, and its worker count. */
struct eager_run {
    spindle_runtime *rt;
    uint32_t workers;
};

static int eager_main(void *arg, void **result) {
    const struct eager_run *run = arg;
    (void)result;
    int done = 0;
    void *value = NULL;

    /* Never blocks: done inside the spawn. */
    spindle_task *task = NULL;
    CHECK_RC(spindle_spawn(returns_seven, NULL, "seven", &task), SPINDLE_OK);
    CHECK_RC(spindle_task_done(task, &done), SPINDLE_OK);
    CHECK(done == 1);
    CHECK_RC(spindle_task_join(task, &value), SPINDLE_OK);
    CHECK((intptr_t)value == 7);
    CHECK_RC(spindle_task_free(task), SPINDLE_OK);

    /* Blocks: ran up to its sleep inside the spawn, then waits its turn. */
    CHECK_RC(spindle_spawn(blocks_then_returns_eight, NULL, NULL, &task), SPINDLE_OK);
    CHECK(atomic_load(&reached_first_block) == 1);
    CHECK_RC(spindle_task_done(task, &done), SPINDLE_OK);
    CHECK(done == 0);
    CHECK_RC(spindle_task_join(task, &value), SPINDLE_OK);
    CHECK((intptr_t)value == 8);
    CHECK_RC(spindle_task_free(task), SPINDLE_OK);

    /* 200 nested spawns: the first 64 or so start inside their spawns, the
     * deeper ones are queued; every link ends. */
    CHECK_RC(spindle_spawn(link_of_chain, (void *)(intptr_t)200, NULL, &task), SPINDLE_OK);
    CHECK_RC(spindle_task_join(task, &value), SPINDLE_OK);
    CHECK((intptr_t)value == 200);
    CHECK_RC(spindle_task_free(task), SPINDLE_OK);

    /* An eager task blocked in its first step can be cancelled. */
    CHECK_RC(spindle_spawn(sleeps_an_hour, NULL, NULL, &task), SPINDLE_OK);
    int requested = 0;
    CHECK_RC(spindle_task_cancel(task, "enough", &requested), SPINDLE_OK);
    CHECK(requested == 1);
    CHECK_RC(spindle_task_join(task, NULL), SPINDLE_ECANCELED);
    CHECK_RC(spindle_task_free(task), SPINDLE_OK);

    /* A group's children start eagerly too: the failing one fails the
     * group during its spawn, and the group's wait reports it. */
    spindle_group *group = NULL;
    CHECK_RC(spindle_group_new(&group), SPINDLE_OK);
    CHECK_RC(spindle_group_spawn(group, returns_seven, NULL, NULL, NULL), SPINDLE_OK);
    CHECK_RC(spindle_group_spawn(group, fails_at_once, NULL, NULL, NULL), SPINDLE_OK);
    CHECK_RC(spindle_group_wait(group, SPINDLE_OK), SPINDLE_EGROUP);
    CHECK_RC(spindle_group_free(group), SPINDLE_OK);

    /* spindle_runtime_spawn queues, even from the runtime's own task: on
     * one worker nothing runs the task before this one blocks. */
    CHECK_RC(spindle_runtime_spawn(run->rt, returns_seven, NULL, NULL, &task), SPINDLE_OK);
    if (run->workers == 1) {
        CHECK_RC(spindle_task_done(task, &done), SPINDLE_OK);
        CHECK(done == 0);
    }
    CHECK_RC(spindle_task_join(task, &value), SPINDLE_OK);
    CHECK((intptr_t)value == 7);
    CHECK_RC(spindle_task_free(task), SPINDLE_OK);
    return 0;
}

static int lazy_main(void *arg, void **result) {
    (void)arg;
    (void)result;
    spindle_task *task = NULL;
    int done = -1;
    CHECK_RC(spindle_spawn(returns_seven, NULL, NULL, &task), SPINDLE_OK);
    CHECK_RC(spindle_task_done(task, &done), SPINDLE_OK);
    CHECK(done == 0);
    void *value = NULL;
    CHECK_RC(spindle_task_join(task, &value), SPINDLE_OK);
    CHECK((intptr_t)value == 7);
    CHECK_RC(spindle_task_free(task), SPINDLE_OK);
    return 0;
}

int main(void) {
    example_start("eager C tasks");
    spindle_options options;
    spindle_runtime *rt = NULL;

    for (uint32_t workers = 1; workers <= 2; workers++) {
        CHECK_RC(spindle_options_init(&options), SPINDLE_OK);
        options.workers = workers;
        options.eager_tasks = 1;
        CHECK_RC(spindle_runtime_new(&options, &rt), SPINDLE_OK);
        struct eager_run run = {rt, workers};
        CHECK_RC(spindle_runtime_run(rt, eager_main, &run, NULL), SPINDLE_OK);
        CHECK_RC(spindle_runtime_free(rt), SPINDLE_OK);
    }

    /* The default: lazy (one worker, so nothing else starts the task). */
    CHECK_RC(spindle_options_init(&options), SPINDLE_OK);
    CHECK(options.eager_tasks == 0);
    options.workers = 1;
    CHECK_RC(spindle_runtime_new(&options, &rt), SPINDLE_OK);
    CHECK_RC(spindle_runtime_run(rt, lazy_main, NULL, NULL), SPINDLE_OK);
    CHECK_RC(spindle_runtime_free(rt), SPINDLE_OK);

    CHECK_RC(spindle_options_init(&options), SPINDLE_OK);
    options.eager_tasks = 2;
    rt = NULL;
    CHECK_RC(spindle_runtime_new(&options, &rt), SPINDLE_EINVAL);
    CHECK(rt == NULL);

    int failures = atomic_load(&example_failures);
    printf("%s\n", failures == 0 ? "eager C tasks start inside their spawn" : "WRONG");
    return failures == 0 ? 0 : 1;
}
