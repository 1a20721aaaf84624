// SPDX-License-Identifier: MIT
//
// SSLContext: Python's defaults on an SSL_CTX, certificates, verification
// settings, ALPN and the SNI callback, and wrap_socket()/wrap_bio().
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/proverr.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <exception>
#include <stdexcept>

#include "ssl_detail.hpp"

namespace pysock {
namespace {

using detail::ssl_access;
using detail::ssl_connection_state;
using detail::ssl_context_state;

// Python 3.10+'s cipher string for TLS 1.2 and below (TLS 1.3 suites are
// set apart in OpenSSL and keep their defaults, as in Python).
constexpr const char* default_ciphers =
    "@SECLEVEL=2:ECDH+AESGCM:ECDH+CHACHA20:ECDH+AES:DHE+AES:!aNULL:!eNULL:!aDSS:!SHA1:!AESCCM";

// The session id context a server needs before it can resume sessions of
// clients it verified; one value for every pysock server, as Python uses
// "Python" for all of its contexts.
constexpr unsigned char session_id_context[] = "pysock";

int verify_flags(verify_mode mode) {
  switch (mode) {
    case verify_mode::cert_none:
      return SSL_VERIFY_NONE;
    case verify_mode::cert_optional:
      return SSL_VERIFY_PEER;
    case verify_mode::cert_required:
      return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  }
  return SSL_VERIFY_NONE;
}

int servername_callback(SSL* ssl, int* alert, void* arg) {
  auto* context = static_cast<ssl_context_state*>(arg);
  auto* connection =
      static_cast<ssl_connection_state*>(SSL_get_ex_data(ssl, detail::connection_index()));
  if (!context->sni_callback || connection == nullptr) return SSL_TLSEXT_ERR_OK;
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  // An exception must not cross OpenSSL's C frames: it becomes an alert, as
  // an exception in Python's sni_callback does.
  try {
    std::optional<ssl_context> chosen = context->sni_callback(name != nullptr ? name : "");
    if (chosen) {
      const auto& state = ssl_access::state(*chosen);
      if (SSL_set_SSL_CTX(ssl, state->ctx) == nullptr) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
      }
      connection->context = state;
    }
  } catch (...) {
    *alert = SSL_AD_HANDSHAKE_FAILURE;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  return SSL_TLSEXT_ERR_OK;
}

int alpn_select_callback(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                         const unsigned char* in, unsigned int inlen, void* /*arg*/) {
  // The context in use may have been switched by the SNI callback.
  auto* connection =
      static_cast<ssl_connection_state*>(SSL_get_ex_data(ssl, detail::connection_index()));
  if (connection == nullptr || connection->context->alpn_wire.empty()) return SSL_TLSEXT_ERR_NOACK;
  const std::string& ours = connection->context->alpn_wire;
  unsigned char* selected = nullptr;
  // The server's order of preference, as Python's _selectALPN_cb.
  const int status =
      SSL_select_next_proto(&selected, outlen, reinterpret_cast<const unsigned char*>(ours.data()),
                            static_cast<unsigned int>(ours.size()), in, inlen);
  if (status != OPENSSL_NPN_NEGOTIATED) return SSL_TLSEXT_ERR_NOACK;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

bool is_ip_address(const std::string& host) {
  unsigned char buffer[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

void check_readable(const std::string& path, const std::string& context) {
  if (::access(path.c_str(), R_OK) != 0) throw_os_error(last_error(), context);
}

// Where load_cert_chain's password comes from, and what went wrong with it.
// OpenSSL calls password_callback only for an encrypted PEM block.
struct password_source {
  const std::string* fixed = nullptr;
  const ssl_context::password_callback_type* callable = nullptr;
  std::exception_ptr error;  // thrown by the callable, or the length check
};

int password_callback(char* buffer, int size, int /*rwflag*/, void* userdata) {
  auto* source = static_cast<password_source*>(userdata);
  // No password for an encrypted key: fail the read. Returning -1 (instead
  // of leaving OpenSSL's default callback in place) is what keeps OpenSSL
  // from prompting on the terminal, or blocking on a stdin that never ends.
  if (source == nullptr || (source->fixed == nullptr && source->callable == nullptr)) return -1;
  std::string called;
  // An exception must not cross OpenSSL's C frames: it is kept and rethrown
  // by load_cert_chain once OpenSSL has returned.
  try {
    const std::string* password = source->fixed;
    if (source->callable != nullptr) {
      called = (*source->callable)();
      password = &called;
    }
    if (password->size() > static_cast<std::size_t>(size))
      throw std::invalid_argument("password cannot be longer than " + std::to_string(size) +
                                  " bytes");
    std::memcpy(buffer, password->data(), password->size());
    OPENSSL_cleanse(called.data(), called.size());
    return static_cast<int>(password->size());
  } catch (...) {
    OPENSSL_cleanse(called.data(), called.size());
    source->error = std::current_exception();
    return -1;
  }
}

}  // namespace

namespace detail {
int connection_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}
}  // namespace detail

ssl_context::ssl_context(ssl_protocol protocol) : state_(std::make_shared<ssl_context_state>()) {
  ERR_clear_error();
  const SSL_METHOD* method = protocol == ssl_protocol::tls_client   ? TLS_client_method()
                             : protocol == ssl_protocol::tls_server ? TLS_server_method()
                                                                    : TLS_method();
  state_->ctx = SSL_CTX_new(method);
  if (state_->ctx == nullptr)
    detail::throw_from_queue("SSLContext()", "failed to allocate SSL context");
  state_->protocol = protocol;
  SSL_CTX* ctx = state_->ctx;
  // Python's options: OP_ALL without the empty-fragment workaround, no SSLv3,
  // no compression (CRIME), the server's cipher order.
  SSL_CTX_set_options(ctx, (SSL_OP_ALL & ~SSL_OP_DONT_INSERT_EMPTY_FRAGMENTS) | SSL_OP_NO_SSLv3 |
                               SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_cipher_list(ctx, default_ciphers) != 1)
    detail::throw_from_queue("SSLContext()", "No cipher can be selected.");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // As CPython's SSLContext (and nginx): an SSL object returns its ~17 KiB
  // read and write record buffers to the heap whenever they are empty, so an
  // idle connection does not hold them. Many connections at once then touch
  // far less memory (one handshake each: 50 x 34 KiB is past L2).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_id_context(ctx, session_id_context, sizeof session_id_context - 1);
  X509_VERIFY_PARAM_set_hostflags(SSL_CTX_get0_param(ctx), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (protocol == ssl_protocol::tls_client) {
    state_->mode = verify_mode::cert_required;
    state_->check_hostname = true;
  }
  SSL_CTX_set_verify(ctx, verify_flags(state_->mode), nullptr);
  // Installed once: the callbacks read the live settings from the state, so
  // setting a callback or a list later needs no OpenSSL call.
  SSL_CTX_set_tlsext_servername_callback(ctx, servername_callback);
  SSL_CTX_set_tlsext_servername_arg(ctx, state_.get());
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select_callback, nullptr);
}

ssl_context create_default_context(ssl_purpose purpose, const std::string& cafile,
                                   const std::string& capath, const std::string& cadata) {
  ssl_context ctx(purpose == ssl_purpose::server_auth ? ssl_protocol::tls_client
                                                      : ssl_protocol::tls_server);
  if (!cafile.empty() || !capath.empty() || !cadata.empty()) {
    ctx.load_verify_locations(cafile, capath, cadata);
  } else if (purpose == ssl_purpose::server_auth) {
    ctx.load_default_certs(purpose);
  }
  return ctx;
}

namespace {

void load_cert_chain_from(SSL_CTX* ctx, const std::string& certfile, const std::string& keyfile,
                          password_source& source) {
  const std::string context = "load_cert_chain(" + certfile + ")";
  check_readable(certfile, context);
  if (!keyfile.empty()) check_readable(keyfile, "load_cert_chain(" + keyfile + ")");
  ERR_clear_error();
  // The password callback points at `source` only for this call; it is
  // always ours, so OpenSSL's own (a terminal prompt) never runs.
  SSL_CTX_set_default_passwd_cb(ctx, password_callback);
  SSL_CTX_set_default_passwd_cb_userdata(ctx, &source);
  struct reset_callback {
    SSL_CTX* ctx;
    ~reset_callback() {
      SSL_CTX_set_default_passwd_cb(ctx, nullptr);
      SSL_CTX_set_default_passwd_cb_userdata(ctx, nullptr);
    }
  } reset{ctx};
  // The callback's own failure (its exception, an over-long password) is
  // the error to report, not what OpenSSL made of the -1 it got.
  const auto fail = [&source](const std::string& where, std::string_view fallback) {
    if (source.error) {
      ERR_clear_error();
      std::rethrow_exception(source.error);
    }
    detail::throw_from_queue(where, fallback);
  };
  if (SSL_CTX_use_certificate_chain_file(ctx, certfile.c_str()) != 1) fail(context, "PEM lib");
  const std::string& key = keyfile.empty() ? certfile : keyfile;
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (!source.error && source.fixed == nullptr && source.callable == nullptr) {
      // OpenSSL's reason for a key it could not decrypt without a password
      // is a bare "bad decrypt" or "unsupported": say what is missing.
      const unsigned long packed = ERR_peek_last_error();
      const bool encrypted = [&key] {
        BIO* bio = BIO_new_file(key.c_str(), "r");
        if (bio == nullptr) return false;
        char line[128];
        bool found = false;
        for (int i = 0; i < 10000 && !found && BIO_gets(bio, line, sizeof line) > 0; ++i)
          found = std::strstr(line, "ENCRYPTED") != nullptr;
        BIO_free(bio);
        return found;
      }();
      if (encrypted) {
        ERR_clear_error();
        throw ssl_error(make_error_code(ssl_errc::ssl), "load_cert_chain(" + key + ")",
                        detail::library_name(packed), detail::reason_mnemonic(packed),
                        "the private key is encrypted and no password was given");
      }
    }
    if (!source.error) {
      // A wrong password ends in the cipher's padding check: OpenSSL then
      // reports "PEM lib" last, which says nothing; the decrypt failure
      // further down the queue is the useful part.
      const unsigned long last = ERR_peek_last_error();
      for (unsigned long packed; (packed = ERR_get_error()) != 0;) {
        if (ERR_GET_LIB(packed) == ERR_LIB_PROV && ERR_GET_REASON(packed) == PROV_R_BAD_DECRYPT) {
          ERR_clear_error();
          throw ssl_error(make_error_code(ssl_errc::ssl), "load_cert_chain(" + key + ")",
                          detail::library_name(packed), detail::reason_mnemonic(packed),
                          "bad decrypt: wrong password for the private key");
        }
      }
      // Only the last error is reported (throw_from_queue): put it back.
      if (last != 0) ERR_put_error(ERR_GET_LIB(last), 0, ERR_GET_REASON(last), nullptr, 0);
    }
    fail("load_cert_chain(" + key + ")", "PEM lib");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) detail::throw_from_queue(context, "key values mismatch");
}

}  // namespace

void ssl_context::load_cert_chain(const std::string& certfile, const std::string& keyfile,
                                  const std::optional<std::string>& password) {
  password_source source;
  if (password) source.fixed = &*password;
  load_cert_chain_from(state_->ctx, certfile, keyfile, source);
}

void ssl_context::load_cert_chain(const std::string& certfile, const std::string& keyfile,
                                  const password_callback_type& password) {
  if (!password) throw std::invalid_argument("load_cert_chain: empty password callback");
  password_source source;
  source.callable = &password;
  load_cert_chain_from(state_->ctx, certfile, keyfile, source);
}

namespace {

// Python's _add_ca_certs(): every certificate in `data` into the store.
// PEM: the loop ends when no further "-----BEGIN" is found, which is the
// expected end; any other error (a broken certificate after good ones) fails
// the call. DER: certificates back to back, each parsed from where the last
// one ended, so trailing bytes that are not a whole certificate are caught.
void add_ca_certs(SSL_CTX* ctx, std::string_view data, bool der) {
  const char* context = der ? "load_verify_locations(cadata=DER)" : "load_verify_locations(cadata)";
  if (data.size() > static_cast<std::size_t>(INT_MAX))
    throw std::length_error(std::string(context) + ": certificate data is too long");
  ERR_clear_error();
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  const auto add = [store, context](X509* cert) {
    const int ok = X509_STORE_add_cert(store, cert);
    X509_free(cert);
    if (ok == 1) return;
    const unsigned long packed = ERR_peek_last_error();
    // The same CA twice is not an error (Python skips it too).
    if (ERR_GET_LIB(packed) != ERR_LIB_X509 ||
        ERR_GET_REASON(packed) != X509_R_CERT_ALREADY_IN_HASH_TABLE)
      detail::throw_from_queue(context, "cannot add certificate");
    ERR_clear_error();
  };
  int loaded = 0;
  if (der) {
    const auto* next = reinterpret_cast<const unsigned char*>(data.data());
    const auto* const end = next + data.size();
    while (next < end) {
      X509* cert = d2i_X509(nullptr, &next, static_cast<long>(end - next));
      if (cert == nullptr) {
        if (loaded == 0 && ERR_peek_last_error() == 0) break;
        detail::throw_from_queue(context, "not a DER certificate");
      }
      add(cert);
      ++loaded;
    }
    if (loaded > 0) return;
    ERR_clear_error();
    throw ssl_error(make_error_code(ssl_errc::ssl), context, "ASN1", "NOT_ENOUGH_DATA",
                    "not enough data: cadata does not contain a certificate");
  }
  BIO* bio = BIO_new_mem_buf(data.data(), static_cast<int>(data.size()));
  if (bio == nullptr) detail::throw_from_queue(context, "out of memory");
  struct free_bio {
    BIO* bio;
    ~free_bio() { BIO_free(bio); }
  } owner{bio};
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    add(cert);
    ++loaded;
  }
  const unsigned long packed = ERR_peek_last_error();
  const bool at_end =
      ERR_GET_LIB(packed) == ERR_LIB_PEM && ERR_GET_REASON(packed) == PEM_R_NO_START_LINE;
  if (loaded > 0 && at_end) {
    ERR_clear_error();
    return;
  }
  if (loaded == 0 && (packed == 0 || at_end)) {
    ERR_clear_error();
    // Python's text for data without a single certificate.
    throw ssl_error(make_error_code(ssl_errc::ssl), context, "PEM", "NO_START_LINE",
                    "no start line: cadata does not contain a certificate");
  }
  detail::throw_from_queue(context, "cannot read certificate");
}

}  // namespace

void ssl_context::load_verify_locations(const std::string& cafile, const std::string& capath,
                                        const std::string& cadata) {
  if (cafile.empty() && capath.empty() && cadata.empty())
    throw std::invalid_argument("cafile, capath and cadata cannot be all omitted");
  ERR_clear_error();
  if (!cafile.empty() || !capath.empty()) {
    const std::string context = "load_verify_locations(" + (cafile.empty() ? capath : cafile) + ")";
    if (!cafile.empty()) check_readable(cafile, context);
    if (SSL_CTX_load_verify_locations(state_->ctx, cafile.empty() ? nullptr : cafile.c_str(),
                                      capath.empty() ? nullptr : capath.c_str()) != 1)
      detail::throw_from_queue(context, "no certificates loaded");
  }
  if (!cadata.empty()) add_ca_certs(state_->ctx, cadata, false);
}

void ssl_context::load_verify_locations_der(std::string_view cadata) {
  if (cadata.empty()) throw std::invalid_argument("Empty certificate data");
  add_ca_certs(state_->ctx, cadata, true);
}

void ssl_context::set_default_verify_paths() {
  ERR_clear_error();
  if (SSL_CTX_set_default_verify_paths(state_->ctx) != 1)
    detail::throw_from_queue("set_default_verify_paths()", "cannot load the default paths");
}

void ssl_context::load_default_certs(ssl_purpose) { set_default_verify_paths(); }

pysock::verify_mode ssl_context::verify_mode() const noexcept { return state_->mode; }

void ssl_context::set_verify_mode(pysock::verify_mode mode) {
  if (mode == verify_mode::cert_none && state_->check_hostname)
    throw std::invalid_argument(
        "Cannot set verify_mode to CERT_NONE when check_hostname is enabled.");
  state_->mode = mode;
  SSL_CTX_set_verify(state_->ctx, verify_flags(mode), nullptr);
}

bool ssl_context::check_hostname() const noexcept { return state_->check_hostname; }

void ssl_context::set_check_hostname(bool check) {
  if (check && state_->mode == verify_mode::cert_none) set_verify_mode(verify_mode::cert_required);
  state_->check_hostname = check;
}

namespace {
tls_version from_openssl_version(long v, bool minimum) {
  if (v == 0) return minimum ? tls_version::minimum_supported : tls_version::maximum_supported;
  return static_cast<tls_version>(v);
}
int to_openssl_version(tls_version v) {
  switch (v) {
    case tls_version::minimum_supported:
    case tls_version::maximum_supported:
      return 0;  // no bound
    case tls_version::sslv3:
    case tls_version::tlsv1:
    case tls_version::tlsv1_1:
    case tls_version::tlsv1_2:
    case tls_version::tlsv1_3:
      return static_cast<int>(v);
  }
  throw std::invalid_argument("Unsupported TLS/SSL version " + std::to_string(static_cast<int>(v)));
}
}  // namespace

tls_version ssl_context::minimum_version() const noexcept {
  return from_openssl_version(SSL_CTX_get_min_proto_version(state_->ctx), true);
}

void ssl_context::set_minimum_version(tls_version version) {
  if (SSL_CTX_set_min_proto_version(state_->ctx, to_openssl_version(version)) != 1)
    throw std::invalid_argument("Unsupported protocol version " +
                                std::to_string(static_cast<int>(version)));
}

tls_version ssl_context::maximum_version() const noexcept {
  return from_openssl_version(SSL_CTX_get_max_proto_version(state_->ctx), false);
}

void ssl_context::set_maximum_version(tls_version version) {
  if (SSL_CTX_set_max_proto_version(state_->ctx, to_openssl_version(version)) != 1)
    throw std::invalid_argument("Unsupported protocol version " +
                                std::to_string(static_cast<int>(version)));
}

void ssl_context::set_ciphers(const std::string& ciphers) {
  ERR_clear_error();
  if (SSL_CTX_set_cipher_list(state_->ctx, ciphers.c_str()) != 1) {
    ERR_clear_error();
    // Python's message for a string that selects nothing.
    throw ssl_error(make_error_code(ssl_errc::ssl), "set_ciphers(" + ciphers + ")", {}, {},
                    "No cipher can be selected.");
  }
}

void ssl_context::set_ciphersuites(const std::string& ciphersuites) {
  ERR_clear_error();
  if (SSL_CTX_set_ciphersuites(state_->ctx, ciphersuites.c_str()) != 1) {
    ERR_clear_error();
    throw ssl_error(make_error_code(ssl_errc::ssl), "set_ciphersuites(" + ciphersuites + ")", {},
                    {}, "No cipher can be selected.");
  }
}

void ssl_context::set_alpn_protocols(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const std::string& name : protocols) {
    if (name.empty() || name.size() > 255)
      throw std::invalid_argument("ALPN protocol name must be 1-255 bytes: '" + name + "'");
    wire += static_cast<char>(name.size());
    wire += name;
  }
  // Client side: offered in the ClientHello (0 means success here).
  if (SSL_CTX_set_alpn_protos(state_->ctx, reinterpret_cast<const unsigned char*>(wire.data()),
                              static_cast<unsigned int>(wire.size())) != 0)
    throw std::invalid_argument("set_alpn_protocols(): OpenSSL refused the list");
  state_->alpn_wire = std::move(wire);  // server side: read by alpn_select_callback
}

void ssl_context::set_sni_callback(sni_callback_type callback) {
  state_->sni_callback = std::move(callback);
}

std::uint64_t ssl_context::options() const noexcept { return SSL_CTX_get_options(state_->ctx); }

void ssl_context::set_options(std::uint64_t options) {
  const std::uint64_t current = SSL_CTX_get_options(state_->ctx);
  SSL_CTX_clear_options(state_->ctx, current & ~options);
  SSL_CTX_set_options(state_->ctx, options);
}

ssl_protocol ssl_context::protocol() const noexcept { return state_->protocol; }

ssl_ctx_st* ssl_context::native_handle() const noexcept { return state_->ctx; }

namespace {

// The SSL object and its settings, shared by wrap_socket() and wrap_bio().
std::unique_ptr<ssl_connection_state> new_connection(
    const std::shared_ptr<ssl_context_state>& context, bool server_side,
    const std::string& server_hostname, const ssl_session& session, const char* call) {
  if (server_side && context->protocol == ssl_protocol::tls_client)
    throw std::invalid_argument("Cannot create a server socket with a PROTOCOL_TLS_CLIENT context");
  if (!server_side && context->protocol == ssl_protocol::tls_server)
    throw std::invalid_argument("Cannot create a client socket with a PROTOCOL_TLS_SERVER context");
  if (server_side && !server_hostname.empty())
    throw std::invalid_argument("server_hostname can only be specified in client mode");
  if (!server_side && context->check_hostname && server_hostname.empty())
    throw std::invalid_argument("check_hostname requires server_hostname");
  if (!server_hostname.empty() && server_hostname.front() == '.')
    throw std::invalid_argument("server_hostname cannot start with a dot");
  if (server_side && session)
    throw std::invalid_argument("Cannot set session for server-side SSLSocket");

  auto state = std::make_unique<ssl_connection_state>();
  state->context = context;
  state->server_side = server_side;
  state->server_hostname = server_hostname;
  detail::clear_error_queue();
  state->ssl = SSL_new(context->ctx);
  if (state->ssl == nullptr) detail::throw_from_queue(call, "SSL_new failed");
  SSL* ssl = state->ssl;
  SSL_set_ex_data(ssl, detail::connection_index(), state.get());
  // CPython's modes: SSL_write may be retried with a moved buffer (ours can
  // be reallocated between a want_write and the retry), and a blocking read
  // goes on by itself over post-handshake messages (TLS 1.3 tickets).
  SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_AUTO_RETRY);
  if (server_side) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
    if (!server_hostname.empty()) {
      const bool ip = is_ip_address(server_hostname);
      // SNI carries host names only (RFC 6066), never addresses.
      if (!ip && SSL_set_tlsext_host_name(ssl, server_hostname.c_str()) != 1)
        detail::throw_from_queue(call, "invalid server_hostname");
      if (context->check_hostname) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        const int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, server_hostname.c_str())
                          : X509_VERIFY_PARAM_set1_host(param, server_hostname.c_str(), 0);
        if (ok != 1) detail::throw_from_queue(call, "invalid server_hostname");
      }
    }
    if (session && SSL_set_session(ssl, session.native_handle()) != 1)
      detail::throw_from_queue(call, "cannot set session");
  }
  return state;
}

}  // namespace

ssl_socket ssl_context::wrap_socket(socket sock, bool server_side,
                                    const std::string& server_hostname,
                                    const wrap_options& options) const {
  if (sock.type() != SOCK_STREAM) throw std::invalid_argument("only stream sockets are supported");
  auto state =
      new_connection(state_, server_side, server_hostname, options.session, "wrap_socket()");
  state->suppress_ragged_eofs = options.suppress_ragged_eofs;
  state->do_handshake_on_connect = options.do_handshake_on_connect;
  bool connected = false;
  if (!sock.closed()) {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    connected = ::getpeername(sock.fileno(), reinterpret_cast<sockaddr*>(&peer), &length) == 0;
  }
  if (connected && options.do_handshake_on_connect) {
    const timeout_type timeout = sock.gettimeout();
    if (timeout && timeout->count() == 0)
      throw std::invalid_argument(
          "do_handshake_on_connect should not be specified for non-blocking sockets");
  }
  ssl_socket result = ssl_access::make_socket(std::move(state), std::move(sock));
  if (connected && options.do_handshake_on_connect) result.do_handshake();
  return result;
}

ssl_object ssl_context::wrap_bio(const memory_bio& incoming, const memory_bio& outgoing,
                                 bool server_side, const std::string& server_hostname,
                                 const ssl_session& session) const {
  auto state = new_connection(state_, server_side, server_hostname, session, "wrap_bio()");
  BIO* in = incoming.native_handle();
  BIO* out = outgoing.native_handle();
  // SSL_set_bio takes one reference to each; the memory_bio objects keep theirs.
  // (Only one when both are the same BIO.)
  BIO_up_ref(in);
  if (out != in) BIO_up_ref(out);
  SSL_set_bio(state->ssl, in, out);
  return ssl_access::make_object(std::move(state));
}

}  // namespace pysock
