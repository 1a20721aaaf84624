// SPDX-License-Identifier: MIT
//
// Linked into every test program: fails the run when it ends with more open
// descriptors than it started with. ctest runs each TEST in its own process
// (gtest_discover_tests), so a leak is pinned on the test that made it.
#include <dirent.h>

#include <gtest/gtest.h>

namespace {

int count_open_descriptors() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int count = 0;
  while (::readdir(dir) != nullptr) ++count;
  ::closedir(dir);
  return count;  // the same "." ".." and the DIR's own fd every time
}

class fd_leak_check : public ::testing::Environment {
 public:
  void SetUp() override { before_ = count_open_descriptors(); }
  void TearDown() override {
    const int after = count_open_descriptors();
    EXPECT_EQ(after, before_) << "descriptors leaked: " << before_ << " open before the tests, "
                              << after << " after";
  }

 private:
  int before_ = 0;
};

[[maybe_unused]] const auto* const registered =
    ::testing::AddGlobalTestEnvironment(new fd_leak_check);

}  // namespace
