/*
 * Producer-consumer with a bounded queue (seed "Asyncio Tasks").
 *
 *   async def producer(queue, name, count):
 *       for i in range(count):
 *           await queue.put(f"{name}-item-{i}"); await asyncio.sleep(0.1)
 *   async def consumer(queue, name):
 *       while True:
 *           item = await queue.get(); print(...); await asyncio.sleep(0.05)
 *           queue.task_done()
 *   queue = asyncio.Queue(maxsize=5)
 *   await asyncio.gather(*producers); await queue.join()
 *   for c in consumers: c.cancel()
 *
 * Items are `void *`; who owns what they point to is the program's choice
 * (here the consumer frees the strings the producer allocated).
 */
#include "common.h"

struct producer_arg {
    spindle_queue *queue;
    const char *name;
    int count;
    double pause;
};

struct consumer_arg {
    spindle_queue *queue;
    const char *name;
    double work;
    int quiet;
};

static atomic_int processed;

static int producer(void *arg, void **result) {
    struct producer_arg *p = arg;
    (void)result;
    for (int i = 0; i < p->count; i++) {
        char *item = malloc(32);
        if (item == NULL)
            return 1;
        snprintf(item, 32, "%s-item-%d", p->name, i);
        int rc = spindle_queue_put(p->queue, item); /* waits while the queue is full */
        if (rc != 0) {
            free(item); /* not put: still ours */
            return rc;
        }
        if (p->pause > 0 && (rc = spindle_sleep(p->pause)) != 0)
            return rc;
    }
    return 0;
}

static int consumer(void *arg, void **result) {
    struct consumer_arg *c = arg;
    (void)result;
    for (;;) {
        void *item = NULL;
        int rc = spindle_queue_get(c->queue, &item);
        if (rc != 0)
            return rc; /* cancelled (the loop's only way out), or shut down */
        if (!c->quiet)
            printf("  %s processed: %s\n", c->name, (char *)item);
        free(item);
        rc = spindle_sleep(c->work);
        atomic_fetch_add(&processed, 1);
        spindle_queue_task_done(c->queue);
        if (rc != 0)
            return rc;
    }
}

/* Runs producers and consumers over a queue of `maxsize`; returns the time
 * until queue.join() returned. */
static double run(int producers, int items_each, double pause, int consumers, double work,
                  size_t maxsize, int quiet) {
    spindle_queue *queue;
    CHECK_RC(spindle_queue_new(SPINDLE_QUEUE_FIFO, maxsize, &queue), 0);
    static const char *pnames[] = {"P1", "P2", "P3", "P4"};
    static const char *cnames[] = {"C1", "C2", "C3", "C4"};
    struct producer_arg pargs[4];
    struct consumer_arg cargs[4];
    spindle_task *ptasks[4], *ctasks[4];
    atomic_store(&processed, 0);
    double start = now();
    for (int i = 0; i < consumers; i++) {
        cargs[i] = (struct consumer_arg){queue, cnames[i], work, quiet};
        CHECK_RC(spindle_spawn(consumer, &cargs[i], cnames[i], &ctasks[i]), 0);
    }
    for (int i = 0; i < producers; i++) {
        pargs[i] = (struct producer_arg){queue, pnames[i], items_each, pause};
        CHECK_RC(spindle_spawn(producer, &pargs[i], pnames[i], &ptasks[i]), 0);
    }
    /* await asyncio.gather(*producers); await queue.join() */
    CHECK_RC(spindle_gather(ptasks, (size_t)producers, NULL, NULL), 0);
    CHECK_RC(spindle_queue_join(queue), 0);
    double took = now() - start;
    /* The consumers loop forever: cancel them. */
    for (int i = 0; i < consumers; i++)
        CHECK_RC(spindle_task_cancel(ctasks[i], NULL, NULL), 0);
    for (int i = 0; i < consumers; i++) {
        CHECK_RC(spindle_task_join(ctasks[i], NULL), SPINDLE_ECANCELED);
        spindle_task_free(ctasks[i]);
    }
    for (int i = 0; i < producers; i++)
        spindle_task_free(ptasks[i]);
    size_t size = 99;
    CHECK_RC(spindle_queue_size(queue, &size), 0);
    CHECK(size == 0);
    CHECK_RC(spindle_queue_free(queue), 0);
    return took;
}

static int main_task(void *arg, void **result) {
    (void)arg;
    (void)result;

    printf("-- Queue(maxsize=5), one producer of 5 items every 0.1 s, one consumer --\n");
    double took = run(1, 5, 0.1, 1, 0.05, 5, 0);
    printf("  processed %d items\n", atomic_load(&processed));
    CHECK(atomic_load(&processed) == 5);
    report_timing("5 items produced 0.1 s apart", took, "~0.5 s, set by the producer", 0.49, 0.9);

    printf("-- back-pressure: 2 producers of 20 items, 3 consumers of 0.02 s, maxsize 4 --\n");
    took = run(2, 20, 0.0, 3, 0.02, 4, 1);
    printf("  processed %d items\n", atomic_load(&processed));
    CHECK(atomic_load(&processed) == 40);
    report_timing("40 items, 3 consumers of 0.02 s", took,
                  "~0.27 s (40 / 3 rounds), not 0.8 s with one", 0.26, 0.6);
    return 0;
}

int main(void) {
    example_start("producer-consumer with a queue");
    return example_finish(spindle_run(NULL, main_task, NULL, NULL));
}
