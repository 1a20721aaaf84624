// SPDX-License-Identifier: MIT
//
// The errno → Python exception class table, and pysock's error categories.
#include "pysock/error.hpp"

#include <netdb.h>

#include <cerrno>
#include <string>

namespace pysock {
namespace {

class gai_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "gai"; }
  std::string message(int code) const override { return ::gai_strerror(code); }
};

class herror_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "herror"; }
  std::string message(int code) const override { return ::hstrerror(code); }
};

class socket_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "pysock"; }
  std::string message(int code) const override {
    switch (static_cast<socket_errc>(code)) {
      case socket_errc::timed_out:
        return "timed out";
      case socket_errc::address_family_mismatch:
        return "address family mismatched";
      case socket_errc::path_too_long:
        return "AF_UNIX path too long";
      case socket_errc::empty_resolution:
        return "getaddrinfo returns an empty list";
      case socket_errc::illegal_address_string:
        return "illegal IP address string";
      case socket_errc::service_not_found:
        return "service/proto not found";
      case socket_errc::port_not_found:
        return "port/proto not found";
      case socket_errc::protocol_not_found:
        return "protocol not found";
      case socket_errc::interface_not_found:
        return "no interface with this name";
      case socket_errc::packed_length:
        return "packed IP wrong length";
      case socket_errc::port_out_of_range:
        return "port must be 0-65535";
      case socket_errc::flowinfo_out_of_range:
        return "flowinfo must be 0-1048575";
      case socket_errc::read_after_timeout:
        return "cannot read from timed out object";
    }
    return "unknown pysock error";
  }
  // Lets `ec == std::errc::timed_out` hold for a socket timeout, so callers
  // test one condition whether the kernel or the timeout said so.
  std::error_condition default_error_condition(int code) const noexcept override {
    switch (static_cast<socket_errc>(code)) {
      case socket_errc::timed_out:
        return std::errc::timed_out;
      case socket_errc::address_family_mismatch:
        return std::errc::address_family_not_supported;
      case socket_errc::path_too_long:
        return std::errc::filename_too_long;
      case socket_errc::illegal_address_string:
      case socket_errc::packed_length:
      case socket_errc::port_out_of_range:
      case socket_errc::flowinfo_out_of_range:
        return std::errc::invalid_argument;
      case socket_errc::empty_resolution:
      case socket_errc::service_not_found:
      case socket_errc::port_not_found:
      case socket_errc::protocol_not_found:
      case socket_errc::interface_not_found:
      case socket_errc::read_after_timeout:
        break;
    }
    return {code, *this};
  }
};

// Errors whose Python form carries no errno: Python prints only the text.
bool has_errno(const std::error_code& ec) noexcept {
  return ec.category() == std::system_category() || ec.category() == std::generic_category();
}

}  // namespace

const std::error_category& gai_category() noexcept {
  static const gai_category_impl instance;
  return instance;
}

const std::error_category& herror_category() noexcept {
  static const herror_category_impl instance;
  return instance;
}

const std::error_category& socket_category() noexcept {
  static const socket_category_impl instance;
  return instance;
}

std::error_code make_error_code(socket_errc e) noexcept {
  return {static_cast<int>(e), socket_category()};
}

// "connect(127.0.0.1:1): [Errno 111] Connection refused" — Python's str(OSError)
// with the call in front; "[Errno -2] Name or service not known" for gaierror.
os_error::os_error(std::error_code ec, std::string_view context)
    : std::system_error(ec), context_(context) {
  if (!context_.empty()) message_ = context_ + ": ";
  if (has_errno(ec) || ec.category() == gai_category() || ec.category() == herror_category()) {
    message_ += "[Errno " + std::to_string(ec.value()) + "] ";
  }
  message_ += ec.message();
}

int os_error::errno_value() const noexcept {
  const std::error_code& ec = code();
  if (has_errno(ec) || ec.category() == gai_category() || ec.category() == herror_category())
    return ec.value();
  return 0;
}

std::string_view python_exception_name(std::error_code ec) noexcept {
  if (ec.category() == gai_category()) return "gaierror";
  if (ec.category() == herror_category()) return "herror";
  if (ec.category() == socket_category()) {
    if (ec == socket_errc::timed_out) return "TimeoutError";
    if (ec == socket_errc::port_out_of_range || ec == socket_errc::flowinfo_out_of_range)
      return "OverflowError";
    return "OSError";
  }
  if (!has_errno(ec)) return "OSError";
  switch (ec.value()) {
    case EAGAIN:
    case EALREADY:
    case EINPROGRESS:
      return "BlockingIOError";
    case EINTR:
      return "InterruptedError";
    case EPIPE:
    case ESHUTDOWN:
      return "BrokenPipeError";
    case ECONNABORTED:
      return "ConnectionAbortedError";
    case ECONNREFUSED:
      return "ConnectionRefusedError";
    case ECONNRESET:
      return "ConnectionResetError";
    case ETIMEDOUT:
      return "TimeoutError";
    case ENOENT:
      return "FileNotFoundError";
    case EEXIST:
      return "FileExistsError";
    case EACCES:
    case EPERM:
      return "PermissionError";
    case EISDIR:
      return "IsADirectoryError";
    case ENOTDIR:
      return "NotADirectoryError";
    case ECHILD:
      return "ChildProcessError";
    case ESRCH:
      return "ProcessLookupError";
    default:
      return "OSError";
  }
}

void throw_os_error(std::error_code ec, std::string_view context) {
  // One switch on the same table as python_exception_name(), so the class a
  // test sees and the name printed can never disagree.
  const std::string_view name = python_exception_name(ec);
  // An argument out of range is Python's OverflowError, not an OSError: in
  // C++ that is std::out_of_range, as everywhere else in pysock.
  if (name == "OverflowError") throw std::out_of_range(std::string(context) + ": " + ec.message());
  if (name == "BlockingIOError") throw blocking_io_error(ec, context);
  if (name == "InterruptedError") throw interrupted_error(ec, context);
  if (name == "BrokenPipeError") throw broken_pipe_error(ec, context);
  if (name == "ConnectionAbortedError") throw connection_aborted_error(ec, context);
  if (name == "ConnectionRefusedError") throw connection_refused_error(ec, context);
  if (name == "ConnectionResetError") throw connection_reset_error(ec, context);
  if (name == "TimeoutError") throw timeout_error(ec, context);
  if (name == "FileNotFoundError") throw file_not_found_error(ec, context);
  if (name == "FileExistsError") throw file_exists_error(ec, context);
  if (name == "PermissionError") throw permission_error(ec, context);
  if (name == "IsADirectoryError") throw is_a_directory_error(ec, context);
  if (name == "NotADirectoryError") throw not_a_directory_error(ec, context);
  if (name == "ChildProcessError") throw child_process_error(ec, context);
  if (name == "ProcessLookupError") throw process_lookup_error(ec, context);
  if (name == "gaierror") throw gaierror(ec, context);
  if (name == "herror") throw herror(ec, context);
  throw os_error(ec, context);
}

}  // namespace pysock
