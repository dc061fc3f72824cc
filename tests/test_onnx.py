"""ONNX export: the whole recogniser in one graph, run by onnxruntime, equal to torch at any length."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from asr.audio import load_audio
from asr.errors import ModelFileError
from asr.inference import Transcriber
from asr.manifest import read_manifest
from asr.onnx_export import export_onnx
from asr.onnx_model import OnnxRecognizer

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


@pytest.fixture(scope="module")
def exported(trained_model, tmp_path_factory):
    transcriber = Transcriber.load(trained_model)
    path = export_onnx(transcriber.recognizer, tmp_path_factory.mktemp("onnx") / "model.onnx")
    return transcriber, path


def test_log_probs_match_torch_at_every_length(exported, corpus):
    transcriber, path = exported
    onnx = OnnxRecognizer(path)
    assert onnx.spec.to_dict() == transcriber.spec.to_dict()
    rng = np.random.default_rng(0)
    waves = [load_audio(u.audio_filepath) for u in read_manifest(corpus["test"])]
    waves += [rng.normal(0, 0.1, n).astype(np.float32) for n in (400, 1601, 16000 * 7 + 3)]  # odd lengths
    ours, theirs = transcriber.emissions(waves), onnx.emissions(waves)
    for (a, n), (b, m) in zip(ours, theirs):
        assert n == m and a.shape == b.shape
        assert np.abs(a - b).max() < 1e-4


def test_cli_export_and_refusals(trained_model, tmp_path):
    out = tmp_path / "m.onnx"
    done = subprocess.run(
        [sys.executable, "-m", "asr.cli", "export", str(trained_model), str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert OnnxRecognizer(out).spec.model.hidden_size > 0
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="bad.onnx"):
        OnnxRecognizer(bad)
