// SPDX-License-Identifier: MIT
// File resolution: percent-decoding, normalisation, and confinement to the
// served directory (.., encoded .., symlinks out of the root).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "http/file_resolver.hpp"
#include "http/mime.hpp"

using namespace pysock::http;
namespace fs = std::filesystem;

namespace {

// A fresh tree: <tmp>/outside/secret.txt, <tmp>/root/{a.txt, dir/, dir/index.html...}
class HttpPaths : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pysock-http-paths.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    base_ = pattern;
    root_ = base_ / "root";
    fs::create_directories(root_ / "dir");
    fs::create_directories(root_ / "plain");
    fs::create_directories(base_ / "outside");
    fs::create_directories(base_ / "root2");
    write(root_ / "a.txt", "hello");
    write(root_ / "dir" / "index.html", "<p>index</p>");
    write(root_ / "plain" / "f.bin", "x");
    write(base_ / "outside" / "secret.txt", "secret");
    write(base_ / "root2" / "sibling.txt", "sibling");
    fs::create_symlink(base_ / "outside" / "secret.txt", root_ / "abs_out");
    fs::create_symlink("../outside/secret.txt", root_ / "rel_out");
    fs::create_symlink("../root2", root_ / "sibling_dir");  // "root2" shares the prefix "root"
    fs::create_symlink("a.txt", root_ / "rel_in");
    fs::create_symlink(root_ / "a.txt", root_ / "abs_in");
    ASSERT_EQ(::mkfifo((root_ / "fifo").c_str(), 0600), 0);
  }
  void TearDown() override { fs::remove_all(base_); }
  static void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

  fs::path base_, root_;
};

}  // namespace

TEST(HttpPercentDecode, DecodesEscapesAndKeepsInvalidOnes) {
  EXPECT_EQ(percent_decode("/a%20b%2Fc"), "/a b/c");
  EXPECT_EQ(percent_decode("%zz%4"), "%zz%4");
  EXPECT_EQ(percent_decode("%"), "%");
  EXPECT_EQ(percent_decode("%e2%82%ac"), "\xe2\x82\xac");
}

TEST(HttpNormalize, ResolvesDotsAndRefusesClimbingOut) {
  std::string rel;
  ASSERT_TRUE(normalize_path("/a/./b//c/../d", rel));
  EXPECT_EQ(rel, "a/b/d");
  ASSERT_TRUE(normalize_path("/", rel));
  EXPECT_EQ(rel, "");
  ASSERT_TRUE(normalize_path("/a/..", rel));
  EXPECT_EQ(rel, "");
  EXPECT_FALSE(normalize_path("/..", rel));
  EXPECT_FALSE(normalize_path("/a/../../etc/passwd", rel));
  EXPECT_FALSE(normalize_path(std::string("/a\0b", 4), rel));
}

TEST_F(HttpPaths, ServesAFile) {
  document_root root(root_.string());
  resolved_path r = root.resolve("/a.txt", "");
  ASSERT_EQ(r.what, resolved_path::kind::file);
  EXPECT_EQ(r.st.st_size, 5);
  EXPECT_EQ(r.relative, "a.txt");
  EXPECT_TRUE(r.fd);
}

TEST_F(HttpPaths, DirectoryWithoutSlashRedirectsKeepingTheQuery) {
  document_root root(root_.string());
  resolved_path r = root.resolve("/plain", "x=1");
  ASSERT_EQ(r.what, resolved_path::kind::redirect);
  EXPECT_EQ(r.location, "/plain/?x=1");
  EXPECT_FALSE(r.fd);
}

TEST_F(HttpPaths, DirectoryWithIndexServesTheIndex) {
  document_root root(root_.string());
  resolved_path r = root.resolve("/dir/", "");
  ASSERT_EQ(r.what, resolved_path::kind::file);
  EXPECT_EQ(r.relative, "dir/index.html");
}

TEST_F(HttpPaths, DirectoryWithoutIndexIsListed) {
  document_root root(root_.string());
  EXPECT_EQ(root.resolve("/plain/", "").what, resolved_path::kind::directory);
  EXPECT_EQ(root.resolve("/", "").what, resolved_path::kind::directory);
}

TEST_F(HttpPaths, FileWithTrailingSlashIsNotFound) {
  document_root root(root_.string());
  EXPECT_EQ(root.resolve("/a.txt/", "").what, resolved_path::kind::not_found);
}

TEST_F(HttpPaths, TraversalAttemptsNeverReachOutside) {
  document_root root(root_.string());
  for (const char* attempt :
       {"/../outside/secret.txt", "/%2e%2e/outside/secret.txt", "/%2e%2e%2foutside%2fsecret.txt",
        "/dir/../../outside/secret.txt", "/..%2F..%2Fetc%2Fpasswd", "/a.txt%00.html"}) {
    const resolved_path r = root.resolve(attempt, "");
    EXPECT_EQ(r.what, resolved_path::kind::not_found) << attempt;
    EXPECT_FALSE(r.fd) << attempt;
  }
}

TEST_F(HttpPaths, SymlinksOutOfTheRootAreForbidden) {
  document_root root(root_.string());
  EXPECT_EQ(root.resolve("/abs_out", "").what, resolved_path::kind::forbidden);
  EXPECT_EQ(root.resolve("/rel_out", "").what, resolved_path::kind::forbidden);
  // A sibling directory whose name starts with the root's: still outside.
  EXPECT_EQ(root.resolve("/sibling_dir/sibling.txt", "").what, resolved_path::kind::forbidden);
}

TEST_F(HttpPaths, SymlinksInsideTheRootAreFollowed) {
  document_root root(root_.string());
  EXPECT_EQ(root.resolve("/rel_in", "").what, resolved_path::kind::file);
  EXPECT_EQ(root.resolve("/abs_in", "").what, resolved_path::kind::file);  // absolute, but inside
}

TEST_F(HttpPaths, SpecialFilesAreForbiddenAndDoNotBlock) {
  document_root root(root_.string());
  EXPECT_EQ(root.resolve("/fifo", "").what,
            resolved_path::kind::forbidden);  // would hang without O_NONBLOCK
}

TEST_F(HttpPaths, RootThroughASymlinkIsCanonicalised) {
  fs::create_symlink(root_, base_ / "link_to_root");
  document_root root((base_ / "link_to_root").string());
  EXPECT_EQ(root.path(), fs::canonical(root_).string());
  EXPECT_EQ(root.resolve("/a.txt", "").what, resolved_path::kind::file);
  EXPECT_EQ(root.resolve("/abs_in", "").what, resolved_path::kind::file);
  EXPECT_EQ(root.resolve("/abs_out", "").what, resolved_path::kind::forbidden);
}

TEST(HttpDocumentRoot, MissingDirectoryThrowsNamingIt) {
  try {
    document_root root("/nonexistent/pysock-dir");
    FAIL() << "no exception";
  } catch (const pysock::os_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/pysock-dir"), std::string::npos) << e.what();
  }
}

TEST(HttpMime, CommonExtensions) {
  EXPECT_EQ(guess_mime_type("a/index.html"), "text/html");
  EXPECT_EQ(guess_mime_type("x.PNG"), "image/png");
  EXPECT_EQ(guess_mime_type("style.css"), "text/css");
  EXPECT_EQ(guess_mime_type("noext"), "application/octet-stream");
  EXPECT_EQ(guess_mime_type(".bashrc"), "application/octet-stream");
  EXPECT_EQ(guess_mime_type("dir.d/file"), "application/octet-stream");
}
