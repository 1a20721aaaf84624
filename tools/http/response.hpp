// SPDX-License-Identifier: MIT
//
// tools/http/response.hpp — writing response heads, error pages and access-log
// lines. Everything appends to a caller's std::string, so a batch of
// pipelined responses is built in one buffer and leaves in one write.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

namespace pysock::http {

/// "OK", "Not Found", ... ("Unknown" for a code without a reason phrase).
std::string_view reason_phrase(int status) noexcept;

/// Appends a response head piece by piece:
///   response_head head(out, 200);
///   head.field("Content-Type", "text/html");
///   head.content_length(n);
///   head.finish(keep_alive, http10_client);
/// The status line and the Server and Date fields come first.
class response_head {
 public:
  response_head(std::string& out, int status);
  response_head& field(std::string_view name, std::string_view value);
  response_head& content_length(std::uint64_t length);
  /// Fields already formatted ("Name: value\r\n" each), e.g. file_fields().
  response_head& raw(std::string_view fields);
  /// Adds the Connection field when it is not the protocol's default (close
  /// for an HTTP/1.1 client, keep-alive for an HTTP/1.0 one), and the blank line.
  void finish(bool keep_alive, bool http10_client);

  static constexpr std::string_view server_name = "pysock-http/0.1";

 private:
  std::string& out_;
};

/// What response_head(out, 200) appends up to the Date's value and its
/// "\r\n" excluded: "HTTP/1.1 200 OK\r\nServer: ...\r\nDate: <now>".
void append_ok_head_start(std::string& out);

/// The fields of a file's 200/206, in this order: Content-Type,
/// Content-Length, Last-Modified, ETag, Accept-Ranges. The small-file cache
/// keeps them formatted; other answers format them per response.
void append_file_fields(std::string& out, std::string_view mime, std::uint64_t length,
                        std::string_view last_modified, std::string_view etag);

/// Python's http.server error page, shortened: code, reason, message
/// (HTML-escaped) and explanation. Content-Type text/html;charset=utf-8.
std::string error_body(int status, std::string_view message);

/// html.escape(text, quote=False): &, < and >.
void append_html_escaped(std::string& out, std::string_view text);
/// urllib.parse.quote(text): keeps letters, digits, "_.-~" and "/", encodes
/// every other byte as %XX (uppercase hex).
void append_url_quoted(std::string& out, std::string_view text);

/// One access-log line in Python's format (BaseHTTPRequestHandler.log_request):
///   127.0.0.1 - - [24/Nov/2026 06:10:00] "GET / HTTP/1.1" 200 -
/// Control characters in the request line are written as \xNN, as Python
/// does, so a client cannot forge log lines. Ends with '\n'.
std::string access_log_line(std::string_view client, std::time_t when,
                            std::string_view request_line, int status);
/// The same, appended to `out` (a buffer reused for every line). `plain`:
/// the caller knows the request line is printable ASCII (the parser's
/// request::plain_request_line), so it is copied without looking for bytes
/// to escape.
void append_access_log_line(std::string& out, std::string_view client, std::time_t when,
                            std::string_view request_line, int status, bool plain = false);
/// What an access-log line has between the client and the request line,
/// " - - [24/Nov/2026 06:10:00] \"", formatted once per second per thread;
/// valid until the thread's next call.
std::string_view access_log_stamp(std::time_t when);
/// Python's log_error line for an error answer:
///   127.0.0.1 - - [24/Nov/2026 06:10:00] code 404, message File not found
std::string error_log_line(std::string_view client, std::time_t when, int status,
                           std::string_view message);

}  // namespace pysock::http
