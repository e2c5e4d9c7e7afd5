/*
 * The `_owned` spawn functions take ownership of the task's argument: from
 * the call on, either the task's function runs with it or `arg_free` is
 * called with it, exactly once. Every argument here is a heap block that
 * whoever gets it frees, so a leak or a double free shows under valgrind
 * memcheck and ASan (check-valgrind, check-asan); the counts check the
 * "exactly once" directly. Covered: a task that runs; one cancelled before
 * it started; children of a group cancelled before they started when a
 * sibling failed; tasks still queued when their runtime is freed; every way
 * the call itself can fail; and `arg_free` NULL (the caller keeps the
 * argument, as with the plain spawn functions). Exits non-zero on any
 * wrong count or status.
 */
#include "common.h"

/* Arguments handed out, run by their task's function, given to arg_free. */
static atomic_int handed;
static atomic_int ran;
static atomic_int freed;

struct owned_arg {
    int serial;
};

static void *new_arg(void) {
    struct owned_arg *arg = malloc(sizeof *arg);
    if (arg == NULL) {
        perror("malloc");
        exit(2);
    }
    arg->serial = atomic_fetch_add(&handed, 1);
    return arg;
}

/* The task function: owns its argument and frees it. */
static int consume(void *arg, void **result) {
    (void)result;
    atomic_fetch_add(&ran, 1);
    free(arg);
    return 0;
}

/* A child that fails at once (its group then cancels its siblings). */
static int fail_at_once(void *arg, void **result) {
    (void)result;
    atomic_fetch_add(&ran, 1);
    free(arg);
    return 7;
}

static void arg_free(void *arg) {
    atomic_fetch_add(&freed, 1);
    free(arg);
}

/* Every argument handed out was run or freed, never both: nothing left. */
static void check_accounts(const char *when) {
    int h = atomic_load(&handed), r = atomic_load(&ran), f = atomic_load(&freed);
    printf("%s: %d handed, %d run, %d freed\n", when, h, r, f);
    CHECK(r + f == h);
}

static int main_task(void *unused, void **result) {
    (void)unused;
    (void)result;

    /* A task that runs: its function gets the argument, arg_free is not called. */
    int freed_before = atomic_load(&freed);
    spindle_task *task = NULL;
    CHECK_RC(spindle_spawn_owned(consume, new_arg(), arg_free, "runs", &task), SPINDLE_OK);
    CHECK_RC(spindle_task_join(task, NULL), SPINDLE_OK);
    CHECK_RC(spindle_task_free(task), SPINDLE_OK);
    CHECK(atomic_load(&freed) == freed_before);

    /* Cancelled before it started: its function never runs; arg_free does. */
    int ran_before = atomic_load(&ran);
    freed_before = atomic_load(&freed);
    CHECK_RC(spindle_spawn_owned(consume, new_arg(), arg_free, "never starts", &task), SPINDLE_OK);
    int requested = 0;
    CHECK_RC(spindle_task_cancel(task, "not needed", &requested), SPINDLE_OK);
    CHECK(requested == 1);
    CHECK_RC(spindle_task_join(task, NULL), SPINDLE_ECANCELED);
    CHECK_RC(spindle_task_free(task), SPINDLE_OK);
    CHECK_RC(spindle_sleep(0.01), SPINDLE_OK);
    CHECK(atomic_load(&ran) == ran_before);
    CHECK(atomic_load(&freed) == freed_before + 1);

    /* A group whose first child fails: the siblings queued behind it (one
     * worker: none has started) are cancelled and give their argument back. */
    ran_before = atomic_load(&ran);
    freed_before = atomic_load(&freed);
    spindle_group *group = NULL;
    CHECK_RC(spindle_group_new(&group), SPINDLE_OK);
    CHECK_RC(spindle_group_spawn_owned(group, fail_at_once, new_arg(), arg_free, NULL, NULL),
             SPINDLE_OK);
    for (int i = 0; i < 50; i++)
        CHECK_RC(spindle_group_spawn_owned(group, consume, new_arg(), arg_free, NULL, NULL),
                 SPINDLE_OK);
    CHECK_RC(spindle_group_wait(group, SPINDLE_OK), SPINDLE_EGROUP);
    CHECK_RC(spindle_group_free(group), SPINDLE_OK);
    CHECK(atomic_load(&ran) == ran_before + 1);
    CHECK(atomic_load(&freed) == freed_before + 50);
    check_accounts("after the failed group");

    /* Failed calls still own the argument: arg_free runs before they return. */
    freed_before = atomic_load(&freed);
    CHECK_RC(spindle_spawn_owned(NULL, new_arg(), arg_free, NULL, NULL), SPINDLE_EINVAL);
    CHECK_RC(spindle_group_spawn_owned(NULL, consume, new_arg(), arg_free, NULL, NULL),
             SPINDLE_EINVAL);
    CHECK_RC(spindle_runtime_spawn_owned(NULL, consume, new_arg(), arg_free, NULL, NULL),
             SPINDLE_EINVAL);
    CHECK(atomic_load(&freed) == freed_before + 3);

    /* arg_free NULL: the caller keeps its argument, even on failure. */
    struct owned_arg kept = {.serial = -1};
    CHECK_RC(spindle_spawn_owned(NULL, &kept, NULL, NULL, NULL), SPINDLE_EINVAL);
    CHECK(kept.serial == -1);
    return 0;
}

int main(void) {
    example_start("owned arguments of C tasks");

    /* Outside a task: spindle_spawn_owned fails and frees the argument. */
    CHECK_RC(spindle_spawn_owned(consume, new_arg(), arg_free, NULL, NULL), SPINDLE_ENOTASK);
    CHECK(atomic_load(&freed) == 1);

    spindle_options options;
    CHECK_RC(spindle_options_init(&options), SPINDLE_OK);
    /* One worker: a task spawned by the running task waits until it blocks. */
    options.workers = 1;
    spindle_runtime *rt = NULL;
    CHECK_RC(spindle_runtime_new(&options, &rt), SPINDLE_OK);
    CHECK_RC(spindle_runtime_run(rt, main_task, NULL, NULL), SPINDLE_OK);

    /* Tasks still queued when their runtime is freed never start (the
     * worker runs some while this thread spawns): each argument was run or
     * freed, exactly once. */
    for (int i = 0; i < 200; i++)
        CHECK_RC(spindle_runtime_spawn_owned(rt, consume, new_arg(), arg_free, NULL, NULL),
                 SPINDLE_OK);
    CHECK_RC(spindle_runtime_free(rt), SPINDLE_OK);
    check_accounts("after the runtime was freed");
    CHECK(atomic_load(&handed) == 1 + 1 + 1 + 1 + 50 + 3 + 200);

    int failures = atomic_load(&example_failures);
    printf("%s\n", failures == 0 ? "every argument was run or freed exactly once" : "WRONG");
    return failures == 0 ? 0 : 1;
}
