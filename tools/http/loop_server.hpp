// SPDX-License-Identifier: MIT
//
// tools/http/loop_server.hpp — the event-loop transport of `pysock
// http.server`: http::session on pysock's event loop, one loop per thread,
// each accepting on its own SO_REUSEPORT listener.
//
// Each connection is a small callback state machine on the loop's
// add_reader()/add_writer() (level-triggered, so a connection that waits for
// the same direction again costs no epoll_ctl), not a coroutine: per request
// that is one epoll_wait, one recv and one send (or sendfile), with no
// system call that only learns "nothing more" (EAGAIN). The readiness
// callbacks of a loop iteration only receive; one call_soon() callback then
// answers every connection that received, after one file_cache::
// begin_batch(), so a cached file is stat'ed once per iteration rather than
// once per recv (loop_listener::defer()). Timeouts use one
// lazily re-armed call_at() timer per connection: it fires at the earliest
// deadline that was ever asked for and re-arms itself if the deadline has
// moved on since, so a keep-alive client costs about one timer per
// header_timeout, not one per request.
//
// Each loop gives its sessions its own copy of the context with its own
// file_cache (no locks), and an access log that gathers the lines of one
// loop iteration and hands them to the context's log in one call (one
// write(2) for a batch of pipelined requests, not one per line).
//
// HTTPS (`options.tls`): each connection then runs an ssl_object over two
// memory BIOs between the socket and the session — ciphertext is received
// into the incoming BIO and decrypted into the session's input; the
// session's output (file bodies read with pread in bounded chunks, since
// sendfile cannot encrypt) is encrypted into the outgoing BIO and sent. A
// failed handshake closes that connection only; the header timeout also
// bounds the handshake. Plain connections only test a null pointer.
//
// Stopping: when `stop_fd` becomes readable (it stays so), every loop stops
// accepting and closes its listener; connections between requests close at
// once, the others finish their response (a request half received gets until
// its header deadline), then the loop ends.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <pysock/loop.hpp>
#include <pysock/socket.hpp>

#include "http/session.hpp"

namespace pysock {
class ssl_context;  // pysock/ssl.hpp, when pysock::ssl is built
}

namespace pysock::http {

struct loop_transport_options {
  loop_options loop;
  /// A blocked send may wait this long for room; then the client is dropped.
  std::chrono::milliseconds write_timeout{60'000};
  /// Readable (and staying so) = stop: every loop watches it.
  int stop_fd = -1;
  /// Runs on the calling thread while the loops serve; returns once stop_fd
  /// has been made readable (e.g. reads the signalfd, raises the eventfd).
  std::function<void()> wait_for_stop;
  /// Called from a loop whose setup or run failed, so that wait_for_stop
  /// returns and the whole server ends. Thread-safe.
  std::function<void()> request_stop;
  /// Accept failures worth a log line (EMFILE...). Thread-safe.
  std::function<void(const std::string&)> errors;
  /// Each loop's small-file cache; max_bytes 0 turns it off.
  file_cache_limits cache;
  /// Server-side TLS context (certificate loaded): every connection speaks
  /// HTTPS. Null: plain HTTP. Non-null in a build without pysock::ssl makes
  /// serve_loops() throw std::invalid_argument.
  const ssl_context* tls = nullptr;
};

/// Serves `context` with one event loop per listener, each on its own
/// thread. Returns once stop_fd became readable and every connection ended;
/// rethrows the first exception a loop ended with.
void serve_loops(std::vector<socket> listeners, const server_context& context,
                 const loop_transport_options& options);

}  // namespace pysock::http
