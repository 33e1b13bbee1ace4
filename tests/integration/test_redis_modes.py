"""REDIS_MODE: settings that cannot work are refused at start-up with the fix named; on a real
3-master Redis Cluster every piece of shared state works; the limiter's Lua only ever touches
keys of its one declared hash tag (seen by MONITOR, not by reading the scripts)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
import redis as redis_sync
from opentelemetry.trace import SpanContext, TraceFlags
from redis.crc import key_slot

from ccgate.bot.jobs import worker_settings
from ccgate.edge.keys import RedisKeyStore, new_record
from ccgate.edge.tracing import RedisToolSpanIndex
from ccgate.edge.usage import RedisUsageStore, Usage
from ccgate.limiter.api import Denied, Lease, ProviderLimits, UserLimits
from ccgate.limiter.redis import RedisLimiter
from ccgate.shared.redis import connect, queue_redis_url
from ccgate.shared.redis_url import check, parse_sentinel_url
from ccgate.shared.settings import Settings
from tests.fakes.server import free_port
from tests.redis_server import RedisClusterSet, redis_cluster, redis_server


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterSet]:
    with redis_cluster() as c:
        yield c


def test_sentinel_url_names_sentinels_master_password_db_and_tls() -> None:
    target = parse_sentinel_url("rediss+sentinel://:s%40cret@10.0.0.1:26379,sentinel-b/team/2")
    assert target.sentinels == [("10.0.0.1", 26379), ("sentinel-b", 26379)]
    assert (target.master, target.db, target.password, target.ssl) == ("team", 2, "s@cret", True)
    plain = parse_sentinel_url("redis+sentinel://h:1/m")
    assert (plain.password, plain.username, plain.ssl, plain.db) == (None, None, False, 0)


@pytest.mark.parametrize(
    ("url", "mode", "fix"),
    [
        ("redis://h:6379/0", "sentinel", "REDIS_URL=redis+sentinel://"),
        ("redis+sentinel://h:26379/m", "standalone", "set REDIS_MODE=sentinel"),
        ("redis+sentinel://h:26379", "sentinel", "name at least one sentinel and the master"),
        ("redis://h:6379/3", "cluster", "drop /3 from REDIS_URL"),
        ("http://h:6379", "standalone", "must start with redis://"),
        ("redis://h", "replicated", "standalone, cluster or sentinel"),
    ],
)
def test_a_setting_that_cannot_work_is_refused_naming_the_fix(
    url: str, mode: str, fix: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(fix)):
        check(url, mode)
    with pytest.raises(ValueError, match=re.escape(fix)):
        connect(url, mode=mode)


def serve_refusal(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ccgate.cli", "serve", "--port", str(free_port())],
        env={**os.environ, "MODEL": "openai_compat/m", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_a_mode_its_server_contradicts(cluster: RedisClusterSet) -> None:
    done = serve_refusal({"REDIS_URL": cluster.url, "REDIS_MODE": "standalone"})
    assert done.returncode == 2
    assert "is a Redis Cluster node: set REDIS_MODE=cluster" in done.stderr
    with redis_server() as single:
        if not single.owned:
            pytest.skip("needs a Redis the tests own")
        done = serve_refusal({"REDIS_URL": single.url, "REDIS_MODE": "cluster"})
    assert done.returncode == 2
    assert "set REDIS_MODE=standalone" in done.stderr


def test_the_bot_queue_is_refused_on_a_cluster_and_takes_its_own_url(
    cluster: RedisClusterSet,
) -> None:
    on_cluster = Settings.from_env(None, redis_url=cluster.url, redis_mode="cluster")
    with pytest.raises(ValueError, match="set BOT_REDIS_URL"):
        queue_redis_url(on_cluster)
    with pytest.raises(RuntimeError, match="set BOT_REDIS_URL"):
        worker_settings(on_cluster)
    # BOT_REDIS_URL pointed at a cluster node by mistake: the server says so.
    mistaken = replace(on_cluster, bot_redis_url=cluster.nodes[0].url)
    with pytest.raises(ValueError, match="BOT_REDIS_URL is a Redis Cluster node"):
        queue_redis_url(mistaken)
    with redis_server() as single:
        own = replace(on_cluster, bot_redis_url=single.url)
        assert queue_redis_url(own) == single.url
        assert worker_settings(own)["redis_settings"].port == int(single.url.rsplit(":", 1)[1][:-2])
    sentinel = replace(on_cluster, bot_redis_url="redis+sentinel://s1:26379,s2:5/m/1")
    options = worker_settings(sentinel)["redis_settings"]
    assert options.sentinel and options.host == [("s1", 26379), ("s2", 5)]
    assert (options.sentinel_master, options.database) == ("m", 1)


def test_keys_usage_and_tool_spans_live_on_a_cluster(cluster: RedisClusterSet) -> None:
    cluster.flush()
    store = RedisKeyStore(cluster.url, "cluster")
    _, record = new_record("alice")
    store.save(record)
    assert [r.name for r in store.load()] == ["alice"]
    assert store.delete("alice") and store.load() == []

    ids = [f"toolu_{i}" for i in range(12)]
    assert len({key_slot(f"ccgate:tool:{i}".encode()) // 5461 for i in ids}) > 1  # several nodes
    ctx = SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(1))

    async def shared_state() -> tuple[dict[str, Any], int, list[Any]]:
        redis = connect(cluster.url, mode="cluster")
        index = RedisToolSpanIndex(redis)
        await index.remember(ids, ctx)
        found = await index.lookup([*ids, "toolu_unknown"])
        usage = RedisUsageStore(redis)
        await usage.record(
            Usage("alice", "p", "m", input_tokens=3, output_tokens=4, error=False, queued=0.0)
        )
        tokens = await usage.tokens_today("alice")
        rows = await usage.rows("alice", date.today())
        await redis.aclose()
        return found, tokens, rows

    found, tokens, rows = asyncio.run(shared_state())
    assert sorted(found) == sorted(ids)
    assert {(c.trace_id, c.span_id) for c in found.values()} == {(0x1234, 0x5678)}
    assert tokens == 7 and [(r.key, r.provider, r.model) for r in rows] == [("alice", "p", "m")]


def limiter_workload(url: str, mode: str) -> None:
    """Every limiter script: admit (own limits), queue + pump, cancel, renew, 429, status."""
    limits = ProviderLimits(rate_limit=3, rate_window=1.0, max_concurrency=2)

    async def run() -> None:
        limiter = RedisLimiter(url, lambda _: limits, mode=mode, lease_ttl=0.6, heartbeat=0.2)
        own = UserLimits(rpm=50, max_concurrency=2)
        first = await limiter.admit("acme", "u1", time.monotonic() + 5, own)
        second = await limiter.admit("acme", "u2", time.monotonic() + 5)
        queued = asyncio.create_task(limiter.admit("acme", "u3", time.monotonic() + 5, own))
        timed_out = await limiter.admit("acme", "u4", time.monotonic() + 0.3)  # queued, cancelled
        assert isinstance(first, Lease) and isinstance(second, Lease)
        assert isinstance(timed_out, Denied)
        await asyncio.sleep(0.5)  # a heartbeat renews the held leases
        await limiter.release(first, "ok")
        await limiter.release(second, "ok")
        granted = await queued  # pumped by the release, pushed to this replica's list
        assert isinstance(granted, Lease)
        await limiter.report_429("acme", 0.05)
        await limiter.release(granted, "ok")
        status = await limiter.status()
        assert status["providers"]["acme"]["in_flight"] == 0
        await limiter.close()

    asyncio.run(run())


def test_limiter_scripts_touch_only_keys_of_their_declared_hash_tag() -> None:
    """Redis Cluster itself only refuses a script key on another node, not another slot of the
    same node, so every key the scripts touch is watched here with MONITOR."""
    with redis_server() as server:
        if not server.owned:
            pytest.skip("MONITOR on a Redis the tests own")
        server.flush()
        seen: list[str] = []
        ready = threading.Event()

        def watch() -> None:
            with redis_sync.Redis.from_url(server.url).monitor() as monitor:
                ready.set()
                for event in monitor.listen():
                    if event["command"] == "ECHO workload-done":
                        return
                    if event.get("client_type") == "lua":
                        seen.append(event["command"])

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        ready.wait(5)
        limiter_workload(server.url, "standalone")
        redis_sync.Redis.from_url(server.url).echo("workload-done")
        watcher.join(10)
    names = {command.split()[0].upper() for command in seen}
    assert {"ZADD", "HSET", "RPUSH", "LPOP", "ZREM", "HGET"} <= names  # the workload ran the queue
    for command in seen:
        name, *args = command.split()
        if name.upper() == "TIME":
            continue
        keys = args[:2] if name.upper() == "LMOVE" else args[:1]
        assert all(k.startswith("ccgate:{acme}:") for k in keys), command


def test_every_limiter_script_runs_on_a_cluster(cluster: RedisClusterSet) -> None:
    cluster.flush()
    limiter_workload(cluster.url, "cluster")
    owners = [n for n in cluster.nodes if n.client().keys("ccgate:{acme}:*")]
    assert len(owners) == 1  # one slot, one node
