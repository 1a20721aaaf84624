// SPDX-License-Identifier: MIT
//
// Internal to libpysock-ssl: the state behind ssl_context and the connection
// objects, and the one place OpenSSL's result codes become pysock errors.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "pysock/ssl.hpp"

namespace pysock::detail {

struct ssl_context_state {
  SSL_CTX* ctx = nullptr;
  ssl_protocol protocol = ssl_protocol::tls_client;
  pysock::verify_mode mode = pysock::verify_mode::cert_none;
  bool check_hostname = false;
  std::string alpn_wire;  // ALPN list in wire format: length-prefixed names
  ssl_context::sni_callback_type sni_callback;

  ssl_context_state() = default;
  ssl_context_state(const ssl_context_state&) = delete;
  ssl_context_state& operator=(const ssl_context_state&) = delete;
  ~ssl_context_state() { SSL_CTX_free(ctx); }
};

// What pysock's socket BIO needs to do one recv()/send(): the descriptor,
// MSG_DONTWAIT when the socket is not blocking, and the errno of a failed
// call (OpenSSL's own error queue does not keep it reliably).
struct socket_io {
  int fd = -1;
  int flags = 0;
  int last_errno = 0;
};

// Why the last call on a connection failed, kept for the throwing wrappers:
// the error_code overloads only carry `ec`.
struct ssl_failure {
  std::error_code ec;
  unsigned long packed = 0;  // OpenSSL's ERR code for SSL_ERROR_SSL
  long verify_code = 0;      // X509_V_OK unless the peer's certificate was refused
};

struct ssl_connection_state {
  SSL* ssl = nullptr;
  std::shared_ptr<ssl_context_state> context;
  bool server_side = false;
  std::string server_hostname;
  bool suppress_ragged_eofs = true;
  bool do_handshake_on_connect = true;
  socket_io io;
  ssl_failure failure;

  ssl_connection_state() = default;
  ssl_connection_state(const ssl_connection_state&) = delete;
  ssl_connection_state& operator=(const ssl_connection_state&) = delete;
  ~ssl_connection_state() {
    if (ssl == nullptr) return;
    // Freed without close_notify (close() sends none, as Python), OpenSSL
    // would mark the session unusable; CPython sets SENT_SHUTDOWN first so
    // the session can still be resumed, and so does pysock.
    SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_get_shutdown(ssl));
    SSL_free(ssl);
  }
};

struct ssl_access {
  static const std::shared_ptr<ssl_context_state>& state(const ssl_context& c) { return c.state_; }
  static ssl_context make_context(std::shared_ptr<ssl_context_state> s) {
    return ssl_context(std::move(s));
  }
  static ssl_connection_state& state(const ssl_connection& c) { return *c.state_; }
  static ssl_socket make_socket(std::unique_ptr<ssl_connection_state> s, socket sock);
  static ssl_object make_object(std::unique_ptr<ssl_connection_state> s);
};

// The SSL* ex_data slot holding its ssl_connection_state (for the SNI callback).
int connection_index();

// Classifies the result of an SSL_* call (ret <= 0) into state.failure and
// returns its code; drains OpenSSL's error queue.
std::error_code classify(ssl_connection_state& state, int ret);

// Throws the pysock exception for state.failure, with `call` and the peer in
// front (Python's class for each case).
[[noreturn]] void throw_failure(const ssl_connection_state& state, const std::string& context);

// Throws ssl_error from what OpenSSL's error queue holds (setup calls such
// as load_cert_chain), or with `fallback` when the queue is empty.
[[noreturn]] void throw_from_queue(const std::string& context, std::string_view fallback);

// Python's short library name ("SSL", "X509", "PEM"...) and reason mnemonic
// ("CERTIFICATE_VERIFY_FAILED") for a packed OpenSSL error code.
std::string library_name(unsigned long packed);
std::string reason_mnemonic(unsigned long packed);

}  // namespace pysock::detail
