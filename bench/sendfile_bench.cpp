// SPDX-License-Identifier: MIT
//
// sendfile_bench — Advanced I/O throughput over loopback TCP, side by side in
// one run:
//   1. a file (default 256 MiB, in /tmp, removed afterwards) sent with
//      socket::sendfile (zero-copy sendfile(2)) vs a read() + sendall() loop
//      with a 64 KiB buffer, as a program without sendfile would do;
//   2. 16 small buffers sent with one socket::sendmsg (gather) vs 16
//      socket::send calls.
// A reader thread drains the connection into one buffer (recv_into); a run's
// time is from the first byte sent to the last byte received. Each case runs
// --repeat times and reports the best and the median.
//
// Usage: sendfile_bench [--size MiB] [--repeat N] [--dir DIR] [--batches N]
// Output: markdown table rows (run_advanced.sh puts them in docs/benchmarks.md).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pysock/pysock.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct options {
  std::uint64_t size_mib = 256;
  int repeat = 5;
  std::string dir = "/tmp";
  long batches = 100000;
};

struct connection {
  pysock::socket sender;
  pysock::socket receiver;
};

connection loopback_tcp() {
  pysock::socket listener = pysock::create_server({"127.0.0.1", 0});
  pysock::socket client = pysock::create_connection(listener.getsockname());
  auto accepted = listener.accept();
  client.setsockopt(pysock::tcp_nodelay, true);
  return {std::move(client), std::move(accepted.first)};
}

// Drains `total` bytes on a thread while `send` runs; returns seconds.
double timed_transfer(std::uint64_t total, const std::function<void(pysock::socket&)>& send) {
  connection c = loopback_tcp();
  std::atomic<std::uint64_t> received{0};
  std::thread reader([&] {
    std::vector<char> buffer(1 << 20);
    std::uint64_t got = 0;
    while (got < total) {
      const std::size_t n = c.receiver.recv_into(buffer);
      if (n == 0) break;
      got += n;
    }
    received = got;
  });
  const auto start = clock_type::now();
  send(c.sender);
  reader.join();
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  if (received != total)
    throw std::runtime_error("short transfer: " + std::to_string(received.load()) + " of " +
                             std::to_string(total));
  return seconds;
}

struct summary {
  double best;
  double median;
};

summary summarize(std::vector<double> rates) {
  std::sort(rates.begin(), rates.end());
  return {rates.back(), rates[rates.size() / 2]};
}

std::string fmt(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.0f", value);
  return text;
}

// A file of `size` bytes of non-repeating data (not sparse: a sparse file
// would be read from the zero page, not the page cache).
int make_file(const options& o, std::uint64_t size) {
  std::string path = o.dir + "/pysock-sendfile-bench-XXXXXX";
  const int fd = ::mkstemp(path.data());
  if (fd < 0) throw std::runtime_error("mkstemp in " + o.dir + ": " + std::strerror(errno));
  ::unlink(path.c_str());  // removed even if we crash; space freed at close
  std::vector<char> block(1 << 20);
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  for (std::uint64_t written = 0; written < size;) {
    for (auto& c : block) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      c = static_cast<char>(x);
    }
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), size - written));
    if (::write(fd, block.data(), n) != static_cast<ssize_t>(n))
      throw std::runtime_error("write failed");
    written += n;
  }
  return fd;
}

void read_send_loop(pysock::socket& sock, int fd) {
  std::vector<char> buffer(64 * 1024);
  ::lseek(fd, 0, SEEK_SET);
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(std::string("read: ") + std::strerror(errno));
    if (n == 0) break;
    sock.sendall(pysock::const_buffer(buffer.data(), static_cast<std::size_t>(n)));
  }
}

void file_cases(const options& o) {
  const std::uint64_t size = o.size_mib << 20;
  const int fd = make_file(o, size);
  const double mib = static_cast<double>(size) / (1 << 20);
  // Warm the page cache so both methods read from memory.
  timed_transfer(size, [&](pysock::socket& s) { read_send_loop(s, fd); });

  std::vector<double> zero_copy, copy;
  for (int i = 0; i < o.repeat; ++i) {  // interleaved, so drift hits both alike
    zero_copy.push_back(mib / timed_transfer(size, [&](pysock::socket& s) {
                          if (s.sendfile(fd) != size)
                            throw std::runtime_error("sendfile sent less");
                        }));
    copy.push_back(mib / timed_transfer(size, [&](pysock::socket& s) { read_send_loop(s, fd); }));
  }
  ::close(fd);
  const summary a = summarize(zero_copy), b = summarize(copy);
  std::cout << "| sendfile(), " << o.size_mib << " MiB file | " << fmt(a.best) << " MiB/s | "
            << fmt(a.median) << " MiB/s | "
            << "1.00 |\n";
  std::cout << "| read() + sendall() loop, 64 KiB buffer | " << fmt(b.best) << " MiB/s | "
            << fmt(b.median) << " MiB/s | " << std::to_string(b.median / a.median).substr(0, 4)
            << " |\n";
}

void gather_cases(const options& o, std::size_t buffer_size) {
  std::vector<std::string> parts(16, std::string(buffer_size, 'g'));
  const std::vector<pysock::const_buffer> buffers(parts.begin(), parts.end());
  const std::uint64_t total = static_cast<std::uint64_t>(o.batches) * 16 * buffer_size;
  const double batches = static_cast<double>(o.batches);
  std::vector<double> gathered, separate;
  for (int i = 0; i < o.repeat; ++i) {
    gathered.push_back(batches / timed_transfer(total, [&](pysock::socket& s) {
                         for (long b = 0; b < o.batches; ++b) {
                           // sendmsg may send part on a stream: finish the rest as sendall would.
                           std::size_t skip = s.sendmsg(buffers);
                           for (const auto& buffer : buffers) {
                             if (skip >= buffer.size()) {
                               skip -= buffer.size();
                               continue;
                             }
                             s.sendall(buffer.subspan(skip));
                             skip = 0;
                           }
                         }
                       }));
    separate.push_back(batches / timed_transfer(total, [&](pysock::socket& s) {
                         for (long b = 0; b < o.batches; ++b)
                           for (const auto& buffer : buffers) s.sendall(buffer);
                       }));
  }
  const summary a = summarize(gathered), b = summarize(separate);
  const double per_batch_mib = 16.0 * static_cast<double>(buffer_size) / (1 << 20);
  std::cout << "| sendmsg() of 16 x " << buffer_size << " B | " << fmt(a.best) << " batches/s ("
            << fmt(a.best * per_batch_mib) << " MiB/s) | " << fmt(a.median)
            << " batches/s | 1.00 |\n";
  std::cout << "| 16 x send() of " << buffer_size << " B | " << fmt(b.best) << " batches/s ("
            << fmt(b.best * per_batch_mib) << " MiB/s) | " << fmt(b.median) << " batches/s | "
            << std::to_string(b.median / a.median).substr(0, 4) << " |\n";
}

int usage() {
  std::cerr << "usage: sendfile_bench [--size MiB] [--repeat N] [--dir DIR] [--batches N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string_view arg = argv[i];
      if (i + 1 >= argc) return usage();
      if (arg == "--size")
        o.size_mib = std::stoull(argv[++i]);
      else if (arg == "--repeat")
        o.repeat = std::stoi(argv[++i]);
      else if (arg == "--dir")
        o.dir = argv[++i];
      else if (arg == "--batches")
        o.batches = std::stol(argv[++i]);
      else
        return usage();
    }
    if (o.size_mib == 0 || o.repeat <= 0 || o.batches <= 0) return usage();
  } catch (const std::logic_error&) {
    return usage();
  }
  try {
    std::cout
        << "| case | best | median | median vs the first row of its pair |\n|---|---|---|---|\n";
    file_cases(o);
    gather_cases(o, 64);
    gather_cases(o, 1024);
  } catch (const std::exception& e) {
    std::cerr << "sendfile_bench: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
