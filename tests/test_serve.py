"""``asr serve``: the OpenAI-compatible endpoint with the real ``openai`` client, our own endpoint, limits."""

from __future__ import annotations

import asyncio
import io
import socket
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf
from test_checkpoint import legacy_waves

import asr
from asr.cli import main
from asr.decoding import DecoderConfig, DecoderError
from asr.errors import EXIT_USAGE
from asr.inference import Transcriber
from asr.manifest import read_manifest
from asr.serve.app import ServeSettings, create_app
from asr.serve.runner import background

LEGACY = Path(__file__).parent / "data" / "legacy_model.pt"


@pytest.fixture(scope="module")
def transcriber(trained_model):
    return asr.load_model(trained_model)


@pytest.fixture(scope="module")
def legacy() -> Transcriber:
    """The small character model of tests/data, for tests that need no trained model."""
    return asr.load_model(LEGACY)


@pytest.fixture(scope="module")
def files(corpus) -> list[Path]:
    return [Path(u.audio_filepath) for u in read_manifest(corpus["test"])]


@pytest.fixture(scope="module")
def server(transcriber):
    with background(create_app(transcriber, ServeSettings(model_name="tiny", max_duration_s=60))) as url:
        yield url


def test_openai_client_gets_the_cli_transcript(server, transcriber, files):
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused")
    expected = transcriber.transcribe(files[:2])
    for path, want in zip(files[:2], expected):
        with path.open("rb") as f:
            got = client.audio.transcriptions.create(model="whisper-1", file=f)
        assert got.text == want.text
        with path.open("rb") as f:
            text = client.audio.transcriptions.create(model="tiny", file=f, response_format="text")
        assert text.strip() == want.text


def test_openai_client_word_timestamps(server, transcriber, files):
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused")
    (want,) = transcriber.transcribe(files[:1], timestamps=True)
    with files[0].open("rb") as f:
        got = client.audio.transcriptions.create(
            model="tiny", file=f, response_format="verbose_json", timestamp_granularities=["word"]
        )
    assert got.text == want.text
    assert [w.word for w in got.words] == [w.text for w in want.words]
    assert [(w.start, w.end) for w in got.words] == [(w.start, w.end) for w in want.words]
    assert got.duration == pytest.approx(sf.info(files[0]).duration, abs=1e-3)


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitle_formats(server, files, fmt):
    with files[0].open("rb") as f:
        r = httpx.post(f"{server}/v1/audio/transcriptions", files={"file": f}, data={"response_format": fmt})
    assert r.status_code == 200
    assert ("-->" in r.text or r.text in ("", "WEBVTT\n\n")) and (fmt == "srt" or r.text.startswith("WEBVTT"))


def test_rich_endpoint_beam_nbest_and_hotwords(server, files):
    with files[0].open("rb") as f:
        r = httpx.post(
            f"{server}/v1/asr/transcriptions",
            files={"file": f},
            data={"decoder": "beam", "nbest": "3", "hotword": ["yes:2"], "timestamps": "true"},
            timeout=60,
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decoder"] == "beam" and 1 <= len(body["nbest"]) <= 3
    assert body["nbest"][0]["text"] == body["text"]
    assert all(set(w) == {"word", "start", "end", "confidence"} for w in body["words"])


def test_health_and_models(server):
    assert httpx.get(f"{server}/health").json()["status"] == "ok"
    models = httpx.get(f"{server}/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["tiny"]


def test_unreadable_audio_is_400_with_the_cli_message(server, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with bad.open("rb") as f:
        r = httpx.post(f"{server}/v1/audio/transcriptions", files={"file": ("broken.wav", f)})
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert message.startswith("broken.wav: ") and "\n" not in message and "asr-serve-" not in message


def test_missing_file_field_and_bad_options_are_400(server, files):
    assert httpx.post(f"{server}/v1/audio/transcriptions", data={"model": "x"}).status_code == 400
    with files[0].open("rb") as f:
        r = httpx.post(
            f"{server}/v1/audio/transcriptions", files={"file": f}, data={"response_format": "xml"}
        )
    assert r.status_code == 400 and "response_format" in r.json()["error"]["message"]


def test_limits_upload_size_and_duration(transcriber, tmp_path):
    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(16000 * 8, np.float32), 16000)
    with background(create_app(transcriber, ServeSettings(max_upload_mb=0.1, max_duration_s=5))) as url:
        with long.open("rb") as f:  # 256 KB: over the upload limit, refused from its Content-Length
            r = httpx.post(f"{url}/v1/audio/transcriptions", files={"file": f})
        assert r.status_code == 413 and "limit" in r.json()["error"]["message"]
        short = tmp_path / "six.flac"  # small as FLAC, but 6 s of audio: over the duration limit
        sf.write(short, np.zeros(16000 * 6, np.float32), 16000)
        with short.open("rb") as f:
            r = httpx.post(f"{url}/v1/audio/transcriptions", files={"file": f})
        assert r.status_code == 413 and "6.0 s" in r.json()["error"]["message"]
        head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        chunked = httpx.post(  # no Content-Length: the body is counted as it arrives
            f"{url}/v1/audio/transcriptions",
            content=iter([head, *[b"x" * 65536] * 4, b"\r\n--b--\r\n"]),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert chunked.status_code == 413
        assert httpx.get(f"{url}/health").status_code == 200


def test_api_key(transcriber, files):
    with background(create_app(transcriber, ServeSettings(api_key="s3cret"))) as url:
        with files[0].open("rb") as f:
            assert httpx.post(f"{url}/v1/audio/transcriptions", files={"file": f}).status_code == 401
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret")
        with files[0].open("rb") as f:
            assert isinstance(client.audio.transcriptions.create(model="m", file=f).text, str)
        assert httpx.get(f"{url}/health").status_code == 200  # health stays open for load balancers


def test_concurrent_requests_are_batched_and_a_full_queue_is_503(transcriber, files):
    async def send(url: str, client: httpx.AsyncClient, path: Path) -> httpx.Response:
        return await client.post(f"{url}/v1/audio/transcriptions", files={"file": path.read_bytes()})

    async def burst(url: str, n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(send(url, client, files[i % len(files)]) for i in range(n)))

    with background(create_app(transcriber, ServeSettings(max_wait_s=0.2))) as url:
        replies = asyncio.run(burst(url, 12))
        assert all(r.status_code == 200 for r in replies)
        assert httpx.get(f"{url}/health").json()["largest_batch"] > 1
    with background(create_app(transcriber, ServeSettings(max_queue=1, max_wait_s=0.5))) as url:
        replies = asyncio.run(burst(url, 16))
        codes = {r.status_code for r in replies}
        assert codes <= {200, 503} and 503 in codes and 200 in codes
        busy = next(r for r in replies if r.status_code == 503)
        assert busy.headers["retry-after"] == "1"


def test_client_that_disconnects_mid_upload_is_dropped(transcriber, files):
    settings = ServeSettings(body_timeout_s=1)
    with background(create_app(transcriber, settings)) as url:
        port = int(url.rsplit(":", 1)[1])
        for declared in (100_000, 100_000):  # one cut off, one that stalls
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(
                b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n"
                + f"Content-Length: {declared}\r\n\r\n".encode()
                + b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF'
            )
            s.close()
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(
            b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b"
        )
        stalled.settimeout(10)
        assert stalled.recv(64).startswith(b"HTTP/1.1 408")
        stalled.close()
        with files[0].open("rb") as f:
            assert httpx.post(f"{url}/v1/audio/transcriptions", files={"file": f}).status_code == 200


def test_uploads_leave_no_temporary_files(transcriber, files, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with background(create_app(transcriber)) as url:
        for body in (files[0].read_bytes(), b"not audio"):
            httpx.post(f"{url}/v1/audio/transcriptions", files={"file": ("a.wav", io.BytesIO(body))})
    assert list(tmp_path.iterdir()) == []


def test_a_hotword_the_model_cannot_spell_is_400_with_the_cli_message(legacy, tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, legacy_waves()[0], 16000)
    with pytest.raises(DecoderError) as cli:
        legacy.transcribe([wav], DecoderConfig("beam", hotwords=(("2024", 3.0),)))
    with background(create_app(legacy)) as url, wav.open("rb") as f:
        r = httpx.post(
            f"{url}/v1/asr/transcriptions",
            files={"file": f},
            data={"decoder": "beam", "hotword": ["yes", "2024:2"]},
            timeout=60,
        )
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert message == str(cli.value) == "hotword '2024': has characters the model cannot spell"


def test_a_beam_setting_that_cannot_be_used_stops_the_server_at_start(legacy, tmp_path, monkeypatch, capsys):
    missing = tmp_path / "missing.txt"  # a lexicon without --lm: nothing else would read it before a request
    with pytest.raises(DecoderError, match="missing.txt: cannot read the lexicon"):
        create_app(legacy, ServeSettings(beam=DecoderConfig("beam", lexicon=str(missing))))
    monkeypatch.setattr(
        "asr.serve.runner.serve", lambda *args: pytest.fail("served a lexicon it cannot read")
    )
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")  # set by asr serve
    assert main(["serve", "--model", str(LEGACY), "--lexicon", str(missing)]) == EXIT_USAGE
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"error: {missing}: cannot read the lexicon (")
