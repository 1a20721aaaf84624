// SPDX-License-Identifier: MIT
//
// selectors: the non-template parts — argument checks and the messages of
// Python's errors. The selectors themselves are templates on the user-data
// type and live in the header.
#include <sys/select.h>

#include <stdexcept>
#include <string>

#include "pysock/selectors.hpp"

namespace pysock::detail {
namespace {

// Python's repr of the registered object, for messages: a socket is named
// by its descriptor ("<socket fd=5>"), an int by itself.
std::string describe(const selectable& fileobj) {
  if (fileobj.is_socket()) return "<socket fd=" + std::to_string(fileobj.fileno()) + ">";
  return std::to_string(fileobj.fileno());
}

}  // namespace

void check_selector_events(unsigned events) {
  if (events == 0 || (events & ~(EVENT_READ | EVENT_WRITE)) != 0)
    throw std::invalid_argument("Invalid events: " + std::to_string(events));
}

int selector_fd(const selectable& fileobj) {
  const int fd = fileobj.fileno();
  if (fd < 0) throw std::invalid_argument("Invalid file descriptor: " + std::to_string(fd));
  return fd;
}

void check_select_fd(int fd) {
  // Python's SelectSelector accepts the registration and fails in every later
  // select(); failing here instead names the culprit and leaves no key behind.
  if (fd >= FD_SETSIZE) throw std::invalid_argument("filedescriptor out of range in select()");
}

void throw_already_registered(const selectable& fileobj, int fd) {
  throw key_error(describe(fileobj) + " (FD " + std::to_string(fd) + ") is already registered");
}

void throw_not_registered(const selectable& fileobj) {
  throw key_error(describe(fileobj) + " is not registered");
}

void throw_selector_closed() { throw std::runtime_error("Selector is closed"); }

wait_timeout selector_timeout(wait_timeout timeout) noexcept {
  if (timeout && timeout->count() < 0) return std::chrono::nanoseconds(0);
  return timeout;
}

}  // namespace pysock::detail
