// SPDX-License-Identifier: MIT
//
// Shared by tests/test_ssl*.cpp: the certificates (made per test process by
// tests/interop/ssl_make_certs.sh with the openssl command) and real peers
// started as child processes (openssl s_server/s_client, python3 scripts),
// every one bounded in time and killed when the test ends.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace ssl_test {

inline std::string interop_dir() { return PYSOCK_SSL_INTEROP_DIR; }

inline bool have_program(const std::string& name) {
  const std::string command = "command -v " + name + " >/dev/null 2>&1";
  return std::system(command.c_str()) == 0;
}

// A temporary folder with every certificate of ssl_make_certs.sh, removed
// when the object goes.
class cert_dir {
 public:
  cert_dir() {
    char pattern[] = "/tmp/pysock-ssl-test.XXXXXX";
    if (::mkdtemp(pattern) == nullptr) return;
    root_ = pattern;
    const std::string command =
        "sh '" + interop_dir() + "/ssl_make_certs.sh' '" + root_ + "/certs' >/dev/null 2>&1";
    ok_ = std::system(command.c_str()) == 0;
  }
  ~cert_dir() {
    std::error_code ec;
    if (!root_.empty()) std::filesystem::remove_all(root_, ec);
  }
  cert_dir(const cert_dir&) = delete;
  cert_dir& operator=(const cert_dir&) = delete;
  bool ok() const { return ok_; }
  std::string path(std::string_view name) const { return root_ + "/certs/" + std::string(name); }
  std::string pem(std::string_view name) const { return path(std::string(name) + ".pem"); }
  std::string key(std::string_view name) const { return path(std::string(name) + ".key"); }

 private:
  std::string root_;
  bool ok_ = false;
};

// A child process with its stdin and (merged) stdout/stderr on pipes.
class child {
 public:
  explicit child(const std::vector<std::string>& argv) {
    int in[2] = {-1, -1};
    int out[2] = {-1, -1};
    if (::pipe2(in, O_CLOEXEC) != 0) return;
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ::close(in[0]);
      ::close(in[1]);
      return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, out[1], 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int status = ::posix_spawnp(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    if (status != 0) {
      pid_ = -1;
      ::close(in[1]);
      ::close(out[0]);
      return;
    }
    stdin_ = in[1];
    stdout_ = out[0];
  }
  ~child() {
    close_stdin();
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (stdout_ >= 0) ::close(stdout_);
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  bool started() const { return pid_ > 0; }
  void write_stdin(std::string_view text) {
    while (!text.empty() && stdin_ >= 0) {
      const ssize_t n = ::write(stdin_, text.data(), text.size());
      if (n <= 0) return;
      text.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  void close_stdin() {
    if (stdin_ >= 0) ::close(stdin_);
    stdin_ = -1;
  }
  // Reads output until `needle` shows up (true), the output ends or the time
  // runs out (false). Everything read is kept in output().
  bool read_until(std::string_view needle,
                  std::chrono::milliseconds limit = std::chrono::seconds(20),
                  std::size_t from = 0) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (output_.find(needle, from) == std::string::npos) {
      if (!read_more(deadline)) return output_.find(needle, from) != std::string::npos;
    }
    return true;
  }
  // Reads everything until the child closes its output, then its exit code
  // (-1 when it did not end within `limit` and was killed).
  int wait(std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    close_stdin();
    read_until(std::string_view("\x01\x02never\x03"), limit);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (pid_ > 0) {
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }
  const std::string& output() const { return output_; }

  // The number after `prefix` in the output ("PORT 43211").
  std::optional<int> number_after(std::string_view prefix) {
    if (!read_until(prefix)) return std::nullopt;
    const std::size_t at = output_.find(prefix) + prefix.size();
    if (!read_until("\n", std::chrono::seconds(20), at)) return std::nullopt;
    try {
      return std::stoi(output_.substr(at));
    } catch (...) {
      return std::nullopt;
    }
  }

 private:
  bool read_more(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || stdout_ < 0) return false;
      pollfd p{stdout_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buffer[4096];
      const ssize_t n = ::read(stdout_, buffer, sizeof buffer);
      if (n <= 0) {
        ::close(stdout_);
        stdout_ = -1;
        return false;
      }
      output_.append(buffer, static_cast<std::size_t>(n));
      return true;
    }
  }

  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
  std::string output_;
};

// The port of an `openssl s_server -accept 127.0.0.1:0` child, from the
// "ACCEPT 127.0.0.1:PORT" line it prints once it listens. Port 0 lets the
// kernel pick: a port probed free and handed over could be taken by any
// other test's socket before s_server binds it.
inline std::optional<int> s_server_port(child& server) {
  const std::optional<int> port = server.number_after("ACCEPT 127.0.0.1:");
  if (port && (*port <= 0 || *port > 65535)) return std::nullopt;
  return port;
}

}  // namespace ssl_test
