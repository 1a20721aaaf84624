// SPDX-License-Identifier: MIT
//
// `pysock connect` and `pysock listen`: a small netcat. Standard input goes to
// the socket and the socket's data to standard output, multiplexed with
// poll(2) on the two descriptors.
//
// Stream sockets (TCP, Unix): at the end of stdin the socket is half-closed
// (shutdown(SHUT_WR)) and reading goes on until the peer closes, so
// `echo hi | pysock connect host port` prints the whole answer of a server
// that answers after EOF. The peer closing ends the program at once, as nc.
// UDP: each read of stdin is one datagram; a listener answers the first
// sender (it connects to it); after stdin's end datagrams are still printed
// until the idle timeout.
#include <poll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <iostream>

#include <pysock/resolver.hpp>
#include <pysock/socket.hpp>

#include "commands/commands.hpp"
#include "common/stop_signal.hpp"

namespace pysock::tools {
namespace {

constexpr double udp_linger_seconds = 2.0;

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

int to_ms(double seconds) { return static_cast<int>(seconds * 1000.0 + 0.5); }

// The relay. Returns the exit status.
int relay(socket& sock, const netcat_args& args, const char* name) {
  const bool datagram = sock.type() == SOCK_DGRAM;
  std::array<char, 64 * 1024> buffer;
  bool stdin_open = true;
  try {
    while (true) {
      int timeout_ms = args.idle_timeout ? to_ms(*args.idle_timeout) : -1;
      if (datagram && !stdin_open && !args.idle_timeout) timeout_ms = to_ms(udp_linger_seconds);
      std::array<pollfd, 2> fds{
          {{stdin_open ? STDIN_FILENO : -1, POLLIN, 0}, {sock.fileno(), POLLIN, 0}}};
      const int ready = ::poll(fds.data(), fds.size(), timeout_ms);
      if (ready < 0) {
        if (errno == EINTR) continue;
        throw_os_error(last_error(), "poll()");
      }
      if (ready == 0) return 0;  // idle timeout

      if (fds[1].revents != 0) {
        std::error_code ec;
        const std::size_t n = sock.recv_into(buffer, 0, 0, ec);
        if (ec) {
          if (ec == std::errc::operation_would_block || ec == std::errc::interrupted) continue;
          throw_os_error(ec, "recv()");
        }
        if (n == 0 && !datagram) return 0;  // the peer closed: done
        if (!write_all(STDOUT_FILENO, buffer.data(), n)) {
          if (errno == EPIPE) return 0;  // whoever reads our output has gone
          std::cerr << "pysock " << name
                    << ": write(stdout): " << std::generic_category().message(errno) << '\n';
          return 1;
        }
      }
      if (fds[0].revents != 0) {
        const ssize_t n = ::read(STDIN_FILENO, buffer.data(), buffer.size());
        if (n < 0) {
          if (errno == EINTR || errno == EAGAIN) continue;
          std::cerr << "pysock " << name
                    << ": read(stdin): " << std::generic_category().message(errno) << '\n';
          return 1;
        }
        if (n == 0 || (fds[0].revents & POLLNVAL) != 0) {
          stdin_open = false;
          if (!datagram) sock.shutdown(SHUT_WR);  // the peer sees EOF; keep reading its answer
          continue;
        }
        if (datagram)
          sock.send(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
        else
          sock.sendall(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
      }
    }
  } catch (const os_error& e) {
    std::cerr << "pysock " << name << ": " << e.what() << '\n';
    return 1;
  }
}

socket open_udp(const std::string& host, int port, bool passive) {
  const auto results = getaddrinfo(host, port, AF_UNSPEC, SOCK_DGRAM, 0, passive ? AI_PASSIVE : 0);
  socket sock(results.front().family, SOCK_DGRAM);
  if (passive)
    sock.bind(results.front().sockaddr);
  else
    sock.connect(results.front().sockaddr);
  return sock;
}

}  // namespace

int run_connect(const netcat_args& args) {
  ignore_sigpipe();
  socket sock = socket::closed_socket();
  try {
    if (!args.unix_path.empty()) {
      sock = socket(AF_UNIX, SOCK_STREAM);
      sock.connect(address::unix_path(args.unix_path));
    } else if (args.udp) {
      sock = open_udp(args.host, args.port, false);
    } else {
      sock = create_connection({args.host, args.port});
    }
  } catch (const os_error& e) {
    std::cerr << "pysock connect: " << e.what() << '\n';
    return 1;
  }
  return relay(sock, args, "connect");
}

int run_listen(const netcat_args& args) {
  ignore_sigpipe();
  socket sock = socket::closed_socket();
  bool unlink_path = false;
  int status = 1;
  try {
    if (!args.unix_path.empty()) {
      socket listener(AF_UNIX, SOCK_STREAM);
      listener.bind(address::unix_path(args.unix_path));
      unlink_path = args.unix_path.front() != '\0';  // we made the file: remove it after
      listener.listen(1);
      std::cerr << "Listening on " << args.unix_path << " ..." << std::endl;
      sock = listener.accept().first;
    } else if (args.udp) {
      sock = open_udp(args.host, args.port, true);
      const address local = sock.getsockname();
      std::cerr << "Listening on " << local.host() << " port " << local.port() << " (UDP) ..."
                << std::endl;
      // The first datagram says who the peer is: print it and answer there.
      std::array<char, 64 * 1024> first;
      auto [n, peer] = sock.recvfrom_into(first);
      write_all(STDOUT_FILENO, first.data(), n);
      sock.connect(peer);
    } else {
      server_options options;
      options.family =
          getaddrinfo(args.host, args.port, AF_UNSPEC, SOCK_STREAM, 0, AI_PASSIVE).front().family;
      options.backlog = 1;
      socket listener = create_server({args.host, args.port}, options);
      const address local = listener.getsockname();
      std::cerr << "Listening on " << local.host() << " port " << local.port() << " ..."
                << std::endl;
      sock = listener.accept().first;  // one connection, as nc -l; the listener closes here
    }
    status = relay(sock, args, "listen");
  } catch (const os_error& e) {
    std::cerr << "pysock listen: " << e.what() << '\n';
  }
  if (unlink_path) ::unlink(args.unix_path.c_str());
  return status;
}

}  // namespace pysock::tools
