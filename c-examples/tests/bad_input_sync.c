/*
 * Bad input to the synchronization primitives, queues, combinators and
 * I/O calls gives a clear status code, never a crash: NULL handles,
 * blocking calls from a plain thread, objects freed while tasks wait on
 * them (SPINDLE_EBUSY), calls in the wrong state, bad values. Exits
 * non-zero if any call returns something else than documented.
 */
#include "common.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <unistd.h>

static int checks;

#define EXPECT(expr, expected)                                                                     \
    do {                                                                                           \
        int expect_got_ = (expr);                                                                  \
        int expect_want_ = (expected);                                                             \
        checks++;                                                                                  \
        if (expect_got_ == expect_want_) {                                                         \
            printf("  ok    %-66s -> %d\n", #expr, expect_got_);                                   \
        } else {                                                                                   \
            printf("  WRONG %-66s -> %d (%s), expected %d (%s)\n", #expr, expect_got_,             \
                   spindle_strerror(expect_got_), expect_want_, spindle_strerror(expect_want_));   \
            example_fail(__FILE__, __LINE__, #expr);                                               \
        }                                                                                          \
    } while (0)

static void *identity(void *arg) {
    return arg;
}

static int quick(void *arg, void **result) {
    *result = arg;
    return 0;
}

/* ---- NULL handles ---------------------------------------------------------- */

static void null_handles(void) {
    printf("-- NULL handles and out-pointers --\n");
    int flag = 0;
    size_t size = 0;
    void *item = NULL;
    EXPECT(spindle_sem_new(1, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_bounded_sem_new(1, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_sem_acquire(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_sem_try_acquire(NULL, &flag), SPINDLE_EINVAL);
    EXPECT(spindle_sem_release(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_sem_locked(NULL, &flag), SPINDLE_EINVAL);
    EXPECT(spindle_sem_value(NULL, &size), SPINDLE_EINVAL);
    EXPECT(spindle_sem_free(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_lock_new(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_lock_acquire(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_lock_release(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_lock_locked(NULL, &flag), SPINDLE_EINVAL);
    EXPECT(spindle_lock_free(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_event_new(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_event_set(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_event_clear(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_event_is_set(NULL, &flag), SPINDLE_EINVAL);
    EXPECT(spindle_event_wait(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_event_free(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_cond_new(NULL, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_cond_acquire(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_cond_release(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_cond_wait(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_cond_notify(NULL, 1), SPINDLE_EINVAL);
    EXPECT(spindle_cond_notify_all(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_cond_free(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_barrier_new(2, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_barrier_wait(NULL, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_barrier_reset(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_barrier_abort(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_barrier_broken(NULL, &flag), SPINDLE_EINVAL);
    EXPECT(spindle_barrier_free(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_queue_new(SPINDLE_QUEUE_FIFO, 0, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_queue_put(NULL, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_queue_put_nowait(NULL, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_queue_get(NULL, &item), SPINDLE_EINVAL);
    EXPECT(spindle_queue_get_nowait(NULL, &item), SPINDLE_EINVAL);
    EXPECT(spindle_queue_task_done(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_queue_join(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_queue_size(NULL, &size), SPINDLE_EINVAL);
    EXPECT(spindle_queue_shutdown(NULL, 0), SPINDLE_EINVAL);
    EXPECT(spindle_queue_free(NULL), SPINDLE_EINVAL);
    EXPECT(spindle_as_completed_new(NULL, 1, -1.0, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_as_completed_next(NULL, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_as_completed_free(NULL), SPINDLE_EINVAL);
}

static void bad_values(void) {
    printf("-- bad values --\n");
    spindle_sem *sem = NULL;
    spindle_barrier *barrier = NULL;
    spindle_queue *queue = NULL;
    EXPECT(spindle_sem_new(-1, &sem), SPINDLE_EINVAL);
    EXPECT(spindle_bounded_sem_new(-1, &sem), SPINDLE_EINVAL);
    EXPECT(spindle_barrier_new(0, &barrier), SPINDLE_EINVAL);
    EXPECT(spindle_queue_new(99, 0, &queue), SPINDLE_EINVAL);
    CHECK(sem == NULL && barrier == NULL && queue == NULL);

    printf("-- queues: full, empty, wrong kind, shut down --\n");
    void *item = NULL;
    EXPECT(spindle_queue_new(SPINDLE_QUEUE_FIFO, 1, &queue), SPINDLE_OK);
    EXPECT(spindle_queue_put_nowait(queue, INT_TO_PTR(1)), SPINDLE_OK);
    EXPECT(spindle_queue_put_nowait(queue, INT_TO_PTR(2)), SPINDLE_EFULL);
    EXPECT(spindle_queue_put_priority_nowait(queue, 5, INT_TO_PTR(3)), SPINDLE_EINVAL);
    EXPECT(spindle_queue_get_nowait(queue, &item), SPINDLE_OK);
    CHECK(PTR_TO_INT(item) == 1);
    EXPECT(spindle_queue_get_nowait(queue, &item), SPINDLE_EEMPTY);
    EXPECT(spindle_queue_get_nowait(queue, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_queue_task_done(queue), SPINDLE_OK);
    EXPECT(spindle_queue_task_done(queue), SPINDLE_ESTATE); /* more than were put */
    EXPECT(spindle_queue_shutdown(queue, 0), SPINDLE_OK);
    EXPECT(spindle_queue_put_nowait(queue, INT_TO_PTR(4)), SPINDLE_ESHUTDOWN);
    EXPECT(spindle_queue_get_nowait(queue, &item), SPINDLE_ESHUTDOWN);
    EXPECT(spindle_queue_free(queue), SPINDLE_OK);

    printf("-- locks and semaphores in the wrong state --\n");
    spindle_lock *lock = NULL;
    spindle_cond *cond = NULL;
    EXPECT(spindle_lock_new(&lock), SPINDLE_OK);
    EXPECT(spindle_lock_release(lock), SPINDLE_ESTATE); /* not held */
    EXPECT(spindle_cond_new(lock, &cond), SPINDLE_OK);
    EXPECT(spindle_cond_notify(cond, 1), SPINDLE_ESTATE); /* lock not held */
    EXPECT(spindle_cond_release(cond), SPINDLE_ESTATE);
    EXPECT(spindle_lock_free(lock), SPINDLE_OK); /* the condition keeps it alive */
    EXPECT(spindle_cond_free(cond), SPINDLE_OK);
    EXPECT(spindle_bounded_sem_new(1, &sem), SPINDLE_OK);
    EXPECT(spindle_sem_release(sem), SPINDLE_ESTATE); /* beyond its initial value */
    EXPECT(spindle_sem_free(sem), SPINDLE_OK);
}

/* ---- blocking calls outside a task ------------------------------------------ */

struct objects {
    spindle_sem *sem;
    spindle_lock *lock;
    spindle_event *event;
    spindle_queue *queue;
    spindle_barrier *barrier;
    spindle_task *task;
};

static void not_in_a_task(struct objects *o, const char *where) {
    printf("-- blocking calls outside a C task (%s) --\n", where);
    void *item = NULL;
    int done[1];
    spindle_as_completed *it = NULL;
    EXPECT(spindle_sem_acquire(o->sem), SPINDLE_ENOTASK);
    EXPECT(spindle_lock_acquire(o->lock), SPINDLE_ENOTASK);
    EXPECT(spindle_event_wait(o->event), SPINDLE_ENOTASK);
    EXPECT(spindle_queue_get(o->queue, &item), SPINDLE_ENOTASK);
    EXPECT(spindle_queue_put(o->queue, NULL), SPINDLE_ENOTASK);
    EXPECT(spindle_queue_join(o->queue), SPINDLE_ENOTASK);
    EXPECT(spindle_barrier_wait(o->barrier, NULL), SPINDLE_ENOTASK);
    EXPECT(spindle_gather(&o->task, 1, NULL, NULL), SPINDLE_ENOTASK);
    EXPECT(spindle_wait(&o->task, 1, SPINDLE_ALL_COMPLETED, 0.01, done, NULL), SPINDLE_ENOTASK);
    EXPECT(spindle_fd_wait(0, SPINDLE_READABLE, 0.01, NULL), SPINDLE_ENOTASK);
    EXPECT(spindle_to_thread(identity, NULL, NULL), SPINDLE_ENOTASK);
    EXPECT(spindle_as_completed_new(&o->task, 1, -1.0, &it), SPINDLE_OK); /* any thread */
    EXPECT(spindle_as_completed_next(it, NULL), SPINDLE_ENOTASK);
    EXPECT(spindle_as_completed_free(it), SPINDLE_OK);
    /* Non-blocking calls work from any thread. */
    int acquired = 0;
    EXPECT(spindle_sem_try_acquire(o->sem, &acquired), SPINDLE_OK);
    CHECK(acquired == 1);
    EXPECT(spindle_sem_release(o->sem), SPINDLE_OK);
    EXPECT(spindle_event_set(o->event), SPINDLE_OK);
    EXPECT(spindle_event_clear(o->event), SPINDLE_OK);
    EXPECT(spindle_queue_put_nowait(o->queue, INT_TO_PTR(9)), SPINDLE_OK);
    EXPECT(spindle_queue_get_nowait(o->queue, &item), SPINDLE_OK);
    EXPECT(spindle_queue_task_done(o->queue), SPINDLE_OK);
}

static void *plain_thread(void *arg) {
    not_in_a_task(arg, "a plain pthread");
    return NULL;
}

/* ---- inside a task ------------------------------------------------------------ */

static int get_one(void *arg, void **result) {
    return spindle_queue_get(arg, result);
}

static int acquire_one(void *arg, void **result) {
    (void)result;
    int rc = spindle_sem_acquire(arg);
    if (rc == 0)
        spindle_sem_release(arg);
    return rc;
}

static int wait_event(void *arg, void **result) {
    (void)result;
    return spindle_event_wait(arg);
}

static int wait_barrier(void *arg, void **result) {
    (void)result;
    return spindle_barrier_wait(arg, NULL);
}

/* Lets `task` run until it waits (it never finishes by itself here). */
static void let_it_wait(spindle_task *task) {
    for (int i = 0; i < 10; i++)
        spindle_sleep(0.005);
    int done = 1;
    spindle_task_done(task, &done);
    CHECK(done == 0);
}

static int in_a_task(void *arg, void **result) {
    (void)arg;
    (void)result;

    printf("-- freeing an object while a task waits on it: SPINDLE_EBUSY --\n");
    spindle_task *waiter;
    spindle_queue *queue;
    EXPECT(spindle_queue_new(SPINDLE_QUEUE_FIFO, 0, &queue), SPINDLE_OK);
    EXPECT(spindle_spawn(get_one, queue, "getter", &waiter), SPINDLE_OK);
    let_it_wait(waiter);
    EXPECT(spindle_queue_free(queue), SPINDLE_EBUSY);
    EXPECT(spindle_queue_put(queue, INT_TO_PTR(5)), SPINDLE_OK);
    void *item = NULL;
    EXPECT(spindle_task_join(waiter, &item), SPINDLE_OK);
    CHECK(PTR_TO_INT(item) == 5);
    EXPECT(spindle_task_free(waiter), SPINDLE_OK);
    EXPECT(spindle_queue_free(queue), SPINDLE_OK);

    spindle_sem *sem;
    EXPECT(spindle_sem_new(0, &sem), SPINDLE_OK);
    EXPECT(spindle_spawn(acquire_one, sem, "acquirer", &waiter), SPINDLE_OK);
    let_it_wait(waiter);
    EXPECT(spindle_sem_free(sem), SPINDLE_EBUSY);
    EXPECT(spindle_task_cancel(waiter, NULL, NULL), SPINDLE_OK);
    EXPECT(spindle_task_join(waiter, NULL), SPINDLE_ECANCELED);
    EXPECT(spindle_task_free(waiter), SPINDLE_OK);
    size_t value = 99;
    EXPECT(spindle_sem_value(sem, &value), SPINDLE_OK);
    CHECK(value == 0); /* the cancelled wait took nothing */
    EXPECT(spindle_sem_free(sem), SPINDLE_OK);

    spindle_event *event;
    EXPECT(spindle_event_new(&event), SPINDLE_OK);
    EXPECT(spindle_spawn(wait_event, event, "event-waiter", &waiter), SPINDLE_OK);
    let_it_wait(waiter);
    EXPECT(spindle_event_free(event), SPINDLE_EBUSY);
    EXPECT(spindle_event_set(event), SPINDLE_OK);
    EXPECT(spindle_task_join(waiter, NULL), SPINDLE_OK);
    EXPECT(spindle_task_free(waiter), SPINDLE_OK);
    EXPECT(spindle_event_free(event), SPINDLE_OK);

    spindle_barrier *barrier;
    EXPECT(spindle_barrier_new(2, &barrier), SPINDLE_OK);
    EXPECT(spindle_spawn(wait_barrier, barrier, "barrier-waiter", &waiter), SPINDLE_OK);
    let_it_wait(waiter);
    EXPECT(spindle_barrier_free(barrier), SPINDLE_EBUSY);
    EXPECT(spindle_barrier_abort(barrier), SPINDLE_OK);
    EXPECT(spindle_task_join(waiter, NULL), SPINDLE_ESHUTDOWN);
    EXPECT(spindle_task_free(waiter), SPINDLE_OK);
    EXPECT(spindle_barrier_wait(barrier, NULL), SPINDLE_ESHUTDOWN); /* broken */
    EXPECT(spindle_barrier_free(barrier), SPINDLE_OK);

    printf("-- combinators: bad arrays and values --\n");
    spindle_task *tasks[2] = {NULL, NULL};
    int done[2];
    EXPECT(spindle_spawn(quick, INT_TO_PTR(1), "quick", &tasks[0]), SPINDLE_OK);
    EXPECT(spindle_gather(tasks, 2, NULL, NULL), SPINDLE_EINVAL); /* a NULL entry */
    EXPECT(spindle_gather(NULL, 1, NULL, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_gather(NULL, 0, NULL, NULL), SPINDLE_OK); /* gather of nothing */
    EXPECT(spindle_wait(tasks, 0, SPINDLE_ALL_COMPLETED, -1.0, done, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_wait(tasks, 1, 7, -1.0, done, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_wait(tasks, 1, SPINDLE_ALL_COMPLETED, NAN, done, NULL), SPINDLE_EINVAL);
    EXPECT(spindle_task_free(tasks[0]), SPINDLE_OK);

    printf("-- fd readiness and to_thread --\n");
    int revents = 0;
    EXPECT(spindle_fd_wait(-1, SPINDLE_READABLE, 0.1, &revents), SPINDLE_EINVAL);
    EXPECT(spindle_fd_wait(0, 0, 0.1, &revents), SPINDLE_EINVAL);
    EXPECT(spindle_fd_wait(0, 64, 0.1, &revents), SPINDLE_EINVAL);
    int pipe_fds[2];
    CHECK(pipe(pipe_fds) == 0);
    int closed = dup(pipe_fds[0]);
    close(closed);
    EXPECT(spindle_fd_wait(closed, SPINDLE_READABLE, 0.1, &revents), SPINDLE_EIO); /* not open */
    EXPECT(spindle_fd_wait(pipe_fds[0], SPINDLE_READABLE, 0.05, &revents), SPINDLE_ETIMEDOUT);
    EXPECT(spindle_fd_wait(pipe_fds[1], SPINDLE_WRITABLE, 1.0, &revents), SPINDLE_OK);
    CHECK(revents & SPINDLE_WRITABLE);
    close(pipe_fds[1]);
    EXPECT(spindle_fd_wait(pipe_fds[0], SPINDLE_READABLE, 1.0, &revents), SPINDLE_OK);
    CHECK(revents & (SPINDLE_READABLE | SPINDLE_HANGUP)); /* end of stream */
    close(pipe_fds[0]);
    char path[] = "/tmp/spindle-bad-input-XXXXXX";
    int file = mkstemp(path);
    if (file >= 0) {
        unlink(path);
        EXPECT(spindle_fd_wait(file, SPINDLE_READABLE, 0.1, &revents), SPINDLE_EIO); /* a file */
        close(file);
    }
    EXPECT(spindle_to_thread(NULL, NULL, NULL), SPINDLE_EINVAL);
    void *back = NULL;
    EXPECT(spindle_to_thread(identity, INT_TO_PTR(77), &back), SPINDLE_OK);
    CHECK(PTR_TO_INT(back) == 77);
    return 0;
}

int main(void) {
    example_start("bad input to the primitives, queues, combinators and I/O");
    null_handles();
    bad_values();

    spindle_options options;
    spindle_options_init(&options);
    options.workers = 2;
    spindle_runtime *runtime = NULL;
    EXPECT(spindle_runtime_new(&options, &runtime), SPINDLE_OK);
    if (runtime == NULL)
        return example_finish(1);
    struct objects o;
    EXPECT(spindle_sem_new(1, &o.sem), SPINDLE_OK);
    EXPECT(spindle_lock_new(&o.lock), SPINDLE_OK);
    EXPECT(spindle_event_new(&o.event), SPINDLE_OK);
    EXPECT(spindle_queue_new(SPINDLE_QUEUE_FIFO, 0, &o.queue), SPINDLE_OK);
    EXPECT(spindle_barrier_new(2, &o.barrier), SPINDLE_OK);
    EXPECT(spindle_runtime_spawn(runtime, quick, NULL, "quick", &o.task), SPINDLE_OK);
    not_in_a_task(&o, "the main thread");
    pthread_t thread;
    if (pthread_create(&thread, NULL, plain_thread, &o) != 0)
        return example_finish(1);
    pthread_join(thread, NULL);

    EXPECT(spindle_runtime_run(runtime, in_a_task, NULL, NULL), SPINDLE_OK);
    EXPECT(spindle_sem_free(o.sem), SPINDLE_OK);
    EXPECT(spindle_lock_free(o.lock), SPINDLE_OK);
    EXPECT(spindle_event_free(o.event), SPINDLE_OK);
    EXPECT(spindle_queue_free(o.queue), SPINDLE_OK);
    EXPECT(spindle_barrier_free(o.barrier), SPINDLE_OK);
    EXPECT(spindle_task_free(o.task), SPINDLE_OK);
    EXPECT(spindle_runtime_free(runtime), SPINDLE_OK);
    printf("%d checks\n", checks);
    return example_finish(0);
}
