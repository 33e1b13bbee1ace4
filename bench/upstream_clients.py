"""The upstream HTTP client's own CPU per request: httpx against aiohttp, same fake backend,
64 requests in flight, N requests after a warm-up, two rounds interleaved.

`uv run python -m bench.upstream_clients`. Measures this process's CPU (the backend runs in
its own process), so it is the client's cost alone. Writes results/upstream_clients.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import orjson
import uvloop

from bench.processes import free_port, start_backend, stop

RESULTS = Path(__file__).parent / "results"
N = int(os.environ.get("CLIENTS_N", "1500"))
IN_FLIGHT = 64


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def per_request_us(one: Callable[[], Awaitable[None]]) -> float:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def gated() -> None:
        async with gate:
            await one()

    await asyncio.gather(*(gated() for _ in range(200)))  # warm the pool
    before = cpu()
    await asyncio.gather(*(gated() for _ in range(N)))
    return (cpu() - before) / N * 1e6


async def with_httpx(url: str, body: bytes) -> float:
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

        async def one() -> None:
            request = client.build_request("POST", url, content=body)
            response = await client.send(request, stream=True)
            async for _ in response.aiter_raw():
                pass
            await response.aclose()

        return await per_request_us(one)


async def with_aiohttp(url: str, body: bytes) -> float:
    connector = aiohttp.TCPConnector(limit=512, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:

        async def one() -> None:
            async with session.post(url, data=body) as response:
                async for _ in response.content.iter_any():
                    pass

        return await per_request_us(one)


def main() -> None:
    port = free_port()
    backend = start_backend(port, 50, quiet=True)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    rows: dict[str, list[float]] = {}
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
        "# Upstream client CPU per request (bench/upstream_clients.py)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {IN_FLIGHT} in flight, "
        f"{N} requests a round after a warm-up; the client's own CPU (µs per request).",
        "",
        "| client, answer | round 1 | round 2 |",
        "| --- | --- | --- |",
        *(f"| {k} | {v[0]:.0f} | {v[1]:.0f} |" for k, v in rows.items()),
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "upstream_clients.md").write_text("\n".join(lines))
    (RESULTS / "upstream_clients.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
