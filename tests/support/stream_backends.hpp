// SPDX-License-Identifier: MIT
//
// For stream tests that run once per loop backend: a fixture owning a loop
// of the test's backend (the io_uring instance skips, with the loop's own
// reason, where the loop fell back to epoll), and a stream pair over a
// socket pair or loopback TCP whose other end is a plain socket.
#pragma once

#include <pysock/streams.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

namespace test_support {

struct stream_pair {
  pysock::stream_reader reader;
  pysock::stream_writer writer;
  pysock::socket peer;  // the other end, a plain blocking socket
};

inline stream_pair make_stream_pair(pysock::event_loop& loop, pysock::stream_limits limits = {}) {
  auto [ours, theirs] = pysock::socketpair();
  auto [reader, writer] = pysock::make_streams(loop, std::move(ours), limits);
  return {std::move(reader), std::move(writer), std::move(theirs)};
}

// The same over loopback TCP: the peer is the connecting side.
// `socket_buffer` (when not 0) fixes both ends' SO_SNDBUF/SO_RCVBUF, which
// also stops the kernel's autotuning: what is in flight stays bounded.
inline stream_pair make_tcp_stream_pair(pysock::event_loop& loop, pysock::stream_limits limits = {},
                                        int socket_buffer = 0) {
  pysock::socket listener = pysock::create_server(pysock::address("127.0.0.1", 0));
  pysock::socket peer(AF_INET, SOCK_STREAM);
  if (socket_buffer != 0) {
    peer.setsockopt(pysock::so_sndbuf, socket_buffer);
    peer.setsockopt(pysock::so_rcvbuf, socket_buffer);
  }
  peer.connect(listener.getsockname());
  auto accepted = listener.accept();
  if (socket_buffer != 0) {
    accepted.first.setsockopt(pysock::so_sndbuf, socket_buffer);
    accepted.first.setsockopt(pysock::so_rcvbuf, socket_buffer);
  }
  auto [reader, writer] = pysock::make_streams(loop, std::move(accepted.first), limits);
  return {std::move(reader), std::move(writer), std::move(peer)};
}

class on_each_backend : public testing::TestWithParam<pysock::loop_backend> {
 protected:
  void SetUp() override {
    testing::internal::CaptureStderr();
    loop_ = std::make_unique<pysock::event_loop>(pysock::loop_options{GetParam()});
    const std::string log = testing::internal::GetCapturedStderr();
    if (loop_->backend() != GetParam())
      GTEST_SKIP() << "the " << pysock::to_string(GetParam())
                   << " backend is not available here; the loop fell back to "
                   << pysock::to_string(loop_->backend()) << ": " << log;
  }
  // Runs `body` on the test's loop, failing it after 20 s instead of hanging.
  template <class T>
  T run_bounded(pysock::task<T> body) {
    return loop_->run_until_complete(pysock::wait_for(std::move(body), std::chrono::seconds(20)));
  }
  bool on_ring() const { return GetParam() == pysock::loop_backend::io_uring; }
  std::unique_ptr<pysock::event_loop> loop_;
};

inline std::string backend_name(const testing::TestParamInfo<pysock::loop_backend>& info) {
  return std::string(pysock::to_string(info.param));
}

}  // namespace test_support

// INSTANTIATE_TEST_SUITE_P for a fixture derived from on_each_backend.
#define PYSOCK_ON_EACH_BACKEND(fixture)                                             \
  INSTANTIATE_TEST_SUITE_P(                                                         \
      backends, fixture,                                                            \
      testing::Values(pysock::loop_backend::epoll, pysock::loop_backend::io_uring), \
      test_support::backend_name)
