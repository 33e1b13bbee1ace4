"""Install without cloning: the workspace builds as wheels, `uv tool install` of them gives a
working `ccgate` on the machine's Python — `ccgate doctor` and `ccgate serve` run from it.

The wheels come from this checkout; their dependencies from uv's cache (the versions pinned in
uv.lock, as constraints), so nothing but the package registry's index is asked."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import httpx

from tests.fakes.backend import FakeBackend, Turn
from tests.fakes.server import free_port

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"ccgate", "ccgate_bot", "ccgate_edge", "ccgate_limiter", "ccgate_shared"}


def uv() -> str:
    return shutil.which("uv") or str(Path(sysconfig.get_path("scripts")) / "uv")


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_wheels_install_into_a_fresh_tool_env_and_serve(
    tmp_path: Path, backend: FakeBackend
) -> None:
    dist, tools = tmp_path / "dist", tmp_path / "tools"
    env = {
        **os.environ,
        "UV_PYTHON": os.path.realpath(sys.executable),  # the machine's 3.11, never a download
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_TOOL_DIR": str(tools / "envs"),
        "UV_TOOL_BIN_DIR": str(tools / "bin"),
    }
    built = run(
        uv(), "build", "--offline", "--all-packages", "--wheel", "-o", str(dist), env=env, cwd=ROOT
    )
    assert built.returncode == 0, built.stderr
    assert {w.name.split("-")[0] for w in dist.glob("*.whl")} == PACKAGES
    pins = tmp_path / "constraints.txt"
    exported = run(
        uv(), "export", "--frozen", "--no-dev", "--all-packages", "--no-emit-workspace",
        "--no-hashes", "-o", str(pins), env=env, cwd=ROOT,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    # The README's command, run from outside any clone.
    installed = run(
        uv(), "tool", "install", "--find-links", str(dist), "-c", str(pins), "ccgate",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    ccgate = tools / "bin" / "ccgate"
    assert str(ROOT) not in ccgate.read_text()  # its own environment, not this checkout's

    user_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "MODEL": "openai_compat/fake-model",
        "OPENAI_COMPAT_BASE_URL": backend.url + "/v1",
    }
    doctor = run(str(ccgate), "doctor", env=user_env, cwd=tmp_path)
    assert "[ok] configuration parses" in doctor.stdout, doctor.stdout + doctor.stderr
    assert f"[ok] openai_compat: {backend.url}/v1/models answers" in doctor.stdout, doctor.stdout

    port = free_port()
    serve = subprocess.Popen(
        [str(ccgate), "serve", "--port", str(port)],
        env=user_env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert serve.poll() is None and time.monotonic() < deadline, (
                "ccgate serve did not start"
            )
            time.sleep(0.2)
        backend.script(Turn(text="served from the installed wheel"))
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/messages",
            json={"model": "claude-sonnet-4-8", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.json()["content"][0]["text"] == "served from the installed wheel"
        status = httpx.get(f"http://127.0.0.1:{port}/ccgate/", timeout=30)  # the packaged template
        assert status.status_code == 200 and "openai_compat/fake-model" in status.text
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=30)
