// SPDX-License-Identifier: MIT
//
// baseline_asio_echo: standalone asio (Debian libasio-dev, header-only)
// echo server for bench/run_loop.sh: one io_context on one thread,
// async_read_some into a per-connection 4 KiB buffer, async_write of what
// was read, then read again (the asio examples' echo server).
//
// usage: baseline_asio_echo [--port P] [--count N]
//   listens on 127.0.0.1 only; prints "listening on 127.0.0.1:PORT";
//   --count N returns after N connections closed.
#define ASIO_STANDALONE
#include <asio.hpp>

#include <array>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>

using asio::ip::tcp;

namespace {

long g_count = -1, g_closed = 0;
asio::io_context* g_io = nullptr;

class session : public std::enable_shared_from_this<session> {
 public:
  explicit session(tcp::socket s) : socket_(std::move(s)) {}
  ~session() {
    if (g_count > 0 && ++g_closed >= g_count) g_io->stop();
  }
  void start() { do_read(); }

 private:
  void do_read() {
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(data_), [this, self](std::error_code ec, std::size_t n) {
      if (!ec) do_write(n);
    });
  }
  void do_write(std::size_t n) {
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(data_, n),
                      [this, self](std::error_code ec, std::size_t) {
                        if (!ec) do_read();
                      });
  }
  tcp::socket socket_;
  std::array<char, 4096> data_;
};

void do_accept(tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](std::error_code ec, tcp::socket s) {
    if (!ec) {
      s.set_option(tcp::no_delay(true));
      std::make_shared<session>(std::move(s))->start();
    }
    do_accept(acceptor);
  });
}

}  // namespace

int main(int argc, char** argv) {
  int port = 8084;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--port") == 0)
      port = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--count") == 0)
      g_count = std::atol(argv[i + 1]);
  }
  asio::io_context io(1);
  g_io = &io;
  tcp::acceptor acceptor(io);
  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
  acceptor.open(ep.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(ep);
  acceptor.listen(4096);
  std::cout << "listening on 127.0.0.1:" << acceptor.local_endpoint().port() << std::endl;
  do_accept(acceptor);
  io.run();
  return 0;
}
