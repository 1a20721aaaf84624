// SPDX-License-Identifier: MIT
//
// Name, service, protocol and interface look-ups (the resolver half of
// CPython's socketmodule.c).
#include "pysock/resolver.hpp"

#include <arpa/inet.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "pysock/error.hpp"

namespace pysock {
namespace {

// EAI_SYSTEM means "look at errno": Python raises that OSError instead. The
// caller saves errno right after the failed call, before building messages.
[[noreturn]] void throw_gai(int code, int saved_errno, const std::string& context) {
  if (code == EAI_SYSTEM) throw_os_error({saved_errno, std::system_category()}, context);
  throw_os_error({code, gai_category()}, context);
}

[[noreturn]] void throw_not_found(socket_errc what, const std::string& context) {
  throw os_error(make_error_code(what), context);
}

struct addrinfo_deleter {
  void operator()(addrinfo* list) const noexcept { ::freeaddrinfo(list); }
};
using addrinfo_list = std::unique_ptr<addrinfo, addrinfo_deleter>;

// A NUL inside a name would make libc look up a shorter one than was given
// ("localhost\0.evil.example" → "localhost"): refuse it, as Python does.
std::string null_terminated(std::string_view text) {
  if (text.find('\0') != std::string_view::npos)
    throw std::invalid_argument("embedded null character in \"" +
                                std::string(text.substr(0, text.find('\0'))) + "...\"");
  return std::string(text);
}

// glibc's reentrant netdb calls want a caller buffer and say ERANGE when it is
// too small; grow it until the answer fits.
template <class Call>
int with_growing_buffer(std::vector<char>& buffer, Call&& call) {
  buffer.resize(1024);
  for (;;) {
    const int rc = call(buffer.data(), buffer.size());
    if (rc != ERANGE || buffer.size() >= (1u << 20)) return rc;
    buffer.resize(buffer.size() * 2);
  }
}

host_entry to_host_entry(const hostent& h) {
  host_entry entry;
  entry.hostname = h.h_name ? h.h_name : "";
  for (char** alias = h.h_aliases; alias && *alias; ++alias) entry.aliases.emplace_back(*alias);
  char text[INET6_ADDRSTRLEN];
  for (char** a = h.h_addr_list; a && *a; ++a) {
    if (::inet_ntop(h.h_addrtype, *a, text, sizeof text) != nullptr)
      entry.addresses.emplace_back(text);
  }
  return entry;
}

[[noreturn]] void throw_herror(int h_error, const std::string& context) {
  throw_os_error({h_error, herror_category()}, context);
}

}  // namespace

std::vector<addrinfo_entry> getaddrinfo(std::optional<std::string_view> host, service port,
                                        int family, int type, int proto, int flags) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = type;
  hints.ai_protocol = proto;
  hints.ai_flags = flags;
  const std::string host_text = host ? null_terminated(*host) : std::string();
  addrinfo* raw = nullptr;
  const int rc = ::getaddrinfo(host ? host_text.c_str() : nullptr, port.c_str(), &hints, &raw);
  const int saved_errno = errno;
  const addrinfo_list list(raw);
  if (rc != 0) {
    throw_gai(rc, saved_errno,
              "getaddrinfo(" + (host ? host_text : std::string("None")) + ", " +
                  (port.c_str() ? port.c_str() : "None") + ")");
  }
  std::vector<addrinfo_entry> entries;
  for (const addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
    addrinfo_entry& e = entries.emplace_back();
    e.family = ai->ai_family;
    e.type = ai->ai_socktype;
    e.proto = ai->ai_protocol;
    if (ai->ai_canonname) e.canonname = ai->ai_canonname;
    e.sockaddr = address::from_sockaddr(ai->ai_addr, ai->ai_addrlen);
  }
  return entries;
}

std::pair<std::string, std::string> getnameinfo(const address& sockaddr, int flags) {
  const std::string context = "getnameinfo(" + sockaddr.to_string() + ")";
  if (sockaddr.family() != AF_INET && sockaddr.family() != AF_INET6) {
    if (sockaddr.needs_resolution())
      throw_gai(EAI_NONAME, 0, context);  // Python: numeric hosts only
    throw_os_error(make_error_code(socket_errc::address_family_mismatch), context);
  }
  std::error_code ec;
  const sockaddr_buffer target = sockaddr.to_sockaddr(sockaddr.family(), ec);
  if (ec) throw_os_error(ec, context);
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
  const int rc =
      ::getnameinfo(target.get(), target.length, host, sizeof host, serv, sizeof serv, flags);
  if (rc != 0) throw_gai(rc, errno, context);
  return {host, serv};
}

std::string gethostname() {
  char name[HOST_NAME_MAX + 1] = {};
  if (::gethostname(name, sizeof name - 1) != 0) throw_os_error(last_error(), "gethostname()");
  return name;
}

std::string gethostbyname(std::string_view name) {
  std::error_code ec;
  const address resolved = address(name, 0);
  const sockaddr_buffer sa = resolved.to_sockaddr(AF_INET, ec);
  if (ec) throw_os_error(ec, "gethostbyname(" + std::string(name) + ")");
  return address::from_sockaddr(sa.get(), sa.length).host();
}

host_entry gethostbyname_ex(std::string_view name) {
  const std::string text = null_terminated(name);
  hostent result{};
  hostent* found = nullptr;
  int h_error = 0;
  std::vector<char> buffer;
  const int rc = with_growing_buffer(buffer, [&](char* data, std::size_t size) {
    return ::gethostbyname_r(text.c_str(), &result, data, size, &found, &h_error);
  });
  if (rc != 0 || found == nullptr)
    throw_herror(h_error ? h_error : HOST_NOT_FOUND, "gethostbyname_ex(" + text + ")");
  return to_host_entry(*found);
}

host_entry gethostbyaddr(std::string_view ip_or_name) {
  const std::string context = "gethostbyaddr(" + std::string(ip_or_name) + ")";
  // Python resolves a name first (any family), then looks the address up.
  const std::vector<addrinfo_entry> resolved =
      getaddrinfo(ip_or_name, service(), AF_UNSPEC, SOCK_STREAM);
  if (resolved.empty()) throw_herror(HOST_NOT_FOUND, context);
  const address& addr = resolved.front().sockaddr;
  std::error_code ec;
  const sockaddr_buffer sa = addr.to_sockaddr(addr.family(), ec);
  if (ec) throw_os_error(ec, context);
  const void* raw = nullptr;
  socklen_t raw_length = 0;
  if (sa.family() == AF_INET) {
    raw = &reinterpret_cast<const sockaddr_in*>(sa.get())->sin_addr;
    raw_length = sizeof(in_addr);
  } else {
    raw = &reinterpret_cast<const sockaddr_in6*>(sa.get())->sin6_addr;
    raw_length = sizeof(in6_addr);
  }
  hostent result{};
  hostent* found = nullptr;
  int h_error = 0;
  std::vector<char> buffer;
  const int rc = with_growing_buffer(buffer, [&](char* data, std::size_t size) {
    return ::gethostbyaddr_r(raw, raw_length, sa.family(), &result, data, size, &found, &h_error);
  });
  if (rc != 0 || found == nullptr) throw_herror(h_error ? h_error : HOST_NOT_FOUND, context);
  return to_host_entry(*found);
}

std::string getfqdn(std::string_view name) {
  std::string wanted(name);
  if (wanted.empty() || wanted == "0.0.0.0" || wanted == "::") wanted = gethostname();
  try {
    const host_entry entry = gethostbyaddr(wanted);
    if (entry.hostname.find('.') != std::string::npos) return entry.hostname;
    for (const std::string& alias : entry.aliases) {
      if (alias.find('.') != std::string::npos) return alias;
    }
    return entry.hostname;
  } catch (const os_error&) {
    return wanted;  // Python returns the name unchanged when the look-up fails
  }
}

int getservbyname(std::string_view name, std::optional<std::string_view> proto) {
  const std::string name_text = null_terminated(name);
  const std::string proto_text = proto ? null_terminated(*proto) : std::string();
  servent result{};
  servent* found = nullptr;
  std::vector<char> buffer;
  with_growing_buffer(buffer, [&](char* data, std::size_t size) {
    return ::getservbyname_r(name_text.c_str(), proto ? proto_text.c_str() : nullptr, &result, data,
                             size, &found);
  });
  if (found == nullptr)
    throw_not_found(
        socket_errc::service_not_found,
        "getservbyname(" + name_text + (proto ? ", " + proto_text : std::string()) + ")");
  return ::ntohs(static_cast<std::uint16_t>(found->s_port));
}

std::string getservbyport(int port, std::optional<std::string_view> proto) {
  if (port < 0 || port > 65535) throw std::out_of_range("getservbyport: port must be 0-65535.");
  const std::string proto_text = proto ? null_terminated(*proto) : std::string();
  servent result{};
  servent* found = nullptr;
  std::vector<char> buffer;
  with_growing_buffer(buffer, [&](char* data, std::size_t size) {
    return ::getservbyport_r(static_cast<int>(::htons(static_cast<std::uint16_t>(port))),
                             proto ? proto_text.c_str() : nullptr, &result, data, size, &found);
  });
  if (found == nullptr)
    throw_not_found(socket_errc::port_not_found, "getservbyport(" + std::to_string(port) +
                                                     (proto ? ", " + proto_text : std::string()) +
                                                     ")");
  return found->s_name;
}

int getprotobyname(std::string_view name) {
  const std::string text = null_terminated(name);
  protoent result{};
  protoent* found = nullptr;
  std::vector<char> buffer;
  with_growing_buffer(buffer, [&](char* data, std::size_t size) {
    return ::getprotobyname_r(text.c_str(), &result, data, size, &found);
  });
  if (found == nullptr)
    throw_not_found(socket_errc::protocol_not_found, "getprotobyname(" + text + ")");
  return found->p_proto;
}

std::vector<std::pair<unsigned, std::string>> if_nameindex() {
  struct deleter {
    void operator()(struct if_nameindex* list) const noexcept { ::if_freenameindex(list); }
  };
  const std::unique_ptr<struct if_nameindex, deleter> list(::if_nameindex());
  if (!list) throw_os_error(last_error(), "if_nameindex()");
  std::vector<std::pair<unsigned, std::string>> result;
  for (const struct if_nameindex* i = list.get(); i->if_index != 0 || i->if_name != nullptr; ++i) {
    result.emplace_back(i->if_index, i->if_name);
  }
  return result;
}

unsigned if_nametoindex(std::string_view name) {
  const std::string text = null_terminated(name);
  const unsigned index = ::if_nametoindex(text.c_str());
  if (index == 0) throw_not_found(socket_errc::interface_not_found, "if_nametoindex(" + text + ")");
  return index;
}

std::string if_indextoname(unsigned index) {
  char name[IF_NAMESIZE + 1] = {};
  if (::if_indextoname(index, name) == nullptr) {
    const std::error_code ec = last_error();  // before the message allocates
    throw_os_error(ec, "if_indextoname(" + std::to_string(index) + ")");
  }
  return name;
}

}  // namespace pysock
