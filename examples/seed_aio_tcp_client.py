"""aio's "TCP client stream" quickstart, on anywire: send a line, print what comes back.

    python examples/seed_aio_tcp_client.py --port 8080 [--backend trio]

Run ``examples/seed_aio_echo_server.py`` first. The only change from the seed
(docs/migration-aio.md) is the import, plus ``anyio.run`` so trio works too.
"""

from __future__ import annotations

import argparse

import anyio

from anywire import net


async def main(host: str = "127.0.0.1", port: int = 8080) -> None:
    async with await net.open_tcp_stream(host, port) as tcp_stream:
        await tcp_stream.write(b"Hello World!!!")

        while data := await tcp_stream.read(1024):
            print(data)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args()
    anyio.run(main, args.host, args.port, backend=args.backend)
