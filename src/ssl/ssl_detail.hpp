// SPDX-License-Identifier: MIT
//
// Internal to libpysock-ssl: the state behind ssl_context and the connection
// objects, and the one place OpenSSL's result codes become pysock errors.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
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

// ssl_object: OpenSSL answered want_read to a do_handshake() or a read and
// its input BIO has not changed since. Asking again gives the same answer,
// so it is not asked: an event loop that calls after each send and after
// each wake-up (before receiving) would otherwise pay for a whole
// SSL_do_handshake or SSL_read each time (error queue, state machine, with
// SSL_MODE_RELEASE_BUFFERS a 16 KiB read buffer allocated and freed), two
// of five calls per resumed HTTPS handshake.
struct input_stall {
  enum class kind : unsigned char { none, handshake, read };
  kind op = kind::none;
  const BIO* bio = nullptr;      // the input BIO then
  std::uint64_t generation = 0;  // its memory_bio_generation() then
  OSSL_HANDSHAKE_STATE state{};  // SSL_get_state() then
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
  input_stall stall;

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

// Empties OpenSSL's per-thread error queue before a call whose failure is read
// from it. The queue is nearly always empty already (classify() drains it):
// ERR_clear_error walks and frees all 16 slots (~1,000 instructions, 14
// times per HTTPS connection), ERR_peek_error only looks at the ends.
inline void clear_error_queue() noexcept {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

// pysock's MemoryBIO (ssl_memory_bio.cpp): a BIO whose bytes live in one
// growable buffer, read and written directly by memory_bio and the TLS
// codecs; OpenSSL reaches the same bytes through BIO_read/BIO_write. The
// functions below take only BIOs made by new_memory_bio().
BIO* new_memory_bio() noexcept;
bool is_memory_bio(const BIO* bio) noexcept;
// Appends `size` bytes; false when out of memory (nothing appended).
bool memory_bio_append(BIO* bio, const char* data, std::size_t size) noexcept;
// Moves up to `size` bytes to `out`; returns the count.
std::size_t memory_bio_take(BIO* bio, char* out, std::size_t size) noexcept;
std::size_t memory_bio_pending(const BIO* bio) noexcept;
// Changes whenever input is appended, the buffer is reset or its end-of-file
// setting changes: equal values mean OpenSSL would read exactly what it
// read before.
std::uint64_t memory_bio_generation(const BIO* bio) noexcept;
// What a read of the empty buffer gives: -1 "retry later", 0 end of file.
void memory_bio_set_eof_return(BIO* bio, int value) noexcept;

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
