"""The edge's own cost from ASGI entry to the last response message, in process, no network:
`POST /v1/messages` with a body that fails validation (400), so no upstream is involved.

`uv run python -m bench.asgi_overhead` prints µs of CPU per request. For an A/B against an
older commit in the same window, run it again with that commit's sources first on the path:
`git archive OLD services shared | tar -x -C /tmp/old` and
`PYTHONPATH=/tmp/old/shared/src:/tmp/old/services/limiter/src:/tmp/old/services/edge/src`.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

BODY = b'{"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}'  # no max_tokens
N = int(os.environ.get("ASGI_N", "5000"))


async def main() -> None:
    os.environ.setdefault("MODEL", "openai_compat/m")
    os.environ.setdefault("OPENAI_COMPAT_BASE_URL", "http://127.0.0.1:9/v1")
    from ccgate.edge.app import create_app
    from ccgate.shared.settings import Settings

    app = create_app(Settings.from_env(None))
    headers = [(b"host", b"x"), (b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(BODY)).encode()))

    async def one() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/messages",
            "raw_path": b"/v1/messages",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 8082),
            "state": {},
        }
        sent: list[dict[str, Any]] = []
        pending = [{"type": "http.request", "body": BODY, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)
        assert sent[0]["status"] == 400, sent[0]

    for _ in range(500):
        await one()
    before = time.process_time()
    for _ in range(N):
        await one()
    print(f"{(time.process_time() - before) / N * 1e6:.0f} µs CPU per request")


if __name__ == "__main__":
    asyncio.run(main())
