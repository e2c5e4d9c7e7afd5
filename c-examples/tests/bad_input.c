/*
 * Bad input gives a clear status code, never a crash: NULL handles and
 * out-pointers, blocking calls from threads that are not C tasks, calls in
 * the wrong state, bad options. Exits non-zero if any call returns
 * something else than documented.
 */
#include "common.h"

#include <math.h>
#include <pthread.h>

static int checks;

static const char *code_name(int code) {
    switch (code) {
    case SPINDLE_OK:
        return "SPINDLE_OK";
    case SPINDLE_EINVAL:
        return "SPINDLE_EINVAL";
    case SPINDLE_ENOTASK:
        return "SPINDLE_ENOTASK";
    case SPINDLE_ECANCELED:
        return "SPINDLE_ECANCELED";
    case SPINDLE_ETIMEDOUT:
        return "SPINDLE_ETIMEDOUT";
    case SPINDLE_EPANIC:
        return "SPINDLE_EPANIC";
    case SPINDLE_ENOMEM:
        return "SPINDLE_ENOMEM";
    case SPINDLE_ERUNTIME:
        return "SPINDLE_ERUNTIME";
    case SPINDLE_ESTATE:
        return "SPINDLE_ESTATE";
    case SPINDLE_EIO:
        return "SPINDLE_EIO";
    case SPINDLE_EBUSY:
        return "SPINDLE_EBUSY";
    case SPINDLE_EFULL:
        return "SPINDLE_EFULL";
    case SPINDLE_EEMPTY:
        return "SPINDLE_EEMPTY";
    case SPINDLE_ESHUTDOWN:
        return "SPINDLE_ESHUTDOWN";
    case SPINDLE_EGROUP:
        return "SPINDLE_EGROUP";
    case SPINDLE_EFAILED:
        return "SPINDLE_EFAILED";
    default:
        return code > 0 ? "a task's own code" : "an unknown code";
    }
}

/* Checks that `expr` returns `expected`, and prints the check. */
#define EXPECT(expr, expected)                                                                     \
    do {                                                                                           \
        int expect_got_ = (expr);                                                                  \
        int expect_want_ = (expected);                                                             \
        checks++;                                                                                  \
        if (expect_got_ == expect_want_) {                                                         \
            printf("  ok    %-64s -> %s\n", #expr, code_name(expect_got_));                        \
        } else {                                                                                   \
            printf("  WRONG %-64s -> %s (%d), expected %s\n", #expr, code_name(expect_got_),       \
                   expect_got_, code_name(expect_want_));                                          \
            example_fail(__FILE__, __LINE__, #expr);                                               \
        }                                                                                          \
    } while (0)

static int sleep_forever(void *arg, void **result) {
    (void)arg;
    (void)result;
    return spindle_sleep(3600.0);
}

static int quick(void *arg, void **result) {
    *result = arg;
    return 0;
}

static int fail_with_42(void *arg, void **result) {
    (void)arg;
    (void)result;
    return 42;
}

/* ---- no runtime, main thread ------------------------------------------- */

static void null_handles(void) {
    printf("-- NULL handles and out-pointers --\n");
    int flag = 0;
    uint64_t id = 0;
    char buffer[8];
    void *value = NULL;
    EXPECT(spindle_options_init(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_runtime_new(NULL, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_runtime_run(NULL, quick, NULL, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_runtime_spawn(NULL, quick, NULL, NULL, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_runtime_free(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_task_join(NULL, &value), SPINDLE_EINVAL);
    EXPECT(spindle_task_cancel(NULL, "msg", &flag), SPINDLE_EINVAL);
    EXPECT(spindle_task_done(NULL, &flag), SPINDLE_EINVAL);
    EXPECT(spindle_task_cancelled(NULL, &flag), SPINDLE_EINVAL);
    EXPECT(spindle_task_result(NULL, &value), SPINDLE_EINVAL);
    EXPECT(spindle_task_id(NULL, &id), SPINDLE_EINVAL);
    EXPECT(spindle_task_name(NULL, buffer, sizeof buffer, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_task_free(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_task_current(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_wait_for(NULL, 1.0, &value), SPINDLE_EINVAL);
    EXPECT(spindle_shield(NULL, &value), SPINDLE_EINVAL);
    EXPECT(spindle_group_new(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_group_spawn(NULL, quick, NULL, NULL, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_group_wait(NULL, 0), SPINDLE_EINVAL);
    EXPECT(spindle_group_errors(NULL, NULL, 0, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_group_free(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_timeout_begin(1.0, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_timeout_end(NULL, 0), SPINDLE_EINVAL);
    EXPECT(spindle_timeout_reschedule(NULL, 1.0), SPINDLE_EINVAL);
    EXPECT(spindle_timeout_expired(NULL, &flag), SPINDLE_EINVAL);
    EXPECT(spindle_timeout_free(NULL), SPINDLE_EINVAL);
}

static void bad_options(void) {
    printf("-- bad options --\n");
    spindle_options options;
    spindle_runtime *runtime = NULL;
    EXPECT(spindle_options_init(&options), SPINDLE_OK);
    options.struct_size = 0;
    EXPECT(spindle_runtime_new(&options, &runtime), SPINDLE_EINVAL);
    EXPECT(spindle_run(&options, quick, NULL, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_options_init(&options), SPINDLE_OK);
    options.struct_size = sizeof(size_t); /* too small for the first version */
    EXPECT(spindle_runtime_new(&options, &runtime), SPINDLE_EINVAL);
    EXPECT(spindle_options_init(&options), SPINDLE_OK);
    options.shutdown_timeout = NAN;
    EXPECT(spindle_runtime_new(&options, &runtime), SPINDLE_EINVAL);
    CHECK(runtime == NULL);
    /* A caller compiled against a newer header (a bigger struct) is fine:
     * the library reads the fields it knows. */
    struct {
        spindle_options known;
        char future_fields[64];
    } newer;
    memset(&newer, 0, sizeof newer);
    EXPECT(spindle_options_init(&newer.known), SPINDLE_OK);
    newer.known.struct_size = sizeof newer;
    newer.known.workers = 1;
    EXPECT(spindle_runtime_new(&newer.known, &runtime), SPINDLE_OK);
    EXPECT(spindle_runtime_free(runtime), SPINDLE_OK);
    /* Initialized by size, the bytes past what the library knows are
     * zeroed. */
    memset(&newer, 0xAB, sizeof newer);
    EXPECT(spindle_options_init_sized(&newer.known, sizeof newer), SPINDLE_OK);
    CHECK(newer.known.struct_size == sizeof newer);
    CHECK(newer.known.eager_tasks == 0 && newer.known.shutdown_timeout < 0);
    CHECK(newer.future_fields[0] == 0 && newer.future_fields[63] == 0);
    EXPECT(spindle_options_init_sized(NULL, sizeof options), SPINDLE_EINVAL);
    EXPECT(spindle_options_init_sized(&options, sizeof(size_t)), SPINDLE_EINVAL);
    /* A caller compiled before `eager_tasks` existed calls the function
     * itself (no macro): it writes no byte past the first version, and the
     * bytes past the caller's struct are not read (here garbage that would
     * be refused). */
    options.eager_tasks = 7;
    EXPECT((spindle_options_init)(&options), SPINDLE_OK);
    CHECK(options.struct_size == offsetof(spindle_options, eager_tasks));
    CHECK(options.eager_tasks == 7);
    options.workers = 1;
    EXPECT(spindle_runtime_new(&options, &runtime), SPINDLE_OK);
    EXPECT(spindle_runtime_free(runtime), SPINDLE_OK);
    EXPECT(spindle_options_init(&options), SPINDLE_OK);
    options.eager_tasks = 7;
    runtime = NULL;
    EXPECT(spindle_runtime_new(&options, &runtime), SPINDLE_EINVAL);
    CHECK(runtime == NULL);
}

static void not_in_a_task(const char *where) {
    printf("-- blocking calls outside a C task (%s) --\n", where);
    spindle_task *task = NULL;
    spindle_group *group = NULL;
    spindle_timeout *scope = NULL;
    EXPECT(spindle_sleep(0.01), SPINDLE_ENOTASK);
    EXPECT(spindle_yield(), SPINDLE_ENOTASK);
    EXPECT(spindle_spawn(quick, NULL, "x", &task), SPINDLE_ENOTASK);
    EXPECT(spindle_task_current(&task), SPINDLE_ENOTASK);
    EXPECT(spindle_group_new(&group), SPINDLE_ENOTASK);
    EXPECT(spindle_timeout_begin(1.0, &scope), SPINDLE_ENOTASK);
    CHECK(task == NULL && group == NULL && scope == NULL);
}

static void status_strings(void) {
    printf("-- spindle_strerror --\n");
    for (int code = SPINDLE_EFAILED; code <= SPINDLE_OK; code++) {
        const char *message = spindle_strerror(code);
        CHECK(message != NULL && message[0] != '\0');
        for (int other = code + 1; other <= SPINDLE_OK; other++)
            CHECK(strcmp(message, spindle_strerror(other)) != 0);
    }
    printf("  %d: %s\n", 42, spindle_strerror(42));
    printf("  %d: %s\n", -999, spindle_strerror(-999));
    CHECK(strcmp(spindle_strerror(-999), spindle_strerror(SPINDLE_EINVAL)) != 0);
    checks++;
}

/* ---- a plain thread next to a runtime ---------------------------------- */

struct thread_args {
    spindle_runtime *runtime;
    spindle_task *task; /* running */
};

static void *plain_thread(void *arg) {
    struct thread_args *args = arg;
    not_in_a_task("a plain pthread");
    void *value = NULL;
    EXPECT(spindle_task_join(args->task, &value), SPINDLE_ENOTASK);
    EXPECT(spindle_wait_for(args->task, 0.1, &value), SPINDLE_ENOTASK);
    EXPECT(spindle_shield(args->task, &value), SPINDLE_ENOTASK);
    /* Not blocking: fine from any thread. */
    int done = -1;
    EXPECT(spindle_task_done(args->task, &done), SPINDLE_OK);
    CHECK(done == 0);
    EXPECT(spindle_task_result(args->task, &value), SPINDLE_ESTATE);
    spindle_task *spawned = NULL;
    EXPECT(spindle_runtime_spawn(args->runtime, quick, INT_TO_PTR(7), "from-a-thread", &spawned),
           SPINDLE_OK);
    for (int i = 0; i < 1000 && spawned; i++) {
        EXPECT(spindle_task_done(spawned, &done), SPINDLE_OK);
        if (done)
            break;
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    EXPECT(spindle_task_result(spawned, &value), SPINDLE_OK);
    CHECK(PTR_TO_INT(value) == 7);
    EXPECT(spindle_task_free(spawned), SPINDLE_OK);
    return NULL;
}

/* ---- inside a task ------------------------------------------------------ */

static int end_someone_elses_scope(void *arg, void **result) {
    (void)result;
    return spindle_timeout_end(arg, 0);
}

static int in_a_task(void *arg, void **result) {
    (void)result;
    spindle_runtime *runtime = arg;
    void *value = NULL;
    int flag = -1;

    printf("-- bad arguments inside a task --\n");
    EXPECT(spindle_spawn(NULL, NULL, "no function", NULL), SPINDLE_EINVAL);
    EXPECT(spindle_sleep(NAN), SPINDLE_EINVAL);
    EXPECT(spindle_runtime_run(runtime, quick, NULL, NULL), SPINDLE_ESTATE);
    EXPECT(spindle_runtime_free(runtime), SPINDLE_ESTATE);
    spindle_task *self = NULL;
    EXPECT(spindle_task_current(&self), SPINDLE_OK);
    EXPECT(spindle_task_free(self), SPINDLE_OK);

    printf("-- task outcomes --\n");
    spindle_task *sleeper;
    EXPECT(spindle_spawn(sleep_forever, NULL, "sleeper", &sleeper), SPINDLE_OK);
    EXPECT(spindle_task_result(sleeper, &value), SPINDLE_ESTATE);
    EXPECT(spindle_task_done(sleeper, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_wait_for(sleeper, NAN, &value), SPINDLE_EINVAL);
    char name[4];
    size_t length = 0;
    EXPECT(spindle_task_name(sleeper, NULL, 4, &length), SPINDLE_EINVAL);
    EXPECT(spindle_task_name(sleeper, NULL, 0, &length), SPINDLE_OK);
    CHECK(length == strlen("sleeper"));
    EXPECT(spindle_task_name(sleeper, name, sizeof name, NULL), SPINDLE_OK);
    CHECK(strcmp(name, "sle") == 0); /* cut to fit, NUL-terminated */
    EXPECT(spindle_task_cancel(sleeper, "stop", &flag), SPINDLE_OK);
    CHECK(flag == 1);
    EXPECT(spindle_task_join(sleeper, &value), SPINDLE_ECANCELED);
    EXPECT(spindle_task_result(sleeper, &value), SPINDLE_ECANCELED);
    EXPECT(spindle_task_cancelled(sleeper, &flag), SPINDLE_OK);
    CHECK(flag == 1);
    EXPECT(spindle_task_free(sleeper), SPINDLE_OK);

    spindle_task *failing;
    EXPECT(spindle_spawn(fail_with_42, NULL, NULL, &failing), SPINDLE_OK);
    EXPECT(spindle_task_join(failing, &value), 42);
    EXPECT(spindle_task_result(failing, &value), 42);
    EXPECT(spindle_task_cancelled(failing, &flag), SPINDLE_OK);
    CHECK(flag == 0);
    EXPECT(spindle_task_free(failing), SPINDLE_OK);

    printf("-- task groups in the wrong state --\n");
    spindle_group *group;
    EXPECT(spindle_group_new(&group), SPINDLE_OK);
    spindle_task *child = NULL;
    EXPECT(spindle_group_spawn(group, quick, NULL, "child", &child), SPINDLE_OK);
    EXPECT(spindle_group_spawn(group, NULL, NULL, "no function", NULL), SPINDLE_EINVAL);
    EXPECT(spindle_group_free(group), SPINDLE_EBUSY); /* not waited yet */
    EXPECT(spindle_group_errors(group, NULL, 4, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_group_wait(group, 0), SPINDLE_OK);
    EXPECT(spindle_group_wait(group, 0), SPINDLE_ESTATE); /* waited twice */
    EXPECT(spindle_group_spawn(group, quick, NULL, "late", NULL), SPINDLE_ESTATE);
    size_t count = 99;
    EXPECT(spindle_group_errors(group, NULL, 0, &count), SPINDLE_OK);
    CHECK(count == 0);
    EXPECT(spindle_group_free(group), SPINDLE_OK);
    EXPECT(spindle_task_free(child), SPINDLE_OK);

    printf("-- timeout scopes in the wrong state --\n");
    spindle_timeout *scope = NULL;
    EXPECT(spindle_timeout_begin(NAN, &scope), SPINDLE_EINVAL);
    EXPECT(spindle_timeout_begin(10.0, &scope), SPINDLE_OK);
    EXPECT(spindle_timeout_free(scope), SPINDLE_EBUSY); /* not ended yet */
    EXPECT(spindle_timeout_reschedule(scope, NAN), SPINDLE_EINVAL);
    EXPECT(spindle_timeout_expired(scope, NULL), SPINDLE_EINVAL);
    spindle_task *other;
    EXPECT(spindle_spawn(end_someone_elses_scope, scope, "other", &other), SPINDLE_OK);
    EXPECT(spindle_task_join(other, NULL), SPINDLE_ESTATE); /* only its task may end it */
    EXPECT(spindle_task_free(other), SPINDLE_OK);
    EXPECT(spindle_timeout_end(scope, 0), SPINDLE_OK);
    EXPECT(spindle_timeout_end(scope, 0), SPINDLE_ESTATE); /* ended twice */
    EXPECT(spindle_timeout_expired(scope, &flag), SPINDLE_OK);
    CHECK(flag == 0);
    EXPECT(spindle_timeout_free(scope), SPINDLE_OK);
    return 0;
}

int main(void) {
    example_start("bad input gives clear codes");
    status_strings();
    null_handles();
    bad_options();
    not_in_a_task("the main thread, no runtime");

    spindle_options options;
    spindle_options_init(&options);
    options.workers = 2;
    spindle_runtime *runtime = NULL;
    EXPECT(spindle_runtime_new(&options, &runtime), SPINDLE_OK);
    if (runtime == NULL)
        return example_finish(1);
    not_in_a_task("the main thread, beside a runtime");

    spindle_task *running = NULL;
    EXPECT(spindle_runtime_spawn(runtime, sleep_forever, NULL, "sleeps", &running), SPINDLE_OK);
    struct thread_args args = {runtime, running};
    pthread_t thread;
    if (pthread_create(&thread, NULL, plain_thread, &args) != 0)
        return example_finish(1);
    pthread_join(thread, NULL);

    EXPECT(spindle_runtime_run(runtime, in_a_task, runtime, NULL), SPINDLE_OK);
    EXPECT(spindle_task_cancel(running, NULL, NULL), SPINDLE_OK);
    EXPECT(spindle_task_free(running), SPINDLE_OK);
    EXPECT(spindle_runtime_free(runtime), SPINDLE_OK);
    printf("%d checks\n", checks);
    return example_finish(0);
}
