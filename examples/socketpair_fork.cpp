// SPDX-License-Identifier: MIT
//
// socketpair_fork — the tutorial's socketpair() + fork() program with pysock:
// the parent writes "hello china" into one end of a connected pair, the forked
// child reads it from the other end and prints "read:hello china".
//
// Compared with the C original, pysock closes each end when its object goes
// out of scope or close() is called, errors arrive as exceptions (no err_sys),
// and both ends are close-on-exec, so an exec() in the child would not leak them.
#include <sys/wait.h>
#include <unistd.h>

#include <pysock/pysock.hpp>

#include <cstdio>
#include <iostream>

int main() {
  try {
    // Python's socket.socketpair(): AF_UNIX, SOCK_STREAM by default.
    auto [parent_end, child_end] = pysock::socketpair();

    const pid_t pid = ::fork();
    if (pid == -1) {
      std::perror("fork");
      return 1;
    }

    if (pid == 0) {  // child process: reads
      // The child's copy of the writing end must go, or the child itself
      // would hold the pair open and never see end-of-file.
      parent_end.close();
      // Read until EOF (the parent closing its end): one read() as in the C
      // program would usually get all 11 bytes, but nothing guarantees it.
      pysock::bytes data;
      while (true) {
        pysock::bytes part = child_end.recv(BUFSIZ);
        if (part.empty()) break;
        data += part;
      }
      std::cout << "read:" << data << std::endl;
      child_end.close();
      return 0;
    }

    // parent process: writes
    child_end.close();  // the reading end is the child's
    parent_end.sendall("hello china");
    parent_end.close();  // end-of-file for the child

    int status = 0;
    if (::waitpid(pid, &status, 0) == -1) {
      std::perror("waitpid");
      return 1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  } catch (const pysock::os_error& e) {
    std::cerr << "socketpair_fork: " << e.what() << '\n';
    return 1;
  }
}
