// SPDX-License-Identifier: MIT
#include "http/file_cache.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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

void file_cache::entry::update_date(std::time_t now) const {
  const std::string_view date = http_date_now();
  if (date.size() == 29) {
    response.replace(date_at_, date.size(), date);
    date_second_ = now;
  }
}

bool same_file_version(const struct ::stat& a, const struct ::stat& b) noexcept {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
         equal(a.st_mtim, b.st_mtim) && equal(a.st_ctim, b.st_ctim);
}

std::uint64_t file_cache::hash(std::string_view key) noexcept {
  // Keys are short paths: a few overlapping word loads (as wyhash reads short
  // keys) and a multiply-xorshift per word, instead of a step per byte.
  constexpr std::uint64_t k = 0x9e3779b97f4a7c15;
  const auto mix = [](std::uint64_t x) noexcept {
    x *= k;
    return x ^ (x >> 29);
  };
  const char* p = key.data();
  const std::size_t n = key.size();
  std::uint64_t h = mix(n + 1);
  if (n >= 8) {
    std::uint64_t word;
    for (std::size_t i = 0; i + 8 < n; i += 8) {
      std::memcpy(&word, p + i, 8);
      h = mix(h ^ word);
    }
    std::memcpy(&word, p + n - 8, 8);
    h = mix(h ^ word);
  } else if (n >= 4) {
    std::uint32_t first;
    std::uint32_t last;
    std::memcpy(&first, p, 4);
    std::memcpy(&last, p + n - 4, 4);
    h = mix(h ^ ((std::uint64_t{first} << 32) | last));
  } else if (n > 0) {
    const auto byte = [p](std::size_t i) {
      return std::uint64_t{static_cast<unsigned char>(p[i])};
    };
    h = mix(h ^ ((byte(0) << 16) | (byte(n / 2) << 8) | byte(n - 1)));
  }
  return h ^ (h >> 32);
}

file_cache::node* file_cache::lookup(std::string_view key) const noexcept {
  if (used_ == 0) return nullptr;
  const std::uint64_t h = hash(key);
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = static_cast<std::size_t>(h) & mask;; i = (i + 1) & mask) {
    const slot& s = slots_[i];
    if (s.entry == nullptr) return nullptr;
    if (s.hash == h && s.entry->key.size() == key.size() &&
        same_bytes(s.entry->key.data(), key.data(), key.size()))
      return s.entry;
  }
}

void file_cache::index_insert(node* n) {
  if ((used_ + 1) * 2 > slots_.size()) {
    // Grow (or create): twice the slots, everything placed again.
    std::vector<slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 16 : old.size() * 2, slot{});
    used_ = 0;
    for (const slot& s : old)
      if (s.entry != nullptr) index_insert(s.entry);
  }
  const std::uint64_t h = hash(n->key);
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = static_cast<std::size_t>(h) & mask;
  while (slots_[i].entry != nullptr) i = (i + 1) & mask;
  slots_[i] = slot{h, n};
  ++used_;
}

void file_cache::index_erase(const node* n) noexcept {
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = static_cast<std::size_t>(hash(n->key)) & mask;
  while (slots_[i].entry != n) {
    if (slots_[i].entry == nullptr) return;  // not indexed
    i = (i + 1) & mask;
  }
  // Backward-shift deletion: later slots of the probe run move up, so no
  // tombstones and every run stays unbroken.
  for (std::size_t j = (i + 1) & mask; slots_[j].entry != nullptr; j = (j + 1) & mask) {
    const std::size_t home = static_cast<std::size_t>(slots_[j].hash) & mask;
    // Slot j may move to i when its home is not in the cyclic range (i, j].
    const bool home_in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!home_in_range) {
      slots_[i] = slots_[j];
      i = j;
    }
  }
  slots_[i] = slot{};
  --used_;
}

void file_cache::erase(list::iterator it) {
  if (&*it == last_hit_) last_hit_ = nullptr;
  bytes_ -= it->cost;
  index_erase(&*it);
  lru_.erase(it);
}

bool file_cache::restat(node* n, int root_fd, bool count_miss) {
  struct ::stat now {};
  if (::fstatat(root_fd, n->key.c_str(), &now, 0) != 0 || !same_file_version(now, n->value.st)) {
    erase(n->self);  // changed, replaced or gone: resolve it again
    if (count_miss) ++misses_;
    return false;
  }
  n->checked_batch = batch_;
  return true;
}

const file_cache::entry* file_cache::find(int root_fd, std::string_view relative) {
  node* n = lookup(relative);
  if (n == nullptr) {
    ++misses_;
    return nullptr;
  }
  return check(n, root_fd, true);
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
  // The status line, Server and Date as response_head writes them.
  append_ok_head_start(e.response);
  e.date_at_ = e.response.size() - http_date_now().size();
  e.date_second_ = -1;  // rewritten by the first ok_response()
  e.response += "\r\n";
  const std::size_t fields_at = e.response.size();
  append_file_fields(e.response, mime, size, e.last_modified, e.etag);
  const std::size_t fields_size = e.response.size() - fields_at;
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

  if (node* old = lookup(relative)) erase(old->self);
  while (bytes_ + cost > limits_.max_bytes && !lru_.empty()) erase(std::prev(lru_.end()));
  lru_.push_front(
      node{relative, std::move(e), cost, batch_, relative.find('%') != std::string::npos, {}});
  lru_.front().self = lru_.begin();
  index_insert(&lru_.front());
  bytes_ += cost;
  // The views are made where the entry now lives (a moved std::string may
  // have moved its characters).
  entry& placed = lru_.front().value;
  placed.fields = std::string_view(placed.response).substr(fields_at, fields_size);
  placed.body = std::string_view(placed.response).substr(body_at);
  return &placed;
}

}  // namespace pysock::http
