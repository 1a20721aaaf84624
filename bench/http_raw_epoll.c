// SPDX-License-Identifier: MIT
//
// bench/http_raw_epoll.c — the floor for bench/run_http.sh: an HTTP/1.1
// responder in plain C on epoll that answers every request with the same
// fixed 200 (a 1 KiB body, a head like a file server's). No parsing beyond
// finding the end of each request head, no files, no log: what is left is
// the kernel's cost plus the least user-space work a server can do.
//
// Pipelining: every complete request in the read buffer is answered, and the
// answers leave in one write(). A partial write keeps the rest and waits for
// EPOLLOUT; reading pauses until it is gone (so a client that pipelines and
// never reads cannot make it buffer without bound).
//
// usage: http_raw_epoll PORT [THREADS]   (127.0.0.1; THREADS loops, one
//        SO_REUSEPORT listener each; runs until killed)
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BODY_SIZE 1024
#define IN_SIZE 65536
#define MAX_BATCH 64 /* answers built per read; more wait for the next round */

static char reply[512 + BODY_SIZE];
static size_t reply_len;
static int port;

struct conn {
  int fd;
  size_t in_len;    /* bytes in `in` not yet answered */
  size_t scan_from; /* where the search for "\r\n\r\n" resumes */
  char* out;        /* unsent answers (a partial write), or NULL */
  size_t out_len, out_off;
  char in[IN_SIZE];
};

static void build_reply(void) {
  static const char head[] =
      "HTTP/1.1 200 OK\r\n"
      "Server: raw-epoll\r\n"
      "Date: Tue, 24 Nov 2026 06:00:00 GMT\r\n"
      "Content-Type: application/octet-stream\r\n"
      "Content-Length: 1024\r\n"
      "Last-Modified: Tue, 24 Nov 2026 05:00:00 GMT\r\n"
      "ETag: \"400-18b1f6a3c2d4e5f6\"\r\n"
      "Accept-Ranges: bytes\r\n"
      "\r\n";
  memcpy(reply, head, sizeof head - 1);
  for (int i = 0; i < BODY_SIZE; ++i) reply[sizeof head - 1 + i] = (char)((i * 31) & 0xFF);
  reply_len = sizeof head - 1 + BODY_SIZE;
}

static void drop(int ep, struct conn* c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->out);
  free(c);
}

/* Sends c->out from out_off; 1 = all gone, 0 = would block, -1 = error. */
static int flush_out(struct conn* c) {
  while (c->out_off < c->out_len) {
    ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN ? 0 : -1;
    }
    c->out_off += (size_t)n;
  }
  free(c->out);
  c->out = NULL;
  c->out_len = c->out_off = 0;
  return 1;
}

/* Answers every complete request head in c->in with one write. */
static int answer(int ep, struct conn* c) {
  static __thread char batch[MAX_BATCH * sizeof reply];
  size_t consumed = 0, count = 0;
  for (;;) {
    while (count < MAX_BATCH) {
      char* end = memmem(c->in + c->scan_from, c->in_len - c->scan_from, "\r\n\r\n", 4);
      if (!end) {
        /* Resume 3 bytes back: the terminator may straddle reads. */
        if (c->in_len - c->scan_from > 3) c->scan_from = c->in_len - 3;
        break;
      }
      consumed = (size_t)(end - c->in) + 4;
      c->scan_from = consumed;
      memcpy(batch + count * reply_len, reply, reply_len);
      ++count;
    }
    if (count == 0) break;
    size_t len = count * reply_len, off = 0;
    while (off < len) {
      ssize_t n = write(c->fd, batch + off, len - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) return -1;
        c->out = malloc(len - off);
        if (!c->out) return -1;
        memcpy(c->out, batch + off, len - off);
        c->out_len = len - off;
        c->out_off = 0;
        break;
      }
      off += (size_t)n;
    }
    memmove(c->in, c->in + consumed, c->in_len - consumed);
    c->in_len -= consumed;
    c->scan_from -= consumed;
    consumed = 0;
    if (c->out) {
      struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
      return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
    if (count < MAX_BATCH) break;
    count = 0;
  }
  if (c->in_len == IN_SIZE) return -1; /* a head larger than the buffer */
  return 0;
}

static void on_readable(int ep, struct conn* c) {
  for (;;) {
    ssize_t n = read(c->fd, c->in + c->in_len, IN_SIZE - c->in_len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0 && errno == EAGAIN) return;
      drop(ep, c);
      return;
    }
    c->in_len += (size_t)n;
    if (answer(ep, c) < 0) {
      drop(ep, c);
      return;
    }
    /* Only a full read suggests more is waiting; else epoll says when. */
    if (c->out || (size_t)n < IN_SIZE) return;
  }
}

static void on_writable(int ep, struct conn* c) {
  int r = flush_out(c);
  if (r < 0) {
    drop(ep, c);
    return;
  }
  if (r == 0) return;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
  if (answer(ep, c) < 0) drop(ep, c); /* requests that waited behind the output */
}

static void* serve(void* arg) {
  (void)arg;
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(listener, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(listener, 1024) != 0) {
    perror("bind/listen");
    exit(1);
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      struct conn* c = events[i].data.ptr;
      if (c == NULL) {
        for (;;) {
          int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct conn* nc = calloc(1, sizeof *nc);
          if (!nc) {
            close(fd);
            continue;
          }
          nc->fd = fd;
          struct epoll_event cev = {.events = EPOLLIN, .data.ptr = nc};
          if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) != 0) {
            close(fd);
            free(nc);
          }
        }
      } else if (c->out) {
        on_writable(ep, c);
      } else {
        on_readable(ep, c);
      }
    }
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [THREADS]\n", argv[0]);
    return 2;
  }
  port = atoi(argv[1]);
  int threads = argc > 2 ? atoi(argv[2]) : 1;
  if (port <= 0 || port > 65535 || threads < 1 || threads > 64) {
    fprintf(stderr, "usage: %s PORT [THREADS]\n", argv[0]);
    return 2;
  }
  build_reply();
  pthread_t tids[64];
  for (int i = 1; i < threads; ++i) pthread_create(&tids[i], NULL, serve, NULL);
  serve(NULL);
  return 0;
}
