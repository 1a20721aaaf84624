// SPDX-License-Identifier: MIT
//
// tools/common/stop_signal.hpp — SIGINT/SIGTERM as readable descriptors, for
// servers that must stop cleanly: finish what is in flight, then exit 0.
//
// Why not a signal handler: pysock's blocking calls retry on EINTR (PEP 475),
// so a handler setting a flag would not wake an accept() or a recv(). Instead
// the signals are blocked in every thread and read from a signalfd, which the
// accept loop polls beside the listener; on the first one the accept loop
// raises an eventfd that every connection thread polls beside its socket.
#pragma once

namespace pysock::tools {

class stop_signal {
 public:
  /// Blocks SIGINT and SIGTERM in the calling thread and opens the
  /// descriptors. Call it in main() before any thread starts: threads inherit
  /// the signal mask. Throws pysock::os_error.
  stop_signal();
  ~stop_signal();
  stop_signal(const stop_signal&) = delete;
  stop_signal& operator=(const stop_signal&) = delete;

  /// Readable when SIGINT or SIGTERM is pending.
  int signal_fd() const noexcept { return signal_fd_; }
  /// Reads the pending signal: its number (SIGINT, SIGTERM), or 0 if none.
  int take_signal() noexcept;
  /// Readable once trigger() has been called (and stays readable): what
  /// connection threads poll.
  int event_fd() const noexcept { return event_fd_; }
  void trigger() noexcept;

 private:
  int signal_fd_ = -1;
  int event_fd_ = -1;
};

/// Ignores SIGPIPE for the process: a write to a closed pipe or socket is
/// then an EPIPE error where it happens instead of death.
void ignore_sigpipe() noexcept;

}  // namespace pysock::tools
