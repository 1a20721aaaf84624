// SPDX-License-Identifier: MIT
//
// tools/http/mime.hpp — Content-Type by file extension, as Python's
// mimetypes.guess_type() answers for common files (without reading
// /etc/mime.types, so the answer does not depend on the machine).
#pragma once

#include <string_view>

namespace pysock::http {

/// The type for `path`'s extension (case-insensitive), or
/// "application/octet-stream" when unknown, as SimpleHTTPRequestHandler.
/// Text types carry no charset, like Python's.
std::string_view guess_mime_type(std::string_view path) noexcept;

}  // namespace pysock::http
