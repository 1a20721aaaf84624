/* SPDX-License-Identifier: MIT
 *
 * raw_epoll_echo: the baseline for the selectors benchmark — a hand-written
 * level-triggered epoll echo server in C with a 64 KiB read buffer, doing what
 * examples/selectors_echo_server.cpp does and nothing more: non-blocking
 * sockets, TCP_NODELAY, echo at once, keep what the socket did not take and
 * ask for EPOLLOUT only then, close on EOF/error once flushed.
 *
 * usage: raw_epoll_echo [--port P] [--count N] [--unix PATH]
 *   prints "listening on 127.0.0.1:PORT"; --count N exits after N connections
 *   closed (so callgrind can write its profile).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define READ_SIZE (64 * 1024)
#define MAX_EVENTS 256

struct conn {
  int fd;
  char* pending; /* echo not yet taken by the socket */
  size_t len, off, cap;
  int peer_done;
  unsigned events;
};

static void die(const char* what) {
  perror(what);
  exit(1);
}

static void set_events(int ep, struct conn* c, unsigned want) {
  if (want == c->events) return;
  struct epoll_event ev = {.events = want, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) die("epoll_ctl MOD");
  c->events = want;
}

static void close_conn(struct conn* c, long* closed) {
  close(c->fd); /* also removes it from the epoll set */
  free(c->pending);
  free(c);
  ++*closed;
}

static void keep(struct conn* c, const char* data, size_t n) {
  if (c->len + n > c->cap) {
    size_t cap = c->cap ? c->cap : 4096;
    while (cap < c->len + n) cap *= 2;
    char* p = realloc(c->pending, cap);
    if (!p) die("realloc");
    c->pending = p;
    c->cap = cap;
  }
  memcpy(c->pending + c->len, data, n);
  c->len += n;
}

int main(int argc, char** argv) {
  int port = 8082;
  long count = -1, closed = 0;
  const char* unix_path = NULL; /* --unix: a Unix stream socket instead of TCP */
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0)
      port = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--count") == 0)
      count = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--unix") == 0)
      unix_path = argv[i + 1];
  }
  int ls = socket(unix_path ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (ls < 0) die("socket");
  int one = 1;
  if (unix_path) {
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    if (strlen(unix_path) >= sizeof un.sun_path) die("--unix: path too long");
    strcpy(un.sun_path, unix_path);
    unlink(unix_path);
    if (bind(ls, (struct sockaddr*)&un, sizeof un) != 0) die("bind");
    if (listen(ls, 1024) != 0) die("listen");
    printf("listening on %s\n", unix_path);
  } else {
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr*)&addr, sizeof addr) != 0) die("bind");
    if (listen(ls, 1024) != 0) die("listen");
    socklen_t alen = sizeof addr;
    getsockname(ls, (struct sockaddr*)&addr, &alen);
    printf("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
  }
  fflush(stdout);

  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev) != 0) die("epoll_ctl ADD listener");

  static char buf[READ_SIZE];
  struct epoll_event events[MAX_EVENTS];
  while (count < 0 || closed < count) {
    int n = epoll_wait(ep, events, MAX_EVENTS, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      struct conn* c = events[i].data.ptr;
      if (c == NULL) {
        for (;;) {
          int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          c = calloc(1, sizeof *c);
          if (!c) die("calloc");
          c->fd = fd;
          c->events = EPOLLIN;
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
          if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl ADD");
        }
        continue;
      }
      unsigned ev = events[i].events;
      if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t r = recv(c->fd, buf, sizeof buf, 0);
        if (r < 0 && errno != EAGAIN) {
          close_conn(c, &closed);
          continue;
        }
        if (r == 0) c->peer_done = 1;
        if (r > 0) {
          size_t off = 0;
          if (c->len == 0) {
            ssize_t w = send(c->fd, buf, (size_t)r, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN) {
              close_conn(c, &closed);
              continue;
            }
            if (w > 0) off = (size_t)w;
          }
          if (off < (size_t)r) keep(c, buf + off, (size_t)r - off);
        }
      }
      if ((ev & EPOLLOUT) && c->len > 0) {
        ssize_t w = send(c->fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
          close_conn(c, &closed);
          continue;
        }
        if (w > 0) c->off += (size_t)w;
        if (c->off == c->len) c->off = c->len = 0;
      }
      if (c->peer_done && c->len == 0) {
        close_conn(c, &closed);
        continue;
      }
      unsigned want = (c->peer_done ? 0u : (unsigned)EPOLLIN) | (c->len ? (unsigned)EPOLLOUT : 0u);
      set_events(ep, c, want);
    }
  }
  close(ep);
  close(ls);
  return 0;
}
