// SPDX-License-Identifier: MIT
// The request parser: complete heads, incremental feeding, pipelining, and
// each refusal with its status code.
#include <gtest/gtest.h>

#include <string>

#include "http/request_parser.hpp"

using namespace pysock::http;

namespace {

parse_status parse_all(request_parser& p, std::string_view input) { return p.parse(input); }

// Feeds `input` one byte more at a time, as a trickling client would.
parse_status parse_bytewise(request_parser& p, std::string_view input) {
  parse_status s = parse_status::need_more;
  for (std::size_t i = 1; i <= input.size() && s == parse_status::need_more; ++i)
    s = p.parse(input.substr(0, i));
  return s;
}

}  // namespace

TEST(HttpParser, ParsesASimpleGet) {
  request_parser p;
  const std::string in =
      "GET /index.html?x=1#frag HTTP/1.1\r\nHost: a\r\nUser-Agent:  curl/8 \r\n\r\n";
  ASSERT_EQ(parse_all(p, in), parse_status::complete);
  const request& r = p.get();
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/index.html?x=1#frag");
  EXPECT_EQ(r.path, "/index.html");
  EXPECT_EQ(r.query, "x=1");
  EXPECT_EQ(r.version_minor, 1);
  EXPECT_EQ(r.header("user-agent"), "curl/8");
  EXPECT_EQ(r.request_line, "GET /index.html?x=1#frag HTTP/1.1");
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(p.head_size(), in.size());
}

TEST(HttpParser, ViewsPointIntoTheCallersBuffer) {
  request_parser p;
  const std::string in = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
  ASSERT_EQ(p.parse(in), parse_status::complete);
  EXPECT_EQ(p.get().path.data(), in.data() + 4);
  EXPECT_EQ(p.get().headers[0].value.data(), in.data() + 23);
}

TEST(HttpParser, ByteByByteGivesTheSameResultAsAllAtOnce) {
  const std::string in = "\r\nHEAD /x%20y HTTP/1.0\nConnection: keep-alive\nX: 1\n\n";
  request_parser a, b;
  ASSERT_EQ(parse_all(a, in), parse_status::complete);
  ASSERT_EQ(parse_bytewise(b, in), parse_status::complete);
  EXPECT_EQ(a.head_size(), b.head_size());
  EXPECT_EQ(b.get().method, "HEAD");
  EXPECT_EQ(b.get().path, "/x%20y");
  EXPECT_EQ(b.get().version_minor, 0);
  EXPECT_TRUE(b.get().keep_alive);
  EXPECT_EQ(b.get().headers.size(), 2u);
}

TEST(HttpParser, IncompleteHeadNeedsMore) {
  request_parser p;
  EXPECT_EQ(p.parse("GET / HTTP/1.1\r\nHost: a\r\n"), parse_status::need_more);
  EXPECT_EQ(p.parse("GET / HTTP/1.1\r\nHost: a\r\n\r"), parse_status::need_more);
  EXPECT_EQ(p.parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), parse_status::complete);
}

TEST(HttpParser, PipelinedRequestsParseOneAfterAnother) {
  const std::string in =
      "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\n";
  request_parser p;
  std::string_view rest = in;
  ASSERT_EQ(p.parse(rest), parse_status::complete);
  EXPECT_EQ(p.get().path, "/1");
  rest.remove_prefix(p.head_size());
  p.reset();
  ASSERT_EQ(p.parse(rest), parse_status::complete);
  EXPECT_EQ(p.get().path, "/2");
  rest.remove_prefix(p.head_size());
  p.reset();
  EXPECT_EQ(p.parse(rest), parse_status::need_more);
}

TEST(HttpParser, KeepAliveFollowsVersionAndConnection) {
  struct {
    const char* head;
    bool keep_alive;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n", false},
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
  };
  for (const auto& c : cases) {
    request_parser p;
    ASSERT_EQ(p.parse(c.head), parse_status::complete) << c.head;
    EXPECT_EQ(p.get().keep_alive, c.keep_alive) << c.head;
  }
}

TEST(HttpParser, AbsoluteFormKeepsOnlyThePath) {
  request_parser p;
  ASSERT_EQ(p.parse("GET http://example.org:8000/a/b?q HTTP/1.1\r\nHost: example.org\r\n\r\n"),
            parse_status::complete);
  EXPECT_EQ(p.get().path, "/a/b");
  EXPECT_EQ(p.get().query, "q");
  p.reset();
  ASSERT_EQ(p.parse("GET http://example.org HTTP/1.1\r\nHost: example.org\r\n\r\n"),
            parse_status::complete);
  EXPECT_EQ(p.get().path, "/");
}

TEST(HttpParser, ContentLengthIsParsedAndChecked) {
  request_parser p;
  ASSERT_EQ(p.parse("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n"),
            parse_status::complete);
  EXPECT_EQ(p.get().content_length, 12u);
  for (const char* bad :
       {"Content-Length: -1", "Content-Length: 1x", "Content-Length: 99999999999999999999",
        "Content-Length: 1\r\nContent-Length: 2"}) {
    request_parser q;
    ASSERT_EQ(q.parse("GET / HTTP/1.1\r\nHost: a\r\n" + std::string(bad) + "\r\n\r\n"),
              parse_status::failed)
        << bad;
    EXPECT_EQ(q.error_status(), 400) << bad;
  }
}

struct refusal {
  std::string input;
  int status;
};

class HttpParserRefuses : public ::testing::TestWithParam<refusal> {};

TEST_P(HttpParserRefuses, WithTheRightStatus) {
  request_parser whole, trickle;
  ASSERT_EQ(whole.parse(GetParam().input), parse_status::failed);
  EXPECT_EQ(whole.error_status(), GetParam().status) << whole.error_message();
  EXPECT_FALSE(whole.error_message().empty());
  ASSERT_EQ(parse_bytewise(trickle, GetParam().input), parse_status::failed);
  EXPECT_EQ(trickle.error_status(), GetParam().status);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, HttpParserRefuses,
    ::testing::Values(
        refusal{"GARBAGE\r\n\r\n", 400},                      // one word
        refusal{"GET /\r\n\r\n", 400},                        // HTTP/0.9 form
        refusal{"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},   // double space
        refusal{"GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", 400},  // four words
        refusal{"GET / http/1.1\r\nHost: a\r\n\r\n", 400},    // lowercase version
        refusal{"GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400},
        refusal{"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
        refusal{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},              // HTTP/2 preface
        refusal{std::string("\x16\x03\x01\x02\x00\x01", 6), 400},      // TLS ClientHello
        refusal{"G\x01T / HTTP/1.1\r\n", 400},                         // binary in the method
        refusal{"GET /a\x7f HTTP/1.1\r\n", 400},                       // DEL in the target
        refusal{"GET a HTTP/1.1\r\nHost: a\r\n\r\n", 400},             // not origin-form
        refusal{"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},             // * only for OPTIONS
        refusal{"GET / HTTP/1.1\r\n\r\n", 400},                        // no Host
        refusal{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},  // two Hosts
        refusal{"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400},  // obs-fold
        refusal{"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},            // space before colon
        refusal{"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400},
        refusal{"GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", 400},  // control in value
        refusal{"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
        refusal{
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            400},
        refusal{"GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
        refusal{"GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(9000, 'b') + "\r\n\r\n", 431},
        refusal{std::string(40, 'M') + " / HTTP/1.1\r\n", 400}));  // method too long

TEST(HttpParser, TooLongTargetIsRefusedBeforeTheLineEnds) {
  request_parser p;
  const std::string partial = "GET /" + std::string(8200, 'a');  // no line end yet
  ASSERT_EQ(p.parse(partial), parse_status::failed);
  EXPECT_EQ(p.error_status(), 414);
}

TEST(HttpParser, TooManyHeadersIs431) {
  std::string in = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 120; ++i) in += "X-" + std::to_string(i) + ": v\r\n";
  in += "\r\n";
  request_parser p;
  ASSERT_EQ(p.parse(in), parse_status::failed);
  EXPECT_EQ(p.error_status(), 431);
}

TEST(HttpParser, HeaderSectionOverTheLimitIs431WithoutItsEnd) {
  request_parser p;
  const std::string partial = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(8300, 'c');
  ASSERT_EQ(p.parse(partial), parse_status::failed);
  EXPECT_EQ(p.error_status(), 431);
}

TEST(HttpParser, HeadAtTheLimitsIsAccepted) {
  parser_limits limits;
  const std::string target = "/" + std::string(limits.max_target - 1, 'a');
  std::string fields = "Host: a\r\n";
  fields +=
      "X: " + std::string(limits.max_header_section - fields.size() - 2 - 5, 'b') + "\r\n\r\n";
  ASSERT_EQ(fields.size(), limits.max_header_section);
  const std::string in = "GET " + target + " HTTP/1.1\r\n" + fields;
  ASSERT_LE(in.size(), limits.max_head_bytes());
  request_parser p;
  EXPECT_EQ(p.parse(in), parse_status::complete) << p.error_message();
}

TEST(HttpParser, ErrorMessagesQuoteTheOffendingTextLikePython) {
  request_parser p;
  ASSERT_EQ(p.parse("GARBAGE\r\n\r\n"), parse_status::failed);
  EXPECT_EQ(p.error_message(), "Bad request syntax ('GARBAGE')");
}

TEST(HttpParser, ListContainsIsCaseInsensitiveAndTrims) {
  EXPECT_TRUE(list_contains("keep-alive, Close", "close"));
  EXPECT_FALSE(list_contains("closed", "close"));
  EXPECT_FALSE(list_contains("", "close"));
}

// Found by the fuzzer: a piece ending in the '\r' of the request line's CRLF
// was taken for a control character in the version (400).
TEST(HttpParser, PieceEndingInsideTheRequestLineCrlf) {
  request_parser p;
  EXPECT_EQ(p.parse("GET / HTTP/1.1\r"), parse_status::need_more);
  EXPECT_EQ(p.parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), parse_status::complete)
      << p.error_message();
}

namespace {

// Everything a parsed request carries, for comparing two parses.
std::string describe(const request_parser& p, parse_status status) {
  std::string out = "status " + std::to_string(static_cast<int>(status));
  if (status == parse_status::failed) return out + " error " + std::to_string(p.error_status());
  if (status != parse_status::complete) return out;
  const request& r = p.get();
  out += " size " + std::to_string(p.head_size());
  out += " line[" + std::string(r.request_line) + "] method[" + std::string(r.method) + "]";
  out += " target[" + std::string(r.target) + "] path[" + std::string(r.path) + "]";
  out += " query[" + std::string(r.query) + "] minor " + std::to_string(r.version_minor);
  out += " length " + std::to_string(r.content_length);
  out += r.keep_alive ? " keep-alive" : " close";
  for (const header_field& f : r.headers)
    out += " {" + std::string(f.name) + "|" + std::string(f.value) + "}";
  return out;
}

}  // namespace

// The parser has a one-pass path for a head that arrived whole and a general
// path for one that trickles in; byte-by-byte feeding never takes the first.
// Both must accept the same heads with the same result and refuse the same
// ones with the same status.
TEST(HttpParser, WholeHeadsParseAsTheyDoByteByByte) {
  const std::string heads[] = {
      "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /1k.bin HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n",
      "HEAD /a/b.txt?x=1&y=2#frag HTTP/1.1\r\nhost: h\r\nAccept: */*\r\n\r\n",
      "GET /a#frag?not-a-query HTTP/1.1\r\nHOST:h\r\n\r\n",
      "GET /p?q#f HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET /x HTTP/1.0\r\n\r\n",
      "GET /x HTTP/1.0\nConnection: keep-alive\n\n",
      "GET /x HTTP/1.1\nHost: h\nConnection: Keep-Alive, close\n\n",
      "GET /x HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nConnection: close\r\n\r\n",
      "GET /x HTTP/1.1\r\nHost:   spaced\t \r\nX-Tab: a\tb\r\nX-Empty:\r\nX-Ows: \t\r\n\r\n",
      "GET /x HTTP/1.1\r\nHost: h\r\nX-High: caf\xc3\xa9\r\n\r\n",
      "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET http://example.com/abs?q HTTP/1.1\r\nHost: example.com\r\n\r\n",
      "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
      "\r\nGET /after-crlf HTTP/1.1\r\nHost: h\r\n\r\n",
      "POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello",
      "GET /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
      "GET /x HTTP/1.5\r\nHost: h\r\n\r\n",
      "GET /x HTTP/1.1\r\nHostname: not-host\r\nHost: h\r\n\r\n",
      "GET /x HTTP/1.1\r\nHost: h\r\nRange: bytes=1-2\r\nIf-None-Match: \"x\"\r\n\r\n",
      "M-SEARCH /x HTTP/1.1\r\nHost: h\r\n\r\n",
      std::string(32, 'M') + " /x HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET /" + std::string(8191, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET /" + std::string(8192, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n",
      // refused: each must fail the same way whole and trickled
      "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
      "GET / HTTP/1.1\r\nhost: a\r\nHOST: b\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
      "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n\r\n",
      "GET / HTTP/1.1\rX\r\nHost: a\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
      "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET  /a HTTP/1.1\r\nHost: a\r\n\r\n",
      std::string(33, 'M') + " /x HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET /" + std::string(8193, 'a') + " HTTP/1.1\r\nHost: h\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(8200, 'b') + "\r\n\r\n",
  };
  // Tight limits too, so that each one is reached on both paths.
  parser_limits tight;
  tight.max_method = 2;
  tight.max_target = 8;
  tight.max_header_section = 40;
  tight.max_headers = 2;
  for (const parser_limits& limits : {parser_limits{}, tight}) {
    for (const std::string& in : heads) {
      request_parser whole(limits), trickle(limits);
      const parse_status a = whole.parse(in);
      const parse_status b = parse_bytewise(trickle, in);
      EXPECT_EQ(describe(whole, a), describe(trickle, b))
          << in.substr(0, 120) << " (max_method " << limits.max_method << ")";
    }
  }
  // Header limits: as many fields as allowed, then one more.
  for (const std::size_t count : {std::size_t{99}, std::size_t{100}}) {
    std::string in = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (std::size_t i = 0; i < count; ++i) in += "X: v\r\n";
    in += "\r\n";
    request_parser whole, trickle;
    const parse_status a = whole.parse(in);
    EXPECT_EQ(describe(whole, a), describe(trickle, parse_bytewise(trickle, in))) << count;
    EXPECT_EQ(a, count == 99 ? parse_status::complete : parse_status::failed) << count;
  }
}

// The session skips looking for conditional fields when the parser says
// there are none: it must never say so when one is there, in any case.
TEST(HttpParser, ConditionalFieldsAreNeverMissed) {
  for (const char* field :
       {"Range: bytes=0-1", "range: bytes=0-1", "If-Range: \"e\"", "If-None-Match: \"e\"",
        "if-none-match: *", "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT",
        "IF-MODIFIED-SINCE: x"}) {
    for (const bool trickle : {false, true}) {
      request_parser p;
      const std::string in = "GET / HTTP/1.1\r\nHost: a\r\n" + std::string(field) + "\r\n\r\n";
      ASSERT_EQ(trickle ? parse_bytewise(p, in) : p.parse(in), parse_status::complete) << field;
      EXPECT_TRUE(p.get().maybe_conditional) << field;
    }
  }
  request_parser p;
  ASSERT_EQ(p.parse("GET / HTTP/1.1\r\nHost: a\r\nX-Range: 1\r\n\r\n"), parse_status::complete);
  EXPECT_FALSE(p.get().maybe_conditional);  // the fast path knows there is none
  EXPECT_TRUE(p.get().plain_request_line);
}

// reset() leaves the last request in place (the fast path overwrites every
// field): whichever path parses the next head, nothing of the previous one
// may show through — not its query, fields, length or keep-alive.
TEST(HttpParser, NothingOfThePreviousRequestShowsThroughAfterReset) {
  const std::string first =
      "HEAD /a?x=1 HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\nRange: bytes=0-1\r\n"
      "Content-Length: 5\r\n\r\n";
  const auto check_second = [](const request& r) {
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.path, "/b");
    EXPECT_EQ(r.query, "");
    EXPECT_EQ(r.version_minor, 1);
    ASSERT_EQ(r.headers.size(), 1u);
    EXPECT_EQ(r.headers[0].name, "Host");
    EXPECT_EQ(r.content_length, 0u);
    EXPECT_TRUE(r.keep_alive);
    EXPECT_EQ(r.find("Range"), nullptr);
  };
  const std::string second = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";

  // Whole (the fast path), after a whole one.
  request_parser p;
  ASSERT_EQ(p.parse(first), parse_status::complete);
  EXPECT_EQ(p.get().query, "x=1");
  EXPECT_EQ(p.get().content_length, 5u);
  EXPECT_TRUE(p.get().maybe_conditional);
  p.reset();
  ASSERT_EQ(p.parse(second), parse_status::complete);
  check_second(p.get());
  EXPECT_FALSE(p.get().maybe_conditional);

  // In two pieces (the fast path gives up on the first, after the request
  // line: the general path then parses it all).
  p.reset();
  ASSERT_EQ(p.parse(first), parse_status::complete);
  p.reset();
  const std::string_view piece = std::string_view(second).substr(0, second.size() - 3);
  ASSERT_EQ(p.parse(piece), parse_status::need_more);
  ASSERT_EQ(p.parse(second), parse_status::complete);
  check_second(p.get());
  EXPECT_EQ(p.head_size(), second.size());

  // Refused after a request that the fast path took: the error, and the
  // request carries nothing over.
  p.reset();
  ASSERT_EQ(p.parse(first), parse_status::complete);
  p.reset();
  ASSERT_EQ(p.parse("GET /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"),
            parse_status::failed);
  EXPECT_EQ(p.error_status(), 501);
  EXPECT_EQ(p.get().content_length, 0u);
  EXPECT_EQ(p.get().query, "");
  // And after the error, a reset parser parses again.
  p.reset();
  EXPECT_EQ(p.error_status(), 0);
  ASSERT_EQ(p.parse(second), parse_status::complete);
  check_second(p.get());
}
