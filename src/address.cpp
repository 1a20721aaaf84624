// SPDX-License-Identifier: MIT
//
// Addresses: parsing Python's address forms, resolving host names for a
// socket's family (CPython's setipaddr), printing, comparing.
#include "pysock/address.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstddef>
#include <cstring>
#include <ostream>
#include <stdexcept>

#include "pysock/error.hpp"

namespace pysock {
namespace {

constexpr socklen_t unix_path_offset = offsetof(sockaddr_un, sun_path);
constexpr std::size_t unix_path_capacity = sizeof(sockaddr_un{}.sun_path);

bool port_in_range(int port) noexcept { return port >= 0 && port <= 65535; }

// libc would stop at the NUL and resolve a shorter name than was given.
void check_no_nul(std::string_view host) {
  if (host.find('\0') != std::string_view::npos)
    throw std::invalid_argument("address: embedded null character in host name");
}

const sockaddr_in& as_in(const sockaddr_buffer& b) {
  return *reinterpret_cast<const sockaddr_in*>(&b.storage);
}
const sockaddr_in6& as_in6(const sockaddr_buffer& b) {
  return *reinterpret_cast<const sockaddr_in6*>(&b.storage);
}
sockaddr_in& as_in(sockaddr_buffer& b) { return *reinterpret_cast<sockaddr_in*>(&b.storage); }
sockaddr_in6& as_in6(sockaddr_buffer& b) { return *reinterpret_cast<sockaddr_in6*>(&b.storage); }
const sockaddr_un& as_un(const sockaddr_buffer& b) {
  return *reinterpret_cast<const sockaddr_un*>(&b.storage);
}

bool parse_ipv4(std::string_view host, int port, sockaddr_buffer& out) {
  char text[INET_ADDRSTRLEN];
  if (host.size() >= sizeof text) return false;
  std::memcpy(text, host.data(), host.size());
  text[host.size()] = '\0';
  sockaddr_in& sin = as_in(out);
  if (::inet_pton(AF_INET, text, &sin.sin_addr) != 1) return false;
  sin.sin_family = AF_INET;
  sin.sin_port = ::htons(static_cast<std::uint16_t>(port));
  out.length = sizeof(sockaddr_in);
  return true;
}

// Only literals without "%scope": a scoped literal goes through getaddrinfo,
// which turns the interface name into the scope id.
bool parse_ipv6(std::string_view host, int port, std::uint32_t flowinfo, std::uint32_t scope_id,
                sockaddr_buffer& out) {
  char text[INET6_ADDRSTRLEN];
  if (host.size() >= sizeof text || host.find('%') != std::string_view::npos) return false;
  std::memcpy(text, host.data(), host.size());
  text[host.size()] = '\0';
  sockaddr_in6& sin6 = as_in6(out);
  if (::inet_pton(AF_INET6, text, &sin6.sin6_addr) != 1) return false;
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = ::htons(static_cast<std::uint16_t>(port));
  sin6.sin6_flowinfo = ::htonl(flowinfo);
  sin6.sin6_scope_id = scope_id;
  out.length = sizeof(sockaddr_in6);
  return true;
}

std::error_code gai_error(int code) {
  if (code == EAI_SYSTEM) return last_error();
  return {code, gai_category()};
}

}  // namespace

// Ports and flowinfo are checked by the call that uses the address (as in
// Python, whose bind() says "port must be 0-65535"); until then an address
// with a value out of range stays in text form.
address::address(std::string_view host, int port) {
  check_no_nul(host);
  if (port_in_range(port) && (parse_ipv4(host, port, sa_) || parse_ipv6(host, port, 0, 0, sa_))) {
    form_ = form::resolved;
    return;
  }
  form_ = form::host_name;
  text_ = host;
  port_ = port;
}

address address::inet6(std::string_view host, int port, std::uint32_t flowinfo,
                       std::uint32_t scope_id) {
  check_no_nul(host);
  address a;
  a.four_tuple_ = true;
  a.port_ = port;
  a.flowinfo_ = flowinfo;
  a.scope_id_ = scope_id;
  if (port_in_range(port) && flowinfo <= 0xFFFFF &&
      parse_ipv6(host, port, flowinfo, scope_id, a.sa_)) {
    a.form_ = form::resolved;
  } else {
    a.form_ = form::host_name;
    a.text_ = host;
  }
  return a;
}

address address::unix_path(std::string_view path) {
  address a;
  const bool abstract = !path.empty() && path.front() == '\0';
  // A regular path needs room for its terminating NUL; an abstract name is
  // exactly its bytes (Linux counts them from the address length).
  const std::size_t limit = abstract ? unix_path_capacity : unix_path_capacity - 1;
  if (path.size() > limit) {
    a.form_ = form::unix_too_long;
    a.text_ = path;
    return a;
  }
  auto& sun = *reinterpret_cast<sockaddr_un*>(&a.sa_.storage);
  sun.sun_family = AF_UNIX;
  if (!path.empty()) std::memcpy(sun.sun_path, path.data(), path.size());
  a.sa_.length =
      static_cast<socklen_t>(unix_path_offset + path.size() + (abstract || path.empty() ? 0 : 1));
  a.form_ = form::resolved;
  return a;
}

address address::abstract_name(std::string_view name) {
  std::string path(1, '\0');
  path.append(name);
  return unix_path(path);
}

address address::from_sockaddr(const sockaddr* sa, socklen_t length) noexcept {
  address a;
  if (sa == nullptr || length == 0) return a;
  if (length > sizeof(sockaddr_storage)) length = sizeof(sockaddr_storage);
  std::memcpy(&a.sa_.storage, sa, length);
  a.sa_.length = length;
  a.form_ = form::resolved;
  a.four_tuple_ = sa->sa_family == AF_INET6;
  return a;
}

int address::family() const noexcept {
  switch (form_) {
    case form::resolved:
      return sa_.family();
    case form::unix_too_long:
      return AF_UNIX;
    default:
      return AF_UNSPEC;
  }
}

std::string address::host() const {
  if (form_ == form::host_name) return text_;
  if (form_ != form::resolved) return {};
  char text[INET6_ADDRSTRLEN] = {};
  if (sa_.family() == AF_INET) {
    ::inet_ntop(AF_INET, &as_in(sa_).sin_addr, text, sizeof text);
  } else if (sa_.family() == AF_INET6) {
    ::inet_ntop(AF_INET6, &as_in6(sa_).sin6_addr, text, sizeof text);
  }
  return text;
}

int address::port() const noexcept {
  if (form_ == form::host_name) return port_;
  if (form_ != form::resolved) return 0;
  if (sa_.family() == AF_INET) return ::ntohs(as_in(sa_).sin_port);
  if (sa_.family() == AF_INET6) return ::ntohs(as_in6(sa_).sin6_port);
  return 0;
}

std::uint32_t address::flowinfo() const noexcept {
  if (form_ == form::resolved && sa_.family() == AF_INET6)
    return ::ntohl(as_in6(sa_).sin6_flowinfo);
  return form_ == form::host_name ? flowinfo_ : 0;
}

std::uint32_t address::scope_id() const noexcept {
  if (form_ == form::resolved && sa_.family() == AF_INET6) return as_in6(sa_).sin6_scope_id;
  return form_ == form::host_name ? scope_id_ : 0;
}

std::string address::path() const {
  if (form_ == form::unix_too_long) return text_;
  if (form_ != form::resolved || sa_.family() != AF_UNIX || sa_.length <= unix_path_offset)
    return {};
  const char* p = as_un(sa_).sun_path;
  const std::size_t size = sa_.length - unix_path_offset;
  if (p[0] == '\0') return std::string(p, size);  // abstract: every byte counts
  return std::string(p, ::strnlen(p, size));      // regular: up to the NUL
}

bool address::is_abstract() const noexcept {
  if (form_ == form::unix_too_long) return !text_.empty() && text_.front() == '\0';
  return form_ == form::resolved && sa_.family() == AF_UNIX && sa_.length > unix_path_offset &&
         as_un(sa_).sun_path[0] == '\0';
}

std::string address::to_string() const {
  switch (form_) {
    case form::empty:
      return {};
    case form::host_name: {
      const std::string shown = text_.empty() ? "*" : text_;
      const bool bracket = shown.find(':') != std::string::npos;
      return (bracket ? "[" + shown + "]" : shown) + ":" + std::to_string(port_);
    }
    case form::unix_too_long:
    case form::resolved:
      break;
  }
  switch (family()) {
    case AF_INET:
      return host() + ":" + std::to_string(port());
    case AF_INET6: {
      std::string text = "[" + host();
      if (scope_id() != 0) text += "%" + std::to_string(scope_id());
      return text + "]:" + std::to_string(port());
    }
    case AF_UNIX: {
      std::string p = path();
      if (!p.empty() && p.front() == '\0') p.front() = '@';  // as ss(8) shows abstract names
      return p;
    }
    default:
      return "<family " + std::to_string(family()) + ">";
  }
}

sockaddr_buffer address::to_sockaddr(int family, std::error_code& ec) const {
  ec.clear();
  sockaddr_buffer out;
  switch (form_) {
    case form::empty:
      ec = std::make_error_code(std::errc::destination_address_required);
      return out;
    case form::unix_too_long:
      ec = family == AF_UNIX ? make_error_code(socket_errc::path_too_long)
                             : make_error_code(socket_errc::address_family_mismatch);
      return out;
    case form::resolved: {
      const int own = sa_.family();
      if (own == family && !(four_tuple_ && family == AF_INET)) return sa_;
      // Python resolves a literal of the other IP version for the socket's
      // family and getaddrinfo answers EAI_ADDRFAMILY; other mixes are a
      // plain family mismatch.
      const bool ip_mix =
          (own == AF_INET && family == AF_INET6) || (own == AF_INET6 && family == AF_INET);
      ec = ip_mix ? std::error_code(EAI_ADDRFAMILY, gai_category())
                  : make_error_code(socket_errc::address_family_mismatch);
      return out;
    }
    case form::host_name:
      break;
  }
  if (!port_in_range(port_)) {
    ec = make_error_code(socket_errc::port_out_of_range);
    return out;
  }
  if (flowinfo_ > 0xFFFFF) {
    ec = make_error_code(socket_errc::flowinfo_out_of_range);
    return out;
  }
  if (family != AF_INET && family != AF_INET6) {
    ec = make_error_code(socket_errc::address_family_mismatch);
    return out;
  }
  if (four_tuple_ && family == AF_INET) {
    ec = make_error_code(socket_errc::address_family_mismatch);
    return out;
  }
  if (text_.empty()) {  // Python's '' is the wildcard address
    if (family == AF_INET) {
      parse_ipv4("0.0.0.0", port_, out);
    } else {
      parse_ipv6("::", port_, flowinfo_, scope_id_, out);
    }
    return out;
  }
  if (text_ == "<broadcast>") {
    if (family != AF_INET) {
      ec = make_error_code(socket_errc::address_family_mismatch);
      return out;
    }
    parse_ipv4("255.255.255.255", port_, out);
    return out;
  }
  addrinfo hints{};
  hints.ai_family = family;
  addrinfo* results = nullptr;
  if (const int rc = ::getaddrinfo(text_.c_str(), nullptr, &hints, &results); rc != 0) {
    ec = gai_error(rc);
    return out;
  }
  if (results == nullptr) {
    ec = make_error_code(socket_errc::empty_resolution);
    return out;
  }
  std::memcpy(&out.storage, results->ai_addr, results->ai_addrlen);
  out.length = results->ai_addrlen;
  ::freeaddrinfo(results);
  if (family == AF_INET) {
    as_in(out).sin_port = ::htons(static_cast<std::uint16_t>(port_));
  } else {
    sockaddr_in6& sin6 = as_in6(out);
    sin6.sin6_port = ::htons(static_cast<std::uint16_t>(port_));
    sin6.sin6_flowinfo = ::htonl(flowinfo_);
    if (scope_id_ != 0) sin6.sin6_scope_id = scope_id_;  // an explicit scope wins over "%iface"
  }
  return out;
}

bool operator==(const address& a, const address& b) noexcept {
  if (a.form_ != b.form_) return false;
  switch (a.form_) {
    case address::form::empty:
      return true;
    case address::form::host_name:
      return a.text_ == b.text_ && a.port_ == b.port_ && a.flowinfo_ == b.flowinfo_ &&
             a.scope_id_ == b.scope_id_ && a.four_tuple_ == b.four_tuple_;
    case address::form::unix_too_long:
      return a.text_ == b.text_;
    case address::form::resolved:
      break;
  }
  if (a.sa_.family() != b.sa_.family()) return false;
  switch (a.sa_.family()) {
    case AF_INET:
      return as_in(a.sa_).sin_addr.s_addr == as_in(b.sa_).sin_addr.s_addr &&
             as_in(a.sa_).sin_port == as_in(b.sa_).sin_port;
    case AF_INET6: {
      const sockaddr_in6& x = as_in6(a.sa_);
      const sockaddr_in6& y = as_in6(b.sa_);
      return std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0 &&
             x.sin6_port == y.sin6_port && x.sin6_flowinfo == y.sin6_flowinfo &&
             x.sin6_scope_id == y.sin6_scope_id;
    }
    case AF_UNIX:
      return a.path() == b.path();
    default:
      return a.sa_.length == b.sa_.length &&
             std::memcmp(&a.sa_.storage, &b.sa_.storage, a.sa_.length) == 0;
  }
}

std::ostream& operator<<(std::ostream& out, const address& a) { return out << a.to_string(); }

}  // namespace pysock
