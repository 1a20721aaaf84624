// SPDX-License-Identifier: MIT
//
// `pysock connect --tls host port`: an `openssl s_client`-like relay,
// stdin → TLS → stdout, on pysock::ssl_socket. The peer's certificate is
// verified (system store, or --cafile) and its name checked (--servername,
// default the host), as Python's ssl.create_default_context() does;
// --no-verify turns both off. At the end of stdin the client sends
// close_notify (TLS's way to say "no more from me") and keeps printing what
// the peer sends until it closes, so `echo hi | pysock connect --tls ...`
// prints the whole answer. Built only with pysock::ssl
// (PYSOCK_TOOLS_HAVE_SSL); without it --tls says so and exits 1.
#include <poll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <iostream>

#include "commands/commands.hpp"
#include "common/stop_signal.hpp"

#ifdef PYSOCK_TOOLS_HAVE_SSL
#include <openssl/ssl.h>

#include <pysock/ssl.hpp>
#endif

namespace pysock::tools {

#ifdef PYSOCK_TOOLS_HAVE_SSL

namespace {

bool write_out(const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(STDOUT_FILENO, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// The relay; returns the exit status.
int relay(ssl_socket& tls, const netcat_args& args) {
  std::array<char, 16 * 1024> buffer;
  bool stdin_open = true;
  const int timeout_ms =
      args.idle_timeout ? static_cast<int>(*args.idle_timeout * 1000.0 + 0.5) : -1;
  while (true) {
    // Decrypted bytes OpenSSL already holds do not make the socket readable.
    if (tls.pending() == 0) {
      std::array<pollfd, 2> fds{
          {{stdin_open ? STDIN_FILENO : -1, POLLIN, 0}, {tls.fileno(), POLLIN, 0}}};
      const int ready = ::poll(fds.data(), fds.size(), timeout_ms);
      if (ready < 0) {
        if (errno == EINTR) continue;
        throw_os_error(last_error(), "poll()");
      }
      if (ready == 0) return 0;  // idle timeout
      if (fds[0].revents != 0) {
        const ssize_t n = ::read(STDIN_FILENO, buffer.data(), buffer.size());
        if (n < 0 && errno != EINTR && errno != EAGAIN) {
          std::cerr << "pysock connect: read(stdin): " << std::generic_category().message(errno)
                    << '\n';
          return 1;
        }
        if (n == 0 || (fds[0].revents & POLLNVAL) != 0) {
          stdin_open = false;
          // close_notify, then go on reading: OpenSSL reads after sending it.
          ::SSL_shutdown(tls.native_handle());
        } else if (n > 0) {
          tls.sendall(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
        }
      }
      if (fds[1].revents == 0) continue;
    }
    const std::size_t n = tls.recv_into(buffer);
    if (n == 0) return 0;  // close_notify (or the TCP connection closed)
    if (!write_out(buffer.data(), n)) return errno == EPIPE ? 0 : 1;
  }
}

}  // namespace

bool tls_available() noexcept { return true; }

int run_tls_connect(const netcat_args& args) {
  ignore_sigpipe();
  try {
    ssl_context ctx = create_default_context(ssl_purpose::server_auth, args.cafile);
    if (args.no_verify) {
      ctx.set_check_hostname(false);
      ctx.set_verify_mode(cert_none);
    }
    const std::string name = args.servername.empty() ? args.host : args.servername;
    socket sock = create_connection({args.host, args.port});
    // The handshake gets the same bound a s_client user would wait at most.
    sock.settimeout(std::chrono::seconds(30));
    ssl_socket tls = ctx.wrap_socket(std::move(sock), false, name);
    tls.settimeout(std::nullopt);
    std::cerr << "Connected to " << args.host << " port " << args.port << " ("
              << tls.version().value_or("?") << ", " << tls.cipher()->name << ")" << std::endl;
    return relay(tls, args);
  } catch (const ssl_cert_verification_error& e) {
    std::cerr << "pysock connect: certificate verify failed: " << e.verify_message()
              << " (verify code " << e.verify_code() << ")\n";
    return 1;
  } catch (const os_error& e) {
    std::cerr << "pysock connect: " << e.what() << '\n';
    return 1;
  }
}

#else

bool tls_available() noexcept { return false; }

int run_tls_connect(const netcat_args&) {
  std::cerr << "pysock connect: --tls needs pysock built with OpenSSL 3 (Debian: libssl-dev)\n";
  return 1;
}

#endif

}  // namespace pysock::tools
