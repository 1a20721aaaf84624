// SPDX-License-Identifier: MIT
//
// tools/http/session.hpp — one HTTP/1.1 connection as a state machine that
// does no I/O itself: bytes in, "send these bytes" / "send this file range" /
// "close" out. The same session runs behind a blocking socket and a thread
// (tools/http/blocking_server.cpp), behind a selector, or behind the event
// loop: each transport only moves bytes.
//
// A transport's loop, in full:
//
//   while (!s.done()) {
//     if (s.has_output()) {                 // send first: answers before more requests
//       auto out = s.next_output();
//       n = out.file_fd >= 0 ? sendfile(out.file_fd, out.offset, out.count)
//                            : send(out.bytes, out.more ? MSG_MORE : 0);
//       s.advance(n);                       // partial sends are fine
//     } else {                              // wait for input until s.read_deadline()
//       n = recv_into(s.read_space());
//       n == 0 ? s.on_eof() : s.on_received(n);   // or s.on_timeout() at the deadline
//     }
//   }
//   close (after shutdown(SHUT_WR) and a short drain: see blocking_server.cpp)
//
// Pipelining: all complete requests in the input are answered at once, and
// the heads and small bodies of consecutive responses share one buffer, so a
// batch of pipelined requests for small files leaves in one write. Parsing
// pauses while more than `output_high_water` bytes wait, so a client that
// pipelines and never reads cannot make the server buffer without bound.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "http/file_cache.hpp"
#include "http/file_resolver.hpp"
#include "http/request_parser.hpp"

namespace pysock::http {

struct server_config {
  parser_limits limits;
  /// From the moment the server is ready for a request (connection accepted,
  /// previous response sent) until its head has fully arrived: a client that
  /// stalls (slowloris) or idles on keep-alive longer is dropped.
  std::chrono::milliseconds header_timeout{20'000};
  /// Files up to this size are read into the response buffer (one pread), so
  /// they batch with other responses; larger ones go out with sendfile.
  std::uint64_t inline_file_max = 16 * 1024;
  /// Output bytes queued before parsing pauses.
  std::size_t output_high_water = 256 * 1024;
  /// A GET/HEAD body (allowed, meaningless) is skipped up to this size; a
  /// larger one is answered 413 and the connection closed.
  std::uint64_t max_discarded_body = 1 << 20;
};

/// Receives complete log lines (with their '\n'); must be thread-safe when
/// sessions run on several threads.
using log_sink = std::function<void(std::string_view line)>;

/// An access log that gathers lines in memory before they reach a log_sink:
/// the event-loop transport keeps one per loop. A session writes its
/// request lines here in place (a few memcpy's into reserved room, no string
/// of its own, no call through the std::function per line).
class log_batch {
 public:
  log_batch() = default;
  log_batch(const log_batch&) = delete;
  log_batch& operator=(const log_batch&) = delete;

  /// Room for `n` more bytes after the pending lines, valid until the next
  /// call; commit() keeps what was written there.
  char* reserve(std::size_t n) {
    if (capacity_ - size_ < n) grow(n);
    return data_.get() + size_;
  }
  /// `n` bytes at reserve() are complete lines.
  void commit(std::size_t n) {
    size_ += n;
    if (!scheduled_) {
      scheduled_ = true;
      schedule();
    }
  }
  void add(std::string_view lines);
  std::string_view pending() const noexcept { return {data_.get(), size_}; }
  /// The pending lines went to the sink: start afresh.
  void clear() noexcept {
    size_ = 0;
    scheduled_ = false;
  }

 protected:
  ~log_batch() = default;
  /// The first lines since clear(): have them written soon (e.g. after this
  /// loop iteration).
  virtual void schedule() = 0;

 private:
  void grow(std::size_t n);

  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  bool scheduled_ = false;
};

struct server_context {
  const document_root* root = nullptr;
  server_config config;
  log_sink log;  ///< may be empty: no access log
  /// When set (with `log`), access-log lines are written here instead of
  /// being passed to `log` one by one; other lines still go through `log`,
  /// which must then add() them to the same batch so that the order is kept.
  log_batch* batch = nullptr;
  /// Small files kept in memory (may be null: none). Not thread-safe, so a
  /// context with a cache serves the sessions of one thread only (the loop
  /// transport gives each loop its own copy of the context).
  file_cache* cache = nullptr;
};

class session {
 public:
  using clock = std::chrono::steady_clock;

  /// `client` is what the access log shows first (the peer's host).
  session(const server_context& context, std::string client);

  // --- input -------------------------------------------------------------

  /// Free space at the end of the input buffer to receive into. Never empty
  /// while wants_read().
  std::span<char> read_space() noexcept;
  /// `n` > 0 bytes were received into read_space(): parses and answers.
  /// (Tells the context's file cache that new input arrived first.)
  void on_received(std::size_t n);
  /// The two halves of on_received(), for a transport that answers the
  /// input of several connections after one file_cache::begin_batch() (the
  /// event loop: one per loop iteration, see loop_server.cpp). receive()
  /// only keeps the `n` > 0 bytes; process() parses and answers them, and
  /// the caller must have called the cache's begin_batch() after every
  /// receive() that process() answers (the cache's freshness rests on it).
  void receive(std::size_t n) noexcept { in_end_ += n; }
  void process() { pump(); }
  /// The peer closed its side: requests already received are answered, then
  /// the connection closes.
  void on_eof();
  /// read_deadline() passed: a partial request gets 408, an idle connection
  /// is simply closed.
  void on_timeout();
  /// When waiting for input must stop (unset while output is pending or the
  /// session is closing).
  std::optional<clock::time_point> read_deadline() const noexcept;
  /// True when reading more input is useful now.
  bool wants_read() const noexcept;

  // --- output ------------------------------------------------------------

  /// What to send next: `bytes`, or when `file_fd` >= 0 the range
  /// [offset, offset + count) of that file (the session keeps it open).
  /// `more` says more output follows at once (MSG_MORE / TCP_CORK material).
  struct output {
    std::string_view bytes;
    int file_fd = -1;
    std::uint64_t offset = 0;
    std::uint64_t count = 0;
    bool more = false;
  };
  bool has_output() const noexcept { return !out_.empty(); }
  output next_output() const noexcept;
  /// `n` bytes of next_output() went out.
  void advance(std::uint64_t n);

  // --- state -------------------------------------------------------------

  /// Nothing more to send and the connection should close.
  bool done() const noexcept { return closing_ && out_.empty(); }
  /// Between requests: nothing to send and no request partly received. A
  /// server stopping closes idle sessions at once and lets others finish.
  bool idle() const noexcept { return out_.empty() && in_begin_ == in_end_ && discard_ == 0; }
  /// Responses queued so far (for tests and statistics).
  std::uint64_t responses() const noexcept { return responses_; }

 private:
  struct chunk {
    std::string bytes;
    std::size_t sent = 0;
    file_descriptor file;
    std::uint64_t offset = 0;
    std::uint64_t remaining = 0;
  };

  void pump();
  // The usual request (a plain GET of a cached file) goes pump() → handle()
  // → serve_from_cache() → log_request(): these are inlined into pump()
  // (always_inline; defined in session.cpp, used only there), and what that
  // request does not need is kept out of line (noinline), so that it sets
  // up one frame, not four with their strings and file_source (~80
  // instructions per request; callgrind, bench/http_perf_notes.md).
  [[gnu::always_inline]] inline void handle(const request& req);
  [[gnu::noinline]] void handle_uncached(const request& req);
  // What serve_file() answers from: a file opened just now (`fd`), or a
  // cache entry (`cached`).
  struct file_source {
    const struct ::stat* st = nullptr;
    std::string_view etag;
    std::string_view last_modified;
    std::string_view mime;
    bool cached = false;                       ///< from the cache: `body` holds the file
    std::string_view body;                     ///< the whole body, when cached
    std::string_view fields;                   ///< a 200's fields, formatted (cached)
    const file_cache::entry* entry = nullptr;  ///< when cached
    file_descriptor* fd = nullptr;             ///< otherwise the open file
  };

  [[gnu::always_inline]] inline bool serve_from_cache(const request& req);
  [[gnu::noinline]] const file_cache::entry* find_normalised(std::string_view raw_path);
  [[gnu::noinline]] void serve_cached(const request& req, const file_cache::entry& entry);
  void serve_file(const request& req, const file_source& file);
  void send_error(int status, std::string_view message, std::string_view request_line,
                  bool head_only, bool keep_alive, bool http10, std::string_view extra_fields = {});
  [[gnu::always_inline]] inline void log_request(std::string_view request_line, int status,
                                                 bool plain = false);
  [[gnu::noinline]] void log_request_general(std::string_view request_line, int status, bool plain);
  // Where the next answer's bytes go: the last chunk's buffer while bytes
  // may still be added to it, else a new chunk (from the thread's pool).
  std::string& output_buffer() {
    return tail_bytes_ != nullptr ? *tail_bytes_ : new_output_buffer();
  }
  std::string& new_output_buffer();
  void queue_file(file_descriptor file, std::uint64_t offset, std::uint64_t count);
  void compact_input() noexcept;

  const server_context& context_;
  std::string client_;
  request_parser parser_;
  std::unique_ptr<char[]> in_;
  std::size_t in_capacity_;
  std::size_t in_begin_ = 0;
  std::size_t in_end_ = 0;
  std::uint64_t discard_ = 0;  // body bytes still to skip
  bool eof_ = false;
  bool closing_ = false;
  std::deque<chunk> out_;
  std::string* tail_bytes_ = nullptr;  // out_.back().bytes when more bytes may go there
  std::size_t out_weight_ = 0;         // bytes queued, plus a fixed weight per open file
  std::string log_line_;               // reused for every access-log line
  std::string log_prefix_;             // the start of this second's access-log lines
  std::time_t log_prefix_second_ = -1;
  std::time_t now_ = 0;  // read once per pump(): the Date and log time of its answers
  clock::time_point ready_since_;
  std::uint64_t responses_ = 0;
};

}  // namespace pysock::http
