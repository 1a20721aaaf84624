// SPDX-License-Identifier: MIT
// The connection state machine without sockets: bytes in, actions out.
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "http/conditional.hpp"
#include "http/http_date.hpp"
#include "http/session.hpp"

using namespace pysock::http;
namespace fs = std::filesystem;

namespace {

class HttpSession : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pysock-http-session.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    std::ofstream(dir_ / "small.txt") << "hello";
    big_.resize(100'000);
    for (std::size_t i = 0; i < big_.size(); ++i) big_[i] = static_cast<char>('a' + i % 26);
    std::ofstream(dir_ / "big.bin", std::ios::binary) << big_;
    fs::create_directories(dir_ / "sub");
    std::ofstream(dir_ / "sub" / "x&y.txt") << "";
    root_ = std::make_unique<document_root>(dir_.string());
    context_.root = root_.get();
    context_.log = [this](std::string_view line) { log_.emplace_back(line); };
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Feeds bytes the way a transport would (into read_space()).
  static void feed(session& s, std::string_view bytes) {
    while (!bytes.empty()) {
      auto space = s.read_space();
      ASSERT_FALSE(space.empty());
      const std::size_t n = std::min(space.size(), bytes.size());
      std::memcpy(space.data(), bytes.data(), n);
      s.on_received(n);
      bytes.remove_prefix(n);
    }
  }

  // Takes every pending output as a transport would, reading file ranges
  // with pread; counts the writes it took.
  static std::string drain(session& s, int* writes = nullptr) {
    std::string all;
    int count = 0;
    while (s.has_output()) {
      const session::output out = s.next_output();
      ++count;
      if (out.file_fd >= 0) {
        std::string part(out.count, '\0');
        EXPECT_EQ(::pread(out.file_fd, part.data(), part.size(), static_cast<off_t>(out.offset)),
                  static_cast<ssize_t>(part.size()));
        all += part;
        s.advance(out.count);
      } else {
        all += out.bytes;
        s.advance(out.bytes.size());
      }
    }
    if (writes) *writes = count;
    return all;
  }

  static std::string body_of(const std::string& response) {
    const std::size_t end = response.find("\r\n\r\n");
    return end == std::string::npos ? "" : response.substr(end + 4);
  }

  fs::path dir_;
  std::string big_;
  std::unique_ptr<document_root> root_;
  server_context context_;
  std::vector<std::string> log_;
};

}  // namespace

TEST_F(HttpSession, GetSmallFileAnswers200WithValidators) {
  session s(context_, "127.0.0.1");
  feed(s, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string out = drain(s);
  EXPECT_EQ(out.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << out;
  EXPECT_NE(out.find("Content-Type: text/plain\r\n"), std::string::npos);
  EXPECT_NE(out.find("Content-Length: 5\r\n"), std::string::npos);
  EXPECT_NE(out.find("ETag: \""), std::string::npos);
  EXPECT_NE(out.find("Last-Modified: "), std::string::npos);
  EXPECT_NE(out.find("Accept-Ranges: bytes\r\n"), std::string::npos);
  EXPECT_EQ(body_of(out), "hello");
  EXPECT_FALSE(s.done());  // keep-alive
  EXPECT_TRUE(s.idle());
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_NE(log_[0].find("] \"GET /small.txt HTTP/1.1\" 200 -\n"), std::string::npos) << log_[0];
  EXPECT_EQ(log_[0].rfind("127.0.0.1 - - [", 0), 0u);
}

TEST_F(HttpSession, HeadSendsHeadersOnly) {
  session s(context_, "c");
  feed(s, "HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string out = drain(s);
  EXPECT_NE(out.find("Content-Length: 100000\r\n"), std::string::npos);
  EXPECT_EQ(body_of(out), "");
}

TEST_F(HttpSession, LargeFileGoesOutAsAFileRangeAfterItsHead) {
  session s(context_, "c");
  feed(s, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(s.has_output());
  const session::output head = s.next_output();
  EXPECT_LT(head.file_fd, 0);
  EXPECT_TRUE(head.more);  // the file follows: MSG_MORE
  s.advance(head.bytes.size());
  const session::output file = s.next_output();
  EXPECT_GE(file.file_fd, 0);
  EXPECT_EQ(file.offset, 0u);
  EXPECT_EQ(file.count, big_.size());
  s.advance(40'000);  // a partial sendfile
  EXPECT_EQ(s.next_output().offset, 40'000u);
  EXPECT_EQ(s.next_output().count, big_.size() - 40'000);
  EXPECT_EQ(drain(s), big_.substr(40'000));
}

TEST_F(HttpSession, PipelinedRequestsForSmallFilesLeaveInOneWrite) {
  session s(context_, "c");
  std::string batch;
  for (int i = 0; i < 16; ++i) batch += "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n";
  feed(s, batch);
  int writes = 0;
  const std::string out = drain(s, &writes);
  EXPECT_EQ(writes, 1);
  std::size_t count = 0;
  for (std::size_t at = out.find("HTTP/1.1 200 OK"); at != std::string::npos;
       at = out.find("HTTP/1.1 200 OK", at + 1))
    ++count;
  EXPECT_EQ(count, 16u);
  EXPECT_EQ(s.responses(), 16u);
}

TEST_F(HttpSession, PipelinedRequestSplitAcrossReadsIsAnsweredWhenComplete) {
  session s(context_, "c");
  feed(s, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /small.txt HT");
  EXPECT_EQ(s.responses(), 1u);
  EXPECT_FALSE(s.idle());
  drain(s);
  feed(s, "TP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(s.responses(), 2u);
  EXPECT_EQ(body_of(drain(s)), "hello");
}

TEST_F(HttpSession, OutputHighWaterPausesParsing) {
  context_.config.output_high_water = 4096;
  context_.config.inline_file_max = 0;  // every file as a sendfile range (weight 64 KiB)
  session s(context_, "c");
  std::string batch;
  for (int i = 0; i < 10; ++i) batch += "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n";
  feed(s, batch);
  EXPECT_EQ(s.responses(), 1u);  // one queued file is over the mark: parsing waits
  EXPECT_FALSE(s.wants_read());
  drain(s);
  EXPECT_EQ(s.responses(), 10u);  // draining resumed parsing, one at a time
}

TEST_F(HttpSession, ConnectionCloseAndHttp10CloseAfterTheResponse) {
  for (const char* request : {"GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                              "GET /small.txt HTTP/1.0\r\n\r\n"}) {
    session s(context_, "c");
    feed(s, request);
    EXPECT_FALSE(s.done());  // not before the response is out
    const std::string out = drain(s);
    EXPECT_NE(out.find("Connection: close\r\n"), std::string::npos) << request;
    EXPECT_TRUE(s.done()) << request;
  }
}

TEST_F(HttpSession, Http10KeepAliveIsHonoured) {
  session s(context_, "c");
  feed(s, "GET /small.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_NE(drain(s).find("Connection: keep-alive\r\n"), std::string::npos);
  EXPECT_FALSE(s.done());
}

TEST_F(HttpSession, ConditionalRequestsGet304) {
  session s(context_, "c");
  feed(s, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string first = drain(s);
  const std::size_t at = first.find("ETag: ") + 6;
  const std::string etag = first.substr(at, first.find("\r\n", at) - at);
  const std::size_t lm_at = first.find("Last-Modified: ") + 15;
  const std::string last_modified = first.substr(lm_at, first.find("\r\n", lm_at) - lm_at);

  feed(s, "GET /small.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + etag + "\r\n\r\n");
  std::string out = drain(s);
  EXPECT_EQ(out.rfind("HTTP/1.1 304 Not Modified\r\n", 0), 0u) << out;
  EXPECT_EQ(body_of(out), "");
  feed(s, "GET /small.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: " + last_modified + "\r\n\r\n");
  EXPECT_EQ(drain(s).rfind("HTTP/1.1 304", 0), 0u);
  // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
  feed(s, "GET /small.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\"\r\nIf-Modified-Since: " +
              last_modified + "\r\n\r\n");
  EXPECT_EQ(drain(s).rfind("HTTP/1.1 200", 0), 0u);
  feed(s, "GET /small.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: " + format_http_date(0) +
              "\r\n\r\n");
  EXPECT_EQ(drain(s).rfind("HTTP/1.1 200", 0), 0u);
}

TEST_F(HttpSession, RangesGet206Or416) {
  session s(context_, "c");
  feed(s, "GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=99990-\r\n\r\n");
  std::string out = drain(s);
  EXPECT_EQ(out.rfind("HTTP/1.1 206 Partial Content\r\n", 0), 0u) << out;
  EXPECT_NE(out.find("Content-Range: bytes 99990-99999/100000\r\n"), std::string::npos);
  EXPECT_NE(out.find("Content-Length: 10\r\n"), std::string::npos);
  EXPECT_EQ(body_of(out), big_.substr(99990));

  feed(s, "GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-50999\r\n\r\n");
  EXPECT_EQ(body_of(drain(s)), big_.substr(1000, 50000));

  feed(s, "GET /small.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=10-\r\n\r\n");
  out = drain(s);
  EXPECT_EQ(out.rfind("HTTP/1.1 416 Range Not Satisfiable\r\n", 0), 0u) << out;
  EXPECT_NE(out.find("Content-Range: bytes */5\r\n"), std::string::npos);
  EXPECT_FALSE(s.done());

  feed(s, "GET /small.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nIf-Range: \"stale\"\r\n\r\n");
  EXPECT_EQ(drain(s).rfind("HTTP/1.1 200", 0), 0u);  // If-Range mismatch: everything
}

TEST_F(HttpSession, DirectoryRedirectsThenLists) {
  session s(context_, "c");
  feed(s, "GET /sub?q=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string out = drain(s);
  EXPECT_EQ(out.rfind("HTTP/1.1 301 Moved Permanently\r\n", 0), 0u) << out;
  EXPECT_NE(out.find("Location: /sub/?q=1\r\n"), std::string::npos);
  EXPECT_NE(out.find("Content-Length: 0\r\n"), std::string::npos);
  feed(s, "GET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n");
  out = drain(s);
  EXPECT_NE(out.find("Content-Type: text/html; charset=utf-8"), std::string::npos);
  EXPECT_NE(out.find("<title>Directory listing for /sub/</title>"), std::string::npos);
  EXPECT_NE(out.find("<li><a href=\"x%26y.txt\">x&amp;y.txt</a></li>"), std::string::npos) << out;
}

TEST_F(HttpSession, NotFoundKeepsTheConnection) {
  session s(context_, "c");
  feed(s, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string out = drain(s);
  EXPECT_EQ(out.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u);
  EXPECT_NE(out.find("Content-Type: text/html;charset=utf-8"), std::string::npos);
  EXPECT_NE(body_of(out).find("File not found"), std::string::npos);
  EXPECT_FALSE(s.done());
  ASSERT_EQ(log_.size(), 2u);
  EXPECT_NE(log_[0].find("code 404, message File not found"), std::string::npos);
}

TEST_F(HttpSession, UnsupportedMethodIs501AndCloses) {
  session s(context_, "c");
  feed(s,
       "POST /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET /small.txt "
       "HTTP/1.1\r\n");
  const std::string out = drain(s);
  EXPECT_EQ(out.rfind("HTTP/1.1 501 Not Implemented\r\n", 0), 0u);
  EXPECT_NE(out.find("Unsupported method ('POST')"), std::string::npos) << out;
  EXPECT_TRUE(s.done());
  EXPECT_EQ(s.responses(), 1u);  // the request after it is not answered
}

TEST_F(HttpSession, MalformedRequestIs400AndCloses) {
  session s(context_, "c");
  feed(s, "\x16\x03\x01\x00\xa5\x01\x00\x00");  // a TLS ClientHello
  const std::string out = drain(s);
  EXPECT_EQ(out.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << out;
  EXPECT_NE(out.find("Connection: close\r\n"), std::string::npos);
  EXPECT_TRUE(s.done());
}

TEST_F(HttpSession, HeadOfAnErrorHasNoBody) {
  session s(context_, "c");
  feed(s, "HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string out = drain(s);
  EXPECT_NE(out.find("Content-Length: "), std::string::npos);
  EXPECT_EQ(body_of(out), "");
}

TEST_F(HttpSession, RequestBodyIsSkippedSoTheNextRequestParses) {
  session s(context_, "c");
  // A GET may carry a body (meaningless here): its bytes, even when they look
  // like a request and arrive in pieces, are skipped, not parsed.
  feed(s, "GET /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\nGET /nope HTTP/1.1\r\n");
  EXPECT_EQ(s.responses(), 1u);
  feed(s, "Host: x\r\n\r\n012345678");  // the body's last 20 bytes
  EXPECT_EQ(s.responses(), 1u);
  feed(s, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(s.responses(), 2u);
  EXPECT_FALSE(s.done());
  // Exactly two answers, both the file: a skipped byte too few or too many
  // would turn the second into a 400/501 (and close the connection).
  const std::string out = drain(s);
  std::size_t answers = 0;
  for (std::size_t at = 0; (at = out.find("HTTP/1.1 ", at)) != std::string::npos; ++at) {
    EXPECT_EQ(out.compare(at, 16, "HTTP/1.1 200 OK\r"), 0) << out;
    ++answers;
  }
  EXPECT_EQ(answers, 2u) << out;
  EXPECT_EQ(out.find("Connection: close"), std::string::npos) << out;
}

TEST_F(HttpSession, HugeRequestBodyIs413) {
  session s(context_, "c");
  feed(s, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n");
  EXPECT_EQ(drain(s).rfind("HTTP/1.1 413", 0), 0u);
  EXPECT_TRUE(s.done());
}

TEST_F(HttpSession, StalledPartialRequestGets408OnTimeout) {
  context_.config.header_timeout = std::chrono::milliseconds(50);
  session s(context_, "c");
  const auto before = session::clock::now();
  feed(s, "GET /small.txt HTTP/1.1\r\nHos");
  ASSERT_TRUE(s.read_deadline().has_value());
  EXPECT_LE(*s.read_deadline(), before + std::chrono::milliseconds(50) + std::chrono::seconds(1));
  s.on_timeout();
  const std::string out = drain(s);
  EXPECT_EQ(out.rfind("HTTP/1.1 408 Request Timeout\r\n", 0), 0u) << out;
  EXPECT_TRUE(s.done());
}

TEST_F(HttpSession, IdleConnectionClosesSilentlyOnTimeout) {
  session s(context_, "c");
  s.on_timeout();
  EXPECT_FALSE(s.has_output());
  EXPECT_TRUE(s.done());
}

TEST_F(HttpSession, NoReadDeadlineWhileOutputIsPending) {
  session s(context_, "c");
  feed(s, "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_FALSE(s.read_deadline().has_value());
  drain(s);
  EXPECT_TRUE(s.read_deadline().has_value());
}

TEST_F(HttpSession, EofAnswersCompleteRequestsThenCloses) {
  session s(context_, "c");
  feed(s, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /small.txt HT");
  s.on_eof();
  EXPECT_EQ(s.responses(), 1u);
  EXPECT_EQ(body_of(drain(s)), "hello");
  EXPECT_TRUE(s.done());
}

TEST_F(HttpSession, InputBufferHoldsTheLargestAllowedHead) {
  session s(context_, "c");
  EXPECT_GE(s.read_space().size(), context_.config.limits.max_head_bytes());
}

namespace {

// An access log gathered in memory, as the event-loop transport's.
class recording_batch final : public log_batch {
 public:
  int scheduled = 0;

 private:
  void schedule() override { ++scheduled; }
};

// Lines with their "[date]" replaced, so that two runs compare equal even
// when a second ticks in between.
std::string without_dates(std::string_view lines) {
  std::string out;
  while (!lines.empty()) {
    const std::size_t open = lines.find(" - - [");
    const std::size_t close = lines.find("] ", open == std::string_view::npos ? 0 : open);
    if (open == std::string_view::npos || close == std::string_view::npos) {
      out += lines;
      break;
    }
    out += lines.substr(0, open);
    out += " - - [DATE";
    lines.remove_prefix(close);
  }
  return out;
}

}  // namespace

// With a log_batch, access-log lines are written into it in place; what it
// gathers must be exactly what the plain log sink receives line by line:
// the fast line (a request line the parser found plain), an escaped one,
// and an error answer's two lines, in order.
TEST_F(HttpSession, LogBatchGathersTheSameLinesAsTheSink) {
  const std::string requests =
      "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /caf\xc3\xa9\x85.txt HTTP/1.1\r\nHost: x\r\n\r\n"  // 404, C1 byte escaped
      "HEAD /small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /small.txt HTTP/1.0\r\n\r\n";
  session plain(context_, "10.0.0.1");
  feed(plain, requests);
  (void)drain(plain);
  std::string expected;
  for (const std::string& line : log_) expected += line;
  ASSERT_EQ(log_.size(), 5u);  // 200, 404 (error line and request line), 200, 200

  recording_batch batch;
  server_context batched = context_;
  batched.log = [&batch](std::string_view line) { batch.add(line); };
  batched.batch = &batch;
  session s(batched, "10.0.0.1");
  feed(s, requests);
  (void)drain(s);
  EXPECT_EQ(without_dates(batch.pending()), without_dates(expected));
  EXPECT_NE(batch.pending().find("\\x85.txt HTTP/1.1\" 404 -\n"), std::string::npos)
      << batch.pending();
  EXPECT_EQ(batch.scheduled, 1);  // once until the transport writes them out
  batch.clear();
  EXPECT_TRUE(batch.pending().empty());
  session next(batched, "10.0.0.2");  // the HTTP/1.0 request closed `s`
  feed(next, "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n");
  (void)drain(next);
  EXPECT_EQ(batch.scheduled, 2);
  EXPECT_NE(batch.pending().find("] \"GET /small.txt HTTP/1.1\" 200 -\n"), std::string::npos);
}

// A batch much larger than its first allocation keeps every line whole.
TEST_F(HttpSession, LogBatchGrowsWithoutLosingLines) {
  recording_batch batch;
  server_context batched = context_;
  batched.log = [&batch](std::string_view line) { batch.add(line); };
  batched.batch = &batch;
  session s(batched, "c");
  std::string request = "GET /small.txt?" + std::string(1000, 'q') + " HTTP/1.1\r\nHost: x\r\n\r\n";
  const auto count_lines = [](std::string_view text) {
    std::size_t lines = 0;
    for (std::size_t at = 0; (at = text.find("\" 200 -\n", at)) != std::string_view::npos; ++at)
      ++lines;
    return lines;
  };
  for (int i = 0; i < 20; ++i) {
    feed(s, request);
    (void)drain(s);
  }
  EXPECT_EQ(count_lines(batch.pending()), 20u);
  EXPECT_GT(batch.pending().size(), 20'000u);
  for (int i = 0; i < 80; ++i) {
    feed(s, request);
    (void)drain(s);
  }
  EXPECT_EQ(count_lines(batch.pending()), 100u);
  EXPECT_EQ(batch.pending().back(), '\n');
  EXPECT_EQ(batch.scheduled, 1);
}
