// SPDX-License-Identifier: MIT
//
// Datagram and record sockets (pysock/socket.hpp): UDP over IPv4 and IPv6,
// connected UDP, SO_BROADCAST (loopback only), truncation (recvfrom drops the
// rest, recvmsg reports MSG_TRUNC), AF_UNIX SOCK_DGRAM and SOCK_SEQPACKET with
// message boundaries, abstract names and autobind, and SOCK_RAW / AF_PACKET
// construction (skipped with the reason when the system refuses it).
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/ip_icmp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <gtest/gtest.h>

#include "support/checks.hpp"

#include "pysock/socket.hpp"

namespace {

using test_support::catch_as;
using test_support::ipv6_loopback_available;

using namespace std::chrono_literals;

std::string unique_name(std::string_view what) {
  return "pysock-test-" + std::string(what) + "-" + std::to_string(::getpid());
}

pysock::socket udp_bound(const char* host = "127.0.0.1") {
  pysock::socket s(AF_INET, SOCK_DGRAM);
  s.bind({host, 0});
  s.settimeout(2s);
  return s;
}

// --- UDP ------------------------------------------------------------------------

TEST(datagram, udp_v4_sendto_recvfrom_reports_the_senders_address) {
  pysock::socket receiver = udp_bound();
  pysock::socket sender = udp_bound();
  EXPECT_EQ(sender.sendto("ping", receiver.getsockname()), 4u);
  auto [data, from] = receiver.recvfrom(100);
  EXPECT_EQ(data, "ping");
  EXPECT_EQ(from, sender.getsockname());
  EXPECT_EQ(from.family(), AF_INET);
  EXPECT_EQ(from.host(), "127.0.0.1");
  // And back to the reported address.
  receiver.sendto("pong", from);
  EXPECT_EQ(sender.recvfrom(100).first, "pong");
}

TEST(datagram, udp_v6_sendto_recvfrom_reports_a_four_field_address) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "no IPv6 loopback (::1) on this machine";
  pysock::socket receiver(AF_INET6, SOCK_DGRAM);
  receiver.bind({"::1", 0});
  pysock::socket sender(AF_INET6, SOCK_DGRAM);
  sender.bind({"::1", 0});
  receiver.settimeout(2s);
  sender.sendto("six", receiver.getsockname());
  auto [data, from] = receiver.recvfrom(100);
  EXPECT_EQ(data, "six");
  EXPECT_EQ(from.family(), AF_INET6);
  EXPECT_EQ(from.host(), "::1");
  EXPECT_EQ(from.port(), sender.getsockname().port());
  EXPECT_EQ(from.flowinfo(), 0u);
  EXPECT_EQ(from.scope_id(), 0u);
}

TEST(datagram, each_sendto_is_one_datagram_received_whole_and_in_order) {
  pysock::socket receiver = udp_bound();
  pysock::socket sender = udp_bound();
  for (const char* m : {"a", "bb", "ccc"}) sender.sendto(m, receiver.getsockname());
  EXPECT_EQ(receiver.recv(100), "a");
  EXPECT_EQ(receiver.recv(100), "bb");
  EXPECT_EQ(receiver.recv(100), "ccc");
}

TEST(datagram, empty_datagram_is_received_as_empty_data_with_an_address) {
  pysock::socket receiver = udp_bound();
  pysock::socket sender = udp_bound();
  EXPECT_EQ(sender.sendto("", receiver.getsockname()), 0u);
  auto [data, from] = receiver.recvfrom(100);
  EXPECT_EQ(data, "");
  EXPECT_EQ(from, sender.getsockname());
}

TEST(datagram, recvfrom_into_fills_caller_memory) {
  pysock::socket receiver = udp_bound();
  pysock::socket sender = udp_bound();
  sender.sendto("into", receiver.getsockname());
  std::array<char, 16> buf{};
  auto [n, from] = receiver.recvfrom_into(buf);
  EXPECT_EQ(n, 4u);
  EXPECT_EQ(std::string_view(buf.data(), n), "into");
  EXPECT_EQ(from, sender.getsockname());
}

TEST(datagram, recvfrom_truncates_a_datagram_larger_than_bufsize_and_drops_the_rest) {
  pysock::socket receiver = udp_bound();
  pysock::socket sender = udp_bound();
  sender.sendto("0123456789", receiver.getsockname());
  sender.sendto("next", receiver.getsockname());
  EXPECT_EQ(receiver.recvfrom(4).first, "0123");
  EXPECT_EQ(receiver.recvfrom(100).first, "next");
}

TEST(datagram, recvmsg_reports_msg_trunc_for_a_datagram_larger_than_bufsize) {
  pysock::socket receiver = udp_bound();
  pysock::socket sender = udp_bound();
  sender.sendto("0123456789", receiver.getsockname());
  sender.sendto("fits", receiver.getsockname());
  const auto truncated = receiver.recvmsg(4);
  EXPECT_EQ(truncated.data, "0123");
  EXPECT_NE(truncated.msg_flags & MSG_TRUNC, 0);
  EXPECT_EQ(truncated.address, sender.getsockname());
  const auto whole = receiver.recvmsg(4);
  EXPECT_EQ(whole.data, "fits");
  EXPECT_EQ(whole.msg_flags & MSG_TRUNC, 0);
}

TEST(datagram, udp_datagram_over_the_maximum_size_raises_emsgsize) {
  pysock::socket receiver = udp_bound();
  pysock::socket sender = udp_bound();
  const std::string too_big(70000, 'x');
  auto e = catch_as([&] { sender.sendto(too_big, receiver.getsockname()); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::message_size);
}

TEST(datagram, recvfrom_on_an_empty_non_blocking_socket_raises_blocking_io_error) {
  pysock::socket receiver = udp_bound();
  receiver.setblocking(false);
  EXPECT_TRUE(catch_as<pysock::blocking_io_error>([&] { (void)receiver.recvfrom(100); }));
  std::error_code ec;
  (void)receiver.recvfrom(100, 0, ec);
  EXPECT_EQ(ec, std::errc::operation_would_block);
}

TEST(datagram, recvfrom_with_timeout_raises_timeout_error) {
  pysock::socket receiver = udp_bound();
  receiver.settimeout(100ms);
  auto e = catch_as<pysock::timeout_error>([&] { (void)receiver.recvfrom(100); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::timed_out);
}

// --- connected UDP --------------------------------------------------------------------

TEST(datagram, connected_udp_uses_send_and_recv_and_knows_its_peer) {
  pysock::socket a = udp_bound();
  pysock::socket b = udp_bound();
  a.connect(b.getsockname());
  b.connect(a.getsockname());
  EXPECT_EQ(a.getpeername(), b.getsockname());
  EXPECT_EQ(a.send("connected"), 9u);
  EXPECT_EQ(b.recv(100), "connected");
  b.send("reply");
  EXPECT_EQ(a.recv(100), "reply");
}

TEST(datagram, connected_udp_ignores_datagrams_from_other_senders) {
  pysock::socket a = udp_bound();
  pysock::socket peer = udp_bound();
  pysock::socket stranger = udp_bound();
  a.connect(peer.getsockname());
  stranger.sendto("from a stranger", a.getsockname());
  peer.sendto("from the peer", a.getsockname());
  auto [data, from] = a.recvfrom(100);
  EXPECT_EQ(data, "from the peer");
  EXPECT_EQ(from, peer.getsockname());
  a.setblocking(false);
  EXPECT_TRUE(catch_as<pysock::blocking_io_error>([&] { (void)a.recv(100); }));
}

TEST(datagram, connected_udp_to_a_closed_port_reports_connection_refused_on_recv) {
  // The kernel turns the ICMP port-unreachable into ECONNREFUSED on the
  // connected socket.
  // The port stays held, so no other socket can take it meanwhile: by a
  // socket connected elsewhere, which Linux never delivers a datagram from
  // another source to, so the datagram finds no receiver.
  pysock::socket elsewhere = udp_bound();
  pysock::socket holder = udp_bound();
  holder.connect(elsewhere.getsockname());
  const pysock::address dead = holder.getsockname();
  pysock::socket a = udp_bound();
  a.connect(dead);
  a.send("anyone?");
  auto e = catch_as<pysock::connection_refused_error>([&] { (void)a.recv(100); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::connection_refused);
  holder.setblocking(false);
  std::error_code ec;
  (void)holder.recv(100, 0, ec);
  EXPECT_EQ(ec, std::errc::resource_unavailable_try_again) << "the holder received the datagram";
}

TEST(datagram, send_on_an_unconnected_udp_socket_raises_edestaddrreq) {
  pysock::socket a = udp_bound();
  auto e = catch_as([&] { a.send("where to?"); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::destination_address_required);
}

// --- SO_BROADCAST (loopback only) -------------------------------------------------------

TEST(datagram, loopback_broadcast_needs_so_broadcast_and_then_arrives) {
  pysock::socket receiver(AF_INET, SOCK_DGRAM);
  receiver.bind({"0.0.0.0", 0});
  receiver.settimeout(2s);
  const int port = receiver.getsockname().port();
  pysock::socket sender(AF_INET, SOCK_DGRAM);
  EXPECT_FALSE(sender.getsockopt(pysock::so_broadcast));
  auto refused = catch_as<pysock::permission_error>([&] {
    sender.sendto("b", {"127.255.255.255", port});
  });
  ASSERT_TRUE(refused) << "a broadcast address was accepted without SO_BROADCAST";
  EXPECT_EQ(refused->code(), std::errc::permission_denied);

  sender.setsockopt(pysock::so_broadcast, true);
  EXPECT_TRUE(sender.getsockopt(pysock::so_broadcast));
  EXPECT_EQ(sender.sendto("broadcast", {"127.255.255.255", port}), 9u);
  EXPECT_EQ(receiver.recvfrom(100).first, "broadcast");
  // Unicast keeps working with the option set.
  EXPECT_EQ(sender.sendto("unicast", {"127.0.0.1", port}), 7u);
  EXPECT_EQ(receiver.recvfrom(100).first, "unicast");
}

// --- AF_UNIX datagrams and records ------------------------------------------------------

TEST(datagram, unix_dgram_socketpair_preserves_message_boundaries) {
  auto [a, b] = pysock::socketpair(AF_UNIX, SOCK_DGRAM);
  for (const char* m : {"one", "", "three33"}) a.send(m);
  b.settimeout(2s);
  EXPECT_EQ(b.recv(100), "one");
  EXPECT_EQ(b.recv(100), "");
  EXPECT_EQ(b.recv(100), "three33");
}

TEST(datagram, unix_seqpacket_preserves_boundaries_and_reports_eof) {
  auto [a, b] = pysock::socketpair(AF_UNIX, SOCK_SEQPACKET);
  EXPECT_EQ(a.type(), SOCK_SEQPACKET);
  a.sendall("first record");
  a.sendall("second");
  b.settimeout(2s);
  EXPECT_EQ(b.recv(100), "first record");
  // A short read of a record drops its rest, as with datagrams.
  a.sendall("0123456789");
  EXPECT_EQ(b.recv(100), "second");
  EXPECT_EQ(b.recv(4), "0123");
  a.sendall("after");
  EXPECT_EQ(b.recv(100), "after");
  a.close();
  EXPECT_EQ(b.recv(100), "");
}

TEST(datagram, unix_seqpacket_listener_accepts_and_keeps_records) {
  const std::string name = unique_name("seqpacket");
  pysock::socket listener(AF_UNIX, SOCK_SEQPACKET);
  listener.bind(pysock::address::abstract_name(name));
  listener.listen();
  pysock::socket client(AF_UNIX, SOCK_SEQPACKET);
  client.settimeout(2s);
  client.connect(pysock::address::abstract_name(name));
  auto [conn, from] = listener.accept();
  conn.settimeout(2s);
  EXPECT_EQ(conn.type(), SOCK_SEQPACKET);
  client.sendmsg({"re", "cord"});
  client.send("two");
  EXPECT_EQ(conn.recv(100), "record");
  EXPECT_EQ(conn.recv(100), "two");
}

TEST(datagram, unix_dgram_abstract_names_are_reported_to_the_receiver) {
  pysock::socket receiver(AF_UNIX, SOCK_DGRAM);
  receiver.bind(pysock::address::abstract_name(unique_name("dgram-recv")));
  receiver.settimeout(2s);
  EXPECT_TRUE(receiver.getsockname().is_abstract());
  EXPECT_EQ(receiver.getsockname().path(), std::string("\0", 1) + unique_name("dgram-recv"));

  pysock::socket named(AF_UNIX, SOCK_DGRAM);
  named.bind(pysock::address::abstract_name(unique_name("dgram-send")));
  named.sendto("named", receiver.getsockname());
  auto [data, from] = receiver.recvfrom(100);
  EXPECT_EQ(data, "named");
  EXPECT_TRUE(from.is_abstract());
  EXPECT_EQ(from, named.getsockname());
  // Reply to the reported name.
  receiver.sendto("reply", from);
  named.settimeout(2s);
  EXPECT_EQ(named.recv(100), "reply");
}

TEST(datagram, unix_dgram_from_an_unbound_sender_has_an_unnamed_address) {
  pysock::socket receiver(AF_UNIX, SOCK_DGRAM);
  receiver.bind(pysock::address::abstract_name(unique_name("dgram-unnamed")));
  receiver.settimeout(2s);
  pysock::socket anonymous(AF_UNIX, SOCK_DGRAM);
  anonymous.sendto("anon", receiver.getsockname());
  auto [data, from] = receiver.recvfrom(100);
  EXPECT_EQ(data, "anon");
  EXPECT_FALSE(from.is_abstract());
  EXPECT_EQ(from.path(), "");
}

TEST(datagram, unix_dgram_autobind_gets_an_abstract_name_that_receives) {
  pysock::socket s(AF_UNIX, SOCK_DGRAM);
  s.bind(pysock::address::unix_path(""));
  const pysock::address name = s.getsockname();
  EXPECT_TRUE(name.is_abstract());
  EXPECT_GT(name.path().size(), 1u);
  pysock::socket sender(AF_UNIX, SOCK_DGRAM);
  sender.sendto("autobound", name);
  s.settimeout(2s);
  EXPECT_EQ(s.recv(100), "autobound");
}

TEST(datagram, unix_dgram_filesystem_path_round_trip) {
  const std::string path = "/tmp/" + unique_name("dgram") + ".sock";
  ::unlink(path.c_str());
  {
    pysock::socket receiver(AF_UNIX, SOCK_DGRAM);
    receiver.bind(pysock::address::unix_path(path));
    receiver.settimeout(2s);
    EXPECT_EQ(receiver.getsockname().path(), path);
    pysock::socket sender(AF_UNIX, SOCK_DGRAM);
    sender.sendto("by path", pysock::address::unix_path(path));
    EXPECT_EQ(receiver.recv(100), "by path");
  }
  ::unlink(path.c_str());
}

TEST(datagram, unix_dgram_to_a_name_nobody_bound_raises_connection_refused) {
  pysock::socket sender(AF_UNIX, SOCK_DGRAM);
  auto e =
      catch_as([&] { sender.sendto("x", pysock::address::abstract_name(unique_name("nobody"))); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::connection_refused);
}

// --- SOCK_RAW and AF_PACKET --------------------------------------------------------------

TEST(datagram, raw_icmp_socket_reports_its_type_and_protocol) {
  std::optional<pysock::socket> raw;
  try {
    raw.emplace(AF_INET, SOCK_RAW, IPPROTO_ICMP);
  } catch (const pysock::os_error& e) {
    GTEST_SKIP() << "SOCK_RAW refused here: " << e.what();
  }
  EXPECT_EQ(raw->family(), AF_INET);
  EXPECT_EQ(raw->type(), SOCK_RAW);
  EXPECT_EQ(raw->proto(), IPPROTO_ICMP);
  // from_fileno reads the same back from the kernel.
  pysock::socket adopted = pysock::socket::from_fileno(raw->detach());
  EXPECT_EQ(adopted.type(), SOCK_RAW);
  EXPECT_EQ(adopted.proto(), IPPROTO_ICMP);
}

std::uint16_t icmp_checksum(const unsigned char* data, std::size_t length) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < length; i += 2)
    sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
  if (length % 2) sum += static_cast<std::uint32_t>(data[length - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

TEST(datagram, raw_icmp_echo_to_loopback_gets_a_reply) {
  std::optional<pysock::socket> raw;
  try {
    raw.emplace(AF_INET, SOCK_RAW, IPPROTO_ICMP);
  } catch (const pysock::os_error& e) {
    GTEST_SKIP() << "SOCK_RAW refused here: " << e.what();
  }
  std::array<unsigned char, 16> packet{};
  packet[0] = ICMP_ECHO;
  const auto id = static_cast<std::uint16_t>(::getpid());
  packet[4] = static_cast<unsigned char>(id >> 8);
  packet[5] = static_cast<unsigned char>(id & 0xff);
  std::memcpy(packet.data() + 8, "pysock!!", 8);
  const std::uint16_t sum = icmp_checksum(packet.data(), packet.size());
  packet[2] = static_cast<unsigned char>(sum >> 8);
  packet[3] = static_cast<unsigned char>(sum & 0xff);
  raw->sendto(packet, {"127.0.0.1", 0});
  raw->settimeout(2s);
  // A raw ICMP socket sees our own request too: look for the reply, bounded.
  for (int i = 0; i < 20; ++i) {
    auto [data, from] = raw->recvfrom(1500);
    ASSERT_GE(data.size(), 20u + 16u);
    const auto header = static_cast<std::size_t>((static_cast<unsigned char>(data[0]) & 0x0f) * 4);
    if (static_cast<unsigned char>(data[header]) != ICMP_ECHOREPLY) continue;
    EXPECT_EQ(from.host(), "127.0.0.1");
    EXPECT_EQ(data.substr(header + 8, 8), "pysock!!");
    return;
  }
  FAIL() << "no ICMP echo reply seen";
}

TEST(datagram, af_packet_raw_socket_reports_family_type_protocol_and_cloexec) {
  std::optional<pysock::socket> packet;
  try {
    packet.emplace(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  } catch (const pysock::os_error& e) {
    GTEST_SKIP() << "AF_PACKET refused here: " << e.what();
  }
  EXPECT_EQ(packet->family(), AF_PACKET);
  EXPECT_EQ(packet->type(), SOCK_RAW);
  EXPECT_EQ(packet->proto(), htons(ETH_P_ALL));
  EXPECT_FALSE(packet->get_inheritable());
}

TEST(datagram, af_packet_sock_dgram_can_be_created) {
  std::optional<pysock::socket> packet;
  try {
    packet.emplace(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
  } catch (const pysock::os_error& e) {
    GTEST_SKIP() << "AF_PACKET refused here: " << e.what();
  }
  EXPECT_EQ(packet->type(), SOCK_DGRAM);
  EXPECT_EQ(packet->family(), AF_PACKET);
}

// --- not a socket ---------------------------------------------------------------------

TEST(datagram, from_fileno_of_a_pipe_raises_enotsock_and_leaves_it_open) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  auto e = catch_as([&] { (void)pysock::socket::from_fileno(fds[0]); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::not_a_socket);
  EXPECT_GE(::fcntl(fds[0], F_GETFD), 0);
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace
