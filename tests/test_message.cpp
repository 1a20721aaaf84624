// SPDX-License-Identifier: MIT
//
// Message I/O (pysock/socket.hpp): sendmsg/recvmsg/recvmsg_into with
// scatter/gather and ancillary data — SCM_RIGHTS through the raw ancillary
// interface, SCM_CREDENTIALS with SO_PASSCRED, MSG_TRUNC/MSG_CTRUNC/MSG_PEEK,
// timeouts, EOF, closed sockets — and the CMSG_LEN/CMSG_SPACE functions.
// Ports CPython's SendmsgStreamTests, RecvmsgGenericTests, SCMRightsTest and
// CmsgMacroTests (reference section 8.1 rows 41–45). Real AF_UNIX and loopback
// sockets only.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <gtest/gtest.h>

#include "support/checks.hpp"

#include "pysock/socket.hpp"

namespace {

using test_support::catch_as;
using test_support::count_open_descriptors;
using test_support::is_cloexec;

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// A pipe whose ends close with the object.
struct pipe_pair {
  int read_end = -1;
  int write_end = -1;
  pipe_pair() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      throw std::system_error(errno, std::system_category(), "pipe2");
    read_end = fds[0];
    write_end = fds[1];
  }
  ~pipe_pair() {
    if (read_end >= 0) ::close(read_end);
    if (write_end >= 0) ::close(write_end);
  }
  pipe_pair(const pipe_pair&) = delete;
  pipe_pair& operator=(const pipe_pair&) = delete;
};

pysock::bytes pack_ints(std::initializer_list<int> values) {
  pysock::bytes out;
  for (const int v : values) out.append(reinterpret_cast<const char*>(&v), sizeof v);
  return out;
}

std::vector<int> unpack_ints(const pysock::bytes& data) {
  std::vector<int> out;
  for (std::size_t i = 0; i + sizeof(int) <= data.size(); i += sizeof(int)) {
    int v;
    std::memcpy(&v, data.data() + i, sizeof v);
    out.push_back(v);
  }
  return out;
}

// Every descriptor delivered in SCM_RIGHTS items of `ancdata`.
std::vector<int> received_fds(const std::vector<pysock::ancillary>& ancdata) {
  std::vector<int> fds;
  for (const auto& item : ancdata) {
    if (item.level != SOL_SOCKET || item.type != SCM_RIGHTS) continue;
    for (const int fd : unpack_ints(item.data)) fds.push_back(fd);
  }
  return fds;
}

void close_all(const std::vector<int>& fds) {
  for (const int fd : fds) ::close(fd);
}

// Fills the send buffer of a stream socket (with its peer not reading) so the
// next send would block. Bounded: gives up after 64 MiB.
void fill_send_buffer(pysock::socket& sock) {
  const auto saved = sock.gettimeout();
  sock.setblocking(false);
  const std::string chunk(65536, 'f');
  for (int i = 0; i < 1024; ++i) {
    std::error_code ec;
    sock.send(chunk, 0, ec);
    if (ec == std::errc::operation_would_block) break;
    ASSERT_FALSE(ec) << ec.message();
  }
  sock.settimeout(saved);
}

// --- scatter/gather --------------------------------------------------------

TEST(message, sendmsg_of_three_buffers_is_one_seqpacket_message) {
  // On SOCK_SEQPACKET every sendmsg(2) is one record: if the buffers went out
  // in several calls the receiver would see several messages.
  auto a_b = pysock::socketpair(AF_UNIX, SOCK_SEQPACKET);
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  auto& b = a_b.second;
  EXPECT_EQ(a.sendmsg({"alpha", "beta", "gamma"}), 14u);
  b.settimeout(2s);
  EXPECT_EQ(b.recv(100), "alphabetagamma");
  b.setblocking(false);
  EXPECT_TRUE(catch_as<pysock::blocking_io_error>([&] { (void)b.recv(100); }))
      << "the three buffers arrived as more than one message";
}

TEST(message, sendmsg_of_sixteen_buffers_is_one_datagram) {
  auto a_b = pysock::socketpair(AF_UNIX, SOCK_DGRAM);
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  auto& b = a_b.second;
  std::vector<std::string> parts;
  for (int i = 0; i < 16; ++i)
    parts.push_back(std::string(static_cast<std::size_t>(i + 1), static_cast<char>('a' + i)));
  std::vector<pysock::const_buffer> buffers(parts.begin(), parts.end());
  std::string expected;
  for (const auto& p : parts) expected += p;
  EXPECT_EQ(a.sendmsg(buffers), expected.size());
  b.settimeout(2s);
  EXPECT_EQ(b.recv(1000), expected);
  b.setblocking(false);
  EXPECT_TRUE(catch_as<pysock::blocking_io_error>([&] { (void)b.recv(1000); }));
}

TEST(message, sendmsg_of_more_buffers_than_the_inline_array_is_still_one_datagram) {
  // 40 buffers: more than the 16 iovecs pysock keeps on the stack.
  auto a_b = pysock::socketpair(AF_UNIX, SOCK_DGRAM);
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  auto& b = a_b.second;
  std::vector<std::string> parts;
  std::string expected;
  for (int i = 0; i < 40; ++i) {
    parts.push_back(std::to_string(i) + ",");
    expected += parts.back();
  }
  std::vector<pysock::const_buffer> buffers(parts.begin(), parts.end());
  EXPECT_EQ(a.sendmsg(buffers), expected.size());
  b.settimeout(2s);
  EXPECT_EQ(b.recv(1000), expected);
  b.setblocking(false);
  EXPECT_TRUE(catch_as<pysock::blocking_io_error>([&] { (void)b.recv(1000); }));
}

TEST(message, sendmsg_with_no_buffers_sends_one_empty_datagram) {
  auto [a, b] = pysock::socketpair(AF_UNIX, SOCK_DGRAM);
  EXPECT_EQ(a.sendmsg(std::span<const pysock::const_buffer>{}), 0u);
  a.sendmsg({"after"});
  b.settimeout(2s);
  const auto first = b.recvmsg(100);
  EXPECT_EQ(first.data, "");
  EXPECT_EQ(first.msg_flags, 0);
  EXPECT_EQ(b.recv(100), "after");
}

TEST(message, sendmsg_on_stream_delivers_buffers_in_order) {
  auto [a, b] = pysock::socketpair();
  const std::string big(100000, 'x');
  const std::size_t n = a.sendmsg({"head:", big, ":tail"});
  ASSERT_EQ(n, big.size() + 10);  // fits in a socketpair's buffer
  a.shutdown(SHUT_WR);
  b.settimeout(5s);
  std::string got;
  for (int i = 0; i < 1000; ++i) {
    auto part = b.recv(65536);
    if (part.empty()) break;
    got += part;
  }
  EXPECT_EQ(got, "head:" + big + ":tail");
}

TEST(message, recvmsg_into_fills_several_buffers_in_order) {
  auto [a, b] = pysock::socketpair(AF_UNIX, SOCK_SEQPACKET);
  a.send("0123456789");
  std::array<char, 3> first{};
  std::array<char, 3> second{};
  std::string third(10, '.');
  b.settimeout(2s);
  const auto r = b.recvmsg_into({first, second, third});
  EXPECT_EQ(r.nbytes, 10u);
  EXPECT_EQ(std::string_view(first.data(), first.size()), "012");
  EXPECT_EQ(std::string_view(second.data(), second.size()), "345");
  EXPECT_EQ(third, "6789......");
  EXPECT_EQ(r.msg_flags, 0);
  EXPECT_TRUE(r.ancdata.empty());
}

TEST(message, recvmsg_into_skips_empty_buffers) {
  auto [a, b] = pysock::socketpair(AF_UNIX, SOCK_DGRAM);
  a.send("abcdef");
  std::array<char, 2> first{};
  std::string empty;
  std::array<char, 8> last{};
  b.settimeout(2s);
  const auto r = b.recvmsg_into({first, empty, last});
  EXPECT_EQ(r.nbytes, 6u);
  EXPECT_EQ(std::string_view(first.data(), 2), "ab");
  EXPECT_EQ(std::string_view(last.data(), 4), "cdef");
}

TEST(message, recvmsg_into_datagram_longer_than_all_buffers_reports_msg_trunc) {
  auto [a, b] = pysock::socketpair(AF_UNIX, SOCK_DGRAM);
  a.send("0123456789");
  std::array<char, 2> first{};
  std::array<char, 3> second{};
  b.settimeout(2s);
  const auto r = b.recvmsg_into({first, second});
  EXPECT_EQ(r.nbytes, 5u);
  EXPECT_NE(r.msg_flags & MSG_TRUNC, 0);
  EXPECT_EQ(std::string_view(first.data(), 2), "01");
  EXPECT_EQ(std::string_view(second.data(), 3), "234");
}

TEST(message, recvmsg_into_error_code_overload_reports_would_block_without_throwing) {
  auto [a, b] = pysock::socketpair(AF_UNIX, SOCK_DGRAM);
  b.setblocking(false);
  std::array<char, 8> buf{};
  const pysock::mutable_buffer buffers[] = {buf};
  std::error_code ec;
  const auto r = b.recvmsg_into(buffers, 0, 0, ec);
  EXPECT_EQ(ec, std::errc::operation_would_block);
  EXPECT_EQ(r.nbytes, 0u);
  a.send("x");
  const auto r2 = b.recvmsg_into(buffers, 0, 0, ec);
  EXPECT_FALSE(ec);
  EXPECT_EQ(r2.nbytes, 1u);
}

// --- recvmsg generic behaviour ------------------------------------------------

TEST(message, recvmsg_returns_data_and_the_udp_senders_address) {
  pysock::socket receiver(AF_INET, SOCK_DGRAM);
  receiver.bind({"127.0.0.1", 0});
  pysock::socket sender(AF_INET, SOCK_DGRAM);
  sender.bind({"127.0.0.1", 0});
  sender.sendto("hello", receiver.getsockname());
  receiver.settimeout(2s);
  const auto r = receiver.recvmsg(100);
  EXPECT_EQ(r.data, "hello");
  EXPECT_EQ(r.msg_flags, 0);
  EXPECT_TRUE(r.ancdata.empty());
  EXPECT_EQ(r.address, sender.getsockname());
}

TEST(message, sendmsg_with_address_on_unconnected_udp_socket_reaches_it) {
  pysock::socket receiver(AF_INET, SOCK_DGRAM);
  receiver.bind({"127.0.0.1", 0});
  pysock::socket sender(AF_INET, SOCK_DGRAM);
  EXPECT_EQ(sender.sendmsg({"to", "-", "addr"}, {}, 0, receiver.getsockname()), 7u);
  receiver.settimeout(2s);
  EXPECT_EQ(receiver.recv(100), "to-addr");
}

TEST(message, sendmsg_without_address_on_unconnected_udp_socket_fails_with_edestaddrreq) {
  pysock::socket sender(AF_INET, SOCK_DGRAM);
  auto e = catch_as([&] { sender.sendmsg({"x"}); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::destination_address_required);
}

TEST(message, recvmsg_datagram_larger_than_bufsize_truncates_and_reports_msg_trunc) {
  auto [a, b] = pysock::socketpair(AF_UNIX, SOCK_DGRAM);
  a.send("0123456789");
  a.send("next");
  b.settimeout(2s);
  const auto r = b.recvmsg(4);
  EXPECT_EQ(r.data, "0123");
  EXPECT_NE(r.msg_flags & MSG_TRUNC, 0);
  // The rest of the truncated datagram is gone; the next one is whole.
  const auto r2 = b.recvmsg(100);
  EXPECT_EQ(r2.data, "next");
  EXPECT_EQ(r2.msg_flags & MSG_TRUNC, 0);
}

TEST(message, recvmsg_with_msg_trunc_flag_returns_at_most_bufsize_bytes) {
  // With MSG_TRUNC in flags the kernel returns the real datagram length (10),
  // larger than the buffer; CPython still returns only the 4 bytes it received.
  auto [a, b] = pysock::socketpair(AF_UNIX, SOCK_DGRAM);
  a.send("0123456789");
  b.settimeout(2s);
  const auto r = b.recvmsg(4, 0, MSG_TRUNC);
  EXPECT_EQ(r.data, "0123");
  EXPECT_NE(r.msg_flags & MSG_TRUNC, 0);
}

TEST(message, recvmsg_with_msg_peek_leaves_the_data_queued) {
  auto a_b = pysock::socketpair(AF_UNIX, SOCK_DGRAM);
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  auto& b = a_b.second;
  a.send("peekaboo");
  b.settimeout(2s);
  EXPECT_EQ(b.recvmsg(100, 0, MSG_PEEK).data, "peekaboo");
  EXPECT_EQ(b.recvmsg(4, 0, MSG_PEEK).data, "peek");
  EXPECT_EQ(b.recvmsg(100).data, "peekaboo");
  b.setblocking(false);
  EXPECT_TRUE(catch_as<pysock::blocking_io_error>([&] { (void)b.recvmsg(100); }));
}

TEST(message, recvmsg_with_timeout_raises_timeout_error_after_about_the_timeout) {
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& b = a_b.second;
  b.settimeout(200ms);
  const auto start = steady::now();
  auto e = catch_as<pysock::timeout_error>([&] { (void)b.recvmsg(100); });
  const auto elapsed = steady::now() - start;
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::timed_out);
  EXPECT_GE(elapsed, 150ms);
  EXPECT_LT(elapsed, 5s);
}

TEST(message, recvmsg_into_with_timeout_raises_timeout_error) {
  auto a_b = pysock::socketpair(AF_UNIX, SOCK_DGRAM);
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& b = a_b.second;
  b.settimeout(100ms);
  std::array<char, 4> buf{};
  EXPECT_TRUE(catch_as<pysock::timeout_error>([&] { (void)b.recvmsg_into({buf}); }));
}

TEST(message, recvmsg_on_non_blocking_socket_with_nothing_queued_raises_blocking_io_error) {
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& b = a_b.second;
  b.setblocking(false);
  auto e = catch_as<pysock::blocking_io_error>([&] { (void)b.recvmsg(100); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::operation_would_block);
}

TEST(message, recvmsg_at_stream_eof_returns_empty_data) {
  auto [a, b] = pysock::socketpair();
  a.send("last");
  a.close();
  b.settimeout(2s);
  EXPECT_EQ(b.recvmsg(100).data, "last");
  const auto r = b.recvmsg(100);
  EXPECT_EQ(r.data, "");
  EXPECT_EQ(r.msg_flags, 0);
  // And again: EOF is sticky.
  EXPECT_EQ(b.recvmsg(100).data, "");
}

TEST(message, recvmsg_at_tcp_eof_returns_empty_data) {
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  pysock::socket client = pysock::create_connection(listener.getsockname(), 5s);
  auto [server, peer] = listener.accept();
  client.shutdown(SHUT_WR);
  server.settimeout(2s);
  EXPECT_EQ(server.recvmsg(100).data, "");
}

TEST(message, recvmsg_recvmsg_into_and_sendmsg_on_a_closed_socket_raise_ebadf) {
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& b = a_b.second;
  b.close();
  std::array<char, 4> buf{};
  auto e1 = catch_as([&] { (void)b.recvmsg(100); });
  auto e2 = catch_as([&] { (void)b.recvmsg_into({buf}); });
  auto e3 = catch_as([&] { (void)b.sendmsg({"x"}); });
  ASSERT_TRUE(e1);
  ASSERT_TRUE(e2);
  ASSERT_TRUE(e3);
  EXPECT_EQ(e1->code(), std::errc::bad_file_descriptor);
  EXPECT_EQ(e2->code(), std::errc::bad_file_descriptor);
  EXPECT_EQ(e3->code(), std::errc::bad_file_descriptor);
  EXPECT_EQ(e1->errno_value(), EBADF);
}

TEST(message, sendmsg_error_code_overload_on_closed_socket_sets_ebadf_without_throwing) {
  pysock::socket s = pysock::socket::closed_socket();
  const pysock::const_buffer buffers[] = {"x"};
  std::error_code ec;
  EXPECT_EQ(s.sendmsg(buffers, {}, 0, {}, ec), 0u);
  EXPECT_EQ(ec, std::errc::bad_file_descriptor);
}

TEST(message, ancbufsize_over_one_mib_raises_invalid_argument) {
  auto [a, b] = pysock::socketpair();
  std::array<char, 4> buf{};
  EXPECT_THROW((void)b.recvmsg(10, (std::size_t{1} << 20) + 1), std::invalid_argument);
  EXPECT_THROW((void)b.recvmsg_into({buf}, (std::size_t{1} << 20) + 1), std::invalid_argument);
  EXPECT_THROW((void)b.recvmsg(10, SIZE_MAX), std::invalid_argument);
  // The non-throwing overload reports it as EINVAL.
  const pysock::mutable_buffer buffers[] = {buf};
  std::error_code ec;
  (void)b.recvmsg_into(buffers, SIZE_MAX, 0, ec);
  EXPECT_EQ(ec, std::errc::invalid_argument);
}

TEST(message, ancbufsize_of_exactly_one_mib_is_accepted) {
  auto [a, b] = pysock::socketpair();
  a.send("ok");
  b.settimeout(2s);
  EXPECT_EQ(b.recvmsg(10, std::size_t{1} << 20).data, "ok");
}

TEST(message, sendmsg_filling_the_buffer_with_timeout_raises_timeout_error) {
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  fill_send_buffer(a);
  a.settimeout(200ms);
  const std::string chunk(65536, 'y');
  const auto start = steady::now();
  auto e = catch_as<pysock::timeout_error>([&] {
    for (int i = 0; i < 1024; ++i) a.sendmsg({chunk});
  });
  EXPECT_TRUE(e);
  EXPECT_LT(steady::now() - start, 10s);
}

TEST(message, sendmsg_with_msg_dontwait_on_a_blocking_socket_raises_blocking_io_error_at_once) {
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  fill_send_buffer(a);
  ASSERT_EQ(a.gettimeout(), std::nullopt);
  // Safety net: without MSG_DONTWAIT the call would block 10 s (and then
  // fail with EAGAIN too), not forever; the bound below tells the two apart
  // with a margin no loaded machine eats up.
  const timeval ten_seconds{10, 0};
  a.setsockopt(SOL_SOCKET, SO_SNDTIMEO, pysock::const_buffer(&ten_seconds, sizeof ten_seconds));
  const auto start = steady::now();
  auto e = catch_as<pysock::blocking_io_error>([&] { a.sendmsg({"more"}, {}, MSG_DONTWAIT); });
  EXPECT_TRUE(e);
  EXPECT_LT(steady::now() - start, 5s);
}

TEST(message, sendmsg_on_non_blocking_stream_may_send_part_of_the_buffers) {
  auto [a, b] = pysock::socketpair();
  a.setsockopt(pysock::so_sndbuf, 4096);
  a.setblocking(false);
  const std::string big(4 << 20, 'p');
  const std::size_t n = a.sendmsg({big, big});
  EXPECT_GT(n, 0u);
  EXPECT_LT(n, 2 * big.size());
}

// --- ancillary data: SCM_RIGHTS -----------------------------------------------

TEST(message, scm_rights_passes_a_working_descriptor_that_is_close_on_exec) {
  auto [a, b] = pysock::socketpair();
  pipe_pair p;
  const std::vector<pysock::ancillary> anc{{SOL_SOCKET, SCM_RIGHTS, pack_ints({p.write_end})}};
  EXPECT_EQ(a.sendmsg({"fd"}, anc), 2u);
  b.settimeout(2s);
  const auto r = b.recvmsg(100, pysock::cmsg_space(sizeof(int)));
  EXPECT_EQ(r.data, "fd");
  EXPECT_EQ(r.msg_flags & MSG_CTRUNC, 0);
  ASSERT_EQ(r.ancdata.size(), 1u);
  EXPECT_EQ(r.ancdata[0].level, SOL_SOCKET);
  EXPECT_EQ(r.ancdata[0].type, SCM_RIGHTS);
  const std::vector<int> fds = received_fds(r.ancdata);
  ASSERT_EQ(fds.size(), 1u);
  EXPECT_NE(fds[0], p.write_end);  // a new descriptor for the same pipe
  EXPECT_TRUE(is_cloexec(fds[0])) << "pysock receives with MSG_CMSG_CLOEXEC";
  ASSERT_EQ(::write(fds[0], "via-received", 12), 12);
  char buf[32] = {};
  ASSERT_EQ(::read(p.read_end, buf, sizeof buf), 12);
  EXPECT_EQ(std::string_view(buf, 12), "via-received");
  close_all(fds);
}

TEST(message, scm_rights_passes_several_descriptors_in_one_item) {
  auto [a, b] = pysock::socketpair();
  pipe_pair p1, p2, p3;
  const std::vector<pysock::ancillary> anc{
      {SOL_SOCKET, SCM_RIGHTS, pack_ints({p1.write_end, p2.write_end, p3.write_end})}};
  a.sendmsg({"x"}, anc);
  b.settimeout(2s);
  const auto r = b.recvmsg(10, pysock::cmsg_space(3 * sizeof(int)));
  const std::vector<int> fds = received_fds(r.ancdata);
  ASSERT_EQ(fds.size(), 3u);
  EXPECT_EQ(r.msg_flags & MSG_CTRUNC, 0);
  // In order: the i-th received descriptor writes into the i-th pipe.
  const int readers[] = {p1.read_end, p2.read_end, p3.read_end};
  for (std::size_t i = 0; i < 3; ++i) {
    const char c = static_cast<char>('0' + i);
    ASSERT_EQ(::write(fds[i], &c, 1), 1);
    char got = 0;
    ASSERT_EQ(::read(readers[i], &got, 1), 1);
    EXPECT_EQ(got, c);
  }
  close_all(fds);
}

TEST(message, scm_rights_in_two_items_of_one_sendmsg_delivers_both_descriptors) {
  auto [a, b] = pysock::socketpair();
  pipe_pair p1, p2;
  const std::vector<pysock::ancillary> anc{{SOL_SOCKET, SCM_RIGHTS, pack_ints({p1.write_end})},
                                           {SOL_SOCKET, SCM_RIGHTS, pack_ints({p2.write_end})}};
  a.sendmsg({"x"}, anc);
  b.settimeout(2s);
  const auto r = b.recvmsg(10, pysock::cmsg_space(2 * sizeof(int)) * 2);
  const std::vector<int> fds = received_fds(r.ancdata);
  EXPECT_EQ(fds.size(), 2u);
  EXPECT_EQ(r.msg_flags & MSG_CTRUNC, 0);
  for (const int fd : fds) EXPECT_TRUE(is_cloexec(fd));
  close_all(fds);
}

TEST(message, scm_rights_item_with_no_descriptors_delivers_data_without_ancillary) {
  auto [a, b] = pysock::socketpair();
  const std::vector<pysock::ancillary> anc{{SOL_SOCKET, SCM_RIGHTS, {}}};
  EXPECT_EQ(a.sendmsg({"empty"}, anc), 5u);
  b.settimeout(2s);
  const auto r = b.recvmsg(10, pysock::cmsg_space(sizeof(int)));
  EXPECT_EQ(r.data, "empty");
  EXPECT_TRUE(r.ancdata.empty());
}

TEST(message, scm_rights_with_no_control_buffer_reports_msg_ctrunc_and_leaks_nothing) {
  auto [a, b] = pysock::socketpair();
  pipe_pair p;
  const int before = count_open_descriptors();
  a.sendmsg({"x"}, std::vector<pysock::ancillary>{
                       {SOL_SOCKET, SCM_RIGHTS, pack_ints({p.write_end, p.read_end})}});
  b.settimeout(2s);
  const auto r = b.recvmsg(10, 0);
  EXPECT_EQ(r.data, "x");
  EXPECT_NE(r.msg_flags & MSG_CTRUNC, 0);
  EXPECT_TRUE(r.ancdata.empty());
  EXPECT_EQ(count_open_descriptors(), before) << "the kernel drops descriptors that did not fit";
}

TEST(message, scm_rights_control_buffer_for_one_of_two_descriptors_delivers_one_and_msg_ctrunc) {
  auto [a, b] = pysock::socketpair();
  pipe_pair p;
  const int before = count_open_descriptors();
  a.sendmsg({"x"}, std::vector<pysock::ancillary>{
                       {SOL_SOCKET, SCM_RIGHTS, pack_ints({p.write_end, p.read_end})}});
  b.settimeout(2s);
  const auto r = b.recvmsg(10, pysock::cmsg_len(sizeof(int)));
  EXPECT_NE(r.msg_flags & MSG_CTRUNC, 0);
  const std::vector<int> fds = received_fds(r.ancdata);
  ASSERT_EQ(fds.size(), 1u);
  EXPECT_TRUE(is_cloexec(fds[0]));
  EXPECT_EQ(count_open_descriptors(), before + 1);
  close_all(fds);
  EXPECT_EQ(count_open_descriptors(), before);
}

TEST(message, scm_rights_control_buffer_one_byte_short_truncates_without_leaking) {
  // CPython's testCmsgTruncLen0Minus1: room for less than one header.
  auto [a, b] = pysock::socketpair();
  pipe_pair p;
  const int before = count_open_descriptors();
  a.sendmsg({"x"},
            std::vector<pysock::ancillary>{{SOL_SOCKET, SCM_RIGHTS, pack_ints({p.write_end})}});
  b.settimeout(2s);
  const auto r = b.recvmsg(10, pysock::cmsg_len(0) - 1);
  EXPECT_EQ(r.data, "x");
  EXPECT_NE(r.msg_flags & MSG_CTRUNC, 0);
  EXPECT_TRUE(received_fds(r.ancdata).empty());
  EXPECT_EQ(count_open_descriptors(), before);
}

TEST(message, sendmsg_with_bad_descriptor_in_scm_rights_raises_ebadf) {
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  pipe_pair p;
  const int closed_fd = ::dup(p.read_end);
  ::close(closed_fd);
  auto e = catch_as([&] {
    a.sendmsg({"x"},
              std::vector<pysock::ancillary>{{SOL_SOCKET, SCM_RIGHTS, pack_ints({closed_fd})}});
  });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::bad_file_descriptor);
}

TEST(message, recvmsg_on_udp_delivers_ip_pktinfo_ancillary_item) {
  // A non-SCM ancillary item end to end: IP_PKTINFO names the destination.
  pysock::socket receiver(AF_INET, SOCK_DGRAM);
  receiver.bind({"127.0.0.1", 0});
  receiver.setsockopt(IPPROTO_IP, IP_PKTINFO, 1);
  pysock::socket sender(AF_INET, SOCK_DGRAM);
  sender.sendto("pkt", receiver.getsockname());
  receiver.settimeout(2s);
  const auto r = receiver.recvmsg(10, pysock::cmsg_space(sizeof(in_pktinfo)));
  EXPECT_EQ(r.data, "pkt");
  ASSERT_EQ(r.ancdata.size(), 1u);
  EXPECT_EQ(r.ancdata[0].level, IPPROTO_IP);
  EXPECT_EQ(r.ancdata[0].type, IP_PKTINFO);
  ASSERT_EQ(r.ancdata[0].data.size(), sizeof(in_pktinfo));
  in_pktinfo info{};
  std::memcpy(&info, r.ancdata[0].data.data(), sizeof info);
  EXPECT_EQ(ntohl(info.ipi_addr.s_addr), INADDR_LOOPBACK);
}

// --- ancillary data: SCM_CREDENTIALS ------------------------------------------

ucred unpack_ucred(const pysock::bytes& data) {
  ucred c{};
  EXPECT_EQ(data.size(), sizeof c);
  std::memcpy(&c, data.data(), std::min(data.size(), sizeof c));
  return c;
}

TEST(message, so_passcred_receiver_gets_the_senders_pid_uid_gid) {
  auto [a, b] = pysock::socketpair(AF_UNIX, SOCK_DGRAM);
  b.setsockopt(SOL_SOCKET, SO_PASSCRED, 1);
  a.send("who");
  b.settimeout(2s);
  const auto r = b.recvmsg(10, pysock::cmsg_space(sizeof(ucred)));
  EXPECT_EQ(r.data, "who");
  ASSERT_EQ(r.ancdata.size(), 1u);
  EXPECT_EQ(r.ancdata[0].level, SOL_SOCKET);
  EXPECT_EQ(r.ancdata[0].type, SCM_CREDENTIALS);
  const ucred c = unpack_ucred(r.ancdata[0].data);
  EXPECT_EQ(c.pid, ::getpid());
  EXPECT_EQ(c.uid, ::getuid());
  EXPECT_EQ(c.gid, ::getgid());
}

TEST(message, explicit_scm_credentials_round_trip_over_a_stream) {
  auto [a, b] = pysock::socketpair();
  b.setsockopt(SOL_SOCKET, SO_PASSCRED, 1);
  const ucred mine{::getpid(), ::getuid(), ::getgid()};
  const std::vector<pysock::ancillary> anc{
      {SOL_SOCKET, SCM_CREDENTIALS,
       pysock::bytes(reinterpret_cast<const char*>(&mine), sizeof mine)}};
  EXPECT_EQ(a.sendmsg({"creds"}, anc), 5u);
  b.settimeout(2s);
  const auto r = b.recvmsg(10, pysock::cmsg_space(sizeof(ucred)));
  EXPECT_EQ(r.data, "creds");
  EXPECT_EQ(r.msg_flags & MSG_CTRUNC, 0);
  ASSERT_EQ(r.ancdata.size(), 1u);
  EXPECT_EQ(r.ancdata[0].type, SCM_CREDENTIALS);
  const ucred c = unpack_ucred(r.ancdata[0].data);
  EXPECT_EQ(c.pid, mine.pid);
  EXPECT_EQ(c.uid, mine.uid);
  EXPECT_EQ(c.gid, mine.gid);
}

TEST(message, scm_credentials_and_scm_rights_arrive_together) {
  auto [a, b] = pysock::socketpair(AF_UNIX, SOCK_DGRAM);
  b.setsockopt(SOL_SOCKET, SO_PASSCRED, 1);
  pipe_pair p;
  a.sendmsg({"both"},
            std::vector<pysock::ancillary>{{SOL_SOCKET, SCM_RIGHTS, pack_ints({p.write_end})}});
  b.settimeout(2s);
  const auto r = b.recvmsg(10, pysock::cmsg_space(sizeof(ucred)) + pysock::cmsg_space(sizeof(int)));
  EXPECT_EQ(r.msg_flags & MSG_CTRUNC, 0);
  bool saw_credentials = false;
  for (const auto& item : r.ancdata) {
    if (item.level == SOL_SOCKET && item.type == SCM_CREDENTIALS) {
      saw_credentials = true;
      EXPECT_EQ(unpack_ucred(item.data).pid, ::getpid());
    }
  }
  EXPECT_TRUE(saw_credentials);
  const std::vector<int> fds = received_fds(r.ancdata);
  ASSERT_EQ(fds.size(), 1u);
  EXPECT_TRUE(is_cloexec(fds[0]));
  close_all(fds);
}

// --- CMSG_LEN / CMSG_SPACE ----------------------------------------------------

TEST(message, cmsg_len_and_cmsg_space_have_the_linux_x86_64_values) {
  EXPECT_EQ(pysock::cmsg_len(0), 16u);
  EXPECT_EQ(pysock::cmsg_len(4), 20u);
  EXPECT_EQ(pysock::cmsg_len(12), 28u);
  EXPECT_EQ(pysock::cmsg_space(0), 16u);
  EXPECT_EQ(pysock::cmsg_space(4), 24u);
  EXPECT_EQ(pysock::cmsg_space(12), 32u);
  // Against the C macros over a range, as CPython's CmsgMacroTests do.
  for (std::size_t n = 0; n < 100; ++n) {
    EXPECT_EQ(pysock::cmsg_len(n), CMSG_LEN(n)) << n;
    EXPECT_EQ(pysock::cmsg_space(n), CMSG_SPACE(n)) << n;
    EXPECT_GE(pysock::cmsg_space(n), pysock::cmsg_len(n)) << n;
  }
}

TEST(message, cmsg_len_and_cmsg_space_throw_out_of_range_for_huge_values) {
  EXPECT_THROW((void)pysock::cmsg_len(SIZE_MAX), std::out_of_range);
  EXPECT_THROW((void)pysock::cmsg_space(SIZE_MAX), std::out_of_range);
  EXPECT_THROW((void)pysock::cmsg_len(static_cast<std::size_t>(INT_MAX)), std::out_of_range);
  EXPECT_THROW((void)pysock::cmsg_space(static_cast<std::size_t>(INT_MAX)), std::out_of_range);
  // The largest accepted values still fit a socklen_t-sized length.
  const std::size_t big = 1 << 20;
  EXPECT_EQ(pysock::cmsg_len(big), big + 16);
  EXPECT_EQ(pysock::cmsg_space(big), big + 16);
}

}  // namespace
