// SPDX-License-Identifier: MIT
//
// socket::makefile and socket_stream (pysock/makefile.hpp): a buffered
// std::iostream over a connection — line protocols with std::getline,
// operator<< and flush, binary round trips, the connection outliving
// sock.close() while the stream lives, mode validation, read-only streams,
// and Python's "cannot read from timed out object" rule. Ports CPython's
// FileObjectClassTestCase (reference section 8.1 row 47).
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <ios>
#include <iterator>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include <gtest/gtest.h>

#include "support/checks.hpp"

#include "pysock/makefile.hpp"
#include "pysock/socket.hpp"

namespace {

using test_support::catch_as;
using test_support::contains;

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

std::string random_bytes(std::size_t n) {
  std::mt19937 gen(1234);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(gen() & 0xff);
  return out;
}

// Everything `sock` receives until EOF (bounded by its timeout).
std::string recv_all(pysock::socket& sock) {
  sock.settimeout(5s);
  std::string out;
  for (int i = 0; i < 100000; ++i) {
    pysock::bytes part = sock.recv(1 << 16);
    if (part.empty()) break;
    out += part;
  }
  return out;
}

// --- reading and writing ------------------------------------------------------------

TEST(makefile, getline_reads_each_line_of_a_line_protocol_then_eof) {
  auto [a, b] = pysock::socketpair();
  b.settimeout(5s);
  auto f = b.makefile("r");
  a.sendall("HELO client\r\nMAIL FROM:<x@y>\nDATA\n");
  a.sendall("partial line without newline");
  a.shutdown(SHUT_WR);
  std::string line;
  ASSERT_TRUE(std::getline(f, line));
  EXPECT_EQ(line, "HELO client\r");
  ASSERT_TRUE(std::getline(f, line));
  EXPECT_EQ(line, "MAIL FROM:<x@y>");
  ASSERT_TRUE(std::getline(f, line));
  EXPECT_EQ(line, "DATA");
  ASSERT_TRUE(std::getline(f, line));
  EXPECT_EQ(line, "partial line without newline");
  EXPECT_FALSE(std::getline(f, line));
  EXPECT_TRUE(f.eof());
  EXPECT_FALSE(f.bad());
  EXPECT_FALSE(f.error());
}

TEST(makefile, getline_assembles_a_line_sent_in_several_pieces) {
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  auto& b = a_b.second;
  b.settimeout(5s);
  auto f = b.makefile("r");
  std::thread writer([&a] {
    for (const char* piece : {"sp", "lit ", "li", "ne\n"}) {
      a.sendall(piece);
      std::this_thread::sleep_for(20ms);
    }
  });
  std::string line;
  EXPECT_TRUE(std::getline(f, line));
  writer.join();
  EXPECT_EQ(line, "split line");
}

TEST(makefile, operator_shift_is_buffered_until_flush) {
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  auto& b = a_b.second;
  auto f = a.makefile("w");
  f << "answer=" << 42 << '\n';
  b.setblocking(false);
  EXPECT_TRUE(catch_as<pysock::blocking_io_error>([&] { (void)b.recv(100); }))
      << "the stream sent before flush";
  f << std::flush;
  EXPECT_TRUE(f.good());
  b.settimeout(2s);
  EXPECT_EQ(b.recv(100), "answer=42\n");
}

TEST(makefile, endl_flushes_and_close_flushes_the_rest) {
  auto [a, b] = pysock::socketpair();
  b.settimeout(2s);
  auto f = a.makefile("w");
  f << "one" << std::endl;
  EXPECT_EQ(b.recv(100), "one\n");
  f << "two";
  f.close();
  EXPECT_TRUE(f.closed());
  EXPECT_EQ(b.recv(100), "two");
}

TEST(makefile, destroying_the_stream_flushes_what_is_buffered) {
  auto [a, b] = pysock::socketpair();
  {
    auto f = a.makefile("w");
    f << "flushed by the destructor";
  }
  b.settimeout(2s);
  EXPECT_EQ(b.recv(100), "flushed by the destructor");
}

TEST(makefile, write_larger_than_the_buffer_arrives_whole_and_in_order) {
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  auto& b = a_b.second;
  const std::string big(100000, 'B');
  std::thread sender([&a, &big] {
    auto f = a.makefile("w");
    f << "head|";                                                   // buffered
    f.write(big.data(), static_cast<std::streamsize>(big.size()));  // goes around the buffer
    f << "|tail" << std::flush;
    a.close();
  });
  const std::string got = recv_all(b);
  sender.join();
  EXPECT_EQ(got, "head|" + big + "|tail");
}

TEST(makefile, binary_round_trip_of_one_mib) {
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  auto& b = a_b.second;
  const std::string data = random_bytes(1 << 20);
  // The peer echoes everything back.
  std::thread echo([&b] {
    b.settimeout(10s);
    std::size_t total = 0;
    while (total < (1u << 20)) {
      pysock::bytes part = b.recv(1 << 16);
      if (part.empty()) break;
      total += part.size();
      b.sendall(part);
    }
  });
  a.settimeout(10s);
  auto f = a.makefile("rwb");
  std::thread writer(
      [&f, &data] { f.write(data.data(), static_cast<std::streamsize>(data.size())).flush(); });
  std::string back(data.size(), '\0');
  f.read(back.data(), static_cast<std::streamsize>(back.size()));
  writer.join();
  echo.join();
  EXPECT_EQ(f.gcount(), static_cast<std::streamsize>(data.size()));
  EXPECT_TRUE(back == data);
  EXPECT_FALSE(f.error());
}

TEST(makefile, binary_data_with_nul_and_newline_bytes_survives) {
  auto [a, b] = pysock::socketpair();
  const std::string data("a\0b\nc\r\n\xff\x00", 9);
  auto w = a.makefile("wb");
  w.write(data.data(), static_cast<std::streamsize>(data.size()));
  w.close();
  a.close();
  b.settimeout(2s);
  auto r = b.makefile("rb");
  const std::string got((std::istreambuf_iterator<char>(r)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, data);
}

TEST(makefile, operator_extraction_parses_numbers_and_words) {
  auto [a, b] = pysock::socketpair();
  a.sendall("17 abc 2.5\n");
  a.shutdown(SHUT_WR);
  b.settimeout(2s);
  auto f = b.makefile("r");
  int n = 0;
  std::string word;
  double x = 0;
  f >> n >> word >> x;
  EXPECT_TRUE(f);
  EXPECT_EQ(n, 17);
  EXPECT_EQ(word, "abc");
  EXPECT_DOUBLE_EQ(x, 2.5);
}

TEST(makefile, read_write_stream_serves_a_request_response_protocol) {
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  auto& b = a_b.second;
  std::thread server([&b] {
    b.settimeout(5s);
    auto f = b.makefile("rw");
    std::string line;
    while (std::getline(f, line)) {
      if (line == "QUIT") {
        f << "BYE" << std::endl;
        break;
      }
      f << "ECHO " << line << std::endl;
    }
  });
  a.settimeout(5s);
  auto f = a.makefile("rw");
  std::string reply;
  f << "ping" << std::endl;
  ASSERT_TRUE(std::getline(f, reply));
  EXPECT_EQ(reply, "ECHO ping");
  f << "pong" << std::endl;
  ASSERT_TRUE(std::getline(f, reply));
  EXPECT_EQ(reply, "ECHO pong");
  f << "QUIT" << std::endl;
  ASSERT_TRUE(std::getline(f, reply));
  EXPECT_EQ(reply, "BYE");
  server.join();
}

TEST(makefile, works_over_tcp) {
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  pysock::socket client = pysock::create_connection(listener.getsockname(), 5s);
  auto [server, peer] = listener.accept();
  server.settimeout(5s);
  auto out = client.makefile("w");
  auto in = server.makefile("r");
  out << "over tcp\n" << std::flush;
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line, "over tcp");
}

// --- lifetime: the stream keeps the connection open --------------------------------------

TEST(makefile, connection_stays_open_after_sock_close_while_the_stream_lives) {
  // CPython's testCloseAfterMakefile / testRealClose.
  auto [a, b] = pysock::socketpair();
  auto f = a.makefile("rw");
  a.close();
  EXPECT_TRUE(a.closed());
  EXPECT_FALSE(f.closed());
  f << "written after sock.close()" << std::flush;
  b.settimeout(2s);
  EXPECT_EQ(b.recv(100), "written after sock.close()");
  b.sendall("and read back\n");
  std::string line;
  ASSERT_TRUE(std::getline(f, line));
  EXPECT_EQ(line, "and read back");
  // Only when the stream closes too does the peer see EOF.
  f.close();
  EXPECT_TRUE(f.closed());
  EXPECT_EQ(b.recv(100), "");
}

TEST(makefile, closing_the_stream_alone_keeps_the_socket_usable) {
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  auto& b = a_b.second;
  auto f = a.makefile("w");
  f.close();
  f.close();  // idempotent
  EXPECT_TRUE(f.closed());
  a.sendall("socket still works");
  b.settimeout(2s);
  EXPECT_EQ(b.recv(100), "socket still works");
  // No EOF yet: the socket is open.
  b.settimeout(100ms);
  EXPECT_TRUE(catch_as<pysock::timeout_error>([&] { (void)b.recv(100); }));
}

TEST(makefile, moved_stream_keeps_working_and_the_source_is_closed) {
  auto [a, b] = pysock::socketpair();
  auto f = a.makefile("w");
  pysock::socket_stream g(std::move(f));
  EXPECT_TRUE(f.closed());
  EXPECT_FALSE(g.closed());
  g << "moved" << std::flush;
  b.settimeout(2s);
  EXPECT_EQ(b.recv(100), "moved");
}

TEST(makefile, makefile_on_a_closed_socket_raises_ebadf) {
  pysock::socket s = pysock::socket::closed_socket();
  auto e = catch_as([&] { (void)s.makefile("r"); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code(), std::errc::bad_file_descriptor);
}

// --- modes ---------------------------------------------------------------------------

TEST(makefile, invalid_modes_raise_invalid_argument) {
  auto [a, b] = pysock::socketpair();
  for (const char* mode : {"x", "rr", "", "ww", "rwx", "r+", "a", "bb", "b", "rwbr"}) {
    EXPECT_THROW((void)a.makefile(mode), std::invalid_argument) << "mode '" << mode << "'";
  }
}

TEST(makefile, valid_modes_are_accepted_in_any_order) {
  auto [a, b] = pysock::socketpair();
  for (const char* mode : {"r", "w", "rw", "wr", "rb", "br", "wb", "rwb", "bwr"}) {
    auto f = a.makefile(mode);
    EXPECT_FALSE(f.closed()) << mode;
  }
}

TEST(makefile, invalid_mode_message_names_the_mode) {
  auto [a, b] = pysock::socketpair();
  try {
    (void)a.makefile("rq");
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "rq")) << e.what();
  }
}

TEST(makefile, read_only_stream_refuses_writes_with_badbit) {
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  auto& b = a_b.second;
  auto f = a.makefile("r");
  f << "must not be sent" << std::flush;
  EXPECT_TRUE(f.bad());
  b.setblocking(false);
  EXPECT_TRUE(catch_as<pysock::blocking_io_error>([&] { (void)b.recv(100); }));
}

TEST(makefile, write_only_stream_refuses_reads) {
  auto [a, b] = pysock::socketpair();
  b.sendall("data waiting\n");
  auto f = a.makefile("w");
  std::string line;
  EXPECT_FALSE(std::getline(f, line));
  EXPECT_TRUE(line.empty());
  // The data is still in the socket.
  a.settimeout(2s);
  EXPECT_EQ(a.recv(100), "data waiting\n");
}

// --- errors and timeouts ----------------------------------------------------------------

TEST(makefile, timeout_with_exceptions_throws_timeout_error_then_refuses_further_reads) {
  // CPython's testReadAfterTimeout.
  auto [a, b] = pysock::socketpair();
  b.settimeout(100ms);
  auto f = b.makefile("r");
  f.exceptions(std::ios::badbit);
  std::string line;
  auto first = catch_as<pysock::timeout_error>([&] { std::getline(f, line); });
  ASSERT_TRUE(first);
  EXPECT_EQ(first->code(), std::errc::timed_out);
  EXPECT_TRUE(f.bad());
  // Data arrives now, but the position in the stream is unknown after a
  // timeout: the stream refuses without reading from the socket.
  a.sendall("too late\n");
  f.clear();
  auto second = catch_as([&] { std::getline(f, line); });
  ASSERT_TRUE(second);
  EXPECT_TRUE(contains(second->what(), "cannot read from timed out object")) << second->what();
  f.clear();
  auto third = catch_as([&] { std::getline(f, line); });
  ASSERT_TRUE(third);
  EXPECT_TRUE(contains(third->what(), "cannot read from timed out object")) << third->what();
  // Not a byte was taken: the data is all still in the socket.
  b.settimeout(2s);
  EXPECT_EQ(b.recv(100), "too late\n");
}

TEST(makefile, timeout_without_exceptions_sets_badbit_and_error_timed_out) {
  auto [a, b] = pysock::socketpair();
  b.settimeout(100ms);
  auto f = b.makefile("r");
  std::string line;
  const auto start = steady::now();
  EXPECT_FALSE(std::getline(f, line));
  EXPECT_GE(steady::now() - start, 80ms);
  EXPECT_TRUE(f.bad());
  EXPECT_EQ(f.error(), std::errc::timed_out);
  a.sendall("later\n");
  f.clear();
  EXPECT_FALSE(std::getline(f, line));
  EXPECT_TRUE(f.bad());
}

TEST(makefile, stream_keeps_its_timeout_after_the_socket_is_made_blocking) {
  // The stream reads through its own dup() of the descriptor with the timeout
  // the socket had at makefile() time. The two descriptors share O_NONBLOCK,
  // so sock.settimeout(nullopt) clears it under the stream: its reads must
  // still end after its 150 ms timeout, not block. (In CPython the file uses
  // the socket object itself, so there is no second timeout to honour.)
  auto a_b = pysock::socketpair();
  // Named, not a structured binding: clang 14 cannot capture those in lambdas.
  auto& a = a_b.first;
  auto& b = a_b.second;
  b.settimeout(150ms);
  auto f = b.makefile("r");
  b.settimeout(std::nullopt);
  // Watchdog: were the read to block, this line unblocks it after 3 s.
  std::thread watchdog([&a] {
    std::this_thread::sleep_for(3s);
    a.sendall("watchdog\n");
  });
  std::string line;
  const auto start = steady::now();
  const bool got_line = static_cast<bool>(std::getline(f, line));
  const auto elapsed = steady::now() - start;
  watchdog.join();
  EXPECT_FALSE(got_line) << "read blocked until the watchdog wrote: " << line;
  EXPECT_LT(elapsed, 2s);
  EXPECT_EQ(f.error(), std::errc::timed_out);
}

TEST(makefile, reset_by_peer_with_exceptions_throws_connection_reset_error) {
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  pysock::socket client = pysock::create_connection(listener.getsockname(), 5s);
  auto [server, peer] = listener.accept();
  client.sendall("unread");  // left unread: closing the server sends RST
  server.setsockopt(pysock::so_linger, std::optional<std::chrono::seconds>(0s));
  std::this_thread::sleep_for(50ms);
  server.close();
  auto f = client.makefile("r");
  f.exceptions(std::ios::badbit);
  std::string line;
  auto e = catch_as<pysock::connection_reset_error>([&] { std::getline(f, line); });
  ASSERT_TRUE(e);
  EXPECT_EQ(f.error(), std::errc::connection_reset);
}

TEST(makefile, writing_to_a_closed_peer_sets_badbit_with_broken_pipe_and_no_sigpipe) {
  auto [a, b] = pysock::socketpair();
  b.close();
  auto f = a.makefile("w");
  f << "into the void" << std::flush;
  EXPECT_TRUE(f.bad());
  EXPECT_EQ(f.error(), std::errc::broken_pipe);
}

}  // namespace
