// SPDX-License-Identifier: MIT
#include "http/blocking_server.hpp"

#include <poll.h>

#include <algorithm>
#include <array>

namespace pysock::http {
namespace {

using clock = std::chrono::steady_clock;

int poll_timeout_ms(std::optional<clock::time_point> deadline) {
  if (!deadline) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

// After the last response: stop sending (FIN), then read and discard what
// the client still sends, for a short while. Closing with unread input would
// make the kernel answer with RST, and a client that pipelined more requests
// after one we refused could lose our response before reading it (the
// "lingering close" of Apache and nginx).
void lingering_close(socket& conn, bool peer_closed) {
  std::error_code ec;
  if (!peer_closed) {
    try {
      conn.shutdown(SHUT_WR);
    } catch (const os_error&) {
      return;  // not connected any more: nothing to drain
    }
    const auto deadline = clock::now() + std::chrono::seconds(1);
    std::array<char, 4096> sink;
    std::size_t drained = 0;
    while (drained < 256 * 1024) {
      pollfd p{conn.fileno(), POLLIN, 0};
      const int ready = ::poll(&p, 1, poll_timeout_ms(deadline));
      if (ready <= 0) break;  // deadline (or EINTR: give up, it is only a courtesy)
      const std::size_t n = conn.recv_into(sink, 0, 0, ec);
      if (ec || n == 0) break;
      drained += n;
    }
  }
  try {
    conn.close();
  } catch (const os_error&) {
  }
}

}  // namespace

void serve_connection_blocking(socket& conn, const server_context& context, std::string client,
                               int stop_fd, std::chrono::milliseconds write_timeout) {
  bool peer_closed = false;
  bool stopping = false;
  try {
    // Timeout mode: every send waits at most write_timeout for buffer room.
    conn.settimeout(write_timeout);
    session s(context, std::move(client));
    while (!s.done()) {
      if (s.has_output()) {
        const session::output out = s.next_output();
        if (out.file_fd >= 0) {
          const std::size_t sent = conn.sendfile(out.file_fd, out.offset, out.count);
          // Fewer bytes than Content-Length promised: the file shrank while
          // being sent. The framing is broken; only closing tells the client.
          if (sent < out.count) break;
          s.advance(sent);
        } else {
          // MSG_MORE when a file follows the head: the head and the file's
          // first bytes share a segment instead of the head going alone.
          conn.sendall(out.bytes, out.more ? MSG_MORE : 0);
          s.advance(out.bytes.size());
        }
        continue;
      }
      // Server stopping: a connection between requests closes now; one with a
      // request half received gets until its header deadline, like any other.
      if (stopping && s.idle()) break;
      std::array<pollfd, 2> fds{{{conn.fileno(), POLLIN, 0}, {stopping ? -1 : stop_fd, POLLIN, 0}}};
      const int ready = ::poll(fds.data(), fds.size(), poll_timeout_ms(s.read_deadline()));
      if (ready < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (ready == 0) {
        s.on_timeout();
        continue;
      }
      if (fds[1].revents != 0) stopping = true;
      if (fds[0].revents == 0) continue;
      std::error_code ec;
      const std::size_t n = conn.recv_into(s.read_space(), 0, 0, ec);
      if (ec) {
        if (ec == std::errc::operation_would_block || ec == std::errc::interrupted) continue;
        peer_closed = true;  // reset: nobody to answer
        break;
      }
      if (n == 0) {
        peer_closed = true;
        s.on_eof();
      } else {
        s.on_received(n);
      }
    }
  } catch (const os_error&) {
    // The peer reset, vanished or stopped reading (timeout) mid-response:
    // only this connection ends. Its open files close with the session.
    peer_closed = true;
  }
  lingering_close(conn, peer_closed);
}

}  // namespace pysock::http
