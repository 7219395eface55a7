"""What the client-WebSocket patch costs per message: hypercorn with and without `ServeConfig.websocket`.

    python bench/ws_limits_overhead.py [--messages 3000] [--rounds 5] [--size 64]

Two hypercorn servers in one process serve the same echo app on loopback: one with hypercorn's own WebSocket
handling (no limits), one with the supervisor's limits (pings every 20 s, a shared budget, the announced-length
check, the stall watch). One client sends `--messages` messages of `--size` bytes to each in turn and times each
round trip; the servers alternate every round (A B A B), and the medians per round are printed with their ratio.
Also: a 16 MiB message in 64 KiB fragments, timed the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fluxlit_supervisor.serve import ServeConfig, build_hypercorn_config
from fluxlit_supervisor.websocket.memory_budget import MemoryBudget
from fluxlit_supervisor.websocket.watchdog import WebSocketLimits
from hypercorn.asyncio import serve
from websockets.asyncio.client import connect


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})


def listening() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, int(sock.getsockname()[1])


async def round_trips(port: int, count: int, payload: bytes) -> float:
    samples = []
    async with connect(f"ws://127.0.0.1:{port}/", max_size=None) as ws:
        for _ in range(50):
            await ws.send(payload)
            await ws.recv()
        for _ in range(count):
            started = time.perf_counter()
            await ws.send(payload)
            await ws.recv()
            samples.append((time.perf_counter() - started) * 1e6)
    return statistics.median(samples)


async def fragmented_ms(port: int, total: int = 16 * 1024 * 1024, fragment: int = 64 * 1024) -> float:
    chunk = b"x" * fragment
    async with connect(f"ws://127.0.0.1:{port}/", max_size=None) as ws:
        started = time.perf_counter()
        await ws.send(chunk for _ in range(total // fragment))
        assert len(await ws.recv()) == total
        return (time.perf_counter() - started) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    limits = WebSocketLimits(ping_interval=20.0, budget=MemoryBudget(1 << 30))
    stop = asyncio.Event()
    ports: dict[str, int] = {}
    tasks = []
    for name, websocket in (("hypercorn", None), ("limited", limits)):
        sock, ports[name] = listening()
        options = {"websocket_max_message_size": 64 * 1024 * 1024}
        config = build_hypercorn_config(
            ServeConfig(binds=(f"fd://{os.dup(sock.fileno())}",), websocket=websocket, hypercorn_options=options)
        )
        sock.close()
        tasks.append(asyncio.ensure_future(serve(cast(Any, echo), config, shutdown_trigger=stop.wait)))
    await asyncio.sleep(0.3)
    payload = b"x" * args.size
    medians: dict[str, list[float]] = {name: [] for name in ports}
    big: dict[str, list[float]] = {name: [] for name in ports}
    for round_index in range(args.rounds):
        order = list(ports) if round_index % 2 == 0 else list(reversed(ports))
        for name in order:
            medians[name].append(await round_trips(ports[name], args.messages, payload))
            big[name].append(await fragmented_ms(ports[name]))
    stop.set()
    await asyncio.gather(*tasks)
    base, limited = statistics.median(medians["hypercorn"]), statistics.median(medians["limited"])
    print(f"{args.size}-byte message round trip, median of {args.rounds} rounds x {args.messages} messages:")
    print(f"  hypercorn alone   {base:8.1f} us   rounds: {', '.join(f'{m:.1f}' for m in medians['hypercorn'])}")
    print(f"  with the limits   {limited:8.1f} us   rounds: {', '.join(f'{m:.1f}' for m in medians['limited'])}")
    print(f"  ratio             {limited / base:8.2f}x")
    base_big, limited_big = statistics.median(big["hypercorn"]), statistics.median(big["limited"])
    print(f"16 MiB in 64 KiB fragments, echoed: {base_big:.0f} ms alone, {limited_big:.0f} ms with the limits "
          f"({limited_big / base_big:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
