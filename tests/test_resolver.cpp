// SPDX-License-Identifier: MIT
//
// pysock/resolver.hpp: getaddrinfo, getnameinfo, gethostname, gethostbyname*,
// gethostbyaddr, getservby*, getprotobyname, if_* — with Python's results and
// errors (gaierror in gai_category with gai_strerror text, os_error without
// errno for "not found"). Only loopback names, numeric hosts and the local
// databases (/etc/hosts, /etc/services, /etc/protocols) are used, except the
// reserved ".invalid" name, which never resolves.
#include <net/if.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "support/checks.hpp"

#include "pysock/error.hpp"
#include "pysock/resolver.hpp"

namespace {

using test_support::catch_as;
using test_support::contains;

}  // namespace

// --- getaddrinfo --------------------------------------------------------------

TEST(resolver, getaddrinfo_numeric_ipv4_gives_one_stream_entry) {
  const auto entries = pysock::getaddrinfo("127.0.0.1", 80, AF_INET, SOCK_STREAM);
  ASSERT_EQ(entries.size(), 1u);
  const auto& e = entries.front();
  EXPECT_EQ(e.family, AF_INET);
  EXPECT_EQ(e.type, SOCK_STREAM);
  EXPECT_EQ(e.proto, IPPROTO_TCP);
  EXPECT_EQ(e.canonname, "");
  EXPECT_EQ(e.sockaddr, (pysock::address{"127.0.0.1", 80}));
  EXPECT_EQ(e.sockaddr.family(), AF_INET);
}

TEST(resolver, getaddrinfo_numeric_ipv6_gives_four_tuple_address) {
  const auto entries = pysock::getaddrinfo("::1", "http", AF_INET6, SOCK_STREAM);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].family, AF_INET6);
  EXPECT_EQ(entries[0].sockaddr.host(), "::1");
  EXPECT_EQ(entries[0].sockaddr.port(), 80);
  EXPECT_EQ(entries[0].sockaddr.flowinfo(), 0u);
  EXPECT_EQ(entries[0].sockaddr.scope_id(), 0u);
}

TEST(resolver, getaddrinfo_moves_scope_of_ipv6_literal_into_scope_id) {
  const unsigned lo = ::if_nametoindex("lo");
  ASSERT_NE(lo, 0u);
  const auto entries = pysock::getaddrinfo("fe80::1%lo", 0, AF_INET6, SOCK_STREAM);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].sockaddr.host(), "fe80::1");
  EXPECT_EQ(entries[0].sockaddr.scope_id(), lo);
}

TEST(resolver, getaddrinfo_null_host_gives_loopback_or_wildcard_with_ai_passive) {
  const auto loop = pysock::getaddrinfo(std::nullopt, 8080, AF_INET, SOCK_STREAM);
  ASSERT_FALSE(loop.empty());
  EXPECT_EQ(loop[0].sockaddr, (pysock::address{"127.0.0.1", 8080}));
  const auto wild = pysock::getaddrinfo(std::nullopt, 8080, AF_INET, SOCK_STREAM, 0, AI_PASSIVE);
  ASSERT_FALSE(wild.empty());
  EXPECT_EQ(wild[0].sockaddr, (pysock::address{"0.0.0.0", 8080}));
}

TEST(resolver, getaddrinfo_service_name_digits_and_none) {
  EXPECT_EQ(pysock::getaddrinfo("127.0.0.1", "http", AF_INET, SOCK_STREAM)[0].sockaddr.port(), 80);
  EXPECT_EQ(pysock::getaddrinfo("127.0.0.1", "8080", AF_INET, SOCK_STREAM)[0].sockaddr.port(),
            8080);
  EXPECT_EQ(
      pysock::getaddrinfo("127.0.0.1", std::string("443"), AF_INET, SOCK_STREAM)[0].sockaddr.port(),
      443);
  EXPECT_EQ(pysock::getaddrinfo("127.0.0.1", std::nullopt, AF_INET, SOCK_STREAM)[0].sockaddr.port(),
            0);
  EXPECT_EQ(
      pysock::getaddrinfo("127.0.0.1", pysock::service(), AF_INET, SOCK_STREAM)[0].sockaddr.port(),
      0);
}

TEST(resolver, getaddrinfo_without_type_returns_stream_dgram_and_raw_entries) {
  const auto entries = pysock::getaddrinfo("127.0.0.1", 80);
  std::vector<int> types;
  for (const auto& e : entries) types.push_back(e.type);
  EXPECT_NE(std::find(types.begin(), types.end(), SOCK_STREAM), types.end());
  EXPECT_NE(std::find(types.begin(), types.end(), SOCK_DGRAM), types.end());
  EXPECT_NE(std::find(types.begin(), types.end(), SOCK_RAW), types.end());
}

TEST(resolver, getaddrinfo_localhost_resolves_to_a_loopback_address) {
  const auto entries = pysock::getaddrinfo("localhost", 80, AF_UNSPEC, SOCK_STREAM);
  ASSERT_FALSE(entries.empty());
  for (const auto& e : entries) {
    EXPECT_TRUE(e.sockaddr.host() == "127.0.0.1" || e.sockaddr.host() == "::1")
        << e.sockaddr.host();
    EXPECT_FALSE(e.sockaddr.needs_resolution());
    EXPECT_EQ(e.sockaddr.family(), e.family);
  }
}

TEST(resolver, getaddrinfo_ai_canonname_sets_canonname_on_first_entry) {
  const auto entries = pysock::getaddrinfo("localhost", 80, AF_INET, SOCK_STREAM, 0, AI_CANONNAME);
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries[0].canonname, "localhost");
}

TEST(resolver, getaddrinfo_unknown_host_raises_gaierror_with_gai_strerror_text) {
  auto e = catch_as<pysock::gaierror>(
      [] { pysock::getaddrinfo("no-such-host.invalid", 80, AF_UNSPEC, SOCK_STREAM); });
  ASSERT_TRUE(e) << "no-such-host.invalid resolved";
  EXPECT_EQ(&e->code().category(), &pysock::gai_category());
  EXPECT_LT(e->code().value(), 0);  // an EAI_* code (negative on glibc)
  EXPECT_TRUE(contains(e->what(), ::gai_strerror(e->code().value()))) << e->what();
  EXPECT_EQ(e->code().message(), ::gai_strerror(e->code().value()));
  EXPECT_EQ(pysock::python_exception_name(e->code()), "gaierror");
}

TEST(resolver, getaddrinfo_unknown_host_is_catchable_as_os_error) {
  EXPECT_THROW(pysock::getaddrinfo("no-such-host.invalid", 80), pysock::os_error);
}

TEST(resolver, getaddrinfo_empty_host_raises_gaierror_eai_noname) {
  auto e = catch_as<pysock::gaierror>([] { pysock::getaddrinfo("", 80); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code().value(), EAI_NONAME) << e->what();
}

TEST(resolver, getaddrinfo_unknown_service_raises_gaierror_eai_service) {
  auto e = catch_as<pysock::gaierror>(
      [] { pysock::getaddrinfo("127.0.0.1", "no-such-service-pysock", AF_INET, SOCK_STREAM); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code().value(), EAI_SERVICE) << e->what();
}

TEST(resolver, getaddrinfo_family_mismatch_raises_gaierror) {
  auto e = catch_as<pysock::gaierror>([] { pysock::getaddrinfo("::1", 80, AF_INET); });
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->code().value() == EAI_ADDRFAMILY || e->code().value() == EAI_NONAME) << e->what();
}

// --- getnameinfo --------------------------------------------------------------

TEST(resolver, getnameinfo_numeric_host_and_service) {
  const auto [host, service] =
      pysock::getnameinfo({"127.0.0.1", 80}, NI_NUMERICHOST | NI_NUMERICSERV);
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(service, "80");
}

TEST(resolver, getnameinfo_names_the_service) {
  const auto [host, service] = pysock::getnameinfo({"127.0.0.1", 80}, NI_NUMERICHOST);
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(service, "http");
}

TEST(resolver, getnameinfo_ipv6_numeric) {
  const auto [host, service] =
      pysock::getnameinfo(pysock::address::inet6("::1", 443), NI_NUMERICHOST | NI_NUMERICSERV);
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(service, "443");
}

TEST(resolver, getnameinfo_reverse_looks_up_loopback_from_hosts_file) {
  const auto [host, service] = pysock::getnameinfo({"127.0.0.1", 80}, NI_NUMERICSERV);
  EXPECT_FALSE(host.empty());
  EXPECT_EQ(service, "80");
}

TEST(resolver, getnameinfo_with_host_name_raises_gaierror) {
  auto e = catch_as<pysock::gaierror>([] {
    pysock::getnameinfo({"localhost", 80}, NI_NUMERICHOST | NI_NUMERICSERV);
  });
  ASSERT_TRUE(e) << "getnameinfo accepted a host name";
  EXPECT_EQ(&e->code().category(), &pysock::gai_category());
}

// --- host names -----------------------------------------------------------------

TEST(resolver, gethostname_matches_the_kernel) {
  char expected[HOST_NAME_MAX + 1] = {};
  ASSERT_EQ(::gethostname(expected, sizeof expected), 0);
  const std::string name = pysock::gethostname();
  EXPECT_FALSE(name.empty());
  EXPECT_EQ(name, expected);
}

TEST(resolver, gethostbyname_handles_literals_wildcard_broadcast_and_localhost) {
  EXPECT_EQ(pysock::gethostbyname("127.0.0.1"), "127.0.0.1");
  EXPECT_EQ(pysock::gethostbyname(""), "0.0.0.0");
  EXPECT_EQ(pysock::gethostbyname("<broadcast>"), "255.255.255.255");
  EXPECT_EQ(pysock::gethostbyname("localhost"), "127.0.0.1");
}

TEST(resolver, gethostbyname_of_ipv6_literal_raises_gaierror_eai_addrfamily) {
  auto e = catch_as<pysock::gaierror>([] { pysock::gethostbyname("::1"); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code().value(), EAI_ADDRFAMILY) << e->what();
}

TEST(resolver, gethostbyname_ex_of_localhost_lists_127_0_0_1) {
  const auto entry = pysock::gethostbyname_ex("localhost");
  EXPECT_FALSE(entry.hostname.empty());
  EXPECT_NE(std::find(entry.addresses.begin(), entry.addresses.end(), "127.0.0.1"),
            entry.addresses.end());
}

TEST(resolver, gethostbyaddr_of_loopback_finds_a_name) {
  const auto entry = pysock::gethostbyaddr("127.0.0.1");
  EXPECT_FALSE(entry.hostname.empty());
  EXPECT_NE(std::find(entry.addresses.begin(), entry.addresses.end(), "127.0.0.1"),
            entry.addresses.end());
}

TEST(resolver, getfqdn_returns_unresolvable_name_unchanged) {
  EXPECT_EQ(pysock::getfqdn("no-such-host.invalid"), "no-such-host.invalid");
}

// --- services, protocols ----------------------------------------------------------

TEST(resolver, getservbyname_finds_http) {
  EXPECT_EQ(pysock::getservbyname("http", "tcp"), 80);
  EXPECT_EQ(pysock::getservbyname("http"), 80);
  EXPECT_EQ(pysock::getservbyname("domain", "udp"), 53);
}

TEST(resolver, getservbyname_unknown_raises_os_error_without_errno) {
  auto e = catch_as([] { pysock::getservbyname("no-such-service-pysock", "tcp"); });
  ASSERT_TRUE(e);
  EXPECT_TRUE(contains(e->what(), "service/proto not found")) << e->what();
  EXPECT_EQ(e->errno_value(), 0);
}

TEST(resolver, getservbyport_finds_http) {
  EXPECT_EQ(pysock::getservbyport(80, "tcp"), "http");
  EXPECT_EQ(pysock::getservbyport(80), "http");
}

TEST(resolver, getservbyport_unknown_raises_os_error_without_errno) {
  auto e = catch_as([] { pysock::getservbyport(65000, "tcp"); });
  ASSERT_TRUE(e) << "port 65000/tcp is in /etc/services?";
  EXPECT_TRUE(contains(e->what(), "port/proto not found")) << e->what();
  EXPECT_EQ(e->errno_value(), 0);
}

TEST(resolver, getservbyport_out_of_range_throws_out_of_range) {
  EXPECT_THROW(pysock::getservbyport(65536), std::out_of_range);
  EXPECT_THROW(pysock::getservbyport(-1), std::out_of_range);
}

TEST(resolver, getprotobyname_finds_tcp_and_udp) {
  EXPECT_EQ(pysock::getprotobyname("tcp"), IPPROTO_TCP);
  EXPECT_EQ(pysock::getprotobyname("udp"), IPPROTO_UDP);
  EXPECT_EQ(pysock::getprotobyname("icmp"), IPPROTO_ICMP);
}

TEST(resolver, getprotobyname_unknown_raises_os_error) {
  auto e = catch_as([] { pysock::getprotobyname("no-such-protocol-pysock"); });
  ASSERT_TRUE(e);
  EXPECT_TRUE(contains(e->what(), "protocol not found")) << e->what();
  EXPECT_EQ(e->errno_value(), 0);
}

// --- interfaces -------------------------------------------------------------------

TEST(resolver, if_nametoindex_and_if_indextoname_roundtrip_lo) {
  const unsigned index = pysock::if_nametoindex("lo");
  EXPECT_EQ(index, ::if_nametoindex("lo"));
  ASSERT_GT(index, 0u);
  EXPECT_EQ(pysock::if_indextoname(index), "lo");
}

TEST(resolver, if_nameindex_lists_lo) {
  const auto list = pysock::if_nameindex();
  const unsigned lo = ::if_nametoindex("lo");
  EXPECT_NE(std::find(list.begin(), list.end(), std::pair<unsigned, std::string>(lo, "lo")),
            list.end());
  for (const auto& [index, name] : list) {
    EXPECT_EQ(pysock::if_nametoindex(name), index) << name;
  }
}

TEST(resolver, if_nametoindex_unknown_name_raises_os_error) {
  auto e = catch_as([] { pysock::if_nametoindex("no-such-if0"); });
  ASSERT_TRUE(e);
  EXPECT_TRUE(contains(e->what(), "no interface with this name")) << e->what();
}

TEST(resolver, if_indextoname_unknown_index_raises_enxio) {
  auto e = catch_as([] { pysock::if_indextoname(999999u); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errno_value(), ENXIO) << e->what();
}
