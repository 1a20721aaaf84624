// SPDX-License-Identifier: MIT
//
// Internal: the wait-and-retry loop every blocking socket call shares
// (CPython's sock_call_ex). Not installed; used by src/*.cpp only.
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <optional>
#include <system_error>

#include "pysock/error.hpp"

namespace pysock::detail {

// Counts descriptors released by pysock (socket close, destruction,
// move-assignment, detach; socket.close(fd)). The event loop keeps a socket
// registered with epoll between waits and trusts that registration only
// while this count has not moved since it was made: the number may belong to
// a new file now, which the kernel never registered (declared in loop.hpp as
// well; defined in socket.cpp).
extern std::atomic<std::uint64_t> descriptor_release_epoch;
inline void note_descriptor_release() noexcept {
  descriptor_release_epoch.fetch_add(1, std::memory_order_relaxed);
}

using steady = std::chrono::steady_clock;

inline std::error_code bad_descriptor() noexcept { return {EBADF, std::system_category()}; }
inline std::error_code timed_out() noexcept { return make_error_code(socket_errc::timed_out); }

inline bool in_timeout_mode(const std::optional<std::int64_t>& timeout_ns) noexcept {
  return timeout_ns && *timeout_ns > 0;
}

// In timeout mode every send/recv also passes MSG_DONTWAIT: the call then
// never blocks even when a dup()'ed sibling made the shared descriptor
// blocking again, and the timeout keeps its meaning.
inline int timeout_flags(const std::optional<std::int64_t>& timeout_ns) noexcept {
  return in_timeout_mode(timeout_ns) ? MSG_DONTWAIT : 0;
}

// now + timeout, or no deadline when that would overflow the clock (a
// timeout of centuries is no timeout).
inline std::optional<steady::time_point> deadline_after(std::int64_t timeout_ns) noexcept {
  const steady::time_point now = steady::now();
  if (std::chrono::nanoseconds(timeout_ns) > steady::time_point::max() - now) return std::nullopt;
  return now + std::chrono::nanoseconds(timeout_ns);
}

// Waits until `fd` is ready for `events` or `deadline` passes (none: forever).
// poll() is retried on EINTR with the remaining time recomputed (PEP 475), so
// a stream of signals cannot stretch the timeout.
inline bool wait_ready(int fd, short events, const std::optional<steady::time_point>& deadline,
                       std::error_code& ec) noexcept {
  for (;;) {
    int timeout_ms = -1;
    if (deadline) {
      const auto remaining = *deadline - steady::now();
      if (remaining <= steady::duration::zero()) {
        ec = timed_out();
        return false;
      }
      // Round up: a poll() that wakes a little early would only loop again.
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(remaining).count();
      timeout_ms = ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
    }
    pollfd request{fd, events, 0};
    const int ready = ::poll(&request, 1, timeout_ms);
    if (ready > 0) return true;
    if (ready == 0) {
      if (deadline && steady::now() < *deadline) continue;  // woke before the deadline
      ec = timed_out();
      return false;
    }
    if (errno != EINTR) {
      ec = last_error();
      return false;
    }
  }
}

// CPython's sock_call_ex, reordered: try the call first and wait only when it
// would block, which gives the same results and saves a poll() per call on a
// busy socket. EINTR is retried at once; EAGAIN in timeout mode waits for
// readiness with the time left and tries again (a wake-up can be spurious).
// Returns the system call's result, or -1 with `ec` set.
template <class Syscall>
auto call_with_timeout(int fd, const std::optional<std::int64_t>& timeout_ns, short events,
                       std::optional<steady::time_point>& deadline, std::error_code& ec,
                       Syscall&& syscall) noexcept -> decltype(syscall()) {
  if (fd < 0) {
    ec = bad_descriptor();
    return -1;
  }
  for (;;) {
    const auto result = syscall();
    if (result >= 0) {
      ec.clear();
      return result;
    }
    const int err = errno;
    if (err == EINTR) continue;
    if ((err == EAGAIN || err == EWOULDBLOCK) && in_timeout_mode(timeout_ns)) {
      if (!deadline) deadline = deadline_after(*timeout_ns);
      if (!wait_ready(fd, events, deadline, ec)) return -1;
      continue;
    }
    ec = {err, std::system_category()};
    return -1;
  }
}

template <class Syscall>
auto call_with_timeout(int fd, const std::optional<std::int64_t>& timeout_ns, short events,
                       std::error_code& ec, Syscall&& syscall) noexcept -> decltype(syscall()) {
  std::optional<steady::time_point> deadline;
  return call_with_timeout(fd, timeout_ns, events, deadline, ec, std::forward<Syscall>(syscall));
}

}  // namespace pysock::detail
