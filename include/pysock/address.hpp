// SPDX-License-Identifier: MIT
//
// pysock/address.hpp — socket addresses: Python's address tuples as one value type.
//
//   Python                               pysock
//   ('127.0.0.1', 8080)                  pysock::address{"127.0.0.1", 8080}
//   ('localhost', 8080)  (resolved at bind/connect)    address{"localhost", 8080}
//   ('', 8080)  ('<broadcast>', 9)       address{"", 8080}, address{"<broadcast>", 9}
//   ('::1', 8080, flowinfo, scope_id)    pysock::address::inet6("::1", 8080, 0, 0)
//   '/tmp/app.sock'                      pysock::address::unix_path("/tmp/app.sock")
//   b'\0name'  (Linux abstract)          pysock::address::abstract_name("name")
//
// An address made from a numeric host is parsed at once; a host name (or "" or
// "<broadcast>") is kept as text and resolved by the socket call that uses it,
// for that socket's family, exactly as Python's bind()/connect() do. Addresses
// that come back from the kernel (getsockname, getpeername, accept, recvfrom)
// are always numeric and allocate nothing.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <system_error>

namespace pysock {

/// A kernel socket address of any family, as bind()/connect() take it.
struct sockaddr_buffer {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() noexcept { return reinterpret_cast<sockaddr*>(&storage); }
  int family() const noexcept { return length ? storage.ss_family : AF_UNSPEC; }
};

class address {
 public:
  /// The empty address: what recvfrom() reports when the kernel gives none
  /// (Python's None). family() is AF_UNSPEC.
  address() noexcept = default;

  /// Python's (host, port) pair. `host` is an IPv4 or IPv6 literal, a host
  /// name, "" (the wildcard) or "<broadcast>"; a NUL inside it throws
  /// std::invalid_argument. The port is checked (0–65535) by the call that
  /// uses the address, which then names itself in the error.
  address(std::string_view host, int port);
  address(const char* host, int port) : address(std::string_view(host), port) {}
  address(const std::string& host, int port) : address(std::string_view(host), port) {}
  /// A null host is a mistake, not Python's None (which has no meaning here).
  address(std::nullptr_t, int) = delete;

  /// Python's 4-tuple (host, port, flowinfo, scope_id) for AF_INET6 sockets.
  /// flowinfo must be 0–0xFFFFF. A non-zero scope given here overrides a
  /// "%iface" in `host`; zero keeps it (Python would overwrite it with 0,
  /// which makes bind(('fe80::1%lo', 0)) fail: pysock keeps what was said).
  static address inet6(std::string_view host, int port, std::uint32_t flowinfo = 0,
                       std::uint32_t scope_id = 0);

  /// An AF_UNIX address. A path starting with '\0' is a Linux abstract name;
  /// an empty path asks the kernel to autobind an abstract name.
  static address unix_path(std::string_view path);
  /// A Linux abstract-namespace AF_UNIX name: `name` without the leading '\0'.
  static address abstract_name(std::string_view name);

  /// Wraps what the kernel returned (numeric, never resolves anything).
  static address from_sockaddr(const sockaddr* sa, socklen_t length) noexcept;

  /// AF_INET, AF_INET6, AF_UNIX, another family for kernel-given addresses,
  /// or AF_UNSPEC for the empty address and for a host name not yet resolved.
  int family() const noexcept;
  bool empty() const noexcept { return form_ == form::empty; }
  /// True while the host is a name (or "" / "<broadcast>") to be resolved.
  bool needs_resolution() const noexcept { return form_ == form::host_name; }

  /// The host as text: numeric for resolved addresses, the name otherwise.
  std::string host() const;
  /// The port (AF_INET/AF_INET6), 0 for other families.
  int port() const noexcept;
  std::uint32_t flowinfo() const noexcept;
  std::uint32_t scope_id() const noexcept;
  /// AF_UNIX: the path bytes; an abstract name starts with '\0'; "" when unnamed.
  std::string path() const;
  bool is_abstract() const noexcept;

  /// "127.0.0.1:8080", "[::1]:8080", "/tmp/app.sock", "@abstract", "" (unnamed
  /// or empty), "localhost:80" for a name not yet resolved.
  std::string to_string() const;

  /// The kernel form of this address for a socket of `family`: resolves a host
  /// name (blocking getaddrinfo, first result), applies "" → wildcard and
  /// "<broadcast>" → INADDR_BROADCAST, and checks the port, flowinfo and path
  /// length. Errors: gai_category codes from the resolver, EAFNOSUPPORT-like
  /// socket_errc::address_family_mismatch, socket_errc::path_too_long, and
  /// socket_errc::port_out_of_range / flowinfo_out_of_range (both equal to
  /// std::errc::invalid_argument) for values out of range.
  sockaddr_buffer to_sockaddr(int family, std::error_code& ec) const;

  friend bool operator==(const address& a, const address& b) noexcept;

 private:
  enum class form : std::uint8_t { empty, resolved, host_name, unix_too_long };
  form form_ = form::empty;
  sockaddr_buffer sa_{};
  std::string text_;  // the host name (form::host_name) or an over-long path
  int port_ = 0;
  std::uint32_t flowinfo_ = 0;
  std::uint32_t scope_id_ = 0;
  bool four_tuple_ = false;  // made with inet6(): only AF_INET6 sockets take it
};

std::ostream& operator<<(std::ostream& out, const address& a);

}  // namespace pysock
