// SPDX-License-Identifier: MIT
//
// The module functions of pysock/socket.hpp that make sockets or change module
// state: socketpair, fromfd, create_connection, create_server,
// has_dualstack_ipv6, close(fd), getdefaulttimeout/setdefaulttimeout.
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "support/checks.hpp"

#include "pysock/resolver.hpp"
#include "pysock/socket.hpp"

// Designated initializers below name every member without a default member
// initializer (timeout, source_address, backlog): g++ 12's
// -Wmissing-field-initializers (in -Wextra) warns about the omitted ones.

namespace {

using test_support::catch_as;
using test_support::contains;
using test_support::fd_is_open;
using test_support::ipv6_loopback_available;
using test_support::is_cloexec;
using test_support::is_nonblocking;
using test_support::refused_port;

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// Restores the module default timeout at the end of a test.
struct default_timeout_guard {
  pysock::timeout_type saved = pysock::getdefaulttimeout();
  default_timeout_guard() = default;
  ~default_timeout_guard() { pysock::setdefaulttimeout(saved); }
  default_timeout_guard(const default_timeout_guard&) = delete;
  default_timeout_guard& operator=(const default_timeout_guard&) = delete;
};

pysock::socket make_listener(int family = AF_INET) {
  pysock::socket listener(family);
  listener.bind({family == AF_INET6 ? "::1" : "127.0.0.1", 0});
  listener.listen();
  return listener;
}

}  // namespace

// --- socketpair ---------------------------------------------------------------

TEST(module_functions, socketpair_defaults_are_af_unix_stream_close_on_exec_and_unnamed) {
  auto [a, b] = pysock::socketpair();
  for (const pysock::socket* s : {&a, &b}) {
    EXPECT_EQ(s->family(), AF_UNIX);
    EXPECT_EQ(s->type(), SOCK_STREAM);
    EXPECT_EQ(s->proto(), 0);
    EXPECT_TRUE(is_cloexec(s->fileno()));
    EXPECT_FALSE(s->get_inheritable());
    EXPECT_EQ(s->gettimeout(), std::nullopt);
    const auto name = s->getsockname();
    EXPECT_EQ(name.family(), AF_UNIX);
    EXPECT_EQ(name.path(), "");
  }
  EXPECT_NE(a.fileno(), b.fileno());
}

TEST(module_functions, socketpair_ends_talk_both_ways) {
  auto [a, b] = pysock::socketpair();
  a.sendall("from a");
  EXPECT_EQ(b.recv(100), "from a");
  b.sendall("from b");
  EXPECT_EQ(a.recv(100), "from b");
  a.close();
  EXPECT_EQ(b.recv(100), "");  // EOF
}

TEST(module_functions, socketpair_dgram_keeps_message_boundaries) {
  auto [a, b] = pysock::socketpair(AF_UNIX, SOCK_DGRAM);
  EXPECT_EQ(a.type(), SOCK_DGRAM);
  a.send("one");
  a.send("two");
  EXPECT_EQ(b.recv(100), "one");
  EXPECT_EQ(b.recv(100), "two");
}

TEST(module_functions, socketpair_af_inet_raises_eopnotsupp) {
  auto e = catch_as([] { pysock::socketpair(AF_INET); });
  ASSERT_TRUE(e) << "socketpair(AF_INET) succeeded";
  EXPECT_EQ(e->errno_value(), EOPNOTSUPP) << e->what();
}

TEST(module_functions, socketpair_gets_the_default_timeout) {
  default_timeout_guard guard;
  pysock::setdefaulttimeout(2s);
  auto [a, b] = pysock::socketpair();
  EXPECT_EQ(a.gettimeout(), pysock::timeout_type(2s));
  EXPECT_EQ(b.gettimeout(), pysock::timeout_type(2s));
  EXPECT_TRUE(is_nonblocking(a.fileno()));
}

// --- fromfd -------------------------------------------------------------------

TEST(module_functions, fromfd_dups_the_descriptor_and_leaves_the_original_open) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  {
    pysock::socket s = pysock::fromfd(fd, AF_INET, SOCK_STREAM);
    EXPECT_NE(s.fileno(), fd);
    EXPECT_TRUE(is_cloexec(s.fileno()));
    EXPECT_EQ(s.family(), AF_INET);
    EXPECT_EQ(s.type(), SOCK_STREAM);
    s.bind({"127.0.0.1", 0});
    // Same socket under both descriptors.
    sockaddr_in sin{};
    socklen_t length = sizeof sin;
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &length), 0);
    EXPECT_EQ(ntohs(sin.sin_port), s.getsockname().port());
    s.close();
  }
  EXPECT_TRUE(fd_is_open(fd));
  ::close(fd);
}

TEST(module_functions, fromfd_shares_o_nonblock_with_the_original) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  {
    pysock::socket s = pysock::fromfd(fd, AF_INET, SOCK_STREAM);
    s.setblocking(false);
    EXPECT_TRUE(is_nonblocking(fd));
  }
  ::close(fd);
}

TEST(module_functions, fromfd_of_pipe_raises_enotsock_and_leaks_nothing) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  auto e = catch_as([&] { pysock::fromfd(fds[0], AF_INET, SOCK_STREAM); });
  EXPECT_TRUE(fd_is_open(fds[0]));
  ::close(fds[0]);
  ::close(fds[1]);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errno_value(), ENOTSOCK) << e->what();
  // The fd leak check of this test program fails the run if the dup leaked.
}

TEST(module_functions, fromfd_gets_the_default_timeout) {
  default_timeout_guard guard;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  pysock::setdefaulttimeout(4s);
  {
    pysock::socket s = pysock::fromfd(fd, AF_INET, SOCK_STREAM);
    EXPECT_EQ(s.gettimeout(), pysock::timeout_type(4s));
  }
  ::close(fd);
}

// --- create_connection ----------------------------------------------------------

TEST(module_functions, create_connection_connects_to_an_ipv4_listener) {
  pysock::socket listener = make_listener();
  const int port = listener.getsockname().port();
  pysock::socket s = pysock::create_connection({"127.0.0.1", port});
  EXPECT_EQ(s.family(), AF_INET);
  EXPECT_EQ(s.type(), SOCK_STREAM);
  EXPECT_TRUE(is_cloexec(s.fileno()));
  EXPECT_EQ(s.getpeername(), listener.getsockname());
  EXPECT_EQ(s.gettimeout(), std::nullopt);
  auto [conn, peer] = listener.accept();
  EXPECT_EQ(peer, s.getsockname());
  s.sendall("cc");
  EXPECT_EQ(conn.recv(10), "cc");
}

TEST(module_functions, create_connection_resolves_localhost) {
  pysock::socket listener = make_listener();
  pysock::socket s = pysock::create_connection({"localhost", listener.getsockname().port()});
  EXPECT_EQ(s.getpeername(), listener.getsockname());
}

TEST(module_functions, create_connection_to_ipv6_literal) {
  SKIP_WITHOUT_IPV6();
  pysock::socket listener = make_listener(AF_INET6);
  pysock::socket s = pysock::create_connection({"::1", listener.getsockname().port()});
  EXPECT_EQ(s.family(), AF_INET6);
  EXPECT_EQ(s.getpeername().host(), "::1");
}

TEST(module_functions, create_connection_refused_raises_connection_refused_error) {
  refused_port closed;
  std::type_index type = typeid(void);
  auto e = catch_as([&] { pysock::create_connection({"127.0.0.1", closed.port}); }, &type);
  ASSERT_TRUE(e);
  EXPECT_EQ(type, std::type_index(typeid(pysock::connection_refused_error))) << e->what();
  EXPECT_EQ(e->errno_value(), ECONNREFUSED);
  EXPECT_TRUE(contains(e->what(), "127.0.0.1:" + std::to_string(closed.port))) << e->what();
}

TEST(module_functions, create_connection_all_errors_raises_exception_group_one_per_attempt) {
  refused_port closed;
  const auto candidates = pysock::getaddrinfo("localhost", closed.port, AF_UNSPEC, SOCK_STREAM);
  ASSERT_FALSE(candidates.empty());
  // Any ::1 candidate must be refused too: hold the port on ::1 when possible.
  std::optional<pysock::socket> holder6;
  if (ipv6_loopback_available()) {
    holder6.emplace(AF_INET6);
    try {
      holder6->bind({"::1", closed.port});
    } catch (const pysock::os_error&) {
      holder6.reset();
    }
  }
  try {
    pysock::create_connection({"localhost", closed.port},
                              {.timeout = {}, .source_address = {}, .all_errors = true});
    FAIL() << "create_connection succeeded";
  } catch (const pysock::exception_group& group) {
    EXPECT_TRUE(contains(group.what(), "create_connection failed")) << group.what();
    ASSERT_EQ(group.exceptions().size(), candidates.size());
    for (const auto& ptr : group.exceptions()) {
      ASSERT_TRUE(ptr);
      try {
        std::rethrow_exception(ptr);
      } catch (const pysock::connection_refused_error& e) {
        EXPECT_EQ(e.errno_value(), ECONNREFUSED);
      } catch (const pysock::os_error& e) {
        ADD_FAILURE() << "expected ConnectionRefusedError, got " << e.what();
      }
    }
  }
}

TEST(module_functions, create_connection_all_errors_with_one_address_has_one_exception) {
  refused_port closed;
  pysock::connection_options options;
  options.all_errors = true;
  try {
    pysock::create_connection({"127.0.0.1", closed.port}, options);
    FAIL() << "create_connection succeeded";
  } catch (const pysock::exception_group& group) {
    ASSERT_EQ(group.exceptions().size(), 1u);
    EXPECT_THROW(std::rethrow_exception(group.exceptions().front()),
                 pysock::connection_refused_error);
  }
}

namespace {

// The fall-through check itself, for a name that resolves to both loopbacks:
// listen on the family of the *last* candidate and hold the same port bound
// but not listening on the first one's, so the first attempt is refused.
// Returns an empty string on success, else what went wrong.
std::string check_fall_through(const std::string& name,
                               const std::vector<pysock::addrinfo_entry>& entries) {
  const int first_family = entries.front().family;
  const int last_family = entries.back().family;
  if (first_family == last_family) return "both candidates have the same family";
  pysock::socket listener = make_listener(last_family);
  const int port = listener.getsockname().port();
  pysock::socket holder(first_family);
  holder.bind({first_family == AF_INET6 ? "::1" : "127.0.0.1", port});
  pysock::socket s = pysock::create_connection({name, port});
  if (s.family() != last_family) return "connected with the first candidate's family";
  if (s.getpeername().port() != port) return "connected to the wrong port";
  return {};
}

std::vector<pysock::addrinfo_entry> dual_loopback_entries(const char* name) {
  try {
    auto found = pysock::getaddrinfo(name, 80, AF_UNSPEC, SOCK_STREAM);
    bool v4 = false;
    bool v6 = false;
    for (const auto& entry : found) {
      v4 = v4 || entry.sockaddr.host() == "127.0.0.1";
      v6 = v6 || entry.sockaddr.host() == "::1";
    }
    if (v4 && v6) return found;
  } catch (const pysock::os_error&) {
  }
  return {};
}

// Where /etc/hosts has no dual-stack loopback name (Debian containers often
// map localhost to 127.0.0.1 only), a forked child makes one: a private mount
// namespace with its own /etc/hosts bind-mounted over the real one, which the
// rest of the machine never sees. Exit 0: passed; 77: could not set it up
// (not root, no namespaces); 1: the check failed (reason on stderr).
int fall_through_in_private_hosts_namespace(std::string& reason) {
  char dir_template[] = "/tmp/pysock-hosts.XXXXXX";
  const char* dir = ::mkdtemp(dir_template);
  if (dir == nullptr) {
    reason = "mkdtemp failed";
    return 77;
  }
  const std::string hosts = std::string(dir) + "/hosts";
  if (FILE* f = std::fopen(hosts.c_str(), "w")) {
    std::fputs("::1 pysock-dual.test\n127.0.0.1 pysock-dual.test\n", f);
    std::fclose(f);
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    reason = "pipe2 failed";
    return 77;
  }
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(pipe_fds[0]);
    auto report = [&](int code, const std::string& text) {
      [[maybe_unused]] auto written = ::write(pipe_fds[1], text.data(), text.size());
      ::_exit(code);
    };
    if (::unshare(CLONE_NEWNS) != 0)
      report(77, std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno));
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      report(77, std::string("mount private: ") + std::strerror(errno));
    if (::mount(hosts.c_str(), "/etc/hosts", nullptr, MS_BIND, nullptr) != 0)
      report(77, std::string("bind-mount /etc/hosts: ") + std::strerror(errno));
    const auto entries = dual_loopback_entries("pysock-dual.test");
    if (entries.empty()) report(77, "the private /etc/hosts was not used by the resolver");
    try {
      const std::string failure = check_fall_through("pysock-dual.test", entries);
      report(failure.empty() ? 0 : 1, failure);
    } catch (const std::exception& e) {
      report(1, e.what());
    }
  }
  ::close(pipe_fds[1]);
  char text[512] = {};
  std::size_t got = 0;
  for (ssize_t n; (n = ::read(pipe_fds[0], text + got, sizeof text - 1 - got)) > 0;)
    got += static_cast<std::size_t>(n);
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  std::remove(hosts.c_str());
  ::rmdir(dir);
  reason = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

}  // namespace

TEST(module_functions, create_connection_falls_through_a_refused_address_to_a_working_one) {
  if (!ipv6_loopback_available()) GTEST_SKIP() << "::1 is not available here";
  for (const char* candidate : {"localhost", "localhost6", "ip6-localhost", "ip6-loopback"}) {
    const auto entries = dual_loopback_entries(candidate);
    if (!entries.empty()) {
      EXPECT_EQ(check_fall_through(candidate, entries), "");
      return;
    }
  }
  std::string reason;
  const int code = fall_through_in_private_hosts_namespace(reason);
  if (code == 77)
    GTEST_SKIP() << "no host name resolves to both 127.0.0.1 and ::1, and a private /etc/hosts "
                    "could not be set up: "
                 << reason;
  EXPECT_EQ(code, 0) << reason;
}

TEST(module_functions, create_connection_timeout_applies_to_the_returned_socket) {
  pysock::socket listener = make_listener();
  pysock::socket s = pysock::create_connection(
      listener.getsockname(), {.timeout = pysock::timeout_type(100ms), .source_address = {}});
  EXPECT_EQ(s.gettimeout(), pysock::timeout_type(100ms));
  EXPECT_TRUE(is_nonblocking(s.fileno()));
  const auto start = steady::now();
  EXPECT_THROW(s.recv(10), pysock::timeout_error);
  const auto elapsed = steady::now() - start;
  EXPECT_GE(elapsed, 100ms);
  EXPECT_LT(elapsed, 5s);
}

TEST(module_functions, create_connection_timeout_overload_sets_the_timeout) {
  pysock::socket listener = make_listener();
  pysock::socket s = pysock::create_connection(listener.getsockname(), 2s);
  EXPECT_EQ(s.gettimeout(), pysock::timeout_type(2s));
}

TEST(module_functions, create_connection_explicit_none_timeout_is_blocking_despite_default) {
  default_timeout_guard guard;
  pysock::socket listener = make_listener();
  pysock::setdefaulttimeout(3s);
  pysock::socket a = pysock::create_connection(listener.getsockname(), std::nullopt);
  EXPECT_EQ(a.gettimeout(), std::nullopt);
  EXPECT_FALSE(is_nonblocking(a.fileno()));
  pysock::connection_options options;
  options.timeout.emplace(std::nullopt);
  pysock::socket b = pysock::create_connection(listener.getsockname(), options);
  EXPECT_EQ(b.gettimeout(), std::nullopt);
}

TEST(module_functions, create_connection_without_timeout_uses_the_default) {
  default_timeout_guard guard;
  pysock::socket listener = make_listener();
  pysock::setdefaulttimeout(3s);
  pysock::socket s = pysock::create_connection(listener.getsockname());
  EXPECT_EQ(s.gettimeout(), pysock::timeout_type(3s));
}

TEST(module_functions, create_connection_binds_the_source_address) {
  pysock::socket listener = make_listener();
  // A port probed free can be taken by another test's socket before
  // create_connection binds it (EADDRINUSE): then probe another, a few times.
  int source_port = 0;
  std::optional<pysock::socket> connected;
  for (int attempt = 0; attempt < 5 && !connected; ++attempt) {
    {
      pysock::socket probe;
      probe.bind({"127.0.0.1", 0});
      source_port = probe.getsockname().port();
    }
    try {
      connected.emplace(pysock::create_connection(
          listener.getsockname(), {.timeout = {}, .source_address = {"127.0.0.1", source_port}}));
    } catch (const pysock::os_error& e) {
      if (e.code() != std::errc::address_in_use) throw;
    }
  }
  ASSERT_TRUE(connected) << "every probed source port was taken before it could be bound";
  pysock::socket& s = *connected;
  EXPECT_EQ(s.getsockname(), (pysock::address{"127.0.0.1", source_port}));
  auto accepted = listener.accept();
  EXPECT_EQ(accepted.second.port(), source_port);
}

TEST(module_functions, create_connection_to_unresolvable_name_raises_gaierror) {
  auto e = catch_as<pysock::gaierror>([] {
    pysock::create_connection({"no-such-host.invalid", 80});
  });
  ASSERT_TRUE(e);
  EXPECT_EQ(&e->code().category(), &pysock::gai_category());
}

TEST(module_functions, create_connection_to_empty_host_raises_gaierror_eai_noname) {
  auto e = catch_as<pysock::gaierror>([] { pysock::create_connection({"", 80}); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code().value(), EAI_NONAME) << e->what();
}

TEST(module_functions, exception_group_keeps_message_and_exceptions) {
  std::vector<std::exception_ptr> list{std::make_exception_ptr(std::runtime_error("one")),
                                       std::make_exception_ptr(std::runtime_error("two"))};
  const pysock::exception_group group("create_connection failed", list);
  // Python's str(ExceptionGroup) adds " (2 sub-exceptions)".
  EXPECT_TRUE(contains(group.what(), "create_connection failed")) << group.what();
  ASSERT_EQ(group.exceptions().size(), 2u);
  EXPECT_EQ(group.exceptions()[0], list[0]);
}

// --- create_server ---------------------------------------------------------------

TEST(module_functions, create_server_listens_with_so_reuseaddr) {
  pysock::socket server = pysock::create_server({"127.0.0.1", 0});
  EXPECT_EQ(server.family(), AF_INET);
  EXPECT_EQ(server.type(), SOCK_STREAM);
  EXPECT_TRUE(server.getsockopt(pysock::so_reuseaddr));
  EXPECT_NE(server.getsockopt(SOL_SOCKET, SO_ACCEPTCONN), 0);
  EXPECT_TRUE(is_cloexec(server.fileno()));
  const auto where = server.getsockname();
  EXPECT_EQ(where.host(), "127.0.0.1");
  EXPECT_GT(where.port(), 0);
  pysock::socket client;
  client.connect(where);
  auto [conn, peer] = server.accept();
  EXPECT_EQ(peer, client.getsockname());
}

TEST(module_functions, create_server_on_port_in_use_raises_eaddrinuse_naming_the_address) {
  pysock::socket first = pysock::create_server({"127.0.0.1", 0});
  const int port = first.getsockname().port();
  auto e = catch_as([&] { pysock::create_server({"127.0.0.1", port}); });
  ASSERT_TRUE(e) << "second create_server on 127.0.0.1:" << port << " succeeded";
  EXPECT_EQ(e->errno_value(), EADDRINUSE);
  EXPECT_TRUE(contains(e->what(), "127.0.0.1:" + std::to_string(port))) << e->what();
  EXPECT_TRUE(contains(e->what(), "Address already in use")) << e->what();
}

TEST(module_functions, create_server_dualstack_with_af_inet_throws_invalid_argument) {
  const pysock::server_options options{.family = AF_INET, .backlog = {}, .dualstack_ipv6 = true};
  EXPECT_THROW(pysock::create_server({"127.0.0.1", 0}, options), std::invalid_argument);
}

TEST(module_functions, create_server_ipv6_sets_v6only_unless_dualstack) {
  SKIP_WITHOUT_IPV6();
  pysock::socket server = pysock::create_server({"::1", 0}, {.family = AF_INET6, .backlog = {}});
  EXPECT_EQ(server.family(), AF_INET6);
  EXPECT_TRUE(server.getsockopt(pysock::ipv6_v6only));
  EXPECT_EQ(server.getsockname().host(), "::1");
}

TEST(module_functions, create_server_dualstack_accepts_ipv4_client_as_v4_mapped_address) {
  SKIP_WITHOUT_IPV6();
  if (!pysock::has_dualstack_ipv6()) GTEST_SKIP() << "no dual-stack IPv6 on this host";
  pysock::socket server =
      pysock::create_server({"", 0}, {.family = AF_INET6, .backlog = {}, .dualstack_ipv6 = true});
  EXPECT_FALSE(server.getsockopt(pysock::ipv6_v6only));
  const int port = server.getsockname().port();

  pysock::socket v4;
  v4.connect({"127.0.0.1", port});
  auto [conn4, peer4] = server.accept();
  EXPECT_EQ(peer4.family(), AF_INET6);
  EXPECT_EQ(peer4.host(), "::ffff:127.0.0.1");
  EXPECT_EQ(peer4.port(), v4.getsockname().port());
  v4.sendall("v4");
  EXPECT_EQ(conn4.recv(10), "v4");

  pysock::socket v6(AF_INET6);
  v6.connect({"::1", port});
  auto [conn6, peer6] = server.accept();
  EXPECT_EQ(peer6.host(), "::1");
}

TEST(module_functions, create_server_reuse_port_allows_two_listeners_on_one_port) {
  pysock::socket a = pysock::create_server({"127.0.0.1", 0}, {.backlog = {}, .reuse_port = true});
  EXPECT_TRUE(a.getsockopt(pysock::so_reuseport));
  const int port = a.getsockname().port();
  pysock::socket b =
      pysock::create_server({"127.0.0.1", port}, {.backlog = {}, .reuse_port = true});
  EXPECT_EQ(b.getsockname().port(), port);
}

TEST(module_functions, create_server_gets_the_default_timeout) {
  default_timeout_guard guard;
  pysock::setdefaulttimeout(2s);
  pysock::socket server = pysock::create_server({"127.0.0.1", 0});
  EXPECT_EQ(server.gettimeout(), pysock::timeout_type(2s));
}

TEST(module_functions, has_dualstack_ipv6_matches_the_kernel) {
  bool expected = false;
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    const int off = 0;
    expected = ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) == 0;
    ::close(fd);
  }
  EXPECT_EQ(pysock::has_dualstack_ipv6(), expected);
}

// --- close(fd) ------------------------------------------------------------------

TEST(module_functions, close_closes_a_raw_descriptor) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  pysock::close(fd);
  EXPECT_FALSE(fd_is_open(fd));
}

TEST(module_functions, close_of_invalid_descriptor_raises_ebadf) {
  auto e = catch_as([] { pysock::close(-1); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->errno_value(), EBADF) << e->what();
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  pysock::close(fd);
  auto e2 = catch_as([&] { pysock::close(fd); });
  ASSERT_TRUE(e2);
  EXPECT_EQ(e2->errno_value(), EBADF) << e2->what();
}

// --- default timeout --------------------------------------------------------------

TEST(module_functions, default_timeout_is_initially_none) {
  EXPECT_EQ(pysock::getdefaulttimeout(), std::nullopt);
}

TEST(module_functions, setdefaulttimeout_affects_new_sockets_only) {
  default_timeout_guard guard;
  pysock::socket before;
  pysock::setdefaulttimeout(2s);
  EXPECT_EQ(pysock::getdefaulttimeout(), pysock::timeout_type(2s));
  pysock::socket after;
  EXPECT_EQ(before.gettimeout(), std::nullopt);
  EXPECT_FALSE(is_nonblocking(before.fileno()));
  EXPECT_EQ(after.gettimeout(), pysock::timeout_type(2s));
  EXPECT_TRUE(after.getblocking());
  EXPECT_TRUE(is_nonblocking(after.fileno()));
  pysock::setdefaulttimeout(std::nullopt);
  pysock::socket reset;
  EXPECT_EQ(reset.gettimeout(), std::nullopt);
  EXPECT_FALSE(is_nonblocking(reset.fileno()));
  EXPECT_EQ(after.gettimeout(), pysock::timeout_type(2s));
}

TEST(module_functions, setdefaulttimeout_zero_makes_new_sockets_nonblocking) {
  default_timeout_guard guard;
  pysock::setdefaulttimeout(0s);
  pysock::socket s;
  EXPECT_EQ(s.gettimeout(), pysock::timeout_type(0ns));
  EXPECT_FALSE(s.getblocking());
  EXPECT_TRUE(is_nonblocking(s.fileno()));
}

TEST(module_functions, setdefaulttimeout_negative_throws_invalid_argument) {
  default_timeout_guard guard;
  pysock::setdefaulttimeout(1s);
  EXPECT_THROW(pysock::setdefaulttimeout(-1s), std::invalid_argument);
  EXPECT_THROW(pysock::setdefaulttimeout(pysock::timeout_type(-1ns)), std::invalid_argument);
  EXPECT_EQ(pysock::getdefaulttimeout(), pysock::timeout_type(1s));
}

TEST(module_functions, setdefaulttimeout_rounds_fractional_seconds_away_from_zero) {
  default_timeout_guard guard;
  pysock::setdefaulttimeout(std::chrono::duration<double>(1e-12));
  EXPECT_EQ(pysock::getdefaulttimeout(), pysock::timeout_type(1ns));
  pysock::setdefaulttimeout(std::chrono::duration<double>(0.25));
  EXPECT_EQ(pysock::getdefaulttimeout(), pysock::timeout_type(250ms));
}

TEST(module_functions, accepted_socket_gets_the_default_timeout_not_the_listeners) {
  default_timeout_guard guard;
  pysock::socket listener = make_listener();
  listener.settimeout(5s);
  pysock::setdefaulttimeout(2s);
  pysock::socket client;
  client.connect(listener.getsockname());
  auto [conn, peer] = listener.accept();
  EXPECT_EQ(conn.gettimeout(), pysock::timeout_type(2s));
  EXPECT_TRUE(is_nonblocking(conn.fileno()));
}
