"""ONNX export: the encoder as a graph and the front end in NumPy, run by onnxruntime, equal to torch at any
length; earlier exports, with the front end in the graph, still run."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from asr.audio import load_audio
from asr.batching import pad_waves
from asr.errors import ModelFileError
from asr.inference import Transcriber
from asr.manifest import read_manifest
from asr.onnx_export import export_onnx
from asr.onnx_model import FRONTEND_KEY, SPEC_KEY, WAVE_INPUTS, OnnxRecognizer
from asr.recognizer import Recognizer
from asr.spec import LOG_FLOOR, num_frames

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


@pytest.fixture(scope="module")
def exported(trained_model, tmp_path_factory):
    transcriber = Transcriber.load(trained_model)
    path = export_onnx(transcriber.recognizer, tmp_path_factory.mktemp("onnx") / "model.onnx")
    return transcriber, path


def _waves(corpus) -> list[np.ndarray]:
    """The test set's speech and noise of odd lengths."""
    rng = np.random.default_rng(0)
    waves = [load_audio(u.audio_filepath) for u in read_manifest(corpus["test"])]
    return waves + [rng.normal(0, 0.1, n).astype(np.float32) for n in (400, 1601, 16000 * 7 + 3)]


def _assert_same_log_probs(transcriber: Transcriber, onnx: OnnxRecognizer, waves: list[np.ndarray]) -> None:
    for (a, n), (b, m) in zip(transcriber.emissions(waves), onnx.emissions(waves)):
        assert n == m and a.shape == b.shape
        assert np.abs(a - b).max() < 1e-4


def test_log_probs_match_torch_at_every_length(exported, corpus):
    transcriber, path = exported
    onnx = OnnxRecognizer(path)
    assert onnx.spec.to_dict() == transcriber.spec.to_dict()
    _assert_same_log_probs(transcriber, onnx, _waves(corpus))


def test_layer_norm_pyramidal_reduction_and_self_conditioning_export(exported, corpus, tmp_path):
    """An encoder with LayerNorm before each layer (random gains and biases), its top layer at half the
    frame rate and reading layer 1's self-conditioning posteriors runs the same in onnxruntime, at every
    length."""
    spec = exported[0].spec
    model = dataclasses.replace(spec.model, num_layers=2, layer_norm=True, reduce_after=1, condition_layer=1)
    spec = dataclasses.replace(spec, model=model)
    torch.manual_seed(0)
    recognizer = Recognizer(spec)
    with torch.no_grad():
        for norm in recognizer.encoder.norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    onnx = OnnxRecognizer(export_onnx(recognizer, tmp_path / "normed.onnx"))
    assert onnx.spec.model.layer_norm is True and onnx.spec.model.reduce_after == 1
    assert onnx.spec.model.condition_layer == 1
    _assert_same_log_probs(Transcriber(recognizer), onnx, _waves(corpus)[-4:])


@pytest.mark.parametrize(
    "changes",
    [{"rnn_type": "gru"}, {"rnn_type": "rnn"}, {"bidirectional": False}],
    ids=["gru", "tanh-rnn", "one-way-lstm"],
)
def test_every_rnn_exports_as_one_node_per_layer(exported, corpus, tmp_path, changes):
    """GRUs, tanh RNNs and one-way layers (random weights) export as one ONNX recurrent node per layer, given
    each sequence's length, and run the same in onnxruntime at every length."""
    import onnx

    spec = exported[0].spec
    spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, num_layers=2, **changes))
    torch.manual_seed(0)
    recognizer = Recognizer(spec)
    path = export_onnx(recognizer, tmp_path / "rnn.onnx")
    nodes = [node for node in onnx.load(path).graph.node if node.op_type in {"LSTM", "GRU", "RNN"}]
    assert len(nodes) == 2 and all(len(node.input) == 5 for node in nodes)  # X, W, R, B, sequence_lens
    _assert_same_log_probs(Transcriber(recognizer), OnnxRecognizer(path), _waves(corpus)[-4:])


def test_omp_num_threads_caps_onnxruntime_as_it_caps_torch(exported, monkeypatch):
    _, path = exported
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert OnnxRecognizer(path).session.get_session_options().intra_op_num_threads == 1
    assert OnnxRecognizer(path, threads=2).session.get_session_options().intra_op_num_threads == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert OnnxRecognizer(path).session.get_session_options().intra_op_num_threads == 0


def test_numpy_frontend_is_torchs(exported, corpus):
    """The same window and mel filterbank, bit for bit; normalised features within 1e-4, padding 0."""
    transcriber, path = exported
    frontend, torch_frontend = OnnxRecognizer(path).frontend, transcriber.recognizer.frontend
    mel = torch_frontend.logmel.mel
    assert np.array_equal(frontend.mel_fbanks, mel.mel_scale.fb.numpy())
    assert np.array_equal(frontend.window, mel.spectrogram.window.numpy())
    waves, lens = pad_waves(_waves(corpus), transcriber.recognizer.min_samples)
    feats, feat_lens = frontend(waves, lens)
    with torch.no_grad():
        expected, expected_lens = torch_frontend(torch.from_numpy(waves), torch.from_numpy(lens))
    assert np.array_equal(feat_lens, expected_lens.numpy()) and feats.shape == expected.shape
    assert np.abs(feats - expected.numpy()).max() < 1e-4
    shortest = int(np.argmin(feat_lens))  # its padded frames are 0
    assert feat_lens[shortest] < feats.shape[1] and not feats[shortest, feat_lens[shortest] :].any()


class _WaveGraph(nn.Module):
    """What ``asr export`` wrote before the front end moved to NumPy: waveforms in, the STFT as a strided
    convolution with the windowed DFT basis, then the power, the mel filterbank, the log and the CMVN."""

    def __init__(self, recognizer: Recognizer) -> None:
        super().__init__()
        self.recognizer, mel = recognizer, recognizer.frontend.logmel.mel
        n_fft, self.hop = mel.spectrogram.n_fft, mel.spectrogram.hop_length
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * k * torch.arange(n_fft, dtype=torch.float64)[None, :] / n_fft  # (F, n_fft)
        basis = torch.cat([angle.cos(), -angle.sin()]) * mel.spectrogram.window.double()  # (2F, n_fft)
        self.register_buffer("basis", basis.float()[:, None, :])
        self.register_buffer("fb", mel.mel_scale.fb.clone())

    def forward(self, waves: Tensor, wave_lens: Tensor) -> tuple[Tensor, Tensor]:
        spec = nn.functional.conv1d(waves[:, None, :], self.basis, stride=self.hop)  # (B, 2F, T)
        re, im = spec.chunk(2, dim=1)
        feats = torch.log((re * re + im * im).transpose(1, 2) @ self.fb + LOG_FLOOR)  # (B, T, n_mels)
        lens = num_frames(wave_lens, self.recognizer.feature_config)
        return self.recognizer.encoder(self.recognizer.frontend.cmvn(feats, lens), lens)


def test_an_earlier_export_with_the_front_end_in_the_graph_still_runs(exported, corpus, tmp_path):
    import onnx

    transcriber, _ = exported
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            _WaveGraph(transcriber.recognizer).eval(),
            (torch.zeros(2, 16000), torch.tensor([16000, 12000])),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=WAVE_INPUTS,
            output_names=["log_probs", "out_lens"],
            dynamic_axes={
                "waves": {0: "b", 1: "s"},
                "wave_lens": {0: "b"},
                "log_probs": {0: "b", 1: "t"},
                "out_lens": {0: "b"},
            },
        )
    model = onnx.load_model_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = SPEC_KEY, json.dumps(transcriber.spec.to_dict())
    old = tmp_path / "old.onnx"
    old.write_bytes(model.SerializeToString())
    onnx_model = OnnxRecognizer(old)
    assert onnx_model.frontend is None
    _assert_same_log_probs(transcriber, onnx_model, _waves(corpus))


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
    import onnx

    model = onnx.load(out)
    kept = [e for e in model.metadata_props if e.key != FRONTEND_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, bad)
    with pytest.raises(ModelFileError, match="re-export"):
        OnnxRecognizer(bad)


def test_int8_export_is_quantised_smaller_and_close(exported, corpus, trained_model, tmp_path):
    import onnx

    transcriber, path = exported
    small = export_onnx(transcriber.recognizer, tmp_path / "m.int8.onnx", int8=True)
    ops = {node.op_type for node in onnx.load(small).graph.node}
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= ops
    assert small.stat().st_size < path.stat().st_size
    waves = _waves(corpus)
    fp32, int8 = OnnxRecognizer(path).emissions(waves), OnnxRecognizer(small).emissions(waves)
    a, b = np.concatenate([e for e, _ in fp32]), np.concatenate([e for e, _ in int8])
    # The tiny test model is unsure of most frames (its best token rarely leads the next by e-fold), so
    # near-ties may swap under 8-bit weights: the log-probabilities themselves must stay close.
    assert float(np.abs(a - b).max()) < 0.15
    assert float((a.argmax(-1) == b.argmax(-1)).mean()) > 0.85
    done = subprocess.run(
        [sys.executable, "-m", "asr.cli", "export", "--int8", str(trained_model), str(tmp_path / "m.pt")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--int8 applies to an ONNX export" in done.stderr
