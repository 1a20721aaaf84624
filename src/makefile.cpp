// SPDX-License-Identifier: MIT
//
// socket::makefile and the socket_stream it returns.
#include "pysock/makefile.hpp"

#include <cstring>

#include <stdexcept>
#include <string>
#include "io_wait.hpp"

namespace pysock {

using detail::wait_ready;

socket_stream socket::makefile(std::string_view mode) const {
  if (fd_ < 0) throw_os_error(std::make_error_code(std::errc::bad_file_descriptor), "makefile()");
  // A duplicate descriptor keeps the connection open until both the socket
  // and the stream are closed: Python's _io_refs rule, kept by the kernel.
  return socket_stream(dup(), mode);
}

socket_streambuf::socket_streambuf(socket sock, bool readable, bool writable,
                                   std::size_t buffer_size)
    : sock_(std::move(sock)),
      in_(readable ? buffer_size : 0),
      out_(writable ? buffer_size : 0),
      readable_(readable),
      writable_(writable) {
  setg(in_.data(), in_.data(), in_.data());
  if (writable_) setp(out_.data(), out_.data() + out_.size());
}

socket_streambuf::~socket_streambuf() {
  try {
    if (!sock_.closed()) flush_output();
  } catch (...) {
    // A destructor has nobody to report to; close() is the way to see errors.
  }
}

void socket_streambuf::fail(const std::error_code& ec, const char* call) {
  error_ = ec;
  if (ec == socket_errc::timed_out) timed_out_ = true;
  throw_os_error(ec, std::string("makefile: ") + call + "()");
}

socket_streambuf::int_type socket_streambuf::underflow() {
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  if (!readable_) return traits_type::eof();
  // Python refuses to read after a timeout: how much of the stream was
  // consumed is unknown. A plain os_error, not timeout_error, so a caller
  // that retries on timeouts does not spin on this.
  if (timed_out_)
    throw os_error(make_error_code(socket_errc::read_after_timeout), "makefile: recv()");
  std::error_code ec;
  std::size_t n = 0;
  for (;;) {
    n = sock_.recv_into(in_, 0, 0, ec);
    // A blocking stream whose shared descriptor a sibling made non-blocking:
    // wait as a blocking read would, instead of failing.
    if (ec == std::errc::operation_would_block && !sock_.gettimeout() &&
        wait_ready(sock_.fileno(), POLLIN, std::nullopt, ec)) {
      continue;
    }
    break;
  }
  if (ec) fail(ec, "recv");
  if (n == 0) return traits_type::eof();
  setg(in_.data(), in_.data(), in_.data() + n);
  return traits_type::to_int_type(*gptr());
}

std::streamsize socket_streambuf::showmanyc() { return egptr() - gptr(); }

// sendall that also copes with a blocking stream whose shared descriptor a
// sibling made non-blocking. Returns what went out; `ec` says why not all.
std::size_t socket_streambuf::send_all(const_buffer data, std::error_code& ec) {
  std::size_t sent = 0;
  for (;;) {
    sent += sock_.sendall(data.subspan(sent), 0, ec);
    if (ec == std::errc::operation_would_block && !sock_.gettimeout() &&
        wait_ready(sock_.fileno(), POLLOUT, std::nullopt, ec)) {
      continue;
    }
    return sent;
  }
}

void socket_streambuf::flush_output() {
  if (!writable_ || pptr() == pbase()) return;
  const const_buffer pending(pbase(), static_cast<std::size_t>(pptr() - pbase()));
  std::error_code ec;
  const std::size_t sent = send_all(pending, ec);
  if (ec) {
    // Keep what did not go out, so a later flush can try again.
    const std::size_t left = pending.size() - sent;
    std::memmove(out_.data(), pbase() + sent, left);
    setp(out_.data(), out_.data() + out_.size());
    pbump(static_cast<int>(left));
    fail(ec, "send");
  }
  setp(out_.data(), out_.data() + out_.size());
}

socket_streambuf::int_type socket_streambuf::overflow(int_type ch) {
  if (!writable_) return traits_type::eof();
  flush_output();
  if (!traits_type::eq_int_type(ch, traits_type::eof())) {
    *pptr() = traits_type::to_char_type(ch);
    pbump(1);
  }
  return traits_type::not_eof(ch);
}

int socket_streambuf::sync() {
  flush_output();
  return 0;
}

std::streamsize socket_streambuf::xsputn(const char_type* data, std::streamsize count) {
  if (!writable_ || count <= 0) return 0;
  const auto size = static_cast<std::size_t>(count);
  if (size < static_cast<std::size_t>(epptr() - pptr())) {
    std::memcpy(pptr(), data, size);
    pbump(static_cast<int>(size));
    return count;
  }
  // Larger than the room left: send what is buffered, then the data itself,
  // without copying it through the buffer.
  flush_output();
  std::error_code ec;
  send_all(const_buffer(data, size), ec);
  if (ec) fail(ec, "send");
  return count;
}

void socket_streambuf::close() {
  if (sock_.closed()) return;
  try {
    flush_output();
  } catch (...) {
    sock_.close();
    throw;
  }
  sock_.close();
}

namespace {

struct parsed_mode {
  bool readable = false;
  bool writable = false;
};

parsed_mode parse_mode(std::string_view mode) {
  parsed_mode parsed;
  bool binary = false;
  auto invalid = [&] {
    return std::invalid_argument("invalid mode '" + std::string(mode) + "' (only r, w, b allowed)");
  };
  for (const char c : mode) {
    bool* flag = c == 'r'   ? &parsed.readable
                 : c == 'w' ? &parsed.writable
                 : c == 'b' ? &binary
                            : nullptr;
    if (flag == nullptr || *flag) throw invalid();
    *flag = true;
  }
  if (!parsed.readable && !parsed.writable) throw invalid();
  return parsed;
}

}  // namespace

socket_stream::socket_stream(socket sock, std::string_view mode) : std::iostream(nullptr) {
  const parsed_mode parsed = parse_mode(mode);
  buffer_ = std::make_unique<socket_streambuf>(std::move(sock), parsed.readable, parsed.writable);
  rdbuf(buffer_.get());
}

socket_stream::socket_stream(socket_stream&& other) noexcept
    : std::iostream(std::move(other)), buffer_(std::move(other.buffer_)) {
  set_rdbuf(buffer_.get());
  other.set_rdbuf(nullptr);
}

socket_stream& socket_stream::operator=(socket_stream&& other) noexcept {
  if (this != &other) {
    std::iostream::operator=(std::move(other));
    buffer_ = std::move(other.buffer_);
    set_rdbuf(buffer_.get());
    other.set_rdbuf(nullptr);
  }
  return *this;
}

socket_stream::~socket_stream() = default;

void socket_stream::close() {
  if (buffer_) buffer_->close();
}

void socket_stream::settimeout(timeout_type timeout) {
  if (!buffer_) throw_os_error({EBADF, std::system_category()}, "makefile: settimeout()");
  buffer_->settimeout(timeout);
}

void socket_streambuf::settimeout(timeout_type timeout) {
  sock_.settimeout(timeout);
  timed_out_ = false;
}

}  // namespace pysock
