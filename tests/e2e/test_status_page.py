"""The status page in a real headless Chromium: a real `ccgate serve` (admin port, team keys,
traces exported to an OTLP receiver) under load. The page refreshes itself — the test never
reloads it — and its numbers follow the load; failed tool calls link to their traces; no key,
provider secret, prompt or tool text appears. The README's screenshot is taken here
(UPDATE_SCREENSHOTS=1 writes it to docs/)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.backend import FakeBackend, Turn
from tests.fakes.otlp import OtlpHttpReceiver
from tests.fakes.server import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TEAM_KEY = "sk-team-ana-0123456789"
PROVIDER_SECRET = "sk-provider-secret-123"
PROMPT = "PROMPT-MARKER please summarise"
TOOL_TEXT = "TOOL-OUTPUT-MARKER permission denied"
JAEGER = "http://jaeger.example:16686"
LOAD = 12


def message(text: str = PROMPT, **extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-8",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def with_failed_tool() -> dict[str, Any]:
    return message(
        messages=[
            {"role": "user", "content": PROMPT},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "is_error": True,
                        "content": TOOL_TEXT,
                    }
                ],
            },
        ]
    )


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "edge did not start"
        time.sleep(0.2)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, FakeBackend, OtlpHttpReceiver]]:
    port, admin = free_port(), free_port()
    with FakeBackend(Turn(text="ok", delay=0.05)) as backend, OtlpHttpReceiver() as receiver:
        env = {
            **os.environ,
            "MODEL": "openai_compat/fake-model",
            "MODEL_OPUS": "ollama/qwen2.5-coder:7b",
            "OLLAMA_BASE_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
            "OPENAI_COMPAT_BASE_URL": backend.url + "/v1",
            "OPENAI_COMPAT_API_KEY": PROVIDER_SECRET,
            "CCGATE_API_KEYS": f"ana:{TEAM_KEY}",
            "CCGATE_ADMIN_PORT": str(admin),
            "JAEGER_UI_URL": JAEGER,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        edge = subprocess.Popen(
            [sys.executable, "-m", "ccgate.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_until_up(f"http://127.0.0.1:{port}/healthz", edge)
            yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}", backend, receiver
        finally:
            os.killpg(edge.pid, signal.SIGTERM)
            edge.wait(timeout=30)


def drive_load(api: str, count: int) -> threading.Thread:
    def run() -> None:
        with httpx.Client(headers={"x-api-key": TEAM_KEY}, timeout=30) as client:
            for _ in range(count):
                assert client.post(api + "/v1/messages", json=message()).status_code == 200
                time.sleep(0.4)  # spread over a few refreshes of the page

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def cell(page: Any, selector: str) -> str | None:
    """The text of `selector` on the page as it is now (None while it reloads or is absent)."""
    try:
        return page.text_content(selector, timeout=500)  # type: ignore[no-any-return]
    except Exception:
        return None


def test_status_page_in_chromium_follows_live_load(
    served: tuple[str, str, FakeBackend, OtlpHttpReceiver], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    api, admin, _, receiver = served
    assert httpx.get(api + "/ccgate/").status_code == 404  # the admin port only
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        page = context.new_page()
        page.goto(admin + "/ccgate/")
        assert "no requests today" in page.content()
        loader = drive_load(api, LOAD)
        seen: list[int] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not seen or seen[-1] < LOAD):
            text = cell(page, '#usage tr[data-key="ana"] .requests')
            if text and text.strip().isdigit() and (not seen or int(text) != seen[-1]):
                seen.append(int(text))
            time.sleep(0.3)
        loader.join(timeout=60)
        # The page reloaded itself and showed the count growing, up to the whole load.
        assert len(seen) >= 2 and seen == sorted(seen) and seen[-1] == LOAD, seen
        daily = cell(page, '#limiter tr[data-provider="openai_compat"] .daily')
        assert daily is not None and int(daily) >= LOAD

        failed = httpx.post(
            api + "/v1/messages", json=with_failed_tool(), headers={"x-api-key": TEAM_KEY}
        )
        assert failed.status_code == 200
        link = None
        while time.monotonic() < deadline and link is None:
            try:
                link = page.get_attribute("#tool-failures a", "href", timeout=500)
            except Exception:
                time.sleep(0.3)
        assert link is not None and link.startswith(JAEGER + "/trace/"), link
        trace_id = link.rsplit("/", 1)[1]
        while time.monotonic() < deadline and not any(
            span.trace_id.hex() == trace_id for _, span in receiver.spans
        ):
            time.sleep(0.2)
        assert any(span.trace_id.hex() == trace_id for _, span in receiver.spans)
        assert "Bash" in (cell(page, "#tool-failures") or "")

        routes = cell(page, "#routes") or ""
        assert "ollama serve" in routes and "openai_compat/fake-model" in routes
        html = page.content()
        for secret in (TEAM_KEY, PROVIDER_SECRET, "PROMPT-MARKER", "TOOL-OUTPUT-MARKER"):
            assert secret not in html, f"{secret} shown on the status page"
        shot = tmp_path / "status-page.png"
        page.screenshot(path=str(shot), full_page=True)
        context.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("UPDATE_SCREENSHOTS"):
        shutil.copy(shot, ROOT / "docs" / "status-page.png")
