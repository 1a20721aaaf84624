#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""baseline_asyncio_echo: CPython asyncio echo server for bench/run_loop.sh,
the fastest idiomatic asyncio form: a Protocol whose data_received writes the
data straight back (no coroutine per message). --streams uses
start_server + reader.read/writer.write/drain instead; --uvloop runs either on
uvloop.

usage: baseline_asyncio_echo.py [--port P] [--count N] [--uvloop] [--streams]
  listens on 127.0.0.1 only; prints "listening on 127.0.0.1:PORT";
  --count N returns after N connections closed."""
import argparse
import asyncio
import socket


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8086)
    ap.add_argument("--count", type=int, default=-1)
    ap.add_argument("--uvloop", action="store_true")
    ap.add_argument("--streams", action="store_true")
    a = ap.parse_args()
    if a.uvloop:
        import uvloop
        uvloop.install()

    async def serve():
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        closed = 0

        def connection_closed():
            nonlocal closed
            closed += 1
            if a.count > 0 and closed >= a.count:
                done.set()

        class Echo(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport
                transport.get_extra_info("socket").setsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def data_received(self, data):
                self.transport.write(data)

            def connection_lost(self, exc):
                connection_closed()

        async def handle(reader, writer):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except ConnectionError:
                pass
            writer.close()
            connection_closed()

        if a.streams:
            server = await asyncio.start_server(handle, "127.0.0.1", a.port, backlog=4096)
        else:
            server = await loop.create_server(Echo, "127.0.0.1", a.port, backlog=4096)
        port = server.sockets[0].getsockname()[1]
        print(f"listening on 127.0.0.1:{port}", flush=True)
        await done.wait()
        server.close()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
