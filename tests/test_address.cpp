// SPDX-License-Identifier: MIT
//
// pysock/address.hpp: Python's address tuples as one value type — parsing,
// printing, the kernel form (to_sockaddr / from_sockaddr) and its errors.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <sstream>
#include <string>
#include <system_error>

#include <gtest/gtest.h>

#include "pysock/address.hpp"
#include "pysock/error.hpp"

namespace {

using namespace std::string_literals;

constexpr std::size_t sun_path_size = sizeof(sockaddr_un{}.sun_path);  // 108 on Linux

const sockaddr_in& as_in(const pysock::sockaddr_buffer& b) {
  return *reinterpret_cast<const sockaddr_in*>(&b.storage);
}
const sockaddr_in6& as_in6(const pysock::sockaddr_buffer& b) {
  return *reinterpret_cast<const sockaddr_in6*>(&b.storage);
}
const sockaddr_un& as_un(const pysock::sockaddr_buffer& b) {
  return *reinterpret_cast<const sockaddr_un*>(&b.storage);
}

std::string ipv4_text(const sockaddr_in& sin) {
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &sin.sin_addr, text, sizeof text);
  return text;
}

}  // namespace

// --- construction, accessors, printing ------------------------------------

TEST(address, default_address_is_empty_af_unspec_and_prints_empty) {
  const pysock::address a;
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(a.family(), AF_UNSPEC);
  EXPECT_EQ(a.to_string(), "");
  EXPECT_FALSE(a.needs_resolution());
}

TEST(address, ipv4_literal_is_parsed_at_once) {
  const pysock::address a{"127.0.0.1", 8080};
  EXPECT_FALSE(a.empty());
  EXPECT_FALSE(a.needs_resolution());
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_EQ(a.host(), "127.0.0.1");
  EXPECT_EQ(a.port(), 8080);
  EXPECT_EQ(a.to_string(), "127.0.0.1:8080");
}

TEST(address, ipv6_literal_is_parsed_at_once_and_printed_in_brackets) {
  const pysock::address a{"::1", 80};
  EXPECT_EQ(a.family(), AF_INET6);
  EXPECT_FALSE(a.needs_resolution());
  EXPECT_EQ(a.host(), "::1");
  EXPECT_EQ(a.port(), 80);
  EXPECT_EQ(a.flowinfo(), 0u);
  EXPECT_EQ(a.scope_id(), 0u);
  EXPECT_EQ(a.to_string(), "[::1]:80");
}

TEST(address, inet6_four_tuple_keeps_flowinfo_and_scope_id) {
  const auto a = pysock::address::inet6("fe80::1", 443, 5, 1);
  EXPECT_EQ(a.family(), AF_INET6);
  EXPECT_EQ(a.host(), "fe80::1");
  EXPECT_EQ(a.port(), 443);
  EXPECT_EQ(a.flowinfo(), 5u);
  EXPECT_EQ(a.scope_id(), 1u);

  std::error_code ec;
  const auto sa = a.to_sockaddr(AF_INET6, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(sa.family(), AF_INET6);
  EXPECT_EQ(ntohs(as_in6(sa).sin6_port), 443);
  EXPECT_EQ(ntohl(as_in6(sa).sin6_flowinfo), 5u);
  EXPECT_EQ(as_in6(sa).sin6_scope_id, 1u);
  EXPECT_EQ(sa.length, sizeof(sockaddr_in6));
}

TEST(address, host_name_is_kept_for_resolution) {
  const pysock::address a{"localhost", 80};
  EXPECT_TRUE(a.needs_resolution());
  EXPECT_EQ(a.family(), AF_UNSPEC);
  EXPECT_EQ(a.host(), "localhost");
  EXPECT_EQ(a.port(), 80);
  EXPECT_EQ(a.to_string(), "localhost:80");
}

TEST(address, empty_host_and_broadcast_are_kept_for_resolution) {
  EXPECT_TRUE((pysock::address{"", 80}).needs_resolution());
  EXPECT_TRUE((pysock::address{"<broadcast>", 9}).needs_resolution());
}

TEST(address, accepts_std_string_and_const_char_hosts) {
  const std::string host = "10.1.2.3";
  const char* c_host = "10.1.2.3";
  EXPECT_EQ((pysock::address{host, 1}), (pysock::address{c_host, 1}));
  EXPECT_EQ((pysock::address{std::string_view(host), 1}).host(), "10.1.2.3");
}

TEST(address, equality_compares_host_port_and_family) {
  EXPECT_EQ((pysock::address{"127.0.0.1", 80}), (pysock::address{"127.0.0.1", 80}));
  EXPECT_NE((pysock::address{"127.0.0.1", 80}), (pysock::address{"127.0.0.1", 81}));
  EXPECT_NE((pysock::address{"127.0.0.1", 80}), (pysock::address{"127.0.0.2", 80}));
  EXPECT_NE((pysock::address{"127.0.0.1", 80}), pysock::address::unix_path("/tmp/x"));
  EXPECT_EQ(pysock::address::unix_path("/tmp/x"), pysock::address::unix_path("/tmp/x"));
  EXPECT_NE(pysock::address::unix_path("/tmp/x"), pysock::address::unix_path("/tmp/y"));
  EXPECT_EQ(pysock::address{}, pysock::address{});
}

TEST(address, stream_insertion_prints_to_string) {
  std::ostringstream out;
  out << pysock::address{"127.0.0.1", 8080} << ' ' << pysock::address{"::1", 1} << ' '
      << pysock::address::unix_path("/tmp/app.sock") << ' '
      << pysock::address::abstract_name("abs");
  EXPECT_EQ(out.str(), "127.0.0.1:8080 [::1]:1 /tmp/app.sock @abs");
}

// --- AF_UNIX ---------------------------------------------------------------

TEST(address, unix_path_is_af_unix_with_the_path) {
  const auto a = pysock::address::unix_path("/tmp/app.sock");
  EXPECT_EQ(a.family(), AF_UNIX);
  EXPECT_EQ(a.path(), "/tmp/app.sock");
  EXPECT_FALSE(a.is_abstract());
  EXPECT_EQ(a.port(), 0);
  EXPECT_EQ(a.to_string(), "/tmp/app.sock");

  std::error_code ec;
  const auto sa = a.to_sockaddr(AF_UNIX, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(sa.family(), AF_UNIX);
  EXPECT_STREQ(as_un(sa).sun_path, "/tmp/app.sock");
  EXPECT_GE(sa.length, offsetof(sockaddr_un, sun_path) + std::strlen("/tmp/app.sock"));
}

TEST(address, abstract_name_starts_with_nul_and_prints_with_at_sign) {
  const auto a = pysock::address::abstract_name("pysock-name");
  EXPECT_EQ(a.family(), AF_UNIX);
  EXPECT_TRUE(a.is_abstract());
  EXPECT_EQ(a.path(), "\0pysock-name"s);
  EXPECT_EQ(a.to_string(), "@pysock-name");
  EXPECT_EQ(a, pysock::address::unix_path("\0pysock-name"s));

  std::error_code ec;
  const auto sa = a.to_sockaddr(AF_UNIX, ec);
  ASSERT_FALSE(ec) << ec.message();
  // The abstract name's length is exact: no trailing NUL counted.
  EXPECT_EQ(sa.length, offsetof(sockaddr_un, sun_path) + 1 + std::strlen("pysock-name"));
  EXPECT_EQ(as_un(sa).sun_path[0], '\0');
  EXPECT_EQ(std::string(as_un(sa).sun_path + 1, 11), "pysock-name");
}

TEST(address, unix_path_of_107_bytes_fits_sun_path) {
  const std::string path = "/" + std::string(sun_path_size - 2, 'p');
  ASSERT_EQ(path.size(), 107u);
  std::error_code ec;
  const auto sa = pysock::address::unix_path(path).to_sockaddr(AF_UNIX, ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(sa.family(), AF_UNIX);
  EXPECT_EQ(std::string(as_un(sa).sun_path, 107), path);
}

TEST(address, unix_path_of_108_bytes_is_path_too_long) {
  const std::string path = "/" + std::string(sun_path_size - 1, 'p');
  ASSERT_EQ(path.size(), 108u);
  const auto a = pysock::address::unix_path(path);
  EXPECT_EQ(a.family(), AF_UNIX);
  std::error_code ec;
  (void)a.to_sockaddr(AF_UNIX, ec);
  EXPECT_EQ(ec, pysock::socket_errc::path_too_long) << ec.message();
}

TEST(address, abstract_name_of_108_bytes_with_nul_fits_and_109_is_too_long) {
  std::error_code ec;
  const auto sa =
      pysock::address::abstract_name(std::string(sun_path_size - 1, 'a')).to_sockaddr(AF_UNIX, ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(sa.length, offsetof(sockaddr_un, sun_path) + sun_path_size);

  (void)pysock::address::abstract_name(std::string(sun_path_size, 'a')).to_sockaddr(AF_UNIX, ec);
  EXPECT_EQ(ec, pysock::socket_errc::path_too_long) << ec.message();
}

TEST(address, unix_address_for_inet_socket_is_family_mismatch) {
  std::error_code ec;
  (void)pysock::address::unix_path("/tmp/x").to_sockaddr(AF_INET, ec);
  EXPECT_EQ(ec, pysock::socket_errc::address_family_mismatch) << ec.message();
  (void)(pysock::address{"127.0.0.1", 80}).to_sockaddr(AF_UNIX, ec);
  EXPECT_TRUE(ec) << "an IPv4 address was accepted for AF_UNIX";
}

// --- to_sockaddr for AF_INET / AF_INET6 -------------------------------------

TEST(address, ipv4_to_sockaddr_is_sockaddr_in_in_network_order) {
  std::error_code ec;
  const auto sa = (pysock::address{"10.1.2.3", 8080}).to_sockaddr(AF_INET, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(sa.family(), AF_INET);
  EXPECT_EQ(sa.length, sizeof(sockaddr_in));
  EXPECT_EQ(ipv4_text(as_in(sa)), "10.1.2.3");
  EXPECT_EQ(ntohs(as_in(sa).sin_port), 8080);
}

TEST(address, empty_host_is_the_wildcard) {
  std::error_code ec;
  const auto sa4 = (pysock::address{"", 80}).to_sockaddr(AF_INET, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(as_in(sa4).sin_addr.s_addr, htonl(INADDR_ANY));
  EXPECT_EQ(ntohs(as_in(sa4).sin_port), 80);

  const auto sa6 = (pysock::address{"", 80}).to_sockaddr(AF_INET6, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(sa6.family(), AF_INET6);
  EXPECT_TRUE(IN6_IS_ADDR_UNSPECIFIED(&as_in6(sa6).sin6_addr));
}

TEST(address, broadcast_is_inaddr_broadcast_for_ipv4_and_mismatch_for_ipv6) {
  std::error_code ec;
  const auto sa = (pysock::address{"<broadcast>", 9}).to_sockaddr(AF_INET, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(as_in(sa).sin_addr.s_addr, htonl(INADDR_BROADCAST));

  (void)(pysock::address{"<broadcast>", 9}).to_sockaddr(AF_INET6, ec);
  EXPECT_EQ(ec, pysock::socket_errc::address_family_mismatch) << ec.message();
}

TEST(address, localhost_resolves_for_ipv4) {
  std::error_code ec;
  const auto sa = (pysock::address{"localhost", 631}).to_sockaddr(AF_INET, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(ipv4_text(as_in(sa)), "127.0.0.1");
  EXPECT_EQ(ntohs(as_in(sa).sin_port), 631);
}

TEST(address, unresolvable_name_gives_gai_category_code) {
  std::error_code ec;
  (void)(pysock::address{"no-such-host.invalid", 80}).to_sockaddr(AF_INET, ec);
  ASSERT_TRUE(ec);
  EXPECT_EQ(&ec.category(), &pysock::gai_category()) << ec.message();
}

TEST(address, port_out_of_range_is_einval) {
  std::error_code ec;
  (void)(pysock::address{"127.0.0.1", 65536}).to_sockaddr(AF_INET, ec);
  EXPECT_EQ(ec, std::errc::invalid_argument) << ec.message();
  ec.clear();
  (void)(pysock::address{"127.0.0.1", -1}).to_sockaddr(AF_INET, ec);
  EXPECT_EQ(ec, std::errc::invalid_argument) << ec.message();
  ec.clear();
  (void)(pysock::address{"127.0.0.1", 65535}).to_sockaddr(AF_INET, ec);
  EXPECT_FALSE(ec) << ec.message();
}

TEST(address, flowinfo_out_of_range_is_einval) {
  std::error_code ec;
  (void)pysock::address::inet6("::1", 80, 0x100000).to_sockaddr(AF_INET6, ec);
  EXPECT_EQ(ec, std::errc::invalid_argument) << ec.message();
  ec.clear();
  (void)pysock::address::inet6("::1", 80, 0xFFFFF).to_sockaddr(AF_INET6, ec);
  EXPECT_FALSE(ec) << ec.message();
}

TEST(address, ipv4_literal_is_refused_for_ipv6_socket_and_vice_versa) {
  std::error_code ec;
  (void)(pysock::address{"127.0.0.1", 80}).to_sockaddr(AF_INET6, ec);
  EXPECT_TRUE(ec) << "IPv4 literal accepted for an AF_INET6 socket";
  ec.clear();
  (void)(pysock::address{"::1", 80}).to_sockaddr(AF_INET, ec);
  EXPECT_TRUE(ec) << "IPv6 literal accepted for an AF_INET socket";
}

TEST(address, inet6_four_tuple_is_refused_for_ipv4_socket) {
  std::error_code ec;
  (void)pysock::address::inet6("::1", 80).to_sockaddr(AF_INET, ec);
  EXPECT_TRUE(ec);
}

TEST(address, inet6_scope_id_reaches_sockaddr_in6) {
  const unsigned lo = ::if_nametoindex("lo");
  ASSERT_NE(lo, 0u);
  std::error_code ec;
  const auto sa = pysock::address::inet6("fe80::1", 80, 0, lo).to_sockaddr(AF_INET6, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(as_in6(sa).sin6_scope_id, lo);
}

// --- from_sockaddr ----------------------------------------------------------

TEST(address, from_sockaddr_wraps_sockaddr_in) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(4242);
  ASSERT_EQ(::inet_pton(AF_INET, "192.168.7.9", &sin.sin_addr), 1);
  const auto a =
      pysock::address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin), sizeof sin);
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_FALSE(a.needs_resolution());
  EXPECT_EQ(a.host(), "192.168.7.9");
  EXPECT_EQ(a.port(), 4242);
  EXPECT_EQ(a, (pysock::address{"192.168.7.9", 4242}));
}

TEST(address, from_sockaddr_wraps_sockaddr_in6_with_flowinfo_and_scope) {
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(8443);
  sin6.sin6_flowinfo = htonl(7);
  sin6.sin6_scope_id = 3;
  ASSERT_EQ(::inet_pton(AF_INET6, "fe80::abcd", &sin6.sin6_addr), 1);
  const auto a =
      pysock::address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6);
  EXPECT_EQ(a.family(), AF_INET6);
  EXPECT_EQ(a.host(), "fe80::abcd");  // numeric, without %scope
  EXPECT_EQ(a.port(), 8443);
  EXPECT_EQ(a.flowinfo(), 7u);
  EXPECT_EQ(a.scope_id(), 3u);
}

TEST(address, from_sockaddr_of_v4_mapped_ipv6_prints_ffff_form) {
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(1);
  ASSERT_EQ(::inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr), 1);
  const auto a =
      pysock::address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6);
  EXPECT_EQ(a.host(), "::ffff:127.0.0.1");
  EXPECT_EQ(a.to_string(), "[::ffff:127.0.0.1]:1");
}

TEST(address, from_sockaddr_of_unnamed_unix_socket_has_empty_path) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  const auto a =
      pysock::address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sun), sizeof(sa_family_t));
  EXPECT_EQ(a.family(), AF_UNIX);
  EXPECT_EQ(a.path(), "");
  EXPECT_FALSE(a.is_abstract());
  EXPECT_EQ(a.to_string(), "");
}

TEST(address, from_sockaddr_of_unix_path_drops_the_trailing_nul) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::strcpy(sun.sun_path, "/tmp/s");
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 7);
  const auto a = pysock::address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sun), length);
  EXPECT_EQ(a.path(), "/tmp/s");
  EXPECT_EQ(a, pysock::address::unix_path("/tmp/s"));
}

TEST(address, from_sockaddr_of_abstract_name_keeps_exact_length) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, "\0ab\0c", 5);  // abstract names may contain NULs
  const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 5);
  const auto a = pysock::address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sun), length);
  EXPECT_TRUE(a.is_abstract());
  EXPECT_EQ(a.path(), "\0ab\0c"s);
}

TEST(address, to_sockaddr_roundtrips_through_from_sockaddr) {
  for (const pysock::address& original :
       {pysock::address{"127.0.0.1", 1}, pysock::address{"::1", 65535},
        pysock::address::inet6("2001:db8::1", 2, 3, 4), pysock::address::unix_path("/tmp/q"),
        pysock::address::abstract_name("q")}) {
    std::error_code ec;
    const int family = original.family();
    const auto sa = original.to_sockaddr(family, ec);
    ASSERT_FALSE(ec) << original << ": " << ec.message();
    const auto back = pysock::address::from_sockaddr(sa.get(), sa.length);
    EXPECT_EQ(back.to_string(), original.to_string());
    EXPECT_EQ(back.family(), family);
    EXPECT_EQ(back.port(), original.port());
    EXPECT_EQ(back.path(), original.path());
  }
}
