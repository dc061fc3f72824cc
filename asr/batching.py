"""Batching shared by training and inference: the padded-audio budget, packing by length, zero-padding.

Imports no torch (the config's default budget is read from here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

MAX_BATCH_SECONDS = 200.0  # padded audio seconds per batch (longest item times count), training and inference


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


def zero_pad(rows: Sequence[Tensor], width: int = 0) -> Tensor:
    """1-D tensors of one dtype -> (B, max(width, longest)), each row first and zeros after it."""
    out = rows[0].new_zeros(len(rows), max(width, *(len(r) for r in rows)))
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out
