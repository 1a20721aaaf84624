// SPDX-License-Identifier: MIT
//
// How a stream receives, on both backends. On io_uring a plain TCP stream
// keeps one multishot receive in the kernel between reads, and what it brings is
// buffered even while nobody reads, so these tests pin down what a user
// relies on: bytes that arrive while the reader is busy are kept, whole and
// in order; a reader that stops reading stops the receiving at twice its
// limit (the peer then feels TCP's back-pressure) and gets every byte when it
// reads again; closing a stream really closes the connection (the peer sees
// EOF) even with the receive in the kernel; and the receive stays in the
// kernel between reads instead of a request per read. Loopback TCP only.
#include <pysock/streams.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "support/checks.hpp"
#include "support/stream_backends.hpp"

using namespace std::chrono_literals;
using pysock::task;

using test_support::make_tcp_stream_pair;

namespace {

// A recognisable byte pattern: the bytes at any offset tell where they came
// from, so reordering or loss shows.
std::string pattern(std::size_t from, std::size_t n) {
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>('a' + (from + i) * 7 % 26);
  return out;
}

class stream_receive : public test_support::on_each_backend {};
PYSOCK_ON_EACH_BACKEND(stream_receive);

}  // namespace

TEST_P(stream_receive, the_receive_stays_in_the_kernel_between_reads_and_leaves_with_close) {
  auto s = make_tcp_stream_pair(*loop_);
  auto body = [&]() -> task<void> {
    for (int i = 0; i < 5; ++i) {
      loop_->call_later(1ms, [&s, i] { s.peer.sendall("message " + std::to_string(i)); });
      EXPECT_EQ(co_await s.reader.read(100), "message " + std::to_string(i));
      // io_uring: one multishot receive, made at the first wait and kept;
      // epoll: the edge-triggered registration, no request at all.
      EXPECT_EQ(loop_->kernel_requests_in_flight(), on_ring() ? 1u : 0u) << "after read " << i;
    }
    s.writer.close();
    co_await s.writer.wait_closed();
    EXPECT_EQ(loop_->kernel_requests_in_flight(), 0u);
  };
  run_bounded(body());
  // The connection is closed, not only forgotten: the peer sees EOF.
  s.peer.settimeout(5s);
  EXPECT_EQ(s.peer.recv(16), "");
}

TEST_P(stream_receive, bytes_that_arrive_while_the_reader_is_busy_are_kept_whole_and_in_order) {
  auto s = make_tcp_stream_pair(*loop_);
  constexpr std::size_t kPiece = 1000;
  constexpr std::size_t kPieces = 40;
  auto body = [&]() -> task<void> {
    // The first read waits (io_uring: that arms the receive); then the
    // reader is busy elsewhere while the peer sends in many pieces, some
    // while the loop runs.
    loop_->call_later(1ms, [&s] { s.peer.sendall("go"); });
    EXPECT_EQ(co_await s.reader.read(2), "go");
    for (std::size_t i = 0; i < kPieces; ++i) {
      s.peer.sendall(pattern(i * kPiece, kPiece));
      if (i % 8 == 0) co_await pysock::sleep(1ms);
    }
    co_await pysock::sleep(20ms);
    // Then every kind of read, mixed: nothing lost, nothing reordered.
    std::string got;
    got += co_await s.reader.read(10);
    got += co_await s.reader.readexactly(990);
    char buf[1500];
    while (got.size() < kPiece * kPieces) {
      const std::size_t n = co_await s.reader.read_into(pysock::mutable_buffer(buf, sizeof buf));
      EXPECT_GT(n, 0u);
      if (n == 0) break;
      got.append(buf, n);
    }
    EXPECT_EQ(got.size(), kPiece * kPieces);
    EXPECT_TRUE(got == pattern(0, kPiece * kPieces)) << "bytes lost or reordered";
  };
  run_bounded(body());
}

TEST_P(stream_receive, a_reader_that_stops_reading_stops_receiving_and_later_gets_every_byte) {
  pysock::stream_limits limits;
  limits.limit = 16 * 1024;
  auto s = make_tcp_stream_pair(*loop_, limits, 64 * 1024);
  constexpr std::size_t kChunk = 64 * 1024;
  constexpr std::size_t kWanted = 32 * 1024 * 1024;
  std::atomic<std::size_t> sent{0};
  std::thread peer;
  struct joiner {
    std::thread& thread;
    ~joiner() {
      if (thread.joinable()) thread.join();  // its sends time out if nobody reads
    }
  } join_peer{peer};
  auto body = [&]() -> task<void> {
    loop_->call_later(1ms, [&s] { s.peer.sendall("go"); });  // a read that waits
    EXPECT_EQ(co_await s.reader.read(2), "go");
    // The reader stops here, while a peer on its own thread sends as fast
    // as the connection takes it (blocking sends, bounded by a timeout).
    peer = std::thread([&s, &sent] {
      s.peer.settimeout(20s);
      try {
        for (std::size_t at = 0; at < kWanted; at += kChunk) {
          s.peer.sendall(pattern(at, kChunk));
          sent = at + kChunk;
        }
      } catch (const pysock::os_error&) {
        // timed out: the assertions below report it
      }
    });
    co_await pysock::sleep(300ms);
    // It stopped: taken are the socket buffers (64 KiB each way, fixed) and
    // what the stream holds, twice its limit plus what was on its way — a
    // stream that kept receiving would have taken all 32 MiB by now.
    EXPECT_LT(sent.load(), 2u * 1024 * 1024);
    if (on_ring()) {
      EXPECT_EQ(loop_->kernel_requests_in_flight(), 0u) << "the receive was not withdrawn";
    }
    // Reading again gets every byte, in order, and the rest flows.
    std::string got;
    while (got.size() < kWanted) {
      pysock::bytes part = co_await s.reader.read(256 * 1024);
      EXPECT_FALSE(part.empty());
      if (part.empty()) break;
      got += part;
    }
    EXPECT_EQ(got.size(), kWanted);
    EXPECT_TRUE(got == pattern(0, kWanted)) << "bytes lost or reordered";
  };
  run_bounded(body());
  peer.join();
  EXPECT_EQ(sent.load(), kWanted);
}

TEST_P(stream_receive, a_peer_reset_during_the_receive_reaches_the_reader_after_the_data) {
  auto body = [&]() -> task<void> {
    pysock::socket listener = pysock::create_server(pysock::address("127.0.0.1", 0));
    auto [reader, writer] =
        co_await pysock::open_connection("127.0.0.1", listener.getsockname().port());
    auto accepted = listener.accept();  // the handshake is done: no wait
    pysock::socket& peer = accepted.first;
    loop_->call_later(1ms, [&peer] { peer.sendall("first"); });  // a read that waits
    EXPECT_EQ(co_await reader.read(100), "first");
    // Data, then a reset (SO_LINGER 0): the reader gets the data first.
    peer.sendall("second");
    co_await pysock::sleep(5ms);
    peer.setsockopt(pysock::so_linger, std::optional<std::chrono::seconds>(0s));
    peer.close();
    co_await pysock::sleep(5ms);
    EXPECT_EQ(co_await reader.read(100), "second");
    EXPECT_THROW(co_await reader.read(100), pysock::connection_reset_error);
    writer.close();
  };
  run_bounded(body());
}
