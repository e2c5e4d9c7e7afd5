/*
 * spindle.hpp: a header-only C++17 wrapper over spindle.h.
 *
 * RAII handles, move-only, for the runtime, tasks, task groups and timeout
 * scopes; any callable as a task; errors as exceptions; gather. With a
 * spindle.h that has them (the sections are keyed on its macros): wait and
 * as_completed; semaphore, bounded_semaphore, lock, event, condition,
 * barrier, queue<T> (with `hold` for `async with lock:`); fd_wait and
 * to_thread. Link libspindle as for C.
 *
 *     #include "spindle.hpp"
 *
 *     int main() {
 *         return spindle::run([] {
 *             auto a = spindle::spawn([] { spindle::sleep(0.1); return 1; });
 *             auto b = spindle::spawn([] { spindle::sleep(0.1); return 2; });
 *             auto [x, y] = spindle::gather(a, b);      // 0.1 s, not 0.2 s
 *             return x + y == 3 ? 0 : 1;
 *         });
 *     }
 *
 * THE RULES (read these; the C rules of docs/c-api.md apply as well)
 *
 * 1. Exceptions never cross a fiber boundary. A task's callable runs on its
 *    own fiber stack under a trampoline that catches everything
 *    (`catch (...)`): nothing ever unwinds into the library's Rust or C
 *    frames. What escapes the callable becomes the task's outcome:
 *      - `spindle::cancelled`           -> the task ends cancelled
 *                                          (SPINDLE_ECANCELED);
 *      - `spindle::error` with code c   -> the task fails with c (a positive
 *                                          c is your own failure code);
 *      - any other exception            -> the task fails with
 *                                          SPINDLE_EFAILED.
 *    A C++ joiner (`task::join`, `gather`, a group's `group_error`) gets the
 *    *original* exception object back (it travels as a std::exception_ptr,
 *    rethrown on the joiner's own stack); a C joiner gets the code.
 *
 * 2. Never call a blocking spindle function inside a `catch` block. The
 *    C++ runtime keeps the exceptions being handled in a per-thread list,
 *    and a fiber may suspend on one worker and resume on another (or share
 *    its worker with other fibers meanwhile), which corrupts that list. Every
 *    blocking call of this header checks for it and throws
 *    `spindle::error(SPINDLE_ESTATE)` instead of suspending. To clean up
 *    after a cancellation with blocking calls, leave the handler first, or
 *    use `spindle::attempt`, which captures the outcome as a value:
 *
 *        auto r = spindle::attempt([&] { spindle::sleep(10); });
 *        if (r.cancelled()) {
 *            flush_and_close(conn);   // may block: we are outside any catch
 *        }
 *        r.get();                     // rethrows (here: spindle::cancelled)
 *
 * 3. Cancellation is asyncio's: `task.cancel()` makes the task's current or
 *    next blocking call throw `spindle::cancelled` once; later calls work
 *    again, so cleanup can block. Let `spindle::cancelled` propagate out of
 *    the task (or rethrow it) so the task ends cancelled.
 *
 * 4. Prefer the function forms of scopes: `spindle::task_group(body)` and
 *    `spindle::with_timeout(seconds, body)` run `body`, capture how it
 *    ended, close the scope outside any handler, then throw the scope's
 *    verdict (`group_error`, `timed_out`, the body's own exception). The
 *    RAII objects `group` and `timeout_scope` are for code that ends the
 *    scope itself (`wait()`, `end(status)`); their destructors are a safety
 *    net: a group destroyed without `wait()` cancels its children and waits
 *    for them (children never outlive the frames they may reference), and
 *    that wait blocks inside the destructor, possibly during unwinding. That
 *    is allowed, but the C++ runtime's per-thread count of exceptions in
 *    flight (std::uncaught_exceptions) is then off on the worker threads
 *    involved; nothing in spindle relies on it.
 *
 * 5. As in C: do not hold a std::mutex (or any thread-bound lock) or keep a
 *    reference to a `thread_local` across a blocking spindle call; the task
 *    may resume on another thread. Blocking OS calls belong on
 *    `spindle_to_thread` (or a thread of your own).
 *
 * 6. A task's callable is moved into a heap block shared by the task and its
 *    handle; its captures are destroyed on the task's fiber when it returns.
 *    Capture by reference only what outlives the task (a group's body may
 *    capture its frame by reference: the group waits for its children). A
 *    task whose fiber never starts (cancelled first, or still queued when
 *    its runtime shut down) gives its reference back through the C ABI's
 *    `arg_free` (the `_owned` spawn functions), on whichever thread drops
 *    the task: the callable is then destroyed there, unrun.
 *
 * 7. Handles are move-only. Destroying a `task` detaches the task (it keeps
 *    running, as a Python task whose last reference is gone); destroying the
 *    `runtime` shuts it down (cancels what still runs, waits for cleanup).
 *
 * Results: a callable returning void gives `task<void>`; returning a pointer
 * `T*` gives `task<T*>`, and the pointer is also the C-level result (what
 * `spindle_task_join` stores), so C code can join C++ tasks; any other
 * (movable) type is kept in the shared block and moved out by the first
 * successful `join`/`result`/`gather`.
 */
#ifndef SPINDLE_HPP
#define SPINDLE_HPP

#if __cplusplus < 201703L && !(defined(_MSVC_LANG) && _MSVC_LANG >= 201703L)
#error "spindle.hpp needs C++17"
#endif

#include "spindle.h"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <new>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace spindle {

// ---------------------------------------------------------------------------
// Errors

/* A spindle status code as an exception. `code()` is the SPINDLE_E* value (or
 * a task's own positive failure code); `what()` is spindle_strerror's text. */
class error : public std::exception {
  public:
    explicit error(int code) noexcept : code_(code) {}
    int code() const noexcept { return code_; }
    const char *what() const noexcept override { return spindle_strerror(code_); }

  private:
    int code_;
};

/* The calling task was cancelled (SPINDLE_ECANCELED), asyncio's
 * CancelledError. Let it propagate out of the task. */
class cancelled : public error {
  public:
    cancelled() noexcept : error(SPINDLE_ECANCELED) {}
};

/* A time limit passed (SPINDLE_ETIMEDOUT), asyncio's TimeoutError. */
class timed_out : public error {
  public:
    timed_out() noexcept : error(SPINDLE_ETIMEDOUT) {}
};

/* A task group failed (SPINDLE_EGROUP), asyncio's ExceptionGroup: the codes
 * of every failure in the order they happened (spindle_group_errors), and the
 * original exceptions of the C++ callables that failed (the body's first,
 * then the children's in spawn order). */
class group_error : public error {
  public:
    group_error(std::vector<int> codes, std::vector<std::exception_ptr> exceptions)
        : error(SPINDLE_EGROUP), codes_(std::move(codes)), exceptions_(std::move(exceptions)) {}
    const std::vector<int> &codes() const noexcept { return codes_; }
    const std::vector<std::exception_ptr> &exceptions() const noexcept { return exceptions_; }

  private:
    std::vector<int> codes_;
    std::vector<std::exception_ptr> exceptions_;
};

/* Throws the exception for a non-zero status code. */
[[noreturn]] inline void throw_status(int code) {
    switch (code) {
    case SPINDLE_ECANCELED:
        throw cancelled();
    case SPINDLE_ETIMEDOUT:
        throw timed_out();
    default:
        throw error(code);
    }
}

/* Throws for a non-zero status; returns 0 otherwise. */
inline int check(int code) {
    if (code != 0)
        throw_status(code);
    return code;
}

namespace detail {

/* Rule 2: a fiber must not suspend while this thread handles an exception
 * (inside a catch block). Called before every blocking call. */
inline void ensure_not_in_handler() {
    if (std::current_exception())
        throw error(SPINDLE_ESTATE);
}

/* A blocking call: checks rule 2, calls, throws on failure. */
template <class Call> inline void blocking(Call &&call) {
    ensure_not_in_handler();
    check(std::forward<Call>(call)());
}

template <class Rep, class Period> inline double seconds(std::chrono::duration<Rep, Period> d) {
    return std::chrono::duration<double>(d).count();
}

/* The status a captured exception stands for. */
inline int status_of(const std::exception_ptr &ep) noexcept {
    try {
        std::rethrow_exception(ep);
    } catch (const error &e) {
        return e.code();
    } catch (...) {
        return SPINDLE_EFAILED;
    }
}

} // namespace detail

// ---------------------------------------------------------------------------
// Outcomes as values (for cleanup outside catch blocks)

/* What `attempt(f)` captured: a value, or an exception (as a pointer, with
 * its status code). Never throws until `get()` or `rethrow()`. */
template <class R> class outcome {
  public:
    using value_type = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

    bool ok() const noexcept { return exception_ == nullptr; }
    explicit operator bool() const noexcept { return ok(); }
    /* 0, SPINDLE_ECANCELED, SPINDLE_ETIMEDOUT, an error's code, or
     * SPINDLE_EFAILED for a non-spindle exception. */
    int status() const noexcept { return status_; }
    bool cancelled() const noexcept { return status_ == SPINDLE_ECANCELED; }
    bool timed_out() const noexcept { return status_ == SPINDLE_ETIMEDOUT; }
    const std::exception_ptr &exception() const noexcept { return exception_; }

    /* The value, or the captured exception rethrown. */
    R get() {
        rethrow();
        if constexpr (!std::is_void_v<R>)
            return std::move(*value_);
    }
    void rethrow() const {
        if (exception_)
            std::rethrow_exception(exception_);
    }

  private:
    template <class F> friend auto attempt(F &&f) noexcept;
    std::optional<value_type> value_;
    std::exception_ptr exception_;
    int status_ = 0;
};

/* Runs `f()` and captures its value or its exception. The handler is left
 * before this returns, so the caller may block (clean up) right after. */
template <class F> auto attempt(F &&f) noexcept {
    using R = std::invoke_result_t<F &>;
    outcome<R> out;
    try {
        if constexpr (std::is_void_v<R>) {
            f();
            out.value_.emplace();
        } else {
            out.value_.emplace(f());
        }
    } catch (...) {
        out.exception_ = std::current_exception();
    }
    if (out.exception_)
        out.status_ = detail::status_of(out.exception_);
    return out;
}

// ---------------------------------------------------------------------------
// Blocking calls of the running task

/* Suspends the calling task for `seconds` (asyncio.sleep); 0 yields. Throws
 * `cancelled`. */
inline void sleep(double seconds) {
    detail::blocking([&] { return spindle_sleep(seconds); });
}

template <class Rep, class Period> inline void sleep(std::chrono::duration<Rep, Period> d) {
    sleep(detail::seconds(d));
}

/* Lets the other ready tasks run (asyncio.sleep(0)). Throws `cancelled`. */
inline void yield() {
    detail::blocking([] { return spindle_yield(); });
}

// ---------------------------------------------------------------------------
// Task state shared by a task's fiber and its handles

namespace detail {

/* The heap block of a C++ task: two references at the start (the fiber's,
 * released when the trampoline returns, and the first handle's). */
struct state_base {
    std::atomic<int> refs{2};
    std::atomic<bool> started{false};
    std::exception_ptr exception;

    virtual ~state_base() = default;
    void retain() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
    void release() noexcept {
        if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1)
            delete this;
    }
};

/* Results that travel through C as the task's `void *` result. */
template <class R>
inline constexpr bool via_c =
    std::is_void_v<R> || (std::is_pointer_v<R> && !std::is_function_v<std::remove_pointer_t<R>>);

/* Where a result that does not fit the C result waits for its joiner. */
template <class R, bool = via_c<R>> struct value_state : state_base {};
template <class R> struct value_state<R, false> : state_base {
    std::optional<R> value;
};

template <class F, class R> struct task_state final : value_state<R> {
    std::optional<F> fn;

    template <class G> explicit task_state(G &&g) : fn(std::in_place, std::forward<G>(g)) {}

    /* The `arg_free` of the `_owned` spawn functions: the fiber will never
     * run, so its reference goes now (rule 6). */
    static void release_unstarted(void *arg) noexcept { static_cast<task_state *>(arg)->release(); }

    /* The C task function. Nothing escapes it (rule 1): it is noexcept, and
     * every exception of the callable is caught and becomes the status. */
    static int trampoline(void *arg, void **result) noexcept {
        auto *self = static_cast<task_state *>(arg);
        self->started.store(true, std::memory_order_release);
        int status = 0;
        try {
            if constexpr (std::is_void_v<R>) {
                (*self->fn)();
            } else if constexpr (via_c<R>) {
                // Through C as a plain pointer (const dropped: C has no const
                // results; the C++ joiner casts it back).
                *result = const_cast<void *>(static_cast<const void *>((*self->fn)()));
            } else {
                self->value.emplace((*self->fn)());
            }
        } catch (const cancelled &) {
            status = SPINDLE_ECANCELED;
        } catch (const error &e) {
            status = e.code() == 0 ? SPINDLE_EFAILED : e.code();
            self->exception = std::current_exception();
        } catch (...) {
            status = SPINDLE_EFAILED;
            self->exception = std::current_exception();
        }
        // The captures die here, on the fiber, outside any handler (their
        // destructors may block).
        try {
            self->fn.reset();
        } catch (...) {
            if (status == 0) {
                status = SPINDLE_EFAILED;
                self->exception = std::current_exception();
            }
        }
        self->release();
        return status;
    }
};

template <class F> using result_of_t = std::invoke_result_t<std::decay_t<F> &>;

} // namespace detail

template <class R> class task;
class group;

namespace detail {
struct task_access;
template <class R> task<R> adopt(spindle_task *handle, state_base *state) noexcept;
template <class F, class CSpawn> auto spawn_with(F &&f, CSpawn &&c_spawn);
} // namespace detail

/* A handle to a task (asyncio.Task). Move-only; destroying it detaches the
 * task. `R` is what the callable returned (`void`, a pointer, or a value);
 * `task<void *>` also wraps handles that come from C. */
template <class R = void> class task {
  public:
    using result_type = R;

    task() noexcept = default;
    task(task &&other) noexcept
        : handle_(std::exchange(other.handle_, nullptr)), state_(std::exchange(other.state_, nullptr)) {}
    task &operator=(task &&other) noexcept {
        if (this != &other) {
            reset();
            handle_ = std::exchange(other.handle_, nullptr);
            state_ = std::exchange(other.state_, nullptr);
        }
        return *this;
    }
    task(const task &) = delete;
    task &operator=(const task &) = delete;
    ~task() { reset(); }

    /* Takes ownership of a handle from the C API (spindle_spawn,
     * spindle_task_current...). Only `task<void *>` (or `task<void>`) can
     * read the result of such a task. */
    static task from_c(spindle_task *handle) noexcept {
        static_assert(via_c_result, "a task made in C only has a void * result");
        task t;
        t.handle_ = handle;
        return t;
    }

    explicit operator bool() const noexcept { return handle_ != nullptr; }
    spindle_task *native_handle() const noexcept { return handle_; }

    /* Waits until the task ends (await task) and returns its result, or
     * rethrows its exception (the original object for a C++ task), or throws
     * `cancelled` (it was cancelled, or this caller was: then the task is
     * cancelled too, as in asyncio). */
    R join() {
        detail::ensure_not_in_handler();
        void *out = nullptr;
        int rc = spindle_task_join(valid(), &out);
        return finish(rc, out);
    }

    /* join() with a limit (asyncio.wait_for): at the limit the task is
     * cancelled, waited for, and `timed_out` is thrown. */
    R wait_for(double seconds) {
        detail::ensure_not_in_handler();
        void *out = nullptr;
        int rc = spindle_wait_for(valid(), seconds, &out);
        return finish(rc, out);
    }
    template <class Rep, class Period> R wait_for(std::chrono::duration<Rep, Period> d) {
        return wait_for(detail::seconds(d));
    }

    /* join() that does not pass the caller's cancellation on to the task
     * (await asyncio.shield(task)). */
    R shield() {
        detail::ensure_not_in_handler();
        void *out = nullptr;
        int rc = spindle_shield(valid(), &out);
        return finish(rc, out);
    }

    /* The outcome of a task that has ended, without waiting (task.result());
     * `error(SPINDLE_ESTATE)` while it runs. Callable from any thread. */
    R result() {
        void *out = nullptr;
        int rc = spindle_task_result(valid(), &out);
        if (rc == SPINDLE_ESTATE)
            throw error(rc);
        return finish(rc, out);
    }

    /* Asks the task to cancel (task.cancel(msg)); false if it had ended. */
    bool cancel(const char *message = nullptr) const {
        int requested = 0;
        check(spindle_task_cancel(valid(), message, &requested));
        return requested != 0;
    }
    bool cancel(const std::string &message) const { return cancel(message.c_str()); }

    bool done() const {
        int v = 0;
        check(spindle_task_done(valid(), &v));
        return v != 0;
    }
    bool cancelled() const {
        int v = 0;
        check(spindle_task_cancelled(valid(), &v));
        return v != 0;
    }
    std::uint64_t id() const {
        std::uint64_t v = 0;
        check(spindle_task_id(valid(), &v));
        return v;
    }
    std::string name() const {
        std::size_t length = 0;
        check(spindle_task_name(valid(), nullptr, 0, &length));
        std::string s(length, '\0');
        check(spindle_task_name(valid(), s.data(), length + 1, &length));
        s.resize(length);
        return s;
    }

    /* Lets the task run on without a handle. */
    void detach() noexcept { reset(); }

  private:
    static constexpr bool via_c_result = detail::via_c<R>;
    template <class T> friend task<T> detail::adopt(spindle_task *, detail::state_base *) noexcept;
    friend class group;
    friend struct detail::task_access;

    spindle_task *valid() const {
        if (handle_ == nullptr)
            throw error(SPINDLE_EINVAL);
        return handle_;
    }

    R finish(int rc, void *out) {
        if (rc == 0) {
            if constexpr (std::is_void_v<R>) {
                (void)out;
                return;
            } else if constexpr (via_c_result) {
                return static_cast<R>(out);
            } else {
                auto *values = static_cast<detail::value_state<R> *>(state_);
                if (values == nullptr || !values->value)
                    throw error(SPINDLE_ESTATE); // moved out by an earlier join
                R value = std::move(*values->value);
                values->value.reset();
                return value;
            }
        }
        if (rc != SPINDLE_ECANCELED && state_ != nullptr && state_->exception)
            std::rethrow_exception(state_->exception);
        throw_status(rc);
    }

    void reset() noexcept {
        if (state_ != nullptr) {
            // The fiber's reference is not ours: its trampoline or, if it
            // never starts, release_unstarted gives it back.
            state_->release();
            state_ = nullptr;
        }
        if (handle_ != nullptr)
            spindle_task_free(std::exchange(handle_, nullptr));
    }

    spindle_task *handle_ = nullptr;
    detail::state_base *state_ = nullptr;
};

using raw_task = task<void *>;

namespace detail {

template <class R> task<R> adopt(spindle_task *handle, state_base *state) noexcept {
    task<R> t;
    t.handle_ = handle;
    t.state_ = state;
    return t;
}

/* Makes the shared block of `f`, hands its trampoline to `c_spawn(fn, arg,
 * arg_free, &handle)` (one of the C `_owned` spawn functions: the fiber's
 * reference goes with `arg`), wraps the handle. */
template <class F, class CSpawn> auto spawn_with(F &&f, CSpawn &&c_spawn) {
    using R = result_of_t<F>;
    static_assert(std::is_invocable_v<std::decay_t<F> &>, "a task is a callable taking no arguments");
    static_assert(!std::is_reference_v<R>, "a task returns a value, a pointer or void, not a reference");
    using state = task_state<std::decay_t<F>, R>;
    auto *s = new state(std::forward<F>(f));
    spindle_task *handle = nullptr;
    int rc = c_spawn(&state::trampoline, static_cast<void *>(s), &state::release_unstarted, &handle);
    if (rc != 0) {
        s->release(); // the handle's; a failed spawn gave the fiber's to release_unstarted
        throw_status(rc);
    }
    return adopt<R>(handle, s);
}

} // namespace detail

/* Spawns `f()` as a task of the running task's runtime (asyncio.create_task);
 * call from inside a task. */
template <class F> auto spawn(F &&f) {
    return detail::spawn_with(std::forward<F>(f),
                              [](spindle_task_fn fn, void *arg, spindle_arg_free_fn arg_free, spindle_task **out) {
                                  return spindle_spawn_owned(fn, arg, arg_free, nullptr, out);
                              });
}
/* The same, with a name (task.get_name()). */
template <class F> auto spawn(const std::string &name, F &&f) {
    return detail::spawn_with(std::forward<F>(f),
                              [&](spindle_task_fn fn, void *arg, spindle_arg_free_fn arg_free, spindle_task **out) {
                                  return spindle_spawn_owned(fn, arg, arg_free, name.c_str(), out);
                              });
}

/* A handle to the task running this code (raw: its result is C's). Throws
 * error(SPINDLE_ENOTASK) outside a task. */
inline raw_task current_task() {
    spindle_task *handle = nullptr;
    check(spindle_task_current(&handle));
    return raw_task::from_c(handle);
}

/* Whether the caller runs inside a spindle task (on a fiber). */
inline bool in_task() noexcept {
    spindle_task *handle = nullptr;
    if (spindle_task_current(&handle) != 0)
        return false;
    spindle_task_free(handle);
    return true;
}

// ---------------------------------------------------------------------------
// gather

/* What gather returns for one task: its result, std::monostate for void. */
template <class R> using gathered_t = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

namespace detail {
/* What the free functions need of a task handle. */
struct task_access {
    template <class R> static spindle_task *handle(const task<R> &t) { return t.valid(); }
    template <class R> static gathered_t<R> finish(task<R> &t, int rc, void *out) {
        if constexpr (std::is_void_v<R>) {
            t.finish(rc, out);
            return {};
        } else {
            return t.finish(rc, out);
        }
    }
    /* A failed task's exception rethrown (its original C++ object, or the
     * exception for its status). */
    template <class R> [[noreturn]] static void rethrow(task<R> &t, int rc) {
        t.finish(rc, nullptr);
        throw error(SPINDLE_ESTATE); // not reached: rc != 0
    }
};

template <class R> gathered_t<R> join_value(task<R> &t) {
    if constexpr (std::is_void_v<R>) {
        t.join();
        return {};
    } else {
        return t.join();
    }
}

template <class T> void cancel_quietly(T &t) noexcept {
    if (t)
        spindle_task_cancel(t.native_handle(), nullptr, nullptr);
}

#ifdef SPINDLE_ALL_COMPLETED
/* The results of gathered tasks, as a tuple. */
template <std::size_t... I, class... R>
std::tuple<gathered_t<R>...> gathered(std::vector<void *> &results, std::index_sequence<I...>, task<R> &...tasks) {
    return std::tuple<gathered_t<R>...>{task_access::finish(tasks, 0, results[I])...};
}

/* spindle_gather over handles; on a failure, rethrows the failed task's own
 * exception (the first done task that failed with that status). */
template <class Each> void gather_handles(std::vector<spindle_task *> &handles, std::vector<void *> &results,
                                          Each &&rethrow_failed) {
    ensure_not_in_handler();
    int rc = spindle_gather(handles.data(), handles.size(), results.data(), nullptr);
    if (rc == 0)
        return;
    if (rc != SPINDLE_ECANCELED) {
        for (std::size_t i = 0; i < handles.size(); i++) {
            void *out = nullptr;
            if (spindle_task_result(handles[i], &out) == rc)
                rethrow_failed(i, rc); // throws
        }
    }
    throw_status(rc);
}
#endif
} // namespace detail

/* Waits for every task and returns their results (asyncio.gather): a tuple
 * for a list of tasks, a vector for a vector of tasks. The first failure is
 * rethrown as it happens (the task's own exception object for a C++ task),
 * the other tasks keep running; if the caller is cancelled, every
 * unfinished task is cancelled and `cancelled` is thrown. */
template <class... R> std::tuple<gathered_t<R>...> gather(task<R> &...tasks) {
#ifdef SPINDLE_ALL_COMPLETED
    std::vector<spindle_task *> handles{detail::task_access::handle(tasks)...};
    std::vector<void *> results(sizeof...(R), nullptr);
    detail::gather_handles(handles, results, [&](std::size_t failed, int rc) {
        std::size_t i = 0;
        ((i++ == failed ? detail::task_access::rethrow(tasks, rc) : void()), ...);
    });
    return detail::gathered(results, std::index_sequence_for<R...>{}, tasks...);
#else
    // Without spindle_gather (older spindle.h): join in order.
    std::tuple<std::optional<gathered_t<R>>...> values;
    std::exception_ptr failure;
    bool was_cancelled = false;
    auto one = [&](auto &t, auto &slot) {
        if (failure)
            return;
        auto r = attempt([&] { return detail::join_value(t); });
        if (r.ok())
            slot.emplace(r.get());
        else {
            failure = r.exception();
            was_cancelled = r.cancelled();
        }
    };
    std::apply([&](auto &...slots) { (one(tasks, slots), ...); }, values);
    if (failure) {
        if (was_cancelled)
            (detail::cancel_quietly(tasks), ...);
        std::rethrow_exception(failure);
    }
    return std::apply([](auto &...slots) { return std::tuple<gathered_t<R>...>(std::move(*slots)...); },
                      values);
#endif
}

template <class R> std::vector<gathered_t<R>> gather(std::vector<task<R>> &tasks) {
    std::vector<gathered_t<R>> values;
    values.reserve(tasks.size());
#ifdef SPINDLE_ALL_COMPLETED
    std::vector<spindle_task *> handles;
    handles.reserve(tasks.size());
    for (auto &t : tasks)
        handles.push_back(detail::task_access::handle(t));
    std::vector<void *> results(tasks.size(), nullptr);
    detail::gather_handles(handles, results, [&](std::size_t failed, int rc) {
        detail::task_access::rethrow(tasks[failed], rc);
    });
    for (std::size_t i = 0; i < tasks.size(); i++)
        values.push_back(detail::task_access::finish(tasks[i], 0, results[i]));
#else
    for (auto &t : tasks) {
        auto r = attempt([&] { return detail::join_value(t); });
        if (!r.ok()) {
            if (r.cancelled())
                for (auto &other : tasks)
                    detail::cancel_quietly(other);
            r.rethrow();
        }
        values.push_back(r.get());
    }
#endif
    return values;
}

#ifdef SPINDLE_ALL_COMPLETED
// ---------------------------------------------------------------------------
// wait, as_completed

/* When `wait` returns (asyncio's return_when). */
enum class return_when : int {
    all_completed = SPINDLE_ALL_COMPLETED,
    first_completed = SPINDLE_FIRST_COMPLETED,
    first_exception = SPINDLE_FIRST_EXCEPTION,
};

/* The indices of the tasks `wait` found done and still pending. */
struct wait_result {
    std::vector<std::size_t> done;
    std::vector<std::size_t> pending;
};

/* Waits until `when` holds or `seconds` pass (negative: no limit), like
 * asyncio.wait; cancels nothing. Read the outcomes with `result()`. */
template <class R>
wait_result wait(std::vector<task<R>> &tasks, return_when when = return_when::all_completed,
                 double seconds = -1.0) {
    detail::ensure_not_in_handler();
    std::vector<spindle_task *> handles;
    handles.reserve(tasks.size());
    for (auto &t : tasks)
        handles.push_back(detail::task_access::handle(t));
    std::vector<int> done(tasks.size(), 0);
    check(spindle_wait(handles.data(), handles.size(), static_cast<int>(when), seconds, done.data(), nullptr));
    wait_result out;
    for (std::size_t i = 0; i < done.size(); i++)
        (done[i] ? out.done : out.pending).push_back(i);
    return out;
}

/* The tasks in the order they finish (asyncio.as_completed):
 *
 *     spindle::as_completed next_done(tasks, 5.0);
 *     while (auto *t = next_done.next())   // nullptr when all came out
 *         use(t->result());
 *
 * `next()` throws `timed_out` for each task not done at the limit. */
template <class R> class as_completed {
  public:
    explicit as_completed(std::vector<task<R>> &tasks, double seconds = -1.0) : tasks_(&tasks) {
        std::vector<spindle_task *> handles;
        handles.reserve(tasks.size());
        for (auto &t : tasks) {
            handles.push_back(detail::task_access::handle(t));
            ids_.push_back(t.id());
        }
        check(spindle_as_completed_new(handles.data(), handles.size(), seconds, &it_));
    }
    as_completed(const as_completed &) = delete;
    as_completed &operator=(const as_completed &) = delete;
    ~as_completed() {
        if (it_ != nullptr)
            spindle_as_completed_free(it_);
    }

    /* The next task to finish (a task of the vector), or nullptr once all
     * came out. */
    task<R> *next() {
        detail::ensure_not_in_handler();
        spindle_task *handle = nullptr;
        int rc = spindle_as_completed_next(it_, &handle);
        if (rc == SPINDLE_EEMPTY)
            return nullptr;
        check(rc);
        std::uint64_t id = 0;
        rc = spindle_task_id(handle, &id);
        spindle_task_free(handle);
        check(rc);
        for (std::size_t i = 0; i < ids_.size(); i++)
            if (ids_[i] == id)
                return &(*tasks_)[i];
        throw error(SPINDLE_ESTATE);
    }

  private:
    std::vector<task<R>> *tasks_;
    std::vector<std::uint64_t> ids_;
    spindle_as_completed *it_ = nullptr;
};
#endif // SPINDLE_ALL_COMPLETED

// ---------------------------------------------------------------------------
// Timeout scopes

/* A timeout scope (async with asyncio.timeout(seconds)), RAII form. After
 * `seconds` (negative: none until `reschedule`) the task is cancelled: its
 * blocking calls throw `cancelled`; `end(status)` turns that cancellation
 * into SPINDLE_ETIMEDOUT. Prefer `with_timeout` (rule 4). A scope destroyed
 * without `end()` ends there (it never blocks). */
class timeout_scope {
  public:
    explicit timeout_scope(double seconds) {
        detail::ensure_not_in_handler();
        check(spindle_timeout_begin(seconds, &scope_));
    }
    template <class Rep, class Period>
    explicit timeout_scope(std::chrono::duration<Rep, Period> d) : timeout_scope(detail::seconds(d)) {}
    timeout_scope(timeout_scope &&other) noexcept
        : scope_(std::exchange(other.scope_, nullptr)), ended_(other.ended_) {}
    timeout_scope &operator=(timeout_scope &&other) noexcept {
        if (this != &other) {
            close();
            scope_ = std::exchange(other.scope_, nullptr);
            ended_ = other.ended_;
        }
        return *this;
    }
    timeout_scope(const timeout_scope &) = delete;
    timeout_scope &operator=(const timeout_scope &) = delete;
    ~timeout_scope() { close(); }

    /* Leaves the scope; `status` is how the code inside ended (0, or a
     * status such as SPINDLE_ECANCELED). Returns that status, except
     * SPINDLE_ETIMEDOUT for the cancellation this scope caused. Never
     * throws for the status itself. */
    int end(int status = 0) {
        detail::ensure_not_in_handler();
        int rc = spindle_timeout_end(scope_, status);
        ended_ = true;
        return rc;
    }
    /* Moves the deadline to `seconds` from now (negative: none). */
    void reschedule(double seconds) { check(spindle_timeout_reschedule(scope_, seconds)); }
    template <class Rep, class Period> void reschedule(std::chrono::duration<Rep, Period> d) {
        reschedule(detail::seconds(d));
    }
    /* Whether the deadline fired. */
    bool expired() const {
        int v = 0;
        check(spindle_timeout_expired(scope_, &v));
        return v != 0;
    }
    spindle_timeout *native_handle() const noexcept { return scope_; }

  private:
    void close() noexcept {
        if (scope_ == nullptr)
            return;
        if (!ended_) {
            int fired = 0;
            spindle_timeout_expired(scope_, &fired);
            spindle_timeout_end(scope_, fired ? SPINDLE_ECANCELED : 0);
        }
        spindle_timeout_free(std::exchange(scope_, nullptr));
    }

    spindle_timeout *scope_ = nullptr;
    bool ended_ = false;
};

/* Runs `body()` under a deadline `seconds` from now (async with
 * asyncio.timeout): returns its value, or throws `timed_out` if the
 * deadline cancelled it, or rethrows its own exception. */
template <class F> auto with_timeout(double seconds, F &&body) {
    timeout_scope scope(seconds);
    auto r = attempt(body);
    int rc = scope.end(r.status());
    if (rc == SPINDLE_ETIMEDOUT && r.cancelled())
        throw timed_out();
    if (!r.ok())
        r.rethrow();
    if (rc != 0)
        throw_status(rc);
    return r.get();
}
template <class Rep, class Period, class F> auto with_timeout(std::chrono::duration<Rep, Period> d, F &&body) {
    return with_timeout(detail::seconds(d), std::forward<F>(body));
}

// ---------------------------------------------------------------------------
// Task groups

/* A task group (async with asyncio.TaskGroup() as tg), RAII form: made
 * inside a task, children spawned with `spawn`, ended with `wait()`. The
 * first child to fail cancels the others and the task that owns the group.
 * Prefer `task_group(body)` (rule 4). */
class group {
  public:
    group() {
        detail::ensure_not_in_handler();
        check(spindle_group_new(&group_));
    }
    group(group &&other) noexcept
        : group_(std::exchange(other.group_, nullptr)), waited_(other.waited_),
          children_(std::move(other.children_)) {}
    group &operator=(group &&other) noexcept {
        if (this != &other) {
            close();
            group_ = std::exchange(other.group_, nullptr);
            waited_ = other.waited_;
            children_ = std::move(other.children_);
        }
        return *this;
    }
    group(const group &) = delete;
    group &operator=(const group &) = delete;
    ~group() { close(); }

    /* Spawns `f()` as a child (tg.create_task). The handle may be dropped:
     * the group waits for the child anyway. */
    template <class F> auto spawn(F &&f) { return spawn_named(nullptr, std::forward<F>(f)); }
    template <class F> auto spawn(const std::string &name, F &&f) {
        return spawn_named(name.c_str(), std::forward<F>(f));
    }

    /* Waits for every child. Throws `group_error` if children (or the code
     * that owns the group, per `status`) failed, `cancelled` if the owning
     * task was cancelled from outside. */
    void wait(int status = 0) { wait_captured(status, nullptr); }

    /* wait() for a body that ended with the captured exception `body`
     * (nullptr: it returned normally). */
    void wait_captured(int status, std::exception_ptr body) {
        detail::ensure_not_in_handler();
        int rc = spindle_group_wait(group_, status);
        if (rc == SPINDLE_ENOTASK || rc == SPINDLE_EINVAL)
            throw_status(rc);
        waited_ = true;
        if (rc == 0)
            return;
        if (rc == SPINDLE_EGROUP) {
            std::vector<std::exception_ptr> exceptions;
            if (body)
                exceptions.push_back(body);
            for (auto *child : children_)
                if (child->exception)
                    exceptions.push_back(child->exception);
            throw group_error(error_codes(), std::move(exceptions));
        }
        throw_status(rc);
    }

    /* The failure codes of a group that ended with SPINDLE_EGROUP. */
    std::vector<int> error_codes() const {
        std::size_t count = 0;
        check(spindle_group_errors(group_, nullptr, 0, &count));
        std::vector<int> codes(count);
        if (count > 0)
            check(spindle_group_errors(group_, codes.data(), codes.size(), &count));
        codes.resize(count < codes.size() ? count : codes.size());
        return codes;
    }

    spindle_group *native_handle() const noexcept { return group_; }

  private:
    template <class F> auto spawn_named(const char *name, F &&f) {
        if (children_.size() == children_.capacity()) // no throw after the spawn
            children_.reserve(children_.empty() ? 8 : 2 * children_.size());
        auto t = detail::spawn_with(
            std::forward<F>(f), [&](spindle_task_fn fn, void *arg, spindle_arg_free_fn arg_free, spindle_task **out) {
                return spindle_group_spawn_owned(group_, fn, arg, arg_free, name, out);
            });
        auto *state = t.state_;
        state->retain();
        children_.push_back(state);
        return t;
    }

    void close() noexcept {
        if (group_ != nullptr) {
            if (!waited_) // children never outlive the group: cancel, wait
                spindle_group_wait(group_, SPINDLE_ECANCELED);
            spindle_group_free(std::exchange(group_, nullptr));
        }
        for (auto *child : children_)
            child->release();
        children_.clear();
    }

    spindle_group *group_ = nullptr;
    bool waited_ = false;
    std::vector<detail::state_base *> children_;
};

/* Runs `body(g)` with a fresh group `g`, then waits for the group's children
 * (async with asyncio.TaskGroup() as g: body). Returns what body returned;
 * throws `group_error` if the body or children failed (the body's exception
 * is the first of `exceptions()`), `cancelled` if the task was cancelled
 * from outside. */
template <class F> auto task_group(F &&body) {
    group g;
    auto r = attempt([&] { return body(g); });
    g.wait_captured(r.status(), r.ok() || r.cancelled() ? nullptr : r.exception());
    if (!r.ok()) // the body failed but the group did not report it
        r.rethrow();
    return r.get();
}

#ifdef SPINDLE_QUEUE_FIFO
// ---------------------------------------------------------------------------
// Synchronization primitives and queues (asyncio's), for spindle.h versions
// that have them. Each is an RAII handle, move-only; freeing one that tasks
// still wait on is refused by the library (the handle then leaks rather
// than dangle), so end the waits first. `spindle::hold` holds a semaphore,
// a lock or a condition's lock for a scope (async with lock:).

namespace detail {
/* A move-only owner of a C handle freed by `Free`. */
template <class T, int (*Free)(T *)> class handle {
  public:
    handle() noexcept = default;
    handle(handle &&other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
    handle &operator=(handle &&other) noexcept {
        if (this != &other) {
            reset();
            h_ = std::exchange(other.h_, nullptr);
        }
        return *this;
    }
    handle(const handle &) = delete;
    handle &operator=(const handle &) = delete;
    ~handle() { reset(); }

    T *native_handle() const noexcept { return h_; }

  protected:
    T *h_ = nullptr;

  private:
    void reset() noexcept {
        if (h_ != nullptr)
            Free(std::exchange(h_, nullptr));
    }
};

} // namespace detail

/* asyncio.Semaphore(value); `bounded_semaphore` refuses a release beyond
 * the initial value (error SPINDLE_ESTATE). */
class semaphore : public detail::handle<spindle_sem, spindle_sem_free> {
  public:
    explicit semaphore(std::int64_t value = 1) { check(spindle_sem_new(value, &h_)); }

    /* Takes a permit, waiting while there is none; throws `cancelled` with
     * no permit taken. */
    void acquire() {
        detail::blocking([&] { return spindle_sem_acquire(h_); });
    }
    /* Takes a permit only if one is free and nobody waits. (A template so
     * that it is only compiled when used: spindle_sem_try_acquire came after
     * the rest of the semaphore API.) */
    template <class Sem = spindle_sem> bool try_acquire() {
        int acquired = 0;
        check(spindle_sem_try_acquire(static_cast<Sem *>(h_), &acquired));
        return acquired != 0;
    }
    void release() { check(spindle_sem_release(h_)); }
    bool locked() const {
        int v = 0;
        check(spindle_sem_locked(h_, &v));
        return v != 0;
    }
    std::size_t value() const {
        std::size_t v = 0;
        check(spindle_sem_value(h_, &v));
        return v;
    }

  protected:
    struct bounded_tag {};
    semaphore(bounded_tag, std::int64_t value) { check(spindle_bounded_sem_new(value, &h_)); }
};

class bounded_semaphore : public semaphore {
  public:
    explicit bounded_semaphore(std::int64_t value = 1) : semaphore(bounded_tag{}, value) {}
};

/* asyncio.Lock: not reentrant; any task may release it. */
class lock : public detail::handle<spindle_lock, spindle_lock_free> {
  public:
    lock() { check(spindle_lock_new(&h_)); }

    /* Takes the lock, waiting while another task holds it; throws
     * `cancelled` without the lock. */
    void acquire() {
        detail::blocking([&] { return spindle_lock_acquire(h_); });
    }
    void release() { check(spindle_lock_release(h_)); }
    bool locked() const {
        int v = 0;
        check(spindle_lock_locked(h_, &v));
        return v != 0;
    }
};

/* asyncio.Event. */
class event : public detail::handle<spindle_event, spindle_event_free> {
  public:
    event() { check(spindle_event_new(&h_)); }

    void set() { check(spindle_event_set(h_)); }
    void clear() { check(spindle_event_clear(h_)); }
    bool is_set() const {
        int v = 0;
        check(spindle_event_is_set(h_, &v));
        return v != 0;
    }
    /* Waits until the flag is set; throws `cancelled`. */
    void wait() {
        detail::blocking([&] { return spindle_event_wait(h_); });
    }
};

/* asyncio.Condition, over a `lock` (shared) or a lock of its own. */
class condition : public detail::handle<spindle_cond, spindle_cond_free> {
  public:
    condition() { check(spindle_cond_new(nullptr, &h_)); }
    explicit condition(const spindle::lock &shared) { check(spindle_cond_new(shared.native_handle(), &h_)); }

    void acquire() {
        detail::blocking([&] { return spindle_cond_acquire(h_); });
    }
    void release() { check(spindle_cond_release(h_)); }
    bool locked() const {
        int v = 0;
        check(spindle_cond_locked(h_, &v));
        return v != 0;
    }
    /* Releases the lock, waits for a notify, takes the lock again (also
     * when it throws `cancelled`). Call with the lock held; may wake
     * without a notify: loop, or use wait(predicate). */
    void wait() {
        detail::blocking([&] { return spindle_cond_wait(h_); });
    }
    template <class Predicate> void wait(Predicate ready) {
        while (!ready())
            wait();
    }
    void notify(std::size_t n = 1) { check(spindle_cond_notify(h_, n)); }
    void notify_all() { check(spindle_cond_notify_all(h_)); }
};

/* asyncio.Barrier(parties). */
class barrier : public detail::handle<spindle_barrier, spindle_barrier_free> {
  public:
    explicit barrier(std::size_t parties) { check(spindle_barrier_new(parties, &h_)); }

    /* Waits for the other parties; returns this task's index. Throws
     * error(SPINDLE_ESHUTDOWN) if the barrier is broken or reset, and
     * `cancelled`. */
    std::size_t wait() {
        std::size_t index = 0;
        detail::blocking([&] { return spindle_barrier_wait(h_, &index); });
        return index;
    }
    void reset() { check(spindle_barrier_reset(h_)); }
    void abort() { check(spindle_barrier_abort(h_)); }
    bool broken() const {
        int v = 0;
        check(spindle_barrier_broken(h_, &v));
        return v != 0;
    }
};

/* Holds `l` (a semaphore, lock or condition) for a scope: acquire() in the
 * constructor (it may throw `cancelled`, and then holds nothing), release()
 * in the destructor, which never blocks (async with lock:).
 *
 *     spindle::hold held(mu);
 */
template <class Lockable> class hold {
  public:
    explicit hold(Lockable &l) : l_(&l) { l.acquire(); }
    hold(const hold &) = delete;
    hold &operator=(const hold &) = delete;
    ~hold() {
        try {
            l_->release();
        } catch (...) {
            // Released by someone else meanwhile (asyncio allows it): nothing
            // to give back.
        }
    }

  private:
    Lockable *l_;
};

/* The kinds of queue. */
enum class queue_kind : int {
    fifo = SPINDLE_QUEUE_FIFO,
    lifo = SPINDLE_QUEUE_LIFO,
    priority = SPINDLE_QUEUE_PRIORITY,
};

/* asyncio.Queue / LifoQueue / PriorityQueue of `T *` (the queue holds
 * pointers, not objects: the caller owns what they point to, e.g. through
 * std::unique_ptr::release() on put and a new unique_ptr on get). */
template <class T = void> class queue : public detail::handle<spindle_queue, spindle_queue_free> {
  public:
    explicit queue(std::size_t maxsize = 0, queue_kind kind = queue_kind::fifo) {
        check(spindle_queue_new(static_cast<int>(kind), maxsize, &h_));
    }

    /* Puts `item`, waiting while the queue is full. Throws `cancelled` (not
     * put), error(SPINDLE_ESHUTDOWN). */
    void put(T *item) {
        detail::blocking([&] { return spindle_queue_put(h_, to_c(item)); });
    }
    /* For a priority queue: the lowest priority comes out first. */
    void put(std::int64_t priority, T *item) {
        detail::blocking([&] { return spindle_queue_put_priority(h_, priority, to_c(item)); });
    }
    /* Puts without waiting: false if the queue is full. */
    bool try_put(T *item) { return nowait(spindle_queue_put_nowait(h_, to_c(item)), SPINDLE_EFULL); }
    bool try_put(std::int64_t priority, T *item) {
        return nowait(spindle_queue_put_priority_nowait(h_, priority, to_c(item)), SPINDLE_EFULL);
    }
    /* Takes the next item, waiting while the queue is empty. Throws
     * `cancelled` (nothing taken), error(SPINDLE_ESHUTDOWN) once shut down
     * and drained. */
    T *get() {
        void *item = nullptr;
        detail::blocking([&] { return spindle_queue_get(h_, &item); });
        return static_cast<T *>(item);
    }
    /* Takes the next item without waiting: nullopt if the queue is empty. */
    std::optional<T *> try_get() {
        void *item = nullptr;
        if (!nowait(spindle_queue_get_nowait(h_, &item), SPINDLE_EEMPTY))
            return std::nullopt;
        return static_cast<T *>(item);
    }
    void task_done() { check(spindle_queue_task_done(h_)); }
    /* Waits until every item put was marked done. */
    void join() {
        detail::blocking([&] { return spindle_queue_join(h_); });
    }
    std::size_t size() const {
        std::size_t v = 0;
        check(spindle_queue_size(h_, &v));
        return v;
    }
    std::size_t maxsize() const {
        std::size_t v = 0;
        check(spindle_queue_maxsize(h_, &v));
        return v;
    }
    /* asyncio's shutdown(immediate): items left are dropped (not freed) if
     * `immediate`. */
    void shutdown(bool immediate = false) { check(spindle_queue_shutdown(h_, immediate ? 1 : 0)); }

  private:
    static void *to_c(T *item) noexcept { return const_cast<void *>(static_cast<const void *>(item)); }
    static bool nowait(int rc, int no) {
        if (rc == no)
            return false;
        check(rc);
        return true;
    }
};
#endif // SPINDLE_QUEUE_FIFO

#ifdef SPINDLE_READABLE
// ---------------------------------------------------------------------------
// I/O readiness and blocking work

/* What fd_wait waits for and reports (poll(2)-like flags). */
enum : int {
    readable = SPINDLE_READABLE,
    writable = SPINDLE_WRITABLE,
    hangup = SPINDLE_HANGUP,
    fd_error = SPINDLE_FD_ERROR,
};

/* Waits until `fd` is ready for `events` (readable | writable); returns what
 * is ready. Throws `timed_out` after `seconds` (negative: no limit),
 * `cancelled`. */
inline int fd_wait(int fd, int events, double seconds = -1.0) {
    int revents = 0;
    detail::blocking([&] { return spindle_fd_wait(fd, events, seconds, &revents); });
    return revents;
}

namespace detail {
/* The shared block of a to_thread call: the caller's reference and the
 * thread's. `phase` decides who runs: the thread (pending -> running) or
 * nobody, once the caller gave up after a cancellation (pending ->
 * abandoned). */
template <class F, class R> struct thread_call {
    enum : int { pending, running, abandoned };
    std::atomic<int> refs{2};
    std::atomic<int> phase{pending};
    std::optional<F> fn;
    std::optional<std::conditional_t<std::is_void_v<R>, std::monostate, R>> value;
    std::exception_ptr exception;

    template <class G> explicit thread_call(G &&g) : fn(std::in_place, std::forward<G>(g)) {}
    void release() noexcept {
        if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1)
            delete this;
    }

    /* Runs on a blocking thread; nothing escapes it. */
    static void *trampoline(void *arg) noexcept {
        auto *self = static_cast<thread_call *>(arg);
        int expected = pending;
        if (self->phase.compare_exchange_strong(expected, running, std::memory_order_acq_rel)) {
            try {
                if constexpr (std::is_void_v<R>) {
                    (*self->fn)();
                    self->value.emplace();
                } else {
                    self->value.emplace((*self->fn)());
                }
            } catch (...) {
                self->exception = std::current_exception();
            }
            self->fn.reset();
        }
        self->release();
        return nullptr;
    }
};
} // namespace detail

/* Runs `f()` on the runtime's blocking pool and waits for it
 * (asyncio.to_thread): for anything that blocks the thread (file I/O, a
 * blocking library, a std::mutex). Returns its value or rethrows its
 * exception. Throws `cancelled` at once if the caller is cancelled: a call
 * not started never starts, one running runs on (its result is dropped). */
template <class F> auto to_thread(F &&f) {
    using R = std::invoke_result_t<std::decay_t<F> &>;
    static_assert(!std::is_reference_v<R>, "to_thread returns a value, a pointer or void, not a reference");
    using call = detail::thread_call<std::decay_t<F>, R>;
    detail::ensure_not_in_handler();
    auto *c = new call(std::forward<F>(f));
    struct holder {
        call *c;
        ~holder() { c->release(); }
    } hold{c};
    int rc = spindle_to_thread(&call::trampoline, static_cast<void *>(c), nullptr);
    if (rc != 0) {
        int expected = call::pending;
        if (c->phase.compare_exchange_strong(expected, call::abandoned, std::memory_order_acq_rel) &&
            rc != SPINDLE_ECANCELED)
            c->release(); // refused before it could start: it never will
        throw_status(rc);
    }
    if (c->exception)
        std::rethrow_exception(c->exception);
    if constexpr (!std::is_void_v<R>)
        return R(std::move(*c->value));
}
#endif // SPINDLE_READABLE

// ---------------------------------------------------------------------------
// Runtime

/* spindle_options in C++: zero means the default. */
struct options {
    std::uint32_t workers = 0;              /* 0: one per core */
    std::uint32_t max_blocking_threads = 0; /* 0: min(32, cores + 4) */
    std::size_t stack_size = 0;             /* 0: SPINDLE_DEFAULT_STACK_SIZE */
    double shutdown_timeout = -1.0;         /* negative: 5 s */
    bool eager_tasks = false;               /* asyncio's eager_task_factory */

    spindle_options to_c() const noexcept {
        spindle_options c;
        spindle_options_init(&c);
        c.workers = workers;
        c.max_blocking_threads = max_blocking_threads;
        c.stack_size = stack_size;
        c.shutdown_timeout = shutdown_timeout;
        c.eager_tasks = eager_tasks ? 1 : 0;
        return c;
    }
};

namespace detail {
/* Runs `f` as the main task of `rt` and returns its result. */
template <class F> auto run_on(spindle_runtime *rt, F &&f) {
    using R = result_of_t<F>;
    static_assert(!std::is_reference_v<R>, "a task returns a value, a pointer or void, not a reference");
    using state = task_state<std::decay_t<F>, R>;
    auto *s = new state(std::forward<F>(f));
    struct holder { // the caller's reference
        state *s;
        ~holder() { s->release(); }
    } hold{s};
    void *out = nullptr;
    int rc = spindle_runtime_run(rt, &state::trampoline, static_cast<void *>(s), &out);
    // The task has ended: its fiber released its reference, unless it never
    // started (it could not be spawned).
    if (!s->started.load(std::memory_order_acquire))
        s->release();
    if (rc == 0) {
        if constexpr (std::is_void_v<R>) {
            return;
        } else if constexpr (via_c<R>) {
            return static_cast<R>(out);
        } else {
            if (!s->value)
                throw error(SPINDLE_ESTATE);
            return R(std::move(*s->value));
        }
    }
    if (rc != SPINDLE_ECANCELED && s->exception)
        std::rethrow_exception(s->exception);
    throw_status(rc);
}
} // namespace detail

/* A runtime (worker threads, timers, I/O, fiber stacks). Move-only; the
 * destructor shuts it down: cancels the tasks still running, waits (up to
 * `shutdown_timeout`) for their cleanup. Not to be destroyed from inside one
 * of its tasks. */
class runtime {
  public:
    explicit runtime(const options &opts = {}) {
        spindle_options c = opts.to_c();
        check(spindle_runtime_new(&c, &rt_));
    }
    runtime(runtime &&other) noexcept : rt_(std::exchange(other.rt_, nullptr)) {}
    runtime &operator=(runtime &&other) noexcept {
        if (this != &other) {
            if (rt_ != nullptr)
                spindle_runtime_free(rt_);
            rt_ = std::exchange(other.rt_, nullptr);
        }
        return *this;
    }
    runtime(const runtime &) = delete;
    runtime &operator=(const runtime &) = delete;
    ~runtime() {
        if (rt_ != nullptr)
            spindle_runtime_free(rt_);
    }

    /* Runs `main()` as a task and blocks this (non-task) thread until it
     * ends; returns its result or rethrows its exception. */
    template <class F> auto run(F &&main) { return detail::run_on(rt_, std::forward<F>(main)); }

    /* Spawns `f()` from any thread (inside a task, `spindle::spawn`). */
    template <class F> auto spawn(F &&f) {
        return detail::spawn_with(
            std::forward<F>(f), [&](spindle_task_fn fn, void *arg, spindle_arg_free_fn arg_free, spindle_task **out) {
                return spindle_runtime_spawn_owned(rt_, fn, arg, arg_free, nullptr, out);
            });
    }
    template <class F> auto spawn(const std::string &name, F &&f) {
        return detail::spawn_with(
            std::forward<F>(f), [&](spindle_task_fn fn, void *arg, spindle_arg_free_fn arg_free, spindle_task **out) {
                return spindle_runtime_spawn_owned(rt_, fn, arg, arg_free, name.c_str(), out);
            });
    }

    spindle_runtime *native_handle() const noexcept { return rt_; }

  private:
    spindle_runtime *rt_ = nullptr;
};

/* asyncio.run: makes a runtime, runs `main()` on it, shuts it down. */
template <class F> auto run(F &&main, const options &opts = {}) {
    runtime rt(opts);
    return rt.run(std::forward<F>(main));
}

} // namespace spindle

#endif /* SPINDLE_HPP */
