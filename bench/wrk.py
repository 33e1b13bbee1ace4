"""Throughput per core with wrk: the gateway pinned to one core (the backend and wrk on the
other), 64 connections, a fixed time per cell. Used by bench/peers.py.

Workloads: a simple non-streaming body; a realistic Claude Code body (the wire capture's
tools widened to about 19 KB, as a session with more tools sends); streamed answers of
STREAM_CHUNKS chunks; and streamed one-chunk answers, so that the CPU a chunk costs is the
difference of the two streamed cells divided by the extra chunks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.processes import cpu_seconds, pin, tree, tree_rss_mb

FIXTURE = Path(__file__).parent.parent / "tests" / "fixtures" / "main_loop_first_request.json"
CONNECTIONS = int(os.environ.get("PEERS_WRK_CONNECTIONS", "64"))
SECONDS = float(os.environ.get("PEERS_WRK_SECONDS", "15"))
STREAM_CHUNKS = 50
GATEWAY_CORE = "1"
LOAD_CORE = "0"  # wrk and the fake backend
REALISTIC_BYTES = 19 * 1024

_LUA = """
wrk.method = "POST"
wrk.body = io.open("{body}"):read("*a")
wrk.headers["content-type"] = "application/json"
{headers}
done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT %d %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.timeout, latency:percentile(50), latency:percentile(99), summary.bytes))
end
"""


def available() -> str | None:
    """Why this part cannot run here, or None."""
    if not shutil.which("wrk"):
        return "wrk is not installed (apt-get install wrk)"
    if not shutil.which("taskset") or (os.cpu_count() or 1) < 2:
        return "needs taskset and two cores to pin the gateway to one"
    return None


def realistic_body() -> dict[str, Any]:
    body = json.loads(FIXTURE.read_text())["body"]
    body = {k: v for k, v in body.items() if not k.startswith("_")}
    tools = list(body["tools"])
    while len(json.dumps(body)) < REALISTIC_BYTES:
        copy = dict(tools[len(body["tools"]) % len(tools)])
        copy["name"] = f"{copy['name']}_{len(body['tools'])}"
        body["tools"] = [*body["tools"], copy]
    return body


def workloads() -> dict[str, Callable[[str], dict[str, Any]]]:
    """name → body for a model; the model names the backend's answer length."""
    simple = {"max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    realistic = {**realistic_body(), "max_tokens": 16}
    return {
        "simple": lambda model: {**simple, "model": model, "stream": False},
        "realistic": lambda model: {**realistic, "model": model, "stream": False},
        "stream": lambda model: {**simple, "model": model, "stream": True},
        "stream_1": lambda model: {**simple, "model": model, "stream": True},
    }


def run(url: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, float]:
    """One wrk cell against `url`; requests/s, latency percentiles (ms), errors."""
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_text(json.dumps(body))
        lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
        script = Path(tmp) / "post.lua"
        script.write_text(_LUA.format(body=body_file, headers=lines))
        done = subprocess.run(
            [
                "taskset",
                "-c",
                LOAD_CORE,
                "wrk",
                "-t1",
                f"-c{CONNECTIONS}",
                f"-d{SECONDS:.0f}s",
                "--timeout",
                "30s",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            timeout=SECONDS + 120,
        )
    found = re.search(r"RESULT ([\d ]+)", done.stdout)
    if not found:
        raise RuntimeError(f"wrk: {done.stdout[-300:]} {done.stderr[-300:]}")
    requests, duration_us, status, socket_errors, timeouts, p50, p99, size = (
        int(v) for v in found.group(1).split()
    )
    seconds = duration_us / 1e6
    return {
        "requests": requests,
        "rps": requests / seconds,
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
        "non_2xx": status,
        "socket_errors": socket_errors,
        "timeouts": timeouts,
        "bytes_per_request": size / requests if requests else 0,
    }


def throughput(url: str, route: str, headers: dict[str, str], pid: int | None) -> dict[str, Any]:
    """Every workload against one gateway (pinned to GATEWAY_CORE), with its CPU per request.
    `route` names the backend's model `m-N` the way this gateway wants it."""
    if pid:
        pin(tree(pid), GATEWAY_CORE)
    models = {"simple": "m-50", "realistic": "m-50", "stream": f"m-{STREAM_CHUNKS}"}
    models["stream_1"] = "m-1"
    cells: dict[str, Any] = {}
    for name, make in workloads().items():
        before = cpu_seconds(pid) if pid else 0.0
        cell = run(url, make(route.format(models[name])), headers)
        if pid and cell["requests"]:
            cell["cpu_ms_per_request"] = (cpu_seconds(pid) - before) * 1000 / cell["requests"]
        cells[name] = cell
    if pid and all("cpu_ms_per_request" in cells[n] for n in ("stream", "stream_1")):
        extra = cells["stream"]["cpu_ms_per_request"] - cells["stream_1"]["cpu_ms_per_request"]
        cells["cpu_us_per_chunk"] = extra * 1000 / (STREAM_CHUNKS - 1)
    if pid:
        cells["rss_mb_after"] = tree_rss_mb(pid)
    return cells


WORKLOAD_TITLES = {
    "simple": "simple body",
    "realistic": "19 KB Claude-Code-like body",
    "stream": f"streamed {STREAM_CHUNKS}-chunk answers",
}


def table(rows: dict[str, dict[str, Any]]) -> list[str]:
    """The per-core table: measured req/s (the gateway pinned to one core, the machine shared)
    and CPU per request; the capacity of one core is 1000 / CPU ms per request, which moves
    less with the neighbours' load than the measured rate."""
    names = [n for n, d in rows.items() if "wrk" in d]
    if not names:
        return []
    lines = [
        f"wrk, {CONNECTIONS} connections, {SECONDS:.0f} s a cell; gateway pinned to core "
        f"{GATEWAY_CORE}, wrk and the backend on core {LOAD_CORE}.",
        "",
        "| | " + " | ".join(names) + " |",
        "| --- |" + " --- |" * len(names),
    ]

    def row(title: str, value: Any) -> None:
        lines.append(f"| {title} | " + " | ".join(value(rows[n]["wrk"]) for n in names) + " |")

    def num(v: float | None, spec: str = ".0f") -> str:
        return "–" if v is None else f"{v:{spec}}"

    for key, title in WORKLOAD_TITLES.items():
        row(f"req/s measured, {title}", lambda w, k=key: num(w[k]["rps"]))
        row(
            f"gateway CPU per request, {title} (ms)",
            lambda w, k=key: num(w[k].get("cpu_ms_per_request"), ".2f"),
        )
        row(
            f"req/s per core from CPU, {title}",
            lambda w, k=key: num(
                1000 / w[k]["cpu_ms_per_request"] if w[k].get("cpu_ms_per_request") else None
            ),
        )
        row(
            f"p50 / p99 latency, {title} (ms)",
            lambda w, k=key: f"{w[k]['p50_ms']:.1f} / {w[k]['p99_ms']:.1f}",
        )
    row("gateway CPU per streamed chunk (µs)", lambda w: num(w.get("cpu_us_per_chunk"), ".1f"))
    row("RSS after the run (MB)", lambda w: num(w.get("rss_mb_after")))
    lines.append(
        "| RSS with 1,000 idle open streams (MB) | "
        + " | ".join(
            f"{rows[n]['idle']['rss_with_streams_mb']:.0f} ({rows[n]['idle']['streams_open']} open)"
            if rows[n].get("idle")
            else "–"
            for n in names
        )
        + " |"
    )
    row(
        "non-2xx / socket errors",
        lambda w: "/".join(
            str(sum(w[k][e] for k in WORKLOAD_TITLES)) for e in ("non_2xx", "socket_errors")
        ),
    )
    return lines
