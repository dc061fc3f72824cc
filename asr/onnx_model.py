"""Running an exported ONNX model with onnxruntime: waveforms to CTC log-probabilities, without torch.

The file written by :func:`asr.onnx_export.export_onnx` holds the encoder as a graph (normalised log-mel
features in) and, in its metadata, the model spec and the front end's window and mel filterbank, so nothing
else is needed to load it. :class:`OnnxRecognizer` computes the features in NumPy (:mod:`asr.numpy_frontend`)
and runs the graph on them; a file exported before the front end left the graph (its input is the waveform)
runs as it is. It offers what :class:`asr.inference.Transcriber` uses of :class:`asr.recognizer.Recognizer`
(``batches``, ``run``, the tokenizer and frame arithmetic), with NumPy arrays for tensors, so
``asr transcribe``, ``asr evaluate`` and ``asr serve`` run an ``.onnx`` model without importing torch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from asr.batching import MAX_BATCH_SECONDS, gather_emissions, pad_waves, padded_batches
from asr.errors import ModelFileError, UsageError, first_line
from asr.numpy_frontend import NumpyFrontEnd
from asr.spec import ModelSpec
from asr.text import Tokenizer, TokenizerError, tokenizer_from_dict
from asr.threads import env_threads

SPEC_KEY = "asr_spec"  # the metadata entry holding the model spec as JSON
FRONTEND_KEY = "asr_frontend"  # the metadata entry holding the front end's constants (asr.numpy_frontend)
FEATURE_INPUTS = ["feats", "feat_lens"]  # the graph's inputs: (B, T, n_mels) float32, (B,) int64
WAVE_INPUTS = ["waves", "wave_lens"]  # those of a file exported with the front end in the graph


def is_onnx(path: str | Path) -> bool:
    """Whether ``path`` names an ONNX model (by its extension)."""
    return Path(path).suffix.lower() == ".onnx"


class OnnxRecognizer:
    """An ONNX file's recogniser on onnxruntime's CPU provider: waveforms -> CTC log-probabilities.

    ``threads`` caps onnxruntime's intra-op threads (0: ``OMP_NUM_THREADS`` when set, the count torch takes
    from it, else onnxruntime's default). Raises :class:`UsageError` without onnxruntime and
    :class:`ModelFileError` for a missing, unreadable or foreign file.
    """

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
        threads = threads or env_threads(os.environ) or 0
        if threads > 0:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            metadata = self.session.get_modelmeta().custom_metadata_map
            inputs = [i.name for i in self.session.get_inputs()]
        except Exception as e:  # onnxruntime raises its own types for corrupt or foreign files
            raise ModelFileError(f"{path}: not a readable ONNX model ({first_line(e)})") from None
        stored = metadata.get(SPEC_KEY)
        if stored is None:
            raise ModelFileError(f"{path}: an ONNX model without the asr spec (not exported by asr export)")
        if inputs == WAVE_INPUTS:
            constants = None  # an earlier export: its graph computes the features from the waveforms
        elif inputs == FEATURE_INPUTS:
            constants = metadata.get(FRONTEND_KEY)
            if constants is None:
                raise ModelFileError(f"{path}: no front end constants ({FRONTEND_KEY}); re-export it")
        else:
            raise ModelFileError(f"{path}: graph inputs {', '.join(inputs)} are not asr's; re-export it")
        try:
            self.spec = ModelSpec.from_dict(json.loads(stored))
            self.tokenizer: Tokenizer = tokenizer_from_dict(self.spec.tokenizer)
            self.frontend = None if constants is None else NumpyFrontEnd(self.spec, constants)
        except (ValueError, TypeError, TokenizerError) as e:
            raise ModelFileError(f"{path}: {first_line(e)}") from None
        self.min_samples = self.spec.min_samples  # shorter inputs are padded to it
        self.frame_seconds = self.spec.frame_seconds

    def eval(self) -> OnnxRecognizer:
        """Itself: an ONNX graph is always in inference mode (for :class:`asr.inference.Transcriber`)."""
        return self

    def run(self, waves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """One batch of waveforms, padded: log_probs (B, T', V) float32, out_lens (B,) int64."""
        log_probs, out_lens = self.session.run(None, self._feeds(*pad_waves(waves, self.min_samples)))
        return log_probs, out_lens

    def batches(
        self, waves: Sequence[np.ndarray], max_batch_seconds: float = MAX_BATCH_SECONDS
    ) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
        """Waveforms in batches of similar length (sorted, within the budget): (indices into ``waves``,
        log_probs (B, T', V), out_lens (B,)).

        The features of every batch are computed before the graph runs on any: on two threads the graph's
        runs back to back took 0.78-0.84x torch's time, against 0.87-0.88x alternating with the front end
        (the same on one thread; benchmarks/RESULTS.md). The features hold half the waveforms' memory."""
        batches = padded_batches(waves, self.min_samples, max_batch_seconds)
        feeds = [(idx, self._feeds(batch, lens)) for idx, batch, lens in batches]
        for idx, feed in feeds:
            yield idx, *self.session.run(None, feed)

    def emissions(
        self, waves: Sequence[np.ndarray], max_batch_seconds: float = MAX_BATCH_SECONDS
    ) -> list[tuple[np.ndarray, int]]:
        """Each 16 kHz mono waveform's (T', V) float32 log-probabilities and T', batched by length."""
        return gather_emissions(self.batches(waves, max_batch_seconds), len(waves))

    def _feeds(self, batch: np.ndarray, lens: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's inputs for one padded batch of waveforms."""
        if self.frontend is None:  # an earlier export: its graph takes the waveforms
            return dict(zip(WAVE_INPUTS, (batch, lens)))
        return dict(zip(FEATURE_INPUTS, self.frontend(batch, lens)))
