// SPDX-License-Identifier: MIT
//
// pysock/socket.hpp — Python's socket object, and the module functions that make
// sockets (socketpair, fromfd, create_connection, create_server).
//
//   import socket                          #include <pysock/socket.hpp>
//   s = socket.socket()                    pysock::socket s;   // AF_INET, SOCK_STREAM
//   s.bind(('127.0.0.1', 8080))            s.bind({"127.0.0.1", 8080});
//   s.listen()                             s.listen();
//   conn, addr = s.accept()                auto [conn, addr] = s.accept();
//   data = conn.recv(1024)                 pysock::bytes data = conn.recv(1024);
//   conn.sendall(data)                     conn.sendall(data);
//
// Semantics are CPython's on Linux:
// - Every descriptor is created close-on-exec (PEP 446): socket(), accept(),
//   socketpair(), dup(), fromfd().
// - Every call that can wait retries on EINTR, keeping its deadline (PEP 475).
//   close() is never retried.
// - send(), sendall() and sendto() pass MSG_NOSIGNAL: a closed peer gives
//   broken_pipe_error, never SIGPIPE.
// - Timeouts have Python's three modes: settimeout(std::nullopt) blocks,
//   settimeout(0s) is non-blocking (would-block is blocking_io_error, or the
//   code std::errc::operation_would_block from the error_code overloads), and
//   settimeout(d > 0) waits at most d for each call (sendall(): for the whole
//   call) and then throws timeout_error("timed out"). Timeout mode sets
//   O_NONBLOCK on the descriptor and waits with poll(); dup()'ed sockets
//   share the descriptor's O_NONBLOCK flag, as in Python.
// - A socket object is not thread-safe: use it from one thread at a time. To
//   wake a thread blocked in recv()/accept() from another thread, call
//   shutdown(SHUT_RDWR) on it (not close(): the descriptor number could be
//   reused under the blocked call). Signals do not interrupt a blocking call
//   (PEP 475 retries it); use a timeout where a call must give up.
// - A closed, detached or moved-from socket is a valid object whose calls fail
//   with EBADF ("Bad file descriptor"), never undefined behaviour.
//
// Error model (as asio and std::filesystem): each call throws the Python
// exception class (pysock/error.hpp); the calls a server's hot path makes
// (accept, connect, recv, recv_into, recvfrom, recvfrom_into, send, sendto)
// also have an overload taking `std::error_code&` that never throws for a
// system error, and for recv_into/send/accept allocates nothing.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "pysock/address.hpp"
#include "pysock/buffer.hpp"
#include "pysock/error.hpp"

namespace pysock {

/// A socket timeout: std::nullopt is blocking, zero is non-blocking.
using timeout_type = std::optional<std::chrono::nanoseconds>;

/// Python's default listen() backlog: min(SOMAXCONN, 128).
inline constexpr int default_backlog = SOMAXCONN < 128 ? SOMAXCONN : 128;

/// A typed socket option for the common cases: `sock.setsockopt(so_reuseaddr, true)`.
template <int Level, int Name, class T>
struct socket_option {
  static constexpr int level = Level;
  static constexpr int name = Name;
  using value_type = T;
};
inline constexpr socket_option<SOL_SOCKET, SO_REUSEADDR, bool> so_reuseaddr{};
inline constexpr socket_option<SOL_SOCKET, SO_REUSEPORT, bool> so_reuseport{};
inline constexpr socket_option<SOL_SOCKET, SO_KEEPALIVE, bool> so_keepalive{};
inline constexpr socket_option<SOL_SOCKET, SO_BROADCAST, bool> so_broadcast{};
inline constexpr socket_option<SOL_SOCKET, SO_RCVBUF, int> so_rcvbuf{};
inline constexpr socket_option<SOL_SOCKET, SO_SNDBUF, int> so_sndbuf{};
inline constexpr socket_option<SOL_SOCKET, SO_TYPE, int> so_type{};
inline constexpr socket_option<SOL_SOCKET, SO_ERROR, int> so_error{};
/// SO_LINGER: std::nullopt turns lingering off; a value (whole seconds) turns it on.
inline constexpr socket_option<SOL_SOCKET, SO_LINGER, std::optional<std::chrono::seconds>>
    so_linger{};
inline constexpr socket_option<IPPROTO_TCP, TCP_NODELAY, bool> tcp_nodelay{};
inline constexpr socket_option<IPPROTO_IPV6, IPV6_V6ONLY, bool> ipv6_v6only{};

/// One ancillary data item, Python's (cmsg_level, cmsg_type, cmsg_data):
/// e.g. {SOL_SOCKET, SCM_RIGHTS, <packed ints>}.
struct ancillary {
  int level = 0;
  int type = 0;
  bytes data;
  friend bool operator==(const ancillary&, const ancillary&) = default;
};

/// recvmsg()'s (data, ancdata, msg_flags, address).
struct recvmsg_result {
  bytes data;
  std::vector<ancillary> ancdata;
  int msg_flags = 0;  ///< MSG_TRUNC, MSG_CTRUNC, MSG_EOR...
  pysock::address address;
};

/// recvmsg_into()'s (nbytes, ancdata, msg_flags, address).
struct recvmsg_into_result {
  std::size_t nbytes = 0;
  std::vector<ancillary> ancdata;
  int msg_flags = 0;
  pysock::address address;
};

class socket_stream;
class socket;

namespace detail {
// The event loop's accepts made by the kernel (io_uring's multishot accept):
// `fd` came from accept4(listener, SOCK_NONBLOCK | SOCK_CLOEXEC), so it has
// the listener's family, type and protocol and is already non-blocking.
socket adopt_accepted(int fd, const socket& listener) noexcept;
}  // namespace detail

class socket {
 public:
  /// Python's socket(family, type, proto). SOCK_NONBLOCK in `type` makes the
  /// socket non-blocking (timeout 0); otherwise it gets getdefaulttimeout().
  /// Throws os_error (EAFNOSUPPORT for a bad family, EINVAL for a bad type...).
  explicit socket(int family = AF_INET, int type = SOCK_STREAM, int proto = 0);

  /// Python's socket(fileno=fd): adopts `fd` (no dup; the socket now owns and
  /// will close it). Family, type and protocol are read from the kernel.
  /// Throws std::invalid_argument for a negative fd, os_error EBADF for a
  /// closed one and ENOTSOCK for a descriptor that is not a socket (in which
  /// case `fd` is left open: it was not adopted).
  static socket from_fileno(int fd);

  /// An object that owns nothing (fileno() == -1); every call fails with EBADF.
  /// What a socket becomes after close(), detach() or a move.
  static socket closed_socket() noexcept { return socket(no_descriptor{}); }

  socket(socket&& other) noexcept;
  socket& operator=(socket&& other) noexcept;
  socket(const socket&) = delete;
  socket& operator=(const socket&) = delete;
  /// Closes the descriptor if still open, ignoring errors (a destructor cannot
  /// report them: call close() to see them).
  ~socket();

  // --- descriptor and identity -------------------------------------------

  /// Closes the descriptor. Idempotent. Throws os_error if close(2) fails
  /// (EBADF when the descriptor was closed behind the object's back);
  /// ECONNRESET is ignored, as in Python. The object is closed either way.
  void close();
  /// Returns the descriptor and gives up ownership; the object is then closed.
  int detach() noexcept;
  /// A new socket on dup(fd) (close-on-exec) with the same timeout.
  socket dup() const;
  /// The descriptor, or -1 once closed or detached.
  int fileno() const noexcept { return fd_; }
  bool closed() const noexcept { return fd_ < 0; }
  int family() const noexcept { return family_; }
  /// The type without SOCK_NONBLOCK/SOCK_CLOEXEC, as Python's `type`.
  int type() const noexcept { return type_; }
  int proto() const noexcept { return proto_; }

  // --- connection set-up --------------------------------------------------

  /// Binds to `addr`, resolving a host name for this socket's family.
  /// Errors name the address: "bind(127.0.0.1:8080): [Errno 98] Address already in use".
  void bind(const address& addr);
  /// Marks the socket listening. A negative backlog is taken as 0.
  void listen(int backlog = default_backlog);
  /// Waits for a connection; returns the connected socket and the peer's
  /// address. The new socket is close-on-exec and gets getdefaulttimeout()
  /// (not the listener's timeout), as in Python.
  std::pair<socket, address> accept();
  /// Non-throwing accept: on failure `ec` is set and the socket is closed.
  /// A non-blocking listener with nothing pending gives operation_would_block.
  std::pair<socket, address> accept(std::error_code& ec) noexcept;
  /// Connects, waiting at most the socket's timeout. Throws
  /// connection_refused_error, timeout_error, gaierror (name resolution),
  /// blocking_io_error (EINPROGRESS on a non-blocking socket)...
  void connect(const address& addr);
  /// Non-throwing connect; a name that does not resolve gives a gai_category code.
  void connect(const address& addr, std::error_code& ec) noexcept;
  /// Python's connect_ex(): returns 0 or the errno (ECONNREFUSED, EINPROGRESS on
  /// a non-blocking socket, EAGAIN when the timeout expired...). Still throws
  /// for an address that cannot be used (gaierror, bad port, path too long).
  int connect_ex(const address& addr);
  address getsockname() const;
  /// Throws os_error ENOTCONN when not connected.
  address getpeername() const;
  /// SHUT_RD, SHUT_WR or SHUT_RDWR. Throws ENOTCONN when not connected.
  void shutdown(int how);

  // --- data ----------------------------------------------------------------

  /// One recv(2) of at most `bufsize` bytes. An empty result on a stream
  /// socket means the peer closed its side (EOF). bufsize 0 returns "" at once
  /// without a system call, as in Python.
  bytes recv(std::size_t bufsize, int flags = 0);
  bytes recv(std::size_t bufsize, int flags, std::error_code& ec);
  bytes recv(std::size_t bufsize, std::error_code& ec) { return recv(bufsize, 0, ec); }
  /// Receives into caller memory; returns the count (0 at EOF). `nbytes` 0
  /// means the whole buffer; a larger `nbytes` than the buffer throws
  /// std::invalid_argument.
  std::size_t recv_into(mutable_buffer buffer, std::size_t nbytes = 0, int flags = 0);
  std::size_t recv_into(mutable_buffer buffer, std::size_t nbytes, int flags,
                        std::error_code& ec) noexcept;
  std::size_t recv_into(mutable_buffer buffer, std::error_code& ec) noexcept {
    return recv_into(buffer, 0, 0, ec);
  }
  /// One send(2); may send less than given (returns the count).
  std::size_t send(const_buffer data, int flags = 0);
  std::size_t send(const_buffer data, int flags, std::error_code& ec) noexcept;
  std::size_t send(const_buffer data, std::error_code& ec) noexcept { return send(data, 0, ec); }
  /// Sends everything, looping over partial writes. In timeout mode one
  /// deadline covers the whole call. On failure the amount already sent is
  /// stored in `*sent` when given (Python cannot tell it; pysock can).
  void sendall(const_buffer data, int flags = 0, std::size_t* sent = nullptr);
  /// Non-throwing sendall: returns how much was sent; `ec` tells why it stopped short.
  std::size_t sendall(const_buffer data, int flags, std::error_code& ec);
  /// One datagram (or a send on a stream socket) to `addr`.
  std::size_t sendto(const_buffer data, const address& addr);
  std::size_t sendto(const_buffer data, int flags, const address& addr);
  std::size_t sendto(const_buffer data, int flags, const address& addr,
                     std::error_code& ec) noexcept;
  std::size_t sendto(const_buffer data, const address& addr, std::error_code& ec) noexcept {
    return sendto(data, 0, addr, ec);
  }
  /// One datagram and its sender; the address is empty when the kernel gives
  /// none (a connected stream). A datagram longer than `bufsize` is truncated.
  std::pair<bytes, address> recvfrom(std::size_t bufsize, int flags = 0);
  std::pair<bytes, address> recvfrom(std::size_t bufsize, int flags, std::error_code& ec);
  std::pair<std::size_t, address> recvfrom_into(mutable_buffer buffer, std::size_t nbytes = 0,
                                                int flags = 0);
  std::pair<std::size_t, address> recvfrom_into(mutable_buffer buffer, std::size_t nbytes,
                                                int flags, std::error_code& ec) noexcept;

  // --- message I/O (sendmsg/recvmsg, scatter/gather, sendfile) ---------

  /// Python's sendmsg(buffers, ancdata, flags, address): one sendmsg(2) that
  /// gathers every buffer (no copy) with control messages; like send(), may
  /// send less than everything. Each ancillary item takes CMSG_SPACE(len).
  std::size_t sendmsg(std::span<const const_buffer> buffers,
                      std::span<const ancillary> ancdata = {}, int flags = 0,
                      const pysock::address& addr = {});
  std::size_t sendmsg(std::initializer_list<const_buffer> buffers,
                      std::span<const ancillary> ancdata = {}, int flags = 0,
                      const pysock::address& addr = {}) {
    return sendmsg(std::span<const const_buffer>(buffers.begin(), buffers.size()), ancdata, flags,
                   addr);
  }
  std::size_t sendmsg(std::initializer_list<const_buffer> buffers,
                      std::initializer_list<ancillary> ancdata, int flags = 0,
                      const pysock::address& addr = {}) {
    return sendmsg(std::span<const const_buffer>(buffers.begin(), buffers.size()),
                   std::span<const ancillary>(ancdata.begin(), ancdata.size()), flags, addr);
  }
  std::size_t sendmsg(std::span<const const_buffer> buffers, std::span<const ancillary> ancdata,
                      int flags, const pysock::address& addr, std::error_code& ec);
  /// Python's recvmsg(bufsize, ancbufsize, flags). `ancbufsize` is the room
  /// for control data in bytes (use cmsg_space()); more than 1 MiB throws
  /// std::invalid_argument. Descriptors arriving in SCM_RIGHTS are made
  /// close-on-exec (MSG_CMSG_CLOEXEC, unlike Python) and belong to the caller;
  /// recv_fds() returns them owned instead.
  recvmsg_result recvmsg(std::size_t bufsize, std::size_t ancbufsize = 0, int flags = 0);
  /// Python's recvmsg_into(buffers, ancbufsize, flags): scatters one message
  /// over the buffers in order.
  recvmsg_into_result recvmsg_into(std::span<const mutable_buffer> buffers,
                                   std::size_t ancbufsize = 0, int flags = 0);
  recvmsg_into_result recvmsg_into(std::initializer_list<mutable_buffer> buffers,
                                   std::size_t ancbufsize = 0, int flags = 0) {
    return recvmsg_into(std::span<const mutable_buffer>(buffers.begin(), buffers.size()),
                        ancbufsize, flags);
  }
  recvmsg_into_result recvmsg_into(std::span<const mutable_buffer> buffers, std::size_t ancbufsize,
                                   int flags, std::error_code& ec);

  /// Python's sendfile(file, offset, count): sends `count` bytes (all to the
  /// end when unset) of the open file `file_fd` from `offset`, zero-copy with
  /// sendfile(2) for regular files and a read()+send() loop otherwise (pipes,
  /// character devices). Returns the bytes sent; the file position is left at
  /// offset + sent, even when an error is thrown. Stream sockets only. In
  /// timeout mode the timeout applies to each wait, as in Python. Unlike
  /// Python (ValueError), a non-blocking socket is allowed: the call sends
  /// what fits and returns the count, or throws blocking_io_error when
  /// nothing fitted.
  std::size_t sendfile(int file_fd, std::uint64_t offset = 0,
                       std::optional<std::uint64_t> count = std::nullopt);
  /// Non-throwing sendfile: returns the bytes sent and sets `ec` when it
  /// stopped short (on a non-blocking socket, operation_would_block with the
  /// count of what fitted, which may be non-zero). Wrong arguments (a
  /// non-stream socket, count 0, a pipe on a non-blocking socket) still throw
  /// std::invalid_argument: they are programming errors, not conditions.
  std::size_t sendfile(int file_fd, std::uint64_t offset, std::optional<std::uint64_t> count,
                       std::error_code& ec);

  /// Python's makefile(mode): a buffered std::iostream over the connection,
  /// for std::getline() and operator<<. `mode` is made of 'r', 'w' and 'b'
  /// ("b" changes nothing on Linux). The stream works on its own duplicate of
  /// the descriptor, so the connection stays open until both the socket and
  /// the stream are closed, as in Python. The stream starts with the socket's
  /// timeout and keeps it (socket_stream::settimeout changes it): unlike
  /// Python's file object, it does not follow later settimeout() calls on the
  /// socket. Defined in pysock/makefile.hpp.
  socket_stream makefile(std::string_view mode = "r") const;

  // --- options -------------------------------------------------------------

  /// setsockopt(level, opt, int).
  void setsockopt(int level, int option, int value);
  /// setsockopt(level, opt, bytes): the caller packs the C struct.
  void setsockopt(int level, int option, const_buffer value);
  /// setsockopt(level, opt, None, optlen): optval NULL with a length (AF_ALG).
  void setsockopt(int level, int option, std::nullptr_t, socklen_t optlen);
  /// getsockopt(level, opt) → int.
  int getsockopt(int level, int option) const;
  /// getsockopt(level, opt, buflen) → bytes; 1 ≤ buflen ≤ 1024, else
  /// std::invalid_argument ("getsockopt buflen out of range").
  bytes getsockopt(int level, int option, socklen_t buflen) const;
  /// Typed forms: sock.setsockopt(pysock::tcp_nodelay, true).
  template <int L, int N, class T>
  void setsockopt(socket_option<L, N, T>, const std::type_identity_t<T>& value);
  template <int L, int N, class T>
  T getsockopt(socket_option<L, N, T>) const;

  // --- blocking, timeouts, inheritance -----------------------------------

  /// setblocking(true) is settimeout(std::nullopt); false is settimeout(0s).
  void setblocking(bool flag);
  /// False only in non-blocking mode (timeout 0); true in timeout mode too.
  bool getblocking() const noexcept { return !timeout_ns_ || *timeout_ns_ != 0; }
  /// std::nullopt: blocking; 0: non-blocking; > 0: timeout mode. A negative
  /// value throws std::invalid_argument("Timeout value out of range"); a
  /// closed socket throws os_error EBADF, as in Python.
  /// Fractional durations round away from zero to whole nanoseconds.
  void settimeout(timeout_type timeout);
  template <class Rep, class Period>
  void settimeout(std::chrono::duration<Rep, Period> timeout) {
    settimeout(timeout_type(round_timeout(timeout)));
  }
  timeout_type gettimeout() const noexcept { return to_timeout(timeout_ns_); }
  /// Python's `timeout` attribute, the same as gettimeout().
  timeout_type timeout() const noexcept { return gettimeout(); }
  bool get_inheritable() const;
  void set_inheritable(bool inheritable);

  /// Rounds a duration to nanoseconds away from zero (1e-12 s → 1 ns), as
  /// Python's timeout parsing does. NaN throws std::invalid_argument; a value
  /// beyond ±292 years throws std::out_of_range (Python's OverflowError).
  template <class Rep, class Period>
  static std::chrono::nanoseconds round_timeout(std::chrono::duration<Rep, Period> d) {
    using ns_rep = std::chrono::duration<long double, std::nano>;
    const long double count = std::chrono::duration_cast<ns_rep>(d).count();
    if (std::isnan(count)) throw std::invalid_argument("Invalid value NaN (not a number)");
    const long double whole = count < 0 ? -std::ceil(-count) : std::ceil(count);
    if (whole >= 9.2e18L || whole <= -9.2e18L)
      throw std::out_of_range("timeout doesn't fit into C timeval");
    return std::chrono::nanoseconds(static_cast<std::int64_t>(whole));
  }

 private:
  struct no_descriptor {};
  explicit socket(no_descriptor) noexcept {}
  socket(int fd, int family, int type, int proto) noexcept;
  friend std::pair<socket, socket> socketpair(int, int, int);
  friend socket fromfd(int, int, int, int);
  friend socket detail::adopt_accepted(int, const socket&) noexcept;

  static timeout_type to_timeout(const std::optional<std::int64_t>& ns) {
    if (!ns) return std::nullopt;
    return std::chrono::nanoseconds(*ns);
  }
  // Gives a socket this library created the module default timeout; for an
  // accepted or adopted descriptor `fd_nonblocking` says what the fd is now.
  void apply_default_timeout(bool fd_nonblocking);
  void connect_sockaddr(const sockaddr_buffer& target, std::error_code& ec) noexcept;
  void set_option_raw(int level, int option, const void* value, socklen_t length);
  void get_option_raw(int level, int option, void* value, socklen_t* length) const;
  // "recv(127.0.0.1:5000)": the call and the peer (or local) address, for messages.
  std::string describe(const char* call) const;
  // Both sendfile() forms; `file_error` tells an error of the file (named by
  // its descriptor in messages) from one of the connection.
  std::size_t send_file(int file_fd, std::uint64_t offset, std::optional<std::uint64_t> count,
                        std::error_code& ec, bool& file_error);

  int fd_ = -1;
  int family_ = AF_UNSPEC;
  int type_ = 0;
  int proto_ = 0;
  std::optional<std::int64_t> timeout_ns_;  // nullopt: blocking
};

// --- typed options ------------------------------------------------------------

namespace detail {
template <class T>
struct option_codec;
template <>
struct option_codec<bool> {
  static int encode(bool v) { return v ? 1 : 0; }
  static bool decode(int v) { return v != 0; }
};
template <>
struct option_codec<int> {
  static int encode(int v) { return v; }
  static int decode(int v) { return v; }
};
}  // namespace detail

template <int L, int N, class T>
void socket::setsockopt(socket_option<L, N, T>, const std::type_identity_t<T>& value) {
  if constexpr (std::is_same_v<T, std::optional<std::chrono::seconds>>) {
    ::linger l{};
    l.l_onoff = value.has_value() ? 1 : 0;
    l.l_linger = value ? static_cast<int>(value->count()) : 0;
    set_option_raw(L, N, &l, sizeof l);
  } else {
    const int raw = detail::option_codec<T>::encode(value);
    set_option_raw(L, N, &raw, sizeof raw);
  }
}

template <int L, int N, class T>
T socket::getsockopt(socket_option<L, N, T>) const {
  if constexpr (std::is_same_v<T, std::optional<std::chrono::seconds>>) {
    ::linger l{};
    socklen_t length = sizeof l;
    get_option_raw(L, N, &l, &length);
    if (!l.l_onoff) return std::nullopt;
    return std::chrono::seconds(l.l_linger);
  } else {
    int raw = 0;
    socklen_t length = sizeof raw;
    get_option_raw(L, N, &raw, &length);
    return detail::option_codec<T>::decode(raw);
  }
}

// --- module functions that make sockets --------------------------------------

/// Python's socketpair(): two connected, close-on-exec sockets with the
/// module default timeout. AF_UNIX by default; AF_INET fails with EOPNOTSUPP
/// on Linux, as in Python.
std::pair<socket, socket> socketpair(int family = AF_UNIX, int type = SOCK_STREAM, int proto = 0);

/// Python's fromfd(): a socket on dup(fd) (close-on-exec). `fd` stays open and
/// owned by the caller; the two share O_NONBLOCK.
socket fromfd(int fd, int family, int type, int proto = 0);

/// Raised by create_connection(..., all_errors = true) when every address
/// failed: Python's ExceptionGroup("create_connection failed", [...]).
class exception_group : public std::runtime_error {
 public:
  exception_group(const std::string& message, std::vector<std::exception_ptr> exceptions);
  const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }

 private:
  std::vector<std::exception_ptr> exceptions_;
};

/// Options of create_connection() beyond the address.
struct connection_options {
  /// Unset: the module default timeout. Set: that timeout for every attempt
  /// and for the returned socket (std::nullopt inside means blocking).
  std::optional<timeout_type> timeout{};
  /// Bound before connecting when not empty.
  address source_address{};
  /// When every attempt failed: false rethrows the last error (its message
  /// lists every attempt); true throws exception_group with one per attempt.
  bool all_errors = false;
};

/// Python's create_connection((host, port)): resolves with getaddrinfo
/// (SOCK_STREAM) and tries each result in order until one connects.
socket create_connection(const address& addr, const connection_options& options = {});
/// Same, with an explicit timeout (std::nullopt: blocking).
socket create_connection(const address& addr, timeout_type timeout,
                         const address& source_address = {});

/// Options of create_server().
struct server_options {
  int family = AF_INET;
  /// Unset: listen()'s default backlog.
  std::optional<int> backlog{};
  /// SO_REUSEPORT, for several listeners (one per thread) on one port.
  bool reuse_port = false;
  /// AF_INET6 only: accept IPv4 clients too (IPV6_V6ONLY off).
  bool dualstack_ipv6 = false;
};

/// Python's create_server((host, port)): a listening TCP socket with
/// SO_REUSEADDR; IPV6_V6ONLY is set explicitly unless dualstack_ipv6.
/// Throws std::invalid_argument for impossible options (dualstack_ipv6 with
/// AF_INET) and os_error naming the address when bind fails.
socket create_server(const address& addr, const server_options& options = {});

/// True when this host can make one AF_INET6 listener that accepts IPv4 too.
bool has_dualstack_ipv6() noexcept;

/// Python's CMSG_LEN(n): the length of a control message carrying n bytes.
/// (The C macros keep their names; these are the functions.)
std::size_t cmsg_len(std::size_t data_length);
/// Python's CMSG_SPACE(n): the room one such message takes, padding included.
std::size_t cmsg_space(std::size_t data_length);

/// An owned descriptor: closed when destroyed unless released. What
/// recv_fds() returns, so a caller that ignores a descriptor cannot leak it.
class file_descriptor {
 public:
  file_descriptor() noexcept = default;
  explicit file_descriptor(int fd) noexcept : fd_(fd) {}
  file_descriptor(file_descriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  file_descriptor& operator=(file_descriptor&& other) noexcept;
  file_descriptor(const file_descriptor&) = delete;
  file_descriptor& operator=(const file_descriptor&) = delete;
  ~file_descriptor();
  int get() const noexcept { return fd_; }
  /// Gives the descriptor up to the caller, who then closes it.
  int release() noexcept { return std::exchange(fd_, -1); }
  void close() noexcept;
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

/// Python's send_fds(sock, buffers, fds, flags, address): sends the data with
/// the descriptors in one SCM_RIGHTS message over AF_UNIX. Unlike CPython,
/// `flags` and `address` are honoured.
std::size_t send_fds(socket& sock, std::span<const const_buffer> buffers, std::span<const int> fds,
                     int flags = 0, const address& addr = {});
inline std::size_t send_fds(socket& sock, std::initializer_list<const_buffer> buffers,
                            std::span<const int> fds, int flags = 0, const address& addr = {}) {
  return send_fds(sock, std::span<const const_buffer>(buffers.begin(), buffers.size()), fds, flags,
                  addr);
}
inline std::size_t send_fds(socket& sock, std::initializer_list<const_buffer> buffers,
                            std::initializer_list<int> fds, int flags = 0,
                            const address& addr = {}) {
  return send_fds(sock, buffers, std::span<const int>(fds.begin(), fds.size()), flags, addr);
}

/// recv_fds()'s (data, fds, msg_flags, address); the descriptors are owned.
struct recv_fds_result {
  bytes data;
  std::vector<file_descriptor> fds;
  int msg_flags = 0;  ///< MSG_CTRUNC when more descriptors came than maxfds
  pysock::address address;
};

/// Python's recv_fds(sock, bufsize, maxfds, flags): receives data and up to
/// `maxfds` descriptors, close-on-exec. Descriptors beyond maxfds are
/// discarded by the kernel and reported with MSG_CTRUNC, as in Python.
recv_fds_result recv_fds(socket& sock, std::size_t bufsize, std::size_t maxfds, int flags = 0);

/// Python's socket.close(fd): closes a raw descriptor; ECONNRESET is ignored,
/// any other error throws os_error.
void close(int fd);

/// The module default timeout for sockets created afterwards (initially
/// std::nullopt: blocking). Negative values throw std::invalid_argument.
timeout_type getdefaulttimeout() noexcept;
void setdefaulttimeout(timeout_type timeout);
template <class Rep, class Period>
void setdefaulttimeout(std::chrono::duration<Rep, Period> timeout) {
  setdefaulttimeout(timeout_type(socket::round_timeout(timeout)));
}

}  // namespace pysock
