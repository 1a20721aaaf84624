// SPDX-License-Identifier: MIT
//
// tools/common/thread_server.hpp — accept loop with one thread per
// connection and a bound on their number, shared by `pysock http.server` and
// `pysock echo-server` until they move to the event loop.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include <pysock/socket.hpp>

#include "common/stop_signal.hpp"

namespace pysock::tools {

/// Runs on its own thread for one accepted connection. `stop_fd` becomes
/// readable when the server stops: finish what is in flight, then return.
using connection_handler = std::function<void(socket conn, address peer, int stop_fd)>;

/// Accepts on `listener` until SIGINT or SIGTERM, running `handler` on a new
/// thread per connection, at most `max_threads` at once (more connections
/// wait in the listen backlog). On the signal: stops accepting, closes the
/// listener, raises stop.event_fd(), waits for every handler to return, and
/// returns the signal's number. Accept errors that concern one connection
/// (ECONNABORTED) are skipped; running out of descriptors (EMFILE) is
/// reported on `errors` and retried after a pause instead of spinning.
int serve_threads(socket& listener, stop_signal& stop, std::size_t max_threads,
                  const connection_handler& handler,
                  const std::function<void(const std::string&)>& errors);

}  // namespace pysock::tools
