// SPDX-License-Identifier: MIT
//
// The BIO behind Python's MemoryBIO. OpenSSL's BIO_s_mem makes four
// allocations per BIO (the BIO, its state, two BUF_MEMs) plus one per growth
// of its buffer, and grows with BUF_MEM_grow_clean: a new block, a copy, the
// old block zeroed and freed. An HTTPS server has two per connection. This
// one keeps a single plain buffer that is reused once drained (the usual
// case: the event loop empties it after every call), and memory_bio and the
// TLS codecs reach it without BIO_write/BIO_read's dispatch. The bytes in it
// are ciphertext, so nothing needs zeroing.
//
// Seen from OpenSSL it behaves as BIO_s_mem: BIO_read/BIO_write/BIO_gets/
// BIO_puts, BIO_pending, BIO_eof, BIO_reset, BIO_get_mem_data and
// BIO_set_mem_eof_return (-1 by default: an empty buffer means "retry").
// BIO_get_mem_ptr gives a null BUF_MEM: there is none.
#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "ssl_detail.hpp"

namespace pysock::detail {
namespace {

struct byte_queue {
  char* data = nullptr;
  std::size_t capacity = 0;
  std::size_t begin = 0;         // first unread byte
  std::size_t end = 0;           // one past the last written byte
  int eof_return = -1;           // BIO_set_mem_eof_return: what reading an empty queue gives
  std::uint64_t generation = 0;  // memory_bio_generation()

  std::size_t size() const noexcept { return end - begin; }
};

// The first buffer holds a ClientHello or a server's first flight whole.
constexpr std::size_t min_capacity = 4096;
// A buffer grown past this (a burst of file data) goes back to the heap once
// drained instead of being kept for the life of the connection.
constexpr std::size_t keep_capacity = 256 * 1024;

bool append(byte_queue& q, const char* data, std::size_t size) noexcept {
  if (size == 0) return true;
  ++q.generation;
  if (q.begin == q.end) q.begin = q.end = 0;
  if (q.capacity - q.end < size) {
    const std::size_t live = q.size();
    if (size > SIZE_MAX / 4 || live > SIZE_MAX / 4) return false;  // no size arithmetic wraps
    const std::size_t need = live + size;
    if (need <= q.capacity && live <= q.capacity / 2) {
      // Room enough once the unread bytes move to the front; moving at most
      // half the buffer per refill keeps appends amortised O(1).
      std::memmove(q.data, q.data + q.begin, live);
    } else {
      std::size_t capacity = std::max({need, q.capacity + q.capacity / 2, min_capacity});
      capacity = (capacity + 4095) & ~std::size_t{4095};
      auto* fresh = static_cast<char*>(std::malloc(capacity));
      if (fresh == nullptr) return false;
      if (live != 0) std::memcpy(fresh, q.data + q.begin, live);
      std::free(q.data);
      q.data = fresh;
      q.capacity = capacity;
    }
    q.begin = 0;
    q.end = live;
  }
  std::memcpy(q.data + q.end, data, size);
  q.end += size;
  return true;
}

std::size_t take(byte_queue& q, char* out, std::size_t size) noexcept {
  const std::size_t n = std::min(size, q.size());
  if (n != 0) std::memcpy(out, q.data + q.begin, n);
  q.begin += n;
  if (q.begin == q.end) {
    q.begin = q.end = 0;
    if (q.capacity > keep_capacity) {
      std::free(q.data);
      q.data = nullptr;
      q.capacity = 0;
    }
  }
  return n;
}

byte_queue& queue_of(const BIO* bio) noexcept {
  return *static_cast<byte_queue*>(BIO_get_data(const_cast<BIO*>(bio)));
}

int bio_write_ex(BIO* bio, const char* data, std::size_t size, std::size_t* written) {
  BIO_clear_retry_flags(bio);
  *written = 0;
  if (!append(queue_of(bio), data, size)) {
    ERR_raise(ERR_LIB_BIO, ERR_R_MALLOC_FAILURE);
    return 0;
  }
  *written = size;
  return 1;
}

// As BIO_s_mem: an empty queue reads as the eof_return value, with the
// retry flag when that is not 0 (end of file).
int bio_read_ex(BIO* bio, char* out, std::size_t size, std::size_t* read) {
  BIO_clear_retry_flags(bio);
  byte_queue& q = queue_of(bio);
  *read = 0;
  if (q.size() == 0) {
    if (q.eof_return == 0) return 0;
    BIO_set_retry_read(bio);
    return -1;
  }
  if (size == 0 || out == nullptr) return 0;
  *read = take(q, out, size);
  return 1;
}

int bio_puts(BIO* bio, const char* text) {
  const std::size_t length = std::strlen(text);
  if (length > static_cast<std::size_t>(INT_MAX) || !append(queue_of(bio), text, length)) {
    ERR_raise(ERR_LIB_BIO, ERR_R_MALLOC_FAILURE);
    return -1;
  }
  return static_cast<int>(length);
}

// BIO_gets: up to size - 1 bytes, through the first newline; NUL-terminated.
int bio_gets(BIO* bio, char* out, int size) {
  BIO_clear_retry_flags(bio);
  if (size <= 0) return 0;
  byte_queue& q = queue_of(bio);
  std::size_t n = std::min(q.size(), static_cast<std::size_t>(size - 1));
  if (n == 0) {
    out[0] = '\0';
    return 0;
  }
  if (const void* newline = std::memchr(q.data + q.begin, '\n', n))
    n = static_cast<std::size_t>(static_cast<const char*>(newline) - (q.data + q.begin)) + 1;
  take(q, out, n);
  out[n] = '\0';
  return static_cast<int>(n);
}

long bio_ctrl(BIO* bio, int command, long number, void* pointer) {
  byte_queue& q = queue_of(bio);
  switch (command) {
    case BIO_CTRL_RESET:
      q.begin = q.end = 0;
      ++q.generation;
      return 1;
    case BIO_CTRL_EOF:
      return q.size() == 0 ? 1 : 0;
    case BIO_C_SET_BUF_MEM_EOF_RETURN:
      q.eof_return = static_cast<int>(number);
      ++q.generation;
      return 1;
    case BIO_CTRL_INFO:  // BIO_get_mem_data
      if (pointer != nullptr) *static_cast<char**>(pointer) = q.data + q.begin;
      return static_cast<long>(q.size());
    case BIO_C_GET_BUF_MEM_PTR:  // there is no BUF_MEM: a null one, never garbage
      if (pointer != nullptr) *static_cast<BUF_MEM**>(pointer) = nullptr;
      return 0;
    case BIO_CTRL_PENDING:
      return static_cast<long>(std::min(q.size(), static_cast<std::size_t>(LONG_MAX)));
    case BIO_CTRL_GET_CLOSE:
      return BIO_get_shutdown(bio);
    case BIO_CTRL_SET_CLOSE:
      BIO_set_shutdown(bio, static_cast<int>(number));
      return 1;
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_DUP:
      return 1;
    default:
      return 0;  // BIO_CTRL_WPENDING among them: nothing waits to be written
  }
}

int bio_create(BIO* bio) {
  auto* q = new (std::nothrow) byte_queue;
  if (q == nullptr) return 0;
  BIO_set_data(bio, q);
  BIO_set_init(bio, 1);
  return 1;
}

int bio_destroy(BIO* bio) {
  auto* q = static_cast<byte_queue*>(BIO_get_data(bio));
  if (q == nullptr) return 1;
  std::free(q->data);
  delete q;
  BIO_set_data(bio, nullptr);
  BIO_set_init(bio, 0);
  return 1;
}

int method_type() noexcept {
  static const int type = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK;
  return type;
}

BIO_METHOD* method() noexcept {
  // Made once, kept for the life of the process (shared by every BIO).
  static BIO_METHOD* const m = [] {
    BIO_METHOD* made = BIO_meth_new(method_type(), "pysock memory");
    if (made == nullptr) return made;
    BIO_meth_set_write_ex(made, bio_write_ex);
    BIO_meth_set_read_ex(made, bio_read_ex);
    BIO_meth_set_puts(made, bio_puts);
    BIO_meth_set_gets(made, bio_gets);
    BIO_meth_set_ctrl(made, bio_ctrl);
    BIO_meth_set_create(made, bio_create);
    BIO_meth_set_destroy(made, bio_destroy);
    return made;
  }();
  return m;
}

}  // namespace

BIO* new_memory_bio() noexcept {
  BIO_METHOD* m = method();
  return m != nullptr ? BIO_new(m) : nullptr;
}

bool is_memory_bio(const BIO* bio) noexcept {
  return bio != nullptr && BIO_method_type(bio) == method_type();
}

bool memory_bio_append(BIO* bio, const char* data, std::size_t size) noexcept {
  return append(queue_of(bio), data, size);
}

std::size_t memory_bio_take(BIO* bio, char* out, std::size_t size) noexcept {
  return take(queue_of(bio), out, size);
}

std::size_t memory_bio_pending(const BIO* bio) noexcept { return queue_of(bio).size(); }

void memory_bio_set_eof_return(BIO* bio, int value) noexcept {
  byte_queue& q = queue_of(bio);
  q.eof_return = value;
  ++q.generation;
}

std::uint64_t memory_bio_generation(const BIO* bio) noexcept { return queue_of(bio).generation; }

}  // namespace pysock::detail
