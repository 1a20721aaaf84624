// SPDX-License-Identifier: MIT
//
// pysock/error.hpp: Python's OSError family, the errno → class table, the error
// categories (gai, herror, pysock's own) and the message format.
#include <netdb.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <typeindex>
#include <typeinfo>

#include <gtest/gtest.h>

#include "pysock/error.hpp"

namespace {

using namespace std::string_literals;

std::error_code sys(int value) { return {value, std::system_category()}; }

// Throws `ec` through throw_os_error() and reports the dynamic type thrown.
std::type_index thrown_type(std::error_code ec, std::string_view context = "test()") {
  try {
    pysock::throw_os_error(ec, context);
  } catch (const std::exception& e) {
    return typeid(e);
  }
  return typeid(void);  // unreachable: throw_os_error is [[noreturn]]
}

struct errno_row {
  int value;
  const char* python_name;
  std::type_index cpp_type;
};

// Table 4 of the reference: errno → Python class, and the pysock class.
const errno_row errno_table[] = {
    {EAGAIN, "BlockingIOError", typeid(pysock::blocking_io_error)},
    {EALREADY, "BlockingIOError", typeid(pysock::blocking_io_error)},
    {EINPROGRESS, "BlockingIOError", typeid(pysock::blocking_io_error)},
    {EINTR, "InterruptedError", typeid(pysock::interrupted_error)},
    {EPIPE, "BrokenPipeError", typeid(pysock::broken_pipe_error)},
    {ESHUTDOWN, "BrokenPipeError", typeid(pysock::broken_pipe_error)},
    {ECONNABORTED, "ConnectionAbortedError", typeid(pysock::connection_aborted_error)},
    {ECONNREFUSED, "ConnectionRefusedError", typeid(pysock::connection_refused_error)},
    {ECONNRESET, "ConnectionResetError", typeid(pysock::connection_reset_error)},
    {ETIMEDOUT, "TimeoutError", typeid(pysock::timeout_error)},
    {ENOENT, "FileNotFoundError", typeid(pysock::file_not_found_error)},
    {EEXIST, "FileExistsError", typeid(pysock::file_exists_error)},
    {EACCES, "PermissionError", typeid(pysock::permission_error)},
    {EPERM, "PermissionError", typeid(pysock::permission_error)},
    {EBADF, "OSError", typeid(pysock::os_error)},
    {ENOTSOCK, "OSError", typeid(pysock::os_error)},
    {ENOTCONN, "OSError", typeid(pysock::os_error)},
    {EISCONN, "OSError", typeid(pysock::os_error)},
    {EADDRINUSE, "OSError", typeid(pysock::os_error)},
    {EADDRNOTAVAIL, "OSError", typeid(pysock::os_error)},
    {EAFNOSUPPORT, "OSError", typeid(pysock::os_error)},
    {ENETUNREACH, "OSError", typeid(pysock::os_error)},
    {EHOSTUNREACH, "OSError", typeid(pysock::os_error)},
    {EMSGSIZE, "OSError", typeid(pysock::os_error)},
    {EDESTADDRREQ, "OSError", typeid(pysock::os_error)},
    {EINVAL, "OSError", typeid(pysock::os_error)},
    {EOPNOTSUPP, "OSError", typeid(pysock::os_error)},
    {EMFILE, "OSError", typeid(pysock::os_error)},
};

}  // namespace

TEST(error, python_exception_name_follows_the_errno_table_of_pep_3151) {
  for (const auto& row : errno_table) {
    EXPECT_EQ(pysock::python_exception_name(sys(row.value)), row.python_name)
        << "errno " << row.value << " (" << std::strerror(row.value) << ")";
  }
}

TEST(error, throw_os_error_throws_the_class_of_the_errno_table) {
  for (const auto& row : errno_table) {
    EXPECT_EQ(thrown_type(sys(row.value)), row.cpp_type)
        << "errno " << row.value << " (" << std::strerror(row.value) << ") expected "
        << row.python_name;
  }
}

TEST(error, file_and_process_errnos_get_their_python_subclasses) {
  // Python picks these subclasses from errno too (IsADirectoryError...).
  EXPECT_EQ(pysock::python_exception_name(sys(EISDIR)), "IsADirectoryError");
  EXPECT_EQ(pysock::python_exception_name(sys(ENOTDIR)), "NotADirectoryError");
  EXPECT_EQ(pysock::python_exception_name(sys(ECHILD)), "ChildProcessError");
  EXPECT_EQ(pysock::python_exception_name(sys(ESRCH)), "ProcessLookupError");
  EXPECT_EQ(thrown_type(sys(EISDIR)), typeid(pysock::is_a_directory_error));
  EXPECT_EQ(thrown_type(sys(ENOTDIR)), typeid(pysock::not_a_directory_error));
  EXPECT_EQ(thrown_type(sys(ECHILD)), typeid(pysock::child_process_error));
  EXPECT_EQ(thrown_type(sys(ESRCH)), typeid(pysock::process_lookup_error));
}

TEST(error, out_of_range_port_is_python_overflow_error_as_std_out_of_range) {
  const auto ec = pysock::make_error_code(pysock::socket_errc::port_out_of_range);
  EXPECT_EQ(pysock::python_exception_name(ec), "OverflowError");
  EXPECT_EQ(ec, std::errc::invalid_argument);
  try {
    pysock::throw_os_error(ec, "bind(127.0.0.1:70000)");
    ADD_FAILURE() << "nothing thrown";
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "bind(127.0.0.1:70000): port must be 0-65535");
  }
}

TEST(error, connection_refused_error_is_catchable_as_connection_error_os_error_and_system_error) {
  bool caught_connection_error = false;
  try {
    pysock::throw_os_error(sys(ECONNREFUSED), "connect(127.0.0.1:1)");
  } catch (const pysock::connection_error& e) {
    caught_connection_error = true;
    EXPECT_EQ(e.errno_value(), ECONNREFUSED);
  }
  EXPECT_TRUE(caught_connection_error);

  bool caught_os_error = false;
  try {
    pysock::throw_os_error(sys(ECONNREFUSED), "connect(127.0.0.1:1)");
  } catch (const pysock::os_error& e) {
    caught_os_error = true;
    EXPECT_EQ(e.code(), std::errc::connection_refused);
  }
  EXPECT_TRUE(caught_os_error);

  bool caught_system_error = false;
  try {
    pysock::throw_os_error(sys(ECONNREFUSED), "connect(127.0.0.1:1)");
  } catch (const std::system_error& e) {
    caught_system_error = true;
    EXPECT_EQ(e.code(), sys(ECONNREFUSED));
    EXPECT_EQ(&e.code().category(), &std::system_category());
  }
  EXPECT_TRUE(caught_system_error);
}

TEST(error, broken_pipe_and_reset_and_aborted_errors_derive_from_connection_error) {
  for (int value : {EPIPE, ESHUTDOWN, ECONNRESET, ECONNABORTED, ECONNREFUSED}) {
    bool caught = false;
    try {
      pysock::throw_os_error(sys(value), "send()");
    } catch (const pysock::connection_error& e) {
      caught = true;
      EXPECT_EQ(e.errno_value(), value);
    } catch (...) {
    }
    EXPECT_TRUE(caught) << "errno " << value << " is not a connection_error";
  }
}

TEST(error, plain_os_errors_are_not_connection_errors) {
  for (int value : {EBADF, EADDRINUSE, ENOTCONN, EINVAL}) {
    bool caught_connection_error = false;
    bool caught_os_error = false;
    try {
      pysock::throw_os_error(sys(value), "bind(127.0.0.1:80)");
    } catch (const pysock::connection_error&) {
      caught_connection_error = true;
    } catch (const pysock::os_error& e) {
      caught_os_error = true;
      EXPECT_EQ(e.errno_value(), value);
    }
    EXPECT_FALSE(caught_connection_error) << "errno " << value;
    EXPECT_TRUE(caught_os_error) << "errno " << value;
  }
}

TEST(error, os_error_message_has_context_errno_and_strerror_like_python) {
  const pysock::os_error e(sys(ECONNREFUSED), "connect(127.0.0.1:1)");
  EXPECT_STREQ(e.what(), "connect(127.0.0.1:1): [Errno 111] Connection refused");
  EXPECT_EQ(e.context(), "connect(127.0.0.1:1)");
  EXPECT_EQ(e.errno_value(), ECONNREFUSED);
  EXPECT_EQ(e.code(), sys(ECONNREFUSED));
}

TEST(error, throw_os_error_keeps_context_and_message) {
  try {
    pysock::throw_os_error(sys(EADDRINUSE), "bind(127.0.0.1:8080)");
  } catch (const pysock::os_error& e) {
    EXPECT_STREQ(e.what(), "bind(127.0.0.1:8080): [Errno 98] Address already in use");
    EXPECT_EQ(e.context(), "bind(127.0.0.1:8080)");
    return;
  }
  FAIL() << "throw_os_error did not throw os_error";
}

TEST(error, socket_timeout_is_timeout_error_without_errno_equal_to_errc_timed_out) {
  const std::error_code ec = pysock::make_error_code(pysock::socket_errc::timed_out);
  EXPECT_EQ(&ec.category(), &pysock::socket_category());
  EXPECT_EQ(ec.message(), "timed out");
  EXPECT_TRUE(ec == std::errc::timed_out);
  EXPECT_EQ(pysock::python_exception_name(ec), "TimeoutError");
  EXPECT_EQ(thrown_type(ec), typeid(pysock::timeout_error));
  try {
    pysock::throw_os_error(ec, "recv()");
  } catch (const pysock::timeout_error& e) {
    EXPECT_EQ(e.errno_value(), 0);
    EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("Errno"), std::string::npos)
        << "a socket timeout has no errno: " << e.what();
    EXPECT_TRUE(e.code() == std::errc::timed_out);
    return;
  }
  FAIL() << "no timeout_error";
}

TEST(error, socket_errc_converts_implicitly_to_error_code) {
  const std::error_code ec = pysock::socket_errc::path_too_long;
  EXPECT_EQ(&ec.category(), &pysock::socket_category());
  EXPECT_EQ(ec.value(), static_cast<int>(pysock::socket_errc::path_too_long));
  EXPECT_NE(ec.message().find("too long"), std::string::npos) << ec.message();
  EXPECT_FALSE(std::string(pysock::socket_category().name()).empty());
}

TEST(error, os_error_without_errno_reports_errno_value_zero) {
  const pysock::os_error e(pysock::socket_errc::path_too_long, "bind(/tmp/x)");
  EXPECT_EQ(e.errno_value(), 0);
  EXPECT_EQ(pysock::python_exception_name(e.code()), "OSError");
  EXPECT_EQ(thrown_type(e.code()), typeid(pysock::os_error));
}

TEST(error, gai_category_message_is_gai_strerror_and_throws_gaierror) {
  const std::error_code ec(EAI_NONAME, pysock::gai_category());
  EXPECT_EQ(ec.message(), ::gai_strerror(EAI_NONAME));
  EXPECT_EQ(std::error_code(EAI_SERVICE, pysock::gai_category()).message(),
            ::gai_strerror(EAI_SERVICE));
  EXPECT_EQ(pysock::python_exception_name(ec), "gaierror");
  EXPECT_EQ(thrown_type(ec), typeid(pysock::gaierror));
  try {
    pysock::throw_os_error(ec, "getaddrinfo(no-such-host.invalid)");
  } catch (const pysock::gaierror& e) {
    EXPECT_EQ(&e.code().category(), &pysock::gai_category());
    EXPECT_EQ(e.code().value(), EAI_NONAME);
    EXPECT_NE(std::string(e.what()).find(::gai_strerror(EAI_NONAME)), std::string::npos)
        << e.what();
    return;
  }
  FAIL() << "no gaierror";
}

TEST(error, gaierror_errno_value_is_the_eai_code_as_in_python) {
  // Python's gaierror.errno is the EAI code (-2 for EAI_NONAME on glibc).
  const pysock::gaierror e({EAI_NONAME, pysock::gai_category()}, "getaddrinfo(x)");
  EXPECT_EQ(e.errno_value(), EAI_NONAME);
  const pysock::timeout_error t(pysock::make_error_code(pysock::socket_errc::timed_out), "recv()");
  EXPECT_EQ(t.errno_value(), 0);  // a socket timeout has no errno
}

TEST(error, gaierror_is_catchable_as_os_error) {
  bool caught = false;
  try {
    pysock::throw_os_error({EAI_AGAIN, pysock::gai_category()}, "getaddrinfo(x)");
  } catch (const pysock::os_error& e) {
    caught = true;
    EXPECT_EQ(e.code().value(), EAI_AGAIN);
  }
  EXPECT_TRUE(caught);
}

TEST(error, herror_category_message_is_hstrerror_and_throws_herror) {
  const std::error_code ec(HOST_NOT_FOUND, pysock::herror_category());
  EXPECT_EQ(ec.message(), ::hstrerror(HOST_NOT_FOUND));
  EXPECT_EQ(pysock::python_exception_name(ec), "herror");
  EXPECT_EQ(thrown_type(ec), typeid(pysock::herror));
}

TEST(error, categories_are_distinct_singletons_with_names) {
  EXPECT_EQ(&pysock::gai_category(), &pysock::gai_category());
  EXPECT_NE(&pysock::gai_category(), &pysock::herror_category());
  EXPECT_NE(&pysock::gai_category(), &pysock::socket_category());
  EXPECT_NE(&pysock::herror_category(), &pysock::socket_category());
  EXPECT_FALSE(std::string(pysock::gai_category().name()).empty());
  EXPECT_FALSE(std::string(pysock::herror_category().name()).empty());
}

TEST(error, kernel_etimedout_is_timeout_error_with_errno) {
  try {
    pysock::throw_os_error(sys(ETIMEDOUT), "connect(127.0.0.1:1)");
  } catch (const pysock::timeout_error& e) {
    EXPECT_EQ(e.errno_value(), ETIMEDOUT);
    EXPECT_TRUE(e.code() == std::errc::timed_out);
    EXPECT_NE(std::string(e.what()).find("[Errno 110]"), std::string::npos) << e.what();
    return;
  }
  FAIL() << "no timeout_error";
}

TEST(error, blocking_io_error_compares_equal_to_operation_would_block) {
  try {
    pysock::throw_os_error(sys(EAGAIN), "recv()");
  } catch (const pysock::blocking_io_error& e) {
    EXPECT_TRUE(e.code() == std::errc::operation_would_block);
    EXPECT_EQ(e.errno_value(), EAGAIN);
    return;
  }
  FAIL() << "no blocking_io_error";
}

TEST(error, last_error_reads_errno_of_the_calling_thread) {
  errno = ENOTSOCK;
  const std::error_code ec = pysock::last_error();
  EXPECT_EQ(ec, sys(ENOTSOCK));
  EXPECT_EQ(&ec.category(), &std::system_category());
}
