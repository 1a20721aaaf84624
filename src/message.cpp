// SPDX-License-Identifier: MIT
//
// Message I/O: sendmsg/recvmsg with ancillary data, scatter/gather, and
// descriptor passing (send_fds/recv_fds) over SCM_RIGHTS.
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "io_wait.hpp"
#include "pysock/socket.hpp"

namespace pysock {
namespace {

// Control buffers must be aligned for cmsghdr; max_align_t storage is. The
// usual sizes (a few descriptors, credentials) fit on the stack.
class control_buffer {
 public:
  explicit control_buffer(std::size_t size) : size_(size) {
    if (size_ > sizeof small_) {
      large_ = std::make_unique<std::max_align_t[]>((size_ + sizeof(std::max_align_t) - 1) /
                                                    sizeof(std::max_align_t));
      data_ = large_.get();
    }
    if (size_) std::memset(data_, 0, size_);  // unused padding must be zero
  }
  void* data() const noexcept { return size_ ? data_ : nullptr; }
  std::size_t size() const noexcept { return size_; }

 private:
  std::max_align_t small_[256 / sizeof(std::max_align_t)];
  std::unique_ptr<std::max_align_t[]> large_;
  void* data_ = small_;
  std::size_t size_;
};

// Most calls gather a handful of buffers: keep their iovecs on the stack.
class iovec_array {
 public:
  template <class Buffer>
  explicit iovec_array(std::span<const Buffer> buffers) {
    iovec* out = small_;
    if (buffers.size() > std::size(small_)) {
      large_.resize(buffers.size());
      out = large_.data();
    }
    for (std::size_t i = 0; i < buffers.size(); ++i) {
      out[i].iov_base = const_cast<std::byte*>(buffers[i].data());  // sendmsg does not write
      out[i].iov_len = buffers[i].size();
    }
    data_ = out;
    size_ = buffers.size();
  }
  iovec* data() noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }

 private:
  iovec small_[16];
  std::vector<iovec> large_;
  iovec* data_ = nullptr;
  std::size_t size_ = 0;
};

constexpr std::size_t max_ancillary_buffer = std::size_t{1} << 20;

// Closes every descriptor an SCM_RIGHTS message delivered: used when the
// results cannot be handed to the caller, so none is leaked.
void close_received_descriptors(const msghdr& msg) noexcept {
  const auto* end = static_cast<const unsigned char*>(msg.msg_control) + msg.msg_controllen;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
       c = CMSG_NXTHDR(const_cast<msghdr*>(&msg), c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t length = c->cmsg_len > CMSG_LEN(0) ? c->cmsg_len - CMSG_LEN(0) : 0;
    if (CMSG_DATA(c) + length > end)
      length = CMSG_DATA(c) < end ? static_cast<std::size_t>(end - CMSG_DATA(c)) : 0;
    const std::size_t count = length / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      ::close(fd);
    }
  }
}

std::vector<ancillary> parse_ancillary(const msghdr& msg) {
  std::vector<ancillary> items;
  const auto* end = static_cast<const unsigned char*>(msg.msg_control) + msg.msg_controllen;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
       c = CMSG_NXTHDR(const_cast<msghdr*>(&msg), c)) {
    const unsigned char* data = CMSG_DATA(c);
    std::size_t length = c->cmsg_len > CMSG_LEN(0) ? c->cmsg_len - CMSG_LEN(0) : 0;
    // A truncated item (MSG_CTRUNC) may claim more than the buffer holds.
    if (data + length > end) length = data < end ? static_cast<std::size_t>(end - data) : 0;
    items.push_back(
        {c->cmsg_level, c->cmsg_type, bytes(reinterpret_cast<const char*>(data), length)});
  }
  return items;
}

}  // namespace

std::size_t cmsg_len(std::size_t data_length) {
  if (data_length > INT_MAX - CMSG_SPACE(0))
    throw std::out_of_range("CMSG_LEN() argument out of range");
  return CMSG_LEN(data_length);
}

std::size_t cmsg_space(std::size_t data_length) {
  if (data_length > INT_MAX - 2 * CMSG_SPACE(0))
    throw std::out_of_range("CMSG_SPACE() argument out of range");
  return CMSG_SPACE(data_length);
}

std::size_t socket::sendmsg(std::span<const const_buffer> buffers,
                            std::span<const ancillary> ancdata, int flags,
                            const pysock::address& addr, std::error_code& ec) {
  iovec_array iov(buffers);
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = iov.size();
  sockaddr_buffer target;
  if (!addr.empty()) {
    target = addr.to_sockaddr(family_, ec);
    if (ec) return 0;
    msg.msg_name = target.get();
    msg.msg_namelen = target.length;
  }
  std::size_t control_size = 0;
  for (const ancillary& item : ancdata) control_size += cmsg_space(item.data.size());
  const control_buffer control(control_size);
  if (control_size) {
    msg.msg_control = control.data();
    msg.msg_controllen = control_size;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    for (const ancillary& item : ancdata) {
      c->cmsg_level = item.level;
      c->cmsg_type = item.type;
      c->cmsg_len = CMSG_LEN(item.data.size());
      if (!item.data.empty()) std::memcpy(CMSG_DATA(c), item.data.data(), item.data.size());
      c = CMSG_NXTHDR(&msg, c);
    }
  }
  const int all_flags = flags | MSG_NOSIGNAL | detail::timeout_flags(timeout_ns_);
  const ssize_t n = detail::call_with_timeout(fd_, timeout_ns_, POLLOUT, ec,
                                              [&] { return ::sendmsg(fd_, &msg, all_flags); });
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}

std::size_t socket::sendmsg(std::span<const const_buffer> buffers,
                            std::span<const ancillary> ancdata, int flags,
                            const pysock::address& addr) {
  std::error_code ec;
  const std::size_t n = sendmsg(buffers, ancdata, flags, addr, ec);
  if (ec)
    throw_os_error(ec, addr.empty() ? describe("sendmsg") : "sendmsg(" + addr.to_string() + ")");
  return n;
}

recvmsg_into_result socket::recvmsg_into(std::span<const mutable_buffer> buffers,
                                         std::size_t ancbufsize, int flags, std::error_code& ec) {
  recvmsg_into_result result;
  if (ancbufsize > max_ancillary_buffer) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return result;
  }
  iovec_array iov(buffers);
  const control_buffer control(ancbufsize);
  sockaddr_storage peer;
  msghdr msg{};
  const int all_flags = flags | MSG_CMSG_CLOEXEC | detail::timeout_flags(timeout_ns_);
  const ssize_t n = detail::call_with_timeout(fd_, timeout_ns_, POLLIN, ec, [&] {
    msg = msghdr{};
    msg.msg_name = &peer;
    msg.msg_namelen = sizeof peer;
    msg.msg_iov = iov.data();
    msg.msg_iovlen = iov.size();
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    // Received descriptors are close-on-exec (PEP 446), a deliberate
    // difference from CPython, which leaves them inheritable.
    return ::recvmsg(fd_, &msg, all_flags);
  });
  if (n < 0) return result;
  try {
    result.nbytes = static_cast<std::size_t>(n);
    // Linux echoes MSG_CMSG_CLOEXEC back in msg_flags; it says nothing about
    // the message, so only a caller who asked for it sees it.
    const int echoed = (flags & MSG_CMSG_CLOEXEC) != 0 ? 0 : MSG_CMSG_CLOEXEC;
    result.msg_flags = msg.msg_flags & ~echoed;
    if (msg.msg_controllen > 0) result.ancdata = parse_ancillary(msg);
    result.address = address::from_sockaddr(reinterpret_cast<sockaddr*>(&peer), msg.msg_namelen);
  } catch (...) {
    close_received_descriptors(msg);
    throw;
  }
  return result;
}

recvmsg_into_result socket::recvmsg_into(std::span<const mutable_buffer> buffers,
                                         std::size_t ancbufsize, int flags) {
  if (ancbufsize > max_ancillary_buffer)
    throw std::invalid_argument("invalid ancillary data buffer length");
  std::error_code ec;
  recvmsg_into_result result = recvmsg_into(buffers, ancbufsize, flags, ec);
  if (ec) throw_os_error(ec, describe("recvmsg_into"));
  return result;
}

recvmsg_result socket::recvmsg(std::size_t bufsize, std::size_t ancbufsize, int flags) {
  if (ancbufsize > max_ancillary_buffer)
    throw std::invalid_argument("invalid ancillary data buffer length");
  bytes data(bufsize, '\0');
  const mutable_buffer buffer(data);
  std::error_code ec;
  recvmsg_into_result received =
      recvmsg_into(std::span<const mutable_buffer>(&buffer, 1), ancbufsize, flags, ec);
  if (ec) throw_os_error(ec, describe("recvmsg"));
  // With MSG_TRUNC the kernel reports the datagram's real length, which may
  // exceed what fitted: the data is what fitted.
  data.resize(std::min(received.nbytes, bufsize));
  return {std::move(data), std::move(received.ancdata), received.msg_flags,
          std::move(received.address)};
}

// --- descriptor passing ---------------------------------------------------------

file_descriptor& file_descriptor::operator=(file_descriptor&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

file_descriptor::~file_descriptor() { close(); }

void file_descriptor::close() noexcept {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

std::size_t send_fds(socket& sock, std::span<const const_buffer> buffers, std::span<const int> fds,
                     int flags, const address& addr) {
  ancillary rights{SOL_SOCKET, SCM_RIGHTS,
                   bytes(reinterpret_cast<const char*>(fds.data()), fds.size_bytes())};
  return sock.sendmsg(buffers, std::span<const ancillary>(&rights, 1), flags, addr);
}

recv_fds_result recv_fds(socket& sock, std::size_t bufsize, std::size_t maxfds, int flags) {
  // CMSG_LEN, not CMSG_SPACE: the padding of CMSG_SPACE could make room for
  // one descriptor more than asked for.
  if (maxfds > (std::size_t{1} << 20) / sizeof(int))
    throw std::invalid_argument("recv_fds: maxfds too large (" + std::to_string(maxfds) + ")");
  recvmsg_result received =
      sock.recvmsg(bufsize, maxfds ? cmsg_len(maxfds * sizeof(int)) : 0, flags);
  recv_fds_result result;
  // Take ownership of every descriptor before anything can throw: reserve
  // (which may) first, then wrap (which cannot). A trailing partial int is
  // dropped, as in Python.
  std::size_t count = 0;
  for (const ancillary& item : received.ancdata) {
    if (item.level == SOL_SOCKET && item.type == SCM_RIGHTS)
      count += item.data.size() / sizeof(int);
  }
  try {
    result.fds.reserve(count);
  } catch (...) {
    for (const ancillary& item : received.ancdata) {
      if (item.level != SOL_SOCKET || item.type != SCM_RIGHTS) continue;
      for (std::size_t i = 0; i + sizeof(int) <= item.data.size(); i += sizeof(int)) {
        int fd;
        std::memcpy(&fd, item.data.data() + i, sizeof fd);
        ::close(fd);
      }
    }
    throw;
  }
  for (const ancillary& item : received.ancdata) {
    if (item.level != SOL_SOCKET || item.type != SCM_RIGHTS) continue;
    for (std::size_t i = 0; i + sizeof(int) <= item.data.size(); i += sizeof(int)) {
      int fd;
      std::memcpy(&fd, item.data.data() + i, sizeof fd);
      result.fds.emplace_back(fd);
    }
  }
  result.data = std::move(received.data);
  result.msg_flags = received.msg_flags;
  result.address = std::move(received.address);
  return result;
}

}  // namespace pysock
