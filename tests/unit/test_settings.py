"""Settings as free-claude-code users write them: environment over `.env`, any case, the
boolean spellings they use, blank meaning unset, and a bad value named by its variable."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ccgate.shared.settings import SecretStr, Settings


def test_environment_wins_over_the_env_file_and_names_are_case_insensitive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        'MODEL_OPUS="nvidia_nim/big"\nprovider_rate_limit=7\nMODEL_HAIKU=ollama/from-file\n'
    )
    monkeypatch.setenv("MODEL_HAIKU", "ollama/from-env")
    settings = Settings.from_env(env_file)
    assert settings.model_opus == "nvidia_nim/big"
    assert settings.provider_rate_limit == 7
    assert settings.model_haiku == "ollama/from-env"
    assert Settings.from_env(None).provider_rate_limit == 40  # the file only when asked for


def test_overrides_win_and_unknown_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PING_INTERVAL", "3")
    assert Settings.from_env(None, ping_interval=5).ping_interval == 5.0
    with pytest.raises(TypeError, match="ping_intervall"):
        Settings.from_env(None, ping_intervall=5)


@pytest.mark.parametrize(
    ("raw", "value"),
    [("true", True), ("False", False), ("1", True), ("0", False), ("yes", True), ("off", False)],
)
def test_boolean_spellings(raw: str, value: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENABLE_OPUS_THINKING", raw)
    assert Settings.from_env(None).enable_opus_thinking is value


def test_blank_optional_settings_are_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_SONNET", "  ")
    monkeypatch.setenv("MODEL_CONTEXT_WINDOW", "")
    settings = Settings.from_env(None)
    assert settings.model_sonnet is None
    assert settings.model_context_window is None


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("PROVIDER_RATE_LIMIT", "forty", r"PROVIDER_RATE_LIMIT='forty': Expected `int`"),
        ("ENABLE_HAIKU_THINKING", "maybe", r"ENABLE_HAIKU_THINKING='maybe': Expected `bool`"),
        ("LIMITER_FAILURE_MODE", "sometimes", r"LIMITER_FAILURE_MODE='sometimes': Invalid enum"),
        ("CONTEXT_COMPACT_AT", "1.5", r"CONTEXT_COMPACT_AT='1.5': Expected `float` <= 1.0"),
    ],
)
def test_a_bad_value_is_named_by_its_variable(
    name: str, raw: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(ValueError, match=message):
        Settings.from_env(None)


def test_secrets_never_show_themselves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:secret-token")
    monkeypatch.setenv("NVIDIA_NIM_API_KEY", "nvapi-secret")
    settings = Settings.from_env(None)
    assert isinstance(settings.telegram_bot_token, SecretStr)
    assert settings.telegram_bot_token.get_secret_value() == "123:secret-token"
    key = settings.provider("nvidia_nim").api_key
    assert key is not None and key.get_secret_value() == "nvapi-secret"
    shown = f"{settings!r} {settings.telegram_bot_token} {settings.provider('nvidia_nim')!r}"
    assert "secret" not in shown
    assert "nvapi" not in shown


def test_provider_settings_follow_the_pattern_and_free_claude_code_spellings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LM_STUDIO_BASE_URL", "http://127.0.0.1:1234/v1")
    monkeypatch.setenv("DEEPSEEK_RATE_LIMIT", "3")
    monkeypatch.setenv("PROVIDER_MAX_CONCURRENCY", "9")
    settings = Settings.from_env(None)
    assert settings.provider("lmstudio").base_url == "http://127.0.0.1:1234/v1"
    deepseek = settings.provider("deepseek")
    assert (deepseek.rate_limit, deepseek.max_concurrency) == (3, 9)
    monkeypatch.setenv("DEEPSEEK_RATE_LIMIT", "many")
    with pytest.raises(ValueError, match="DEEPSEEK_RATE_LIMIT must be a number"):
        Settings.from_env(None).provider("deepseek")


def test_a_changed_copy_keeps_the_provider_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-1")
    copy = replace(Settings.from_env(None), model="openrouter/x")
    key = copy.provider("openrouter").api_key
    assert key is not None and key.get_secret_value() == "sk-or-1"


def test_a_bad_secret_is_named_but_never_shown() -> None:
    with pytest.raises(ValueError, match=r"^TELEGRAM_BOT_TOKEN: Expected") as caught:
        Settings.from_env(None, telegram_bot_token=918273645)
    assert "918273645" not in str(caught.value)
