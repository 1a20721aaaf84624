// SPDX-License-Identifier: MIT
//
// devpoll objects (Solaris, illumos): Python's select.devpoll.
//
// NOT COMPILED in this project's CI, which is Linux only: the top-level
// CMakeLists.txt builds src/*_solaris.cpp only when CMAKE_SYSTEM_NAME is
// SunOS. Written against poll(7d) (/dev/poll, DP_POLL, POLLREMOVE) and
// CPython's Modules/selectmodule.c (devpoll_*), kept to plain POSIX +
// <sys/devpoll.h>.
#include <sys/types.h>  // first: older BSD and Solaris headers below need it

#include <fcntl.h>
#include <poll.h>
#include <sys/devpoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "pysock/select.hpp"

namespace pysock {
namespace {

using clock = std::chrono::steady_clock;

// The buffer is RLIMIT_NOFILE entries, as in CPython; capped so that an
// unlimited (RLIM_INFINITY) limit does not ask for gigabytes. A smaller
// buffer only means fewer events per poll() (devpoll is level-triggered).
constexpr std::size_t max_buffer = std::size_t{1} << 20;

[[noreturn]] void throw_closed() {
  throw std::invalid_argument("I/O operation on closed devpoll object");
}

int to_ms(std::chrono::nanoseconds remaining) noexcept {
  if (remaining.count() <= 0) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(remaining).count();
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

int checked_fd(const selectable& fd) {
  const int n = fd.fileno();
  if (n < 0)
    throw std::invalid_argument("file descriptor cannot be a negative integer (" +
                                std::to_string(n) + ")");
  return n;
}

short checked_mask(unsigned eventmask) {
  // CPython parses the mask as an unsigned short (OverflowError beyond).
  if (eventmask > 0xFFFFu)
    throw std::out_of_range("eventmask " + std::to_string(eventmask) +
                            " is greater than maximum (65535)");
  return static_cast<short>(static_cast<unsigned short>(eventmask));
}

// CPython: ms = timeout rounded away from zero; -1 blocks, below -1 is
// OverflowError("timeout is out of range") (unlike poll objects, where any
// negative value blocks). Returns std::nullopt for "block".
wait_timeout checked_timeout(wait_timeout timeout) {
  if (!timeout || timeout->count() >= 0) return timeout;
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(*timeout).count();
  if (ms < -1) throw std::out_of_range("timeout is out of range");
  return std::nullopt;
}

struct polling_guard {
  std::atomic<bool>& flag;
  explicit polling_guard(std::atomic<bool>& f) : flag(f) {
    if (flag.exchange(true, std::memory_order_acquire))
      throw std::runtime_error("concurrent poll() invocation");
  }
  ~polling_guard() { flag.store(false, std::memory_order_release); }
  polling_guard(const polling_guard&) = delete;
  polling_guard& operator=(const polling_guard&) = delete;
};

}  // namespace

devpoll::devpoll() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) throw_os_error(last_error(), "getrlimit()");
  std::size_t size = max_buffer;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < static_cast<rlim_t>(max_buffer))
    size = static_cast<std::size_t>(limit.rlim_cur);
  if (size == 0) size = 1;
#if defined(O_CLOEXEC)
  const int oflags = O_RDWR | O_CLOEXEC;
#else
  const int oflags = O_RDWR;
#endif
  int fd;
  do {
    fd = ::open("/dev/poll", oflags);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) throw_os_error(last_error(), "/dev/poll");
#if !defined(O_CLOEXEC)
  // Solaris 10 has no O_CLOEXEC: PEP 446 the old way.
  const int fdflags = ::fcntl(fd, F_GETFD);
  if (fdflags < 0 || ::fcntl(fd, F_SETFD, fdflags | FD_CLOEXEC) < 0) {
    const std::error_code ec = last_error();
    ::close(fd);
    throw_os_error(ec, "/dev/poll: fcntl(FD_CLOEXEC)");
  }
#endif
  try {
    fds_.resize(size);
  } catch (...) {
    ::close(fd);
    throw;
  }
  fd_ = fd;
}

devpoll::devpoll(devpoll&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      fds_(std::move(other.fds_)),
      n_fds_(std::exchange(other.n_fds_, 0)) {}

devpoll& devpoll::operator=(devpoll&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    fds_ = std::move(other.fds_);
    n_fds_ = std::exchange(other.n_fds_, 0);
  }
  return *this;
}

void devpoll::close() noexcept {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  n_fds_ = 0;
}

int devpoll::fileno() const {
  if (fd_ < 0) throw_closed();
  return fd_;
}

// Writes the queued changes to /dev/poll. As in CPython, the queue is
// emptied before the write: on failure those changes are lost.
void devpoll::flush() {
  if (n_fds_ == 0) return;
  const std::size_t size = sizeof(pollfd) * n_fds_;
  n_fds_ = 0;
  ssize_t n;
  do {
    n = ::write(fd_, fds_.data(), size);
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw_os_error(last_error(), "devpoll: write(/dev/poll)");
  if (static_cast<std::size_t>(n) < size)
    // CPython raises an errno-less OSError here (bpo-6397); EIO is the
    // closest errno.
    throw_os_error(std::error_code(EIO, std::system_category()),
                   "failed to write all pollfds: size tried " + std::to_string(size) +
                       ", actual size written " + std::to_string(n));
}

void devpoll::append(int fd, short events) {
  fds_[n_fds_].fd = fd;
  fds_[n_fds_].events = events;
  fds_[n_fds_].revents = 0;
  if (++n_fds_ == fds_.size()) flush();
}

void devpoll::register_(selectable fd, unsigned eventmask) {
  if (fd_ < 0) throw_closed();
  const int n = checked_fd(fd);
  append(n, checked_mask(eventmask));
}

void devpoll::modify(selectable fd, unsigned eventmask) {
  if (fd_ < 0) throw_closed();
  const int n = checked_fd(fd);
  const short events = checked_mask(eventmask);
  append(n, static_cast<short>(POLLREMOVE));
  append(n, events);
}

void devpoll::unregister(selectable fd) {
  if (fd_ < 0) throw_closed();
  const int n = checked_fd(fd);
  append(n, static_cast<short>(POLLREMOVE));
}

std::span<const pollfd> devpoll::wait(wait_timeout timeout) {
  if (fd_ < 0) throw_closed();
  timeout = checked_timeout(timeout);
  polling_guard guard(polling_);
  flush();
  const auto deadline = timeout ? clock::now() + *timeout : clock::time_point::max();
  for (;;) {
    dvpoll dvp{};
    dvp.dp_fds = fds_.data();
    dvp.dp_nfds = static_cast<decltype(dvp.dp_nfds)>(fds_.size());
    dvp.dp_timeout = timeout ? to_ms(deadline - clock::now()) : -1;
    const int n = ::ioctl(fd_, DP_POLL, &dvp);
    if (n >= 0) return std::span<const pollfd>(fds_.data(), static_cast<std::size_t>(n));
    if (errno != EINTR) throw_os_error(last_error(), "devpoll.poll()");
    // PEP 475: retry with the time left; "nothing ready" once it is gone.
    if (timeout && clock::now() >= deadline) return {};
  }
}

std::vector<ready_event> devpoll::poll(wait_timeout timeout) {
  const std::span<const pollfd> ready = wait(timeout);
  std::vector<ready_event> out;
  out.reserve(ready.size());
  for (const pollfd& p : ready)
    out.push_back({p.fd, static_cast<std::uint32_t>(static_cast<unsigned short>(p.revents))});
  return out;
}

std::vector<ready_event> devpoll::poll(int timeout_ms) {
  if (timeout_ms < -1) throw std::out_of_range("timeout is out of range");
  if (timeout_ms == -1) return poll(wait_timeout());
  return poll(wait_timeout(std::chrono::milliseconds(timeout_ms)));
}

}  // namespace pysock
