// SPDX-License-Identifier: MIT
// The small-file cache: bounded, and never serving a file that has changed.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "http/file_cache.hpp"
#include "http/file_resolver.hpp"
#include "http/http_date.hpp"
#include "http/session.hpp"

using namespace pysock::http;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

class FileCache : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pysock-http-cache.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    root_ = std::make_unique<document_root>(dir_.string());
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::string& name, const std::string& content) {
    std::ofstream(dir_ / name, std::ios::binary | std::ios::trunc) << content;
  }

  // What the session does on a miss: resolve beneath the root, then load.
  const file_cache::entry* load(file_cache& cache, const std::string& name) {
    resolved_path r = root_->resolve("/" + name, "");
    EXPECT_EQ(r.what, resolved_path::kind::file) << name;
    if (r.what != resolved_path::kind::file) return nullptr;
    return cache.load(r.relative, r.fd.get(), r.st, "text/plain");
  }

  // Racy-timestamp protection off: files written by the test are cached at once.
  static file_cache_limits unsettled(std::size_t max_bytes = 1 << 20) {
    file_cache_limits limits;
    limits.max_bytes = max_bytes;
    limits.settle = 0ms;
    return limits;
  }

  fs::path dir_;
  std::unique_ptr<document_root> root_;
};

}  // namespace

TEST_F(FileCache, LoadThenFindIsAHitWithTheContentAndValidators) {
  write("a.txt", "alpha");
  file_cache cache(unsettled());
  EXPECT_EQ(cache.find(root_->fd(), "a.txt"), nullptr);  // not loaded yet
  const file_cache::entry* loaded = load(cache, "a.txt");
  ASSERT_NE(loaded, nullptr);
  EXPECT_EQ(loaded->body, "alpha");
  EXPECT_EQ(loaded->etag.front(), '"');
  EXPECT_EQ(loaded->last_modified.size(), 29u);  // IMF-fixdate
  EXPECT_EQ(loaded->mime, "text/plain");
  cache.begin_batch();
  const file_cache::entry* found = cache.find(root_->fd(), "a.txt");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->body, "alpha");
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(cache.entries(), 1u);
}

TEST_F(FileCache, AFileThatGrewIsReadAgain) {
  write("a.txt", "alpha");
  file_cache cache(unsettled());
  ASSERT_NE(load(cache, "a.txt"), nullptr);
  write("a.txt", "alpha, longer");
  cache.begin_batch();
  EXPECT_EQ(cache.find(root_->fd(), "a.txt"), nullptr);
  EXPECT_EQ(cache.entries(), 0u);  // the stale entry is gone
  const file_cache::entry* again = load(cache, "a.txt");
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->body, "alpha, longer");
}

TEST_F(FileCache, AFileReplacedByRenameIsReadAgain) {
  write("a.txt", "alpha");
  file_cache cache(unsettled());
  ASSERT_NE(load(cache, "a.txt"), nullptr);
  write("new.txt", "omega");  // same size, another inode
  fs::rename(dir_ / "new.txt", dir_ / "a.txt");
  cache.begin_batch();
  EXPECT_EQ(cache.find(root_->fd(), "a.txt"), nullptr);
  ASSERT_NE(load(cache, "a.txt"), nullptr);
  cache.begin_batch();
  const file_cache::entry* found = cache.find(root_->fd(), "a.txt");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->body, "omega");
}

TEST_F(FileCache, AFileRewrittenInPlaceWithTheSameSizeIsReadAgain) {
  // With the real settle time: the file must be a second old to be cached,
  // and a rewrite then moves its ctime to now, whatever the clock's grain.
  write("a.txt", "alpha");
  std::this_thread::sleep_for(1100ms);
  file_cache cache;  // default limits: settle 1 s
  ASSERT_NE(load(cache, "a.txt"), nullptr);
  {
    const int fd = ::open((dir_ / "a.txt").c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "ALPHA", 5, 0), 5);
    ::close(fd);
  }
  cache.begin_batch();
  EXPECT_EQ(cache.find(root_->fd(), "a.txt"), nullptr);
  // Just written: served from disk (not cached) until it has settled.
  EXPECT_EQ(load(cache, "a.txt"), nullptr);
  EXPECT_EQ(cache.entries(), 0u);
}

TEST_F(FileCache, AFreshlyWrittenFileIsNotCachedUntilItSettles) {
  write("a.txt", "alpha");
  file_cache cache;  // settle 1 s; the file's ctime is now
  EXPECT_EQ(load(cache, "a.txt"), nullptr);
  EXPECT_EQ(cache.entries(), 0u);
}

TEST_F(FileCache, ADeletedFileIsAMiss) {
  write("a.txt", "alpha");
  file_cache cache(unsettled());
  ASSERT_NE(load(cache, "a.txt"), nullptr);
  fs::remove(dir_ / "a.txt");
  cache.begin_batch();
  EXPECT_EQ(cache.find(root_->fd(), "a.txt"), nullptr);
  EXPECT_EQ(cache.entries(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST_F(FileCache, WithinOneBatchTheFileIsStatOnce) {
  write("a.txt", "alpha");
  file_cache cache(unsettled());
  ASSERT_NE(load(cache, "a.txt"), nullptr);
  write("a.txt", "changed!");
  // Same batch as the load (no new input since): the stat is not repeated.
  ASSERT_NE(cache.find(root_->fd(), "a.txt"), nullptr);
  cache.begin_batch();  // a recv: now it is
  EXPECT_EQ(cache.find(root_->fd(), "a.txt"), nullptr);
}

TEST_F(FileCache, TotalBytesStayWithinTheLimitLeastRecentlyUsedLeaveFirst) {
  const std::string content(4096, 'x');
  for (int i = 0; i < 10; ++i) write("f" + std::to_string(i), content);
  // Room for three entries of 4 KiB (plus their names and overhead), not four.
  file_cache cache(unsettled(3 * 4096 + 3 * 300));
  for (int i = 0; i < 10; ++i) {
    ASSERT_NE(load(cache, "f" + std::to_string(i)), nullptr);
    EXPECT_LE(cache.bytes(), cache.limits().max_bytes);
    if (i == 2) {
      cache.begin_batch();
      ASSERT_NE(cache.find(root_->fd(), "f0"), nullptr);  // f0 is now the most recent
    }
    if (i >= 3) {
      EXPECT_EQ(cache.entries(), 3u);
    }
  }
  cache.begin_batch();
  EXPECT_NE(cache.find(root_->fd(), "f9"), nullptr);
  EXPECT_NE(cache.find(root_->fd(), "f8"), nullptr);
  EXPECT_EQ(cache.find(root_->fd(), "f0"), nullptr);  // evicted in the end too
  EXPECT_EQ(cache.find(root_->fd(), "f1"), nullptr);
}

TEST_F(FileCache, RecentlyUsedEntrySurvivesEviction) {
  const std::string content(4096, 'x');
  for (int i = 0; i < 4; ++i) write("f" + std::to_string(i), content);
  file_cache cache(unsettled(3 * 4096 + 3 * 300));
  for (int i = 0; i < 3; ++i) ASSERT_NE(load(cache, "f" + std::to_string(i)), nullptr);
  cache.begin_batch();
  ASSERT_NE(cache.find(root_->fd(), "f0"), nullptr);  // f1 is now the oldest
  ASSERT_NE(load(cache, "f3"), nullptr);
  cache.begin_batch();
  EXPECT_NE(cache.find(root_->fd(), "f0"), nullptr);
  EXPECT_EQ(cache.find(root_->fd(), "f1"), nullptr);
  EXPECT_NE(cache.find(root_->fd(), "f2"), nullptr);
}

TEST_F(FileCache, FilesOverTheEntryLimitAreNotCached) {
  write("big.bin", std::string(20'000, 'b'));
  write("empty.txt", "");
  file_cache_limits limits = unsettled();
  limits.max_file_bytes = 16 * 1024;
  file_cache cache(limits);
  EXPECT_EQ(load(cache, "big.bin"), nullptr);
  EXPECT_EQ(cache.entries(), 0u);
  const file_cache::entry* empty = load(cache, "empty.txt");  // 0 bytes is fine
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->body, "");
}

TEST_F(FileCache, ZeroBytesLimitCachesNothing) {
  write("a.txt", "alpha");
  file_cache cache(unsettled(0));
  EXPECT_EQ(load(cache, "a.txt"), nullptr);
  EXPECT_EQ(cache.bytes(), 0u);
}

// Through the session, as the server uses it: a client on one keep-alive
// connection sees a file's new content after it was rewritten.
TEST_F(FileCache, SessionServesNewContentAfterTheFileChanges) {
  write("page.txt", "version one");
  file_cache cache(unsettled());
  server_context context;
  context.root = root_.get();
  context.cache = &cache;
  session s(context, "c");
  const auto get = [&s]() {
    const std::string req = "GET /page.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    const auto space = s.read_space();
    std::memcpy(space.data(), req.data(), req.size());
    s.on_received(req.size());
    std::string out;
    while (s.has_output()) {
      const session::output o = s.next_output();
      EXPECT_LT(o.file_fd, 0);  // small: inline
      out += o.bytes;
      s.advance(o.bytes.size());
    }
    return out.substr(out.find("\r\n\r\n") + 4);
  };
  EXPECT_EQ(get(), "version one");
  EXPECT_EQ(get(), "version one");
  EXPECT_EQ(cache.hits(), 1u);  // the second came from memory
  write("page.txt", "version two, longer");
  EXPECT_EQ(get(), "version two, longer");
  write("page.txt", "3");
  EXPECT_EQ(get(), "3");
}

TEST_F(FileCache, SessionAnswersRangeAndConditionalRequestsFromTheCache) {
  write("page.txt", "0123456789");
  file_cache cache(unsettled());
  server_context context;
  context.root = root_.get();
  context.cache = &cache;
  session s(context, "c");
  const auto exchange = [&s](const std::string& req) {
    const auto space = s.read_space();
    std::memcpy(space.data(), req.data(), req.size());
    s.on_received(req.size());
    std::string out;
    while (s.has_output()) {
      const session::output o = s.next_output();
      out += o.bytes;
      s.advance(o.bytes.size());
    }
    return out;
  };
  const std::string first = exchange("GET /page.txt HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::size_t at = first.find("ETag: ");
  ASSERT_NE(at, std::string::npos);
  const std::string etag = first.substr(at + 6, first.find("\r\n", at) - at - 6);
  const std::string ranged =
      exchange("GET /page.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=2-4\r\n\r\n");
  EXPECT_EQ(ranged.rfind("HTTP/1.1 206 ", 0), 0u) << ranged;
  EXPECT_NE(ranged.find("Content-Range: bytes 2-4/10\r\n"), std::string::npos);
  EXPECT_EQ(ranged.substr(ranged.find("\r\n\r\n") + 4), "234");
  const std::string cond =
      exchange("GET /page.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + etag + "\r\n\r\n");
  EXPECT_EQ(cond.rfind("HTTP/1.1 304 ", 0), 0u) << cond;
  EXPECT_EQ(cache.hits(), 2u);
}

// The index is an open-addressing table that grows and deletes by shifting
// entries back: many loads, evictions and re-loads must keep every lookup
// right (each cached name finds its own content, each evicted one nothing).
TEST_F(FileCache, IndexStaysRightThroughManyEvictions) {
  constexpr int files = 300;
  for (int i = 0; i < files; ++i) write("f" + std::to_string(i), "content of " + std::to_string(i));
  // Room for about 40 entries at a time.
  file_cache cache(unsettled(40 * (256 + 32)));
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < files; ++i) {
      const std::string name = "f" + std::to_string((i * 7 + round) % files);
      ASSERT_NE(load(cache, name), nullptr) << name;
    }
    ASSERT_GT(cache.entries(), 20u);
    ASSERT_LT(cache.entries(), 60u);
    std::size_t found = 0;
    for (int i = 0; i < files; ++i) {
      const std::string name = "f" + std::to_string(i);
      const file_cache::entry* e = cache.find(root_->fd(), name);
      if (e == nullptr) continue;
      ++found;
      EXPECT_EQ(e->body, "content of " + std::to_string(i)) << name;
    }
    EXPECT_EQ(found, cache.entries());
  }
}

// find_raw() takes a request's path as sent: only a path already in normal
// form, without escapes, is its own key; anything else is left to the
// decode-and-normalise path (and counts no miss).
TEST_F(FileCache, FindRawHitsOnlyPathsInNormalForm) {
  fs::create_directories(dir_ / "d");
  write("a.txt", "alpha");
  write("d/b.txt", "beta");
  write("a%41", "literally a-percent-4-1");
  file_cache cache(unsettled());
  ASSERT_NE(load(cache, "a.txt"), nullptr);
  ASSERT_NE(load(cache, "d/b.txt"), nullptr);
  resolved_path literal = root_->resolve("/a%2541", "");  // the file named "a%41"
  ASSERT_EQ(literal.what, resolved_path::kind::file);
  ASSERT_NE(cache.load(literal.relative, literal.fd.get(), literal.st, "text/plain"), nullptr);
  const int fd = root_->fd();

  const file_cache::entry* a = cache.find_raw(fd, "/a.txt");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->body, "alpha");
  const file_cache::entry* b = cache.find_raw(fd, "/d/b.txt");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->body, "beta");
  const std::uint64_t misses = cache.misses();
  for (const char* other : {"/./a.txt", "//a.txt", "/d/../a.txt", "/d//b.txt", "/a%2etxt",
                            "/a%41",  // decodes to "aA", not the file named "a%41"
                            "a.txt", "/", "/missing.txt"})
    EXPECT_EQ(cache.find_raw(fd, other), nullptr) << other;
  EXPECT_EQ(cache.misses(), misses);
  EXPECT_NE(cache.find(fd, "a%41"), nullptr);  // by its normalised name, as the session looks
}

// A cached answer's Date is rewritten in place: the views into the answer
// (body, fields) stay valid and the Date is the one for `now`.
TEST_F(FileCache, PrebuiltAnswerCarriesTheCurrentDate) {
  write("a.txt", "alpha");
  file_cache cache(unsettled());
  const file_cache::entry* e = load(cache, "a.txt");
  ASSERT_NE(e, nullptr);
  const std::string_view body = e->body;
  const std::string answer(e->ok_response(std::time(nullptr)));
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  const std::size_t at = answer.find("\r\nDate: ");
  ASSERT_NE(at, std::string::npos);
  const std::string date = answer.substr(at + 8, 29);
  EXPECT_TRUE(parse_http_date(date).has_value()) << date;
  EXPECT_EQ(answer.substr(answer.size() - 5), "alpha");
  EXPECT_EQ(e->body.data(), body.data());
  EXPECT_EQ(e->body, "alpha");
}

// find_raw() looks at its last hit before the index: that shortcut must
// follow entries that change, leave or are evicted (ASan would see a stale
// pointer), and must not hand out one file's entry for another's path.
TEST_F(FileCache, FindRawLastHitFollowsChangesAndEvictions) {
  write("a.txt", "alpha");
  write("b.txt", "beta");
  write("c.txt", "gamma");
  const int fd = root_->fd();
  {
    file_cache cache(unsettled());
    ASSERT_NE(load(cache, "a.txt"), nullptr);
    ASSERT_NE(load(cache, "b.txt"), nullptr);
    for (int i = 0; i < 3; ++i) {
      const file_cache::entry* a = cache.find_raw(fd, "/a.txt");
      ASSERT_NE(a, nullptr);
      EXPECT_EQ(a->body, "alpha");
      const file_cache::entry* b = cache.find_raw(fd, "/b.txt");
      ASSERT_NE(b, nullptr);
      EXPECT_EQ(b->body, "beta");
    }
    // Same length as "a.txt", not cached: no hit through the last one.
    EXPECT_EQ(cache.find_raw(fd, "/c.txt"), nullptr);
    ASSERT_NE(cache.find_raw(fd, "/a.txt"), nullptr);
    write("a.txt", "ALPHA, longer");  // the last hit goes stale
    cache.begin_batch();
    EXPECT_EQ(cache.find_raw(fd, "/a.txt"), nullptr);  // dropped
    EXPECT_EQ(cache.find_raw(fd, "/a.txt"), nullptr);  // and not found again
    EXPECT_EQ(cache.entries(), 1u);
    ASSERT_NE(load(cache, "a.txt"), nullptr);
    const file_cache::entry* a = cache.find_raw(fd, "/a.txt");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->body, "ALPHA, longer");
  }
  {
    // Room for one entry: loading another evicts the last hit.
    file_cache cache(unsettled(400));
    ASSERT_NE(load(cache, "b.txt"), nullptr);
    ASSERT_NE(cache.find_raw(fd, "/b.txt"), nullptr);
    ASSERT_NE(load(cache, "c.txt"), nullptr);
    EXPECT_EQ(cache.entries(), 1u);
    EXPECT_EQ(cache.find_raw(fd, "/b.txt"), nullptr);
    const file_cache::entry* c = cache.find_raw(fd, "/c.txt");
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->body, "gamma");
  }
}

// The event loop's way: several sessions receive(), then one begin_batch(),
// then each process()es. Input received before that begin_batch() is
// answered from a stat made after it — a change made before the batch
// began is seen by every session — and one stat serves them all.
TEST_F(FileCache, SessionsReceivingBeforeOneBatchAreAnsweredFromOneFreshStat) {
  write("page.txt", "version one");
  file_cache cache(unsettled());
  server_context context;
  context.root = root_.get();
  context.cache = &cache;
  session s1(context, "c1");
  session s2(context, "c2");
  const std::string req = "GET /page.txt HTTP/1.1\r\nHost: x\r\n\r\n";
  const auto receive = [&req](session& s) {
    const auto space = s.read_space();
    std::memcpy(space.data(), req.data(), req.size());
    s.receive(req.size());
  };
  const auto body = [](session& s) {
    std::string out;
    while (s.has_output()) {
      const session::output o = s.next_output();
      out += o.bytes;
      s.advance(o.bytes.size());
    }
    return out.substr(out.find("\r\n\r\n") + 4);
  };
  // First round: loaded into the cache.
  receive(s1);
  receive(s2);
  cache.begin_batch();
  s1.process();
  s2.process();
  EXPECT_EQ(body(s1), "version one");
  EXPECT_EQ(body(s2), "version one");
  EXPECT_EQ(cache.entries(), 1u);
  // Received, then the file changes, then the batch begins: both answers
  // are the new content.
  receive(s1);
  receive(s2);
  write("page.txt", "version two, longer");
  cache.begin_batch();
  s1.process();
  s2.process();
  EXPECT_EQ(body(s1), "version two, longer");
  EXPECT_EQ(body(s2), "version two, longer");
  // A round without a change: both from memory, on the same entry.
  const std::uint64_t hits = cache.hits();
  receive(s1);
  receive(s2);
  cache.begin_batch();
  s1.process();
  s2.process();
  EXPECT_EQ(body(s1), "version two, longer");
  EXPECT_EQ(body(s2), "version two, longer");
  EXPECT_EQ(cache.hits(), hits + 2);
}

// The inline key comparison reads overlapping words at both ends of a key:
// names of every length from 1 to 24 bytes that differ from a cached one in
// a single byte (first, middle or last) must never be taken for it.
TEST_F(FileCache, KeysDifferingInOneByteAreNeverConfusedAtAnyLength) {
  const int fd = root_->fd();
  file_cache cache(unsettled());
  for (std::size_t length = 1; length <= 24; ++length) {
    std::string name(length, 'k');
    write(name, "body " + std::to_string(length));
    ASSERT_NE(load(cache, name), nullptr) << name;
    for (const std::size_t at : {std::size_t{0}, length / 2, length - 1}) {
      std::string other = name;
      other[at] = 'j';
      EXPECT_EQ(cache.find_raw(fd, "/" + other), nullptr) << other << " taken for " << name;
    }
    const file_cache::entry* hit = cache.find_raw(fd, "/" + name);
    ASSERT_NE(hit, nullptr) << name;
    EXPECT_EQ(hit->body, "body " + std::to_string(length));
  }
}
