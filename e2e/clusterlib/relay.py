"""A TCP relay from the node IP to the apiserver on 127.0.0.1, so pods reach the `kubernetes` Service.

The apiserver listens on 127.0.0.1 only and Service endpoints may not be loopback addresses, so the
`kubernetes` EndpointSlice points at this relay on the bridge address instead. Hand-written on asyncio
(stdlib) because `e2e/cluster` runs before the project's virtualenv exists and socat is not installed.
Usage: python3 relay.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


async def _serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, upstream_w), _pipe(upstream_r, client_w))

    server = await asyncio.start_server(handle, *listen, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"relaying {listen[0]}:{listen[1]} -> {target[0]}:{target[1]}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    host, port, target_host, target_port = sys.argv[1:5]
    asyncio.run(_serve((host, int(port)), (target_host, int(target_port))))
