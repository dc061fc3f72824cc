"""The whole recogniser as one module: feature front end, encoder and tokenizer.

Training, evaluation and ``asr transcribe`` all run audio through this one module, so features are always
computed the same way. A checkpoint holds what it needs: config, tokenizer, normalisation stats, weights.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from asr.audio import SAMPLE_RATE
from asr.config import Config
from asr.decode import Emission, greedy_decode
from asr.features import FeatureExtractor, num_frames, window_samples
from asr.model import Encoder
from asr.text import CharTokenizer


class Recognizer(nn.Module):
    """Waveforms -> CTC log-probabilities, and greedy transcripts."""

    def __init__(self, cfg: Config, tokenizer: CharTokenizer) -> None:
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        self.frontend = FeatureExtractor(cfg.features)
        self.encoder = Encoder(cfg.model, cfg.features.n_mels, tokenizer.vocab_size)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def min_samples(self) -> int:
        """Shortest input that yields one output frame."""
        samples = window_samples(self.cfg.features)
        while self.output_frames(samples / SAMPLE_RATE) < 1:
            samples += 16
        return samples

    def output_frames(self, duration: float) -> int:
        """Output frames for ``duration`` seconds of audio."""
        return self.encoder.output_length(num_frames(int(round(duration * SAMPLE_RATE)), self.cfg.features))

    def forward(self, waves: Tensor, wave_lens: Tensor) -> tuple[Tensor, Tensor]:
        """waves (B, S), wave_lens (B,) -> log_probs (B, T', V), out_lens (B,)."""
        feats, feat_lens = self.frontend(waves, wave_lens)  # (B, T, F)
        return self.encoder(feats, feat_lens)

    def batches(
        self, waves: Sequence[np.ndarray], max_batch_seconds: float = 200.0
    ) -> Iterator[tuple[list[int], Tensor, Tensor]]:
        """Run waveforms through the model in batches of similar length (sorted, within the budget).

        Yields (indices into ``waves``, log_probs (B, T', V), out_lens (B,)).
        """
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
        budget = max_batch_seconds * SAMPLE_RATE
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and len(waves[order[end]]) * (end - start + 1) <= budget:
                end += 1
            idx = order[start:end]
            yield idx, *self(*self.pad([waves[i] for i in idx]))
            start = end

    @torch.inference_mode()
    def transcribe(self, waves: Sequence[np.ndarray], max_batch_seconds: float = 200.0) -> list[str]:
        """Greedy transcripts of 16 kHz mono waveforms."""
        texts: list[str] = [""] * len(waves)
        for idx, log_probs, out_lens in self.batches(waves, max_batch_seconds):
            for i, ids in zip(idx, greedy_decode(log_probs, out_lens)):
                texts[i] = self.tokenizer.decode(ids)
        return texts

    @torch.inference_mode()
    def emissions(self, waves: Sequence[np.ndarray], max_batch_seconds: float = 200.0) -> list[Emission]:
        """Each waveform's (T', V) float32 log-probabilities on the CPU and T', for beam search."""
        out: list[Emission] = [(np.empty((0, self.tokenizer.vocab_size), np.float32), 0)] * len(waves)
        for idx, log_probs, out_lens in self.batches(waves, max_batch_seconds):
            log_probs, lens = log_probs.float().cpu().numpy(), out_lens.tolist()
            for row, i in enumerate(idx):
                out[i] = (np.ascontiguousarray(log_probs[row, : lens[row]]), lens[row])
        return out

    def pad(self, waves: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
        """Zero-pad waveforms (each to at least :attr:`min_samples`) into (B, S) on the model's device."""
        lens = torch.tensor([max(len(w), self.min_samples) for w in waves])
        batch = torch.zeros(len(waves), int(lens.max()))
        for i, w in enumerate(waves):
            batch[i, : len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
        return batch.to(self.device), lens.to(self.device)
