// SPDX-License-Identifier: MIT
//
// tools/http/conditional.hpp — validators and conditional requests (RFC 9110
// §8.8, §13, §14): ETag, If-None-Match, If-Modified-Since, Range, If-Range.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace pysock::http {

/// A strong entity tag from the file's size and modification time in
/// nanoseconds, as hex: "\"1a2b-17e3f...\"". It changes when the file is
/// rewritten (even within the same second) without reading the file.
std::string make_etag(std::uint64_t size, std::int64_t mtime_ns);
std::string make_etag(const struct ::stat& st);

/// If-None-Match: true when `header` ("*" or a list of entity tags) matches
/// `etag` with the weak comparison GET and HEAD use (W/ ignored).
bool if_none_match_matches(std::string_view header, std::string_view etag) noexcept;

/// If-Modified-Since: true when the date parses and the file is not newer
/// (whole seconds, as Last-Modified carries). An invalid date gives false.
bool not_modified_since(std::string_view header, std::time_t mtime) noexcept;

/// One byte range, inclusive ends, already within the representation.
struct byte_range {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  std::uint64_t length() const noexcept { return last - first + 1; }
  friend bool operator==(const byte_range&, const byte_range&) = default;
};

/// What a Range header asks of a representation of `size` bytes.
struct range_request {
  enum class kind {
    none,           ///< no usable Range: answer 200 with everything
    satisfiable,    ///< one range: answer 206 with `range`
    unsatisfiable,  ///< answer 416 with Content-Range: bytes */size
  };
  kind result = kind::none;
  byte_range range;
};

/// Parses `header` (the Range value) for a body of `size` bytes. A header
/// that is not "bytes=..." or has a syntax error is ignored (RFC 9110 §14.2);
/// several ranges are answered with the whole body (a server may ignore a
/// Range, and multipart/byteranges is not worth it for a file server).
range_request parse_range(std::string_view header, std::uint64_t size) noexcept;

/// If-Range: true when the Range may be honoured: the value is an entity tag
/// strongly equal to `etag`, or an HTTP date equal to `last_modified`.
bool if_range_allows(std::string_view header, std::string_view etag,
                     std::time_t last_modified) noexcept;

}  // namespace pysock::http
