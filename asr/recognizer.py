"""The whole recogniser as one module: feature front end, encoder and tokenizer, built from a model spec.

Training, evaluation and transcription all run audio through this one module, so features are always
computed the same way. It is built from a :class:`asr.spec.ModelSpec` alone, and :attr:`Recognizer.spec`
gives the spec back with the normalisation statistics it holds now: a model file is that spec plus the
weights (``asr.checkpoint``). Decoding the log-probabilities is ``asr.decoding``'s; the inference API that
ties them together is ``asr.inference.Transcriber``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from asr.audio import SAMPLE_RATE
from asr.batching import MAX_BATCH_SECONDS, pad_waves, padded_batches
from asr.features import FeatureExtractor
from asr.model import Encoder
from asr.spec import ModelSpec, num_frames
from asr.text import tokenizer_from_dict


class Recognizer(nn.Module):
    """Waveforms -> CTC log-probabilities."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.feature_config, self.model_config = spec.features, spec.model
        self.tokenizer = tokenizer_from_dict(spec.tokenizer)
        self.frontend = FeatureExtractor(spec.features)
        self.encoder = Encoder(spec.model, spec.features.n_mels, self.tokenizer.vocab_size)
        if spec.cmvn is not None:
            self.frontend.cmvn.set_stats(torch.tensor(spec.cmvn["mean"]), torch.tensor(spec.cmvn["std"]))
        self.min_samples = spec.min_samples  # pad() pads shorter inputs to it
        self.frame_seconds = spec.frame_seconds

    @property
    def spec(self) -> ModelSpec:
        """The model's spec, with the normalisation statistics it holds now."""
        cmvn = self.frontend.cmvn
        stats = {"mean": cmvn.mean.tolist(), "std": cmvn.std.tolist()}
        return ModelSpec(self.feature_config, self.model_config, self.tokenizer.to_dict(), stats)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def output_frames(self, duration: float) -> int:
        """Output frames for ``duration`` seconds of audio."""
        return self.encoder.output_length(num_frames(int(round(duration * SAMPLE_RATE)), self.feature_config))

    def forward(self, waves: Tensor, wave_lens: Tensor) -> tuple[Tensor, Tensor]:
        """waves (B, S), wave_lens (B,) -> log_probs (B, T', V), out_lens (B,)."""
        feats, feat_lens = self.frontend(waves, wave_lens)  # (B, T, F)
        return self.encoder(feats, feat_lens)

    @torch.inference_mode()
    def batches(
        self, waves: Sequence[np.ndarray], max_batch_seconds: float = MAX_BATCH_SECONDS
    ) -> Iterator[tuple[list[int], Tensor, Tensor]]:
        """Run waveforms through the model in batches of similar length (sorted, within the budget).

        Yields (indices into ``waves``, log_probs (B, T', V) on the model's device, out_lens (B,)).
        """
        for idx, batch, lens in padded_batches(waves, self.min_samples, max_batch_seconds):
            yield idx, *self(*self._on_device(batch, lens))

    @torch.inference_mode()
    def run(self, waves: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
        """One batch of waveforms, padded, through the model: log_probs (B, T', V), out_lens (B,)."""
        return self(*self.pad(waves))

    def pad(self, waves: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
        """Zero-pad waveforms (each to at least :attr:`min_samples`) into (B, S) on the model's device."""
        return self._on_device(*pad_waves(waves, self.min_samples))

    def _on_device(self, batch: np.ndarray, lens: np.ndarray) -> tuple[Tensor, Tensor]:
        return torch.from_numpy(batch).to(self.device), torch.from_numpy(lens).to(self.device)
