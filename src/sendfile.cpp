// SPDX-License-Identifier: MIT
//
// socket::sendfile: zero-copy sendfile(2) for regular files, read()+send()
// for everything else, with Python's offset and return-value rules.
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <stdexcept>

#include "io_wait.hpp"
#include "pysock/socket.hpp"

namespace pysock {
namespace {

// sendfile(2) takes no MSG_NOSIGNAL: a peer that has gone would raise
// SIGPIPE. Block it in this thread for the call, and swallow the one the call
// raised (but not one that was already pending before).
class sigpipe_guard {
 public:
  sigpipe_guard() noexcept {
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_only, &previous_);
  }
  ~sigpipe_guard() {
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        sigset_t pipe_only;
        sigemptyset(&pipe_only);
        sigaddset(&pipe_only, SIGPIPE);
        const timespec no_wait{0, 0};
        while (sigtimedwait(&pipe_only, nullptr, &no_wait) < 0 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  sigpipe_guard(const sigpipe_guard&) = delete;
  sigpipe_guard& operator=(const sigpipe_guard&) = delete;

 private:
  sigset_t previous_{};
  bool was_pending_ = false;
};

constexpr std::uint64_t sendfile_chunk = std::uint64_t{1} << 30;  // Python's 1 GiB blocks
constexpr std::size_t fallback_block = 64 * 1024;

}  // namespace

std::size_t socket::sendfile(int file_fd, std::uint64_t offset,
                             std::optional<std::uint64_t> count) {
  std::error_code ec;
  bool file_error = false;
  const std::size_t sent = send_file(file_fd, offset, count, ec, file_error);
  if (!ec) return sent;
  // Python's non-blocking sendfile returns what fitted; it raises only when
  // nothing did.
  const bool nonblocking = timeout_ns_ && *timeout_ns_ == 0;
  if (nonblocking && ec == std::errc::operation_would_block && sent > 0) return sent;
  // Errors about the file name it; errors of the connection name the socket.
  if (ec == std::errc::bad_file_descriptor && fd_ < 0) throw_os_error(ec, "sendfile()");
  if (file_error) throw_os_error(ec, "sendfile(file=" + std::to_string(file_fd) + ")");
  throw_os_error(ec, describe("sendfile"));
}

std::size_t socket::sendfile(int file_fd, std::uint64_t offset, std::optional<std::uint64_t> count,
                             std::error_code& ec) {
  bool file_error = false;
  return send_file(file_fd, offset, count, ec, file_error);
}

std::size_t socket::send_file(int file_fd, std::uint64_t offset, std::optional<std::uint64_t> count,
                              std::error_code& ec, bool& file_error) {
  ec.clear();
  if (type_ != SOCK_STREAM)
    throw std::invalid_argument("sendfile: only SOCK_STREAM type sockets are supported");
  if (count && *count == 0)
    throw std::invalid_argument("sendfile: count must be a positive integer (got 0)");
  if (fd_ < 0) {
    ec = detail::bad_descriptor();
    return 0;
  }
  struct stat info {};
  if (::fstat(file_fd, &info) != 0) {
    ec = last_error();
    file_error = true;
    return 0;
  }
  if (S_ISDIR(info.st_mode)) {
    ec = std::make_error_code(std::errc::is_a_directory);
    file_error = true;
    return 0;
  }

  const bool regular = S_ISREG(info.st_mode);
  std::uint64_t wanted = count.value_or(UINT64_MAX);
  if (regular) {
    const auto size = static_cast<std::uint64_t>(info.st_size);
    wanted = offset >= size ? 0 : std::min(wanted, size - offset);
  }
  const bool nonblocking = timeout_ns_ && *timeout_ns_ == 0;
  // A block read from a pipe and then refused by a full non-blocking socket
  // could be neither sent nor put back: only regular files go non-blocking.
  if (nonblocking && !regular)
    throw std::invalid_argument("sendfile: a non-blocking socket needs a regular file");
  bool use_fallback = !regular;
  std::uint64_t sent = 0;
  bool end_of_file = false;

  // Waits for room in the send buffer; in timeout mode each wait gets the
  // whole timeout, as Python's sendfile does.
  auto wait_writable = [&]() -> bool {
    if (nonblocking) {
      ec = std::make_error_code(std::errc::operation_would_block);
      return false;
    }
    std::optional<detail::steady::time_point> deadline;
    if (detail::in_timeout_mode(timeout_ns_))
      deadline = detail::steady::now() + std::chrono::nanoseconds(*timeout_ns_);
    return detail::wait_ready(fd_, POLLOUT, deadline, ec);
  };

  if (regular) {
    const sigpipe_guard no_sigpipe;
    while (sent < wanted) {
      auto position = static_cast<off_t>(offset + sent);
      const auto chunk = static_cast<std::size_t>(std::min(wanted - sent, sendfile_chunk));
      const ssize_t n = ::sendfile(fd_, file_fd, &position, chunk);
      if (n > 0) {
        sent += static_cast<std::uint64_t>(n);
        continue;
      }
      if (n == 0) break;  // the file shrank under us
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        if (!wait_writable()) break;
        continue;
      }
      if ((errno == EINVAL || errno == ENOSYS) && sent == 0 && !nonblocking) {
        use_fallback = true;  // a file system without sendfile support
        break;
      }
      ec = last_error();
      break;
    }
  }
  if (use_fallback) {
    // Not a regular file (pipe, socket, device), or sendfile(2) refused it:
    // copy through user space. A stream cannot seek, so a non-zero offset on
    // a pipe is the ESPIPE error.
    if ((regular || offset != 0) && ::lseek(file_fd, static_cast<off_t>(offset), SEEK_SET) < 0) {
      ec = last_error();
      file_error = true;
      return 0;
    }
    std::vector<char> block(fallback_block);
    while (!ec && sent < wanted && !end_of_file) {
      const auto chunk =
          static_cast<std::size_t>(std::min<std::uint64_t>(wanted - sent, block.size()));
      const ssize_t got = ::read(file_fd, block.data(), chunk);
      if (got < 0) {
        if (errno == EINTR) continue;
        ec = last_error();
        break;
      }
      if (got == 0) {
        end_of_file = true;
        break;
      }
      std::size_t written = 0;
      while (written < static_cast<std::size_t>(got)) {
        const ssize_t n = ::send(fd_, block.data() + written,
                                 static_cast<std::size_t>(got) - written, MSG_NOSIGNAL);
        if (n >= 0) {
          written += static_cast<std::size_t>(n);
          continue;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN && wait_writable()) continue;
        if (!ec) ec = last_error();
        break;
      }
      sent += written;
      if (written < static_cast<std::size_t>(got)) break;
    }
  }
  // Python leaves the file position just past what went out, even on error,
  // so the caller can tell (tell()) how far it got.
  if (regular) ::lseek(file_fd, static_cast<off_t>(offset + sent), SEEK_SET);
  return static_cast<std::size_t>(sent);
}

}  // namespace pysock
