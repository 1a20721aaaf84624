#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# CPython's asyncio + ssl as the client of pysock's start_server(ssl=ctx)
# (tests/test_ssl_streams.cpp). Loopback only; everything under a timeout.
#
#   tls_stream_peer.py CAFILE PORT   connects to 127.0.0.1:PORT as "localhost"
#     with asyncio.open_connection(ssl=...), sends two lines, prints each echo
#     ("GOT ..."), the TLS version, then closes cleanly (close_notify).
import asyncio
import ssl
import sys


async def main(cafile, port):
    ctx = ssl.create_default_context(cafile=cafile)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    for line in (b"hello from asyncio\n", b"second line\n"):
        writer.write(line)
        await writer.drain()
        print("GOT", (await reader.readline()).decode().rstrip("\n"), flush=True)
    print("VERSION", writer.get_extra_info("ssl_object").version(), flush=True)
    writer.close()
    await writer.wait_closed()
    print("DONE", flush=True)


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1], int(sys.argv[2])), 20))
