"""aio's "Buffered stream" quickstart, on anywire: one HTTP/1.1 request by hand.

    python examples/seed_aio_buffered_stream.py                      # httpforever.com:80
    python examples/seed_aio_buffered_stream.py --host 127.0.0.1 --port 8000 --backend trio

What changed from the seed (docs/migration-aio.md): ``from aio`` became
``from anywire``; ``asyncio.run(main())`` became ``anyio.run(main, ...)`` so the
program also runs on trio; host and port are parameters.
"""

from __future__ import annotations

import argparse

import anyio

from anywire import net, stream


async def main(host: str = "httpforever.com", port: int = 80) -> None:
    async with await net.open_tcp_stream(host, port) as http_stream:
        # open_tcp_stream already returns a BufferedStream; wrapping it again is harmless.
        buffered_stream = stream.BufferedStream(http_stream)
        await buffered_stream.write_all(
            b"GET / HTTP/1.1\r\nHost: httpforever.com\r\n\r\n",
        )
        status = await buffered_stream.read_until(b"\r\n")
        print(status.decode())

        headers = await buffered_stream.read_until(b"\r\n\r\n")
        headers = dict(
            line.split(b":", maxsplit=1)
            for line in headers.removesuffix(b"\r\n\r\n").split(b"\r\n")
        )

        body = await buffered_stream.read_exactly(size=int(headers[b"Content-Length"]))
        print(body.decode())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="httpforever.com")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    anyio.run(main, args.host, args.port, backend=args.backend)
