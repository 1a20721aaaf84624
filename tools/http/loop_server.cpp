// SPDX-License-Identifier: MIT
#include "http/loop_server.hpp"

#include <array>
#include <exception>
#include <iterator>
#include <list>
#include <mutex>
#include <optional>
#include <thread>

#include <pysock/error.hpp>

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

 private:
  enum class flush_result { done, blocked, failed };

  void drive();
  flush_result flush();
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
  bool reading_ = false;
  bool writing_ = false;
  bool lingering_ = false;
  bool peer_closed_ = false;
  bool stopping_ = false;
  bool more_input_likely_ = false;  // the last recv filled the whole space
  std::size_t drained_ = 0;
  clock::time_point write_deadline_{};
  clock::time_point linger_deadline_{};
  callback_handle timer_;
  bool timer_pending_ = false;
  clock::time_point timer_due_{};
};

class loop_listener {
 public:
  loop_listener(event_loop& loop, socket listener, const server_context& context, int stop_fd,
                const loop_transport_options& options)
      : loop_(loop),
        listener_(std::move(listener)),
        context_(context),
        stop_fd_(stop_fd),
        options_(options) {}
  loop_listener(const loop_listener&) = delete;
  loop_listener& operator=(const loop_listener&) = delete;

  void start() {
    listener_.setblocking(false);
    loop_.add_reader(listener_.fileno(), [this] { on_acceptable(); });
    loop_.add_reader(stop_fd_, [this] { stop(); });
  }

  void remove(connection& c) {
    conns_.erase(c.self);
    if (stopping_ && conns_.empty()) loop_.stop();
  }

  event_loop& loop() noexcept { return loop_; }
  const server_context& context() const noexcept { return context_; }
  const loop_transport_options& options() const noexcept { return options_; }
  std::span<char> scratch() noexcept { return scratch_; }

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
      conns_.emplace_back(*this, std::move(conn), peer.host());
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

  event_loop& loop_;
  socket listener_;
  const server_context& context_;
  int stop_fd_;
  const loop_transport_options& options_;
  std::list<connection> conns_;
  callback_handle pause_;
  bool stopping_ = false;
  std::array<char, 4096> scratch_;  // where lingering connections discard input
};

connection::connection(loop_listener& owner, socket sock, std::string client)
    : owner_(owner),
      loop_(owner.loop()),
      sock_(std::move(sock)),
      fd_(sock_.fileno()),
      s_(owner.context(), std::move(client)) {}

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
      s_.on_received(n);
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
  try {
    sock_.shutdown(SHUT_WR);
  } catch (const os_error&) {
    return destroy();  // not connected any more: nothing to drain
  }
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

// The access log of one loop: lines gathered during an iteration go to the
// shared sink together, from a call_soon() callback (so after the batch of
// events that produced them), and once more when the loop has ended.
class batched_log {
 public:
  batched_log(event_loop& loop, log_sink sink) : loop_(loop), sink_(std::move(sink)) {}
  batched_log(const batched_log&) = delete;
  batched_log& operator=(const batched_log&) = delete;

  void add(std::string_view line) {
    pending_ += line;
    if (scheduled_) return;
    scheduled_ = true;
    loop_.call_soon([this] {
      scheduled_ = false;
      flush();
    });
  }

  void flush() {
    if (pending_.empty()) return;
    sink_(pending_);
    pending_.clear();
  }

 private:
  event_loop& loop_;
  log_sink sink_;
  std::string pending_;
  bool scheduled_ = false;
};

void run_loop(socket listener, const server_context& shared, int stop_fd,
              const loop_transport_options& options) {
  event_loop loop(options.loop);
  server_context context = shared;
  file_cache cache(options.cache);
  if (options.cache.max_bytes > 0) context.cache = &cache;
  batched_log log(loop, shared.log);
  if (shared.log) context.log = [&log](std::string_view line) { log.add(line); };
  {
    loop_listener server(loop, std::move(listener), context, stop_fd, options);
    server.start();
    loop.run_forever();
  }
  log.flush();
}

}  // namespace

void serve_loops(std::vector<socket> listeners, const server_context& context,
                 const loop_transport_options& options) {
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
