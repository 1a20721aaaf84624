// SPDX-License-Identifier: MIT
//
// inet_pton/inet_ntop/inet_aton/inet_ntoa with Python's argument checks.
#include "pysock/convert.hpp"

#include <netinet/in.h>

#include <cerrno>
#include <stdexcept>
#include <string>

#include "pysock/error.hpp"

namespace pysock {
namespace {

std::size_t packed_size(int family) {
  switch (family) {
    case AF_INET:
      return sizeof(in_addr);
    case AF_INET6:
      return sizeof(in6_addr);
    default:
      return 0;
  }
}

}  // namespace

bytes inet_pton(int family, std::string_view text) {
  const std::string context =
      "inet_pton(" + std::to_string(family) + ", " + std::string(text) + ")";
  const std::size_t size = packed_size(family);
  if (size == 0)
    throw_os_error(std::make_error_code(std::errc::address_family_not_supported), context);
  const std::string terminated(text);
  bytes packed(size, '\0');
  // An embedded NUL would make libc read a shorter string than was given.
  if (terminated.find('\0') != std::string::npos ||
      ::inet_pton(family, terminated.c_str(), packed.data()) != 1)
    throw os_error(make_error_code(socket_errc::illegal_address_string), context);
  return packed;
}

std::string inet_ntop(int family, const_buffer packed) {
  const std::size_t size = packed_size(family);
  if (size == 0)
    throw std::invalid_argument("inet_ntop: unknown address family " + std::to_string(family));
  if (packed.size() != size)
    throw std::invalid_argument("inet_ntop: invalid length of packed IP address string");
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family, packed.data(), text, sizeof text);
  return text;
}

bytes inet_aton(std::string_view text) {
  const std::string terminated(text);
  in_addr parsed{};
  if (terminated.find('\0') != std::string::npos || ::inet_aton(terminated.c_str(), &parsed) == 0)
    throw os_error(make_error_code(socket_errc::illegal_address_string),
                   "inet_aton(" + terminated + ")");
  return bytes(reinterpret_cast<const char*>(&parsed), sizeof parsed);
}

std::string inet_ntoa(const_buffer packed) {
  if (packed.size() != sizeof(in_addr))
    throw os_error(make_error_code(socket_errc::packed_length),
                   "inet_ntoa(" + std::to_string(packed.size()) + " bytes)");
  return inet_ntop(AF_INET, packed);
}

}  // namespace pysock
