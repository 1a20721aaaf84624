// SPDX-License-Identifier: MIT
//
// TLS streams on the event loop (pysock/ssl.hpp): open_connection(ssl=),
// start_server(ssl=), start_tls(), on both loop backends, against each other,
// `openssl s_server` and CPython's asyncio; failed handshakes, ragged EOFs,
// back-pressure, the close_notify exchange at close (ssl_shutdown_timeout).
// Loopback only.

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "interop/ssl_support.hpp"
#include "pysock/ssl.hpp"
#include "support/checks.hpp"

namespace {

using namespace std::chrono_literals;
using pysock::task;

pysock::loop_backend current_backend = pysock::loop_backend::epoll;

template <class T>
T run_bounded(task<T> body, std::chrono::seconds limit = 30s) {
  return pysock::run(pysock::wait_for(std::move(body), limit),
                     pysock::loop_options{current_backend});
}

using test_support::contains;
using test_support::count_open_descriptors;

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

class ssl_streams : public testing::TestWithParam<pysock::loop_backend> {
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
    if (!ssl_test::have_program("openssl"))
      GTEST_SKIP() << "the openssl command is not installed (it makes the test certificates)";
    ASSERT_TRUE(certs.ok());
  }
  pysock::ssl_context client_context() const {
    return pysock::create_default_context(pysock::ssl_purpose::server_auth, certs.pem("ca"));
  }
  pysock::ssl_context server_context(const std::string& name = "localhost") const {
    pysock::ssl_context ctx(pysock::protocol_tls_server);
    ctx.load_cert_chain(certs.pem(name), certs.key(name));
    return ctx;
  }

  ssl_test::cert_dir certs;
};

INSTANTIATE_TEST_SUITE_P(backends, ssl_streams,
                         testing::Values(pysock::loop_backend::epoll,
                                         pysock::loop_backend::io_uring),
                         [](const testing::TestParamInfo<pysock::loop_backend>& param_info) {
                           return std::string(pysock::to_string(param_info.param));
                         });

// Waits on a thread (bounded) until `flag` is set by the loop side.
bool wait_flag(const std::atomic<bool>& flag, std::chrono::seconds limit = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!flag.load() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  return flag.load();
}

// Waits on the loop (bounded) until `flag` is set by a thread or a task.
task<bool> until(const std::atomic<bool>& flag) {
  for (int i = 0; i < 2000 && !flag.load(); ++i) co_await pysock::sleep(10ms);
  co_return flag.load();
}

// What a TCP peer reads straight from the socket once the TLS side is done
// with it: the bytes still coming, then EOF (true) or an error (false).
struct raw_tail {
  std::size_t bytes = 0;
  bool eof = false;
  std::string error;
};
raw_tail read_raw_until_eof(pysock::socket& sock) {
  raw_tail tail;
  try {
    sock.settimeout(20s);
    for (int i = 0; i < 10000; ++i) {
      const pysock::bytes got = sock.recv(65536);
      if (got.empty()) {
        tail.eof = true;
        break;
      }
      tail.bytes += got.size();
    }
  } catch (const std::exception& e) {
    tail.error = e.what();
  }
  return tail;
}

// A blocking pysock::ssl_socket server on a thread for the close tests:
// accepts one client, handshakes (a ragged EOF is an error, so a "" from
// recv() is a real close_notify), then runs `script` with it.
class tls_peer {
 public:
  tls_peer(const pysock::ssl_context& ctx, std::function<void(pysock::ssl_socket&)> script)
      : listener_(pysock::create_server({"127.0.0.1", 0})),
        port_(listener_.getsockname().port()),
        thread_([this, ctx, script = std::move(script)] {
          try {
            listener_.settimeout(20s);
            auto [conn, peer] = listener_.accept();
            conn.settimeout(20s);
            pysock::wrap_options options;
            options.suppress_ragged_eofs = false;
            pysock::ssl_socket tls = ctx.wrap_socket(std::move(conn), true, {}, options);
            script(tls);
          } catch (const std::exception& e) {
            ADD_FAILURE() << "TLS peer: " << e.what();
          }
        }) {}
  tls_peer(const tls_peer&) = delete;
  tls_peer& operator=(const tls_peer&) = delete;
  ~tls_peer() { join(); }
  int port() const { return port_; }
  void join() {
    if (thread_.joinable()) thread_.join();
    listener_.close();
  }

 private:
  pysock::socket listener_;
  int port_;
  std::thread thread_;
};

}  // namespace

TEST_P(ssl_streams, open_connection_with_ssl_echoes_through_start_server_with_ssl) {
  auto body = [this]() -> task<void> {
    auto srv = co_await pysock::start_server(line_echo, "127.0.0.1", 0, server_context());
    const int port = srv.sockname().port();
    // server_hostname defaults to the host given: "localhost" is in the
    // certificate, so this verifies both the chain and the name.
    auto [reader, writer] = co_await pysock::open_connection("localhost", port, client_context());
    const pysock::ssl_object* tls = pysock::get_ssl_object(writer);
    EXPECT_NE(tls, nullptr);
    if (tls != nullptr) {
      EXPECT_EQ(tls->version().value_or(""), "TLSv1.3");
      EXPECT_EQ(tls->server_hostname(), "localhost");
      const auto cert = tls->getpeercert();
      EXPECT_TRUE(cert.has_value());
      if (cert) {
        EXPECT_EQ(cert->subject_attribute("commonName"), "localhost");
      }
    }
    EXPECT_FALSE(writer.can_write_eof());
    EXPECT_THROW(writer.write_eof(), std::logic_error);

    writer.write("first line\nsecond ");
    writer.write("line\nthird|part");
    co_await writer.drain();
    EXPECT_EQ(co_await reader.readline(), "first line\n");
    EXPECT_EQ(co_await reader.readuntil("\n"), "second line\n");
    writer.write("\n");
    EXPECT_EQ(co_await reader.readexactly(6), "third|");
    EXPECT_EQ(co_await reader.readline(), "part\n");
    // 1 MiB through the echo: many TLS records each way.
    std::string big;
    for (int i = 0; i < 16384; ++i) big += "line " + std::to_string(i) + " of the big echo...\n";
    writer.write(big);
    co_await writer.drain();
    std::string back = co_await reader.readexactly(big.size());
    EXPECT_TRUE(back == big) << "the big echo came back different";
    writer.close();
    co_await writer.wait_closed();
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

TEST_P(ssl_streams, a_plain_stream_reports_no_ssl_object) {
  auto body = []() -> task<void> {
    auto srv = co_await pysock::start_server(line_echo, "127.0.0.1", 0);
    auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", srv.sockname().port());
    EXPECT_EQ(pysock::get_ssl_object(writer), nullptr);
    EXPECT_TRUE(writer.can_write_eof());
    writer.close();
    co_await writer.wait_closed();
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

TEST_P(ssl_streams, the_server_sends_close_notify_and_the_client_reads_eof) {
  auto body = [this]() -> task<void> {
    auto greeter = [](pysock::stream_reader, pysock::stream_writer w) -> task<void> {
      w.write("bye\n");
      w.close();  // close_notify, then the socket
      co_await w.wait_closed();
    };
    auto srv = co_await pysock::start_server(greeter, "127.0.0.1", 0, server_context());
    auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", srv.sockname().port(),
                                                             client_context(), "localhost");
    EXPECT_EQ(co_await reader.read(), "bye\n");
    EXPECT_TRUE(reader.at_eof());
    writer.close();
    co_await writer.wait_closed();
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

TEST_P(ssl_streams, open_connection_with_ssl_talks_to_openssl_s_server) {
  ssl_test::child server({"openssl", "s_server", "-accept", "127.0.0.1:0", "-cert",
                          certs.pem("localhost"), "-key", certs.key("localhost"), "-rev"});
  ASSERT_TRUE(server.started());
  const std::optional<int> accepting = ssl_test::s_server_port(server);
  ASSERT_TRUE(accepting) << server.output();
  const int port = *accepting;
  auto body = [this, port]() -> task<void> {
    auto [reader, writer] =
        co_await pysock::open_connection("127.0.0.1", port, client_context(), "localhost");
    // -rev: s_server answers every line reversed.
    writer.write("hello pysock\n");
    co_await writer.drain();
    EXPECT_EQ(co_await reader.readline(), "kcosyp olleh\n");
    writer.write("second\n");
    EXPECT_EQ(co_await reader.readline(), "dnoces\n");
    writer.close();
    co_await writer.wait_closed();
  };
  run_bounded(body());
}

TEST_P(ssl_streams, cpython_asyncio_client_against_start_server_with_ssl) {
  if (!ssl_test::have_program("python3")) GTEST_SKIP() << "python3 is not installed";
  auto body = [this]() -> task<void> {
    int handled = 0;
    auto counted = [&handled](pysock::stream_reader r, pysock::stream_writer w) -> task<void> {
      ++handled;
      return line_echo(std::move(r), std::move(w));
    };
    auto srv = co_await pysock::start_server(counted, "127.0.0.1", 0, server_context());
    const std::string script = ssl_test::interop_dir() + "/tls_stream_peer.py";
    const std::string port = std::to_string(srv.sockname().port());
    ssl_test::child client({"python3", script, certs.pem("ca"), port});
    EXPECT_TRUE(client.started());
    auto wait = [&client] { return client.wait(std::chrono::seconds(25)); };
    const int status = co_await pysock::get_running_loop().run_in_thread(std::move(wait));
    EXPECT_EQ(status, 0) << client.output();
    EXPECT_TRUE(contains(client.output(), "GOT hello from asyncio\n")) << client.output();
    EXPECT_TRUE(contains(client.output(), "GOT second line\n")) << client.output();
    EXPECT_TRUE(contains(client.output(), "VERSION TLSv1.3\n")) << client.output();
    EXPECT_TRUE(contains(client.output(), "DONE")) << client.output();
    EXPECT_EQ(handled, 1);
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

TEST_P(ssl_streams, an_unknown_ca_raises_ssl_cert_verification_error_and_the_handler_never_runs) {
  auto body = [this]() -> task<void> {
    int handled = 0;
    auto counted = [&handled](pysock::stream_reader r, pysock::stream_writer w) -> task<void> {
      ++handled;
      return line_echo(std::move(r), std::move(w));
    };
    auto srv = co_await pysock::start_server(counted, "127.0.0.1", 0, server_context("rogue"));
    const int port = srv.sockname().port();
    bool raised = false;
    try {
      auto streams = co_await pysock::open_connection("localhost", port, client_context());
      ADD_FAILURE() << "the handshake succeeded with a certificate from an unknown CA";
    } catch (const pysock::ssl_cert_verification_error& e) {
      raised = true;
      EXPECT_EQ(e.verify_code(), 20) << e.what();  // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
      EXPECT_TRUE(contains(e.what(), "CERTIFICATE_VERIFY_FAILED")) << e.what();
      EXPECT_TRUE(contains(e.what(), "do_handshake(127.0.0.1:")) << e.what();
    }
    EXPECT_TRUE(raised);
    // The host name is checked too: a valid chain for another name.
    auto wrong =
        co_await pysock::start_server(counted, "127.0.0.1", 0, server_context("wronghost"));
    raised = false;
    try {
      auto streams =
          co_await pysock::open_connection("localhost", wrong.sockname().port(), client_context());
      ADD_FAILURE() << "the handshake succeeded with a certificate for another host";
    } catch (const pysock::ssl_cert_verification_error& e) {
      raised = true;
      EXPECT_EQ(e.verify_message(), "Hostname mismatch, certificate is not valid for 'localhost'.");
    }
    EXPECT_TRUE(raised);
    for (int i = 0; i < 100 && srv.active_connections() + wrong.active_connections() > 0; ++i)
      co_await pysock::sleep(10ms);
    EXPECT_EQ(handled, 0);
    srv.close();
    wrong.close();
    co_await srv.wait_closed();
    co_await wrong.wait_closed();
  };
  run_bounded(body());
}

TEST_P(ssl_streams, a_plaintext_client_is_dropped_and_the_server_keeps_serving_tls) {
  auto body = [this]() -> task<void> {
    int handled = 0;
    auto counted = [&handled](pysock::stream_reader r, pysock::stream_writer w) -> task<void> {
      ++handled;
      return line_echo(std::move(r), std::move(w));
    };
    auto srv = co_await pysock::start_server(counted, "127.0.0.1", 0, server_context());
    const int port = srv.sockname().port();
    {
      auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", port);
      writer.write("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
      co_await writer.drain();
      // The server answers with (at most) a TLS alert and closes: no HTTP.
      pysock::bytes answer;
      try {
        answer = co_await reader.read();
      } catch (const pysock::connection_reset_error&) {
        // also a fair way to be dropped
      }
      EXPECT_FALSE(contains(answer, "HTTP")) << answer;
      EXPECT_TRUE(reader.at_eof() || answer.empty());
      writer.close();
      co_await writer.wait_closed();
    }
    EXPECT_EQ(handled, 0);
    auto [reader, writer] = co_await pysock::open_connection("localhost", port, client_context());
    writer.write("still serving\n");
    EXPECT_EQ(co_await reader.readline(), "still serving\n");
    EXPECT_EQ(handled, 1);
    writer.close();
    co_await writer.wait_closed();
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

TEST_P(ssl_streams, a_peer_closing_without_close_notify_gives_eof_and_incomplete_read) {
  // A blocking pysock::ssl_socket server on a thread: close() sends no
  // close_notify (as Python's), so the client meets a ragged EOF.
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  const int port = listener.getsockname().port();
  const pysock::ssl_context server_ctx = server_context();
  std::thread server([&listener, server_ctx] {
    try {
      listener.settimeout(20s);
      auto [conn, peer] = listener.accept();
      conn.settimeout(20s);
      pysock::ssl_socket tls = server_ctx.wrap_socket(std::move(conn), true);
      tls.sendall("partial");
      tls.close();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "server: " << e.what();
    }
  });
  auto body = [this, port]() -> task<void> {
    auto [reader, writer] =
        co_await pysock::open_connection("127.0.0.1", port, client_context(), "localhost");
    bool raised = false;
    try {
      co_await reader.readexactly(100);
    } catch (const pysock::incomplete_read_error& e) {
      raised = true;
      EXPECT_EQ(e.partial, "partial");
    }
    EXPECT_TRUE(raised);
    EXPECT_TRUE(reader.at_eof());
    EXPECT_EQ(co_await reader.read(), "");
    writer.close();
    co_await writer.wait_closed();
  };
  run_bounded(body());
  server.join();
}

TEST_P(ssl_streams, a_silent_server_ends_the_handshake_with_connection_aborted_error) {
  auto body = [this]() -> task<void> {
    // A plain server that accepts and never answers the ClientHello.
    auto silent = [](pysock::stream_reader r, pysock::stream_writer w) -> task<void> {
      co_await r.read();  // until the client gives up
      w.close();
      co_await w.wait_closed();
    };
    auto srv = co_await pysock::start_server(silent, "127.0.0.1", 0);
    bool raised = false;
    try {
      auto streams = co_await pysock::open_connection("127.0.0.1", srv.sockname().port(),
                                                      client_context(), "localhost", {}, 200ms);
      ADD_FAILURE() << "a handshake with a silent server completed";
    } catch (const pysock::connection_aborted_error& e) {
      raised = true;
      EXPECT_TRUE(contains(e.what(), "SSL handshake is taking longer than 0.2 seconds"))
          << e.what();
    }
    EXPECT_TRUE(raised);
    srv.close();
    srv.close_clients();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

TEST_P(ssl_streams, a_client_that_is_not_tls_at_all_fails_open_connection_with_ssl_error) {
  auto body = [this]() -> task<void> {
    auto http = [](pysock::stream_reader r, pysock::stream_writer w) -> task<void> {
      co_await r.read(1);
      w.write("HTTP/1.0 400 Bad Request\r\n\r\n");
      w.close();
      co_await w.wait_closed();
    };
    auto srv = co_await pysock::start_server(http, "127.0.0.1", 0);
    bool raised = false;
    try {
      auto streams = co_await pysock::open_connection("127.0.0.1", srv.sockname().port(),
                                                      client_context(), "localhost");
      ADD_FAILURE() << "a handshake with an HTTP server completed";
    } catch (const pysock::ssl_error& e) {
      raised = true;
      EXPECT_TRUE(contains(e.what(), "WRONG_VERSION_NUMBER") ||
                  contains(e.what(), "PACKET_LENGTH_TOO_LONG"))
          << e.what();
    }
    EXPECT_TRUE(raised);
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

TEST_P(ssl_streams, drain_holds_back_a_tls_writer_whose_peer_does_not_read) {
  auto body = [this]() -> task<void> {
    constexpr std::size_t kHigh = 64 * 1024;
    constexpr std::size_t kChunk = 16 * 1024;
    std::size_t max_buffered = 0;
    std::size_t written = 0;
    bool blocked = false;
    auto producer = [&](pysock::stream_reader, pysock::stream_writer w) -> task<void> {
      w.get_socket().setsockopt(pysock::so_sndbuf, 32 * 1024);
      const std::string chunk(kChunk, 'p');
      for (int i = 0; i < 4096; ++i) {
        w.write(chunk);
        written += chunk.size();
        max_buffered = std::max(max_buffered, w.get_write_buffer_size());
        try {
          task<void> draining = w.drain();
          co_await pysock::wait_for(std::move(draining), 300ms);
        } catch (const pysock::timeout_error&) {
          blocked = true;
          break;
        }
      }
    };
    pysock::server_config config;
    config.limits.high_water = kHigh;
    auto srv = co_await pysock::start_server(producer, "127.0.0.1", 0, server_context(), config);
    auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", srv.sockname().port(),
                                                             client_context(), "localhost");
    writer.get_socket().setsockopt(pysock::so_rcvbuf, 32 * 1024);
    for (int i = 0; i < 500 && !blocked; ++i) co_await pysock::sleep(10ms);
    EXPECT_TRUE(blocked) << "drain() never blocked although the client reads nothing";
    EXPECT_GT(max_buffered, kHigh);
    // The buffer holds ciphertext: one chunk's records add a few dozen bytes.
    EXPECT_LE(max_buffered, kHigh + kChunk + 256);
    EXPECT_LT(written, std::size_t{64} << 20);
    // What was written arrives intact once the client reads.
    pysock::bytes first = co_await reader.readexactly(kChunk);
    EXPECT_EQ(first, std::string(kChunk, 'p'));
    writer.close();
    co_await writer.wait_closed();
    srv.close();
    srv.close_clients();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

TEST_P(ssl_streams, start_tls_upgrades_a_plain_stream_in_place) {
  auto body = [this]() -> task<void> {
    const pysock::ssl_context server_ctx = server_context();
    auto starttls = [server_ctx](pysock::stream_reader r, pysock::stream_writer w) -> task<void> {
      pysock::bytes command = co_await r.readline();
      if (command != "STARTTLS\n") co_return;
      w.write("GO\n");
      task<void> upgrade = pysock::start_tls(w, server_ctx, "", true);
      co_await std::move(upgrade);
      task<void> echo = line_echo(std::move(r), std::move(w));
      co_await std::move(echo);
    };
    auto srv = co_await pysock::start_server(starttls, "127.0.0.1", 0);
    auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", srv.sockname().port());
    writer.write("STARTTLS\n");
    EXPECT_EQ(co_await reader.readline(), "GO\n");
    EXPECT_EQ(pysock::get_ssl_object(writer), nullptr);
    co_await pysock::start_tls(writer, client_context(), "localhost");
    EXPECT_NE(pysock::get_ssl_object(writer), nullptr);
    writer.write("secret\n");
    EXPECT_EQ(co_await reader.readline(), "secret\n");
    bool raised = false;
    try {
      co_await pysock::start_tls(writer, client_context(), "localhost");
    } catch (const std::runtime_error&) {
      raised = true;
    }
    EXPECT_TRUE(raised) << "a second start_tls on one stream";
    writer.close();
    co_await writer.wait_closed();
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}

// --- ssl_shutdown_timeout: close() waits for the peer's close_notify ----------

TEST_P(ssl_streams, close_waits_for_the_peers_close_notify_before_closing_the_socket) {
  std::atomic<bool> got_close_notify{false};
  std::atomic<bool> answer{false};
  std::string first_line;
  raw_tail tail;
  tls_peer peer(server_context(), [&](pysock::ssl_socket& tls) {
    first_line = tls.recv(100);
    // "" is the client's close_notify (ragged EOFs throw here).
    EXPECT_EQ(tls.recv(1024), "");
    got_close_notify = true;
    if (!wait_flag(answer)) return;
    // unwrap() answers with our close_notify; the client reads it and only
    // then closes TCP, so the plain socket sees a clean EOF, not a reset.
    pysock::socket plain = tls.unwrap();
    tail = read_raw_until_eof(plain);
  });
  const int port = peer.port();
  auto body = [&, port]() -> task<void> {
    auto [reader, writer] =
        co_await pysock::open_connection("127.0.0.1", port, client_context(), "localhost");
    writer.write("hello\n");
    co_await writer.drain();
    writer.close();
    EXPECT_TRUE(writer.is_closing());
    pysock::task_handle<void> closing = pysock::create_task(writer.wait_closed());
    EXPECT_TRUE(co_await until(got_close_notify)) << "the peer never saw close_notify";
    // The peer has not answered yet and the default timeout is 30 s: the
    // stream must still be open and wait_closed() pending.
    EXPECT_FALSE(closing.done()) << "wait_closed() returned before the peer's close_notify";
    EXPECT_FALSE(writer.get_socket().closed());
    answer = true;
    co_await closing;
    EXPECT_TRUE(writer.get_socket().closed());
    EXPECT_EQ(co_await reader.read(), "");
  };
  run_bounded(body());
  peer.join();
  EXPECT_EQ(first_line, "hello\n");
  EXPECT_TRUE(tail.eof) << "the peer's socket did not see a clean EOF: " << tail.error;
  EXPECT_EQ(tail.bytes, 0u);
}

TEST_P(ssl_streams, close_gives_up_on_a_silent_peer_after_ssl_shutdown_timeout) {
  const int fds_before = count_open_descriptors();
  std::atomic<bool> client_closed{false};
  raw_tail tail;
  {
    tls_peer peer(server_context(), [&](pysock::ssl_socket& tls) {
      // Reads nothing after the handshake and keeps the connection open
      // until the client says it has closed; then looks at the raw socket.
      if (!wait_flag(client_closed)) return;
      tail = read_raw_until_eof(tls.sock());
      tls.close();
    });
    const int port = peer.port();
    auto body = [&, port]() -> task<void> {
      auto [reader, writer] = co_await pysock::open_connection(
          "127.0.0.1", port, client_context(), "localhost", {},
          pysock::default_ssl_handshake_timeout, std::chrono::milliseconds(200));
      writer.close();
      // asyncio: connection_lost(TimeoutError('SSL shutdown timed out')),
      // which wait_closed() raises.
      bool timed_out = false;
      try {
        co_await writer.wait_closed();
      } catch (const pysock::timeout_error& e) {
        timed_out = true;
        EXPECT_TRUE(contains(e.what(), "SSL shutdown timed out")) << e.what();
      }
      EXPECT_TRUE(timed_out) << "wait_closed() returned normally after the shutdown timeout";
      EXPECT_TRUE(writer.get_socket().closed());
      EXPECT_EQ(co_await reader.read(), "");
      client_closed = true;
    };
    run_bounded(body());
    client_closed = true;  // also when the body failed: never leave the peer waiting
    peer.join();
  }
  EXPECT_TRUE(tail.eof) << "the silent peer's socket did not see EOF: " << tail.error;
  EXPECT_GT(tail.bytes, 0u) << "no close_notify record came before the EOF";
  EXPECT_EQ(count_open_descriptors(), fds_before);
}

TEST_P(ssl_streams, data_the_peer_sends_after_close_is_dropped_and_the_close_stays_clean) {
  constexpr std::size_t kLate = 256 * 1024;
  bool sent = false;
  raw_tail tail;
  tls_peer peer(server_context(), [&](pysock::ssl_socket& tls) {
    EXPECT_EQ(tls.recv(1024), "");  // the client's close_notify
    // TLS lets this side go on writing after the other's close_notify.
    tls.sendall(std::string(kLate, 'd'));
    sent = true;
    pysock::socket plain = tls.unwrap();
    // A client that closed with the data unread would make its kernel send
    // a reset: a clean EOF here means it read and dropped everything.
    tail = read_raw_until_eof(plain);
  });
  const int port = peer.port();
  auto body = [this, port]() -> task<void> {
    auto [reader, writer] =
        co_await pysock::open_connection("127.0.0.1", port, client_context(), "localhost");
    writer.close();
    co_await writer.wait_closed();
    EXPECT_TRUE(writer.get_socket().closed());
    // None of the late data reaches the reader.
    EXPECT_EQ(co_await reader.read(), "");
    EXPECT_TRUE(reader.at_eof());
  };
  run_bounded(body());
  peer.join();
  EXPECT_TRUE(sent);
  EXPECT_TRUE(tail.eof) << "the peer's socket did not see a clean EOF: " << tail.error;
}

TEST_P(ssl_streams, a_loop_that_ends_during_the_close_wait_closes_the_socket) {
  const int fds_before = count_open_descriptors();
  std::atomic<bool> loop_gone{false};
  raw_tail tail;
  {
    tls_peer peer(server_context(), [&](pysock::ssl_socket& tls) {
      if (!wait_flag(loop_gone)) return;
      tail = read_raw_until_eof(tls.sock());
      tls.close();
    });
    const int port = peer.port();
    auto body = [this, port]() -> task<void> {
      auto [reader, writer] =
          co_await pysock::open_connection("127.0.0.1", port, client_context(), "localhost");
      writer.close();
      // The silent peer and the 30 s default keep the wait going; the body
      // ends without wait_closed(), and so does the loop.
      co_await pysock::sleep(20ms);
      EXPECT_FALSE(writer.get_socket().closed()) << "no close wait was started";
    };
    run_bounded(body());
    loop_gone = true;
    peer.join();
  }
  EXPECT_TRUE(tail.eof) << "the socket stayed open after the loop ended: " << tail.error;
  EXPECT_GT(tail.bytes, 0u) << "no close_notify record came before the EOF";
  EXPECT_EQ(count_open_descriptors(), fds_before);
}

TEST_P(ssl_streams, a_reader_waiting_at_close_gets_eof_and_the_socket_closes_without_waiting) {
  std::atomic<bool> client_closed{false};
  raw_tail tail;
  tls_peer peer(server_context(), [&](pysock::ssl_socket& tls) {
    if (!wait_flag(client_closed)) return;
    tail = read_raw_until_eof(tls.sock());
    tls.close();
  });
  const int port = peer.port();
  auto body = [&, port]() -> task<void> {
    // A shutdown timeout far beyond the run's bound: waiting would fail the test.
    auto [reader, writer] = co_await pysock::open_connection(
        "127.0.0.1", port, client_context(), "localhost", {}, pysock::default_ssl_handshake_timeout,
        std::chrono::minutes(10));
    pysock::task_handle<pysock::bytes> reading = pysock::create_task(reader.read());
    co_await pysock::sleep(20ms);  // the reader is now waiting for data
    EXPECT_FALSE(reading.done());
    writer.close();
    EXPECT_EQ(co_await reading, "");
    co_await writer.wait_closed();
    EXPECT_TRUE(writer.get_socket().closed());
    client_closed = true;
  };
  run_bounded(body(), 20s);
  client_closed = true;
  peer.join();
  // The close_notify went out, then the socket closed at once: EOF, or a
  // reset when a late session ticket was still unread in the client's
  // kernel buffer (nothing reads once the socket is closed).
  EXPECT_GT(tail.bytes, 0u) << "no close_notify record came before the end";
  EXPECT_TRUE(tail.eof || contains(tail.error, "reset")) << tail.error;
}

TEST_P(ssl_streams, a_server_handlers_close_waits_for_the_clients_close_notify) {
  auto body = [this]() -> task<void> {
    std::atomic<bool> handler_closed{false};
    auto greeter = [&handler_closed](pysock::stream_reader, pysock::stream_writer w) -> task<void> {
      w.write("bye\n");
      w.close();
      co_await w.wait_closed();
      handler_closed = true;
    };
    auto srv = co_await pysock::start_server(greeter, "127.0.0.1", 0, server_context());
    auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", srv.sockname().port(),
                                                             client_context(), "localhost");
    EXPECT_EQ(co_await reader.read(), "bye\n");
    EXPECT_EQ(co_await reader.read(), "");  // the server's close_notify
    co_await pysock::sleep(20ms);
    // The client has not answered: the handler is still in wait_closed().
    EXPECT_FALSE(handler_closed.load());
    writer.close();  // our close_notify; we already have the server's, so no wait
    co_await writer.wait_closed();
    EXPECT_TRUE(co_await until(handler_closed)) << "the handler's wait_closed() never returned";
    srv.close();
    co_await srv.wait_closed();

    // The same with a client that never answers: the server's
    // ssl_shutdown_timeout ends the handler's wait.
    std::atomic<bool> silent_closed{false};
    std::atomic<bool> silent_timed_out{false};
    auto greeter2 = [&silent_closed, &silent_timed_out](pysock::stream_reader,
                                                        pysock::stream_writer w) -> task<void> {
      w.write("bye\n");
      w.close();
      try {
        co_await w.wait_closed();
      } catch (const pysock::timeout_error&) {
        silent_timed_out = true;  // asyncio's TimeoutError('SSL shutdown timed out')
      }
      silent_closed = true;
    };
    auto quick = co_await pysock::start_server(greeter2, "127.0.0.1", 0, server_context(), {},
                                               pysock::default_ssl_handshake_timeout,
                                               std::chrono::milliseconds(200));
    auto [r2, w2] = co_await pysock::open_connection("127.0.0.1", quick.sockname().port(),
                                                     client_context(), "localhost");
    EXPECT_EQ(co_await r2.read(), "bye\n");
    EXPECT_TRUE(co_await until(silent_closed)) << "the handler's wait_closed() never returned";
    EXPECT_TRUE(silent_timed_out.load()) << "wait_closed() did not raise timeout_error";
    // The server closed its socket: the client sees the close_notify, then EOF.
    EXPECT_EQ(co_await r2.read(), "");
    EXPECT_TRUE(r2.at_eof());
    w2.close();
    co_await w2.wait_closed();
    quick.close();
    co_await quick.wait_closed();
  };
  run_bounded(body());
}

TEST_P(ssl_streams, start_tls_passes_ssl_shutdown_timeout_on) {
  std::atomic<bool> client_closed{false};
  raw_tail tail;
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  const int port = listener.getsockname().port();
  const pysock::ssl_context server_ctx = server_context();
  std::thread peer([&] {
    try {
      listener.settimeout(20s);
      auto [conn, addr] = listener.accept();
      conn.settimeout(20s);
      if (conn.recv(100) != "STARTTLS\n") return;
      conn.sendall("GO\n");
      pysock::ssl_socket tls = server_ctx.wrap_socket(std::move(conn), true);
      if (!wait_flag(client_closed)) return;  // silent after the handshake
      tail = read_raw_until_eof(tls.sock());
    } catch (const std::exception& e) {
      ADD_FAILURE() << "STARTTLS peer: " << e.what();
    }
  });
  auto body = [&, port]() -> task<void> {
    auto [reader, writer] = co_await pysock::open_connection("127.0.0.1", port);
    writer.write("STARTTLS\n");
    EXPECT_EQ(co_await reader.readline(), "GO\n");
    task<void> upgrade =
        pysock::start_tls(writer, client_context(), "localhost", false,
                          pysock::default_ssl_handshake_timeout, std::chrono::milliseconds(200));
    co_await std::move(upgrade);
    writer.close();
    // The silent peer: the 200 ms given to start_tls end the wait.
    EXPECT_THROW(co_await writer.wait_closed(), pysock::timeout_error);
    EXPECT_TRUE(writer.get_socket().closed());
    client_closed = true;
  };
  try {
    run_bounded(body());
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what();
  }
  client_closed = true;
  peer.join();
  EXPECT_TRUE(tail.eof) << tail.error;
  EXPECT_GT(tail.bytes, 0u);
}

TEST_P(ssl_streams, a_timeout_that_is_not_positive_is_invalid_argument_as_asyncio_value_error) {
  auto body = [this]() -> task<void> {
    auto expect_invalid = [](auto&& call, const std::string& message) {
      bool raised = false;
      try {
        call();
      } catch (const std::invalid_argument& e) {
        raised = true;
        EXPECT_EQ(std::string(e.what()), message);
      }
      EXPECT_TRUE(raised) << message;
    };
    expect_invalid(
        [this] {
          auto t = pysock::open_connection("127.0.0.1", 1, client_context(), "localhost", {},
                                           pysock::default_ssl_handshake_timeout,
                                           std::chrono::milliseconds(0));
        },
        "ssl_shutdown_timeout should be a positive number, got 0");
    expect_invalid(
        [this] {
          auto t = pysock::start_server(line_echo, "127.0.0.1", 0, server_context(), {},
                                        std::chrono::milliseconds(-1500));
        },
        "ssl_handshake_timeout should be a positive number, got -1.5");
    auto srv = co_await pysock::start_server(line_echo, "127.0.0.1", 0);
    // Named, not a structured binding: clang 14 cannot capture those.
    std::pair<pysock::stream_reader, pysock::stream_writer> streams =
        co_await pysock::open_connection("127.0.0.1", srv.sockname().port());
    pysock::stream_reader& reader = streams.first;
    pysock::stream_writer& writer = streams.second;
    expect_invalid(
        [this, &writer] {
          auto t = pysock::start_tls(writer, client_context(), "localhost", false,
                                     pysock::default_ssl_handshake_timeout,
                                     std::chrono::milliseconds(-1));
        },
        "ssl_shutdown_timeout should be a positive number, got -0.001");
    // Refused before anything changed: still a plain stream that works.
    EXPECT_EQ(pysock::get_ssl_object(writer), nullptr);
    writer.write("plain\n");
    EXPECT_EQ(co_await reader.readline(), "plain\n");
    writer.close();
    co_await writer.wait_closed();
    srv.close();
    co_await srv.wait_closed();
  };
  run_bounded(body());
}
