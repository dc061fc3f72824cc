"""Greedy (best path) CTC decoding: the one implementation, for NumPy arrays and torch tensors alike.

Each frame's likeliest token and its log-probability are found where the log-probabilities live (a torch
tensor on its device, so only these (B, T) arrays leave it, never the (B, T, V) batch); repeats are merged
and blanks removed in NumPy. Imports no torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from asr.batching import to_numpy
from asr.decoding.config import Hypothesis
from asr.text import BLANK_ID, Tokenizer


def best_path(log_probs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's likeliest token (B, T) and its log-probability (B, T), as NumPy, of log_probs (B, T, V):
    a NumPy array or a torch tensor (reduced on its device)."""
    if isinstance(log_probs, np.ndarray):
        best = log_probs.argmax(-1)
        return best, np.take_along_axis(log_probs, best[..., None], -1)[..., 0]
    scores, best = log_probs.max(-1)
    return to_numpy(best), to_numpy(scores)


def _collapse(best: np.ndarray, valid: np.ndarray) -> list[list[int]]:
    """Each row's tokens of the best path: repeats merged, blanks and frames past its end removed."""
    new = np.ones(best.shape, dtype=bool)  # a token differing from the previous frame's
    new[:, 1:] = best[:, 1:] != best[:, :-1]
    keep = new & (best != BLANK_ID) & valid
    return [row[mask].tolist() for row, mask in zip(best, keep)]


def _valid(lens: Any, frames: int) -> np.ndarray:
    """(B, T) True on each row's first ``lens[b]`` frames."""
    return np.arange(frames)[None, :] < to_numpy(lens).reshape(-1, 1)


def greedy_ids(log_probs: Any, lens: Any) -> list[list[int]]:
    """Best path per frame, repeats merged, blanks removed.

    log_probs: (B, T, V); lens: (B,) valid frames (NumPy arrays or torch tensors). Returns token ids per
    utterance.
    """
    best, _ = best_path(log_probs)
    return _collapse(best, _valid(lens, best.shape[1]))


def greedy_hypotheses(tokenizer: Tokenizer, log_probs: Any, lens: Any) -> list[list[Hypothesis]]:
    """One :class:`Hypothesis` per utterance of log_probs (B, T, V), lens (B,) (NumPy arrays or torch
    tensors): the best path, its text and its log-probability."""
    best, scores = best_path(log_probs)
    valid = _valid(lens, best.shape[1])
    totals = np.where(valid, scores, 0.0).sum(1, dtype=np.float64).tolist()  # best path log-probabilities
    return [
        [Hypothesis(tokenizer.decode(ids), score, tokenizer.tidy(ids))]
        for ids, score in zip(_collapse(best, valid), totals)
    ]
