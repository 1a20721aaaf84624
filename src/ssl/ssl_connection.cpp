// SPDX-License-Identifier: MIT
//
// What SSLSocket and SSLObject share (getpeercert, cipher, version, ALPN,
// sessions), SSLSession, and the memory-BIO pair: MemoryBIO and SSLObject.
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <stdexcept>

#include "ssl_detail.hpp"

namespace pysock {

using detail::ssl_access;
using detail::ssl_connection_state;

// --- ssl_session ------------------------------------------------------------------

ssl_session::ssl_session(ssl_session_st* session) noexcept : session_(session) {}

ssl_session::ssl_session(const ssl_session& other) noexcept : session_(other.session_) {
  if (session_ != nullptr) SSL_SESSION_up_ref(session_);
}

ssl_session& ssl_session::operator=(const ssl_session& other) noexcept {
  if (this != &other) {
    if (other.session_ != nullptr) SSL_SESSION_up_ref(other.session_);
    SSL_SESSION_free(session_);
    session_ = other.session_;
  }
  return *this;
}

ssl_session& ssl_session::operator=(ssl_session&& other) noexcept {
  if (this != &other) {
    SSL_SESSION_free(session_);
    session_ = std::exchange(other.session_, nullptr);
  }
  return *this;
}

ssl_session::~ssl_session() { SSL_SESSION_free(session_); }

bytes ssl_session::id() const {
  if (session_ == nullptr) return {};
  unsigned int length = 0;
  const unsigned char* id = SSL_SESSION_get_id(session_, &length);
  return bytes(reinterpret_cast<const char*>(id), length);
}

std::chrono::system_clock::time_point ssl_session::time() const {
  if (session_ == nullptr) return {};
  return std::chrono::system_clock::from_time_t(
      static_cast<std::time_t>(SSL_SESSION_get_time(session_)));
}

std::chrono::seconds ssl_session::timeout() const {
  if (session_ == nullptr) return std::chrono::seconds(0);
  return std::chrono::seconds(SSL_SESSION_get_timeout(session_));
}

bool ssl_session::has_ticket() const noexcept {
  return session_ != nullptr && SSL_SESSION_has_ticket(session_) == 1;
}

// --- ssl_connection ---------------------------------------------------------------

ssl_connection::ssl_connection(std::unique_ptr<ssl_connection_state> state) noexcept
    : state_(std::move(state)) {}
ssl_connection::ssl_connection(ssl_connection&&) noexcept = default;
ssl_connection& ssl_connection::operator=(ssl_connection&&) noexcept = default;
ssl_connection::~ssl_connection() = default;

namespace {

std::string to_utf8(const ASN1_STRING* value) {
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, value);
  if (length < 0) {
    ERR_clear_error();
    return {};
  }
  std::string text(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(length));
  OPENSSL_free(utf8);
  return text;
}

// Python's _create_tuple_for_X509_NAME: attributes grouped by their RDN (a
// multi-valued RDN is one group), each named by its long name.
distinguished_name name_tuple(const X509_NAME* name) {
  distinguished_name result;
  int last_set = -1;
  const int count = X509_NAME_entry_count(name);
  for (int i = 0; i < count; ++i) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    const int set = X509_NAME_ENTRY_set(entry);
    if (set != last_set || result.empty()) result.emplace_back();
    last_set = set;
    char object_name[128];
    OBJ_obj2txt(object_name, sizeof object_name, X509_NAME_ENTRY_get_object(entry), 0);
    result.back().emplace_back(object_name, to_utf8(X509_NAME_ENTRY_get_data(entry)));
  }
  return result;
}

std::string print_time(const ASN1_TIME* time) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return {};
  ASN1_TIME_print(bio, time);
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  std::string text(data, static_cast<std::size_t>(length > 0 ? length : 0));
  BIO_free(bio);
  return text;
}

std::chrono::system_clock::time_point to_time_point(const ASN1_TIME* time) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(time, &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(::timegm(&tm));
}

std::vector<std::pair<std::string, std::string>> alt_names(X509* cert) {
  std::vector<std::pair<std::string, std::string>> result;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return result;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    switch (name->type) {
      case GEN_DNS:
        result.emplace_back("DNS", to_utf8(name->d.dNSName));
        break;
      case GEN_EMAIL:
        result.emplace_back("email", to_utf8(name->d.rfc822Name));
        break;
      case GEN_URI:
        result.emplace_back("URI", to_utf8(name->d.uniformResourceIdentifier));
        break;
      case GEN_IPADD: {
        // Python prints IPv6 in full, upper case, colon separated per 16 bits.
        const ASN1_OCTET_STRING* ip = name->d.iPAddress;
        const unsigned char* p = ASN1_STRING_get0_data(ip);
        std::string text;
        if (ASN1_STRING_length(ip) == 4) {
          // Appended piece by piece: GCC 12's -Wrestrict misfires at -O3 on
          // `const char* + std::string` (GCC bug 105329).
          for (int b = 0; b < 4; ++b) {
            if (b > 0) text += '.';
            text += std::to_string(p[b]);
          }
        } else if (ASN1_STRING_length(ip) == 16) {
          char group[8];
          for (int b = 0; b < 16; b += 2) {
            std::snprintf(group, sizeof group, "%X", (p[b] << 8) | p[b + 1]);
            if (b > 0) text += ':';
            text += group;
          }
        } else {
          text = "<invalid>";
        }
        result.emplace_back("IP Address", text);
        break;
      }
      default:
        result.emplace_back("othername", "<unsupported>");
        break;
    }
  }
  GENERAL_NAMES_free(names);
  return result;
}

}  // namespace

std::string peer_certificate::subject_attribute(std::string_view name) const {
  for (const auto& rdn : subject)
    for (const auto& [key, value] : rdn)
      if (key == name) return value;
  return {};
}

std::optional<peer_certificate> ssl_connection::getpeercert() const {
  if (!state_ || SSL_is_init_finished(state_->ssl) != 1) return std::nullopt;
  X509* cert = SSL_get1_peer_certificate(state_->ssl);
  if (cert == nullptr) return std::nullopt;
  peer_certificate result;
  // Python returns {} for a certificate nobody verified.
  if ((SSL_get_verify_mode(state_->ssl) & SSL_VERIFY_PEER) != 0) {
    result.subject = name_tuple(X509_get_subject_name(cert));
    result.issuer = name_tuple(X509_get_issuer_name(cert));
    result.version = static_cast<int>(X509_get_version(cert)) + 1;
    if (BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
      if (char* hex = BN_bn2hex(serial)) {
        result.serial_number = hex;
        OPENSSL_free(hex);
      }
      BN_free(serial);
    }
    result.not_before = print_time(X509_get0_notBefore(cert));
    result.not_after = print_time(X509_get0_notAfter(cert));
    result.not_before_time = to_time_point(X509_get0_notBefore(cert));
    result.not_after_time = to_time_point(X509_get0_notAfter(cert));
    result.subject_alt_name = alt_names(cert);
  }
  X509_free(cert);
  ERR_clear_error();
  return result;
}

std::optional<bytes> ssl_connection::getpeercert_der() const {
  if (!state_ || SSL_is_init_finished(state_->ssl) != 1) return std::nullopt;
  X509* cert = SSL_get1_peer_certificate(state_->ssl);
  if (cert == nullptr) return std::nullopt;
  unsigned char* der = nullptr;
  const int length = i2d_X509(cert, &der);
  X509_free(cert);
  if (length < 0) {
    ERR_clear_error();
    return std::nullopt;
  }
  bytes result(reinterpret_cast<const char*>(der), static_cast<std::size_t>(length));
  OPENSSL_free(der);
  return result;
}

std::optional<cipher_description> ssl_connection::cipher() const {
  if (!state_) return std::nullopt;
  const SSL_CIPHER* current = SSL_get_current_cipher(state_->ssl);
  if (current == nullptr) return std::nullopt;
  cipher_description result;
  result.name = SSL_CIPHER_get_name(current);
  result.protocol = SSL_CIPHER_get_version(current);
  result.secret_bits = SSL_CIPHER_get_bits(current, nullptr);
  return result;
}

std::optional<std::string> ssl_connection::version() const {
  if (!state_ || SSL_is_init_finished(state_->ssl) != 1) return std::nullopt;
  return std::string(SSL_get_version(state_->ssl));
}

std::optional<std::string> ssl_connection::selected_alpn_protocol() const {
  if (!state_) return std::nullopt;
  const unsigned char* data = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(state_->ssl, &data, &length);
  if (data == nullptr || length == 0) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(data), length);
}

std::size_t ssl_connection::pending() const {
  if (!state_) return 0;
  const int n = SSL_pending(state_->ssl);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

ssl_session ssl_connection::session() const {
  if (!state_) return {};
  return ssl_session(SSL_get1_session(state_->ssl));
}

bool ssl_connection::session_reused() const {
  return state_ && SSL_session_reused(state_->ssl) == 1;
}

bool ssl_connection::server_side() const noexcept { return state_ && state_->server_side; }

std::string ssl_connection::server_hostname() const {
  if (!state_) return {};
  if (state_->server_side) {
    const char* name = SSL_get_servername(state_->ssl, TLSEXT_NAMETYPE_host_name);
    return name != nullptr ? name : "";
  }
  return state_->server_hostname;
}

ssl_context ssl_connection::context() const {
  if (!state_) throw std::logic_error("ssl_connection::context(): moved-from object");
  return ssl_access::make_context(state_->context);
}

ssl_st* ssl_connection::native_handle() const noexcept { return state_ ? state_->ssl : nullptr; }

// --- memory_bio -------------------------------------------------------------------

memory_bio::memory_bio() : bio_(detail::new_memory_bio()) {
  // An empty buffer means "no data yet" (retry), not end of file, until
  // write_eof(): Python's MemoryBIO does the same. That is the BIO's default.
  if (bio_ == nullptr) throw std::bad_alloc();
}

memory_bio& memory_bio::operator=(memory_bio&& other) noexcept {
  if (this != &other) {
    BIO_free(bio_);
    bio_ = std::exchange(other.bio_, nullptr);
    eof_written_ = other.eof_written_;
  }
  return *this;
}

memory_bio::~memory_bio() { BIO_free(bio_); }

std::size_t memory_bio::write(const_buffer data) {
  if (bio_ == nullptr) throw std::logic_error("memory_bio: moved-from object");
  if (eof_written_)
    throw ssl_error(make_error_code(ssl_errc::eof), "MemoryBIO.write()", {}, {},
                    "cannot write() after write_eof()");
  if (data.size() > static_cast<std::size_t>(INT_MAX))
    throw std::out_of_range("string longer than 2147483647 bytes");
  if (!detail::memory_bio_append(bio_, reinterpret_cast<const char*>(data.data()), data.size()))
    throw std::bad_alloc();
  return data.size();
}

std::size_t memory_bio::read_into(mutable_buffer buffer) noexcept {
  if (bio_ == nullptr) return 0;
  return detail::memory_bio_take(bio_, reinterpret_cast<char*>(buffer.data()), buffer.size());
}

bytes memory_bio::read(std::size_t n) {
  const std::size_t available = pending();
  const std::size_t take = n == 0 ? available : std::min(n, available);
  bytes data(take, '\0');
  data.resize(read_into(data));
  return data;
}

void memory_bio::write_eof() {
  if (bio_ == nullptr) return;
  eof_written_ = true;
  // An empty buffer now reads as end of file.
  detail::memory_bio_set_eof_return(bio_, 0);
}

std::size_t memory_bio::pending() const noexcept {
  return bio_ == nullptr ? 0 : detail::memory_bio_pending(bio_);
}

bool memory_bio::eof() const noexcept { return eof_written_ && pending() == 0; }

// --- ssl_object -------------------------------------------------------------------

ssl_object ssl_access::make_object(std::unique_ptr<ssl_connection_state> s) {
  return ssl_object(std::move(s));
}

ssl_object::ssl_object(std::unique_ptr<ssl_connection_state> state) noexcept
    : ssl_connection(std::move(state)) {}
ssl_object::ssl_object(ssl_object&&) noexcept = default;
ssl_object& ssl_object::operator=(ssl_object&&) noexcept = default;
ssl_object::~ssl_object() = default;

void ssl_object::fail(const char* call) { detail::throw_failure(*state_, call); }

namespace {

using stall_kind = detail::input_stall::kind;

// True when the last call of kind `op` ended in want_read and nothing that
// OpenSSL could read has arrived since (see detail::input_stall); the
// failure is then set as that call set it. Any other call forgets the stall.
bool still_stalled(ssl_connection_state& s, stall_kind op, std::error_code& ec) noexcept {
  const detail::input_stall& stall = s.stall;
  if (stall.op != op) {
    s.stall.op = stall_kind::none;
    return false;
  }
  const BIO* rbio = SSL_get_rbio(s.ssl);
  // A KeyUpdate or renegotiation asked for through native_handle() is sent
  // by the next call: that one must reach OpenSSL.
  if (rbio != stall.bio || detail::memory_bio_generation(rbio) != stall.generation ||
      SSL_get_state(s.ssl) != stall.state ||
      SSL_get_key_update_type(s.ssl) != SSL_KEY_UPDATE_NONE ||
      SSL_renegotiate_pending(s.ssl) != 0) {
    s.stall.op = stall_kind::none;
    return false;
  }
  s.failure = {};
  s.failure.ec = ssl_errc::want_read;
  ec = ssl_errc::want_read;
  return true;
}

// Only a stall with the BIO drained counts: OpenSSL then has no input left
// but a record or handshake message it cannot finish (it processes every
// whole record before it asks for more, and without SSL_MODE_AUTO_RETRY
// reports want_read after a non-data record only when its own buffer is
// empty), so without new bytes its answer cannot change.
void note_stall(ssl_connection_state& s, stall_kind op, const std::error_code& ec) noexcept {
  if (ec != ssl_errc::want_read) return;
  const BIO* rbio = SSL_get_rbio(s.ssl);
  if (!detail::is_memory_bio(rbio) || detail::memory_bio_pending(rbio) != 0) return;
  s.stall.op = op;
  s.stall.bio = rbio;
  s.stall.generation = detail::memory_bio_generation(rbio);
  s.stall.state = SSL_get_state(s.ssl);
}

}  // namespace

void ssl_object::do_handshake(std::error_code& ec) noexcept {
  if (still_stalled(*state_, stall_kind::handshake, ec)) return;
  detail::clear_error_queue();
  const int ret = SSL_do_handshake(state_->ssl);
  if (ret == 1) {
    ec.clear();
    return;
  }
  ec = detail::classify(*state_, ret);
  note_stall(*state_, stall_kind::handshake, ec);
}

void ssl_object::do_handshake() {
  std::error_code ec;
  do_handshake(ec);
  if (ec) fail("do_handshake()");
}

std::size_t ssl_object::read_into(mutable_buffer buffer, std::error_code& ec) noexcept {
  ec.clear();
  if (buffer.empty()) return 0;
  if (still_stalled(*state_, stall_kind::read, ec)) return 0;
  detail::clear_error_queue();
  std::size_t n = 0;
  const int ret = SSL_read_ex(state_->ssl, buffer.data(), buffer.size(), &n);
  if (ret == 1) return n;
  ec = detail::classify(*state_, ret);
  note_stall(*state_, stall_kind::read, ec);
  // close_notify received: end of data, as Python's read() returning b"".
  if (ec == ssl_errc::zero_return && (SSL_get_shutdown(state_->ssl) & SSL_RECEIVED_SHUTDOWN) != 0)
    ec.clear();
  return 0;
}

std::size_t ssl_object::read_into(mutable_buffer buffer) {
  std::error_code ec;
  const std::size_t n = read_into(buffer, ec);
  if (ec) fail("read()");
  return n;
}

bytes ssl_object::read(std::size_t len) {
  bytes data(len, '\0');
  data.resize(read_into(data));
  return data;
}

std::size_t ssl_object::write(const_buffer data, std::error_code& ec) noexcept {
  ec.clear();
  state_->stall.op = stall_kind::none;
  detail::clear_error_queue();
  std::size_t n = 0;
  const int ret = SSL_write_ex(state_->ssl, data.data(), data.size(), &n);
  if (ret == 1) return n;
  ec = detail::classify(*state_, ret);
  return 0;
}

std::size_t ssl_object::write(const_buffer data) {
  std::error_code ec;
  const std::size_t n = write(data, ec);
  if (ec) fail("write()");
  return n;
}

void ssl_object::unwrap(std::error_code& ec) noexcept {
  ec.clear();
  state_->stall.op = stall_kind::none;
  detail::clear_error_queue();
  // The first call sends close_notify (returns 0 until the peer's arrives);
  // a second one reads the peer's, if it is already in the incoming BIO.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int ret = SSL_shutdown(state_->ssl);
    if (ret == 1) return;
    if (ret < 0) {
      ec = detail::classify(*state_, ret);
      return;
    }
  }
  // close_notify sent; the peer's has not come yet.
  state_->failure = {};
  state_->failure.ec = ssl_errc::want_read;
  ec = ssl_errc::want_read;
}

void ssl_object::unwrap() {
  std::error_code ec;
  unwrap(ec);
  if (ec) fail("unwrap()");
}

}  // namespace pysock
