// SPDX-License-Identifier: MIT
//
// fd_passing — a parent process hands an open file to a forked child over a
// socketpair (SCM_RIGHTS), the child reads the file through the descriptor it
// received and prints its contents. The Python original:
//
//   parent, child = socket.socketpair()
//   if os.fork() == 0:                      # child
//       parent.close()
//       msg, fds, flags, addr = socket.recv_fds(child, 1024, 1)
//       with open(fds[0], 'rb') as f: print(f.read().decode(), end='')
//       os._exit(0)
//   child.close()
//   with open(path, 'rb') as f:
//       socket.send_fds(parent, [b'file'], [f.fileno()])
//   os.wait()
//
// Usage: fd_passing [path]
//   path  the file to pass (default: a temporary file in /tmp holding a short
//         text, removed afterwards)
//
// The child opens nothing itself: it can read the file only through the
// descriptor it was given. With pysock the received descriptor is owned
// (pysock::file_descriptor closes it) and close-on-exec.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pysock/pysock.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

namespace {

int child_main(pysock::socket& sock) {
  // recv_fds(sock, bufsize, maxfds): the data that came with the descriptor
  // and the descriptors themselves, owned by the result.
  pysock::recv_fds_result message = pysock::recv_fds(sock, 1024, 1);
  if (message.fds.empty()) {
    std::cerr << "fd_passing: child got no descriptor (message '" << message.data << "')\n";
    return 1;
  }
  const int fd = message.fds[0].get();
  std::cout << "child " << ::getpid() << " received descriptor " << fd << " with message '"
            << message.data << "'\n";
  std::string contents;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::cerr << "fd_passing: read: " << std::strerror(errno) << '\n';
      return 1;
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<std::size_t>(n));
  }
  std::cout << "child read " << contents.size() << " bytes:\n" << contents;
  if (!contents.empty() && contents.back() != '\n') std::cout << '\n';
  std::cout.flush();
  // Tell the parent we are done, over the same connection.
  sock.sendall("done");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 2) {
    std::cerr << "usage: fd_passing [path]\n";
    return 2;
  }
  std::string path;
  bool temporary = false;
  if (argc == 2) {
    path = argv[1];
  } else {
    char name[] = "/tmp/pysock-fd-passing-XXXXXX";
    const int fd = ::mkstemp(name);
    if (fd < 0) {
      std::perror("mkstemp");
      return 1;
    }
    const std::string text = "hello from the parent's file\nsecond line\n";
    if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
      std::perror("write");
      ::close(fd);
      return 1;
    }
    ::close(fd);
    path = name;
    temporary = true;
  }

  int status = 1;
  try {
    auto [parent_end, child_end] = pysock::socketpair();

    const pid_t pid = ::fork();
    if (pid == -1) {
      std::perror("fork");
      return 1;
    }
    if (pid == 0) {  // child
      parent_end.close();
      int code = 1;
      try {
        code = child_main(child_end);
      } catch (const pysock::os_error& e) {
        std::cerr << "fd_passing (child): " << e.what() << '\n';
      }
      std::_Exit(code);  // no atexit handlers: the temporary file is the parent's
    }

    // parent
    child_end.close();
    const int file = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (file < 0) {
      std::cerr << "fd_passing: cannot open " << path << ": " << std::strerror(errno) << '\n';
      parent_end.close();
      ::waitpid(pid, nullptr, 0);
      if (temporary) ::unlink(path.c_str());
      return 1;
    }
    std::cout << "parent " << ::getpid() << " passes " << path << " (descriptor " << file << ")"
              << std::endl;
    // send_fds(sock, buffers, fds): at least one byte of data must go with
    // the descriptors on a stream socket.
    const pysock::const_buffer message[] = {"file"};
    const int fds[] = {file};
    pysock::send_fds(parent_end, message, fds);
    ::close(file);  // the child has its own descriptor for the same open file now

    const pysock::bytes reply = parent_end.recv(16);
    parent_end.close();
    int child_status = 0;
    if (::waitpid(pid, &child_status, 0) == -1) {
      std::perror("waitpid");
    } else if (WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0 && reply == "done") {
      std::cout << "parent: child finished" << std::endl;
      status = 0;
    }
  } catch (const pysock::os_error& e) {
    std::cerr << "fd_passing: " << e.what() << '\n';
  }
  if (temporary) ::unlink(path.c_str());
  return status;
}
