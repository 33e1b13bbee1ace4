"""Build the two images and run deploy/docker-compose.yml as one compose project of our own.

Stand-ins, because their images cannot be built from Debian packages here (no registry):
Ollama is replaced by the scripted OpenAI-compatible backend (tests/fakes/backend.py) and
Jaeger by an OTLP/HTTP receiver (tests/fakes/otlp.py); with the fake Telegram they run on this
host, bound to the engine's bridge gateway address, which the containers reach as
host.docker.internal. Everything else is the compose file as shipped: redis, two edges, nginx,
the worker and the bot, built from the Dockerfile with BuildKit.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.deploy.engine import Engine

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
SERVICES = ["redis", "edge-1", "edge-2", "proxy", "worker", "bot"]
IMAGES = {"runtime": "ccgate-stacktest:runtime", "worker": "ccgate-stacktest:worker"}
HOST = "host.docker.internal"


def extra_ca() -> Path | None:
    """The host's CA bundle, for package downloads inside the build (this machine's egress
    re-signs TLS): SSL_CERT_FILE, or Debian's bundle."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def build_images(engine: Engine) -> None:
    """Base images first (offline stand-ins where the real ones are absent), then both targets.
    BuildKit's layer cache lives in the engine's data root, so an unchanged tree rebuilds in
    seconds."""
    subprocess.run(
        [str(ROOT / "deploy" / "images" / "build-base-images.sh")],
        env=engine.env(DOCKER=engine.docker),
        check=True,
        timeout=1800,
    )
    secret = extra_ca()
    for target, tag in IMAGES.items():
        args = ["build", "--target", target, "--tag", tag, "--progress", "plain"]
        if secret is not None:
            args += ["--secret", f"id=extra_ca,src={secret}"]
        result = engine.run(*args, str(ROOT), check=False, timeout=2400)
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


def gateway(engine: Engine) -> str:
    """The engine's default bridge address: on this host, and reachable from containers."""
    out = engine.run("network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}").stdout
    config = json.loads(out)[0]
    if config.get("Gateway"):
        return str(config["Gateway"])
    # A daemon on its very first start listed the subnet alone (seen here on a fresh data
    # root); the bridge then takes the subnet's first address, as Docker's IPAM always does.
    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


@dataclass
class Project:
    engine: Engine
    name: str
    files: list[Path]

    def compose(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        command = [self.engine.compose, "-p", self.name]
        for file in self.files:
            command += ["-f", str(file)]
        result = subprocess.run(
            [*command, "--profile", "bot", *args],
            cwd=ROOT,
            env=self.engine.env(
                CCGATE_IMAGE=IMAGES["runtime"], CCGATE_WORKER_IMAGE=IMAGES["worker"]
            ),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert result.returncode == 0, f"compose {args[0]}: {result.stdout}{result.stderr}"
        return result.stdout + result.stderr

    def container(self, service: str) -> dict[str, Any]:
        ids = self.compose("ps", "-q", service).split()
        data: list[dict[str, Any]] = json.loads(self.engine.run("inspect", ids[0]).stdout)
        return data[0]

    def exec(self, service: str, *argv: str) -> subprocess.CompletedProcess[str]:
        cid = self.container(service)["Id"]
        return self.engine.run("exec", cid, *argv, check=False, timeout=120)

    def leftovers(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.name}"
        found: list[str] = []
        for kind in ("container", "volume", "network"):
            args = [kind, "ls", "-q", "--filter", label]
            if kind == "container":
                args = ["ps", "-aq", "--filter", label]
            found += [f"{kind} {x}" for x in self.engine.run(*args).stdout.split()]
        return found


def write_override(
    path: Path, env: dict[str, str], bot_env: dict[str, str], proxy_port: int
) -> None:
    """The test's compose override: settings of its own, the stand-ins reachable, a free port.
    Written by hand for Compose's `!reset` / `!override` tags, which PyYAML cannot emit."""

    def environment(values: dict[str, str]) -> list[str]:
        return ["    environment:", *(f"      {k}: {json.dumps(v)}" for k, v in values.items())]

    reach = f'    extra_hosts: ["{HOST}:host-gateway"]'
    lines = ["services:"]
    for edge in ("edge-1", "edge-2"):
        # Ollama is not started (see the module's docstring): the edges wait for Redis only.
        lines += [f"  {edge}:", "    depends_on: !reset", "      redis:"]
        lines += ["        condition: service_healthy", *environment(env), reach]
    lines += ["  worker:", *environment(env), reach]
    lines += ["  bot:", *environment({**env, **bot_env}), reach]
    lines += ["  proxy:", f'    ports: !override ["127.0.0.1:{proxy_port}:8082"]']
    path.write_text("\n".join(lines) + "\n")


@contextlib.contextmanager
def project(engine: Engine, override_file: Path) -> Iterator[Project]:
    """A compose project with a name of its own; down with its volumes and networks at the end,
    whatever happened, and nothing else on the engine touched."""
    stack = Project(engine, f"ccgate-test-{uuid.uuid4().hex[:8]}", [COMPOSE, override_file])
    try:
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)
