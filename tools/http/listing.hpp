// SPDX-License-Identifier: MIT
//
// tools/http/listing.hpp — the directory listing page, as Python's
// SimpleHTTPRequestHandler.list_directory() writes it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pysock::http {

/// The HTML listing of the open directory `dir_fd` (not consumed) for the
/// decoded URL path `display_path` ("/docs/"). Entries are sorted
/// case-insensitively; a directory is shown and linked as "name/", a symlink
/// shown as "name@"; links are percent-encoded (urllib.parse.quote) and names
/// HTML-escaped. std::nullopt when the directory cannot be read (Python
/// answers 404 "No permission to list directory").
std::optional<std::string> directory_listing(int dir_fd, std::string_view display_path);

}  // namespace pysock::http
