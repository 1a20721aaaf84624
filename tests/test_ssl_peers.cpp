// SPDX-License-Identifier: MIT
//
// pysock/ssl.hpp against real peers on loopback: `openssl s_server` and
// `openssl s_client`, and CPython's ssl module (tests/interop/ssl_peer.py)
// as client and server, blocking, with timeouts and non-blocking.
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "interop/ssl_support.hpp"
#include "pysock/ssl.hpp"

namespace {

using namespace std::chrono_literals;

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

class ssl_peer_test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ssl_test::have_program("openssl")) GTEST_SKIP() << "the openssl command is not installed";
    ASSERT_TRUE(certs.ok());
  }
  void need_python() {
    if (!ssl_test::have_program("python3")) GTEST_SKIP() << "python3 is not installed";
  }
  pysock::ssl_context client_context() const {
    pysock::ssl_context ctx(pysock::protocol_tls_client);
    ctx.load_verify_locations(certs.pem("ca"));
    return ctx;
  }
  pysock::ssl_context server_context() const {
    pysock::ssl_context ctx(pysock::protocol_tls_server);
    ctx.load_cert_chain(certs.pem("localhost"), certs.key("localhost"));
    return ctx;
  }
  std::string peer_script() const { return ssl_test::interop_dir() + "/ssl_peer.py"; }

  ssl_test::cert_dir certs;
};

TEST_F(ssl_peer_test, pysock_client_fetches_the_status_page_of_openssl_s_server) {
  ssl_test::child server({"openssl", "s_server", "-accept", "127.0.0.1:0", "-cert",
                          certs.pem("localhost"), "-key", certs.key("localhost"), "-www",
                          "-naccept", "1", "-alpn", "http/1.1"});
  ASSERT_TRUE(server.started());
  const std::optional<int> port = ssl_test::s_server_port(server);
  ASSERT_TRUE(port) << server.output();
  pysock::ssl_context ctx = client_context();
  ctx.set_alpn_protocols({"http/1.1"});
  pysock::ssl_socket tls =
      ctx.wrap_socket(pysock::create_connection({"127.0.0.1", *port}, pysock::timeout_type(20s)),
                      false, "localhost");
  EXPECT_EQ(tls.selected_alpn_protocol(), "http/1.1");
  tls.sendall("GET / HTTP/1.0\r\n\r\n");
  std::string page;
  for (int i = 0; i < 1000; ++i) {
    const pysock::bytes part = tls.recv(16384);
    if (part.empty()) break;
    page += part;
  }
  EXPECT_TRUE(page.starts_with("HTTP/1.0 200 ok")) << page.substr(0, 200);
  EXPECT_TRUE(contains(page, "Ciphers supported in s_server binary")) << page.substr(0, 400);
  ASSERT_TRUE(tls.cipher());
  EXPECT_TRUE(contains(page, tls.cipher()->name)) << "s_server names our cipher";
  // (s_server -www keeps running after the page; the child is killed at the end.)
}

TEST_F(ssl_peer_test, openssl_s_client_verifies_a_pysock_server_and_gets_its_echo) {
  pysock::ssl_context ctx = server_context();
  ctx.set_alpn_protocols({"h2", "http/1.1"});
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  listener.settimeout(20s);
  const int port = listener.getsockname().port();
  ssl_test::child client({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port),
                          "-CAfile", certs.pem("ca"), "-servername", "localhost",
                          "-verify_hostname", "localhost", "-verify_return_error", "-alpn",
                          "http/1.1", "-brief", "-ign_eof"});
  ASSERT_TRUE(client.started());
  auto accepted = listener.accept();
  accepted.first.settimeout(20s);
  pysock::ssl_socket tls = ctx.wrap_socket(std::move(accepted.first), true);
  EXPECT_EQ(tls.server_hostname(), "localhost") << "the SNI name s_client sent";
  EXPECT_EQ(tls.selected_alpn_protocol(), "http/1.1");
  client.write_stdin("ping from s_client\n");
  std::string line;
  for (int i = 0; i < 100 && !line.ends_with("\n"); ++i) {
    const pysock::bytes part = tls.recv(1024);
    if (part.empty()) break;
    line += part;
  }
  EXPECT_EQ(line, "ping from s_client\n");
  tls.sendall("pong from pysock\n");
  ASSERT_TRUE(client.read_until("pong from pysock")) << client.output();
  tls.unwrap().close();  // close_notify: s_client ends cleanly
  EXPECT_EQ(client.wait(), 0) << client.output();
  EXPECT_TRUE(contains(client.output(), "Verification: OK")) << client.output();
  EXPECT_TRUE(contains(client.output(), "Protocol version: TLSv1.3")) << client.output();
}

TEST_F(ssl_peer_test, openssl_s_client_refuses_a_pysock_server_with_an_unknown_ca) {
  pysock::ssl_context ctx(pysock::protocol_tls_server);
  ctx.load_cert_chain(certs.pem("rogue"), certs.key("rogue"));
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  listener.settimeout(20s);
  const int port = listener.getsockname().port();
  ssl_test::child client({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port),
                          "-CAfile", certs.pem("ca"), "-verify_return_error", "-brief"});
  ASSERT_TRUE(client.started());
  auto accepted = listener.accept();
  accepted.first.settimeout(20s);
  try {
    ctx.wrap_socket(std::move(accepted.first), true);
    ADD_FAILURE() << "the handshake succeeded with a certificate the client cannot verify";
  } catch (const pysock::ssl_error& e) {
    EXPECT_EQ(e.reason(), "TLSV1_ALERT_UNKNOWN_CA") << e.what();
  }
  EXPECT_NE(client.wait(), 0);
}

TEST_F(ssl_peer_test, cpython_client_talks_to_a_pysock_server) {
  need_python();
  pysock::ssl_context ctx = server_context();
  ctx.set_alpn_protocols({"http/1.1"});
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  listener.settimeout(20s);
  ssl_test::child client({"python3", peer_script(), "client", certs.path(""),
                          std::to_string(listener.getsockname().port()), "echo"});
  ASSERT_TRUE(client.started());
  auto accepted = listener.accept();
  accepted.first.settimeout(20s);
  pysock::ssl_socket tls = ctx.wrap_socket(std::move(accepted.first), true);
  pysock::ssl_stream f = tls.makefile("rw");
  std::string line;
  ASSERT_TRUE(std::getline(f, line));
  EXPECT_EQ(line, "hello from cpython");
  f << "echo: " << line << "\n" << std::flush;
  // CPython's unwrap(): our recv sees close_notify, and we answer it.
  EXPECT_EQ(tls.recv(100), "");
  tls.unwrap().close();
  EXPECT_EQ(client.wait(), 0) << client.output();
  EXPECT_TRUE(contains(client.output(), "GOT echo: hello from cpython")) << client.output();
  EXPECT_TRUE(contains(client.output(), "VERSION TLSv1.3 ALPN http/1.1")) << client.output();
  EXPECT_TRUE(contains(client.output(), "CN localhost")) << client.output();
}

TEST_F(ssl_peer_test, cpython_non_blocking_client_talks_to_a_pysock_server) {
  need_python();
  pysock::ssl_context ctx = server_context();
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  listener.settimeout(20s);
  ssl_test::child client({"python3", peer_script(), "client", certs.path(""),
                          std::to_string(listener.getsockname().port()), "nonblock"});
  ASSERT_TRUE(client.started());
  auto accepted = listener.accept();
  accepted.first.settimeout(20s);
  pysock::ssl_socket tls = ctx.wrap_socket(std::move(accepted.first), true);
  const pysock::bytes got = tls.recv(100);
  EXPECT_EQ(got, "hello from cpython\n");
  tls.sendall("echo: " + got);
  EXPECT_EQ(client.wait(), 0) << client.output();
  EXPECT_TRUE(contains(client.output(), "GOT echo: hello from cpython")) << client.output();
}

TEST_F(ssl_peer_test, pysock_client_talks_to_a_cpython_server_with_a_timeout) {
  need_python();
  ssl_test::child server({"python3", peer_script(), "server", certs.path(""), "echo"});
  ASSERT_TRUE(server.started());
  const auto port = server.number_after("PORT ");
  ASSERT_TRUE(port) << server.output();
  pysock::ssl_context ctx = client_context();
  ctx.set_alpn_protocols({"h2", "http/1.1"});
  pysock::ssl_socket tls =
      ctx.wrap_socket(pysock::create_connection({"127.0.0.1", *port}, pysock::timeout_type(20s)),
                      false, "localhost");
  EXPECT_EQ(tls.selected_alpn_protocol(), "http/1.1");
  tls.settimeout(200ms);
  EXPECT_THROW(tls.recv(10), pysock::timeout_error) << "CPython sends nothing unasked";
  tls.settimeout(20s);
  pysock::ssl_stream f = tls.makefile("rw");
  f << "line one\n" << std::flush;
  std::string line;
  ASSERT_TRUE(std::getline(f, line));
  EXPECT_EQ(line, "echo: line one");
  tls.close();
  EXPECT_EQ(server.wait(), 0) << server.output();
  EXPECT_TRUE(contains(server.output(), "HANDSHAKE TLSv1.3 http/1.1")) << server.output();
  EXPECT_TRUE(contains(server.output(), "CLIENT CLOSED")) << server.output();
}

TEST_F(ssl_peer_test, pysock_client_unwraps_with_a_cpython_server_and_reads_clear_text) {
  need_python();
  ssl_test::child server({"python3", peer_script(), "server", certs.path(""), "unwrap"});
  ASSERT_TRUE(server.started());
  const auto port = server.number_after("PORT ");
  ASSERT_TRUE(port) << server.output();
  pysock::ssl_socket tls = client_context().wrap_socket(
      pysock::create_connection({"127.0.0.1", *port}, pysock::timeout_type(20s)), false,
      "localhost");
  tls.sendall("secret\n");
  EXPECT_EQ(tls.recv(100), "echo: secret\n");
  pysock::socket plain = tls.unwrap();
  std::string text;
  for (int i = 0; i < 100; ++i) {
    const pysock::bytes part = plain.recv(100);
    if (part.empty()) break;
    text += part;
  }
  EXPECT_EQ(text, "plain after tls\n");
  EXPECT_EQ(server.wait(), 0) << server.output();
}

TEST_F(ssl_peer_test, cpython_server_rejects_a_pysock_client_that_expects_another_host) {
  need_python();
  ssl_test::child server({"python3", peer_script(), "server", certs.path(""), "echo"});
  ASSERT_TRUE(server.started());
  const auto port = server.number_after("PORT ");
  ASSERT_TRUE(port) << server.output();
  try {
    client_context().wrap_socket(
        pysock::create_connection({"127.0.0.1", *port}, pysock::timeout_type(20s)), false,
        "not-localhost.test");
    ADD_FAILURE() << "a certificate for localhost passed for not-localhost.test";
  } catch (const pysock::ssl_cert_verification_error& e) {
    EXPECT_EQ(e.verify_code(), 62) << e.what();
  }
  EXPECT_NE(server.wait(), 0) << "CPython's handshake fails on our alert";
  EXPECT_TRUE(contains(server.output(), "SSLError")) << server.output();
}

}  // namespace
