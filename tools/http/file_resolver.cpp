// SPDX-License-Identifier: MIT
#include "http/file_resolver.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <memory>

#include <pysock/error.hpp>

namespace pysock::http {
namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// O_NONBLOCK: opening a FIFO must not wait for a writer; it changes nothing
// for regular files and directories.
constexpr int open_flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;

// Set once openat2 has answered ENOSYS: the fallback is then used directly.
std::atomic<bool> openat2_missing{false};

bool is_refusal(int error) noexcept {
  return error == EXDEV || error == ELOOP || error == EACCES || error == EPERM;
}

}  // namespace

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      const int high = hex_value(text[i + 1]);
      const int low = hex_value(text[i + 2]);
      if (high >= 0 && low >= 0) {
        out += static_cast<char>(high * 16 + low);
        i += 2;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

bool normalize_path(std::string_view decoded, std::string& relative) {
  relative.clear();
  if (decoded.find('\0') != std::string_view::npos) return false;
  while (!decoded.empty()) {
    const std::size_t slash = decoded.find('/');
    const std::string_view segment = decoded.substr(0, slash);
    decoded.remove_prefix(slash == std::string_view::npos ? decoded.size() : slash + 1);
    if (segment.empty() || segment == ".") continue;
    if (segment == "..") {
      if (relative.empty()) return false;  // would leave the root
      const std::size_t last = relative.rfind('/');
      relative.resize(last == std::string::npos ? 0 : last);
      continue;
    }
    if (!relative.empty()) relative += '/';
    relative += segment;
  }
  return true;
}

document_root::document_root(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_os_error(last_error(), "open(" + directory + ")");
  root_ = file_descriptor(fd);
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(directory.c_str(), nullptr),
                                                   &std::free);
  if (!real) throw_os_error(last_error(), "realpath(" + directory + ")");
  canonical_ = real.get();
}

file_descriptor document_root::open_checked_by_realpath(const std::string& relative,
                                                        int& error) const {
  const std::string full = relative.empty() ? canonical_ : canonical_ + "/" + relative;
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(full.c_str(), nullptr), &std::free);
  if (!real) {
    error = errno;
    return {};
  }
  const std::string_view canonical = real.get();
  // Under the root means: the root itself, or the root followed by '/'
  // ("/srv/www2" is not under "/srv/www"). The root "/" contains everything.
  const bool inside =
      canonical == canonical_ || canonical_ == "/" ||
      (canonical.size() > canonical_.size() &&
       canonical.substr(0, canonical_.size()) == canonical_ && canonical[canonical_.size()] == '/');
  if (!inside) {
    error = EXDEV;
    return {};
  }
  // O_NOFOLLOW: if the last component was swapped for a symlink since
  // realpath() looked, the open fails (ELOOP) instead of following it.
  const int fd = ::open(real.get(), open_flags | O_NOFOLLOW);
  if (fd < 0) {
    error = errno;
    return {};
  }
  return file_descriptor(fd);
}

file_descriptor document_root::open_beneath(const std::string& relative, int& error) const {
  const char* name = relative.empty() ? "." : relative.c_str();
  if (!openat2_missing.load(std::memory_order_relaxed)) {
    ::open_how how{};
    how.flags = static_cast<std::uint64_t>(open_flags);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    long fd;
    do {
      fd = ::syscall(SYS_openat2, root_.get(), name, &how, sizeof how);
    } while (fd < 0 && errno == EINTR);
    if (fd >= 0) return file_descriptor(static_cast<int>(fd));
    error = errno;
    if (error == ENOSYS) {
      openat2_missing.store(true, std::memory_order_relaxed);
    } else if (error != EXDEV) {
      return {};
    }
    // EXDEV: RESOLVE_BENEATH refuses every absolute symlink, even one that
    // points back inside the root; the canonical-path check decides those.
  }
  return open_checked_by_realpath(relative, error);
}

resolved_path document_root::resolve(std::string_view raw_path, std::string_view query) const {
  resolved_path result;
  std::string relative;
  if (!normalize_path(percent_decode(raw_path), relative)) return result;  // not_found

  int error = 0;
  result.fd = open_beneath(relative, error);
  if (!result.fd) {
    result.what =
        is_refusal(error) ? resolved_path::kind::forbidden : resolved_path::kind::not_found;
    return result;
  }
  if (::fstat(result.fd.get(), &result.st) != 0) {
    result.fd.close();
    return result;
  }
  const bool trailing_slash = !raw_path.empty() && raw_path.back() == '/';
  if (S_ISREG(result.st.st_mode)) {
    if (trailing_slash) {
      result.fd.close();
      return result;  // "/file.txt/": not found, as in Python
    }
    result.what = resolved_path::kind::file;
    result.relative = std::move(relative);
    return result;
  }
  if (!S_ISDIR(result.st.st_mode)) {
    result.fd.close();
    result.what = resolved_path::kind::forbidden;
    return result;
  }
  if (!trailing_slash) {
    result.fd.close();
    result.what = resolved_path::kind::redirect;
    result.location.assign(raw_path);
    result.location += '/';
    if (!query.empty()) {
      result.location += '?';
      result.location += query;
    }
    return result;
  }
  for (const char* index : {"index.html", "index.htm"}) {
    const std::string candidate = relative.empty() ? index : relative + "/" + index;
    int index_error = 0;
    file_descriptor file = open_beneath(candidate, index_error);
    struct ::stat st {};
    if (file && ::fstat(file.get(), &st) == 0 && S_ISREG(st.st_mode)) {
      result.fd = std::move(file);
      result.st = st;
      result.what = resolved_path::kind::file;
      result.relative = candidate;
      return result;
    }
  }
  result.what = resolved_path::kind::directory;
  result.relative = std::move(relative);
  return result;
}

}  // namespace pysock::http
