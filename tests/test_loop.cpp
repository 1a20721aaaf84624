// SPDX-License-Identifier: MIT
//
// pysock/loop.hpp: callbacks, timers, cross-thread calls, descriptor
// callbacks, signals, and the coroutine socket operations on real loopback
// sockets. The socket suite is parameterised over the backends; the io_uring
// instance skips (with the reason) where the loop fell back to epoll.
#include <pysock/loop.hpp>

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/checks.hpp"

using namespace std::chrono_literals;
using pysock::task;
using clock_type = std::chrono::steady_clock;

namespace {

// Every test body is bounded: a hang fails fast instead of at ctest's 60 s.
template <class T>
T run_bounded(pysock::event_loop& loop, task<T> body, std::chrono::seconds limit = 20s) {
  return loop.run_until_complete(pysock::wait_for(std::move(body), limit));
}

std::pair<pysock::socket, pysock::socket> nonblocking_pair() {
  auto ab_pair = pysock::socketpair();
  auto& a = ab_pair.first;
  auto& b = ab_pair.second;
  a.setblocking(false);
  b.setblocking(false);
  return {std::move(a), std::move(b)};
}

// Descriptors the kernel's epoll instance watches, from /proc/self/fdinfo.
std::vector<int> watched_descriptors(int epfd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(epfd));
  std::vector<int> fds;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("tfd:", 0) == 0) {
      std::istringstream fields(line.substr(4));
      int fd = -1;
      fields >> fd;
      fds.push_back(fd);
    }
  }
  return fds;
}

bool contains(const std::vector<int>& v, int x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

bool descriptor_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

// Whether the kernel still holds a wait of `loop` on `fd`: the epoll
// instance's interest list, or on io_uring any request not completed yet (the
// tests that ask have one descriptor in play).
bool kernel_waits_on(const pysock::event_loop& loop, int fd) {
  if (loop.backend() == pysock::loop_backend::io_uring) return loop.kernel_requests_in_flight() > 0;
  return contains(watched_descriptors(loop.backend_fileno()), fd);
}

std::string backend_name(const testing::TestParamInfo<pysock::loop_backend>& param_info) {
  return pysock::to_string(param_info.param);
}

}  // namespace

// Every suite below runs once per backend; the io_uring instance skips, with
// the reason, where the loop fell back to epoll (kernel, sandbox, or a build
// without liburing).
class on_backend : public testing::TestWithParam<pysock::loop_backend> {
 protected:
  void SetUp() override {
    testing::internal::CaptureStderr();  // the fallback line, if any
    loop_ = std::make_unique<pysock::event_loop>(pysock::loop_options{GetParam()});
    const std::string log = testing::internal::GetCapturedStderr();
    if (loop_->backend() != GetParam())
      GTEST_SKIP() << "the " << pysock::to_string(GetParam())
                   << " backend is not available here; the loop fell back to "
                   << pysock::to_string(loop_->backend()) << " (covered by the epoll instance)"
                   << (log.empty() ? std::string() : ": " + log);
  }
  pysock::event_loop& loop() { return *loop_; }
  std::unique_ptr<pysock::event_loop> loop_;
};

class loop_core : public on_backend {};
INSTANTIATE_TEST_SUITE_P(backends, loop_core,
                         testing::Values(pysock::loop_backend::epoll,
                                         pysock::loop_backend::io_uring),
                         backend_name);

// ---------------------------------------------------------------------------
// Callbacks and timers
// ---------------------------------------------------------------------------

TEST_P(loop_core, call_soon_runs_callbacks_in_fifo_order) {
  pysock::event_loop& loop = *loop_;
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) loop.call_soon([&order, i] { order.push_back(i); });
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST_P(loop_core, timers_fire_in_deadline_order_and_never_early) {
  pysock::event_loop& loop = *loop_;
  const auto start = clock_type::now();
  std::vector<std::pair<int, clock_type::duration>> fired;
  for (int ms : {40, 10, 30, 20, 20}) {
    loop.call_later(std::chrono::milliseconds(ms),
                    [&fired, ms, start] { fired.emplace_back(ms, clock_type::now() - start); });
  }
  loop.call_later(60ms, [&] { loop.stop(); });
  loop.run_forever();
  ASSERT_EQ(fired.size(), 5u);
  const std::vector<int> expected{10, 20, 20, 30, 40};
  for (std::size_t i = 0; i < fired.size(); ++i) {
    EXPECT_EQ(fired[i].first, expected[i]);
    EXPECT_GE(fired[i].second, std::chrono::milliseconds(fired[i].first)) << "a timer fired early";
    EXPECT_LT(fired[i].second, std::chrono::milliseconds(fired[i].first) + 2s)
        << "a timer fired far too late";
  }
}

TEST_P(loop_core, cancelled_timer_never_fires_and_leaves_the_heap) {
  pysock::event_loop& loop = *loop_;
  bool fired = false;
  auto h = loop.call_later(10ms, [&] { fired = true; });
  EXPECT_FALSE(h.cancelled());
  h.cancel();
  EXPECT_TRUE(h.cancelled());
  loop.call_later(30ms, [&] { loop.stop(); });
  loop.run_forever();
  EXPECT_FALSE(fired);
}

TEST_P(loop_core, call_at_uses_the_loop_clock_and_when_reports_it) {
  pysock::event_loop& loop = *loop_;
  const auto due = loop.time() + 15ms;
  clock_type::time_point ran_at{};
  auto h = loop.call_at(due, [&] {
    ran_at = clock_type::now();
    loop.stop();
  });
  EXPECT_EQ(h.when(), due);
  loop.run_forever();
  EXPECT_GE(ran_at, due);
}

TEST_P(loop_core, a_cancelled_call_soon_does_not_run) {
  pysock::event_loop& loop = *loop_;
  bool ran = false;
  auto h = loop.call_soon([&] { ran = true; });
  h.cancel();
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  EXPECT_FALSE(ran);
}

TEST_P(loop_core, stop_before_run_forever_runs_one_iteration) {
  pysock::event_loop& loop = *loop_;
  int runs = 0;
  loop.call_soon([&] { ++runs; });
  loop.stop();
  loop.run_forever();
  EXPECT_EQ(runs, 1);
  EXPECT_FALSE(loop.is_running());
}

TEST_P(loop_core, run_forever_while_running_is_an_error) {
  pysock::event_loop& loop = *loop_;
  bool threw = false;
  loop.call_soon([&] {
    try {
      loop.run_forever();
    } catch (const std::runtime_error&) {
      threw = true;
    }
    loop.stop();
  });
  loop.run_forever();
  EXPECT_TRUE(threw);
}

TEST(loop, get_running_loop_outside_a_loop_throws) {
  EXPECT_THROW(pysock::get_running_loop(), std::runtime_error);
}

TEST_P(loop_core, call_soon_threadsafe_from_another_thread_wakes_the_loop) {
  pysock::event_loop& loop = *loop_;
  std::atomic<bool> from_other_thread{false};
  std::thread::id ran_on;
  std::thread other([&] {
    std::this_thread::sleep_for(30ms);  // the loop is asleep in epoll_wait by now
    loop.call_soon_threadsafe([&] {
      ran_on = std::this_thread::get_id();
      from_other_thread = true;
      loop.stop();
    });
  });
  // The guard only matters if the wake-up is lost: then the test fails.
  auto guard = loop.call_later(10s, [&] { loop.stop(); });
  const auto start = clock_type::now();
  loop.run_forever();
  other.join();
  EXPECT_TRUE(from_other_thread);
  EXPECT_EQ(ran_on, std::this_thread::get_id()) << "the callback must run on the loop's thread";
  EXPECT_LT(clock_type::now() - start, 5s);
}

TEST_P(loop_core, many_threadsafe_calls_from_several_threads_all_run) {
  pysock::event_loop& loop = *loop_;
  constexpr int kThreads = 4;
  constexpr int kCalls = 2000;
  int count = 0;  // touched on the loop thread only
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kCalls; ++i)
        loop.call_soon_threadsafe([&] {
          if (++count == kThreads * kCalls) loop.stop();
        });
    });
  }
  auto guard = loop.call_later(20s, [&] { loop.stop(); });
  loop.run_forever();
  for (auto& t : threads) t.join();
  EXPECT_EQ(count, kThreads * kCalls);
}

// ---------------------------------------------------------------------------
// Descriptor callbacks
// ---------------------------------------------------------------------------

TEST_P(loop_core, add_reader_calls_back_while_readable_and_remove_reader_stops_it) {
  pysock::event_loop& loop = *loop_;
  auto ab_pair = nonblocking_pair();
  auto& a = ab_pair.first;
  auto& b = ab_pair.second;
  std::string got;
  loop.add_reader(a.fileno(), [&] {
    char buf[16];
    const auto n = ::recv(a.fileno(), buf, sizeof buf, 0);
    if (n > 0) got.append(buf, static_cast<std::size_t>(n));
    if (got == "ping") {
      EXPECT_TRUE(loop.remove_reader(a.fileno()));
      loop.stop();
    }
  });
  EXPECT_EQ(loop.active_descriptor_count(), 1u);
  loop.call_later(5ms, [&] { b.send("pi"); });
  loop.call_later(10ms, [&] { b.send("ng"); });
  auto guard = loop.call_later(10s, [&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(got, "ping");
  EXPECT_EQ(loop.active_descriptor_count(), 0u);
  EXPECT_FALSE(kernel_waits_on(loop, a.fileno()));
  EXPECT_FALSE(loop.remove_reader(a.fileno())) << "nothing left to remove";
}

TEST_P(loop_core, add_writer_fires_for_a_writable_socket) {
  pysock::event_loop& loop = *loop_;
  auto ab_pair = nonblocking_pair();
  auto& a = ab_pair.first;
  // ab_pair.second stays open so the socket has a peer.
  int calls = 0;
  loop.add_writer(a.fileno(), [&] {
    ++calls;
    loop.remove_writer(a.fileno());
    loop.stop();
  });
  auto guard = loop.call_later(10s, [&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(calls, 1);
}

TEST_P(loop_core, add_reader_on_a_regular_file_is_refused_as_epoll_does) {
  pysock::event_loop& loop = *loop_;
  const int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_THROW(loop.add_reader(fd, [] {}), pysock::permission_error);
  ::close(fd);
  EXPECT_EQ(loop.active_descriptor_count(), 0u);
}

// ---------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------

TEST_P(loop_core, sigint_handler_stops_the_loop_cleanly) {
  pysock::event_loop& loop = *loop_;
  int handled = 0;
  loop.add_signal_handler(SIGINT, [&] {
    ++handled;
    loop.stop();
  });
  loop.call_later(10ms, [] { ::kill(::getpid(), SIGINT); });
  auto guard = loop.call_later(10s, [&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(handled, 1);
  EXPECT_TRUE(loop.remove_signal_handler(SIGINT));
  EXPECT_FALSE(loop.remove_signal_handler(SIGINT));
  sigset_t now;
  ::pthread_sigmask(SIG_BLOCK, nullptr, &now);
  EXPECT_FALSE(sigismember(&now, SIGINT)) << "removing the handler must unblock the signal again";
}

TEST_P(loop_core, signal_handler_rejects_uncatchable_signals) {
  pysock::event_loop& loop = *loop_;
  EXPECT_THROW(loop.add_signal_handler(SIGKILL, [] {}), std::invalid_argument);
  EXPECT_THROW(loop.add_signal_handler(0, [] {}), std::invalid_argument);
}

// ---------------------------------------------------------------------------
// Backend selection
// ---------------------------------------------------------------------------

TEST(loop_backend, epoll_is_the_default) {
  ::unsetenv("PYSOCK_LOOP");
  pysock::event_loop loop;
  EXPECT_EQ(loop.backend(), pysock::loop_backend::epoll);
  EXPECT_STREQ(pysock::to_string(loop.backend()), "epoll");
}

TEST(loop_backend, an_unavailable_io_uring_falls_back_to_epoll_with_one_log_line) {
  ::setenv("PYSOCK_LOOP", "io_uring", 1);
  testing::internal::CaptureStderr();
  pysock::event_loop first;
  pysock::event_loop second(pysock::loop_options{pysock::loop_backend::io_uring});
  const std::string log = testing::internal::GetCapturedStderr();
  ::unsetenv("PYSOCK_LOOP");
  if (first.backend() == pysock::loop_backend::io_uring)
    GTEST_SKIP() << "io_uring is available and built here";
  EXPECT_EQ(first.backend(), pysock::loop_backend::epoll);
  EXPECT_EQ(second.backend(), pysock::loop_backend::epoll);
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1)
      << "exactly one line for any number of loops: " << log;
  EXPECT_NE(log.find("io_uring"), std::string::npos) << log;
}

TEST(loop_backend, an_unknown_pysock_loop_value_still_gives_a_working_loop) {
  ::setenv("PYSOCK_LOOP", "kqueue", 1);
  testing::internal::CaptureStderr();
  pysock::event_loop loop;
  const std::string log = testing::internal::GetCapturedStderr();
  ::unsetenv("PYSOCK_LOOP");
  EXPECT_EQ(loop.backend(), pysock::loop_backend::epoll);
  EXPECT_NE(log.find("PYSOCK_LOOP=kqueue"), std::string::npos) << log;
}

// ---------------------------------------------------------------------------
// Socket operations, on every backend
// ---------------------------------------------------------------------------

class loop_io : public on_backend {};
INSTANTIATE_TEST_SUITE_P(backends, loop_io,
                         testing::Values(pysock::loop_backend::epoll,
                                         pysock::loop_backend::io_uring),
                         backend_name);

TEST_P(loop_io, sock_sendall_and_sock_recv_into_move_a_megabyte_both_ways_waiting_for_space) {
  auto ab_pair = nonblocking_pair();
  auto& a = ab_pair.first;
  auto& b = ab_pair.second;
  const std::string payload = [] {
    std::string s(1 << 20, '\0');
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>('a' + i % 23);
    return s;
  }();
  auto& l = loop();
  auto sender = [&]() -> task<void> {
    co_await l.sock_sendall(a, payload);  // far more than the socket buffer: must wait
    a.shutdown(SHUT_WR);
  };
  auto receiver = [&]() -> task<std::string> {
    std::string got;
    std::vector<char> buf(4096);
    for (;;) {
      const std::size_t n = co_await l.sock_recv_into(b, buf);
      if (n == 0) break;
      got.append(buf.data(), n);
    }
    co_return got;
  };
  auto body = [&]() -> task<std::string> {
    auto [sent, got] = co_await pysock::gather(sender(), receiver());
    (void)sent;
    co_return got;
  };
  const std::string got = run_bounded(l, body());
  EXPECT_EQ(got.size(), payload.size());
  EXPECT_TRUE(got == payload) << "the bytes arrived altered";
  EXPECT_EQ(l.active_descriptor_count(), 0u);
}

// One descriptor, a reader and a writer waiting on it at once: an event that
// reports both directions must finish both waits (the dispatcher serves the
// writer first, then the reader, from the same event).
TEST_P(loop_io, one_socket_serves_a_waiting_reader_and_a_waiting_writer) {
  auto ab_pair = nonblocking_pair();
  auto& a = ab_pair.first;
  auto& b = ab_pair.second;
  const std::string payload(1 << 20, 'w');  // far more than the socket buffers hold
  auto& l = loop();
  bool writer_done = false;
  auto writer = [&]() -> task<void> {
    co_await l.sock_sendall(a, payload);
    writer_done = true;
  };
  auto reader = [&]() -> task<std::string> {
    std::vector<char> buf(64);
    const std::size_t n = co_await l.sock_recv_into(a, buf);
    co_return std::string(buf.data(), n);
  };
  auto peer = [&]() -> task<std::size_t> {
    // Drain b until the whole payload came, then answer on the same socket
    // the writer is blocked on.
    std::size_t total = 0;
    std::vector<char> buf(65536);
    while (total < payload.size()) total += co_await l.sock_recv_into(b, buf);
    co_await l.sock_sendall(b, std::string_view("reply"));
    co_return total;
  };
  auto body = [&]() -> task<std::pair<std::string, std::size_t>> {
    auto [w, got, total] = co_await pysock::gather(writer(), reader(), peer());
    (void)w;
    co_return std::pair{got, total};
  };
  const auto [got, total] = run_bounded(l, body());
  EXPECT_TRUE(writer_done);
  EXPECT_EQ(total, payload.size());
  EXPECT_EQ(got, "reply");
  EXPECT_EQ(l.active_descriptor_count(), 0u);
}

TEST_P(loop_io, sock_recv_returns_bytes_and_empty_at_eof) {
  auto ab_pair = nonblocking_pair();
  auto& a = ab_pair.first;
  auto& b = ab_pair.second;
  auto& l = loop();
  auto body = [&]() -> task<void> {
    l.call_later(5ms, [&] {
      a.send("hello");
      a.shutdown(SHUT_WR);
    });
    EXPECT_EQ(co_await l.sock_recv(b, 100), "hello");
    EXPECT_EQ(co_await l.sock_recv(b, 100), "");
  };
  run_bounded(l, body());
}

// Python's sock_recv(sock, n) makes its bytes when data has come; a
// coroutine waiting in ours must not hold n bytes either (epoll: readiness
// first; io_uring: the kernel picks a provided buffer when data arrives), or
// 10,000 idle connections waiting with n = 64 KiB would pin 640 MiB.
TEST_P(loop_io, coroutines_waiting_in_sock_recv_hold_no_buffer) {
  if (test_support::under_address_sanitizer)
    GTEST_SKIP() << "AddressSanitizer replaces malloc, so mallinfo2() cannot see the heap";
  constexpr int kWaiters = 200;
  auto& l = loop();
  std::vector<std::pair<pysock::socket, pysock::socket>> pairs;
  for (int i = 0; i < kWaiters; ++i) pairs.push_back(nonblocking_pair());
  auto body = [&]() -> task<void> {
    auto receive = [&l](pysock::socket& s) -> task<pysock::bytes> {
      co_return co_await l.sock_recv(s, 65536);
    };
    const std::size_t heap_before = ::mallinfo2().uordblks;
    std::vector<pysock::task_handle<pysock::bytes>> readers;
    readers.reserve(kWaiters);
    for (auto& pair : pairs) readers.push_back(l.create_task(receive(pair.second)));
    co_await pysock::sleep(5ms);  // every reader is waiting now
    const std::size_t heap_waiting = ::mallinfo2().uordblks;
    const std::size_t per_waiter = (heap_waiting - std::min(heap_waiting, heap_before)) / kWaiters;
    EXPECT_LT(per_waiter, 2048u) << "heap bytes per coroutine waiting in sock_recv(s, 65536)";
    // All at once: on io_uring more receives complete together than there
    // are provided buffers, and the rest must bring their own.
    for (std::size_t i = 0; i < pairs.size(); ++i)
      pairs[i].first.sendall("message " + std::to_string(i));
    for (std::size_t i = 0; i < readers.size(); ++i) {
      const pysock::bytes got = co_await readers[i];
      EXPECT_EQ(got, "message " + std::to_string(i));
      EXPECT_LT(got.capacity(), 1024u) << "sock_recv kept the n-byte buffer behind its result";
    }
  };
  run_bounded(l, body());
}

TEST_P(loop_io, sock_recv_larger_than_any_internal_buffer_and_datagrams_keep_their_bytes) {
  auto& l = loop();
  auto body = [&]() -> task<void> {
    // A stream read of 100,000 bytes: more than the loop's receive scratch
    // and than a provided buffer; the pieces put together are the payload.
    auto ab_pair = nonblocking_pair();
    std::string payload(300000, '\0');
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 31 % 251);
    auto writer = l.create_task(
        [](pysock::event_loop& lp, pysock::socket& s, const std::string& data) -> task<void> {
          co_await lp.sock_sendall(s, data);
          s.shutdown(SHUT_WR);
        }(l, ab_pair.first, payload));
    std::string got;
    for (;;) {
      const pysock::bytes piece = co_await l.sock_recv(ab_pair.second, 100000);
      if (piece.empty()) break;
      EXPECT_LE(piece.size(), 100000u);
      got += piece;
    }
    co_await writer;
    EXPECT_TRUE(got == payload) << "got " << got.size() << " bytes";

    // Datagrams: one sock_recv is one datagram, whole when n allows (30 KiB
    // is larger than a provided buffer), cut to n otherwise, as recv(2) does.
    pysock::socket a(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK);
    pysock::socket b(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK);
    a.bind({"127.0.0.1", 0});
    b.bind({"127.0.0.1", 0});
    a.connect(b.getsockname());
    const std::string big(30 * 1024, 'd');
    l.call_later(2ms, [&] {
      a.send(big);
      a.send("0123456789abcdef");
    });
    EXPECT_EQ(co_await l.sock_recv(b, 65536), big);
    EXPECT_EQ(co_await l.sock_recv(b, 10), "0123456789");
  };
  run_bounded(l, body());
}

TEST_P(loop_io, cancelling_a_task_blocked_in_sock_recv_frees_its_registration_and_closes_nothing) {
  auto ab_pair = nonblocking_pair();
  auto& a = ab_pair.first;
  auto& b = ab_pair.second;
  auto& l = loop();
  auto body = [&]() -> task<void> {
    auto reader =
        l.create_task([](pysock::event_loop& lp, pysock::socket& s) -> task<pysock::bytes> {
          co_return co_await lp.sock_recv(s, 100);
        }(l, b));
    co_await pysock::sleep(5ms);  // it is waiting in epoll now
    EXPECT_EQ(l.active_descriptor_count(), 1u);
    EXPECT_TRUE(kernel_waits_on(l, b.fileno()));
    EXPECT_TRUE(reader.cancel());
    EXPECT_THROW(co_await reader, pysock::cancelled_error);
    EXPECT_EQ(l.active_descriptor_count(), 0u);
    EXPECT_FALSE(kernel_waits_on(l, b.fileno()))
        << "the kernel still watches the descriptor of a cancelled wait";
    EXPECT_TRUE(descriptor_open(b.fileno())) << "cancellation closed a socket it does not own";
    EXPECT_FALSE(b.closed());
    // The socket is as good as before: a new wait gets the data.
    l.call_later(2ms, [&] { a.send("after"); });
    EXPECT_EQ(co_await l.sock_recv(b, 100), "after");
  };
  run_bounded(l, body());
}

TEST_P(loop_io, peer_reset_surfaces_as_connection_reset_error_in_the_coroutine) {
  auto& l = loop();
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  listener.setblocking(false);
  const int port = listener.getsockname().port();
  auto body = [&]() -> task<void> {
    pysock::socket client(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
    co_await l.sock_connect(client, {"127.0.0.1", port});
    auto [conn, peer] = co_await l.sock_accept(listener);
    EXPECT_EQ(peer.port(), client.getsockname().port());
    // SO_LINGER 0 makes close() send RST instead of FIN.
    l.call_later(5ms, [&client] {
      client.setsockopt(pysock::so_linger, std::optional<std::chrono::seconds>(0s));
      client.close();
    });
    EXPECT_THROW(co_await l.sock_recv(conn, 100), pysock::connection_reset_error);
  };
  run_bounded(l, body());
}

TEST_P(loop_io, sock_connect_to_a_closed_port_raises_connection_refused_error) {
  auto& l = loop();
  // Bound, never listening: no other socket can take the port meanwhile.
  const test_support::refused_port closed;
  const int port = closed.port;
  auto body = [&]() -> task<void> {
    pysock::socket client(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
    try {
      co_await l.sock_connect(client, {"127.0.0.1", port});
      ADD_FAILURE() << "connect to a closed port succeeded";
    } catch (const pysock::connection_refused_error& e) {
      EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)), std::string::npos)
          << e.what();
    }
  };
  run_bounded(l, body());
}

TEST_P(loop_io, sock_connect_resolves_a_host_name_off_the_loop_thread) {
  auto& l = loop();
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  listener.setblocking(false);
  const int port = listener.getsockname().port();
  auto body = [&]() -> task<void> {
    pysock::socket client(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
    // The loop keeps ticking while getaddrinfo runs elsewhere.
    int ticks = 0;
    auto ticker = l.call_soon([&] { ++ticks; });
    co_await l.sock_connect(client, {"localhost", port});
    auto [conn, peer] = co_await l.sock_accept(listener);
    EXPECT_EQ(client.getpeername().port(), port);
    EXPECT_GE(ticks, 1);
  };
  run_bounded(l, body());
}

TEST_P(loop_io, accept_and_connect_over_ipv6_loopback) {
  auto& l = loop();
  pysock::server_options v6;
  v6.family = AF_INET6;
  pysock::socket listener = [&] {
    try {
      return pysock::create_server({"::1", 0}, v6);
    } catch (const pysock::os_error&) {
      return pysock::socket::closed_socket();
    }
  }();
  if (listener.closed()) GTEST_SKIP() << "no IPv6 loopback in this sandbox";
  listener.setblocking(false);
  const int port = listener.getsockname().port();
  auto body = [&]() -> task<void> {
    pysock::socket client(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK);
    co_await l.sock_connect(client, {"::1", port});
    auto [conn, peer] = co_await l.sock_accept(listener);
    EXPECT_EQ(peer.family(), AF_INET6);
    EXPECT_FALSE(conn.getblocking()) << "sock_accept must give a non-blocking socket";
    co_await l.sock_sendall(client, "six");
    EXPECT_EQ(co_await l.sock_recv(conn, 10), "six");
  };
  run_bounded(l, body());
}

TEST_P(loop_io, udp_sock_sendto_and_sock_recvfrom) {
  auto& l = loop();
  pysock::socket a(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK);
  pysock::socket b(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK);
  a.bind({"127.0.0.1", 0});
  b.bind({"127.0.0.1", 0});
  auto body = [&]() -> task<void> {
    l.call_later(5ms, [&] { a.sendto("datagram", b.getsockname()); });
    auto [data, from] = co_await l.sock_recvfrom(b, 100);
    EXPECT_EQ(data, "datagram");
    EXPECT_EQ(from, a.getsockname());
    EXPECT_EQ(co_await l.sock_sendto(b, "reply", from), 5u);
    char buf[16];
    auto [n, from2] = co_await l.sock_recvfrom_into(a, pysock::mutable_buffer(buf, sizeof buf));
    EXPECT_EQ(std::string(buf, n), "reply");
    EXPECT_EQ(from2, b.getsockname());
  };
  run_bounded(l, body());
}

TEST_P(loop_io, a_descriptor_number_reused_after_close_is_waited_on_correctly) {
  auto& l = loop();
  auto body = [&]() -> task<void> {
    int first_fd = -1;
    {
      auto ab_pair = nonblocking_pair();
      auto& a = ab_pair.first;
      auto& b = ab_pair.second;
      first_fd = b.fileno();
      l.call_later(2ms, [&a] { a.send("one"); });
      EXPECT_EQ(co_await l.sock_recv(b, 10), "one");  // registered, fired
    }                                                 // both closed behind the loop's back
    auto cd_pair = nonblocking_pair();
    auto& c = cd_pair.first;
    auto& d = cd_pair.second;
    const int reused = (d.fileno() == first_fd || c.fileno() == first_fd) ? first_fd : -1;
    pysock::socket& target = d.fileno() == first_fd ? d : c;
    pysock::socket& other = d.fileno() == first_fd ? c : d;
    EXPECT_EQ(reused, first_fd) << "the kernel did not reuse the number; the test proves less";
    l.call_later(5ms, [&other] { other.send("two"); });
    EXPECT_EQ(co_await l.sock_recv(target, 10), "two");
  };
  run_bounded(l, body(), 10s);
}

// The epoll flags of `fd` in the loop's interest list (0 if absent).
std::uint32_t watched_events(int epfd, int fd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(epfd));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("tfd:", 0) != 0) continue;
    std::istringstream fields(line.substr(4));
    int tfd = -1;
    std::string key;
    std::string value;
    fields >> tfd >> key >> value;  // "tfd: 7 events: 80002019 data: ..."
    if (tfd == fd && key == "events:")
      return static_cast<std::uint32_t>(std::stoul(value, nullptr, 16));
  }
  return 0;
}

TEST_P(loop_io, a_finished_wait_keeps_the_socket_registered_edge_triggered_until_it_is_closed) {
  auto& l = loop();
  if (l.backend() != pysock::loop_backend::epoll)
    GTEST_SKIP() << "io_uring keeps no registration between requests";
  auto ab_pair = nonblocking_pair();
  auto& a = ab_pair.first;
  auto& b = ab_pair.second;
  const int fd = b.fileno();
  auto body = [&]() -> task<void> {
    l.call_later(2ms, [&a] { a.send("one"); });
    EXPECT_EQ(co_await l.sock_recv(b, 10), "one");
    // Nothing waits any more, but the kernel keeps the registration for the
    // next wait: both directions, edge-triggered.
    EXPECT_EQ(l.active_descriptor_count(), 0u);
    const std::uint32_t events = watched_events(l.backend_fileno(), fd);
    EXPECT_NE(events & EPOLLET, 0u) << std::hex << events;
    EXPECT_NE(events & EPOLLIN, 0u) << std::hex << events;
    EXPECT_NE(events & EPOLLOUT, 0u) << std::hex << events;
    l.call_later(2ms, [&a] { a.send("two"); });
    EXPECT_EQ(co_await l.sock_recv(b, 10), "two");
  };
  run_bounded(l, body());
  b.close();
  EXPECT_FALSE(kernel_waits_on(l, fd)) << "the kernel forgets a closed socket by itself";
}

TEST_P(loop_io, a_short_read_waits_for_the_next_bytes_and_a_full_read_takes_what_is_left) {
  auto ab_pair = nonblocking_pair();
  auto& a = ab_pair.first;
  auto& b = ab_pair.second;
  auto& l = loop();
  auto body = [&]() -> task<std::string> {
    std::string got;
    char small[4];
    a.sendall("0123456789");
    // A full buffer says nothing about the queue: the next call reads again
    // at once (4 + 4 + 2 bytes, the last one short).
    for (int i = 0; i < 3; ++i) {
      const std::size_t n =
          co_await l.sock_recv_into(b, pysock::mutable_buffer(small, sizeof small));
      got.append(small, n);
    }
    EXPECT_EQ(got, "0123456789");
    // After the short read the loop waits without trying: bytes that come
    // later must still wake it, however many times.
    for (const char* part : {"ab", "cd", "ef"}) {
      const std::string text = part;
      l.call_later(2ms, [&a, text] { a.send(text); });
      char buf[64];
      const std::size_t n = co_await l.sock_recv_into(b, pysock::mutable_buffer(buf, sizeof buf));
      got.append(buf, n);
    }
    // Bytes that arrived while no one waited are there at the next call.
    a.send("gh");
    co_await pysock::sleep(2ms);
    char buf[64];
    const std::size_t n = co_await l.sock_recv_into(b, pysock::mutable_buffer(buf, sizeof buf));
    got.append(buf, n);
    co_return got;
  };
  EXPECT_EQ(run_bounded(l, body()), "0123456789abcdefgh");
}

// A bulk transfer over TCP arrives a segment at a time, so receives into a
// 64 KiB buffer come back full or large but short, taking the receive paths
// in turn (on io_uring: a request completing with part of the buffer, a
// plain recv() after a full one, provided buffers for sock_recv): every byte
// still arrives in order, for sock_recv_into and sock_recv alike, and small
// messages afterwards are each received whole.
TEST_P(loop_io, a_bulk_stream_in_large_short_receives_then_small_messages_arrive_intact) {
  auto& l = loop();
  pysock::socket listener(AF_INET, SOCK_STREAM);
  listener.bind({"127.0.0.1", 0});
  listener.listen();
  pysock::socket writer = pysock::create_connection({"127.0.0.1", listener.getsockname().port()});
  auto accepted = listener.accept();
  pysock::socket& reader = accepted.first;
  reader.setblocking(false);
  constexpr std::size_t total = 8u << 20;
  const auto byte_at = [](std::size_t i) { return static_cast<char>((i * 7 + i / 4093) % 251); };
  // A plain thread writes in uneven pieces (blocking socket), then ten
  // small messages, each after the loop has echoed the previous one's size.
  std::thread peer([&] {
    std::string piece;
    std::size_t sent = 0;
    for (std::size_t k = 0; sent < total; ++k) {
      const std::size_t n = std::min<std::size_t>(total - sent, 9000 + (k * 7919) % 60000);
      piece.resize(n);
      for (std::size_t i = 0; i < n; ++i) piece[i] = byte_at(sent + i);
      writer.sendall(piece);
      sent += n;
      // Paced, so that most receives find one piece queued, not many.
      if (k % 4 != 3) std::this_thread::sleep_for(100us);
    }
    char ack[8];
    for (int m = 0; m < 10; ++m) {
      if (writer.recv_into(pysock::mutable_buffer(ack, 1)) != 1) return;
      writer.sendall("small-" + std::to_string(m));
    }
    writer.shutdown(SHUT_WR);
  });
  auto body = [&]() -> task<std::vector<std::string>> {
    std::vector<char> buf(64 * 1024);
    std::size_t got = 0;
    std::size_t mismatches = 0;
    bool use_recv = false;
    while (got < total) {
      std::size_t n;
      if (use_recv) {
        const pysock::bytes data = co_await l.sock_recv(reader, std::min(buf.size(), total - got));
        n = data.size();
        std::copy(data.begin(), data.end(), buf.begin());
      } else {
        n = co_await l.sock_recv_into(
            reader, pysock::mutable_buffer(buf.data(), std::min(buf.size(), total - got)));
      }
      if (n == 0) break;
      for (std::size_t i = 0; i < n; ++i) mismatches += buf[i] != byte_at(got + i);
      got += n;
      use_recv = !use_recv && got > total / 2;  // the second half alternates the two calls
    }
    EXPECT_EQ(got, total);
    EXPECT_EQ(mismatches, 0u);
    std::vector<std::string> smalls;
    for (int m = 0; m < 10; ++m) {
      co_await l.sock_sendall(reader, "k");
      const std::string expected = "small-" + std::to_string(m);
      std::string message;
      while (message.size() < expected.size()) {
        const pysock::bytes part = co_await l.sock_recv(reader, 64 * 1024);
        if (part.empty()) co_return smalls;
        message += part;
      }
      smalls.push_back(message);
    }
    const pysock::bytes end = co_await l.sock_recv(reader, 64 * 1024);
    EXPECT_TRUE(end.empty()) << "after the peer's shutdown the receive is EOF";
    co_return smalls;
  };
  std::vector<std::string> smalls;
  try {
    smalls = run_bounded(l, body(), 30s);
  } catch (...) {
    reader.close();  // unblocks the peer thread before it is joined
    peer.join();
    throw;
  }
  peer.join();
  ASSERT_EQ(smalls.size(), 10u);
  for (int m = 0; m < 10; ++m)
    EXPECT_EQ(smalls[static_cast<std::size_t>(m)], "small-" + std::to_string(m));
}

TEST_P(loop_io, a_detached_descriptor_closed_behind_the_loops_back_is_not_trusted_again) {
  auto& l = loop();
  auto body = [&]() -> task<void> {
    // `a` stays open to the end: the only release pysock sees is detach().
    auto ab_pair = nonblocking_pair();
    auto& a = ab_pair.first;
    auto& b = ab_pair.second;
    l.call_later(2ms, [&a] { a.send("one"); });
    EXPECT_EQ(co_await l.sock_recv(b, 10), "one");  // registered, kept
    const int first_fd = b.detach();
    ::close(first_fd);  // a raw close pysock never sees
    auto cd_pair = nonblocking_pair();
    pysock::socket& target = cd_pair.second.fileno() == first_fd ? cd_pair.second : cd_pair.first;
    pysock::socket& other = cd_pair.second.fileno() == first_fd ? cd_pair.first : cd_pair.second;
    EXPECT_EQ(target.fileno(), first_fd)
        << "the kernel did not reuse the number; the test proves less";
    l.call_later(5ms, [&other] { other.send("two"); });
    EXPECT_EQ(co_await l.sock_recv(target, 10), "two");
  };
  run_bounded(l, body(), 10s);
}

TEST_P(loop_io, a_blocking_socket_is_refused) {
  auto ab_pair = pysock::socketpair();
  auto& a = ab_pair.first;
  // ab_pair.second: the peer, unused.
  EXPECT_THROW((void)loop().sock_recv(a, 10), std::invalid_argument);
}

TEST_P(loop_io, two_coroutines_reading_one_socket_is_an_error) {
  auto ab_pair = nonblocking_pair();
  auto& a = ab_pair.first;
  auto& b = ab_pair.second;
  auto& l = loop();
  auto body = [&]() -> task<void> {
    auto first =
        l.create_task([](pysock::event_loop& lp, pysock::socket& s) -> task<pysock::bytes> {
          co_return co_await lp.sock_recv(s, 10);
        }(l, b));
    co_await pysock::sleep(2ms);
    EXPECT_THROW(co_await l.sock_recv(b, 10), std::runtime_error);
    a.send("x");
    EXPECT_EQ(co_await first, "x");
  };
  run_bounded(l, body());
}

TEST_P(loop_io, a_thousand_concurrent_clients_each_get_their_own_bytes_back) {
  // 1,000 clients + 1,000 server sockets + the loop's own: raise the soft
  // descriptor limit to the hard one if it is lower.
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < 2100 && lim.rlim_max > lim.rlim_cur) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  if (lim.rlim_cur < 2100)
    GTEST_SKIP() << "RLIMIT_NOFILE " << lim.rlim_cur << " is too low for 1,000 connections";
  auto& l = loop();
  pysock::server_options backlog;
  backlog.backlog = 1024;
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0}, backlog);
  listener.setblocking(false);
  const int port = listener.getsockname().port();
  constexpr int kClients = 1000;

  auto echo = [](pysock::event_loop& lp, pysock::socket conn) -> task<void> {
    std::array<char, 512> buf;
    for (;;) {
      const std::size_t n = co_await lp.sock_recv_into(conn, buf);
      if (n == 0) co_return;
      co_await lp.sock_sendall(conn, pysock::const_buffer(buf.data(), n));
    }
  };
  auto serve = [&](int count) -> task<void> {
    std::vector<pysock::task_handle<void>> handlers;
    for (int i = 0; i < count; ++i) {
      auto [conn, peer] = co_await l.sock_accept(listener);
      handlers.push_back(l.create_task(echo(l, std::move(conn))));
    }
    for (auto& h : handlers) co_await h;
  };
  auto client = [&](int id) -> task<bool> {
    pysock::socket s(AF_INET, SOCK_STREAM | SOCK_NONBLOCK);
    co_await l.sock_connect(s, {"127.0.0.1", port});
    const std::string message = "client " + std::to_string(id) + " says " +
                                std::string(static_cast<std::size_t>(id % 97), '*');
    co_await l.sock_sendall(s, message);
    s.shutdown(SHUT_WR);
    std::string got;
    for (;;) {
      pysock::bytes chunk = co_await l.sock_recv(s, 256);
      if (chunk.empty()) break;
      got += chunk;
    }
    co_return got == message;
  };
  auto body = [&]() -> task<void> {
    std::vector<task<bool>> clients;
    for (int i = 0; i < kClients; ++i) clients.push_back(client(i));
    auto server_task = l.create_task(serve(kClients));
    const std::vector<bool> ok = co_await pysock::gather(std::move(clients));
    co_await server_task;
    EXPECT_EQ(std::count(ok.begin(), ok.end(), true), kClients)
        << "some clients got wrong bytes back";
  };
  run_bounded(l, body(), 50s);
  EXPECT_EQ(l.active_descriptor_count(), 0u);
}

TEST_P(loop_io, run_in_thread_returns_the_value_and_rethrows_exceptions) {
  auto& l = loop();
  auto body = [&]() -> task<void> {
    const auto loop_thread = std::this_thread::get_id();
    const auto worker = co_await l.run_in_thread([] { return std::this_thread::get_id(); });
    EXPECT_NE(worker, loop_thread);
    EXPECT_THROW(co_await l.run_in_thread([]() -> int { throw std::domain_error("in thread"); }),
                 std::domain_error);
  };
  run_bounded(l, body());
}

TEST_P(loop_io, a_cancel_racing_a_finished_receive_never_loses_the_bytes) {
  // The bytes arrive and the cancel comes in the same iteration, before the
  // loop has seen the completion. epoll withdraws the wait (the bytes stay in
  // the socket); io_uring may find the receive already done (the task gets
  // the bytes and sees the cancellation at its next wait). Either way they
  // are somewhere.
  auto ab_pair = nonblocking_pair();
  auto& a = ab_pair.first;
  auto& b = ab_pair.second;
  auto& l = loop();
  auto body = [&]() -> task<void> {
    auto reader =
        l.create_task([](pysock::event_loop& lp, pysock::socket& s) -> task<pysock::bytes> {
          co_return co_await lp.sock_recv(s, 100);
        }(l, b));
    co_await pysock::sleep(5ms);  // waiting in the kernel now
    a.send("hello");
    EXPECT_TRUE(reader.cancel());
    std::string got;
    bool withdrawn = false;
    try {
      got = co_await reader;
    } catch (const pysock::cancelled_error&) {
      withdrawn = true;
    }
    if (withdrawn) got = co_await l.sock_recv(b, 100);  // still in the socket
    EXPECT_EQ(got, "hello");
  };
  run_bounded(l, body());
  EXPECT_EQ(l.kernel_requests_in_flight(), 0u);
}

TEST_P(loop_io, a_completion_seen_while_cancelling_another_wait_is_delivered) {
  // Withdrawing a request on io_uring waits for the kernel and may consume
  // other completions meanwhile: they must still reach their coroutines.
  auto first = nonblocking_pair();
  auto second = nonblocking_pair();
  auto& l = loop();
  auto recv_task = [](pysock::event_loop& lp, pysock::socket& s) -> task<pysock::bytes> {
    co_return co_await lp.sock_recv(s, 100);
  };
  auto body = [&]() -> task<void> {
    auto one = l.create_task(recv_task(l, first.second));
    auto two = l.create_task(recv_task(l, second.second));
    co_await pysock::sleep(5ms);
    first.first.send("for one");
    EXPECT_TRUE(two.cancel());
    EXPECT_THROW(co_await two, pysock::cancelled_error);
    EXPECT_EQ(co_await one, "for one");
  };
  run_bounded(l, body());
  EXPECT_EQ(l.active_descriptor_count(), 0u);
  EXPECT_EQ(l.kernel_requests_in_flight(), 0u);
}

TEST_P(loop_io, a_pending_receive_whose_frame_is_destroyed_with_the_loop_takes_no_bytes) {
  // The frame (and the buffer inside it) goes away while the receive waits
  // in the kernel: the request must be withdrawn first, or the kernel would
  // later write into freed memory and swallow the bytes (AddressSanitizer
  // would report the first, this test the second).
  auto ab_pair = nonblocking_pair();
  auto& a = ab_pair.first;
  auto& b = ab_pair.second;
  {
    pysock::event_loop& l = loop();
    auto waiter = [](pysock::event_loop& lp, pysock::socket& s) -> task<std::size_t> {
      std::array<char, 64> in_frame{};
      co_return co_await lp.sock_recv_into(s, in_frame);
    };
    auto h = l.create_task(waiter(l, b));
    l.run_until_complete([]() -> task<void> { co_await pysock::sleep(5ms); }());
    EXPECT_FALSE(h.done());
    loop_.reset();  // destroys the pending frame
  }
  a.send("still here");
  pollfd p{b.fileno(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  EXPECT_EQ(b.recv(100), "still here");
}

TEST_P(loop_io, wait_for_a_receive_that_times_out_leaves_the_socket_usable) {
  auto ab_pair = nonblocking_pair();
  auto& a = ab_pair.first;
  auto& b = ab_pair.second;
  auto& l = loop();
  auto receive = [](pysock::event_loop& lp, pysock::socket& s) -> task<pysock::bytes> {
    co_return co_await lp.sock_recv(s, 100);
  };
  auto body = [&]() -> task<void> {
    for (int i = 0; i < 50; ++i) {
      EXPECT_THROW(co_await pysock::wait_for(receive(l, b), 1ms), pysock::timeout_error);
    }
    EXPECT_EQ(l.kernel_requests_in_flight(), 0u);
    a.send("finally");
    EXPECT_EQ(co_await pysock::wait_for(receive(l, b), 5s), "finally");
  };
  run_bounded(l, body());
}
