// SPDX-License-Identifier: MIT
//
// pysock/resolver.hpp — Python's name and service look-ups.
//
//   socket.getaddrinfo('localhost', 80, type=SOCK_STREAM)
//       pysock::getaddrinfo("localhost", 80, AF_UNSPEC, SOCK_STREAM)
//   socket.getnameinfo(('127.0.0.1', 80), NI_NUMERICSERV)
//       pysock::getnameinfo({"127.0.0.1", 80}, NI_NUMERICSERV)
//   socket.gethostname(), gethostbyname(), gethostbyname_ex(), gethostbyaddr(),
//   getfqdn(), getservbyname(), getservbyport(), getprotobyname(),
//   if_nameindex(), if_nametoindex(), if_indextoname()  — same names here.
//
// Resolver failures throw pysock::gaierror (code() in gai_category(), the
// EAI_* value and gai_strerror text); EAI_SYSTEM becomes the errno's os_error.
// gethostbyname_ex()/gethostbyaddr() failures throw pysock::herror. Every call
// here may block on DNS.
#pragma once

#include <net/if.h>
#include <netdb.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pysock/address.hpp"

namespace pysock {

/// The port argument of getaddrinfo(): a number, a service name ("http"),
/// digits as text, or nothing (Python's None).
class service {
 public:
  service() = default;        // None
  service(std::nullopt_t) {}  // None
  service(int port) : text_(std::to_string(port)) {}
  service(std::string_view name) : text_(name) {}
  service(const char* name) : text_(name ? std::optional<std::string>(name) : std::nullopt) {}
  service(const std::string& name) : text_(name) {}
  const char* c_str() const noexcept { return text_ ? text_->c_str() : nullptr; }

 private:
  std::optional<std::string> text_;
};

/// One getaddrinfo() result: Python's (family, type, proto, canonname, sockaddr).
struct addrinfo_entry {
  int family = 0;
  int type = 0;
  int proto = 0;
  std::string canonname;  ///< "" unless AI_CANONNAME (then set on the first entry)
  address sockaddr;       ///< numeric: (host, port) or the IPv6 4-tuple
};

/// Python's getaddrinfo(host, port, family=0, type=0, proto=0, flags=0).
/// `host` std::nullopt is Python's None: loopback, or the wildcard with
/// AI_PASSIVE. An empty host is not None: it fails with EAI_NONAME.
std::vector<addrinfo_entry> getaddrinfo(std::optional<std::string_view> host, service port,
                                        int family = AF_UNSPEC, int type = 0, int proto = 0,
                                        int flags = 0);
/// getaddrinfo(nullptr, ...) is Python's getaddrinfo(None, ...).
inline std::vector<addrinfo_entry> getaddrinfo(std::nullptr_t, service port, int family = AF_UNSPEC,
                                               int type = 0, int proto = 0, int flags = 0) {
  return getaddrinfo(std::optional<std::string_view>(), std::move(port), family, type, proto,
                     flags);
}

/// Python's getnameinfo(sockaddr, flags) → (host, service). The address host
/// must be numeric (a name gives gaierror EAI_NONAME).
std::pair<std::string, std::string> getnameinfo(const address& sockaddr, int flags);

std::string gethostname();

/// IPv4 only: "" → "0.0.0.0", "<broadcast>" → "255.255.255.255", a name is
/// resolved (AF_INET), an IPv6 literal is gaierror EAI_ADDRFAMILY.
std::string gethostbyname(std::string_view name);

/// Python's (hostname, aliaslist, ipaddrlist).
struct host_entry {
  std::string hostname;
  std::vector<std::string> aliases;
  std::vector<std::string> addresses;
};
/// IPv4 forward look-up with aliases; failures throw herror.
host_entry gethostbyname_ex(std::string_view name);
/// Reverse look-up of an address (a name is resolved first); failures throw herror.
host_entry gethostbyaddr(std::string_view ip_or_name);
/// The fully qualified name: the first of hostname and aliases with a dot.
/// "" (or "0.0.0.0", "::") means this host. Never throws for look-up failures:
/// returns the name given.
std::string getfqdn(std::string_view name = "");

/// Port number of a service ("http" → 80); os_error "service/proto not found".
int getservbyname(std::string_view name, std::optional<std::string_view> proto = std::nullopt);
/// Service name of a port; std::out_of_range outside 0–65535; os_error
/// "port/proto not found".
std::string getservbyport(int port, std::optional<std::string_view> proto = std::nullopt);
/// Protocol number ("tcp" → 6); os_error "protocol not found".
int getprotobyname(std::string_view name);

/// [(index, name), ...] of the host's network interfaces.
std::vector<std::pair<unsigned, std::string>> if_nameindex();
/// os_error "no interface with this name" for an unknown name.
unsigned if_nametoindex(std::string_view name);
/// os_error ENXIO for an unknown index.
std::string if_indextoname(unsigned index);

}  // namespace pysock
