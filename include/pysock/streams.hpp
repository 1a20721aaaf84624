// SPDX-License-Identifier: MIT
//
// pysock/streams.hpp — Python's asyncio streams over pysock's event loop.
//
//   Python (asyncio)                                  pysock
//   r, w = await asyncio.open_connection(h, p)        auto [r, w] = co_await
//   pysock::open_connection(h, p); srv = await asyncio.start_server(cb, h, p)        auto srv =
//   co_await pysock::start_server(cb, h, p); await srv.serve_forever() co_await
//   srv.serve_forever(); srv.close(); await srv.wait_closed()              srv.close(); co_await
//   srv.wait_closed(); srv.close_clients()   (3.13)                      srv.close_clients();
//   srv.sockets[0].getsockname()                      srv.sockets()[0]->getsockname(), or
//   srv.sockname() await r.read(n) / r.read()                        co_await r.read(n) / co_await
//   r.read() await r.readexactly(n)                            co_await r.readexactly(n)
//   (incomplete_read_error) await r.readline() / r.readuntil(b'\r\n')         co_await r.readline()
//   / co_await r.readuntil("\r\n") r.at_eof()                                        r.at_eof()
//   w.write(data); await w.drain()                    w.write(data); co_await w.drain();
//   w.write_eof() / w.can_write_eof()                 w.write_eof() / w.can_write_eof()
//   w.close(); await w.wait_closed()                  w.close(); co_await w.wait_closed();
//   w.is_closing()                                    w.is_closing()
//   w.get_extra_info('peername')                      w.peername()
//   w.transport.get_write_buffer_size()               w.get_write_buffer_size()
//   w.transport.set_write_buffer_limits(high, low)    w.set_write_buffer_limits(high, low)
//   asyncio.IncompleteReadError                       pysock::incomplete_read_error
//   asyncio.LimitOverrunError                         pysock::limit_overrun_error
//
// A stream's socket belongs to the stream: it is registered with the loop once
// (edge-triggered, both directions), and closed by writer.close() or when the
// last reader/writer handle goes. Reader and writer are cheap shared handles
// on one connection; the coroutines they return keep the connection alive.
// Streams must not outlive their loop.
//
// Back-pressure, as Python: write() never waits; it sends what the kernel
// takes at once and buffers the rest. drain() waits while the buffer is above
// the high-water mark (64 KiB by default) until it falls to the low-water
// mark (a quarter of it). A writer that always drains after writing therefore
// never buffers more than the high-water mark plus one write.
//
// Errors: a reset connection throws connection_reset_error from the read or
// drain that meets it; a write after the peer went away throws
// broken_pipe_error from drain(), as Python's drain raises the transport's
// error.
#pragma once

#include <csignal>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "pysock/loop.hpp"

namespace pysock {

/// Python's asyncio.IncompleteReadError: EOF came before readexactly() got
/// its bytes or readuntil() found its separator. `partial` holds what came.
class incomplete_read_error : public std::runtime_error {
 public:
  incomplete_read_error(bytes partial_bytes, std::optional<std::size_t> expected_bytes);
  bytes partial;
  std::optional<std::size_t> expected;  ///< std::nullopt for readuntil()
};

/// Python's asyncio.LimitOverrunError: readuntil() found no separator within
/// the stream's limit. The data stays in the buffer; `consumed` is how much.
class limit_overrun_error : public std::runtime_error {
 public:
  limit_overrun_error(const std::string& message, std::size_t consumed_bytes);
  std::size_t consumed;
};

/// Per-stream sizes (Python's `limit` and the transport's write limits).
struct stream_limits {
  std::size_t limit = 64 * 1024;         ///< readuntil()/readline() line limit
  std::size_t high_water = 64 * 1024;    ///< drain() waits above this
  std::optional<std::size_t> low_water;  ///< ...until this; default high_water / 4
};

class stream_reader;
class stream_writer;

namespace detail {
struct stream_transport;

/// A byte transform between a stream's buffers and its socket: TLS, which
/// pysock::ssl installs (start_tls, open_connection/start_server with ssl=).
/// The core knows nothing of the protocol. Plain streams have none and pay
/// one null check per fill, write and close, never a virtual call.
class stream_codec {
 public:
  enum class result {
    data,   ///< `n` decoded bytes are in `out`
    eof,    ///< the peer ended the stream
    wait,   ///< the socket said EAGAIN: wait until it is readable
    error,  ///< `ec` says why; the stream fails
    ready,  ///< the handshake finished; no data yet
  };
  stream_codec() = default;
  stream_codec(const stream_codec&) = delete;
  stream_codec& operator=(const stream_codec&) = delete;
  virtual ~stream_codec() = default;
  /// Receives from `fd` (non-blocking) until it can decode something into
  /// `out`, the socket has nothing, or the stream ends. Bytes the protocol
  /// must send back (handshake, alerts) are appended to `reply`.
  virtual result receive(int fd, mutable_buffer out, std::size_t& n, std::string& reply,
                         std::error_code& ec) noexcept = 0;
  /// Encodes `data`, appending the bytes for the socket to `wire`.
  virtual void send(const_buffer data, std::string& wire, std::error_code& ec) noexcept = 0;
  /// Appends the bytes that end the stream cleanly (TLS close_notify).
  virtual void close(std::string& wire) noexcept = 0;
  /// Asked at close() and again once close()'s output is flushed: how long,
  /// counted from close(), the stream may take to flush and then read for
  /// the peer's end (receive() returning eof; TLS: its close_notify) before
  /// it closes the socket anyway and wait_closed() throws timeout_error
  /// (asyncio's ssl_shutdown_timeout). nullopt: close once flushed. What
  /// arrives meanwhile is dropped.
  virtual std::optional<std::chrono::milliseconds> close_wait() const noexcept {
    return std::nullopt;
  }
  /// Bytes the stream had read but not consumed before the codec came.
  virtual void feed(std::string_view early) = 0;
};

/// What pysock::ssl needs from a stream, and nothing else uses.
struct stream_hooks {
  static const std::shared_ptr<stream_transport>& transport(const stream_reader& r) noexcept;
  static const std::shared_ptr<stream_transport>& transport(const stream_writer& w) noexcept;
  /// Installs `codec`; unread buffered bytes go to codec->feed() first.
  static void set_codec(stream_transport& t, std::unique_ptr<stream_codec> codec);
  static stream_codec* codec(const stream_transport& t) noexcept;
  /// One fill step (at least one receive attempt, a wait only on EAGAIN).
  /// The stream's read error is not thrown here: see read_error().
  static task<void> fill(std::shared_ptr<stream_transport> t);
  static bool eof(const stream_transport& t) noexcept;
  static std::error_code read_error(const stream_transport& t) noexcept;
  static int fileno(const stream_transport& t) noexcept;
};
}  // namespace detail

namespace detail {

// The one-receive wait shared by stream_reader::read(n) and read_into(): no
// coroutine frame of its own. Bytes already buffered, or EOF, complete it at
// once; otherwise one receive is attempted and, on EAGAIN, the awaiting
// coroutine waits in the stream's fill registration.
class stream_fill_wait {
 public:
  // `direct`: read_into()'s buffer, which a receive may fill straight away
  // when the stream has nothing buffered (no chunk, no copy).
  stream_fill_wait(std::shared_ptr<stream_transport> t, bool wanted,
                   mutable_buffer direct = {}) noexcept
      : t_(std::move(t)), direct_(direct), wanted_(wanted) {}
  stream_fill_wait(stream_fill_wait&& other) noexcept
      : t_(std::move(other.t_)), direct_(other.direct_), wanted_(other.wanted_) {}
  stream_fill_wait& operator=(stream_fill_wait&&) = delete;
  ~stream_fill_wait();

  bool await_ready();
  bool await_suspend(std::coroutine_handle<> h);

 protected:
  // Common head of await_resume(): the wait's errors, if it waited or
  // received. Afterwards the stream's buffer holds data, or it is at EOF.
  void finish_wait();
  std::size_t copy_out(mutable_buffer buffer) noexcept;
  bytes take_up_to(std::size_t n);

  std::shared_ptr<stream_transport> t_;
  mutable_buffer direct_;
  std::size_t direct_got_ = 0;
  bool wanted_;  // false: nothing to read (n == 0), complete at once
  bool received_ = false;
  bool suspended_ = false;
  bool direct_mode_ = false;  // the receive goes into direct_ (see the constructor)
};

template <class A>
task<typename A::result_type> await_in_task(A awaitable) {
  co_return co_await awaitable;
}

// What makes a frame-less wait usable wherever a task<T> is taken: it
// converts, moving itself into a coroutine that awaits it.
template <class Derived, class T>
class converts_to_task {
 public:
  task<T> to_task() && { return await_in_task(std::move(static_cast<Derived&>(*this))); }
  operator task<T>() && { return std::move(*this).to_task(); }
};

// The slow path of a frame-less wait: a coroutine made only when the wait
// cannot complete at once, and awaited in place of the wait.
template <class T>
class awaited_task {
 public:
  bool start(task<T> t) {
    task_.emplace(std::move(t));
    awaiter_.emplace(task_->operator co_await());
    return awaiter_->await_ready();
  }
  bool started() const noexcept { return awaiter_.has_value(); }
  bool await_suspend(std::coroutine_handle<> h) { return awaiter_->await_suspend(h); }
  decltype(auto) await_resume() { return awaiter_->await_resume(); }

 private:
  std::optional<task<T>> task_;
  std::optional<typename task<T>::awaiter> awaiter_;
};

}  // namespace detail

class stream_reader {
 public:
  /// What read_into() returns. co_await it where it is made (it allocates
  /// nothing: no coroutine frame); it also converts to task<std::size_t>,
  /// and create_task(), wait_for() and gather() take it as they take a task.
  class [[nodiscard]] read_into_awaiter
      : public detail::stream_fill_wait,
        public detail::converts_to_task<read_into_awaiter, std::size_t> {
   public:
    using result_type = std::size_t;
    read_into_awaiter(std::shared_ptr<detail::stream_transport> t, mutable_buffer buffer) noexcept
        : stream_fill_wait(std::move(t), !buffer.empty(), buffer), buffer_(buffer) {}
    std::size_t await_resume() {
      finish_wait();
      return copy_out(buffer_);
    }

   private:
    mutable_buffer buffer_;
  };

  /// What read(n) returns for n > 0 (and n == 0): as read_into_awaiter,
  /// giving bytes; converts to task<bytes>. read() with n < 0 (until EOF)
  /// runs as a coroutine behind it.
  class [[nodiscard]] read_awaiter : public detail::stream_fill_wait,
                                     public detail::converts_to_task<read_awaiter, bytes> {
   public:
    using result_type = bytes;
    read_awaiter(std::shared_ptr<detail::stream_transport> t, std::ptrdiff_t n);
    read_awaiter(read_awaiter&&) noexcept = default;
    bool await_ready();
    bool await_suspend(std::coroutine_handle<> h);
    bytes await_resume();

   private:
    std::ptrdiff_t n_;
    detail::awaited_task<bytes> all_;  // n < 0: the read-until-EOF coroutine
  };

  stream_reader() = default;
  explicit stream_reader(std::shared_ptr<detail::stream_transport> t) noexcept : t_(std::move(t)) {}

  /// Up to `n` bytes: what is buffered, or else what one receive brings; ""
  /// at EOF. n < 0 reads until EOF. n == 0 returns "" at once.
  read_awaiter read(std::ptrdiff_t n = -1);
  /// Exactly `n` bytes, or incomplete_read_error with what came before EOF.
  task<bytes> readexactly(std::size_t n);
  /// Up to and including "\n"; at EOF the partial last line (possibly "").
  /// limit_overrun_error (as Python's ValueError) for a line over the limit.
  task<bytes> readline();
  /// Up to and including `separator`; incomplete_read_error at EOF,
  /// limit_overrun_error when the limit passes without one. Non-empty separator.
  task<bytes> readuntil(std::string separator = "\n");
  /// A pysock extra without allocation: copies up to buffer.size() bytes into
  /// `buffer` (buffered bytes first, else one receive); 0 at EOF.
  read_into_awaiter read_into(mutable_buffer buffer);
  /// True when the buffer is empty and the peer has closed its side.
  bool at_eof() const noexcept;

 private:
  friend struct detail::stream_hooks;
  std::shared_ptr<detail::stream_transport> t_;
};

class stream_writer {
 public:
  /// What drain() returns: complete at once (no coroutine frame) while the
  /// buffer is at or below the high-water mark; otherwise the waiting runs
  /// as a coroutine behind it. Converts to task<void>, and create_task(),
  /// wait_for() and gather() take it as they take a task.
  class [[nodiscard]] drain_awaiter : public detail::converts_to_task<drain_awaiter, void> {
   public:
    using result_type = void;
    explicit drain_awaiter(std::shared_ptr<detail::stream_transport> t) noexcept
        : t_(std::move(t)) {}
    drain_awaiter(drain_awaiter&&) noexcept = default;
    bool await_ready();
    bool await_suspend(std::coroutine_handle<> h);
    void await_resume();

   private:
    std::shared_ptr<detail::stream_transport> t_;
    detail::awaited_task<void> wait_;  // above the high-water mark: the waiting coroutine
  };

  stream_writer() = default;
  explicit stream_writer(std::shared_ptr<detail::stream_transport> t) noexcept : t_(std::move(t)) {}

  /// Sends what the kernel takes now and buffers the rest (never waits).
  /// After close() it throws std::runtime_error; after a connection error
  /// the data is dropped and drain() reports the error.
  void write(const_buffer data);
  void writelines(const std::vector<bytes>& lines);
  /// Waits until the buffer is at or below the low-water mark if it is above
  /// the high-water mark. Throws the connection's error if it failed.
  drain_awaiter drain();
  /// Shuts down the sending side once the buffer is flushed. TLS streams
  /// cannot half-close: std::logic_error, as Python's NotImplementedError.
  void write_eof();
  /// False for TLS streams.
  bool can_write_eof() const noexcept;
  /// Flushes what is buffered, then closes the socket (at once if nothing is).
  void close();
  bool is_closing() const noexcept;
  /// Waits until the socket is closed.
  task<void> wait_closed();

  std::size_t get_write_buffer_size() const noexcept;
  /// Python's set_write_buffer_limits(high, low): low defaults to high / 4.
  void set_write_buffer_limits(std::size_t high, std::optional<std::size_t> low = std::nullopt);
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept;
  address peername() const;
  address sockname() const;
  /// The connection's socket, for options (tcp_nodelay, so_linger...). Do
  /// not read, write or close it directly.
  socket& get_socket() const noexcept;

 private:
  friend struct detail::stream_hooks;
  std::shared_ptr<detail::stream_transport> t_;
};

/// Wraps a connected socket (made non-blocking here) in a stream pair on `loop`.
std::pair<stream_reader, stream_writer> make_streams(event_loop& loop, socket sock,
                                                     const stream_limits& limits = {});

/// Python's open_connection(): resolves `host` off the loop thread (a numeric
/// host needs no resolution), tries each address in turn, returns the streams.
task<std::pair<stream_reader, stream_writer>> open_connection(std::string host, int port,
                                                              stream_limits limits = {});
/// open_unix_connection(path).
task<std::pair<stream_reader, stream_writer>> open_unix_connection(std::string path,
                                                                   stream_limits limits = {});

/// The client_connected_cb of start_server(): a coroutine per connection.
using connection_handler = std::function<task<void>(stream_reader, stream_writer)>;

namespace detail {
struct server_state;
}

/// Python's asyncio.Server. Closing it (or destroying it) stops accepting.
class server {
 public:
  server() = default;
  explicit server(std::shared_ptr<detail::server_state> state) noexcept
      : state_(std::move(state)) {}
  server(server&&) noexcept = default;
  server& operator=(server&& other) noexcept;
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  /// Closes the listening socket (not the connections).
  ~server();

  /// Stops accepting and closes the listening socket. Idempotent.
  void close();
  /// Cancels every connection handler still running (Python 3.13).
  void close_clients();
  /// Waits until closed and every connection handler has finished.
  task<void> wait_closed();
  /// Waits until the server is closed (by close(), or by cancelling this).
  /// Cancelling serve_forever() closes the server, as in Python.
  task<void> serve_forever();
  bool is_serving() const noexcept;
  /// The listening sockets (one here).
  std::vector<const socket*> sockets() const;
  /// The address actually bound (the port the kernel chose for port 0).
  pysock::address sockname() const;
  /// Connection handlers running now.
  std::size_t active_connections() const noexcept;

 private:
  std::shared_ptr<detail::server_state> state_;
};

struct server_config {
  int backlog = default_backlog;
  bool reuse_port = false;  ///< SO_REUSEPORT (several listeners, one per loop)
  stream_limits limits;
};

/// Python's start_server(): binds, listens, and accepts in the background;
/// each connection runs `handler` as its own task. A host name is resolved
/// off the loop thread. On io_uring the listener accepts through one
/// multishot request (Linux 5.19+); close() withdraws it before closing the
/// listener, so the port stops accepting at once either way.
task<server> start_server(connection_handler handler, std::string host, int port,
                          server_config config = {});
/// start_server(sock=...): serves an already listening socket.
task<server> start_server(connection_handler handler, socket listener, server_config config = {});
/// start_unix_server(path).
task<server> start_unix_server(connection_handler handler, std::string path,
                               server_config config = {});

/// Options of serve_forever().
struct serve_options {
  /// Loops (threads), each with its own SO_REUSEPORT listener; 0 means one
  /// per CPU (std::thread::hardware_concurrency()).
  unsigned threads = 0;
  int backlog = default_backlog;
  /// Signals that end serve_forever(); blocked in every thread, read by the
  /// calling thread through a signalfd. Empty: only `stop` ends it.
  std::vector<int> stop_signals{SIGINT, SIGTERM};
  /// Requests a stop from any thread.
  std::stop_token stop;
  /// Called (on the calling thread) once every loop is accepting, with the
  /// address bound: the real port when `port` was 0.
  std::function<void(const pysock::address&)> on_listening;
  stream_limits limits;
  loop_options loop;
};

/// Multi-core server: `threads` event loops on as many threads, each
/// accepting on its own SO_REUSEPORT socket bound to the same address (the
/// kernel spreads connections between them), each running `handler` for its
/// connections. Blocks until a stop signal or `options.stop`; then closes the
/// listeners, cancels the handlers, joins the threads and returns. An
/// exception in a loop's thread is rethrown here after all threads ended.
void serve_forever(connection_handler handler, const std::string& host, int port,
                   serve_options options = {});

}  // namespace pysock
