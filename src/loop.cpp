// SPDX-License-Identifier: MIT
//
// The event loop's core, independent of the I/O backend: tasks and their
// cancellation, the ready queue, timers, cross-thread calls, signals, worker
// threads, and the recycling allocator for coroutine frames. The epoll
// reactor (descriptor table, epoll_wait, event dispatch) is in loop_epoll.cpp.
#include "pysock/loop.hpp"

#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string_view>

#include "pysock/resolver.hpp"
#include "sanitizers.hpp"

namespace pysock {

namespace detail {

// ---------------------------------------------------------------------------
// Frame allocator
// ---------------------------------------------------------------------------

namespace {

// Size classes every 64 bytes up to 1 KiB, where most frames are (a
// connection's handler: 300-400 bytes; with power-of-two classes it would
// waste a quarter of the memory of 10,000 idle connections), then 2, 4 and
// 8 KiB. A frame's memory goes back to the free list of its class on the
// same thread; each list keeps at most kMaxCached blocks so a burst of
// coroutines does not pin memory forever.
constexpr std::size_t kFineClasses = 16;  // 64, 128, ... 1024
constexpr std::size_t kClasses = kFineClasses + 3;
constexpr std::size_t kMaxCached = 256;
constexpr std::size_t kLargest = std::size_t{8192};

struct free_block {
  free_block* next;
};

struct frame_cache {
  free_block* heads[kClasses] = {};
  std::size_t counts[kClasses] = {};
  ~frame_cache();
};

// Set when the thread's cache has been destroyed (thread exit): frames freed
// later (by other thread_local destructors) go straight to operator delete.
thread_local bool cache_gone = false;
thread_local frame_cache cache;

frame_cache::~frame_cache() {
  for (std::size_t c = 0; c < kClasses; ++c) {
    while (free_block* b = heads[c]) {
      heads[c] = b->next;
      ::operator delete(b);
    }
  }
  cache_gone = true;
}

[[maybe_unused]] std::size_t size_class(std::size_t size) noexcept {
  if (size <= kFineClasses * 64) return (size - 1) >> 6;
  return kFineClasses - 1 + static_cast<std::size_t>(std::bit_width((size - 1) >> 10));
}

[[maybe_unused]] std::size_t class_size(std::size_t c) noexcept {
  if (c < kFineClasses) return (c + 1) * 64;
  return std::size_t{1024} << (c - (kFineClasses - 1));
}

}  // namespace

void* allocate_frame(std::size_t size) {
#ifdef PYSOCK_ASAN
  // Under AddressSanitizer every frame comes from malloc, so a use after the
  // frame ended is reported instead of hidden by recycling.
  return ::operator new(size);
#else
  if (size == 0 || size > kLargest || cache_gone) return ::operator new(size);
  const std::size_t c = size_class(size);
  if (free_block* b = cache.heads[c]) {
    cache.heads[c] = b->next;
    --cache.counts[c];
    return b;
  }
  return ::operator new(class_size(c));
#endif
}

void deallocate_frame(void* frame, std::size_t size) noexcept {
#ifdef PYSOCK_ASAN
  (void)size;
  ::operator delete(frame);
#else
  if (size == 0 || size > kLargest || cache_gone) {
    ::operator delete(frame);
    return;
  }
  const std::size_t c = size_class(size);
  if (cache.counts[c] >= kMaxCached) {
    ::operator delete(frame);
    return;
  }
  auto* b = static_cast<free_block*>(frame);
  b->next = cache.heads[c];
  cache.heads[c] = b;
  ++cache.counts[c];
#endif
}

// ---------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------

namespace {

bool is_cancellation(const std::exception_ptr& e) noexcept {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const cancelled_error&) {
    return true;
  } catch (...) {
    return false;
  }
}

std::string describe_exception(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an exception not derived from std::exception";
  }
}

void log_exception(const char* where, const std::exception_ptr& e) {
  const std::string text = describe_exception(e);
  std::fprintf(stderr, "pysock: %s: %s\n", where, text.c_str());
}

}  // namespace

void task_state_base::release() noexcept {
  if (--refs != 0) return;
  // Python logs "Task exception was never retrieved" when a failed task is
  // garbage-collected without anyone looking at its exception.
  if (done && !result_retrieved) {
    const std::exception_ptr e = exception();
    if (e && !is_cancellation(e)) log_exception("Task exception was never retrieved", e);
  }
  delete_self(this);
}

bool task_state_base::cancel() noexcept {
  if (done) return false;
  if (leaf != nullptr && leaf->cancel_fn != nullptr && leaf->cancel_fn(leaf)) return true;
  must_cancel = true;
  return true;
}

void task_state_base::on_final() noexcept {
  done = true;
  leaf = nullptr;
  must_cancel = false;
  join_node* n = std::exchange(waiters, nullptr);
  while (n != nullptr) {
    join_node* following = n->next;
    n->next = nullptr;
    n->notify(n);
    n = following;
  }
  if (loop != nullptr) loop->retire(this);
}

bool task_state_base::add_waiter(join_node* node) noexcept {
  if (done) return false;
  node->next = nullptr;
  join_node** tail = &waiters;  // FIFO: joiners wake in the order they came
  while (*tail != nullptr) tail = &(*tail)->next;
  *tail = node;
  return true;
}

void task_state_base::remove_waiter(join_node* node) noexcept {
  for (join_node** p = &waiters; *p != nullptr; p = &(*p)->next) {
    if (*p == node) {
      *p = node->next;
      node->next = nullptr;
      return;
    }
  }
}

// ---------------------------------------------------------------------------
// Callbacks
// ---------------------------------------------------------------------------

void release(callback_state* state) noexcept {
  if (state != nullptr && --state->refs == 0) delete state;
}

// Cross-thread queue (call_soon_threadsafe, run_in_thread completions).
struct loop_remote {
  std::mutex mutex;
  std::vector<std::function<void()>> queue;
  int wake_fd = -1;  // -1 once the loop is gone: posts are dropped
  bool wake_pending = false;

  bool post(std::function<void()> fn) {
    const std::lock_guard<std::mutex> lock(mutex);
    if (wake_fd < 0) return false;
    queue.push_back(std::move(fn));
    // One eventfd write per batch: the loop clears wake_pending when it takes
    // the queue, so a burst of posts costs one wake-up.
    if (!wake_pending) {
      wake_pending = true;
      const std::uint64_t one = 1;
      ssize_t n;
      do n = ::write(wake_fd, &one, sizeof one);
      while (n < 0 && errno == EINTR);
      // EAGAIN means the counter is saturated: the loop is being woken anyway.
    }
    return true;
  }
};

void throw_blocking_socket(const char* call) {
  throw std::invalid_argument(std::string(call) +
                              ": the socket must be non-blocking (setblocking(false))");
}

void throw_nbytes_too_large(const char* call) {
  throw std::invalid_argument(std::string(call) + ": nbytes is larger than the buffer");
}

void throw_operation_error(const std::error_code& ec, const char* call, int fd) {
  throw_os_error(ec, std::string(call) + "(fd " + std::to_string(fd) + ")");
}

void throw_wait_for_timeout() {
  throw_os_error(make_error_code(socket_errc::timed_out), "wait_for");
}

// ---------------------------------------------------------------------------
// Awaiters defined out of line
// ---------------------------------------------------------------------------

bool sleep_awaiter::await_suspend(std::coroutine_handle<> h) {
  handle = h;
  owner = loop->current_task();
  cancel_fn = [](cancel_slot* s) noexcept {
    auto* self = static_cast<sleep_awaiter*>(s);
    if (self->cancelled) return true;
    if (self->heap_index == not_queued) return false;  // already due: deliver at the next wait
    self->loop->remove_timer(self);
    self->cancelled = true;
    self->loop->schedule(self->handle, self->owner);
    return true;
  };
  if (!loop->park(owner, this)) {
    cancelled = true;
    return false;
  }
  if (zero) {  // asyncio.sleep(0): let everything else that is ready run first
    loop->schedule(h, owner);
    return true;
  }
  when = deadline;
  fire = [](timer_node* t) noexcept {
    auto* self = static_cast<sleep_awaiter*>(t);
    self->loop->schedule(self->handle, self->owner);
  };
  loop->add_timer(this);
  return true;
}

void timed_join::await_suspend(std::coroutine_handle<> h) {
  loop = target->loop;
  owner = loop->current_task();
  handle = h;
  notify = [](join_node* n) noexcept {
    auto* self = static_cast<timed_join*>(n);
    self->linked = false;
    if (self->heap_index != not_queued) self->loop->remove_timer(self);
    self->loop->schedule(self->handle, self->owner);
  };
  fire = [](timer_node* t) noexcept {
    // Time is up: cancel the task and keep waiting until it has really ended
    // (it may clean up, or even finish with a value).
    auto* self = static_cast<timed_join*>(t);
    self->timed_out = true;
    self->target->cancel();
  };
  cancel_fn = [](cancel_slot* s) noexcept {
    auto* self = static_cast<timed_join*>(s);
    self->outer_cancelled = true;
    if (self->heap_index != not_queued) self->loop->remove_timer(self);
    self->target->cancel();
    return true;
  };
  linked = target->add_waiter(this);
  if (!loop->park(owner, this)) {
    outer_cancelled = true;
    target->cancel();
    return;
  }
  loop->add_timer(this);
}

join_all::~join_all() {
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].parent != nullptr) targets[i]->remove_waiter(&nodes[i]);
  }
}

bool join_all::await_ready() const noexcept {
  return std::all_of(targets.begin(), targets.end(), [](task_state_base* t) { return t->done; });
}

void join_all::cancel_all() noexcept {
  for (task_state_base* t : targets) t->cancel();
}

void join_all::on_done(join_node* n) noexcept {
  auto* node = static_cast<join_all::node*>(n);
  join_all* self = node->parent;
  node->parent = nullptr;  // unlinked
  --self->remaining;
  if (!self->first_failure && self->targets[node->index]->exception()) {
    self->first_failure = node->index;
    self->cancel_all();
  }
  if (self->remaining == 0) self->loop->schedule(self->handle, self->owner);
}

bool join_all::await_suspend(std::coroutine_handle<> h) {
  loop = targets.front()->loop;
  owner = loop->current_task();
  handle = h;
  remaining = 0;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    nodes[i].index = i;
    nodes[i].notify = &join_all::on_done;
    nodes[i].parent = this;
    if (targets[i]->add_waiter(&nodes[i])) {
      ++remaining;
    } else {
      nodes[i].parent = nullptr;
      if (!first_failure && targets[i]->exception()) first_failure = i;
    }
  }
  if (first_failure) cancel_all();
  if (remaining == 0) return false;
  cancel_fn = [](cancel_slot* s) noexcept {
    auto* self = static_cast<join_all*>(s);
    self->outer_cancelled = true;
    self->cancel_all();
    return true;
  };
  if (!loop->park(owner, this)) {
    outer_cancelled = true;
    cancel_all();
  }
  return true;
}

}  // namespace detail

// ---------------------------------------------------------------------------
// event (asyncio.Event)
// ---------------------------------------------------------------------------

event::~event() {
  // Waiters left here would hang anyway; unlink them so their destructors do
  // not touch this object after it is gone.
  for (waiter* w = head_; w != nullptr; w = w->next) w->linked = false;
}

void event::set() noexcept {
  set_ = true;
  waiter* w = std::exchange(head_, nullptr);
  tail_ = nullptr;
  while (w != nullptr) {
    waiter* next = w->next;
    w->linked = false;
    w->next = w->prev = nullptr;
    w->loop->schedule(w->handle, w->owner);
    w = next;
  }
}

void event::unlink(waiter* w) noexcept {
  (w->prev != nullptr ? w->prev->next : head_) = w->next;
  (w->next != nullptr ? w->next->prev : tail_) = w->prev;
  w->next = w->prev = nullptr;
  w->linked = false;
}

bool event::waiter::await_suspend(std::coroutine_handle<> h) {
  loop = &get_running_loop();
  owner = loop->current_task();
  handle = h;
  cancel_fn = [](detail::cancel_slot* s) noexcept {
    auto* self = static_cast<waiter*>(s);
    if (self->cancelled) return true;
    if (!self->linked) return false;  // set() already woke it
    self->ev->unlink(self);
    self->cancelled = true;
    self->loop->schedule(self->handle, self->owner);
    return true;
  };
  if (!loop->park(owner, this)) {
    cancelled = true;
    return false;
  }
  prev = ev->tail_;
  next = nullptr;
  (ev->tail_ != nullptr ? ev->tail_->next : ev->head_) = this;
  ev->tail_ = this;
  linked = true;
  return true;
}

// ---------------------------------------------------------------------------
// callback_handle
// ---------------------------------------------------------------------------

callback_handle::callback_handle(detail::callback_state* state) noexcept : state_(state) {
  if (state_) ++state_->refs;
}
callback_handle::callback_handle(const callback_handle& other) noexcept
    : callback_handle(other.state_) {}
callback_handle& callback_handle::operator=(const callback_handle& other) noexcept {
  callback_handle copy(other);
  std::swap(state_, copy.state_);
  return *this;
}
callback_handle& callback_handle::operator=(callback_handle&& other) noexcept {
  callback_handle moved(std::move(other));
  std::swap(state_, moved.state_);
  return *this;
}

void callback_handle::cancel() noexcept {
  if (state_ == nullptr || state_->cancelled) return;
  state_->cancelled = true;
  if (state_->is_timer && state_->heap_index != detail::timer_node::not_queued &&
      state_->loop != nullptr) {
    state_->loop->remove_timer(state_);
    detail::release(state_);  // the heap's reference
  }
}

loop_clock::time_point callback_handle::when() const {
  if (state_ == nullptr || !state_->is_timer)
    throw invalid_state_error("when(): not a timer handle");
  return state_->when;
}

// ---------------------------------------------------------------------------
// Backend choice
// ---------------------------------------------------------------------------

const char* to_string(loop_backend backend) noexcept {
  switch (backend) {
    case loop_backend::automatic:
      return "automatic";
    case loop_backend::epoll:
      return "epoll";
    case loop_backend::io_uring:
      return "io_uring";
  }
  return "unknown";
}

namespace {

// One line per process and reason, whatever the number of loops: a server
// with 16 loops should not print 16 identical warnings.
void log_once(std::atomic<bool>& logged, const std::string& line) {
  if (!logged.exchange(true)) std::fprintf(stderr, "pysock: %s\n", line.c_str());
}
std::atomic<bool> logged_bad_name{false};
std::atomic<bool> logged_no_uring{false};

loop_backend choose_backend(loop_backend requested) {
  if (requested == loop_backend::automatic) {
    requested = loop_backend::epoll;
    if (const char* env = std::getenv("PYSOCK_LOOP"); env != nullptr && *env != '\0') {
      const std::string_view name(env);
      if (name == "io_uring") {
        requested = loop_backend::io_uring;
      } else if (name != "epoll") {
        log_once(logged_bad_name, "PYSOCK_LOOP=" + std::string(name) +
                                      " names no backend (epoll, io_uring); using epoll");
      }
    }
  }
#ifndef PYSOCK_HAVE_IO_URING
  if (requested == loop_backend::io_uring) {
    // Built without liburing; a request for io_uring must never stop a
    // program from running, so it degrades to epoll.
    log_once(logged_no_uring,
             "the io_uring backend is not built into this version of pysock; using epoll");
    return loop_backend::epoll;
  }
#endif
  return requested;
}

// The loop running on this thread (get_running_loop()).
thread_local event_loop* running_loop = nullptr;

}  // namespace

event_loop& get_running_loop() {
  if (running_loop == nullptr) throw std::runtime_error("no running event loop");
  return *running_loop;
}

// ---------------------------------------------------------------------------
// Construction and destruction
// ---------------------------------------------------------------------------

event_loop::event_loop(loop_options options)
    : backend_(choose_backend(options.backend)),
      receive_scratch_(std::make_unique_for_overwrite<std::byte[]>(receive_scratch_size)) {
  sigemptyset(&signal_mask_);
  sigemptyset(&blocked_before_);
#ifdef PYSOCK_HAVE_IO_URING
  if (backend_ == loop_backend::io_uring) {
    // The kernel, a seccomp filter or kernel.io_uring_disabled may refuse
    // io_uring: one line per process, and the loop runs on epoll.
    std::string why;
    if (!ring_open(why)) {
      log_once(logged_no_uring, why + "; using epoll");
      backend_ = loop_backend::epoll;
    }
  }
  if (ring_ != nullptr) {
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) {
      const std::error_code ec = last_error();
      ring_close();
      throw_os_error(ec, "eventfd()");
    }
    try {
      ring_watch(wake_fd_, false);
    } catch (...) {
      ::close(wake_fd_);
      ring_close();
      throw;
    }
    remote_ = std::make_shared<detail::loop_remote>();
    remote_->wake_fd = wake_fd_;
    ready_.reserve(256);
    running_batch_.reserve(256);
    return;
  }
#endif
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw_os_error(last_error(), "epoll_create1()");
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    const std::error_code ec = last_error();
    ::close(epoll_fd_);
    throw_os_error(ec, "eventfd()");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = wake_tag;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    const std::error_code ec = last_error();
    ::close(wake_fd_);
    ::close(epoll_fd_);
    throw_os_error(ec, "epoll_ctl(eventfd)");
  }
  remote_ = std::make_shared<detail::loop_remote>();
  remote_->wake_fd = wake_fd_;
  ready_.reserve(256);
  running_batch_.reserve(256);
}

event_loop::~event_loop() {
  // 1. Other threads can no longer reach us.
  {
    const std::lock_guard<std::mutex> lock(remote_->mutex);
    remote_->wake_fd = -1;
    remote_->queue.clear();
  }
  // 2. Tasks still pending are destroyed (Python warns "Task was destroyed but
  // it is pending"). Their frames go first, while the loop is intact, because
  // the awaiters in them withdraw their registrations as they die.
  std::vector<detail::task_state_base*> pending;
  for (auto* s = pending_head_; s != nullptr; s = s->next) {
    s->add_ref();
    pending.push_back(s);
  }
  for (auto* s : pending) {
    if (s->frame) s->drop_frame(s);
  }
  for (auto* s : pending) {
    s->done = true;
    s->leaf = nullptr;
    s->waiters = nullptr;
    s->loop = nullptr;
    s->result_retrieved = true;
    s->early_exception = std::make_exception_ptr(cancelled_error());
    s->release();  // the loop's reference
  }
  pending_head_ = nullptr;
  for (auto* s : pending) s->release();
  for (auto* s : retired_) s->release();
  retired_.clear();
  // 3. Callbacks never run.
  for (auto& item : ready_) detail::release(item.callback);
  ready_.clear();
  for (auto* node : timers_) {
    node->heap_index = detail::timer_node::not_queued;
    // Only call_later() nodes can remain: sleeps and wait_for() live in the
    // frames destroyed above and took their nodes out.
    auto* cb = static_cast<detail::callback_state*>(node);
    cb->loop = nullptr;
    detail::release(cb);
  }
  timers_.clear();
  // 4. Descriptor callbacks (add_reader/add_writer).
  for (std::size_t fd = 0; fd < fds_.size(); ++fd) {
    for (detail::io_op* op : {fds_[fd].reader, fds_[fd].writer}) {
      if (op != nullptr && op->kind == detail::op_kind::fd_callback)
        clear_fd_callback(static_cast<int>(fd), op->write);
    }
  }
  // 5. Signals back to what they were.
  while (!signal_handlers_.empty()) remove_signal_handler(signal_handlers_.begin()->first);
  // 6. Worker threads (run_in_thread) finish; their posts are dropped.
  collect_threads(true);
  ::close(wake_fd_);
#ifdef PYSOCK_HAVE_IO_URING
  if (ring_ != nullptr) ring_close();
#endif
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

namespace {
struct running_guard {
  event_loop* loop;
  bool& running;
  bool& stopping;
  running_guard(event_loop* l, bool& r, bool& s) : loop(l), running(r), stopping(s) {
    if (running) throw std::runtime_error("This event loop is already running");
    if (running_loop != nullptr)
      throw std::runtime_error("Cannot run the event loop while another loop is running");
    running = true;
    running_loop = loop;
  }
  ~running_guard() {
    running = false;
    stopping = false;
    running_loop = nullptr;
  }
  running_guard(const running_guard&) = delete;
  running_guard& operator=(const running_guard&) = delete;
};
}  // namespace

void event_loop::run_forever() {
  running_guard guard(this, running_, stopping_);
  for (;;) {
    run_once();
    if (stopping_) break;
  }
}

void event_loop::run_until_done(detail::task_state_base* state) {
  {
    running_guard guard(this, running_, stopping_);
    while (!state->done) {
      run_once();
      if (stopping_) break;
    }
  }
  if (!state->done) throw std::runtime_error("Event loop stopped before the task completed.");
}

void event_loop::run_once() {
  int timeout_ms = -1;
  if (!ready_.empty() || stopping_) {
    timeout_ms = 0;
  } else if (!timers_.empty()) {
    const auto remaining = timers_.front()->when - loop_clock::now();
    if (remaining <= loop_clock::duration::zero()) {
      timeout_ms = 0;
    } else {
      // Round up: waking a little early would only spin once more.
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(remaining).count();
      timeout_ms = ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
    }
  }
  poll_backend(timeout_ms);

  if (!timers_.empty()) {
    const auto now = loop_clock::now();
    while (!timers_.empty() && timers_.front()->when <= now) {
      detail::timer_node* node = timers_.front();
      remove_timer(node);
      node->fire(node);
    }
  }

  // Only what is ready now runs in this iteration; what these callbacks
  // schedule waits for the next one (Python's _run_once does the same), so a
  // task that keeps yielding cannot starve I/O.
  running_batch_.swap(ready_);
  for (auto& item : running_batch_) {
    if (item.callback != nullptr) {
      detail::callback_state* cb = item.callback;
      current_ = nullptr;
      if (!cb->cancelled) {
        try {
          cb->fn();
        } catch (...) {
          detail::log_exception("exception in callback", std::current_exception());
        }
      }
      detail::release(cb);
    } else if (item.start) {
      start_task(item.owner);
    } else {
      current_ = item.owner;
      item.handle.resume();
    }
  }
  running_batch_.clear();
  current_ = nullptr;

  if (!retired_.empty()) {
    std::vector<detail::task_state_base*> retired;
    retired.swap(retired_);
    for (auto* s : retired) s->release();
  }
}

void event_loop::start_task(detail::task_state_base* state) {
  if (state->done) return;
  if (state->must_cancel) {
    // Cancelled before its first step: Python throws CancelledError into the
    // coroutine at its start, so none of its body runs.
    state->must_cancel = false;
    state->early_exception = std::make_exception_ptr(cancelled_error());
    state->on_final();
    return;
  }
  current_ = state;
  state->frame.resume();
}

void event_loop::register_task(detail::task_state_base* state) {
  state->add_ref();
  state->next = pending_head_;
  if (pending_head_ != nullptr) pending_head_->prev = state;
  pending_head_ = state;
  ++pending_tasks_;
  detail::ready_item item;
  item.handle = state->frame;
  item.owner = state;
  item.start = true;
  ready_.push_back(item);
}

void event_loop::retire(detail::task_state_base* state) {
  if (state->prev != nullptr) state->prev->next = state->next;
  if (state->next != nullptr) state->next->prev = state->prev;
  if (pending_head_ == state) pending_head_ = state->next;
  state->prev = state->next = nullptr;
  --pending_tasks_;
  // The loop's reference goes at the end of the iteration: the frame is
  // still executing its final suspend right now.
  retired_.push_back(state);
}

void event_loop::schedule(std::coroutine_handle<> h, detail::task_state_base* owner) {
  detail::ready_item item;
  item.handle = h;
  item.owner = owner;
  ready_.push_back(item);
}

void event_loop::schedule_callback(detail::callback_state* cb) {
  detail::ready_item item;
  item.callback = cb;  // the caller's reference moves to the queue
  ready_.push_back(item);
}

// ---------------------------------------------------------------------------
// Callbacks and timers
// ---------------------------------------------------------------------------

callback_handle event_loop::call_soon(std::function<void()> fn) {
  if (!fn) throw std::invalid_argument("call_soon: empty callback");
  auto* cb = new detail::callback_state;
  cb->loop = this;
  cb->fn = std::move(fn);
  cb->refs = 1;  // the queue's
  callback_handle h(cb);
  schedule_callback(cb);
  return h;
}

callback_handle event_loop::call_at(loop_clock::time_point when, std::function<void()> fn) {
  if (!fn) throw std::invalid_argument("call_at: empty callback");
  auto* cb = new detail::callback_state;
  cb->loop = this;
  cb->fn = std::move(fn);
  cb->is_timer = true;
  cb->refs = 1;  // the heap's
  cb->when = when;
  cb->fire = [](detail::timer_node* t) noexcept {
    auto* self = static_cast<detail::callback_state*>(t);
    self->loop->schedule_callback(self);  // the heap's reference moves to the queue
  };
  callback_handle h(cb);
  add_timer(cb);
  return h;
}

void event_loop::call_soon_threadsafe(std::function<void()> fn) {
  if (!fn) throw std::invalid_argument("call_soon_threadsafe: empty callback");
  remote_->post(std::move(fn));
}

void event_loop::drain_remote() {
  std::uint64_t count;
  while (::read(wake_fd_, &count, sizeof count) > 0) {
  }
  std::vector<std::function<void()>> batch;
  {
    const std::lock_guard<std::mutex> lock(remote_->mutex);
    batch.swap(remote_->queue);
    remote_->wake_pending = false;
  }
  for (auto& fn : batch) {
    try {
      fn();
    } catch (...) {
      detail::log_exception("exception in call_soon_threadsafe callback", std::current_exception());
    }
  }
}

void event_loop::add_timer(detail::timer_node* node) {
  node->sequence = timer_sequence_++;
  node->heap_index = timers_.size();
  timers_.push_back(node);
  heap_up(node->heap_index);
}

void event_loop::remove_timer(detail::timer_node* node) noexcept {
  const std::size_t i = node->heap_index;
  if (i == detail::timer_node::not_queued) return;
  const std::size_t last = timers_.size() - 1;
  if (i != last) {
    heap_swap(i, last);
    timers_.pop_back();
    heap_down(i);
    heap_up(i);
  } else {
    timers_.pop_back();
  }
  node->heap_index = detail::timer_node::not_queued;
}

namespace {
bool earlier(const detail::timer_node* a, const detail::timer_node* b) noexcept {
  return a->when < b->when || (a->when == b->when && a->sequence < b->sequence);
}
}  // namespace

void event_loop::heap_swap(std::size_t a, std::size_t b) noexcept {
  std::swap(timers_[a], timers_[b]);
  timers_[a]->heap_index = a;
  timers_[b]->heap_index = b;
}

void event_loop::heap_up(std::size_t i) noexcept {
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!earlier(timers_[i], timers_[parent])) break;
    heap_swap(i, parent);
    i = parent;
  }
}

void event_loop::heap_down(std::size_t i) noexcept {
  const std::size_t n = timers_.size();
  for (;;) {
    std::size_t best = i;
    const std::size_t l = 2 * i + 1;
    const std::size_t r = l + 1;
    if (l < n && earlier(timers_[l], timers_[best])) best = l;
    if (r < n && earlier(timers_[r], timers_[best])) best = r;
    if (best == i) return;
    heap_swap(i, best);
    i = best;
  }
}

// ---------------------------------------------------------------------------
// Signals (signalfd)
// ---------------------------------------------------------------------------

void event_loop::add_signal_handler(int sig, std::function<void()> fn) {
  if (sig <= 0 || sig >= NSIG)
    throw std::invalid_argument("add_signal_handler: signal number out of range");
  if (sig == SIGKILL || sig == SIGSTOP)
    throw std::invalid_argument("add_signal_handler: SIGKILL and SIGSTOP cannot be caught");
  if (!fn) throw std::invalid_argument("add_signal_handler: empty callback");
  if (!sigismember(&signal_mask_, sig)) {
    sigset_t one, old;
    sigemptyset(&one);
    sigaddset(&one, sig);
    if (const int err = ::pthread_sigmask(SIG_BLOCK, &one, &old); err != 0)
      throw_os_error({err, std::system_category()}, "pthread_sigmask()");
    if (sigismember(&old, sig)) sigaddset(&blocked_before_, sig);
    sigaddset(&signal_mask_, sig);
    const int fd = ::signalfd(signal_fd_, &signal_mask_, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
      const std::error_code ec = last_error();
      sigdelset(&signal_mask_, sig);
      if (!sigismember(&blocked_before_, sig)) ::pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
      sigdelset(&blocked_before_, sig);
      throw_os_error(ec, "signalfd()");
    }
    if (signal_fd_ < 0) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = signal_tag;
      int rc = 0;
#ifdef PYSOCK_HAVE_IO_URING
      if (ring_ != nullptr) {
        try {
          ring_watch(fd, true);
        } catch (const std::system_error& x) {
          errno = x.code().value();
          rc = -1;
        }
      } else
#endif
        rc = ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
      if (rc != 0) {
        const std::error_code ec = last_error();
        ::close(fd);
        sigdelset(&signal_mask_, sig);
        if (!sigismember(&blocked_before_, sig)) ::pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
        sigdelset(&blocked_before_, sig);
        throw_os_error(ec, "epoll_ctl(signalfd)");
      }
      signal_fd_ = fd;
    }
  }
  signal_handlers_[sig] = std::move(fn);
}

bool event_loop::remove_signal_handler(int sig) {
  const auto it = signal_handlers_.find(sig);
  if (it == signal_handlers_.end()) return false;
  signal_handlers_.erase(it);
  sigdelset(&signal_mask_, sig);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  const bool was_blocked = sigismember(&blocked_before_, sig);
  sigdelset(&blocked_before_, sig);
  if (!was_blocked) {
    // An instance that arrived and was not read yet would hit the default
    // action (for SIGINT: death) the moment the signal is unblocked; it was
    // meant for the handler being removed, so it is consumed here.
    const timespec zero{0, 0};
    while (::sigtimedwait(&one, nullptr, &zero) == sig) {
    }
    ::pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  }
  if (signal_handlers_.empty()) {
#ifdef PYSOCK_HAVE_IO_URING
    if (ring_ != nullptr) ring_unwatch_signals();
#endif
    if (epoll_fd_ >= 0) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, signal_fd_, nullptr);
    ::close(signal_fd_);
    signal_fd_ = -1;
  } else {
    ::signalfd(signal_fd_, &signal_mask_, SFD_NONBLOCK | SFD_CLOEXEC);
  }
  return true;
}

void event_loop::read_signals() {
  signalfd_siginfo info;
  for (;;) {
    const ssize_t n = ::read(signal_fd_, &info, sizeof info);
    if (n != static_cast<ssize_t>(sizeof info)) {
      if (n < 0 && errno == EINTR) continue;
      return;  // EAGAIN: all read
    }
    const auto it = signal_handlers_.find(static_cast<int>(info.ssi_signo));
    if (it == signal_handlers_.end()) continue;
    // A copy: the handler may remove itself (remove_signal_handler).
    const std::function<void()> fn = it->second;
    try {
      fn();
    } catch (...) {
      detail::log_exception("exception in signal handler", std::current_exception());
    }
    if (signal_fd_ < 0) return;  // the last handler removed itself
  }
}

// ---------------------------------------------------------------------------
// Worker threads (run_in_thread)
// ---------------------------------------------------------------------------

void event_loop::start_thread_call(std::shared_ptr<detail::thread_call> call) {
  // The worker blocks every signal, so a process-directed signal handled by
  // a loop's signalfd is never delivered to it (with the default action).
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  std::thread thread;
  try {
    std::shared_ptr<detail::loop_remote> remote = remote_;
    thread = std::thread([call, remote, this] {
      call->run();
      remote->post([call, this] {
        call->finished = true;
        collect_threads(false);
        if (!call->abandoned) schedule(call->handle, call->owner);
      });
    });
  } catch (...) {
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    throw;
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  workers_.push_back(worker{std::move(thread), std::move(call)});
}

void event_loop::collect_threads(bool all) {
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (all || it->call->finished) {
      if (it->thread.joinable()) it->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

// ---------------------------------------------------------------------------
// Socket operations
// ---------------------------------------------------------------------------

bool event_loop::connect_op::perform() noexcept {
  if (!started_) {
    started_ = true;
    if (::connect(fd, to_.get(), to_.length) == 0) return true;
    const int err = errno;
    // EINTR: the handshake goes on in the kernel (a retry would give
    // EALREADY), so it is waited for like EINPROGRESS.
    if (err == EINPROGRESS || err == EINTR) return false;
    ec.assign(err, std::system_category());
    return true;
  }
  int pending = 0;
  socklen_t length = sizeof pending;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &pending, &length) != 0) {
    ec = last_error();
    return true;
  }
  if (pending != 0) {
    ec.assign(pending, std::system_category());
    return true;
  }
  // No error yet: make sure the handshake really finished (a stray wake-up
  // must not report success early).
  sockaddr_storage peer;
  socklen_t peer_length = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_length) == 0) return true;
  if (errno == ENOTCONN) return false;
  ec = last_error();
  return true;
}

event_loop::recv_op event_loop::sock_recv(socket& s, std::size_t n) {
  detail::check_nonblocking(s, "sock_recv");
  return recv_op(*this, s.fileno(), n, s.type() == SOCK_STREAM);
}

event_loop::sendto_op event_loop::sock_sendto(socket& s, const_buffer data, const address& addr) {
  detail::check_nonblocking(s, "sock_sendto");
  if (addr.needs_resolution() && !addr.host().empty() && addr.host() != "<broadcast>")
    throw std::invalid_argument("sock_sendto: the address must be numeric, not the name '" +
                                addr.host() + "'");
  std::error_code ec;
  const sockaddr_buffer to = addr.to_sockaddr(s.family(), ec);
  return sendto_op(*this, s.fileno(), data, to, ec);
}

event_loop::recvfrom_op event_loop::sock_recvfrom(socket& s, std::size_t n) {
  detail::check_nonblocking(s, "sock_recvfrom");
  return recvfrom_op(*this, s.fileno(), n);
}

event_loop::recvfrom_into_op event_loop::sock_recvfrom_into(socket& s, mutable_buffer buffer,
                                                            std::size_t nbytes) {
  detail::check_nonblocking(s, "sock_recvfrom_into");
  if (nbytes > buffer.size()) detail::throw_nbytes_too_large("sock_recvfrom_into");
  return recvfrom_into_op(*this, s.fileno(), buffer.data(), nbytes == 0 ? buffer.size() : nbytes);
}

event_loop::accept_op event_loop::sock_accept(socket& listener) {
  detail::check_nonblocking(listener, "sock_accept");
  return accept_op(*this, listener);
}

task<void> event_loop::sock_connect(socket& s, address addr) {
  detail::check_nonblocking(s, "sock_connect");
  const std::string host = addr.needs_resolution() ? addr.host() : std::string();
  if (!host.empty() && host != "<broadcast>") {
    // A real name: getaddrinfo may block for seconds on DNS, so it runs on a
    // worker thread while the loop goes on.
    const int family = s.family();
    const int type = s.type();
    const int port = addr.port();
    auto resolve = [host, port, family, type] { return getaddrinfo(host, port, family, type); };
    std::vector<addrinfo_entry> found = co_await run_in_thread(std::move(resolve));
    addr = found.front().sockaddr;  // getaddrinfo throws gaierror rather than return nothing
  }
  std::error_code ec;
  const sockaddr_buffer to = addr.to_sockaddr(s.family(), ec);
  if (ec) throw_os_error(ec, "sock_connect(" + addr.to_string() + ")");
  connect_op op(*this, s.fileno(), to);
  op.peer_ = &addr;
  co_await op;
}

}  // namespace pysock
