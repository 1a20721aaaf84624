#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# CPython's ssl module as the peer of tests/test_ssl_peers.cpp. Loopback only;
# every socket has a timeout so a broken pysock side cannot hang the test.
#
#   ssl_peer.py server CERTDIR MODE   prints "PORT <n>", serves one connection
#     echo      TLS echo, line by line, until the client closes; ALPN http/1.1
#     unwrap    echo one line, then on the client's close_notify unwrap() and
#               send b"plain after tls\n" in clear text
#   ssl_peer.py client CERTDIR PORT MODE
#     echo      connects with the test CA to "localhost", sends a line, prints
#               what came back and facts about the connection
#     nonblock  the same with a non-blocking socket driven by selectors
# Exit status 0 on success; anything else prints a traceback.
import os
import selectors
import socket
import ssl
import sys

TIMEOUT = 20


def server(certdir, mode):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(certdir, "localhost.pem"), os.path.join(certdir, "localhost.key"))
    ctx.set_alpn_protocols(["http/1.1"])
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        print("PORT", listener.getsockname()[1], flush=True)
        conn, _ = listener.accept()
        conn.settimeout(TIMEOUT)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            print("HANDSHAKE", tls.version(), tls.selected_alpn_protocol(), flush=True)
            if mode == "echo":
                f = tls.makefile("rwb")
                for line in f:
                    f.write(b"echo: " + line)
                    f.flush()
                print("CLIENT CLOSED", flush=True)
            elif mode == "unwrap":
                line = tls.recv(1024)
                tls.sendall(b"echo: " + line)
                rest = tls.recv(1024)  # b"" at the client's close_notify
                assert rest == b"", rest
                plain = tls.unwrap()
                plain.sendall(b"plain after tls\n")
                print("UNWRAPPED", flush=True)
                plain.close()
            else:
                raise SystemExit("unknown mode " + mode)


def client(certdir, port, mode):
    ctx = ssl.create_default_context(cafile=os.path.join(certdir, "ca.pem"))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    if mode == "echo":
        with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(b"hello from cpython\n")
            data = b""
            while not data.endswith(b"\n"):
                part = tls.recv(1024)
                if not part:
                    break
                data += part
            print("GOT", data.decode().strip(), flush=True)
            print("VERSION", tls.version(), "ALPN", tls.selected_alpn_protocol(), flush=True)
            print("CN", dict(x[0] for x in tls.getpeercert()["subject"])["commonName"], flush=True)
            tls.unwrap().close()
    elif mode == "nonblock":
        sock.setblocking(False)
        tls = ctx.wrap_socket(sock, server_hostname="localhost", do_handshake_on_connect=False)
        sel = selectors.DefaultSelector()
        sel.register(tls, selectors.EVENT_READ | selectors.EVENT_WRITE)

        def run(op):
            for _ in range(10000):
                try:
                    return op()
                except ssl.SSLWantReadError:
                    sel.modify(tls, selectors.EVENT_READ)
                except ssl.SSLWantWriteError:
                    sel.modify(tls, selectors.EVENT_WRITE)
                if not sel.select(TIMEOUT):
                    raise TimeoutError("peer silent")
            raise RuntimeError("too many retries")

        run(tls.do_handshake)
        run(lambda: tls.send(b"hello from cpython\n"))
        data = run(lambda: tls.recv(1024))
        print("GOT", data.decode().strip(), flush=True)
        sel.close()
        tls.close()
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(sys.argv[2], sys.argv[3])
    else:
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4])
