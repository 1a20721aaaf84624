// SPDX-License-Identifier: MIT
//
// Module functions that make sockets: socketpair, fromfd, create_connection,
// create_server (Lib/socket.py's logic), has_dualstack_ipv6, close(fd).
#include <fcntl.h>
#include <netdb.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

#include "io_wait.hpp"
#include "pysock/resolver.hpp"
#include "pysock/socket.hpp"

namespace pysock {

std::pair<socket, socket> socketpair(int family, int type, int proto) {
  const bool nonblocking_type = (type & SOCK_NONBLOCK) != 0;
  const timeout_type default_timeout = getdefaulttimeout();
  // A default timeout means non-blocking descriptors: ask for them here
  // rather than with an ioctl per end.
  const int flags = SOCK_CLOEXEC | (default_timeout ? SOCK_NONBLOCK : 0);
  int fds[2];
  if (::socketpair(family, type | flags, proto, fds) != 0)
    throw_os_error(last_error(), "socketpair()");
  socket first(fds[0], family, type, proto);
  socket second(fds[1], family, type, proto);
  if (nonblocking_type) {
    first.timeout_ns_ = 0;
    second.timeout_ns_ = 0;
  } else {
    first.apply_default_timeout(default_timeout.has_value());
    second.apply_default_timeout(default_timeout.has_value());
  }
  return {std::move(first), std::move(second)};
}

socket fromfd(int fd, int family, int type, int proto) {
  if (fd < 0) throw std::invalid_argument("negative file descriptor");
  const std::string context = "fromfd(" + std::to_string(fd) + ")";
  // Python validates the descriptor as a socket (ENOTSOCK for a pipe) before
  // wrapping it; checking the original spares a dup that would be closed.
  int kind = 0;
  socklen_t length = sizeof kind;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &kind, &length) != 0)
    throw_os_error(last_error(), context);
  const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) throw_os_error(last_error(), context);
  socket adopted(copy, family, type, proto);
  const int status = ::fcntl(copy, F_GETFL);
  adopted.apply_default_timeout(status >= 0 && (status & O_NONBLOCK) != 0);
  return adopted;
}

exception_group::exception_group(const std::string& message,
                                 std::vector<std::exception_ptr> exceptions)
    : std::runtime_error(message + " (" + std::to_string(exceptions.size()) + " sub-exception" +
                         (exceptions.size() == 1 ? "" : "s") + ")"),
      exceptions_(std::move(exceptions)) {}

namespace {

socket connect_one(const addrinfo_entry& candidate, const std::optional<timeout_type>& timeout,
                   const address& source_address) {
  socket sock(candidate.family, candidate.type, candidate.proto);
  if (timeout) sock.settimeout(*timeout);
  if (!source_address.empty()) sock.bind(source_address);
  sock.connect(candidate.sockaddr);
  return sock;
}

}  // namespace

// Lib/socket.py's create_connection: the resolver's order, one attempt at a
// time, each with the full timeout (no Happy Eyeballs), every failure kept.
socket create_connection(const address& addr, const connection_options& options) {
  if (addr.family() == AF_UNIX || addr.empty())
    throw std::invalid_argument("create_connection: address must be a (host, port) pair");
  if (addr.port() < 0 || addr.port() > 65535)
    throw std::out_of_range("create_connection(" + addr.to_string() + "): port must be 0-65535");
  std::vector<addrinfo_entry> candidates;
  if (addr.needs_resolution()) {
    candidates = getaddrinfo(addr.host(), addr.port(), AF_UNSPEC, SOCK_STREAM);
  } else {
    // A numeric address needs no resolver, and going through one would lose
    // an IPv6 scope id or flowinfo given with it.
    candidates.push_back({addr.family(), SOCK_STREAM, IPPROTO_TCP, {}, addr});
  }
  if (candidates.empty())
    throw_os_error(make_error_code(socket_errc::empty_resolution),
                   "create_connection(" + addr.to_string() + ")");
  std::vector<std::exception_ptr> failures;
  std::string attempts;
  for (const addrinfo_entry& candidate : candidates) {
    try {
      return connect_one(candidate, options.timeout, options.source_address);
    } catch (const os_error& e) {
      failures.push_back(std::current_exception());
      attempts += attempts.empty() ? "" : "; ";
      attempts += e.what();
    }
  }
  if (options.all_errors) throw exception_group("create_connection failed", std::move(failures));
  // Python re-raises the last error; keep its class and errno, and let the
  // message tell what every attempt met.
  try {
    std::rethrow_exception(failures.back());
  } catch (const os_error& last) {
    if (failures.size() == 1) throw;
    throw_os_error(last.code(), "create_connection(" + addr.to_string() + ") tried " +
                                    std::to_string(failures.size()) + " addresses: " + attempts +
                                    "; last");
  }
}

socket create_connection(const address& addr, timeout_type timeout, const address& source_address) {
  connection_options options;
  options.timeout = timeout;
  options.source_address = source_address;
  return create_connection(addr, options);
}

bool has_dualstack_ipv6() noexcept {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const int off = 0;
  const bool ok = ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) == 0;
  ::close(fd);
  return ok;
}

socket create_server(const address& addr, const server_options& options) {
  if (options.dualstack_ipv6) {
    if (options.family != AF_INET6)
      throw std::invalid_argument("dualstack_ipv6 requires AF_INET6 family");
    if (!has_dualstack_ipv6())
      throw std::invalid_argument("dualstack_ipv6 not supported on this platform");
  }
  if (options.reuse_port && options.family != AF_INET && options.family != AF_INET6)
    throw std::invalid_argument("reuse_port applies to AF_INET and AF_INET6 listeners");
  socket sock(options.family, SOCK_STREAM, 0);
  // Python sets SO_REUSEADDR on POSIX so a restarted server can bind while old
  // connections sit in TIME_WAIT; a failure there is not worth failing for.
  const int on = 1;
  ::setsockopt(sock.fileno(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (options.reuse_port) sock.setsockopt(so_reuseport, true);
  // Linux's default is dual-stack; Python asks for V6ONLY explicitly so the
  // behaviour does not depend on net.ipv6.bindv6only.
  if (options.family == AF_INET6) sock.setsockopt(ipv6_v6only, !options.dualstack_ipv6);
  try {
    sock.bind(addr);
  } catch (const os_error& e) {
    throw_os_error(e.code(), "create_server: bind(" + addr.to_string() + ")");
  }
  if (options.backlog) {
    sock.listen(*options.backlog);
  } else {
    sock.listen();
  }
  return sock;
}

void close(int fd) {
  if (fd < 0)
    throw_os_error(std::make_error_code(std::errc::bad_file_descriptor),
                   "close(" + std::to_string(fd) + ")");
  detail::note_descriptor_release();
  if (::close(fd) != 0 && errno != ECONNRESET && errno != EINTR) {
    const std::error_code ec = last_error();  // before the message allocates
    throw_os_error(ec, "close(" + std::to_string(fd) + ")");
  }
}

}  // namespace pysock
