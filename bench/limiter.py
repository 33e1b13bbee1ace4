"""The limiter measured: admission latency, Redis round trips, rate accuracy and violations
across 4 replicas, Jain fairness across 8 users — on one Redis and on a 3-master Redis Cluster
(REDIS_MODE=cluster). `uv run python -m bench.limiter`. Writes bench/results/limiter.{json,md}.
Redis: REDIS_URL, else a redis-server it starts; the cluster is always started here."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ccgate.limiter.api import Lease, ProviderLimits
from ccgate.limiter.memory import MemoryLimiter
from ccgate.limiter.redis import RedisLimiter
from ccgate.shared.redis import connect
from tests.redis_server import RedisClusterSet, RedisServer, redis_cluster, redis_server

RESULTS = Path(__file__).parent / "results"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class ScriptCallCounter:
    """Script calls the servers received, every node of a cluster, counting rejected ones (a
    MOVED redirect) and failed ones: EVALSHA/EVAL/SCRIPT are sent by clients only, never run
    from inside Lua, so this is the limiter's round trips as the servers saw them."""

    def __init__(self, nodes: list[str]) -> None:
        import redis as redis_sync

        self._probes = [redis_sync.Redis.from_url(n) for n in nodes]

    def total(self) -> int:
        calls = 0
        for probe in self._probes:
            for name, stat in probe.info("commandstats").items():
                if name.split("|")[0] in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_script"):
                    calls += sum(
                        stat.get(k, 0) for k in ("calls", "rejected_calls", "failed_calls")
                    )
        return calls


async def uncontended(
    limiter: Any, provider: str, n: int = 2000, nodes: list[str] | None = None
) -> dict[str, float]:
    latencies = []
    await limiter.release(await limiter.admit(provider, "u", time.monotonic() + 5), "ok")  # warm
    trips_before = getattr(limiter, "round_trips", 0)
    counter = ScriptCallCounter(nodes) if nodes else None
    served_before = counter.total() if counter else 0
    for _ in range(n):
        started = time.perf_counter()
        lease = await limiter.admit(provider, "u", time.monotonic() + 5)
        latencies.append((time.perf_counter() - started) * 1000)
        assert isinstance(lease, Lease)
        await limiter.release(lease, "ok")
    trips = (getattr(limiter, "round_trips", 0) - trips_before) / n
    out = {
        "p50_ms": statistics.median(latencies),
        "p99_ms": pct(latencies, 0.99),
        "round_trips_per_admit_and_release": trips,
    }
    if counter:  # what the servers saw: a MOVED redirect or a NOSCRIPT reload would show here
        out["server_script_calls_per_admit_and_release"] = (counter.total() - served_before) / n
    return out


async def contended(url: str, provider: str) -> dict[str, float]:
    """16 tasks on 4 replicas contend for 4 slots; handoff = release → next grant delivered."""
    limits = ProviderLimits(0, 1.0, 4)
    replicas = [RedisLimiter(url, lambda _: limits) for _ in range(4)]
    released_at: list[float] = []
    handoffs: list[float] = []
    stop = time.monotonic() + 4

    async def worker(i: int) -> None:
        limiter = replicas[i % 4]
        while time.monotonic() < stop:
            lease = await limiter.admit(provider, f"u{i}", time.monotonic() + 10)
            assert isinstance(lease, Lease)
            if lease.waited > 0 and released_at:
                handoffs.append((time.monotonic() - released_at[-1]) * 1000)
            await asyncio.sleep(0.005)
            released_at.append(time.monotonic())
            await limiter.release(lease, "ok")

    await asyncio.gather(*(worker(i) for i in range(16)))
    for limiter in replicas:
        await limiter.close()
    return {
        "handoff_p50_ms": statistics.median(handoffs),
        "handoff_p99_ms": pct(handoffs, 0.99),
        "queued_grants": len(handoffs),
    }


async def accuracy(url: str, provider: str, mode: str = "standalone") -> dict[str, Any]:
    """4 replicas, 8 users hammering a 40 req/s quota with cap 6 for 5 s. Grant times are
    read from Redis's own log (its clock decides), by polling the window's sorted set."""
    from ccgate.limiter.redis import prefix

    rate, window, cap, seconds = 40, 1.0, 6, 5.0
    limits = ProviderLimits(rate, window, cap)
    replicas = [RedisLimiter(url, lambda _: limits, mode=mode) for _ in range(4)]
    server_log: dict[bytes, float] = {}
    per_user: Counter[str] = Counter()
    in_flight = max_in_flight = 0
    stop = time.monotonic() + seconds
    watcher = connect(url, mode=mode)

    async def poll() -> None:
        while time.monotonic() < stop + 0.5:
            for member, score in await watcher.zrange(
                prefix(provider) + "grants", 0, -1, withscores=True
            ):
                server_log[member] = score / 1000
            await asyncio.sleep(0.1)

    async def user(i: int, demand: int) -> None:
        async def one() -> None:
            nonlocal in_flight, max_in_flight
            limiter = replicas[i % 4]
            while time.monotonic() < stop:
                lease = await limiter.admit(provider, f"user{i}", min(stop, time.monotonic() + 2))
                if not isinstance(lease, Lease):
                    continue
                per_user[f"user{i}"] += 1
                in_flight += 1
                max_in_flight = max(max_in_flight, in_flight)
                await asyncio.sleep(0.02)
                in_flight -= 1
                await limiter.release(lease, "ok")

        await asyncio.gather(*(one() for _ in range(demand)))

    started = time.monotonic()
    # Uneven demand: user i keeps i+2 requests going (a sub-agent burst at the top end).
    await asyncio.gather(poll(), *(user(i, i + 2) for i in range(8)))
    elapsed = time.monotonic() - started
    for limiter in replicas:
        await limiter.close()
    await watcher.aclose()
    grants = sorted(server_log.values())
    worst = max(sum(1 for t in grants if s <= t < s + window) for s in grants)
    # A sliding-window quota allows `rate` per started window over the run.
    allowed = rate * int(-(-(grants[-1] - grants[0]) // window) or 1)
    counts = list(per_user.values())
    jain = sum(counts) ** 2 / (len(counts) * sum(c * c for c in counts))
    return {
        "configured_rate_per_s": rate / window,
        "seconds": elapsed,
        "grants": len(grants),
        "allowed_by_quota": allowed,
        "rate_accuracy": len(grants) / allowed,
        "max_grants_in_any_window": worst,
        "rate_violations": max(0, worst - rate),
        "concurrency_cap": cap,
        "max_in_flight": max_in_flight,
        "concurrency_violations": max(0, max_in_flight - cap),
        "grants_per_user": dict(sorted(per_user.items())),
        "jain_fairness": jain,
    }


async def run(server: RedisServer, cluster: RedisClusterSet) -> dict[str, Any]:
    tag = str(time.time_ns())
    url = server.url
    memory = MemoryLimiter(lambda _: ProviderLimits(0, 1.0, 0))
    redis = RedisLimiter(url, lambda _: ProviderLimits(1_000_000, 1.0, 100))
    # The cluster client is given a node that does not own the provider's slot.
    on_cluster = RedisLimiter(
        cluster.url, lambda _: ProviderLimits(1_000_000, 1.0, 100), mode="cluster"
    )
    nodes = [n.url for n in cluster.nodes]
    out = {
        "memory_uncontended": await uncontended(memory, "bench-mem-" + tag),
        "redis_uncontended": await uncontended(
            redis, "bench-un-" + tag, nodes=[url] if server.owned else None
        ),
        "cluster_uncontended": await uncontended(on_cluster, "bench-un-" + tag, nodes=nodes),
        "redis_contended": await contended(url, "bench-con-" + tag),
        "redis_4_replicas_8_users": await accuracy(url, "bench-acc-" + tag),
        "cluster_4_replicas_8_users": await accuracy(cluster.url, "bench-acc-" + tag, "cluster"),
    }
    await redis.close()
    await on_cluster.close()
    return out


def write(results: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "limiter.json").write_text(json.dumps(results, indent=2) + "\n")
    m, r, k, c, a, ka = (
        results[key]
        for key in (
            "memory_uncontended",
            "redis_uncontended",
            "cluster_uncontended",
            "redis_contended",
            "redis_4_replicas_8_users",
            "cluster_4_replicas_8_users",
        )
    )
    served = r.get("server_script_calls_per_admit_and_release")
    served_text = f"; the server received {served:.2f}" if served is not None else ""
    text = f"""# Limiter (bench/limiter.py)

Run {results["when"]} on {results["machine"]}, Redis {results["redis"]} on loopback.

| measure | result | target |
| --- | --- | --- |
| uncontended admit, in memory | p50 {m["p50_ms"]:.3f} ms, p99 {m["p99_ms"]:.3f} ms | — |
| uncontended admit, Redis | p50 {r["p50_ms"]:.3f} ms, p99 {r["p99_ms"]:.3f} ms | p99 ≤ 1 ms |
| uncontended admit, Redis Cluster (3 masters) | p50 {k["p50_ms"]:.3f} ms, p99 {k["p99_ms"]:.3f} ms | p99 ≤ 1 ms |
| Redis round trips per admit + release | {r["round_trips_per_admit_and_release"]:.2f} (1 admit + 1 release){served_text} | 1 per admission |
| Redis Cluster round trips per admit + release | {k["round_trips_per_admit_and_release"]:.2f}; the 3 nodes received {k["server_script_calls_per_admit_and_release"]:.2f} script calls, redirects included | 1 per admission |
| contended handoff (release → next waiter holds the lease, 4 replicas) | p50 {c["handoff_p50_ms"]:.2f} ms, p99 {c["handoff_p99_ms"]:.2f} ms | — |
| rate accuracy (40/s, 4 replicas, 8 users): grants / what the quota allows | {a["rate_accuracy"]:.3f} ({a["grants"]} of {a["allowed_by_quota"]}) | within 2 % |
| most grants in any 1 s window (Redis's timestamps) | {a["max_grants_in_any_window"]} of {a["configured_rate_per_s"]:.0f} → {a["rate_violations"]} violations | 0 |
| most in flight (cap {a["concurrency_cap"]}) | {a["max_in_flight"]} → {a["concurrency_violations"]} violations | 0 |
| Jain fairness, 8 users keeping 2…9 requests going each | {a["jain_fairness"]:.3f} | ≥ 0.95 |
| the same on the cluster: rate accuracy; worst 1 s window; most in flight; Jain | {ka["rate_accuracy"]:.3f}; {ka["max_grants_in_any_window"]} of {ka["configured_rate_per_s"]:.0f}; {ka["max_in_flight"]} of {ka["concurrency_cap"]}; {ka["jain_fairness"]:.3f} | within 2 %; 0; 0; ≥ 0.95 |

Grants per user: {a["grants_per_user"]}; on the cluster {ka["grants_per_user"]}.
"""
    (RESULTS / "limiter.md").write_text(text)
    print(text)


def main() -> None:
    with redis_server() as server, redis_cluster() as cluster:
        import redis as redis_sync

        version = redis_sync.Redis.from_url(server.url).info()["redis_version"]
        results = asyncio.run(run(server, cluster))
    results["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    results["redis"] = version
    write(results)


if __name__ == "__main__":
    main()
