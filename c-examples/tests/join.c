/*
 * spindle_task_join of a task its worker would run next anyway: the
 * joined task's step runs inside the join, and everything is as if the
 * joiner had suspended and been woken. Covered, on one worker (where the
 * order is asyncio's and deterministic), each time both with the step run
 * in place and with a bystander task queued first (so the join suspends),
 * three times over:
 * the order of the steps (the joined task, a task it spawned, then the
 * joiner); a joined task that blocks; a joined task that cancels its
 * joiner (the join still returns its result, the next blocking call the
 * cancellation); a joiner cancelled before it joins (the join returns the
 * cancellation and cancels the joined task). And 10,000 spawn + join
 * rounds on 1 and 2 workers. Exits non-zero on any wrong outcome.
 */
#include "common.h"

/* The order of the steps, one letter each. */
static char order[16];
static atomic_int order_len;

static void step(char letter) {
    int at = atomic_fetch_add(&order_len, 1);
    if (at < (int)sizeof order - 1)
        order[at] = letter;
}

static void reset_order(void) {
    memset(order, 0, sizeof order);
    atomic_store(&order_len, 0);
}

static int bystander(void *arg, void **result) {
    (void)arg;
    (void)result;
    step('B');
    return 0;
}

static int spawned_by_child(void *arg, void **result) {
    (void)arg;
    (void)result;
    step('X');
    return 0;
}

static int child_spawning(void *arg, void **result) {
    (void)arg;
    step('C');
    CHECK_RC(spindle_spawn(spawned_by_child, NULL, NULL, NULL), SPINDLE_OK);
    *result = (void *)(intptr_t)3;
    return 0;
}

static int child_blocking(void *arg, void **result) {
    (void)arg;
    step('C');
    int rc = spindle_sleep(0.01);
    step('c');
    *result = (void *)(intptr_t)5;
    return rc;
}

static int child_cancelling_joiner(void *joiner, void **result) {
    step('C');
    CHECK_RC(spindle_task_cancel(joiner, "from the joined task", NULL), SPINDLE_OK);
    *result = (void *)(intptr_t)7;
    return 0;
}

static int trivial(void *arg, void **result) {
    (void)arg;
    *result = (void *)(intptr_t)42;
    return 0;
}

/* Spawns a bystander first when `with_bystander`: then the joined task is
 * not alone in the queue and the join suspends as usual. */
static void maybe_bystander(int with_bystander) {
    if (with_bystander)
        CHECK_RC(spindle_spawn(bystander, NULL, NULL, NULL), SPINDLE_OK);
}

/* Spawns `child` (after a bystander when `with_bystander`), joins it, and
 * checks its result and the order of the steps: `order_alone` ('M' is the
 * joiner after the join), behind the bystander's 'B' if there is one. */
static void join_in_order(spindle_task_fn child, intptr_t result, int with_bystander,
                          const char *order_alone) {
    char expected[sizeof order];
    snprintf(expected, sizeof expected, "%s%s", with_bystander ? "B" : "", order_alone);
    reset_order();
    maybe_bystander(with_bystander);
    spindle_task *task = NULL;
    void *value = NULL;
    CHECK_RC(spindle_spawn(child, NULL, NULL, &task), SPINDLE_OK);
    CHECK_RC(spindle_task_join(task, &value), SPINDLE_OK);
    step('M');
    CHECK((intptr_t)value == result);
    CHECK(strcmp(order, expected) == 0);
    CHECK_RC(spindle_task_free(task), SPINDLE_OK);
}

static int orders_main(void *arg, void **result) {
    (void)arg;
    (void)result;
    /* Three times each: a join whose boundary falls on the worker's
     * periodic I/O poll suspends as usual, the others run in place. */
    for (int round = 0; round < 6; round++) {
        int with_bystander = round % 2;
        /* Whatever the runtime queued before runs first. */
        CHECK_RC(spindle_yield(), SPINDLE_OK);
        spindle_task *task = NULL;
        void *value = NULL;

        /* The joined task, the task it spawned, then the joiner. */
        join_in_order(child_spawning, 3, with_bystander, "CXM");
        /* A joined task that blocks: the joiner waits for it. */
        join_in_order(child_blocking, 5, with_bystander, "CcM");

        /* A joined task that cancels its joiner: the join returns the
         * result (the task is done when the joiner next runs), the next
         * blocking call the cancellation. */
        spindle_task *me = NULL;
        CHECK_RC(spindle_task_current(&me), SPINDLE_OK);
        maybe_bystander(with_bystander);
        CHECK_RC(spindle_spawn(child_cancelling_joiner, me, NULL, &task), SPINDLE_OK);
        CHECK_RC(spindle_task_join(task, &value), SPINDLE_OK);
        CHECK((intptr_t)value == 7);
        CHECK_RC(spindle_sleep(0), SPINDLE_ECANCELED);
        CHECK_RC(spindle_task_free(task), SPINDLE_OK);

        /* A joiner cancelled before it joins: the join returns the
         * cancellation and cancels the joined task, which never starts. */
        reset_order();
        maybe_bystander(with_bystander);
        CHECK_RC(spindle_spawn(trivial, NULL, NULL, &task), SPINDLE_OK);
        CHECK_RC(spindle_task_cancel(me, "before the join", NULL), SPINDLE_OK);
        CHECK_RC(spindle_task_join(task, &value), SPINDLE_ECANCELED);
        int cancelled = 0;
        CHECK_RC(spindle_task_join(task, NULL), SPINDLE_ECANCELED);
        CHECK_RC(spindle_task_cancelled(task, &cancelled), SPINDLE_OK);
        CHECK(cancelled == 1);
        CHECK_RC(spindle_task_free(task), SPINDLE_OK);
        CHECK_RC(spindle_task_free(me), SPINDLE_OK);
        /* Let the bystander of this round run. */
        CHECK_RC(spindle_sleep(0), SPINDLE_OK);
    }
    return 0;
}

static int rounds_main(void *arg, void **result) {
    (void)arg;
    (void)result;
    for (int i = 0; i < 10000; i++) {
        spindle_task *task = NULL;
        void *value = NULL;
        CHECK_RC(spindle_spawn(trivial, NULL, NULL, &task), SPINDLE_OK);
        CHECK_RC(spindle_task_join(task, &value), SPINDLE_OK);
        CHECK((intptr_t)value == 42);
        CHECK_RC(spindle_task_free(task), SPINDLE_OK);
    }
    return 0;
}

int main(void) {
    example_start("joining a task that runs next");
    for (uint32_t workers = 1; workers <= 2; workers++) {
        spindle_options options;
        CHECK_RC(spindle_options_init(&options), SPINDLE_OK);
        options.workers = workers;
        spindle_runtime *rt = NULL;
        CHECK_RC(spindle_runtime_new(&options, &rt), SPINDLE_OK);
        if (workers == 1)
            CHECK_RC(spindle_runtime_run(rt, orders_main, NULL, NULL), SPINDLE_OK);
        CHECK_RC(spindle_runtime_run(rt, rounds_main, NULL, NULL), SPINDLE_OK);
        CHECK_RC(spindle_runtime_free(rt), SPINDLE_OK);
    }
    if (atomic_load(&example_failures) == 0)
        printf("a joined task's step runs as if the joiner had waited\n");
    return example_finish(0);
}
