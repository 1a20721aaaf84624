// SPDX-License-Identifier: MIT
#include "http/request_parser.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace pysock::http {
namespace {

// RFC 9110 §5.6.2 tchar: the characters of a method or a header name.
constexpr bool is_tchar(unsigned char c) noexcept {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// A request-target byte: visible, no space. Bytes ≥ 0x80 are let through as
// Python's http.server does (it decodes the line as latin-1); they can only
// name a file that exists under the root.
constexpr bool is_target_char(unsigned char c) noexcept { return c > 0x20 && c != 0x7f; }

// Byte classes for the parser's hot loops (request line, header names and
// values): one table load per byte instead of a chain of comparisons.
enum : unsigned char { class_tchar = 1, class_target = 2, class_version = 4, class_value = 8 };

constexpr std::array<unsigned char, 256> make_byte_classes() noexcept {
  std::array<unsigned char, 256> table{};
  for (unsigned c = 0; c < 256; ++c) {
    const auto b = static_cast<unsigned char>(c);
    unsigned char bits = 0;
    if (is_tchar(b)) bits |= class_tchar;
    if (is_target_char(b)) bits |= class_target;
    if (b >= 0x20 && b < 0x7f) bits |= class_version;
    if ((b >= 0x20 || b == '\t') && b != 0x7f) bits |= class_value;
    table[c] = bits;
  }
  return table;
}

constexpr std::array<unsigned char, 256> byte_classes = make_byte_classes();

// Eight bytes at a time ("SWAR"): true when every byte of the word lies in
// [low, 0x7e]. A byte >= 0x80 sets its high bit in x, 0x7f in x + 1, one
// below `low` in x - low; carries and borrows only spill out of a byte that
// is itself flagged, so "none flagged" is exact.
constexpr std::uint64_t ones = 0x0101010101010101;
constexpr std::uint64_t highs = 0x8080808080808080;

inline bool all_printable(const unsigned char* p, unsigned char low) noexcept {
  std::uint64_t x;
  std::memcpy(&x, p, 8);
  return ((x | (x + ones) | (x - low * ones)) & highs) == 0;
}

// Index of the first '?' or '#' in `s`, or npos: eight bytes per step.
std::size_t find_query_or_fragment(std::string_view s) noexcept {
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t x;
    std::memcpy(&x, s.data() + i, 8);
    const std::uint64_t q = x ^ ('?' * ones);
    const std::uint64_t h = x ^ ('#' * ones);
    // Some byte is zero in q or h (exact as an "any").
    if ((((q - ones) & ~q) | ((h - ones) & ~h)) & highs) break;
  }
  for (; i < s.size(); ++i)
    if (s[i] == '?' || s[i] == '#') return i;
  return std::string_view::npos;
}

// The fast path's scanners: the length of the run of ordinary bytes at `p`
// (at most `n`), sixteen bytes per step with SSE2 (part of every x86-64),
// eight-byte words elsewhere.
//
// printable_run: bytes in [low, 0x7e]; stops at a control byte, DEL or a
// byte >= 0x80 (the general path's rules decide about those).
inline std::size_t printable_run(const unsigned char* p, std::size_t n,
                                 unsigned char low) noexcept {
  std::size_t i = 0;
#if defined(__SSE2__)
  const __m128i below = _mm_set1_epi8(static_cast<char>(low));
  const __m128i del = _mm_set1_epi8(0x7f);
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    // Signed comparison: bytes >= 0x80 are negative, so "below" flags them.
    const int stop =
        _mm_movemask_epi8(_mm_or_si128(_mm_cmplt_epi8(v, below), _mm_cmpeq_epi8(v, del)));
    if (stop != 0) return i + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(stop)));
  }
#else
  while (i + 8 <= n && all_printable(p + i, low)) i += 8;
#endif
  while (i < n && p[i] >= low && p[i] < 0x7f) ++i;
  return i;
}

// path_run: the target's path (printable_run from 0x21) up to a '?' or '#'.
inline std::size_t path_run(const unsigned char* p, std::size_t n) noexcept {
  std::size_t i = 0;
#if defined(__SSE2__)
  const __m128i below = _mm_set1_epi8(0x21);
  const __m128i del = _mm_set1_epi8(0x7f);
  const __m128i question = _mm_set1_epi8('?');
  const __m128i hash = _mm_set1_epi8('#');
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const __m128i odd = _mm_or_si128(_mm_cmplt_epi8(v, below), _mm_cmpeq_epi8(v, del));
    const __m128i ends = _mm_or_si128(_mm_cmpeq_epi8(v, question), _mm_cmpeq_epi8(v, hash));
    const int stop = _mm_movemask_epi8(_mm_or_si128(odd, ends));
    if (stop != 0) return i + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(stop)));
  }
#endif
  while (i < n && p[i] > 0x20 && p[i] < 0x7f && p[i] != '?' && p[i] != '#') ++i;
  return i;
}

constexpr bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

// Python's repr() of the offending text, shortened: error pages and logs must
// not echo 8 KiB of garbage back.
std::string quoted(std::string_view text) {
  constexpr std::size_t shown = 200;
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < shown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c >= 0x7f || c == '\\' || c == '\'') {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > shown) out += "...";
  out += '\'';
  return out;
}

// The line without its end ("\r\n" or "\n").
std::string_view strip_line_end(std::string_view line) noexcept {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

bool parse_decimal(std::string_view digits, std::uint64_t& value) noexcept {
  // 18 digits always fit in 63 bits; a longer length is no real file's.
  if (digits.empty() || digits.size() > 18) return false;
  value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return true;
}

}  // namespace

bool list_contains(std::string_view list, std::string_view token) noexcept {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

const header_field* request::find(std::string_view name) const noexcept {
  for (const header_field& field : headers)
    if (iequals(field.name, name)) return &field;
  return nullptr;
}

std::string_view request::header(std::string_view name) const noexcept {
  const header_field* field = find(name);
  return field ? field->value : std::string_view{};
}

request_parser::request_parser(parser_limits limits) : limits_(limits) {
  request_.headers.reserve(32);
}

void request_parser::clear_error() noexcept {
  error_status_ = 0;
  error_message_.clear();
  error_line_ = {};
}

void request_parser::clear_request() noexcept {
  // Field by field: the header vector keeps its memory.
  request_.request_line = request_.method = request_.target = {};
  request_.path = request_.query = {};
  request_.version_minor = 1;
  request_.headers.clear();
  request_.content_length = 0;
  request_.keep_alive = true;
  request_.plain_request_line = false;
  request_.maybe_conditional = true;
}

parse_status request_parser::fail(int status, std::string message, std::string_view line) {
  error_status_ = status;
  error_message_ = std::move(message);
  error_line_ = line;
  return parse_status::failed;
}

// The fast path: a whole, ordinary head in one pass (what nearly every
// request is, and every pipelined one). It only ever accepts: on anything
// unusual (a partial head, an absolute-form target, a byte >= 0x80, a
// limit, an error of any kind) it leaves no trace and the general path
// below parses the same bytes from the start and names the error. So it must
// accept exactly what the general path accepts, with the same result
// (test_parser checks this by feeding byte by byte, which never takes it).
bool request_parser::parse_whole_head(std::string_view input) {
  const char* const data = input.data();
  const auto* b = reinterpret_cast<const unsigned char*>(data);
  const std::size_t n = input.size();
  // Method: tokens up to max_method bytes, then one space.
  std::size_t i = 0;
  if (n >= 4 && limits_.max_method >= 3 && std::memcmp(b, "GET ", 4) == 0) {
    i = 3;
  } else {
    const std::size_t method_stop = std::min(n, limits_.max_method);
    while (i < method_stop && (byte_classes[b[i]] & class_tchar) != 0) ++i;
    if (i == 0 || i >= n || b[i] != ' ') return false;
  }
  const std::size_t method_end = i++;
  // Target: origin-form, printable ASCII, at most max_target bytes; where
  // its path ends is found on the way.
  if (i >= n || b[i] != '/') return false;
  const std::size_t target_stop = std::min(n, method_end + 1 + limits_.max_target);
  i += path_run(b + i, target_stop - i);
  const std::size_t path_end = i;
  if (i < target_stop && (b[i] == '?' || b[i] == '#'))
    i += printable_run(b + i, target_stop - i, 0x21);
  if (i >= n || b[i] != ' ') return false;
  const std::size_t target_end = i++;
  // Version: "HTTP/1.<digit>", then the line end.
  if (n - i < 9 || std::memcmp(b + i, "HTTP/1.", 7) != 0 || b[i + 7] < '0' || b[i + 7] > '9')
    return false;
  const int minor = b[i + 7] - '0';
  i += 8;
  const std::size_t line_size = i;
  if (b[i] == '\r') {
    if (i + 1 >= n || b[i + 1] != '\n') return false;
    ++i;
  } else if (b[i] != '\n') {
    return false;
  }
  const std::size_t fields_start = ++i;

  // The request line's parts go into request_ now, so that the loop below
  // keeps fewer values in registers; should a later check fail, parse()
  // clears request_ before the general path.
  request_.request_line = std::string_view(data, line_size);
  request_.method = std::string_view(data, method_end);
  request_.target = std::string_view(data + method_end + 1, target_end - method_end - 1);
  request_.path = std::string_view(data + method_end + 1, path_end - method_end - 1);
  request_.query = {};
  if (path_end < target_end && b[path_end] == '?') {
    const std::string_view query(data + path_end + 1, target_end - path_end - 1);
    request_.query = query.substr(0, query.find('#'));
  }
  request_.version_minor = minor;

  // Fields, line by line, until the blank line.
  int host_count = 0;
  bool have_length = false;
  bool conditional = false;
  std::uint64_t length = 0;
  std::string_view connection;
  std::vector<header_field>& headers = request_.headers;
  headers.clear();        // reset() leaves the last request's (see clear_request())
  std::size_t count = 0;  // fields so far: headers.size() without the division
  const std::size_t max_headers = limits_.max_headers;
  const auto give_up = [&headers] {
    headers.clear();
    return false;
  };
  std::size_t end;
  for (;;) {
    if (i >= n) return give_up();
    if (b[i] == '\r') {
      if (i + 1 >= n || b[i + 1] != '\n') return give_up();
      end = i + 2;
      break;
    }
    if (b[i] == '\n') {
      end = i + 1;
      break;
    }
    const std::size_t name_start = i;
    // "Host:" (every HTTP/1.1 request has one) in one comparison: the four
    // letters case-insensitively (| 0x20 turns only 'H' and 'h' into 'h',
    // and so on), then the colon.
    bool host = false;
    std::uint32_t word = 0;
    if (n - i >= 5) std::memcpy(&word, b + i, 4);
    if (n - i >= 5 && (word | 0x20202020u) == 0x74736f68u /* "host" */ && b[i + 4] == ':') {
      host = true;
      i += 4;
    } else {
      while (i < n && (byte_classes[b[i]] & class_tchar) != 0) ++i;
      if (i >= n || b[i] != ':' || i == name_start) return give_up();
    }
    const std::string_view name(data + name_start, i - name_start);
    ++i;
    // Usually exactly one space: taken without the loop's two tests.
    if (i < n && b[i] == ' ') ++i;
    while (i < n && (b[i] == ' ' || b[i] == '\t')) ++i;
    const std::size_t value_start = i;
    for (;;) {
      i += printable_run(b + i, n - i, 0x20);
      if (i < n && (byte_classes[b[i]] & class_value) != 0) {
        ++i;  // a tab or a byte >= 0x80: allowed, carry on
        continue;
      }
      break;
    }
    if (i >= n) return give_up();
    std::size_t value_end = i;
    if (b[i] == '\r') {
      if (i + 1 >= n || b[i + 1] != '\n') return give_up();
      ++i;
    } else if (b[i] != '\n') {
      return give_up();
    }
    ++i;
    while (value_end > value_start && is_ows(data[value_end - 1])) --value_end;
    const std::string_view value(data + value_start, value_end - value_start);
    if (count == max_headers) return give_up();
    ++count;
    headers.push_back({name, value});
    // The other names the parser acts on, told apart by length first.
    if (host) {
      if (++host_count > 1) return give_up();
      continue;
    }
    switch (name.size()) {
      case 4:
        if (iequals(name, "Host") && ++host_count > 1) return give_up();
        break;
      case 5:
        conditional = conditional || iequals(name, "Range");
        break;
      case 8:
        conditional = conditional || iequals(name, "If-Range");
        break;
      case 13:
        conditional = conditional || iequals(name, "If-None-Match");
        break;
      case 10:
        if (iequals(name, "Connection")) connection = value;
        break;
      case 14:
        if (iequals(name, "Content-Length")) {
          std::uint64_t v = 0;
          if (!parse_decimal(value, v) || (have_length && v != length)) return give_up();
          have_length = true;
          length = v;
        }
        break;
      case 17:
        if (iequals(name, "Transfer-Encoding")) return give_up();
        conditional = conditional || iequals(name, "If-Modified-Since");
        break;
      default:
        break;
    }
  }
  if (end - fields_start > limits_.max_header_section) return give_up();
  if (minor >= 1 && host_count != 1) return give_up();

  request_.content_length = length;
  if (connection.empty())
    request_.keep_alive = minor >= 1;
  else
    request_.keep_alive =
        minor >= 1 ? !list_contains(connection, "close")
                   : list_contains(connection, "keep-alive") && !list_contains(connection, "close");
  request_.plain_request_line = true;
  request_.maybe_conditional = conditional;
  head_size_ = end;
  return true;
}

parse_status request_parser::parse_general(std::string_view input) {
  if (error_status_ != 0) return parse_status::failed;
  if (head_size_ != 0) return parse_status::complete;
  // The fast path has just given up on a first look at this head: the
  // general path fills in only what it finds, and the fast path may have
  // written some fields before it gave up (or reset() left the last
  // request's).
  if (scanned_ == 0 && line_checked_ == 0 && skipped_ == 0) clear_request();

  // Empty lines before a request are skipped (RFC 9112 §2.2: a client may
  // send a CRLF after a POST body), but only so many.
  while (skipped_ < input.size()) {
    const char c = input[skipped_];
    if (c == '\n') {
      ++skipped_;
    } else if (c == '\r') {
      if (skipped_ + 1 == input.size()) return parse_status::need_more;
      if (input[skipped_ + 1] != '\n') return fail(400, "Bad request syntax (bare CR)", {});
      skipped_ += 2;
    } else {
      break;
    }
    if (skipped_ > limits_.max_header_section)
      return fail(400, "Bad request syntax (too many empty lines)", {});
  }
  const std::string_view view = input.substr(skipped_);
  if (view.empty()) return parse_status::need_more;

  if (const parse_status s = check_partial_line(view); s == parse_status::failed) return s;

  // Look for the blank line that ends the head, from where the last call
  // stopped (a '\n' at the very end is looked at again with what follows).
  // The request line has no blank line in it: start at its end.
  std::size_t pos = scanned_;
  if (line_checked_ == line_complete && pos < line_end_) pos = line_end_;
  std::size_t end = 0;
  while (pos < view.size()) {
    const void* hit = std::memchr(view.data() + pos, '\n', view.size() - pos);
    if (hit == nullptr) {
      pos = view.size();
      break;
    }
    const auto nl = static_cast<std::size_t>(static_cast<const char*>(hit) - view.data());
    if (nl + 1 >= view.size()) {
      pos = nl;
      break;
    }
    if (view[nl + 1] == '\n') {
      end = nl + 2;
      break;
    }
    if (view[nl + 1] == '\r') {
      if (nl + 2 >= view.size()) {
        pos = nl;
        break;
      }
      if (view[nl + 2] == '\n') {
        end = nl + 3;
        break;
      }
    }
    pos = nl + 1;
  }

  const std::size_t line_end = line_checked_ == line_complete ? line_end_ : std::string_view::npos;
  if (end == 0) {
    scanned_ = pos;
    if (line_end != std::string_view::npos &&
        view.size() - (line_end + 1) > limits_.max_header_section)
      return fail(431, "Request header fields too large", strip_line_end(view.substr(0, line_end)));
    return parse_status::need_more;
  }
  if (end - (line_end + 1) > limits_.max_header_section)
    return fail(431, "Request header fields too large", strip_line_end(view.substr(0, line_end)));
  if (const parse_status s = parse_head(view.substr(0, end)); s != parse_status::complete) return s;
  head_size_ = skipped_ + end;
  return parse_status::complete;
}

// Validates the request line as it arrives, so that garbage and an endless
// target are refused at the first wrong byte instead of after a timeout.
parse_status request_parser::check_partial_line(std::string_view view) {
  if (line_checked_ == line_complete) return parse_status::need_more;
  std::size_t method_end = std::string_view::npos;
  std::size_t target_end = std::string_view::npos;
  // Re-derive the method and target ends from the checked prefix: cheap (the
  // search stops at the first spaces) and keeps the parser's state small.
  const std::string_view checked = view.substr(0, line_checked_);
  method_end = checked.find(' ');
  if (method_end != std::string_view::npos) target_end = checked.find(' ', method_end + 1);

  std::size_t i = line_checked_;
  const std::size_t n = view.size();
  const auto* bytes = reinterpret_cast<const unsigned char*>(view.data());
  for (; i < n; ++i) {
    // Skip the run of ordinary bytes of the current word at once; the byte
    // that stops the run (a space, a line end, a bad byte, a limit) goes
    // through the checks below, which are the rules.
    if (method_end == std::string_view::npos) {
      const std::size_t stop = std::min(n, limits_.max_method);
      while (i < stop && (byte_classes[bytes[i]] & class_tchar) != 0) ++i;
    } else if (target_end == std::string_view::npos) {
      const std::size_t stop = std::min(n, method_end + limits_.max_target + 1);
      while (i + 8 <= stop && all_printable(bytes + i, 0x21)) i += 8;
      while (i < stop && (byte_classes[bytes[i]] & class_target) != 0) ++i;
    } else {
      const std::size_t stop = std::min(n, target_end + 17);
      while (i + 8 <= stop && all_printable(bytes + i, 0x20)) i += 8;
      while (i < stop && (byte_classes[bytes[i]] & class_version) != 0) ++i;
    }
    if (i == n) break;
    const auto c = bytes[i];
    if (c == '\r' && i + 1 == view.size()) break;  // a line end, or not: the next byte says
    if (c == '\n' || (c == '\r' && view[i + 1] == '\n')) {
      line_checked_ = line_complete;  // parse_request_line() takes over
      line_end_ = c == '\n' ? i : i + 1;
      method_end_ = method_end;
      target_end_ = target_end;
      return parse_status::need_more;
    }
    if (method_end == std::string_view::npos) {
      if (c == ' ') {
        if (i == 0) return fail(400, "Bad request syntax (" + quoted(view.substr(0, 32)) + ")", {});
        method_end = i;
      } else if (!is_tchar(c) || i >= limits_.max_method) {
        return fail(
            400,
            "Bad request syntax (" + quoted(view.substr(0, std::min<std::size_t>(i + 1, 64))) + ")",
            {});
      }
    } else if (target_end == std::string_view::npos) {
      if (c == ' ') {
        if (i == method_end + 1)
          return fail(400, "Bad request syntax (" + quoted(view.substr(0, i)) + ")", {});
        target_end = i;
      } else if (!is_target_char(c)) {
        return fail(400, "Bad request syntax (" + quoted(view.substr(0, i + 1)) + ")", {});
      } else if (i - method_end > limits_.max_target) {
        return fail(414, "Request-URI Too Long", view.substr(0, method_end));
      }
    } else if (c < 0x20 || c >= 0x7f || i - target_end > 16) {
      // "HTTP/1.1" is eight bytes: anything longer or binary is not a version.
      return fail(
          400, "Bad request version (" + quoted(view.substr(target_end + 1, i - target_end)) + ")",
          view.substr(0, i));
    }
  }
  line_checked_ = i;
  return parse_status::need_more;
}

parse_status request_parser::parse_head(std::string_view head) {
  const std::size_t line_end = line_end_;
  const std::string_view line = strip_line_end(head.substr(0, line_end + 1));
  request_.request_line = line;
  if (const parse_status s = parse_request_line(line); s != parse_status::complete) return s;
  return parse_fields(head.substr(line_end + 1));
}

parse_status request_parser::parse_request_line(std::string_view line) {
  const auto bad_syntax = [&] {
    return fail(400, "Bad request syntax (" + quoted(line) + ")", line);
  };
  // check_partial_line() has seen every byte of the line: no CR in it, and
  // where its first two spaces are.
  const std::size_t sp1 = method_end_;
  if (sp1 == std::string_view::npos) return bad_syntax();
  const std::size_t sp2 = target_end_;
  if (sp2 == std::string_view::npos) return bad_syntax();
  request_.method = line.substr(0, sp1);
  request_.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  const bool good_version = version.size() == 8 && version.substr(0, 5) == "HTTP/" &&
                            version[6] == '.' && version[5] >= '0' && version[5] <= '9' &&
                            version[7] >= '0' && version[7] <= '9';
  if (!good_version) {
    // Exactly three words: one space each (RFC 9112 §3), as Python requires.
    // (A well-formed version has no space: looked for only when it is not.)
    if (version.find(' ') != std::string_view::npos) return bad_syntax();
    return fail(400, "Bad request version (" + quoted(version) + ")", line);
  }
  if (request_.method == "PRI" && request_.target == "*" && version == "HTTP/2.0")
    return fail(400, "Bad request: HTTP/2 connection preface (this server speaks HTTP/1.1)", line);
  if (version[5] != '1')
    return fail(505, "Invalid HTTP version (" + std::string(version.substr(5)) + ")", line);
  request_.version_minor = version[7] - '0';

  std::string_view target = request_.target;
  if (target.size() > limits_.max_target) return fail(414, "Request-URI Too Long", line);
  if (target.front() == '/') {
    // origin-form, the usual case
  } else if (target == "*") {
    if (request_.method != "OPTIONS") return bad_syntax();
    request_.path = target;
    return parse_status::complete;
  } else {
    // absolute-form (RFC 9112 §3.2.2: a server must accept it): keep the path.
    const std::size_t scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos) {
      if (request_.method == "CONNECT") {  // authority-form: refused later (501)
        request_.path = target;
        return parse_status::complete;
      }
      return bad_syntax();
    }
    const std::string_view scheme = target.substr(0, scheme_end);
    if (!iequals(scheme, "http") && !iequals(scheme, "https")) return bad_syntax();
    target.remove_prefix(scheme_end + 3);
    const std::size_t slash = target.find_first_of("/?#");
    if (slash == std::string_view::npos || target[slash] != '/') {
      // "http://host" or "http://host?q": the path is "/" (static storage).
      const std::size_t q = slash == std::string_view::npos ? target.size() : slash;
      request_.path = "/";
      if (q < target.size() && target[q] == '?') {
        std::string_view query = target.substr(q + 1);
        request_.query = query.substr(0, query.find('#'));
      }
      return parse_status::complete;
    }
    target.remove_prefix(slash);
  }
  const std::size_t path_end = find_query_or_fragment(target);
  request_.path = target.substr(0, path_end);
  if (path_end != std::string_view::npos && target[path_end] == '?') {
    std::string_view query = target.substr(path_end + 1);
    request_.query = query.substr(0, query.find('#'));
  }
  return parse_status::complete;
}

parse_status request_parser::parse_fields(std::string_view fields) {
  const std::string_view line_for_log = request_.request_line;
  int host_count = 0;
  bool have_length = false;
  bool have_transfer_encoding = false;
  std::string_view connection;
  while (!fields.empty()) {
    const std::size_t nl = fields.find('\n');
    const std::string_view raw = fields.substr(0, nl + 1);
    fields.remove_prefix(raw.size());
    const std::string_view line = strip_line_end(raw);
    if (line.empty()) break;  // the blank line that ends the head
    // The usual line: a token, then the colon. Anything else takes the
    // slower checks below, which name the error.
    std::size_t colon = 0;
    while (colon < line.size() &&
           (byte_classes[static_cast<unsigned char>(line[colon])] & class_tchar) != 0)
      ++colon;
    if (colon == 0 || colon == line.size() || line[colon] != ':') {
      if (is_ows(line.front()))
        return fail(400, "Bad request: obsolete header line folding", line_for_log);
      colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0)
        return fail(400, "Bad request: malformed header line " + quoted(line), line_for_log);
      return fail(400, "Bad request: malformed header name " + quoted(line.substr(0, colon)),
                  line_for_log);
    }
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trim(line.substr(colon + 1));
    for (char ch : value)
      if ((byte_classes[static_cast<unsigned char>(ch)] & class_value) == 0)
        return fail(400, "Bad request: control character in header " + quoted(name), line_for_log);
    if (request_.headers.size() == limits_.max_headers)
      return fail(431, "Too many headers", line_for_log);
    request_.headers.push_back({name, value});

    if (iequals(name, "Host")) {
      ++host_count;
    } else if (iequals(name, "Content-Length")) {
      std::uint64_t length = 0;
      if (!parse_decimal(value, length) || (have_length && length != request_.content_length))
        return fail(400, "Bad request: invalid Content-Length " + quoted(value), line_for_log);
      have_length = true;
      request_.content_length = length;
    } else if (iequals(name, "Transfer-Encoding")) {
      have_transfer_encoding = true;
    } else if (iequals(name, "Connection")) {
      connection = value;  // the last one wins; lists are handled below
    }
  }
  if (have_transfer_encoding && have_length)
    return fail(400, "Bad request: both Content-Length and Transfer-Encoding", line_for_log);
  if (have_transfer_encoding)
    return fail(501, "Transfer-Encoding not supported (request bodies are not accepted)",
                line_for_log);
  if (request_.version_minor >= 1 && host_count != 1)
    return fail(
        400,
        host_count == 0 ? "Bad request: missing Host header" : "Bad request: several Host headers",
        line_for_log);
  if (request_.version_minor >= 1)
    request_.keep_alive = !list_contains(connection, "close");
  else
    request_.keep_alive =
        list_contains(connection, "keep-alive") && !list_contains(connection, "close");
  return parse_status::complete;
}

}  // namespace pysock::http
