// SPDX-License-Identifier: MIT
//
// pysock/ssl.hpp — Python's ssl module over OpenSSL 3: SSLContext,
// SSLSocket, SSLObject + MemoryBIO, SSLSession and the SSLError family.
// An optional part of pysock: link the target pysock::ssl (libpysock-ssl,
// pkg-config pysock-ssl). pysock/pysock.hpp does not include this header, so
// the core keeps no OpenSSL dependency.
//
//   import ssl, socket                          #include <pysock/ssl.hpp>
//   ctx = ssl.create_default_context()          auto ctx = pysock::create_default_context();
//   s = socket.create_connection((h, 443))      auto s = pysock::create_connection({h, 443});
//   t = ctx.wrap_socket(s, server_hostname=h)   auto t = ctx.wrap_socket(std::move(s), false, h);
//   t.sendall(b"GET / HTTP/1.0\r\n\r\n")        t.sendall("GET / HTTP/1.0\r\n\r\n");
//   t.recv(4096)                                t.recv(4096);
//   t.version(), t.cipher(), t.getpeercert()    t.version(), t.cipher(), t.getpeercert()
//
// Semantics are CPython's (Modules/_ssl.c, Lib/ssl.py):
// - Contexts have Python's defaults: PROTOCOL_TLS_CLIENT verifies the peer
//   (CERT_REQUIRED) and checks the host name; PROTOCOL_TLS_SERVER does not
//   ask for client certificates; both refuse anything below TLS 1.2, use
//   Python's cipher string and options (no compression, server cipher
//   preference, no SSLv3), and the "Python" session id context.
// - An ssl_socket has its socket's timeout mode: blocking, non-blocking
//   (ssl_want_read_error / ssl_want_write_error when OpenSSL must wait), or a
//   timeout (timeout_error "timed out" after it). do_handshake(), recv(),
//   send(), unwrap() each have one deadline across all their waits, and
//   sendall() one deadline for the whole call (Python's sendall has one per
//   chunk; pysock's plain socket sets the rule followed here).
// - recv() returns "" at the peer's close_notify; a peer that just closes the
//   TCP connection (a "ragged EOF") also gives "" when suppress_ragged_eofs is
//   true (the default), ssl_eof_error otherwise.
// - close() does not send close_notify (as Python); unwrap() does, and hands
//   the plain socket back.
// - The socket is written with send(MSG_NOSIGNAL) through pysock's own BIO:
//   a reset peer is broken_pipe_error / connection_reset_error, never SIGPIPE.
// - OpenSSL's per-thread error queue is cleared before every call and
//   drained into the exception after it, so no error leaks into a later call.
//
// Error model as the core's: every call throws (the ssl_error classes derive
// from os_error, as Python's SSLError derives from OSError); recv, recv_into,
// send and the ssl_object calls also take a `std::error_code&`, where
// "OpenSSL must wait" is ssl_errc::want_read / want_write (both compare equal
// to std::errc::operation_would_block).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <streambuf>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "pysock/buffer.hpp"
#include "pysock/error.hpp"
#include "pysock/socket.hpp"
#include "pysock/streams.hpp"

// OpenSSL's own types, so native_handle() is typed without including OpenSSL.
struct ssl_ctx_st;
struct ssl_st;
struct ssl_session_st;
struct bio_st;

namespace pysock {

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Python's SSL_ERROR_* codes (the `errno` of an SSLError), as error codes of
/// ssl_category(). want_read and want_write compare equal to
/// std::errc::operation_would_block.
enum class ssl_errc {
  ssl = 1,               ///< SSL_ERROR_SSL: a protocol or verification failure
  want_read = 2,         ///< SSL_ERROR_WANT_READ: feed more input, then retry
  want_write = 3,        ///< SSL_ERROR_WANT_WRITE: let output drain, then retry
  want_x509_lookup = 4,  ///< SSL_ERROR_WANT_X509_LOOKUP
  syscall = 5,           ///< SSL_ERROR_SYSCALL: "Some I/O error occurred"
  zero_return = 6,       ///< SSL_ERROR_ZERO_RETURN: the peer sent close_notify
  want_connect = 7,      ///< SSL_ERROR_WANT_CONNECT
  eof = 8,               ///< SSL_ERROR_EOF: "EOF occurred in violation of protocol"
  invalid_error_code = 10,
};
const std::error_category& ssl_category() noexcept;
std::error_code make_error_code(ssl_errc e) noexcept;

/// OpenSSL's packed error codes (ERR_get_error(): library and reason), for
/// failures reported through the std::error_code overloads; message() is
/// OpenSSL's reason text ("certificate verify failed").
const std::error_category& openssl_category() noexcept;

}  // namespace pysock

template <>
struct std::is_error_code_enum<pysock::ssl_errc> : std::true_type {};

namespace pysock {

/// Python's ssl.SSLError. what() reads like Python's str() with the call in
/// front: "do_handshake(127.0.0.1:4433): [SSL: CERTIFICATE_VERIFY_FAILED]
/// certificate verify failed: unable to get local issuer certificate".
class ssl_error : public os_error {
 public:
  ssl_error(std::error_code ec, std::string_view context, std::string library = {},
            std::string reason = {}, std::string text = {});
  const char* what() const noexcept override { return message_.c_str(); }
  /// Python's `library`: "SSL", "X509", "PEM"... (empty when not OpenSSL's).
  const std::string& library() const noexcept { return library_; }
  /// Python's `reason`: "CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER"...
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string library_;
  std::string reason_;
  std::string message_;
};

/// SSLZeroReturnError: the peer closed the TLS layer with close_notify.
class ssl_zero_return_error : public ssl_error {
  using ssl_error::ssl_error;
};
/// SSLWantReadError: non-blocking, OpenSSL needs input before it can go on.
class ssl_want_read_error : public ssl_error {
  using ssl_error::ssl_error;
};
/// SSLWantWriteError: non-blocking, OpenSSL needs to send before it can go on.
class ssl_want_write_error : public ssl_error {
  using ssl_error::ssl_error;
};
/// SSLSyscallError: an I/O error OpenSSL could not name.
class ssl_syscall_error : public ssl_error {
  using ssl_error::ssl_error;
};
/// SSLEOFError: the connection ended in the middle of the protocol (no
/// close_notify, or during the handshake).
class ssl_eof_error : public ssl_error {
  using ssl_error::ssl_error;
};
/// SSLCertVerificationError: the peer's certificate was refused.
/// verify_code() is OpenSSL's X509_V_ERR_* value (10: expired, 20: unable to
/// get local issuer certificate, 62: hostname mismatch, 64: IP mismatch).
class ssl_cert_verification_error : public ssl_error {
 public:
  ssl_cert_verification_error(std::error_code ec, std::string_view context, std::string library,
                              std::string reason, std::string text, long verify_code,
                              std::string verify_message);
  long verify_code() const noexcept { return verify_code_; }
  const std::string& verify_message() const noexcept { return verify_message_; }

 private:
  long verify_code_;
  std::string verify_message_;
};

// ---------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------

/// PROTOCOL_TLS_CLIENT, PROTOCOL_TLS_SERVER, PROTOCOL_TLS (either role, no
/// verification by default; deprecated in Python, kept for wrap_socket users).
enum class ssl_protocol { tls_client, tls_server, tls };
inline constexpr ssl_protocol protocol_tls_client = ssl_protocol::tls_client;
inline constexpr ssl_protocol protocol_tls_server = ssl_protocol::tls_server;
inline constexpr ssl_protocol protocol_tls = ssl_protocol::tls;

/// Python's VerifyMode: CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED.
enum class verify_mode { cert_none, cert_optional, cert_required };
inline constexpr verify_mode cert_none = verify_mode::cert_none;
inline constexpr verify_mode cert_optional = verify_mode::cert_optional;
inline constexpr verify_mode cert_required = verify_mode::cert_required;

/// Python's TLSVersion; the values are the protocol numbers, as in Python.
enum class tls_version : int {
  minimum_supported = -2,
  maximum_supported = -1,
  sslv3 = 0x300,
  tlsv1 = 0x301,
  tlsv1_1 = 0x302,
  tlsv1_2 = 0x303,
  tlsv1_3 = 0x304,
};

/// Python's Purpose for create_default_context().
enum class ssl_purpose { server_auth, client_auth };

// ---------------------------------------------------------------------------
// Values returned by the connection objects
// ---------------------------------------------------------------------------

/// One relative distinguished name component: ("commonName", "localhost").
using name_attribute = std::pair<std::string, std::string>;
/// Python's subject/issuer: a tuple of RDNs, each a tuple of attributes.
using distinguished_name = std::vector<std::vector<name_attribute>>;

/// Python's getpeercert() dict. An empty value (no subject) is Python's {}:
/// the certificate was not verified (CERT_NONE), so its fields are not given.
struct peer_certificate {
  distinguished_name subject;
  distinguished_name issuer;
  int version = 0;            ///< 3 for X.509v3 (Python counts from 1)
  std::string serial_number;  ///< upper-case hex, as Python's "serialNumber"
  std::string not_before;     ///< "Jan  1 00:00:00 2020 GMT", as Python's "notBefore"
  std::string not_after;      ///< as Python's "notAfter"
  std::chrono::system_clock::time_point not_before_time{};  ///< cert_time_to_seconds(notBefore)
  std::chrono::system_clock::time_point not_after_time{};
  /// ("DNS", "localhost"), ("IP Address", "127.0.0.1"), ("email", ...), ("URI", ...).
  std::vector<std::pair<std::string, std::string>> subject_alt_name;
  bool empty() const noexcept { return subject.empty() && issuer.empty(); }
  /// The value of the first subject attribute named `name` ("commonName"), or "".
  std::string subject_attribute(std::string_view name) const;
};

/// Python's cipher(): (name, protocol version, secret bits).
struct cipher_description {
  std::string name;
  std::string protocol;
  int secret_bits = 0;
};

class ssl_context;

/// Python's SSLSession: a resumable session, shared (copies refer to the same
/// OpenSSL object). Pass it to wrap_socket(..., options.session) to resume.
class ssl_session {
 public:
  ssl_session() = default;
  /// Adopts one reference to `session` (SSL_get1_session's).
  explicit ssl_session(ssl_session_st* session) noexcept;
  ssl_session(const ssl_session& other) noexcept;
  ssl_session& operator=(const ssl_session& other) noexcept;
  ssl_session(ssl_session&& other) noexcept : session_(std::exchange(other.session_, nullptr)) {}
  ssl_session& operator=(ssl_session&& other) noexcept;
  ~ssl_session();

  /// Python's `id`: the session id bytes.
  bytes id() const;
  /// Python's `time`, `timeout`: when it was made and for how long it lives.
  std::chrono::system_clock::time_point time() const;
  std::chrono::seconds timeout() const;
  bool has_ticket() const noexcept;
  ssl_session_st* native_handle() const noexcept { return session_; }
  explicit operator bool() const noexcept { return session_ != nullptr; }

 private:
  ssl_session_st* session_ = nullptr;
};

namespace detail {
struct ssl_context_state;
struct ssl_connection_state;
struct ssl_access;  // the implementation's door into the classes below
}  // namespace detail

/// What Python's SSLObject and SSLSocket share: the TLS connection's state
/// and the questions one asks it. Not used on its own.
class ssl_connection {
 public:
  ssl_connection(ssl_connection&&) noexcept;
  ssl_connection& operator=(ssl_connection&&) noexcept;
  ~ssl_connection();

  /// Python's getpeercert(): std::nullopt before the handshake or when the
  /// peer sent no certificate; an empty() value when it was not verified.
  std::optional<peer_certificate> getpeercert() const;
  /// getpeercert(binary_form=True): the DER bytes (also when not verified).
  std::optional<bytes> getpeercert_der() const;
  /// ("TLS_AES_256_GCM_SHA384", "TLSv1.3", 256), or std::nullopt before the handshake.
  std::optional<cipher_description> cipher() const;
  /// "TLSv1.3", "TLSv1.2"..., or std::nullopt before the handshake.
  std::optional<std::string> version() const;
  /// The ALPN protocol both sides chose, or std::nullopt.
  std::optional<std::string> selected_alpn_protocol() const;
  /// Decrypted bytes buffered inside OpenSSL, readable without I/O.
  std::size_t pending() const;
  /// The session to resume later (client side), or an empty one.
  ssl_session session() const;
  /// True when the handshake resumed an earlier session.
  bool session_reused() const;
  bool server_side() const noexcept;
  /// The name given to wrap_socket/wrap_bio (client), or the SNI name the
  /// client sent (server, after the handshake); "" when none.
  std::string server_hostname() const;
  /// The context in use: after an SNI callback switched it, the new one.
  ssl_context context() const;
  ssl_st* native_handle() const noexcept;

 protected:
  friend struct detail::ssl_access;
  explicit ssl_connection(std::unique_ptr<detail::ssl_connection_state> state) noexcept;
  std::unique_ptr<detail::ssl_connection_state> state_;
};

class ssl_socket;
class ssl_object;
class memory_bio;

/// The options of wrap_socket() after Python's first three arguments.
struct wrap_options {
  /// Handshake in wrap_socket() when the socket is connected (Python's
  /// default); false leaves it to do_handshake() (or the first recv/send).
  bool do_handshake_on_connect = true;
  /// recv() returns "" instead of throwing ssl_eof_error when the peer closes
  /// without close_notify.
  bool suppress_ragged_eofs = true;
  /// A session from an earlier connection to resume (client side).
  ssl_session session{};
};

/// Python's SSLContext. Copies share one OpenSSL context (Python passes the
/// same object around); settings apply to connections made afterwards.
class ssl_context {
 public:
  /// Python's SSLContext(protocol) with Python's defaults for that protocol.
  explicit ssl_context(ssl_protocol protocol);

  /// load_cert_chain(certfile, keyfile=None, password=None): PEM files; the
  /// key may sit in certfile. Throws ssl_error (with OpenSSL's reason, e.g.
  /// "[PEM: NO_START_LINE]") or file_not_found_error for a missing file.
  /// `password` decrypts an encrypted key ("openssl pkey -aes256"); a wrong
  /// one is ssl_error ("[PROV: BAD_DECRYPT]"), none for an encrypted key
  /// ssl_error too: OpenSSL's terminal prompt is never used. A password
  /// longer than OpenSSL's PEM buffer (1024 bytes) is std::invalid_argument
  /// ("password cannot be longer than 1024 bytes"), as Python's ValueError;
  /// like Python, the password is only looked at when the key is encrypted.
  void load_cert_chain(const std::string& certfile, const std::string& keyfile = {},
                       const std::optional<std::string>& password = std::nullopt);
  /// Python's callable password: called (at most once per encrypted PEM
  /// block) only when the key is encrypted. An exception it throws comes
  /// out of load_cert_chain unchanged, as in Python.
  using password_callback_type = std::function<std::string()>;
  void load_cert_chain(const std::string& certfile, const std::string& keyfile,
                       const password_callback_type& password);
  /// load_verify_locations(cafile, capath, cadata): trust these CAs. At least
  /// one must be given (std::invalid_argument otherwise). cadata is PEM text
  /// (Python's str form): one or more certificates; text that holds none,
  /// or a broken certificate after good ones, is ssl_error. capath is a
  /// folder prepared by `openssl rehash` (c_rehash): looked up during each
  /// verification, so a missing or empty folder fails only then.
  void load_verify_locations(const std::string& cafile, const std::string& capath = {},
                             const std::string& cadata = {});
  /// load_verify_locations(cadata=b"...") with bytes: DER certificates, one
  /// after another (Python tells the two cadata forms apart by str/bytes; a
  /// C++ std::string is both, so DER has its own name). Empty is
  /// std::invalid_argument ("Empty certificate data"), bytes that are not
  /// DER certificates ssl_error.
  void load_verify_locations_der(std::string_view cadata);
  /// The system's trust store (/etc/ssl/certs on Debian).
  void set_default_verify_paths();
  /// load_default_certs(purpose): set_default_verify_paths(), as on Linux.
  void load_default_certs(ssl_purpose purpose = ssl_purpose::server_auth);

  pysock::verify_mode verify_mode() const noexcept;
  /// CERT_NONE while check_hostname is on throws std::invalid_argument, as Python.
  void set_verify_mode(pysock::verify_mode mode);
  bool check_hostname() const noexcept;
  /// Turning it on also sets CERT_REQUIRED when verify_mode was CERT_NONE.
  void set_check_hostname(bool check);
  tls_version minimum_version() const noexcept;
  void set_minimum_version(tls_version version);
  tls_version maximum_version() const noexcept;
  void set_maximum_version(tls_version version);
  /// set_ciphers(): an OpenSSL cipher string for TLS 1.2 and below; throws
  /// ssl_error("No cipher can be selected.") when it selects none.
  void set_ciphers(const std::string& ciphers);
  /// The TLS 1.3 cipher suites, OpenSSL's SSL_CTX_set_ciphersuites():
  /// "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256", in order of
  /// preference; "" leaves none, and then needs set_maximum_version(TLS 1.2)
  /// too (an OpenSSL 3.0 server still picks TLS 1.3 and fails every
  /// handshake with NO_CIPHERS_AVAILABLE). Python's ssl has no such method
  /// (set_ciphers() does not touch TLS 1.3 suites there either); pysock adds
  /// it under OpenSSL's name. A list naming no known suite is ssl_error("No
  /// cipher can be selected."), and the suites in use stay as they were;
  /// unknown names next to known ones are skipped, as OpenSSL does.
  void set_ciphersuites(const std::string& ciphersuites);
  /// set_alpn_protocols(["h2", "http/1.1"]): offered (client) or accepted
  /// (server, in this order of preference). Each name 1-255 bytes.
  void set_alpn_protocols(const std::vector<std::string>& protocols);
  /// Python's sni_callback (server side): called during the handshake with
  /// the name the client asked for ("" when none). Returning a context
  /// switches the connection to it (its certificate); std::nullopt keeps the
  /// current one. An exception aborts the handshake with a handshake_failure
  /// alert. An empty function removes the callback.
  using sni_callback_type = std::function<std::optional<ssl_context>(std::string_view)>;
  void set_sni_callback(sni_callback_type callback);
  /// Python's `options` (OP_* bits, OpenSSL's SSL_OP_ values).
  std::uint64_t options() const noexcept;
  void set_options(std::uint64_t options);
  ssl_protocol protocol() const noexcept;

  /// Python's wrap_socket(sock, server_side, server_hostname=...,
  /// do_handshake_on_connect, suppress_ragged_eofs, session). Takes over the
  /// socket. When it is connected and do_handshake_on_connect is set, the
  /// handshake runs here, within the socket's timeout; a non-blocking socket
  /// then throws std::invalid_argument, as Python (pass
  /// do_handshake_on_connect = false and call do_handshake() instead).
  /// A client context with check_hostname needs a server_hostname
  /// (std::invalid_argument otherwise); it is sent as SNI unless it is an IP
  /// address, and checked against the certificate's names.
  ssl_socket wrap_socket(socket sock, bool server_side = false,
                         const std::string& server_hostname = {},
                         const wrap_options& options = {}) const;
  /// Python's wrap_bio(incoming, outgoing, server_side, server_hostname,
  /// session): a TLS connection over two memory buffers, for event loops.
  ssl_object wrap_bio(const memory_bio& incoming, const memory_bio& outgoing,
                      bool server_side = false, const std::string& server_hostname = {},
                      const ssl_session& session = {}) const;

  ssl_ctx_st* native_handle() const noexcept;

 private:
  friend struct detail::ssl_access;
  explicit ssl_context(std::shared_ptr<detail::ssl_context_state> state) noexcept
      : state_(std::move(state)) {}
  std::shared_ptr<detail::ssl_context_state> state_;
};

/// Python's ssl.create_default_context(purpose, cafile, capath, cadata): a
/// client context (server_auth) that trusts the system store, or the given
/// CAs instead; a server context (client_auth) with its defaults.
ssl_context create_default_context(ssl_purpose purpose = ssl_purpose::server_auth,
                                   const std::string& cafile = {}, const std::string& capath = {},
                                   const std::string& cadata = {});

class ssl_stream;

/// Python's SSLSocket: a socket speaking TLS. Move-only; owns the socket.
class ssl_socket : public ssl_connection {
 public:
  ssl_socket(ssl_socket&&) noexcept;
  ssl_socket& operator=(ssl_socket&&) noexcept;
  ~ssl_socket();

  /// Runs (or finishes) the TLS handshake within the socket's timeout.
  /// Throws ssl_cert_verification_error, ssl_eof_error, ssl_error,
  /// timeout_error, ssl_want_read_error/ssl_want_write_error (non-blocking).
  void do_handshake();
  /// Connects the socket, then does the handshake when do_handshake_on_connect.
  void connect(const address& addr);
  /// A listening wrapped socket: accepts and wraps (server side), handshaking
  /// when do_handshake_on_connect, as Python's SSLSocket.accept().
  std::pair<ssl_socket, address> accept();

  /// Up to `bufsize` decrypted bytes; "" at close_notify (or a ragged EOF
  /// with suppress_ragged_eofs). Python's recv has no flags here either.
  bytes recv(std::size_t bufsize = 1024);
  bytes recv(std::size_t bufsize, std::error_code& ec);
  /// Python's read(len): the same as recv().
  bytes read(std::size_t len = 1024) { return recv(len); }
  std::size_t recv_into(mutable_buffer buffer, std::size_t nbytes = 0);
  std::size_t recv_into(mutable_buffer buffer, std::size_t nbytes, std::error_code& ec) noexcept;
  std::size_t recv_into(mutable_buffer buffer, std::error_code& ec) noexcept {
    return recv_into(buffer, 0, ec);
  }
  /// One SSL_write: returns data.size() once it is all written (OpenSSL
  /// writes whole buffers, as in Python). In non-blocking mode a
  /// want_write/want_read must be retried with the same data.
  std::size_t send(const_buffer data);
  std::size_t send(const_buffer data, std::error_code& ec) noexcept;
  std::size_t write(const_buffer data) { return send(data); }
  /// Everything, one deadline for the whole call in timeout mode.
  void sendall(const_buffer data);

  /// Python's unwrap(): sends close_notify, waits for the peer's (within the
  /// timeout) and returns the plain socket, still connected; this object is
  /// closed afterwards.
  socket unwrap();
  /// Python's shutdown(how): drops the TLS layer (no close_notify) and shuts
  /// the TCP connection down.
  void shutdown(int how);
  /// Closes the socket (no close_notify, as Python). Idempotent.
  void close();
  bool closed() const noexcept { return sock_.closed(); }
  int fileno() const noexcept { return sock_.fileno(); }

  void settimeout(timeout_type timeout) { sock_.settimeout(timeout); }
  template <class Rep, class Period>
  void settimeout(std::chrono::duration<Rep, Period> timeout) {
    sock_.settimeout(timeout);
  }
  timeout_type gettimeout() const noexcept { return sock_.gettimeout(); }
  void setblocking(bool flag) { sock_.setblocking(flag); }
  bool getblocking() const noexcept { return sock_.getblocking(); }
  address getpeername() const { return sock_.getpeername(); }
  address getsockname() const { return sock_.getsockname(); }
  /// The socket underneath, for options (setsockopt) and identity. Reading or
  /// writing it directly breaks the TLS stream.
  pysock::socket& sock() noexcept { return sock_; }
  const pysock::socket& sock() const noexcept { return sock_; }

  /// Python's makefile(mode): a std::iostream whose reads and writes go
  /// through this TLS connection. Unlike socket::makefile() it cannot own a
  /// duplicate (TLS state cannot be duplicated): it refers to this object,
  /// which must outlive it and must not be moved while it is in use.
  ssl_stream makefile(std::string_view mode = "r");

 private:
  friend struct detail::ssl_access;
  ssl_socket(std::unique_ptr<detail::ssl_connection_state> state, socket sock) noexcept;
  std::size_t read_some(mutable_buffer buffer, std::error_code& ec) noexcept;
  std::size_t write_all(const_buffer data,
                        std::optional<std::chrono::steady_clock::time_point>* deadline,
                        std::error_code& ec) noexcept;
  [[noreturn]] void fail(const char* call, const std::error_code& ec);
  void arm_io() noexcept;

  socket sock_;
};

/// Python's MemoryBIO: a byte queue OpenSSL reads from or writes to.
/// write() appends (incoming data from the network); read() takes what
/// OpenSSL wrote (outgoing data for the network). Move-only; an ssl_object
/// made from it holds its own reference, so either may go first.
class memory_bio {
 public:
  memory_bio();
  memory_bio(memory_bio&& other) noexcept
      : bio_(std::exchange(other.bio_, nullptr)), eof_written_(other.eof_written_) {}
  memory_bio& operator=(memory_bio&& other) noexcept;
  memory_bio(const memory_bio&) = delete;
  memory_bio& operator=(const memory_bio&) = delete;
  ~memory_bio();

  /// Appends bytes; returns the count. After write_eof() this throws
  /// ssl_error("cannot write() after write_eof()").
  std::size_t write(const_buffer data);
  /// Takes up to `n` bytes (all when n is 0), "" when empty.
  bytes read(std::size_t n = 0);
  /// Takes up to buffer.size() bytes into caller memory; returns the count.
  std::size_t read_into(mutable_buffer buffer) noexcept;
  /// Marks the end of input: OpenSSL then sees EOF once the buffer is drained.
  void write_eof();
  std::size_t pending() const noexcept;
  /// True when write_eof() was called and everything was read.
  bool eof() const noexcept;
  /// pysock's own BIO type (not BIO_s_mem): BIO_read, BIO_write, BIO_gets,
  /// BIO_puts, BIO_pending, BIO_eof, BIO_reset, BIO_get_mem_data and
  /// BIO_set_mem_eof_return work as on a mem BIO; BIO_get_mem_ptr gives
  /// a null BUF_MEM (there is none).
  bio_st* native_handle() const noexcept { return bio_; }

 private:
  bio_st* bio_;
  bool eof_written_ = false;
};

/// Python's SSLObject: the TLS protocol without I/O, over two memory_bio
/// objects. Every call does what it can with the bytes at hand and reports
/// ssl_want_read_error (ssl_errc::want_read) when it needs more input: move
/// outgoing bytes to the network, feed incoming bytes, call again. The base
/// for TLS on the event loop.
class ssl_object : public ssl_connection {
 public:
  ssl_object(ssl_object&&) noexcept;
  ssl_object& operator=(ssl_object&&) noexcept;
  ~ssl_object();

  void do_handshake();
  void do_handshake(std::error_code& ec) noexcept;
  /// Up to `len` decrypted bytes; "" at close_notify. A ragged EOF (the
  /// incoming BIO at EOF without close_notify) throws ssl_eof_error.
  bytes read(std::size_t len = 1024);
  std::size_t read_into(mutable_buffer buffer, std::error_code& ec) noexcept;
  std::size_t read_into(mutable_buffer buffer);
  /// Encrypts all of `data` into the outgoing BIO (memory BIOs never make
  /// OpenSSL wait on output, only on input during a handshake).
  std::size_t write(const_buffer data);
  std::size_t write(const_buffer data, std::error_code& ec) noexcept;
  /// Sends close_notify; completes once the peer's close_notify was read
  /// (ssl_want_read_error until then).
  void unwrap();
  void unwrap(std::error_code& ec) noexcept;

 private:
  friend struct detail::ssl_access;
  explicit ssl_object(std::unique_ptr<detail::ssl_connection_state> state) noexcept;
  [[noreturn]] void fail(const char* call);
};

/// The buffer behind ssl_stream: reads with recv_into(), writes with sendall().
class ssl_streambuf : public std::streambuf {
 public:
  ssl_streambuf(ssl_socket& sock, bool readable, bool writable, std::size_t buffer_size = 16384);
  ~ssl_streambuf() override;
  ssl_streambuf(const ssl_streambuf&) = delete;
  ssl_streambuf& operator=(const ssl_streambuf&) = delete;
  std::error_code error() const noexcept { return error_; }

 protected:
  int_type underflow() override;
  int_type overflow(int_type ch) override;
  int sync() override;
  std::streamsize xsputn(const char_type* data, std::streamsize count) override;

 private:
  bool flush_output();
  ssl_socket* sock_;
  std::vector<char> in_;
  std::vector<char> out_;
  std::error_code error_;
  bool readable_;
  bool writable_;
};

/// Python's SSLSocket.makefile(): a std::iostream over an ssl_socket. A
/// failed read or write sets badbit and error(); with
/// exceptions(std::ios::badbit) the pysock exception itself is thrown.
class ssl_stream : public std::iostream {
 public:
  ssl_stream(ssl_socket& sock, std::string_view mode);
  ssl_stream(ssl_stream&& other) noexcept;
  ~ssl_stream() override;
  std::error_code error() const noexcept { return buffer_ ? buffer_->error() : std::error_code(); }

 private:
  std::unique_ptr<ssl_streambuf> buffer_;
};

// ---------------------------------------------------------------------------
// TLS streams on the event loop: asyncio's ssl= arguments
// ---------------------------------------------------------------------------

/// Python's default ssl_handshake_timeout (60 seconds).
inline constexpr std::chrono::milliseconds default_ssl_handshake_timeout{60000};
/// Python's default ssl_shutdown_timeout (30 seconds, asyncio 3.11): how long
/// a closed TLS stream waits for the peer's close_notify before it closes the
/// socket anyway (see open_connection).
inline constexpr std::chrono::milliseconds default_ssl_shutdown_timeout{30000};

/// asyncio.open_connection(host, port, ssl=ctx, server_hostname=...,
/// ssl_handshake_timeout=..., ssl_shutdown_timeout=...): connects, then runs
/// the TLS handshake on the loop; the streams come back once it is done.
/// server_hostname defaults to `host` (as Python's); pass "" for none (then
/// ctx must not check host names). A refused certificate is
/// ssl_cert_verification_error, a peer that is not speaking TLS ssl_error, a
/// handshake slower than the timeout connection_aborted_error (Python's
/// ConnectionAbortedError).
///
/// ssl_shutdown_timeout (asyncio 3.11): writer.close() sends close_notify
/// once the buffered data is out, then keeps the socket open, dropping any
/// data that still arrives, until the peer's close_notify (or its end of the
/// TCP connection, or an error) comes or the timeout passes; then it closes
/// the socket and wait_closed() returns. A reader waiting at close() time
/// gets EOF at once and the socket closes without waiting, as before.
/// Either timeout zero or negative is std::invalid_argument ("...
/// should be a positive number, got 0"), as asyncio's ValueError; the same
/// for start_server, serve_forever and start_tls.
task<std::pair<stream_reader, stream_writer>> open_connection(
    std::string host, int port, ssl_context ssl,
    std::optional<std::string> server_hostname = std::nullopt, stream_limits limits = {},
    std::chrono::milliseconds ssl_handshake_timeout = default_ssl_handshake_timeout,
    std::chrono::milliseconds ssl_shutdown_timeout = default_ssl_shutdown_timeout);

/// asyncio.start_server(cb, host, port, ssl=ctx, ssl_handshake_timeout=...,
/// ssl_shutdown_timeout=...): every connection's handshake runs before
/// `handler` is called; a client whose handshake fails (plain text, bad
/// certificate, timeout) is dropped without calling it, as asyncio does, and
/// the server goes on serving. A handler's writer.close() waits for the
/// client's close_notify up to ssl_shutdown_timeout, as open_connection's.
task<server> start_server(
    connection_handler handler, std::string host, int port, ssl_context ssl,
    server_config config = {},
    std::chrono::milliseconds ssl_handshake_timeout = default_ssl_handshake_timeout,
    std::chrono::milliseconds ssl_shutdown_timeout = default_ssl_shutdown_timeout);
/// start_server(cb, sock=listener, ssl=ctx).
task<server> start_server(
    connection_handler handler, socket listener, ssl_context ssl, server_config config = {},
    std::chrono::milliseconds ssl_handshake_timeout = default_ssl_handshake_timeout,
    std::chrono::milliseconds ssl_shutdown_timeout = default_ssl_shutdown_timeout);
/// The multi-core serve_forever() with ssl=: each loop's connections
/// handshake before `handler` runs, as start_server(..., ssl).
void serve_forever(connection_handler handler, const std::string& host, int port, ssl_context ssl,
                   serve_options options = {},
                   std::chrono::milliseconds ssl_handshake_timeout = default_ssl_handshake_timeout,
                   std::chrono::milliseconds ssl_shutdown_timeout = default_ssl_shutdown_timeout);

/// Python's StreamWriter.start_tls(sslcontext, server_hostname=...,
/// ssl_handshake_timeout=..., ssl_shutdown_timeout=...) (3.11): turns a plain
/// stream pair into a TLS one in place (STARTTLS), the handshake done on
/// return. Bytes the reader had buffered but not consumed are taken as the
/// start of the TLS data. `server_side` picks the role (Python decides from
/// how the stream was made). close() then waits for the peer's close_notify
/// up to ssl_shutdown_timeout, as open_connection's.
task<void> start_tls(
    stream_writer writer, ssl_context ssl, std::string server_hostname = {},
    bool server_side = false,
    std::chrono::milliseconds ssl_handshake_timeout = default_ssl_handshake_timeout,
    std::chrono::milliseconds ssl_shutdown_timeout = default_ssl_shutdown_timeout);

/// writer.get_extra_info('ssl_object'): the TLS connection of a stream
/// (version(), cipher(), getpeercert()...), or nullptr for a plain stream.
/// Valid while the stream lives.
const ssl_object* get_ssl_object(const stream_writer& writer) noexcept;

}  // namespace pysock
