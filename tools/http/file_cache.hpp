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
// One stat per batch: the transport calls begin_batch() after receiving
// input and before answering it, and an entry stat'ed since then is not
// stat'ed again. So every answer rests on a stat made after its request
// arrived (a client that changes a file and then asks for it sees the
// change), while all the requests received before one begin_batch() share
// a stat: the 16 of a pipelined batch (session::on_received() starts a
// batch at each recv), or, in the event-loop transport, those of every
// connection that received in one loop iteration (loop_server.cpp,
// loop_listener::defer()).
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
#include <cstring>
#include <ctime>
#include <list>
#include <string>
#include <string_view>
#include <vector>

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
    /// A keep-alive HTTP/1.1 200 of the whole file, complete: status line,
    /// Server, Date, the fields, the blank line, the body. The common hit
    /// (a GET of a cached file) is one append of ok_response(), which
    /// rewrites the Date in place (hence mutable: entries are otherwise
    /// read-only, and a cache serves one thread).
    mutable std::string response;
    std::string_view body;  ///< the file's content, inside `response`
    std::string etag;
    std::string last_modified;  ///< IMF-fixdate of st_mtime
    std::string_view mime;      ///< from guess_mime_type(): static storage
    /// append_file_fields() of the whole file (a 200's fields, formatted),
    /// inside `response`.
    std::string_view fields;

    /// `response` with its Date brought up to `now` (an IMF-fixdate is
    /// always 29 characters: rewritten in place once per second, so the
    /// views into `response` stay valid).
    std::string_view ok_response(std::time_t now) const {
      if (now != date_second_) update_date(now);
      return response;
    }

   private:
    friend class file_cache;
    void update_date(std::time_t now) const;
    std::size_t date_at_ = 0;  // where the Date's value is in `response`
    mutable std::time_t date_second_ = -1;
  };

  explicit file_cache(file_cache_limits limits = {}) : limits_(limits) {}
  file_cache(const file_cache&) = delete;
  file_cache& operator=(const file_cache&) = delete;

  /// The entry for `relative` (a normalised path under the root) if there
  /// is one and fstatat(root_fd, relative) still shows the same file (not
  /// asked again within one batch); a stale entry is dropped. The pointer is
  /// valid until the next call.
  const entry* find(int root_fd, std::string_view relative);

  /// find() straight from a request's raw path ("/dir/name", still
  /// percent-encoded), for the usual request whose path is already in normal
  /// form: without a '%', "/" + a cached key can only be what decoding and
  /// normalising would make of it (keys are normalised, so a key equal to
  /// the rest of the path proves it normal). nullptr means "not found this
  /// way" and counts no miss: decode, normalise and find() then.
  /// (Inline: it is the cache's part of nearly every request.)
  const entry* find_raw(int root_fd, std::string_view raw_path) {
    if (used_ == 0 || raw_path.size() < 2 || raw_path.front() != '/') return nullptr;
    const std::string_view key = raw_path.substr(1);
    // Consecutive requests often name the same file (pipelined ones nearly
    // always): the last hit is compared first, without hashing.
    node* n = last_hit_;
    if (n == nullptr || n->key.size() != key.size() ||
        !same_bytes(n->key.data(), key.data(), key.size()))
      n = lookup(key);
    // The rest of the path equals a key without a '%', so it has none
    // either: percent-decoding leaves it as it is. (Checked on the key,
    // once, rather than by scanning every request's path.)
    if (n == nullptr || n->has_percent) return nullptr;
    last_hit_ = n;
    return check(n, root_fd, false);  // may erase it (and forget last_hit_)
  }

  /// New input has arrived (one recv, or several on as many connections):
  /// the next find() of each entry stats the file again. Call it after the
  /// receives and before answering what they brought.
  void begin_batch() noexcept { ++batch_; }

  /// After a miss: `fd` is `relative` opened beneath the root and `st` its
  /// fstat. Reads the whole file and keeps it when it is a regular file
  /// within the limits, has settled, and did not change while being read.
  /// Returns the entry, or nullptr when not cached (serve from `fd` then).
  const entry* load(const std::string& relative, int fd, const struct ::stat& st,
                    std::string_view mime);

  std::size_t bytes() const noexcept { return bytes_; }
  std::size_t entries() const noexcept { return used_; }
  std::uint64_t hits() const noexcept { return hits_; }
  std::uint64_t misses() const noexcept { return misses_; }
  const file_cache_limits& limits() const noexcept { return limits_; }

 private:
  struct node;
  using list = std::list<node>;
  struct node {
    std::string key;
    entry value;
    std::size_t cost = 0;
    std::uint64_t checked_batch = 0;  // batch_ when last stat'ed
    bool has_percent = false;         // key has a '%' (find_raw() never takes it)
    list::iterator self;              // where it is in lru_
  };

  void erase(list::iterator it);
  // The hit path of find() and find_raw(): stat (once per batch), LRU.
  const entry* check(node* n, int root_fd, bool count_miss) {
    // The stat, once per batch, out of line: most hits skip it.
    if (n->checked_batch != batch_ && !restat(n, root_fd, count_miss)) return nullptr;
    if (n->self != lru_.begin()) lru_.splice(lru_.begin(), lru_, n->self);
    ++hits_;
    return &n->value;
  }
  // check()'s stat: false (and the entry erased) when the file changed.
  [[gnu::noinline]] bool restat(node* n, int root_fd, bool count_miss);

  // Key comparison inline: cached paths are short, and a call to memcmp
  // (through the PLT, then its size dispatch) cost more than the
  // comparison. Up to sixteen bytes: two overlapping loads of the widest
  // word that fits.
  // n bytes, sizeof(Word) <= n <= 2 * sizeof(Word): the first and the last
  // word, overlapping in the middle, cover them all.
  template <class Word>
  static bool same_ends(const char* a, const char* b, std::size_t n) noexcept {
    Word a1, a2, b1, b2;
    std::memcpy(&a1, a, sizeof(Word));
    std::memcpy(&a2, a + n - sizeof(Word), sizeof(Word));
    std::memcpy(&b1, b, sizeof(Word));
    std::memcpy(&b2, b + n - sizeof(Word), sizeof(Word));
    return ((a1 ^ b1) | (a2 ^ b2)) == 0;
  }
  static bool same_bytes(const char* a, const char* b, std::size_t n) noexcept {
    if (n > 16) return std::memcmp(a, b, n) == 0;
    if (n >= 8) return same_ends<std::uint64_t>(a, b, n);
    if (n >= 4) return same_ends<std::uint32_t>(a, b, n);
    // 0 to 3 bytes: the first, middle and last cover them all.
    return n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1]);
  }

  // The index from key to list node: open addressing with linear probing
  // over a power-of-two array kept at most half full, each slot holding the
  // key's hash beside the node (most probes end at the hash). A hit is one
  // hash of a short path, one or two slots and one key comparison: what
  // std::unordered_map spent ~120 instructions on per request
  // (bench/http_perf_notes.md). List nodes never move, so slots point to them.
  struct slot {
    std::uint64_t hash = 0;
    node* entry = nullptr;  // null: free
  };
  static std::uint64_t hash(std::string_view key) noexcept;
  node* lookup(std::string_view key) const noexcept;
  void index_insert(node* n);
  void index_erase(const node* n) noexcept;

  file_cache_limits limits_;
  list lru_;                 // most recently used first
  std::vector<slot> slots_;  // empty until the first entry
  std::size_t used_ = 0;
  node* last_hit_ = nullptr;  // find_raw()'s last hit, looked at before the index
  std::size_t bytes_ = 0;
  std::uint64_t batch_ = 1;
  std::uint64_t hits_ = 0;
  std::uint64_t misses_ = 0;
};

/// Same file, same content as far as stat can tell: device, inode, size,
/// mtime and ctime (nanoseconds) all equal.
bool same_file_version(const struct ::stat& a, const struct ::stat& b) noexcept;

}  // namespace pysock::http
