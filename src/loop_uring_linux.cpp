// SPDX-License-Identifier: MIT
//
// The io_uring proactor: the event loop's second backend, chosen with
// PYSOCK_LOOP=io_uring or loop_options{.backend = loop_backend::io_uring}.
// Built when CMake finds liburing (PYSOCK_HAVE_IO_URING); the loop falls back
// to epoll with one log line when the kernel refuses the ring.
//
// What goes to the kernel as a request (user_data = the io_op, which lives in
// the waiting coroutine's frame or in a stream's transport):
//   sock_recv / sock_recv_into   IORING_OP_RECV at once (no recv() first: the
//                                completion brings the data, one request and
//                                no readiness round trip); sock_recv names the
//                                loop's provided-buffer ring instead of a
//                                buffer, so a waiting sock_recv holds none
//   sock_sendall                 IORING_OP_SEND at once, again for the rest
//                                after a partial send (measured: at 1,000
//                                connections sending inside the batched
//                                io_uring_enter costs ~15% less CPU per
//                                message than a send() per message)
//   a plain stream's reads       one multishot IORING_OP_RECV into the
//                                provided buffers, kept between reads and
//                                withdrawn at close (Linux 6.0+; before: a
//                                read_into() with nothing buffered is an
//                                IORING_OP_RECV into the caller's buffer)
//   start_server's listener      one multishot IORING_OP_ACCEPT for the
//                                server's life: a completion per connection
//   everything else              the system call first, then IORING_OP_POLL_ADD
//                                and the same call again on readiness
//                                (sock_accept, connect, datagrams, streams,
//                                add_reader/add_writer, the eventfd, the signalfd)
// All requests made during one iteration of the loop go to the kernel in the
// io_uring_enter that also waits for completions (batched submission), with
// the timer heap's next deadline as its timeout.
//
// Cancellation and lifetime: a request may still write into its buffer until
// its completion has come back. Withdrawing one (Task.cancel(), a frame
// destroyed while it waits, a stream closed) therefore submits
// IORING_OP_ASYNC_CANCEL and waits, right there, for the target's own
// completion; completions of other requests seen meanwhile are kept and
// dispatched by the next iteration. When the target had finished before the
// cancel reached it, its result is delivered and the cancellation waits for
// the task's next suspension point (the contract of cancel_slot), so a
// received message is never dropped by a late cancel.
#include <liburing.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>

#include "pysock/loop.hpp"

namespace pysock {

namespace detail {

struct uring {
  io_uring ring{};
  struct completion {
    std::uint64_t user_data;
    int res;
    unsigned flags;
  };
  // Completions consumed while waiting for a withdrawn request's own one.
  std::deque<completion> deferred;
  bool signals_watched = false;

  // Provided buffers (Linux 5.19+): sock_recv's requests name this group
  // instead of a buffer, and the kernel takes one only when data arrives, so
  // 10,000 coroutines waiting in sock_recv hold no memory. Null where the
  // kernel refuses the registration: each request then brings its own.
  io_uring_buf_ring* buffer_ring = nullptr;
  std::byte* buffers = nullptr;
  // The kernel failed a multishot receive with EINVAL (Linux < 6.0): streams
  // then take a request per wait.
  bool recv_multishot_refused = false;
};

int ring_fd(const uring* ring) noexcept { return ring->ring.ring_fd; }

namespace {

// user_data of the loop's own requests; io_op pointers are never this small.
constexpr std::uint64_t tag_wake = 1;
constexpr std::uint64_t tag_signal = 2;
constexpr std::uint64_t tag_ignore = 3;  // cancel requests: their own result is not needed

constexpr unsigned kEntries = 256;     // submission queue
constexpr unsigned kCqEntries = 4096;  // completion queue: 1,000s of waits complete at once
constexpr unsigned kMaxPerIteration = 4096;

// The provided buffers: 8 MiB of address space, but memory is used a page
// at a time as the kernel writes, so small messages cost kProvidedBuffers
// pages (512 KiB). 64 KiB: a sock_recv(s, 65536) is one receive (16 KiB
// buffers measured 45% fewer 64 KiB messages per CPU), and every UDP
// datagram fits.
constexpr unsigned kProvidedBuffers = 128;  // a power of two
constexpr std::size_t kProvidedBufferSize = 64 * 1024;
// Buffers are laid out a cache line more than their size apart: at exactly
// 64 KiB apart every buffer's first bytes (all a small message touches)
// would fall in the same cache set, and cycling through 128 of them would
// miss the L1 and L2 caches on every message.
constexpr std::size_t kProvidedBufferStride = kProvidedBufferSize + 64;
constexpr std::size_t kProvidedBytes = kProvidedBuffers * kProvidedBufferStride;
constexpr int kBufferGroup = 0;

std::size_t buffer_ring_bytes() noexcept { return kProvidedBuffers * sizeof(io_uring_buf); }

// The provided buffer a completion's flags name.
std::byte* provided_buffer(const uring& r, unsigned flags) noexcept {
  return r.buffers + (flags >> IORING_CQE_BUFFER_SHIFT) * kProvidedBufferStride;
}

// What a multishot receive's completion brought: its bytes, or null.
const char* received_bytes(const uring& r, int res, unsigned flags) noexcept {
  if (res <= 0 || (flags & IORING_CQE_F_BUFFER) == 0) return nullptr;
  return reinterpret_cast<const char*>(provided_buffer(r, flags));
}

void release_buffer_ring(uring& r) noexcept {
  if (r.buffer_ring == nullptr) return;
  io_uring_unregister_buf_ring(&r.ring, kBufferGroup);
  ::munmap(r.buffer_ring, buffer_ring_bytes());
  ::munmap(r.buffers, kProvidedBytes);
  r.buffer_ring = nullptr;
  r.buffers = nullptr;
}

// Registers the provided buffers; false (and nothing held) if the kernel or
// the memory says no.
bool setup_buffer_ring(uring& r) noexcept {
  void* ring_mem = ::mmap(nullptr, buffer_ring_bytes(), PROT_READ | PROT_WRITE,
                          MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (ring_mem == MAP_FAILED) return false;
  void* buffer_mem =
      ::mmap(nullptr, kProvidedBytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (buffer_mem == MAP_FAILED) {
    ::munmap(ring_mem, buffer_ring_bytes());
    return false;
  }
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(ring_mem);
  reg.ring_entries = kProvidedBuffers;
  reg.bgid = kBufferGroup;
  if (io_uring_register_buf_ring(&r.ring, &reg, 0) != 0) {
    ::munmap(ring_mem, buffer_ring_bytes());
    ::munmap(buffer_mem, kProvidedBytes);
    return false;
  }
  r.buffer_ring = static_cast<io_uring_buf_ring*>(ring_mem);
  r.buffers = static_cast<std::byte*>(buffer_mem);
  io_uring_buf_ring_init(r.buffer_ring);
  const int mask = io_uring_buf_ring_mask(kProvidedBuffers);
  for (unsigned i = 0; i < kProvidedBuffers; ++i)
    io_uring_buf_ring_add(r.buffer_ring, r.buffers + i * kProvidedBufferStride, kProvidedBufferSize,
                          static_cast<unsigned short>(i), mask, static_cast<int>(i));
  io_uring_buf_ring_advance(r.buffer_ring, static_cast<int>(kProvidedBuffers));
  return true;
}

// Verdicts of a completion.
constexpr int finished = 0;
constexpr int again_native = 1;
constexpr int again_poll = 2;

std::uint64_t user_data_of(const io_op* op) noexcept {
  return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(op));
}

bool has_native_request(op_kind kind) noexcept {
  return kind == op_kind::recv_into || kind == op_kind::recv || kind == op_kind::sendall ||
         kind == op_kind::stream_fill;
}

std::string errno_text(int err) { return std::error_code(err, std::system_category()).message(); }

}  // namespace
}  // namespace detail

bool event_loop::ring_open(std::string& why) {
  auto r = std::make_unique<detail::uring>();
  io_uring_params params{};
  // COOP_TASKRUN: completions are run when we enter the kernel anyway
  // instead of interrupting the loop; SUBMIT_ALL: one bad request does not
  // hold back the rest of the batch. Older kernels reject the flags.
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL;
  params.cq_entries = detail::kCqEntries;
  int rc = io_uring_queue_init_params(detail::kEntries, &r->ring, &params);
  if (rc == -EINVAL) {
    params = io_uring_params{};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = detail::kCqEntries;
    rc = io_uring_queue_init_params(detail::kEntries, &r->ring, &params);
  }
  if (rc < 0) {
    why = "io_uring is not available (io_uring_setup: " + detail::errno_text(-rc) + ")";
    return false;
  }
  // Without NODROP a burst of completions larger than the queue is lost.
  if ((params.features & IORING_FEAT_NODROP) == 0) {
    io_uring_queue_exit(&r->ring);
    why = "io_uring is too old here (no IORING_FEAT_NODROP, Linux < 5.5)";
    return false;
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&r->ring);
  const int needed[] = {IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL, IORING_OP_RECV, IORING_OP_SEND};
  bool complete = probe != nullptr;
  for (const int op : needed) {
    if (complete && io_uring_opcode_supported(probe, op) == 0) complete = false;
  }
  if (probe != nullptr) io_uring_free_probe(probe);
  if (!complete) {
    io_uring_queue_exit(&r->ring);
    why = "io_uring lacks an operation pysock needs (poll, cancel, recv, send: Linux < 5.6)";
    return false;
  }
  detail::setup_buffer_ring(*r);
  ring_ = r.release();
  return true;
}

void event_loop::ring_close() noexcept {
  detail::release_buffer_ring(*ring_);
  io_uring_queue_exit(&ring_->ring);
  delete ring_;
  ring_ = nullptr;
}

namespace {
io_uring_sqe* next_sqe(io_uring* ring) {
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  if (sqe == nullptr) {
    // The submission queue is full (more than kEntries waits started in one
    // iteration): hand those to the kernel now.
    io_uring_submit(ring);
    sqe = io_uring_get_sqe(ring);
    if (sqe == nullptr) throw std::system_error(EBUSY, std::system_category());
  }
  return sqe;
}
}  // namespace

void event_loop::ring_watch(int fd, bool signals) {
  io_uring_sqe* sqe = next_sqe(&ring_->ring);
  io_uring_prep_poll_add(sqe, fd, POLLIN);
  io_uring_sqe_set_data64(sqe, signals ? detail::tag_signal : detail::tag_wake);
  if (signals) ring_->signals_watched = true;
}

void event_loop::ring_unwatch_signals() noexcept {
  if (!ring_->signals_watched) return;
  ring_withdraw(detail::tag_signal);
  ring_->signals_watched = false;
}

void event_loop::ring_arm(detail::io_op* op, bool native) {
  using detail::op_kind;
  if (op->kind == op_kind::stream_fill && ring_->buffer_ring != nullptr &&
      !ring_->recv_multishot_refused) {
    // A plain stream's reader waits on the stream's multishot receive, which
    // stays in the kernel between reads: no request per wait.
    if (detail::io_op* rx = detail::stream_multishot_for(op)) {
      if (!rx->in_ring) ring_recv_multishot(rx);
      return;
    }
  }
  io_uring_sqe* sqe = next_sqe(&ring_->ring);
  native = native && detail::has_native_request(op->kind);
  if (native && op->kind == op_kind::recv) {
    // sock_recv takes a provided buffer; where it cannot (no buffer ring, or
    // a datagram that might be longer than one) it waits for readiness and
    // receives through the loop's scratch buffer, as on epoll: never a
    // buffer of its own while it waits.
    const auto* o = static_cast<const recv_op*>(op);
    native =
        ring_->buffer_ring != nullptr && (o->stream_ || o->want_ <= detail::kProvidedBufferSize);
  }
  void* stream_data = nullptr;
  std::size_t stream_size = 0;
  if (native && op->kind == op_kind::stream_fill)
    native = detail::stream_fill_target(op, stream_data, stream_size);
  if (native) {
    switch (op->kind) {
      case op_kind::stream_fill:
        io_uring_prep_recv(sqe, op->fd, stream_data, stream_size, 0);
        break;
      case op_kind::recv_into: {
        auto* o = static_cast<recv_into_op*>(op);
        io_uring_prep_recv(sqe, op->fd, o->data_, o->size_, 0);
        break;
      }
      case op_kind::recv: {
        auto* o = static_cast<recv_op*>(op);
        io_uring_prep_recv(sqe, op->fd, nullptr, std::min(o->want_, detail::kProvidedBufferSize),
                           0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = detail::kBufferGroup;
        break;
      }
      case op_kind::sendall: {
        auto* o = static_cast<sendall_op*>(op);
        io_uring_prep_send(sqe, op->fd, o->data_.data() + o->sent_, o->data_.size() - o->sent_,
                           MSG_NOSIGNAL);
        break;
      }
      default:
        break;
    }
  } else {
    // Errors and hang-ups are always reported; RDHUP lets a reader see EOF.
    const unsigned mask = op->write ? POLLOUT : (POLLIN | POLLRDHUP);
    io_uring_prep_poll_add(sqe, op->fd, mask);
  }
  io_uring_sqe_set_data64(sqe, detail::user_data_of(op));
  op->in_ring = true;
  op->ring_native = native;
  ++ring_in_flight_;
}

void event_loop::ring_recycle_buffer(unsigned flags) noexcept {
  if ((flags & IORING_CQE_F_BUFFER) == 0 || ring_->buffer_ring == nullptr) return;
  const unsigned id = flags >> IORING_CQE_BUFFER_SHIFT;
  io_uring_buf_ring_add(ring_->buffer_ring, detail::provided_buffer(*ring_, flags),
                        detail::kProvidedBufferSize, static_cast<unsigned short>(id),
                        io_uring_buf_ring_mask(detail::kProvidedBuffers), 0);
  io_uring_buf_ring_advance(ring_->buffer_ring, 1);
}

int event_loop::ring_finish_native(detail::io_op* op, int res, unsigned flags) noexcept {
  using detail::op_kind;
  if (op->kind == op_kind::stream_fill) {
    if (res == -EAGAIN || res == -EWOULDBLOCK) return detail::again_poll;
    if (res == -EINTR) return detail::again_native;
    // Data, EOF or the stream's read error. A full buffer means more is
    // queued: the next read_into() then tries recv() before a request.
    note_ring_read(op->fd, detail::stream_fill_received(op, res));
    return detail::finished;
  }
  if (op->kind == op_kind::recv) {  // always a provided-buffer request
    auto* o = static_cast<recv_op*>(op);
    if (res > 0 && (flags & IORING_CQE_F_BUFFER) != 0) {
      try {
        o->data_.assign(reinterpret_cast<const char*>(detail::provided_buffer(*ring_, flags)),
                        static_cast<std::size_t>(res));
      } catch (const std::bad_alloc&) {
        o->ec = std::make_error_code(std::errc::not_enough_memory);
      }
      ring_recycle_buffer(flags);
      if (o->stream_)
        note_ring_read(op->fd, static_cast<std::size_t>(res) ==
                                   std::min(o->want_, detail::kProvidedBufferSize));
      return detail::finished;
    }
    ring_recycle_buffer(flags);
    // Every provided buffer was taken (a burst on many connections): the
    // data is there, so the receive is made now, through the scratch buffer,
    // without another trip through the ring (a readiness wait only if the
    // data went meanwhile). (A request with its own buffer here would
    // allocate n bytes for each of thousands of receives at once, memory the
    // heap keeps afterwards.)
    if (res == -ENOBUFS) return o->perform() ? detail::finished : detail::again_poll;
    if (res >= 0) {  // EOF (a byte count always comes with its buffer)
      o->data_.clear();
      return detail::finished;
    }
  }
  if (res >= 0) {
    const auto n = static_cast<std::size_t>(res);
    switch (op->kind) {
      case op_kind::recv_into: {
        auto* o = static_cast<recv_into_op*>(op);
        o->result_ = n;
        if (o->stream_) note_ring_read(op->fd, n > 0 && n == o->size_);
        return detail::finished;
      }
      case op_kind::sendall: {
        auto* o = static_cast<sendall_op*>(op);
        o->sent_ += n;
        return o->sent_ < o->data_.size() ? detail::again_native : detail::finished;
      }
      default:
        return detail::finished;
    }
  }
  // A socket with O_NONBLOCK may answer EAGAIN instead of being waited on
  // inside the kernel (older kernels): wait for readiness instead.
  if (res == -EAGAIN || res == -EWOULDBLOCK) return detail::again_poll;
  if (res == -EINTR) return detail::again_native;
  op->ec.assign(-res, std::system_category());
  return detail::finished;
}

event_loop::ring_result event_loop::ring_withdraw(std::uint64_t user_data, bool cancel) noexcept {
  detail::uring& r = *ring_;
  for (auto it = r.deferred.begin(); it != r.deferred.end(); ++it) {
    if (it->user_data == user_data) {
      const ring_result result{it->res, it->flags};
      r.deferred.erase(it);
      return result;
    }
  }
  io_uring_sqe* sqe = cancel ? io_uring_get_sqe(&r.ring) : nullptr;
  if (cancel && sqe == nullptr) {
    io_uring_submit(&r.ring);
    sqe = io_uring_get_sqe(&r.ring);
  }
  if (sqe != nullptr) {
    io_uring_prep_cancel64(sqe, user_data, 0);
    io_uring_sqe_set_data64(sqe, detail::tag_ignore);
  }
  // Bounded by the kernel: a cancelled poll or socket request completes at
  // once; one that already finished has its completion in the queue.
  for (;;) {
    const int rc = io_uring_submit_and_wait(&r.ring, 1);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      std::fprintf(stderr, "pysock: io_uring_enter while cancelling: %s\n",
                   detail::errno_text(-rc).c_str());
      std::abort();  // returning would let the kernel write into a freed frame
    }
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(&r.ring, &cqe) == 0 && cqe != nullptr) {
      const detail::uring::completion c{cqe->user_data, cqe->res, cqe->flags};
      io_uring_cqe_seen(&r.ring, cqe);
      if (c.user_data == user_data) return {c.res, c.flags};
      if (c.user_data != detail::tag_ignore && c.user_data != LIBURING_UDATA_TIMEOUT)
        r.deferred.push_back(c);
    }
  }
}

void event_loop::ring_accept_multishot(detail::io_op* op) {
  io_uring_sqe* sqe = next_sqe(&ring_->ring);
  // Python's rule for accepted sockets: not inheritable; non-blocking because
  // they go to the loop's streams.
  io_uring_prep_multishot_accept(sqe, op->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, detail::user_data_of(op));
  op->in_ring = true;
  op->ring_native = true;
  ++ring_in_flight_;
}

void event_loop::ring_recv_multishot(detail::io_op* op) {
  io_uring_sqe* sqe = next_sqe(&ring_->ring);
  // Length 0: each arrival takes a whole provided buffer (or as much as
  // is queued, if less).
  io_uring_prep_recv_multishot(sqe, op->fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = detail::kBufferGroup;
  io_uring_sqe_set_data64(sqe, detail::user_data_of(op));
  op->in_ring = true;
  op->ring_native = true;
  ++ring_in_flight_;
}

// A completion of a multishot request that is being withdrawn: what it
// brought must not be lost. An accepted connection nobody will take is
// closed; received bytes go to the stream's buffer.
void event_loop::ring_settle_multishot(detail::io_op* op, int res, unsigned flags) noexcept {
  if (op->kind == detail::op_kind::accept_multishot) {
    if (res >= 0) ::close(res);
    return;
  }
  if (res == -EINVAL) res = -ENOBUFS;  // refused: nothing came
  detail::stream_multishot_received(op, detail::received_bytes(*ring_, res, flags), res);
  ring_recycle_buffer(flags);
}

void event_loop::ring_withdraw_multishot(detail::io_op* op) noexcept {
  if (!op->in_ring) return;
  const std::uint64_t user_data = detail::user_data_of(op);
  detail::uring& r = *ring_;
  // A completion is final when it lacks F_MORE; each one before it is
  // settled (ring_settle_multishot).
  bool ended = false;
  const auto settle = [&](int res, unsigned flags) {
    ring_settle_multishot(op, res, flags);
    if ((flags & IORING_CQE_F_MORE) == 0) ended = true;
  };
  for (auto it = r.deferred.begin(); it != r.deferred.end();) {
    if (it->user_data == user_data) {
      settle(it->res, it->flags);
      it = r.deferred.erase(it);
    } else {
      ++it;
    }
  }
  bool cancel = true;  // once: later completions answer the same cancel
  while (!ended) {
    const ring_result c = ring_withdraw(user_data, cancel);
    cancel = false;
    settle(c.res, c.flags);
  }
  op->in_ring = false;
  --ring_in_flight_;
}

void event_loop::ring_abandon(detail::io_op* op) noexcept {
  if (!op->in_ring) return;
  // Its result goes with the frame; a provided buffer it took goes back.
  ring_recycle_buffer(ring_withdraw(detail::user_data_of(op)).flags);
  op->in_ring = false;
  --ring_in_flight_;
}

// Task.cancel() of a coroutine waiting on a request.
bool event_loop::ring_cancel(detail::cancel_slot* slot) noexcept {
  auto* op = static_cast<detail::io_op*>(slot);
  if (op->cancelled) return true;
  if (!op->waiting) return false;  // completed: its result must reach the task
  event_loop* loop = op->loop;
  if (op->in_ring) {
    const ring_result withdrawn = loop->ring_withdraw(detail::user_data_of(op));
    const int res = withdrawn.res;
    op->in_ring = false;
    --loop->ring_in_flight_;
    if (res != -ECANCELED) {
      // It finished before the cancel reached it (data received, bytes sent,
      // or readiness): deliver that; the task sees the cancellation at its
      // next wait.
      int verdict;
      if (op->ring_native) {
        verdict = loop->ring_finish_native(op, res, withdrawn.flags);
      } else if (res < 0) {
        op->ec.assign(-res, std::system_category());
        verdict = detail::finished;
      } else {
        verdict = loop->perform_op(op) ? detail::finished : detail::again_poll;
      }
      if (verdict == detail::finished) {
        loop->end_wait(op);
        if (op->kind == detail::op_kind::stream_flush) {
          detail::stream_flush_done(op);
        } else {
          loop->schedule(op->handle, op->owner);
        }
        return false;
      }
    }
  }
  loop->end_wait(op);
  op->cancelled = true;
  loop->schedule(op->handle, op->owner);
  return true;
}

void event_loop::ring_event(std::uint64_t user_data, int res, unsigned flags) {
  if (user_data == detail::tag_wake) {
    drain_remote();
    ring_watch(wake_fd_, false);
    return;
  }
  if (user_data == detail::tag_signal) {
    ring_->signals_watched = false;
    if (signal_fd_ >= 0) read_signals();
    if (signal_fd_ >= 0 && !ring_->signals_watched) ring_watch(signal_fd_, true);
    return;
  }
  if (user_data <= detail::tag_ignore || user_data == LIBURING_UDATA_TIMEOUT) return;
  auto* op = reinterpret_cast<detail::io_op*>(static_cast<std::uintptr_t>(user_data));
  if (op->kind == detail::op_kind::accept_multishot) {
    // The request stays in the ring while its completions say F_MORE.
    if ((flags & IORING_CQE_F_MORE) == 0) {
      op->in_ring = false;
      --ring_in_flight_;
    }
    detail::server_accepted(op, res);
    return;
  }
  if (op->kind == detail::op_kind::stream_recv_multishot) {
    if ((flags & IORING_CQE_F_MORE) == 0) {
      op->in_ring = false;
      --ring_in_flight_;
      if (res == -EINVAL) {
        ring_->recv_multishot_refused = true;
        res = -ENOBUFS;  // nothing came; the reader's fill takes a request
      }
    }
    detail::io_op* fill =
        detail::stream_multishot_received(op, detail::received_bytes(*ring_, res, flags), res);
    ring_recycle_buffer(flags);
    if (fill == nullptr) {
      if (op->in_ring && detail::stream_multishot_over_limit(op)) ring_withdraw_multishot(op);
      return;
    }
    ring_finish_fill(fill);
    return;
  }
  op->in_ring = false;
  --ring_in_flight_;
  if (op->kind == detail::op_kind::fd_callback) {
    // Level-triggered as in Python: a one-shot poll, armed again after each
    // call, completes at once while the descriptor stays ready. A poll that
    // failed (the descriptor was closed) ends the watch silently, as epoll
    // drops a closed descriptor.
    if (res < 0) return;
    if (run_fd_callback(op) && op->waiting && !op->in_ring) ring_arm(op, false);
    return;
  }
  int verdict;
  if (op->ring_native) {
    verdict = ring_finish_native(op, res, flags);
  } else if (res < 0 && res != -EINTR) {
    op->ec.assign(-res, std::system_category());  // e.g. EBADF: closed under the wait
    verdict = detail::finished;
  } else {
    verdict = perform_op(op) ? detail::finished : detail::again_poll;
  }
  if (verdict != detail::finished) {
    try {
      ring_arm(op, verdict == detail::again_native);
      return;
    } catch (const std::system_error& x) {
      op->ec = x.code();
    }
  }
  end_wait(op);
  if (op->kind == detail::op_kind::stream_flush) {
    detail::stream_flush_done(op);
  } else if (op->handle) {
    op->handle.resume();
  }
}

// A stream's reader waiting on the multishot receive: the fill's own step
// (data buffered, EOF, an error; or, with the receive ended by ENOBUFS, a
// recv() now) decides whether it wakes or waits on.
void event_loop::ring_finish_fill(detail::io_op* fill) {
  if (!perform_op(fill)) {
    try {
      ring_arm(fill, true);
      return;
    } catch (const std::system_error& x) {
      fill->ec = x.code();
    }
  }
  end_wait(fill);
  if (fill->handle) fill->handle.resume();
}

void event_loop::ring_poll(int timeout_ms) {
  detail::uring& r = *ring_;
  if (!r.deferred.empty()) timeout_ms = 0;
  int rc;
  if (timeout_ms == 0) {
    rc = io_uring_submit(&r.ring);
  } else if (timeout_ms < 0) {
    rc = io_uring_submit_and_wait(&r.ring, 1);
  } else {
    __kernel_timespec ts{};
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1000000;
    io_uring_cqe* cqe = nullptr;
    rc = io_uring_submit_and_wait_timeout(&r.ring, &cqe, 1, &ts, nullptr);
  }
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
    throw_os_error(std::error_code(-rc, std::system_category()), "io_uring_enter()");

  // Kept ones first, one at a time: a withdraw during a dispatch searches
  // what is still queued.
  while (!r.deferred.empty()) {
    const detail::uring::completion c = r.deferred.front();
    r.deferred.pop_front();
    ring_event(c.user_data, c.res, c.flags);
  }
  // One completion at a time, each marked seen before it is dispatched, so a
  // withdraw made by the resumed coroutine finds the rest still in the ring.
  for (unsigned i = 0; i < detail::kMaxPerIteration; ++i) {
    io_uring_cqe* cqe = nullptr;
    if (io_uring_peek_cqe(&r.ring, &cqe) != 0 || cqe == nullptr) break;
    const std::uint64_t user_data = cqe->user_data;
    const int res = cqe->res;
    const unsigned flags = cqe->flags;
    io_uring_cqe_seen(&r.ring, cqe);
    ring_event(user_data, res, flags);
  }
}

}  // namespace pysock
