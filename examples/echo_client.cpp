// SPDX-License-Identifier: MIT
//
// echo_client — the tutorial's echo client, line for line with pysock:
//
//   sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
//   sock.connect(('127.0.0.1', 8080))
//   sock.sendall(b'Hello, World')
//   data = sock.recv(1024)
//   sock.close()
//   print(data)
//
// One change: the tutorial's server echoes only after the client has finished
// sending, so the client says so with shutdown(SHUT_WR) (the server's recv()
// then returns empty) and reads until the server closes, instead of hoping a
// single recv(1024) gets the whole answer.
//
// Usage: echo_client [host] [port] [message]
//   (default 127.0.0.1 8080 "Hello, World"); prints what came back.
#include <pysock/pysock.hpp>

#include <iostream>
#include <stdexcept>
#include <string>

int main(int argc, char** argv) {
  const std::string host = argc > 1 ? argv[1] : "127.0.0.1";
  const std::string message = argc > 3 ? argv[3] : "Hello, World";
  int port = 8080;
  try {
    if (argc > 2) port = std::stoi(argv[2]);
  } catch (const std::logic_error&) {
    std::cerr << "usage: echo_client [host] [port] [message]\n";
    return 2;
  }

  try {
    pysock::socket sock(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    sock.connect({host, port});
    sock.sendall(message);
    sock.shutdown(SHUT_WR);  // "that's all": the server sees EOF

    pysock::bytes data;
    while (true) {
      pysock::bytes temp = sock.recv(1024);
      if (temp.empty()) break;  // the server closed: we have everything
      data += temp;
    }
    sock.close();
    std::cout << data << '\n';
  } catch (const pysock::os_error& e) {
    // e.g. "connect(127.0.0.1:8080): [Errno 111] Connection refused"
    std::cerr << "echo_client: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
