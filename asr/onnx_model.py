"""Running an exported ONNX model with onnxruntime: waveforms to CTC log-probabilities, without torch.

The file written by :func:`asr.onnx_export.export_onnx` holds the whole recogniser (front end included) and
its model spec in the metadata, so nothing else is needed to load it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.batching import MAX_BATCH_SECONDS, pack_sorted
from asr.errors import ModelFileError, UsageError, first_line
from asr.spec import ModelSpec

SPEC_KEY = "asr_spec"  # the metadata entry holding the model spec as JSON


def is_onnx(path: str | Path) -> bool:
    """Whether ``path`` names an ONNX model (by its extension)."""
    return Path(path).suffix.lower() == ".onnx"


class OnnxRecognizer:
    """An ONNX file's acoustic model: :meth:`emissions` as :class:`asr.recognizer.Recognizer` gives them."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UsageError("ONNX models need onnxruntime: pip install 'asr[onnx]'") from None
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"{path}: model file not found")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        if threads > 0:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            stored = self.session.get_modelmeta().custom_metadata_map.get(SPEC_KEY)
        except Exception as e:  # onnxruntime raises its own types for corrupt or foreign files
            raise ModelFileError(f"{path}: not a readable ONNX model ({first_line(e)})") from None
        if stored is None:
            raise ModelFileError(f"{path}: an ONNX model without the asr spec (not exported by asr export)")
        try:
            self.spec = ModelSpec.from_dict(json.loads(stored))
        except (ValueError, TypeError) as e:
            raise ModelFileError(f"{path}: {first_line(e)}") from None

    def emissions(
        self, waves: Sequence[np.ndarray], max_batch_seconds: float = MAX_BATCH_SECONDS
    ) -> list[tuple[np.ndarray, int]]:
        """Each 16 kHz mono waveform's (T', V) float32 log-probabilities and T', batched by length."""
        out: list[tuple[np.ndarray, int]] = [(np.zeros((0, 0), np.float32), 0)] * len(waves)
        shortest = self.spec.min_samples
        for idx in pack_sorted([max(len(w), shortest) for w in waves], max_batch_seconds * SAMPLE_RATE):
            lens = np.array([max(len(waves[i]), shortest) for i in idx], np.int64)
            batch = np.zeros((len(idx), int(lens.max())), np.float32)
            for row, i in enumerate(idx):
                batch[row, : len(waves[i])] = waves[i]
            log_probs, out_lens = self.session.run(None, {"waves": batch, "wave_lens": lens})
            for row, i in enumerate(idx):
                n = int(out_lens[row])
                out[i] = (np.ascontiguousarray(log_probs[row, :n]), n)
        return out
