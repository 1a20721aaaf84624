// SPDX-License-Identifier: MIT
//
// tools/http/blocking_server.hpp — the thin transport that runs an HTTP
// session on one connected, blocking pysock socket (one thread per
// connection). All HTTP behaviour lives in http::session; this file only
// moves bytes, waits, and closes.
#pragma once

#include <chrono>
#include <string>

#include <pysock/socket.hpp>

#include "http/session.hpp"

namespace pysock::http {

/// Serves `conn` until the session is done, the peer disappears, or `stop_fd`
/// (an eventfd raised on SIGINT/SIGTERM) becomes readable while the
/// connection is between requests: a response being sent always finishes.
/// Each send waits at most `write_timeout` for room (a client that stops
/// reading is dropped). Never throws for network errors: a peer that resets
/// or vanishes mid-response only ends this connection.
void serve_connection_blocking(socket& conn, const server_context& context, std::string client,
                               int stop_fd, std::chrono::milliseconds write_timeout);

}  // namespace pysock::http
