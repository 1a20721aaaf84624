// SPDX-License-Identifier: MIT
//
// poll objects: Python's select.poll(), and the poll(2) wait loop that
// poll_selector shares.
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <stdexcept>
#include <string>

#include "pysock/select.hpp"

namespace pysock {
namespace {

using clock = std::chrono::steady_clock;

// Milliseconds for poll(2)/epoll_wait(2), rounded up so a wait never ends
// early (CPython rounds the same way), clamped to INT_MAX (~24 days).
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
  // Python stores the mask as an unsigned short: wider values are an
  // OverflowError there, std::out_of_range here.
  if (eventmask > 0xFFFFu)
    throw std::out_of_range("eventmask " + std::to_string(eventmask) +
                            " is greater than maximum (65535)");
  return static_cast<short>(static_cast<unsigned short>(eventmask));
}

// Clears the "a poll() is running" flag on every way out of poll().
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

namespace detail {

std::size_t poll_descriptors(pollfd* fds, std::size_t count, wait_timeout timeout) {
  const auto deadline = timeout ? clock::now() + *timeout : clock::time_point::max();
  for (;;) {
    const int ms = timeout ? to_ms(deadline - clock::now()) : -1;
    const int n = ::poll(fds, static_cast<nfds_t>(count), ms);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) throw_os_error(last_error(), "poll()");
    // PEP 475: a signal handler ran; wait again for what is left, and report
    // "nothing ready" once the deadline has passed rather than polling again.
    if (timeout && clock::now() >= deadline) {
      for (std::size_t i = 0; i < count; ++i) fds[i].revents = 0;
      return 0;
    }
  }
}

}  // namespace detail

poll_object poll() { return poll_object(); }

void poll_object::register_(selectable fd, unsigned eventmask) {
  const int n = checked_fd(fd);
  const short events = checked_mask(eventmask);
  const auto [it, inserted] = index_.try_emplace(n, fds_.size());
  if (inserted) {
    fds_.push_back(pollfd{n, events, 0});
  } else {
    fds_[it->second].events = events;  // Python overwrites silently
  }
}

void poll_object::modify(selectable fd, unsigned eventmask) {
  const int n = checked_fd(fd);
  const short events = checked_mask(eventmask);
  const auto it = index_.find(n);
  // Python raises FileNotFoundError (ENOENT) here, mirroring epoll's MOD.
  if (it == index_.end())
    throw_os_error(std::error_code(ENOENT, std::system_category()),
                   "poll.modify(" + std::to_string(n) + ")");
  fds_[it->second].events = events;
}

void poll_object::unregister(selectable fd) {
  const int n = checked_fd(fd);
  const auto it = index_.find(n);
  if (it == index_.end())
    throw key_error("poll.unregister(" + std::to_string(n) + "): not registered");
  // Swap-remove keeps fds_ one dense block for poll(2) without shifting.
  const std::size_t pos = it->second;
  index_.erase(it);
  if (pos + 1 != fds_.size()) {
    fds_[pos] = fds_.back();
    index_[fds_[pos].fd] = pos;
  }
  fds_.pop_back();
}

std::size_t poll_object::wait(wait_timeout timeout) {
  // Python: None or any negative value blocks.
  if (timeout && timeout->count() < 0) timeout.reset();
  return detail::poll_descriptors(fds_.data(), fds_.size(), timeout);
}

std::vector<ready_event> poll_object::poll(wait_timeout timeout) {
  polling_guard guard(polling_);
  const std::size_t ready = wait(timeout);
  std::vector<ready_event> out;
  out.reserve(ready);
  for (const pollfd& p : fds_) {
    if (out.size() == ready) break;
    if (p.revents != 0)
      out.push_back({p.fd, static_cast<std::uint32_t>(static_cast<unsigned short>(p.revents))});
  }
  return out;
}

std::vector<ready_event> poll_object::poll(int timeout_ms) {
  if (timeout_ms < 0) return poll(wait_timeout());
  return poll(wait_timeout(std::chrono::milliseconds(timeout_ms)));
}

std::size_t poll_object::poll(std::span<pollfd> ready, wait_timeout timeout) {
  polling_guard guard(polling_);
  const std::size_t count = wait(timeout);
  std::size_t out = 0;
  for (std::size_t i = 0, seen = 0; i < fds_.size() && seen < count && out < ready.size(); ++i) {
    if (fds_[i].revents == 0) continue;
    ++seen;
    ready[out++] = fds_[i];
  }
  return out;
}

}  // namespace pysock
