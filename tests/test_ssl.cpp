// SPDX-License-Identifier: MIT
//
// pysock/ssl.hpp with pysock on both ends (a server thread, loopback only):
// contexts and their Python defaults, the SSLSocket calls, getpeercert,
// ALPN, SNI, sessions, unwrap, makefile, timeouts and non-blocking mode, the
// memory-BIO ssl_object, and each kind of bad input with its own error class
// while the server goes on serving. Certificates come from
// tests/interop/ssl_make_certs.sh (openssl), made afresh for each process.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

#include <gtest/gtest.h>

#include "interop/ssl_support.hpp"
#include "pysock/selectors.hpp"
#include "pysock/ssl.hpp"

namespace {

using namespace std::chrono_literals;

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// A TLS server on 127.0.0.1 in a thread: serves `connections` clients one
// after the other with `handler`, keeping each one's exception (if any).
class tls_server {
 public:
  using handler_type = std::function<void(pysock::ssl_socket&)>;
  tls_server(pysock::ssl_context ctx, int connections, handler_type handler,
             pysock::wrap_options options = {})
      : listener_(pysock::create_server({"127.0.0.1", 0})),
        port_(listener_.getsockname().port()),
        errors_(static_cast<std::size_t>(connections)) {
    listener_.settimeout(20s);
    thread_ = std::thread([this, ctx, connections, handler, options] {
      for (int i = 0; i < connections; ++i) {
        try {
          auto accepted = listener_.accept();
          pysock::socket conn = std::move(accepted.first);
          conn.settimeout(20s);
          pysock::ssl_socket tls = ctx.wrap_socket(std::move(conn), true, {}, options);
          handler(tls);
        } catch (...) {
          errors_[static_cast<std::size_t>(i)] = std::current_exception();
        }
      }
    });
  }
  ~tls_server() { join(); }
  tls_server(const tls_server&) = delete;
  tls_server& operator=(const tls_server&) = delete;

  int port() const { return port_; }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  // The exception of connection i, after join().
  std::exception_ptr error(int i) {
    join();
    return errors_[static_cast<std::size_t>(i)];
  }

 private:
  pysock::socket listener_;
  int port_;
  std::vector<std::exception_ptr> errors_;
  std::thread thread_;
};

void echo_until_eof(pysock::ssl_socket& tls) {
  for (int i = 0; i < 1000; ++i) {
    pysock::bytes data = tls.recv(4096);
    if (data.empty()) return;
    tls.sendall(data);
  }
}

// The message of the exception in `p` when it is an E; else says what it was.
template <class E>
std::string error_text(const std::exception_ptr& p) {
  try {
    if (p) std::rethrow_exception(p);
  } catch (const E& e) {
    return e.what();
  } catch (...) {
    try {
      throw;
    } catch (const std::exception& e) {
      return std::string("unexpected ") + typeid(e).name() + ": " + e.what();
    } catch (...) {
      return "unexpected non-standard exception";
    }
  }
  return "no exception";
}

class ssl_test_base : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ssl_test::have_program("openssl")) GTEST_SKIP() << "the openssl command is not installed";
    ASSERT_TRUE(certs.ok()) << "ssl_make_certs.sh failed";
  }

  pysock::ssl_context server_context(const std::string& name = "localhost") const {
    pysock::ssl_context ctx(pysock::protocol_tls_server);
    ctx.load_cert_chain(certs.pem(name), certs.key(name));
    return ctx;
  }
  pysock::ssl_context client_context() const {
    pysock::ssl_context ctx(pysock::protocol_tls_client);
    ctx.load_verify_locations(certs.pem("ca"));
    return ctx;
  }
  static pysock::socket connect_plain(int port) {
    return pysock::create_connection({"127.0.0.1", port}, timeout_type_20s());
  }
  static pysock::timeout_type timeout_type_20s() { return std::chrono::nanoseconds(20s); }
  pysock::ssl_socket connect_tls(const pysock::ssl_context& ctx, int port,
                                 const std::string& host = "localhost",
                                 const pysock::wrap_options& options = {}) const {
    return ctx.wrap_socket(connect_plain(port), false, host, options);
  }

  ssl_test::cert_dir certs;
};

using ssl_context_test = ssl_test_base;
using ssl_socket_test = ssl_test_base;
using ssl_errors_test = ssl_test_base;
using ssl_object_test = ssl_test_base;

// --- contexts ------------------------------------------------------------------

TEST(ssl_context_defaults, client_and_server_contexts_have_pythons_defaults) {
  const pysock::ssl_context client(pysock::protocol_tls_client);
  EXPECT_EQ(client.verify_mode(), pysock::cert_required);
  EXPECT_TRUE(client.check_hostname());
  EXPECT_EQ(client.minimum_version(), pysock::tls_version::tlsv1_2);
  EXPECT_EQ(client.maximum_version(), pysock::tls_version::maximum_supported);
  EXPECT_NE(client.options() & SSL_OP_NO_COMPRESSION, 0u);
  EXPECT_NE(client.options() & SSL_OP_CIPHER_SERVER_PREFERENCE, 0u);
  const pysock::ssl_context server(pysock::protocol_tls_server);
  EXPECT_EQ(server.verify_mode(), pysock::cert_none);
  EXPECT_FALSE(server.check_hostname());
  // CPython's _ssl.c sets SSL_MODE_RELEASE_BUFFERS: an idle connection
  // holds no record buffers.
  EXPECT_NE(SSL_CTX_get_mode(client.native_handle()) & SSL_MODE_RELEASE_BUFFERS, 0u);
  EXPECT_NE(SSL_CTX_get_mode(server.native_handle()) & SSL_MODE_RELEASE_BUFFERS, 0u);
}

TEST(ssl_context_defaults, verify_mode_and_check_hostname_keep_each_other_consistent) {
  pysock::ssl_context client(pysock::protocol_tls_client);
  EXPECT_THROW(client.set_verify_mode(pysock::cert_none), std::invalid_argument);
  client.set_check_hostname(false);
  client.set_verify_mode(pysock::cert_none);
  EXPECT_EQ(client.verify_mode(), pysock::cert_none);
  client.set_check_hostname(true);  // turns verification back on, as Python
  EXPECT_EQ(client.verify_mode(), pysock::cert_required);
}

TEST(ssl_context_defaults, versions_and_ciphers_are_checked) {
  pysock::ssl_context ctx(pysock::protocol_tls_client);
  ctx.set_minimum_version(pysock::tls_version::tlsv1_3);
  EXPECT_EQ(ctx.minimum_version(), pysock::tls_version::tlsv1_3);
  ctx.set_maximum_version(pysock::tls_version::tlsv1_3);
  EXPECT_EQ(ctx.maximum_version(), pysock::tls_version::tlsv1_3);
  try {
    ctx.set_ciphers("NO-SUCH-CIPHER");
    ADD_FAILURE() << "set_ciphers accepted nonsense";
  } catch (const pysock::ssl_error& e) {
    EXPECT_TRUE(contains(e.what(), "No cipher can be selected.")) << e.what();
  }
  EXPECT_EQ(ERR_peek_error(), 0u) << "OpenSSL's error queue leaked out of set_ciphers";
  EXPECT_THROW(ctx.set_alpn_protocols({""}), std::invalid_argument);
}

TEST_F(ssl_context_test, load_cert_chain_reports_missing_files_bad_pem_and_mismatched_keys) {
  pysock::ssl_context ctx(pysock::protocol_tls_server);
  EXPECT_THROW(ctx.load_cert_chain(certs.path("missing.pem")), pysock::file_not_found_error);
  try {
    ctx.load_cert_chain(certs.path("ca.cnf"));  // a file, but not PEM
    ADD_FAILURE() << "a config file was taken as a certificate";
  } catch (const pysock::ssl_error& e) {
    // Python: "[SSL] PEM lib"; pysock names the reason too.
    EXPECT_EQ(e.library(), "SSL") << e.what();
    EXPECT_EQ(e.reason(), "PEM_LIB") << e.what();
    EXPECT_TRUE(contains(e.what(), "[SSL: PEM_LIB] PEM lib")) << e.what();
  }
  try {
    ctx.load_cert_chain(certs.pem("localhost"), certs.key("other"));
    ADD_FAILURE() << "a key of another certificate was accepted";
  } catch (const pysock::ssl_error& e) {
    EXPECT_EQ(e.reason(), "KEY_VALUES_MISMATCH") << e.what();
  }
  EXPECT_EQ(ERR_peek_error(), 0u);
  EXPECT_THROW(ctx.load_verify_locations(""), std::invalid_argument);
  EXPECT_THROW(ctx.load_verify_locations(certs.path("nope.pem")), pysock::file_not_found_error);
}

TEST_F(ssl_context_test, wrap_socket_refuses_impossible_combinations) {
  const pysock::ssl_context client = client_context();
  EXPECT_THROW(client.wrap_socket(pysock::socket(), false, ""), std::invalid_argument)
      << "check_hostname without server_hostname";
  EXPECT_THROW(client.wrap_socket(pysock::socket(), true, ""), std::invalid_argument);
  const pysock::ssl_context server = server_context();
  EXPECT_THROW(server.wrap_socket(pysock::socket(), true, "localhost"), std::invalid_argument);
  EXPECT_THROW(client.wrap_socket(pysock::socket(AF_INET, SOCK_DGRAM), false, "localhost"),
               std::invalid_argument);
}

// --- a working connection --------------------------------------------------------

TEST_F(ssl_socket_test, echo_over_tls_with_version_cipher_alpn_and_peer_certificate) {
  pysock::ssl_context sctx = server_context();
  sctx.set_alpn_protocols({"http/1.1"});
  tls_server server(sctx, 1, echo_until_eof);
  pysock::ssl_context cctx = client_context();
  cctx.set_alpn_protocols({"h2", "http/1.1"});
  pysock::ssl_socket tls = connect_tls(cctx, server.port());

  tls.sendall("hello over tls");
  pysock::bytes got;
  while (got.size() < 14) {
    pysock::bytes part = tls.recv(100);
    ASSERT_FALSE(part.empty());
    got += part;
  }
  EXPECT_EQ(got, "hello over tls");
  EXPECT_EQ(tls.version(), "TLSv1.3");
  ASSERT_TRUE(tls.cipher());
  EXPECT_EQ(tls.cipher()->protocol, "TLSv1.3");
  EXPECT_GE(tls.cipher()->secret_bits, 128);
  EXPECT_EQ(tls.selected_alpn_protocol(), "http/1.1");
  EXPECT_FALSE(tls.server_side());
  EXPECT_EQ(tls.server_hostname(), "localhost");

  const auto cert = tls.getpeercert();
  ASSERT_TRUE(cert);
  EXPECT_EQ(cert->subject_attribute("commonName"), "localhost");
  EXPECT_EQ(cert->subject_attribute("organizationName"), "pysock tests");
  ASSERT_FALSE(cert->issuer.empty());
  EXPECT_EQ(cert->issuer.back().front(), (pysock::name_attribute{"commonName", "ca"}));
  EXPECT_EQ(cert->version, 3);
  EXPECT_FALSE(cert->serial_number.empty());
  EXPECT_TRUE(contains(cert->not_after, "GMT")) << cert->not_after;
  EXPECT_GT(cert->not_after_time, std::chrono::system_clock::now());
  EXPECT_LT(cert->not_before_time, std::chrono::system_clock::now());
  const std::vector<std::pair<std::string, std::string>> sans{{"DNS", "localhost"},
                                                              {"IP Address", "127.0.0.1"}};
  EXPECT_EQ(cert->subject_alt_name, sans);
  const auto der = tls.getpeercert_der();
  ASSERT_TRUE(der);
  EXPECT_EQ(static_cast<unsigned char>((*der)[0]), 0x30);  // a DER SEQUENCE
  tls.close();
  EXPECT_TRUE(tls.closed());
  EXPECT_EQ(server.error(0), nullptr) << error_text<std::exception>(server.error(0));
}

TEST_F(ssl_socket_test, an_ip_address_as_server_hostname_is_checked_against_ip_sans) {
  tls_server server(server_context(), 1, echo_until_eof);
  pysock::ssl_socket tls = connect_tls(client_context(), server.port(), "127.0.0.1");
  tls.sendall("x");
  EXPECT_EQ(tls.recv(10), "x");
}

TEST_F(ssl_socket_test, recv_returns_empty_at_close_notify_and_at_a_ragged_eof) {
  // Connection 0 ends with unwrap (close_notify), 1 with a bare close.
  tls_server server(server_context(), 2, [n = std::make_shared<int>(0)](pysock::ssl_socket& t) {
    t.sendall("bye");
    if ((*n)++ == 0) {
      t.unwrap().close();
    } else {
      t.close();
    }
  });
  pysock::ssl_socket polite = connect_tls(client_context(), server.port());
  EXPECT_EQ(polite.recv(3), "bye");
  EXPECT_EQ(polite.recv(10), "");
  polite.unwrap().close();  // answers the server's close_notify, ending its unwrap()
  pysock::ssl_socket ragged = connect_tls(client_context(), server.port());
  EXPECT_EQ(ragged.recv(3), "bye");
  EXPECT_EQ(ragged.recv(10), "") << "suppress_ragged_eofs is on by default";
  EXPECT_EQ(server.error(0), nullptr) << error_text<std::exception>(server.error(0));
  EXPECT_EQ(server.error(1), nullptr) << error_text<std::exception>(server.error(1));
}

TEST_F(ssl_errors_test, ragged_eof_is_ssl_eof_error_without_suppress_ragged_eofs) {
  tls_server server(server_context(), 1, [](pysock::ssl_socket& t) {
    t.sendall("bye");
    t.close();
  });
  pysock::wrap_options options;
  options.suppress_ragged_eofs = false;
  pysock::ssl_socket tls = connect_tls(client_context(), server.port(), "localhost", options);
  EXPECT_EQ(tls.recv(3), "bye");
  try {
    tls.recv(10);
    ADD_FAILURE() << "a ragged EOF read as data";
  } catch (const pysock::ssl_eof_error& e) {
    EXPECT_TRUE(e.code() == pysock::ssl_errc::eof) << e.what();
    EXPECT_TRUE(contains(e.what(), "EOF occurred in violation of protocol")) << e.what();
  }
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(ssl_socket_test, unwrap_hands_back_the_plain_socket_for_clear_text) {
  tls_server server(server_context(), 1, [](pysock::ssl_socket& t) {
    EXPECT_EQ(t.recv(100), "secret");
    EXPECT_EQ(t.recv(100), "");  // the client's close_notify
    pysock::socket plain = t.unwrap();
    plain.sendall("in clear");
    EXPECT_EQ(plain.recv(100), "clear too");
  });
  pysock::ssl_socket tls = connect_tls(client_context(), server.port());
  tls.sendall("secret");
  pysock::socket plain = tls.unwrap();
  EXPECT_TRUE(tls.closed());
  EXPECT_EQ(plain.recv(100), "in clear");
  plain.sendall("clear too");
  EXPECT_EQ(server.error(0), nullptr) << error_text<std::exception>(server.error(0));
}

TEST_F(ssl_socket_test, makefile_reads_lines_and_writes_through_tls) {
  tls_server server(server_context(), 1, echo_until_eof);
  pysock::ssl_socket tls = connect_tls(client_context(), server.port());
  {
    pysock::ssl_stream f = tls.makefile("rw");
    f << "first line\nsecond line\n" << std::flush;
    std::string line;
    ASSERT_TRUE(std::getline(f, line));
    EXPECT_EQ(line, "first line");
    ASSERT_TRUE(std::getline(f, line));
    EXPECT_EQ(line, "second line");
  }
  EXPECT_THROW(tls.makefile("rx"), std::invalid_argument);
}

TEST_F(ssl_socket_test, session_is_resumed_on_the_second_connection) {
  tls_server server(server_context(), 2, [](pysock::ssl_socket& t) {
    t.sendall("hi");  // lets the client read the TLS 1.3 tickets
    t.recv(10);       // waits for the client's close
  });
  const pysock::ssl_context cctx = client_context();
  pysock::ssl_session session;
  {
    pysock::ssl_socket first = connect_tls(cctx, server.port());
    EXPECT_EQ(first.recv(2), "hi");
    EXPECT_FALSE(first.session_reused());
    session = first.session();
    ASSERT_TRUE(session);
    EXPECT_TRUE(session.has_ticket());
    EXPECT_GT(session.timeout().count(), 0);
    first.close();
  }
  pysock::wrap_options options;
  options.session = session;
  pysock::ssl_socket second = connect_tls(cctx, server.port(), "localhost", options);
  EXPECT_EQ(second.recv(2), "hi");
  EXPECT_TRUE(second.session_reused());
  second.close();
  server.join();
}

TEST_F(ssl_socket_test, sni_callback_switches_to_the_certificate_the_client_asked_for) {
  const pysock::ssl_context other = server_context("other");
  pysock::ssl_context sctx = server_context();
  auto seen = std::make_shared<std::vector<std::string>>();
  std::mutex mutex;
  sctx.set_sni_callback(
      [other, seen, &mutex](std::string_view name) -> std::optional<pysock::ssl_context> {
        std::lock_guard lock(mutex);
        seen->emplace_back(name);
        if (name == "other.test") return other;
        if (name == "refused.test") throw std::runtime_error("no such site");
        return std::nullopt;
      });
  tls_server server(sctx, 3, [](pysock::ssl_socket& t) {
    t.sendall(t.server_hostname());
    t.recv(10);
  });
  const pysock::ssl_context cctx = client_context();
  {
    pysock::ssl_socket tls = connect_tls(cctx, server.port(), "other.test");
    EXPECT_EQ(tls.recv(100), "other.test");
    EXPECT_EQ(tls.getpeercert()->subject_attribute("commonName"), "other.test");
  }
  {
    pysock::ssl_socket tls = connect_tls(cctx, server.port(), "localhost");
    EXPECT_EQ(tls.recv(100), "localhost");
    EXPECT_EQ(tls.getpeercert()->subject_attribute("commonName"), "localhost");
  }
  try {
    connect_tls(cctx, server.port(), "refused.test");
    ADD_FAILURE() << "the handshake survived an exception in the SNI callback";
  } catch (const pysock::ssl_error& e) {
    EXPECT_TRUE(contains(e.reason(), "HANDSHAKE_FAILURE")) << e.what();
  }
  server.join();
  std::lock_guard lock(mutex);
  EXPECT_EQ(*seen, (std::vector<std::string>{"other.test", "localhost", "refused.test"}));
}

// --- timeouts and non-blocking mode ------------------------------------------

TEST_F(ssl_socket_test, handshake_times_out_against_a_server_that_never_answers) {
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  pysock::socket sock = connect_plain(listener.getsockname().port());
  sock.settimeout(200ms);
  try {
    client_context().wrap_socket(std::move(sock), false, "localhost");
    ADD_FAILURE() << "the handshake finished with a silent server";
  } catch (const pysock::timeout_error& e) {
    EXPECT_TRUE(e.code() == std::errc::timed_out) << e.what();
    EXPECT_TRUE(contains(e.what(), "do_handshake(127.0.0.1:")) << e.what();
  }
}

TEST_F(ssl_socket_test, recv_times_out_and_the_connection_stays_usable) {
  tls_server server(server_context(), 1, echo_until_eof);
  pysock::ssl_socket tls = connect_tls(client_context(), server.port());
  tls.settimeout(100ms);
  EXPECT_THROW(tls.recv(10), pysock::timeout_error);
  tls.settimeout(20s);
  tls.sendall("still here");
  EXPECT_EQ(tls.recv(100), "still here");
}

TEST_F(ssl_socket_test, sendall_to_a_peer_that_does_not_read_times_out) {
  std::atomic<bool> done{false};
  tls_server server(server_context(), 1, [&done](pysock::ssl_socket& t) {
    for (int i = 0; i < 400 && !done; ++i) std::this_thread::sleep_for(25ms);
    t.close();
  });
  pysock::ssl_socket tls = connect_tls(client_context(), server.port());
  tls.settimeout(300ms);
  const std::string big(64 << 20, 'x');
  EXPECT_THROW(tls.sendall(big), pysock::timeout_error);
  done = true;
}

TEST_F(ssl_socket_test, non_blocking_handshake_and_io_driven_by_a_selector) {
  tls_server server(server_context(), 1, echo_until_eof);
  pysock::socket sock = connect_plain(server.port());
  sock.setblocking(false);
  pysock::wrap_options options;
  options.do_handshake_on_connect = false;
  pysock::ssl_socket tls =
      client_context().wrap_socket(std::move(sock), false, "localhost", options);
  pysock::default_selector<int> selector;
  selector.register_(tls.fileno(), pysock::EVENT_READ, 0);
  int wants = 0;
  bool done = false;
  for (int i = 0; i < 1000 && !done; ++i) {
    try {
      tls.do_handshake();
      done = true;
    } catch (const pysock::ssl_want_read_error& e) {
      EXPECT_TRUE(e.code() == std::errc::operation_would_block);
      ++wants;
      selector.modify(tls.fileno(), pysock::EVENT_READ, 0);
      ASSERT_FALSE(selector.select(20s).empty());
    } catch (const pysock::ssl_want_write_error&) {
      ++wants;
      selector.modify(tls.fileno(), pysock::EVENT_WRITE, 0);
      ASSERT_FALSE(selector.select(20s).empty());
    }
  }
  ASSERT_TRUE(done);
  // (A fast server can finish a TLS 1.3 handshake within the first call,
  // so `wants` may be 0; each want that came was waited for above.)
  EXPECT_LT(wants, 1000);
  EXPECT_THROW(tls.recv(10), pysock::ssl_want_read_error);  // nothing sent yet
  std::error_code ec;
  EXPECT_EQ(tls.send("ping", ec), 4u);
  ASSERT_FALSE(ec) << ec.message();
  char buffer[16];
  std::size_t n = 0;
  for (int i = 0; i < 1000; ++i) {
    n = tls.recv_into(buffer, ec);
    if (ec != pysock::ssl_errc::want_read) break;
    selector.modify(tls.fileno(), pysock::EVENT_READ, 0);
    ASSERT_FALSE(selector.select(20s).empty());
  }
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(std::string(buffer, n), "ping");
  selector.unregister(tls.fileno());
  selector.close();
}

TEST_F(ssl_socket_test, do_handshake_on_connect_refuses_a_non_blocking_socket) {
  tls_server server(server_context(), 1, echo_until_eof);
  pysock::socket sock = connect_plain(server.port());
  sock.setblocking(false);
  EXPECT_THROW(client_context().wrap_socket(std::move(sock), false, "localhost"),
               std::invalid_argument);
}

TEST_F(ssl_socket_test, a_closed_ssl_socket_fails_with_ebadf) {
  tls_server server(server_context(), 1, echo_until_eof);
  pysock::ssl_socket tls = connect_tls(client_context(), server.port());
  tls.close();
  tls.close();  // idempotent
  try {
    tls.recv(10);
    ADD_FAILURE() << "recv on a closed ssl_socket";
  } catch (const pysock::os_error& e) {
    EXPECT_EQ(e.errno_value(), EBADF) << e.what();
  }
  EXPECT_THROW(tls.sendall("x"), pysock::os_error);
}

// --- bad input: each a specific error, and the server serves the next client --

TEST_F(ssl_errors_test, certificate_failures_have_their_verify_codes_and_the_server_goes_on) {
  struct bad_case {
    std::string cert;
    std::string host;
    long code;
    std::string message;
  };
  const std::vector<bad_case> cases{
      {"wronghost", "localhost", 62,
       "Hostname mismatch, certificate is not valid for 'localhost'."},
      {"rogue", "localhost", 20, "unable to get local issuer certificate"},
      {"expired", "localhost", 10, "certificate has expired"},
      {"localhost", "127.0.0.2", 64,
       "IP address mismatch, certificate is not valid for '127.0.0.2'."},
  };
  for (const bad_case& c : cases) {
    SCOPED_TRACE(c.cert);
    // One server for the bad certificate, then a good client on a good one
    // with the same server code: a failed handshake harms nobody else.
    tls_server server(server_context(c.cert), 2, echo_until_eof);
    try {
      connect_tls(client_context(), server.port(), c.host);
      ADD_FAILURE() << "the certificate was accepted";
    } catch (const pysock::ssl_cert_verification_error& e) {
      EXPECT_EQ(e.verify_code(), c.code) << e.what();
      EXPECT_EQ(e.verify_message(), c.message);
      EXPECT_EQ(e.library(), "SSL");
      EXPECT_EQ(e.reason(), "CERTIFICATE_VERIFY_FAILED");
      EXPECT_TRUE(contains(
          e.what(), "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: " + c.message))
          << e.what();
      EXPECT_TRUE(contains(e.what(), "do_handshake(127.0.0.1:")) << e.what();
    }
    EXPECT_EQ(ERR_peek_error(), 0u);
    // The second connection: verification off, the same server still answers.
    pysock::ssl_context lax(pysock::protocol_tls_client);
    lax.set_check_hostname(false);
    lax.set_verify_mode(pysock::cert_none);
    pysock::ssl_socket ok = connect_tls(lax, server.port(), "");
    ok.sendall("still serving");
    EXPECT_EQ(ok.recv(100), "still serving");
    EXPECT_TRUE(ok.getpeercert()->empty()) << "unverified: Python's {}";
    ok.close();
    EXPECT_NE(server.error(0), nullptr) << "the server saw the client's alert";
    EXPECT_EQ(server.error(1), nullptr) << error_text<std::exception>(server.error(1));
  }
}

TEST_F(ssl_errors_test, plaintext_client_on_a_tls_port_is_an_ssl_error_for_the_server) {
  tls_server server(server_context(), 2, echo_until_eof);
  {
    pysock::socket plain = connect_plain(server.port());
    plain.sendall("GET / HTTP/1.0\r\n\r\n");
    std::error_code ec;
    plain.recv(100, ec);  // the server's alert, EOF, or a reset
  }
  pysock::ssl_socket good = connect_tls(client_context(), server.port());
  good.sendall("next");
  EXPECT_EQ(good.recv(10), "next");
  good.close();
  const std::exception_ptr e = server.error(0);
  ASSERT_NE(e, nullptr);
  try {
    std::rethrow_exception(e);
  } catch (const pysock::ssl_error& err) {
    EXPECT_EQ(err.reason(), "HTTP_REQUEST") << err.what();
    EXPECT_TRUE(contains(err.what(), "[SSL: HTTP_REQUEST]")) << err.what();
  }
  EXPECT_EQ(server.error(1), nullptr);
}

TEST_F(ssl_errors_test, tls_client_on_a_plaintext_port_is_wrong_version_number) {
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  listener.settimeout(20s);
  std::thread plain_server([&listener] {
    auto accepted = listener.accept();
    accepted.first.settimeout(20s);
    accepted.first.recv(4096);  // the ClientHello
    accepted.first.sendall("HTTP/1.0 400 Bad Request\r\n\r\n");
  });
  try {
    connect_tls(client_context(), listener.getsockname().port());
    ADD_FAILURE() << "TLS over a plaintext reply";
  } catch (const pysock::ssl_error& e) {
    EXPECT_EQ(e.reason(), "WRONG_VERSION_NUMBER") << e.what();
    EXPECT_TRUE(contains(e.what(), "[SSL: WRONG_VERSION_NUMBER] wrong version number")) << e.what();
  }
  plain_server.join();
}

TEST_F(ssl_errors_test, truncated_handshake_is_ssl_eof_error_and_the_server_goes_on) {
  tls_server server(server_context(), 2, echo_until_eof);
  {
    // The first 20 bytes of a real ClientHello, then the connection closes.
    pysock::memory_bio in, out;
    pysock::ssl_object hello = client_context().wrap_bio(in, out, false, "localhost");
    EXPECT_THROW(hello.do_handshake(), pysock::ssl_want_read_error);
    const pysock::bytes client_hello = out.read();
    ASSERT_GT(client_hello.size(), 20u);
    pysock::socket sock = connect_plain(server.port());
    sock.sendall(client_hello.substr(0, 20));
  }
  pysock::ssl_socket good = connect_tls(client_context(), server.port());
  good.sendall("next");
  EXPECT_EQ(good.recv(10), "next");
  good.close();
  const std::string text = error_text<pysock::ssl_eof_error>(server.error(0));
  EXPECT_TRUE(contains(text, "EOF occurred in violation of protocol")) << text;
  EXPECT_EQ(server.error(1), nullptr);
}

TEST_F(ssl_errors_test, a_reset_peer_is_a_connection_error_never_sigpipe) {
  tls_server server(server_context(), 1, [](pysock::ssl_socket& t) {
    t.sock().setsockopt(pysock::so_linger, std::chrono::seconds(0));
    t.close();  // RST
  });
  pysock::ssl_socket tls = connect_tls(client_context(), server.port());
  server.join();
  const std::string chunk(1 << 16, 'x');
  bool failed = false;
  for (int i = 0; i < 200 && !failed; ++i) {
    try {
      tls.sendall(chunk);
    } catch (const pysock::connection_error& e) {
      failed = true;
      EXPECT_TRUE(e.errno_value() == EPIPE || e.errno_value() == ECONNRESET) << e.what();
    }
  }
  EXPECT_TRUE(failed) << "writing to a reset connection kept succeeding";
}

TEST_F(ssl_errors_test, error_code_overloads_report_without_throwing) {
  tls_server server(server_context(), 1, [](pysock::ssl_socket& t) { t.close(); });
  pysock::wrap_options options;
  options.suppress_ragged_eofs = false;
  pysock::ssl_socket tls = connect_tls(client_context(), server.port(), "localhost", options);
  std::error_code ec;
  char buffer[8];
  EXPECT_EQ(tls.recv_into(buffer, ec), 0u);
  EXPECT_TRUE(ec == pysock::ssl_errc::eof) << ec.message();
  EXPECT_EQ(ec.message(), "EOF occurred in violation of protocol");
  EXPECT_EQ(tls.recv_into(buffer, 9, ec), 0u);
  EXPECT_TRUE(ec == std::errc::invalid_argument);
}

// --- the memory-BIO object -------------------------------------------------------

// Moves every pending byte between two memory-BIO pairs; true when anything moved.
bool pump(pysock::memory_bio& from, pysock::memory_bio& to) {
  const pysock::bytes data = from.read();
  if (data.empty()) return false;
  to.write(data);
  return true;
}

TEST_F(ssl_object_test, two_ssl_objects_talk_through_memory_bios_only) {
  pysock::memory_bio c_in, c_out, s_in, s_out;
  pysock::ssl_object client = client_context().wrap_bio(c_in, c_out, false, "localhost");
  pysock::ssl_object server = server_context().wrap_bio(s_in, s_out, true);
  bool client_done = false;
  bool server_done = false;
  for (int i = 0; i < 20 && !(client_done && server_done); ++i) {
    std::error_code ec;
    if (!client_done) {
      client.do_handshake(ec);
      client_done = !ec;
      if (ec) {
        EXPECT_TRUE(ec == pysock::ssl_errc::want_read) << ec.message();
      }
    }
    pump(c_out, s_in);
    if (!server_done) {
      server.do_handshake(ec);
      server_done = !ec;
      if (ec) {
        EXPECT_TRUE(ec == pysock::ssl_errc::want_read) << ec.message();
      }
    }
    pump(s_out, c_in);
  }
  ASSERT_TRUE(client_done && server_done);
  EXPECT_EQ(client.version(), "TLSv1.3");
  EXPECT_EQ(client.getpeercert()->subject_attribute("commonName"), "localhost");
  EXPECT_TRUE(server.server_side());

  EXPECT_THROW(server.read(), pysock::ssl_want_read_error);
  EXPECT_EQ(client.write("from the client"), 15u);
  pump(c_out, s_in);
  EXPECT_EQ(server.read(100), "from the client");
  server.write("and back");
  pump(s_out, c_in);
  EXPECT_EQ(client.read(100), "and back");

  // Closing: the client's close_notify, the server sees "" and answers.
  EXPECT_THROW(client.unwrap(), pysock::ssl_want_read_error);
  pump(c_out, s_in);
  EXPECT_EQ(server.read(), "");
  server.unwrap();
  pump(s_out, c_in);
  client.unwrap();
}

TEST_F(ssl_object_test, eof_on_the_incoming_bio_without_close_notify_is_ssl_eof_error) {
  pysock::memory_bio in, out;
  pysock::ssl_object client = client_context().wrap_bio(in, out, false, "localhost");
  EXPECT_THROW(client.do_handshake(), pysock::ssl_want_read_error);
  in.write_eof();
  EXPECT_TRUE(in.eof());
  EXPECT_THROW(in.write("late"), pysock::ssl_error);
  EXPECT_THROW(client.do_handshake(), pysock::ssl_eof_error);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(ssl_object_test, ssl_object_client_over_a_socket_against_an_ssl_socket_server) {
  // The shape the event loop builds on: bytes moved by the caller, OpenSSL
  // only told what came in and asked what goes out.
  tls_server server(server_context(), 1, echo_until_eof);
  pysock::socket sock = connect_plain(server.port());
  pysock::memory_bio in, out;
  pysock::ssl_object tls = client_context().wrap_bio(in, out, false, "localhost");
  auto flush = [&] {
    const pysock::bytes data = out.read();
    if (!data.empty()) sock.sendall(data);
  };
  std::error_code ec;
  for (int i = 0; i < 50; ++i) {
    tls.do_handshake(ec);
    flush();
    if (ec != pysock::ssl_errc::want_read) break;
    const pysock::bytes got = sock.recv(65536);
    ASSERT_FALSE(got.empty());
    in.write(got);
  }
  ASSERT_FALSE(ec) << ec.message();
  tls.write("through memory");
  flush();
  std::string echoed;
  for (int i = 0; i < 50 && echoed.size() < 14; ++i) {
    char buffer[64];
    const std::size_t n = tls.read_into(buffer, ec);
    if (ec == pysock::ssl_errc::want_read) {
      const pysock::bytes got = sock.recv(65536);
      ASSERT_FALSE(got.empty());
      in.write(got);
      continue;
    }
    ASSERT_FALSE(ec) << ec.message();
    echoed.append(buffer, n);
  }
  EXPECT_EQ(echoed, "through memory");
}

}  // namespace
