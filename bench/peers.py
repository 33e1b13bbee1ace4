"""ccgate against its peers, side by side, same machine, same fake backend, one run.

`make bench-peers` (or `uv run python -m bench.peers`). Contenders are installed by the
harness from the package registries at pinned versions into ~/.cache/ccgate/: LiteLLM's proxy (PyPI) and claude-code-router (npm). A contender that cannot be
made to work is recorded with the reason, not dropped.
Writes bench/results/peers.{json,md,png}.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from bench import wrk
from bench.contenders import (
    CACHE,
    CCR_VERSION,
    LITELLM_VERSION,
    Contender,
    start_ccgate,
    start_ccr,
    start_litellm,
)
from bench.processes import cpu_seconds, free_port, pin, start_backend, tree_rss_mb

ROOT = Path(__file__).parent
RESULTS = ROOT / "results"
FIXTURE = ROOT.parent / "tests" / "fixtures" / "main_loop_first_request.json"
SEQUENTIAL = int(os.environ.get("PEERS_N", "300"))
LEVELS = (1, 16, 64, 256)
LEVEL_SECONDS = float(os.environ.get("PEERS_LEVEL_SECONDS", "5"))
IDLE_STREAMS = int(os.environ.get("PEERS_IDLE_STREAMS", "1000"))
# PEERS_ONLY=direct,ccgate,ccgate+redis,litellm,claude-code-router picks contenders; PEERS_PARTS=wrk runs
# only the wrk throughput cells (a quick A/B while changing the hot path), PEERS_PARTS=wrk,idle
# those and the idle streams' memory.
ONLY = [n for n in os.environ.get("PEERS_ONLY", "").split(",") if n]
PARTS = os.environ.get("PEERS_PARTS", "latency,wrk").split(",")
# An A/B in one window: PEERS_ALT_ENV="NAME=value ..." adds `ccgate-alt`, the same edge with
# those settings; PEERS_REPEAT=2 runs the chosen contenders twice, interleaved (A B A B).
ALT_ENV = dict(kv.split("=", 1) for kv in os.environ.get("PEERS_ALT_ENV", "").split())
REPEAT = int(os.environ.get("PEERS_REPEAT", "1"))


# -- workloads ---------------------------------------------------------------------------
def body(
    contender: Contender, model: str, stream: bool, big: dict[str, Any] | None = None
) -> dict[str, Any]:
    if contender.url == "":
        return {
            "model": model,
            "stream": stream,
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}],
        }
    base = big or {"max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    return {**base, "model": model, "stream": stream}


async def one(
    client: httpx.AsyncClient, contender: Contender, url: str, payload: dict[str, Any]
) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    async with client.stream("POST", url, json=payload, headers=contender.headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:200]!r}")
        async for chunk in response.aiter_bytes():
            if first is None and (b"text_delta" in chunk or b'"content":"tok' in chunk):
                first = time.perf_counter()
    end = time.perf_counter()
    return ((first or end) - started) * 1000, (end - started) * 1000


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "n": len(ordered),
    }


async def measure(contender: Contender, direct_url: str) -> dict[str, Any]:
    url = contender.url or direct_url
    small = "m-1" if not contender.url else contender.model_small
    stream_model = "m-200" if not contender.url else contender.model_stream
    out: dict[str, Any] = {}
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=300)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600), limits=limits) as client:
        for _ in range(30):
            await one(client, contender, url, body(contender, small, False))
        # 1. small non-streaming answers, one at a time
        out["small"] = stats(
            [
                (await one(client, contender, url, body(contender, small, False)))[1]
                for _ in range(SEQUENTIAL)
            ]
        )
        # 2. a 200-chunk stream: time to first token, to the last byte
        pairs = [
            await one(client, contender, url, body(contender, stream_model, True))
            for _ in range(SEQUENTIAL // 2)
        ]
        out["ttft"] = stats([a for a, _ in pairs])
        out["last_byte"] = stats([b for _, b in pairs])
        out["stream_cdf_ms"] = sorted(b for _, b in pairs)
        # 2b. the same with a backend that decodes (chunks 5 ms apart): the first token's
        # added time without the backend's burst competing for the same two cores
        paced = contender.route.format("m-paced")
        out["ttft_paced"] = stats(
            [
                (await one(client, contender, url, body(contender, paced, True)))[0]
                for _ in range(SEQUENTIAL // 2)
            ]
        )
        # 3. concurrency levels: throughput, p99, gateway CPU per 1,000 requests
        out["levels"] = {}
        for level in LEVELS:
            latencies: list[float] = []
            stop = time.monotonic() + LEVEL_SECONDS
            cpu_before = cpu_seconds(contender.pid) if contender.pid else 0.0

            async def worker(stop: float = stop, latencies: list[float] = latencies) -> None:
                while time.monotonic() < stop:
                    latencies.append(
                        (await one(client, contender, url, body(contender, small, False)))[1]
                    )

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(level)))
            elapsed = time.perf_counter() - started
            cpu = (cpu_seconds(contender.pid) - cpu_before) if contender.pid else None
            out["levels"][level] = {
                **stats(latencies),
                "rps": len(latencies) / elapsed,
                "cpu_s_per_1000": cpu / len(latencies) * 1000 if cpu is not None else None,
            }
        # 5. a realistic Claude Code request (wire capture): gateway CPU per request
        if contender.pid:
            big = json.loads(FIXTURE.read_text())["body"]
            big = {k: v for k, v in big.items() if k not in ("stream",)}
            big["max_tokens"] = 16
            cpu_before = cpu_seconds(contender.pid)
            for _ in range(100):
                await one(client, contender, url, body(contender, small, False, big))
            out["claude_code_request_cpu_ms"] = (cpu_seconds(contender.pid) - cpu_before) * 10
    # 4. idle open streams: gateway memory
    if contender.pid:
        out["idle"] = await idle_streams(contender, url)
    return out


async def idle_streams(contender: Contender, url: str) -> dict[str, Any]:
    """Open IDLE_STREAMS streams that the backend keeps silent; the gateway's memory with them."""
    assert contender.pid is not None
    before = tree_rss_mb(contender.pid)
    limits = httpx.Limits(max_connections=IDLE_STREAMS + 10, max_keepalive_connections=10)
    async with httpx.AsyncClient(timeout=httpx.Timeout(120), limits=limits) as client:
        streams = [
            asyncio.create_task(
                client.send(
                    client.build_request(
                        "POST",
                        url,
                        json=body(contender, contender.model_idle, True),
                        headers=contender.headers,
                    ),
                    stream=True,
                )
            )
            for _ in range(IDLE_STREAMS)
        ]
        done, pending = await asyncio.wait(streams, timeout=60)
        opened = [t.result() for t in done if not t.exception() and t.result().status_code == 200]
        await asyncio.sleep(3)
        during = tree_rss_mb(contender.pid)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for response in opened:
            await response.aclose()
    return {"streams_open": len(opened), "rss_before_mb": before, "rss_with_streams_mb": during}


# -- report ------------------------------------------------------------------------------
def paced_ttft(data: dict[str, Any], direct: dict[str, Any]) -> str:
    if "ttft_paced" not in data:
        return "—"
    median = data["ttft_paced"]["median"]
    if data is direct or "ttft_paced" not in direct:
        return f"{median:.2f}"
    return f"{median:.2f} ({median - direct['ttft_paced']['median']:+.2f})"


def ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}×" if value and base else "—"


def report(results: dict[str, Any]) -> None:
    if ONLY or PARTS != ["latency", "wrk"]:  # a partial run: an A/B record beside the results
        label = os.environ.get("PEERS_LABEL", time.strftime("%H%M"))
        (RESULTS / "ab").mkdir(parents=True, exist_ok=True)
        (RESULTS / "ab" / f"{label}.json").write_text(json.dumps(results, indent=2) + "\n")
        rows = results["contenders"]
        tables = (
            [*latency_table(rows), "", *wrk.table(rows)] if "latency" in PARTS else wrk.table(rows)
        )
        (RESULTS / "ab" / f"{label}.md").write_text("\n".join(tables) + "\n")
        print("\n".join(tables))
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "peers.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    rows = results["contenders"]
    lines = [
        "# ccgate and its peers (bench/peers.py)",
        "",
        f"Run {results['when']} on {results['machine']}. One fake OpenAI-compatible backend in its own process; "
        "each gateway with one worker; the client is an asyncio httpx load generator — its own ceiling is the "
        "**direct** row. Latencies in ms; ratios against direct and against ccgate.",
        "",
        *latency_table(rows),
    ]
    lines += ["", "## Throughput per core", "", *wrk.table(rows)]
    lines += [
        "",
        "Targets (issue 10): added median ≤ 1 ms and TTFT overhead ≤ 1 ms; ≥ 3× LiteLLM's and "
        "claude-code-router's requests/s per core at concurrency 64; 1,000 idle streams ≤ 100 MB RSS.",
        "",
        "![latency CDF and throughput](peers.png)",
        "",
    ]
    (RESULTS / "peers.md").write_text("\n".join(lines))
    print("\n".join(lines))
    plot(results)


def latency_table(rows: dict[str, dict[str, Any]]) -> list[str]:
    """One row per contender: sequential latencies, the levels of concurrency, idle streams."""
    direct = rows.get("direct", {})
    ours = rows.get("ccgate", {})
    lines = [
        "| contender | small answer median / p99 | added median | TTFT (200-chunk burst) | TTFT, decoding backend (added) | last byte | "
        "req/s @64 | × ccgate req/s | CPU s / 1000 req @64 | p99 @256 | RSS, 1,000 idle streams | Claude Code request CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    ours64 = ours.get("levels", {}).get(64, {})

    def fmt(value: float | None, spec: str = ".2f", unit: str = "") -> str:
        return "—" if value is None else f"{value:{spec}}{unit}"

    for name, data in rows.items():
        if "error" in data:
            lines.append(f"| {name} | could not run: {data['error']} |" + " |" * 10)
            continue
        if "levels" not in data:
            continue
        level64, level256 = data["levels"][64], data["levels"][256]
        idle = data.get("idle")
        lines.append(
            " | ".join(
                [
                    f"| {name}",
                    f"{data['small']['median']:.2f} / {data['small']['p99']:.2f}",
                    f"{data['small']['median'] - direct['small']['median']:+.2f}"
                    if name != "direct" and "small" in direct
                    else "—",
                    f"{data['ttft']['median']:.2f}",
                    paced_ttft(data, direct),
                    f"{data['last_byte']['median']:.2f}",
                    f"{level64['rps']:.0f}",
                    ratio(level64["rps"], ours64.get("rps")),
                    fmt(level64.get("cpu_s_per_1000")),
                    f"{level256['p99']:.0f}",
                    f"{idle['rss_with_streams_mb']:.0f} MB ({idle['streams_open']} open)"
                    if idle
                    else "—",
                    fmt(data.get("claude_code_request_cpu_ms"), ".2f", " ms") + " |",
                ]
            )
        )
    return lines


def plot(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, data in results["contenders"].items():
        if "error" in data or "levels" not in data:
            continue
        cdf = data["stream_cdf_ms"]
        left.plot(cdf, [i / len(cdf) for i in range(len(cdf))], label=name)
        levels = sorted(data["levels"])
        right.plot(
            levels, [data["levels"][level]["rps"] for level in levels], marker="o", label=name
        )
    left.set(
        xlabel="200-chunk stream, time to last byte (ms)",
        ylabel="fraction of requests",
        xscale="log",
        title="Latency CDF",
    )
    right.set(
        xlabel="concurrent clients",
        ylabel="requests / s",
        xscale="log",
        title="Throughput (small answers)",
    )
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "peers.png", dpi=110)


def main() -> None:
    from tests.redis_server import redis_server

    workdir = CACHE / "peers-run"
    workdir.mkdir(parents=True, exist_ok=True)
    backend_port = free_port()
    backend = start_backend(backend_port, 200, quiet=True)
    pin([backend.pid], wrk.LOAD_CORE)
    backend_url = f"http://127.0.0.1:{backend_port}"
    results: dict[str, Any] = {"contenders": {}}
    try:
        with redis_server() as redis:
            starters = [
                ("direct", lambda: Contender("direct", "")),
                ("ccgate", lambda: start_ccgate(backend_port, None)),
                ("ccgate (Redis limiter)", lambda: start_ccgate(backend_port, redis.url)),
                (f"LiteLLM proxy {LITELLM_VERSION}", lambda: start_litellm(backend_url, workdir)),
                (f"claude-code-router {CCR_VERSION}", lambda: start_ccr(backend_url, workdir)),
                ("ccgate-alt", lambda: start_ccgate(backend_port, None, **ALT_ENV)),
            ]
            rounds = [
                (f"{name} #{r + 1}" if REPEAT > 1 else name, start)
                for r in range(REPEAT)
                for name, start in starters
            ]
            for name, start in rounds:
                token = name.lower().replace(" (redis limiter)", "+redis").split(" ")[0]
                if (ONLY and token not in ONLY) or (token == "ccgate-alt" and not ALT_ENV):
                    continue
                contender = None
                try:
                    contender = start()
                    print(f"measuring {name} …", flush=True)
                    data: dict[str, Any] = {}
                    if "latency" in PARTS:
                        data = asyncio.run(measure(contender, backend_url + "/v1/chat/completions"))
                    elif "idle" in PARTS and contender.pid:  # (measure() includes it)
                        data["idle"] = asyncio.run(idle_streams(contender, contender.url))
                    if "wrk" in PARTS and wrk.available() is None:
                        direct = contender.url or backend_url + "/v1/chat/completions"
                        data["wrk"] = wrk.throughput(
                            direct, contender.route, contender.headers, contender.pid
                        )
                        print(json.dumps(data["wrk"], indent=1), flush=True)
                    results["contenders"][name] = data
                except (Exception, asyncio.CancelledError) as exc:
                    results["contenders"][name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                finally:
                    if contender and contender.process:
                        contender.process.terminate()
                        try:
                            contender.process.wait(15)
                        except subprocess.TimeoutExpired:
                            contender.process.kill()
    finally:
        backend.kill()  # idle streams are held open on purpose: no graceful wait
        backend.wait(10)
    results["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    results["versions"] = {"litellm": LITELLM_VERSION, "claude-code-router": CCR_VERSION}
    report(results)


if __name__ == "__main__":
    main()
