"""A fake OpenAI-compatible transcription server (`POST /v1/audio/transcriptions`, multipart:
`file`, `model`, `response_format`), as whisper.cpp's server, speaches or OpenAI answer it. It
cannot recognise speech: it answers the transcript the test scripts — but only for a real
audio file (ffprobe must read it; its codec and duration are recorded), and only with the
right key."""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.server import ServedApp


@dataclass
class Heard:
    model: str
    filename: str
    codec: str
    container: str
    duration: float


def probe(data: bytes) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile() as audio:
        audio.write(data)
        audio.flush()
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", audio.name],
            capture_output=True,
            check=False,
        )
    return dict(json.loads(out.stdout or b"{}")) if out.returncode == 0 else {}


class FakeTranscription(ServedApp):
    def __init__(self, transcript: str, api_key: str) -> None:
        self.transcript, self.api_key = transcript, api_key
        self.heard: list[Heard] = []
        self.app = Starlette(
            routes=[Route("/v1/audio/transcriptions", self._transcribe, methods=["POST"])]
        )

    @property
    def url(self) -> str:
        return self.server_url + "/v1"

    async def _transcribe(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            error = {"message": "Incorrect API key provided", "type": "invalid_request_error"}
            return JSONResponse({"error": error}, status_code=401)
        form = await request.form()
        upload, model = form.get("file"), form.get("model")
        if not isinstance(upload, UploadFile) or not isinstance(model, str) or not model:
            error = {"message": "file and model are required", "type": "invalid_request_error"}
            return JSONResponse({"error": error}, status_code=400)
        info = probe(await upload.read())
        audio = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
        if not audio:
            error = {"message": "could not decode the audio file", "type": "invalid_request_error"}
            return JSONResponse({"error": error}, status_code=400)
        self.heard.append(
            Heard(
                model,
                upload.filename or "",
                audio[0].get("codec_name", ""),
                info.get("format", {}).get("format_name", ""),
                float(info.get("format", {}).get("duration") or 0),
            )
        )
        return JSONResponse({"text": self.transcript})
