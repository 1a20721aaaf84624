// SPDX-License-Identifier: MIT
#include "http/listing.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "http/response.hpp"

namespace pysock::http {
namespace {

struct entry {
  std::string name;
  std::string sort_key;  // ASCII-lowercased name: Python sorts by a.lower()
  bool is_dir = false;
  bool is_link = false;
};

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace

std::optional<std::string> directory_listing(int dir_fd, std::string_view display_path) {
  // fdopendir() takes the descriptor over: give it a duplicate, positioned
  // at the start (a fresh open of "." relative to the directory).
  const int own = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (own < 0) return std::nullopt;
  DIR* dir = ::fdopendir(own);
  if (dir == nullptr) {
    ::close(own);
    return std::nullopt;
  }
  std::vector<entry> entries;
  while (const dirent* d = ::readdir(dir)) {
    const std::string_view name = d->d_name;
    if (name == "." || name == "..") continue;
    entry e;
    e.name = name;
    e.sort_key = ascii_lower(name);
    struct ::stat st {};
    if (::fstatat(dir_fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
      e.is_link = S_ISLNK(st.st_mode);
    // Like os.path.isdir(), this follows a symlink: a link to a directory is
    // linked with a '/'.
    if (::fstatat(dir_fd, d->d_name, &st, 0) == 0) e.is_dir = S_ISDIR(st.st_mode);
    entries.push_back(std::move(e));
  }
  ::closedir(dir);
  std::sort(entries.begin(), entries.end(), [](const entry& a, const entry& b) {
    return a.sort_key != b.sort_key ? a.sort_key < b.sort_key : a.name < b.name;
  });

  std::string html;
  html.reserve(256 + entries.size() * 80);
  std::string title = "Directory listing for ";
  append_html_escaped(title, display_path);
  html += "<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>";
  html += title;
  html += "</title>\n</head>\n<body>\n<h1>";
  html += title;
  html += "</h1>\n<hr>\n<ul>\n";
  for (const entry& e : entries) {
    std::string link = e.name;
    std::string shown = e.name;
    if (e.is_dir) {
      link += '/';
      shown += '/';
    }
    if (e.is_link) shown = e.name + "@";
    html += "<li><a href=\"";
    append_url_quoted(html, link);
    html += "\">";
    append_html_escaped(html, shown);
    html += "</a></li>\n";
  }
  html += "</ul>\n<hr>\n</body>\n</html>\n";
  return html;
}

}  // namespace pysock::http
