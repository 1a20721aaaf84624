// SPDX-License-Identifier: MIT
//
// Response formatting that has fast paths: the access log's escaping (eight
// bytes at a time) and the small-file cache's prebuilt 200 must write exactly
// what the plain paths write.
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "http/file_cache.hpp"
#include "http/response.hpp"
#include "http/session.hpp"

using namespace pysock::http;
namespace fs = std::filesystem;

namespace {

// Python's _control_char_table, one byte at a time.
std::string reference_escape(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

std::string log_tail(std::string_view request_line) {
  const std::string line = access_log_line("127.0.0.1", 0, request_line, 200);
  const std::size_t open = line.find("] \"");
  const std::size_t close = line.rfind("\" 200 -\n");
  EXPECT_NE(open, std::string::npos);
  EXPECT_NE(close, std::string::npos);
  return line.substr(open + 3, close - open - 3);
}

TEST(AccessLog, EscapesControlBytesAtEveryPosition) {
  EXPECT_EQ(log_tail("GET /a\x1b[31mred HTTP/1.1"), "GET /a\\x1b[31mred HTTP/1.1");
  EXPECT_EQ(log_tail("GET /\x7f\x80\x9f\xa0\xff HTTP/1.1"),
            "GET /\\x7f\\x80\\x9f\xa0\xff HTTP/1.1");
  // Each interesting byte at each offset of lines of several lengths, so it
  // falls in every lane of an eight-byte word and in the tail after them.
  const unsigned char specials[] = {0x00, 0x0a, 0x0d, 0x1f, 0x20, 0x7e, 0x7f,
                                    0x80, 0x9f, 0xa0, 0xfe, 0xff, '"',  '\\'};
  for (std::size_t length : {1u, 7u, 8u, 9u, 16u, 23u, 40u}) {
    for (std::size_t at = 0; at < length; ++at) {
      for (unsigned char special : specials) {
        std::string line(length, 'a');
        line[at] = static_cast<char>(special);
        ASSERT_EQ(log_tail(line), reference_escape(line))
            << "length " << length << ", byte " << int(special) << " at " << at;
      }
    }
  }
}

class CachedResponse : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pysock-http-response.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    std::ofstream(dir_ / "page.html") << "<p>hello, cache</p>\n";
    // The cache below has settle = 0: the file is cached although just written.
    root_ = std::make_unique<document_root>(dir_.string());
    cached_.root = plain_.root = root_.get();
    cached_.cache = &cache_;
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string answer(const server_context& context, std::string_view request) {
    session s(context, "127.0.0.1");
    auto space = s.read_space();
    EXPECT_GE(space.size(), request.size());
    std::memcpy(space.data(), request.data(), request.size());
    s.on_received(request.size());
    std::string all;
    while (s.has_output()) {
      const session::output out = s.next_output();
      EXPECT_LT(out.file_fd, 0);
      all += out.bytes;
      s.advance(out.bytes.size());
    }
    return all;
  }

  // The same request answered by a session without a cache and by one whose
  // cache holds the file (the second cached answer is a hit); the Date line
  // is the only part allowed to differ, when a second ticks in between.
  void expect_same(std::string_view request) {
    (void)answer(cached_, request);  // loads the entry
    const std::uint64_t hits = cache_.hits();
    const std::string hit = answer(cached_, request);
    EXPECT_EQ(cache_.hits(), hits + 1) << request;
    const std::string plain = answer(plain_, request);
    EXPECT_EQ(without_date(hit), without_date(plain)) << request;
    EXPECT_NE(hit.find("\r\nDate: "), std::string::npos);
  }

  static std::string without_date(std::string text) {
    const std::size_t at = text.find("\r\nDate: ");
    if (at != std::string::npos) text.erase(at, text.find("\r\n", at + 2) - at);
    return text;
  }

  fs::path dir_;
  std::unique_ptr<document_root> root_;
  file_cache cache_{file_cache_limits{1 << 20, 16 * 1024, std::chrono::milliseconds(0)}};
  server_context cached_;
  server_context plain_;
};

TEST_F(CachedResponse, PrebuiltAnswerIsByteForByteThePlainOne) {
  expect_same("GET /page.html HTTP/1.1\r\nHost: x\r\n\r\n");
  expect_same("HEAD /page.html HTTP/1.1\r\nHost: x\r\n\r\n");
  expect_same("GET /page.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  expect_same("GET /page.html HTTP/1.0\r\n\r\n");
  expect_same("GET /page.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  expect_same("GET /page.html HTTP/1.1\r\nHost: x\r\nRange: bytes=3-7\r\n\r\n");
  // Conditional fields that do not apply: the whole 200, from the entry.
  expect_same("GET /page.html HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\"\r\n\r\n");
  expect_same("HEAD /page.html HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\"\r\n\r\n");
  expect_same(
      "GET /page.html HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 "
      "GMT\r\n\r\n");
  // A path in another spelling (not its own cache key): the same answer.
  expect_same("GET /./page.html HTTP/1.1\r\nHost: x\r\n\r\n");
  expect_same("GET /page%2Ehtml HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string hit = answer(cached_, "GET /page.html HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(hit.rfind("HTTP/1.1 200 OK\r\nServer: pysock-http/0.1\r\nDate: ", 0), 0u);
  EXPECT_NE(hit.find("\r\nContent-Length: 20\r\n"), std::string::npos);
  EXPECT_EQ(hit.substr(hit.size() - 24), "\r\n\r\n<p>hello, cache</p>\n");
}

// Sent buffers are reused by the next batch of any session on the thread: a
// session with output still pending keeps its own, and every answer stays
// whole whatever the interleaving.
TEST_F(CachedResponse, ReusedOutputBuffersKeepInterleavedAnswersIntact) {
  const std::string request = "GET /page.html HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string one = without_date(answer(cached_, request));
  ASSERT_NE(one.find("<p>hello, cache</p>"), std::string::npos);
  const auto feed = [](session& s, std::string_view bytes) {
    auto space = s.read_space();
    ASSERT_GE(space.size(), bytes.size());
    std::memcpy(space.data(), bytes.data(), bytes.size());
    s.on_received(bytes.size());
  };
  const auto take = [](session& s, std::size_t limit) {
    std::string got;
    while (s.has_output() && got.size() < limit) {
      const session::output out = s.next_output();
      const std::size_t n = std::min(out.bytes.size(), limit - got.size());
      got.append(out.bytes.substr(0, n));
      s.advance(n);
    }
    return got;
  };
  session a(cached_, "127.0.0.1");
  session b(cached_, "127.0.0.2");
  feed(a, request + request);
  std::string from_a = take(a, 10);  // a partial send: a keeps its buffer
  ASSERT_TRUE(a.has_output());
  for (int round = 0; round < 3; ++round) {
    feed(b, request);
    EXPECT_EQ(without_date(take(b, std::string::npos)), one) << round;
    feed(a, request);  // queued behind a's pending output
    from_a += take(a, 7);
  }
  from_a += take(a, std::string::npos);
  std::string expected;
  for (int i = 0; i < 5; ++i) expected += one;
  // Five answers, each with its Date removed.
  std::string cleaned;
  std::size_t at = 0;
  for (int i = 0; i < 5; ++i) {
    const std::size_t next = from_a.find("HTTP/1.1 200", at + 1);
    cleaned += without_date(from_a.substr(at, next == std::string::npos ? next : next - at));
    at = next;
  }
  EXPECT_EQ(at, std::string::npos);
  EXPECT_EQ(cleaned, expected);
}

}  // namespace
