// SPDX-License-Identifier: MIT
//
// epoll objects (Linux): Python's select.epoll.
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <stdexcept>
#include <string>
#include <utility>

#include "pysock/select.hpp"

namespace pysock {
namespace {

using clock = std::chrono::steady_clock;

int to_ms(std::chrono::nanoseconds remaining) noexcept {
  if (remaining.count() <= 0) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(remaining).count();
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

[[noreturn]] void throw_closed() {
  throw std::invalid_argument("I/O operation on closed epoll object");
}

// The epoll_wait loop: PEP 475 retry with the remaining time; "nothing
// ready" once the deadline passed. std::nullopt and negative waits block.
int wait_loop(int epfd, epoll_event* events, int maxevents, wait_timeout timeout) noexcept {
  if (timeout && timeout->count() < 0) timeout.reset();
  const auto deadline = timeout ? clock::now() + *timeout : clock::time_point::max();
  for (;;) {
    const int ms = timeout ? to_ms(deadline - clock::now()) : -1;
    const int n = ::epoll_wait(epfd, events, maxevents, ms);
    if (n >= 0 || errno != EINTR) return n;
    if (timeout && clock::now() >= deadline) return 0;
  }
}

}  // namespace

epoll::epoll(int sizehint, int flags) {
  if (sizehint == 0 || sizehint < -1) throw std::invalid_argument("negative sizehint");
  // Python accepts only 0 or EPOLL_CLOEXEC and ignores it: the descriptor is
  // close-on-exec regardless (PEP 446).
  if (flags != 0 && flags != EPOLL_CLOEXEC)
    throw_os_error(std::error_code(EINVAL, std::system_category()), "epoll(): invalid flags");
  fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd_ < 0) throw_os_error(last_error(), "epoll_create1()");
}

epoll epoll::fromfd(int fd) {
  if (fd < 0)
    throw std::invalid_argument("file descriptor cannot be a negative integer (" +
                                std::to_string(fd) + ")");
  return epoll(adopt_tag{}, fd);
}

epoll::epoll(epoll&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

epoll& epoll::operator=(epoll&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void epoll::close() noexcept {
  // Not retried on EINTR: Linux frees the descriptor before reporting it, and
  // a retry could close a number another thread has just been given.
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

int epoll::checked_fd() const {
  if (fd_ < 0) throw_closed();
  return fd_;
}

int epoll::fileno() const { return checked_fd(); }

void epoll::control(int op, const char* what, selectable fd, std::uint32_t eventmask,
                    epoll_data_t data) {
  const int epfd = checked_fd();
  const int n = fd.fileno();
  if (n < 0)
    throw std::invalid_argument("file descriptor cannot be a negative integer (" +
                                std::to_string(n) + ")");
  epoll_event ev{};
  ev.events = eventmask;
  ev.data = data;
  // EPOLL_CTL_DEL ignores the event, but kernels before 2.6.9 wanted it non-null.
  if (::epoll_ctl(epfd, op, n, &ev) != 0)
    throw_os_error(last_error(), std::string("epoll.") + what + "(" + std::to_string(n) + ")");
}

void epoll::register_(selectable fd, std::uint32_t eventmask) {
  epoll_data_t data{};
  data.fd = fd.fileno();
  control(EPOLL_CTL_ADD, "register", fd, eventmask, data);
}

void epoll::register_(selectable fd, std::uint32_t eventmask, epoll_data_t data) {
  control(EPOLL_CTL_ADD, "register", fd, eventmask, data);
}

void epoll::modify(selectable fd, std::uint32_t eventmask) {
  epoll_data_t data{};
  data.fd = fd.fileno();
  control(EPOLL_CTL_MOD, "modify", fd, eventmask, data);
}

void epoll::modify(selectable fd, std::uint32_t eventmask, epoll_data_t data) {
  control(EPOLL_CTL_MOD, "modify", fd, eventmask, data);
}

void epoll::unregister(selectable fd) {
  control(EPOLL_CTL_DEL, "unregister", fd, 0, epoll_data_t{});
}

std::vector<ready_event> epoll::poll(wait_timeout timeout, int maxevents) {
  const int epfd = checked_fd();
  // Python's default: FD_SETSIZE - 1 events per call, not "unlimited".
  if (maxevents == -1) maxevents = FD_SETSIZE - 1;
  if (maxevents <= 0)
    throw std::invalid_argument("maxevents must be greater than 0, got " +
                                std::to_string(maxevents));
  std::vector<epoll_event> events(static_cast<std::size_t>(maxevents));
  const int n = wait_loop(epfd, events.data(), maxevents, timeout);
  if (n < 0) throw_os_error(last_error(), "epoll.poll()");
  std::vector<ready_event> out;
  out.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const epoll_event& e = events[static_cast<std::size_t>(i)];
    out.push_back({e.data.fd, e.events});
  }
  return out;
}

std::size_t epoll::poll(std::span<epoll_event> events, wait_timeout timeout) {
  std::error_code ec;
  const std::size_t n = poll(events, timeout, ec);
  if (ec) {
    if (ec == std::errc::bad_file_descriptor && fd_ < 0) throw_closed();
    if (ec == std::errc::invalid_argument && events.empty())
      throw std::invalid_argument("maxevents must be greater than 0, got 0");
    throw_os_error(ec, "epoll.poll()");
  }
  return n;
}

std::size_t epoll::poll(std::span<epoll_event> events, wait_timeout timeout,
                        std::error_code& ec) noexcept {
  ec.clear();
  if (fd_ < 0) {
    ec.assign(EBADF, std::system_category());
    return 0;
  }
  if (events.empty()) {
    ec.assign(EINVAL, std::system_category());
    return 0;
  }
  const int maxevents =
      events.size() > static_cast<std::size_t>(INT_MAX) ? INT_MAX : static_cast<int>(events.size());
  const int n = wait_loop(fd_, events.data(), maxevents, timeout);
  if (n < 0) {
    ec = last_error();
    return 0;
  }
  return static_cast<std::size_t>(n);
}

}  // namespace pysock
