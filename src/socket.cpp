// SPDX-License-Identifier: MIT
//
// The socket object: CPython's socketmodule.c semantics (timeouts, EINTR,
// close-on-exec, MSG_NOSIGNAL) over the raw system calls.
#include "pysock/socket.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "io_wait.hpp"

namespace pysock {

std::atomic<std::uint64_t> detail::descriptor_release_epoch{0};

namespace {

using detail::bad_descriptor;
using detail::call_with_timeout;
using detail::deadline_after;
using detail::in_timeout_mode;
using detail::steady;
using detail::timeout_flags;
using detail::wait_ready;

// The module default timeout in nanoseconds; -1 stands for None (blocking).
std::atomic<std::int64_t> default_timeout_ns{-1};

std::optional<std::int64_t> current_default_timeout() noexcept {
  const std::int64_t ns = default_timeout_ns.load(std::memory_order_relaxed);
  if (ns < 0) return std::nullopt;
  return ns;
}

void throw_if(const std::error_code& ec, const std::string& context) {
  if (ec) throw_os_error(ec, context);
}

std::optional<std::int64_t> checked_timeout(const timeout_type& timeout) {
  if (!timeout) return std::nullopt;
  if (timeout->count() < 0) throw std::invalid_argument("Timeout value out of range");
  return timeout->count();
}

}  // namespace

// --- construction and ownership ------------------------------------------------

socket::socket(int family, int type, int proto) {
  const bool nonblocking_type = (type & SOCK_NONBLOCK) != 0;
  const std::optional<std::int64_t> default_timeout = current_default_timeout();
  // A default timeout means an O_NONBLOCK descriptor: ask for it at creation
  // instead of paying an extra ioctl.
  const int flags = SOCK_CLOEXEC | (nonblocking_type || default_timeout ? SOCK_NONBLOCK : 0);
  fd_ = ::socket(family, type | flags, proto);
  if (fd_ < 0) throw_os_error(last_error(), "socket()");
  family_ = family;
  type_ = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  proto_ = proto;
  timeout_ns_ = nonblocking_type ? std::optional<std::int64_t>(0) : default_timeout;
}

socket::socket(int fd, int family, int type, int proto) noexcept
    : fd_(fd), family_(family), type_(type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)), proto_(proto) {}

socket socket::from_fileno(int fd) {
  if (fd < 0) throw std::invalid_argument("negative file descriptor");
  sockaddr_storage name{};
  socklen_t length = sizeof name;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&name), &length) != 0) {
    const std::error_code ec = last_error();  // before any allocation can touch errno
    throw_os_error(ec, "socket(fileno=" + std::to_string(fd) + ")");
  }
  int type = 0;
  int proto = 0;
  socklen_t option_length = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &option_length) != 0) {
    const std::error_code ec = last_error();
    throw_os_error(ec, "socket(fileno=" + std::to_string(fd) + ")");
  }
  option_length = sizeof proto;
  if (::getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &option_length) != 0) proto = 0;
  socket adopted(fd, name.ss_family, type, proto);
  const int status = ::fcntl(fd, F_GETFL);
  adopted.apply_default_timeout(status >= 0 && (status & O_NONBLOCK) != 0);
  return adopted;
}

socket detail::adopt_accepted(int fd, const socket& listener) noexcept {
  socket conn(fd, listener.family_, listener.type_, listener.proto_);
  conn.timeout_ns_ = 0;
  return conn;
}

void socket::apply_default_timeout(bool fd_nonblocking) {
  timeout_ns_ = current_default_timeout();
  // With no default (None) the descriptor is left as it is, as in Python.
  if (timeout_ns_ && !fd_nonblocking) {
    int on = 1;
    if (::ioctl(fd_, FIONBIO, &on) != 0) throw_os_error(last_error(), "socket()");
  }
}

socket::socket(socket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      family_(other.family_),
      type_(other.type_),
      proto_(other.proto_),
      timeout_ns_(other.timeout_ns_) {}

socket& socket::operator=(socket&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) {
      detail::note_descriptor_release();  // before the number can be reused
      ::close(fd_);
    }
    fd_ = std::exchange(other.fd_, -1);
    family_ = other.family_;
    type_ = other.type_;
    proto_ = other.proto_;
    timeout_ns_ = other.timeout_ns_;
  }
  return *this;
}

socket::~socket() {
  if (fd_ >= 0) {
    detail::note_descriptor_release();  // before the number can be reused
    ::close(fd_);
  }
}

void socket::close() {
  if (fd_ < 0) return;
  const int fd = std::exchange(fd_, -1);
  detail::note_descriptor_release();
  // Never retried: on Linux the descriptor is gone even when close() reports
  // EINTR, and a retry could close a descriptor another thread just opened.
  // ECONNRESET only says the peer had reset; the descriptor is released.
  if (::close(fd) != 0 && errno != ECONNRESET && errno != EINTR)
    throw_os_error(last_error(), "close()");
}

int socket::detach() noexcept {
  if (fd_ >= 0) detail::note_descriptor_release();  // the caller may close it behind our back
  return std::exchange(fd_, -1);
}

socket socket::dup() const {
  if (fd_ < 0) throw_os_error(bad_descriptor(), "dup()");
  const int copy = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) throw_os_error(last_error(), "dup()");
  socket duplicate(copy, family_, type_, proto_);
  duplicate.timeout_ns_ = timeout_ns_;  // the O_NONBLOCK flag is already shared
  return duplicate;
}

// Only called on error paths, after the error code was saved: the extra
// system calls here may change errno.
std::string socket::describe(const char* call) const {
  std::string text = call;
  text += '(';
  if (fd_ >= 0) {
    sockaddr_storage name{};
    socklen_t length = sizeof name;
    if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&name), &length) == 0) {
      text += address::from_sockaddr(reinterpret_cast<sockaddr*>(&name), length).to_string();
    } else if (length = sizeof name;
               ::getsockname(fd_, reinterpret_cast<sockaddr*>(&name), &length) == 0) {
      // No peer (any more): say whose address this is.
      const std::string local =
          address::from_sockaddr(reinterpret_cast<sockaddr*>(&name), length).to_string();
      if (!local.empty()) text += "local " + local;
    }
  }
  text += ')';
  return text;
}

// --- connection set-up ------------------------------------------------------------

void socket::bind(const address& addr) {
  std::error_code ec;
  const sockaddr_buffer target = addr.to_sockaddr(family_, ec);
  if (!ec && fd_ < 0) ec = bad_descriptor();
  if (!ec && ::bind(fd_, target.get(), target.length) != 0) ec = last_error();
  throw_if(ec, "bind(" + addr.to_string() + ")");
}

void socket::listen(int backlog) {
  if (fd_ < 0) throw_os_error(bad_descriptor(), "listen()");
  if (::listen(fd_, backlog < 0 ? 0 : backlog) != 0) {
    const std::error_code ec = last_error();  // describe() makes system calls
    throw_os_error(ec, describe("listen"));
  }
}

std::pair<socket, address> socket::accept(std::error_code& ec) noexcept {
  sockaddr_storage peer;
  socklen_t length = 0;
  const std::optional<std::int64_t> default_timeout = current_default_timeout();
  // Accepted sockets get the module default, not the listener's timeout; a
  // default means a non-blocking descriptor, asked for in the same call.
  const int flags = SOCK_CLOEXEC | (default_timeout ? SOCK_NONBLOCK : 0);
  const int fd = call_with_timeout(fd_, timeout_ns_, POLLIN, ec, [&] {
    length = sizeof peer;
    return ::accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &length, flags);
  });
  if (fd < 0) return {closed_socket(), address()};
  socket conn(fd, family_, type_, proto_);
  conn.timeout_ns_ = default_timeout;
  return {std::move(conn), address::from_sockaddr(reinterpret_cast<sockaddr*>(&peer), length)};
}

std::pair<socket, address> socket::accept() {
  std::error_code ec;
  auto result = accept(ec);
  if (ec) throw_os_error(ec, describe("accept"));
  return result;
}

// CPython's internal_connect: one connect(2); EINPROGRESS in timeout mode, or
// EINTR on a blocking socket (the handshake goes on in the kernel), is waited
// for with poll() and then read back from SO_ERROR.
void socket::connect_sockaddr(const sockaddr_buffer& target, std::error_code& ec) noexcept {
  ec.clear();
  if (fd_ < 0) {
    ec = bad_descriptor();
    return;
  }
  if (::connect(fd_, target.get(), target.length) == 0) return;
  const int err = errno;
  const bool nonblocking = timeout_ns_ && *timeout_ns_ == 0;
  const bool must_wait =
      (err == EINTR && !nonblocking) || (err == EINPROGRESS && in_timeout_mode(timeout_ns_));
  if (!must_wait) {
    ec = {err, std::system_category()};
    return;
  }
  std::optional<steady::time_point> deadline;
  if (in_timeout_mode(timeout_ns_)) deadline = deadline_after(*timeout_ns_);
  if (!wait_ready(fd_, POLLOUT, deadline, ec)) return;
  int pending_error = 0;
  socklen_t length = sizeof pending_error;
  if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &pending_error, &length) != 0) {
    ec = last_error();
  } else if (pending_error != 0 && pending_error != EISCONN) {
    ec = {pending_error, std::system_category()};
  }
}

void socket::connect(const address& addr, std::error_code& ec) noexcept {
  const sockaddr_buffer target = addr.to_sockaddr(family_, ec);
  if (!ec) connect_sockaddr(target, ec);
}

void socket::connect(const address& addr) {
  std::error_code ec;
  connect(addr, ec);
  throw_if(ec, "connect(" + addr.to_string() + ")");
}

int socket::connect_ex(const address& addr) {
  std::error_code ec;
  const sockaddr_buffer target = addr.to_sockaddr(family_, ec);
  throw_if(ec, "connect_ex(" + addr.to_string() + ")");
  connect_sockaddr(target, ec);
  if (!ec) return 0;
  if (ec == socket_errc::timed_out) return EAGAIN;  // what Python's connect_ex gives
  if (ec.category() != std::system_category() && ec.category() != std::generic_category())
    throw_os_error(ec, "connect_ex(" + addr.to_string() + ")");
  return ec.value();
}

address socket::getsockname() const {
  if (fd_ < 0) throw_os_error(bad_descriptor(), "getsockname()");
  sockaddr_storage name{};
  socklen_t length = sizeof name;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&name), &length) != 0)
    throw_os_error(last_error(), "getsockname()");
  return address::from_sockaddr(reinterpret_cast<sockaddr*>(&name), length);
}

address socket::getpeername() const {
  if (fd_ < 0) throw_os_error(bad_descriptor(), "getpeername()");
  sockaddr_storage name{};
  socklen_t length = sizeof name;
  if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&name), &length) != 0)
    throw_os_error(last_error(), "getpeername()");
  return address::from_sockaddr(reinterpret_cast<sockaddr*>(&name), length);
}

void socket::shutdown(int how) {
  if (fd_ < 0) throw_os_error(bad_descriptor(), "shutdown()");
  if (::shutdown(fd_, how) != 0) throw_os_error(last_error(), "shutdown()");
}

// --- data -------------------------------------------------------------------------

std::size_t socket::recv_into(mutable_buffer buffer, std::size_t nbytes, int flags,
                              std::error_code& ec) noexcept {
  if (nbytes > buffer.size()) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return 0;
  }
  const std::size_t wanted = nbytes == 0 ? buffer.size() : nbytes;
  if (wanted == 0) {  // Python returns 0 without a system call
    ec.clear();
    return 0;
  }
  const int all_flags = flags | timeout_flags(timeout_ns_);
  const ssize_t n = call_with_timeout(
      fd_, timeout_ns_, POLLIN, ec, [&] { return ::recv(fd_, buffer.data(), wanted, all_flags); });
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}

std::size_t socket::recv_into(mutable_buffer buffer, std::size_t nbytes, int flags) {
  if (nbytes > buffer.size()) throw std::invalid_argument("buffer too small for requested bytes");
  std::error_code ec;
  const std::size_t n = recv_into(buffer, nbytes, flags, ec);
  if (ec) throw_os_error(ec, describe("recv_into"));
  return n;
}

namespace {

// recv(n) is usually asked for far more than arrives: receive into a
// per-thread scratch block and return a string of exactly what came, instead
// of allocating and zero-filling `bufsize` bytes and keeping that capacity.
constexpr std::size_t scratch_size = 64 * 1024;

mutable_buffer receive_scratch() {
  thread_local std::unique_ptr<char[]> block;
  if (!block) block = std::make_unique<char[]>(scratch_size);
  return {block.get(), scratch_size};
}

void check_buffer_size(std::size_t size, const char* call) {
  // A negative Python size arrives here as a huge size_t.
  if (size > static_cast<std::size_t>(PTRDIFF_MAX))
    throw std::invalid_argument(std::string("negative buffersize in ") + call);
}

}  // namespace

bytes socket::recv(std::size_t bufsize, int flags, std::error_code& ec) {
  ec.clear();
  check_buffer_size(bufsize, "recv");
  if (bufsize == 0) return {};  // Python: b'' with no system call, even when closed
  if (bufsize <= scratch_size) {
    const mutable_buffer scratch = receive_scratch();
    const std::size_t n = recv_into(scratch, bufsize, flags, ec);
    return bytes(reinterpret_cast<const char*>(scratch.data()), n);
  }
  bytes data(bufsize, '\0');
  const std::size_t n = recv_into(data, bufsize, flags, ec);
  data.resize(n);
  if (n < bufsize / 2) data.shrink_to_fit();
  return data;
}

bytes socket::recv(std::size_t bufsize, int flags) {
  std::error_code ec;
  bytes data = recv(bufsize, flags, ec);
  if (ec) throw_os_error(ec, describe("recv"));
  return data;
}

std::size_t socket::send(const_buffer data, int flags, std::error_code& ec) noexcept {
  const int all_flags = flags | MSG_NOSIGNAL | timeout_flags(timeout_ns_);
  const ssize_t n = call_with_timeout(fd_, timeout_ns_, POLLOUT, ec, [&] {
    return ::send(fd_, data.data(), data.size(), all_flags);
  });
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}

std::size_t socket::send(const_buffer data, int flags) {
  std::error_code ec;
  const std::size_t n = send(data, flags, ec);
  if (ec) throw_os_error(ec, describe("send"));
  return n;
}

std::size_t socket::sendall(const_buffer data, int flags, std::error_code& ec) {
  std::size_t done = 0;
  ec.clear();
  // One deadline for the whole call, starting now (Python 3.5+), shared by
  // every wait; time spent in sends that went through counts too.
  std::optional<steady::time_point> deadline;
  if (in_timeout_mode(timeout_ns_)) deadline = deadline_after(*timeout_ns_);
  const int all_flags = flags | MSG_NOSIGNAL | timeout_flags(timeout_ns_);
  // At least one send(), as Python's do-while: sendall("") on a closed
  // socket is EBADF, not a silent success.
  do {
    const const_buffer rest = data.subspan(done);
    const ssize_t n = call_with_timeout(fd_, timeout_ns_, POLLOUT, deadline, ec, [&] {
      return ::send(fd_, rest.data(), rest.size(), all_flags);
    });
    if (n < 0) break;
    done += static_cast<std::size_t>(n);
  } while (done < data.size());
  return done;
}

void socket::sendall(const_buffer data, int flags, std::size_t* sent) {
  std::error_code ec;
  const std::size_t done = sendall(data, flags, ec);
  if (sent != nullptr) *sent = done;
  if (ec) throw_os_error(ec, describe("sendall"));
}

std::size_t socket::sendto(const_buffer data, int flags, const address& addr,
                           std::error_code& ec) noexcept {
  const sockaddr_buffer target = addr.to_sockaddr(family_, ec);
  if (ec) return 0;
  const int all_flags = flags | MSG_NOSIGNAL | timeout_flags(timeout_ns_);
  const ssize_t n = call_with_timeout(fd_, timeout_ns_, POLLOUT, ec, [&] {
    return ::sendto(fd_, data.data(), data.size(), all_flags, target.get(), target.length);
  });
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}

std::size_t socket::sendto(const_buffer data, int flags, const address& addr) {
  std::error_code ec;
  const std::size_t n = sendto(data, flags, addr, ec);
  if (ec) throw_os_error(ec, "sendto(" + addr.to_string() + ")");
  return n;
}

std::size_t socket::sendto(const_buffer data, const address& addr) { return sendto(data, 0, addr); }

std::pair<std::size_t, address> socket::recvfrom_into(mutable_buffer buffer, std::size_t nbytes,
                                                      int flags, std::error_code& ec) noexcept {
  if (nbytes > buffer.size()) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return {0, address()};
  }
  const std::size_t wanted = nbytes == 0 ? buffer.size() : nbytes;
  sockaddr_storage peer;
  socklen_t length = 0;
  // Unlike recv(), a zero size still makes the call: it waits for (and
  // consumes) a datagram, as Python does.
  const int all_flags = flags | timeout_flags(timeout_ns_);
  const ssize_t n = call_with_timeout(fd_, timeout_ns_, POLLIN, ec, [&] {
    length = sizeof peer;
    return ::recvfrom(fd_, buffer.data(), wanted, all_flags, reinterpret_cast<sockaddr*>(&peer),
                      &length);
  });
  if (n < 0) return {0, address()};
  return {static_cast<std::size_t>(n),
          address::from_sockaddr(reinterpret_cast<sockaddr*>(&peer), length)};
}

std::pair<std::size_t, address> socket::recvfrom_into(mutable_buffer buffer, std::size_t nbytes,
                                                      int flags) {
  if (nbytes > buffer.size())
    throw std::invalid_argument("nbytes is greater than the length of the buffer");
  std::error_code ec;
  auto result = recvfrom_into(buffer, nbytes, flags, ec);
  if (ec) throw_os_error(ec, describe("recvfrom_into"));
  return result;
}

std::pair<bytes, address> socket::recvfrom(std::size_t bufsize, int flags, std::error_code& ec) {
  check_buffer_size(bufsize, "recvfrom");
  if (bufsize <= scratch_size) {
    const mutable_buffer scratch = receive_scratch();
    auto [n, from] = recvfrom_into(scratch.first(bufsize), bufsize, flags, ec);
    return {bytes(reinterpret_cast<const char*>(scratch.data()), n), std::move(from)};
  }
  bytes data(bufsize, '\0');
  auto [n, from] = recvfrom_into(data, bufsize, flags, ec);
  data.resize(n);
  if (n < bufsize / 2) data.shrink_to_fit();
  return {std::move(data), std::move(from)};
}

std::pair<bytes, address> socket::recvfrom(std::size_t bufsize, int flags) {
  std::error_code ec;
  auto result = recvfrom(bufsize, flags, ec);
  if (ec) throw_os_error(ec, describe("recvfrom"));
  return result;
}

// --- options ------------------------------------------------------------------------

void socket::set_option_raw(int level, int option, const void* value, socklen_t length) {
  if (fd_ < 0) throw_os_error(bad_descriptor(), "setsockopt()");
  if (::setsockopt(fd_, level, option, value, length) != 0) {
    const std::error_code ec = last_error();  // before the message allocates
    throw_os_error(ec, "setsockopt(" + std::to_string(level) + ", " + std::to_string(option) + ")");
  }
}

void socket::get_option_raw(int level, int option, void* value, socklen_t* length) const {
  if (fd_ < 0) throw_os_error(bad_descriptor(), "getsockopt()");
  if (::getsockopt(fd_, level, option, value, length) != 0) {
    const std::error_code ec = last_error();
    throw_os_error(ec, "getsockopt(" + std::to_string(level) + ", " + std::to_string(option) + ")");
  }
}

void socket::setsockopt(int level, int option, int value) {
  set_option_raw(level, option, &value, sizeof value);
}

void socket::setsockopt(int level, int option, const_buffer value) {
  set_option_raw(level, option, value.data(), static_cast<socklen_t>(value.size()));
}

void socket::setsockopt(int level, int option, std::nullptr_t, socklen_t optlen) {
  set_option_raw(level, option, nullptr, optlen);
}

int socket::getsockopt(int level, int option) const {
  int value = 0;
  socklen_t length = sizeof value;
  get_option_raw(level, option, &value, &length);
  return value;
}

bytes socket::getsockopt(int level, int option, socklen_t buflen) const {
  if (buflen < 1 || buflen > 1024) throw std::invalid_argument("getsockopt buflen out of range");
  bytes value(buflen, '\0');
  get_option_raw(level, option, value.data(), &buflen);
  value.resize(buflen);
  return value;
}

// --- blocking, timeouts, inheritance ------------------------------------------------

void socket::settimeout(timeout_type timeout) {
  const std::optional<std::int64_t> ns = checked_timeout(timeout);
  // As in Python, a closed socket (or one whose descriptor was closed behind
  // its back) fails with EBADF.
  if (fd_ < 0) throw_os_error(bad_descriptor(), "settimeout()");
  timeout_ns_ = ns;
  int nonblocking = ns.has_value() ? 1 : 0;
  if (::ioctl(fd_, FIONBIO, &nonblocking) != 0) throw_os_error(last_error(), "settimeout()");
}

void socket::setblocking(bool flag) {
  settimeout(flag ? timeout_type(std::nullopt) : timeout_type(std::chrono::nanoseconds(0)));
}

bool socket::get_inheritable() const {
  if (fd_ < 0) throw_os_error(bad_descriptor(), "get_inheritable()");
  const int flags = ::fcntl(fd_, F_GETFD);
  if (flags < 0) throw_os_error(last_error(), "get_inheritable()");
  return (flags & FD_CLOEXEC) == 0;
}

void socket::set_inheritable(bool inheritable) {
  if (fd_ < 0) throw_os_error(bad_descriptor(), "set_inheritable()");
  const int flags = ::fcntl(fd_, F_GETFD);
  if (flags < 0) throw_os_error(last_error(), "set_inheritable()");
  const int wanted = inheritable ? (flags & ~FD_CLOEXEC) : (flags | FD_CLOEXEC);
  if (wanted != flags && ::fcntl(fd_, F_SETFD, wanted) != 0)
    throw_os_error(last_error(), "set_inheritable()");
}

// --- module default timeout -----------------------------------------------------------

timeout_type getdefaulttimeout() noexcept {
  const std::int64_t ns = default_timeout_ns.load(std::memory_order_relaxed);
  if (ns < 0) return std::nullopt;
  return std::chrono::nanoseconds(ns);
}

void setdefaulttimeout(timeout_type timeout) {
  const std::optional<std::int64_t> ns = checked_timeout(timeout);
  default_timeout_ns.store(ns ? *ns : -1, std::memory_order_relaxed);
}

}  // namespace pysock
