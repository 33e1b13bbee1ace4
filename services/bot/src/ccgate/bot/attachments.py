"""What people send besides text: voice notes, transcribed through an OpenAI-compatible
`/v1/audio/transcriptions` endpoint, and files, saved into the user's project under
`uploads/` — size-capped, the name sanitised, never outside the workspace."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import httpx

from ccgate.shared.settings import Settings

UPLOADS = "uploads"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class AttachmentError(ValueError):
    """Something the person should be told (too big, no transcription server, …)."""


def transcriptions_url(base: str) -> str:
    """TRANSCRIPTION_BASE_URL with or without its /v1 (both ways are common in the wild)."""
    base = base.rstrip("/")
    return base + ("/audio/transcriptions" if base.endswith("/v1") else "/v1/audio/transcriptions")


async def transcribe(settings: Settings, audio: bytes, filename: str, mime: str) -> str:
    if not settings.transcription_base_url:
        raise AttachmentError(
            "Voice notes need a transcription server: set TRANSCRIPTION_BASE_URL (any "
            "OpenAI-compatible /v1/audio/transcriptions endpoint)."
        )
    key = settings.transcription_api_key
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
    try:
        async with httpx.AsyncClient(timeout=120, trust_env=False) as http:
            response = await http.post(
                transcriptions_url(settings.transcription_base_url),
                headers=headers,
                data={"model": settings.transcription_model, "response_format": "json"},
                files={"file": (filename, audio, mime)},
            )
    except httpx.HTTPError as exc:
        raise AttachmentError(
            f"The transcription server did not answer ({type(exc).__name__})."
        ) from None
    if response.status_code != 200:
        raise AttachmentError(f"The transcription server answered {response.status_code}.")
    try:
        text = str(response.json()["text"]).strip()
    except (ValueError, KeyError, TypeError):
        raise AttachmentError("The transcription server's answer had no text.") from None
    if not text:
        raise AttachmentError("Nothing could be made out in that voice note.")
    return text


def safe_name(name: str) -> str:
    """A file name that is one plain path component: no directories, no dots in front, no
    control or shell characters, at most 100 characters (the extension kept)."""
    name = unicodedata.normalize("NFKD", Path(name.replace("\\", "/")).name)
    name = name.encode("ascii", "ignore").decode()
    name = _UNSAFE.sub("_", name).strip("._") or "file"
    stem, dot, ext = name.rpartition(".")
    if dot and len(ext) <= 10 and stem:
        return stem[: 100 - len(ext) - 1] + "." + ext
    return name[:100]


def check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        shown = f"{max_bytes / 2**20:g} MB" if max_bytes >= 2**20 else f"{max_bytes / 1024:g} KB"
        raise AttachmentError(f"That file is over {shown} (BOT_UPLOAD_MAX_BYTES).")


def save_upload(project: Path, name: str, data: bytes, max_bytes: int) -> Path:
    """Saves `data` as uploads/<safe name> in the project (a number added if the name is
    taken); the path relative to the project."""
    check_size(len(data), max_bytes)
    folder = project / UPLOADS
    folder.mkdir(exist_ok=True)
    if folder.is_symlink() or not folder.resolve().is_relative_to(project.resolve()):
        raise AttachmentError("The uploads folder leads outside your workspace.")
    clean = safe_name(name)
    stem, dot, ext = clean.rpartition(".") if "." in clean else (clean, "", "")
    target = folder / clean
    for n in range(1, 1000):
        try:
            with open(target, "xb") as out:  # never over an existing file, never via a symlink
                out.write(data)
            return target.relative_to(project)
        except FileExistsError:
            target = folder / f"{stem}-{n}{dot}{ext}"
    raise AttachmentError("Too many files of that name in uploads/.")


def prompt_with_files(text: str, files: list[str]) -> str:
    if not files:
        return text
    listed = ", ".join(files)
    return (
        f"{text}\n\n(Attached, in the project: {listed})"
        if text
        else f"Files attached in the project: {listed}"
    )
