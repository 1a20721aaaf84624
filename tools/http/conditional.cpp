// SPDX-License-Identifier: MIT
#include "http/conditional.hpp"

#include <charconv>

#include "http/http_date.hpp"

namespace pysock::http {
namespace {

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view strip_weak(std::string_view tag) noexcept {
  if (tag.size() >= 2 && tag[0] == 'W' && tag[1] == '/') tag.remove_prefix(2);
  return tag;
}

// A decimal number of up to 18 digits (fits in 63 bits), nothing else.
bool parse_u64(std::string_view s, std::uint64_t& value) noexcept {
  if (s.empty() || s.size() > 18) return false;
  value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return true;
}

}  // namespace

std::string make_etag(std::uint64_t size, std::int64_t mtime_ns) {
  // "<size hex>-<mtime ns hex>": changes whenever the file is rewritten.
  char digits[16];  // a 64-bit value in hex
  std::string etag(1, '"');
  etag.append(digits, std::to_chars(digits, digits + sizeof digits, size, 16).ptr);
  etag += '-';
  etag.append(
      digits,
      std::to_chars(digits, digits + sizeof digits, static_cast<std::uint64_t>(mtime_ns), 16).ptr);
  etag += '"';
  return etag;
}

std::string make_etag(const struct ::stat& st) {
  const std::int64_t ns =
      static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return make_etag(static_cast<std::uint64_t>(st.st_size), ns);
}

bool if_none_match_matches(std::string_view header, std::string_view etag) noexcept {
  header = trim(header);
  if (header == "*") return true;
  const std::string_view ours = strip_weak(etag);
  while (!header.empty()) {
    const std::size_t comma = header.find(',');
    if (strip_weak(trim(header.substr(0, comma))) == ours) return true;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

bool not_modified_since(std::string_view header, std::time_t mtime) noexcept {
  const std::optional<std::time_t> since = parse_http_date(trim(header));
  return since && mtime <= *since;
}

range_request parse_range(std::string_view header, std::uint64_t size) noexcept {
  header = trim(header);
  if (header.size() < 6 || (header.substr(0, 6) != "bytes=" && header.substr(0, 6) != "BYTES="))
    return {};
  std::string_view spec = trim(header.substr(6));
  if (spec.find(',') != std::string_view::npos) return {};  // several ranges: send it all
  const std::size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return {};
  const std::string_view first_text = trim(spec.substr(0, dash));
  const std::string_view last_text = trim(spec.substr(dash + 1));

  range_request answer;
  if (first_text.empty()) {
    // suffix-range "-N": the last N bytes
    std::uint64_t suffix = 0;
    if (!parse_u64(last_text, suffix)) return {};
    if (suffix == 0 || size == 0) {
      answer.result = range_request::kind::unsatisfiable;
      return answer;
    }
    if (suffix > size) suffix = size;
    answer.result = range_request::kind::satisfiable;
    answer.range = {size - suffix, size - 1};
    return answer;
  }
  std::uint64_t first = 0;
  if (!parse_u64(first_text, first)) return {};
  std::uint64_t last = size == 0 ? 0 : size - 1;
  if (!last_text.empty()) {
    if (!parse_u64(last_text, last)) return {};
    if (last < first) return {};  // invalid syntax: ignored (RFC 9110 §14.1.1)
  }
  if (first >= size) {
    answer.result = range_request::kind::unsatisfiable;
    return answer;
  }
  if (last >= size) last = size - 1;
  answer.result = range_request::kind::satisfiable;
  answer.range = {first, last};
  return answer;
}

bool if_range_allows(std::string_view header, std::string_view etag,
                     std::time_t last_modified) noexcept {
  header = trim(header);
  if (header.empty()) return true;
  if (header.front() == '"' || header.substr(0, 2) == "W/") {
    // Strong comparison: a weak tag never allows a range.
    return header.front() == '"' && header == etag;
  }
  const std::optional<std::time_t> date = parse_http_date(header);
  return date && *date == last_modified;
}

}  // namespace pysock::http
