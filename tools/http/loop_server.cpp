// SPDX-License-Identifier: MIT
#include "http/loop_server.hpp"

#include <array>
#include <exception>
#include <iterator>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include <pysock/error.hpp>

#ifdef PYSOCK_TOOLS_HAVE_SSL
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <pysock/ssl.hpp>
#endif

namespace pysock::http {
namespace {

using clock = std::chrono::steady_clock;

// Lingering close (see blocking_server.cpp): after the last response, FIN,
// then read and discard what the client still sends, for a short while.
constexpr std::chrono::seconds linger_time{1};
constexpr std::size_t linger_max_bytes = 256 * 1024;
// Work done for one connection or one listener before the loop gets a turn
// for the others; level-triggered interest brings them back.
constexpr int rounds_per_event = 16;
constexpr int accepts_per_event = 64;
// HTTPS: ciphertext waiting to be sent, per connection, before encrypting
// more of the session's output pauses (the session's own high-water mark
// then pauses parsing); and the per-loop buffer that receives ciphertext and
// holds file chunks read for encryption.
constexpr std::size_t tls_buffer_size = 64 * 1024;

#ifdef PYSOCK_TOOLS_HAVE_SSL
constexpr std::size_t tls_wire_high_water = 64 * 1024;

// One HTTPS connection's TLS: Python's SSLObject over two MemoryBIOs, as
// asyncio's SSL transport (and pysock's TLS streams) use it.
struct tls_state {
  explicit tls_state(const ssl_context& ctx) : object(ctx.wrap_bio(incoming, outgoing, true)) {}
  memory_bio incoming;  // from the network, not yet decrypted
  memory_bio outgoing;  // to the network, taken into `wire`
  ssl_object object;
  std::string wire;  // ciphertext not yet sent
  std::size_t wire_sent = 0;
  bool handshaken = false;
  bool failed = false;  // a TLS error: send its alert (if any), then close
};
#endif

class loop_listener;

class connection {
 public:
  connection(loop_listener& owner, socket sock, std::string client);
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  std::list<connection>::iterator self;

  /// Waits for the first request.
  void start();
  /// The server stops: close now if between requests, else finish.
  void stop();
  /// Answers what drive() received (after the cache's begin_batch()), then
  /// carries on as drive() would.
  void answer();

 private:
  enum class flush_result { done, blocked, failed };
  enum class receive_result { received, wait, failed };

  void drive();
  flush_result flush();
#ifdef PYSOCK_TOOLS_HAVE_SSL
  void drive_tls();
  flush_result send_wire();
  receive_result receive_ciphertext();
  bool encrypt_output();
  void take_ciphertext() noexcept;
  void blocked_on_write();
#endif
  void wait_for_input();
  void want(bool read, bool write);
  void arm(clock::time_point when);
  void on_timer();
  void begin_linger();
  void linger_read();
  void destroy();  // *this is gone afterwards

  loop_listener& owner_;
  event_loop& loop_;
  socket sock_;
  int fd_;
  session s_;
#ifdef PYSOCK_TOOLS_HAVE_SSL
  std::unique_ptr<tls_state> tls_;  // HTTPS only: the plain path tests this pointer
#endif
  bool reading_ = false;
  bool writing_ = false;
  bool lingering_ = false;
  bool peer_closed_ = false;
  bool stopping_ = false;
  bool more_input_likely_ = false;  // the last recv filled the whole space
  bool deferred_ = false;           // received input waits for answer()
  std::size_t drained_ = 0;
  clock::time_point write_deadline_{};
  clock::time_point linger_deadline_{};
  callback_handle timer_;
  bool timer_pending_ = false;
  clock::time_point timer_due_{};
};

// The access log of one loop: lines gathered during an iteration go to the
// shared sink together, from a call_soon() callback (so after the batch of
// events that produced them), and once more when the loop has ended. (A
// timer instead, writing every 20 ms, halved the log's writes but changed
// nothing measurable: under load one iteration serves many connections, so
// these writes were ~1% of the server's system calls; strace in
// bench/http_perf_notes.md. Lines stay as prompt as Python's.) The lines of
// an answering round (loop_listener::answer_received(), itself a call_soon
// callback) are written at its end instead: held, they need no callback of
// their own, nor the extra loop iteration it would run in.
class batched_log final : public log_batch {
 public:
  batched_log(event_loop& loop, log_sink sink) : loop_(loop), sink_(std::move(sink)) {}

  void flush() {
    if (!pending().empty()) sink_(pending());
    clear();
  }

  /// Until release(), new lines wait without scheduling a write.
  void hold() noexcept { holding_ = true; }
  /// Writes what is pending (lines from before hold() too: the order is kept).
  void release() {
    holding_ = false;
    flush();
  }

 private:
  void schedule() override {
    if (!holding_) loop_.call_soon([this] { flush(); });
  }

  event_loop& loop_;
  log_sink sink_;
  bool holding_ = false;
};

class loop_listener {
 public:
  loop_listener(event_loop& loop, socket listener, const server_context& context, int stop_fd,
                const loop_transport_options& options, batched_log* log)
      : loop_(loop),
        listener_(std::move(listener)),
        context_(context),
        stop_fd_(stop_fd),
        options_(options),
        log_(log) {}
  loop_listener(const loop_listener&) = delete;
  loop_listener& operator=(const loop_listener&) = delete;

  void start() {
    listener_.setblocking(false);
    if (options_.tls != nullptr) tls_buffer_ = std::make_unique<char[]>(tls_buffer_size);
    loop_.add_reader(listener_.fileno(), [this] { on_acceptable(); });
    loop_.add_reader(stop_fd_, [this] { stop(); });
  }

  void remove(connection& c) {
    conns_.erase(c.self);
    if (stopping_ && conns_.empty()) loop_.stop();
  }

  // Plain connections answer in two steps, so that one stat per cached file
  // and loop iteration (not per recv) keeps the file cache's promise: every
  // answer rests on a stat made after its request was received. The fd
  // callbacks of an iteration only receive (connection::drive() calls
  // defer()); then answer_received(), a call_soon() callback and so run
  // after all of this iteration's fd callbacks, starts a new cache batch
  // and answers every connection that received. Each byte it answers was
  // received before that begin_batch(), and a file is stat'ed at its first
  // lookup after it. A recv made while answering defers again, to the next
  // round with its own begin_batch(). (Why not inotify instead of the stat:
  // bench/http_perf_notes.md, "Freshness without a stat per batch".)
  void defer(connection& c) {
    received_.push_back(&c);
    if (!answer_scheduled_) {
      loop_.call_soon([this] { answer_received(); });
      answer_scheduled_ = true;
    }
  }
  /// `c` is being destroyed while it waits in defer()'s list.
  void forget(const connection& c) noexcept {
    for (connection*& p : received_)
      if (p == &c) p = nullptr;
    for (connection*& p : answering_)
      if (p == &c) p = nullptr;
  }

  event_loop& loop() noexcept { return loop_; }
  const server_context& context() const noexcept { return context_; }
  const loop_transport_options& options() const noexcept { return options_; }
  std::span<char> scratch() noexcept { return scratch_; }
  std::span<char> tls_buffer() noexcept { return {tls_buffer_.get(), tls_buffer_size}; }

 private:
  void on_acceptable() {
    for (int i = 0; i < accepts_per_event; ++i) {
      std::error_code ec;
      auto [conn, peer] = listener_.accept(ec);
      if (ec) {
        if (ec == std::errc::operation_would_block ||
            ec == std::errc::resource_unavailable_try_again)
          return;
        if (ec == std::errc::connection_aborted || ec == std::errc::interrupted) continue;
        report("accept(): " + ec.message());
        if (ec == std::errc::too_many_files_open ||
            ec == std::errc::too_many_files_open_in_system || ec == std::errc::no_buffer_space ||
            ec == std::errc::not_enough_memory) {
          // Out of descriptors or memory: pause accepting instead of spinning.
          loop_.remove_reader(listener_.fileno());
          pause_ = loop_.call_later(std::chrono::milliseconds(100), [this] {
            if (!stopping_) loop_.add_reader(listener_.fileno(), [this] { on_acceptable(); });
          });
        }
        return;
      }
      try {
        conn.setblocking(false);
        conn.setsockopt(tcp_nodelay, true);  // MSG_MORE does the coalescing
      } catch (const os_error&) {
        continue;  // the peer is already gone
      }
      try {
        conns_.emplace_back(*this, std::move(conn), peer.host());
      } catch (const std::exception&) {
        continue;  // no memory for its TLS state: drop this one (its socket closes)
      }
      conns_.back().self = std::prev(conns_.end());
      conns_.back().start();
    }
  }

  void stop() {
    if (stopping_) return;
    stopping_ = true;
    loop_.remove_reader(stop_fd_);
    loop_.remove_reader(listener_.fileno());
    pause_.cancel();
    try {
      listener_.close();
    } catch (const os_error&) {
    }
    for (auto it = conns_.begin(); it != conns_.end();) {
      connection& c = *it++;  // stop() may remove it
      c.stop();
    }
    if (conns_.empty()) loop_.stop();
  }

  void report(const std::string& message) {
    if (options_.errors) options_.errors(message);
  }

  void answer_received() {
    answer_scheduled_ = false;
    answering_.swap(received_);  // answer() may defer again: into received_
    if (context_.cache != nullptr) context_.cache->begin_batch();
    if (log_ != nullptr) log_->hold();
    for (connection* c : answering_) {
      if (c == nullptr) continue;  // destroyed meanwhile
      try {
        c->answer();  // may destroy it
      } catch (const std::exception& e) {
        // As the loop does for an fd callback: the others are still
        // answered, and answering_ is cleared below (no stale entry).
        report(std::string("answering a connection: ") + e.what());
      } catch (...) {
        report("answering a connection: unknown exception");
      }
    }
    answering_.clear();
    if (log_ != nullptr) log_->release();
  }

  event_loop& loop_;
  socket listener_;
  const server_context& context_;
  int stop_fd_;
  const loop_transport_options& options_;
  batched_log* log_;  // null without an access log
  std::list<connection> conns_;
  callback_handle pause_;
  bool stopping_ = false;
  std::vector<connection*> received_;   // defer()red, for the next answer_received()
  std::vector<connection*> answering_;  // being answered now
  bool answer_scheduled_ = false;
  std::array<char, 4096> scratch_;      // where lingering connections discard input
  std::unique_ptr<char[]> tls_buffer_;  // HTTPS: see tls_buffer_size
};

connection::connection(loop_listener& owner, socket sock, std::string client)
    : owner_(owner),
      loop_(owner.loop()),
      sock_(std::move(sock)),
      fd_(sock_.fileno()),
      s_(owner.context(), std::move(client)) {
#ifdef PYSOCK_TOOLS_HAVE_SSL
  if (owner.options().tls != nullptr) tls_ = std::make_unique<tls_state>(*owner.options().tls);
#endif
}

void connection::start() {
  try {
    wait_for_input();
  } catch (const std::exception&) {
    destroy();  // epoll refused the descriptor (out of memory): drop it
  }
}

void connection::stop() {
  stopping_ = true;
  if (!lingering_ && !writing_ && s_.idle()) begin_linger();
}

void connection::answer() {
  deferred_ = false;
  s_.process();
  drive();
}

void connection::want(bool read, bool write) {
  if (read != reading_) {
    if (read) {
      loop_.add_reader(fd_, [this] { lingering_ ? linger_read() : drive(); });
    } else {
      loop_.remove_reader(fd_);
    }
    reading_ = read;
  }
  if (write != writing_) {
    if (write) {
      loop_.add_writer(fd_, [this] { drive(); });
    } else {
      loop_.remove_writer(fd_);
    }
    writing_ = write;
  }
}

void connection::arm(clock::time_point when) {
  // Lazy: a pending timer due earlier stays; on_timer() re-arms it for the
  // deadline that holds then.
  if (timer_pending_ && timer_due_ <= when) return;
  timer_.cancel();
  timer_pending_ = true;
  timer_due_ = when;
  timer_ = loop_.call_at(when, [this] {
    timer_pending_ = false;
    on_timer();
  });
}

void connection::wait_for_input() {
  want(true, false);
  if (const auto deadline = s_.read_deadline()) arm(*deadline);
}

void connection::on_timer() {
  const auto now = clock::now();
  if (lingering_) {
    if (now >= linger_deadline_) return destroy();
    return arm(linger_deadline_);
  }
  if (writing_) {
    if (now >= write_deadline_) return destroy();  // the client stopped reading
    return arm(write_deadline_);
  }
  // Input received in this iteration is answered soon (answer(), which
  // arms the next deadline): no 408 for a request that has arrived.
  if (deferred_) return;
  const auto deadline = s_.read_deadline();
  if (!deadline) return;
  if (now < *deadline) return arm(*deadline);
  s_.on_timeout();
  drive();
}

connection::flush_result connection::flush() {
  while (s_.has_output()) {
    const session::output out = s_.next_output();
    if (out.file_fd >= 0) {
      std::size_t sent = 0;
      try {
        sent = sock_.sendfile(out.file_fd, out.offset, out.count);
      } catch (const blocking_io_error&) {
        return flush_result::blocked;
      } catch (const os_error&) {
        return flush_result::failed;
      }
      // Nothing sent although the socket had room: the file shrank under
      // us. The framing is broken; only closing tells the client.
      if (sent == 0) return flush_result::failed;
      s_.advance(sent);
    } else {
      std::error_code ec;
      const std::size_t sent = sock_.send(out.bytes, out.more ? MSG_MORE : 0, ec);
      if (ec) {
        if (ec == std::errc::operation_would_block ||
            ec == std::errc::resource_unavailable_try_again)
          return flush_result::blocked;
        if (ec == std::errc::interrupted) continue;
        return flush_result::failed;
      }
      s_.advance(sent);
    }
  }
  return flush_result::done;
}

void connection::drive() {
#ifdef PYSOCK_TOOLS_HAVE_SSL
  if (tls_) return drive_tls();
#endif
  if (deferred_) return;  // answer() comes first, then carries on from here
  for (int round = 0; round < rounds_per_event; ++round) {
    if (s_.has_output()) {
      switch (flush()) {
        case flush_result::done:
          break;
        case flush_result::blocked:
          want(false, true);
          write_deadline_ = clock::now() + owner_.options().write_timeout;
          arm(write_deadline_);
          return;
        case flush_result::failed:
          peer_closed_ = true;  // reset or gone: nobody to answer
          return destroy();
      }
      // Answered everything received. Unless the last read filled the
      // buffer, wait for readiness rather than make a recv that would only
      // say EAGAIN.
      if (!more_input_likely_ && !s_.done() && !(stopping_ && s_.idle())) return wait_for_input();
      continue;
    }
    if (s_.done() || (stopping_ && s_.idle())) return begin_linger();
    const std::span<char> space = s_.read_space();
    std::error_code ec;
    const std::size_t n = sock_.recv_into(space, ec);
    if (ec) {
      if (ec == std::errc::operation_would_block ||
          ec == std::errc::resource_unavailable_try_again) {
        more_input_likely_ = false;
        return wait_for_input();
      }
      if (ec == std::errc::interrupted) continue;
      peer_closed_ = true;
      return destroy();
    }
    if (n == 0) {
      peer_closed_ = true;
      more_input_likely_ = false;
      s_.on_eof();
    } else {
      more_input_likely_ = n == space.size();
      // Answered by answer(), after this iteration's other receives (see
      // loop_listener::defer()).
      s_.receive(n);
      deferred_ = true;
      return owner_.defer(*this);
    }
  }
  // Enough for one event: the loop serves the others and comes back (the
  // interest is level-triggered).
  if (s_.has_output()) {
    want(false, true);
  } else {
    want(true, false);
  }
}

void connection::begin_linger() {
  if (peer_closed_) return destroy();
#ifdef PYSOCK_TOOLS_HAVE_SSL
  if (tls_ && tls_->handshaken && !tls_->failed) {
    // close_notify, best effort: a client that reads no more never gets it.
    std::error_code ec;
    tls_->object.unwrap(ec);  // want_read: the peer's close_notify is not awaited
    take_ciphertext();
    (void)send_wire();
  }
#endif
  // The system call, not socket::shutdown(): a client that already reset
  // the connection is common (a quarter of the closes under a handshake
  // load), and an exception per close costs ~1% of a TLS handshake.
  if (::shutdown(sock_.fileno(), SHUT_WR) != 0) return destroy();  // nothing to drain
  lingering_ = true;
  want(true, false);
  linger_deadline_ = clock::now() + linger_time;
  arm(linger_deadline_);
}

void connection::linger_read() {
  for (int round = 0; round < rounds_per_event; ++round) {
    std::error_code ec;
    const std::size_t n = sock_.recv_into(owner_.scratch(), ec);
    if (ec) {
      if (ec == std::errc::operation_would_block || ec == std::errc::resource_unavailable_try_again)
        return;
      if (ec == std::errc::interrupted) continue;
      return destroy();
    }
    if (n == 0) return destroy();
    drained_ += n;
    if (drained_ >= linger_max_bytes) return destroy();
  }
}

void connection::destroy() {
  if (deferred_) owner_.forget(*this);
  if (reading_) loop_.remove_reader(fd_);
  if (writing_) loop_.remove_writer(fd_);
  reading_ = writing_ = false;
  timer_.cancel();
  try {
    sock_.close();
  } catch (const os_error&) {
  }
  owner_.remove(*this);  // destroys *this (and the session's open files)
}

#ifdef PYSOCK_TOOLS_HAVE_SSL

void connection::blocked_on_write() {
  want(false, true);
  write_deadline_ = clock::now() + owner_.options().write_timeout;
  arm(write_deadline_);
}

void connection::take_ciphertext() noexcept {
  tls_state& t = *tls_;
  const std::size_t pending = t.outgoing.pending();
  if (pending == 0) return;
  if (t.wire_sent == t.wire.size()) {
    t.wire.clear();
    t.wire_sent = 0;
  }
  const std::size_t old = t.wire.size();
  t.wire.resize(old + pending);
  t.wire.resize(old + t.outgoing.read_into(mutable_buffer(t.wire.data() + old, pending)));
}

connection::flush_result connection::send_wire() {
  tls_state& t = *tls_;
  while (t.wire_sent < t.wire.size()) {
    std::error_code ec;
    const std::size_t sent =
        sock_.send(std::string_view(t.wire).substr(t.wire_sent), MSG_NOSIGNAL, ec);
    if (ec) {
      if (ec == std::errc::operation_would_block || ec == std::errc::resource_unavailable_try_again)
        return flush_result::blocked;
      if (ec == std::errc::interrupted) continue;
      return flush_result::failed;
    }
    t.wire_sent += sent;
  }
  t.wire.clear();
  t.wire_sent = 0;
  return flush_result::done;
}

connection::receive_result connection::receive_ciphertext() {
  tls_state& t = *tls_;
  const std::span<char> buffer = owner_.tls_buffer();
  std::error_code ec;
  const std::size_t n = sock_.recv_into(buffer, ec);
  if (ec) {
    if (ec == std::errc::operation_would_block || ec == std::errc::resource_unavailable_try_again)
      return receive_result::wait;
    if (ec == std::errc::interrupted) return receive_result::received;
    return receive_result::failed;
  }
  if (n == 0) {
    // OpenSSL then reports the missing close_notify (or the handshake's EOF).
    t.incoming.write_eof();
  } else {
    t.incoming.write(const_buffer(buffer.data(), n));
  }
  return receive_result::received;
}

bool connection::encrypt_output() {
  tls_state& t = *tls_;
  while (s_.has_output() && t.wire.size() - t.wire_sent < tls_wire_high_water) {
    const session::output out = s_.next_output();
    std::error_code ec;
    std::size_t n = 0;
    if (out.file_fd >= 0) {
      // sendfile cannot encrypt: a bounded chunk of the file goes through
      // user space.
      const std::span<char> buffer = owner_.tls_buffer();
      const std::size_t chunk = static_cast<std::size_t>(
          std::min<std::uint64_t>(out.count, static_cast<std::uint64_t>(buffer.size())));
      ssize_t got;
      do got = ::pread(out.file_fd, buffer.data(), chunk, static_cast<off_t>(out.offset));
      while (got < 0 && errno == EINTR);
      // 0: the file shrank under us; the framing is broken and only
      // closing tells the client.
      if (got <= 0) return false;
      n = static_cast<std::size_t>(got);
      t.object.write(const_buffer(buffer.data(), n), ec);
    } else {
      n = std::min(out.bytes.size(), tls_buffer_size);
      t.object.write(const_buffer(out.bytes.data(), n), ec);
    }
    if (ec) return false;
    s_.advance(n);
    take_ciphertext();
  }
  return true;
}

void connection::drive_tls() {
  tls_state& t = *tls_;
  for (int round = 0; round < rounds_per_event; ++round) {
    if (t.wire_sent < t.wire.size()) {
      switch (send_wire()) {
        case flush_result::done:
          break;
        case flush_result::blocked:
          return blocked_on_write();
        case flush_result::failed:
          peer_closed_ = true;
          return destroy();
      }
    }
    if (t.failed) {
      peer_closed_ = true;  // its alert went out; nothing more to say
      return destroy();
    }
    std::error_code ec;
    if (!t.handshaken) {
      // The header deadline ran out (or the server stops) mid-handshake.
      if (s_.done() || (stopping_ && s_.idle())) {
        peer_closed_ = true;
        return destroy();
      }
      t.object.do_handshake(ec);
      take_ciphertext();
      if (!ec) {
        t.handshaken = true;
        continue;
      }
      // A plaintext client, an unknown protocol, a client refusing the
      // certificate: this connection ends, the server serves on.
      if (ec != ssl_errc::want_read || t.incoming.eof()) {
        t.failed = true;
        continue;
      }
      if (t.wire_sent < t.wire.size()) continue;  // our flight first
    } else if (s_.has_output()) {
      if (!encrypt_output()) {
        peer_closed_ = true;
        return destroy();
      }
      continue;
    } else if (s_.done() || (stopping_ && s_.idle())) {
      return begin_linger();
    } else {
      const std::span<char> space = s_.read_space();
      const std::size_t n = t.object.read_into(mutable_buffer(space.data(), space.size()), ec);
      take_ciphertext();  // a KeyUpdate or an alert may want an answer
      if (!ec && n > 0) {
        s_.on_received(n);
        continue;
      }
      if (!ec || ec == ssl_errc::zero_return || ec == ssl_errc::eof) {
        // close_notify, or TCP closed without it: answer what came, close.
        peer_closed_ = true;
        s_.on_eof();
        continue;
      }
      if (ec != ssl_errc::want_read) {
        t.failed = true;
        continue;
      }
      if (t.incoming.eof()) {
        peer_closed_ = true;
        s_.on_eof();
        continue;
      }
    }
    switch (receive_ciphertext()) {
      case receive_result::received:
        break;
      case receive_result::wait:
        return wait_for_input();
      case receive_result::failed:
        peer_closed_ = true;
        return destroy();
    }
  }
  if (t.wire_sent < t.wire.size() || (t.handshaken && s_.has_output())) {
    want(false, true);
  } else {
    want(true, false);
  }
}

#endif

void run_loop(socket listener, const server_context& shared, int stop_fd,
              const loop_transport_options& options) {
  event_loop loop(options.loop);
  server_context context = shared;
  file_cache cache(options.cache);
  if (options.cache.max_bytes > 0) context.cache = &cache;
  batched_log log(loop, shared.log);
  if (shared.log) {
    context.log = [&log](std::string_view line) { log.add(line); };
    context.batch = &log;
  }
  {
    loop_listener server(loop, std::move(listener), context, stop_fd, options,
                         shared.log ? &log : nullptr);
    server.start();
    loop.run_forever();
  }
  log.flush();
}

}  // namespace

void serve_loops(std::vector<socket> listeners, const server_context& context,
                 const loop_transport_options& options) {
#ifndef PYSOCK_TOOLS_HAVE_SSL
  if (options.tls != nullptr)
    throw std::invalid_argument("serve_loops: TLS needs pysock built with OpenSSL 3 (pysock::ssl)");
#endif
  std::mutex errors_mutex;
  std::exception_ptr first_error;
  std::vector<std::thread> threads;
  threads.reserve(listeners.size());
  for (socket& listener : listeners) {
    threads.emplace_back([&, sock = std::move(listener)]() mutable {
      try {
        run_loop(std::move(sock), context, options.stop_fd, options);
      } catch (...) {
        {
          const std::lock_guard lock(errors_mutex);
          if (!first_error) first_error = std::current_exception();
        }
        if (options.request_stop) options.request_stop();  // one failed loop ends the server
      }
    });
  }
  if (options.wait_for_stop) options.wait_for_stop();
  for (auto& t : threads) t.join();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace pysock::http
