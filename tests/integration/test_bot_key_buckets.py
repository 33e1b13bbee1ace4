"""A bot's key fans out per chat user (`ccgate keys create bot --chat-users`): each chat user
it acts for (x-ccgate-chat-user) is queued as itself (the fair queue shares the key between
them) while the key's rpm, concurrency and daily tokens hold for all of them together; its
usage is recorded per chat user (`ccgate usage --key bot --by chat-user`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import Edge, backend_env
from tests.fakes.backend import FakeBackend
from tests.integration.test_keys import body, ccgate

ADMIN = "sk-admin-PLANTED-0123456789"


@pytest.fixture
def keys_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("CCGATE_KEYS_FILE", str(tmp_path / "keys.json"))
    return {"CCGATE_KEYS_FILE": str(tmp_path / "keys.json")}


def test_a_bot_key_fans_out_per_chat_user(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge], keys_env: dict[str, str]
) -> None:
    made = ccgate("keys", "create", "bot", "--chat-users", "--rpm", "2", env=keys_env)
    assert made.returncode == 0, made.stderr
    bot = made.stdout.strip()
    plain = ccgate("keys", "create", "plain", "--rpm", "1", env=keys_env).stdout.strip()
    day_args = ("keys", "create", "day", "--chat-users", "--daily-tokens", "500")
    day = ccgate(*day_args, env=keys_env).stdout.strip()
    edge = edge_factory(
        backend_env(backend, LIMITER_QUEUE_TIMEOUT="0.3", CCGATE_API_KEYS=f"admin:{ADMIN}")
    )
    url = edge.url + "/v1/messages"

    def send(key: str, chat_user: str) -> int:
        headers = {"x-api-key": key, "x-ccgate-chat-user": chat_user}
        return httpx.post(url, json=body(), headers=headers).status_code

    # The bot key's rpm holds for its chat users together: a third chat user is over it.
    assert send(bot, "telegram:42") == 200
    assert send(bot, "telegram:43") == 200
    assert send(bot, "telegram:46") == 429
    # A plain key is one tenant: whoever it acts for, one rpm for all.
    assert send(plain, "telegram:42") == 200
    assert send(plain, "telegram:43") == 429
    # Usage per chat user of the bot key.
    rows = httpx.get(
        edge.url + "/ccgate/usage", params={"key": "bot"}, headers={"x-api-key": ADMIN}
    ).json()["rows"]
    assert {(r["key"], r["chat_user"], r["requests"], r["errors"]) for r in rows} == {
        ("bot", "telegram:42", 1, 0),
        ("bot", "telegram:43", 1, 0),
        ("bot", "telegram:46", 1, 1),
    }
    cli_env = {**keys_env, "CCGATE_EDGE_URL": edge.url, "CCGATE_API_KEYS": f"admin:{ADMIN}"}
    by_user = ccgate("usage", "--key", "bot", "--by", "chat-user", env=cli_env)
    assert by_user.returncode == 0, by_user.stderr
    lines = [line for line in by_user.stdout.splitlines() if line.startswith("20")]
    assert len(lines) == 3
    assert "bot" in lines[0] and "chat user telegram:42: 1 requests, 123 in / 45 out" in lines[0]
    assert "chat user telegram:43: 1 requests, 123 in / 45 out" in lines[1]
    assert "chat user telegram:46: 1 requests, 0 in / 0 out" in lines[2]
    as_json = json.loads(ccgate("usage", "--by", "chat-user", "--json", env=cli_env).stdout)
    assert {(r["key"], r["chat_user"]) for r in as_json["rows"]} == {
        ("bot", "telegram:42"),
        ("bot", "telegram:43"),
        ("bot", "telegram:46"),
        ("plain", ""),
    }
    assert ccgate("usage", "--by", "model", env=cli_env).returncode == 2
    # The key's daily tokens count every chat user: 2 × 168 used of 500, a third one passes,
    # then the key is out for all of them, a new chat user included.
    assert [send(day, f"telegram:{n}") for n in (42, 43, 44)] == [200, 200, 200]
    over = httpx.post(
        url, json=body(), headers={"x-api-key": day, "x-ccgate-chat-user": "telegram:45"}
    )
    assert over.status_code == 429 and "tokens for today" in over.json()["error"]["message"]
