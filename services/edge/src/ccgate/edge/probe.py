"""Is each routed backend there? A short probe at start-up and for `/readyz`, and the error a
request gets when a backend refuses the connection — both naming the fix.

A refused connection means nothing listens at the configured address: retrying cannot help,
and Claude Code would retry a 5xx/529 ten times with back-off while the user sees nothing. So
that error is a 503 with `x-should-retry: false`, which the CLI (and the anthropic SDKs) show
at once; timeouts, 5xx and 429 keep their retryable shapes (see translate/errors.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import aiohttp

from ccgate.edge import side_http
from ccgate.edge.providers.table import Provider, configure_all
from ccgate.edge.routing import Router
from ccgate.edge.translate.errors import ApiError
from ccgate.shared.settings import Settings

PROBE_TIMEOUT = 2.0  # seconds per backend: a local server answers in milliseconds
PROBE_MAX_AGE = 10.0  # /readyz re-probes at most this often

# How to bring up a local server, per provider id; the others are remote services.
_START_HINTS = {
    "ollama": "start it with `ollama serve`",
    "lmstudio": "start LM Studio's server (`lms server start`)",
    "llamacpp": "start `llama-server -m MODEL.gguf --port 8080`",
    "openai_compat": "start your OpenAI-compatible server",
}


def fix_for(provider: Provider) -> str:
    """What to do when `provider` cannot be reached at its configured address."""
    steps = [_START_HINTS.get(provider.id, f"check that {provider.base_url} is right")]
    steps.append(f"or set {provider.spec.url_setting} to where it runs")
    steps.append("or route elsewhere with MODEL=provider/model (MODEL_OPUS, MODEL_SONNET, …)")
    return ", ".join(steps)


class BackendUnreachable(ApiError):
    """503 that the CLI does not retry: nothing is listening at the backend's address."""

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "x-should-retry": "false"}


def unreachable_error(provider: Provider, exc: BaseException) -> BackendUnreachable:
    return BackendUnreachable(
        503,
        "api_error",
        f"the gateway cannot connect to {provider.id} at {provider.base_url} "
        f"({_reason(exc)}): {fix_for(provider)}",
    )


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if any(
        sign in lowered
        for sign in ("refused", "all connection attempts failed", "connect call failed")
    ):
        return "connection refused: nothing is listening there"
    return f"{type(exc).__name__}: {text[:200]}"


@dataclass(frozen=True)
class Reachability:
    provider: str
    url: str
    reachable: bool
    problem: str | None = None
    fix: str | None = None
    checked_at: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @property
    def text(self) -> str:
        if self.reachable:
            return f"{self.provider}: {self.url} answers"
        return f"{self.provider}: {self.problem}; {self.fix}"

    def line(self) -> str:
        return f"  [{'ok' if self.reachable else 'FIX'}] {self.text}"


def probe_url(provider: Provider) -> str:
    """A cheap GET every OpenAI-compatible server answers: its model list."""
    return provider.base_url + ("/v1/models" if provider.id == "ollama" else "/models")


async def probe_one(
    client: aiohttp.ClientSession, provider: Provider, seconds: float = PROBE_TIMEOUT
) -> Reachability:
    url = probe_url(provider)
    now = time.time()

    def failed(problem: str, fix: str) -> Reachability:
        return Reachability(provider.id, url, False, problem, fix, now)

    missing = provider.missing()
    if missing:
        return failed(missing, "set it in the gateway's environment")
    try:
        answer = await side_http.call(
            client, "GET", url, headers=provider.auth_headers(), seconds=seconds
        )
    except side_http.CallFailed as exc:
        if exc.kind == "connect":
            return failed(f"cannot connect to {url} ({_reason(exc.cause)})", fix_for(provider))
        if exc.kind == "timeout":
            return failed(f"{url} did not answer within {seconds:g}s", fix_for(provider))
        return failed(f"{url}: {type(exc.cause).__name__}", fix_for(provider))
    if answer.status in (401, 403):
        return failed(
            f"{url} rejected the gateway's credentials ({answer.status})",
            f"check {provider.spec.key_setting}",
        )
    return Reachability(provider.id, url, True, checked_at=now)


def routed_providers(settings: Settings) -> list[Provider]:
    providers = configure_all(settings)
    used = {r.provider for routes in Router(settings).table().values() for r in routes}
    return [providers[pid] for pid in sorted(used)]


async def probe_all(settings: Settings, seconds: float = PROBE_TIMEOUT) -> list[Reachability]:
    """Every routed backend, concurrently, within about `seconds` in all."""
    async with side_http.session() as client:
        return list(
            await asyncio.gather(
                *(probe_one(client, p, seconds) for p in routed_providers(settings))
            )
        )


class BackendProbe:
    """The latest probe results. `latest()` never waits: it answers with what is known and
    starts a fresh probe in the background when that is older than `max_age` seconds."""

    def __init__(self, settings: Settings, max_age: float = PROBE_MAX_AGE) -> None:
        self.settings = settings
        self.max_age = max_age
        self._results: list[Reachability] = []
        self._at = -max_age
        self._task: asyncio.Task[None] | None = None

    def refresh(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return self._task

    async def _run(self) -> None:
        self._results = await probe_all(self.settings)
        self._at = time.monotonic()

    def latest(self) -> dict[str, dict[str, object]]:
        if time.monotonic() - self._at > self.max_age:
            self.refresh()
        return {r.provider: r.as_dict() for r in self._results}

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()


def report_in_background(settings: Settings, echo: Callable[[str], None]) -> threading.Thread:
    """Probe in a thread and print each unreachable backend with its fix; start-up goes on."""

    def run() -> None:
        for result in asyncio.run(probe_all(settings)):
            if not result.reachable:
                echo(result.line())

    thread = threading.Thread(target=run, name="ccgate-probe", daemon=True)
    thread.start()
    return thread
