"""Settings from the environment and `.env`, under the names free-claude-code users already have.

Provider settings follow one pattern, `<PROVIDER>_API_KEY`, `<PROVIDER>_BASE_URL`,
`<PROVIDER>_RATE_LIMIT`, ...; they are read through `provider()` rather than spelled out as
forty fields, so adding a provider is one line in the provider table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from msgspec import Meta

from ccgate.shared.env_source import environment, load
from ccgate.shared.secret import SecretStr

__all__ = ["DEFAULT_MODEL", "PROVIDER_IDS", "ProviderSettings", "SecretStr", "Settings"]

PROVIDER_IDS: tuple[str, ...] = (
    "nvidia_nim",
    "openrouter",
    "deepseek",
    "lmstudio",
    "llamacpp",
    "ollama",
    "openai_compat",
)

# free-claude-code spellings that differ from ours.
_PROVIDER_ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "lmstudio": ("LMSTUDIO", "LM_STUDIO"),
}

DEFAULT_MODEL = "ollama/qwen2.5-coder:7b"


@dataclass(frozen=True)
class ProviderSettings:
    """What the operator set for one provider; unset numbers fall back to the PROVIDER_* defaults."""

    id: str
    api_key: SecretStr | None
    base_url: str | None
    api_format: Literal["openai", "anthropic"] | None
    rate_limit: int
    rate_window: float
    max_concurrency: int
    daily_limit: int | None


@dataclass(kw_only=True)
class Settings:
    """Every setting, under its environment name lower-cased. `Settings.from_env()` reads them
    (environment over `.env`); `Settings(...)` alone takes only what it is given."""

    # Routing: `provider/model`, a comma list is a fallback chain.
    model: str = DEFAULT_MODEL
    model_opus: str | None = None
    model_sonnet: str | None = None
    model_haiku: str | None = None

    enable_opus_thinking: bool = True
    enable_sonnet_thinking: bool = True
    enable_haiku_thinking: bool = True

    # Default quota for every provider (per-provider overrides via <PROVIDER>_RATE_LIMIT ...).
    provider_rate_limit: int = 40
    provider_rate_window: float = 60.0
    provider_max_concurrency: int = 5
    limiter_queue_timeout: float = 60.0
    limiter_failure_mode: Literal["local", "open", "closed"] = "local"
    limiter_replicas: int = 1  # in `local` failure mode each replica enforces 1/N of the quota
    limiter_lease_ttl: float = 30.0

    # Upstream timeouts, seconds (free-claude-code names).
    http_connect_timeout: float = 10.0
    http_read_timeout: float = 120.0
    http_write_timeout: float = 10.0
    http_first_byte_timeout: float = 120.0
    ping_interval: float = 10.0
    http_max_connections: int = (
        4096  # per provider; the limiter's concurrency cap is the real bound
    )
    # A non-streaming client request makes one non-streaming upstream call (OpenAI format); its
    # whole answer must then arrive within HTTP_FIRST_BYTE_TIMEOUT + HTTP_READ_TIMEOUT.
    ccgate_non_streaming_upstream: bool = True

    # Quota savers: answered locally, never spending a provider request.
    enable_network_probe_mock: bool = True
    enable_title_generation_skip: bool = True
    fast_prefix_detection: bool = True

    # Context windows and model discovery (issue 15). A tier's window in tokens; unset =
    # read from the backend where it says (Ollama, LM Studio, OpenRouter, llama.cpp).
    model_opus_context_window: int | None = None
    model_sonnet_context_window: int | None = None
    model_haiku_context_window: int | None = None
    model_context_window: int | None = None
    model_long_context: str | None = None  # provider/model for a prompt over its window
    # Report usage scaled so that Claude Code's own auto-compaction (which assumes a Claude
    # window) fires when the backend is CONTEXT_COMPACT_AT full.
    context_usage_scaling: bool = True
    context_compact_at: Annotated[float, Meta(gt=0.1, le=1.0)] = 0.8
    claude_code_context_window: int = 1_000_000  # what the pinned CLI assumes for Claude ids
    discovery_extra_models: str = ""  # comma list of provider/model also listed in /v1/models

    # Web search on any backend (issue 15): the gateway runs Anthropic's web_search tool.
    web_search_provider: Literal["off", "searxng", "brave", "tavily"] = "off"
    web_search_max_results: int = 5
    searxng_base_url: str | None = None
    brave_search_api_key: SecretStr | None = None
    brave_search_base_url: str = "https://api.search.brave.com/res/v1"
    tavily_api_key: SecretStr | None = None
    tavily_base_url: str = "https://api.tavily.com"

    # Shared state (limiter, team keys, usage, tool-span index, the bot's queue and sessions).
    # REDIS_MODE: standalone | cluster (REDIS_URL = any node) | sentinel (REDIS_URL =
    # redis+sentinel://host1:26379,host2:26379/<master-name>). The bot's queue (arq) cannot run
    # on a cluster: give it BOT_REDIS_URL (standalone, or a redis+sentinel:// URL).
    redis_url: str | None = None
    redis_mode: Literal["standalone", "cluster", "sentinel"] = "standalone"
    bot_redis_url: str | None = None

    ccgate_api_keys: SecretStr | None = None
    ccgate_trace_content: bool = False
    ccgate_admin_port: int | None = None  # serve /metrics, /readyz, /ccgate/* only on this port
    # The status page (/ccgate/): failed tool calls link to JAEGER_UI_URL/trace/<id>.
    jaeger_ui_url: str | None = None
    log_level: str = "INFO"
    log_json: bool = False

    # Bot
    messaging_platform: str = "none"
    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    allowed_telegram_user_id: str | None = None
    discord_bot_token: SecretStr | None = None
    allowed_discord_user_id: str | None = None
    discord_api_base_url: str = "https://discord.com/api/v10"
    # Server channels where every message of an allowed user is a task; elsewhere in a server
    # the bot answers only when mentioned (DMs and the bot's threads always).
    discord_channels: str = ""
    claude_workspace: str = "./workspaces"
    ccgate_edge_url: str = "http://127.0.0.1:8082"
    claude_bin: str | None = None
    ccgate_bot_api_key: SecretStr | None = None  # the bot's key for the edge, when it has keys
    bot_worker_concurrency: int = 2  # Claude Code processes per worker
    bot_job_timeout: float = 1800.0  # seconds a single run may take
    bot_user_queue_cap: int = 3  # queued or running jobs per chat
    # ask: what BOT_ALLOWED_TOOLS does not cover is asked in the chat (buttons), unanswered
    # after BOT_APPROVAL_TIMEOUT seconds = denied; or a Claude Code mode (acceptEdits, plan, …)
    bot_permission_mode: str = "ask"
    bot_approval_timeout: float = 600.0
    bot_allowed_tools: str = "Read,Glob,Grep,LS,Bash(git status:*),Bash(git diff:*),Bash(ls:*)"
    bot_skip_permissions: bool = False
    # Voice notes: an OpenAI-compatible /v1/audio/transcriptions server (whisper.cpp, speaches,
    # NIM, OpenAI, …); unset = voice notes are refused with a hint. Files sent to the bot land
    # in the user's project (uploads/), up to BOT_UPLOAD_MAX_BYTES each.
    transcription_base_url: str | None = None
    transcription_api_key: SecretStr | None = None
    transcription_model: str = "whisper-1"
    bot_upload_max_bytes: int = 20 * 1024 * 1024

    # The whole environment (upper-cased names), for the pattern-named provider settings; an
    # init field so that `dataclasses.replace` keeps it.
    _raw: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
        """The settings of this process: `overrides`, else the environment, else `env_file`,
        else the defaults. A value of the wrong type raises ValueError naming the variable."""
        env = environment(env_file)
        settings = load(cls, env, overrides)
        settings._raw = env
        return settings

    def _lookup(self, provider: str, suffix: str) -> str | None:
        for prefix in _PROVIDER_ENV_ALIASES.get(provider, (provider.upper(),)):
            value = self._raw.get(f"{prefix}_{suffix}")
            if value is not None and value.strip():
                return value.strip().strip('"').strip("'")
        return None

    def provider(self, provider: str) -> ProviderSettings:
        def number(suffix: str, default: float) -> float:
            raw = self._lookup(provider, suffix)
            if raw is None:
                return default
            try:
                return float(raw)
            except ValueError as exc:
                raise ValueError(
                    f"{provider.upper()}_{suffix} must be a number, got {raw!r}"
                ) from exc

        key = self._lookup(provider, "API_KEY")
        fmt = self._lookup(provider, "API_FORMAT")
        if fmt is not None and fmt not in ("openai", "anthropic"):
            raise ValueError(
                f"{provider.upper()}_API_FORMAT must be 'openai' or 'anthropic', got {fmt!r}"
            )
        daily = self._lookup(provider, "DAILY_LIMIT")
        return ProviderSettings(
            id=provider,
            api_key=SecretStr(key) if key else None,
            base_url=self._lookup(provider, "BASE_URL"),
            api_format=fmt,  # type: ignore[arg-type]
            rate_limit=int(number("RATE_LIMIT", self.provider_rate_limit)),
            rate_window=number("RATE_WINDOW", self.provider_rate_window),
            max_concurrency=int(number("MAX_CONCURRENCY", self.provider_max_concurrency)),
            daily_limit=int(daily) if daily else None,
        )

    def messaging_platforms(self) -> set[str]:
        """`MESSAGING_PLATFORM` as a set: `both` is telegram and discord, `none` is nothing."""
        raw = self.messaging_platform.lower().replace("both", "telegram,discord")
        return {p.strip() for p in raw.split(",") if p.strip() and p.strip() != "none"}

    def bot_redis(self) -> tuple[str, Literal["standalone", "sentinel"]]:
        """The bot's Redis (URL, mode): BOT_REDIS_URL, else REDIS_URL unless that is a cluster."""
        url = self.bot_redis_url or self.redis_url
        if not url:
            raise ValueError("set REDIS_URL (the bot's jobs and chat sessions live in Redis)")
        if not self.bot_redis_url and self.redis_mode == "cluster":
            raise ValueError(
                "REDIS_MODE=cluster: the bot's queue (arq) uses multi-key commands a Redis "
                "Cluster refuses; set BOT_REDIS_URL to a standalone Redis or a "
                "redis+sentinel:// URL"
            )
        scheme = url.partition("://")[0].lower()
        return url, "sentinel" if scheme.endswith("+sentinel") else "standalone"

    def api_keys(self) -> dict[str, str]:
        """`CCGATE_API_KEYS` as name → key. Entries without a name get `key1`, `key2`, ..."""
        if self.ccgate_api_keys is None:
            return {}
        keys: dict[str, str] = {}
        for i, entry in enumerate(self.ccgate_api_keys.get_secret_value().split(","), start=1):
            entry = entry.strip()
            if not entry:
                continue
            name, sep, key = entry.partition(":")
            keys[name.strip() if sep else f"key{i}"] = key.strip() if sep else name
        return keys
