// SPDX-License-Identifier: MIT
//
// tools/http/http_date.hpp — HTTP dates (RFC 9110 §5.6.7) and the access
// log's clock.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace pysock::http {

/// IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT": always 29 characters, in
/// English whatever the locale (strftime would follow LC_TIME).
std::string format_http_date(std::time_t t);

/// Parses the three forms a server must accept: IMF-fixdate, RFC 850
/// ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime ("Sun Nov  6 08:49:37
/// 1994"). std::nullopt for anything else (the header is then ignored, as
/// RFC 9110 §13.1.3 says for an invalid If-Modified-Since).
std::optional<std::time_t> parse_http_date(std::string_view text);

/// The current time as an IMF-fixdate, formatted at most once per second per
/// thread: a Date header for every response costs a time() call, not a
/// gmtime_r + formatting. Thread-local, so worker threads never share it.
std::string_view http_date_now();

/// Python's BaseHTTPRequestHandler.log_date_time_string(): local time as
/// "24/Nov/2026 06:10:00". Formatted once per second per thread; the
/// reference is valid until the thread's next call.
const std::string& log_date_time(std::time_t t);

}  // namespace pysock::http
