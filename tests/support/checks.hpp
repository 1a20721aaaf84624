// SPDX-License-Identifier: MIT
//
// Checks shared by the socket tests: catching an exception as a value so a
// test can assert its class, errno and message; descriptor flags; whether
// this machine has ::1; a port where nothing listens.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string_view>
#include <typeindex>
#include <typeinfo>

#include <gtest/gtest.h>

#include "pysock/socket.hpp"

namespace test_support {

// AddressSanitizer replaces malloc: heap measurements (mallinfo2) see nothing.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PYSOCK_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(PYSOCK_TEST_ASAN)
#define PYSOCK_TEST_ASAN 1
#endif
#ifdef PYSOCK_TEST_ASAN
inline constexpr bool under_address_sanitizer = true;
#else
inline constexpr bool under_address_sanitizer = false;
#endif

// Runs f and returns the exception of type E it threw (sliced to E), or
// nothing if it returned. Other exception types propagate (gtest reports
// them). dynamic_type, when given, receives the thrown object's real class.
template <class E = pysock::os_error, class F>
std::optional<E> catch_as(F&& f, std::type_index* dynamic_type = nullptr) {
  try {
    f();
  } catch (const E& e) {
    if (dynamic_type != nullptr) *dynamic_type = typeid(e);
    return e;
  }
  return std::nullopt;
}

inline bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

inline bool is_cloexec(int fd) {
  const int flags = ::fcntl(fd, F_GETFD);
  return flags >= 0 && (flags & FD_CLOEXEC) != 0;
}

inline bool is_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && (flags & O_NONBLOCK) != 0;
}

inline bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

// Entries in /proc/self/fd (".", ".." and opendir's own descriptor included:
// compare two counts, never a count with a constant).
inline int count_open_descriptors() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int count = 0;
  while (::readdir(dir) != nullptr) ++count;
  ::closedir(dir);
  return count;
}

// Containers and CI machines may have IPv6 disabled: the IPv6 tests skip
// with a reason there rather than fail.
inline bool ipv6_loopback_available() {
  const int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6) == 0;
  ::close(fd);
  return ok;
}

#define SKIP_WITHOUT_IPV6()                                                                    \
  do {                                                                                         \
    if (!test_support::ipv6_loopback_available()) GTEST_SKIP() << "::1 is not available here"; \
  } while (0)

// A TCP port on 127.0.0.1 where nothing listens: a bound, non-listening socket
// holds it (so no other process can take it) and connect() gets a RST.
struct refused_port {
  pysock::socket holder{AF_INET};
  int port = 0;
  refused_port() {
    holder.bind({"127.0.0.1", 0});
    port = holder.getsockname().port();
  }
};

}  // namespace test_support
