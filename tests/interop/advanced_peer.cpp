// SPDX-License-Identifier: MIT
//
// advanced_peer — the pysock side of tests/interop/advanced_interop.py: small
// programs that use pysock's message I/O, descriptor passing and stream
// adapter against CPython as the peer.
//
//   advanced_peer recv-fds PATH       connect to AF_UNIX stream PATH; recv_fds
//                                     and print what each descriptor reads;
//                                     then send_fds one pipe back
//   advanced_peer recvmsg-into PATH   connect to AF_UNIX seqpacket PATH;
//                                     recvmsg_into three buffers and print
//                                     them; then sendmsg three buffers back
//   advanced_peer makefile-server     TCP line server on 127.0.0.1:0 built on
//                                     makefile("rw"): ADD a b / UPPER s / QUIT
//   advanced_peer gather N            one sendmsg() of N buffers over a
//                                     socketpair (run under strace)
//
// Every socket has a timeout: a peer that misbehaves ends the program with
// an error instead of a hang.
#include <fcntl.h>
#include <unistd.h>

#include <pysock/pysock.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;

std::string read_to_eof(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

int recv_fds_peer(const std::string& path) {
  pysock::socket sock(AF_UNIX, SOCK_STREAM);
  sock.settimeout(10s);
  sock.connect(pysock::address::unix_path(path));
  pysock::recv_fds_result message = pysock::recv_fds(sock, 1024, 16);
  std::cout << "data=" << message.data << "\n";
  std::cout << "fds=" << message.fds.size() << "\n";
  std::cout << "ctrunc=" << ((message.msg_flags & MSG_CTRUNC) ? 1 : 0) << "\n";
  for (std::size_t i = 0; i < message.fds.size(); ++i) {
    const int flags = ::fcntl(message.fds[i].get(), F_GETFD);
    std::cout << "cloexec[" << i << "]=" << ((flags & FD_CLOEXEC) ? 1 : 0) << "\n";
    std::cout << "fd[" << i << "]=" << read_to_eof(message.fds[i].get()) << "\n";
  }
  // And back: a pipe whose write end is already closed, so CPython reads the
  // text and then EOF.
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return 1;
  const std::string text = "written by pysock";
  if (::write(p[1], text.data(), text.size()) != static_cast<ssize_t>(text.size())) return 1;
  ::close(p[1]);
  const pysock::const_buffer reply[] = {"from-pysock"};
  const int fds[] = {p[0]};
  pysock::send_fds(sock, reply, fds);
  ::close(p[0]);
  // Wait for CPython to finish with it (it closes the connection).
  while (!sock.recv(16).empty()) {
  }
  std::cout << "done" << std::endl;
  return 0;
}

int recvmsg_into_peer(const std::string& path) {
  pysock::socket sock(AF_UNIX, SOCK_SEQPACKET);
  sock.settimeout(10s);
  sock.connect(pysock::address::unix_path(path));
  std::array<char, 5> first{};
  std::array<char, 4> second{};
  std::string third(16, '.');
  const auto r = sock.recvmsg_into({first, second, third});
  std::cout << "nbytes=" << r.nbytes << "\n";
  std::cout << "trunc=" << ((r.msg_flags & MSG_TRUNC) ? 1 : 0) << "\n";
  std::cout << "buf0=" << std::string_view(first.data(), first.size()) << "\n";
  std::cout << "buf1=" << std::string_view(second.data(), second.size()) << "\n";
  std::cout << "buf2=" << third << "\n";
  // A second record: the boundary between CPython's two sendmsg calls holds.
  const auto r2 = sock.recvmsg(64);
  std::cout << "second=" << r2.data << "\n";
  // Gather three buffers back in one record.
  const std::size_t sent = sock.sendmsg({"one-", "two-", "three"});
  std::cout << "sent=" << sent << std::endl;
  while (!sock.recv(16).empty()) {
  }
  return 0;
}

int makefile_server() {
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  std::cout << "listening on " << listener.getsockname() << std::endl;
  listener.settimeout(10s);
  auto [conn, peer] = listener.accept();
  conn.settimeout(10s);
  auto f = conn.makefile("rw");
  conn.close();  // the stream keeps the connection open
  std::string line;
  long lines = 0;
  while (std::getline(f, line)) {
    ++lines;
    std::istringstream words(line);
    std::string command;
    words >> command;
    if (command == "ADD") {
      long a = 0, b = 0;
      words >> a >> b;
      f << "SUM " << a + b << "\n";
    } else if (command == "UPPER") {
      std::string rest;
      std::getline(words >> std::ws, rest);
      std::transform(rest.begin(), rest.end(), rest.begin(),
                     [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      f << "UPPER " << rest << "\n";
    } else if (command == "QUIT") {
      f << "BYE " << lines << std::endl;
      break;
    } else {
      f << "ERR unknown command\n";
    }
    // Answer as soon as no more input is buffered: pipelined requests are
    // answered in one write.
    if (f.rdbuf()->in_avail() == 0) f.flush();
  }
  if (f.bad()) {
    std::cerr << "advanced_peer: stream error: " << f.error().message() << '\n';
    return 1;
  }
  f.close();
  std::cout << "served " << lines << " lines" << std::endl;
  return 0;
}

int gather(long n) {
  auto [a, b] = pysock::socketpair();
  std::vector<std::string> parts;
  std::string expected;
  for (long i = 0; i < n; ++i) {
    parts.push_back("part" + std::to_string(i) + ";");
    expected += parts.back();
  }
  const std::vector<pysock::const_buffer> buffers(parts.begin(), parts.end());
  const std::size_t sent = a.sendmsg(buffers);
  a.close();
  b.settimeout(5s);
  std::string got;
  for (;;) {
    pysock::bytes part = b.recv(65536);
    if (part.empty()) break;
    got += part;
  }
  std::cout << "buffers=" << n << " sent=" << sent << " match=" << (got == expected ? 1 : 0)
            << std::endl;
  return got == expected ? 0 : 1;
}

int usage() {
  std::cerr
      << "usage: advanced_peer recv-fds PATH | recvmsg-into PATH | makefile-server | gather N\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string_view command = argv[1];
  try {
    if (command == "recv-fds" && argc == 3) return recv_fds_peer(argv[2]);
    if (command == "recvmsg-into" && argc == 3) return recvmsg_into_peer(argv[2]);
    if (command == "makefile-server" && argc == 2) return makefile_server();
    if (command == "gather" && argc == 3) return gather(std::stol(argv[2]));
  } catch (const pysock::os_error& e) {
    std::cerr << "advanced_peer: " << e.what() << '\n';
    return 1;
  } catch (const std::logic_error&) {  // std::stol: not a number
    return usage();
  }
  return usage();
}
