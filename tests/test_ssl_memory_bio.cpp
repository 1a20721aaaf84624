// SPDX-License-Identifier: MIT
//
// Python's MemoryBIO (pysock::memory_bio) and the SSLObject calls over it:
// the byte queue's behaviour from both sides (memory_bio's calls and
// OpenSSL's BIO_* calls on native_handle()), growth and reuse of its buffer
// with the bytes kept in order, end of file, and the ssl_object's handling
// of "nothing new to read" (answered without entering OpenSSL, and never
// hiding input that did arrive), and a stale OpenSSL error left by someone
// else never reported as the connection's.
#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstring>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "interop/ssl_support.hpp"
#include "pysock/ssl.hpp"

namespace {

class memory_bio_tls_test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ssl_test::have_program("openssl")) GTEST_SKIP() << "the openssl command is not installed";
    ASSERT_TRUE(certs.ok()) << "ssl_make_certs.sh failed";
  }
  pysock::ssl_context server_context() const {
    pysock::ssl_context ctx(pysock::protocol_tls_server);
    ctx.load_cert_chain(certs.pem("localhost"), certs.key("localhost"));
    return ctx;
  }
  pysock::ssl_context client_context() const {
    pysock::ssl_context ctx(pysock::protocol_tls_client);
    ctx.load_verify_locations(certs.pem("ca"));
    return ctx;
  }
  ssl_test::cert_dir certs;
};

// Moves every pending byte from one BIO to another; true when anything moved.
bool pump(pysock::memory_bio& from, pysock::memory_bio& to) {
  const pysock::bytes data = from.read();
  if (data.empty()) return false;
  to.write(data);
  return true;
}

// Counts OpenSSL's reads of one BIO (BIO_read/BIO_read_ex), through the BIO
// callback; memory_bio's own calls do not go through it.
long count_reads(BIO* bio, int oper, const char*, std::size_t, int, long, int ret, std::size_t*) {
  if (oper == BIO_CB_READ) {
    auto* counter = reinterpret_cast<int*>(BIO_get_callback_arg(bio));
    ++*counter;
  }
  return ret;
}

TEST(memory_bio, bytes_come_out_in_order_in_any_slices_across_growth) {
  pysock::memory_bio bio;
  EXPECT_EQ(bio.pending(), 0u);
  EXPECT_EQ(bio.read(), "");
  EXPECT_FALSE(bio.eof());
  // Writes of growing size interleaved with partial reads: the buffer grows,
  // is compacted and reused; every byte must come out once, in order.
  std::string written;
  std::string taken;
  for (int round = 0; round < 200; ++round) {
    std::string chunk(static_cast<std::size_t>(round * 97 % 5000 + 1), '\0');
    for (std::size_t i = 0; i < chunk.size(); ++i)
      chunk[i] = static_cast<char>('a' + (written.size() + i) % 26);
    EXPECT_EQ(bio.write(chunk), chunk.size());
    written += chunk;
    taken += bio.read(static_cast<std::size_t>(round * 53 % 3000));
    EXPECT_EQ(bio.pending(), written.size() - taken.size());
  }
  taken += bio.read();
  EXPECT_EQ(bio.pending(), 0u);
  ASSERT_EQ(taken.size(), written.size());
  EXPECT_TRUE(taken == written) << "bytes reordered or lost";

  // read_into takes what fits; an empty buffer takes nothing.
  bio.write("0123456789");
  char small[4];
  EXPECT_EQ(bio.read_into(pysock::mutable_buffer(small, sizeof small)), 4u);
  EXPECT_EQ(std::string(small, 4), "0123");
  EXPECT_EQ(bio.read_into(pysock::mutable_buffer(small, 0)), 0u);
  EXPECT_EQ(bio.read(), "456789");
}

TEST(memory_bio, eof_after_write_eof_once_drained_and_no_writes_after_it) {
  pysock::memory_bio bio;
  bio.write("tail");
  bio.write_eof();
  EXPECT_FALSE(bio.eof()) << "unread bytes remain";
  EXPECT_THROW(bio.write("late"), pysock::ssl_error);
  EXPECT_EQ(bio.read(), "tail");
  EXPECT_TRUE(bio.eof());

  pysock::memory_bio moved(std::move(bio));
  EXPECT_TRUE(moved.eof());
  EXPECT_EQ(bio.pending(), 0u);  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_THROW(bio.write("x"), std::logic_error);
}

TEST(memory_bio, openssl_sees_the_same_queue_through_the_native_handle) {
  pysock::memory_bio bio;
  BIO* native = bio.native_handle();
  ASSERT_NE(native, nullptr);

  // Empty, before write_eof: "retry later", as Python's MemoryBIO.
  char buffer[64];
  EXPECT_EQ(BIO_read(native, buffer, sizeof buffer), -1);
  EXPECT_TRUE(BIO_should_retry(native));
  EXPECT_TRUE(BIO_should_read(native));

  bio.write("from memory_bio");
  EXPECT_EQ(BIO_pending(native), 15);
  char* data = nullptr;
  EXPECT_EQ(BIO_get_mem_data(native, &data), 15);
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(std::string(data, 15), "from memory_bio");
  EXPECT_EQ(BIO_read(native, buffer, 5), 5);
  EXPECT_EQ(std::string(buffer, 5), "from ");
  EXPECT_EQ(bio.read(), "memory_bio");

  EXPECT_EQ(BIO_write(native, "from OpenSSL", 12), 12);
  EXPECT_EQ(bio.pending(), 12u);
  EXPECT_EQ(bio.read(), "from OpenSSL");

  EXPECT_EQ(BIO_puts(native, "line one\nline two\n"), 18);
  EXPECT_EQ(BIO_gets(native, buffer, sizeof buffer), 9);
  EXPECT_STREQ(buffer, "line one\n");
  EXPECT_EQ(BIO_gets(native, buffer, 5), 4);  // size - 1 bytes at most
  EXPECT_STREQ(buffer, "line");
  EXPECT_EQ(BIO_reset(native), 1);
  EXPECT_EQ(bio.pending(), 0u);
  EXPECT_EQ(BIO_gets(native, buffer, sizeof buffer), 0);
  EXPECT_STREQ(buffer, "");
  BUF_MEM* mem = reinterpret_cast<BUF_MEM*>(&bio);  // must be overwritten
  EXPECT_EQ(BIO_get_mem_ptr(native, &mem), 0);
  EXPECT_EQ(mem, nullptr) << "BIO_get_mem_ptr left the pointer as it was";

  bio.write_eof();
  EXPECT_EQ(BIO_read(native, buffer, sizeof buffer), 0);
  EXPECT_FALSE(BIO_should_retry(native));
  EXPECT_EQ(BIO_eof(native), 1);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(memory_bio_tls_test, a_handshake_with_no_new_input_is_answered_without_openssl) {
  pysock::memory_bio c_in, c_out, s_in, s_out;
  pysock::ssl_object client = client_context().wrap_bio(c_in, c_out, false, "localhost");
  pysock::ssl_object server = server_context().wrap_bio(s_in, s_out, true);
  int server_reads = 0;
  BIO_set_callback_ex(s_in.native_handle(), count_reads);
  BIO_set_callback_arg(s_in.native_handle(), reinterpret_cast<char*>(&server_reads));

  std::error_code ec;
  client.do_handshake(ec);
  ASSERT_TRUE(ec == pysock::ssl_errc::want_read) << ec.message();
  // The ClientHello arrives in two parts: after the first, OpenSSL wants more.
  const pysock::bytes hello = c_out.read();
  ASSERT_GT(hello.size(), 10u);
  s_in.write(std::string_view(hello).substr(0, 10));
  server.do_handshake(ec);
  ASSERT_TRUE(ec == pysock::ssl_errc::want_read) << ec.message();
  const int reads = server_reads;
  EXPECT_GT(reads, 0);
  // Nothing new: the same answer, OpenSSL not asked again.
  for (int i = 0; i < 3; ++i) {
    server.do_handshake(ec);
    EXPECT_TRUE(ec == pysock::ssl_errc::want_read) << ec.message();
  }
  EXPECT_THROW(server.do_handshake(), pysock::ssl_want_read_error);
  EXPECT_EQ(server_reads, reads);
  EXPECT_EQ(s_out.pending(), 0u);

  // The rest, written by OpenSSL's own BIO_write on the handle: seen.
  const std::string rest(hello.substr(10));
  ASSERT_EQ(BIO_write(s_in.native_handle(), rest.data(), static_cast<int>(rest.size())),
            static_cast<int>(rest.size()));
  server.do_handshake(ec);
  EXPECT_TRUE(ec == pysock::ssl_errc::want_read) << ec.message();
  EXPECT_GT(server_reads, reads);
  EXPECT_GT(s_out.pending(), 0u) << "the server's first flight";
  pump(s_out, c_in);
  client.do_handshake(ec);
  ASSERT_FALSE(ec) << ec.message();
  pump(c_out, s_in);
  server.do_handshake(ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(server.version(), "TLSv1.3");

  // The same for reads: none to do until the client writes.
  EXPECT_THROW(server.read(), pysock::ssl_want_read_error);
  const int before_read = server_reads;
  EXPECT_THROW(server.read(), pysock::ssl_want_read_error);
  EXPECT_EQ(server_reads, before_read);
  client.write("request");
  pump(c_out, s_in);
  EXPECT_EQ(server.read(100), "request");
  BIO_set_callback_ex(s_in.native_handle(), nullptr);
}

TEST_F(memory_bio_tls_test, end_of_input_after_want_read_is_reported_not_hidden) {
  // Handshake: the server waits, then the client's side of TCP ends.
  pysock::memory_bio s_in, s_out;
  pysock::ssl_object server = server_context().wrap_bio(s_in, s_out, true);
  EXPECT_THROW(server.do_handshake(), pysock::ssl_want_read_error);
  EXPECT_THROW(server.do_handshake(), pysock::ssl_want_read_error);
  s_in.write_eof();
  EXPECT_THROW(server.do_handshake(), pysock::ssl_eof_error);

  // After the handshake: a read waiting for data, then a ragged EOF.
  pysock::memory_bio c_in, c_out, s2_in, s2_out;
  pysock::ssl_object client = client_context().wrap_bio(c_in, c_out, false, "localhost");
  pysock::ssl_object server2 = server_context().wrap_bio(s2_in, s2_out, true);
  std::error_code client_ec, server_ec;
  for (int i = 0; i < 10; ++i) {
    client.do_handshake(client_ec);
    pump(c_out, s2_in);
    server2.do_handshake(server_ec);
    pump(s2_out, c_in);
    if (!client_ec && !server_ec) break;
  }
  ASSERT_FALSE(client_ec) << client_ec.message();
  ASSERT_FALSE(server_ec) << server_ec.message();
  EXPECT_THROW(server2.read(), pysock::ssl_want_read_error);
  EXPECT_THROW(server2.read(), pysock::ssl_want_read_error);
  s2_in.write_eof();
  EXPECT_THROW(server2.read(), pysock::ssl_eof_error);
}

TEST_F(memory_bio_tls_test, a_stale_error_left_in_openssls_queue_is_not_the_connections) {
  pysock::memory_bio s_in, s_out;
  pysock::ssl_object server = server_context().wrap_bio(s_in, s_out, true);
  // Someone else's failure, never collected.
  ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
  std::error_code ec;
  server.do_handshake(ec);
  EXPECT_TRUE(ec == pysock::ssl_errc::want_read) << ec.message();
  EXPECT_EQ(ERR_peek_error(), 0u);

  // A real failure names its own reason, not a stale one.
  ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
  s_in.write("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
  try {
    server.do_handshake();
    ADD_FAILURE() << "plain HTTP was taken for a ClientHello";
  } catch (const pysock::ssl_error& e) {
    EXPECT_NE(e.reason(), "BAD_LENGTH") << e.what();
    EXPECT_FALSE(e.reason().empty()) << e.what();
  }
  EXPECT_EQ(ERR_peek_error(), 0u);
}

}  // namespace
