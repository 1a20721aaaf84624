// SPDX-License-Identifier: MIT
//
// kqueue objects (FreeBSD, macOS, OpenBSD, NetBSD, DragonFly): Python's
// select.kqueue and select.kevent.
//
// NOT COMPILED in this project's CI, which is Linux only: the top-level
// CMakeLists.txt builds src/*_bsd.cpp only when CMAKE_SYSTEM_NAME matches
// BSD or Darwin. Written against kqueue(2)/kevent(2) and CPython's
// Modules/selectmodule.c (kqueue_queue_control_impl), and kept to plain
// POSIX + <sys/event.h> so that it has the best chance of building as is.
#include <sys/types.h>  // first: older BSD and Solaris headers below need it

#include <fcntl.h>
#include <sys/event.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <ctime>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "pysock/select.hpp"

namespace pysock {
namespace {

using clock = std::chrono::steady_clock;

[[noreturn]] void throw_closed() {
  throw std::invalid_argument("I/O operation on closed kqueue object");
}

timespec to_timespec(std::chrono::nanoseconds remaining) noexcept {
  if (remaining.count() < 0) remaining = std::chrono::nanoseconds(0);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(remaining.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(remaining.count() % 1'000'000'000);
  return ts;
}

int checked_count(std::size_t n, const char* what) {
  if (n > static_cast<std::size_t>(INT_MAX))
    throw std::invalid_argument(std::string(what) + " is too long");
  return static_cast<int>(n);
}

// The kevent(2) loop: PEP 475 retry on EINTR with the time remaining, and
// "nothing ready" (0) once the deadline has passed.
//
// One difference from CPython, on purpose: CPython passes the changelist
// again on every retry. kevent(2) applies the changes before it sleeps, and
// EINTR means the *wait* was interrupted, so a retry here passes no changes:
// resubmitting would re-arm EV_ONESHOT filters and make EV_DELETE fail
// (ENOENT) the second time.
int control_loop(int kq, const struct ::kevent* changes, int nchanges, struct ::kevent* events,
                 int nevents, wait_timeout timeout) noexcept {
  const auto deadline = timeout ? clock::now() + *timeout : clock::time_point::max();
  for (;;) {
    timespec ts{};
    const timespec* tsp = nullptr;
    if (timeout) {
      ts = to_timespec(deadline - clock::now());
      tsp = &ts;
    }
    const int n = ::kevent(kq, changes, nchanges, events, nevents, tsp);
    if (n >= 0 || errno != EINTR) return n;
    changes = nullptr;
    nchanges = 0;
    if (timeout && clock::now() >= deadline) return 0;
  }
}

}  // namespace

kqueue::kqueue() {
  fd_ = ::kqueue();
  if (fd_ < 0) throw_os_error(last_error(), "kqueue()");
  // PEP 446: non-inheritable. (kqueue1(O_CLOEXEC) exists on NetBSD and newer
  // FreeBSD only; fcntl works everywhere.) A kqueue is never inherited by a
  // fork() child anyway, but FD_CLOEXEC matters across exec.
  const int flags = ::fcntl(fd_, F_GETFD);
  if (flags < 0 || ::fcntl(fd_, F_SETFD, flags | FD_CLOEXEC) < 0) {
    const std::error_code ec = last_error();
    ::close(std::exchange(fd_, -1));
    throw_os_error(ec, "kqueue(): fcntl(FD_CLOEXEC)");
  }
}

kqueue kqueue::fromfd(int fd) {
  if (fd < 0)
    throw std::invalid_argument("file descriptor cannot be a negative integer (" +
                                std::to_string(fd) + ")");
  return kqueue(adopt_tag{}, fd);
}

kqueue::kqueue(kqueue&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

kqueue& kqueue::operator=(kqueue&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void kqueue::close() noexcept {
  // Not retried on EINTR: the descriptor may already be gone.
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

int kqueue::checked_fd() const {
  if (fd_ < 0) throw_closed();
  return fd_;
}

int kqueue::fileno() const { return checked_fd(); }

std::vector<kevent> kqueue::control(std::span<const kevent> changelist, int maxevents,
                                    wait_timeout timeout) {
  // CPython's order of checks: the closed object, maxevents, the timeout.
  (void)checked_fd();
  if (maxevents < 0)
    throw std::invalid_argument("Length of eventlist must be 0 or positive, got " +
                                std::to_string(maxevents));
  if (timeout && timeout->count() < 0)
    throw std::invalid_argument("timeout must be positive or None");
  std::vector<detail::kevent_raw> changes;
  changes.reserve(changelist.size());
  for (const kevent& k : changelist) changes.push_back(k.raw());
  std::vector<detail::kevent_raw> events(static_cast<std::size_t>(maxevents));
  const std::size_t n = control(changes, events, timeout);
  std::vector<kevent> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(kevent::from_raw(events[i]));
  return out;
}

std::size_t kqueue::control(std::span<const detail::kevent_raw> changes,
                            std::span<detail::kevent_raw> events, wait_timeout timeout) {
  const int kq = checked_fd();
  if (timeout && timeout->count() < 0)
    throw std::invalid_argument("timeout must be positive or None");
  const int nchanges = checked_count(changes.size(), "changelist");
  const int nevents = checked_count(events.size(), "eventlist");
  const int n = control_loop(kq, changes.empty() ? nullptr : changes.data(), nchanges,
                             events.empty() ? nullptr : events.data(), nevents, timeout);
  if (n < 0) throw_os_error(last_error(), "kqueue.control()");
  return static_cast<std::size_t>(n);
}

}  // namespace pysock
