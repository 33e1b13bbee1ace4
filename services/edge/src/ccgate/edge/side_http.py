"""Short HTTP calls off the hot path: start-up and readiness probes, context-window probes,
llama-server's /props, /apply-template and /tokenize, and the CLI's questions to a gateway.

On aiohttp, the upstream client's own library, so the serving process loads one HTTP client
(httpx with httpcore, anyio and its command-line extras cost a worker ~8 MB and ~0.15 s at
start-up for a handful of calls); blocking callers (the CLI, the start-up report) use the
standard library. Both ignore proxy variables and answer the same `Answer` or `CallFailed`.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import orjson

FailureKind = Literal["connect", "timeout", "other"]


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        """The body as JSON; a ValueError when it is not."""
        return orjson.loads(self.body)


class CallFailed(Exception):
    """No answer: nothing listening (`connect`), none in time (`timeout`), or `other`."""

    def __init__(self, kind: FailureKind, cause: BaseException) -> None:
        super().__init__(str(cause) or type(cause).__name__)
        self.kind = kind
        self.cause = cause


def session() -> aiohttp.ClientSession:
    """A short-lived session: `async with side_http.session() as s: await call(s, …)`."""
    return aiohttp.ClientSession(trust_env=False, cookie_jar=aiohttp.DummyCookieJar())


async def call(
    client: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    seconds: float,
    json: Any = None,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> Answer:
    data = None if json is None else orjson.dumps(json)
    sent = {**(headers or {}), **({"content-type": "application/json"} if data else {})}
    try:
        async with client.request(
            method,
            url,
            data=data,
            headers=sent,
            params=params,
            timeout=aiohttp.ClientTimeout(total=seconds),
        ) as response:
            return Answer(response.status, await response.read())
    except aiohttp.ClientConnectorError as exc:
        raise CallFailed("connect", exc) from exc
    except TimeoutError as exc:
        raise CallFailed("timeout", exc) from exc
    except (aiohttp.ClientError, ValueError) as exc:  # ValueError: a URL aiohttp cannot use
        raise CallFailed("other", exc) from exc


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call_sync(
    method: str,
    url: str,
    *,
    seconds: float,
    json: Any = None,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> Answer:
    if params:
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
    data = None if json is None else orjson.dumps(json)
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with _OPENER.open(request, timeout=seconds) as response:
            return Answer(response.status, response.read())
    except urllib.error.HTTPError as exc:  # an answer, only not a 2xx one
        with exc:
            return Answer(exc.code, exc.read())
    except urllib.error.URLError as exc:
        reason = exc.reason
        kind: FailureKind = "timeout" if isinstance(reason, TimeoutError) else "connect"
        raise CallFailed(kind, exc) from exc
    except TimeoutError as exc:
        raise CallFailed("timeout", exc) from exc
    except (OSError, ValueError) as exc:  # a dropped connection; a URL urllib cannot use
        raise CallFailed("other", exc) from exc
