// SPDX-License-Identifier: MIT
//
// SSLSocket: OpenSSL over pysock's own socket BIO, with the socket's
// timeout modes (CPython's _ssl.c loops: try, wait for what OpenSSL wants
// with the time left, try again), and its makefile().
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <stdexcept>

#include "../io_wait.hpp"
#include "ssl_detail.hpp"

namespace pysock {

using detail::ssl_access;
using detail::ssl_connection_state;
using detail::steady;

namespace {

// OpenSSL's socket BIO writes with write(2), which raises SIGPIPE on a reset
// connection; a library cannot ignore SIGPIPE for its host process as Python
// does. This BIO sends with MSG_NOSIGNAL, receives with recv(2), retries
// EINTR itself (PEP 475) and keeps the errno of a failure for the error.
int bio_write(BIO* bio, const char* data, int length) {
  auto* io = static_cast<detail::socket_io*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  for (;;) {
    const ssize_t n =
        ::send(io->fd, data, static_cast<std::size_t>(length), io->flags | MSG_NOSIGNAL);
    if (n >= 0) return static_cast<int>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      BIO_set_retry_write(bio);
    } else {
      io->last_errno = errno;
    }
    return -1;
  }
}

int bio_read(BIO* bio, char* data, int length) {
  auto* io = static_cast<detail::socket_io*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  for (;;) {
    const ssize_t n = ::recv(io->fd, data, static_cast<std::size_t>(length), io->flags);
    if (n >= 0) return static_cast<int>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      BIO_set_retry_read(bio);
    } else {
      io->last_errno = errno;
    }
    return -1;
  }
}

long bio_ctrl(BIO* bio, int command, long /*number*/, void* pointer) {
  auto* io = static_cast<detail::socket_io*>(BIO_get_data(bio));
  switch (command) {
    case BIO_CTRL_FLUSH:
      return 1;         // nothing is buffered here
    case BIO_C_GET_FD:  // SSL_get_fd()
      if (pointer != nullptr) *static_cast<int*>(pointer) = io->fd;
      return io->fd;
    default:
      return 0;
  }
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

BIO_METHOD* socket_bio_method() {
  // Made once, kept for the life of the process (shared by every connection).
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "pysock socket");
    if (m == nullptr) return m;
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    return m;
  }();
  return method;
}

bool nonblocking(const timeout_type& timeout) { return timeout && timeout->count() == 0; }

// CPython's "sockstate" step: after OpenSSL asked to wait for `want`, waits
// for it within `deadline` (none: forever, a blocking socket). Non-blocking
// sockets do not wait: the want error goes back to the caller.
bool wait_for(int fd, const std::error_code& want, const timeout_type& timeout,
              std::optional<steady::time_point>& deadline, std::error_code& ec) noexcept {
  if (nonblocking(timeout)) return false;
  if (timeout && !deadline) deadline = detail::deadline_after(timeout->count());
  const short events = want == ssl_errc::want_write ? POLLOUT : POLLIN;
  std::error_code wait_ec;
  if (!detail::wait_ready(fd, events, deadline, wait_ec)) {
    ec = wait_ec;
    return false;
  }
  return true;
}

bool is_want(const std::error_code& ec) {
  return ec == ssl_errc::want_read || ec == ssl_errc::want_write;
}

}  // namespace

ssl_socket ssl_access::make_socket(std::unique_ptr<ssl_connection_state> s, socket sock) {
  return ssl_socket(std::move(s), std::move(sock));
}

ssl_socket::ssl_socket(std::unique_ptr<ssl_connection_state> state, socket sock) noexcept
    : ssl_connection(std::move(state)), sock_(std::move(sock)) {
  state_->io.fd = sock_.fileno();
  if (BIO_METHOD* method = socket_bio_method()) {
    if (BIO* bio = BIO_new(method)) {
      BIO_set_data(bio, &state_->io);
      SSL_set_bio(state_->ssl, bio, bio);  // one reference, for both directions
    }
  }
}

ssl_socket::ssl_socket(ssl_socket&&) noexcept = default;
ssl_socket& ssl_socket::operator=(ssl_socket&&) noexcept = default;
ssl_socket::~ssl_socket() = default;

// Before each OpenSSL call: the descriptor (it may have been closed) and
// whether the BIO must not block (timeout and non-blocking modes; in timeout
// mode the wait is ours, with poll()).
void ssl_socket::arm_io() noexcept {
  state_->io.fd = sock_.fileno();
  state_->io.flags = sock_.gettimeout() ? MSG_DONTWAIT : 0;
  state_->io.last_errno = 0;
  detail::clear_error_queue();
}

void ssl_socket::fail(const char* call, const std::error_code& ec) {
  std::string context = call;
  context += '(';
  if (!sock_.closed()) {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    if (::getpeername(sock_.fileno(), reinterpret_cast<sockaddr*>(&peer), &length) == 0)
      context += address::from_sockaddr(reinterpret_cast<sockaddr*>(&peer), length).to_string();
  }
  context += ')';
  // The details (OpenSSL's reason, the verify code) are in the failure
  // record when it describes this error; EBADF and argument errors are not.
  if (state_ && state_->failure.ec == ec) detail::throw_failure(*state_, context);
  throw_os_error(ec, context);
}

void ssl_socket::do_handshake() {
  if (!state_ || sock_.closed()) throw_os_error(detail::bad_descriptor(), "do_handshake()");
  const timeout_type timeout = sock_.gettimeout();
  std::optional<steady::time_point> deadline;
  for (;;) {
    arm_io();
    const int ret = SSL_do_handshake(state_->ssl);
    if (ret == 1) return;
    std::error_code ec = detail::classify(*state_, ret);
    if (is_want(ec) && wait_for(sock_.fileno(), ec, timeout, deadline, ec)) continue;
    state_->failure.ec = ec;
    fail("do_handshake", ec);
  }
}

void ssl_socket::connect(const address& addr) {
  if (SSL_is_init_finished(state_->ssl) == 1 || state_->server_side)
    throw std::invalid_argument("attempt to connect already-connected SSLSocket!");
  sock_.connect(addr);
  if (state_->do_handshake_on_connect) do_handshake();
}

std::pair<ssl_socket, address> ssl_socket::accept() {
  auto [conn, peer] = sock_.accept();
  wrap_options options;
  options.do_handshake_on_connect = state_->do_handshake_on_connect;
  options.suppress_ragged_eofs = state_->suppress_ragged_eofs;
  ssl_context ctx = context();
  return {ctx.wrap_socket(std::move(conn), true, {}, options), std::move(peer)};
}

std::size_t ssl_socket::read_some(mutable_buffer buffer, std::error_code& ec) noexcept {
  ec.clear();
  if (!state_ || sock_.closed()) {
    ec = detail::bad_descriptor();
    return 0;
  }
  if (buffer.empty()) return 0;
  const timeout_type timeout = sock_.gettimeout();
  std::optional<steady::time_point> deadline;
  for (;;) {
    arm_io();
    std::size_t n = 0;
    const int ret = SSL_read_ex(state_->ssl, buffer.data(), buffer.size(), &n);
    if (ret == 1) {
      ec.clear();  // an earlier round's want_read
      return n;
    }
    ec = detail::classify(*state_, ret);
    if (is_want(ec) && wait_for(sock_.fileno(), ec, timeout, deadline, ec)) continue;
    // close_notify: the end of the data (Python's read() returns b"").
    if (ec == ssl_errc::zero_return &&
        (SSL_get_shutdown(state_->ssl) & SSL_RECEIVED_SHUTDOWN) != 0) {
      ec.clear();
    } else if (ec == ssl_errc::eof && state_->suppress_ragged_eofs) {
      ec.clear();  // the peer closed TCP without close_notify
    }
    if (ec) state_->failure.ec = ec;
    return 0;
  }
}

std::size_t ssl_socket::recv_into(mutable_buffer buffer, std::size_t nbytes,
                                  std::error_code& ec) noexcept {
  if (nbytes > buffer.size()) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return 0;
  }
  return read_some(nbytes == 0 ? buffer : buffer.first(nbytes), ec);
}

std::size_t ssl_socket::recv_into(mutable_buffer buffer, std::size_t nbytes) {
  if (nbytes > buffer.size()) throw std::invalid_argument("buffer too small for requested bytes");
  std::error_code ec;
  const std::size_t n = recv_into(buffer, nbytes, ec);
  if (ec) fail("recv_into", ec);
  return n;
}

bytes ssl_socket::recv(std::size_t bufsize, std::error_code& ec) {
  // TLS records carry at most 16 KiB: a larger request is served by one
  // record anyway, so the buffer need not be larger than that plus what is
  // already decrypted.
  bytes data(bufsize, '\0');
  data.resize(read_some(data, ec));
  return data;
}

bytes ssl_socket::recv(std::size_t bufsize) {
  std::error_code ec;
  bytes data = recv(bufsize, ec);
  if (ec) fail("recv", ec);
  return data;
}

std::size_t ssl_socket::write_all(const_buffer data, std::optional<steady::time_point>* deadline,
                                  std::error_code& ec) noexcept {
  ec.clear();
  if (!state_ || sock_.closed()) {
    ec = detail::bad_descriptor();
    return 0;
  }
  const timeout_type timeout = sock_.gettimeout();
  std::optional<steady::time_point> own_deadline;
  std::optional<steady::time_point>& until = deadline != nullptr ? *deadline : own_deadline;
  for (;;) {
    arm_io();
    std::size_t n = 0;
    // Without SSL_MODE_ENABLE_PARTIAL_WRITE (as CPython) SSL_write_ex
    // succeeds only once every byte is written.
    const int ret = SSL_write_ex(state_->ssl, data.data(), data.size(), &n);
    if (ret == 1) {
      ec.clear();  // an earlier round's want_write
      return n;
    }
    ec = detail::classify(*state_, ret);
    if (is_want(ec) && wait_for(sock_.fileno(), ec, timeout, until, ec)) continue;
    state_->failure.ec = ec;
    return 0;
  }
}

std::size_t ssl_socket::send(const_buffer data, std::error_code& ec) noexcept {
  return write_all(data, nullptr, ec);
}

std::size_t ssl_socket::send(const_buffer data) {
  std::error_code ec;
  const std::size_t n = send(data, ec);
  if (ec) fail("send", ec);
  return n;
}

void ssl_socket::sendall(const_buffer data) {
  // One deadline for the whole call; OpenSSL writes the whole buffer, so one
  // SSL_write_ex loop is the whole sendall. Huge buffers go in 1 GiB steps
  // (SSL_write lengths are ints inside OpenSSL's record layer).
  std::optional<steady::time_point> deadline;
  const timeout_type timeout = sock_.gettimeout();
  if (timeout && timeout->count() > 0) deadline = detail::deadline_after(timeout->count());
  constexpr std::size_t step = std::size_t(1) << 30;
  std::size_t done = 0;
  do {
    std::error_code ec;
    const const_buffer rest = data.subspan(done);
    const const_buffer part(rest.data(), std::min(step, rest.size()));
    done += write_all(part, &deadline, ec);
    if (ec) fail("sendall", ec);
  } while (done < data.size());
}

socket ssl_socket::unwrap() {
  if (!state_ || sock_.closed()) throw_os_error(detail::bad_descriptor(), "unwrap()");
  const timeout_type timeout = sock_.gettimeout();
  std::optional<steady::time_point> deadline;
  int zeros = 0;
  for (;;) {
    arm_io();
    const int ret = SSL_shutdown(state_->ssl);
    if (ret == 1) break;
    if (ret == 0) {
      // close_notify sent; call again to read the peer's (CPython stops
      // after the second 0 as well, instead of spinning).
      if (++zeros > 1) break;
      continue;
    }
    std::error_code ec = detail::classify(*state_, ret);
    if (is_want(ec) && wait_for(sock_.fileno(), ec, timeout, deadline, ec)) continue;
    state_->failure.ec = ec;
    fail("unwrap", ec);
  }
  socket plain = std::move(sock_);
  sock_ = socket::closed_socket();
  state_.reset();
  return plain;
}

void ssl_socket::shutdown(int how) {
  sock_.shutdown(how);
  state_.reset();  // as Python: the TLS layer is dropped without close_notify
}

void ssl_socket::close() {
  state_.reset();
  sock_.close();
}

// --- makefile ---------------------------------------------------------------------

ssl_stream ssl_socket::makefile(std::string_view mode) { return ssl_stream(*this, mode); }

ssl_streambuf::ssl_streambuf(ssl_socket& sock, bool readable, bool writable,
                             std::size_t buffer_size)
    : sock_(&sock),
      in_(readable ? buffer_size : 0),
      out_(writable ? buffer_size : 0),
      readable_(readable),
      writable_(writable) {
  setg(in_.data(), in_.data(), in_.data());
  if (writable_) setp(out_.data(), out_.data() + out_.size());
}

ssl_streambuf::~ssl_streambuf() {
  // A destructor cannot report a failed flush; error() and badbit could not
  // be read afterwards anyway.
  if (writable_ && pptr() != pbase()) {
    try {
      flush_output();
    } catch (...) {
    }
  }
}

bool ssl_streambuf::flush_output() {
  const auto pending = static_cast<std::size_t>(pptr() - pbase());
  if (pending == 0) return true;
  try {
    sock_->sendall(const_buffer(pbase(), pending));
  } catch (const std::system_error& e) {
    error_ = e.code();
    throw;
  }
  setp(out_.data(), out_.data() + out_.size());
  return true;
}

ssl_streambuf::int_type ssl_streambuf::underflow() {
  if (!readable_) return traits_type::eof();
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  if (writable_) flush_output();  // a request must go out before its reply is read
  std::size_t n = 0;
  try {
    n = sock_->recv_into(mutable_buffer(in_.data(), in_.size()));
  } catch (const std::system_error& e) {
    error_ = e.code();
    throw;  // the stream sets badbit, and rethrows when asked to
  }
  if (n == 0) return traits_type::eof();
  setg(in_.data(), in_.data(), in_.data() + n);
  return traits_type::to_int_type(*gptr());
}

ssl_streambuf::int_type ssl_streambuf::overflow(int_type ch) {
  if (!writable_) return traits_type::eof();
  flush_output();
  if (!traits_type::eq_int_type(ch, traits_type::eof())) {
    *pptr() = traits_type::to_char_type(ch);
    pbump(1);
  }
  return traits_type::not_eof(ch);
}

int ssl_streambuf::sync() {
  if (writable_) flush_output();
  return 0;
}

std::streamsize ssl_streambuf::xsputn(const char_type* data, std::streamsize count) {
  if (!writable_) return 0;
  const auto size = static_cast<std::size_t>(count);
  if (size >= out_.size()) {  // large writes skip the buffer
    flush_output();
    try {
      sock_->sendall(const_buffer(data, size));
    } catch (const std::system_error& e) {
      error_ = e.code();
      throw;
    }
    return count;
  }
  return std::streambuf::xsputn(data, count);
}

namespace {
std::pair<bool, bool> parse_mode(std::string_view mode) {
  bool r = false, w = false, b = false;
  for (const char c : mode) {
    bool* flag = c == 'r' ? &r : c == 'w' ? &w : c == 'b' ? &b : nullptr;
    if (flag == nullptr || *flag)
      throw std::invalid_argument("invalid mode '" + std::string(mode) +
                                  "' (only r, w, b allowed)");
    *flag = true;
  }
  if (!r && !w) r = true;
  return {r, w};
}
}  // namespace

ssl_stream::ssl_stream(ssl_socket& sock, std::string_view mode) : std::iostream(nullptr) {
  const auto [readable, writable] = parse_mode(mode);
  buffer_ = std::make_unique<ssl_streambuf>(sock, readable, writable);
  rdbuf(buffer_.get());
}

ssl_stream::ssl_stream(ssl_stream&& other) noexcept
    : std::iostream(std::move(other)), buffer_(std::move(other.buffer_)) {
  set_rdbuf(buffer_.get());
}

ssl_stream::~ssl_stream() {
  if (buffer_) {
    try {
      flush();
    } catch (...) {
    }
  }
}

}  // namespace pysock
