/* SPDX-License-Identifier: MIT
 *
 * baseline_uring_echo: raw io_uring (liburing, Debian liburing-dev) echo
 * server for bench/run_loop.sh. The plain proactor form: one accept in
 * flight, per connection one recv into a 4 KiB buffer, then one send of what
 * arrived (resubmitted for the rest on a short send), then the next recv.
 * Completions are reaped in batches and the new submissions go in with the
 * next io_uring_submit_and_wait. No multishot or provided buffers (the
 * simple baseline; see PERFORMANCE.md on where io_uring gains come from).
 *
 * usage: baseline_uring_echo [--port P] [--count N]
 *   listens on 127.0.0.1 only; prints "listening on 127.0.0.1:PORT";
 *   --count N returns after N connections closed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 4096
enum { OP_ACCEPT = 0, OP_RECV = 1, OP_SEND = 2 };

struct conn {
  int fd;
  unsigned len, off;
  char buf[BUF_SIZE];
};

static struct io_uring ring;

static struct io_uring_sqe* sqe_get(void) {
  struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  if (!sqe) {
    io_uring_submit(&ring);
    sqe = io_uring_get_sqe(&ring);
    if (!sqe) {
      fprintf(stderr, "no SQE\n");
      exit(1);
    }
  }
  return sqe;
}

static void post_accept(int ls) {
  struct io_uring_sqe* sqe = sqe_get();
  io_uring_prep_accept(sqe, ls, NULL, NULL, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, OP_ACCEPT);
}
static void post_recv(struct conn* c) {
  struct io_uring_sqe* sqe = sqe_get();
  io_uring_prep_recv(sqe, c->fd, c->buf, BUF_SIZE, 0);
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_RECV);
}
static void post_send(struct conn* c) {
  struct io_uring_sqe* sqe = sqe_get();
  io_uring_prep_send(sqe, c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | OP_SEND);
}

int main(int argc, char** argv) {
  int port = 8087;
  long count = -1, closed = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0)
      port = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--count") == 0)
      count = atol(argv[i + 1]);
  }
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(ls, 4096) != 0) {
    perror("bind/listen");
    return 1;
  }
  socklen_t alen = sizeof addr;
  getsockname(ls, (struct sockaddr*)&addr, &alen);
  int r = io_uring_queue_init(4096, &ring, 0);
  if (r < 0) {
    fprintf(stderr, "io_uring_queue_init: %s\n", strerror(-r));
    return 1;
  }
  printf("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
  fflush(stdout);
  post_accept(ls);
  while (count < 0 || closed < count) {
    r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR) {
      fprintf(stderr, "io_uring_submit_and_wait: %s\n", strerror(-r));
      return 1;
    }
    struct io_uring_cqe* cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      uint64_t ud = io_uring_cqe_get_data64(cqe);
      int res = cqe->res;
      unsigned op = (unsigned)(ud & 3);
      struct conn* c = (struct conn*)(uintptr_t)(ud & ~(uint64_t)3);
      if (op == OP_ACCEPT) {
        if (res >= 0) {
          setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          c = malloc(sizeof *c);
          if (!c) abort();
          c->fd = res;
          c->len = c->off = 0;
          post_recv(c);
        }
        post_accept(ls);
      } else if (op == OP_RECV) {
        if (res <= 0) {
          close(c->fd);
          free(c);
          ++closed;
        } else {
          c->len = (unsigned)res;
          c->off = 0;
          post_send(c);
        }
      } else {
        if (res < 0) {
          close(c->fd);
          free(c);
          ++closed;
        } else {
          c->off += (unsigned)res;
          if (c->off < c->len)
            post_send(c);
          else
            post_recv(c);
        }
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
  io_uring_queue_exit(&ring);
  return 0;
}
