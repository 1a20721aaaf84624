// SPDX-License-Identifier: MIT
#include "http/http_date.hpp"

#include <array>
#include <cstdio>

namespace pysock::http {
namespace {

constexpr std::array<const char*, 7> day_names = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<const char*, 12> month_names = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

int month_index(std::string_view name) noexcept {
  for (int i = 0; i < 12; ++i)
    if (name == month_names[static_cast<std::size_t>(i)]) return i;
  return -1;
}

// Reads exactly `count` digits at `pos`; false when they are not there.
bool digits(std::string_view s, std::size_t pos, std::size_t count, int& value) noexcept {
  if (pos + count > s.size()) return false;
  value = 0;
  for (std::size_t i = pos; i < pos + count; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    value = value * 10 + (s[i] - '0');
  }
  return true;
}

// "08:49:37" at `pos`.
bool clock(std::string_view s, std::size_t pos, std::tm& tm) noexcept {
  return pos + 8 <= s.size() && digits(s, pos, 2, tm.tm_hour) && s[pos + 2] == ':' &&
         digits(s, pos + 3, 2, tm.tm_min) && s[pos + 5] == ':' && digits(s, pos + 6, 2, tm.tm_sec);
}

std::optional<std::time_t> to_time(std::tm& tm) {
  if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
    return std::nullopt;
  return ::timegm(&tm);
}

}  // namespace

std::string format_http_date(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                day_names[static_cast<std::size_t>(tm.tm_wday)], tm.tm_mday,
                month_names[static_cast<std::size_t>(tm.tm_mon)], tm.tm_year + 1900, tm.tm_hour,
                tm.tm_min, tm.tm_sec);
  return buffer;
}

std::optional<std::time_t> parse_http_date(std::string_view s) {
  std::tm tm{};
  const std::size_t comma = s.find(',');
  if (comma == 3) {
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    if (s.size() != 29 || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
        s.substr(25) != " GMT")
      return std::nullopt;
    tm.tm_mon = month_index(s.substr(8, 3));
    if (tm.tm_mon < 0 || !digits(s, 5, 2, tm.tm_mday) || !digits(s, 12, 4, tm.tm_year) ||
        !clock(s, 17, tm))
      return std::nullopt;
    tm.tm_year -= 1900;
    return to_time(tm);
  }
  if (comma != std::string_view::npos) {
    // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; a two-digit year more than
    // 50 years ahead is in the past century (RFC 9110 §5.6.7).
    const std::string_view rest = s.substr(comma + 1);
    if (rest.size() != 23 || rest[0] != ' ' || rest[3] != '-' || rest[7] != '-' ||
        rest[10] != ' ' || rest.substr(19) != " GMT")
      return std::nullopt;
    int year = 0;
    tm.tm_mon = month_index(rest.substr(4, 3));
    if (tm.tm_mon < 0 || !digits(rest, 1, 2, tm.tm_mday) || !digits(rest, 8, 2, year) ||
        !clock(rest, 11, tm))
      return std::nullopt;
    std::tm now{};
    const std::time_t t = std::time(nullptr);
    ::gmtime_r(&t, &now);
    const int century = (now.tm_year + 1900) / 100 * 100;
    int full = century + year;
    if (full > now.tm_year + 1900 + 50) full -= 100;
    tm.tm_year = full - 1900;
    return to_time(tm);
  }
  // asctime: "Sun Nov  6 08:49:37 1994" (day padded with a space)
  if (s.size() != 24 || s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[19] != ' ')
    return std::nullopt;
  tm.tm_mon = month_index(s.substr(4, 3));
  const int day_tens = s[8] == ' ' ? 0 : s[8] - '0';
  if (tm.tm_mon < 0 || day_tens < 0 || day_tens > 3 || s[9] < '0' || s[9] > '9' ||
      !clock(s, 11, tm) || !digits(s, 20, 4, tm.tm_year))
    return std::nullopt;
  tm.tm_mday = day_tens * 10 + (s[9] - '0');
  tm.tm_year -= 1900;
  return to_time(tm);
}

std::string_view http_date_now() {
  thread_local std::time_t cached_second = -1;
  thread_local std::string cached;
  const std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    cached = format_http_date(now);
    cached_second = now;
  }
  return cached;
}

const std::string& log_date_time(std::time_t t) {
  // Every access-log line asks, nearly always for the same second as the
  // last: localtime_r + snprintf once per second per thread, not per line.
  thread_local std::time_t cached_second = -1;
  thread_local std::string cached;
  if (t == cached_second) return cached;
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%02d/%s/%04d %02d:%02d:%02d", tm.tm_mday,
                month_names[static_cast<std::size_t>(tm.tm_mon)], tm.tm_year + 1900, tm.tm_hour,
                tm.tm_min, tm.tm_sec);
  cached = buffer;
  cached_second = t;
  return cached;
}

}  // namespace pysock::http
