// SPDX-License-Identifier: MIT
//
// pysock/error.hpp — Python's OSError family as C++ exceptions, and the error
// categories behind pysock's non-throwing (std::error_code&) overloads.
//
//   Python                      pysock
//   OSError / socket.error      pysock::os_error            (a std::system_error)
//   BlockingIOError             pysock::blocking_io_error   EAGAIN, EALREADY, EINPROGRESS
//   InterruptedError            pysock::interrupted_error   EINTR
//   TimeoutError/socket.timeout pysock::timeout_error       socket timeouts, ETIMEDOUT
//   ConnectionError             pysock::connection_error
//     BrokenPipeError           pysock::broken_pipe_error       EPIPE, ESHUTDOWN
//     ConnectionAbortedError    pysock::connection_aborted_error ECONNABORTED
//     ConnectionRefusedError    pysock::connection_refused_error ECONNREFUSED
//     ConnectionResetError      pysock::connection_reset_error   ECONNRESET
//   FileNotFoundError           pysock::file_not_found_error ENOENT
//   FileExistsError             pysock::file_exists_error   EEXIST
//   PermissionError             pysock::permission_error    EACCES, EPERM
//   IsADirectoryError, NotADirectoryError, ChildProcessError, ProcessLookupError
//                               pysock::is_a_directory_error, not_a_directory_error,
//                               child_process_error, process_lookup_error
//   socket.gaierror             pysock::gaierror            EAI_* codes (gai_category)
//   socket.herror               pysock::herror              h_errno codes (herror_category)
//
// Python's ValueError maps to std::invalid_argument and OverflowError to
// std::out_of_range: they report a wrong argument, not a failed system call.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace pysock {

// ---------------------------------------------------------------------------
// Error categories
// ---------------------------------------------------------------------------

/// getaddrinfo()/getnameinfo() failures: the value is the EAI_* code (negative
/// on glibc) and message() is gai_strerror()'s text.
const std::error_category& gai_category() noexcept;

/// gethostbyname_ex()/gethostbyaddr() failures: the value is h_errno
/// (HOST_NOT_FOUND, TRY_AGAIN, NO_RECOVERY, NO_DATA), message() hstrerror()'s.
const std::error_category& herror_category() noexcept;

/// Errors of pysock's own that have no errno. Each compares equal to the
/// closest std::errc condition, so `ec == std::errc::timed_out` holds for a
/// socket timeout as it does for the kernel's ETIMEDOUT.
enum class socket_errc {
  timed_out = 1,            ///< a socket timeout expired ("timed out")
  address_family_mismatch,  ///< address of another family than the socket's
  path_too_long,            ///< AF_UNIX path longer than sun_path
  empty_resolution,         ///< getaddrinfo returned an empty list
  illegal_address_string,   ///< inet_pton/inet_aton input is not an address
  service_not_found,        ///< getservbyname: "service/proto not found"
  port_not_found,           ///< getservbyport: "port/proto not found"
  protocol_not_found,       ///< getprotobyname: "protocol not found"
  interface_not_found,      ///< if_nametoindex: "no interface with this name"
  packed_length,            ///< inet_ntoa: "packed IP wrong length"
  port_out_of_range,        ///< an address port outside 0-65535 (Python's OverflowError)
  flowinfo_out_of_range,    ///< an IPv6 flowinfo outside 0-0xFFFFF
  read_after_timeout,       ///< makefile: "cannot read from timed out object"
};
const std::error_category& socket_category() noexcept;
std::error_code make_error_code(socket_errc e) noexcept;

}  // namespace pysock

template <>
struct std::is_error_code_enum<pysock::socket_errc> : std::true_type {};

namespace pysock {

// ---------------------------------------------------------------------------
// Exceptions
// ---------------------------------------------------------------------------

/// Python's OSError. `what()` reads like Python's message with the call and the
/// address in front: "connect(127.0.0.1:1): [Errno 111] Connection refused".
/// `code()` is the std::error_code (system_category for errno values).
class os_error : public std::system_error {
 public:
  os_error(std::error_code ec, std::string_view context);
  const char* what() const noexcept override { return message_.c_str(); }
  /// Python's `errno` attribute: the errno value (the EAI_* code for a
  /// gaierror, h_errno for an herror, as in Python), or 0 when the error has
  /// none (a socket timeout, "AF_UNIX path too long"...).
  int errno_value() const noexcept;
  /// The context given at the throw site, e.g. "connect(127.0.0.1:1)".
  const std::string& context() const noexcept { return context_; }

 private:
  std::string context_;
  std::string message_;
};

class blocking_io_error : public os_error {
  using os_error::os_error;
};
class interrupted_error : public os_error {
  using os_error::os_error;
};
class timeout_error : public os_error {
  using os_error::os_error;
};
class connection_error : public os_error {
  using os_error::os_error;
};
class broken_pipe_error : public connection_error {
  using connection_error::connection_error;
};
class connection_aborted_error : public connection_error {
  using connection_error::connection_error;
};
class connection_refused_error : public connection_error {
  using connection_error::connection_error;
};
class connection_reset_error : public connection_error {
  using connection_error::connection_error;
};
class file_not_found_error : public os_error {
  using os_error::os_error;
};
class file_exists_error : public os_error {
  using os_error::os_error;
};
class permission_error : public os_error {
  using os_error::os_error;
};
class is_a_directory_error : public os_error {
  using os_error::os_error;
};
class not_a_directory_error : public os_error {
  using os_error::os_error;
};
class child_process_error : public os_error {
  using os_error::os_error;
};
class process_lookup_error : public os_error {
  using os_error::os_error;
};
class gaierror : public os_error {
  using os_error::os_error;
};
class herror : public os_error {
  using os_error::os_error;
};

/// Throws the exception class Python would raise for `ec` (the one errno →
/// class table of the library lives behind this function). The argument-range
/// codes (socket_errc::port_out_of_range...) throw std::out_of_range, Python's
/// OverflowError.
[[noreturn]] void throw_os_error(std::error_code ec, std::string_view context);

/// The errno → class table as data: throws nothing, returns the Python class
/// name ("ConnectionRefusedError", "OSError", "gaierror", ...). Used in
/// messages and tests.
std::string_view python_exception_name(std::error_code ec) noexcept;

/// Shorthand for the errno-valued error_code of the calling thread's errno.
inline std::error_code last_error() noexcept { return {errno, std::system_category()}; }

}  // namespace pysock
