// SPDX-License-Identifier: MIT
//
// tools/http/file_cache.hpp — small files kept in memory between requests,
// so that answering one costs one fstatat(2) instead of openat2 + fstat +
// pread + close (measured in docs/http-server.md: "The small-file cache").
//
// Bounded twice: by the bytes of all entries together (least recently used
// ones leave first) and by the size of one file (larger files are never
// cached; they go out with sendfile anyway).
//
// Freshness: every hit re-stats the path (fstatat relative to the root's
// descriptor) and compares device, inode, size, mtime and ctime with what
// the entry was loaded from. Rewriting, truncating, replacing (rename over
// it), chmod, linking and unlinking all change one of them (ctime covers the
// metadata), so a changed file is read afresh.
//
// One stat per batch: the transport calls begin_batch() after each recv(),
// and an entry stat'ed since then is not stat'ed again. So the 16 requests
// of a pipelined batch cost one fstatat, and every answer still rests on a
// stat made after its request arrived (a client that changes a file and
// then asks for it sees the change).
//
// Timestamps are coarse (a kernel tick), so a file written twice within one
// tick could keep the same stat while its content changed after it was
// read. As git does for its index ("racy git"), a file is only cached once
// its ctime is `settle` in the past; a fresher one is served from disk
// until it has settled.
//
// Confinement: fstatat follows symlinks without RESOLVE_BENEATH, but a hit
// needs the very inode (with unchanged ctime, so not re-linked) that was
// opened beneath the root when the entry was loaded; anything else is a
// miss and goes through document_root::resolve() again.
//
// Not thread-safe: one cache per event loop (thread).
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace pysock::http {

struct file_cache_limits {
  /// All entries together (bodies, names and a fixed overhead per entry).
  std::size_t max_bytes = 8 * 1024 * 1024;
  /// Larger files are not cached.
  std::size_t max_file_bytes = 16 * 1024;
  /// A file whose ctime is younger than this is not cached yet.
  std::chrono::milliseconds settle{1000};
};

class file_cache {
 public:
  struct entry {
    struct ::stat st {};  ///< the file's stat when loaded; a hit needs the same
    /// Everything a keep-alive HTTP/1.1 200 of the whole file sends after
    /// its Date value: "\r\n", the fields, "\r\n", the body. The common hit
    /// (a pipelined GET) is then the status line, the Date, and one append.
    std::string response;
    std::string_view body;  ///< the file's content, inside `response`
    std::string etag;
    std::string last_modified;  ///< IMF-fixdate of st_mtime
    std::string_view mime;      ///< from guess_mime_type(): static storage
    /// append_file_fields() of the whole file (a 200's fields, formatted),
    /// inside `response`.
    std::string_view fields;
  };

  explicit file_cache(file_cache_limits limits = {}) : limits_(limits) {}
  file_cache(const file_cache&) = delete;
  file_cache& operator=(const file_cache&) = delete;

  /// The entry for `relative` (a normalised path under the root) if there
  /// is one and fstatat(root_fd, relative) still shows the same file (not
  /// asked again within one batch); a stale entry is dropped. The pointer is
  /// valid until the next call.
  const entry* find(int root_fd, const std::string& relative);

  /// New input has arrived (a recv): the next find() of each entry stats
  /// the file again.
  void begin_batch() noexcept { ++batch_; }

  /// After a miss: `fd` is `relative` opened beneath the root and `st` its
  /// fstat. Reads the whole file and keeps it when it is a regular file
  /// within the limits, has settled, and did not change while being read.
  /// Returns the entry, or nullptr when not cached (serve from `fd` then).
  const entry* load(const std::string& relative, int fd, const struct ::stat& st,
                    std::string_view mime);

  std::size_t bytes() const noexcept { return bytes_; }
  std::size_t entries() const noexcept { return index_.size(); }
  std::uint64_t hits() const noexcept { return hits_; }
  std::uint64_t misses() const noexcept { return misses_; }
  const file_cache_limits& limits() const noexcept { return limits_; }

 private:
  struct node {
    std::string key;
    entry value;
    std::size_t cost = 0;
    std::uint64_t checked_batch = 0;  // batch_ when last stat'ed
  };
  using list = std::list<node>;

  void erase(list::iterator it);

  file_cache_limits limits_;
  list lru_;  // most recently used first
  std::unordered_map<std::string, list::iterator> index_;
  std::size_t bytes_ = 0;
  std::uint64_t batch_ = 1;
  std::uint64_t hits_ = 0;
  std::uint64_t misses_ = 0;
};

/// Same file, same content as far as stat can tell: device, inode, size,
/// mtime and ctime (nanoseconds) all equal.
bool same_file_version(const struct ::stat& a, const struct ::stat& b) noexcept;

}  // namespace pysock::http
