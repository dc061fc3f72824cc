"""``asr serve``: an HTTP API on one loaded model, compatible with OpenAI's audio transcription API.

Routes:

- ``POST /v1/audio/transcriptions``: OpenAI's endpoint (multipart ``file``; ``response_format`` json, text,
  srt, vtt or verbose_json; ``timestamp_granularities[]=word``). Existing OpenAI clients work unchanged.
- ``POST /v1/asr/transcriptions``: ours, for what the CLI can do: ``decoder=beam`` (with the LM and lexicon
  the server was started with), ``hotword=WORD[:BONUS]`` (repeatable), ``nbest``, ``timestamps``.
- ``GET /health``, ``GET /v1/models``, and the web page at ``/``.

Limits: uploads over ``max_upload_mb`` or audio over ``max_duration_s`` are 413; unreadable audio, and a
setting or hotword the decoder cannot use, are 400 with the one-line message the CLI gives; a full queue is
503 with Retry-After; a body that stalls for ``body_timeout_s`` is 408 and a client that disconnects
mid-upload is dropped. An upload lives in a temporary folder that is removed when its request ends, whatever
happens; no path is ever taken from a client. The server's beam search (``ServeSettings.beam``) is built at
start, so an LM or lexicon that cannot be used stops it there.
"""

from __future__ import annotations

import asyncio
import hmac
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asr.audio import AudioError, audio_duration
from asr.decoding import DecoderConfig, DecoderError
from asr.decoding.hotwords import check_hotwords
from asr.errors import UsageError
from asr.inference import Transcriber
from asr.serve.batcher import Batcher, QueueFull
from asr.serve.responses import OPENAI_FORMATS, openai_body, rich_body
from asr.text import parse_hotword

WEB = Path(__file__).resolve().parent.parent / "web"


@dataclass(frozen=True)
class ServeSettings:
    """How the server runs; every limit is per request unless it says otherwise."""

    model_name: str = "asr"
    api_key: str | None = None  # Bearer token required on /v1/* when set
    max_upload_mb: float = 25.0  # OpenAI's own limit
    max_duration_s: float = 3600.0
    max_queue: int = 64  # requests waiting for the model, server-wide
    max_wait_s: float = 0.05  # how long the batcher waits for more requests
    batch_seconds: float = 200.0  # audio seconds gathered into one batch
    body_timeout_s: float = 30.0  # a client sending nothing for this long is cut off
    beam: DecoderConfig | None = None  # beam search for decoder=beam (LM, lexicon, weights)


class _TooLarge(Exception):
    pass


class _Stalled(Exception):
    pass


class BodyLimit:
    """ASGI middleware: refuses a declared body over the limit at once, and stops reading a body that
    grows past it or stalls (the endpoint turns the exceptions into 413 and 408)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _error(413, f"upload of {int(length)} bytes is over the limit of {self.max_bytes}")(
                scope, receive, send
            )
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except asyncio.TimeoutError:
                raise _Stalled from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        await self.app(scope, limited, send)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(
        {"error": {"message": message, "type": kind, "code": status}}, status, headers=headers
    )


def create_app(transcriber: Transcriber, settings: ServeSettings = ServeSettings()) -> FastAPI:
    """The FastAPI application serving ``transcriber``. Builds ``settings.beam``'s beam search now, kept for
    the requests that use it: :class:`DecoderError` for an LM or lexicon that cannot be used."""
    if settings.beam is not None:
        transcriber.prepare(settings.beam)
    batcher = Batcher(transcriber, settings.max_queue, settings.max_wait_s, settings.batch_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="asr", version="1", docs_url="/docs", redoc_url=None, lifespan=lifespan)
    app.state.batcher = batcher
    app.add_middleware(
        BodyLimit, max_bytes=int(settings.max_upload_mb * 2**20), timeout_s=settings.body_timeout_s
    )

    def authorised(request: Request) -> bool:
        if settings.api_key is None:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {settings.api_key}".encode())

    async def run(request: Request, decoder_for: Any) -> tuple[Any, dict, float] | Response:
        """Read the form, check the upload, queue it: (transcript, form fields, duration) or an error."""
        if not authorised(request):
            return _error(401, "missing or wrong API key (Authorization: Bearer KEY)")
        try:
            async with request.form(max_files=1, max_fields=64) as form:
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    return _error(400, "no audio: send the file as the multipart field 'file'")
                fields = {k: form.getlist(k) for k in form if k != "file"}
                with tempfile.TemporaryDirectory(prefix="asr-serve-") as tmp:
                    name = Path(upload.filename or "upload").name
                    path = Path(tmp) / f"upload{Path(name).suffix[:16]}"
                    with path.open("wb") as f:
                        while chunk := await upload.read(1 << 20):
                            f.write(chunk)
                    try:
                        decoder, timestamps = decoder_for(fields)
                    except (DecoderError, UsageError, ValueError) as e:
                        return _error(400, str(e))
                    try:
                        duration = await asyncio.to_thread(audio_duration, path)
                    except AudioError as e:
                        return _error(400, str(e).replace(str(path), name))
                    if duration > settings.max_duration_s:
                        return _error(
                            413,
                            f"{name}: {duration:.1f} s of audio, over the limit of "
                            f"{settings.max_duration_s:g} s",
                        )
                    try:
                        result = await batcher.transcribe(path, duration, decoder, timestamps)
                    except QueueFull:
                        return _error(503, "the server is busy: try again shortly", {"Retry-After": "1"})
                    if result.text is None:
                        return _error(400, (result.error or "unreadable audio").replace(str(path), name))
                    return result, fields, duration
        except _TooLarge:
            return _error(413, f"upload over the limit of {settings.max_upload_mb:g} MB")
        except _Stalled:
            return _error(408, f"no data from the client for {settings.body_timeout_s:g} s")
        except ClientDisconnect:
            return Response(status_code=499)

    def first(fields: dict, key: str, default: str | None = None) -> str | None:
        values = fields.get(key) or fields.get(f"{key}[]") or []
        return values[0] if values else default

    @app.post("/v1/audio/transcriptions")
    async def openai_transcriptions(request: Request) -> Response:
        def decoder_for(fields: dict) -> tuple[DecoderConfig, bool]:
            fmt = first(fields, "response_format", "json")
            if fmt not in OPENAI_FORMATS:
                raise ValueError(f"response_format must be one of {', '.join(OPENAI_FORMATS)}, got {fmt!r}")
            language = (first(fields, "language") or "en").lower()
            if language not in ("en", "english"):
                raise ValueError(f"this model transcribes English, not {language!r}")
            return DecoderConfig(), fmt in ("srt", "vtt", "verbose_json")

        outcome = await run(request, decoder_for)
        if isinstance(outcome, Response):
            return outcome
        result, fields, duration = outcome
        fmt = first(fields, "response_format", "json")
        word_times = "word" in (
            fields.get("timestamp_granularities[]") or fields.get("timestamp_granularities") or []
        )
        body = openai_body(result.text, result.words or [], round(duration, 3), fmt, word_times)
        if isinstance(body, str):
            media = {"srt": "application/x-subrip", "vtt": "text/vtt"}.get(fmt, "text/plain")
            return PlainTextResponse(body, media_type=media)
        return JSONResponse(body)

    @app.post("/v1/asr/transcriptions")
    async def rich_transcriptions(request: Request) -> Response:
        def decoder_for(fields: dict) -> tuple[DecoderConfig, bool]:
            kind = first(fields, "decoder", "greedy")
            nbest = int(first(fields, "nbest", "1") or 1)
            hotwords = tuple(
                parse_hotword(v) for v in fields.get("hotword", []) + fields.get("hotword[]", [])
            )
            if kind == "greedy" and (nbest > 1 or hotwords):
                raise ValueError("nbest > 1 and hotwords need decoder=beam")
            if kind == "greedy":
                decoder = DecoderConfig()
            elif kind == "beam":
                decoder = replace(settings.beam or DecoderConfig(kind="beam"), nbest=nbest, hotwords=hotwords)
                check_hotwords(transcriber.tokenizer, hotwords)  # now, not in the batch that would fail
            else:
                raise ValueError(f"decoder must be greedy or beam, got {kind!r}")
            return decoder, (first(fields, "timestamps", "true") or "").lower() in ("1", "true", "yes")

        outcome = await run(request, decoder_for)
        if isinstance(outcome, Response):
            return outcome
        result, fields, duration = outcome
        kind = first(fields, "decoder", "greedy")
        return JSONResponse(
            rich_body(result.text, result.words, round(duration, 3), result.nbest or [], kind)
        )

    @app.get("/health")
    async def health() -> dict:
        s = batcher.stats
        return {
            "status": "ok",
            "model": settings.model_name,
            "waiting": batcher.waiting,
            "batches": s.batches,
            "requests": s.requests,
            "largest_batch": s.largest,
            "beam": settings.beam is not None,
        }

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "missing or wrong API key (Authorization: Bearer KEY)")
        return JSONResponse(
            {"object": "list", "data": [{"id": settings.model_name, "object": "model", "owned_by": "asr"}]}
        )

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(WEB / "index.html")

    @app.get("/web/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        files = {p.name: p for p in WEB.iterdir() if p.is_file()}  # only the page's own files
        if name not in files:
            return _error(404, "not found")
        return FileResponse(files[name])

    return app
