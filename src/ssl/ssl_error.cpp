// SPDX-License-Identifier: MIT
//
// The SSLError family: OpenSSL's SSL_get_error() results and error queue
// mapped to Python's classes, as CPython's PySSL_SetError does.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cctype>
#include <cerrno>
#include <string>

#include "ssl_detail.hpp"

namespace pysock {
namespace {

class ssl_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ssl"; }
  std::string message(int code) const override {
    switch (static_cast<ssl_errc>(code)) {
      case ssl_errc::ssl:
        return "A failure in the SSL library occurred";
      case ssl_errc::want_read:
        return "The operation did not complete (read)";
      case ssl_errc::want_write:
        return "The operation did not complete (write)";
      case ssl_errc::want_x509_lookup:
        return "The operation did not complete (X509 lookup)";
      case ssl_errc::syscall:
        return "Some I/O error occurred";
      case ssl_errc::zero_return:
        return "TLS/SSL connection has been closed (EOF)";
      case ssl_errc::want_connect:
        return "The operation did not complete (connect)";
      case ssl_errc::eof:
        return "EOF occurred in violation of protocol";
      case ssl_errc::invalid_error_code:
        return "Invalid error code";
    }
    return "unknown ssl error";
  }
  // "Would block" has one spelling for plain and TLS sockets alike.
  std::error_condition default_error_condition(int code) const noexcept override {
    const auto e = static_cast<ssl_errc>(code);
    if (e == ssl_errc::want_read || e == ssl_errc::want_write)
      return std::errc::operation_would_block;
    return {code, *this};
  }
};

class openssl_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "openssl"; }
  std::string message(int code) const override {
    const char* reason = ERR_reason_error_string(static_cast<unsigned long>(code));
    return reason != nullptr ? reason : "unknown OpenSSL error " + std::to_string(code);
  }
};

std::string join_message(std::string_view context, const std::string& library,
                         const std::string& reason, const std::string& text,
                         const std::error_code& ec) {
  std::string message;
  if (!context.empty()) message.append(context).append(": ");
  if (!library.empty()) {
    message.append("[").append(library);
    if (!reason.empty()) message.append(": ").append(reason);
    message.append("] ");
  }
  message += text.empty() ? ec.message() : text;
  return message;
}

}  // namespace

const std::error_category& ssl_category() noexcept {
  static const ssl_category_impl instance;
  return instance;
}

const std::error_category& openssl_category() noexcept {
  static const openssl_category_impl instance;
  return instance;
}

std::error_code make_error_code(ssl_errc e) noexcept {
  return {static_cast<int>(e), ssl_category()};
}

ssl_error::ssl_error(std::error_code ec, std::string_view context, std::string library,
                     std::string reason, std::string text)
    : os_error(ec, context),
      library_(std::move(library)),
      reason_(std::move(reason)),
      message_(join_message(context, library_, reason_, text, ec)) {}

ssl_cert_verification_error::ssl_cert_verification_error(std::error_code ec,
                                                         std::string_view context,
                                                         std::string library, std::string reason,
                                                         std::string text, long verify_code,
                                                         std::string verify_message)
    : ssl_error(ec, context, std::move(library), std::move(reason), std::move(text)),
      verify_code_(verify_code),
      verify_message_(std::move(verify_message)) {}

namespace detail {

std::string library_name(unsigned long packed) {
  if (ERR_SYSTEM_ERROR(packed)) return "SYS";
  switch (ERR_GET_LIB(packed)) {
    case ERR_LIB_SSL:
      return "SSL";
    case ERR_LIB_X509:
      return "X509";
    case ERR_LIB_X509V3:
      return "X509V3";
    case ERR_LIB_PEM:
      return "PEM";
    case ERR_LIB_ASN1:
      return "ASN1";
    case ERR_LIB_EVP:
      return "EVP";
    case ERR_LIB_BIO:
      return "BIO";
    case ERR_LIB_SYS:
      return "SYS";
    case ERR_LIB_PROV:
      return "PROV";
    case ERR_LIB_OSSL_DECODER:
      return "DECODER";
    case ERR_LIB_OSSL_STORE:
      return "OSSL_STORE";
    case ERR_LIB_EC:
      return "EC";
    case ERR_LIB_RSA:
      return "RSA";
    case ERR_LIB_PKCS12:
      return "PKCS12";
    default:
      break;
  }
  const char* name = ERR_lib_error_string(packed);
  return name != nullptr ? name : "OPENSSL";
}

// Python prints the name of the reason macro (SSL_R_WRONG_VERSION_NUMBER →
// WRONG_VERSION_NUMBER). OpenSSL keeps only the text at run time, and its
// texts are those names in lower case with spaces, so the way back is exact
// for the reasons that matter here.
std::string reason_mnemonic(unsigned long packed) {
  if (ERR_SYSTEM_ERROR(packed)) return {};
  const char* text = ERR_reason_error_string(packed);
  if (text == nullptr) return {};
  std::string name;
  for (const char* p = text; *p != '\0'; ++p) {
    const auto c = static_cast<unsigned char>(*p);
    name += std::isalnum(c) ? static_cast<char>(std::toupper(c)) : '_';
  }
  return name;
}

std::error_code classify(ssl_connection_state& state, int ret) {
  ssl_failure& f = state.failure;
  f = {};
  const int code = SSL_get_error(state.ssl, ret);
  switch (code) {
    case SSL_ERROR_WANT_READ:
      f.ec = ssl_errc::want_read;
      break;
    case SSL_ERROR_WANT_WRITE:
      f.ec = ssl_errc::want_write;
      break;
    case SSL_ERROR_ZERO_RETURN:
      f.ec = ssl_errc::zero_return;
      break;
    case SSL_ERROR_WANT_X509_LOOKUP:
      f.ec = ssl_errc::want_x509_lookup;
      break;
    case SSL_ERROR_WANT_CONNECT:
      f.ec = ssl_errc::want_connect;
      break;
    case SSL_ERROR_SYSCALL: {
      // The BIO failed: a system error when it left an errno, else the
      // connection ended under the protocol (CPython's SSL_ERROR_EOF).
      const unsigned long packed = ERR_peek_last_error();
      if (state.io.last_errno != 0) {
        f.ec = {state.io.last_errno, std::system_category()};
      } else if (packed != 0 && ERR_SYSTEM_ERROR(packed)) {
        f.ec = {static_cast<int>(ERR_GET_REASON(packed)), std::system_category()};
      } else if (packed == 0) {
        f.ec = ssl_errc::eof;
      } else {
        f.ec = ssl_errc::syscall;
      }
      break;
    }
    case SSL_ERROR_SSL: {
      const unsigned long packed = ERR_peek_last_error();
      f.packed = packed;
      if (packed == 0) {
        f.ec = ssl_errc::ssl;
      } else if (ERR_SYSTEM_ERROR(packed)) {
        f.ec = {static_cast<int>(ERR_GET_REASON(packed)), std::system_category()};
      } else if (ERR_GET_LIB(packed) == ERR_LIB_SSL &&
                 ERR_GET_REASON(packed) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        f.ec = ssl_errc::eof;
      } else {
        // lib << 23 | reason: fits an int once the system flag is excluded.
        f.ec = {static_cast<int>(packed & 0x7fffffffUL), openssl_category()};
        if (ERR_GET_LIB(packed) == ERR_LIB_SSL &&
            ERR_GET_REASON(packed) == SSL_R_CERTIFICATE_VERIFY_FAILED)
          f.verify_code = SSL_get_verify_result(state.ssl);
      }
      break;
    }
    default:
      f.ec = ssl_errc::invalid_error_code;
      break;
  }
  clear_error_queue();
  return f.ec;
}

void throw_failure(const ssl_connection_state& state, const std::string& context) {
  const ssl_failure& f = state.failure;
  const std::error_code& ec = f.ec;
  if (ec.category() == ssl_category()) {
    const auto e = static_cast<ssl_errc>(ec.value());
    const std::string library = f.packed != 0 ? library_name(f.packed) : std::string();
    const std::string reason = f.packed != 0 ? reason_mnemonic(f.packed) : std::string();
    switch (e) {
      case ssl_errc::want_read:
        throw ssl_want_read_error(ec, context);
      case ssl_errc::want_write:
        throw ssl_want_write_error(ec, context);
      case ssl_errc::zero_return:
        throw ssl_zero_return_error(ec, context);
      case ssl_errc::eof:
        throw ssl_eof_error(ec, context, library, reason);
      case ssl_errc::syscall:
        throw ssl_syscall_error(ec, context);
      default:
        throw ssl_error(ec, context, library, reason);
    }
  }
  if (ec.category() == openssl_category()) {
    std::string library = library_name(f.packed);
    std::string reason = reason_mnemonic(f.packed);
    std::string text = ec.message();
    if (ERR_GET_LIB(f.packed) == ERR_LIB_SSL &&
        ERR_GET_REASON(f.packed) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
      std::string verify_message;
      if (f.verify_code == X509_V_ERR_HOSTNAME_MISMATCH) {
        verify_message =
            "Hostname mismatch, certificate is not valid for '" + state.server_hostname + "'.";
      } else if (f.verify_code == X509_V_ERR_IP_ADDRESS_MISMATCH) {
        verify_message =
            "IP address mismatch, certificate is not valid for '" + state.server_hostname + "'.";
      } else {
        const char* s = X509_verify_cert_error_string(f.verify_code);
        verify_message = s != nullptr ? s : "unknown verification error";
      }
      text += ": " + verify_message;
      throw ssl_cert_verification_error(ec, context, std::move(library), std::move(reason),
                                        std::move(text), f.verify_code, std::move(verify_message));
    }
    throw ssl_error(ec, context, std::move(library), std::move(reason), std::move(text));
  }
  throw_os_error(ec, context);  // errno values and socket timeouts
}

void throw_from_queue(const std::string& context, std::string_view fallback) {
  const unsigned long packed = ERR_peek_last_error();
  ERR_clear_error();
  if (packed == 0)
    throw ssl_error(make_error_code(ssl_errc::ssl), context, {}, {}, std::string(fallback));
  if (ERR_SYSTEM_ERROR(packed))
    throw_os_error({static_cast<int>(ERR_GET_REASON(packed)), std::system_category()}, context);
  const std::error_code ec{static_cast<int>(packed & 0x7fffffffUL), openssl_category()};
  throw ssl_error(ec, context, library_name(packed), reason_mnemonic(packed), ec.message());
}

}  // namespace detail
}  // namespace pysock
