// SPDX-License-Identifier: MIT
//
// pysock/convert.hpp: inet_pton/ntop/aton/ntoa and the byte-order helpers, with
// CPython's edge cases (Lib/test/test_socket.py testIPv4toString, testStringToIPv4,
// testIPv6toString, testStringToIPv6, testNtoH, testNtoHErrors).
#include <cerrno>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "pysock/convert.hpp"
#include "pysock/error.hpp"

namespace {

using namespace std::string_literals;

// Runs f, expecting an os_error; returns it (sliced) for inspection.
template <class F>
std::optional<pysock::os_error> os_error_from(F&& f) {
  try {
    f();
  } catch (const pysock::os_error& e) {
    return e;
  }
  return std::nullopt;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

}  // namespace

// --- inet_pton ---------------------------------------------------------------

TEST(convert, inet_pton_ipv4_packs_four_bytes_in_network_order) {
  EXPECT_EQ(pysock::inet_pton(AF_INET, "127.0.0.1"), "\x7f\x00\x00\x01"s);
  EXPECT_EQ(pysock::inet_pton(AF_INET, "0.0.0.0"), "\x00\x00\x00\x00"s);
  EXPECT_EQ(pysock::inet_pton(AF_INET, "255.255.255.255"), "\xff\xff\xff\xff"s);
  EXPECT_EQ(pysock::inet_pton(AF_INET, "1.2.3.4"), "\x01\x02\x03\x04"s);
  EXPECT_EQ(pysock::inet_pton(AF_INET, "170.85.170.85"), "\xaa\x55\xaa\x55"s);
}

TEST(convert, inet_pton_ipv4_is_strict_and_rejects_legacy_forms) {
  for (const char* text : {"127.1", "1", "0x7f.0.0.1", "1.2.3.4.5", "256.0.0.0", "1.2.3.", "",
                           "1.2.3.4 junk", "::1", "junk"}) {
    auto e = os_error_from([&] { pysock::inet_pton(AF_INET, text); });
    ASSERT_TRUE(e) << "inet_pton(AF_INET, \"" << text << "\") did not raise os_error";
    // Python: "illegal IP address string passed to inet_pton" (no errno).
    EXPECT_TRUE(contains(e->what(), "illegal IP address string")) << e->what();
    EXPECT_TRUE(contains(e->what(), "inet_pton")) << e->what();
    EXPECT_EQ(e->code(), pysock::socket_errc::illegal_address_string) << e->what();
    EXPECT_EQ(e->errno_value(), 0) << text;
  }
}

TEST(convert, inet_pton_ipv6_packs_sixteen_bytes) {
  EXPECT_EQ(pysock::inet_pton(AF_INET6, "::"), std::string(16, '\0'));
  EXPECT_EQ(pysock::inet_pton(AF_INET6, "::1"), std::string(15, '\0') + "\x01"s);
  EXPECT_EQ(pysock::inet_pton(AF_INET6, "::ffff:1.2.3.4"),
            std::string(10, '\0') + "\xff\xff\x01\x02\x03\x04"s);
  EXPECT_EQ(pysock::inet_pton(AF_INET6, "fe80::1"), "\xfe\x80"s + std::string(13, '\0') + "\x01"s);
  EXPECT_EQ(pysock::inet_pton(AF_INET6, "2001:db8:85a3::8a2e:370:7334"),
            "\x20\x01\x0d\xb8\x85\xa3\x00\x00\x00\x00\x8a\x2e\x03\x70\x73\x34"s);
  EXPECT_EQ(pysock::inet_pton(AF_INET6, "AD42:ABC::"), "\xad\x42\x0a\xbc"s + std::string(12, '\0'));
}

TEST(convert, inet_pton_ipv6_rejects_malformed_text) {
  for (const char* text : {":::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "g::", "::1%lo", "1::2::3",
                           "127.0.0.1", "", "0x20::"}) {
    auto e = os_error_from([&] { pysock::inet_pton(AF_INET6, text); });
    ASSERT_TRUE(e) << "inet_pton(AF_INET6, \"" << text << "\") did not raise os_error";
    EXPECT_TRUE(contains(e->what(), "illegal IP address string")) << e->what();
    EXPECT_TRUE(contains(e->what(), "inet_pton")) << e->what();
    EXPECT_EQ(e->code(), pysock::socket_errc::illegal_address_string) << e->what();
  }
}

TEST(convert, inet_pton_unknown_family_raises_eafnosupport) {
  auto e = os_error_from([] { pysock::inet_pton(AF_UNIX, "127.0.0.1"); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errno_value(), EAFNOSUPPORT) << e->what();
}

// --- inet_ntop ---------------------------------------------------------------

TEST(convert, inet_ntop_ipv4_formats_dotted_quad) {
  EXPECT_EQ(pysock::inet_ntop(AF_INET, "\x01\x02\x03\x04"s), "1.2.3.4");
  EXPECT_EQ(pysock::inet_ntop(AF_INET, "\x00\x00\x00\x00"s), "0.0.0.0");
  EXPECT_EQ(pysock::inet_ntop(AF_INET, "\xff\xff\xff\xff"s), "255.255.255.255");
  EXPECT_EQ(pysock::inet_ntop(AF_INET, "\xaa\x55\xaa\x55"s), "170.85.170.85");
}

TEST(convert, inet_ntop_ipv6_compresses_lowercase_and_maps_v4) {
  EXPECT_EQ(pysock::inet_ntop(AF_INET6, std::string(16, '\0')), "::");
  EXPECT_EQ(pysock::inet_ntop(AF_INET6, std::string(15, '\0') + "\x01"s), "::1");
  EXPECT_EQ(pysock::inet_ntop(AF_INET6, "\xad\x42\x0a\xbc"s + std::string(12, '\0')), "ad42:abc::");
  EXPECT_EQ(pysock::inet_ntop(AF_INET6, std::string(10, '\0') + "\xff\xff\x01\x02\x03\x04"s),
            "::ffff:1.2.3.4");
  EXPECT_EQ(pysock::inet_ntop(AF_INET6,
                              "\x20\x01\x0d\xb8\x85\xa3\x00\x00\x00\x00\x8a\x2e\x03\x70\x73\x34"s),
            "2001:db8:85a3::8a2e:370:7334");
}

TEST(convert, inet_ntop_roundtrips_inet_pton) {
  for (const char* text : {"::", "::1", "fe80::1", "2001:db8::ff00:42:8329", "::ffff:10.0.0.1"}) {
    EXPECT_EQ(pysock::inet_ntop(AF_INET6, pysock::inet_pton(AF_INET6, text)), text);
  }
  for (const char* text : {"0.0.0.0", "10.1.2.3", "255.255.255.255"}) {
    EXPECT_EQ(pysock::inet_ntop(AF_INET, pysock::inet_pton(AF_INET, text)), text);
  }
}

TEST(convert, inet_ntop_wrong_length_throws_invalid_argument) {
  EXPECT_THROW(pysock::inet_ntop(AF_INET, ""s), std::invalid_argument);
  EXPECT_THROW(pysock::inet_ntop(AF_INET, "\x01\x02\x03"s), std::invalid_argument);
  EXPECT_THROW(pysock::inet_ntop(AF_INET, "\x01\x02\x03\x04\x05"s), std::invalid_argument);
  EXPECT_THROW(pysock::inet_ntop(AF_INET6, std::string(15, '\0')), std::invalid_argument);
  EXPECT_THROW(pysock::inet_ntop(AF_INET6, std::string(17, '\0')), std::invalid_argument);
  EXPECT_THROW(pysock::inet_ntop(AF_INET6, "\x01\x02\x03\x04"s), std::invalid_argument);
}

TEST(convert, inet_ntop_unknown_family_throws_invalid_argument) {
  try {
    pysock::inet_ntop(AF_UNIX, "\x01\x02\x03\x04"s);
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "unknown address family")) << e.what();
    return;
  }
  FAIL() << "inet_ntop(AF_UNIX) did not throw std::invalid_argument";
}

// --- inet_aton / inet_ntoa ---------------------------------------------------

TEST(convert, inet_aton_accepts_legacy_ipv4_forms) {
  EXPECT_EQ(pysock::inet_aton("127.0.0.1"), "\x7f\x00\x00\x01"s);
  EXPECT_EQ(pysock::inet_aton("127.1"), "\x7f\x00\x00\x01"s);
  EXPECT_EQ(pysock::inet_aton("1"), "\x00\x00\x00\x01"s);
  EXPECT_EQ(pysock::inet_aton("0x7f.1"), "\x7f\x00\x00\x01"s);
  EXPECT_EQ(pysock::inet_aton("010.0.0.1"), "\x08\x00\x00\x01"s);  // octal part
  EXPECT_EQ(pysock::inet_aton("255.255.255.255"), "\xff\xff\xff\xff"s);
  EXPECT_EQ(pysock::inet_aton("1.2.3.4 junk"), "\x01\x02\x03\x04"s);  // glibc stops at space
}

TEST(convert, inet_aton_rejects_invalid_text_with_python_message) {
  for (const char* text : {"", "junk", "1.2.3.", "1.2.3.4.5", "256.1.1.1", "::1"}) {
    auto e = os_error_from([&] { pysock::inet_aton(text); });
    ASSERT_TRUE(e) << "inet_aton(\"" << text << "\") did not raise os_error";
    // Python: "illegal IP address string passed to inet_aton" (no errno).
    EXPECT_TRUE(contains(e->what(), "illegal IP address string")) << e->what();
    EXPECT_TRUE(contains(e->what(), "inet_aton")) << e->what();
    EXPECT_EQ(e->code(), pysock::socket_errc::illegal_address_string) << e->what();
    EXPECT_EQ(e->errno_value(), 0);
  }
}

TEST(convert, inet_ntoa_formats_four_bytes) {
  EXPECT_EQ(pysock::inet_ntoa("\x01\x02\x03\x04"s), "1.2.3.4");
  EXPECT_EQ(pysock::inet_ntoa("\xff\xff\xff\xff"s), "255.255.255.255");
  EXPECT_EQ(pysock::inet_ntoa(pysock::inet_aton("127.1")), "127.0.0.1");
}

TEST(convert, inet_ntoa_wrong_length_raises_os_error) {
  for (const std::string& packed : {""s, "\x01\x02\x03"s, "\x01\x02\x03\x04\x05"s}) {
    auto e = os_error_from([&] { pysock::inet_ntoa(packed); });
    ASSERT_TRUE(e) << "length " << packed.size();
    // Python: "packed IP wrong length for inet_ntoa" (no errno).
    EXPECT_TRUE(contains(e->what(), "packed IP wrong length")) << e->what();
    EXPECT_TRUE(contains(e->what(), "inet_ntoa")) << e->what();
    EXPECT_EQ(e->code(), pysock::socket_errc::packed_length) << e->what();
    EXPECT_EQ(e->errno_value(), 0);
  }
}

TEST(convert, inet_ntop_accepts_byte_spans_and_vectors) {
  const unsigned char raw[4] = {10, 0, 0, 42};
  EXPECT_EQ(pysock::inet_ntop(AF_INET, std::span<const unsigned char>(raw)), "10.0.0.42");
  const std::vector<std::byte> bytes{std::byte{192}, std::byte{168}, std::byte{1}, std::byte{2}};
  EXPECT_EQ(pysock::inet_ntoa(bytes), "192.168.1.2");
}

// --- byte order --------------------------------------------------------------

TEST(convert, htons_and_htonl_match_libc) {
  for (int x : {0, 1, 0x1234, 0xff00, 65535}) {
    EXPECT_EQ(pysock::htons(x), ::htons(static_cast<std::uint16_t>(x))) << x;
    EXPECT_EQ(pysock::ntohs(x), ::ntohs(static_cast<std::uint16_t>(x))) << x;
  }
  for (std::uint32_t x : {0u, 1u, 0x12345678u, 0xff000000u, 0xffffffffu}) {
    EXPECT_EQ(pysock::htonl(x), ::htonl(x)) << x;
    EXPECT_EQ(pysock::ntohl(x), ::ntohl(x)) << x;
  }
}

TEST(convert, byte_order_helpers_roundtrip) {
  for (int x : {0, 1, 2, 0x1234, 0x8000, 65535}) {
    EXPECT_EQ(pysock::ntohs(pysock::htons(x)), x);
  }
  for (long long x : {0LL, 1LL, 0x12345678LL, 0x80000000LL, 0xffffffffLL}) {
    EXPECT_EQ(pysock::ntohl(pysock::htonl(x)), static_cast<std::uint32_t>(x));
  }
  if (pysock::detail::host_is_little) {
    EXPECT_EQ(pysock::htons(0x1234), 0x3412);
    EXPECT_EQ(pysock::htonl(0x12345678), 0x78563412u);
  }
}

TEST(convert, byte_order_helpers_are_constexpr) {
  constexpr std::uint16_t s = pysock::htons(0x0102);
  constexpr std::uint32_t l = pysock::htonl(0x01020304u);
  EXPECT_EQ(s, ::htons(0x0102));
  EXPECT_EQ(l, ::htonl(0x01020304u));
}

TEST(convert, htons_out_of_range_throws_out_of_range) {
  EXPECT_THROW(pysock::htons(65536), std::out_of_range);
  EXPECT_THROW(pysock::htons(-1), std::out_of_range);
  EXPECT_THROW(pysock::ntohs(65536), std::out_of_range);
  EXPECT_THROW(pysock::ntohs(-1), std::out_of_range);
  EXPECT_THROW(pysock::htons(std::numeric_limits<long long>::min()), std::out_of_range);
}

TEST(convert, htonl_out_of_range_throws_out_of_range) {
  EXPECT_THROW(pysock::htonl(0x100000000LL), std::out_of_range);
  EXPECT_THROW(pysock::htonl(-1), std::out_of_range);
  EXPECT_THROW(pysock::ntohl(0x100000000LL), std::out_of_range);
  EXPECT_THROW(pysock::ntohl(-1), std::out_of_range);
  EXPECT_THROW(pysock::htonl(std::numeric_limits<unsigned long long>::max()), std::out_of_range);
}
