// SPDX-License-Identifier: MIT
#include "http/response.hpp"

#include <charconv>
#include <cstring>

#include "http/http_date.hpp"

namespace pysock::http {
namespace {

void append_number(std::string& out, std::uint64_t value) {
  char digits[24];
  const auto result = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, result.ptr);
}

std::string_view explanation(int status) noexcept {
  switch (status) {
    case 400:
      return "Bad request syntax or unsupported method";
    case 403:
      return "Request forbidden -- authorization will not help";
    case 404:
      return "Nothing matches the given URI";
    case 408:
      return "Server timed out waiting for the request";
    case 413:
      return "Content too large";
    case 414:
      return "URI is too long";
    case 416:
      return "Cannot satisfy request range";
    case 431:
      return "The server refused this request because the request header fields are too large";
    case 500:
      return "Server got itself in trouble";
    case 501:
      return "Server does not support this operation";
    case 503:
      return "The server cannot process the request due to a high load";
    case 505:
      return "Cannot fulfill request";
    default:
      return "";
  }
}

// Python's _control_char_table: C0 controls, DEL and C1 controls as \xNN.
void append_log_escaped(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  // Request lines are nearly always clean: copy runs of plain bytes at once,
  // and find them eight bytes at a time (printable ASCII needs no escape).
  std::size_t plain = 0;
  std::size_t i = 0;
  for (; i + 8 <= text.size(); i += 8) {
    std::uint64_t x;
    std::memcpy(&x, text.data() + i, 8);
    constexpr std::uint64_t ones = 0x0101010101010101;
    constexpr std::uint64_t highs = 0x8080808080808080;
    // A byte >= 0x80 sets its high bit in x, 0x7f in x + 1, < 0x20 in
    // x - 0x20 (carries and borrows only ever spill from a byte that is
    // itself flagged, so "none flagged" is exact).
    if (((x | (x + ones) | (x - 0x20 * ones)) & highs) != 0) break;
  }
  for (; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && (c < 0x7f || c > 0x9f)) continue;
    out.append(text.data() + plain, i - plain);
    out += "\\x";
    out += hex[c >> 4];
    out += hex[c & 15];
    plain = i + 1;
  }
  out.append(text.data() + plain, text.size() - plain);
}

}  // namespace

std::string_view access_log_stamp(std::time_t when) {
  thread_local std::time_t second = -1;
  thread_local std::string stamp;
  if (when != second) {
    stamp = " - - [";
    stamp += log_date_time(when);
    stamp += "] \"";
    second = when;
  }
  return stamp;
}

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 200:
      return "OK";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 416:
      return "Range Not Satisfiable";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

response_head::response_head(std::string& out, int status) : out_(out) {
  out_ += "HTTP/1.1 ";
  append_number(out_, static_cast<std::uint64_t>(status));
  out_ += ' ';
  out_ += reason_phrase(status);
  out_ += "\r\nServer: ";
  out_ += server_name;
  out_ += "\r\nDate: ";
  out_ += http_date_now();
  out_ += "\r\n";
}

void append_ok_head_start(std::string& out) {
  static constexpr std::string_view fixed = "HTTP/1.1 200 OK\r\nServer: pysock-http/0.1\r\nDate: ";
  static_assert(fixed.substr(fixed.size() - 23, 15) == response_head::server_name);
  // One append per response: the whole start, Date included, is formatted
  // once per second per thread.
  thread_local std::time_t second = -1;
  thread_local std::string start;
  const std::time_t now = std::time(nullptr);
  if (now != second) {
    start = fixed;
    start += http_date_now();
    second = now;
  }
  out += start;
}

response_head& response_head::field(std::string_view name, std::string_view value) {
  out_ += name;
  out_ += ": ";
  out_ += value;
  out_ += "\r\n";
  return *this;
}

response_head& response_head::raw(std::string_view fields) {
  out_ += fields;
  return *this;
}

void append_file_fields(std::string& out, std::string_view mime, std::uint64_t length,
                        std::string_view last_modified, std::string_view etag) {
  out += "Content-Type: ";
  out += mime;
  out += "\r\nContent-Length: ";
  append_number(out, length);
  out += "\r\nLast-Modified: ";
  out += last_modified;
  out += "\r\nETag: ";
  out += etag;
  out += "\r\nAccept-Ranges: bytes\r\n";
}

response_head& response_head::content_length(std::uint64_t length) {
  out_ += "Content-Length: ";
  append_number(out_, length);
  out_ += "\r\n";
  return *this;
}

void response_head::finish(bool keep_alive, bool http10_client) {
  if (!keep_alive)
    out_ += "Connection: close\r\n";
  else if (http10_client)
    out_ += "Connection: keep-alive\r\n";
  out_ += "\r\n";
}

void append_html_escaped(std::string& out, std::string_view text) {
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out += c;
    }
  }
}

void append_url_quoted(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.' || c == '-' || c == '~' || c == '/';
    if (safe) {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
}

std::string error_body(int status, std::string_view message) {
  std::string body =
      "<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<title>Error response</title>\n</head>\n<body>\n<h1>Error response</h1>\n<p>Error code: ";
  append_number(body, static_cast<std::uint64_t>(status));
  body += "</p>\n<p>Message: ";
  append_html_escaped(body, message);
  body += ".</p>\n<p>Error code explanation: ";
  append_number(body, static_cast<std::uint64_t>(status));
  body += " - ";
  body += explanation(status).empty() ? reason_phrase(status) : explanation(status);
  body += ".</p>\n</body>\n</html>\n";
  return body;
}

std::string access_log_line(std::string_view client, std::time_t when,
                            std::string_view request_line, int status) {
  std::string line;
  line.reserve(64 + request_line.size());
  append_access_log_line(line, client, when, request_line, status);
  return line;
}

void append_access_log_line(std::string& line, std::string_view client, std::time_t when,
                            std::string_view request_line, int status, bool plain) {
  // Every request writes one of these: a few appends into reserved room, the
  // constant middle formatted once per second.
  const std::string_view stamp = access_log_stamp(when);
  line.reserve(line.size() + client.size() + stamp.size() + request_line.size() + 16);
  line.append(client);
  line.append(stamp);
  if (plain) {
    line.append(request_line);
  } else {
    append_log_escaped(line, request_line);
  }
  if (status >= 100 && status <= 999) {
    const char tail[8] = {'"',
                          ' ',
                          static_cast<char>('0' + status / 100),
                          static_cast<char>('0' + status / 10 % 10),
                          static_cast<char>('0' + status % 10),
                          ' ',
                          '-',
                          '\n'};
    line.append(tail, sizeof tail);
  } else {
    line += "\" ";
    append_number(line, static_cast<std::uint64_t>(status < 0 ? 0 : status));
    line += " -\n";
  }
}

std::string error_log_line(std::string_view client, std::time_t when, int status,
                           std::string_view message) {
  std::string line;
  line += client;
  line += " - - [";
  line += log_date_time(when);
  line += "] code ";
  append_number(line, static_cast<std::uint64_t>(status));
  line += ", message ";
  append_log_escaped(line, message);
  line += '\n';
  return line;
}

}  // namespace pysock::http
