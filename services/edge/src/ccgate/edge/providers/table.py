"""The providers as data: where they live, which key they need, how they differ.

Every OpenAI-compatible backend goes through the one adapter in `openai_compat.py`; what
differs between them is only what is written here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ccgate.edge.translate.target import Quirks
from ccgate.shared.settings import ProviderSettings, Settings

ApiFormat = Literal["openai", "anthropic"]


@dataclass(frozen=True)
class ProviderSpec:
    id: str
    default_base_url: str
    needs_key: bool
    quirks: Quirks
    default_format: ApiFormat = "openai"
    # Base URL of the native Anthropic Messages endpoint, when it differs from the OpenAI one.
    anthropic_base_url: str | None = None
    # OpenAI path below the base URL (Ollama's base URL is the server root, as in free-claude-code).
    openai_path: str = "/chat/completions"
    http2: bool = False

    @property
    def key_setting(self) -> str:
        return f"{self.id.upper()}_API_KEY"

    @property
    def url_setting(self) -> str:
        return f"{self.id.upper()}_BASE_URL"


PROVIDERS: dict[str, ProviderSpec] = {
    spec.id: spec
    for spec in (
        ProviderSpec(
            "nvidia_nim",
            "https://integrate.api.nvidia.com/v1",
            needs_key=True,
            quirks=Quirks(reasoning_control="chat_template_kwargs", supports_top_k=False),
            http2=True,
        ),
        ProviderSpec(
            "openrouter",
            "https://openrouter.ai/api/v1",
            needs_key=True,
            quirks=Quirks(reasoning_control="openrouter"),
            http2=True,
        ),
        ProviderSpec(
            "deepseek",
            "https://api.deepseek.com/v1",
            needs_key=True,
            quirks=Quirks(
                reasoning_history="reasoning_content",
                supports_top_k=False,
                supports_json_schema=False,  # json_object only (api-docs.deepseek.com, JSON Output)
            ),
            anthropic_base_url="https://api.deepseek.com/anthropic",
            http2=True,
        ),
        ProviderSpec(
            "lmstudio",
            "http://localhost:1234/v1",
            needs_key=False,
            quirks=Quirks(reasoning_control="chat_template_kwargs"),
        ),
        ProviderSpec(
            "llamacpp",
            "http://localhost:8080/v1",
            needs_key=False,
            quirks=Quirks(reasoning_control="chat_template_kwargs", named_tool_choice=False),
        ),
        ProviderSpec(
            "ollama",
            "http://localhost:11434",
            needs_key=False,
            quirks=Quirks(reasoning_control="reasoning_effort"),
            openai_path="/v1/chat/completions",
        ),
        ProviderSpec(
            "openai_compat",
            "http://localhost:8000/v1",
            needs_key=False,
            quirks=Quirks(reasoning_control="chat_template_kwargs"),
        ),
    )
}

ALIASES = {
    "open_router": "openrouter",
    "lm_studio": "lmstudio",
    "llama_cpp": "llamacpp",
    "nim": "nvidia_nim",
}


@dataclass(frozen=True)
class Provider:
    """A provider as configured: the spec plus what the operator set."""

    spec: ProviderSpec
    settings: ProviderSettings
    base_url: str
    api_format: ApiFormat

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def url(self) -> str:
        if self.api_format == "anthropic":
            base = self.settings.base_url or self.spec.anthropic_base_url or self.base_url
            base = base.rstrip("/")
            return base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        return self.base_url + self.spec.openai_path

    def missing(self) -> str | None:
        """What the operator still has to set, if anything."""
        if self.spec.needs_key and self.settings.api_key is None:
            return f"{self.spec.key_setting} is not set"
        return None

    def auth_headers(self) -> dict[str, str]:
        key = self.settings.api_key.get_secret_value() if self.settings.api_key else None
        if key is None:
            return {}
        if self.api_format == "anthropic":
            return {"x-api-key": key, "authorization": f"Bearer {key}"}
        return {"authorization": f"Bearer {key}"}


def configure(provider_id: str, settings: Settings) -> Provider:
    spec = PROVIDERS[provider_id]
    ps = settings.provider(provider_id)
    base = (ps.base_url or spec.default_base_url).rstrip("/")
    if provider_id == "ollama" and base.endswith("/v1"):
        base = base[: -len("/v1")]  # both spellings of OLLAMA_BASE_URL work
    return Provider(spec, ps, base, ps.api_format or spec.default_format)


def configure_all(settings: Settings) -> dict[str, Provider]:
    return {pid: configure(pid, settings) for pid in PROVIDERS}
