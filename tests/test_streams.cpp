// SPDX-License-Identifier: MIT
//
// pysock/streams.hpp: open_connection/start_server, the reader's framing
// calls, the writer's back-pressure and closing, errors, many clients, and the
// multi-core serve_forever. Real sockets on loopback only.
#include <pysock/streams.hpp>

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <iostream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/checks.hpp"

using namespace std::chrono_literals;
using pysock::task;

namespace {

// The backend of the running test (the suite runs once per backend).
pysock::loop_backend current_backend = pysock::loop_backend::epoll;

template <class T>
T run_bounded(task<T> body, std::chrono::seconds limit = 20s) {
  return pysock::run(pysock::wait_for(std::move(body), limit),
                     pysock::loop_options{current_backend});
}

// A line echo handler: what most asyncio tutorials show.
task<void> line_echo(pysock::stream_reader reader, pysock::stream_writer writer) {
  for (;;) {
    pysock::bytes line = co_await reader.readline();
    if (line.empty()) break;
    writer.write(line);
    co_await writer.drain();
  }
  writer.close();
  co_await writer.wait_closed();
}

// Feeds `pieces` to one accepted connection with a pause between them, so a
// reader has to put frames together from several receives.
task<void> trickle(pysock::stream_reader, pysock::stream_writer writer,
                   std::vector<std::string> pieces) {
  for (const auto& piece : pieces) {
    writer.write(piece);
    co_await writer.drain();
    co_await pysock::sleep(3ms);
  }
  writer.close();
  co_await writer.wait_closed();
}

}  // namespace

// Every test runs on each backend; the io_uring instance skips, with the
// reason, where the loop falls back to epoll.
class streams : public testing::TestWithParam<pysock::loop_backend> {
 protected:
  void SetUp() override {
    current_backend = GetParam();
    testing::internal::CaptureStderr();
    const pysock::event_loop probe(pysock::loop_options{GetParam()});
    const std::string log = testing::internal::GetCapturedStderr();
    if (probe.backend() != GetParam())
      GTEST_SKIP() << "the " << pysock::to_string(GetParam())
                   << " backend is not available here; the loop fell back to "
                   << pysock::to_string(probe.backend()) << ": " << log;
  }
};
INSTANTIATE_TEST_SUITE_P(backends, streams,
                         testing::Values(pysock::loop_backend::epoll,
                                         pysock::loop_backend::io_uring),
                         [](const testing::TestParamInfo<pysock::loop_backend>& param_info) {
                           return std::string(pysock::to_string(param_info.param));
                         });

TEST_P(streams, open_connection_and_start_server_echo_lines) {
  auto body = []() -> task<void> {
    auto srv = co_await pysock::start_server(line_echo, "127.0.0.1", 0);
    const int port = srv.sockname().port();
    EXPECT_GT(port, 0);
    EXPECT_TRUE(srv.is_serving());
    auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", port);
    writer.write("first line\nsecond ");
    writer.write("line\n");
    co_await writer.drain();
    EXPECT_EQ(co_await reader.readline(), "first line\n");
    EXPECT_EQ(co_await reader.readline(), "second line\n");
    writer.write_eof();
    EXPECT_EQ(co_await reader.read(), "");
    EXPECT_TRUE(reader.at_eof());
    writer.close();
    co_await writer.wait_closed();
    srv.close();
    co_await srv.wait_closed();
    EXPECT_FALSE(srv.is_serving());
  };
  run_bounded(body());
}

TEST_P(streams, readuntil_readexactly_and_read_reassemble_split_input) {
  auto body = []() -> task<void> {
    std::vector<std::string> pieces{"HEAD", "ER\r", "\nbo", "dy-of-", "ten!", "tail"};
    auto handler = [pieces](pysock::stream_reader r, pysock::stream_writer w) {
      return trickle(r, w, pieces);
    };
    auto srv = co_await pysock::start_server(handler, "127.0.0.1", 0);
    auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", srv.sockname().port());
    EXPECT_EQ(co_await reader.readuntil("\r\n"), "HEADER\r\n");
    EXPECT_EQ(co_await reader.readexactly(11), "body-of-ten");
    EXPECT_EQ(co_await reader.read(), "!tail");  // to EOF
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

TEST_P(streams, readexactly_at_eof_raises_incomplete_read_error_with_the_partial_bytes) {
  auto body = []() -> task<void> {
    auto handler = [](pysock::stream_reader r, pysock::stream_writer w) {
      return trickle(r, w, {"only five"});
    };
    auto srv = co_await pysock::start_server(handler, "127.0.0.1", 0);
    auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", srv.sockname().port());
    try {
      co_await reader.readexactly(100);
      ADD_FAILURE() << "expected incomplete_read_error";
    } catch (const pysock::incomplete_read_error& e) {
      EXPECT_EQ(e.partial, "only five");
      EXPECT_EQ(e.expected, std::optional<std::size_t>(100));
    }
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

TEST_P(streams, readuntil_past_the_limit_raises_limit_overrun_error) {
  auto body = []() -> task<void> {
    auto handler = [](pysock::stream_reader r, pysock::stream_writer w) {
      return trickle(r, w, {std::string(300, 'x'), "\nnext\n"});
    };
    pysock::server_config config;
    auto srv = co_await pysock::start_server(handler, "127.0.0.1", 0, config);
    pysock::stream_limits small;
    small.limit = 100;
    auto [reader, writer] =
        co_await pysock::open_connection("127.0.0.1", srv.sockname().port(), small);
    EXPECT_THROW(co_await reader.readuntil("\n"), pysock::limit_overrun_error);
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

TEST_P(streams, a_line_longer_than_the_read_chunk_arrives_whole_with_the_next_one) {
  auto body = []() -> task<void> {
    const std::string long_line = std::string(100 * 1024, 'L') + "\n";
    auto handler = [long_line](pysock::stream_reader r, pysock::stream_writer w) {
      return trickle(r, w, {long_line.substr(0, 40000), long_line.substr(40000), "short\n"});
    };
    pysock::server_config config;
    auto srv = co_await pysock::start_server(handler, "127.0.0.1", 0, config);
    pysock::stream_limits big;
    big.limit = 1024 * 1024;
    auto [reader, writer] =
        co_await pysock::open_connection("127.0.0.1", srv.sockname().port(), big);
    EXPECT_EQ(co_await reader.readline(), long_line);
    EXPECT_EQ(co_await reader.readline(), "short\n");
    EXPECT_EQ(co_await reader.read(), "");
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

// asyncio's transports keep no read buffer between reads; neither may ours:
// 10,000 idle connections with a 16 KiB buffer each would pin 160 MiB.
TEST_P(streams, idle_connections_hold_no_read_buffer) {
  if (test_support::under_address_sanitizer)
    GTEST_SKIP() << "AddressSanitizer replaces malloc, so mallinfo2() cannot see the heap";
  auto body = []() -> task<void> {
    constexpr int kPairs = 200;
    int echoed = 0;
    auto handler = [](pysock::stream_reader r, pysock::stream_writer w) -> task<void> {
      for (;;) {
        pysock::bytes data = co_await r.read(65536);
        if (data.empty()) break;
        w.write(data);
        co_await w.drain();
      }
      w.close();
      co_await w.wait_closed();
    };
    pysock::server_config config;
    config.backlog = 512;
    auto srv = co_await pysock::start_server(handler, "127.0.0.1", 0, config);
    const int port = srv.sockname().port();
    const std::size_t heap_before = ::mallinfo2().uordblks;
    std::vector<std::pair<pysock::stream_reader, pysock::stream_writer>> clients;
    for (int i = 0; i < kPairs; ++i) {
      auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", port);
      writer.write("hello\n");
      co_await writer.drain();
      EXPECT_EQ(co_await reader.readexactly(6), "hello\n");
      ++echoed;
      clients.emplace_back(std::move(reader), std::move(writer));
    }
    // Every server handler is now waiting in read(), every client is quiet.
    const std::size_t heap_after = ::mallinfo2().uordblks;
    EXPECT_EQ(echoed, kPairs);
    const std::size_t per_pair = (heap_after - std::min(heap_after, heap_before)) / kPairs;
    // Two 16 KiB read buffers per pair would be 32 KiB; the transports,
    // handler frames and sockets of both ends fit in a few KiB.
    EXPECT_LT(per_pair, 8 * 1024u) << "heap bytes per idle connection pair";
    std::cout << "heap per idle connection pair: " << per_pair << " bytes\n";
    for (auto& [reader, writer] : clients) writer.close();
    for (auto& [reader, writer] : clients) co_await writer.wait_closed();
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body(), 40s);
}

TEST_P(streams, a_writer_to_a_client_that_never_reads_stops_growing_at_the_high_water_mark) {
  auto body = []() -> task<void> {
    constexpr std::size_t kHigh = 64 * 1024;
    constexpr std::size_t kChunk = 16 * 1024;
    std::size_t max_buffered = 0;
    std::size_t written = 0;
    bool blocked = false;
    auto producer = [&](pysock::stream_reader, pysock::stream_writer w) -> task<void> {
      // Small kernel buffers so the wall is reached quickly.
      w.get_socket().setsockopt(pysock::so_sndbuf, 32 * 1024);
      const std::string chunk(kChunk, 'p');
      for (int i = 0; i < 4096; ++i) {  // 64 MiB at most: far beyond any buffer
        w.write(chunk);
        written += chunk.size();
        max_buffered = std::max(max_buffered, w.get_write_buffer_size());
        try {
          co_await pysock::wait_for(w.drain(), 300ms);
        } catch (const pysock::timeout_error&) {
          blocked = true;  // drain() is holding the producer back: that is the point
          break;
        }
      }
    };
    pysock::server_config config;
    config.limits.high_water = kHigh;
    auto srv = co_await pysock::start_server(producer, "127.0.0.1", 0, config);
    auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", srv.sockname().port());
    writer.get_socket().setsockopt(pysock::so_rcvbuf, 32 * 1024);
    for (int i = 0; i < 500 && !blocked; ++i) co_await pysock::sleep(10ms);
    EXPECT_TRUE(blocked) << "drain() never blocked although the client reads nothing";
    EXPECT_GT(max_buffered, kHigh) << "drain() only blocks above the high-water mark";
    EXPECT_LE(max_buffered, kHigh + kChunk) << "the buffer grew past high-water + one write";
    EXPECT_LT(written, std::size_t{64} << 20);
    srv.close();
    srv.close_clients();
    co_await srv.wait_closed();
  };
  run_bounded(body(), 30s);
}

TEST_P(streams, close_flushes_a_large_buffer_before_closing_and_wait_closed_waits_for_it) {
  auto body = []() -> task<void> {
    const std::string big(2 << 20, 'z');
    auto sender = [&big](pysock::stream_reader, pysock::stream_writer w) -> task<void> {
      w.write(big);  // mostly buffered
      w.close();     // must not drop what is buffered
      EXPECT_TRUE(w.is_closing());
      co_await w.wait_closed();
    };
    auto srv = co_await pysock::start_server(sender, "127.0.0.1", 0);
    auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", srv.sockname().port());
    const pysock::bytes got = co_await reader.read();
    EXPECT_EQ(got.size(), big.size());
    EXPECT_TRUE(got == big);
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

TEST_P(streams, peer_reset_raises_connection_reset_error_from_read) {
  auto body = []() -> task<void> {
    auto resetter = [](pysock::stream_reader, pysock::stream_writer w) -> task<void> {
      w.get_socket().setsockopt(pysock::so_linger, std::optional<std::chrono::seconds>(0s));
      co_await pysock::sleep(5ms);
      w.close();  // RST, thanks to SO_LINGER 0
    };
    auto srv = co_await pysock::start_server(resetter, "127.0.0.1", 0);
    auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", srv.sockname().port());
    EXPECT_THROW(co_await reader.read(100), pysock::connection_reset_error);
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

TEST_P(streams, drain_after_the_peer_is_gone_raises_a_connection_error) {
  auto body = []() -> task<void> {
    auto vanish = [](pysock::stream_reader, pysock::stream_writer w) -> task<void> {
      w.get_socket().setsockopt(pysock::so_linger, std::optional<std::chrono::seconds>(0s));
      w.close();
      co_return;
    };
    auto srv = co_await pysock::start_server(vanish, "127.0.0.1", 0);
    auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", srv.sockname().port());
    co_await pysock::sleep(20ms);  // the RST has arrived
    bool failed = false;
    const std::string chunk(64 * 1024, 'd');
    for (int i = 0; i < 50 && !failed; ++i) {
      try {
        writer.write(chunk);
        co_await writer.drain();
      } catch (const pysock::connection_error&) {
        failed = true;
      }
    }
    EXPECT_TRUE(failed) << "writing to a reset connection never reported an error";
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

TEST_P(streams, close_clients_cancels_running_handlers_and_wait_closed_returns) {
  auto body = []() -> task<void> {
    int cancelled = 0;
    int waiting = 0;
    auto stuck = [&cancelled, &waiting](pysock::stream_reader r,
                                        pysock::stream_writer) -> task<void> {
      ++waiting;
      try {
        co_await r.read(10);  // the client never sends
      } catch (const pysock::cancelled_error&) {
        ++cancelled;
        throw;
      }
    };
    auto srv = co_await pysock::start_server(stuck, "127.0.0.1", 0);
    auto c1 = co_await pysock::open_connection("127.0.0.1", srv.sockname().port());
    auto c2 = co_await pysock::open_connection("127.0.0.1", srv.sockname().port());
    for (int i = 0; i < 200 && waiting < 2; ++i) co_await pysock::sleep(5ms);
    EXPECT_EQ(waiting, 2);
    EXPECT_EQ(srv.active_connections(), 2u);
    srv.close();
    srv.close_clients();
    co_await srv.wait_closed();
    EXPECT_EQ(cancelled, 2);
    EXPECT_EQ(srv.active_connections(), 0u);
    // The server closed its side: the clients see EOF.
    EXPECT_EQ(co_await c1.first.read(), "");
    EXPECT_EQ(co_await c2.first.read(), "");
  };
  run_bounded(body());
}

TEST_P(streams, open_connection_to_a_closed_port_raises_connection_refused_error) {
  // Bound, never listening: no other socket can take the port meanwhile.
  const test_support::refused_port closed;
  const int port = closed.port;
  auto body = [port]() -> task<void> {
    EXPECT_THROW(co_await pysock::open_connection("127.0.0.1", port),
                 pysock::connection_refused_error);
  };
  run_bounded(body());
}

TEST_P(streams, unix_socket_streams_round_trip) {
  const std::string path = "/tmp/pysock-test-streams-" + std::to_string(::getpid()) + ".sock";
  ::unlink(path.c_str());
  auto body = [&path]() -> task<void> {
    auto srv = co_await pysock::start_unix_server(line_echo, path);
    auto [reader, writer] = co_await pysock::open_unix_connection(path);
    writer.write("over unix\n");
    EXPECT_EQ(co_await reader.readline(), "over unix\n");
    writer.close();
    co_await writer.wait_closed();
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
  ::unlink(path.c_str());
}

TEST_P(streams, a_thousand_concurrent_clients_each_verify_their_echoed_bytes) {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < 2100 && lim.rlim_max > lim.rlim_cur) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  if (lim.rlim_cur < 2100)
    GTEST_SKIP() << "RLIMIT_NOFILE " << lim.rlim_cur << " is too low for 1,000 connections";
  auto body = []() -> task<void> {
    constexpr int kClients = 1000;
    pysock::server_config config;
    config.backlog = 1024;
    auto srv = co_await pysock::start_server(line_echo, "127.0.0.1", 0, config);
    const int port = srv.sockname().port();
    auto client = [port](int id) -> task<bool> {
      auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", port);
      bool ok = true;
      for (int round = 0; round < 3; ++round) {
        const std::string line =
            "client " + std::to_string(id) + " round " + std::to_string(round) + " " +
            std::string(static_cast<std::size_t>((id * 7 + round) % 300), 'x') + "\n";
        writer.write(line);
        co_await writer.drain();
        ok = ok && (co_await reader.readline() == line);
      }
      writer.close();
      co_await writer.wait_closed();
      co_return ok;
    };
    std::vector<task<bool>> clients;
    for (int i = 0; i < kClients; ++i) clients.push_back(client(i));
    const auto results = co_await pysock::gather(std::move(clients));
    EXPECT_EQ(std::count(results.begin(), results.end(), true), kClients);
    srv.close();
    co_await srv.wait_closed();
    EXPECT_EQ(pysock::get_running_loop().active_descriptor_count(), 0u);
  };
  run_bounded(body(), 50s);
}

TEST_P(streams, serve_forever_runs_a_loop_per_thread_on_one_port_and_stops_on_request) {
  std::mutex mutex;
  std::set<std::thread::id> serving_threads;
  auto handler = [&](pysock::stream_reader r, pysock::stream_writer w) -> task<void> {
    {
      const std::lock_guard<std::mutex> lock(mutex);
      serving_threads.insert(std::this_thread::get_id());
    }
    return line_echo(std::move(r), std::move(w));
  };
  std::promise<int> port_promise;
  std::stop_source stop;
  pysock::serve_options options;
  options.threads = 2;
  options.stop_signals = {};  // this test stops it through the stop token
  options.stop = stop.get_token();
  options.on_listening = [&](const pysock::address& a) { port_promise.set_value(a.port()); };
  options.loop.backend = GetParam();
  std::thread server([&] { pysock::serve_forever(handler, "127.0.0.1", 0, options); });
  auto port_future = port_promise.get_future();
  ASSERT_EQ(port_future.wait_for(10s), std::future_status::ready);
  const int port = port_future.get();
  // Plain blocking clients from this thread: 64 connections spread by the
  // kernel's SO_REUSEPORT hash over both listeners.
  int echoed = 0;
  for (int i = 0; i < 64; ++i) {
    pysock::socket s = pysock::create_connection({"127.0.0.1", port}, std::chrono::nanoseconds(5s));
    const std::string line = "hello " + std::to_string(i) + "\n";
    s.sendall(line);
    std::string got;
    while (got.size() < line.size()) {
      pysock::bytes chunk = s.recv(100);
      if (chunk.empty()) break;
      got += chunk;
    }
    if (got == line) ++echoed;
  }
  stop.request_stop();
  server.join();
  EXPECT_EQ(echoed, 64);
  EXPECT_EQ(serving_threads.size(), 2u) << "both loops should have served connections";
}
