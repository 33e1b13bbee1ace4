"""Team keys end to end: the `ccgate keys` commands, the edge accepting, limiting and then
refusing a revoked key, per-key model access, limits and usage."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Edge, backend_env
from tests.fakes.backend import FakeBackend

CCGATE = str(Path(sys.executable).parent / "ccgate")


def ccgate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CCGATE, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def keys_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"CCGATE_KEYS_FILE": str(tmp_path / "keys.json")}
    monkeypatch.setenv("CCGATE_KEYS_FILE", env["CCGATE_KEYS_FILE"])
    return env


def body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-8",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def test_keys_commands_store_only_hashes(keys_env: dict[str, str]) -> None:
    created = ccgate(
        "keys", "create", "ana", "--rpm", "5", "--models", "claude-haiku*", env=keys_env
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("sk-ccg-") and len(key) > 40
    path = Path(keys_env["CCGATE_KEYS_FILE"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key not in path.read_text()
    listed = ccgate("keys", "list", "--json", env=keys_env)
    rows = json.loads(listed.stdout)
    assert rows[0]["name"] == "ana" and rows[0]["rpm"] == 5 and "digest" not in rows[0]
    assert key not in listed.stdout
    assert ccgate("keys", "create", "ana", env=keys_env).returncode == 2  # no silent overwrite
    assert ccgate("keys", "revoke", "ana", env=keys_env).returncode == 0
    assert json.loads(ccgate("keys", "list", "--json", env=keys_env).stdout) == []
    assert ccgate("keys", "revoke", "ana", env=keys_env).returncode == 1


def test_serve_refuses_an_open_address_without_keys(keys_env: dict[str, str]) -> None:
    result = ccgate("serve", "--host", "0.0.0.0", "--port", "1", env=keys_env)
    assert result.returncode == 2
    assert "ccgate keys create" in result.stderr and "--insecure-no-auth" in result.stderr


def test_stored_key_is_accepted_limited_and_revoked(
    backend: FakeBackend, edge_factory: Callable[[dict[str, str]], Edge], keys_env: dict[str, str]
) -> None:
    key = ccgate("keys", "create", "ana", "--daily-tokens", "200", env=keys_env).stdout.strip()
    narrow = ccgate(
        "keys", "create", "bo", "--models", "*haiku*", "--rpm", "1", env=keys_env
    ).stdout.strip()
    edge = edge_factory(backend_env(backend, LIMITER_QUEUE_TIMEOUT="0.3"))
    url = edge.url + "/v1/messages"
    assert httpx.post(url, json=body()).status_code == 401
    assert httpx.post(url, json=body(), headers={"x-api-key": key}).status_code == 200
    # 123 + 45 tokens used (the fake backend's usage); a second request passes 200 → refused.
    assert (
        httpx.post(url, json=body(), headers={"authorization": f"Bearer {key}"}).status_code == 200
    )
    over = httpx.post(url, json=body(), headers={"x-api-key": key})
    assert over.status_code == 429 and over.json()["error"]["type"] == "rate_limit_error"
    assert int(over.headers["retry-after"]) > 0
    # Model access and the key's own rate.
    forbidden = httpx.post(url, json=body(), headers={"x-api-key": narrow})
    assert forbidden.status_code == 403 and forbidden.json()["error"]["type"] == "permission_error"
    haiku = body(model="claude-haiku-4-5")
    assert httpx.post(url, json=haiku, headers={"x-api-key": narrow}).status_code == 200
    limited = httpx.post(url, json=haiku, headers={"x-api-key": narrow})
    assert limited.status_code == 429 and 50 <= int(limited.headers["retry-after"]) <= 61
    # Usage per key.
    rows = httpx.get(edge.url + "/ccgate/usage", headers={"x-api-key": key}).json()["rows"]
    ana = [r for r in rows if r["key"] == "ana"]
    assert ana and ana[0]["requests"] == 2 and ana[0]["input_tokens"] == 246
    # A refused request counts as a request and an error of its key — there and in /metrics.
    bo = httpx.get(edge.url + "/ccgate/usage", params={"key": "bo"}, headers={"x-api-key": key})
    assert [(r["requests"], r["errors"]) for r in bo.json()["rows"]] == [(2, 1)]
    exposition = httpx.get(edge.url + "/metrics").text
    assert 'ccgate_key_errors_total{key="bo",provider="openai_compat"}' in exposition
    assert 'ccgate_key_queued_seconds_total{key="bo"}' in exposition
    cli = ccgate(
        "usage", "--json", env={**keys_env, "CCGATE_EDGE_URL": edge.url, "CCGATE_API_KEYS": ""}
    )
    # The CLI needs a key of the gateway to read usage; without one it is refused cleanly.
    assert cli.returncode == 1
    # Rotation: a new key with the same limits; the old one stops working, the new one works.
    rotated = ccgate("keys", "rotate", "bo", env=keys_env)
    assert rotated.returncode == 0 and rotated.stdout.strip() != narrow
    fresh = rotated.stdout.strip()
    listed = json.loads(ccgate("keys", "list", "--json", env=keys_env).stdout)
    assert [r["rpm"] for r in listed if r["name"] == "bo"] == [1]
    deadline = time.monotonic() + 10
    while httpx.post(url, json=haiku, headers={"x-api-key": narrow}).status_code != 401:
        assert time.monotonic() < deadline, "the rotated-out key still works"
        time.sleep(0.5)
    # Accepted as bo's key: 200, or 429 while bo's own rpm (it is the same name) still holds.
    assert httpx.post(url, json=haiku, headers={"x-api-key": fresh}).status_code in (200, 429)
    narrow = fresh
    # Revocation takes effect within the refresh interval.
    assert ccgate("keys", "revoke", "bo", env=keys_env).returncode == 0
    deadline = time.monotonic() + 10
    while httpx.post(url, json=haiku, headers={"x-api-key": narrow}).status_code != 401:
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.5)


def test_doctor_reports_insecure_settings(
    backend: FakeBackend, keys_env: dict[str, str], tmp_path: Path
) -> None:
    keys_file = Path(keys_env["CCGATE_KEYS_FILE"])
    env = {
        **keys_env,
        **backend_env(backend),
        "REDIS_URL": "",
        "CCGATE_API_KEYS": "",
        "CLAUDE_BIN": "/bin/true",
        "BOT_SKIP_PERMISSIONS": "true",
        "MESSAGING_PLATFORM": "telegram",
        "ALLOWED_TELEGRAM_USER_ID": "",
    }
    # Exposed without any key.
    exposed = ccgate("doctor", "--host", "0.0.0.0", env=env)
    assert exposed.returncode == 1
    assert "[FIX] serving 0.0.0.0 without keys" in exposed.stdout
    # With a key whose file others can read, the bot skipping permissions and open to nobody.
    assert ccgate("keys", "create", "ana", env=env).returncode == 0
    keys_file.chmod(0o644)
    risky = ccgate("doctor", "--host", "0.0.0.0", env=env).stdout
    assert f"[FIX] keys file {keys_file} is readable by others: chmod 600" in risky
    assert "[FIX] BOT_SKIP_PERMISSIONS=true" in risky
    assert (
        "[FIX] MESSAGING_PLATFORM includes telegram but ALLOWED_TELEGRAM_USER_ID is empty" in risky
    )
    assert "[FIX] /metrics, /readyz and /ccgate/* answer on the public port" in risky
    # Put right, the same checks pass.
    keys_file.chmod(0o600)
    safe_env = {
        **env,
        "BOT_SKIP_PERMISSIONS": "false",
        "ALLOWED_TELEGRAM_USER_ID": "42",
        "CCGATE_ADMIN_PORT": "9090",
    }
    safe = ccgate("doctor", "--host", "0.0.0.0", env=safe_env)
    assert safe.returncode == 0, safe.stdout
    assert "[FIX]" not in safe.stdout and "[ok] serving 0.0.0.0 with team keys" in safe.stdout
    assert "is private (0600)" in safe.stdout
