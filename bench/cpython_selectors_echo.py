#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""CPython's selectors echo server, the baseline pysock's
examples/selectors_echo_server.cpp is compared with: the same algorithm
(DefaultSelector, non-blocking sockets, TCP_NODELAY, echo at once, keep the
rest and ask for EVENT_WRITE only then, 64 KiB reads).

usage: cpython_selectors_echo.py [--port P] [--count N]"""
import selectors
import socket
import sys


def main():
    port, count = 8083, -1
    args = sys.argv[1:]
    for flag, value in zip(args[::2], args[1::2]):
        if flag == "--port":
            port = int(value)
        elif flag == "--count":
            count = int(value)
    sel = selectors.DefaultSelector()
    listener = socket.create_server(("127.0.0.1", port), backlog=1024)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, None)
    print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
    closed = 0
    pending = {}

    def close(sock):
        nonlocal closed
        sel.unregister(sock)
        pending.pop(sock, None)
        sock.close()
        closed += 1

    while count < 0 or closed < count:
        for key, mask in sel.select():
            sock = key.fileobj
            if key.data is None:
                while True:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sel.register(conn, selectors.EVENT_READ, "conn")
                continue
            out = pending.get(sock, b"")
            if mask & selectors.EVENT_READ:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    data = None
                except OSError:
                    close(sock)
                    continue
                if data == b"":
                    if not out:
                        close(sock)
                        continue
                elif data:
                    if not out:
                        try:
                            n = sock.send(data)
                        except BlockingIOError:
                            n = 0
                        except OSError:
                            close(sock)
                            continue
                        data = data[n:]
                    out += data
            if mask & selectors.EVENT_WRITE and out:
                try:
                    n = sock.send(out)
                except BlockingIOError:
                    n = 0
                except OSError:
                    close(sock)
                    continue
                out = out[n:]
            if out:
                pending[sock] = out
                if key.events != selectors.EVENT_READ | selectors.EVENT_WRITE:
                    sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, "conn")
            else:
                pending.pop(sock, None)
                if key.events != selectors.EVENT_READ:
                    sel.modify(sock, selectors.EVENT_READ, "conn")


if __name__ == "__main__":
    main()
