// SPDX-License-Identifier: MIT
//
// tools/http/request_parser.hpp — an incremental HTTP/1.x request-head parser.
//
// The parser never copies: every string_view in a parsed `request` points into
// the caller's buffer, which must stay put until the request has been
// answered. It is fed the connection's unconsumed bytes again and again as
// they grow (same prefix, more bytes), and remembers how far it has already
// looked, so a head that trickles in byte by byte costs O(n), not O(n²).
//
// What it enforces (RFC 9112, with Python's http.server's answers):
// - request line `method SP target SP HTTP/1.x` → else 400 "Bad request
//   syntax"; HTTP/2.0 and later → 505 (the HTTP/2 connection preface,
//   "PRI * HTTP/2.0", → 400: it is not a request at all);
// - a target longer than `max_target` → 414, checked while the line is still
//   arriving so a client cannot make the server buffer it;
// - a header section longer than `max_header_section` or with more than
//   `max_headers` fields → 431;
// - garbage (a byte that cannot start a method, a TLS ClientHello) → 400 as
//   soon as the first wrong byte is seen, not after a timeout;
// - header fields: token names, no space before the colon, no obsolete line
//   folding, no control characters in values; HTTP/1.1 needs exactly one Host;
// - message framing: Content-Length must be one decimal number (repeats must
//   agree); Transfer-Encoding is refused with 501 (a file server takes no
//   request bodies), and both together are 400 (request smuggling).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pysock::http {

struct header_field {
  std::string_view name;
  std::string_view value;  ///< without surrounding spaces and tabs
};

struct parser_limits {
  std::size_t max_target = 8192;          ///< request-target bytes → 414
  std::size_t max_header_section = 8192;  ///< bytes after the request line → 431
  std::size_t max_headers = 100;          ///< header fields → 431
  std::size_t max_method = 32;            ///< method token bytes → 400

  /// The longest head these limits allow: what a connection's input buffer
  /// must hold at least, so that a limit always fires before it fills.
  std::size_t max_head_bytes() const noexcept {
    return max_method + 1 + max_target + sizeof(" HTTP/1.1\r\n") + max_header_section;
  }
};

/// One parsed request head. Views into the parsed buffer. (A new field must
/// be set by both request_parser::clear_request() and the parser's fast
/// path, parse_whole_head(), which writes every field.)
struct request {
  std::string_view request_line;  ///< without the line end, as logged
  std::string_view method;
  std::string_view target;  ///< as sent
  std::string_view path;    ///< the target's path, before '?' or '#' ("/" for "*")
  std::string_view query;   ///< after '?', without it; empty when none
  int version_minor = 1;    ///< HTTP/1.<minor>
  std::vector<header_field> headers;
  std::uint64_t content_length = 0;  ///< body bytes that follow the head
  bool keep_alive = true;            ///< from the version and Connection
  /// The request line is printable ASCII only, so an access log needs no
  /// escaping for it. Set by the parser's fast path (false is always safe).
  bool plain_request_line = false;
  /// False only when the parser knows there is no Range, If-Range,
  /// If-None-Match or If-Modified-Since field (its fast path), so that a
  /// plain GET skips looking for them.
  bool maybe_conditional = true;

  /// The first field named `name` (case-insensitive), or nullptr.
  const header_field* find(std::string_view name) const noexcept;
  /// Its value, or an empty view.
  std::string_view header(std::string_view name) const noexcept;
};

enum class parse_status { need_more, complete, failed };

class request_parser {
 public:
  explicit request_parser(parser_limits limits = {});

  /// Parses the head at the start of `input` (the connection's unconsumed
  /// bytes). Call again with the same bytes plus more after need_more.
  /// complete: get() is the request, head_size() the bytes it took (the body,
  /// request().content_length bytes, follows). failed: error_status() and
  /// error_message() say what to answer; the connection must then close.
  parse_status parse(std::string_view input) {
    // A first look at a head: most often all of it is there (inline, so
    // that a pipelined request costs no call frame for the general path).
    if ((scanned_ | line_checked_ | skipped_ | head_size_) == 0 && error_status_ == 0 &&
        parse_whole_head(input))
      return parse_status::complete;
    return parse_general(input);
  }

  const request& get() const noexcept { return request_; }
  std::size_t head_size() const noexcept { return head_size_; }
  int error_status() const noexcept { return error_status_; }
  /// Python's wording, e.g. "Bad request syntax ('GARBAGE')".
  const std::string& error_message() const noexcept { return error_message_; }
  /// The request line so far (for logging a failed request); may be partial.
  std::string_view error_request_line() const noexcept { return error_line_; }
  const parser_limits& limits() const noexcept { return limits_; }

  /// Forgets the last request; keeps the header vector's memory.
  void reset() noexcept {
    // The request itself is cleared lazily: the fast path writes every
    // field of it, and only the general path needs it blank (clear_request()
    // when it starts). Pipelined requests are nearly all taken by the fast
    // path, so this is a few stores per request instead of a dozen.
    skipped_ = scanned_ = line_checked_ = head_size_ = 0;
    line_end_ = method_end_ = target_end_ = 0;
    if (error_status_ != 0) clear_error();
  }

 private:
  parse_status parse_general(std::string_view input);
  void clear_request() noexcept;
  void clear_error() noexcept;
  parse_status fail(int status, std::string message, std::string_view line);
  bool parse_whole_head(std::string_view input);
  parse_status check_partial_line(std::string_view input);
  parse_status parse_head(std::string_view head);
  parse_status parse_request_line(std::string_view line);
  parse_status parse_fields(std::string_view fields);

  parser_limits limits_;
  request request_;
  std::size_t skipped_ = 0;       // leading empty lines (RFC 9112 §2.2 allows them)
  std::size_t scanned_ = 0;       // bytes already searched for the head's end
  std::size_t line_checked_ = 0;  // request-line bytes already validated
  static constexpr std::size_t line_complete = static_cast<std::size_t>(-1);
  // Once the line is complete: where its '\n' and its first two spaces are
  // (npos when missing), so that later steps need not search again.
  std::size_t line_end_ = 0;
  std::size_t method_end_ = 0;
  std::size_t target_end_ = 0;
  std::size_t head_size_ = 0;
  int error_status_ = 0;
  std::string error_message_;
  std::string_view error_line_;
};

/// Case-insensitive ASCII comparison, for header names and tokens. Inline:
/// every request compares a few header names this way.
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    const char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] - 'A' + 'a') : b[i];
    if (x != y) return false;
  }
  return true;
}

/// True when the comma-separated `list` (a Connection or If-None-Match value)
/// contains `token`, compared case-insensitively, ignoring spaces.
bool list_contains(std::string_view list, std::string_view token) noexcept;

}  // namespace pysock::http
