"""Claude's answers are Markdown. Pure helpers: keep each piece of a split answer's code
fences balanced (both platforms render pieces one by one), and turn Markdown into the HTML
subset Telegram renders (`parse_mode=HTML`) — fenced code, inline code, **bold**, headings (as
bold), [links](url) and `> ` quotes (expandable); everything else stays text, escaped."""

from __future__ import annotations

import html
import itertools
import re

_FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)(?:^```[ \t]*$|\Z)", re.S | re.M)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*$", re.M)
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)")


def _inline(text: str) -> str:
    """One stretch of prose (no fences): escaped, with its inline marks rendered."""
    out: list[str] = []
    last = 0
    for match in _INLINE_CODE.finditer(text):  # code spans first: nothing inside them renders
        out.append(_marks(text[last : match.start()]))
        out.append(f"<code>{html.escape(match.group(1), quote=False)}</code>")
        last = match.end()
    out.append(_marks(text[last:]))
    return "".join(out)


def _marks(text: str) -> str:
    text = html.escape(text, quote=False)
    text = _HEADING.sub(r"<b>\1</b>", text)
    text = _BOLD.sub(r"<b>\1</b>", text)
    return _LINK.sub(
        lambda m: f'<a href="{html.escape(html.unescape(m.group(2)))}">{m.group(1)}</a>', text
    )


def _quoted(line: str) -> bool:
    return line.startswith("> ") or line == ">"


def _prose(text: str) -> str:
    """Prose between code fences: runs of `> ` lines become one expandable blockquote."""
    out: list[str] = []
    for quoted, run in itertools.groupby(text.split("\n"), key=_quoted):
        if quoted:
            inner = _inline("\n".join(line[2:] for line in run))
            out.append(f"<blockquote expandable>{inner}</blockquote>")
        else:
            out.extend(_inline(line) for line in run)
    return "\n".join(out)


def telegram_html(markdown: str) -> str:
    out: list[str] = []
    last = 0
    for match in _FENCE.finditer(markdown):
        out.append(_prose(markdown[last : match.start()]))
        language, code = match.group(1), match.group(2).rstrip("\n")
        escaped = html.escape(code, quote=False)
        attribute = f' class="language-{language}"' if language else ""
        out.append(f"<pre><code{attribute}>{escaped}</code></pre>")
        last = match.end()
    out.append(_prose(markdown[last:]))
    return "".join(out).strip()


FENCE_ROOM = 32  # what closing and reopening a fence may add to a piece


def balanced(pieces: list[str]) -> list[str]:
    """Pieces of one Markdown text, each closing the code fence it leaves open and the next
    reopening it, so that every piece renders on its own. Split with FENCE_ROOM to spare."""
    out: list[str] = []
    open_fence: str | None = None
    for piece in pieces:
        text = piece if open_fence is None else f"{open_fence}\n{piece}"
        fence = None
        for line in text.splitlines():
            if line.startswith("```"):
                fence = None if fence is not None else line.strip()[: FENCE_ROOM - 8]
        if fence is not None:
            text += "\n```"
        out.append(text)
        open_fence = fence
    return out
