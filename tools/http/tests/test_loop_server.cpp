// SPDX-License-Identifier: MIT
// The event-loop transport end to end on loopback: its small-file cache is
// stat'ed once per loop iteration, after every receive that iteration
// answers (loop_server.cpp, loop_listener::defer()), so a file changed
// between two requests — on one connection or on two — is served fresh, and
// pipelined batches on many connections at once are all answered.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <pysock/socket.hpp>

#include "http/file_resolver.hpp"
#include "http/loop_server.hpp"
#include "http/session.hpp"

using namespace pysock::http;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// One HTTP client connection with blocking I/O bounded by a 5 s timeout.
class client {
 public:
  explicit client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0);
    const timeval timeout{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0;
    EXPECT_TRUE(connected_) << std::strerror(errno);
  }
  client(const client&) = delete;
  client& operator=(const client&) = delete;
  ~client() {
    if (fd_ >= 0) ::close(fd_);
  }

  void send(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << std::strerror(errno);
      sent += static_cast<std::size_t>(n);
    }
  }

  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  struct response {
    int status = 0;
    std::string body;
  };

  // One response: the head up to its blank line, then Content-Length bytes
  // (every answer of this server has one). status 0: the connection ended
  // or timed out first.
  response read_response() {
    response r;
    std::size_t head_end;
    while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos)
      if (!fill()) return r;
    const std::string head = buffer_.substr(0, head_end);
    std::sscanf(head.c_str(), "HTTP/1.1 %d", &r.status);
    std::size_t length = 0;
    const std::size_t at = head.find("\r\nContent-Length: ");
    if (at != std::string::npos) length = std::strtoul(head.c_str() + at + 18, nullptr, 10);
    while (buffer_.size() < head_end + 4 + length)
      if (!fill()) return {};
    r.body = buffer_.substr(head_end + 4, length);
    buffer_.erase(0, head_end + 4 + length);
    return r;
  }

  // True when the server has closed the connection (and sent nothing more).
  bool closed_by_server() {
    char c;
    return buffer_.empty() && ::recv(fd_, &c, 1, 0) == 0;
  }

 private:
  bool fill() {
    char chunk[16384];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

std::string get(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "\r\n";
}

class LoopServer : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/pysock-http-loop.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    write("f.txt", "version 1\n");
    root_ = std::make_unique<document_root>(dir_.string());
    context_.root = root_.get();
    stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
    ASSERT_GE(stop_fd_, 0);

    pysock::socket listener(AF_INET, SOCK_STREAM);
    listener.bind(pysock::address("127.0.0.1", 0));
    listener.listen();
    port_ = listener.getsockname().port();
    std::vector<pysock::socket> listeners;
    listeners.push_back(std::move(listener));

    // A file is cached once its ctime is this old (file_cache.hpp: a change
    // then always moves the ctime, whatever the clock's grain). f.txt is
    // made old enough below, so requests after the first are answered from
    // the cache until it changes.
    options_.cache.settle = 200ms;
    std::this_thread::sleep_for(300ms);
    options_.stop_fd = stop_fd_;
    options_.wait_for_stop = [this] {
      pollfd p{stop_fd_, POLLIN, 0};
      while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
      }
    };
    options_.request_stop = [this] { raise_stop(); };
    server_ = std::thread([this, l = std::move(listeners)]() mutable {
      try {
        serve_loops(std::move(l), context_, options_);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "serve_loops: " << e.what();
      }
    });
  }

  void TearDown() override {
    raise_stop();
    if (server_.joinable()) server_.join();
    if (stop_fd_ >= 0) ::close(stop_fd_);
    fs::remove_all(dir_);
  }

  void raise_stop() {
    const std::uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof one);
  }

  void write(const std::string& name, const std::string& content) {
    std::ofstream(dir_ / name, std::ios::binary | std::ios::trunc) << content;
  }

  fs::path dir_;
  std::unique_ptr<document_root> root_;
  server_context context_;
  loop_transport_options options_;
  int stop_fd_ = -1;
  int port_ = 0;
  std::thread server_;
};

}  // namespace

TEST_F(LoopServer, AFileChangedBetweenTwoRequestsIsServedFresh) {
  client a(port_);
  client b(port_);
  a.send(get("/f.txt"));
  EXPECT_EQ(a.read_response().body, "version 1\n");
  a.send(get("/f.txt"));  // from the cache now
  EXPECT_EQ(a.read_response().body, "version 1\n");

  // Rewritten in place, same size: the next request on the same connection
  // sees it, and so does one on another connection.
  {
    std::fstream f(dir_ / "f.txt", std::ios::in | std::ios::out | std::ios::binary);
    f << "VERSION";
  }
  a.send(get("/f.txt"));
  EXPECT_EQ(a.read_response().body, "VERSION 1\n");
  b.send(get("/f.txt"));
  EXPECT_EQ(b.read_response().body, "VERSION 1\n");

  // Replaced by a rename, same size again: first asked on the other one.
  write("f.tmp", "version 3\n");
  fs::rename(dir_ / "f.tmp", dir_ / "f.txt");
  b.send(get("/f.txt"));
  EXPECT_EQ(b.read_response().body, "version 3\n");
  a.send(get("/f.txt"));
  EXPECT_EQ(a.read_response().body, "version 3\n");

  fs::remove(dir_ / "f.txt");
  a.send(get("/f.txt"));
  EXPECT_EQ(a.read_response().status, 404);
  b.send(get("/f.txt"));
  EXPECT_EQ(b.read_response().status, 404);
}

// A change made between two pipelined batches on one connection is seen by
// every request of the second batch (each batch is a receive of its own).
TEST_F(LoopServer, AChangeBetweenPipelinedBatchesIsSeenByTheWholeNextBatch) {
  client a(port_);
  std::string batch;
  for (int i = 0; i < 8; ++i) batch += get("/f.txt");
  a.send(batch);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(a.read_response().body, "version 1\n") << i;
  write("f.tmp", "version 2, longer\n");
  fs::rename(dir_ / "f.tmp", dir_ / "f.txt");
  a.send(batch);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(a.read_response().body, "version 2, longer\n") << i;
}

// Many connections whose batches arrive together are answered in one round
// after one freshness point: every request gets its own answer, in order.
TEST_F(LoopServer, PipelinedBatchesOnManyConnectionsAreAllAnswered) {
  write("g.txt", "gee\n");
  constexpr int connections = 12;
  constexpr int depth = 16;
  std::vector<std::unique_ptr<client>> clients;
  for (int c = 0; c < connections; ++c) clients.push_back(std::make_unique<client>(port_));
  for (int round = 0; round < 3; ++round) {
    for (int c = 0; c < connections; ++c) {
      std::string batch;
      for (int i = 0; i < depth; ++i) batch += get(i % 2 == 0 ? "/f.txt" : "/g.txt");
      clients[static_cast<std::size_t>(c)]->send(batch);
    }
    for (int c = 0; c < connections; ++c) {
      for (int i = 0; i < depth; ++i) {
        const client::response r = clients[static_cast<std::size_t>(c)]->read_response();
        EXPECT_EQ(r.status, 200) << "connection " << c << " request " << i;
        EXPECT_EQ(r.body, i % 2 == 0 ? "version 1\n" : "gee\n") << c << " " << i;
      }
    }
  }
}

// Requests followed at once by the client's FIN are answered before the
// server closes; a malformed one is answered 400 and the connection closed,
// while a well-formed neighbour in the same round is served.
TEST_F(LoopServer, RequestsBeforeEofAndMalformedOnesGetTheirAnswers) {
  client a(port_);
  client bad(port_);
  a.send(get("/f.txt") + get("/missing.txt"));
  a.shutdown_write();
  bad.send("GARBAGE\r\n\r\n");
  EXPECT_EQ(a.read_response().body, "version 1\n");
  EXPECT_EQ(a.read_response().status, 404);
  EXPECT_TRUE(a.closed_by_server());
  EXPECT_EQ(bad.read_response().status, 400);
  EXPECT_TRUE(bad.closed_by_server());
}
