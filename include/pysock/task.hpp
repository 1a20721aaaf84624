// SPDX-License-Identifier: MIT
//
// pysock/task.hpp — the coroutine type of pysock's event loop.
//
//   async def fetch(): ...                 pysock::task<pysock::bytes> fetch() { ... co_return
//   data; } data = await fetch()                   pysock::bytes data = co_await fetch();
//   asyncio.CancelledError                 pysock::cancelled_error
//   asyncio.InvalidStateError              pysock::invalid_state_error
//
// A task<T> is *lazy*, like a Python coroutine object: calling the function
// only makes the frame; nothing runs until the task is awaited (co_await) or
// handed to the loop (loop.create_task(), loop.run_until_complete()). Awaiting
// one task from another is a plain call: no trip through the loop, no
// allocation beyond the frame, and the awaiting coroutine resumes directly
// when the awaited one finishes (symmetric transfer, so chains of any depth do
// not grow the stack). Exceptions thrown in the callee surface at the
// co_await in the caller, as in Python.
//
// Frames are recycled: a thread-local free list per size class hands back the
// memory of finished frames, so a server that starts one coroutine per message
// does not go to malloc for each.
//
// Cancellation (Python's Task.cancel()) is delivered as a cancelled_error thrown
// at the suspension point where the task waits (a socket operation, sleep(), a
// join on another task). Like CancelledError it is *not* derived from
// std::exception, so a generic `catch (const std::exception&)` does not swallow
// a cancellation by accident; catch it by name (and normally rethrow).
#pragma once

#include <concepts>
#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace pysock {

/// Python's asyncio.CancelledError: thrown into a task at the point where it
/// waits when the task is cancelled. Deliberately not a std::exception (in
/// Python it derives from BaseException, not Exception).
class cancelled_error {
 public:
  const char* what() const noexcept { return "task was cancelled"; }
};

/// Python's asyncio.InvalidStateError: e.g. result() of a task not yet done.
class invalid_state_error : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

template <class T = void>
class task;
class event_loop;

namespace detail {

// The recycling allocator behind every coroutine frame of task<T>.
void* allocate_frame(std::size_t size);
void deallocate_frame(void* frame, std::size_t size) noexcept;

// Where a suspended task can be cancelled: every awaiter that suspends a task
// inside the loop (socket operation, timer, join) registers one of these with
// the task, so Task.cancel() can withdraw the wait and resume the coroutine
// with cancelled_error. A plain function pointer, called only on cancel. It
// returns false when the wait already completed (its result is on the way to
// the coroutine and must not be lost): the cancellation is then delivered at
// the task's next suspension point instead, as Python's must_cancel does.
struct cancel_slot {
  bool (*cancel_fn)(cancel_slot*) noexcept = nullptr;
};

// A waiter on a root task's completion (co_await of a task_handle, gather,
// wait_for). Singly linked into the task; `notify` runs once, on completion.
struct join_node {
  join_node* next = nullptr;
  void (*notify)(join_node*) noexcept = nullptr;
};

// The state of a task the loop runs on its own (Python's asyncio.Task):
// created by create_task() and run_until_complete(). Reference counted (the
// loop holds one reference while the task is pending, each task_handle one).
// Only touched on the loop's thread.
struct task_state_base {
  event_loop* loop = nullptr;
  std::coroutine_handle<> frame;
  std::exception_ptr early_exception;  // cancelled before it ever started
  unsigned refs = 0;
  bool done = false;
  bool must_cancel = false;       // a cancel() waits for the next suspension point
  bool result_retrieved = false;  // for the "exception was never retrieved" report
  cancel_slot* leaf = nullptr;    // where the task is suspended now, if cancellable
  join_node* waiters = nullptr;
  task_state_base* prev = nullptr;  // the loop's list of pending tasks
  task_state_base* next = nullptr;
  void (*delete_self)(task_state_base*) noexcept = nullptr;
  void (*drop_frame)(task_state_base*) noexcept = nullptr;
  std::exception_ptr (*exception_of)(task_state_base*) noexcept = nullptr;

  void add_ref() noexcept { ++refs; }
  void release() noexcept;
  /// Python's Task.cancel(): false when already done. Defined in loop.cpp.
  bool cancel() noexcept;
  /// Called when the frame reaches its final suspend point.
  void on_final() noexcept;
  /// The outcome's exception (cancelled_error, any exception, or null).
  std::exception_ptr exception() noexcept { return exception_of(this); }
  bool add_waiter(join_node* node) noexcept;  // false when already done
  void remove_waiter(join_node* node) noexcept;
};

struct promise_base {
  // While the awaiting coroutine is still inside await_suspend (the callee
  // runs nested in it), a callee that finishes just records it and returns:
  // the caller then continues without suspending. Chains of tasks that
  // complete at once therefore never nest on the stack, whether or not the
  // compiler turns symmetric transfer into a tail call (GCC does not under
  // AddressSanitizer).
  enum class inline_state : unsigned char { none, running, completed };

  std::coroutine_handle<> continuation;
  task_state_base* root = nullptr;
  std::exception_ptr exception;
  bool started = false;
  inline_state nested = inline_state::none;

  // Sized operator delete gets the same size back, so the allocator needs no
  // header per frame.
  static void* operator new(std::size_t size) { return allocate_frame(size); }
  static void operator delete(void* frame, std::size_t size) noexcept {
    deallocate_frame(frame, size);
  }

  std::suspend_always initial_suspend() noexcept { return {}; }

  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
      promise_base& p = self.promise();
      if (p.nested == inline_state::running) {  // finished inside the caller's await_suspend
        p.nested = inline_state::completed;
        return std::noop_coroutine();
      }
      if (p.continuation) return p.continuation;  // back to whoever awaited us
      if (p.root != nullptr) p.root->on_final();  // a root task: wake its joiners
      return std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };
  final_awaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { exception = std::current_exception(); }
};

template <class T>
struct task_promise : promise_base {
  std::optional<T> value;

  task<T> get_return_object() noexcept;
  template <class U = T>
  requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    value.emplace(std::forward<U>(v));
  }
  T& result() {
    if (exception) std::rethrow_exception(exception);
    return *value;
  }
};

template <>
struct task_promise<void> : promise_base {
  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void result() {
    if (exception) std::rethrow_exception(exception);
  }
};

}  // namespace detail

/// A lazily started coroutine returning T (Python's coroutine object). Move
/// only. Await it once (co_await), or give it to the loop to run as a task.
/// Destroying a task that never ran destroys its frame (and the locals and
/// arguments in it) without running any of its body.
template <class T>
class [[nodiscard]] task {
 public:
  static_assert(!std::is_reference_v<T>, "task<T&> is not supported; return a pointer or a value");
  using promise_type = detail::task_promise<T>;
  using value_type = T;
  using handle_type = std::coroutine_handle<promise_type>;

  task() noexcept = default;
  explicit task(handle_type h) noexcept : h_(h) {}
  task(task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      if (h_) h_.destroy();
      h_ = std::exchange(other.h_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() {
    if (h_) h_.destroy();
  }

  /// False for a default-constructed or moved-from task.
  bool valid() const noexcept { return static_cast<bool>(h_); }
  /// True once the body has finished (returned or thrown).
  bool done() const noexcept { return h_ && h_.done(); }

  struct awaiter {
    handle_type h;
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> caller) {
      using state = detail::promise_base::inline_state;
      auto& p = h.promise();
      p.continuation = caller;
      p.nested = state::running;
      h.resume();  // run the callee until it finishes or first suspends
      if (p.nested == state::completed) return false;  // done already: no suspension
      p.nested = state::none;  // it suspended: it will resume `caller` when it finishes
      return true;
    }
    decltype(auto) await_resume() {
      if constexpr (std::is_void_v<T>) {
        h.promise().result();
      } else {
        return std::move(h.promise().result());
      }
    }
  };

  /// Runs the task to completion inside the awaiting coroutine and returns
  /// its value (or rethrows its exception). A task can be awaited once:
  /// awaiting an empty, running or finished task throws invalid_state_error.
  awaiter operator co_await() {
    if (!h_) throw invalid_state_error("co_await on an empty task (moved from?)");
    if (h_.promise().started)
      throw invalid_state_error("task awaited twice: a coroutine can be awaited once");
    h_.promise().started = true;
    return awaiter{h_};
  }

  /// The coroutine handle (the loop uses it to run the task as a root).
  handle_type handle() const noexcept { return h_; }

 private:
  handle_type h_{};
};

namespace detail {
template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
  return task<T>(std::coroutine_handle<task_promise<T>>::from_promise(*this));
}
inline task<void> task_promise<void>::get_return_object() noexcept {
  return task<void>(std::coroutine_handle<task_promise<void>>::from_promise(*this));
}

// An awaitable that is not a task but can become one: the frame-less waits
// of streams (read(), read_into(), drain()). create_task(), wait_for(),
// gather() and run_until_complete() take one wherever they take a task.
template <class A>
concept task_convertible = requires(A a) {
  typename A::result_type;
  { std::move(a).to_task() } -> std::same_as<task<typename A::result_type>>;
};

template <class A>
inline constexpr bool is_task_v = false;
template <class T>
inline constexpr bool is_task_v<task<T>> = true;

template <class T>
task<T> as_task(task<T>&& t) noexcept {
  return std::move(t);
}
template <task_convertible A>
task<typename A::result_type> as_task(A&& a) {
  return std::move(a).to_task();
}
}  // namespace detail

}  // namespace pysock
