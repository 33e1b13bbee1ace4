"""Added latency of the edge: direct-to-backend vs through `ccgate serve`, same run, same machine.

`make bench` (or `uv run python -m bench.edge_latency`). The fake backend and the edge run in
their own processes on 127.0.0.1; one asyncio client measures both paths alternately.
Writes bench/results/edge_latency.{json,md}.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench.processes import edge_env, free_port, start_backend, start_edge, stop
from bench.processes import process_cpu_seconds as cpu_seconds

RESULTS = Path(__file__).parent / "results"
FIXTURE = Path(__file__).parent.parent / "tests" / "fixtures" / "main_loop_first_request.json"
SEQUENTIAL = int(os.environ.get("BENCH_N", "400"))
CONCURRENT = 16
STREAM_CHUNKS = 200


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(ms: list[float]) -> dict[str, float]:
    return {"median_ms": statistics.median(ms), "p99_ms": pct(ms, 0.99), "n": len(ms)}


async def timed_stream(
    client: httpx.AsyncClient, url: str, body: dict[str, Any]
) -> tuple[float, float]:
    """(time to first content byte, time to last byte) in ms."""
    started = time.perf_counter()
    first = None
    async with client.stream("POST", url, json=body) as response:
        async for chunk in response.aiter_bytes():
            # The first token itself (message_start and the role chunk hold "content" too).
            if first is None and (b"text_delta" in chunk or b'"content":"tok' in chunk):
                first = time.perf_counter()
    end = time.perf_counter()
    return ((first or end) - started) * 1000, (end - started) * 1000


async def measure(direct: str, edge: str, edge_pid: int) -> dict[str, Any]:
    small_direct = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 16,
        "stream": True,
    }
    small_edge = {
        "model": "claude-sonnet-4-8",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 16,
    }
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(
        timeout=30, limits=httpx.Limits(max_keepalive_connections=64)
    ) as client:
        for _ in range(50):  # warm-up: connections, imports, caches
            await timed_stream(client, direct, small_direct)
            await client.post(edge, json=small_edge)
        # 1. A whole answer: a non-streaming request, direct and through the edge (which makes
        # one non-streaming call upstream for it).
        d, e = [], []
        cpu_before = cpu_seconds(edge_pid)
        for _ in range(SEQUENTIAL):
            started = time.perf_counter()
            answer = await client.post(direct, json={**small_direct, "stream": False})
            assert answer.status_code == 200, answer.text
            d.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            response = await client.post(edge, json=small_edge)
            assert response.status_code == 200, response.text
            e.append((time.perf_counter() - started) * 1000)
        out["whole_answer"] = {"direct": summary(d), "edge": summary(e)}
        out["edge_cpu_ms_per_request"] = {
            "whole_answer": (cpu_seconds(edge_pid) - cpu_before) * 1000 / SEQUENTIAL
        }
        cpu_before = cpu_seconds(edge_pid)
        # 2. Streaming: time to first token and to the last byte.
        dt, et, dl, el = [], [], [], []
        for _ in range(SEQUENTIAL):
            a, b = await timed_stream(client, direct, small_direct)
            dt.append(a)
            dl.append(b)
            a, b = await timed_stream(client, edge, {**small_edge, "stream": True})
            et.append(a)
            el.append(b)
        out["stream_ttft"] = {"direct": summary(dt), "edge": summary(et)}
        out["edge_cpu_ms_per_request"]["stream"] = (
            (cpu_seconds(edge_pid) - cpu_before) * 1000 / SEQUENTIAL
        )
        out["stream_last_byte"] = {"direct": summary(dl), "edge": summary(el)}
        # 3. Concurrency: CONCURRENT clients, whole answers.
        for name, url, body in (
            ("direct", direct, small_direct),
            ("edge", edge, {**small_edge, "stream": True}),
        ):
            lat: list[float] = []

            async def worker(
                url: str = url, body: dict[str, Any] = body, lat: list[float] = lat
            ) -> None:
                for _ in range(SEQUENTIAL // CONCURRENT * 2):
                    lat.append((await timed_stream(client, url, body))[1])

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CONCURRENT)))
            elapsed = time.perf_counter() - started
            out.setdefault("concurrent", {})[name] = {**summary(lat), "rps": len(lat) / elapsed}
    return out


def translation_cost() -> dict[str, float]:
    """Pure translation of a real Claude Code request (no I/O), µs per request."""
    from ccgate.edge.translate.request import to_openai
    from ccgate.edge.translate.target import Target

    body = json.loads(FIXTURE.read_text())["body"]
    target = Target("openai_compat", "m")
    for _ in range(50):
        to_openai(body, target)
    n = 2000
    started = time.perf_counter()
    for _ in range(n):
        to_openai(body, target)
    return {"to_openai_us": (time.perf_counter() - started) / n * 1e6}


def write(results: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "edge_latency.json").write_text(json.dumps(results, indent=2) + "\n")
    rows = [
        "| workload | direct median / p99 (ms) | edge median / p99 (ms) | added median / p99 (ms) | ratio (median) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key in ("whole_answer", "stream_ttft", "stream_last_byte", "concurrent"):
        d, e = results[key]["direct"], results[key]["edge"]
        rows.append(
            f"| {key}{' (' + str(CONCURRENT) + ' clients)' if key == 'concurrent' else ''} "
            f"| {d['median_ms']:.2f} / {d['p99_ms']:.2f} | {e['median_ms']:.2f} / {e['p99_ms']:.2f} "
            f"| {e['median_ms'] - d['median_ms']:.2f} / {e['p99_ms'] - d['p99_ms']:.2f} "
            f"| {e['median_ms'] / d['median_ms']:.2f}× |"
        )
    c = results["concurrent"]
    text = "\n".join(
        [
            "# Edge latency (bench/edge_latency.py)",
            "",
            f"Run {results['when']} on {results['machine']}; {SEQUENTIAL} sequential requests per path, "
            f"streams of {STREAM_CHUNKS} chunks from a fake backend in its own process; the edge is "
            "`ccgate serve` (1 worker, in-memory limiter, tracing off). Direct = the same client asking "
            "the backend itself the same way: a non-streaming request for the whole answer (the edge "
            "makes one such call upstream), the stream read to its end for the streamed rows.",
            "",
            *rows,
            "",
            f"Throughput at {CONCURRENT} clients: direct {c['direct']['rps']:.0f} req/s, edge {c['edge']['rps']:.0f} req/s "
            f"({c['edge']['rps'] / c['direct']['rps']:.2f}×).",
            f"Translating a real Claude Code main-loop request (wire capture): {results['translation']['to_openai_us']:.0f} µs.",
            f"Edge CPU per request ({STREAM_CHUNKS} upstream chunks): whole answer "
            f"{results['edge_cpu_ms_per_request']['whole_answer']:.2f} ms, stream "
            f"{results['edge_cpu_ms_per_request']['stream']:.2f} ms.",
            "",
            "",
            "Tracing on (100 % sampled, exported over OTLP/HTTP to a local sink) vs off; metrics on in both:",
            "",
            "| | off | on | ratio |",
            "| --- | --- | --- | --- |",
            *[
                f"| {label} | {off:.2f} ms | {on:.2f} ms | {on / off:.2f}× |"
                for label, off, on in (
                    (
                        "whole answer, edge median",
                        results["whole_answer"]["edge"]["median_ms"],
                        results["tracing_on"]["whole_answer"]["edge"]["median_ms"],
                    ),
                    (
                        "stream TTFT, edge median",
                        results["stream_ttft"]["edge"]["median_ms"],
                        results["tracing_on"]["stream_ttft"]["edge"]["median_ms"],
                    ),
                    (
                        "edge CPU per request (whole answer)",
                        results["edge_cpu_ms_per_request"]["whole_answer"],
                        results["tracing_on"]["edge_cpu_ms_per_request"]["whole_answer"],
                    ),
                )
            ],
            "",
            "Targets (issue 3): added median ≤ 1 ms, added p99 ≤ 3 ms.",
            "",
        ]
    )
    (RESULTS / "edge_latency.md").write_text(text)
    print(text)


def run_edge(env: dict[str, str], backend_port: int) -> dict[str, Any]:
    edge_port = free_port()
    edge = start_edge(edge_port, env)
    try:
        return asyncio.run(
            measure(
                f"http://127.0.0.1:{backend_port}/v1/chat/completions",
                f"http://127.0.0.1:{edge_port}/v1/messages",
                edge.pid,
            )
        )
    finally:
        stop(edge)


def main() -> None:
    backend_port = free_port()
    env = edge_env(backend_port, LOG_LEVEL="WARNING")
    backend = start_backend(backend_port, STREAM_CHUNKS)
    try:
        results = run_edge(env, backend_port)
        # Tracing on, every request sampled, spans exported over OTLP/HTTP to a local sink
        # (the fake backend accepts POST /v1/traces). Metrics are on in both runs.
        traced = run_edge(
            {
                **env,
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{backend_port}",
                "OTEL_TRACES_SAMPLER": "always_on",
            },
            backend_port,
        )
        results["tracing_on"] = {
            key: traced[key] for key in ("whole_answer", "stream_ttft", "edge_cpu_ms_per_request")
        }
        results["translation"] = translation_cost()
        results["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        results["machine"] = (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        write(results)
    finally:
        stop(backend)


if __name__ == "__main__":
    main()
