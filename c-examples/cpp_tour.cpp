/*
 * A tour of spindle from C++ (include/spindle.hpp): lambdas as tasks, gather
 * and join, a task group with a failing child, timeout scopes, wait_for,
 * a cancelled task that cleans up with blocking calls, the rule that keeps
 * exceptions out of fibers, and (with a spindle.h that has them) queues,
 * semaphores, events and to_thread.
 *
 * Each step checks its outcome and prints its timing; the exit status is 0
 * only if every outcome was right.
 *
 *   make -C c-examples build/cpp_tour && c-examples/build/cpp_tour
 */
#include "spindle.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

std::atomic<int> failures{0};

double now() {
    using clock = std::chrono::steady_clock;
    return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

void fail(int line, const char *what) {
    std::fprintf(stderr, "FAILED cpp_tour.cpp:%d: %s\n", line, what);
    std::fflush(stderr);
    failures.fetch_add(1);
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail(__LINE__, #cond);                                                                 \
    } while (0)

/* Whether timings are judged (not under valgrind, which sets this). */
bool timing_is_checked() {
    const char *off = std::getenv("SPINDLE_EXAMPLES_NO_TIMING");
    return off == nullptr || off[0] == '\0' || std::strcmp(off, "0") == 0;
}

/* One timing line, in the format of the C examples (common.h). */
void report_timing(const char *what, double measured, const char *claim, double min, double max) {
    const char *verdict = !timing_is_checked()                   ? "unchecked"
                          : (measured >= min && measured <= max) ? "ok"
                                                                 : "WRONG";
    std::printf("[timing] %s: %.3f s (seed: %s) [%s: %.2f..%.2f s]\n", what, measured, claim, verdict,
                min, max);
    std::fflush(stdout);
    if (std::strcmp(verdict, "WRONG") == 0)
        fail(__LINE__, what);
}

// ---------------------------------------------------------------------------
// 1. Lambdas as tasks, gather: three tasks that each sleep 0.2 s finish
//    together in ~0.2 s; each returns its own type.

void spawn_and_gather() {
    double start = now();
    static const char greeting[] = "hello";
    auto number = spindle::spawn("number", [] {
        spindle::sleep(0.2);
        return 42;
    });
    auto text = spindle::spawn([] {
        spindle::sleep(std::chrono::milliseconds(200));
        return std::string("forty-two");
    });
    auto pointer = spindle::spawn([] {
        spindle::sleep(0.2);
        return greeting; // a pointer: also the task's C-level result
    });
    CHECK(number.name() == "number");
    auto [n, s, p] = spindle::gather(number, text, pointer);
    double took = now() - start;
    std::printf("gather: %d, \"%s\", \"%s\"\n", n, s.c_str(), p);
    CHECK(n == 42 && s == "forty-two" && p == greeting);
    report_timing("three 0.2 s sleeps gathered", took, "~0.2 s, not ~0.6 s", 0.19, 0.45);

    // A vector of tasks gathers into a vector.
    start = now();
    std::vector<spindle::task<int>> squares;
    for (int i = 0; i < 1000; i++)
        squares.push_back(spindle::spawn([i] {
            spindle::yield();
            return i * i;
        }));
    std::vector<int> values = spindle::gather(squares);
    long long sum = std::accumulate(values.begin(), values.end(), 0LL);
    std::printf("gather of 1000 tasks: sum of squares %lld in %.3f ms\n", sum, (now() - start) * 1e3);
    CHECK(sum == 332833500LL);
}

// ---------------------------------------------------------------------------
// 2. join, and exceptions as outcomes: the task's exception is caught on its
//    fiber and the *original* object is rethrown by join, on the joiner's
//    stack.

void join_and_exceptions() {
    auto doubled = spindle::spawn([] { return 21 * 2; });
    CHECK(doubled.join() == 42);
    CHECK(doubled.done() && !doubled.cancelled());

    auto failing = spindle::spawn([]() -> int {
        spindle::sleep(0.01);
        throw std::invalid_argument("no such thing");
    });
    bool caught = false;
    try {
        failing.join();
    } catch (const std::invalid_argument &e) {
        caught = std::strcmp(e.what(), "no such thing") == 0;
    }
    CHECK(caught);

    // A task can fail with its own code, as a C task returns a positive one.
    auto coded = spindle::spawn([] { throw spindle::error(7); });
    int code = 0;
    try {
        coded.join();
    } catch (const spindle::error &e) {
        code = e.code();
    }
    std::printf("join: 42, std::invalid_argument rethrown, own code %d\n", code);
    CHECK(code == 7);
}

// ---------------------------------------------------------------------------
// 3. A task group with a failing child: the failure cancels the other child
//    and the body at once (not after their 5 s), and the group throws
//    group_error with every failure; the cancelled child's cleanup runs.

void group_with_failing_child() {
    std::atomic<bool> sibling_cleaned{false};
    bool body_cancelled = false;
    double start = now();
    bool thrown = false;
    try {
        spindle::task_group([&](spindle::group &g) {
            g.spawn("fails", [] {
                spindle::sleep(0.05);
                throw std::runtime_error("child failed");
            });
            g.spawn("sibling", [&] {
                auto r = spindle::attempt([] { spindle::sleep(5.0); });
                if (r.cancelled()) {
                    spindle::sleep(0.01); // cleanup may block (rule 2: outside any catch)
                    sibling_cleaned = true;
                }
                r.get(); // ends the sibling cancelled
            });
            auto r = spindle::attempt([] { spindle::sleep(5.0); });
            body_cancelled = r.cancelled();
            r.get();
        });
    } catch (const spindle::group_error &e) {
        thrown = true;
        std::string what;
        for (const auto &ep : e.exceptions()) {
            try {
                std::rethrow_exception(ep);
            } catch (const std::exception &inner) {
                what += inner.what();
            }
        }
        std::printf("group_error: %zu failure(s), code %d, exception \"%s\"\n", e.codes().size(),
                    e.codes().empty() ? 0 : e.codes()[0], what.c_str());
        CHECK(e.codes().size() == 1 && e.codes()[0] == SPINDLE_EFAILED);
        CHECK(what == "child failed");
    }
    double took = now() - start;
    CHECK(thrown);
    CHECK(body_cancelled);
    CHECK(sibling_cleaned);
    report_timing("group with a child failing at 0.05 s", took, "~0.05 s, not 5 s", 0.04, 1.0);

    // The RAII form, ended by hand; all children succeed.
    std::atomic<int> done{0};
    {
        spindle::group g;
        for (int i = 0; i < 10; i++)
            g.spawn([&] {
                spindle::sleep(0.01);
                done++;
            });
        g.wait();
    }
    CHECK(done == 10);
}

// ---------------------------------------------------------------------------
// 4. Timeout scopes: the deadline cancels the body; the scope turns that
//    into timed_out. A body that finishes in time returns its value.

void timeouts() {
    double start = now();
    bool timed_out = false;
    try {
        spindle::with_timeout(0.1, [] { spindle::sleep(5.0); });
    } catch (const spindle::timed_out &) {
        timed_out = true;
    }
    double took = now() - start;
    CHECK(timed_out);
    report_timing("5 s sleep under a 0.1 s timeout", took, "~0.1 s", 0.09, 1.0);

    int value = spindle::with_timeout(std::chrono::seconds(5), [] {
        spindle::sleep(0.01);
        return 7;
    });
    CHECK(value == 7);

    // RAII scope, moved later, ended by hand with the body's status.
    start = now();
    int rc;
    {
        spindle::timeout_scope scope(5.0);
        scope.reschedule(0.05);
        auto r = spindle::attempt([] { spindle::sleep(5.0); });
        rc = scope.end(r.status());
        CHECK(scope.expired());
    }
    std::printf("timeout_scope: end() -> %d (%s)\n", rc, spindle_strerror(rc));
    CHECK(rc == SPINDLE_ETIMEDOUT);
    report_timing("rescheduled RAII timeout scope", now() - start, "~0.05 s", 0.04, 1.0);

    // wait_for: the awaited task is cancelled at the limit.
    auto slow = spindle::spawn([] { spindle::sleep(5.0); });
    timed_out = false;
    try {
        slow.wait_for(0.05);
    } catch (const spindle::timed_out &) {
        timed_out = true;
    }
    CHECK(timed_out);
    CHECK(slow.done() && slow.cancelled());
}

// ---------------------------------------------------------------------------
// 5. A cancelled task cleans up with blocking calls, then ends cancelled.

void cancellation_cleanup() {
    std::atomic<bool> cleaned{false};
    double start = now();
    auto worker = spindle::spawn("worker", [&] {
        auto r = spindle::attempt([] { spindle::sleep(10.0); });
        if (r.cancelled()) {
            spindle::sleep(0.05); // asynchronous cleanup: later calls work again
            cleaned = true;
        }
        r.get(); // rethrows spindle::cancelled: the task ends cancelled
    });
    spindle::sleep(0.05);
    CHECK(worker.cancel("shutting down"));
    bool saw_cancel = false;
    try {
        worker.join();
    } catch (const spindle::cancelled &) {
        saw_cancel = true;
    }
    double took = now() - start;
    CHECK(saw_cancel && worker.cancelled() && cleaned);
    std::printf("cancelled task: cleanup ran=%d, ended cancelled=%d\n", cleaned.load(), worker.cancelled());
    report_timing("cancel at 0.05 s + 0.05 s cleanup", took, "~0.1 s, not 10 s", 0.09, 1.0);

    // shield: the caller's cancellation does not reach the shielded task.
    auto precious = spindle::spawn([] {
        spindle::sleep(0.1);
        return 5;
    });
    auto waiter = spindle::spawn([&] { return precious.shield(); });
    spindle::sleep(0.02);
    waiter.cancel();
    bool waiter_cancelled = false;
    try {
        waiter.join();
    } catch (const spindle::cancelled &) {
        waiter_cancelled = true;
    }
    CHECK(waiter_cancelled);
    CHECK(precious.join() == 5);
}

// ---------------------------------------------------------------------------
// 6. Rule 2: a blocking call inside a catch block is refused (it would
//    corrupt the C++ runtime's per-thread exception list if the fiber moved).

void no_blocking_in_handlers() {
    int code = 0;
    try {
        try {
            throw std::runtime_error("x");
        } catch (const std::exception &) {
            spindle::sleep(0.01); // refused: throws spindle::error(SPINDLE_ESTATE)
        }
    } catch (const spindle::error &e) {
        code = e.code();
    }
    std::printf("blocking inside a catch block: %d (%s)\n", code, spindle_strerror(code));
    CHECK(code == SPINDLE_ESTATE);
}

#ifdef SPINDLE_QUEUE_FIFO
// ---------------------------------------------------------------------------
// 7. Queues, semaphores, events (with a spindle.h that has them): a
//    producer, three consumers, at most two of them busy at once, blocking
//    work sent to a thread, and an event to say the work is all done.

void primitives() {
    double start = now();
    spindle::queue<int> jobs(4); // bounded: the producer waits when full
    spindle::semaphore busy(2);
    spindle::event finished;
    std::atomic<int> in_flight{0}, peak{0}, sum{0};
    auto producer = spindle::spawn("producer", [&] {
        for (int i = 1; i <= 12; i++)
            jobs.put(new int(i));
        jobs.join(); // every job marked done
        finished.set();
    });
    std::vector<spindle::task<void>> consumers;
    for (int c = 0; c < 3; c++)
        consumers.push_back(spindle::spawn([&] {
            for (;;) {
                auto job = spindle::attempt([&] { return jobs.get(); });
                if (job.status() == SPINDLE_ESHUTDOWN)
                    return; // the queue was shut down and drained
                std::unique_ptr<int> n(job.get());
                {
                    spindle::hold permit(busy); // async with sem:
                    int now_in = ++in_flight;
                    int seen = peak.load();
                    while (now_in > seen && !peak.compare_exchange_weak(seen, now_in)) {
                    }
                    // Blocking work goes to a thread; this task waits for it.
                    sum += spindle::to_thread([v = *n] { return v * v; });
                    spindle::sleep(0.02);
                    --in_flight;
                }
                jobs.task_done();
            }
        }));
    finished.wait();
    jobs.shutdown();
    spindle::gather(consumers);
    producer.join();
    double took = now() - start;
    std::printf("queue: 12 jobs, sum of squares %d, at most %d busy at once\n", sum.load(), peak.load());
    CHECK(sum == 650);
    CHECK(peak <= 2);
    // 12 jobs of 0.02 s, two at a time: ~0.12 s, not 0.24 s.
    report_timing("12 jobs of 0.02 s, two at a time", took, "~0.12 s, not 0.24 s", 0.11, 0.23);
}

// ---------------------------------------------------------------------------
// 8. as_completed, wait, a condition over a lock, a barrier.

void completion_order_and_coordination() {
    std::vector<spindle::task<int>> racers;
    // Deadlines from one start, so a racer that starts late on a loaded
    // machine still finishes in its turn.
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 4; i++)
        racers.push_back(spindle::spawn([i, start] {
            auto deadline = start + std::chrono::milliseconds(50 * (4 - i));
            spindle::sleep(deadline - std::chrono::steady_clock::now()); // the last one spawned finishes first
            return i;
        }));
    spindle::as_completed<int> finishing(racers);
    std::string order;
    while (spindle::task<int> *t = finishing.next())
        order += std::to_string(t->result());
    std::printf("as_completed order: %s\n", order.c_str());
    // Under valgrind a stall can let deadlines pass together: then only the
    // set is checked, not the order.
    CHECK(timing_is_checked() ? order == "3210" : order.size() == 4);

    std::vector<spindle::task<int>> pair;
    pair.push_back(spindle::spawn([] {
        spindle::sleep(0.01);
        return 1;
    }));
    pair.push_back(spindle::spawn([] {
        spindle::sleep(5.0);
        return 2;
    }));
    spindle::wait_result first = spindle::wait(pair, spindle::return_when::first_completed);
    CHECK(first.done.size() == 1 && first.done[0] == 0 && first.pending.size() == 1);
    pair[1].cancel(); // wait cancels nothing by itself

    spindle::lock mu;
    spindle::condition ready(mu);
    int stage = 0;
    auto waiter = spindle::spawn([&] {
        spindle::hold held(ready);
        ready.wait([&] { return stage == 1; });
        return stage;
    });
    spindle::sleep(0.01);
    {
        spindle::hold held(ready);
        stage = 1;
        ready.notify_all();
    }
    CHECK(waiter.join() == 1);

    spindle::barrier meet(3);
    std::vector<spindle::task<std::size_t>> parties;
    for (int i = 0; i < 3; i++)
        parties.push_back(spindle::spawn([&] { return meet.wait(); }));
    std::vector<std::size_t> indices = spindle::gather(parties);
    CHECK(indices[0] + indices[1] + indices[2] == 0 + 1 + 2);
}
#endif

} // namespace

int main() {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    std::printf("== C++ tour (libspindle %s) ==\n", spindle_version());

    // asyncio.run: a runtime for the main task, shut down after it.
    int rc = spindle::run([] {
        spawn_and_gather();
        join_and_exceptions();
        group_with_failing_child();
        timeouts();
        cancellation_cleanup();
        no_blocking_in_handlers();
#ifdef SPINDLE_QUEUE_FIFO
        primitives();
        completion_order_and_coordination();
#endif
        return 0;
    });
    CHECK(rc == 0);

    // A runtime object: tasks spawned from outside, several runs.
    {
        spindle::options opts;
        opts.workers = 2;
        spindle::runtime rt(opts);
        auto outside = rt.spawn([] {
            spindle::sleep(0.01);
            return std::string("from outside");
        });
        std::string got = rt.run([&] { return outside.join(); });
        CHECK(got == "from outside");
        bool caught = false;
        try {
            rt.run([] { throw std::logic_error("main failed"); });
        } catch (const std::logic_error &) {
            caught = true;
        }
        CHECK(caught);
        // Outside a task, blocking calls say so.
        int code = 0;
        try {
            spindle::sleep(0.01);
        } catch (const spindle::error &e) {
            code = e.code();
        }
        CHECK(code == SPINDLE_ENOTASK);
        CHECK(!spindle::in_task());
    }

    // Eager tasks (asyncio's eager_task_factory): a task that never blocks
    // is done when spawn returns.
    {
        spindle::options opts;
        opts.workers = 1;
        opts.eager_tasks = true;
        spindle::runtime rt(opts);
        int got = rt.run([] {
            auto quick = spindle::spawn([] { return 5; });
            CHECK(quick.done());
            return quick.join();
        });
        CHECK(got == 5);
        std::printf("eager task: done when spawn returned\n");
    }

    // Tasks still queued when their runtime shuts down never start: each
    // callable is destroyed unrun (its captures with it), and those that
    // started end cancelled; none is leaked, handles dropped or not.
    auto token = std::make_shared<int>(0);
    {
        spindle::options opts;
        opts.workers = 1;
        spindle::runtime rt(opts);
        for (int i = 0; i < 100; i++)
            (void)rt.spawn([token] { spindle::sleep(10); });
        auto kept = rt.spawn([token] { spindle::sleep(10); });
    }
    CHECK(token.use_count() == 1);
    std::printf("runtime shut down with queued tasks: every callable destroyed once\n");

    if (failures.load() == 0) {
        std::printf("== OK ==\n");
        return 0;
    }
    std::printf("== FAILED: %d wrong outcome(s) ==\n", failures.load());
    return 1;
}
