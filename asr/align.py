"""CTC forced alignment in NumPy: the best path of a known token sequence through a model's output frames.

Viterbi over the transcript's blank-interleaved labels (blank, y1, blank, y2, ..., yL, blank): from one frame
to the next a path stays on its label, moves to the next one, or skips the blank between two different
tokens. Each frame is one vectorised step over all labels, in float32, keeping two booleans per frame and
label for the trace back, which breaks ties as torchaudio does (stay, then move, then skip). The path equals
``torchaudio.functional.forced_align``'s on model emissions, without torch (``tests/test_align.py``); where
exact ties abound torchaudio 2.11's CPU kernel can return a path scoring below the best, this one never does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from asr.text import BLANK_ID, ctc_min_frames


@dataclass(frozen=True)
class TokenSpan:
    """One token of an aligned transcript: its frames ``start`` to ``end`` (exclusive) and its mean posterior
    probability over them."""

    token: int
    start: int
    end: int
    score: float


def forced_align(
    log_probs: np.ndarray, targets: Sequence[int], blank: int = BLANK_ID
) -> tuple[np.ndarray, np.ndarray]:
    """The best CTC path of ``targets`` through ``log_probs`` (T, V): each frame's label (T,) int64 and its
    log-probability (T,) float32.

    Raises ValueError for an empty transcript, one holding the blank or an id outside the vocabulary, and
    one too long for T frames (:func:`asr.text.ctc_min_frames`).
    """
    lp = np.ascontiguousarray(log_probs, dtype=np.float32)
    y = np.asarray(targets, dtype=np.int64)
    if lp.ndim != 2 or y.ndim != 1 or not len(y):
        raise ValueError(f"need log_probs (T, V) and a non-empty transcript, got {lp.shape} and {y.shape}")
    if (y == blank).any() or y.min() < 0 or y.max() >= lp.shape[1]:
        raise ValueError(
            f"transcript ids must be tokens of the {lp.shape[1]}-token vocabulary, not the blank"
        )
    if lp.shape[0] < ctc_min_frames(y.tolist()):
        raise ValueError(f"cannot align {len(y)} tokens to {lp.shape[0]} frames")
    labels = np.full(2 * len(y) + 1, blank, dtype=np.int64)
    labels[1::2] = y
    emit = lp[:, labels]  # (T, S)
    skip = np.zeros(len(labels), dtype=bool)  # a token that may follow the previous token directly
    skip[3::2] = y[1:] != y[:-1]
    skip_cost = np.where(skip, 0.0, -np.inf).astype(np.float32)[2:]
    # Forward, one frame at a time over all labels, keeping only each step's choice: ``move`` (from the
    # previous label rather than staying) and ``jump`` (skipping a blank, beating both). Ties stay, then move.
    move = np.zeros(emit.shape, dtype=bool)
    jump = np.zeros(emit.shape, dtype=bool)
    prev = np.full(len(labels), -np.inf, dtype=np.float32)  # best score of a path ending on each label
    prev[:2] = emit[0, :2]
    cur, skipped = np.empty_like(prev), np.empty(len(labels) - 2, dtype=np.float32)
    for t in range(1, len(emit)):
        np.greater(prev[:-1], prev[1:], out=move[t, 1:])
        cur[0] = prev[0]
        np.maximum(prev[1:], prev[:-1], out=cur[1:])
        np.add(prev[:-2], skip_cost, out=skipped)
        np.greater(skipped, cur[2:], out=jump[t, 2:])
        np.maximum(cur[2:], skipped, out=cur[2:])
        cur += emit[t]
        prev, cur = cur, prev
    state = len(labels) - 1 if prev[-1] > prev[-2] else len(labels) - 2
    path = np.empty(len(emit), dtype=np.int64)
    for t in range(len(emit) - 1, 0, -1):
        path[t] = labels[state]
        state -= 2 if jump[t, state] else int(move[t, state])
    path[0] = labels[state]
    return path, lp[np.arange(len(path)), path]


def token_spans(path: np.ndarray, log_probs: np.ndarray, blank: int = BLANK_ID) -> list[TokenSpan]:
    """The tokens of an aligned ``path`` (T,) with their frames, repeats merged and blanks dropped; each
    span's score is the mean of ``exp(log_probs)`` (T,) over its frames."""
    bounds = np.flatnonzero(np.diff(path, prepend=-1, append=-1)).tolist()
    probs = np.exp(log_probs)
    return [
        TokenSpan(int(path[start]), start, end, float(probs[start:end].mean()))
        for start, end in zip(bounds[:-1], bounds[1:])
        if path[start] != blank
    ]
