// SPDX-License-Identifier: MIT
//
// asyncio streams: the transport behind StreamReader/StreamWriter (a socket
// attached edge-triggered to the loop, a read buffer, a write buffer with
// high/low water marks), open_connection, start_server, and the multi-core
// serve_forever.
#include "pysock/streams.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <deque>
#include <latch>
#include <list>
#include <mutex>
#include <thread>

#include "pysock/resolver.hpp"
#include "sanitizers.hpp"

namespace pysock {

namespace detail {

struct loop_access {
  static void attach(event_loop& loop, int fd) { loop.attach(fd); }
  static void detach(event_loop& loop, int fd) noexcept { loop.detach(fd); }
  static bool start_wait(event_loop& loop, io_op* op) { return loop.start_wait(op); }
  static void note_ring_read(event_loop& loop, int fd, bool filled) noexcept {
    loop.note_ring_read(fd, filled);
  }
#ifdef PYSOCK_HAVE_IO_URING
  static bool on_ring(const event_loop& loop) noexcept { return loop.ring_ != nullptr; }
  static void accept_multishot(event_loop& loop, io_op* op) { loop.ring_accept_multishot(op); }
  static void withdraw_multishot(event_loop& loop, io_op* op) noexcept {
    loop.ring_withdraw_multishot(op);
  }
#endif
};

namespace {
constexpr std::size_t kReadChunk = 16 * 1024;
// Chunks a thread keeps for reuse: enough for the streams that receive in
// one burst of events, few enough that an idle server holds ~0.5 MiB.
constexpr std::size_t kPooledChunks = 32;

// Read chunks of the streams of one thread (one loop). A stream holds a
// chunk only while it has unread bytes, so 10,000 idle connections cost no
// read buffers: 160 MiB otherwise.
struct chunk_pool {
  char* chunks[kPooledChunks] = {};
  std::size_t count = 0;
  chunk_pool() = default;
  chunk_pool(const chunk_pool&) = delete;
  chunk_pool& operator=(const chunk_pool&) = delete;
  ~chunk_pool();
};
// Set once the thread's pool is gone: streams destroyed later (by other
// thread_local destructors) give their chunk straight back to the heap.
thread_local bool chunk_pool_gone = false;
thread_local chunk_pool pool;
chunk_pool::~chunk_pool() {
  while (count > 0) ::operator delete(chunks[--count]);
  chunk_pool_gone = true;
}

char* take_chunk() {
#ifndef PYSOCK_ASAN  // under ASan every chunk is fresh: a stale use is reported
  if (!chunk_pool_gone && pool.count > 0) return pool.chunks[--pool.count];
#endif
  return static_cast<char*>(::operator new(kReadChunk));
}

void give_chunk(char* chunk) noexcept {
#ifndef PYSOCK_ASAN
  if (!chunk_pool_gone && pool.count < kPooledChunks) {
    pool.chunks[pool.count++] = chunk;
    return;
  }
#endif
  ::operator delete(chunk);
}

ssize_t retry_send(int fd, const char* data, std::size_t size) noexcept {
  ssize_t n;
  do n = ::send(fd, data, size, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n;
}
}  // namespace

struct stream_transport;
bool arm_close_timer(const std::shared_ptr<stream_transport>& t,
                     std::chrono::milliseconds limit) noexcept;
bool start_close_wait(const std::shared_ptr<stream_transport>& t) noexcept;

struct stream_transport : std::enable_shared_from_this<stream_transport> {
  struct fill_op : io_op {
    stream_transport* transport;
    explicit fill_op(stream_transport* t) noexcept
        : io_op(op_kind::stream_fill, false), transport(t) {}
  };
  struct flush_op : io_op {
    stream_transport* transport;
    explicit flush_op(stream_transport* t) noexcept
        : io_op(op_kind::stream_flush, true), transport(t) {}
  };
  struct recv_multishot_op : io_op {
    stream_transport* transport;
    explicit recv_multishot_op(stream_transport* t) noexcept
        : io_op(op_kind::stream_recv_multishot, false), transport(t) {}
  };

  event_loop* loop;
  socket sock;
  int fd;
  std::size_t limit;
  std::size_t high_water;
  std::size_t low_water;

  // Read side: the bytes not yet consumed are rbuf[rbeg, rend). rbuf is
  // null while nothing is unread (see chunk_pool); rcap is its size.
  char* rbuf = nullptr;
  std::size_t rcap = 0;
  std::size_t rbeg = 0;
  std::size_t rend = 0;
  bool eof = false;
  std::error_code read_error;
  fill_op fill{this};
  // While a read_into() waits with nothing buffered, the next receive goes
  // straight into its buffer (null otherwise); direct_got is what came.
  char* direct = nullptr;
  std::size_t direct_size = 0;
  std::size_t direct_got = 0;
  // io_uring, plain streams: one multishot receive, armed by the first wait
  // for data and left in the kernel between reads; what it brings goes to
  // the waiting read_into()'s buffer or to rbuf. While it is in the kernel
  // the stream makes no recv() of its own (it could take bytes that come
  // after those of a completion not yet seen).
  recv_multishot_op rx{this};
  // An error the multishot receive reported behind bytes not yet read:
  // raised when the reader needs more than those, as a recv() would raise it.
  std::error_code deferred_read_error;

  // Write side: the bytes not yet sent are wbuf[wbeg, end).
  std::string wbuf;
  std::size_t wbeg = 0;
  flush_op flush{this};
  std::error_code write_error;
  bool closing = false;
  bool closed = false;
  bool eof_requested = false;
  bool eof_sent = false;
  event drained;       // set when the write buffer falls to the low-water mark
  event closed_event;  // set when the socket is closed

  // TLS (installed by pysock::ssl); null for plain streams. `wire` is its
  // reused output buffer.
  std::unique_ptr<stream_codec> codec;
  std::string wire;
  // After close(), for the codec's close_wait() (TLS: asyncio's
  // ssl_shutdown_timeout): the timer, armed at close(), bounds the flush and
  // then the reading for the peer's end (its close_notify); when it fires,
  // the socket closes and wait_closed() throws timeout_error.
  bool close_timer_armed = false;
  bool close_waiting = false;  // reading for the peer's end
  bool close_timed_out = false;
  callback_handle close_timer;

  stream_transport(event_loop& l, socket s, const stream_limits& limits)
      : loop(&l),
        sock(std::move(s)),
        fd(sock.fileno()),
        limit(limits.limit),
        high_water(limits.high_water),
        low_water(limits.low_water.value_or(limits.high_water / 4)) {
    fill.loop = flush.loop = rx.loop = loop;
    fill.fd = flush.fd = rx.fd = fd;
    if (low_water > high_water)
      throw std::invalid_argument("stream limits: low_water > high_water");
  }
  stream_transport(const stream_transport&) = delete;
  stream_transport& operator=(const stream_transport&) = delete;
  ~stream_transport() {
    withdraw_receive();
    drop_read_buffer();
    if (!closed) {
      closed = true;
      loop_access::detach(*loop, fd);
      // `sock` closes the descriptor as it is destroyed.
    }
  }

  // Takes the multishot receive out of the kernel; what it brought
  // meanwhile is kept in rbuf.
  void withdraw_receive() noexcept {
#ifdef PYSOCK_HAVE_IO_URING
    if (rx.in_ring) loop_access::withdraw_multishot(*loop, &rx);
#endif
  }

  // A multishot receive's bytes: to a waiting read_into()'s buffer first,
  // the rest to rbuf.
  void deliver(const char* data, std::size_t n) noexcept {
    if (direct != nullptr) {
      const std::size_t k = std::min(n, direct_size);
      std::memcpy(direct, data, k);
      direct_got = k;
      direct = nullptr;  // one receive per wait
      data += k;
      n -= k;
    }
    while (n > 0) {
      try {
        make_room();
      } catch (const std::bad_alloc&) {
        read_error = std::make_error_code(std::errc::not_enough_memory);
        return;
      }
      const std::size_t k = std::min(n, rcap - rend);
      std::memcpy(rbuf + rend, data, k);
      rend += k;
      data += k;
      n -= k;
    }
  }

  std::size_t available() const noexcept { return rend - rbeg; }
  std::string_view buffered() const noexcept { return {rbuf + rbeg, rend - rbeg}; }
  bytes take(std::size_t n) {
    bytes out(rbuf + rbeg, n);
    consume(n);
    return out;
  }
  void consume(std::size_t n) noexcept {
    rbeg += n;
    if (rbeg == rend) release_read_buffer();
  }
  // Gives the buffer back once everything in it has been read.
  void release_read_buffer() noexcept {
    if (rbeg != rend) return;
    rbeg = rend = 0;
    drop_read_buffer();
  }
  void drop_read_buffer() noexcept {
    if (rbuf == nullptr) return;
    if (rcap == kReadChunk)
      give_chunk(rbuf);
    else
      ::operator delete(rbuf);
    rbuf = nullptr;
    rcap = 0;
  }
  // Room to receive into: a chunk, the unread bytes moved to the front, or a
  // buffer twice as big when it is full of unread bytes (a long line).
  void make_room() {
    if (rbuf == nullptr) {
      rbuf = take_chunk();
      rcap = kReadChunk;
      rbeg = rend = 0;
      return;
    }
    if (rend < rcap) return;
    if (rbeg > 0) {
      std::memmove(rbuf, rbuf + rbeg, rend - rbeg);
      rend -= rbeg;
      rbeg = 0;
      return;
    }
    const std::size_t bigger_size = rcap * 2;
    char* bigger = static_cast<char*>(::operator new(bigger_size));
    std::memcpy(bigger, rbuf, rend);
    drop_read_buffer();
    rbuf = bigger;
    rcap = bigger_size;
  }
  std::size_t pending_write() const noexcept { return wbuf.size() - wbeg; }

  // A plain stream whose last receive came back short, with no EPOLLIN edge
  // since: a receive would say EAGAIN, so the fill waits without trying. A
  // codec (TLS) is always asked: it may have work without the socket
  // (buffered records, a handshake to start).
  bool skip_receive() const noexcept {
    if (codec != nullptr || closed || eof || read_error || deferred_read_error) return false;
    if (rx.in_ring) return true;  // the data comes through its completions
    // io_uring: a read_into()'s receive goes to the kernel as a request at
    // once (see stream_fill_target), as sock_recv_into's does, unless the
    // last receive filled its buffer: more is queued then, and one recv()
    // costs less than a request's round trip.
    if (direct != nullptr && loop->submits_receives()) return !loop->ring_read_queued(fd);
    return loop->read_drained(fd);
  }

  // The receive of a fill wait that starts: none when skip_receive() says
  // the queue is empty. True when done without waiting.
  bool try_fill() noexcept { return !skip_receive() && fill_once(); }

  // One receive into the buffer. True when done: data, EOF or an error.
  bool fill_once() noexcept {
    if (eof || read_error) return true;
    if (closed) {
      eof = true;
      return true;
    }
    // Woken by the multishot receive: done if it brought anything.
    if (rx.in_ring) return available() > 0 || direct_got > 0;
    if (deferred_read_error) {  // the reader wants more than was buffered
      read_error = std::exchange(deferred_read_error, std::error_code());
      return true;
    }
    if (direct != nullptr) return direct_fill();
    try {
      make_room();
    } catch (const std::bad_alloc&) {
      read_error = std::make_error_code(std::errc::not_enough_memory);
      return true;
    }
    if (codec != nullptr) return codec_fill();
    ssize_t n;
    do n = ::recv(fd, rbuf + rend, rcap - rend, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
      // Less than there was room for: the queue is empty now, and the
      // edge-triggered registration reports what comes next (the next
      // fill then waits without trying: see event_loop::read_drained).
      if (static_cast<std::size_t>(n) < rcap - rend) loop->note_short_read(fd);
      rend += static_cast<std::size_t>(n);
      return true;
    }
    const int err = errno;
    release_read_buffer();  // nothing came: wait without a buffer
    if (n == 0) {
      eof = true;
      return true;
    }
    if (would_block(err)) return false;
    read_error.assign(err, std::system_category());
    return true;
  }

  // fill_once() into a waiting read_into()'s own buffer (plain streams).
  bool direct_fill() noexcept {
    ssize_t n;
    do n = ::recv(fd, direct, direct_size, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
      if (static_cast<std::size_t>(n) < direct_size)
        loop->note_short_read(fd);
      else if (loop->submits_receives())
        loop_access::note_ring_read(*loop, fd, true);
      direct_got = static_cast<std::size_t>(n);
      direct = nullptr;  // one receive per wait
      return true;
    }
    if (n == 0) {
      eof = true;
      return true;
    }
    const int err = errno;
    if (would_block(err)) return false;
    read_error.assign(err, std::system_category());
    return true;
  }

  bool codec_fill() noexcept {
    std::size_t n = 0;
    std::error_code ec;
    wire.clear();
    const auto r = codec->receive(fd, mutable_buffer(rbuf + rend, rcap - rend), n, wire, ec);
    // Not once closing: a failed send would then close the stream under this
    // very fill.
    if (!wire.empty() && !closing && !closed && !write_error) send_wire(wire);
    if (r == stream_codec::result::data) {
      rend += n;
      return true;
    }
    release_read_buffer();  // nothing came: wait, or end, without a buffer
    switch (r) {
      case stream_codec::result::wait:
        return false;
      case stream_codec::result::eof:
        eof = true;
        return true;
      case stream_codec::result::error:
        read_error = ec;
        return true;
      case stream_codec::result::data:
      case stream_codec::result::ready:
        return true;
    }
    return true;
  }

  void fail_write(int err) noexcept { fail_write(std::error_code(err, std::system_category())); }
  void fail_write(std::error_code ec) noexcept {
    write_error = ec;
    wbuf.clear();
    wbeg = 0;
    if (flush.waiting) loop->abandon_io(&flush);
    drained.set();
    if (closing) finish_close();
  }

  // Sends from the buffer until it is empty or the kernel says EAGAIN.
  bool flush_once() noexcept {
    while (pending_write() > 0) {
      const ssize_t n = retry_send(fd, wbuf.data() + wbeg, pending_write());
      if (n < 0) {
        if (would_block(errno)) {
          if (pending_write() <= low_water) drained.set();
          return false;
        }
        write_error.assign(errno, std::system_category());
        wbuf.clear();
        wbeg = 0;
        return true;
      }
      wbeg += static_cast<std::size_t>(n);
    }
    // A backlog once grew the buffer; a quiet connection should not keep it.
    if (wbuf.capacity() > kReadChunk)
      std::string().swap(wbuf);
    else
      wbuf.clear();
    wbeg = 0;
    return true;
  }

  void after_flush() noexcept {
    if (write_error || pending_write() <= low_water) drained.set();
    if (pending_write() == 0 && eof_requested && !eof_sent && !write_error) send_eof();
    if (closing && (pending_write() == 0 || write_error)) close_after_flush();
  }

  // The write side is done (flushed, or failed): close now, or first wait
  // for the peer's end of the stream when the codec asks for that. Not when
  // a reader is waiting: it gets EOF from finish_close() as before.
  void close_after_flush() noexcept {
    if (close_waiting) return;
    if (close_timer_armed && !write_error && !eof && !read_error && !fill.waiting &&
        codec->close_wait() && start_close_wait(shared_from_this())) {
      close_waiting = true;
      return;
    }
    finish_close();
  }

  void send_eof() noexcept {
    eof_sent = true;
    ::shutdown(fd, SHUT_WR);
  }

  void write(const_buffer data) {
    if (closing || closed) {
      if (write_error) return;  // Python drops writes after a connection error
      throw std::runtime_error("stream_writer.write() after close()");
    }
    if (eof_requested) throw std::runtime_error("stream_writer.write() after write_eof()");
    if (write_error || data.empty()) return;
    if (codec != nullptr) {
      wire.clear();
      std::error_code ec;
      codec->send(data, wire, ec);
      if (ec) {
        fail_write(ec);
        return;
      }
      send_wire(wire);
      return;
    }
    send_wire(data);
  }

  // Sends what the kernel takes now, buffers the rest.
  void send_wire(const_buffer data) {
    std::size_t sent = 0;
    if (pending_write() == 0) {
      // Nothing queued: try the kernel at once, as Python's transport does;
      // the common case buffers nothing and registers nothing.
      while (sent < data.size()) {
        const ssize_t n =
            retry_send(fd, reinterpret_cast<const char*>(data.data()) + sent, data.size() - sent);
        if (n < 0) {
          if (would_block(errno)) break;
          fail_write(errno);
          return;
        }
        sent += static_cast<std::size_t>(n);
      }
      if (sent == data.size()) return;
    }
    if (wbeg > 0 && wbeg >= wbuf.size() / 2) {  // reclaim the sent front
      wbuf.erase(0, wbeg);
      wbeg = 0;
    }
    wbuf.append(reinterpret_cast<const char*>(data.data()) + sent, data.size() - sent);
    if (!flush.waiting) {
      flush.ec.clear();
      flush.handle = {};
      loop_access::start_wait(*loop, &flush);  // attached: no system call
    }
  }

  void finish_close() noexcept {
    if (closed) return;
    withdraw_receive();  // its request holds the file: the socket would not close
    closed = true;
    close_timer.cancel();
    if (flush.waiting) {  // the close timer fired with output still queued
      loop->abandon_io(&flush);
      wbuf.clear();
      wbeg = 0;
    }
    if (fill.waiting) {
      // A reader waiting for data sees EOF, as Python's connection_lost feeds it.
      loop->abandon_io(&fill);
      eof = true;
      loop->schedule(fill.handle, fill.owner);
    }
    loop_access::detach(*loop, fd);
    try {
      sock.close();
    } catch (const os_error&) {
      // Python ignores close errors of a transport's socket as well.
    }
    drained.set();
    closed_event.set();
  }

  void close() {
    if (closing || closed) return;
    if (codec != nullptr && !write_error) {
      wire.clear();
      codec->close(wire);
      if (!wire.empty()) send_wire(wire);
    }
    closing = true;
    if (codec != nullptr && !write_error) {
      if (const auto wait_limit = codec->close_wait())
        close_timer_armed = arm_close_timer(shared_from_this(), *wait_limit);
    }
    if (pending_write() == 0 || write_error) close_after_flush();
  }
};

bool stream_fill_perform(io_op* op) noexcept {
  return static_cast<stream_transport::fill_op*>(op)->transport->fill_once();
}
bool stream_flush_perform(io_op* op) noexcept {
  return static_cast<stream_transport::flush_op*>(op)->transport->flush_once();
}
bool stream_fill_target(io_op* op, void*& data, std::size_t& size) noexcept {
  stream_transport& t = *static_cast<stream_transport::fill_op*>(op)->transport;
  if (t.direct == nullptr || t.eof || t.read_error || t.closed) return false;
  data = t.direct;
  size = t.direct_size;
  return true;
}
bool stream_fill_received(io_op* op, int res) noexcept {
  stream_transport& t = *static_cast<stream_transport::fill_op*>(op)->transport;
  if (res > 0) {
    t.direct_got = static_cast<std::size_t>(res);
    t.direct = nullptr;  // one receive per wait
    return t.direct_got == t.direct_size;
  }
  if (res == 0)
    t.eof = true;
  else
    t.read_error.assign(-res, std::system_category());
  return false;
}
io_op* stream_multishot_for(io_op* fill) noexcept {
  stream_transport& t = *static_cast<stream_transport::fill_op*>(fill)->transport;
  if (t.codec != nullptr || t.closed || t.eof || t.read_error) return nullptr;
  // TCP only. Over Unix sockets the multishot receive measured 0.87x / 0.88x
  // the request per wait at 50 / 1,000 connections (the kernel's Unix
  // receive path gains nothing from staying armed; the copy out of the
  // provided buffer remains), where TCP gained (1.00x / 1.07x of epoll,
  // from 0.94x / 0.85x).
  if (t.sock.family() == AF_UNIX) return nullptr;
  return &t.rx;
}
io_op* stream_multishot_received(io_op* rx, const char* data, int res) noexcept {
  stream_transport& t = *static_cast<stream_transport::recv_multishot_op*>(rx)->transport;
  if (res > 0 && data != nullptr)
    t.deliver(data, static_cast<std::size_t>(res));
  else if (res == 0)
    t.eof = true;
  else if (res < 0 && res != -ENOBUFS && res != -ECANCELED)
    t.deferred_read_error.assign(-res, std::system_category());
  return t.fill.waiting ? &t.fill : nullptr;
}
bool stream_multishot_over_limit(const io_op* rx) noexcept {
  const stream_transport& t =
      *static_cast<const stream_transport::recv_multishot_op*>(rx)->transport;
  return !t.fill.waiting && t.available() > 2 * t.limit;
}
void stream_flush_done(io_op* op) noexcept {
  static_cast<stream_transport::flush_op*>(op)->transport->after_flush();
}

namespace {

// Python's RuntimeError from StreamReader._wait_for_data().
[[noreturn]] void throw_second_reader() {
  throw std::runtime_error(
      "read() called while another coroutine is already waiting for incoming data");
}

// The two ends of a fill wait, shared by fill_awaiter and the frame-less
// reads. claim_fill: the fill registration is the stream's one read wait, so
// a second reader must not touch it while the first waits in it.
void claim_fill(stream_transport& t) {
  if (t.fill.waiting) throw_second_reader();
  t.direct_got = 0;  // a multishot receive's wake-up tells by this and rbuf
  t.fill.handle = {};
  t.fill.cancelled = false;
  t.fill.ec.clear();
}
// end_fill: back on the task; the wait's cancellation or the stream's error.
void end_fill(stream_transport& t) {
  if (t.fill.handle) t.loop->resumed(t.fill.owner, &t.fill);
  if (t.fill.cancelled) throw cancelled_error();
  if (t.fill.ec) throw_os_error(t.fill.ec, "stream read(fd " + std::to_string(t.fd) + ")");
  if (t.read_error) throw_os_error(t.read_error, "stream read(fd " + std::to_string(t.fd) + ")");
}

// co_await fill{t}: makes at least one receive attempt; waits for readiness
// only if the kernel has nothing now.
struct fill_awaiter {
  stream_transport* t;
  bool suspended = false;

  explicit fill_awaiter(stream_transport* transport) noexcept : t(transport) {}
  fill_awaiter(const fill_awaiter&) = delete;
  fill_awaiter& operator=(const fill_awaiter&) = delete;
  ~fill_awaiter() {
    // Only this awaiter's own wait: a second reader refused in await_ready()
    // must not withdraw the first one's.
    if (suspended && t->fill.waiting) t->loop->abandon_io(&t->fill);
  }
  bool await_ready() {
    claim_fill(*t);
    return t->try_fill();
  }
  bool await_suspend(std::coroutine_handle<> h) {
    suspended = t->loop->suspend_io(&t->fill, h);
    return suspended;
  }
  void await_resume() { end_fill(*t); }
};

// The read side of a closing stream whose codec waits for the peer's end
// (TLS close_notify): what comes is dropped; EOF, an error, or the timer
// (finish_close() wakes this fill with EOF) ends it, and the socket closes.
task<void> read_until_peer_closes(std::shared_ptr<stream_transport> t) {
  try {
    while (!t->closed && !t->eof && !t->read_error) {
      co_await fill_awaiter(t.get());
      t->consume(t->available());
    }
  } catch (const std::exception&) {
    // cancelled (the loop is going away) or a read error: close all the same
  }
  t->finish_close();
}

}  // namespace

bool arm_close_timer(const std::shared_ptr<stream_transport>& t,
                     std::chrono::milliseconds limit) noexcept {
  try {
    std::weak_ptr<stream_transport> weak = t;
    t->close_timer = t->loop->call_later(limit, [weak] {
      if (auto alive = weak.lock(); alive && !alive->closed) {
        alive->close_timed_out = true;
        alive->finish_close();
      }
    });
    return true;
  } catch (const std::exception&) {
    return false;  // no memory for the timer: no waiting for the peer either
  }
}

bool start_close_wait(const std::shared_ptr<stream_transport>& t) noexcept {
  try {
    t->loop->create_task(read_until_peer_closes(t));
    return true;
  } catch (const std::exception&) {
    return false;  // no memory for the wait: close at once
  }
}

stream_transport& checked(const std::shared_ptr<stream_transport>& t) {
  if (!t) throw std::invalid_argument("stream_writer: empty writer");
  return *t;
}

namespace {

void check_reader(const std::shared_ptr<stream_transport>& t) {
  if (!t) throw std::invalid_argument("stream_reader: empty reader");
  if (t->read_error) throw_os_error(t->read_error, "stream read(fd " + std::to_string(t->fd) + ")");
}

task<bytes> do_read(std::shared_ptr<stream_transport> t, std::ptrdiff_t n) {
  check_reader(t);
  if (n == 0) co_return bytes();
  if (n < 0) {
    bytes all;
    for (;;) {
      all.append(t->buffered());
      t->consume(t->available());
      if (t->eof) co_return all;
      co_await fill_awaiter(t.get());
    }
  }
  if (t->available() == 0 && !t->eof) co_await fill_awaiter(t.get());
  co_return t->take(std::min(t->available(), static_cast<std::size_t>(n)));
}

task<bytes> do_readexactly(std::shared_ptr<stream_transport> t, std::size_t n) {
  check_reader(t);
  while (t->available() < n) {
    if (t->eof) {
      bytes partial = t->take(t->available());
      throw incomplete_read_error(std::move(partial), n);
    }
    co_await fill_awaiter(t.get());
  }
  co_return t->take(n);
}

task<bytes> do_readuntil(std::shared_ptr<stream_transport> t, std::string separator) {
  check_reader(t);
  if (separator.empty())
    throw std::invalid_argument("readuntil: separator should be at least one-byte string");
  std::size_t from = 0;  // where the next search starts: no rescanning
  for (;;) {
    const std::string_view data = t->buffered();
    const std::size_t pos = data.find(separator, from);
    if (pos != std::string_view::npos) {
      const std::size_t end = pos + separator.size();
      if (end > t->limit)
        throw limit_overrun_error("Separator is found, but chunk is longer than limit", pos);
      co_return t->take(end);
    }
    if (data.size() >= separator.size()) from = data.size() - separator.size() + 1;
    if (data.size() > t->limit)
      throw limit_overrun_error("Separator is not found, and chunk exceed the limit", data.size());
    if (t->eof) {
      bytes partial = t->take(t->available());
      throw incomplete_read_error(std::move(partial), std::nullopt);
    }
    // `from` counts from the start of the unread data, so it stays valid
    // when the fill compacts the buffer.
    co_await fill_awaiter(t.get());
  }
}

task<bytes> do_readline(std::shared_ptr<stream_transport> t) {
  try {
    co_return co_await do_readuntil(t, "\n");
  } catch (const incomplete_read_error& e) {
    co_return e.partial;
  } catch (const limit_overrun_error& e) {
    // Python: drop the line (through its separator if it is there) and raise.
    const std::string_view data = t->buffered();
    const std::size_t nl = data.find('\n', e.consumed);
    t->take(nl != std::string_view::npos ? nl + 1 : data.size());
    throw;
  }
}

task<void> do_drain(std::shared_ptr<stream_transport> t) {
  while (!t->write_error && !t->closed && t->pending_write() > t->high_water) {
    t->drained.clear();
    co_await t->drained.wait();
  }
  if (t->write_error) throw_os_error(t->write_error, "drain(fd " + std::to_string(t->fd) + ")");
}

task<void> do_wait_closed(std::shared_ptr<stream_transport> t) {
  while (!t->closed) co_await t->closed_event.wait();
  // asyncio: connection_lost(TimeoutError('SSL shutdown timed out')).
  if (t->close_timed_out)
    throw_os_error(make_error_code(socket_errc::timed_out),
                   "SSL shutdown timed out (fd " + std::to_string(t->fd) + ")");
}

}  // namespace

const std::shared_ptr<stream_transport>& stream_hooks::transport(const stream_reader& r) noexcept {
  return r.t_;
}
const std::shared_ptr<stream_transport>& stream_hooks::transport(const stream_writer& w) noexcept {
  return w.t_;
}
void stream_hooks::set_codec(stream_transport& t, std::unique_ptr<stream_codec> codec) {
  // The codec receives for itself from now on; what the multishot receive
  // already brought (a ClientHello behind STARTTLS) is fed to it.
  t.withdraw_receive();
  if (t.available() > 0) codec->feed(t.buffered());
  t.consume(t.available());
  t.codec = std::move(codec);
}
stream_codec* stream_hooks::codec(const stream_transport& t) noexcept { return t.codec.get(); }
task<void> stream_hooks::fill(std::shared_ptr<stream_transport> t) {
  if (t->eof || t->read_error) co_return;
  try {
    co_await fill_awaiter(t.get());
  } catch (const os_error&) {
    if (!t->read_error) throw;
  }
}
bool stream_hooks::eof(const stream_transport& t) noexcept { return t.eof; }
std::error_code stream_hooks::read_error(const stream_transport& t) noexcept {
  return t.read_error;
}
int stream_hooks::fileno(const stream_transport& t) noexcept { return t.fd; }
}  // namespace detail

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

incomplete_read_error::incomplete_read_error(bytes partial_bytes,
                                             std::optional<std::size_t> expected_bytes)
    : std::runtime_error(
          std::to_string(partial_bytes.size()) + " bytes read on a total of " +
          (expected_bytes ? std::to_string(*expected_bytes) : std::string("undefined")) +
          " expected bytes"),
      partial(std::move(partial_bytes)),
      expected(expected_bytes) {}

limit_overrun_error::limit_overrun_error(const std::string& message, std::size_t consumed_bytes)
    : std::runtime_error(message), consumed(consumed_bytes) {}

// ---------------------------------------------------------------------------
// Reader and writer
// ---------------------------------------------------------------------------

// --- frame-less waits (stream_fill_wait, read, read_into, drain) ------------

namespace detail {

stream_fill_wait::~stream_fill_wait() {
  if (suspended_ && t_->fill.waiting) t_->loop->abandon_io(&t_->fill);
  // Withdrawn (cancel, frame destroyed): no later fill may write into the
  // buffer of a read_into() that is gone.
  if (direct_mode_) t_->direct = nullptr;
}

bool stream_fill_wait::await_ready() {
  check_reader(t_);
  stream_transport& t = *t_;
  if (!wanted_ || t.available() > 0 || t.eof) return true;
  // As fill_awaiter: one receive now, a wait only if the kernel has nothing.
  claim_fill(t);
  received_ = true;
  if (!direct_.empty() && t.codec == nullptr && t.rbuf == nullptr) {
    direct_mode_ = true;
    t.direct = static_cast<char*>(static_cast<void*>(direct_.data()));
    t.direct_size = direct_.size();
  }
  return t.try_fill();
}

bool stream_fill_wait::await_suspend(std::coroutine_handle<> h) {
  suspended_ = t_->loop->suspend_io(&t_->fill, h);
  return suspended_;
}

void stream_fill_wait::finish_wait() {
  if (!received_) return;
  stream_transport& t = *t_;
  if (direct_mode_) {
    direct_mode_ = false;
    t.direct = nullptr;
    direct_got_ = t.direct_got;
  }
  suspended_ = false;  // the wait is over: nothing to withdraw any more
  end_fill(t);
}

std::size_t stream_fill_wait::copy_out(mutable_buffer buffer) noexcept {
  if (direct_got_ > 0) return direct_got_;  // received straight into `buffer`
  stream_transport& t = *t_;
  const std::size_t n = std::min(t.available(), buffer.size());
  if (n > 0) {
    std::memcpy(buffer.data(), t.rbuf + t.rbeg, n);
    t.consume(n);
  }
  return n;
}

bytes stream_fill_wait::take_up_to(std::size_t n) {
  stream_transport& t = *t_;
  return t.take(std::min(t.available(), n));
}

}  // namespace detail

stream_reader::read_awaiter::read_awaiter(std::shared_ptr<detail::stream_transport> t,
                                          std::ptrdiff_t n)
    : stream_fill_wait(std::move(t), n != 0), n_(n) {}

bool stream_reader::read_awaiter::await_ready() {
  if (n_ >= 0) return stream_fill_wait::await_ready();
  return all_.start(detail::do_read(t_, n_));
}

bool stream_reader::read_awaiter::await_suspend(std::coroutine_handle<> h) {
  if (all_.started()) return all_.await_suspend(h);
  return stream_fill_wait::await_suspend(h);
}

bytes stream_reader::read_awaiter::await_resume() {
  if (all_.started()) return all_.await_resume();
  finish_wait();
  return take_up_to(static_cast<std::size_t>(n_));
}

bool stream_writer::drain_awaiter::await_ready() {
  const detail::stream_transport& t = detail::checked(t_);
  if (t.write_error || t.closed || t.pending_write() <= t.high_water) return true;
  return wait_.start(detail::do_drain(t_));
}

bool stream_writer::drain_awaiter::await_suspend(std::coroutine_handle<> h) {
  return wait_.await_suspend(h);
}

void stream_writer::drain_awaiter::await_resume() {
  if (wait_.started()) return wait_.await_resume();
  const detail::stream_transport& t = *t_;
  if (t.write_error) throw_os_error(t.write_error, "drain(fd " + std::to_string(t.fd) + ")");
}

stream_reader::read_awaiter stream_reader::read(std::ptrdiff_t n) { return {t_, n}; }
task<bytes> stream_reader::readexactly(std::size_t n) { return detail::do_readexactly(t_, n); }
task<bytes> stream_reader::readline() { return detail::do_readline(t_); }
task<bytes> stream_reader::readuntil(std::string separator) {
  return detail::do_readuntil(t_, std::move(separator));
}
stream_reader::read_into_awaiter stream_reader::read_into(mutable_buffer buffer) {
  return {t_, buffer};
}
bool stream_reader::at_eof() const noexcept { return t_ && t_->eof && t_->available() == 0; }

using detail::checked;

void stream_writer::write(const_buffer data) { checked(t_).write(data); }
void stream_writer::writelines(const std::vector<bytes>& lines) {
  for (const bytes& line : lines) write(line);
}
stream_writer::drain_awaiter stream_writer::drain() { return drain_awaiter(t_); }
void stream_writer::write_eof() {
  auto& t = checked(t_);
  if (t.codec != nullptr) throw std::logic_error("write_eof(): TLS streams cannot half-close");
  if (t.closed || t.eof_requested) return;
  t.eof_requested = true;
  if (t.pending_write() == 0) t.send_eof();
}
bool stream_writer::can_write_eof() const noexcept { return !t_ || t_->codec == nullptr; }
void stream_writer::close() { checked(t_).close(); }
bool stream_writer::is_closing() const noexcept { return t_ && (t_->closing || t_->closed); }
task<void> stream_writer::wait_closed() {
  checked(t_);
  return detail::do_wait_closed(t_);
}
std::size_t stream_writer::get_write_buffer_size() const noexcept {
  return t_ ? t_->pending_write() : 0;
}
void stream_writer::set_write_buffer_limits(std::size_t high, std::optional<std::size_t> low) {
  auto& t = checked(t_);
  const std::size_t l = low.value_or(high / 4);
  if (l > high) throw std::invalid_argument("set_write_buffer_limits: high must be >= low");
  t.high_water = high;
  t.low_water = l;
}
std::pair<std::size_t, std::size_t> stream_writer::get_write_buffer_limits() const noexcept {
  return t_ ? std::pair{t_->low_water, t_->high_water} : std::pair<std::size_t, std::size_t>{0, 0};
}
address stream_writer::peername() const { return checked(t_).sock.getpeername(); }
address stream_writer::sockname() const { return checked(t_).sock.getsockname(); }
socket& stream_writer::get_socket() const noexcept { return t_->sock; }

std::pair<stream_reader, stream_writer> make_streams(event_loop& loop, socket sock,
                                                     const stream_limits& limits) {
  if (sock.closed())
    throw_os_error(std::make_error_code(std::errc::bad_file_descriptor), "make_streams");
  // Accepted by the loop (sock_accept, start_server) it is non-blocking
  // already: no second ioctl per connection.
  if (sock.getblocking()) sock.setblocking(false);
  // asyncio sets TCP_NODELAY on every TCP transport: a stream writes whole
  // messages, and Nagle plus delayed ACKs would stall small replies ~40 ms.
  if ((sock.family() == AF_INET || sock.family() == AF_INET6) && sock.type() == SOCK_STREAM) {
    const int on = 1;
    ::setsockopt(sock.fileno(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  }
  auto t = std::make_shared<detail::stream_transport>(loop, std::move(sock), limits);
  detail::loop_access::attach(loop, t->fd);
  return {stream_reader(t), stream_writer(t)};
}

// ---------------------------------------------------------------------------
// open_connection
// ---------------------------------------------------------------------------

namespace {

bool is_name(const address& a) {
  if (!a.needs_resolution()) return false;
  const std::string host = a.host();
  return !host.empty() && host != "<broadcast>";
}

}  // namespace

task<std::pair<stream_reader, stream_writer>> open_connection(std::string host, int port,
                                                              stream_limits limits) {
  event_loop& loop = get_running_loop();
  std::vector<address> candidates;
  const address given(host, port);
  if (is_name(given)) {
    auto resolve = [host, port] { return getaddrinfo(host, port, AF_UNSPEC, SOCK_STREAM); };
    std::vector<addrinfo_entry> found = co_await loop.run_in_thread(std::move(resolve));
    for (auto& entry : found) candidates.push_back(entry.sockaddr);
  } else {
    candidates.push_back(given);
  }
  // Each address in turn, as create_connection(); the last error if all fail.
  std::exception_ptr last;
  for (const address& candidate : candidates) {
    const int family = candidate.family() == AF_UNSPEC ? AF_INET : candidate.family();
    socket sock(family, SOCK_STREAM | SOCK_NONBLOCK);
    try {
      co_await loop.sock_connect(sock, candidate);
      co_return make_streams(loop, std::move(sock), limits);
    } catch (const os_error&) {
      last = std::current_exception();
    }
  }
  std::rethrow_exception(last);
}

task<std::pair<stream_reader, stream_writer>> open_unix_connection(std::string path,
                                                                   stream_limits limits) {
  event_loop& loop = get_running_loop();
  socket sock(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK);
  co_await loop.sock_connect(sock, address::unix_path(path));
  co_return make_streams(loop, std::move(sock), limits);
}

// ---------------------------------------------------------------------------
// start_server
// ---------------------------------------------------------------------------

namespace detail {

struct multishot_acceptor;
void withdraw_acceptor(multishot_acceptor* acceptor) noexcept;

struct server_state : std::enable_shared_from_this<server_state> {
  event_loop* loop = nullptr;
  // io_uring: the accept loop's multishot request, while it has one.
  multishot_acceptor* acceptor = nullptr;
  socket listener = socket::closed_socket();  // socket() would open one
  address bound;
  connection_handler handler;
  server_config config;
  task_handle<void> accept_task;
  bool closed = false;
  std::list<task_handle<void>> connections;
  event stopped;  // set by close()
  event idle;     // set whenever a connection handler ends (wait_closed looks again)

  void close() {
    if (closed) return;
    closed = true;
    // The cancel withdraws the accept's epoll registration at once, so the
    // listener can be closed before the accept task has even resumed. A
    // multishot accept request is withdrawn here too: it holds the listening
    // file open in the kernel and would go on accepting after close().
    if (acceptor != nullptr) withdraw_acceptor(acceptor);
    accept_task.cancel();
    try {
      listener.close();
    } catch (const os_error&) {
    }
    stopped.set();
  }
};

namespace {

task<void> run_connection(std::shared_ptr<server_state> st,
                          std::list<task_handle<void>>::iterator self, stream_reader reader,
                          stream_writer writer) {
  try {
    co_await st->handler(std::move(reader), std::move(writer));
  } catch (const cancelled_error&) {
    // close_clients(): the handler was cancelled; that is how it ends.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pysock: unhandled exception in connection handler: %s\n", e.what());
  }
  st->connections.erase(self);
  st->idle.set();  // wait_closed() looks again
}

bool is_resource_shortage(const std::error_code& ec) {
  return ec == std::errc::too_many_files_open || ec == std::errc::too_many_files_open_in_system ||
         ec == std::errc::no_buffer_space || ec == std::errc::not_enough_memory;
}

// Python's asyncio: out of descriptors or memory, log and stop accepting for
// a while instead of spinning on the error; a connection aborted before
// accept() is just skipped; anything else ends the accept loop. `what`
// describes the error for the log line.
enum class accept_failure { pause, skip, fatal };
accept_failure classify_accept_error(const std::error_code& ec, const char* what) {
  if (is_resource_shortage(ec)) {
    std::fprintf(stderr, "pysock: accept(): %s; pausing accepts for 100 ms\n", what);
    return accept_failure::pause;
  }
  if (ec == std::errc::connection_aborted || ec == std::errc::protocol_error)
    return accept_failure::skip;
  return accept_failure::fatal;
}

// The accept task's frame holds the state and the state holds the task's
// handle; when the task ends, however it ends, it drops that handle so the
// two do not keep each other alive.
struct drop_accept_handle {
  server_state* st;
  ~drop_accept_handle() { st->accept_task = task_handle<void>(); }
};

void serve_connection(const std::shared_ptr<server_state>& st, socket conn) {
  auto streams = make_streams(*st->loop, std::move(conn), st->config.limits);
  st->idle.clear();
  auto it = st->connections.emplace(st->connections.end());
  *it = st->loop->create_task(
      run_connection(st, it, std::move(streams.first), std::move(streams.second)));
}

}  // namespace

#ifdef PYSOCK_HAVE_IO_URING
// io_uring: the listener accepts through one multishot request, one
// submission for any number of connections; its completions queue the
// descriptors here (server_accepted) and wake the accept loop. Lives in the
// accept loop's frame, so a frame destroyed while it waits (the loop closing)
// withdraws the request; server_state::close() withdraws it before it closes
// the listener.
struct multishot_acceptor : io_op {
  server_state* st;
  std::deque<int> accepted;  // owned here until the accept loop takes them
  std::error_code error;     // the completion that ended the request, if it failed
  bool delivered = false;    // a kernel without multishot accept fails the first one
  event arrived;

  explicit multishot_acceptor(server_state* s) noexcept
      : io_op(op_kind::accept_multishot, false), st(s) {
    fd = s->listener.fileno();
    loop = s->loop;
    s->acceptor = this;
  }
  multishot_acceptor(const multishot_acceptor&) = delete;
  multishot_acceptor& operator=(const multishot_acceptor&) = delete;
  ~multishot_acceptor() {
    withdraw();
    st->acceptor = nullptr;
  }
  void withdraw() noexcept {
    loop_access::withdraw_multishot(*loop, this);
    for (const int conn : accepted) ::close(conn);
    accepted.clear();
  }
};

void withdraw_acceptor(multishot_acceptor* acceptor) noexcept { acceptor->withdraw(); }

void server_accepted(io_op* op, int res) noexcept {
  auto* acceptor = static_cast<multishot_acceptor*>(op);
  if (res >= 0) {
    acceptor->delivered = true;
    try {
      acceptor->accepted.push_back(res);
    } catch (const std::bad_alloc&) {
      ::close(res);
      acceptor->error = std::make_error_code(std::errc::not_enough_memory);
    }
  } else if (res != -ECANCELED) {
    acceptor->error.assign(-res, std::system_category());
  }
  acceptor->arrived.set();
}
#else
void withdraw_acceptor(multishot_acceptor*) noexcept {}  // never made without io_uring
#endif

namespace {

#ifdef PYSOCK_HAVE_IO_URING
// The accept loop on io_uring; false if the kernel has no multishot accept
// (Linux < 5.19), and the caller goes on with accept() on readiness.
task<bool> accept_multishot_loop(std::shared_ptr<server_state> st) {
  multishot_acceptor acceptor(st.get());
  while (!st->closed) {
    if (!acceptor.accepted.empty()) {
      const int conn = acceptor.accepted.front();
      acceptor.accepted.pop_front();
      serve_connection(st, adopt_accepted(conn, st->listener));
      continue;
    }
    if (!acceptor.error) {
      if (!acceptor.in_ring) loop_access::accept_multishot(*st->loop, &acceptor);
      acceptor.arrived.clear();
      co_await acceptor.arrived.wait();
      continue;
    }
    const std::error_code ec = std::exchange(acceptor.error, std::error_code());
    if (ec == std::errc::invalid_argument && !acceptor.delivered) co_return false;
    const accept_failure failure = classify_accept_error(ec, ec.message().c_str());
    if (failure == accept_failure::fatal) throw_os_error(ec, "accept()");
    if (failure == accept_failure::pause) co_await sleep(std::chrono::milliseconds(100));
  }
  co_return true;
}
#endif

task<void> accept_loop(std::shared_ptr<server_state> st) {
  const drop_accept_handle guard{st.get()};
#ifdef PYSOCK_HAVE_IO_URING
  if (loop_access::on_ring(*st->loop)) {
    task<bool> multishot = accept_multishot_loop(st);
    if (co_await std::move(multishot)) co_return;
  }
#endif
  while (!st->closed) {
    std::pair<socket, address> conn{socket::closed_socket(), address()};
    bool pause = false;
    try {
      conn = co_await st->loop->sock_accept(st->listener);
    } catch (const os_error& e) {
      if (st->closed) co_return;
      const accept_failure failure = classify_accept_error(e.code(), e.what());
      if (failure == accept_failure::fatal) throw;
      pause = failure == accept_failure::pause;
    }
    if (pause) {
      co_await sleep(std::chrono::milliseconds(100));
      continue;
    }
    if (conn.first.closed()) continue;
    serve_connection(st, std::move(conn.first));
  }
}

task<void> server_wait_closed(std::shared_ptr<server_state> st) {
  while (!st->closed) co_await st->stopped.wait();
  if (task_handle<void> accepting = st->accept_task; accepting.valid() && !accepting.done()) {
    try {
      co_await accepting;  // a local handle: the task drops the server's one as it ends
    } catch (const cancelled_error&) {
    }
  }
  // An accept task cancelled before its first step never ran its guard, and
  // its frame holds this state: drop the handle here or the two leak.
  st->accept_task = task_handle<void>();
  // A handler cancelled before its first step never runs, so it cannot take
  // itself off the list: finished ones are pruned here.
  for (;;) {
    st->connections.remove_if([](const task_handle<void>& h) { return h.done(); });
    if (st->connections.empty()) break;
    st->idle.clear();
    co_await st->idle.wait();
  }
}

task<void> server_serve_forever(std::shared_ptr<server_state> st) {
  try {
    while (!st->closed) co_await st->stopped.wait();
  } catch (const cancelled_error&) {
    st->close();  // Python: cancelling serve_forever() closes the server
    throw;
  }
}

}  // namespace
}  // namespace detail

server& server::operator=(server&& other) noexcept {
  if (this != &other) {
    if (state_) state_->close();
    state_ = std::move(other.state_);
  }
  return *this;
}

server::~server() {
  if (state_) state_->close();
}

void server::close() {
  if (state_) state_->close();
}

void server::close_clients() {
  if (!state_) return;
  for (auto& h : state_->connections) h.cancel();
}

task<void> server::wait_closed() {
  if (!state_) throw invalid_state_error("server: empty");
  return detail::server_wait_closed(state_);
}

task<void> server::serve_forever() {
  if (!state_) throw invalid_state_error("server: empty");
  return detail::server_serve_forever(state_);
}

bool server::is_serving() const noexcept { return state_ && !state_->closed; }

std::vector<const socket*> server::sockets() const {
  if (!state_ || state_->closed) return {};
  return {&state_->listener};
}

address server::sockname() const {
  if (!state_) throw invalid_state_error("server: empty");
  return state_->bound;
}

std::size_t server::active_connections() const noexcept {
  if (!state_) return 0;
  return static_cast<std::size_t>(
      std::count_if(state_->connections.begin(), state_->connections.end(),
                    [](const task_handle<void>& h) { return !h.done(); }));
}

namespace {
// Plain function, not a coroutine: the overloads below call it without a
// co_await, which keeps them clear of GCC 12's double destruction of
// by-value coroutine arguments inside co_await expressions (PR 99576).
server serve_listener(connection_handler handler, socket listener, server_config config) {
  if (!handler) throw std::invalid_argument("start_server: empty handler");
  event_loop& loop = get_running_loop();
  listener.setblocking(false);
  auto st = std::make_shared<detail::server_state>();
  st->loop = &loop;
  st->bound = listener.getsockname();
  st->listener = std::move(listener);
  st->handler = std::move(handler);
  st->config = std::move(config);
  st->accept_task = loop.create_task(detail::accept_loop(st));
  return server(st);
}
}  // namespace

task<server> start_server(connection_handler handler, socket listener, server_config config) {
  co_return serve_listener(std::move(handler), std::move(listener), std::move(config));
}

task<server> start_server(connection_handler handler, std::string host, int port,
                          server_config config) {
  event_loop& loop = get_running_loop();
  address where(host, port);
  if (is_name(where)) {
    auto resolve = [host, port] {
      return getaddrinfo(host, port, AF_UNSPEC, SOCK_STREAM, 0, AI_PASSIVE);
    };
    std::vector<addrinfo_entry> found = co_await loop.run_in_thread(std::move(resolve));
    where = found.front().sockaddr;
  }
  server_options options;
  options.family = where.family() == AF_UNSPEC ? AF_INET : where.family();
  options.backlog = config.backlog;
  options.reuse_port = config.reuse_port;
  socket listener = create_server(where, options);
  co_return serve_listener(std::move(handler), std::move(listener), std::move(config));
}

task<server> start_unix_server(connection_handler handler, std::string path, server_config config) {
  socket listener(AF_UNIX, SOCK_STREAM);
  listener.bind(address::unix_path(path));
  listener.listen(config.backlog);
  co_return serve_listener(std::move(handler), std::move(listener), std::move(config));
}

// ---------------------------------------------------------------------------
// serve_forever: N loops on N threads
// ---------------------------------------------------------------------------

namespace {

struct descriptor {
  int fd = -1;
  descriptor() = default;
  explicit descriptor(int f) : fd(f) {}
  descriptor(const descriptor&) = delete;
  descriptor& operator=(const descriptor&) = delete;
  ~descriptor() {
    if (fd >= 0) ::close(fd);
  }
};

struct signal_mask_guard {
  sigset_t old;
  bool active = false;
  explicit signal_mask_guard(const sigset_t& block) {
    if (::pthread_sigmask(SIG_BLOCK, &block, &old) == 0) active = true;
  }
  signal_mask_guard(const signal_mask_guard&) = delete;
  signal_mask_guard& operator=(const signal_mask_guard&) = delete;
  ~signal_mask_guard() {
    if (active) ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
};

}  // namespace

void serve_forever(connection_handler handler, const std::string& host, int port,
                   serve_options options) {
  if (!handler) throw std::invalid_argument("serve_forever: empty handler");
  unsigned count = options.threads;
  if (count == 0) count = std::max(1u, std::thread::hardware_concurrency());

  // Listeners first, on this thread: the first one binds (port 0 lets the
  // kernel choose), the others bind to the port it got, all SO_REUSEPORT.
  address where(host, port);
  if (is_name(where))
    where = getaddrinfo(host, port, AF_UNSPEC, SOCK_STREAM, 0, AI_PASSIVE).front().sockaddr;
  server_options listen_options;
  listen_options.family = where.family() == AF_UNSPEC ? AF_INET : where.family();
  listen_options.backlog = options.backlog;
  listen_options.reuse_port = true;
  std::vector<socket> listeners;
  listeners.push_back(create_server(where, listen_options));
  const address bound = listeners.front().getsockname();
  for (unsigned i = 1; i < count; ++i) listeners.push_back(create_server(bound, listen_options));

  // Stop signals are blocked before any thread starts, so every thread
  // inherits the mask and only this thread's signalfd sees them.
  sigset_t stop_mask;
  sigemptyset(&stop_mask);
  for (int sig : options.stop_signals) sigaddset(&stop_mask, sig);
  const signal_mask_guard mask_guard(stop_mask);
  descriptor signal_fd;
  if (!options.stop_signals.empty()) {
    signal_fd.fd = ::signalfd(-1, &stop_mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signal_fd.fd < 0) throw_os_error(last_error(), "signalfd()");
  }
  descriptor stop_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (stop_fd.fd < 0) throw_os_error(last_error(), "eventfd()");
  const int wake = stop_fd.fd;
  auto poke = [wake] {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake, &one, sizeof one);
  };

  struct worker_slot {
    event_loop* loop = nullptr;
    std::exception_ptr error;
  };
  std::mutex slots_mutex;
  std::vector<worker_slot> slots(count);
  std::latch started(static_cast<std::ptrdiff_t>(count));
  std::vector<std::thread> threads;
  threads.reserve(count);
  for (unsigned i = 0; i < count; ++i) {
    threads.emplace_back([&, i] {
      bool counted = false;
      try {
        event_loop loop(options.loop);
        server_config config;
        config.backlog = options.backlog;
        config.limits = options.limits;
        server srv =
            loop.run_until_complete(start_server(handler, std::move(listeners[i]), config));
        {
          const std::lock_guard<std::mutex> lock(slots_mutex);
          slots[i].loop = &loop;
        }
        started.count_down();
        counted = true;
        loop.run_forever();  // until the stop request below
        {
          const std::lock_guard<std::mutex> lock(slots_mutex);
          slots[i].loop = nullptr;
        }
        srv.close();
        srv.close_clients();
        loop.run_until_complete(srv.wait_closed());
      } catch (...) {
        {
          const std::lock_guard<std::mutex> lock(slots_mutex);
          slots[i].loop = nullptr;
          slots[i].error = std::current_exception();
        }
        if (!counted) started.count_down();
        poke();  // a failed loop ends the whole server
      }
    });
  }
  started.wait();
  if (options.on_listening) {
    try {
      options.on_listening(bound);
    } catch (...) {
      poke();
      const std::lock_guard<std::mutex> lock(slots_mutex);
      if (!slots[0].error) slots[0].error = std::current_exception();
    }
  }
  const std::stop_callback on_stop(options.stop, poke);

  pollfd waits[2] = {{stop_fd.fd, POLLIN, 0}, {signal_fd.fd, POLLIN, 0}};
  for (;;) {
    const int n = ::poll(waits, signal_fd.fd >= 0 ? 2 : 1, -1);
    if (n > 0) break;
    if (n < 0 && errno != EINTR) break;
  }
  if (signal_fd.fd >= 0) {  // consume the stop signal(s): they are handled
    signalfd_siginfo info;
    while (::read(signal_fd.fd, &info, sizeof info) > 0) {
    }
  }
  {
    const std::lock_guard<std::mutex> lock(slots_mutex);
    for (auto& slot : slots) {
      if (slot.loop != nullptr) {
        event_loop* l = slot.loop;
        l->call_soon_threadsafe([l] { l->stop(); });
      }
    }
  }
  for (auto& t : threads) t.join();
  for (auto& slot : slots) {
    if (slot.error) std::rethrow_exception(slot.error);
  }
}

}  // namespace pysock
