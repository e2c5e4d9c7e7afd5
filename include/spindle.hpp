/*
 * spindle.hpp: a header-only C++17 wrapper over spindle.h.
 *
 * RAII handles for the runtime, tasks, task groups and timeout scopes (and
 * the other objects of spindle.h as they come), move-only; any callable as
 * a task; errors as exceptions. Link libspindle as for C.
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
 *    task whose fiber never starts (it was still queued when its runtime
 *    shut down) leaks that block if its handle was already dropped: the C
 *    ABI has no destructor for a task's argument.
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
            // A task that ended without its fiber ever starting (aborted at
            // shutdown) will never release the fiber's reference: do it.
            int done = 0;
            if (!state_->started.load(std::memory_order_acquire) &&
                spindle_task_done(handle_, &done) == 0 && done &&
                !state_->started.load(std::memory_order_acquire))
                state_->release();
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
 * &handle)` (one of the C spawn functions), wraps the handle. */
template <class F, class CSpawn> auto spawn_with(F &&f, CSpawn &&c_spawn) {
    using R = result_of_t<F>;
    static_assert(std::is_invocable_v<std::decay_t<F> &>, "a task is a callable taking no arguments");
    using state = task_state<std::decay_t<F>, R>;
    auto *s = new state(std::forward<F>(f));
    spindle_task *handle = nullptr;
    int rc = c_spawn(&state::trampoline, static_cast<void *>(s), &handle);
    if (rc != 0) {
        delete s; // a task that could not be spawned never runs
        throw_status(rc);
    }
    return adopt<R>(handle, s);
}

} // namespace detail

/* Spawns `f()` as a task of the running task's runtime (asyncio.create_task);
 * call from inside a task. */
template <class F> auto spawn(F &&f) {
    return detail::spawn_with(std::forward<F>(f), [](spindle_task_fn fn, void *arg, spindle_task **out) {
        return spindle_spawn(fn, arg, nullptr, out);
    });
}
/* The same, with a name (task.get_name()). */
template <class F> auto spawn(const std::string &name, F &&f) {
    return detail::spawn_with(std::forward<F>(f), [&](spindle_task_fn fn, void *arg, spindle_task **out) {
        return spindle_spawn(fn, arg, name.c_str(), out);
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
} // namespace detail

/* Waits for every task, in order, and returns their results (asyncio.gather):
 * a tuple for a list of tasks, a vector for a vector of tasks. The first
 * failure is rethrown at once, the other tasks keep running. If this call
 * throws `cancelled`, the tasks not done yet are cancelled (as when a
 * gather is cancelled; unlike asyncio, also when the cancelled one is a
 * child). */
template <class... R> std::tuple<gathered_t<R>...> gather(task<R> &...tasks) {
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
}

template <class R> std::vector<gathered_t<R>> gather(std::vector<task<R>> &tasks) {
    std::vector<gathered_t<R>> values;
    values.reserve(tasks.size());
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
    return values;
}

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
        auto t = detail::spawn_with(std::forward<F>(f), [&](spindle_task_fn fn, void *arg, spindle_task **out) {
            return spindle_group_spawn(group_, fn, arg, name, out);
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

// ---------------------------------------------------------------------------
// Runtime

/* spindle_options in C++: zero means the default. */
struct options {
    std::uint32_t workers = 0;              /* 0: one per core */
    std::uint32_t max_blocking_threads = 0; /* 0: min(32, cores + 4) */
    std::size_t stack_size = 0;             /* 0: SPINDLE_DEFAULT_STACK_SIZE */
    double shutdown_timeout = -1.0;         /* negative: 5 s */

    spindle_options to_c() const noexcept {
        spindle_options c;
        spindle_options_init(&c);
        c.workers = workers;
        c.max_blocking_threads = max_blocking_threads;
        c.stack_size = stack_size;
        c.shutdown_timeout = shutdown_timeout;
        return c;
    }
};

namespace detail {
/* Runs `f` as the main task of `rt` and returns its result. */
template <class F> auto run_on(spindle_runtime *rt, F &&f) {
    using R = result_of_t<F>;
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
        return detail::spawn_with(std::forward<F>(f), [&](spindle_task_fn fn, void *arg, spindle_task **out) {
            return spindle_runtime_spawn(rt_, fn, arg, nullptr, out);
        });
    }
    template <class F> auto spawn(const std::string &name, F &&f) {
        return detail::spawn_with(std::forward<F>(f), [&](spindle_task_fn fn, void *arg, spindle_task **out) {
            return spindle_runtime_spawn(rt_, fn, arg, name.c_str(), out);
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
