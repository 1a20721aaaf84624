// SPDX-License-Identifier: MIT
//
// pysock/loop.hpp — Python's asyncio event loop, with C++20 coroutines.
//
//   Python (asyncio)                        pysock
//   loop = asyncio.new_event_loop()         pysock::event_loop loop;
//   asyncio.run(main())                     pysock::run(main());
//   asyncio.get_running_loop()              pysock::get_running_loop()
//   loop.run_until_complete(coro)           loop.run_until_complete(coro())
//   loop.run_forever() / loop.stop()        loop.run_forever() / loop.stop()
//   loop.is_running() / loop.time()         loop.is_running() / loop.time()
//   loop.call_soon(cb)                      loop.call_soon(cb)            → callback_handle
//   loop.call_later(0.5, cb)                loop.call_later(500ms, cb)    → callback_handle
//   loop.call_at(when, cb)                  loop.call_at(when, cb)        → callback_handle
//   handle.cancel() / handle.cancelled()    handle.cancel() / handle.cancelled()
//   loop.call_soon_threadsafe(cb)           loop.call_soon_threadsafe(cb) (from any thread)
//   loop.add_reader(fd, cb) ...             loop.add_reader(fd, cb), add_writer, remove_reader,
//   remove_writer loop.add_signal_handler(SIGINT, cb)     loop.add_signal_handler(SIGINT, cb),
//   remove_signal_handler loop.run_in_executor(None, fn)          co_await loop.run_in_thread(fn)
//   asyncio.create_task(coro)               pysock::create_task(coro())    → task_handle<T>
//   task.cancel() / done() / result()       h.cancel() / h.done() / h.result()
//   await task                              co_await h
//   await loop.sock_recv(s, n)              co_await loop.sock_recv(s, n)          → bytes
//   await loop.sock_recv_into(s, buf)       co_await loop.sock_recv_into(s, buf)   → std::size_t
//   await loop.sock_sendall(s, data)        co_await loop.sock_sendall(s, data)
//   await loop.sock_sendto(s, data, addr)   co_await loop.sock_sendto(s, data, addr) → std::size_t
//   await loop.sock_recvfrom(s, n)          co_await loop.sock_recvfrom(s, n)      → (bytes,
//   address) await loop.sock_recvfrom_into(s, buf)   co_await loop.sock_recvfrom_into(s, buf) conn,
//   addr = await loop.sock_accept(s)  auto [conn, addr] = co_await loop.sock_accept(s); await
//   loop.sock_connect(s, addr)        co_await loop.sock_connect(s, addr) await asyncio.sleep(0.1)
//   co_await pysock::sleep(100ms) await asyncio.wait_for(coro, 1.0)       co_await
//   pysock::wait_for(coro(), 1s)   (timeout_error) await asyncio.gather(a(), b())          co_await
//   pysock::gather(a(), b())       → std::tuple asyncio.Event pysock::event asyncio.CancelledError
//   pysock::cancelled_error (pysock/task.hpp) asyncio.TimeoutError / TimeoutError
//   pysock::timeout_error (pysock/error.hpp)
//
// Streams (open_connection, start_server, StreamReader/StreamWriter) are in
// pysock/streams.hpp.
//
// Threading: an event_loop belongs to the thread that runs it. Only
// call_soon_threadsafe() may be called from other threads. Several loops can
// run on several threads at once (see pysock::serve_forever in streams.hpp).
//
// Sockets: the sock_* operations need a non-blocking socket (settimeout(0s)
// or setblocking(false)); a blocking one is refused with
// std::invalid_argument, as Python raises ValueError. Each operation first
// makes the system call and only waits when the kernel says EAGAIN, so data
// already there costs no trip through epoll. Errors are thrown in the
// awaiting coroutine as Python's exception classes (connection_reset_error,
// broken_pipe_error, connection_refused_error...). One coroutine at a time may
// wait to read a given socket, and one to write it; a second one gets
// std::runtime_error.
//
// Cancellation: h.cancel() makes the task's current wait (socket operation,
// sleep, join, wait_for, gather) end with cancelled_error thrown in the task;
// the wait's epoll registration is withdrawn first and the socket is left
// open: a cancelled sock_recv closes nothing. A task that is running (not
// waiting) when cancelled gets cancelled_error at its next wait. Cancelling a
// task that waits on another task (co_await h, wait_for, gather) cancels that
// task too, as in Python.
//
// Backends: epoll (the default, a reactor) and io_uring (a proactor, built
// when liburing is found), selected with PYSOCK_LOOP=io_uring|epoll or
// loop_options{.backend = loop_backend::io_uring}. On io_uring, sock_recv,
// sock_recv_into and sock_sendall are kernel requests submitted at once and
// batched into one io_uring_enter per loop iteration; the other operations try
// the system call first and wait with a poll request. A buffer passed to an
// operation must stay valid until the await ends (a cancelled or abandoned
// request is withdrawn and waited for before the awaiting frame may go). Where
// the kernel or a sandbox refuses io_uring (or the build lacks liburing) the
// loop logs one line on stderr per process and runs on epoll: the backend
// never makes a loop fail to start; backend() says which one runs.
#pragma once

#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "pysock/address.hpp"
#include "pysock/buffer.hpp"
#include "pysock/error.hpp"
#include "pysock/socket.hpp"
#include "pysock/task.hpp"

namespace pysock {

/// The loop's clock (Python's loop.time() is monotonic too).
using loop_clock = std::chrono::steady_clock;

/// Which I/O mechanism a loop uses.
enum class loop_backend {
  automatic,  ///< PYSOCK_LOOP from the environment if set ("epoll", "io_uring"), else epoll
  epoll,      ///< readiness-based reactor: the default
  io_uring,   ///< completion-based proactor: falls back to epoll where unavailable
};
/// "automatic", "epoll", "io_uring".
const char* to_string(loop_backend backend) noexcept;

struct loop_options {
  loop_backend backend = loop_backend::automatic;
};

class event_loop;
template <class T>
class task_handle;

namespace detail {

// --- callbacks (call_soon, call_later) -------------------------------------

struct timer_node {
  static constexpr std::size_t not_queued = static_cast<std::size_t>(-1);
  loop_clock::time_point when{};
  std::uint64_t sequence = 0;  // FIFO among timers due at the same instant
  std::size_t heap_index = not_queued;
  // What firing does: push a callback or a coroutine to the ready queue, or
  // the custom action of wait_for(). Called once per timer, not per event.
  void (*fire)(timer_node*) noexcept = nullptr;
};

// A call_soon()/call_later() callback. It is its own timer node (call_later),
// so the timer heap needs no allocation of its own.
struct callback_state : timer_node {
  unsigned refs = 0;
  bool cancelled = false;
  bool is_timer = false;
  event_loop* loop = nullptr;
  std::function<void()> fn;
};
void release(callback_state* state) noexcept;

// --- I/O operations ----------------------------------------------------------

// Every kind of wait the reactor knows. The event dispatcher switches on this
// (direct, inlinable calls) instead of calling through a vtable.
enum class op_kind : std::uint8_t {
  recv_into,
  recv,
  sendall,
  sendto,
  recvfrom,
  recvfrom_into,
  accept,
  connect,
  fd_callback,   // add_reader()/add_writer(): persistent, level-triggered
  stream_fill,   // streams.cpp: fill a StreamReader's buffer
  stream_flush,  // streams.cpp: flush a StreamWriter's buffer
  // io_uring only: start_server's multishot accept request, one completion
  // per accepted connection (streams.cpp's server_accepted)
  accept_multishot,
  // io_uring only: a plain stream's multishot receive into provided buffers,
  // one completion per arrival (streams.cpp's stream_multishot_received)
  stream_recv_multishot,
};

struct io_op : cancel_slot {
  op_kind kind;
  bool write = false;      // which slot of the descriptor it waits in
  bool waiting = false;    // registered with the reactor now
  bool cancelled = false;  // withdrawn by Task.cancel(): await_resume throws
  // io_uring only: the kernel holds a request whose user_data is this op (its
  // completion has not been consumed), and whether that request is the
  // operation itself (recv/send) or a readiness poll.
  bool in_ring = false;
  bool ring_native = false;
  int fd = -1;
  event_loop* loop = nullptr;
  std::coroutine_handle<> handle;    // the coroutine to resume (none for callbacks)
  task_state_base* owner = nullptr;  // the task that waits (for cancellation)
  std::error_code ec;

  explicit io_op(op_kind k, bool w) noexcept : kind(k), write(w) {}
  // `category` is std::system_category(), cached by the loop: the hot path
  // makes no call into libstdc++ to construct a cleared error_code.
  io_op(op_kind k, bool w, const std::error_category& category) noexcept
      : kind(k), write(w), ec(0, category) {}
  io_op(const io_op&) = delete;
  io_op& operator=(const io_op&) = delete;
};

// One descriptor's waits. `attached` descriptors (streams) are registered once
// edge-triggered for both directions and stay so until detached. The sock_*
// calls on sockets the loop does not own use the same `edge` registration,
// made at the first wait and kept between waits, but trusted only while
// descriptor_release_epoch has not moved since it was made (pysock closed no
// socket meanwhile, so the number still names the same file); otherwise it is
// made again. add_reader()/add_writer() are level-triggered (`persistent`);
// a sock_* wait sharing a descriptor with one is armed one-shot per wait.
// 32 bytes, so that the table's bounds checks and indexing, made several
// times per message, are shifts rather than multiplications.
struct fd_entry {
  io_op* reader = nullptr;
  io_op* writer = nullptr;
  std::uint64_t epoch = 0;       // descriptor_release_epoch when `edge` was registered
  std::uint32_t registered = 0;  // the events last given to epoll_ctl
  bool edge = false;             // sock_*: edge-triggered, kept between waits
  // edge or attached (both edge-triggered): data may be queued (an event
  // came, or nothing is known); false after a short read of a stream socket,
  // until the next EPOLLIN edge. io_uring:
  // the last receive on the stream filled its buffer, so more is queued.
  bool maybe_readable = true;
  // edge: the peer has shut down or the socket has an error. A short read
  // then no longer means an empty queue (the EOF behind the data raises no
  // new edge), so every receive makes the call.
  bool hung_up = false;
  // Off the sock_* hot path: one byte for the four.
  bool in_epoll : 1 = false;    // epoll_ctl(ADD) done and not removed by us
  bool armed : 1 = false;       // a one-shot registration has not fired yet
  bool attached : 1 = false;    // streams: registered for both directions until detached
  bool persistent : 1 = false;  // level-triggered (add_reader/add_writer)
};
static_assert(sizeof(fd_entry) == 32);

// How many descriptors pysock has released (closed, detached); defined in
// socket.cpp, bumped by every socket close. See fd_entry.
extern std::atomic<std::uint64_t> descriptor_release_epoch;

struct ready_item {
  std::coroutine_handle<> handle;
  task_state_base* owner = nullptr;
  callback_state* callback = nullptr;  // a reference is held while queued
  bool start = false;                  // the first step of a created task
};

// Shared with other threads: call_soon_threadsafe() and run_in_thread()
// results go through here. Outlives the loop while a thread holds it, so a
// late post after the loop is gone is dropped instead of touching freed memory.
struct loop_remote;

// Starts `fn` on a new thread (signals blocked) for run_in_thread().
struct thread_call {
  std::coroutine_handle<> handle;
  task_state_base* owner = nullptr;
  bool finished = false;
  bool abandoned = false;  // the waiting task was cancelled
  std::exception_ptr exception;
  virtual void run() = 0;  // on the worker thread, once
  virtual ~thread_call() = default;
};

template <class R>
struct thread_call_of final : thread_call {
  std::function<R()> fn;
  std::optional<std::conditional_t<std::is_void_v<R>, std::monostate, R>> value;
  void run() override {
    try {
      if constexpr (std::is_void_v<R>) {
        fn();
        value.emplace();
      } else {
        value.emplace(fn());
      }
    } catch (...) {
      exception = std::current_exception();
    }
  }
};

struct loop_access;  // streams.cpp's door to the reactor (attach/detach)
struct uring;        // loop_uring_linux.cpp: the ring and what waits on it
template <class R>
struct thread_call_awaiter;  // what run_in_thread() returns

// The stream transport's operations (streams.cpp), called by the reactor's
// dispatcher for op_kind::stream_fill / stream_flush.
bool stream_fill_perform(io_op* op) noexcept;
// io_uring: a fill that can be a receive request — a read_into() waiting with
// nothing buffered — gives its buffer; the request's result comes back
// through stream_fill_received().
bool stream_fill_target(io_op* op, void*& data, std::size_t& size) noexcept;
bool stream_fill_received(io_op* op, int res) noexcept;  // true: it filled the buffer
bool stream_flush_perform(io_op* op) noexcept;
void stream_flush_done(io_op* op) noexcept;
// io_uring: a completion of start_server's multishot accept request: `res` is
// an accepted descriptor (now owned by the callee) or -errno.
void server_accepted(io_op* op, int res) noexcept;
// io_uring: the multishot receive a stream's fill waits on (armed by the
// loop if it is not in the kernel yet), or null where the fill needs a
// request of its own (TLS streams, a closed or finished stream).
io_op* stream_multishot_for(io_op* fill) noexcept;
// A completion of it: `res` bytes at `data` (a provided buffer, reusable when
// this returns), 0 for EOF, or -errno (-ENOBUFS, -ECANCELED: nothing came).
// Returns the stream's fill operation if a reader waits on it.
io_op* stream_multishot_received(io_op* rx, const char* data, int res) noexcept;
// Nobody reads and more than twice the stream's limit is buffered: the
// loop withdraws the receive until a reader wants more (asyncio pauses
// reading at the same mark).
bool stream_multishot_over_limit(const io_op* rx) noexcept;

// Hot-path system calls shared by the operations; retry EINTR (PEP 475).
inline bool would_block(int err) noexcept { return err == EAGAIN || err == EWOULDBLOCK; }
[[noreturn]] void throw_blocking_socket(const char* call);
[[noreturn]] void throw_nbytes_too_large(const char* call);
// Python raises ValueError for a blocking socket in loop.sock_*().
inline void check_nonblocking(const socket& s, const char* call) {
  if (s.getblocking() && !s.closed()) [[unlikely]]
    throw_blocking_socket(call);
}
[[noreturn]] void throw_operation_error(const std::error_code& ec, const char* call, int fd);

}  // namespace detail

/// Python's asyncio.Handle / TimerHandle: lets a scheduled callback be
/// cancelled. Copyable (a reference count); must be used on the loop's thread.
class callback_handle {
 public:
  callback_handle() noexcept = default;
  explicit callback_handle(detail::callback_state* state) noexcept;
  callback_handle(const callback_handle& other) noexcept;
  callback_handle& operator=(const callback_handle& other) noexcept;
  callback_handle(callback_handle&& other) noexcept
      : state_(std::exchange(other.state_, nullptr)) {}
  callback_handle& operator=(callback_handle&& other) noexcept;
  ~callback_handle() { detail::release(state_); }

  /// Stops the callback from running; no effect once it ran. For a timer the
  /// entry leaves the loop's timer heap at once.
  void cancel() noexcept;
  bool cancelled() const noexcept { return state_ != nullptr && state_->cancelled; }
  /// TimerHandle.when(): the loop time it is due (call_later/call_at only).
  loop_clock::time_point when() const;

 private:
  detail::callback_state* state_ = nullptr;
};

// ---------------------------------------------------------------------------
// The event loop
// ---------------------------------------------------------------------------

class event_loop {
 public:
  /// Creates the loop and its backend (epoll by default). Throws os_error if
  /// the kernel refuses the epoll or eventfd descriptor.
  explicit event_loop(loop_options options = {});
  /// Python's loop.close(): destroys tasks still pending (their frames and the
  /// locals in them, closing sockets they own), drops pending callbacks,
  /// removes signal handlers, waits for run_in_thread() workers, closes the
  /// backend's descriptors. Must not run while the loop is running.
  ~event_loop();
  event_loop(const event_loop&) = delete;
  event_loop& operator=(const event_loop&) = delete;

  // --- running --------------------------------------------------------------

  /// Runs the loop until `t` finishes; returns its value or rethrows its
  /// exception. Throws std::runtime_error if stop() ends the loop first
  /// ("Event loop stopped before the task completed.").
  template <class T>
  T run_until_complete(task<T> t);
  template <detail::task_convertible A>
  typename A::result_type run_until_complete(A a) {
    return run_until_complete(std::move(a).to_task());
  }
  /// The same for a task already created with create_task().
  template <class T>
  T run_until_complete(task_handle<T>& h);
  /// Runs until stop() is called.
  void run_forever();
  /// Ends run_forever()/run_until_complete() after the current iteration (the
  /// callbacks already due still run). Callable from a callback or a task.
  void stop() noexcept { stopping_ = true; }
  bool is_running() const noexcept { return running_; }
  /// The loop's clock now.
  loop_clock::time_point time() const noexcept { return loop_clock::now(); }
  /// The backend in use (after any fallback).
  loop_backend backend() const noexcept { return backend_; }

  // --- callbacks -------------------------------------------------------------

  /// Runs `fn` on the next iteration; callbacks run in the order scheduled.
  callback_handle call_soon(std::function<void()> fn);
  /// Runs `fn` after `delay` (never earlier; a negative delay is 0). Timers
  /// due at the same instant run in the order they were scheduled.
  template <class Rep, class Period>
  callback_handle call_later(std::chrono::duration<Rep, Period> delay, std::function<void()> fn) {
    return call_at(time() + std::chrono::ceil<loop_clock::duration>(delay), std::move(fn));
  }
  callback_handle call_at(loop_clock::time_point when, std::function<void()> fn);
  /// The one call that is safe from any thread: queues `fn` and wakes the loop
  /// through its eventfd. Dropped silently once the loop is destroyed.
  void call_soon_threadsafe(std::function<void()> fn);

  // --- descriptors and signals ----------------------------------------------

  /// Calls `fn` whenever `fd` is readable (level-triggered, as in Python),
  /// replacing a callback already set. Throws std::runtime_error while a
  /// coroutine waits to read the same descriptor, os_error if epoll refuses
  /// it (EPERM for a regular file).
  void add_reader(int fd, std::function<void()> fn);
  void add_writer(int fd, std::function<void()> fn);
  /// True if a callback was removed.
  bool remove_reader(int fd);
  bool remove_writer(int fd);

  /// Runs `fn` on the loop when signal `sig` arrives (through a signalfd: the
  /// handler is an ordinary callback, it may do anything). The signal is
  /// blocked in the calling thread, so install handlers before starting other
  /// threads (they inherit the mask), as Python requires the main thread.
  /// Replaces an existing handler. std::invalid_argument for SIGKILL/SIGSTOP
  /// or a bad number.
  void add_signal_handler(int sig, std::function<void()> fn);
  /// Restores the signal's previous disposition; true if a handler was removed.
  bool remove_signal_handler(int sig);

  // --- tasks -----------------------------------------------------------------

  /// Python's create_task(): schedules `t` to start on the next iteration and
  /// returns a handle to await, cancel or query it. The loop keeps the task
  /// alive until it finishes even if every handle is dropped.
  template <class T>
  task_handle<T> create_task(task<T> t);
  /// The same for a stream's frame-less wait (reader.read(), drain()...).
  template <detail::task_convertible A>
  task_handle<typename A::result_type> create_task(A a) {
    return create_task(std::move(a).to_task());
  }

  /// Python's run_in_executor(None, fn): `co_await loop.run_in_thread(fn)`
  /// runs `fn` on a new thread (all signals blocked) and resumes the awaiting
  /// coroutine with its result or exception. The thread starts at the
  /// co_await. Cancelling the waiter abandons the result; the thread itself
  /// runs to its end (the loop's destructor waits for it).
  template <class F>
  auto run_in_thread(F fn) -> detail::thread_call_awaiter<std::invoke_result_t<F&>>;

  // --- socket operations (non-blocking sockets; see the file comment) --------

  class recv_into_op;
  class recv_op;
  class sendall_op;
  class sendto_op;
  class recvfrom_op;
  class recvfrom_into_op;
  class accept_op;
  class connect_op;

  /// Receives up to `nbytes` (0: the whole buffer) into `buffer`; the count,
  /// 0 at EOF. The allocation-free path.
  recv_into_op sock_recv_into(socket& s, mutable_buffer buffer, std::size_t nbytes = 0);
  /// Receives up to `n` bytes; "" at EOF.
  recv_op sock_recv(socket& s, std::size_t n);
  /// Sends all of `data` (which must stay valid until the await ends), waiting
  /// for buffer space as often as needed. On error nothing says how much went.
  sendall_op sock_sendall(socket& s, const_buffer data);
  /// One datagram to `addr`, which must be numeric (resolve names with
  /// run_in_thread(getaddrinfo) first): std::invalid_argument otherwise.
  sendto_op sock_sendto(socket& s, const_buffer data, const address& addr);
  /// One datagram of at most `n` bytes and its sender.
  recvfrom_op sock_recvfrom(socket& s, std::size_t n);
  recvfrom_into_op sock_recvfrom_into(socket& s, mutable_buffer buffer, std::size_t nbytes = 0);
  /// The connection and the peer address; the new socket is non-blocking and
  /// close-on-exec.
  accept_op sock_accept(socket& listener);
  /// Connects; a host name is resolved with getaddrinfo on a worker thread
  /// (the first address of the socket's family is used), a numeric address
  /// without one. connection_refused_error, gaierror... on failure.
  task<void> sock_connect(socket& s, address addr);

  // --- diagnostics -------------------------------------------------------------

  /// The backend's own descriptor (the epoll instance, or the io_uring
  /// instance): /proc/self/fdinfo of it lists what the kernel watches. For
  /// tests and debugging.
  int backend_fileno() const noexcept;
  /// io_uring: requests submitted (or queued for the next submission) whose
  /// completion has not come back yet; epoll: 0. A cancelled or abandoned
  /// operation is counted until the kernel has finished with it.
  std::size_t kernel_requests_in_flight() const noexcept { return ring_in_flight_; }
  /// Descriptors that have a wait or a callback registered now, plus attached
  /// ones (streams), not counting the loop's own eventfd and signalfd.
  std::size_t active_descriptor_count() const noexcept;
  /// Tasks created and not yet finished.
  std::size_t pending_task_count() const noexcept { return pending_tasks_; }

  // --- internals used by the awaiters in this header --------------------------

  /// Registers a wait (after the first attempt said EAGAIN). False when the
  /// coroutine must not suspend: a pending cancellation (op->cancelled) or a
  /// registration error (op->ec).
  bool suspend_io(detail::io_op* op, std::coroutine_handle<> h) {
    // The hot path, inline: epoll, a sock_* socket whose edge registration
    // is still valid, no cancellation pending — the wait is two stores.
    op->handle = h;
    detail::task_state_base* owner = current_;
    op->owner = owner;
    const auto i = static_cast<std::size_t>(op->fd);  // -1 is out of range
    if (ring_ == nullptr && i < fds_.size() && (owner == nullptr || !owner->must_cancel)) {
      detail::fd_entry& e = fds_[i];
      detail::io_op*& slot = op->write ? e.writer : e.reader;
      // A stream's (attached) registration is always in place as well.
      if (slot == nullptr &&
          (e.attached || (e.edge && e.epoch == detail::descriptor_release_epoch.load(
                                                   std::memory_order_relaxed)))) {
        op->cancel_fn = &event_loop::epoll_cancel;
        slot = op;
        op->waiting = true;
        if (owner != nullptr) owner->leaf = op;
        return true;
      }
    }
    return suspend_io_slow(op, h);
  }
  /// std::system_category(), looked up once per loop (see detail::io_op).
  const std::error_category& system_category() const noexcept { return *system_category_; }
  /// True on io_uring: receives and sends go to the kernel as requests at
  /// once instead of trying the system call first.
  bool submits_receives() const noexcept { return ring_ != nullptr; }
  /// epoll: a stream socket whose last read came back short and that has had
  /// no EPOLLIN edge since, so a receive would say EAGAIN; the awaiter then
  /// waits at once, without the system call (raw epoll code reads once per
  /// event in the same way).
  bool read_drained(int fd) const noexcept {
    const auto i = static_cast<std::size_t>(fd);
    if (i >= fds_.size()) return false;
    const detail::fd_entry& e = fds_[i];
    if (e.maybe_readable || ring_ != nullptr) return false;
    return e.attached ||
           (e.edge && e.epoch == detail::descriptor_release_epoch.load(std::memory_order_relaxed));
  }
  /// A read of a stream socket returned less than asked: the receive queue
  /// was empty at that moment, and the edge-triggered registration reports
  /// whatever arrives after it.
  /// Where sock_recv receives before it knows the size of what came: one
  /// per loop, so a waiting sock_recv holds no buffer.
  static constexpr std::size_t receive_scratch_size = 64 * 1024;
  std::byte* receive_scratch() noexcept { return receive_scratch_.get(); }
  void note_short_read(int fd) noexcept {
    const auto i = static_cast<std::size_t>(fd);
    if (i >= fds_.size()) return;
    detail::fd_entry& e = fds_[i];
    if (ring_ != nullptr || ((e.edge || e.attached) && !e.hung_up)) e.maybe_readable = false;
  }
  /// io_uring: the last receive on this stream socket filled its buffer (see
  /// fd_entry::maybe_readable), so the next one tries the system call first.
  bool ring_read_queued(int fd) const noexcept {
    const auto i = static_cast<std::size_t>(fd);
    return i < fds_.size() && fds_[i].maybe_readable;
  }
  /// Called first in every awaiter's await_resume: the task is running again.
  void resumed(detail::task_state_base* owner, detail::cancel_slot* slot) noexcept {
    current_ = owner;
    if (owner != nullptr && owner->leaf == slot) owner->leaf = nullptr;
  }
  /// The task running now (null in plain callbacks).
  detail::task_state_base* current_task() const noexcept { return current_; }
  /// Withdraws a registered wait (cancel, or destruction of a pending frame).
  void abandon_io(detail::io_op* op) noexcept;
  void schedule(std::coroutine_handle<> h, detail::task_state_base* owner);
  void schedule_callback(detail::callback_state* cb);
  void add_timer(detail::timer_node* node);
  void remove_timer(detail::timer_node* node) noexcept;
  void retire(detail::task_state_base* state);
  void start_thread_call(std::shared_ptr<detail::thread_call> call);
  /// Makes `owner` wait at `slot`, or returns false when a pending cancel
  /// must be delivered now (the awaiter then throws cancelled_error).
  bool park(detail::task_state_base* owner, detail::cancel_slot* slot) noexcept {
    if (owner == nullptr) return true;
    if (owner->must_cancel) {
      owner->must_cancel = false;
      return false;
    }
    owner->leaf = slot;
    return true;
  }

 private:
  friend struct detail::loop_access;
  template <class T>
  friend class task_handle;

  void run_until_done(detail::task_state_base* state);
  void run_once();
  void poll_backend(int timeout_ms);
  void dispatch(int fd, std::uint32_t events);
  void start_task(detail::task_state_base* state);
  void register_task(detail::task_state_base* state);
  bool start_wait(detail::io_op* op);
  bool suspend_io_slow(detail::io_op* op, std::coroutine_handle<> h);
  static bool epoll_cancel(detail::cancel_slot* slot) noexcept;
  void update_registration(int fd, detail::fd_entry& entry);
  void register_edge(int fd, detail::fd_entry& entry);
  void end_wait(detail::io_op* op, bool withdraw = false) noexcept;
  detail::fd_entry& entry(int fd);
  void attach(int fd);
  void detach(int fd) noexcept;
  void set_fd_callback(int fd, bool write, std::function<void()> fn);
  bool clear_fd_callback(int fd, bool write);
  void drain_remote();
  void read_signals();
  void heap_up(std::size_t i) noexcept;
  void heap_down(std::size_t i) noexcept;
  void heap_swap(std::size_t a, std::size_t b) noexcept;
  void collect_threads(bool all);
  bool run_op(detail::io_op* op);
  bool perform_op(detail::io_op* op) noexcept;
  bool perform_edge_op(detail::io_op* op, detail::fd_entry* e) noexcept;
  bool run_fd_callback(detail::io_op* op);
  // io_uring (loop_uring_linux.cpp); ring_ is null on epoll.
  bool ring_open(std::string& why);
  void ring_close() noexcept;
  void ring_arm(detail::io_op* op, bool native);
  struct ring_result {
    int res;
    unsigned flags;  // the CQE's: which provided buffer a receive used
  };
  // Cancels the request (unless `cancel` is false: a multishot request
  // cancelled already) and waits for its next completion.
  ring_result ring_withdraw(std::uint64_t user_data, bool cancel = true) noexcept;
  void ring_abandon(detail::io_op* op) noexcept;
  void ring_poll(int timeout_ms);
  void ring_event(std::uint64_t user_data, int res, unsigned flags);
  int ring_finish_native(detail::io_op* op, int res, unsigned flags) noexcept;
  void ring_recycle_buffer(unsigned flags) noexcept;
  void note_ring_read(int fd, bool filled) noexcept {
    const auto i = static_cast<std::size_t>(fd);
    if (i < fds_.size()) fds_[i].maybe_readable = filled;
  }
  void ring_watch(int fd, bool signals);
  void ring_unwatch_signals() noexcept;
  // start_server's listener on io_uring: one request that keeps accepting
  // (Linux 5.19+) until it fails or is withdrawn; withdrawing it closes the
  // descriptors it accepted that were not yet delivered.
  void ring_accept_multishot(detail::io_op* op);
  void ring_recv_multishot(detail::io_op* op);
  void ring_withdraw_multishot(detail::io_op* op) noexcept;
  void ring_settle_multishot(detail::io_op* op, int res, unsigned flags) noexcept;
  void ring_finish_fill(detail::io_op* fill);
  static bool ring_cancel(detail::cancel_slot* slot) noexcept;

  // epoll_event.data of the loop's own descriptors; user descriptors are
  // stored as their number.
  static constexpr std::uint64_t wake_tag = ~std::uint64_t{0};
  static constexpr std::uint64_t signal_tag = ~std::uint64_t{0} - 1;

  loop_backend backend_ = loop_backend::epoll;
  const std::error_category* system_category_ = &std::system_category();
  bool running_ = false;
  bool stopping_ = false;
  detail::task_state_base* current_ = nullptr;

  detail::task_state_base* pending_head_ = nullptr;  // tasks not yet finished
  std::size_t pending_tasks_ = 0;
  std::vector<detail::task_state_base*> retired_;  // finished, loop's reference to drop

  std::vector<detail::ready_item> ready_;
  std::vector<detail::ready_item> running_batch_;
  std::vector<detail::timer_node*> timers_;  // binary min-heap on (when, sequence)
  std::uint64_t timer_sequence_ = 0;

  int epoll_fd_ = -1;
  detail::uring* ring_ = nullptr;  // the io_uring instance, when that is the backend
  std::size_t ring_in_flight_ = 0;
  std::vector<detail::fd_entry> fds_;
  std::unique_ptr<std::byte[]> receive_scratch_;

  std::shared_ptr<detail::loop_remote> remote_;
  int wake_fd_ = -1;

  int signal_fd_ = -1;
  sigset_t signal_mask_{};     // signals with a handler
  sigset_t blocked_before_{};  // which of them were blocked before we blocked them
  std::map<int, std::function<void()>> signal_handlers_;

  struct worker {
    std::thread thread;
    std::shared_ptr<detail::thread_call> call;
  };
  std::vector<worker> workers_;
};

/// The loop running on this thread. Throws std::runtime_error("no running
/// event loop") outside run_forever()/run_until_complete(), as Python does.
event_loop& get_running_loop();

// ---------------------------------------------------------------------------
// Socket operation awaiters (returned by the sock_* calls; co_await them)
// ---------------------------------------------------------------------------

namespace detail {

// What every socket operation shares: try the system call in await_ready(),
// register only on EAGAIN, unregister if the frame dies while waiting.
template <class Derived>
class io_awaiter : public io_op {
 public:
  io_awaiter(event_loop& l, op_kind k, bool w, int descriptor) noexcept
      : io_op(k, w, l.system_category()) {
    loop = &l;
    fd = descriptor;
  }
  ~io_awaiter() {
    if (waiting) loop->abandon_io(this);
  }
  bool await_ready() noexcept {
    if constexpr (Derived::has_precheck) {
      if (ec) return true;  // a precondition failed at creation: report it at once
    }
    // io_uring: receives and sends go to the kernel as requests straight
    // away (batched into the loop's next io_uring_enter); everything else
    // tries the system call first.
    if constexpr (Derived::submitted_directly) {
      if (loop->submits_receives()) {
        // ... except a receive on a stream whose last receive filled its
        // buffer: more is almost surely queued, and one recv() is cheaper
        // than a request's round trip through the ring (bulk transfers).
        if constexpr (Derived::stream_read) {
          if (!static_cast<Derived*>(this)->stream_ || !loop->ring_read_queued(fd)) return false;
          return static_cast<Derived*>(this)->perform();
        } else {
          return false;
        }
      }
    }
    if constexpr (Derived::stream_read) {
      if (static_cast<Derived*>(this)->stream_ && loop->read_drained(fd)) return false;
    }
    return static_cast<Derived*>(this)->perform();
  }
  bool await_suspend(std::coroutine_handle<> h) { return loop->suspend_io(this, h); }

  // Defaults the operations override: an error found before the first
  // attempt (ec set at creation); a receive on a stream socket that may skip
  // the attempt when the loop knows the queue is empty (read_drained).
  static constexpr bool has_precheck = false;
  static constexpr bool stream_read = false;

 protected:
  // Common head of await_resume(): back on the loop's task, then errors.
  void check(const char* call) {
    if (handle) loop->resumed(owner, this);  // no handle: completed without suspending
    if (cancelled) throw cancelled_error();
    if (ec) throw_operation_error(ec, call, fd);
  }
  // One system call with EINTR retried: >= 0, or -1 with errno.
  template <class F>
  static ssize_t retry(F f) noexcept {
    ssize_t n;
    do n = f();
    while (n < 0 && errno == EINTR);
    return n;
  }
  // Ends a perform(): true when done (a result or an error), false on EAGAIN.
  bool finish(ssize_t n) noexcept {
    if (n >= 0) return true;
    const int err = errno;
    if (would_block(err)) return false;
    ec.assign(err, std::system_category());
    return true;
  }
};

}  // namespace detail

class event_loop::recv_into_op : public detail::io_awaiter<recv_into_op> {
 public:
  friend class event_loop;  // the io_uring backend fills in results
  static constexpr bool submitted_directly = true;
  static constexpr bool stream_read = true;
  recv_into_op(event_loop& l, int descriptor, std::byte* data, std::size_t size,
               bool stream) noexcept
      : io_awaiter(l, detail::op_kind::recv_into, false, descriptor),
        stream_(stream),
        data_(data),
        size_(size) {}
  // `known`: the descriptor's table entry, when the caller (the dispatcher)
  // holds it and it is an edge registration.
  bool perform(detail::fd_entry* known = nullptr) noexcept {
    const ssize_t n = retry([&] { return ::recv(fd, data_, size_, 0); });
    if (n >= 0) {
      result_ = static_cast<std::size_t>(n);
      if (stream_ && n > 0 && result_ < size_) {
        if (known == nullptr)
          loop->note_short_read(fd);
        else if (!known->hung_up)
          known->maybe_readable = false;
      }
    }
    return finish(n);
  }
  std::size_t await_resume() {
    check("sock_recv_into");
    return result_;
  }

  bool stream_;  // SOCK_STREAM: a short read means the queue was empty

 private:
  std::byte* data_;
  std::size_t size_;
  std::size_t result_ = 0;
};

class event_loop::recv_op : public detail::io_awaiter<recv_op> {
 public:
  friend class event_loop;  // the io_uring backend fills in results
  static constexpr bool submitted_directly = true;
  static constexpr bool stream_read = true;
  recv_op(event_loop& l, int descriptor, std::size_t n, bool stream) noexcept
      : io_awaiter(l, detail::op_kind::recv, false, descriptor), stream_(stream), want_(n) {}
  // The bytes object is made once data has come, at its size: a coroutine
  // waiting here holds no buffer, so idle connections cost none.
  // `known`: as for recv_into_op::perform.
  bool perform(detail::fd_entry* known = nullptr) noexcept {
    if (want_ == 0) return true;  // Python: recv(0) is b'' without a system call
    ssize_t n;
    try {
      if (want_ <= event_loop::receive_scratch_size) {
        std::byte* scratch = loop->receive_scratch();
        n = retry([&] { return ::recv(fd, scratch, want_, 0); });
        // Constructed, not assign()ed: the string has nothing to keep, and
        // construction skips assign()'s aliasing and growth logic.
        if (n > 0)
          data_ = bytes(reinterpret_cast<const char*>(scratch), static_cast<std::size_t>(n));
      } else {
        data_.resize(want_);
        n = retry([&] { return ::recv(fd, data_.data(), want_, 0); });
        if (n >= 0)
          data_.resize(static_cast<std::size_t>(n));
        else
          bytes().swap(data_);
      }
    } catch (const std::bad_alloc&) {
      ec = std::make_error_code(std::errc::not_enough_memory);
      return true;
    }
    if (n > 0 && stream_ && static_cast<std::size_t>(n) < want_) {
      if (known == nullptr)
        loop->note_short_read(fd);
      else if (!known->hung_up)
        known->maybe_readable = false;
    }
    return finish(n);
  }
  bytes await_resume() {
    check("sock_recv");
    return std::move(data_);
  }

  bool stream_;  // SOCK_STREAM: a short read means the queue was empty

 private:
  std::size_t want_;
  bytes data_;
};

class event_loop::sendall_op : public detail::io_awaiter<sendall_op> {
 public:
  friend class event_loop;  // the io_uring backend fills in results
  static constexpr bool submitted_directly = true;
  sendall_op(event_loop& l, int descriptor, const_buffer data) noexcept
      : io_awaiter(l, detail::op_kind::sendall, true, descriptor), data_(data) {}
  bool perform() noexcept {
    while (sent_ < data_.size()) {
      const ssize_t n = retry(
          [&] { return ::send(fd, data_.data() + sent_, data_.size() - sent_, MSG_NOSIGNAL); });
      if (n < 0) return finish(n);
      sent_ += static_cast<std::size_t>(n);
    }
    return true;
  }
  void await_resume() { check("sock_sendall"); }

 private:
  const_buffer data_;
  std::size_t sent_ = 0;
};

class event_loop::sendto_op : public detail::io_awaiter<sendto_op> {
 public:
  friend class event_loop;  // the io_uring backend fills in results
  static constexpr bool submitted_directly = false;
  static constexpr bool has_precheck = true;
  sendto_op(event_loop& l, int descriptor, const_buffer data, const sockaddr_buffer& to,
            std::error_code precheck) noexcept
      : io_awaiter(l, detail::op_kind::sendto, true, descriptor), data_(data), to_(to) {
    ec = precheck;
  }
  bool perform() noexcept {
    const ssize_t n = retry([&] {
      return ::sendto(fd, data_.data(), data_.size(), MSG_NOSIGNAL, to_.get(), to_.length);
    });
    if (n >= 0) result_ = static_cast<std::size_t>(n);
    return finish(n);
  }
  std::size_t await_resume() {
    check("sock_sendto");
    return result_;
  }

 private:
  const_buffer data_;
  sockaddr_buffer to_;
  std::size_t result_ = 0;
};

class event_loop::recvfrom_into_op : public detail::io_awaiter<recvfrom_into_op> {
 public:
  friend class event_loop;  // the io_uring backend fills in results
  static constexpr bool submitted_directly = false;
  recvfrom_into_op(event_loop& l, int descriptor, std::byte* data, std::size_t size) noexcept
      : io_awaiter(l, detail::op_kind::recvfrom_into, false, descriptor),
        data_(data),
        size_(size) {}
  bool perform() noexcept {
    const ssize_t n = retry([&] {
      from_.length = sizeof from_.storage;
      return ::recvfrom(fd, data_, size_, 0, from_.get(), &from_.length);
    });
    if (n >= 0) result_ = static_cast<std::size_t>(n);
    return finish(n);
  }
  std::pair<std::size_t, address> await_resume() {
    check("sock_recvfrom_into");
    return {result_, address::from_sockaddr(from_.get(), from_.length)};
  }

 protected:
  std::byte* data_;
  std::size_t size_;
  std::size_t result_ = 0;
  sockaddr_buffer from_{};
};

class event_loop::recvfrom_op : public detail::io_awaiter<recvfrom_op> {
 public:
  friend class event_loop;  // the io_uring backend fills in results
  static constexpr bool submitted_directly = false;
  recvfrom_op(event_loop& l, int descriptor, std::size_t n)
      : io_awaiter(l, detail::op_kind::recvfrom, false, descriptor), data_(n, '\0') {}
  bool perform() noexcept {
    const ssize_t n = retry([&] {
      from_.length = sizeof from_.storage;
      return ::recvfrom(fd, data_.data(), data_.size(), 0, from_.get(), &from_.length);
    });
    if (n >= 0) data_.resize(static_cast<std::size_t>(n));
    return finish(n);
  }
  std::pair<bytes, address> await_resume() {
    check("sock_recvfrom");
    return {std::move(data_), address::from_sockaddr(from_.get(), from_.length)};
  }

 private:
  bytes data_;
  sockaddr_buffer from_{};
};

class event_loop::accept_op : public detail::io_awaiter<accept_op> {
 public:
  friend class event_loop;  // the io_uring backend fills in results
  static constexpr bool submitted_directly = false;
  accept_op(event_loop& l, socket& listener) noexcept
      : io_awaiter(l, detail::op_kind::accept, false, listener.fileno()), listener_(&listener) {}
  bool perform() noexcept {
    result_ = listener_->accept(ec);
    if (!ec) return true;
    if (ec == std::errc::operation_would_block || ec == std::errc::resource_unavailable_try_again) {
      ec.clear();
      return false;
    }
    return true;
  }
  std::pair<socket, address> await_resume() {
    check("sock_accept");
    // Python's sock_accept sets the new socket non-blocking: it is going to be
    // used with the loop.
    result_.first.setblocking(false);
    return std::move(result_);
  }

 private:
  socket* listener_;
  std::pair<socket, address> result_{socket::closed_socket(), address()};
};

class event_loop::connect_op : public detail::io_awaiter<connect_op> {
 public:
  static constexpr bool submitted_directly = false;
  connect_op(event_loop& l, int descriptor, const sockaddr_buffer& to) noexcept
      : io_awaiter(l, detail::op_kind::connect, true, descriptor), to_(to) {}
  bool perform() noexcept;  // loop.cpp: connect(), then SO_ERROR once writable
  void await_resume() {
    if (handle) loop->resumed(owner, this);
    if (cancelled) throw cancelled_error();
    if (ec)
      throw_os_error(
          ec, "sock_connect(" + (peer_ != nullptr ? peer_->to_string() : std::string()) + ")");
  }

 private:
  friend class event_loop;
  sockaddr_buffer to_;
  const address* peer_ = nullptr;  // for error messages
  bool started_ = false;
};

// The per-message calls are defined here, inline: building the awaiter is
// then a few stores in the caller's frame, not a call.
inline event_loop::recv_into_op event_loop::sock_recv_into(socket& s, mutable_buffer buffer,
                                                           std::size_t nbytes) {
  detail::check_nonblocking(s, "sock_recv_into");
  if (nbytes > buffer.size()) [[unlikely]]
    detail::throw_nbytes_too_large("sock_recv_into");
  return recv_into_op(*this, s.fileno(), buffer.data(), nbytes == 0 ? buffer.size() : nbytes,
                      s.type() == SOCK_STREAM);
}

inline event_loop::sendall_op event_loop::sock_sendall(socket& s, const_buffer data) {
  detail::check_nonblocking(s, "sock_sendall");
  return sendall_op(*this, s.fileno(), data);
}

// ---------------------------------------------------------------------------
// Tasks run by the loop
// ---------------------------------------------------------------------------

namespace detail {

template <class T>
struct task_state final : task_state_base {
  task<T> coro;

  explicit task_state(task<T> t) noexcept : coro(std::move(t)) {
    frame = coro.handle();
    coro.handle().promise().root = this;
    coro.handle().promise().started = true;  // it belongs to the loop now: no co_await of it
    delete_self = [](task_state_base* self) noexcept { delete static_cast<task_state*>(self); };
    drop_frame = [](task_state_base* self) noexcept {
      auto* me = static_cast<task_state*>(self);
      me->coro = task<T>();
      me->frame = {};
    };
    exception_of = [](task_state_base* self) noexcept -> std::exception_ptr {
      auto* me = static_cast<task_state*>(self);
      if (me->early_exception) return me->early_exception;
      if (!me->coro.valid()) return nullptr;
      return me->coro.handle().promise().exception;
    };
  }
  // The value of a finished task (T is not void); rethrows its exception.
  decltype(auto) value_ref() { return coro.handle().promise().result(); }
};

}  // namespace detail

/// Python's asyncio.Task as seen by its creator: await it, cancel it, ask
/// whether it is done. Copyable (reference counted); use on the loop's thread.
template <class T>
class task_handle {
 public:
  task_handle() noexcept = default;
  explicit task_handle(detail::task_state<T>* state) noexcept : state_(state) {
    if (state_) state_->add_ref();
  }
  task_handle(const task_handle& other) noexcept : task_handle(other.state_) {}
  task_handle& operator=(const task_handle& other) noexcept {
    task_handle copy(other);
    std::swap(state_, copy.state_);
    return *this;
  }
  task_handle(task_handle&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  task_handle& operator=(task_handle&& other) noexcept {
    task_handle moved(std::move(other));
    std::swap(state_, moved.state_);
    return *this;
  }
  ~task_handle() {
    if (state_) state_->release();
  }

  bool valid() const noexcept { return state_ != nullptr; }
  /// Requests cancellation (see the file comment). False if already done.
  bool cancel() noexcept { return state_ != nullptr && state_->cancel(); }
  bool done() const noexcept { return state_ != nullptr && state_->done; }
  /// True when the task finished with cancelled_error.
  bool cancelled() const noexcept {
    if (!done()) return false;
    const std::exception_ptr e = state_->exception();
    if (!e) return false;
    try {
      std::rethrow_exception(e);
    } catch (const cancelled_error&) {
      return true;
    } catch (...) {
      return false;
    }
  }
  /// The value (a reference into the task), or its exception rethrown;
  /// invalid_state_error while not done.
  std::add_lvalue_reference_t<T> result() const {
    if (!done()) throw invalid_state_error("Result is not set.");
    state_->result_retrieved = true;
    if (const std::exception_ptr e = state_->exception()) std::rethrow_exception(e);
    if constexpr (!std::is_void_v<T>) return state_->value_ref();
  }
  /// The exception it finished with (null if none); invalid_state_error while not done.
  std::exception_ptr exception() const {
    if (!done()) throw invalid_state_error("Exception is not set.");
    state_->result_retrieved = true;
    return state_->exception();
  }

  struct awaiter : detail::cancel_slot, detail::join_node {
    detail::task_state<T>* target;
    event_loop* loop = nullptr;
    detail::task_state_base* owner = nullptr;
    std::coroutine_handle<> handle;
    bool linked = false;
    bool move_out = false;

    awaiter(detail::task_state<T>* t, bool move) noexcept : target(t), move_out(move) {}
    awaiter(const awaiter&) = delete;
    awaiter& operator=(const awaiter&) = delete;
    ~awaiter() {
      if (linked) target->remove_waiter(this);
    }
    bool await_ready() const noexcept { return target->done; }
    void await_suspend(std::coroutine_handle<> h) {
      loop = target->loop;
      owner = loop->current_task();
      handle = h;
      notify = [](detail::join_node* n) noexcept {
        auto* self = static_cast<awaiter*>(n);
        self->linked = false;
        self->loop->schedule(self->handle, self->owner);
      };
      cancel_fn = [](detail::cancel_slot* s) noexcept {
        // Python: cancelling a task that awaits another cancels that one too;
        // this task then resumes with whatever it ends with.
        static_cast<awaiter*>(s)->target->cancel();
        return true;
      };
      linked = target->add_waiter(this);
      if (!loop->park(owner, this)) target->cancel();
    }
    decltype(auto) await_resume() {
      if (loop != nullptr) loop->resumed(owner, this);
      target->result_retrieved = true;
      if (const std::exception_ptr e = target->exception()) std::rethrow_exception(e);
      if constexpr (std::is_void_v<T>) {
        return;
      } else if (move_out) {
        return T(std::move(target->value_ref()));
      } else {
        return T(target->value_ref());
      }
    }
  };
  /// Waits for the task; `co_await std::move(h)` moves the value out (for
  /// move-only results), `co_await h` copies it.
  awaiter operator co_await() & { return awaiter(checked(), false); }
  awaiter operator co_await() && { return awaiter(checked(), true); }

  /// The loop-side state (for gather/wait_for).
  detail::task_state<T>* state() const noexcept { return state_; }

 private:
  detail::task_state<T>* checked() const {
    if (state_ == nullptr) throw invalid_state_error("co_await on an empty task_handle");
    return state_;
  }
  detail::task_state<T>* state_ = nullptr;
};

template <class T>
task_handle<T> event_loop::create_task(task<T> t) {
  if (!t.valid()) throw invalid_state_error("create_task: empty task (moved from?)");
  if (t.handle().promise().started)
    throw invalid_state_error("create_task: the coroutine was already awaited");
  auto* state = new detail::task_state<T>(std::move(t));
  state->loop = this;
  register_task(state);  // the loop's reference; schedules the first step
  return task_handle<T>(state);
}

template <class T>
T event_loop::run_until_complete(task<T> t) {
  task_handle<T> h = create_task(std::move(t));
  return run_until_complete(h);
}

template <class T>
T event_loop::run_until_complete(task_handle<T>& h) {
  if (!h.valid()) throw invalid_state_error("run_until_complete: empty task_handle");
  run_until_done(h.state());
  if constexpr (std::is_void_v<T>) {
    h.result();
  } else if constexpr (std::is_copy_constructible_v<T>) {
    return h.result();
  } else {
    return std::move(h.result());
  }
}

// ---------------------------------------------------------------------------
// run_in_thread
// ---------------------------------------------------------------------------

namespace detail {
template <class R>
struct thread_call_awaiter : cancel_slot {
  event_loop* loop;
  std::shared_ptr<thread_call_of<R>> call;
  task_state_base* owner = nullptr;
  bool cancelled = false;

  thread_call_awaiter(event_loop& l, std::shared_ptr<thread_call_of<R>> c) noexcept
      : loop(&l), call(std::move(c)) {}
  thread_call_awaiter(const thread_call_awaiter&) = delete;
  thread_call_awaiter& operator=(const thread_call_awaiter&) = delete;

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    owner = loop->current_task();
    call->handle = h;
    call->owner = owner;
    cancel_fn = [](cancel_slot* s) noexcept {
      auto* self = static_cast<thread_call_awaiter*>(s);
      if (self->call->finished) return false;  // resumption already queued
      self->call->abandoned = true;
      self->cancelled = true;
      self->loop->schedule(self->call->handle, self->owner);
      return true;
    };
    if (!loop->park(owner, this)) {
      cancelled = true;
      return false;
    }
    loop->start_thread_call(call);
    return true;
  }
  R await_resume() {
    loop->resumed(owner, this);
    if (cancelled) throw cancelled_error();
    if (call->exception) std::rethrow_exception(call->exception);
    if constexpr (!std::is_void_v<R>) return std::move(*call->value);
  }
};
}  // namespace detail

// Not a coroutine on purpose: it returns the awaiter itself, so the callable
// is moved into the shared call state at once. (GCC 12 destroys by-value
// arguments of a coroutine called inside a co_await expression twice, PR
// 99576; a plain function is immune.)
template <class F>
auto event_loop::run_in_thread(F fn) -> detail::thread_call_awaiter<std::invoke_result_t<F&>> {
  using R = std::invoke_result_t<F&>;
  auto call = std::make_shared<detail::thread_call_of<R>>();
  call->fn = std::move(fn);
  return detail::thread_call_awaiter<R>(*this, std::move(call));
}

// ---------------------------------------------------------------------------
// Module-level helpers (asyncio.sleep, create_task, wait_for, gather, run)
// ---------------------------------------------------------------------------

namespace detail {
struct sleep_awaiter : cancel_slot, timer_node {
  event_loop* loop;
  loop_clock::time_point deadline;
  bool zero = false;
  std::coroutine_handle<> handle;
  task_state_base* owner = nullptr;
  bool cancelled = false;

  sleep_awaiter(event_loop& l, loop_clock::time_point due, bool yield_only) noexcept
      : loop(&l), deadline(due), zero(yield_only) {}
  sleep_awaiter(const sleep_awaiter&) = delete;
  sleep_awaiter& operator=(const sleep_awaiter&) = delete;
  ~sleep_awaiter() {
    if (heap_index != not_queued) loop->remove_timer(this);
  }
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h);
  void await_resume() {
    loop->resumed(owner, this);
    if (cancelled) throw cancelled_error();
  }
};
}  // namespace detail

/// asyncio.sleep(): suspends the task for at least `delay`. A zero or
/// negative delay yields to the loop once (other ready callbacks run first).
template <class Rep, class Period>
detail::sleep_awaiter sleep(std::chrono::duration<Rep, Period> delay) {
  event_loop& loop = get_running_loop();
  const auto d = std::chrono::ceil<loop_clock::duration>(delay);
  return detail::sleep_awaiter(loop, loop.time() + d, d <= loop_clock::duration::zero());
}

/// asyncio.create_task() on the running loop.
template <class T>
task_handle<T> create_task(task<T> t) {
  return get_running_loop().create_task(std::move(t));
}
template <detail::task_convertible A>
task_handle<typename A::result_type> create_task(A a) {
  return get_running_loop().create_task(std::move(a).to_task());
}

namespace detail {

// Waits for one task with a deadline (wait_for).
struct timed_join : cancel_slot, join_node, timer_node {
  event_loop* loop = nullptr;
  task_state_base* target = nullptr;
  task_state_base* owner = nullptr;
  std::coroutine_handle<> handle;
  bool linked = false;
  bool timed_out = false;
  bool outer_cancelled = false;

  timed_join(task_state_base* t, loop_clock::time_point deadline) noexcept : target(t) {
    when = deadline;
  }
  timed_join(const timed_join&) = delete;
  timed_join& operator=(const timed_join&) = delete;
  ~timed_join() {
    if (linked) target->remove_waiter(this);
    if (heap_index != not_queued) loop->remove_timer(this);
  }
  bool await_ready() const noexcept { return target->done; }
  void await_suspend(std::coroutine_handle<> h);
  void await_resume() noexcept {
    if (loop == nullptr) return;  // finished before we waited
    loop->resumed(owner, this);
    if (heap_index != not_queued) loop->remove_timer(this);
  }
};

// Waits for several tasks; the first failure cancels the others (gather).
struct join_all : cancel_slot {
  struct node : join_node {
    join_all* parent = nullptr;
    std::size_t index = 0;
  };
  event_loop* loop = nullptr;
  std::vector<task_state_base*> targets;
  std::vector<node> nodes;
  std::size_t remaining = 0;
  std::optional<std::size_t> first_failure;
  task_state_base* owner = nullptr;
  std::coroutine_handle<> handle;
  bool outer_cancelled = false;

  explicit join_all(std::vector<task_state_base*> t)
      : targets(std::move(t)), nodes(targets.size()) {}
  join_all(const join_all&) = delete;
  join_all& operator=(const join_all&) = delete;
  ~join_all();
  bool await_ready() const noexcept;
  bool await_suspend(std::coroutine_handle<> h);
  void await_resume() noexcept {
    if (loop != nullptr) loop->resumed(owner, this);
  }
  void cancel_all() noexcept;
  static void on_done(join_node* n) noexcept;
};

template <class T>
using gathered_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T>
gathered_t<T> take_result(task_handle<T>& h) {
  if constexpr (std::is_void_v<T>) {
    h.result();
    return {};
  } else {
    return std::move(h.result());
  }
}

template <class T>
void rethrow_failure(const task_handle<T>& h) {
  h.state()->result_retrieved = true;
  if (const std::exception_ptr e = h.state()->exception()) std::rethrow_exception(e);
}

[[noreturn]] void throw_wait_for_timeout();

}  // namespace detail

/// asyncio.wait_for(): runs `t` as a task; if it has not finished after
/// `timeout`, cancels it, waits for it to end, and throws timeout_error
/// ("wait_for: timed out") — unless it finished anyway, then its result is
/// returned. Cancelling the waiter cancels `t` as well.
template <class T, class Rep, class Period>
task<T> wait_for(task<T> t, std::chrono::duration<Rep, Period> timeout) {
  event_loop& loop = get_running_loop();
  task_handle<T> h = loop.create_task(std::move(t));
  const auto deadline = loop.time() + std::chrono::ceil<loop_clock::duration>(timeout);
  detail::timed_join waiter(h.state(), deadline);
  co_await waiter;
  if (waiter.outer_cancelled) throw cancelled_error();
  if (waiter.timed_out && h.cancelled()) {
    h.state()->result_retrieved = true;
    detail::throw_wait_for_timeout();
  }
  if constexpr (std::is_void_v<T>) {
    h.result();
  } else {
    co_return std::move(h.result());
  }
}

/// wait_for() of a stream's frame-less wait (reader.read(n), drain()...).
template <detail::task_convertible A, class Rep, class Period>
task<typename A::result_type> wait_for(A a, std::chrono::duration<Rep, Period> timeout) {
  return wait_for(std::move(a).to_task(), timeout);
}

/// asyncio.gather() for a fixed set: runs every task concurrently and returns
/// their results in argument order (void results as std::monostate). If one
/// fails, the others are cancelled and awaited, then the first failure is
/// rethrown — TaskGroup's rule rather than gather's, so no task outlives the
/// call (the references they hold stay valid). Cancelling the gather cancels
/// all of them.
template <class... Ts>
task<std::tuple<detail::gathered_t<Ts>...>> gather(task<Ts>... tasks) {
  event_loop& loop = get_running_loop();
  std::tuple<task_handle<Ts>...> handles{loop.create_task(std::move(tasks))...};
  std::vector<detail::task_state_base*> states = std::apply(
      [](auto&... h) { return std::vector<detail::task_state_base*>{h.state()...}; }, handles);
  detail::join_all waiter(std::move(states));
  co_await waiter;
  if (waiter.outer_cancelled) throw cancelled_error();
  if (waiter.first_failure) {
    std::size_t i = 0;
    std::apply(
        [&](auto&... h) {
          ((i++ == *waiter.first_failure ? detail::rethrow_failure(h) : void()), ...);
        },
        handles);
  }
  co_return std::apply([](auto&... h) { return std::make_tuple(detail::take_result(h)...); },
                       handles);
}

/// gather() where some arguments are streams' frame-less waits.
template <class... As>
requires((detail::task_convertible<As> || ...) &&
         ((detail::task_convertible<As> ||
           detail::is_task_v<As>)&&...)) auto gather(As... awaitables) {
  return gather(detail::as_task(std::move(awaitables))...);
}

/// gather() over a run-time list of tasks of one type.
template <class T>
task<std::vector<detail::gathered_t<T>>> gather(std::vector<task<T>> tasks) {
  event_loop& loop = get_running_loop();
  std::vector<task_handle<T>> handles;
  handles.reserve(tasks.size());
  std::vector<detail::task_state_base*> states;
  states.reserve(tasks.size());
  for (auto& t : tasks) {
    handles.push_back(loop.create_task(std::move(t)));
    states.push_back(handles.back().state());
  }
  detail::join_all waiter(std::move(states));
  co_await waiter;
  if (waiter.outer_cancelled) throw cancelled_error();
  if (waiter.first_failure) detail::rethrow_failure(handles[*waiter.first_failure]);
  std::vector<detail::gathered_t<T>> results;
  results.reserve(handles.size());
  for (auto& h : handles) results.push_back(detail::take_result(h));
  co_return results;
}

/// asyncio.run(): a new loop runs `main` to completion, then is destroyed.
template <class T>
T run(task<T> main, loop_options options = {}) {
  event_loop loop(options);
  return loop.run_until_complete(std::move(main));
}

/// asyncio.Event: set() wakes every task waiting in wait(); clear() resets.
/// Use on the loop's thread.
class event {
 public:
  event() = default;
  event(const event&) = delete;
  event& operator=(const event&) = delete;
  ~event();

  bool is_set() const noexcept { return set_; }
  void set() noexcept;
  void clear() noexcept { set_ = false; }

  struct waiter : detail::cancel_slot {
    event* ev;
    event_loop* loop = nullptr;
    detail::task_state_base* owner = nullptr;
    std::coroutine_handle<> handle;
    waiter* next = nullptr;
    waiter* prev = nullptr;
    bool linked = false;
    bool cancelled = false;

    explicit waiter(event* e) noexcept : ev(e) {}
    waiter(const waiter&) = delete;
    waiter& operator=(const waiter&) = delete;
    ~waiter() {
      if (linked) ev->unlink(this);
    }
    bool await_ready() const noexcept { return ev->set_; }
    bool await_suspend(std::coroutine_handle<> h);
    void await_resume() {
      if (loop != nullptr) loop->resumed(owner, this);
      if (cancelled) throw cancelled_error();
    }
  };
  /// Returns at once if set, else waits until set() (cancellable).
  waiter wait() noexcept { return waiter(this); }

 private:
  void unlink(waiter* w) noexcept;
  bool set_ = false;
  waiter* head_ = nullptr;
  waiter* tail_ = nullptr;
};

}  // namespace pysock
