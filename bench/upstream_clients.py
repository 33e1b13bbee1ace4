"""The upstream HTTP client's own cost: httpx against aiohttp, same fake backend, two rounds
interleaved. CPU per request with 64 requests in flight (N after a warm-up), and the time
from sending a request to its first body chunk, one request at a time with 2 ms idle between
(as a gateway's requests arrive: the time to first token it adds).

`uv run python -m bench.upstream_clients`. Measures this process's CPU (the backend runs in
its own process, on the other core where there are two), so it is the client's cost alone.
Writes results/upstream_clients.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import orjson
import uvloop

from bench.processes import free_port, pin, start_backend, stop

RESULTS = Path(__file__).parent / "results"
N = int(os.environ.get("CLIENTS_N", "1500"))
IN_FLIGHT = 64
SEQUENTIAL = 400
IDLE_S = 0.002

# One request, read to its end; it appends the time its first body chunk arrived to `stamps`.
OneRequest = Callable[[list[float]], Awaitable[None]]


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(one: OneRequest) -> tuple[float, float]:
    """(CPU µs per request at IN_FLIGHT, median µs to the first chunk one at a time)."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def gated() -> None:
        async with gate:
            await one([])

    await asyncio.gather(*(gated() for _ in range(200)))  # warm the pool
    before = cpu()
    await asyncio.gather(*(gated() for _ in range(N)))
    per_request = (cpu() - before) / N * 1e6
    firsts = []
    for _ in range(SEQUENTIAL):
        await asyncio.sleep(IDLE_S)
        stamps: list[float] = []
        started = time.perf_counter()
        await one(stamps)
        firsts.append((stamps[0] - started) * 1e6)
    return per_request, statistics.median(firsts)


async def with_httpx(url: str, body: bytes) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

        async def one(stamps: list[float]) -> None:
            request = client.build_request("POST", url, content=body)
            response = await client.send(request, stream=True)
            async for _ in response.aiter_raw():
                stamps.append(time.perf_counter())
            await response.aclose()

        return await measure(one)


async def with_aiohttp(url: str, body: bytes) -> tuple[float, float]:
    connector = aiohttp.TCPConnector(limit=512, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:

        async def one(stamps: list[float]) -> None:
            async with session.post(url, data=body) as response:
                async for _ in response.content.iter_any():
                    stamps.append(time.perf_counter())

        return await measure(one)


def main() -> None:
    port = free_port()
    backend = start_backend(port, 50, quiet=True)
    if len(os.sched_getaffinity(0)) >= 2:  # the client and the backend each on a core
        pin([backend.pid], "1")
        os.sched_setaffinity(0, {0})
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    rows: dict[str, list[tuple[float, float]]] = {}
    try:
        for _ in range(2):
            for client, run in (("httpx", with_httpx), ("aiohttp", with_aiohttp)):
                for stream in (False, True):
                    body = orjson.dumps({"model": "m-50", "stream": stream, "messages": []})
                    key = f"{client}, {'streamed 50 chunks' if stream else 'whole answer'}"
                    rows.setdefault(key, []).append(uvloop.run(run(url, body)))
    finally:
        stop(backend)
    lines = [
        "# Upstream client cost per request (bench/upstream_clients.py)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {IN_FLIGHT} in flight, "
        f"{N} requests a round after a warm-up; the client's own CPU (µs per request). "
        f"First chunk: {SEQUENTIAL} requests one at a time, {IDLE_S * 1000:g} ms idle between, "
        "median µs from sending to the first body chunk (the backend's own time included).",
        "",
        "| client, answer | CPU round 1 | CPU round 2 | first chunk round 1 | first chunk round 2 |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {k} | {v[0][0]:.0f} | {v[1][0]:.0f} | {v[0][1]:.0f} | {v[1][1]:.0f} |"
            for k, v in rows.items()
        ),
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "upstream_clients.md").write_text("\n".join(lines))
    (RESULTS / "upstream_clients.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
