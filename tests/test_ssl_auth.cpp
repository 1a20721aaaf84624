// SPDX-License-Identifier: MIT
//
// pysock/ssl.hpp: client certificates (verify_mode on a server), encrypted
// private keys (load_cert_chain's password, string and callable), trust
// anchors from cadata (PEM and DER) and capath, and wrapped sockets that
// handshake in accept()/connect(). Against pysock itself (the peer on a
// thread) and `openssl s_server` / `openssl s_client`. Loopback only.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <openssl/err.h>

#include "interop/ssl_support.hpp"
#include "pysock/ssl.hpp"
#include "support/checks.hpp"

namespace {

using namespace std::chrono_literals;

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

constexpr const char* key_password = "open sesame";

// What ssl_make_certs.sh does not make: a client certificate signed by the
// test CA, the server key encrypted with a password, the CAs in DER, and a
// c_rehash'd folder holding the test CA.
bool make_extra_certs(const ssl_test::cert_dir& certs) {
  const std::string dir = certs.path("");
  const std::string script =
      "set -e; cd '" + dir +
      "'; "
      "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-keyout client.key -out client.csr -subj '/O=pysock tests/CN=pysock client'; "
      "openssl ca -batch -notext -config ca.cnf -in client.csr -out client.pem -days 3650; "
      "openssl pkey -in localhost.key -aes256 -passout 'pass:" +
      std::string(key_password) +
      "' -out localhost.enc.key; "
      "openssl x509 -in ca.pem -outform DER -out ca.der; "
      "openssl x509 -in rogue_ca.pem -outform DER -out rogue_ca.der; "
      "mkdir hashed empty; cp ca.pem hashed/; openssl rehash hashed";
  // The script has single quotes of its own: it goes through a file.
  const std::string file = dir + "extra.sh";
  std::ofstream(file) << script << "\n";
  return std::system(("sh '" + file + "' >/dev/null 2>&1").c_str()) == 0;
}

class ssl_auth_test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ssl_test::have_program("openssl")) GTEST_SKIP() << "the openssl command is not installed";
    ASSERT_TRUE(certs.ok());
    ASSERT_TRUE(make_extra_certs(certs)) << "openssl could not make the extra certificates";
  }
  pysock::ssl_context client_context() const {
    pysock::ssl_context ctx(pysock::protocol_tls_client);
    ctx.load_verify_locations(certs.pem("ca"));
    return ctx;
  }
  pysock::ssl_context server_context(pysock::verify_mode mode = pysock::cert_none) const {
    pysock::ssl_context ctx(pysock::protocol_tls_server);
    ctx.load_cert_chain(certs.pem("localhost"), certs.key("localhost"));
    if (mode != pysock::cert_none) {
      ctx.load_verify_locations(certs.pem("ca"));
      ctx.set_verify_mode(mode);
    }
    return ctx;
  }

  ssl_test::cert_dir certs;
};

// A pysock TLS server on a thread: accepts one connection, handshakes with
// `ctx`, then runs `serve` on it. The result is what `serve` returned, or the
// failure's what() prefixed with its class ("ssl_error: ...").
struct one_shot_server {
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  std::future<std::string> result;

  template <class Serve>
  one_shot_server(pysock::ssl_context ctx, Serve serve) {
    listener.settimeout(20s);
    result = std::async(std::launch::async, [this, ctx, serve]() -> std::string {
      try {
        auto accepted = listener.accept();
        accepted.first.settimeout(20s);
        pysock::ssl_socket tls = ctx.wrap_socket(std::move(accepted.first), true);
        return serve(tls);
      } catch (const pysock::ssl_cert_verification_error& e) {
        return "ssl_cert_verification_error " + std::to_string(e.verify_code()) + ": " + e.what();
      } catch (const pysock::ssl_error& e) {
        return "ssl_error " + e.reason() + ": " + e.what();
      } catch (const std::exception& e) {
        return std::string("exception: ") + e.what();
      }
    });
  }
  int port() const { return listener.getsockname().port(); }
  std::string get() {
    if (result.wait_for(30s) != std::future_status::ready) return "server thread did not finish";
    return result.get();
  }
};

pysock::ssl_socket connect_tls(const pysock::ssl_context& ctx, int port) {
  return ctx.wrap_socket(pysock::create_connection({"127.0.0.1", port}, pysock::timeout_type(20s)),
                         false, "localhost");
}

// The server's answer to a verified client: its certificate's common name.
std::string tell_peer_name(pysock::ssl_socket& tls) {
  const auto cert = tls.getpeercert();
  const std::string name = cert ? cert->subject_attribute("commonName") : "<no certificate>";
  tls.sendall("hello " + name + "\n");
  return name;
}

// --- 1. client certificates --------------------------------------------------

TEST_F(ssl_auth_test, server_requiring_a_certificate_sees_the_clients_subject) {
  one_shot_server server(server_context(pysock::cert_required), tell_peer_name);
  pysock::ssl_context ctx = client_context();
  ctx.load_cert_chain(certs.pem("client"), certs.key("client"));
  pysock::ssl_socket tls = connect_tls(ctx, server.port());
  EXPECT_EQ(tls.recv(100), "hello pysock client\n");
  EXPECT_EQ(server.get(), "pysock client");
  ASSERT_TRUE(tls.getpeercert());
  EXPECT_EQ(tls.getpeercert()->subject_attribute("commonName"), "localhost");
}

TEST_F(ssl_auth_test, client_without_a_certificate_is_refused_tls13) {
  one_shot_server server(server_context(pysock::cert_required), tell_peer_name);
  // TLS 1.3: the client's handshake ends before the server has looked at the
  // client's (missing) certificate; the server's alert arrives on the first
  // read, as CPython's test_ssl sees it too.
  pysock::ssl_socket tls = connect_tls(client_context(), server.port());
  EXPECT_EQ(tls.version(), "TLSv1.3");
  try {
    tls.recv(100);
    ADD_FAILURE() << "the client read data from a server that refused it";
  } catch (const pysock::ssl_error& e) {
    EXPECT_EQ(e.reason(), "TLSV13_ALERT_CERTIFICATE_REQUIRED") << e.what();
    EXPECT_EQ(e.library(), "SSL") << e.what();
  }
  const std::string outcome = server.get();
  EXPECT_TRUE(outcome.starts_with("ssl_error PEER_DID_NOT_RETURN_A_CERTIFICATE:")) << outcome;
}

TEST_F(ssl_auth_test, client_without_a_certificate_is_refused_in_the_handshake_tls12) {
  one_shot_server server(server_context(pysock::cert_required), tell_peer_name);
  pysock::ssl_context ctx = client_context();
  ctx.set_maximum_version(pysock::tls_version::tlsv1_2);
  // TLS 1.2: the server answers the client's Finished with the alert, so the
  // client's own handshake fails.
  try {
    connect_tls(ctx, server.port());
    ADD_FAILURE() << "the TLS 1.2 handshake succeeded without a client certificate";
  } catch (const pysock::ssl_error& e) {
    EXPECT_EQ(e.reason(), "SSLV3_ALERT_HANDSHAKE_FAILURE") << e.what();
  }
  const std::string outcome = server.get();
  EXPECT_TRUE(outcome.starts_with("ssl_error PEER_DID_NOT_RETURN_A_CERTIFICATE:")) << outcome;
}

TEST_F(ssl_auth_test, client_certificate_from_an_unknown_ca_fails_verification_on_the_server) {
  one_shot_server server(server_context(pysock::cert_required), tell_peer_name);
  pysock::ssl_context ctx = client_context();
  ctx.load_cert_chain(certs.pem("rogue"), certs.key("rogue"));
  pysock::ssl_socket tls = connect_tls(ctx, server.port());
  try {
    tls.recv(100);
    ADD_FAILURE() << "the client read data from a server that refused its certificate";
  } catch (const pysock::ssl_error& e) {
    EXPECT_EQ(e.reason(), "TLSV1_ALERT_UNKNOWN_CA") << e.what();
  }
  const std::string outcome = server.get();
  // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
  EXPECT_TRUE(outcome.starts_with("ssl_cert_verification_error 20: ")) << outcome;
  EXPECT_TRUE(contains(outcome, "unable to get local issuer certificate")) << outcome;
}

TEST_F(ssl_auth_test, cert_optional_accepts_clients_with_and_without_a_certificate) {
  {
    one_shot_server server(server_context(pysock::cert_optional), tell_peer_name);
    pysock::ssl_context ctx = client_context();
    ctx.load_cert_chain(certs.pem("client"), certs.key("client"));
    pysock::ssl_socket tls = connect_tls(ctx, server.port());
    EXPECT_EQ(tls.recv(100), "hello pysock client\n");
    EXPECT_EQ(server.get(), "pysock client");
  }
  {
    one_shot_server server(server_context(pysock::cert_optional), tell_peer_name);
    pysock::ssl_socket tls = connect_tls(client_context(), server.port());
    EXPECT_EQ(tls.recv(100), "hello <no certificate>\n");
    EXPECT_EQ(server.get(), "<no certificate>");
  }
  {
    // Optional is not "anything": a certificate that is sent is verified.
    one_shot_server server(server_context(pysock::cert_optional), tell_peer_name);
    pysock::ssl_context ctx = client_context();
    ctx.load_cert_chain(certs.pem("rogue"), certs.key("rogue"));
    pysock::ssl_socket tls = connect_tls(ctx, server.port());
    EXPECT_THROW(tls.recv(100), pysock::ssl_error);
    EXPECT_TRUE(server.get().starts_with("ssl_cert_verification_error 20: "));
  }
}

TEST_F(ssl_auth_test, openssl_s_client_with_a_certificate_against_a_pysock_server) {
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  listener.settimeout(20s);
  const int port = listener.getsockname().port();
  const pysock::ssl_context ctx = server_context(pysock::cert_required);
  {
    ssl_test::child client({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port),
                            "-CAfile", certs.pem("ca"), "-cert", certs.pem("client"), "-key",
                            certs.key("client"), "-servername", "localhost", "-verify_return_error",
                            "-brief", "-ign_eof"});
    ASSERT_TRUE(client.started());
    auto accepted = listener.accept();
    accepted.first.settimeout(20s);
    pysock::ssl_socket tls = ctx.wrap_socket(std::move(accepted.first), true);
    ASSERT_TRUE(tls.getpeercert());
    EXPECT_EQ(tls.getpeercert()->subject_attribute("commonName"), "pysock client");
    EXPECT_EQ(tls.getpeercert()->issuer.size(), 2u) << "O=pysock tests, CN=ca";
    tell_peer_name(tls);
    ASSERT_TRUE(client.read_until("hello pysock client")) << client.output();
    tls.unwrap().close();
    EXPECT_EQ(client.wait(), 0) << client.output();
  }
  {
    // Without -cert: s_client's handshake ends (TLS 1.3), ours fails.
    ssl_test::child client({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port),
                            "-CAfile", certs.pem("ca"), "-servername", "localhost", "-brief"});
    ASSERT_TRUE(client.started());
    auto accepted = listener.accept();
    accepted.first.settimeout(20s);
    try {
      ctx.wrap_socket(std::move(accepted.first), true);
      ADD_FAILURE() << "a client without a certificate got through CERT_REQUIRED";
    } catch (const pysock::ssl_error& e) {
      EXPECT_EQ(e.reason(), "PEER_DID_NOT_RETURN_A_CERTIFICATE") << e.what();
    }
    client.wait();
    EXPECT_TRUE(contains(client.output(), "certificate required")) << client.output();
  }
}

TEST_F(ssl_auth_test, pysock_client_with_a_certificate_against_openssl_s_server_verify) {
  for (const bool with_certificate : {true, false}) {
    SCOPED_TRACE(with_certificate ? "with a certificate" : "without one");
    ssl_test::child server({"openssl", "s_server", "-accept", "127.0.0.1:0", "-cert",
                            certs.pem("localhost"), "-key", certs.key("localhost"), "-CAfile",
                            certs.pem("ca"), "-Verify", "1", "-verify_return_error", "-naccept",
                            "1", "-rev"});
    ASSERT_TRUE(server.started());
    const std::optional<int> port = ssl_test::s_server_port(server);
    ASSERT_TRUE(port) << server.output();
    pysock::ssl_context ctx = client_context();
    if (with_certificate) ctx.load_cert_chain(certs.pem("client"), certs.key("client"));
    pysock::ssl_socket tls = connect_tls(ctx, *port);
    tls.sendall("abc\n");
    if (with_certificate) {
      EXPECT_EQ(tls.recv(100), "cba\n") << "s_server -rev answers reversed lines";
      ASSERT_TRUE(server.read_until("Peer certificate: ")) << server.output();
      ASSERT_TRUE(server.read_until("\n", 20s, server.output().find("Peer certificate: ")));
      EXPECT_TRUE(contains(server.output(), "CN = pysock client")) << server.output();
    } else {
      try {
        tls.recv(100);
        ADD_FAILURE() << "s_server -Verify 1 answered a client without a certificate";
      } catch (const pysock::ssl_error& e) {
        EXPECT_EQ(e.reason(), "TLSV13_ALERT_CERTIFICATE_REQUIRED") << e.what();
      }
    }
  }
}

// --- 2. encrypted private keys -----------------------------------------------

// A client verifying against the test CA accepts a server with `ctx`.
void expect_serves(const pysock::ssl_context& ctx, const pysock::ssl_context& client) {
  one_shot_server server(ctx, tell_peer_name);
  pysock::ssl_socket tls = connect_tls(client, server.port());
  EXPECT_EQ(tls.recv(100), "hello <no certificate>\n");
  EXPECT_EQ(server.get(), "<no certificate>");
}

TEST_F(ssl_auth_test, encrypted_key_loads_with_its_password_string_or_callable) {
  pysock::ssl_context with_string(pysock::protocol_tls_server);
  with_string.load_cert_chain(certs.pem("localhost"), certs.path("localhost.enc.key"),
                              std::string(key_password));
  expect_serves(with_string, client_context());

  int calls = 0;
  pysock::ssl_context with_callable(pysock::protocol_tls_server);
  with_callable.load_cert_chain(certs.pem("localhost"), certs.path("localhost.enc.key"), [&calls] {
    ++calls;
    return std::string(key_password);
  });
  EXPECT_EQ(calls, 1);
  expect_serves(with_callable, client_context());

  // As Python: a password for a key that is not encrypted is not looked at.
  calls = 0;
  pysock::ssl_context plain(pysock::protocol_tls_server);
  plain.load_cert_chain(certs.pem("localhost"), certs.key("localhost"), [&calls] {
    ++calls;
    return std::string(5000, 'x');
  });
  EXPECT_EQ(calls, 0);
  plain.load_cert_chain(certs.pem("localhost"), certs.key("localhost"), std::string(5000, 'x'));
  expect_serves(plain, client_context());
}

TEST_F(ssl_auth_test, encrypted_key_with_a_wrong_or_missing_password_is_an_ssl_error) {
  pysock::ssl_context ctx(pysock::protocol_tls_server);
  const std::string key = certs.path("localhost.enc.key");
  try {
    ctx.load_cert_chain(certs.pem("localhost"), key, std::string("wrong"));
    ADD_FAILURE() << "a wrong password decrypted the key";
  } catch (const pysock::ssl_error& e) {
    EXPECT_TRUE(contains(e.what(), "load_cert_chain(" + key + ")")) << e.what();
    EXPECT_EQ(e.library(), "PROV") << e.what();
    EXPECT_EQ(e.reason(), "BAD_DECRYPT") << e.what();
    EXPECT_TRUE(contains(e.what(), "wrong password for the private key")) << e.what();
  }
  // No password at all: an error at once, never OpenSSL's terminal prompt.
  try {
    ctx.load_cert_chain(certs.pem("localhost"), key);
    ADD_FAILURE() << "an encrypted key loaded without a password";
  } catch (const pysock::ssl_error& e) {
    EXPECT_TRUE(contains(e.what(), "the private key is encrypted and no password was given"))
        << e.what();
  }
  // The context is still usable: the right password works afterwards.
  ctx.load_cert_chain(certs.pem("localhost"), key, std::string(key_password));
  expect_serves(ctx, client_context());
}

TEST_F(ssl_auth_test, password_callback_exceptions_and_over_long_passwords) {
  pysock::ssl_context ctx(pysock::protocol_tls_server);
  const std::string key = certs.path("localhost.enc.key");
  struct vault_locked : std::runtime_error {
    vault_locked() : std::runtime_error("the vault is locked") {}
  };
  EXPECT_THROW(ctx.load_cert_chain(certs.pem("localhost"), key,
                                   []() -> std::string { throw vault_locked(); }),
               vault_locked);
  // Python's ValueError: OpenSSL's PEM buffer is 1024 bytes.
  for (const std::size_t size : {1025u, 100000u}) {
    try {
      ctx.load_cert_chain(certs.pem("localhost"), key, std::string(size, 'p'));
      ADD_FAILURE() << "a " << size << "-byte password was taken";
    } catch (const std::invalid_argument& e) {
      EXPECT_STREQ(e.what(), "password cannot be longer than 1024 bytes");
    }
    try {
      ctx.load_cert_chain(certs.pem("localhost"), key, [size] { return std::string(size, 'p'); });
      ADD_FAILURE() << "a " << size << "-byte password from a callable was taken";
    } catch (const std::invalid_argument& e) {
      EXPECT_STREQ(e.what(), "password cannot be longer than 1024 bytes");
    }
  }
  EXPECT_THROW(ctx.load_cert_chain(certs.pem("localhost"), key,
                                   pysock::ssl_context::password_callback_type()),
               std::invalid_argument);
  // Nothing of the failures stays behind: OpenSSL's error queue is empty and
  // the right password still works.
  EXPECT_EQ(ERR_peek_error(), 0u);
  ctx.load_cert_chain(certs.pem("localhost"), key, [] { return std::string(key_password); });
  expect_serves(ctx, client_context());
}

// --- TLS 1.3 cipher suites (set_ciphersuites, OpenSSL's name) -------------------

TEST_F(ssl_auth_test, set_ciphersuites_picks_the_tls13_suite_and_refuses_unknown_ones) {
  pysock::ssl_context server_ctx = server_context();
  server_ctx.set_ciphersuites("TLS_CHACHA20_POLY1305_SHA256");
  {
    one_shot_server server(server_ctx, tell_peer_name);
    pysock::ssl_socket tls = connect_tls(client_context(), server.port());
    ASSERT_TRUE(tls.cipher());
    EXPECT_EQ(tls.cipher()->name, "TLS_CHACHA20_POLY1305_SHA256");
    EXPECT_EQ(tls.cipher()->protocol, "TLSv1.3");
    EXPECT_EQ(tls.recv(100), "hello <no certificate>\n");
    server.get();
  }
  {
    // A client offering only another suite: no shared cipher on either side.
    one_shot_server server(server_ctx, tell_peer_name);
    pysock::ssl_context ctx = client_context();
    ctx.set_ciphersuites("TLS_AES_128_GCM_SHA256");
    try {
      connect_tls(ctx, server.port());
      ADD_FAILURE() << "a handshake without a shared TLS 1.3 suite succeeded";
    } catch (const pysock::ssl_error& e) {
      EXPECT_EQ(e.reason(), "SSLV3_ALERT_HANDSHAKE_FAILURE") << e.what();
    }
    const std::string outcome = server.get();
    EXPECT_TRUE(outcome.starts_with("ssl_error NO_SHARED_CIPHER:")) << outcome;
  }
  pysock::ssl_context ctx = client_context();
  try {
    ctx.set_ciphersuites("TLS_NO_SUCH_SUITE");
    ADD_FAILURE() << "an unknown suite was taken";
  } catch (const pysock::ssl_error& e) {
    EXPECT_TRUE(contains(e.what(), "No cipher can be selected.")) << e.what();
  }
  EXPECT_EQ(ERR_peek_error(), 0u);
}

// --- 3. cadata and capath ------------------------------------------------------

// Does a client context trusting what `setup` loaded accept the server
// certificate `name` (signed by ca or rogue_ca)? The verify code, 0 for yes.
long verify_code_against(const ssl_test::cert_dir& certs, const std::string& name,
                         const std::function<void(pysock::ssl_context&)>& setup) {
  pysock::ssl_context server_ctx(pysock::protocol_tls_server);
  server_ctx.load_cert_chain(certs.pem(name), certs.key(name));
  one_shot_server server(server_ctx, tell_peer_name);
  pysock::ssl_context ctx(pysock::protocol_tls_client);
  setup(ctx);
  long code = 0;
  try {
    pysock::ssl_socket tls = connect_tls(ctx, server.port());
    EXPECT_EQ(tls.recv(100), "hello <no certificate>\n");
  } catch (const pysock::ssl_cert_verification_error& e) {
    code = e.verify_code();
  }
  server.get();
  return code;
}

TEST_F(ssl_auth_test, cadata_pem_with_several_certificates) {
  const std::string both = read_file(certs.pem("rogue_ca")) + read_file(certs.pem("ca"));
  const auto load_both = [&both](pysock::ssl_context& ctx) {
    ctx.load_verify_locations({}, {}, both);
  };
  EXPECT_EQ(verify_code_against(certs, "localhost", load_both), 0);
  EXPECT_EQ(verify_code_against(certs, "rogue", load_both), 0);
  const std::string only_ca = read_file(certs.pem("ca"));
  EXPECT_EQ(verify_code_against(certs, "rogue",
                                [&only_ca](pysock::ssl_context& ctx) {
                                  ctx.load_verify_locations({}, {}, only_ca);
                                }),
            20);
  // The same CA twice is no error (Python's X509_R_CERT_ALREADY_IN_HASH_TABLE case).
  pysock::ssl_context twice(pysock::protocol_tls_client);
  twice.load_verify_locations({}, {}, only_ca + only_ca);
  twice.load_verify_locations({}, {}, only_ca);
}

TEST_F(ssl_auth_test, cadata_der_bytes_one_or_several_certificates) {
  const std::string ca = read_file(certs.path("ca.der"));
  const std::string rogue = read_file(certs.path("rogue_ca.der"));
  ASSERT_FALSE(ca.empty());
  EXPECT_EQ(
      verify_code_against(certs, "localhost",
                          [&ca](pysock::ssl_context& ctx) { ctx.load_verify_locations_der(ca); }),
      0);
  const std::string both = rogue + ca;
  const auto load_both = [&both](pysock::ssl_context& ctx) { ctx.load_verify_locations_der(both); };
  EXPECT_EQ(verify_code_against(certs, "localhost", load_both), 0);
  EXPECT_EQ(verify_code_against(certs, "rogue", load_both), 0);
  EXPECT_EQ(
      verify_code_against(certs, "rogue",
                          [&ca](pysock::ssl_context& ctx) { ctx.load_verify_locations_der(ca); }),
      20);
}

TEST_F(ssl_auth_test, bad_cadata_is_an_ssl_error_and_empty_is_invalid_argument) {
  pysock::ssl_context ctx(pysock::protocol_tls_client);
  const std::string pem = read_file(certs.pem("ca"));
  const std::string der = read_file(certs.path("ca.der"));
  EXPECT_THROW(ctx.load_verify_locations({}, {}, {}), std::invalid_argument);
  EXPECT_THROW(ctx.load_verify_locations_der(""), std::invalid_argument);
  try {
    ctx.load_verify_locations({}, {}, "not a certificate at all\n");
    ADD_FAILURE() << "text without a certificate was taken as cadata";
  } catch (const pysock::ssl_error& e) {
    EXPECT_EQ(e.reason(), "NO_START_LINE") << e.what();
    EXPECT_TRUE(contains(e.what(), "cadata does not contain a certificate")) << e.what();
  }
  // A good certificate, then a broken one: the whole call fails.
  std::string broken = pem;
  const std::size_t middle = broken.find('\n', broken.size() / 2);
  broken = pem + broken.substr(0, middle) + "\n!!!!\n" + broken.substr(middle + 1);
  EXPECT_THROW(ctx.load_verify_locations({}, {}, broken), pysock::ssl_error);
  // DER: PEM text is not DER, garbage is not, a truncated certificate is not,
  // and trailing junk after a good one fails too.
  EXPECT_THROW(ctx.load_verify_locations_der(pem), pysock::ssl_error);
  EXPECT_THROW(ctx.load_verify_locations_der("\x30\x82garbage"), pysock::ssl_error);
  EXPECT_THROW(ctx.load_verify_locations_der(der.substr(0, der.size() / 2)), pysock::ssl_error);
  EXPECT_THROW(ctx.load_verify_locations_der(der + "junk"), pysock::ssl_error);
  EXPECT_EQ(ERR_peek_error(), 0u) << "a failure left OpenSSL errors behind";
}

TEST_F(ssl_auth_test, capath_with_a_rehashed_folder) {
  const std::string hashed = certs.path("hashed");
  const std::string empty = certs.path("empty");
  EXPECT_EQ(verify_code_against(
                certs, "localhost",
                [&hashed](pysock::ssl_context& ctx) { ctx.load_verify_locations({}, hashed); }),
            0);
  EXPECT_EQ(verify_code_against(
                certs, "rogue",
                [&hashed](pysock::ssl_context& ctx) { ctx.load_verify_locations({}, hashed); }),
            20);
  EXPECT_EQ(verify_code_against(
                certs, "localhost",
                [&empty](pysock::ssl_context& ctx) { ctx.load_verify_locations({}, empty); }),
            20);
}

// --- 4. wrapped listening and unconnected sockets ---------------------------------

TEST_F(ssl_auth_test, wrapped_listener_accepts_handshaken_connections_and_survives_bad_clients) {
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  const int port = listener.getsockname().port();
  // Accepted sockets take the default timeout (Python's rule): it bounds the
  // handshakes run by accept().
  pysock::setdefaulttimeout(pysock::timeout_type(20s));
  struct reset_default {
    ~reset_default() { pysock::setdefaulttimeout(std::nullopt); }
  } reset;
  listener.settimeout(20s);
  pysock::ssl_socket tls_listener = server_context().wrap_socket(std::move(listener), true);
  EXPECT_FALSE(tls_listener.version()) << "a listener has no handshake";

  // A plaintext client: accept() throws, the listener goes on.
  pysock::socket plain = pysock::create_connection({"127.0.0.1", port}, pysock::timeout_type(20s));
  plain.sendall("GET / HTTP/1.0\r\n\r\n");
  try {
    tls_listener.accept();
    ADD_FAILURE() << "a plaintext client passed the handshake";
  } catch (const pysock::ssl_error& e) {
    EXPECT_EQ(e.reason(), "HTTP_REQUEST") << e.what();
  }
  // The server closed it (unread request bytes make that a reset).
  try {
    EXPECT_FALSE(plain.recv(100).starts_with("HTTP/")) << "no HTTP answer on a TLS port";
  } catch (const pysock::connection_reset_error&) {
  }
  plain.close();

  ssl_test::child client({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port),
                          "-CAfile", certs.pem("ca"), "-servername", "localhost",
                          "-verify_return_error", "-brief", "-ign_eof"});
  ASSERT_TRUE(client.started());
  auto [tls, peer] = tls_listener.accept();
  EXPECT_EQ(peer.host(), "127.0.0.1");
  EXPECT_EQ(tls.version(), "TLSv1.3") << "accept() ran the handshake";
  EXPECT_EQ(tls.server_hostname(), "localhost");
  EXPECT_EQ(tls.gettimeout(), pysock::timeout_type(20s));
  tls.sendall("accepted\n");
  ASSERT_TRUE(client.read_until("accepted")) << client.output();
  tls.unwrap().close();
  EXPECT_EQ(client.wait(), 0) << client.output();

  // A pysock client too, then the listener is still a listener.
  auto pending = std::async(std::launch::async, [port, this] {
    pysock::ssl_socket c = connect_tls(client_context(), port);
    return c.recv(100);
  });
  auto second = tls_listener.accept();
  second.first.sendall("second\n");
  EXPECT_EQ(pending.get(), "second\n");
}

TEST_F(ssl_auth_test, client_wrapped_before_connect_handshakes_in_connect) {
  ssl_test::child server({"openssl", "s_server", "-accept", "127.0.0.1:0", "-cert",
                          certs.pem("localhost"), "-key", certs.key("localhost"), "-naccept", "1",
                          "-rev"});
  ASSERT_TRUE(server.started());
  const std::optional<int> port = ssl_test::s_server_port(server);
  ASSERT_TRUE(port) << server.output();
  pysock::socket sock(AF_INET, SOCK_STREAM);
  sock.settimeout(20s);
  pysock::ssl_socket tls = client_context().wrap_socket(std::move(sock), false, "localhost");
  EXPECT_FALSE(tls.version()) << "no handshake before connect()";
  tls.connect({"127.0.0.1", *port});
  EXPECT_EQ(tls.version(), "TLSv1.3") << "connect() ran the handshake";
  ASSERT_TRUE(tls.getpeercert());
  EXPECT_EQ(tls.getpeercert()->subject_attribute("commonName"), "localhost");
  EXPECT_THROW(tls.connect({"127.0.0.1", *port}), std::invalid_argument);
  tls.sendall("xyz\n");
  EXPECT_EQ(tls.recv(100), "zyx\n");

  // do_handshake_on_connect = false: connect() only connects.
  ssl_test::child server2({"openssl", "s_server", "-accept", "127.0.0.1:0", "-cert",
                           certs.pem("localhost"), "-key", certs.key("localhost"), "-naccept", "1",
                           "-rev"});
  ASSERT_TRUE(server2.started());
  const std::optional<int> port2 = ssl_test::s_server_port(server2);
  ASSERT_TRUE(port2) << server2.output();
  pysock::socket sock2(AF_INET, SOCK_STREAM);
  sock2.settimeout(20s);
  pysock::wrap_options lazy;
  lazy.do_handshake_on_connect = false;
  pysock::ssl_socket tls2 =
      client_context().wrap_socket(std::move(sock2), false, "localhost", lazy);
  tls2.connect({"127.0.0.1", *port2});
  EXPECT_FALSE(tls2.version());
  tls2.do_handshake();
  EXPECT_EQ(tls2.version(), "TLSv1.3");
}

TEST_F(ssl_auth_test, connect_to_a_plaintext_server_fails_in_connect) {
  // A plain TCP server that answers like an HTTP server.
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  listener.settimeout(20s);
  auto served = std::async(std::launch::async, [&listener] {
    auto accepted = listener.accept();
    accepted.first.settimeout(20s);
    accepted.first.recv(4096);
    accepted.first.sendall("HTTP/1.0 400 Bad Request\r\n\r\n");
    return true;
  });
  pysock::socket sock(AF_INET, SOCK_STREAM);
  sock.settimeout(20s);
  pysock::ssl_socket tls = client_context().wrap_socket(std::move(sock), false, "localhost");
  try {
    tls.connect({"127.0.0.1", listener.getsockname().port()});
    ADD_FAILURE() << "a handshake with a plaintext server succeeded";
  } catch (const pysock::ssl_error& e) {
    EXPECT_EQ(e.reason(), "WRONG_VERSION_NUMBER") << e.what();
  }
  EXPECT_TRUE(served.get());
  // A refused connection is the socket's error, not a TLS one.
  pysock::socket sock2(AF_INET, SOCK_STREAM);
  sock2.settimeout(20s);
  pysock::ssl_socket tls2 = client_context().wrap_socket(std::move(sock2), false, "localhost");
  const test_support::refused_port nobody;
  EXPECT_THROW(tls2.connect({"127.0.0.1", nobody.port}), pysock::connection_refused_error);
}

}  // namespace
