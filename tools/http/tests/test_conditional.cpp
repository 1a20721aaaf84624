// SPDX-License-Identifier: MIT
// HTTP dates, ETags, If-None-Match / If-Modified-Since, Range / If-Range, and
// the response and log formatting.
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

#include "http/conditional.hpp"
#include "http/http_date.hpp"
#include "http/response.hpp"

using namespace pysock::http;

TEST(HttpDate, FormatsImfFixdate) {
  EXPECT_EQ(format_http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
}

TEST(HttpDate, ParsesTheThreeFormsOfRfc9110) {
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), std::time_t{784111777});
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), std::time_t{784111777});
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), std::time_t{784111777});
}

TEST(HttpDate, RejectsMalformedDates) {
  for (const char* bad :
       {"", "yesterday", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 36 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 25:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT ", "Sun Nov 6 08:49:37 1994"})
    EXPECT_FALSE(parse_http_date(bad).has_value()) << bad;
}

TEST(HttpDate, RoundTripsThroughFormatAndParse) {
  for (std::time_t t : {std::time_t{0}, std::time_t{951782400}, std::time_t{1795000000}})
    EXPECT_EQ(parse_http_date(format_http_date(t)), t);
}

TEST(HttpDate, NowIsAValidDate) {
  const std::time_t before = std::time(nullptr);
  const auto parsed = parse_http_date(http_date_now());
  ASSERT_TRUE(parsed.has_value());
  EXPECT_GE(*parsed, before);
  EXPECT_LE(*parsed, std::time(nullptr));
}

TEST(HttpDate, LogDateIsPythonsFormat) {
  ::setenv("TZ", "UTC", 1);
  ::tzset();
  EXPECT_EQ(log_date_time(784111777), "06/Nov/1994 08:49:37");
}

TEST(HttpEtag, ChangesWithSizeAndMtime) {
  EXPECT_EQ(make_etag(255, 16), "\"ff-10\"");
  EXPECT_NE(make_etag(1, 1'000'000'000), make_etag(1, 1'000'000'001));
}

TEST(HttpConditional, IfNoneMatchUsesWeakComparison) {
  const std::string etag = "\"ff-10\"";
  EXPECT_TRUE(if_none_match_matches("\"ff-10\"", etag));
  EXPECT_TRUE(if_none_match_matches("W/\"ff-10\"", etag));
  EXPECT_TRUE(if_none_match_matches("\"x\", \"ff-10\"", etag));
  EXPECT_TRUE(if_none_match_matches(" * ", etag));
  EXPECT_FALSE(if_none_match_matches("\"ff-11\"", etag));
  EXPECT_FALSE(if_none_match_matches("ff-10", etag));
}

TEST(HttpConditional, IfModifiedSinceComparesSeconds) {
  EXPECT_TRUE(not_modified_since("Sun, 06 Nov 1994 08:49:37 GMT", 784111777));
  EXPECT_TRUE(not_modified_since("Sun, 06 Nov 1994 08:49:37 GMT", 784111700));
  EXPECT_FALSE(not_modified_since("Sun, 06 Nov 1994 08:49:37 GMT", 784111778));
  EXPECT_FALSE(not_modified_since("garbage", 0));
}

TEST(HttpRange, SingleRanges) {
  using k = range_request::kind;
  auto r = parse_range("bytes=0-3", 10);
  EXPECT_EQ(r.result, k::satisfiable);
  EXPECT_EQ(r.range, (byte_range{0, 3}));
  r = parse_range("bytes=5-", 10);
  EXPECT_EQ(r.range, (byte_range{5, 9}));
  r = parse_range("bytes=-3", 10);
  EXPECT_EQ(r.range, (byte_range{7, 9}));
  r = parse_range("bytes=-30", 10);
  EXPECT_EQ(r.range, (byte_range{0, 9}));
  r = parse_range("bytes=8-100", 10);
  EXPECT_EQ(r.range, (byte_range{8, 9}));
  EXPECT_EQ(r.range.length(), 2u);
}

TEST(HttpRange, UnsatisfiableRanges) {
  using k = range_request::kind;
  EXPECT_EQ(parse_range("bytes=10-", 10).result, k::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=10-20", 10).result, k::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=-0", 10).result, k::unsatisfiable);
  EXPECT_EQ(parse_range("bytes=0-", 0).result, k::unsatisfiable);
}

TEST(HttpRange, IgnoredRangesServeEverything) {
  using k = range_request::kind;
  for (const char* ignored : {"", "items=0-1", "bytes=", "bytes=a-b", "bytes=5-2", "bytes=0-1,3-4",
                              "bytes=1", "bytes=--1", "bytes=99999999999999999999-"})
    EXPECT_EQ(parse_range(ignored, 10).result, k::none) << ignored;
}

TEST(HttpRange, IfRangeNeedsAStrongMatchOrTheExactDate) {
  const std::string etag = "\"a-1\"";
  EXPECT_TRUE(if_range_allows("", etag, 100));
  EXPECT_TRUE(if_range_allows("\"a-1\"", etag, 100));
  EXPECT_FALSE(if_range_allows("W/\"a-1\"", etag, 100));
  EXPECT_FALSE(if_range_allows("\"b-1\"", etag, 100));
  EXPECT_TRUE(if_range_allows(format_http_date(100), etag, 100));
  EXPECT_FALSE(if_range_allows(format_http_date(99), etag, 100));
  EXPECT_FALSE(if_range_allows("not a date", etag, 100));
}

TEST(HttpResponse, HeadHasStatusServerDateAndConnection) {
  std::string out;
  response_head head(out, 404);
  head.field("Content-Type", "text/plain").content_length(3);
  head.finish(false, false);
  EXPECT_EQ(out.rfind("HTTP/1.1 404 Not Found\r\nServer: pysock-http/0.1\r\nDate: ", 0), 0u) << out;
  EXPECT_NE(out.find("\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"), std::string::npos)
      << out;
  std::string keep;
  response_head(keep, 200).finish(true, true);
  EXPECT_NE(keep.find("Connection: keep-alive\r\n\r\n"), std::string::npos);
  std::string plain;
  response_head(plain, 200).finish(true, false);
  EXPECT_EQ(plain.find("Connection"), std::string::npos);
}

TEST(HttpResponse, ErrorBodyEscapesTheMessage) {
  const std::string body = error_body(400, "Bad request syntax ('<script>')");
  EXPECT_NE(body.find("Error code: 400"), std::string::npos);
  EXPECT_NE(body.find("&lt;script&gt;"), std::string::npos);
  EXPECT_EQ(body.find("<script>"), std::string::npos);
}

TEST(HttpResponse, UrlQuoteAndHtmlEscapeAreLikePythons) {
  std::string q;
  append_url_quoted(q, "a b&<c>/é~_.-");
  EXPECT_EQ(q, "a%20b%26%3Cc%3E/%C3%A9~_.-");
  std::string h;
  append_html_escaped(h, "a&b<c>\"d'");
  EXPECT_EQ(h, "a&amp;b&lt;c&gt;\"d'");
}

TEST(HttpAccessLog, LineIsPythonsFormatAndEscapesControls) {
  ::setenv("TZ", "UTC", 1);
  ::tzset();
  EXPECT_EQ(access_log_line("127.0.0.1", 784111777, "GET / HTTP/1.1", 200),
            "127.0.0.1 - - [06/Nov/1994 08:49:37] \"GET / HTTP/1.1\" 200 -\n");
  EXPECT_EQ(access_log_line("::1", 784111777, "GET /\n\x1b HTTP/1.1", 400),
            "::1 - - [06/Nov/1994 08:49:37] \"GET /\\x0a\\x1b HTTP/1.1\" 400 -\n");
  EXPECT_EQ(error_log_line("127.0.0.1", 784111777, 404, "File not found"),
            "127.0.0.1 - - [06/Nov/1994 08:49:37] code 404, message File not found\n");
}
