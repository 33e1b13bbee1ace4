"""Team keys: created once, shown once, stored only as SHA-256 digests.

Where they live: Redis (`ccgate:keys`, a hash of name → record) when REDIS_URL is set,
otherwise a local JSON file with 0600 permissions (`CCGATE_KEYS_FILE`). `CCGATE_API_KEYS`
(static `name:key` pairs) works beside either. The edge keeps a copy of the records and
refreshes it every few seconds, so a revoked key stops working within that time.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import secrets
import stat
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ccgate.shared.settings import Settings

KEY_PREFIX = "sk-ccg-"
REDIS_HASH = "ccgate:keys"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    name: str
    digest: str
    rpm: int = 0
    max_concurrency: int = 0
    daily_tokens: int = 0
    models: str = "*"  # comma list of glob patterns over the requested or routed model
    created: str = ""
    # A bot's key: each chat user it acts for (x-ccgate-chat-user) is a bucket of its own —
    # its own rpm/concurrency and place in the fair queue, its own usage rows; the daily
    # tokens still count for the whole key.
    chat_users: bool = False

    def allows(self, *model_names: str) -> bool:
        patterns = [p.strip() for p in self.models.split(",") if p.strip()] or ["*"]
        return any(fnmatch.fnmatchcase(m, p) for p in patterns for m in model_names)


class KeyStore(Protocol):
    def save(self, record: KeyRecord) -> None: ...

    def load(self) -> list[KeyRecord]: ...

    def delete(self, name: str) -> bool: ...


def new_record(name: str, **limits: Any) -> tuple[str, KeyRecord]:
    """A fresh key and its record; the key itself is returned once and stored nowhere."""
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError("a key name is letters, digits, '-', '_' or '.'")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return key, KeyRecord(name=name, digest=digest(key), created=created, **limits)


class FileKeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[KeyRecord]:
        if not self.path.exists():
            return []
        data = json.loads(self.path.read_text() or "{}")
        return [KeyRecord(**item) for item in data.get("keys", [])]

    def _write(self, records: list[KeyRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-")
        try:
            os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)  # 0600 before a single byte is written
            with os.fdopen(fd, "w") as handle:
                json.dump({"keys": [asdict(r) for r in records]}, handle, indent=2)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def save(self, record: KeyRecord) -> None:
        records = [r for r in self.load() if r.name != record.name]
        self._write([*records, record])

    def delete(self, name: str) -> bool:
        records = self.load()
        kept = [r for r in records if r.name != name]
        if len(kept) == len(records):
            return False
        self._write(kept)
        return True


class RedisKeyStore:
    def __init__(self, url: str, mode: str = "standalone") -> None:
        from ccgate.shared.redis import connect_sync

        self._redis = connect_sync(url, mode=mode)

    def load(self) -> list[KeyRecord]:
        raw: dict[bytes, bytes] = self._redis.hgetall(REDIS_HASH)
        return [KeyRecord(**json.loads(v)) for v in raw.values()]

    def save(self, record: KeyRecord) -> None:
        self._redis.hset(REDIS_HASH, record.name, json.dumps(asdict(record)))

    def delete(self, name: str) -> bool:
        return bool(self._redis.hdel(REDIS_HASH, name))


def default_keys_file() -> Path:
    configured = os.environ.get("CCGATE_KEYS_FILE")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "ccgate" / "keys.json"


def open_store(redis_url: str | None, mode: str = "standalone") -> KeyStore:
    return RedisKeyStore(redis_url, mode) if redis_url else FileKeyStore(default_keys_file())


def file_is_private(path: Path) -> bool:
    return not path.exists() or stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def has_keys(settings: Settings) -> bool:
    """Whether any team key guards the edge: CCGATE_API_KEYS, or the key store holds one."""
    if settings.api_keys():
        return True
    try:
        return bool(open_store(settings.redis_url, settings.redis_mode).load())
    except Exception:
        return False
