// SPDX-License-Identifier: MIT
//
// libFuzzer target for the HTTP request parser (tools/http/request_parser.*)
// and the header-value parsers beside it (Range, HTTP dates, If-None-Match).
//
// Besides "no crash, no sanitizer report", it checks properties:
// - differential: feeding the input in pieces (sizes taken from the input
//   itself) gives exactly the result of feeding it at once: status, head
//   size, error status. This is what makes the parser safe to drive from
//   partial reads;
// - every view of a parsed request lies inside the input buffer, and the
//   head size is within the input and within the configured limits;
// - pipelining: consecutive requests are parsed until one is incomplete.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "http/conditional.hpp"
#include "http/http_date.hpp"
#include "http/request_parser.hpp"

using namespace pysock::http;

namespace {

// A broken property aborts with its line, so the crash report names it.
#define check(condition)                                                              \
  do {                                                                                \
    if (!(condition)) {                                                               \
      std::fprintf(stderr, "property failed at line %d: %s\n", __LINE__, #condition); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (false)

bool inside(std::string_view part, std::string_view whole) {
  if (part.empty()) return true;
  // "/" for an absolute-form target without a path is a static string.
  if (part.data() == std::string_view("/").data() || part == "/") return true;
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

void check_request(const request_parser& p, std::string_view input, const parser_limits& limits) {
  check(p.head_size() > 0 && p.head_size() <= input.size());
  const request& r = p.get();
  const std::string_view head = input.substr(0, p.head_size());
  check(inside(r.request_line, head) && inside(r.method, head) && inside(r.target, head));
  check(inside(r.path, head) && inside(r.query, head));
  check(!r.method.empty() && !r.path.empty());
  check(r.target.size() <= limits.max_target);
  check(r.headers.size() <= limits.max_headers);
  for (const header_field& f : r.headers)
    check(inside(f.name, head) && inside(f.value, head) && !f.name.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  parser_limits limits;
  // Small limits too, so the 414/431 paths are reached with short inputs.
  if (size > 0 && (data[0] & 1) != 0) {
    limits.max_target = 64;
    limits.max_header_section = 128;
    limits.max_headers = 4;
  }

  request_parser whole(limits);
  const parse_status all_at_once = whole.parse(input);
  if (all_at_once == parse_status::complete) check_request(whole, input, limits);
  if (all_at_once == parse_status::failed)
    check(whole.error_status() >= 400 && whole.error_status() < 600);

  // The same bytes in pieces whose sizes come from the input.
  request_parser pieces(limits);
  parse_status status = parse_status::need_more;
  std::size_t fed = 0;
  std::size_t step_seed = 0;
  while (status == parse_status::need_more && fed < size) {
    const std::size_t step = 1 + (data[step_seed % size] % 7);
    ++step_seed;
    fed = fed + step < size ? fed + step : size;
    status = pieces.parse(input.substr(0, fed));
  }
  if (status == parse_status::complete && fed < size) {
    // Completed early: the rest is the next request's, as at once.
    check(all_at_once == parse_status::complete);
  } else {
    check(status == all_at_once);
  }
  if (status == parse_status::complete) check(pieces.head_size() == whole.head_size());
  if (status == parse_status::failed) check(pieces.error_status() == whole.error_status());

  // Pipelining: parse request after request.
  std::string_view rest = input;
  request_parser next(limits);
  for (int i = 0; i < 64 && !rest.empty(); ++i) {
    if (next.parse(rest) != parse_status::complete) break;
    check_request(next, rest, limits);
    rest.remove_prefix(next.head_size());
    next.reset();
  }

  // The header-value parsers take the whole input as a value.
  const range_request r = parse_range(input, size);
  if (r.result == range_request::kind::satisfiable)
    check(r.range.first <= r.range.last && r.range.last < size);
  if (const auto t = parse_http_date(input)) check(parse_http_date(format_http_date(*t)) == *t);
  (void)if_none_match_matches(input, "\"1-2\"");
  (void)list_contains(input, "close");
  return 0;
}
