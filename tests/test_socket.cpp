// SPDX-License-Identifier: MIT
//
// pysock/socket.hpp: the socket class with Python's semantics — creation,
// close/detach/dup/move, bind/listen/accept/connect, data transfer, options,
// blocking modes, AF_UNIX (paths, abstract names, autobind), EINTR retry (PEP
// 475), no SIGPIPE, and use after close. Real sockets on loopback and AF_UNIX.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "support/checks.hpp"

#include "pysock/socket.hpp"

namespace {

using test_support::catch_as;
using test_support::contains;
using test_support::fd_is_open;
using test_support::ipv6_loopback_available;
using test_support::is_cloexec;
using test_support::is_nonblocking;
using test_support::refused_port;

using namespace std::chrono_literals;
using namespace std::string_literals;
using steady = std::chrono::steady_clock;

const char* loopback(int family) { return family == AF_INET6 ? "::1" : "127.0.0.1"; }

pysock::socket make_listener(int family = AF_INET) {
  pysock::socket listener(family);
  listener.bind({loopback(family), 0});
  listener.listen();
  return listener;
}

struct tcp_pair {
  pysock::socket client;
  pysock::socket server;  // the accepted end
};

tcp_pair make_tcp_pair(int family = AF_INET) {
  pysock::socket listener = make_listener(family);
  pysock::socket client(family);
  client.connect(listener.getsockname());
  auto accepted = listener.accept();
  return {std::move(client), std::move(accepted.first)};
}

// A unique directory under /tmp, removed with everything in it.
struct temp_dir {
  std::string path;
  temp_dir() {
    char pattern[] = "/tmp/pysock-test-XXXXXX";
    const char* made = ::mkdtemp(pattern);
    if (made == nullptr) throw std::runtime_error("mkdtemp failed");
    path = made;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

std::string unique_abstract_name(const char* tag) {
  static std::atomic<int> counter{0};
  return "pysock-test-"s + tag + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1)) + "-" +
         std::to_string(steady::now().time_since_epoch().count());
}

// Installs a no-op SIGALRM handler WITHOUT SA_RESTART for the scope, so a
// signal interrupts blocking calls with EINTR; counts deliveries.
std::atomic<int> g_sigalrm_count{0};
void count_sigalrm(int) { g_sigalrm_count.fetch_add(1, std::memory_order_relaxed); }

struct sigalrm_without_restart {
  struct sigaction previous {};
  sigalrm_without_restart() {
    struct sigaction action {};
    action.sa_handler = count_sigalrm;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: the kernel returns EINTR
    ::sigaction(SIGALRM, &action, &previous);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    g_sigalrm_count = 0;
  }
  ~sigalrm_without_restart() { ::sigaction(SIGALRM, &previous, nullptr); }
  sigalrm_without_restart(const sigalrm_without_restart&) = delete;
  sigalrm_without_restart& operator=(const sigalrm_without_restart&) = delete;
};

// SIGPIPE at its default action (terminate) and unblocked for the scope: a
// SIGPIPE raised by the library kills the test process, which fails the test.
struct sigpipe_default {
  struct sigaction previous {};
  sigset_t previous_mask{};
  sigpipe_default() {
    struct sigaction action {};
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGPIPE, &action, &previous);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    ::pthread_sigmask(SIG_UNBLOCK, &set, &previous_mask);
  }
  ~sigpipe_default() {
    ::sigaction(SIGPIPE, &previous, nullptr);
    ::pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
  }
  sigpipe_default(const sigpipe_default&) = delete;
  sigpipe_default& operator=(const sigpipe_default&) = delete;
};

char pattern_byte(std::size_t i) { return static_cast<char>((i * 7 + i / 251) & 0xff); }

}  // namespace

// --- creation ---------------------------------------------------------------

TEST(socket, default_socket_is_af_inet_stream_close_on_exec_and_blocking) {
  pysock::socket s;
  ASSERT_GE(s.fileno(), 0);
  EXPECT_FALSE(s.closed());
  EXPECT_EQ(s.family(), AF_INET);
  EXPECT_EQ(s.type(), SOCK_STREAM);
  EXPECT_EQ(s.proto(), 0);
  EXPECT_TRUE(is_cloexec(s.fileno()));
  EXPECT_FALSE(s.get_inheritable());
  EXPECT_EQ(s.gettimeout(), std::nullopt);
  EXPECT_TRUE(s.getblocking());
  EXPECT_FALSE(is_nonblocking(s.fileno()));
}

TEST(socket, udp_and_unix_sockets_report_their_family_and_type) {
  pysock::socket udp(AF_INET, SOCK_DGRAM);
  EXPECT_EQ(udp.family(), AF_INET);
  EXPECT_EQ(udp.type(), SOCK_DGRAM);
  pysock::socket unix_stream(AF_UNIX, SOCK_STREAM);
  EXPECT_EQ(unix_stream.family(), AF_UNIX);
  EXPECT_EQ(unix_stream.type(), SOCK_STREAM);
  pysock::socket seqpacket(AF_UNIX, SOCK_SEQPACKET);
  EXPECT_EQ(seqpacket.type(), SOCK_SEQPACKET);
  EXPECT_TRUE(is_cloexec(seqpacket.fileno()));
}

TEST(socket, bad_family_raises_eafnosupport) {
  auto e = catch_as([] { pysock::socket s(12345, SOCK_STREAM); });
  ASSERT_TRUE(e) << "socket(12345) did not raise os_error";
  EXPECT_EQ(e->errno_value(), EAFNOSUPPORT) << e->what();
}

TEST(socket, bad_type_raises_einval) {
  auto e = catch_as([] { pysock::socket s(AF_INET, 12345); });
  ASSERT_TRUE(e) << "socket(AF_INET, 12345) did not raise os_error";
  EXPECT_EQ(e->errno_value(), EINVAL) << e->what();
}

TEST(socket, sock_nonblock_in_type_gives_timeout_zero_and_type_is_masked) {
  pysock::socket s(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC);
  EXPECT_EQ(s.type(), SOCK_STREAM);
  EXPECT_EQ(s.gettimeout(), pysock::timeout_type(0ns));
  EXPECT_FALSE(s.getblocking());
  EXPECT_TRUE(is_nonblocking(s.fileno()));
}

TEST(socket, type_stays_sock_stream_whatever_the_timeout_mode) {
  pysock::socket s;
  s.settimeout(0s);
  EXPECT_EQ(s.type(), SOCK_STREAM);
  s.settimeout(1s);
  EXPECT_EQ(s.type(), SOCK_STREAM);
  s.setblocking(true);
  EXPECT_EQ(s.type(), SOCK_STREAM);
}

TEST(socket, default_backlog_is_min_of_somaxconn_and_128) {
  EXPECT_EQ(pysock::default_backlog, SOMAXCONN < 128 ? SOMAXCONN : 128);
  EXPECT_LE(pysock::default_backlog, 128);
}

// --- close, detach, dup, move ------------------------------------------------

TEST(socket, close_releases_descriptor_and_is_idempotent) {
  pysock::socket s;
  const int fd = s.fileno();
  s.close();
  EXPECT_EQ(s.fileno(), -1);
  EXPECT_TRUE(s.closed());
  EXPECT_FALSE(fd_is_open(fd));
  s.close();  // second close is a no-op
  EXPECT_EQ(s.fileno(), -1);
}

TEST(socket, close_after_descriptor_closed_behind_its_back_raises_ebadf) {
  pysock::socket s;
  ASSERT_EQ(::close(s.fileno()), 0);
  auto e = catch_as([&] { s.close(); });
  ASSERT_TRUE(e) << "close() of a descriptor already closed did not raise";
  EXPECT_EQ(e->errno_value(), EBADF) << e->what();
  EXPECT_EQ(s.fileno(), -1);  // the object is closed either way
}

TEST(socket, setblocking_on_descriptor_closed_behind_its_back_raises_ebadf) {
  pysock::socket s;
  const int fd = s.fileno();
  ASSERT_EQ(::close(fd), 0);
  auto e = catch_as([&] { s.setblocking(false); });
  EXPECT_TRUE(e) << "setblocking on a dead descriptor did not raise";
  if (e) {
    EXPECT_EQ(e->errno_value(), EBADF) << e->what();
  }
  (void)s.detach();  // do not let the destructor close a number no longer ours
}

TEST(socket, detach_returns_open_descriptor_and_leaves_object_closed) {
  pysock::socket s(AF_INET, SOCK_DGRAM);
  s.bind({"127.0.0.1", 0});
  const auto name = s.getsockname();
  const int fd = s.detach();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(s.fileno(), -1);
  EXPECT_TRUE(s.closed());
  EXPECT_TRUE(fd_is_open(fd));
  auto e = catch_as([&] { s.getsockname(); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errno_value(), EBADF);
  // The descriptor is still usable by a new owner.
  pysock::socket adopted = pysock::socket::from_fileno(fd);
  EXPECT_EQ(adopted.getsockname(), name);
}

TEST(socket, dup_copies_timeout_and_is_close_on_exec) {
  pysock::socket s;
  s.settimeout(3s);
  pysock::socket d = s.dup();
  EXPECT_NE(d.fileno(), s.fileno());
  EXPECT_TRUE(is_cloexec(d.fileno()));
  EXPECT_EQ(d.gettimeout(), pysock::timeout_type(3s));
  EXPECT_EQ(d.family(), s.family());
  EXPECT_EQ(d.type(), s.type());
  EXPECT_EQ(d.proto(), s.proto());
}

TEST(socket, dup_shares_o_nonblock_with_the_original) {
  pysock::socket s;
  s.settimeout(5s);
  ASSERT_TRUE(is_nonblocking(s.fileno()));
  pysock::socket d = s.dup();
  d.settimeout(std::nullopt);
  // Python documents this: the open file description is shared.
  EXPECT_FALSE(is_nonblocking(s.fileno()));
  EXPECT_EQ(s.gettimeout(), pysock::timeout_type(5s));
}

TEST(socket, dup_of_connected_socket_talks_to_the_same_peer) {
  auto pair = make_tcp_pair();
  pysock::socket d = pair.client.dup();
  pair.client.close();
  d.sendall("via dup");
  EXPECT_EQ(pair.server.recv(100), "via dup");
}

TEST(socket, moved_from_socket_is_closed_and_raises_ebadf) {
  pysock::socket a;
  const int fd = a.fileno();
  pysock::socket b(std::move(a));
  EXPECT_EQ(b.fileno(), fd);
  EXPECT_EQ(a.fileno(), -1);  // NOLINT(bugprone-use-after-move): documented state
  EXPECT_TRUE(a.closed());
  auto e = catch_as([&] { a.recv(10); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errno_value(), EBADF) << e->what();
  auto e2 = catch_as([&] { a.bind({"127.0.0.1", 0}); });
  ASSERT_TRUE(e2);
  EXPECT_EQ(e2->errno_value(), EBADF) << e2->what();
  EXPECT_NO_THROW(a.close());
  EXPECT_TRUE(fd_is_open(fd));  // closing the moved-from object did not touch b's fd
}

TEST(socket, move_assignment_closes_the_previous_descriptor) {
  pysock::socket a;
  pysock::socket b(AF_INET, SOCK_DGRAM);
  const int old_a = a.fileno();
  const int b_fd = b.fileno();
  a = std::move(b);
  EXPECT_EQ(a.fileno(), b_fd);
  EXPECT_EQ(a.type(), SOCK_DGRAM);
  EXPECT_FALSE(fd_is_open(old_a));
  EXPECT_EQ(b.fileno(), -1);  // NOLINT(bugprone-use-after-move)
}

TEST(socket, closed_socket_factory_owns_nothing_and_raises_ebadf) {
  pysock::socket s = pysock::socket::closed_socket();
  EXPECT_EQ(s.fileno(), -1);
  EXPECT_TRUE(s.closed());
  auto e = catch_as([&] { s.send("x"); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errno_value(), EBADF);
}

TEST(socket, every_call_on_a_closed_socket_raises_ebadf_without_crashing) {
  pysock::socket s;
  s.close();
  std::array<char, 16> buf{};
  const pysock::address somewhere{"127.0.0.1", 9};
  const std::vector<std::pair<const char*, std::function<void()>>> calls = {
      {"recv", [&] { s.recv(10); }},
      {"recv_into", [&] { s.recv_into(buf); }},
      {"recvfrom", [&] { s.recvfrom(10); }},
      {"recvfrom_into", [&] { s.recvfrom_into(buf); }},
      {"send", [&] { s.send("x"); }},
      {"send(empty)", [&] { s.send(""); }},
      {"sendall", [&] { s.sendall("x"); }},
      {"sendto", [&] { s.sendto("x", somewhere); }},
      {"bind",
       [&] {
         s.bind({"127.0.0.1", 0});
       }},
      {"listen", [&] { s.listen(); }},
      {"accept", [&] { s.accept(); }},
      {"connect", [&] { s.connect(somewhere); }},
      {"getsockname", [&] { s.getsockname(); }},
      {"getpeername", [&] { s.getpeername(); }},
      {"shutdown", [&] { s.shutdown(SHUT_RDWR); }},
      {"setsockopt(int)", [&] { s.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1); }},
      {"getsockopt(int)", [&] { s.getsockopt(SOL_SOCKET, SO_REUSEADDR); }},
      {"getsockopt(buflen)", [&] { s.getsockopt(SOL_SOCKET, SO_LINGER, 8); }},
      {"setsockopt(typed)", [&] { s.setsockopt(pysock::so_reuseaddr, true); }},
      {"getsockopt(typed)", [&] { s.getsockopt(pysock::tcp_nodelay); }},
      {"dup", [&] { s.dup(); }},
      {"get_inheritable", [&] { s.get_inheritable(); }},
      {"set_inheritable", [&] { s.set_inheritable(true); }},
  };
  for (const auto& [name, call] : calls) {
    auto e = catch_as(call);
    ASSERT_TRUE(e) << name << " on a closed socket did not raise os_error";
    EXPECT_EQ(e->errno_value(), EBADF) << name << ": " << e->what();
    EXPECT_TRUE(contains(e->what(), "Bad file descriptor")) << name << ": " << e->what();
  }
  EXPECT_EQ(s.fileno(), -1);
}

TEST(socket, settimeout_and_setblocking_on_closed_socket_raise_ebadf) {
  pysock::socket s;
  s.close();
  auto e = catch_as([&] { s.settimeout(1s); });
  ASSERT_TRUE(e) << "settimeout on a closed socket did not raise";
  EXPECT_EQ(e->errno_value(), EBADF) << e->what();
  auto e2 = catch_as([&] { s.setblocking(false); });
  ASSERT_TRUE(e2) << "setblocking on a closed socket did not raise";
  EXPECT_EQ(e2->errno_value(), EBADF) << e2->what();
}

TEST(socket, connect_ex_on_closed_socket_returns_ebadf) {
  pysock::socket s;
  s.close();
  EXPECT_EQ(s.connect_ex({"127.0.0.1", 9}), EBADF);
}

TEST(socket, error_code_overloads_on_closed_socket_set_ebadf_without_throwing) {
  pysock::socket s;
  s.close();
  std::array<char, 8> buf{};
  std::error_code ec;
  EXPECT_EQ(s.recv(8, 0, ec), "");
  EXPECT_EQ(ec, std::errc::bad_file_descriptor);
  ec.clear();
  EXPECT_EQ(s.recv_into(buf, 0, 0, ec), 0u);
  EXPECT_EQ(ec, std::errc::bad_file_descriptor);
  ec.clear();
  EXPECT_EQ(s.send("x", 0, ec), 0u);
  EXPECT_EQ(ec, std::errc::bad_file_descriptor);
  ec.clear();
  EXPECT_EQ(s.sendto("x", 0, {"127.0.0.1", 9}, ec), 0u);
  EXPECT_EQ(ec, std::errc::bad_file_descriptor);
  ec.clear();
  (void)s.recvfrom(8, 0, ec);
  EXPECT_EQ(ec, std::errc::bad_file_descriptor);
  ec.clear();
  (void)s.recvfrom_into(buf, 0, 0, ec);
  EXPECT_EQ(ec, std::errc::bad_file_descriptor);
  ec.clear();
  auto accepted = s.accept(ec);
  EXPECT_EQ(ec, std::errc::bad_file_descriptor);
  EXPECT_EQ(accepted.first.fileno(), -1);
  ec.clear();
  s.connect({"127.0.0.1", 9}, ec);
  EXPECT_EQ(ec, std::errc::bad_file_descriptor);
}

TEST(socket, send_on_closed_socket_with_timeout_raises_ebadf_not_timeout) {
  pysock::socket s;
  s.settimeout(1s);
  s.close();
  std::type_index type = typeid(void);
  auto e = catch_as([&] { s.send("x"); }, &type);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errno_value(), EBADF);
  EXPECT_NE(type, std::type_index(typeid(pysock::timeout_error)));
}

TEST(socket, recv_zero_returns_empty_without_syscall_even_when_closed) {
  pysock::socket s;
  s.close();
  EXPECT_EQ(s.recv(0), "");
}

TEST(socket, recv_zero_does_not_consume_a_pending_datagram) {
  pysock::socket receiver(AF_INET, SOCK_DGRAM);
  receiver.bind({"127.0.0.1", 0});
  pysock::socket sender(AF_INET, SOCK_DGRAM);
  sender.sendto("abc", receiver.getsockname());
  receiver.settimeout(5s);
  EXPECT_EQ(receiver.recv(0), "");
  EXPECT_EQ(receiver.recv(10), "abc");
}

// --- inheritance ---------------------------------------------------------------

TEST(socket, set_inheritable_toggles_fd_cloexec) {
  pysock::socket s;
  s.set_inheritable(true);
  EXPECT_TRUE(s.get_inheritable());
  EXPECT_FALSE(is_cloexec(s.fileno()));
  s.set_inheritable(false);
  EXPECT_FALSE(s.get_inheritable());
  EXPECT_TRUE(is_cloexec(s.fileno()));
}

// --- from_fileno ---------------------------------------------------------------

TEST(socket, from_fileno_detects_family_type_and_protocol) {
  const int udp_fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(udp_fd, 0);
  pysock::socket udp = pysock::socket::from_fileno(udp_fd);
  EXPECT_EQ(udp.fileno(), udp_fd);  // adopted, not duplicated
  EXPECT_EQ(udp.family(), AF_INET);
  EXPECT_EQ(udp.type(), SOCK_DGRAM);
  EXPECT_EQ(udp.proto(), IPPROTO_UDP);

  const int unix_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(unix_fd, 0);
  pysock::socket unix_socket = pysock::socket::from_fileno(unix_fd);
  EXPECT_EQ(unix_socket.family(), AF_UNIX);
  EXPECT_EQ(unix_socket.type(), SOCK_STREAM);
  EXPECT_EQ(unix_socket.proto(), 0);

  const int tcp_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(tcp_fd, 0);
  pysock::socket tcp = pysock::socket::from_fileno(tcp_fd);
  EXPECT_EQ(tcp.type(), SOCK_STREAM);
  EXPECT_EQ(tcp.proto(), IPPROTO_TCP);
}

TEST(socket, from_fileno_does_not_change_inheritable_flag) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);  // inheritable on purpose
  ASSERT_GE(fd, 0);
  pysock::socket s = pysock::socket::from_fileno(fd);
  EXPECT_TRUE(s.get_inheritable());
}

TEST(socket, from_fileno_negative_fd_throws_invalid_argument) {
  EXPECT_THROW(pysock::socket::from_fileno(-1), std::invalid_argument);
  EXPECT_THROW(pysock::socket::from_fileno(-42), std::invalid_argument);
}

TEST(socket, from_fileno_of_pipe_raises_enotsock_and_leaves_fd_open) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  auto e = catch_as([&] { pysock::socket::from_fileno(fds[0]); });
  const bool still_open = fd_is_open(fds[0]);
  ::close(fds[0]);
  ::close(fds[1]);
  ASSERT_TRUE(e) << "a pipe was adopted as a socket";
  EXPECT_EQ(e->errno_value(), ENOTSOCK) << e->what();
  EXPECT_TRUE(still_open);
}

TEST(socket, from_fileno_of_closed_fd_raises_ebadf) {
  const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ::close(fd);
  auto e = catch_as([&] { pysock::socket::from_fileno(fd); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errno_value(), EBADF) << e->what();
}

// --- bind, getsockname, getpeername ---------------------------------------------

TEST(socket, getsockname_of_unbound_ipv4_socket_is_wildcard_port_zero) {
  pysock::socket s;
  const auto name = s.getsockname();
  EXPECT_EQ(name.family(), AF_INET);
  EXPECT_EQ(name.host(), "0.0.0.0");
  EXPECT_EQ(name.port(), 0);
  EXPECT_EQ(name.to_string(), "0.0.0.0:0");
}

TEST(socket, getsockname_of_unbound_ipv6_socket_is_wildcard_port_zero) {
  SKIP_WITHOUT_IPV6();
  pysock::socket s(AF_INET6);
  const auto name = s.getsockname();
  EXPECT_EQ(name.family(), AF_INET6);
  EXPECT_EQ(name.host(), "::");
  EXPECT_EQ(name.port(), 0);
  EXPECT_EQ(name.flowinfo(), 0u);
  EXPECT_EQ(name.scope_id(), 0u);
}

TEST(socket, bind_to_port_zero_gets_an_ephemeral_port) {
  pysock::socket s;
  s.bind({"127.0.0.1", 0});
  const auto name = s.getsockname();
  EXPECT_EQ(name.host(), "127.0.0.1");
  EXPECT_GT(name.port(), 0);
  EXPECT_LE(name.port(), 65535);
}

TEST(socket, bind_with_empty_host_binds_the_wildcard) {
  pysock::socket s;
  s.bind({"", 0});
  EXPECT_EQ(s.getsockname().host(), "0.0.0.0");
}

TEST(socket, bind_resolves_a_host_name) {
  pysock::socket s;
  s.bind({"localhost", 0});
  EXPECT_EQ(s.getsockname().host(), "127.0.0.1");
}

TEST(socket, bind_on_port_in_use_raises_eaddrinuse_naming_the_address) {
  pysock::socket first = make_listener();
  const int port = first.getsockname().port();
  pysock::socket second;
  std::type_index type = typeid(void);
  auto e = catch_as([&] { second.bind({"127.0.0.1", port}); }, &type);
  ASSERT_TRUE(e) << "second bind to 127.0.0.1:" << port << " succeeded";
  EXPECT_EQ(e->errno_value(), EADDRINUSE);
  EXPECT_EQ(type, std::type_index(typeid(pysock::os_error))) << "EADDRINUSE is a plain OSError";
  const std::string expected =
      "bind(127.0.0.1:" + std::to_string(port) + "): [Errno 98] Address already in use";
  EXPECT_EQ(std::string(e->what()), expected);
}

TEST(socket, bind_twice_raises_einval) {
  pysock::socket s;
  s.bind({"127.0.0.1", 0});
  auto e = catch_as([&] { s.bind({"127.0.0.1", 0}); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errno_value(), EINVAL) << e->what();
}

TEST(socket, bind_port_out_of_range_is_refused_naming_bind) {
  pysock::socket s;
  for (int port : {65536, -1}) {
    bool refused = false;
    try {
      s.bind({"127.0.0.1", port});
    } catch (const std::out_of_range& e) {  // Python's OverflowError
      refused = true;
      EXPECT_TRUE(contains(e.what(), "bind")) << e.what();
    } catch (const pysock::os_error& e) {
      refused = true;
      EXPECT_EQ(e.errno_value(), EINVAL) << e.what();
      EXPECT_TRUE(contains(e.what(), "bind")) << e.what();
    }
    EXPECT_TRUE(refused) << "bind accepted port " << port;
  }
  EXPECT_EQ(s.getsockname().port(), 0);  // still unbound
}

TEST(socket, bind_unresolvable_name_raises_gaierror) {
  pysock::socket s;
  auto e = catch_as<pysock::gaierror>([&] { s.bind({"no-such-host.invalid", 0}); });
  ASSERT_TRUE(e);
  EXPECT_EQ(&e->code().category(), &pysock::gai_category());
}

TEST(socket, bind_ipv4_address_on_ipv6_socket_is_refused) {
  SKIP_WITHOUT_IPV6();
  pysock::socket s(AF_INET6);
  auto e = catch_as([&] { s.bind({"127.0.0.1", 0}); });
  ASSERT_TRUE(e) << "an IPv4 literal was accepted by an AF_INET6 socket";
}

TEST(socket, bind_broadcast_on_ipv6_socket_is_address_family_mismatch) {
  SKIP_WITHOUT_IPV6();
  pysock::socket s(AF_INET6, SOCK_DGRAM);
  auto e = catch_as([&] { s.bind({"<broadcast>", 0}); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), pysock::socket_errc::address_family_mismatch) << e->what();
  EXPECT_EQ(e->errno_value(), 0);
}

TEST(socket, getpeername_of_unconnected_socket_raises_enotconn) {
  pysock::socket s;
  auto e = catch_as([&] { s.getpeername(); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errno_value(), ENOTCONN) << e->what();
}

// --- listen, accept, connect -----------------------------------------------------

TEST(socket, tcp_connect_accept_and_exchange_on_ipv4) {
  pysock::socket listener = make_listener();
  pysock::socket client;
  client.connect(listener.getsockname());
  auto [conn, peer] = listener.accept();
  EXPECT_EQ(peer, client.getsockname());
  EXPECT_EQ(peer.host(), "127.0.0.1");
  EXPECT_EQ(client.getpeername(), listener.getsockname());
  EXPECT_EQ(conn.getpeername(), client.getsockname());
  EXPECT_EQ(conn.family(), AF_INET);
  EXPECT_EQ(conn.type(), SOCK_STREAM);
  client.sendall("ping");
  EXPECT_EQ(conn.recv(100), "ping");
  conn.sendall("pong");
  EXPECT_EQ(client.recv(100), "pong");
}

TEST(socket, tcp_connect_accept_and_exchange_on_ipv6) {
  SKIP_WITHOUT_IPV6();
  pysock::socket listener = make_listener(AF_INET6);
  EXPECT_EQ(listener.getsockname().host(), "::1");
  pysock::socket client(AF_INET6);
  client.connect({"::1", listener.getsockname().port()});
  auto [conn, peer] = listener.accept();
  EXPECT_EQ(peer.family(), AF_INET6);
  EXPECT_EQ(peer.host(), "::1");
  EXPECT_EQ(peer.port(), client.getsockname().port());
  client.sendall("six");
  EXPECT_EQ(conn.recv(10), "six");
}

TEST(socket, connect_resolves_a_host_name) {
  pysock::socket listener = make_listener();
  pysock::socket client;
  client.connect({"localhost", listener.getsockname().port()});
  EXPECT_EQ(client.getpeername(), listener.getsockname());
  auto accepted = listener.accept();
  EXPECT_EQ(accepted.second, client.getsockname());
}

TEST(socket, accepted_socket_is_close_on_exec_and_blocking) {
  pysock::socket listener = make_listener();
  pysock::socket client;
  client.connect(listener.getsockname());
  auto [conn, peer] = listener.accept();
  EXPECT_TRUE(is_cloexec(conn.fileno()));
  EXPECT_FALSE(conn.get_inheritable());
  EXPECT_FALSE(is_nonblocking(conn.fileno()));
}

TEST(socket, accepted_socket_gets_default_timeout_not_the_listeners) {
  ASSERT_EQ(pysock::getdefaulttimeout(), std::nullopt);
  pysock::socket listener = make_listener();
  listener.settimeout(5s);
  pysock::socket client;
  client.connect(listener.getsockname());
  auto [conn, peer] = listener.accept();
  EXPECT_EQ(conn.gettimeout(), std::nullopt);
  EXPECT_TRUE(conn.getblocking());
  EXPECT_FALSE(is_nonblocking(conn.fileno())) << "bpo-7995: the accepted fd must be blocking";
}

TEST(socket, accepted_socket_of_nonblocking_listener_is_blocking) {
  pysock::socket listener = make_listener();
  pysock::socket client;
  client.connect(listener.getsockname());
  listener.setblocking(false);
  pollfd pfd{listener.fileno(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1);
  auto [conn, peer] = listener.accept();
  EXPECT_EQ(conn.gettimeout(), std::nullopt);
  EXPECT_FALSE(is_nonblocking(conn.fileno()));
}

TEST(socket, listen_with_negative_backlog_still_accepts) {
  pysock::socket listener;
  listener.bind({"127.0.0.1", 0});
  listener.listen(-1);
  pysock::socket client;
  client.connect(listener.getsockname());
  auto accepted = listener.accept();
  EXPECT_EQ(accepted.second, client.getsockname());
}

TEST(socket, connect_to_closed_port_raises_connection_refused_error) {
  refused_port closed;
  pysock::socket s;
  std::type_index type = typeid(void);
  auto e = catch_as([&] { s.connect({"127.0.0.1", closed.port}); }, &type);
  ASSERT_TRUE(e) << "connect to a closed port succeeded";
  EXPECT_EQ(type, std::type_index(typeid(pysock::connection_refused_error)));
  EXPECT_EQ(e->errno_value(), ECONNREFUSED);
  EXPECT_EQ(e->code(), std::errc::connection_refused);
  const std::string expected =
      "connect(127.0.0.1:" + std::to_string(closed.port) + "): [Errno 111] Connection refused";
  EXPECT_EQ(std::string(e->what()), expected);
}

TEST(socket, connect_refused_is_catchable_as_connection_error_and_system_error) {
  refused_port closed;
  pysock::socket s;
  EXPECT_THROW(s.connect({"127.0.0.1", closed.port}), pysock::connection_error);
  pysock::socket s2;
  EXPECT_THROW(s2.connect({"127.0.0.1", closed.port}), std::system_error);
}

TEST(socket, connect_ex_to_closed_port_returns_econnrefused) {
  refused_port closed;
  pysock::socket s;
  EXPECT_EQ(s.connect_ex({"127.0.0.1", closed.port}), ECONNREFUSED);
}

TEST(socket, connect_ex_returns_zero_on_success) {
  pysock::socket listener = make_listener();
  pysock::socket s;
  EXPECT_EQ(s.connect_ex(listener.getsockname()), 0);
  EXPECT_EQ(s.getpeername(), listener.getsockname());
}

TEST(socket, connect_with_error_code_reports_refused_without_throwing) {
  refused_port closed;
  pysock::socket s;
  std::error_code ec;
  s.connect({"127.0.0.1", closed.port}, ec);
  EXPECT_EQ(ec, std::errc::connection_refused);
  EXPECT_EQ(&ec.category(), &std::system_category());
}

TEST(socket, connect_with_error_code_reports_unresolvable_name_as_gai_code) {
  pysock::socket s;
  std::error_code ec;
  s.connect({"no-such-host.invalid", 80}, ec);
  ASSERT_TRUE(ec);
  EXPECT_EQ(&ec.category(), &pysock::gai_category()) << ec.message();
}

TEST(socket, connect_ex_still_raises_for_unresolvable_name) {
  pysock::socket s;
  EXPECT_THROW(s.connect_ex({"no-such-host.invalid", 80}), pysock::gaierror);
}

TEST(socket, nonblocking_connect_raises_blocking_io_error_einprogress) {
  pysock::socket listener = make_listener();
  pysock::socket s;
  s.setblocking(false);
  std::type_index type = typeid(void);
  auto e = catch_as([&] { s.connect(listener.getsockname()); }, &type);
  ASSERT_TRUE(e) << "non-blocking connect completed at once";
  EXPECT_EQ(type, std::type_index(typeid(pysock::blocking_io_error)));
  EXPECT_EQ(e->errno_value(), EINPROGRESS);
  pollfd pfd{s.fileno(), POLLOUT, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1);
  EXPECT_EQ(s.getsockopt(pysock::so_error), 0);
}

TEST(socket, nonblocking_connect_ex_returns_einprogress_then_so_error_zero) {
  pysock::socket listener = make_listener();
  pysock::socket s;
  s.setblocking(false);
  EXPECT_EQ(s.connect_ex(listener.getsockname()), EINPROGRESS);
  pollfd pfd{s.fileno(), POLLOUT, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1);
  EXPECT_EQ(s.getsockopt(SOL_SOCKET, SO_ERROR), 0);
  EXPECT_EQ(s.getpeername(), listener.getsockname());
}

TEST(socket, nonblocking_accept_raises_blocking_io_error) {
  pysock::socket listener = make_listener();
  listener.setblocking(false);
  std::type_index type = typeid(void);
  auto e = catch_as([&] { listener.accept(); }, &type);
  ASSERT_TRUE(e) << "accept returned with nothing pending";
  EXPECT_EQ(type, std::type_index(typeid(pysock::blocking_io_error)));
  EXPECT_EQ(e->errno_value(), EAGAIN);
  EXPECT_TRUE(e->code() == std::errc::operation_would_block);
}

TEST(socket, nonblocking_accept_with_error_code_gives_would_block_and_closed_socket) {
  pysock::socket listener = make_listener();
  listener.setblocking(false);
  std::error_code ec;
  auto result = listener.accept(ec);
  EXPECT_EQ(ec, std::errc::operation_would_block);
  EXPECT_EQ(result.first.fileno(), -1);
  EXPECT_TRUE(result.second.empty());

  // ... and then succeeds once a client is pending.
  pysock::socket client;
  client.connect(listener.getsockname());
  pollfd pfd{listener.fileno(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1);
  ec.clear();
  auto accepted = listener.accept(ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_GE(accepted.first.fileno(), 0);
  EXPECT_EQ(accepted.second, client.getsockname());
}

// --- data transfer ---------------------------------------------------------------

TEST(socket, nonblocking_recv_raises_blocking_io_error_and_error_code_form_does_not_throw) {
  auto pair = make_tcp_pair();
  pysock::socket& s = pair.client;
  s.setblocking(false);
  std::type_index type = typeid(void);
  auto e = catch_as([&] { s.recv(10); }, &type);
  ASSERT_TRUE(e) << "recv returned with no data pending";
  EXPECT_EQ(type, std::type_index(typeid(pysock::blocking_io_error)));
  EXPECT_EQ(e->errno_value(), EAGAIN);

  std::error_code ec;
  EXPECT_EQ(s.recv(10, 0, ec), "");
  EXPECT_EQ(ec, std::errc::operation_would_block);
  std::array<char, 10> buf{};
  ec.clear();
  EXPECT_EQ(s.recv_into(buf, 0, 0, ec), 0u);
  EXPECT_EQ(ec, std::errc::operation_would_block);

  pair.server.sendall("data");
  pollfd pfd{s.fileno(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 5000), 1);
  ec.clear();
  EXPECT_EQ(s.recv_into(buf, 0, 0, ec), 4u);
  EXPECT_FALSE(ec);
  EXPECT_EQ(std::string_view(buf.data(), 4), "data");
}

TEST(socket, nonblocking_send_fills_buffer_then_would_block) {
  auto pair = pysock::socketpair();
  pysock::socket& s = pair.first;
  s.setblocking(false);
  const std::string chunk(64 * 1024, 'x');
  std::error_code ec;
  std::size_t total = 0;
  for (int i = 0; i < 10000 && !ec; ++i) total += s.send(chunk, 0, ec);
  ASSERT_EQ(ec, std::errc::operation_would_block) << ec.message();
  EXPECT_GT(total, 0u);
  std::type_index type = typeid(void);
  auto e = catch_as([&] { s.send(chunk); }, &type);
  ASSERT_TRUE(e);
  EXPECT_EQ(type, std::type_index(typeid(pysock::blocking_io_error)));
  auto e2 = catch_as([&] { s.sendall(chunk); }, &type);
  ASSERT_TRUE(e2);
  EXPECT_EQ(type, std::type_index(typeid(pysock::blocking_io_error)));
}

TEST(socket, recv_into_with_nbytes_larger_than_buffer_throws_invalid_argument) {
  auto pair = pysock::socketpair();
  std::array<char, 4> buf{};
  try {
    pair.first.recv_into(buf, 5);
    FAIL() << "recv_into accepted nbytes > buffer size";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "buffer too small")) << e.what();
  }
}

TEST(socket, recvfrom_into_with_nbytes_larger_than_buffer_throws_invalid_argument) {
  pysock::socket s(AF_INET, SOCK_DGRAM);
  std::array<char, 4> buf{};
  EXPECT_THROW(s.recvfrom_into(buf, 5), std::invalid_argument);
}

TEST(socket, recv_into_honours_nbytes_and_fills_caller_memory) {
  auto pair = pysock::socketpair();
  pair.second.sendall("hello world");
  std::array<char, 64> buf{};
  EXPECT_EQ(pair.first.recv_into(buf, 5), 5u);
  EXPECT_EQ(std::string_view(buf.data(), 5), "hello");
  std::string storage(64, '\0');
  const std::size_t n = pair.first.recv_into(storage);
  EXPECT_EQ(n, 6u);
  EXPECT_EQ(storage.substr(0, n), " world");
}

TEST(socket, recv_returns_empty_at_eof_and_keeps_returning_empty) {
  auto pair = make_tcp_pair();
  pair.client.sendall("last");
  pair.client.close();
  EXPECT_EQ(pair.server.recv(100), "last");
  EXPECT_EQ(pair.server.recv(100), "");
  EXPECT_EQ(pair.server.recv(100), "");
}

TEST(socket, send_of_empty_buffer_returns_zero) {
  auto pair = pysock::socketpair();
  EXPECT_EQ(pair.first.send(""), 0u);
}

TEST(socket, send_accepts_string_view_vector_and_span) {
  auto pair = pysock::socketpair();
  const std::vector<unsigned char> v{'a', 'b'};
  const std::array<std::byte, 2> arr{std::byte{'c'}, std::byte{'d'}};
  EXPECT_EQ(pair.first.send(std::string_view("xy")), 2u);
  EXPECT_EQ(pair.first.send(v), 2u);
  EXPECT_EQ(pair.first.send(std::span<const std::byte>(arr)), 2u);
  pair.first.sendall("Hello");  // a literal is sent without its NUL
  std::string got;
  for (int i = 0; i < 10 && got.size() < 11; ++i) got += pair.second.recv(100);
  EXPECT_EQ(got, "xyabcdHello");
}

TEST(socket, sendall_64_mib_through_socketpair_arrives_byte_exact) {
  constexpr std::size_t total = 64u * 1024 * 1024;
  std::string data(total, '\0');
  for (std::size_t i = 0; i < total; ++i) data[i] = pattern_byte(i);

  auto pair = pysock::socketpair();
  pair.second.settimeout(30s);
  std::size_t received = 0;
  std::size_t first_mismatch = total;
  std::string reader_error;
  std::thread reader([&] {
    try {
      std::vector<char> buf(256 * 1024);
      for (int i = 0; i < 10'000'000 && received < total; ++i) {
        const std::size_t n = pair.second.recv_into(buf);
        if (n == 0) break;
        for (std::size_t k = 0; k < n; ++k) {
          if (buf[k] != pattern_byte(received + k) && first_mismatch == total)
            first_mismatch = received + k;
        }
        received += n;
      }
    } catch (const std::exception& e) {
      reader_error = e.what();
    }
  });
  std::string sender_error;
  try {
    pair.first.sendall(data);
    pair.first.shutdown(SHUT_WR);
  } catch (const std::exception& e) {
    sender_error = e.what();
    pair.first.close();  // unblock the reader
  }
  reader.join();
  EXPECT_EQ(sender_error, "");
  EXPECT_EQ(reader_error, "");
  EXPECT_EQ(received, total);
  EXPECT_EQ(first_mismatch, total) << "first wrong byte at offset " << first_mismatch;
}

TEST(socket, shutdown_wr_makes_peer_read_eof_and_later_send_raises_broken_pipe) {
  auto pair = make_tcp_pair();
  pair.client.sendall("bye");
  pair.client.shutdown(SHUT_WR);
  EXPECT_EQ(pair.server.recv(100), "bye");
  EXPECT_EQ(pair.server.recv(100), "");
  // The other direction still works.
  pair.server.sendall("still open");
  EXPECT_EQ(pair.client.recv(100), "still open");
  sigpipe_default no_sigpipe_allowed;
  std::type_index type = typeid(void);
  auto e = catch_as([&] { pair.client.send("x"); }, &type);
  ASSERT_TRUE(e) << "send after SHUT_WR succeeded";
  EXPECT_EQ(type, std::type_index(typeid(pysock::broken_pipe_error)));
  EXPECT_EQ(e->errno_value(), EPIPE);
}

TEST(socket, shutdown_of_unconnected_socket_raises_enotconn) {
  pysock::socket s;
  auto e = catch_as([&] { s.shutdown(SHUT_RDWR); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errno_value(), ENOTCONN) << e->what();
}

TEST(socket, send_to_closed_peer_raises_broken_pipe_error_without_sigpipe) {
  sigpipe_default no_sigpipe_allowed;
  auto pair = pysock::socketpair();
  pair.second.close();
  std::type_index type = typeid(void);
  auto e = catch_as([&] { pair.first.send("x"); }, &type);
  ASSERT_TRUE(e) << "send to a closed peer succeeded";
  EXPECT_EQ(type, std::type_index(typeid(pysock::broken_pipe_error)));
  EXPECT_EQ(e->errno_value(), EPIPE);
  auto e2 = catch_as([&] { pair.first.sendall(std::string(100000, 'y')); }, &type);
  ASSERT_TRUE(e2);
  EXPECT_EQ(type, std::type_index(typeid(pysock::broken_pipe_error)));
  std::error_code ec;
  EXPECT_EQ(pair.first.send("x", 0, ec), 0u);
  EXPECT_EQ(ec, std::errc::broken_pipe);
}

TEST(socket, peer_reset_during_sendall_raises_connection_reset_or_broken_pipe) {
  sigpipe_default no_sigpipe_allowed;
  auto pair = make_tcp_pair();
  pair.client.settimeout(20s);  // a safety net: the reset must end sendall first
  std::string peer_error;
  std::thread peer([&] {
    try {
      std::this_thread::sleep_for(100ms);
      pair.server.setsockopt(pysock::so_linger, std::optional<std::chrono::seconds>(0s));
      pair.server.close();  // SO_LINGER 0: close sends RST
    } catch (const std::exception& e) {
      peer_error = e.what();
    }
  });
  std::type_index type = typeid(void);
  std::size_t sent = 0;
  const std::string big(64u * 1024 * 1024, 'r');
  const auto start = steady::now();
  auto e = catch_as<pysock::os_error>([&] { pair.client.sendall(big, 0, &sent); }, &type);
  const auto elapsed = steady::now() - start;
  peer.join();
  EXPECT_EQ(peer_error, "");
  ASSERT_TRUE(e) << "sendall of 64 MiB to a reset peer succeeded";
  EXPECT_TRUE(type == std::type_index(typeid(pysock::connection_reset_error)) ||
              type == std::type_index(typeid(pysock::broken_pipe_error)))
      << "got " << e->what();
  EXPECT_TRUE(e->errno_value() == ECONNRESET || e->errno_value() == EPIPE) << e->what();
  EXPECT_LT(sent, big.size());
  EXPECT_LT(elapsed, 15s);
}

TEST(socket, recv_after_peer_reset_raises_connection_reset_error) {
  auto pair = make_tcp_pair();
  pair.client.sendall("unread");  // unread data makes close() send RST anyway
  pair.server.setsockopt(pysock::so_linger, std::optional<std::chrono::seconds>(0s));
  pair.server.close();
  pair.client.settimeout(5s);
  std::type_index type = typeid(void);
  auto e = catch_as([&] { pair.client.recv(10); }, &type);
  ASSERT_TRUE(e);
  EXPECT_EQ(type, std::type_index(typeid(pysock::connection_reset_error))) << e->what();
  EXPECT_EQ(e->errno_value(), ECONNRESET);
}

// --- UDP ----------------------------------------------------------------------

TEST(socket, udp_sendto_recvfrom_roundtrip_on_ipv4_reports_sender) {
  pysock::socket a(AF_INET, SOCK_DGRAM);
  pysock::socket b(AF_INET, SOCK_DGRAM);
  a.bind({"127.0.0.1", 0});
  b.bind({"127.0.0.1", 0});
  a.settimeout(5s);
  b.settimeout(5s);
  EXPECT_EQ(b.sendto("hello", a.getsockname()), 5u);
  auto [data, sender] = a.recvfrom(100);
  EXPECT_EQ(data, "hello");
  EXPECT_EQ(sender, b.getsockname());
  EXPECT_EQ(sender.family(), AF_INET);
  EXPECT_EQ(a.sendto("reply", 0, sender), 5u);
  std::array<char, 16> buf{};
  auto [n, from] = b.recvfrom_into(buf);
  EXPECT_EQ(n, 5u);
  EXPECT_EQ(std::string_view(buf.data(), n), "reply");
  EXPECT_EQ(from, a.getsockname());
}

TEST(socket, udp_sendto_recvfrom_roundtrip_on_ipv6_reports_sender) {
  SKIP_WITHOUT_IPV6();
  pysock::socket a(AF_INET6, SOCK_DGRAM);
  pysock::socket b(AF_INET6, SOCK_DGRAM);
  a.bind({"::1", 0});
  b.bind({"::1", 0});
  a.settimeout(5s);
  EXPECT_EQ(b.sendto("hello6", {"::1", a.getsockname().port()}), 6u);
  auto [data, sender] = a.recvfrom(100);
  EXPECT_EQ(data, "hello6");
  EXPECT_EQ(sender.family(), AF_INET6);
  EXPECT_EQ(sender.host(), "::1");
  EXPECT_EQ(sender.port(), b.getsockname().port());
  EXPECT_EQ(sender, b.getsockname());
}

TEST(socket, udp_recvfrom_with_error_code_reports_sender) {
  pysock::socket a(AF_INET, SOCK_DGRAM);
  pysock::socket b(AF_INET, SOCK_DGRAM);
  a.bind({"127.0.0.1", 0});
  b.bind({"127.0.0.1", 0});
  std::error_code ec;
  EXPECT_EQ(b.sendto("x", 0, a.getsockname(), ec), 1u);
  EXPECT_FALSE(ec);
  a.settimeout(5s);
  auto [data, sender] = a.recvfrom(10, 0, ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(data, "x");
  EXPECT_EQ(sender, b.getsockname());
}

TEST(socket, udp_datagram_longer_than_bufsize_is_truncated) {
  pysock::socket a(AF_INET, SOCK_DGRAM);
  pysock::socket b(AF_INET, SOCK_DGRAM);
  a.bind({"127.0.0.1", 0});
  a.settimeout(5s);
  b.sendto("truncated", a.getsockname());
  b.sendto("next", a.getsockname());
  EXPECT_EQ(a.recvfrom(3).first, "tru");
  EXPECT_EQ(a.recv(100), "next");  // the rest of the first datagram is gone
}

TEST(socket, udp_zero_length_datagram_is_not_eof) {
  pysock::socket a(AF_INET, SOCK_DGRAM);
  pysock::socket b(AF_INET, SOCK_DGRAM);
  a.bind({"127.0.0.1", 0});
  a.settimeout(5s);
  b.sendto("", a.getsockname());
  b.sendto("after", a.getsockname());
  EXPECT_EQ(a.recv(100), "");
  EXPECT_EQ(a.recv(100), "after");
}

TEST(socket, recvfrom_on_connected_tcp_gives_empty_address) {
  auto pair = make_tcp_pair();
  pair.client.sendall("tcp");
  auto [data, from] = pair.server.recvfrom(100);
  EXPECT_EQ(data, "tcp");
  EXPECT_TRUE(from.empty());
  EXPECT_EQ(from.family(), AF_UNSPEC);
}

TEST(socket, nonblocking_udp_recvfrom_with_error_code_gives_would_block) {
  pysock::socket a(AF_INET, SOCK_DGRAM);
  a.bind({"127.0.0.1", 0});
  a.setblocking(false);
  std::error_code ec;
  auto result = a.recvfrom(10, 0, ec);
  EXPECT_EQ(ec, std::errc::operation_would_block);
  EXPECT_EQ(result.first, "");
  std::type_index type = typeid(void);
  auto e = catch_as([&] { a.recvfrom(10); }, &type);
  ASSERT_TRUE(e);
  EXPECT_EQ(type, std::type_index(typeid(pysock::blocking_io_error)));
}

// --- options ------------------------------------------------------------------

TEST(socket, setsockopt_and_getsockopt_int_roundtrip_so_reuseaddr) {
  pysock::socket s;
  EXPECT_EQ(s.getsockopt(SOL_SOCKET, SO_REUSEADDR), 0);
  s.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1);
  EXPECT_NE(s.getsockopt(SOL_SOCKET, SO_REUSEADDR), 0);
  EXPECT_EQ(s.getsockopt(SOL_SOCKET, SO_TYPE), SOCK_STREAM);
}

TEST(socket, typed_options_roundtrip) {
  pysock::socket s;
  s.setsockopt(pysock::so_reuseaddr, true);
  EXPECT_TRUE(s.getsockopt(pysock::so_reuseaddr));
  s.setsockopt(pysock::so_reuseaddr, false);
  EXPECT_FALSE(s.getsockopt(pysock::so_reuseaddr));
  s.setsockopt(pysock::tcp_nodelay, true);
  EXPECT_TRUE(s.getsockopt(pysock::tcp_nodelay));
  EXPECT_NE(s.getsockopt(IPPROTO_TCP, TCP_NODELAY), 0);
  s.setsockopt(pysock::so_keepalive, true);
  EXPECT_TRUE(s.getsockopt(pysock::so_keepalive));
  s.setsockopt(pysock::so_reuseport, true);
  EXPECT_TRUE(s.getsockopt(pysock::so_reuseport));
  s.setsockopt(pysock::so_rcvbuf, 65536);
  EXPECT_GE(s.getsockopt(pysock::so_rcvbuf), 65536);  // Linux doubles it
  s.setsockopt(pysock::so_sndbuf, 65536);
  EXPECT_GE(s.getsockopt(pysock::so_sndbuf), 65536);
  EXPECT_EQ(s.getsockopt(pysock::so_type), SOCK_STREAM);
  EXPECT_EQ(s.getsockopt(pysock::so_error), 0);

  pysock::socket udp(AF_INET, SOCK_DGRAM);
  EXPECT_FALSE(udp.getsockopt(pysock::so_broadcast));
  udp.setsockopt(pysock::so_broadcast, true);
  EXPECT_TRUE(udp.getsockopt(pysock::so_broadcast));
}

TEST(socket, typed_so_linger_roundtrips_optional_seconds) {
  pysock::socket s;
  EXPECT_EQ(s.getsockopt(pysock::so_linger), std::nullopt);
  s.setsockopt(pysock::so_linger, std::optional<std::chrono::seconds>(5s));
  EXPECT_EQ(s.getsockopt(pysock::so_linger), std::optional<std::chrono::seconds>(5s));
  s.setsockopt(pysock::so_linger, std::optional<std::chrono::seconds>(std::nullopt));
  EXPECT_EQ(s.getsockopt(pysock::so_linger), std::nullopt);
}

TEST(socket, typed_ipv6_v6only_roundtrips) {
  SKIP_WITHOUT_IPV6();
  pysock::socket s(AF_INET6);
  s.setsockopt(pysock::ipv6_v6only, true);
  EXPECT_TRUE(s.getsockopt(pysock::ipv6_v6only));
  s.setsockopt(pysock::ipv6_v6only, false);
  EXPECT_FALSE(s.getsockopt(pysock::ipv6_v6only));
}

TEST(socket, raw_bytes_setsockopt_and_getsockopt_with_buflen_roundtrip_so_linger) {
  pysock::socket s;
  ::linger in{};
  in.l_onoff = 1;
  in.l_linger = 7;
  s.setsockopt(SOL_SOCKET, SO_LINGER, pysock::const_buffer(&in, sizeof in));
  const pysock::bytes raw = s.getsockopt(SOL_SOCKET, SO_LINGER, sizeof(::linger));
  ASSERT_EQ(raw.size(), sizeof(::linger));
  ::linger out{};
  std::memcpy(&out, raw.data(), sizeof out);
  EXPECT_NE(out.l_onoff, 0);
  EXPECT_EQ(out.l_linger, 7);
  EXPECT_EQ(s.getsockopt(pysock::so_linger), std::optional<std::chrono::seconds>(7s));
}

TEST(socket, getsockopt_result_is_truncated_to_kernel_length) {
  pysock::socket s;
  EXPECT_EQ(s.getsockopt(SOL_SOCKET, SO_LINGER, 1024).size(), sizeof(::linger));
  EXPECT_EQ(s.getsockopt(SOL_SOCKET, SO_TYPE, 1024).size(), sizeof(int));
}

TEST(socket, getsockopt_buflen_out_of_range_throws_invalid_argument) {
  pysock::socket s;
  for (socklen_t buflen : {socklen_t{0}, socklen_t{1025}}) {
    try {
      (void)s.getsockopt(SOL_SOCKET, SO_LINGER, buflen);
      ADD_FAILURE() << "getsockopt accepted buflen " << buflen;
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(contains(e.what(), "getsockopt buflen out of range")) << e.what();
    }
  }
}

TEST(socket, unknown_option_raises_enoprotoopt) {
  pysock::socket s;
  auto e = catch_as([&] { s.setsockopt(SOL_SOCKET, 12345, 1); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errno_value(), ENOPROTOOPT) << e->what();
  auto e2 = catch_as([&] { (void)s.getsockopt(SOL_SOCKET, 12345); });
  ASSERT_TRUE(e2);
  EXPECT_EQ(e2->errno_value(), ENOPROTOOPT) << e2->what();
}

TEST(socket, setsockopt_null_value_with_length_passes_null_to_the_kernel) {
  pysock::socket s;
  // optval NULL with a length: the kernel faults reading it (AF_ALG's use aside).
  auto e = catch_as([&] { s.setsockopt(SOL_SOCKET, SO_REUSEADDR, nullptr, sizeof(int)); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errno_value(), EFAULT) << e->what();
}

// --- blocking modes (Python 1.1) ------------------------------------------------

TEST(socket, settimeout_getblocking_and_o_nonblock_follow_python_table) {
  pysock::socket s;
  // None: blocking, O_NONBLOCK clear.
  EXPECT_EQ(s.gettimeout(), std::nullopt);
  EXPECT_TRUE(s.getblocking());
  EXPECT_FALSE(is_nonblocking(s.fileno()));
  // 0: non-blocking, O_NONBLOCK set.
  s.settimeout(0s);
  EXPECT_EQ(s.gettimeout(), pysock::timeout_type(0ns));
  EXPECT_FALSE(s.getblocking());
  EXPECT_TRUE(is_nonblocking(s.fileno()));
  // t > 0: timeout mode, getblocking() true, O_NONBLOCK set.
  s.settimeout(2500ms);
  EXPECT_EQ(s.gettimeout(), pysock::timeout_type(2500ms));
  EXPECT_EQ(s.timeout(), pysock::timeout_type(2500ms));
  EXPECT_TRUE(s.getblocking());
  EXPECT_TRUE(is_nonblocking(s.fileno()));
  // setblocking(true) == settimeout(None).
  s.setblocking(true);
  EXPECT_EQ(s.gettimeout(), std::nullopt);
  EXPECT_TRUE(s.getblocking());
  EXPECT_FALSE(is_nonblocking(s.fileno()));
  // setblocking(false) == settimeout(0).
  s.setblocking(false);
  EXPECT_EQ(s.gettimeout(), pysock::timeout_type(0ns));
  EXPECT_FALSE(s.getblocking());
  EXPECT_TRUE(is_nonblocking(s.fileno()));
  // settimeout(None) from non-blocking.
  s.settimeout(std::nullopt);
  EXPECT_EQ(s.gettimeout(), std::nullopt);
  EXPECT_FALSE(is_nonblocking(s.fileno()));
}

TEST(socket, settimeout_negative_throws_invalid_argument) {
  pysock::socket s;
  s.settimeout(1s);
  try {
    s.settimeout(-1s);
    FAIL() << "negative timeout accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "Timeout value out of range")) << e.what();
  }
  EXPECT_THROW(s.settimeout(pysock::timeout_type(-1ns)), std::invalid_argument);
  EXPECT_EQ(s.gettimeout(), pysock::timeout_type(1s));  // unchanged
}

TEST(socket, settimeout_rounds_fractional_durations_away_from_zero) {
  pysock::socket s;
  s.settimeout(std::chrono::duration<double>(1e-12));
  EXPECT_EQ(s.gettimeout(), pysock::timeout_type(1ns));
  EXPECT_TRUE(s.getblocking());  // stays in timeout mode, not non-blocking
  s.settimeout(std::chrono::duration<double>(0.5));
  EXPECT_EQ(s.gettimeout(), pysock::timeout_type(500ms));
  s.settimeout(std::chrono::duration<double, std::micro>(1.5));
  EXPECT_EQ(s.gettimeout(), pysock::timeout_type(1500ns));
  EXPECT_EQ(pysock::socket::round_timeout(std::chrono::duration<double>(-1e-12)), -1ns);
}

// --- AF_UNIX ------------------------------------------------------------------

TEST(socket, unix_stream_bind_connect_accept_with_path) {
  temp_dir dir;
  const std::string path = dir.path + "/server.sock";
  pysock::socket server(AF_UNIX);
  server.bind(pysock::address::unix_path(path));
  server.listen();
  EXPECT_EQ(server.getsockname().path(), path);
  EXPECT_EQ(server.getsockname().family(), AF_UNIX);
  pysock::socket client(AF_UNIX);
  client.connect(pysock::address::unix_path(path));
  EXPECT_EQ(client.getpeername().path(), path);
  auto [conn, peer] = server.accept();
  EXPECT_EQ(peer.family(), AF_UNIX);
  EXPECT_EQ(peer.path(), "");  // the client is unnamed
  EXPECT_TRUE(is_cloexec(conn.fileno()));
  client.sendall("over unix");
  EXPECT_EQ(conn.recv(100), "over unix");
}

TEST(socket, unix_getsockname_of_unbound_socket_is_empty_path) {
  pysock::socket s(AF_UNIX);
  const auto name = s.getsockname();
  EXPECT_EQ(name.family(), AF_UNIX);
  EXPECT_EQ(name.path(), "");
  EXPECT_EQ(name.to_string(), "");
}

TEST(socket, unix_connect_to_missing_path_raises_file_not_found_error) {
  temp_dir dir;
  pysock::socket s(AF_UNIX);
  std::type_index type = typeid(void);
  auto e = catch_as([&] { s.connect(pysock::address::unix_path(dir.path + "/missing")); }, &type);
  ASSERT_TRUE(e);
  EXPECT_EQ(type, std::type_index(typeid(pysock::file_not_found_error)));
  EXPECT_EQ(e->errno_value(), ENOENT);
  EXPECT_TRUE(contains(e->what(), dir.path + "/missing")) << e->what();
}

TEST(socket, unix_bind_to_existing_path_raises_eaddrinuse) {
  temp_dir dir;
  const std::string path = dir.path + "/taken.sock";
  pysock::socket first(AF_UNIX);
  first.bind(pysock::address::unix_path(path));
  pysock::socket second(AF_UNIX);
  auto e = catch_as([&] { second.bind(pysock::address::unix_path(path)); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errno_value(), EADDRINUSE) << e->what();
  EXPECT_TRUE(contains(e->what(), path)) << e->what();
}

TEST(socket, unix_path_of_107_bytes_binds) {
  temp_dir dir;
  const std::size_t limit = sizeof(sockaddr_un{}.sun_path) - 1;  // 107
  std::string path = dir.path + "/";
  path += std::string(limit - path.size(), 'p');
  ASSERT_EQ(path.size(), 107u);
  pysock::socket s(AF_UNIX);
  s.bind(pysock::address::unix_path(path));
  EXPECT_EQ(s.getsockname().path(), path);
}

TEST(socket, unix_path_of_108_bytes_raises_path_too_long) {
  temp_dir dir;
  const std::size_t too_long = sizeof(sockaddr_un{}.sun_path);  // 108
  std::string path = dir.path + "/";
  path += std::string(too_long - path.size(), 'p');
  ASSERT_EQ(path.size(), 108u);
  pysock::socket s(AF_UNIX);
  auto e = catch_as([&] { s.bind(pysock::address::unix_path(path)); });
  ASSERT_TRUE(e) << "bind accepted a 108-byte path";
  EXPECT_EQ(e->errno_value(), 0);
  EXPECT_EQ(e->code(), pysock::socket_errc::path_too_long);
  EXPECT_TRUE(contains(e->what(), "AF_UNIX path too long")) << e->what();
  auto e2 = catch_as([&] { s.connect(pysock::address::unix_path(path)); });
  ASSERT_TRUE(e2);
  EXPECT_EQ(e2->code(), pysock::socket_errc::path_too_long);
}

TEST(socket, abstract_unix_socket_roundtrip) {
  const std::string name = unique_abstract_name("abstract");
  pysock::socket server(AF_UNIX);
  server.bind(pysock::address::abstract_name(name));
  server.listen();
  const auto bound = server.getsockname();
  EXPECT_TRUE(bound.is_abstract());
  EXPECT_EQ(bound.path(), "\0"s + name);
  EXPECT_EQ(bound.to_string(), "@" + name);
  pysock::socket client(AF_UNIX);
  client.connect(pysock::address::abstract_name(name));
  auto [conn, peer] = server.accept();
  client.sendall("abstract");
  EXPECT_EQ(conn.recv(100), "abstract");
  EXPECT_EQ(client.getpeername(), bound);
}

TEST(socket, abstract_name_of_108_bytes_binds_and_109_is_too_long) {
  const std::size_t max_name = sizeof(sockaddr_un{}.sun_path) - 1;  // 107 + the NUL
  std::string name = unique_abstract_name("max");
  name += std::string(max_name - name.size(), 'm');
  pysock::socket s(AF_UNIX);
  s.bind(pysock::address::abstract_name(name));
  EXPECT_EQ(s.getsockname().path(), "\0"s + name);
  EXPECT_EQ(s.getsockname().path().size(), 108u);

  pysock::socket t(AF_UNIX);
  auto e = catch_as([&] { t.bind(pysock::address::abstract_name(name + "x")); });
  ASSERT_TRUE(e) << "a 109-byte abstract address was accepted";
  EXPECT_EQ(e->code(), pysock::socket_errc::path_too_long) << e->what();
}

TEST(socket, unix_bind_to_empty_path_autobinds_an_abstract_name) {
  pysock::socket s(AF_UNIX);
  s.bind(pysock::address::unix_path(""));
  const std::string name = s.getsockname().path();
  ASSERT_EQ(name.size(), 6u) << "expected NUL + 5 hex digits";
  EXPECT_EQ(name[0], '\0');
  for (std::size_t i = 1; i < name.size(); ++i) {
    EXPECT_TRUE(std::isxdigit(static_cast<unsigned char>(name[i]))) << "byte " << i;
  }
  EXPECT_TRUE(s.getsockname().is_abstract());
}

TEST(socket, unix_datagram_recvfrom_reports_sender_path) {
  temp_dir dir;
  pysock::socket a(AF_UNIX, SOCK_DGRAM);
  pysock::socket b(AF_UNIX, SOCK_DGRAM);
  a.bind(pysock::address::unix_path(dir.path + "/a"));
  b.bind(pysock::address::unix_path(dir.path + "/b"));
  a.settimeout(5s);
  EXPECT_EQ(b.sendto("dgram", pysock::address::unix_path(dir.path + "/a")), 5u);
  auto [data, sender] = a.recvfrom(100);
  EXPECT_EQ(data, "dgram");
  EXPECT_EQ(sender.path(), dir.path + "/b");
}

// --- EINTR (PEP 475) ---------------------------------------------------------------

TEST(socket, blocking_recv_interrupted_by_signals_is_retried_and_returns_data) {
  auto pair = pysock::socketpair();
  sigalrm_without_restart handler;
  const pthread_t receiver = ::pthread_self();
  std::atomic<bool> done{false};
  std::string peer_error;
  std::thread peer([&] {
    try {
      for (int i = 0; i < 20 && !done.load(); ++i) {
        ::pthread_kill(receiver, SIGALRM);
        std::this_thread::sleep_for(10ms);
      }
      pair.second.sendall("after signals");
    } catch (const std::exception& e) {
      peer_error = e.what();
    }
  });
  std::string got;
  std::string error;
  try {
    got = pair.first.recv(100);
  } catch (const std::exception& e) {
    error = e.what();
  }
  done = true;
  peer.join();
  EXPECT_EQ(error, "") << "recv was not retried after EINTR";
  EXPECT_EQ(peer_error, "");
  EXPECT_EQ(got, "after signals");
  EXPECT_GT(g_sigalrm_count.load(), 0);
}

TEST(socket, timeout_mode_recv_interrupted_by_signals_is_retried_and_returns_data) {
  auto pair = pysock::socketpair();
  pair.first.settimeout(10s);
  sigalrm_without_restart handler;
  const pthread_t receiver = ::pthread_self();
  std::atomic<bool> done{false};
  std::thread peer([&] {
    for (int i = 0; i < 20 && !done.load(); ++i) {
      ::pthread_kill(receiver, SIGALRM);
      std::this_thread::sleep_for(10ms);
    }
    try {
      pair.second.sendall("timeout mode");
    } catch (...) {
    }
  });
  std::string got;
  std::string error;
  try {
    got = pair.first.recv(100);
  } catch (const std::exception& e) {
    error = e.what();
  }
  done = true;
  peer.join();
  EXPECT_EQ(error, "");
  EXPECT_EQ(got, "timeout mode");
  EXPECT_GT(g_sigalrm_count.load(), 0);
}

TEST(socket, blocking_accept_interrupted_by_signals_is_retried) {
  pysock::socket listener = make_listener();
  const auto where = listener.getsockname();
  sigalrm_without_restart handler;
  const pthread_t acceptor = ::pthread_self();
  std::atomic<bool> done{false};
  std::string client_error;
  std::thread client_thread([&] {
    for (int i = 0; i < 20 && !done.load(); ++i) {
      ::pthread_kill(acceptor, SIGALRM);
      std::this_thread::sleep_for(10ms);
    }
    try {
      pysock::socket client;
      client.connect(where);
      client.sendall("hi");
    } catch (const std::exception& e) {
      client_error = e.what();
    }
  });
  std::string error;
  std::string got;
  try {
    auto accepted = listener.accept();
    accepted.first.settimeout(5s);
    got = accepted.first.recv(10);
  } catch (const std::exception& e) {
    error = e.what();
  }
  done = true;
  client_thread.join();
  EXPECT_EQ(error, "") << "accept was not retried after EINTR";
  EXPECT_EQ(client_error, "");
  EXPECT_EQ(got, "hi");
  EXPECT_GT(g_sigalrm_count.load(), 0);
}

TEST(socket, blocking_sendall_interrupted_by_signals_delivers_everything) {
  constexpr std::size_t total = 16u * 1024 * 1024;
  std::string data(total, '\0');
  for (std::size_t i = 0; i < total; ++i) data[i] = pattern_byte(i);
  auto pair = pysock::socketpair();
  sigalrm_without_restart handler;
  const pthread_t sender = ::pthread_self();
  std::size_t received = 0;
  bool intact = true;
  std::string reader_error;
  std::thread reader([&] {
    try {
      // Interrupt the sender while its send() blocks on a full buffer.
      for (int i = 0; i < 20; ++i) {
        ::pthread_kill(sender, SIGALRM);
        std::this_thread::sleep_for(5ms);
      }
      pair.second.settimeout(30s);
      std::vector<char> buf(128 * 1024);
      for (int i = 0; i < 10'000'000 && received < total; ++i) {
        const std::size_t n = pair.second.recv_into(buf);
        if (n == 0) break;
        for (std::size_t k = 0; k < n && intact; ++k) intact = buf[k] == pattern_byte(received + k);
        received += n;
      }
    } catch (const std::exception& e) {
      reader_error = e.what();
    }
  });
  std::string error;
  try {
    pair.first.sendall(data);
  } catch (const std::exception& e) {
    error = e.what();
    pair.first.close();
  }
  reader.join();
  EXPECT_EQ(error, "") << "sendall was not retried after EINTR";
  EXPECT_EQ(reader_error, "");
  EXPECT_EQ(received, total);
  EXPECT_TRUE(intact);
  EXPECT_GT(g_sigalrm_count.load(), 0);
}
