"""Export a model to ONNX: the whole recogniser, waveform to CTC log-probabilities, in one graph.

The complex STFT does not export, so the graph computes it with real-valued operations: a strided 1-D
convolution with the windowed DFT's cosine and sine rows gives the real and imaginary parts, then the power,
the mel filterbank, the log and the global normalisation follow as in :class:`asr.features.LogMel`. The
encoder is exported with the TorchScript-based exporter (``dynamo=False``, opset 17): torch's dynamo exporter
fixes an ``nn.LSTM``'s time axis to the traced length, which then fails at any other length. Batch and time
axes are dynamic. The model spec travels in the file's metadata (``asr_spec``), so the file alone is a model
(:mod:`asr.onnx_model` runs it with onnxruntime, without torch).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor, nn

from asr.features import LOG_FLOOR, num_frames
from asr.onnx_model import SPEC_KEY
from asr.outputs import write_bytes_atomic
from asr.recognizer import Recognizer
from asr.spec import hop_samples, window_samples

OPSET = 17


class _Graph(nn.Module):
    """waves (B, S) float32, wave_lens (B,) int64 -> log_probs (B, T', V), out_lens (B,)."""

    def __init__(self, recognizer: Recognizer) -> None:
        super().__init__()
        features = recognizer.spec.features
        self.features = features
        n_fft, self.hop = window_samples(features), hop_samples(features)
        mel = recognizer.frontend.logmel.mel
        window = mel.spectrogram.window.float()  # (n_fft,) the periodic Hann window torchaudio applies
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        n = torch.arange(n_fft, dtype=torch.float64)[None, :]
        angle = 2 * math.pi * k * n / n_fft  # (F, n_fft)
        basis = torch.cat([angle.cos(), -angle.sin()]) * window.double()  # (2F, n_fft)
        self.register_buffer("basis", basis.float()[:, None, :])  # (2F, 1, n_fft) conv1d weight
        self.register_buffer("fb", mel.mel_scale.fb.float().clone())  # (F, n_mels)
        self.cmvn = recognizer.frontend.cmvn
        self.encoder = recognizer.encoder

    def forward(self, waves: Tensor, wave_lens: Tensor) -> tuple[Tensor, Tensor]:
        spec = nn.functional.conv1d(waves[:, None, :], self.basis, stride=self.hop)  # (B, 2F, T)
        re, im = spec.chunk(2, dim=1)  # (B, F, T) each
        power = (re * re + im * im).transpose(1, 2)  # (B, T, F)
        feats = torch.log(power @ self.fb + LOG_FLOOR)  # (B, T, n_mels)
        lens = num_frames(wave_lens, self.features)
        return self.encoder(self.cmvn(feats, lens), lens)


def export_onnx(recognizer: Recognizer, dest: str | Path) -> Path:
    """Write ``recognizer`` as an ONNX model with its spec in the metadata; returns ``dest``."""
    import onnx

    graph = _Graph(recognizer.cpu().float()).eval()
    example = torch.zeros(2, 16000), torch.tensor([16000, 12000])
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        program = _export_bytes(graph, example)
    model = onnx.load_model_from_string(program)
    entry = model.metadata_props.add()
    entry.key, entry.value = SPEC_KEY, json.dumps(recognizer.spec.to_dict())
    write_bytes_atomic(dest, model.SerializeToString())
    return Path(dest)


def _export_bytes(graph: nn.Module, example: tuple[Tensor, Tensor]) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.onnx.export(
        graph,
        example,
        buffer,
        dynamo=False,
        opset_version=OPSET,
        input_names=["waves", "wave_lens"],
        output_names=["log_probs", "out_lens"],
        dynamic_axes={
            "waves": {0: "batch", 1: "samples"},
            "wave_lens": {0: "batch"},
            "log_probs": {0: "batch", 1: "frames"},
            "out_lens": {0: "batch"},
        },
    )
    return buffer.getvalue()
