// SPDX-License-Identifier: MIT
#include "http/mime.hpp"

#include <array>
#include <utility>

#include "http/request_parser.hpp"

namespace pysock::http {
namespace {

// Linear search: ~50 entries, and only the extension is compared.
constexpr std::array<std::pair<std::string_view, std::string_view>, 50> table = {{
    {"html", "text/html"},
    {"htm", "text/html"},
    {"css", "text/css"},
    {"js", "text/javascript"},
    {"mjs", "text/javascript"},
    {"json", "application/json"},
    {"txt", "text/plain"},
    {"text", "text/plain"},
    {"md", "text/markdown"},
    {"csv", "text/csv"},
    {"xml", "text/xml"},
    {"c", "text/plain"},
    {"h", "text/plain"},
    {"cpp", "text/plain"},
    {"hpp", "text/plain"},
    {"py", "text/x-python"},
    {"sh", "application/x-sh"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"svg", "image/svg+xml"},
    {"ico", "image/vnd.microsoft.icon"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"bmp", "image/bmp"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tgz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"bz2", "application/x-bzip2"},
    {"xz", "application/x-xz"},
    {"zst", "application/zstd"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"wav", "audio/x-wav"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mpeg", "video/mpeg"},
    {"avi", "video/x-msvideo"},
    {"rtf", "application/rtf"},
    {"bin", "application/octet-stream"},
}};

}  // namespace

std::string_view guess_mime_type(std::string_view path) noexcept {
  const std::size_t slash = path.rfind('/');
  const std::string_view name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  const std::size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return "application/octet-stream";
  const std::string_view extension = name.substr(dot + 1);
  for (const auto& [ext, type] : table)
    if (iequals(ext, extension)) return type;
  return "application/octet-stream";
}

}  // namespace pysock::http
