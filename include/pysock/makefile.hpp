// SPDX-License-Identifier: MIT
//
// pysock/makefile.hpp — Python's socket.makefile(): a buffered stream over a
// connection, so the standard stream tools work on sockets.
//
//   f = sock.makefile('rw')                auto f = sock.makefile("rw");
//   line = f.readline()                    std::getline(f, line);
//   f.write(b'hello\n'); f.flush()         f << "hello\n" << std::flush;
//
// Errors: a failed recv/send sets badbit, as any stream failure does, and
// error() tells which error it was. Ask for exceptions with
// `f.exceptions(std::ios::badbit)` to get the pysock exception itself
// (timeout_error, connection_reset_error...). As in Python, once a read has
// timed out the stream refuses further reads: the position in the data is
// unknown after a timeout (settimeout() on the stream lifts that).
#pragma once

#include <iostream>
#include <memory>
#include <streambuf>
#include <string_view>
#include <system_error>
#include <vector>

#include "pysock/socket.hpp"

namespace pysock {

/// The buffer behind socket_stream: recv() fills the get area, the put area
/// goes out with sendall() on flush, when full, or when the stream closes.
class socket_streambuf : public std::streambuf {
 public:
  socket_streambuf(socket sock, bool readable, bool writable, std::size_t buffer_size = 8192);
  ~socket_streambuf() override;
  socket_streambuf(const socket_streambuf&) = delete;
  socket_streambuf& operator=(const socket_streambuf&) = delete;

  /// The last recv/send error, or an empty code.
  std::error_code error() const noexcept { return error_; }
  /// Flushes what is buffered and closes this stream's descriptor.
  void close();
  void settimeout(timeout_type timeout);
  const socket& sock() const noexcept { return sock_; }

 protected:
  int_type underflow() override;
  int_type overflow(int_type ch) override;
  int sync() override;
  std::streamsize xsputn(const char_type* data, std::streamsize count) override;
  std::streamsize showmanyc() override;

 private:
  void flush_output();
  std::size_t send_all(const_buffer data, std::error_code& ec);
  [[noreturn]] void fail(const std::error_code& ec, const char* call);

  socket sock_;
  std::vector<char> in_;
  std::vector<char> out_;
  std::error_code error_;
  bool readable_;
  bool writable_;
  bool timed_out_ = false;
};

/// Python's socket file object: a std::iostream over a connection.
class socket_stream : public std::iostream {
 public:
  /// `mode` is made of 'r', 'w' and 'b' (each at most once); anything else
  /// throws std::invalid_argument. Takes its own socket (usually a dup()).
  socket_stream(socket sock, std::string_view mode);
  socket_stream(socket_stream&& other) noexcept;
  socket_stream& operator=(socket_stream&& other) noexcept;
  ~socket_stream() override;

  std::error_code error() const noexcept { return buffer_ ? buffer_->error() : std::error_code(); }
  /// Flushes and closes the stream's descriptor; the connection itself closes
  /// once the socket it came from is closed too. Idempotent.
  void close();
  bool closed() const noexcept { return !buffer_ || buffer_->sock().closed(); }
  /// The stream's own timeout (it starts as the socket's at makefile() time).
  /// Also clears the refusal to read that follows a timeout.
  void settimeout(timeout_type timeout);
  timeout_type gettimeout() const noexcept {
    return buffer_ ? buffer_->sock().gettimeout() : timeout_type();
  }

 private:
  std::unique_ptr<socket_streambuf> buffer_;
};

}  // namespace pysock
