// SPDX-License-Identifier: MIT
//
// tools/http/file_resolver.hpp — from a request path to an open file under
// the served directory, and never to one outside it.
//
// Python's SimpleHTTPRequestHandler.translate_path() decodes the path,
// normalises it and drops ".." segments, then follows any symlink. Here:
// - the path is percent-decoded once; a NUL byte is "not found";
// - "." and empty segments are dropped, ".." removes the previous segment,
//   and a ".." that would climb above the root is "not found" (the same
//   answer as a file that is not there, so probing reveals nothing);
// - the file is opened relative to the root's descriptor with openat2(2)
//   RESOLVE_BENEATH, so the kernel refuses any symlink or ".." that leaves the
//   root, atomically (no check-then-open race). Where openat2 is missing
//   (Linux < 5.6, some seccomp filters) or refuses an absolute symlink, the
//   canonical path (realpath) must lie under the canonical root and is then
//   opened with O_NOFOLLOW;
// - only regular files and directories are served: a FIFO, socket or device
//   under the root is "forbidden" (opening is non-blocking, so a FIFO cannot
//   hang a worker).
#pragma once

#include <sys/stat.h>

#include <string>
#include <string_view>

#include <pysock/socket.hpp>  // pysock::file_descriptor

namespace pysock::http {

/// %XX → byte; an invalid escape ("%zz", a lone "%") stays as written, as
/// urllib.parse.unquote() leaves it.
std::string percent_decode(std::string_view text);

/// Normalises a decoded URL path into a path relative to the root ("" for the
/// root itself, "a/b.txt"). False when ".." climbs above the root or the
/// path contains a NUL byte.
bool normalize_path(std::string_view decoded, std::string& relative);

struct resolved_path {
  enum class kind { file, directory, redirect, not_found, forbidden };
  kind what = kind::not_found;
  file_descriptor fd;    ///< the open file or directory (file, directory)
  struct ::stat st {};   ///< its fstat()
  std::string relative;  ///< relative path of what was opened (index.html included)
  std::string location;  ///< redirect: the path with '/' added (and the query)
};

class document_root {
 public:
  /// Opens `directory` (which must exist and be a directory) and remembers
  /// its canonical path. Throws pysock::os_error naming the directory.
  explicit document_root(const std::string& directory);

  /// Resolves a request's raw (still percent-encoded) path. A directory is
  /// answered with its index.html or index.htm when there is one (as a file),
  /// with a redirect when `raw_path` lacks the trailing '/', else as itself;
  /// a file asked for with a trailing '/' is not found (as in Python).
  resolved_path resolve(std::string_view raw_path, std::string_view query) const;

  int fd() const noexcept { return root_.get(); }
  /// The canonical (realpath) directory being served.
  const std::string& path() const noexcept { return canonical_; }

 private:
  // Opens `relative` ("" is the root) beneath the root; -1 and `error` (an
  // errno) on failure.
  file_descriptor open_beneath(const std::string& relative, int& error) const;
  file_descriptor open_checked_by_realpath(const std::string& relative, int& error) const;

  file_descriptor root_;
  std::string canonical_;
};

}  // namespace pysock::http
