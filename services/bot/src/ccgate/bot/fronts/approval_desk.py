"""The chat side of approvals, whatever the platform: a button press (Telegram callback query,
Discord interaction) checked and turned into a decision, the typed reason of a denial, and
/stop's denial of what waits. The requests and decisions themselves are in approvals.py."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ccgate.bot import approvals

log = logging.getLogger("ccgate.bot")
NOT_YOURS = "Only the person who started this run (or an allowed user) can answer."
GONE = "This request is no longer waiting."


@dataclass(frozen=True)
class Press:
    chat_id: str
    user_id: str
    message_id: str
    data: str


@dataclass(frozen=True)
class PressReply:
    notice: str  # shown to the presser alone (a toast, an ephemeral message)
    settled: str | None = None  # the request's message, answered: its new text, no buttons
    say: str | None = None  # a message into the chat


class ApprovalDesk:
    def __init__(self, redis: Any, platform: str, allowed: set[str], wait_s: float) -> None:
        self.redis, self.platform, self.allowed, self.wait_s = redis, platform, allowed, wait_s

    async def press(self, press: Press) -> PressReply:
        parsed = approvals.parse_press(press.data)
        request = await approvals.load(self.redis, parsed[0]) if parsed else None
        if parsed is None or request is None or request.chat_id != press.chat_id:
            return PressReply(GONE)
        if press.user_id != request.owner and press.user_id not in self.allowed:
            log.warning("%s: refused a press from user %s", self.platform, press.user_id)
            return PressReply(NOT_YOURS)
        choice = parsed[1]
        if choice == approvals.REASON:
            key = approvals.reason_key(self.platform, press.chat_id, press.user_id)
            await self.redis.set(key, request.id, ex=max(1, int(self.wait_s)))
            return PressReply(
                "Type the reason.",
                say="✍️ Why not? Your next message here goes to Claude Code as the reason.",
            )
        decision = approvals.decision(request, choice, by=press.user_id)
        if not await approvals.settle(self.redis, request, decision):
            return PressReply("Already answered.")
        return PressReply(
            "Done.", settled=_settled(request, approvals.outcome_line(request, choice))
        )

    async def reason(
        self, chat_id: str, user_id: str, text: str
    ) -> tuple[approvals.Request, str] | None:
        """When `user_id` pressed "Deny with reason…" here, `text` is that reason: the request
        is denied with it. (request, its settled text), or None when no reason was awaited."""
        waiting = await self.redis.getdel(approvals.reason_key(self.platform, chat_id, user_id))
        request = await approvals.load(self.redis, waiting.decode()) if waiting else None
        if request is None:
            return None
        decision = approvals.decision(request, approvals.DENY, by=user_id, reason=text)
        if not await approvals.settle(self.redis, request, decision):
            return None
        return request, _settled(request, approvals.outcome_line(request, approvals.DENY, text))

    async def deny_waiting(self, chat_id: str) -> list[tuple[approvals.Request, str]]:
        """/stop: every request waiting in this chat is denied."""
        denied = []
        for request in await approvals.waiting_in_chat(self.redis, self.platform, chat_id):
            decision = {"behavior": "deny", "by": "stop", "message": "The user stopped the run."}
            if await approvals.settle(self.redis, request, decision):
                denied.append((request, _settled(request, f"{request.tool}: 🛑 stopped")))
        return denied


def _settled(request: approvals.Request, outcome: str) -> str:
    return f"{request.text()}\n\n{outcome}"
