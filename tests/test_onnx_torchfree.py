"""An exported ONNX model transcribes and serves without importing torch, and gives torch's transcripts.

The model is tests/data/legacy_model.pt exported to ONNX (seconds, no training). The torch-free checks run in
a fresh interpreter, which fails unless ``torch`` (and torchaudio) are still absent from ``sys.modules`` at
the end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import soundfile as sf
from test_checkpoint import legacy_waves

import asr
from asr.checkpoint import load_recognizer
from asr.decoding import DecoderConfig
from asr.onnx_export import export_onnx

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

MODEL = Path(__file__).parent / "data" / "legacy_model.pt"
TORCH_FREE = """
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchaudio", "pytorch_lightning"))
assert not bad, f"imported {bad[:3]}"
"""


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    return export_onnx(load_recognizer(MODEL), tmp_path_factory.mktemp("onnx") / "legacy.onnx")


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("wavs")
    paths = [folder / f"w{i}.wav" for i in range(len(legacy_waves()))]
    for path, wave in zip(paths, legacy_waves()):
        sf.write(path, wave, 16000, subtype="FLOAT")
    return paths


def _torch_free(code: str) -> str:
    """Run ``code`` in a fresh interpreter, then check that torch was never imported; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", f"import sys\n{textwrap.dedent(code)}\n{TORCH_FREE}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_onnx_transcripts_and_timings_equal_torch(onnx_model, wavs):
    torch_model, onnx = asr.load_model(MODEL), asr.load_model(onnx_model)
    beam = DecoderConfig("beam", beam_size=8, nbest=2)
    for decoder in (None, beam):
        ours = onnx.transcribe(wavs, decoder, timestamps=True)
        theirs = torch_model.transcribe(wavs, decoder, timestamps=True)
        assert [t.text for t in ours] == [t.text for t in theirs]
        assert [[(w.text, w.start, w.end) for w in t.words] for t in ours] == [
            [(w.text, w.start, w.end) for w in t.words] for t in theirs
        ]
    windowed = onnx.transcribe(wavs[2:], window_s=1.0, overlap_s=0.4)
    assert windowed[0].text == torch_model.transcribe(wavs[2:], window_s=1.0, overlap_s=0.4)[0].text


def test_cli_transcribe_onnx_without_torch(onnx_model, wavs):
    expected = [t.text for t in asr.load_model(MODEL).transcribe(wavs)]
    args = ["transcribe", *map(str, wavs), "--model", str(onnx_model), "--format", "json", "--timestamps"]
    out = _torch_free(f"from asr.cli import main\nassert main({args!r}) == 0")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in rows] == expected
    assert all(" ".join(w["word"] for w in r["words"]) == r["text"] for r in rows)
    beam = [*args[:-3], "--decoder", "beam", "--beam-size", "8", "--window", "1", "--overlap", "0.4"]
    assert len(_torch_free(f"from asr.cli import main\nassert main({beam!r}) == 0").splitlines()) == 3


def test_cli_serve_onnx_without_torch(onnx_model, wavs):
    """``asr serve --model x.onnx`` builds its app and answers both endpoints (uvicorn replaced by a test
    client)."""
    out = _torch_free(
        f"""
        import json
        from starlette.testclient import TestClient
        import asr.serve.runner
        from asr.cli import main

        apps = []
        asr.serve.runner.serve = lambda app, host, port: apps.append(app)
        assert main(["serve", "--model", {str(onnx_model)!r}]) == 0
        with TestClient(apps[0]) as client, open({str(wavs[0])!r}, "rb") as f:
            audio = f.read()
            openai = client.post(
                "/v1/audio/transcriptions",
                files={{"file": ("a.wav", audio)}},
                data={{"response_format": "verbose_json", "timestamp_granularities[]": "word"}},
            )
            ours = client.post(
                "/v1/asr/transcriptions", files={{"file": ("a.wav", audio)}}, data={{"decoder": "beam"}}
            )
        assert openai.status_code == 200 and ours.status_code == 200, (openai.text, ours.text)
        print(json.dumps([openai.json(), ours.json()]))
        """
    )
    openai, ours = json.loads(out)
    (expected,) = asr.load_model(MODEL).transcribe(wavs[:1], timestamps=True)
    assert openai["text"] == expected.text == ours["text"]
    assert [(w["word"], w["start"], w["end"]) for w in openai["words"]] == [
        (w.text, w.start, w.end) for w in expected.words
    ]
