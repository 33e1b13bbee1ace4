"""The real CLI's WebSearch on an OpenAI-compatible backend: its side request carries
Anthropic's web_search tool, the gateway searches a fake SearXNG, and the CLI hands the
results to the main loop, whose answer cites them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Harness
from tests.fakes.backend import Turn
from tests.fakes.search import FakeSearch, Page

pytestmark = pytest.mark.e2e
PAGE = Page("https://docs.example.org/ccgate", "ccgate docs", "ccgate is a gateway", "2026-11-01")


def test_websearch_gets_results_from_searxng_and_the_answer_cites_them(
    harness_factory: Callable[..., Harness],
) -> None:
    with FakeSearch([PAGE]) as searxng:
        h = harness_factory(
            "openai", WEB_SEARCH_PROVIDER="searxng", SEARXNG_BASE_URL=searxng.server_url
        )
        h.backend.script(
            Turn(tool_calls=[("WebSearch", {"query": "what is ccgate"})]),  # main loop
            Turn(tool_calls=[("web_search", {"query": "what is ccgate"})]),  # side request
            Turn(text="ccgate is a gateway (docs.example.org)."),  # side request, round 2
            Turn(text="ccgate is a gateway: [ccgate docs](https://docs.example.org/ccgate)."),
        )
        run = h.claude("search the web: what is ccgate?", "--allowedTools", "WebSearch")
    assert run.returncode == 0, run.stderr[-3000:]
    assert searxng.seen and searxng.seen[0]["params"]["q"] == "what is ccgate"
    bodies = [r.body for r in h.backend.requests]
    side = bodies[1]
    assert [t["function"]["name"] for t in side["tools"]] == ["web_search"]
    # The CLI turned our web_search_tool_result blocks into the WebSearch tool's result.
    main_followup = json.dumps(bodies[3]["messages"][-2:])
    assert "https://docs.example.org/ccgate" in main_followup, main_followup[-2000:]
    assert "https://docs.example.org/ccgate" in run.result["result"]


def self_signed(where: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 (the CLI fetches pages over https only)."""
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def test_webfetch_fetches_in_the_client_and_asks_the_backend_an_ordinary_question(
    harness_factory: Callable[..., Harness], tmp_path: Path
) -> None:
    """2.1.332's WebFetch is no server tool: the CLI fetches the page itself (after a domain
    check at api.anthropic.com, which `skipWebFetchPreflight` skips) and sends the page with
    the prompt as a plain Messages request — which any backend answers."""
    site = FakeSearch([PAGE])
    site.tls = self_signed(tmp_path)
    with site:
        h = harness_factory("openai")
        h.env_extra["NODE_EXTRA_CA_CERTS"] = site.tls[0]
        (h.home / ".claude").mkdir(exist_ok=True)
        (h.home / ".claude" / "settings.json").write_text('{"skipWebFetchPreflight": true}')
        url = site.server_url + "/page"
        h.backend.script(
            Turn(tool_calls=[("WebFetch", {"url": url, "prompt": "what is ccgate?"})]),
            Turn(text="The page says ccgate is a gateway."),  # the CLI's web_fetch_apply request
            Turn(text="Fetched: ccgate is a gateway."),
        )
        run = h.claude("fetch " + url, "--allowedTools", "WebFetch")
        fetched = [s for s in site.seen if s["path"] == "/page"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert fetched, "the CLI did not fetch the page"
    apply_request = json.dumps(h.backend.requests[1].body)
    assert "ccgate is a gateway" in apply_request and "what is ccgate?" in apply_request
    assert "web_fetch" not in json.dumps(h.backend.requests[1].body.get("tools") or [])
    assert run.result["result"] == "Fetched: ccgate is a gateway."
