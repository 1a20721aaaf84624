// SPDX-License-Identifier: MIT
//
// Load generator for bench/run_tls.sh, scenario "full": many concurrent
// connections, each a *full* TLS handshake (no session resumption), one
// HTTPS request, then close. wrk cannot do this: it keeps a client session
// cache and resumes every reconnect from a ticket, with no option to turn
// that off; `openssl s_time -new` does full handshakes but one at a time.
// With -r every connection instead resumes from the newest ticket the server
// sent (as wrk does), which bench/tls_perf_notes.md uses to count the
// server's instructions per resumed handshake under callgrind.
//
// Every connection gets a new SSL object from a context with
// SSL_OP_NO_TICKET and SSL_SESS_CACHE_OFF and is never given a session, so
// the client offers no PSK and each handshake is a full one (certificate,
// signature, key exchange). SSL_session_reused() is checked on every
// connection and counted; the driver refuses a run where it is not zero.
//
// Single thread, non-blocking sockets, level-triggered epoll, `-c`
// connections in flight: when one finishes (or fails), the next starts.
//
// usage: tls_handshake_load -p PORT [-h 127.0.0.1] [-n localhost] [-u /1k.bin]
//            [-c 50] [-d SECONDS] [-s TLS_AES_128_GCM_SHA256] [-r] [-N COUNT]
// -N: start exactly COUNT connections (then wait for them all, -d still the
// limit), so two runs differ by a known number of handshakes.
// -r: resume (TLS 1.3 PSK from a ticket); the first connections, made before
// any ticket arrived, are full handshakes.
// The certificate chain is not checked (as wrk); TLS 1.3 still makes the
// client verify the server's CertificateVerify signature. Prints one line of
// key=value results; exit status 1 when not one request was answered.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum phase { CONNECTING, HANDSHAKE, SENDING, RECEIVING };

struct conn {
  int fd;
  SSL* ssl;
  enum phase phase;
  size_t sent;
  char head[4096];  // the response up to the end of its header
  size_t head_len;
  long long body_left;  // -1 until the header is parsed
  int status;
};

static struct {
  long started, handshakes, responses, ok_responses, resumed, connect_errors, tls_errors,
      http_errors;
} stats;

static SSL_CTX* ctx;
static SSL_SESSION* ticket;  // -r: the newest session, set on every new SSL
static int epfd;
static struct sockaddr_in target;
static const char* host_name = "localhost";
static char request[1024];
static size_t request_len;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void watch(struct conn* c, unsigned events, int op) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(epfd, op, c->fd, &ev) != 0) {
    perror("epoll_ctl");
    exit(1);
  }
}

static void finish(struct conn* c) {
  if (c->ssl != NULL) {
    // One SSL_shutdown: our close_notify, without waiting for the server's
    // (as wrk and browsers close); quiet on a failed connection.
    if (c->phase == RECEIVING) SSL_shutdown(c->ssl);
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  if (c->fd >= 0) {
    close(c->fd);  // also leaves the epoll set
    c->fd = -1;
  }
  ERR_clear_error();
}

static int start(struct conn* c) {
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    perror("socket");
    return -1;
  }
  const int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ++stats.started;
  c->phase = CONNECTING;
  c->body_left = -1;
  if (connect(c->fd, (const struct sockaddr*)&target, sizeof target) != 0 && errno != EINPROGRESS) {
    ++stats.connect_errors;
    close(c->fd);
    c->fd = -1;
    return -1;
  }
  watch(c, EPOLLOUT, EPOLL_CTL_ADD);
  return 0;
}

// Reads the status and Content-Length once the header is complete.
static int parse_head(struct conn* c) {
  c->head[c->head_len] = '\0';
  char* end = strstr(c->head, "\r\n\r\n");
  if (end == NULL) return 0;
  if (sscanf(c->head, "HTTP/1.%*d %d", &c->status) != 1) return -1;
  const char* cl = strcasestr(c->head, "\r\ncontent-length:");
  if (cl == NULL) return -1;
  const long long length = atoll(cl + 17);
  const size_t header_bytes = (size_t)(end + 4 - c->head);
  c->body_left = length - (long long)(c->head_len - header_bytes);
  return 1;
}

// Advances one connection as far as it goes; 1: done (ok or failed), 0: waits.
static int step(struct conn* c) {
  for (;;) {
    int ret = 1;
    switch (c->phase) {
      case CONNECTING: {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          ++stats.connect_errors;
          return 1;
        }
        c->ssl = SSL_new(ctx);
        if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
          ++stats.tls_errors;
          return 1;
        }
        SSL_set_tlsext_host_name(c->ssl, host_name);
        if (ticket != NULL) SSL_set_session(c->ssl, ticket);
        SSL_set_connect_state(c->ssl);
        c->phase = HANDSHAKE;
        continue;
      }
      case HANDSHAKE:
        ret = SSL_do_handshake(c->ssl);
        if (ret == 1) {
          ++stats.handshakes;
          if (SSL_session_reused(c->ssl)) ++stats.resumed;
          c->phase = SENDING;
          continue;
        }
        break;
      case SENDING: {
        size_t n = 0;
        ret = SSL_write_ex(c->ssl, request + c->sent, request_len - c->sent, &n);
        if (ret == 1) {
          c->sent += n;
          if (c->sent == request_len) c->phase = RECEIVING;
          continue;
        }
        break;
      }
      case RECEIVING: {
        char buf[16384];
        size_t n = 0;
        ret = SSL_read_ex(c->ssl, buf, sizeof buf, &n);
        if (ret == 1) {
          if (c->body_left < 0) {
            const size_t room = sizeof c->head - 1 - c->head_len;
            const size_t take = n < room ? n : room;
            memcpy(c->head + c->head_len, buf, take);
            c->head_len += take;
            const int parsed = parse_head(c);
            if (parsed < 0 || (parsed == 0 && c->head_len == sizeof c->head - 1)) {
              ++stats.http_errors;
              return 1;
            }
            if (parsed == 0) continue;
            c->body_left -= (long long)(n - take);
          } else {
            c->body_left -= (long long)n;
          }
          if (c->body_left <= 0) {
            ++stats.responses;
            if (c->status == 200 && c->body_left == 0)
              ++stats.ok_responses;
            else
              ++stats.http_errors;
            return 1;
          }
          continue;
        }
        break;
      }
    }
    switch (SSL_get_error(c->ssl, ret)) {
      case SSL_ERROR_WANT_READ:
        watch(c, EPOLLIN, EPOLL_CTL_MOD);
        return 0;
      case SSL_ERROR_WANT_WRITE:
        watch(c, EPOLLOUT, EPOLL_CTL_MOD);
        return 0;
      default:
        if (c->phase == RECEIVING)
          ++stats.http_errors;  // the server ended the connection before the whole answer
        else
          ++stats.tls_errors;
        if (stats.tls_errors == 1) ERR_print_errors_fp(stderr);
        c->phase = CONNECTING;  // no close_notify after a failure
        return 1;
    }
  }
}

// -r: OpenSSL hands every ticket here (a TLS 1.3 ticket comes after the
// handshake, while the response is read); the newest replaces the last.
static int keep_ticket(SSL* ssl, SSL_SESSION* session) {
  (void)ssl;
  if (!SSL_SESSION_is_resumable(session)) return 0;
  SSL_SESSION_free(ticket);
  ticket = session;
  return 1;  // the reference is ours now
}

static void usage(void) {
  fprintf(stderr,
          "usage: tls_handshake_load -p PORT [-h HOST] [-n SERVERNAME] [-u PATH] [-c CONNECTIONS]"
          " [-d SECONDS] [-s CIPHERSUITES] [-r] [-N COUNT]\n");
  exit(2);
}

int main(int argc, char** argv) {
  const char* host = "127.0.0.1";
  const char* path = "/1k.bin";
  const char* suites = NULL;
  int port = 0, connections = 50;
  double duration = 5;
  int resume = 0;
  long limit = 0;  // -N: connections to start in all; 0: no limit
  int opt;
  while ((opt = getopt(argc, argv, "h:p:n:u:c:d:s:rN:")) != -1) {
    switch (opt) {
      case 'h':
        host = optarg;
        break;
      case 'p':
        port = atoi(optarg);
        break;
      case 'n':
        host_name = optarg;
        break;
      case 'u':
        path = optarg;
        break;
      case 'c':
        connections = atoi(optarg);
        break;
      case 'd':
        duration = atof(optarg);
        break;
      case 's':
        suites = optarg;
        break;
      case 'r':
        resume = 1;
        break;
      case 'N':
        limit = atol(optarg);
        if (limit <= 0) usage();
        break;
      default:
        usage();
    }
  }
  if (port <= 0 || port > 65535 || connections <= 0 || connections > 10000 || duration <= 0)
    usage();
  target.sin_family = AF_INET;
  target.sin_port = htons((unsigned short)port);
  if (inet_pton(AF_INET, host, &target.sin_addr) != 1) {
    fprintf(stderr, "tls_handshake_load: -h takes an IPv4 address: %s\n", host);
    return 2;
  }
  request_len =
      (size_t)snprintf(request, sizeof request,
                       "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host_name);

  ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL) return 1;
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  if (resume) {
    // Sessions reach keep_ticket() only: no internal cache to look up.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, keep_ticket);
  } else {
    // No resumption: no tickets asked for, no client session cache, and no
    // session is ever set on a new SSL.
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  if (suites != NULL && SSL_CTX_set_ciphersuites(ctx, suites) != 1) {
    fprintf(stderr, "tls_handshake_load: unknown TLS 1.3 suites: %s\n", suites);
    return 2;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);

  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    perror("epoll_create1");
    return 1;
  }
  struct conn* conns = calloc((size_t)connections, sizeof *conns);
  if (conns == NULL) return 1;
  const double t0 = now();
  const double deadline = t0 + duration;
  int active = 0;
  for (int i = 0; i < connections; ++i) {
    conns[i].fd = -1;
    if ((limit == 0 || stats.started < limit) && start(&conns[i]) == 0) ++active;
  }
  struct epoll_event events[256];
  // Bounded: the loop ends at the deadline, or when every connection failed
  // to even start (a refused port).
  while (active > 0) {
    const double left = deadline - now();
    if (left <= 0) break;
    const int n = epoll_wait(epfd, events, 256, (int)(left * 1000) + 1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      struct conn* c = events[i].data.ptr;
      if (!step(c)) continue;
      finish(c);
      --active;
      if (now() < deadline && (limit == 0 || stats.started < limit) && start(c) == 0) ++active;
    }
  }
  const double elapsed = now() - t0;
  for (int i = 0; i < connections; ++i) {
    conns[i].phase = CONNECTING;  // unfinished: closed without close_notify
    finish(&conns[i]);
  }
  free(conns);
  close(epfd);
  SSL_SESSION_free(ticket);
  SSL_CTX_free(ctx);
  printf(
      "seconds=%.3f connections=%d started=%ld handshakes=%ld resumed=%ld responses=%ld ok=%ld "
      "connect_errors=%ld tls_errors=%ld http_errors=%ld handshakes_per_s=%.1f\n",
      elapsed, connections, stats.started, stats.handshakes, stats.resumed, stats.responses,
      stats.ok_responses, stats.connect_errors, stats.tls_errors, stats.http_errors,
      (double)stats.ok_responses / elapsed);
  return stats.ok_responses > 0 ? 0 : 1;  // nothing served: a refused port, a broken server
}
