"""Bounded soak: 200 concurrent streaming clients for 5 minutes (SOAK_SECONDS), 10 % of them
hanging up mid-stream, against one edge with the Redis limiter. Checks that memory stays flat,
no lease leaks and no request gets stuck. `uv run python -m bench.soak`.
Writes bench/results/soak.{json,md}."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import time
from pathlib import Path
from typing import Any

import httpx
import redis as redis_sync

from bench.processes import edge_env, free_port, start_backend, start_edge, stop
from tests.redis_server import redis_server

RESULTS = Path(__file__).parent / "results"
SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "200"))
DISCONNECT = 0.10
MESSAGES: list[str] = []  # a few distinct error bodies, for the report
CHUNKS = 50
EDGE_LOG = Path(os.environ.get("SOAK_EDGE_LOG", "/tmp/ccgate-soak-edge.log"))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def client(url: str, stop: float, stats: dict[str, int], latencies: list[float]) -> None:
    body = {
        "model": "claude-sonnet-4-8",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "soak"}],
    }
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as http:
        while time.monotonic() < stop:
            hang_up = random.random() < DISCONNECT
            started = time.monotonic()
            try:
                async with http.stream("POST", url, json=body) as response:
                    if response.status_code != 200:
                        stats[f"status_{response.status_code}"] = (
                            stats.get(f"status_{response.status_code}", 0) + 1
                        )
                        text = (await response.aread()).decode()[:200]
                        if len(MESSAGES) < 5 and text not in MESSAGES:
                            MESSAGES.append(text)
                        continue
                    async for chunk in response.aiter_bytes():
                        if hang_up:
                            break
                        if b"message_stop" in chunk:
                            stats["completed"] += 1
                if hang_up:
                    stats["hung_up"] += 1
                else:
                    latencies.append(time.monotonic() - started)
            except httpx.HTTPError as exc:
                stats[type(exc).__name__] = stats.get(type(exc).__name__, 0) + 1


async def pool_state(http: httpx.AsyncClient, url: str) -> dict[str, int]:
    """The edge's upstream connection pool, from its own gauge on /metrics."""
    text = (await http.get(url.replace("/v1/messages", "/metrics"))).text
    state: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("ccgate_upstream_connections{"):
            labels, value = line.rsplit(" ", 1)
            name = labels.split('state="')[1].split('"')[0]
            state[name] = state.get(name, 0) + int(float(value))
    return state


async def run(url: str, edge_pid: int) -> dict[str, Any]:
    stats: dict[str, int] = {"completed": 0, "hung_up": 0}
    latencies: list[float] = []
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    stop = started + SECONDS
    tasks = [asyncio.create_task(client(url, stop, stats, latencies)) for _ in range(CLIENTS)]
    pools: list[tuple[float, dict[str, int]]] = []
    async with httpx.AsyncClient(timeout=10) as probe:
        while time.monotonic() < stop:
            at = round(time.monotonic() - started, 1)
            samples.append((at, round(rss_mb(edge_pid), 1)))
            pools.append((at, await pool_state(probe, url)))
            print(f"{at:6.1f}s rss {samples[-1][1]} MB pool {pools[-1][1]} {stats}", flush=True)
            await asyncio.sleep(min(10.0, max(1.0, SECONDS / 30)))
    # No request may be stuck: every client finishes its last request within a bound.
    _, pending = await asyncio.wait(tasks, timeout=90)
    for task in pending:
        task.cancel()
    samples.append((round(time.monotonic() - started, 1), round(rss_mb(edge_pid), 1)))
    async with httpx.AsyncClient(timeout=10) as probe:
        pools.append((round(time.monotonic() - started, 1), await pool_state(probe, url)))
    latencies.sort()
    return {
        "stats": stats,
        "stuck_clients": len(pending),
        "rss_mb": samples,
        "upstream_pool": pools,
        "p50_s": latencies[len(latencies) // 2] if latencies else None,
        "p99_s": latencies[int(len(latencies) * 0.99)] if latencies else None,
    }


def main() -> None:
    with redis_server() as redis:
        backend_port, edge_port = free_port(), free_port()
        env = edge_env(
            backend_port,
            REDIS_URL=redis.url,
            PROVIDER_MAX_CONCURRENCY="150",
            LIMITER_QUEUE_TIMEOUT="60",
        )
        backend = start_backend(backend_port, CHUNKS)
        edge = None
        try:
            edge = start_edge(edge_port, env, stderr=open(EDGE_LOG, "wb"))
            result = asyncio.run(run(f"http://127.0.0.1:{edge_port}/v1/messages", edge.pid))
            time.sleep(2)
            leases = redis_sync.Redis.from_url(redis.url).zcard("ccgate:{openai_compat}:leases")
            status = httpx.get(f"http://127.0.0.1:{edge_port}/ccgate/limiter").json()
        finally:
            stop(edge, backend)
    rss = [mb for _, mb in result["rss_mb"]]
    settled = rss[len(rss) // 3 :] or rss
    result["error_samples"] = MESSAGES
    result.update(
        {
            "seconds": SECONDS,
            "clients": CLIENTS,
            "disconnect_share": DISCONNECT,
            "leases_left_in_redis": leases,
            "queue_left": status["providers"].get("openai_compat", {}).get("queued", 0),
            "rss_growth_after_warmup_mb": round(settled[-1] - settled[0], 1),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        }
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    stats = result["stats"]
    text = f"""# Soak (bench/soak.py)

Run {result["when"]} on {result["machine"]}: {CLIENTS} concurrent streaming clients for {SECONDS:.0f} s,
{DISCONNECT:.0%} of requests hung up after the first chunk, one edge (1 worker) with the Redis
limiter (concurrency cap 150), a fake backend streaming {CHUNKS} chunks.

| measure | result |
| --- | --- |
| completed streams | {stats["completed"]} |
| hung up mid-stream (on purpose) | {stats["hung_up"]} |
| other outcomes | {", ".join(f"{k}: {v}" for k, v in stats.items() if k not in ("completed", "hung_up")) or "none"} |
| stream latency p50 / p99 | {result["p50_s"]:.3f} s / {result["p99_s"]:.3f} s |
| clients still stuck 90 s after the end | {result["stuck_clients"]} |
| leases left in Redis afterwards | {leases} |
| requests left queued | {result["queue_left"]} |
| upstream connections after the run (in use / idle) | {result["upstream_pool"][-1][1].get("active")} / {result["upstream_pool"][-1][1].get("idle")} |
| edge RSS, first → last sample | {rss[0]:.0f} MB → {rss[-1]:.0f} MB (growth after warm-up: {result["rss_growth_after_warmup_mb"]} MB) |

RSS samples (s, MB): {result["rss_mb"]}
"""
    (RESULTS / "soak.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
