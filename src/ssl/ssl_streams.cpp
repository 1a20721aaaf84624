// SPDX-License-Identifier: MIT
//
// TLS on the event loop: asyncio's open_connection(ssl=), start_server(ssl=)
// and StreamWriter.start_tls(). An ssl_object over two memory BIOs becomes
// the stream transport's codec (detail::stream_codec): the core streams keep
// their buffers, back-pressure and loop registration, and call the codec only
// when one is installed, so plain streams pay nothing for TLS.
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "ssl_detail.hpp"

namespace pysock {

namespace {

bool would_block_errno(int err) noexcept { return err == EAGAIN || err == EWOULDBLOCK; }

// asyncio's SSLProtocol refuses a zero or negative timeout with ValueError.
void check_timeout(const char* name, std::chrono::milliseconds value) {
  if (value.count() > 0) return;
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%g", std::chrono::duration<double>(value).count());
  throw std::invalid_argument(std::string(name) + " should be a positive number, got " + seconds);
}
void check_timeouts(std::chrono::milliseconds handshake, std::chrono::milliseconds shutdown) {
  check_timeout("ssl_handshake_timeout", handshake);
  check_timeout("ssl_shutdown_timeout", shutdown);
}

class tls_codec final : public detail::stream_codec {
 public:
  tls_codec(const ssl_context& ctx, bool server_side, const std::string& server_hostname,
            std::chrono::milliseconds shutdown_timeout)
      : object_(ctx.wrap_bio(incoming_, outgoing_, server_side, server_hostname)),
        shutdown_timeout_(shutdown_timeout) {}

  result receive(int fd, mutable_buffer out, std::size_t& n, std::string& reply,
                 std::error_code& ec) noexcept override {
    // Each round either returns or moves more bytes from the socket into the
    // incoming BIO, so it ends at the latest when recv() says EAGAIN — which
    // an edge-triggered registration needs before the stream may wait.
    // After close() the same SSL_read serves the shutdown wait: OpenSSL's
    // SSL_shutdown(3) has the first to close call SSL_read until it reports
    // SSL_ERROR_ZERO_RETURN (the peer's close_notify, here `eof`); data the
    // peer still sends before it comes back as `data`, which the closing
    // transport drops.
    for (;;) {
      if (!ready_) {
        object_.do_handshake(ec);
        take_output(reply);
        if (!ec) {
          ready_ = true;
          return result::ready;
        }
      } else {
        n = object_.read_into(out, ec);
        take_output(reply);  // a KeyUpdate or an alert may want an answer
        if (!ec) return n > 0 ? result::data : result::eof;  // 0: close_notify
        // The peer closed TCP without close_notify: asyncio's streams see an
        // ordinary EOF (Python's suppress_ragged_eofs default).
        if (ec == ssl_errc::eof) return result::eof;
      }
      if (ec != ssl_errc::want_read) return fail_tls();
      if (incoming_.eof()) {
        // OpenSSL wants more than the peer will ever send.
        ec = make_error_code(ssl_errc::eof);
        return ready_ ? result::eof : fail_tls();
      }
      // Received straight into the caller's free buffer space, then copied
      // into the BIO: no scratch buffer per connection.
      ssize_t got;
      do got = ::recv(fd, out.data(), out.size(), 0);
      while (got < 0 && errno == EINTR);
      if (got > 0) {
        if (!detail::memory_bio_append(incoming_.native_handle(),
                                       reinterpret_cast<const char*>(out.data()),
                                       static_cast<std::size_t>(got))) {
          ec = std::make_error_code(std::errc::not_enough_memory);
          return fail_system(ec);
        }
        continue;
      }
      if (got == 0) {
        incoming_.write_eof();
        continue;
      }
      if (would_block_errno(errno)) return result::wait;
      ec.assign(errno, std::system_category());
      return fail_system(ec);
    }
  }

  void send(const_buffer data, std::string& wire, std::error_code& ec) noexcept override {
    object_.write(data, ec);
    take_output(wire);
  }

  void close(std::string& wire) noexcept override {
    // close_notify after a good handshake only, as asyncio's SSL transport;
    // a failed connection already sent its alert (or nothing).
    if (!ready_ || failed_) return;
    std::error_code ec;
    object_.unwrap(ec);  // want_read here just means "the peer's not read"
    take_output(wire);
    close_notify_sent_ = !ec || ec == ssl_errc::want_read;
  }

  // asyncio's ssl_shutdown_timeout: only a stream that sent close_notify
  // waits for the answer, and only while the peer's is still missing. A
  // stream closed mid-handshake or after a failure closes at once.
  std::optional<std::chrono::milliseconds> close_wait() const noexcept override {
    if (!close_notify_sent_ || failed_) return std::nullopt;
    if ((SSL_get_shutdown(object_.native_handle()) & SSL_RECEIVED_SHUTDOWN) != 0)
      return std::nullopt;
    return shutdown_timeout_;
  }

  void feed(std::string_view early) override { incoming_.write(early); }

  bool ready() const noexcept { return ready_; }
  bool failed() const noexcept { return failed_; }
  const ssl_object& object() const noexcept { return object_; }

  // The exception for the failure that ended the handshake.
  [[noreturn]] void raise(const std::string& where) const {
    if (tls_failure_) detail::throw_failure(detail::ssl_access::state(object_), where);
    throw_os_error(system_error_, where);
  }

 private:
  result fail_tls() noexcept {
    failed_ = true;
    tls_failure_ = true;
    return result::error;
  }
  result fail_system(const std::error_code& ec) noexcept {
    failed_ = true;
    system_error_ = ec;
    return result::error;
  }
  void take_output(std::string& wire) noexcept {
    const std::size_t pending = outgoing_.pending();
    if (pending == 0) return;
    const std::size_t old = wire.size();
    wire.resize(old + pending);
    wire.resize(old + outgoing_.read_into(mutable_buffer(wire.data() + old, pending)));
  }

  memory_bio incoming_;
  memory_bio outgoing_;
  ssl_object object_;
  std::chrono::milliseconds shutdown_timeout_;
  bool ready_ = false;
  bool failed_ = false;
  bool close_notify_sent_ = false;
  bool tls_failure_ = false;
  std::error_code system_error_;
};

std::string describe_peer(const stream_writer& writer) {
  try {
    const address peer = writer.peername();
    return peer.host() + ":" + std::to_string(peer.port());
  } catch (const std::exception&) {
    return "fd " +
           std::to_string(detail::stream_hooks::fileno(*detail::stream_hooks::transport(writer)));
  }
}

// The handshake, through the stream's own fill: the codec answers each
// handshake message as it is received and says `ready` at the end.
task<void> run_handshake(std::shared_ptr<detail::stream_transport> t, const tls_codec* codec,
                         std::string where) {
  while (!codec->ready()) {
    if (codec->failed()) codec->raise(where);
    if (const std::error_code ec = detail::stream_hooks::read_error(*t)) throw_os_error(ec, where);
    if (detail::stream_hooks::eof(*t))
      throw ssl_eof_error(make_error_code(ssl_errc::eof), where, {}, {},
                          "EOF occurred in violation of protocol");
    std::shared_ptr<detail::stream_transport> step = t;
    co_await detail::stream_hooks::fill(std::move(step));
  }
}

task<void> do_start_tls(stream_writer writer, ssl_context ssl, std::string server_hostname,
                        bool server_side, std::chrono::milliseconds timeout,
                        std::chrono::milliseconds shutdown_timeout) {
  const std::shared_ptr<detail::stream_transport>& t = detail::stream_hooks::transport(writer);
  if (!t) throw std::invalid_argument("start_tls: empty writer");
  if (detail::stream_hooks::codec(*t) != nullptr)
    throw std::runtime_error("start_tls: the stream already uses TLS");
  auto owned = std::make_unique<tls_codec>(ssl, server_side, server_hostname, shutdown_timeout);
  const tls_codec* codec = owned.get();
  detail::stream_hooks::set_codec(*t, std::move(owned));
  const std::string where = "do_handshake(" + describe_peer(writer) + ")";
  task<void> handshake = run_handshake(t, codec, where);
  try {
    co_await wait_for(std::move(handshake), timeout);
  } catch (const timeout_error&) {
    // Python's wording (asyncio/sslproto.py) and class.
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.1f", std::chrono::duration<double>(timeout).count());
    throw connection_aborted_error(std::make_error_code(std::errc::connection_aborted),
                                   std::string("SSL handshake is taking longer than ") + seconds +
                                       " seconds: aborting the connection");
  }
}

task<std::pair<stream_reader, stream_writer>> do_open_connection(
    std::string host, int port, ssl_context ssl, std::optional<std::string> server_hostname,
    stream_limits limits, std::chrono::milliseconds timeout,
    std::chrono::milliseconds shutdown_timeout) {
  // Tasks are made before their co_await: GCC 12's double destruction of
  // by-value coroutine arguments (PR 99576) hits temporaries made inside it.
  task<std::pair<stream_reader, stream_writer>> connecting =
      pysock::open_connection(host, port, limits);
  std::pair<stream_reader, stream_writer> streams = co_await std::move(connecting);
  task<void> handshake =
      do_start_tls(streams.second, std::move(ssl), server_hostname.value_or(host), false, timeout,
                   shutdown_timeout);
  try {
    co_await std::move(handshake);
  } catch (...) {
    streams.second.close();  // no stream is handed out: nothing else would close it
    throw;
  }
  co_return streams;
}

task<void> serve_tls_connection(ssl_context ssl, connection_handler handler,
                                std::chrono::milliseconds timeout,
                                std::chrono::milliseconds shutdown_timeout, stream_reader reader,
                                stream_writer writer) {
  bool ok = false;
  try {
    task<void> handshake =
        do_start_tls(writer, std::move(ssl), std::string(), true, timeout, shutdown_timeout);
    co_await std::move(handshake);
    ok = true;
  } catch (const os_error&) {
    // asyncio logs a failed server handshake only in debug mode and drops
    // the connection; the handler never sees it.
  }
  if (!ok) {
    writer.close();
    co_return;
  }
  task<void> serving = handler(std::move(reader), std::move(writer));
  co_await std::move(serving);
}

connection_handler tls_handler(connection_handler handler, ssl_context ssl,
                               std::chrono::milliseconds timeout,
                               std::chrono::milliseconds shutdown_timeout) {
  if (!handler) throw std::invalid_argument("start_server: empty handler");
  check_timeouts(timeout, shutdown_timeout);
  return [handler = std::move(handler), ssl = std::move(ssl), timeout, shutdown_timeout](
             stream_reader reader, stream_writer writer) -> task<void> {
    // A plain function returning the coroutine: the lambda object may go
    // before the task ends, so the task must not refer to its captures.
    return serve_tls_connection(ssl, handler, timeout, shutdown_timeout, std::move(reader),
                                std::move(writer));
  };
}

}  // namespace

task<std::pair<stream_reader, stream_writer>> open_connection(
    std::string host, int port, ssl_context ssl, std::optional<std::string> server_hostname,
    stream_limits limits, std::chrono::milliseconds ssl_handshake_timeout,
    std::chrono::milliseconds ssl_shutdown_timeout) {
  check_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout);
  return do_open_connection(std::move(host), port, std::move(ssl), std::move(server_hostname),
                            limits, ssl_handshake_timeout, ssl_shutdown_timeout);
}

task<server> start_server(connection_handler handler, std::string host, int port, ssl_context ssl,
                          server_config config, std::chrono::milliseconds ssl_handshake_timeout,
                          std::chrono::milliseconds ssl_shutdown_timeout) {
  return pysock::start_server(
      tls_handler(std::move(handler), std::move(ssl), ssl_handshake_timeout, ssl_shutdown_timeout),
      std::move(host), port, std::move(config));
}

task<server> start_server(connection_handler handler, socket listener, ssl_context ssl,
                          server_config config, std::chrono::milliseconds ssl_handshake_timeout,
                          std::chrono::milliseconds ssl_shutdown_timeout) {
  return pysock::start_server(
      tls_handler(std::move(handler), std::move(ssl), ssl_handshake_timeout, ssl_shutdown_timeout),
      std::move(listener), std::move(config));
}

void serve_forever(connection_handler handler, const std::string& host, int port, ssl_context ssl,
                   serve_options options, std::chrono::milliseconds ssl_handshake_timeout,
                   std::chrono::milliseconds ssl_shutdown_timeout) {
  pysock::serve_forever(
      tls_handler(std::move(handler), std::move(ssl), ssl_handshake_timeout, ssl_shutdown_timeout),
      host, port, std::move(options));
}

task<void> start_tls(stream_writer writer, ssl_context ssl, std::string server_hostname,
                     bool server_side, std::chrono::milliseconds ssl_handshake_timeout,
                     std::chrono::milliseconds ssl_shutdown_timeout) {
  check_timeouts(ssl_handshake_timeout, ssl_shutdown_timeout);
  return do_start_tls(std::move(writer), std::move(ssl), std::move(server_hostname), server_side,
                      ssl_handshake_timeout, ssl_shutdown_timeout);
}

const ssl_object* get_ssl_object(const stream_writer& writer) noexcept {
  const auto& t = detail::stream_hooks::transport(writer);
  if (!t) return nullptr;
  const auto* codec = dynamic_cast<const tls_codec*>(detail::stream_hooks::codec(*t));
  return codec != nullptr ? &codec->object() : nullptr;
}

}  // namespace pysock
