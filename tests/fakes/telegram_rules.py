"""What the fake Telegram refuses, as Telegram does: parse_mode=HTML it cannot parse (only its
tags, closed in order; no bare `<` or `&`), a bad inline keyboard; and its error replies, with
Telegram's descriptions."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from starlette.responses import JSONResponse

TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "code",
    "pre",
    "a",
    "blockquote",
}


class EntityError(ValueError):
    """What Telegram says when it cannot parse a parse_mode=HTML text."""


class _Render(HTMLParser):
    """Telegram's reading of parse_mode=HTML: the plain text the reader sees and its entities
    (tag, offset, length). Only its tags, closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.plain: list[str] = []
        self.open: list[tuple[str, int]] = []
        self.entities: list[tuple[str, int, int]] = []

    def _at(self) -> int:
        return sum(len(part) for part in self.plain)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TAGS:
            raise EntityError(f'Unsupported start tag "{tag}"')
        self.open.append((tag, self._at()))

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1][0] != tag:
            raise EntityError(f'Unmatched end tag "{tag}"')
        name, start = self.open.pop()
        self.entities.append((name, start, self._at() - start))

    def handle_data(self, data: str) -> None:
        self.plain.append(data)


def rendered(text: str, parse_mode: str | None) -> tuple[str, tuple[tuple[str, int, int], ...]]:
    """(plain text, entities) of a message as Telegram stores it; EntityError if refused. A
    bare `<` or an `&` that is not an entity is an error too."""
    if parse_mode != "HTML":
        return text, ()
    if re.search(r"<(?![a-zA-Z/])|&(?!(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)", text):
        raise EntityError("Unexpected character")
    parser = _Render()
    parser.feed(text)
    parser.close()
    if parser.open:
        tag = parser.open[-1][0]
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{tag}"')
    return "".join(parser.plain), tuple(sorted(parser.entities))


class TelegramError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return JSONResponse(body, status_code=self.code)


def bad_request(description: str) -> TelegramError:
    return TelegramError(400, "Bad Request: " + description)


MESSAGE_LIMIT = 4096  # characters after entities parsing
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)


def check_markup(markup: Any) -> None:
    """An inline keyboard as Telegram checks it: rows of buttons, each with a text and 1-64
    bytes of callback_data."""
    if markup is None:
        return
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(
            "can't parse inline keyboard button: InlineKeyboardButtons must be an array of arrays"
        )
    for button in (b for row in rows for b in row):
        if not str(button.get("text", "")).strip():
            raise bad_request("BUTTON_TEXT_INVALID")
        if not 1 <= len(str(button.get("callback_data", "")).encode()) <= 64:
            raise bad_request("BUTTON_DATA_INVALID")
