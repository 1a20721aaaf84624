// SPDX-License-Identifier: MIT
//
// socket::sendfile (pysock/socket.hpp): zero-copy sendfile(2) for regular
// files, the read()+send() fallback for pipes, Python's offset/count/file
// position rules, argument errors, timeouts, non-blocking sockets (a pysock
// deviation: allowed with regular files), and a vanished peer without
// SIGPIPE. Ports CPython's SendfileUsingSendfileTest (reference section 8.1
// row 46). Loopback TCP and AF_UNIX only; files in /tmp, unlinked at once.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include <gtest/gtest.h>

#include "support/checks.hpp"

#include "pysock/socket.hpp"

namespace {

using test_support::catch_as;

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

std::string random_bytes(std::size_t n, unsigned seed = 42) {
  std::mt19937 gen(seed);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(gen() & 0xff);
  return out;
}

// An unlinked temporary file in /tmp holding `content`; closed with the object.
class temp_file {
 public:
  explicit temp_file(const std::string& content = {}) {
    char path[] = "/tmp/pysock-sendfile-XXXXXX";
    fd_ = ::mkstemp(path);
    if (fd_ < 0) throw std::system_error(errno, std::system_category(), "mkstemp");
    ::unlink(path);
    std::size_t done = 0;
    while (done < content.size()) {
      const ssize_t n = ::write(fd_, content.data() + done, content.size() - done);
      if (n <= 0) throw std::system_error(errno, std::system_category(), "write");
      done += static_cast<std::size_t>(n);
    }
    ::lseek(fd_, 0, SEEK_SET);
  }
  // A sparse file of `size` zero bytes (no disk use).
  static temp_file sparse(std::uint64_t size) {
    temp_file f;
    if (::ftruncate(f.fd_, static_cast<off_t>(size)) != 0)
      throw std::system_error(errno, std::system_category(), "ftruncate");
    return f;
  }
  temp_file(temp_file&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  temp_file& operator=(temp_file&&) = delete;
  ~temp_file() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const noexcept { return fd_; }
  off_t position() const { return ::lseek(fd_, 0, SEEK_CUR); }

 private:
  int fd_ = -1;
};

struct tcp_connection {
  pysock::socket client;
  pysock::socket server;
};

tcp_connection tcp_pair() {
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  pysock::socket client = pysock::create_connection(listener.getsockname(), 5s);
  auto accepted = listener.accept();
  return {std::move(client), std::move(accepted.first)};
}

// Reads `sock` to EOF on a thread (bounded by a 20 s socket timeout).
class reader {
 public:
  explicit reader(pysock::socket& sock) : sock_(sock) {
    sock_.settimeout(20s);
    thread_ = std::thread([this] {
      try {
        for (;;) {
          pysock::bytes part = sock_.recv(1 << 16);
          if (part.empty()) break;
          data_ += part;
        }
      } catch (const std::exception& e) {
        error_ = e.what();
      }
    });
  }
  ~reader() {
    if (thread_.joinable()) thread_.join();
  }
  reader(const reader&) = delete;
  reader& operator=(const reader&) = delete;
  // Waits for EOF; returns what came.
  const std::string& result() {
    if (thread_.joinable()) thread_.join();
    EXPECT_EQ(error_, "");
    return data_;
  }

 private:
  pysock::socket& sock_;
  std::string data_;
  std::string error_;
  std::thread thread_;
};

// The sender's side of a transfer: sendfile, then EOF for the reader.
std::string send_and_collect(const temp_file& file, std::uint64_t offset,
                             std::optional<std::uint64_t> count, std::size_t* sent) {
  auto [client, server] = tcp_pair();
  reader r(server);
  *sent = client.sendfile(file.fd(), offset, count);
  client.shutdown(SHUT_WR);
  return r.result();
}

const std::string& file_data() {
  static const std::string data = random_bytes(3 * 1024 * 1024 + 17);
  return data;
}

// --- what gets sent ---------------------------------------------------------

TEST(sendfile, regular_file_sends_everything_and_returns_its_size) {
  temp_file file(file_data());
  std::size_t sent = 0;
  const std::string got = send_and_collect(file, 0, std::nullopt, &sent);
  EXPECT_EQ(sent, file_data().size());
  EXPECT_EQ(got.size(), file_data().size());
  EXPECT_TRUE(got == file_data());
  EXPECT_EQ(file.position(), static_cast<off_t>(file_data().size()));
}

TEST(sendfile, empty_file_returns_zero_and_sends_nothing) {
  temp_file file;
  std::size_t sent = 99;
  EXPECT_EQ(send_and_collect(file, 0, std::nullopt, &sent), "");
  EXPECT_EQ(sent, 0u);
  EXPECT_EQ(file.position(), 0);
}

TEST(sendfile, offset_sends_the_rest_of_the_file) {
  temp_file file(file_data());
  const std::uint64_t offset = 5000;
  std::size_t sent = 0;
  const std::string got = send_and_collect(file, offset, std::nullopt, &sent);
  EXPECT_EQ(sent, file_data().size() - offset);
  EXPECT_TRUE(got == file_data().substr(offset));
  EXPECT_EQ(file.position(), static_cast<off_t>(file_data().size()));
}

TEST(sendfile, count_sends_only_count_bytes_from_the_start) {
  temp_file file(file_data());
  const std::uint64_t count = 5000001 % file_data().size();
  std::size_t sent = 0;
  const std::string got = send_and_collect(file, 0, count, &sent);
  EXPECT_EQ(sent, count);
  EXPECT_TRUE(got == file_data().substr(0, count));
}

TEST(sendfile, count_with_offset_sends_that_slice_and_leaves_position_at_offset_plus_sent) {
  temp_file file(file_data());
  const std::uint64_t offset = 2007;
  const std::uint64_t count = 1000003;
  std::size_t sent = 0;
  const std::string got = send_and_collect(file, offset, count, &sent);
  EXPECT_EQ(sent, count);
  EXPECT_TRUE(got == file_data().substr(offset, count));
  EXPECT_EQ(::lseek(file.fd(), 0, SEEK_CUR), static_cast<off_t>(offset + sent));
}

TEST(sendfile, count_beyond_the_end_sends_up_to_the_end) {
  temp_file file("short file");
  std::size_t sent = 0;
  EXPECT_EQ(send_and_collect(file, 6, 1000, &sent), "file");
  EXPECT_EQ(sent, 4u);
  EXPECT_EQ(file.position(), 10);
}

TEST(sendfile, offset_at_or_past_the_end_returns_zero) {
  temp_file file("0123456789");
  std::size_t sent = 99;
  EXPECT_EQ(send_and_collect(file, 10, std::nullopt, &sent), "");
  EXPECT_EQ(sent, 0u);
  EXPECT_EQ(send_and_collect(file, 1000, std::nullopt, &sent), "");
  EXPECT_EQ(sent, 0u);
}

TEST(sendfile, ignores_the_current_file_position_and_uses_offset) {
  temp_file file("0123456789");
  ASSERT_EQ(::lseek(file.fd(), 7, SEEK_SET), 7);
  std::size_t sent = 0;
  EXPECT_EQ(send_and_collect(file, 2, 3, &sent), "234");
  EXPECT_EQ(file.position(), 5);
}

TEST(sendfile, works_over_an_af_unix_stream) {
  temp_file file(file_data());
  auto [a, b] = pysock::socketpair();
  reader r(b);
  EXPECT_EQ(a.sendfile(file.fd()), file_data().size());
  a.shutdown(SHUT_WR);
  EXPECT_TRUE(r.result() == file_data());
}

TEST(sendfile, pipe_falls_back_to_read_and_send) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  const std::string data = random_bytes(40000, 7);  // fits the pipe buffer
  ASSERT_EQ(::write(fds[1], data.data(), data.size()), static_cast<ssize_t>(data.size()));
  ::close(fds[1]);
  auto [client, server] = tcp_pair();
  reader r(server);
  EXPECT_EQ(client.sendfile(fds[0]), data.size());
  client.shutdown(SHUT_WR);
  EXPECT_TRUE(r.result() == data);
  ::close(fds[0]);
}

TEST(sendfile, pipe_with_count_sends_count_bytes_and_leaves_the_rest_in_the_pipe) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  ASSERT_EQ(::write(fds[1], "abcdefghij", 10), 10);
  auto [client, server] = tcp_pair();
  reader r(server);
  EXPECT_EQ(client.sendfile(fds[0], 0, 4), 4u);
  client.shutdown(SHUT_WR);
  EXPECT_EQ(r.result(), "abcd");
  char rest[16] = {};
  EXPECT_EQ(::read(fds[0], rest, sizeof rest), 6);
  EXPECT_EQ(std::string(rest, 6), "efghij");
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(sendfile, pipe_with_nonzero_offset_raises_espipe) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  ASSERT_EQ(::write(fds[1], "abc", 3), 3);
  auto client_server = tcp_pair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& client = client_server.client;
  auto e = catch_as([&] { client.sendfile(fds[0], 1); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::invalid_seek);
  ::close(fds[0]);
  ::close(fds[1]);
}

// --- argument and descriptor errors ---------------------------------------------

TEST(sendfile, closed_file_descriptor_raises_ebadf) {
  temp_file file("x");
  const int stale = ::dup(file.fd());
  ::close(stale);
  auto client_server = tcp_pair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& client = client_server.client;
  auto e = catch_as([&] { client.sendfile(stale); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::bad_file_descriptor);
  EXPECT_EQ(e->errno_value(), EBADF);
}

TEST(sendfile, a_directory_raises_eisdir) {
  const int dir = ::open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir, 0);
  auto client_server = tcp_pair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& client = client_server.client;
  auto e = catch_as([&] { client.sendfile(dir); });
  ::close(dir);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::is_a_directory);
}

TEST(sendfile, write_only_file_raises_an_os_error_and_sends_nothing) {
  char path[] = "/tmp/pysock-sendfile-wo-XXXXXX";
  const int rw = ::mkstemp(path);
  ASSERT_GE(rw, 0);
  ASSERT_EQ(::write(rw, "data", 4), 4);
  const int wo = ::open(path, O_WRONLY | O_CLOEXEC);
  ::unlink(path);
  ::close(rw);
  ASSERT_GE(wo, 0);
  auto client_server = tcp_pair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& client = client_server.client;
  auto& server = client_server.server;
  auto e = catch_as([&] { client.sendfile(wo); });
  ::close(wo);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::bad_file_descriptor);
  client.shutdown(SHUT_WR);
  server.settimeout(2s);
  EXPECT_EQ(server.recv(10), "");
}

TEST(sendfile, count_zero_raises_invalid_argument) {
  temp_file file("x");
  auto [client, server] = tcp_pair();
  EXPECT_THROW((void)client.sendfile(file.fd(), 0, 0), std::invalid_argument);
}

TEST(sendfile, datagram_socket_raises_invalid_argument) {
  temp_file file("x");
  pysock::socket udp(AF_INET, SOCK_DGRAM);
  EXPECT_THROW((void)udp.sendfile(file.fd()), std::invalid_argument);
  auto [a, b] = pysock::socketpair(AF_UNIX, SOCK_SEQPACKET);
  EXPECT_THROW((void)a.sendfile(file.fd()), std::invalid_argument);
}

TEST(sendfile, closed_socket_raises_ebadf) {
  temp_file file("x");
  auto client_server = tcp_pair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& client = client_server.client;
  client.close();
  auto e = catch_as([&] { client.sendfile(file.fd()); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::bad_file_descriptor);
}

// --- timeouts and non-blocking sockets --------------------------------------------

// A connection whose buffers are small, so a reader that never reads stops
// the sender after a few hundred KiB.
tcp_connection small_buffer_pair() {
  pysock::socket listener(AF_INET, SOCK_STREAM);
  listener.setsockopt(pysock::so_rcvbuf, 16384);  // inherited by the accepted socket
  listener.bind({"127.0.0.1", 0});
  listener.listen();
  pysock::socket client(AF_INET, SOCK_STREAM);
  client.setsockopt(pysock::so_sndbuf, 16384);
  client.settimeout(5s);
  client.connect(listener.getsockname());
  auto accepted = listener.accept();
  return {std::move(client), std::move(accepted.first)};
}

TEST(sendfile, timeout_with_a_reader_that_never_reads_raises_timeout_error) {
  const temp_file file = temp_file::sparse(64u << 20);
  auto client_server = small_buffer_pair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& client = client_server.client;
  client.settimeout(300ms);
  const auto start = steady::now();
  auto e = catch_as<pysock::timeout_error>([&] { client.sendfile(file.fd()); });
  const auto elapsed = steady::now() - start;
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::timed_out);
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 15s);
  // The file position tells how much went out before the timeout.
  const off_t position = file.position();
  EXPECT_GT(position, 0);
  EXPECT_LT(position, static_cast<off_t>(64u << 20));
}

TEST(sendfile, timeout_mode_completes_when_the_reader_keeps_up) {
  // CPython's testWithTimeout: the per-wait timeout does not cut a transfer
  // that makes progress.
  temp_file file(file_data());
  auto [client, server] = small_buffer_pair();
  client.settimeout(5s);
  reader r(server);
  EXPECT_EQ(client.sendfile(file.fd()), file_data().size());
  client.shutdown(SHUT_WR);
  EXPECT_TRUE(r.result() == file_data());
}

TEST(sendfile,
     non_blocking_socket_with_regular_file_returns_a_partial_count_then_blocking_io_error) {
  // pysock deviation (Python raises ValueError): send what fits, never block.
  const std::uint64_t size = 64u << 20;
  const temp_file file = temp_file::sparse(size);
  auto [client, server] = small_buffer_pair();
  client.setblocking(false);
  const auto start = steady::now();
  const std::size_t first = client.sendfile(file.fd());
  EXPECT_GT(first, 0u);
  EXPECT_LT(first, size);
  EXPECT_EQ(file.position(), static_cast<off_t>(first));
  // The buffer is full now: the next call (from where the first stopped)
  // either squeezes out a little more or raises blocking_io_error; within a
  // few calls it must raise.
  std::uint64_t offset = first;
  bool raised = false;
  for (int i = 0; i < 100 && !raised; ++i) {
    try {
      offset += client.sendfile(file.fd(), offset);
    } catch (const pysock::blocking_io_error& e) {
      EXPECT_EQ(e.code(), std::errc::operation_would_block);
      raised = true;
    }
  }
  EXPECT_TRUE(raised);
  EXPECT_EQ(file.position(), static_cast<off_t>(offset));
  EXPECT_LT(steady::now() - start, 5s) << "a non-blocking sendfile waited";
}

TEST(sendfile, non_blocking_socket_with_room_sends_a_small_file_whole) {
  temp_file file("fits easily");
  auto [client, server] = tcp_pair();
  client.setblocking(false);
  EXPECT_EQ(client.sendfile(file.fd()), 11u);
  server.settimeout(2s);
  EXPECT_EQ(server.recv(100), "fits easily");
}

TEST(sendfile, non_blocking_socket_with_a_pipe_raises_invalid_argument) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  ASSERT_EQ(::write(fds[1], "abc", 3), 3);
  auto [client, server] = tcp_pair();
  client.setblocking(false);
  EXPECT_THROW((void)client.sendfile(fds[0]), std::invalid_argument);
  // Nothing was read from the pipe.
  char buf[8] = {};
  EXPECT_EQ(::read(fds[0], buf, sizeof buf), 3);
  ::close(fds[0]);
  ::close(fds[1]);
}

// --- the error_code form -------------------------------------------------------

TEST(sendfile, error_code_form_sends_everything_and_clears_the_code) {
  const temp_file file(file_data());
  auto [client, server] = tcp_pair();
  reader r(server);
  std::error_code ec = std::make_error_code(std::errc::io_error);  // stale: must be cleared
  const std::size_t sent = client.sendfile(file.fd(), 0, std::nullopt, ec);
  client.shutdown(SHUT_WR);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(sent, file_data().size());
  EXPECT_EQ(r.result(), file_data());
}

TEST(sendfile, error_code_form_reports_a_bad_file_descriptor_without_throwing) {
  temp_file file("x");
  const int stale = ::dup(file.fd());
  ::close(stale);
  auto client_server = tcp_pair();
  std::error_code ec;
  EXPECT_EQ(client_server.client.sendfile(stale, 0, std::nullopt, ec), 0u);
  EXPECT_EQ(ec, std::errc::bad_file_descriptor);
}

TEST(sendfile, error_code_form_on_a_closed_socket_reports_ebadf) {
  temp_file file("x");
  auto client_server = tcp_pair();
  client_server.client.close();
  std::error_code ec;
  EXPECT_EQ(client_server.client.sendfile(file.fd(), 0, std::nullopt, ec), 0u);
  EXPECT_EQ(ec, std::errc::bad_file_descriptor);
}

TEST(sendfile,
     error_code_form_on_a_full_non_blocking_socket_returns_the_partial_count_and_would_block) {
  const std::uint64_t size = 64u << 20;
  const temp_file file = temp_file::sparse(size);
  auto [client, server] = small_buffer_pair();
  client.setblocking(false);
  std::error_code ec;
  const std::size_t first = client.sendfile(file.fd(), 0, std::nullopt, ec);
  // What fitted is counted and the reason it stopped is told, in one call:
  // the HTTP server resumes from `first` when the socket is writable again.
  EXPECT_GT(first, 0u);
  EXPECT_LT(first, size);
  EXPECT_EQ(ec, std::errc::operation_would_block);
  EXPECT_EQ(file.position(), static_cast<off_t>(first));
}

TEST(sendfile, error_code_form_still_throws_for_wrong_arguments) {
  temp_file file("x");
  auto client_server = tcp_pair();
  std::error_code ec;
  EXPECT_THROW((void)client_server.client.sendfile(file.fd(), 0, 0, ec), std::invalid_argument);
  pysock::socket udp(AF_INET, SOCK_DGRAM);
  EXPECT_THROW((void)udp.sendfile(file.fd(), 0, std::nullopt, ec), std::invalid_argument);
}

// --- a peer that goes away ------------------------------------------------------

bool sigpipe_blocked_or_pending() {
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  sigset_t pending;
  sigpending(&pending);
  return sigismember(&mask, SIGPIPE) == 1 || sigismember(&pending, SIGPIPE) == 1;
}

TEST(sendfile, closed_unix_peer_raises_broken_pipe_error_without_sigpipe) {
  // SIGPIPE's default action kills the process: reaching the assertions at
  // all proves sendfile(2)'s SIGPIPE was suppressed.
  ASSERT_EQ(::signal(SIGPIPE, SIG_DFL), SIG_DFL);
  temp_file file(file_data());
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  auto& b = a_b.second;
  b.close();
  auto e = catch_as<pysock::broken_pipe_error>([&] { a.sendfile(file.fd()); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::broken_pipe);
  EXPECT_FALSE(sigpipe_blocked_or_pending()) << "the signal mask was not restored";
  EXPECT_EQ(file.position(), 0);
}

TEST(sendfile, tcp_peer_closing_during_the_transfer_raises_a_connection_error_without_sigpipe) {
  ::signal(SIGPIPE, SIG_DFL);
  const temp_file file = temp_file::sparse(256u << 20);
  auto client_server = small_buffer_pair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& client = client_server.client;
  auto& server = client_server.server;
  client.settimeout(20s);
  std::thread closer([&server] {
    server.settimeout(5s);
    try {
      (void)server.recv(1000);  // the transfer has started
    } catch (...) {
    }
    server.close();  // unread data: the kernel answers with RST
  });
  std::optional<pysock::connection_error> e;
  try {
    client.sendfile(file.fd());
  } catch (const pysock::broken_pipe_error& x) {
    e = x;
  } catch (const pysock::connection_reset_error& x) {
    e = x;
  }
  closer.join();
  ASSERT_TRUE(e) << "sendfile of 256 MiB finished although the peer closed";
  EXPECT_TRUE(e->code() == std::errc::broken_pipe || e->code() == std::errc::connection_reset)
      << e->what();
  EXPECT_FALSE(sigpipe_blocked_or_pending());
  const off_t position = file.position();
  EXPECT_GT(position, 0);
  EXPECT_LT(position, static_cast<off_t>(256u << 20));
}

TEST(sendfile, pipe_fallback_to_a_closed_peer_raises_broken_pipe_error_without_sigpipe) {
  ::signal(SIGPIPE, SIG_DFL);
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  ASSERT_EQ(::write(fds[1], "abc", 3), 3);
  ::close(fds[1]);
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  auto& b = a_b.second;
  b.close();
  auto e = catch_as<pysock::broken_pipe_error>([&] { a.sendfile(fds[0]); });
  ::close(fds[0]);
  ASSERT_TRUE(e);
  EXPECT_FALSE(sigpipe_blocked_or_pending());
}

TEST(sendfile, a_pending_sigpipe_from_before_the_call_is_left_pending) {
  // The guard swallows only the SIGPIPE its own call raised.
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  sigset_t old;
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &pipe_only, &old), 0);
  ASSERT_EQ(::raise(SIGPIPE), 0);
  temp_file file("x");
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  auto& b = a_b.second;
  b.close();
  EXPECT_TRUE(catch_as<pysock::broken_pipe_error>([&] { a.sendfile(file.fd()); }));
  sigset_t pending;
  sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 1);
  // Consume it before unblocking, or it would kill the test.
  const timespec no_wait{0, 0};
  EXPECT_EQ(sigtimedwait(&pipe_only, nullptr, &no_wait), SIGPIPE);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

}  // namespace
