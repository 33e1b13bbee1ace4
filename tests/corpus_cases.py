"""The recorded-stream corpus (tests/corpus/*.json): loading, turning a case into the bytes the
provider sent, and checking an Anthropic result against what the case expects."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).parent / "corpus"
TOOLS: dict[str, dict[str, Any]] = json.loads((CORPUS / "tools.json").read_text())


@dataclass(frozen=True)
class Case:
    family: str
    name: str
    source: str
    model: str
    thinking: bool
    tools: bool
    raw: bytes
    expect: dict[str, Any]
    format: str = "openai"  # or "anthropic": a native Messages stream, passed through

    @property
    def id(self) -> str:
        return f"{self.family}: {self.name}"


def _frame(frame: Any, envelope: dict[str, Any]) -> bytes:
    if isinstance(frame, str):
        return frame.encode()
    if "event" in frame:  # an Anthropic stream event
        return f"event: {frame['event']}\ndata: {json.dumps(frame['data'])}\n\n".encode()
    chunk = dict(envelope)
    body = dict(frame)
    if {"delta", "finish", "index"} & body.keys():
        choice = {
            "index": body.pop("index", 0),
            "delta": body.pop("delta", {}),
            "finish_reason": body.pop("finish", None),
        }
        body["choices"] = [choice]
    chunk.update(body)
    return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"


def load_cases() -> list[Case]:
    cases = []
    for path in sorted(CORPUS.glob("*.json")):
        if path.name == "tools.json":
            continue
        data = json.loads(path.read_text())
        for item in data["cases"]:
            assert item.get("source"), f"{path.name}: {item['name']} has no source"
            envelope = {**data.get("envelope", {}), **item.get("envelope", {})}
            raw = b"".join(_frame(f, envelope) for f in item["frames"])
            fmt = data.get("format", "openai")
            if item.get("done", fmt == "openai"):
                raw += b"data: [DONE]\n\n"
            cases.append(
                Case(
                    data["family"],
                    item["name"],
                    item["source"],
                    item.get("model", "m"),
                    item.get("thinking", False),
                    item.get("tools", True),
                    raw,
                    item["expect"],
                    fmt,
                )
            )
    return cases


def blocks_of(content: list[dict[str, Any]], fresh_ids: bool = True) -> list[dict[str, Any]]:
    """The comparable part of each content block (`fresh_ids`: tool ids are the gateway's own;
    a native Anthropic stream keeps the backend's)."""
    out = []
    for block in content:
        kind = block["type"]
        if kind == "text":
            out.append({"type": kind, "text": block["text"]})
        elif kind == "thinking":
            assert block["signature"], "a thinking block needs its signature"
            out.append({"type": kind, "thinking": block["thinking"]})
        elif kind == "tool_use":
            assert block["id"].startswith("toolu_") if fresh_ids else block["id"]
            out.append({"type": kind, "name": block["name"], "input": block["input"]})
        elif kind == "redacted_thinking":
            assert block["data"]
            out.append({"type": kind})
        else:
            out.append({"type": kind})
    return out


def check_message(case: Case, message: dict[str, Any]) -> None:
    expect = case.expect
    assert "error" not in expect, f"{case.id}: expected an error, got a message"
    fresh = case.format == "openai"
    assert blocks_of(message["content"], fresh) == expect["content"], case.id
    assert message["stop_reason"] == expect["stop_reason"], case.id
    if "usage" in expect:
        usage = message["usage"]
        assert usage["input_tokens"] == expect["usage"]["input_tokens"], case.id
        assert usage["output_tokens"] == expect["usage"]["output_tokens"], case.id


def check_error(case: Case, error_type: str, status: int | None, message: str) -> None:
    want = case.expect.get("error")
    assert want is not None, f"{case.id}: unexpected error {error_type}: {message}"
    assert error_type == want["type"], (case.id, error_type, message)
    if status is not None:
        assert status == want["status"], case.id
    assert want.get("message", "") in message, (case.id, message)
