"""Batching shared by training and inference, and by both backends (torch and onnxruntime): the padded-audio
budget, packing by length, zero-padding, and model outputs as NumPy.

Imports no torch (the config's default budget is read from here, and the ONNX backend runs without it); the
helpers that take arrays take NumPy arrays or torch tensors alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from asr.audio import SAMPLE_RATE

MAX_BATCH_SECONDS = 200.0  # padded audio seconds per batch (longest item times count), training and inference

Rows = TypeVar("Rows")  # np.ndarray or torch.Tensor


def pack_sorted(lengths: Sequence[float], budget: float) -> list[list[int]]:
    """Indices sorted by length (stable), cut into batches whose longest item times their count stays within
    ``budget``, so padding is small; an item longer than the budget gets a batch of its own."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:  # ascending, so the newest item is the batch's longest
        if current and lengths[i] * (len(current) + 1) > budget:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def zero_pad(rows: Sequence[Rows], width: int = 0) -> Rows:
    """1-D arrays of one dtype (NumPy arrays or torch tensors) -> (B, max(width, longest)) of the same kind,
    each row first and zeros after it."""
    first: Any = rows[0]
    shape = (len(rows), max(width, *(len(r) for r in rows)))
    out = np.zeros(shape, first.dtype) if isinstance(first, np.ndarray) else first.new_zeros(shape)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def pad_waves(waves: Sequence[np.ndarray], min_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Waveforms -> (B, S) float32, zero-padded, and their lengths (B,) int64, each at least ``min_samples``
    (a model's shortest input: shorter ones are padded up to it)."""
    lens = np.array([max(len(w), min_samples) for w in waves], dtype=np.int64)
    return zero_pad([np.asarray(w, dtype=np.float32) for w in waves], int(lens.max())), lens


def padded_batches(
    waves: Sequence[np.ndarray], min_samples: int, max_batch_seconds: float = MAX_BATCH_SECONDS
) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """16 kHz waveforms in batches of similar length within the padded-seconds budget: (indices into
    ``waves``, :func:`pad_waves` of them)."""
    lengths = [max(len(w), min_samples) for w in waves]
    for idx in pack_sorted(lengths, max_batch_seconds * SAMPLE_RATE):
        yield idx, *pad_waves([waves[i] for i in idx], min_samples)


def to_numpy(array: Any) -> np.ndarray:
    """A NumPy array as it is, or a torch tensor (any device, any float type) copied to a NumPy array;
    floating point becomes float32 unless it is float64."""
    if isinstance(array, np.ndarray):
        return array
    array = array.detach().cpu()
    if array.is_floating_point() and array.element_size() < 4:  # float16, bfloat16: NumPy has no bfloat16
        array = array.float()
    return array.numpy()


def unpad(log_probs: Any, lens: Any) -> list[tuple[np.ndarray, int]]:
    """Each row of a batch of log-probabilities (B, T', V) cut to its ``lens`` (B,) valid frames: a
    contiguous float32 NumPy array (T, V) and T."""
    log_probs, n = to_numpy(log_probs).astype(np.float32, copy=False), to_numpy(lens).tolist()
    return [(np.ascontiguousarray(log_probs[row, : n[row]]), n[row]) for row in range(len(n))]


def gather_emissions(
    batches: Iterator[tuple[list[int], Any, Any]], count: int
) -> list[tuple[np.ndarray, int]]:
    """Every input's (T', V) float32 log-probabilities and T', in input order, from a model's ``batches``:
    (indices into the inputs, log_probs (B, T', V), lens (B,)) covering ``count`` inputs."""
    out: list[tuple[np.ndarray, int]] = [(np.zeros((0, 0), np.float32), 0)] * count
    for idx, log_probs, lens in batches:
        for i, emission in zip(idx, unpad(log_probs, lens)):
            out[i] = emission
    return out
