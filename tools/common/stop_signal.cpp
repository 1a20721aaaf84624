// SPDX-License-Identifier: MIT
#include "common/stop_signal.hpp"

#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include <pysock/error.hpp>

namespace pysock::tools {

stop_signal::stop_signal() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  if (const int rc = pthread_sigmask(SIG_BLOCK, &mask, nullptr); rc != 0)
    throw_os_error({rc, std::system_category()}, "pthread_sigmask()");
  signal_fd_ = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0) throw_os_error(last_error(), "signalfd()");
  event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (event_fd_ < 0) {
    const std::error_code ec = last_error();
    ::close(signal_fd_);
    throw_os_error(ec, "eventfd()");
  }
}

stop_signal::~stop_signal() {
  ::close(signal_fd_);
  ::close(event_fd_);
}

int stop_signal::take_signal() noexcept {
  signalfd_siginfo info{};
  ssize_t n;
  do {
    n = ::read(signal_fd_, &info, sizeof info);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof info) ? static_cast<int>(info.ssi_signo) : 0;
}

void stop_signal::trigger() noexcept {
  const std::uint64_t one = 1;
  ssize_t n;
  do {
    n = ::write(event_fd_, &one, sizeof one);
  } while (n < 0 && errno == EINTR);
}

void ignore_sigpipe() noexcept {
  struct sigaction action {};
  action.sa_handler = SIG_IGN;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGPIPE, &action, nullptr);
}

}  // namespace pysock::tools
