"""A fast fake OpenAI-compatible backend for benchmarks: fixed small answers, streamed in N
chunks. Run in its own process: `python -m bench.fake_backend PORT CHUNKS`."""

from __future__ import annotations

import sys

import orjson

ANSWER = b'{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":1,"total_tokens":11}}'


def frames(chunks: int) -> list[bytes]:
    out = []
    for i in range(chunks):
        chunk = {
            "id": "c",
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}],
        }
        out.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    end = {
        "id": "c",
        "model": "m",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": chunks, "total_tokens": 10 + chunks},
    }
    out.append(b"data: " + orjson.dumps(end) + b"\n\ndata: [DONE]\n\n")
    return out


def make_app(chunks: int):  # type: ignore[no-untyped-def]
    stream = frames(chunks)

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if b'"stream":true' in body or b'"stream": true' in body:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")],
                }
            )
            for frame in stream:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": ANSWER})

    return app


if __name__ == "__main__":
    import uvicorn

    port, chunks = int(sys.argv[1]), int(sys.argv[2])
    uvicorn.run(
        make_app(chunks),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        loop="uvloop",
        http="httptools",
        access_log=False,
    )
