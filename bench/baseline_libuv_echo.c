/* SPDX-License-Identifier: MIT
 *
 * baseline_libuv_echo: libuv (Debian libuv1-dev) echo server for
 * bench/run_loop.sh. Per-connection 4 KiB buffer handed out by alloc_cb;
 * each read is echoed with uv_try_write, and only what the socket did not
 * take goes through uv_write (reading paused until it completes).
 *
 * usage: baseline_libuv_echo [--port P] [--count N]
 *   listens on 127.0.0.1 only; prints "listening on 127.0.0.1:PORT";
 *   --count N returns after N connections closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define BUF_SIZE 4096

typedef struct {
  uv_tcp_t tcp;
  uv_write_t req;
  char buf[BUF_SIZE];
} conn_t;

static long g_count = -1, g_closed = 0;
static uv_loop_t* g_loop;
static uv_tcp_t g_server;

static void on_close(uv_handle_t* h) {
  free(h);
  if (g_count > 0 && ++g_closed >= g_count) {
    uv_close((uv_handle_t*)&g_server, NULL);
  }
}

static void alloc_cb(uv_handle_t* h, size_t suggested, uv_buf_t* out) {
  (void)suggested;
  conn_t* c = (conn_t*)h;
  *out = uv_buf_init(c->buf, BUF_SIZE);
}

static void read_cb(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);

static void write_cb(uv_write_t* req, int status) {
  conn_t* c = (conn_t*)req->data;
  if (status < 0) {
    uv_close((uv_handle_t*)&c->tcp, on_close);
    return;
  }
  uv_read_start((uv_stream_t*)&c->tcp, alloc_cb, read_cb);
}

static void read_cb(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  conn_t* c = (conn_t*)s;
  if (n < 0) {
    uv_close((uv_handle_t*)s, on_close);
    return;
  }
  if (n == 0) return;
  uv_buf_t out = uv_buf_init(buf->base, (unsigned)n);
  int w = uv_try_write(s, &out, 1);
  if (w == n) return;
  if (w < 0 && w != UV_EAGAIN) {
    uv_close((uv_handle_t*)s, on_close);
    return;
  }
  if (w > 0) out = uv_buf_init(buf->base + w, (unsigned)(n - w));
  uv_read_stop(s);
  c->req.data = c;
  if (uv_write(&c->req, s, &out, 1, write_cb) != 0) uv_close((uv_handle_t*)s, on_close);
}

static void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  conn_t* c = malloc(sizeof *c);
  if (!c) abort();
  uv_tcp_init(g_loop, &c->tcp);
  if (uv_accept(server, (uv_stream_t*)&c->tcp) != 0) {
    uv_close((uv_handle_t*)&c->tcp, on_close);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t*)&c->tcp, alloc_cb, read_cb);
}

int main(int argc, char** argv) {
  int port = 8085;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0)
      port = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--count") == 0)
      g_count = atol(argv[i + 1]);
  }
  g_loop = uv_default_loop();
  uv_tcp_init(g_loop, &g_server);
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  if (uv_tcp_bind(&g_server, (const struct sockaddr*)&addr, 0) != 0 ||
      uv_listen((uv_stream_t*)&g_server, 4096, on_connection) != 0) {
    fprintf(stderr, "baseline_libuv_echo: cannot listen\n");
    return 1;
  }
  struct sockaddr_in bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&g_server, (struct sockaddr*)&bound, &len);
  printf("listening on 127.0.0.1:%d\n", ntohs(bound.sin_port));
  fflush(stdout);
  uv_run(g_loop, UV_RUN_DEFAULT);
  return 0;
}
