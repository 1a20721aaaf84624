// SPDX-License-Identifier: MIT
//
// pysock/convert.hpp — address text ↔ packed bytes, and byte order.
//
//   socket.inet_pton(AF_INET6, '::1')   pysock::inet_pton(AF_INET6, "::1")   → bytes
//   socket.inet_ntop(AF_INET, packed)   pysock::inet_ntop(AF_INET, packed)   → std::string
//   socket.inet_aton('127.1')           pysock::inet_aton("127.1")           → 4 bytes
//   socket.inet_ntoa(packed)            pysock::inet_ntoa(packed)
//   socket.htons(x) ... ntohl(x)        pysock::htons(x) ... pysock::ntohl(x)
#pragma once

#include <arpa/inet.h>

#include <concepts>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "pysock/buffer.hpp"

// glibc defines htons() & co. as macros when optimising; they would rewrite
// pysock::htons into pysock::__bswap_16. The libc functions stay declared.
#undef htons
#undef ntohs
#undef htonl
#undef ntohl

namespace pysock {

/// Strict parsing (no "127.1"): os_error "inet_pton(2, 127.1): illegal IP
/// address string" (socket_errc::illegal_address_string); an unknown family
/// is os_error EAFNOSUPPORT.
bytes inet_pton(int family, std::string_view text);
/// std::invalid_argument for a wrong length or an unknown family.
std::string inet_ntop(int family, const_buffer packed);
/// libc's lenient IPv4 parsing ("127.1", "0x7f.1"); os_error
/// socket_errc::illegal_address_string otherwise.
bytes inet_aton(std::string_view text);
/// os_error "packed IP wrong length for inet_ntoa" unless 4 bytes.
std::string inet_ntoa(const_buffer packed);

namespace detail {
template <std::unsigned_integral To, std::integral From>
constexpr To checked_unsigned(From x, const char* what) {
  if (x < 0 || static_cast<std::uintmax_t>(x) > static_cast<std::uintmax_t>(static_cast<To>(-1)))
    throw std::out_of_range(what);
  return static_cast<To>(x);
}
constexpr std::uint16_t swap16(std::uint16_t x) {
  return static_cast<std::uint16_t>((x << 8) | (x >> 8));
}
constexpr std::uint32_t swap32(std::uint32_t x) {
  return (x << 24) | ((x << 8) & 0xff0000u) | ((x >> 8) & 0xff00u) | (x >> 24);
}
inline constexpr bool host_is_little = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
}  // namespace detail

/// 16-bit host → network order; std::out_of_range outside 0–65535 (Python's OverflowError).
template <std::integral T>
constexpr std::uint16_t htons(T x) {
  const auto v = detail::checked_unsigned<std::uint16_t>(
      x, "htons: Python int too large to convert to C 16-bit unsigned integer");
  return detail::host_is_little ? detail::swap16(v) : v;
}
template <std::integral T>
constexpr std::uint16_t ntohs(T x) {
  const auto v = detail::checked_unsigned<std::uint16_t>(
      x, "ntohs: Python int too large to convert to C 16-bit unsigned integer");
  return detail::host_is_little ? detail::swap16(v) : v;
}
/// 32-bit host → network order; std::out_of_range outside 0–2^32-1.
template <std::integral T>
constexpr std::uint32_t htonl(T x) {
  const auto v = detail::checked_unsigned<std::uint32_t>(x, "htonl: int larger than 32 bits");
  return detail::host_is_little ? detail::swap32(v) : v;
}
template <std::integral T>
constexpr std::uint32_t ntohl(T x) {
  const auto v = detail::checked_unsigned<std::uint32_t>(x, "ntohl: int larger than 32 bits");
  return detail::host_is_little ? detail::swap32(v) : v;
}

}  // namespace pysock
