/*
 * The scraper with an overall timeout (seed "Running Concurrent Tasks",
 * hands-on exercise):
 *
 *   # 1. "Fetches" 10 URLs with random delays
 *   # 2. Has a 3-second overall timeout
 *   # 3. Processes results as they arrive
 *   # 4. Reports which URLs completed and which timed out
 *
 * In C: the fetches are tasks; a timeout scope of 3 s surrounds the loop
 * that takes them as they complete (spindle_as_completed_next). At the
 * deadline the loop's wait returns SPINDLE_ECANCELED and
 * spindle_timeout_end turns it into SPINDLE_ETIMEDOUT; the fetches still
 * running are then cancelled and waited for.
 *
 * The delays are drawn from a fixed seed, between 0.5 s and 4 s (the
 * tutorial's are below 2.5 s, so that nothing times out; here three URLs
 * take longer than the timeout, to show that path). The seed is one with
 * no delay within 0.6 s of the deadline, so that the outcome is certain
 * even on a slow or loaded machine.
 */
#include "common.h"

enum { URLS = 10 };

struct page {
    char url[48];
    double delay;
    atomic_int cleaned_up;
};

/* async def fetch_url(url): await asyncio.sleep(delay); return {...} */
static int fetch_url(void *arg, void **result) {
    struct page *p = arg;
    int rc = spindle_sleep(p->delay);
    if (rc == SPINDLE_ECANCELED) {
        atomic_store(&p->cleaned_up, 1); /* close the connection, say */
        return rc;
    }
    if (rc != 0)
        return rc;
    *result = p;
    return 0;
}

/* A small deterministic generator (the delays must not depend on libc). */
static double uniform(unsigned *state, double lo, double hi) {
    *state = *state * 1103515245u + 12345u;
    return lo + (hi - lo) * (double)((*state >> 8) & 0xffff) / 65535.0;
}

static int main_task(void *arg, void **result) {
    (void)arg;
    (void)result;
    static struct page pages[URLS];
    spindle_task *tasks[URLS];
    unsigned seed = 741;
    int expected_done = 0;
    double start = now();
    for (int i = 0; i < URLS; i++) {
        snprintf(pages[i].url, sizeof pages[i].url, "https://example.com/page/%d", i);
        pages[i].delay = uniform(&seed, 0.5, 4.0);
        expected_done += pages[i].delay < 3.0;
        CHECK_RC(spindle_spawn(fetch_url, &pages[i], pages[i].url, &tasks[i]), 0);
    }

    /* async with asyncio.timeout(3.0): for coro in as_completed(tasks): ... */
    int completed = 0;
    spindle_timeout *scope;
    CHECK_RC(spindle_timeout_begin(3.0, &scope), 0);
    spindle_as_completed *it;
    int rc = spindle_as_completed_new(tasks, URLS, -1.0, &it);
    while (rc == 0) {
        spindle_task *next = NULL;
        rc = spindle_as_completed_next(it, &next);
        if (rc != 0)
            break; /* SPINDLE_EEMPTY: all done; SPINDLE_ECANCELED: the deadline */
        void *value = NULL;
        CHECK_RC(spindle_task_result(next, &value), 0);
        struct page *p = value;
        if (p != NULL) {
            printf("  done %s (%.2fs) at %.2f s\n", p->url, p->delay, now() - start);
            completed++;
        }
        spindle_task_free(next);
    }
    if (rc == SPINDLE_EEMPTY)
        rc = 0;
    rc = spindle_timeout_end(scope, rc);
    double deadline_at = now() - start;
    CHECK_RC(spindle_timeout_free(scope), 0);
    CHECK_RC(spindle_as_completed_free(it), 0);
    printf("  the 3 s scope ended: %s\n", spindle_strerror(rc));
    CHECK(rc == SPINDLE_ETIMEDOUT);

    /* Cancel what is still running, and wait for its cleanup. */
    int timed_out = 0;
    for (int i = 0; i < URLS; i++) {
        int done = 0;
        CHECK_RC(spindle_task_done(tasks[i], &done), 0);
        if (!done) {
            CHECK_RC(spindle_task_cancel(tasks[i], "scraper timeout", NULL), 0);
            timed_out++;
        }
    }
    int codes[URLS];
    CHECK_RC(spindle_gather(tasks, URLS, NULL, codes), 0);
    printf("\n=== Summary ===\n");
    printf("Completed: %d/%d\n", completed, URLS);
    printf("Timed out: %d\n", timed_out);
    if (timed_out)
        printf("Failed URLs:\n");
    for (int i = 0; i < URLS; i++) {
        if (codes[i] == SPINDLE_ECANCELED) {
            printf("  - %s (%.2fs)\n", pages[i].url, pages[i].delay);
            CHECK(atomic_load(&pages[i].cleaned_up) == 1);
            CHECK(pages[i].delay > 3.0 || !timing_is_checked());
        } else {
            CHECK(codes[i] == 0);
        }
        spindle_task_free(tasks[i]);
    }
    CHECK(completed + timed_out == URLS);
    /* Under valgrind (timings unchecked) the tasks start late, and more of
     * them miss the deadline. */
    CHECK(completed == expected_done || (!timing_is_checked() && completed <= expected_done));
    CHECK(timed_out > 0);
    report_timing("10 fetches under a 3 s overall timeout", deadline_at,
                  "3 s, then the rest are cancelled", 2.99, 3.5);
    return 0;
}

int main(void) {
    example_start("scraper with an overall timeout");
    return example_finish(spindle_run(NULL, main_task, NULL, NULL));
}
