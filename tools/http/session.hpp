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

struct server_context {
  const document_root* root = nullptr;
  server_config config;
  log_sink log;  ///< may be empty: no access log
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
  void on_received(std::size_t n);
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
  void handle(const request& req);
  // What serve_file() answers from: a file opened just now (`fd`), or a
  // cache entry (`cached`).
  struct file_source {
    const struct ::stat* st = nullptr;
    std::string_view etag;
    std::string_view last_modified;
    std::string_view mime;
    bool cached = false;            ///< from the cache: `body` holds the file
    std::string_view body;          ///< the whole body, when cached
    std::string_view fields;        ///< a 200's fields, formatted (cached)
    std::string_view response;      ///< file_cache::entry::response (cached)
    file_descriptor* fd = nullptr;  ///< otherwise the open file
  };

  bool serve_from_cache(const request& req);
  void serve_file(const request& req, const file_source& file);
  void send_error(int status, std::string_view message, std::string_view request_line,
                  bool head_only, bool keep_alive, bool http10, std::string_view extra_fields = {});
  void log_request(std::string_view request_line, int status);
  std::string& output_buffer();
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
  std::size_t out_weight_ = 0;  // bytes queued, plus a fixed weight per open file
  std::string log_line_;        // reused for every access-log line
  clock::time_point ready_since_;
  std::uint64_t responses_ = 0;
};

}  // namespace pysock::http
