// SPDX-License-Identifier: MIT
//
// The epoll reactor: the per-descriptor table of waits, registration with
// the kernel, epoll_wait and the dispatch of events to the waiting operations.
//
// Cost model (per echoed message on a socket the loop does not own, sock_*):
//   the first wait registers the socket once, edge-triggered for both
//   directions (EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET), and the registration
//   stays between waits: recv() → a short read marks the queue empty → the
//   next sock_recv_into waits without a system call → epoll_wait → the
//   dispatcher's switch → recv() → resume. Streams (descriptors the loop
//   owns) are registered the same way by attach().
// The loop does not own a sock_* socket: the application may close it and get
// the same number back for a new socket, whose file the kernel never
// registered. pysock counts every socket it closes or detaches
// (descriptor_release_epoch); a registration made before the count last moved
// is made again (MOD, or ADD when the kernel says ENOENT) at the next wait, so
// the cost of that safety is one epoll_ctl per wait only while sockets are
// being closed. Cancelling a wait removes the registration (EPOLL_CTL_DEL)
// when no other wait is left on the socket.
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>

#include <array>
#include <cstdio>

#include "pysock/loop.hpp"

namespace pysock {

namespace detail {

#ifdef PYSOCK_HAVE_IO_URING
int ring_fd(const uring* ring) noexcept;  // loop_uring_linux.cpp
#endif

namespace {

// add_reader()/add_writer(): a persistent callback in a descriptor's slot.
struct fd_callback_op final : io_op {
  std::function<void()> fn;
  bool running = false;  // inside fn(): removal is deferred until it returns
  bool removed = false;
  explicit fd_callback_op(bool for_write) : io_op(op_kind::fd_callback, for_write) {}
};

bool is_active(const fd_entry& e) noexcept {
  return e.reader != nullptr || e.writer != nullptr || e.attached;
}

bool is_callback(const io_op* op) noexcept {
  return op != nullptr && op->kind == op_kind::fd_callback;
}

int epoll_update(int epfd, int op, int fd, std::uint32_t events) noexcept {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = static_cast<std::uint64_t>(fd);
  return ::epoll_ctl(epfd, op, fd, &ev) == 0 ? 0 : errno;
}

// Registers fd with `events`, whatever the kernel has now: MOD when the loop
// believes it registered, ADD otherwise, each falling back to the other. ENOENT
// on MOD: the descriptor was closed and its number reused without the loop
// knowing (the kernel dropped the old registration); EEXIST on ADD: a
// registration the loop had forgotten. Returns 0 or the errno.
int epoll_set(int epfd, int fd, bool believed_registered, std::uint32_t events) noexcept {
  if (believed_registered) {
    const int err = epoll_update(epfd, EPOLL_CTL_MOD, fd, events);
    return err == ENOENT ? epoll_update(epfd, EPOLL_CTL_ADD, fd, events) : err;
  }
  const int err = epoll_update(epfd, EPOLL_CTL_ADD, fd, events);
  return err == EEXIST ? epoll_update(epfd, EPOLL_CTL_MOD, fd, events) : err;
}

}  // namespace
}  // namespace detail

detail::fd_entry& event_loop::entry(int fd) {
  const auto index = static_cast<std::size_t>(fd);
  if (index >= fds_.size()) fds_.resize(std::max(index + 1, fds_.size() * 2));
  return fds_[index];
}

// Counted when asked rather than kept up to date: a diagnostic should not
// cost every wait an increment and a decrement.
std::size_t event_loop::active_descriptor_count() const noexcept {
  return static_cast<std::size_t>(std::count_if(fds_.begin(), fds_.end(), detail::is_active));
}

int event_loop::backend_fileno() const noexcept {
#ifdef PYSOCK_HAVE_IO_URING
  if (ring_ != nullptr) return detail::ring_fd(ring_);
#endif
  return epoll_fd_;
}

// Brings the kernel's registration of a non-attached descriptor in line with
// its slots; throws std::system_error with the errno when epoll refuses.
void event_loop::update_registration(int fd, detail::fd_entry& e) {
  const std::uint32_t want =
      (e.reader != nullptr ? EPOLLIN : 0u) | (e.writer != nullptr ? EPOLLOUT : 0u);
  const bool persistent = detail::is_callback(e.reader) || detail::is_callback(e.writer);
  if (want == 0) {
    // Nothing waits. A fired one-shot registration can stay in the set (the
    // next wait re-arms it with MOD); an armed or level-triggered one must go,
    // or the kernel would keep reporting events nobody wants.
    if (e.in_epoll && (e.persistent || e.armed)) {
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
      e.in_epoll = false;
      e.armed = false;
    }
    e.persistent = false;
    e.registered = 0;
    return;
  }
  const std::uint32_t flags = want | (persistent ? 0u : static_cast<std::uint32_t>(EPOLLONESHOT));
  if (e.in_epoll && e.registered == flags && e.armed) return;
  const int err = detail::epoll_set(epoll_fd_, fd, e.in_epoll, flags);
  if (err != 0) {
    e.in_epoll = false;
    e.armed = false;
    throw std::system_error(err, std::system_category());
  }
  e.in_epoll = true;
  e.armed = true;
  e.persistent = persistent;
  e.registered = flags;
}

// The sock_* registration of a socket the loop does not own: made once,
// edge-triggered for both directions, kept between waits; made again when
// pysock has released a descriptor since (the number may name a new file).
void event_loop::register_edge(int fd, detail::fd_entry& e) {
  const std::uint64_t epoch = detail::descriptor_release_epoch.load(std::memory_order_relaxed);
  if (e.edge && e.epoch == epoch) return;
  constexpr std::uint32_t flags = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  const int err = detail::epoll_set(epoll_fd_, fd, e.in_epoll, flags);
  if (err != 0) {
    e.in_epoll = false;
    e.armed = false;
    e.edge = false;
    throw std::system_error(err, std::system_category());
  }
  e.in_epoll = true;
  e.armed = true;
  e.persistent = false;
  e.registered = flags;
  e.edge = true;
  e.epoch = epoch;
  e.maybe_readable = true;  // nothing known: the next receive tries the call
  e.hung_up = false;
}

bool event_loop::start_wait(detail::io_op* op) {
  if (op->fd < 0) {
    op->ec = std::make_error_code(std::errc::bad_file_descriptor);
    return false;
  }
  detail::fd_entry& e = entry(op->fd);
  detail::io_op*& slot = op->write ? e.writer : e.reader;
  if (slot != nullptr) {
    throw std::runtime_error(
        "fd " + std::to_string(op->fd) + ": another " +
        (detail::is_callback(slot) ? std::string("add_reader/add_writer callback")
                                   : std::string("coroutine")) +
        " is already waiting to " + (op->write ? "write" : "read") + " this descriptor");
  }
  slot = op;
  try {
#ifdef PYSOCK_HAVE_IO_URING
    if (ring_ != nullptr) {
      ring_arm(op, true);  // attached or not: a request per wait
    } else
#endif
        if (!e.attached) {
      detail::io_op* other = op->write ? e.reader : e.writer;
      if (!detail::is_callback(op) && !detail::is_callback(other)) {
        register_edge(op->fd, e);
      } else {
        // Sharing the descriptor with add_reader/add_writer: level-triggered
        // for the callback, one-shot for the coroutine.
        if (e.edge) {
          e.edge = false;
          e.armed = false;
          e.maybe_readable = true;
        }
        update_registration(op->fd, e);
      }
    }
  } catch (const std::system_error& x) {
    slot = nullptr;
    op->ec = x.code();
    return false;
  }
  op->waiting = true;
  return true;
}

// `withdraw`: the wait is cancelled or its frame dies, rather than finished;
// an edge registration with no wait left then leaves the kernel too.
void event_loop::end_wait(detail::io_op* op, bool withdraw) noexcept {
  if (!op->waiting) return;
  op->waiting = false;
  detail::fd_entry& e = fds_[static_cast<std::size_t>(op->fd)];
  detail::io_op*& slot = op->write ? e.writer : e.reader;
  if (slot == op) slot = nullptr;
#ifdef PYSOCK_HAVE_IO_URING
  if (ring_ != nullptr) {
    // The kernel may still write into the operation's buffer: it is
    // cancelled and waited for before the frame can go.
    if (op->in_ring) ring_abandon(op);
  } else
#endif
      if (e.edge) {
    if (withdraw && e.reader == nullptr && e.writer == nullptr) {
      // EBADF/ENOENT: closed under the wait; the kernel forgot it already.
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, op->fd, nullptr);
      e.in_epoll = false;
      e.armed = false;
      e.edge = false;
      e.maybe_readable = true;
      e.hung_up = false;
      e.registered = 0;
    }
  } else if (!e.attached) {
    try {
      update_registration(op->fd, e);
    } catch (const std::system_error&) {
      // EBADF: the application closed the descriptor under a pending wait;
      // the kernel has already forgotten it.
    }
  }
}

void event_loop::abandon_io(detail::io_op* op) noexcept { end_wait(op, true); }

bool event_loop::epoll_cancel(detail::cancel_slot* slot) noexcept {
  auto* self = static_cast<detail::io_op*>(slot);
  if (self->cancelled) return true;
  if (!self->waiting) return false;  // completed: its result must reach the task
  self->loop->end_wait(self, true);
  self->cancelled = true;
  self->loop->schedule(self->handle, self->owner);
  return true;
}

bool event_loop::suspend_io_slow(detail::io_op* op, std::coroutine_handle<> h) {
  op->handle = h;
  op->owner = current_;
#ifdef PYSOCK_HAVE_IO_URING
  if (ring_ != nullptr) {
    op->cancel_fn = &event_loop::ring_cancel;
  } else
#endif
    op->cancel_fn = &event_loop::epoll_cancel;
  if (op->owner != nullptr && op->owner->must_cancel) {
    op->owner->must_cancel = false;
    op->cancelled = true;
    return false;
  }
  if (!start_wait(op)) return false;
  if (op->owner != nullptr) op->owner->leaf = op;
  return true;
}

// ---------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------

// Makes the system call of `op` again (after readiness); true when finished.
bool event_loop::perform_op(detail::io_op* op) noexcept {
  using detail::op_kind;
  bool finished = false;
  switch (op->kind) {
    case op_kind::recv_into:
      finished = static_cast<recv_into_op*>(op)->perform();
      break;
    case op_kind::recv:
      finished = static_cast<recv_op*>(op)->perform();
      break;
    case op_kind::sendall:
      finished = static_cast<sendall_op*>(op)->perform();
      break;
    case op_kind::sendto:
      finished = static_cast<sendto_op*>(op)->perform();
      break;
    case op_kind::recvfrom:
      finished = static_cast<recvfrom_op*>(op)->perform();
      break;
    case op_kind::recvfrom_into:
      finished = static_cast<recvfrom_into_op*>(op)->perform();
      break;
    case op_kind::accept:
      finished = static_cast<accept_op*>(op)->perform();
      break;
    case op_kind::connect:
      finished = static_cast<connect_op*>(op)->perform();
      break;
    case op_kind::stream_fill:
      finished = detail::stream_fill_perform(op);
      break;
    case op_kind::stream_flush:
      finished = detail::stream_flush_perform(op);
      break;
    case op_kind::fd_callback:
      break;  // run_fd_callback()
    case op_kind::accept_multishot:
    case op_kind::stream_recv_multishot:
      break;  // io_uring only: their completions go to streams.cpp
  }
  return finished;
}

// The operations of a server's steady state, performed inline in the
// dispatcher (no call, no jump table, no stack frame sized for the others).
inline bool event_loop::perform_edge_op(detail::io_op* op, detail::fd_entry* e) noexcept {
  if (op->kind == detail::op_kind::recv_into) return static_cast<recv_into_op*>(op)->perform(e);
  if (op->kind == detail::op_kind::sendall) return static_cast<sendall_op*>(op)->perform();
  if (op->kind == detail::op_kind::recv) return static_cast<recv_op*>(op)->perform(e);
  return perform_op(op);
}

// Runs an add_reader()/add_writer() callback; false when the callback removed
// itself (the op is deleted then).
bool event_loop::run_fd_callback(detail::io_op* op) {
  auto* cb = static_cast<detail::fd_callback_op*>(op);
  cb->running = true;
  try {
    cb->fn();
  } catch (...) {
    std::fprintf(stderr, "pysock: exception in add_reader/add_writer callback for fd %d\n", op->fd);
  }
  cb->running = false;
  if (cb->removed) {
    delete cb;
    return false;
  }
  return true;
}

// Performs `op` after an event; true when it is finished and has left its
// slot (the caller then completes it).
bool event_loop::run_op(detail::io_op* op) {
  if (op->kind == detail::op_kind::fd_callback) {
    run_fd_callback(op);
    return false;  // stays registered
  }
  const bool finished = perform_op(op);
  if (finished) end_wait(op);
  return finished;
}

void event_loop::dispatch(int fd, std::uint32_t events) {
  const auto index = static_cast<std::size_t>(fd);
  if (index >= fds_.size()) return;
  {
    detail::fd_entry& e = fds_[index];
    if (e.edge || e.attached) {  // both edge-triggered: see fd_entry::maybe_readable
      if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0) e.maybe_readable = true;
      if ((events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0) e.hung_up = true;
    } else if (!e.persistent) {
      e.armed = false;  // a one-shot registration fired
    }
  }
  // EPOLLERR/EPOLLHUP wake both sides: the system call then reports the error.
  constexpr std::uint32_t read_events = EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP;
  constexpr std::uint32_t write_events = EPOLLOUT | EPOLLERR | EPOLLHUP;
  // The slots are read again after each completion: a resumed coroutine may
  // have started a new wait, closed the descriptor or grown the table.
  if (fds_[index].edge) {
    // sock_* on an edge registration: the hot path of a server. A finished
    // wait leaves its slot; the registration stays for the next one. The
    // writer goes first, so that the usual event (readable, and writable
    // with no writer waiting) needs no second look at the table after the
    // reader's coroutine has run.
    detail::fd_entry* e = &fds_[index];
    if ((events & write_events) != 0 && e->writer != nullptr) {
      detail::io_op* op = e->writer;
      if (perform_edge_op(op, e)) {
        op->waiting = false;
        e->writer = nullptr;
        op->handle.resume();
        e = &fds_[index];  // the coroutine may have grown the table
      }
    }
    if (e->edge) {
      if ((events & read_events) != 0) {
        if (detail::io_op* op = e->reader; op != nullptr && perform_edge_op(op, e)) {
          op->waiting = false;
          e->reader = nullptr;
          op->handle.resume();
        }
      }
      return;
    }
    events &= ~write_events;  // the entry changed mode under the writer: the rest as usual
  }
  if ((events & read_events) != 0) {
    if (detail::io_op* op = fds_[index].reader; op != nullptr && run_op(op)) {
      if (op->handle) op->handle.resume();
    }
  }
  if ((events & write_events) != 0 && index < fds_.size()) {
    if (detail::io_op* op = fds_[index].writer; op != nullptr && run_op(op)) {
      if (op->kind == detail::op_kind::stream_flush) {
        detail::stream_flush_done(op);
      } else if (op->handle) {
        op->handle.resume();
      }
    }
  }
  // A one-shot registration that fired while a wait remains (the other
  // direction, or a wake-up that found EAGAIN) is armed again.
  detail::fd_entry& e = fds_[index];
  if (!e.attached && (e.reader != nullptr || e.writer != nullptr) && !e.armed) {
    try {
      update_registration(fd, e);
    } catch (const std::system_error& x) {
      // The descriptor went bad under the waits: fail them with the error.
      for (detail::io_op* op : {e.reader, e.writer}) {
        if (op == nullptr || detail::is_callback(op)) continue;
        end_wait(op);
        op->ec = x.code();
        schedule(op->handle, op->owner);
      }
    }
  }
}

void event_loop::poll_backend(int timeout_ms) {
#ifdef PYSOCK_HAVE_IO_URING
  if (ring_ != nullptr) {
    ring_poll(timeout_ms);
    return;
  }
#endif
  std::array<epoll_event, 128> events;
  const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return;  // a signal without SA_RESTART: the loop iterates again
    throw_os_error(last_error(), "epoll_wait()");
  }
  for (int i = 0; i < n; ++i) {
    const std::uint64_t tag = events[static_cast<std::size_t>(i)].data.u64;
    if (tag == wake_tag) {
      drain_remote();
    } else if (tag == signal_tag) {
      if (signal_fd_ >= 0) read_signals();
    } else {
      dispatch(static_cast<int>(tag), events[static_cast<std::size_t>(i)].events);
    }
  }
}

// ---------------------------------------------------------------------------
// Attached descriptors (streams)
// ---------------------------------------------------------------------------

void event_loop::attach(int fd) {
  if (fd < 0) throw_os_error(std::make_error_code(std::errc::bad_file_descriptor), "attach");
  detail::fd_entry& e = entry(fd);
  if (e.attached) return;
  if (e.reader != nullptr || e.writer != nullptr)
    throw std::runtime_error("fd " + std::to_string(fd) +
                             " has waits pending; cannot attach it to a stream");
  if (ring_ != nullptr) {  // io_uring: each wait is its own request, nothing to register
    e.attached = true;
    return;
  }
  const std::uint32_t flags = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  int err = detail::epoll_update(epoll_fd_, EPOLL_CTL_ADD, fd, flags);
  if (err == EEXIST) err = detail::epoll_update(epoll_fd_, EPOLL_CTL_MOD, fd, flags);
  if (err != 0)
    throw_os_error({err, std::system_category()}, "epoll_ctl(fd " + std::to_string(fd) + ")");
  e.attached = true;
  e.in_epoll = true;
  e.armed = true;
  e.persistent = false;
  e.edge = false;  // a sock_* registration kept from before is the stream's now
  e.maybe_readable = true;
  e.hung_up = false;
  e.registered = flags;
}

void event_loop::detach(int fd) noexcept {
  if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
  detail::fd_entry& e = fds_[static_cast<std::size_t>(fd)];
  if (!e.attached) return;
  for (detail::io_op* op : {e.reader, e.writer}) {
    if (op != nullptr) end_wait(op);
  }
  if (ring_ == nullptr) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  e = detail::fd_entry{};
}

// ---------------------------------------------------------------------------
// add_reader / add_writer
// ---------------------------------------------------------------------------

void event_loop::set_fd_callback(int fd, bool write, std::function<void()> fn) {
  if (!fn) throw std::invalid_argument("add_reader/add_writer: empty callback");
  if (fd < 0) throw std::invalid_argument("add_reader/add_writer: negative file descriptor");
  detail::fd_entry& e = entry(fd);
  if (e.attached) throw std::runtime_error("fd " + std::to_string(fd) + " belongs to a stream");
  if (ring_ != nullptr) {
    // epoll refuses what cannot be waited for (EPERM); a poll request on a
    // regular file or directory would report it ready forever instead.
    struct stat st {};
    if (::fstat(fd, &st) != 0)
      throw_os_error(last_error(),
                     (write ? "add_writer(fd " : "add_reader(fd ") + std::to_string(fd) + ")");
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
      throw_os_error(std::error_code(EPERM, std::system_category()),
                     (write ? "add_writer(fd " : "add_reader(fd ") + std::to_string(fd) + ")");
  }
  detail::io_op* existing = write ? e.writer : e.reader;
  if (existing != nullptr && detail::is_callback(existing)) {
    static_cast<detail::fd_callback_op*>(existing)->fn = std::move(fn);  // Python replaces it
    return;
  }
  auto op = std::make_unique<detail::fd_callback_op>(write);
  op->loop = this;
  op->fd = fd;
  op->fn = std::move(fn);
  if (!start_wait(op.get()))
    throw_os_error(op->ec,
                   (write ? "add_writer(fd " : "add_reader(fd ") + std::to_string(fd) + ")");
  op.release();  // owned by the descriptor's slot now
}

bool event_loop::clear_fd_callback(int fd, bool write) {
  if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return false;
  detail::fd_entry& e = fds_[static_cast<std::size_t>(fd)];
  detail::io_op* op = write ? e.writer : e.reader;
  if (!detail::is_callback(op)) return false;
  end_wait(op);
  auto* cb = static_cast<detail::fd_callback_op*>(op);
  if (cb->running) {
    cb->removed = true;  // the dispatcher deletes it when fn() returns
  } else {
    delete cb;
  }
  return true;
}

void event_loop::add_reader(int fd, std::function<void()> fn) {
  set_fd_callback(fd, false, std::move(fn));
}
void event_loop::add_writer(int fd, std::function<void()> fn) {
  set_fd_callback(fd, true, std::move(fn));
}
bool event_loop::remove_reader(int fd) { return clear_fd_callback(fd, false); }
bool event_loop::remove_writer(int fd) { return clear_fd_callback(fd, true); }

}  // namespace pysock
