// SPDX-License-Identifier: MIT
//
// The streams' frame-less waits: reader.read(n), reader.read_into(buf) and
// writer.drain() return awaitables rather than tasks (no coroutine frame per
// call). What a user relies on: they complete from the buffer or one receive,
// they wait without losing bytes, cancellation and timeouts withdraw them
// cleanly, they convert to tasks wherever a task is taken (create_task,
// wait_for, gather, run_until_complete), and misuse gets a clear error.
// Real socket pairs on each loop backend.
#include <pysock/streams.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <tuple>

#include "support/checks.hpp"
#include "support/stream_backends.hpp"

using namespace std::chrono_literals;
using pysock::task;

using test_support::make_stream_pair;

namespace {

class stream_awaiters : public test_support::on_each_backend {};
PYSOCK_ON_EACH_BACKEND(stream_awaiters);

}  // namespace

TEST_P(stream_awaiters, read_and_read_into_take_buffered_bytes_first_then_one_receive) {
  auto s = make_stream_pair(*loop_);
  auto body = [&]() -> task<void> {
    s.peer.sendall("hello world");
    char five[5];
    EXPECT_EQ(co_await s.reader.read_into(pysock::mutable_buffer(five, sizeof five)), 5u);
    EXPECT_EQ(std::string(five, 5), "hello");
    EXPECT_EQ(co_await s.reader.read(3), " wo");    // from what the first receive buffered
    EXPECT_EQ(co_await s.reader.read(100), "rld");  // at most what is there: no second wait
    // Nothing is buffered now: these complete at once without waiting.
    EXPECT_EQ(co_await s.reader.read(0), "");
    EXPECT_EQ(co_await s.reader.read_into(pysock::mutable_buffer(five, 0)), 0u);
    // A wait that the peer ends: bytes sent later arrive whole.
    loop_->call_later(5ms, [&] { s.peer.sendall("later"); });
    EXPECT_EQ(co_await s.reader.read(100), "later");
    s.peer.shutdown(SHUT_WR);
    EXPECT_EQ(co_await s.reader.read_into(pysock::mutable_buffer(five, sizeof five)), 0u);
    EXPECT_EQ(co_await s.reader.read(10), "");
    EXPECT_TRUE(s.reader.at_eof());
  };
  run_bounded(body());
}

TEST_P(stream_awaiters, read_until_eof_still_gathers_every_receive) {
  auto s = make_stream_pair(*loop_);
  auto body = [&]() -> task<std::string> {
    for (const char* part : {"one ", "two ", "three"})
      loop_->call_later(2ms, [&s, text = std::string(part)] { s.peer.sendall(text); });
    loop_->call_later(10ms, [&] { s.peer.shutdown(SHUT_WR); });
    co_return co_await s.reader.read();  // n < 0: until EOF
  };
  EXPECT_EQ(run_bounded(body()), "one two three");
}

TEST_P(stream_awaiters, they_convert_to_tasks_for_create_task_wait_for_and_gather) {
  auto s = make_stream_pair(*loop_);
  auto body = [&]() -> task<void> {
    // Stored as a task first, awaited later.
    char buf[16];
    task<std::size_t> stored = s.reader.read_into(pysock::mutable_buffer(buf, sizeof buf));
    s.peer.sendall("abc");
    EXPECT_EQ(co_await std::move(stored), 3u);
    EXPECT_EQ(std::string(buf, 3), "abc");

    // create_task: runs on its own while this coroutine goes on.
    pysock::task_handle<pysock::bytes> pending = pysock::create_task(s.reader.read(4));
    co_await pysock::sleep(2ms);
    EXPECT_FALSE(pending.done());
    s.peer.sendall("defg");
    EXPECT_EQ(co_await pending, "defg");

    // gather: a read, a drain and a plain task together, results in order.
    s.writer.write("to the peer");
    loop_->call_later(2ms, [&] { s.peer.sendall("hi"); });
    auto [got, drained, plain] =
        co_await pysock::gather(s.reader.read(2), s.writer.drain(), [&]() -> task<int> {
          co_await pysock::sleep(1ms);
          co_return 7;
        }());
    EXPECT_EQ(got, "hi");
    (void)drained;
    EXPECT_EQ(plain, 7);
    char peer_buf[32];
    EXPECT_EQ(s.peer.recv_into(pysock::mutable_buffer(peer_buf, sizeof peer_buf)), 11u);
  };
  run_bounded(body());
}

TEST_P(stream_awaiters, a_read_that_times_out_loses_nothing_and_the_stream_reads_on) {
  auto s = make_stream_pair(*loop_);
  auto body = [&]() -> task<void> {
    bool timed_out = false;
    try {
      co_await pysock::wait_for(s.reader.read(10), 10ms);
    } catch (const pysock::timeout_error&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    // The cancelled wait is withdrawn: a new one receives what comes next.
    loop_->call_later(2ms, [&] { s.peer.sendall("after the timeout"); });
    char buf[64];
    const std::size_t n =
        co_await pysock::wait_for(s.reader.read_into(pysock::mutable_buffer(buf, sizeof buf)), 5s);
    EXPECT_EQ(std::string(buf, n), "after the timeout");
  };
  run_bounded(body());
}

TEST_P(stream_awaiters, cancelling_a_task_waiting_in_read_into_raises_cancelled_error_there) {
  auto s = make_stream_pair(*loop_);
  auto body = [&]() -> task<void> {
    char buf[8];
    auto waiting = pysock::create_task(s.reader.read_into(pysock::mutable_buffer(buf, sizeof buf)));
    co_await pysock::sleep(2ms);
    EXPECT_TRUE(waiting.cancel());
    bool cancelled = false;
    try {
      co_await waiting;
    } catch (const pysock::cancelled_error&) {
      cancelled = true;
    }
    EXPECT_TRUE(cancelled);
    EXPECT_TRUE(waiting.cancelled());
    s.peer.sendall("next");
    EXPECT_EQ(co_await s.reader.read(8), "next");
  };
  run_bounded(body());
}

TEST_P(stream_awaiters, drain_waits_above_the_high_water_mark_and_reports_a_dead_peer) {
  auto s = make_stream_pair(*loop_);
  s.writer.set_write_buffer_limits(4096, 1024);
  auto body = [&]() -> task<void> {
    // Below the mark: at once, nothing to wait for.
    s.writer.write("small");
    co_await s.writer.drain();
    // Far above what the socket takes: drain() waits until the peer reads.
    const std::string big(4 << 20, 'x');
    s.writer.write(big);
    EXPECT_GT(s.writer.get_write_buffer_size(), 4096u);
    auto draining = pysock::create_task(s.writer.drain());
    co_await pysock::sleep(5ms);
    EXPECT_FALSE(draining.done()) << "nobody reads: drain() must still be waiting";
    std::size_t read = 0;
    char chunk[65536];
    while (!draining.done() && read < big.size() + 5) {
      read += s.peer.recv_into(pysock::mutable_buffer(chunk, sizeof chunk));
      co_await pysock::sleep(0ms);
    }
    co_await draining;
    EXPECT_LE(s.writer.get_write_buffer_size(), 1024u);
    // The peer goes away: the next drain over the mark raises its error.
    s.peer.close();
    bool failed = false;
    try {
      for (int i = 0; i < 50 && !failed; ++i) {
        s.writer.write(big);
        co_await s.writer.drain();
      }
    } catch (const pysock::connection_error&) {
      failed = true;
    }
    EXPECT_TRUE(failed);
  };
  run_bounded(body());
}

TEST_P(stream_awaiters, run_until_complete_takes_a_read_directly) {
  auto s = make_stream_pair(*loop_);
  s.peer.sendall("direct");
  char buf[16];
  EXPECT_EQ(loop_->run_until_complete(s.reader.read_into(pysock::mutable_buffer(buf, sizeof buf))),
            6u);
  EXPECT_EQ(std::string(buf, 6), "direct");
}

TEST_P(stream_awaiters, empty_handles_and_a_second_reader_get_clear_errors) {
  auto s = make_stream_pair(*loop_);
  auto body = [&]() -> task<void> {
    pysock::stream_reader no_reader;
    pysock::stream_writer no_writer;
    char buf[4];
    EXPECT_THROW(co_await no_reader.read_into(pysock::mutable_buffer(buf, sizeof buf)),
                 std::invalid_argument);
    EXPECT_THROW(co_await no_reader.read(1), std::invalid_argument);
    EXPECT_THROW(co_await no_writer.drain(), std::invalid_argument);
    // asyncio: "read() called while another coroutine is already waiting".
    auto first = pysock::create_task(s.reader.read(4));
    co_await pysock::sleep(1ms);
    std::string second_reader_error;
    try {
      co_await s.reader.read_into(pysock::mutable_buffer(buf, sizeof buf));
    } catch (const std::runtime_error& e) {
      second_reader_error = e.what();
    }
    EXPECT_EQ(second_reader_error,
              "read() called while another coroutine is already waiting for incoming data");
    // Through the frame-ful calls as well (readline runs as a coroutine).
    EXPECT_THROW(co_await s.reader.readline(), std::runtime_error);
    s.peer.sendall("mine");
    EXPECT_EQ(co_await first, "mine") << "the waiting reader keeps its bytes";
  };
  run_bounded(body());
}

// read_into() with nothing buffered receives straight into the caller's
// buffer. A read_into() that was withdrawn (timed out, cancelled) must never
// have its buffer written afterwards: the bytes go to the next read instead.
TEST_P(stream_awaiters, a_withdrawn_read_into_never_writes_its_buffer_later) {
  auto s = make_stream_pair(*loop_);
  auto body = [&]() -> task<void> {
    std::string stale(16, '-');
    bool timed_out = false;
    try {
      co_await pysock::wait_for(s.reader.read_into(stale), 5ms);
    } catch (const pysock::timeout_error&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    std::string cancelled_buffer(16, '-');
    auto waiting = pysock::create_task(s.reader.read_into(cancelled_buffer));
    co_await pysock::sleep(2ms);
    EXPECT_TRUE(waiting.cancel());
    EXPECT_THROW(co_await waiting, pysock::cancelled_error);
    loop_->call_later(2ms, [&] { s.peer.sendall("fresh data"); });
    EXPECT_EQ(co_await s.reader.read(100), "fresh data");
    EXPECT_EQ(stale, std::string(16, '-'));
    EXPECT_EQ(cancelled_buffer, std::string(16, '-'));
  };
  run_bounded(body());
}

TEST_P(stream_awaiters, read_into_waiting_on_a_reset_peer_raises_connection_reset_error) {
  auto body = [&]() -> task<void> {
    // A TCP pair: a reset needs SO_LINGER 0 on a TCP socket.
    pysock::socket listener(AF_INET, SOCK_STREAM);
    listener.bind({"127.0.0.1", 0});
    listener.listen();
    auto [reader, writer] =
        co_await pysock::open_connection("127.0.0.1", listener.getsockname().port());
    pysock::socket peer = listener.accept().first;
    peer.setsockopt(pysock::so_linger, std::optional<std::chrono::seconds>(0s));
    loop_->call_later(3ms, [&peer] { peer.close(); });  // RST
    char buf[32];
    EXPECT_THROW(co_await reader.read_into(pysock::mutable_buffer(buf, sizeof buf)),
                 pysock::connection_reset_error);
    // The error stays: the next read says so at once, without a wait.
    EXPECT_THROW(co_await reader.read_into(pysock::mutable_buffer(buf, sizeof buf)),
                 pysock::connection_reset_error);
    writer.close();
    co_await writer.wait_closed();
  };
  run_bounded(body());
}
