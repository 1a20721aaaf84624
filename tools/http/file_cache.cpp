// SPDX-License-Identifier: MIT
#include "http/file_cache.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "http/conditional.hpp"
#include "http/http_date.hpp"
#include "http/response.hpp"

namespace pysock::http {
namespace {

// Counted per entry besides its strings: the list node, the index's node
// and the stat.
constexpr std::size_t entry_overhead = 256;

bool equal(const struct ::timespec& a, const struct ::timespec& b) noexcept {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

bool settled(const struct ::stat& st, std::chrono::milliseconds settle) noexcept {
  struct ::timespec now {};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const auto ns = [](const struct ::timespec& t) {
    return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
  };
  // ctime >= mtime (writing a file updates both), so ctime alone decides.
  return ns(now) - ns(st.st_ctim) >=
         std::chrono::duration_cast<std::chrono::nanoseconds>(settle).count();
}

}  // namespace

bool same_file_version(const struct ::stat& a, const struct ::stat& b) noexcept {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
         equal(a.st_mtim, b.st_mtim) && equal(a.st_ctim, b.st_ctim);
}

void file_cache::erase(list::iterator it) {
  bytes_ -= it->cost;
  index_.erase(it->key);
  lru_.erase(it);
}

const file_cache::entry* file_cache::find(int root_fd, const std::string& relative) {
  const auto found = index_.find(relative);
  if (found == index_.end()) {
    ++misses_;
    return nullptr;
  }
  const list::iterator it = found->second;
  if (it->checked_batch != batch_) {
    struct ::stat now {};
    if (::fstatat(root_fd, relative.c_str(), &now, 0) != 0 ||
        !same_file_version(now, it->value.st)) {
      erase(it);  // changed, replaced or gone: resolve it again
      ++misses_;
      return nullptr;
    }
    it->checked_batch = batch_;
  }
  lru_.splice(lru_.begin(), lru_, it);
  ++hits_;
  return &it->value;
}

const file_cache::entry* file_cache::load(const std::string& relative, int fd,
                                          const struct ::stat& st, std::string_view mime) {
  if (!S_ISREG(st.st_mode) || st.st_size < 0 ||
      static_cast<std::uint64_t>(st.st_size) > limits_.max_file_bytes)
    return nullptr;
  const auto size = static_cast<std::size_t>(st.st_size);
  const std::size_t cost = size + 2 * relative.size() + entry_overhead;
  if (cost > limits_.max_bytes || !settled(st, limits_.settle)) return nullptr;

  entry e;
  e.st = st;
  e.etag = make_etag(st);
  e.last_modified = format_http_date(st.st_mtim.tv_sec);
  e.mime = mime;
  e.response = "\r\n";
  append_file_fields(e.response, mime, size, e.last_modified, e.etag);
  const std::size_t fields_size = e.response.size() - 2;
  e.response += "\r\n";
  const std::size_t body_at = e.response.size();
  e.response.resize(body_at + size);
  std::size_t got = 0;
  while (got < size) {
    const ssize_t n =
        ::pread(fd, e.response.data() + body_at + got, size - got, static_cast<off_t>(got));
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return nullptr;  // shrank under us, or an I/O error: not cacheable now
    }
  }
  // Written to while we read: the content may be half old, half new.
  struct ::stat after {};
  if (::fstat(fd, &after) != 0 || !same_file_version(after, st)) return nullptr;

  if (const auto old = index_.find(relative); old != index_.end()) erase(old->second);
  while (bytes_ + cost > limits_.max_bytes && !lru_.empty()) erase(std::prev(lru_.end()));
  lru_.push_front(node{relative, std::move(e), cost, batch_});
  index_.emplace(relative, lru_.begin());
  bytes_ += cost;
  // The views are made where the entry now lives (a moved std::string may
  // have moved its characters).
  entry& placed = lru_.front().value;
  placed.fields = std::string_view(placed.response).substr(2, fields_size);
  placed.body = std::string_view(placed.response).substr(body_at);
  return &placed;
}

}  // namespace pysock::http
