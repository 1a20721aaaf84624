// SPDX-License-Identifier: MIT
//
// TLS streams on the event loop (pysock/ssl.hpp): open_connection(ssl=),
// start_server(ssl=), start_tls(), on both loop backends, against each other,
// `openssl s_server` and CPython's asyncio; failed handshakes, ragged EOFs,
// back-pressure. Loopback only.
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "interop/ssl_support.hpp"
#include "pysock/ssl.hpp"

namespace {

using namespace std::chrono_literals;
using pysock::task;

pysock::loop_backend current_backend = pysock::loop_backend::epoll;

template <class T>
T run_bounded(task<T> body, std::chrono::seconds limit = 30s) {
  return pysock::run(pysock::wait_for(std::move(body), limit),
                     pysock::loop_options{current_backend});
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

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

int free_port() {
  pysock::socket probe;
  probe.bind({"127.0.0.1", 0});
  return probe.getsockname().port();
}

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
  const int port = free_port();
  ssl_test::child server({"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port),
                          "-cert", certs.pem("localhost"), "-key", certs.key("localhost"), "-rev"});
  ASSERT_TRUE(server.started());
  ASSERT_TRUE(server.read_until("ACCEPT")) << server.output();
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
