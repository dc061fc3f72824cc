"""CTC decoding: batched greedy search."""

from __future__ import annotations

from torch import Tensor

from asr.text import BLANK_ID


def greedy_decode(log_probs: Tensor, lens: Tensor) -> list[list[int]]:
    """Best path per frame, repeats merged, blanks removed.

    log_probs: (B, T, V); lens: (B,) valid frames. Returns token ids per utterance.
    """
    best = log_probs.argmax(dim=-1)  # (B, T)
    new = best != best.roll(1, dims=1)  # a token differing from the previous frame's
    new[:, 0] = True
    valid = new & (best != BLANK_ID)
    valid &= best.new_ones(best.shape).cumsum(1) <= lens.to(best.device)[:, None]
    best, valid = best.cpu(), valid.cpu()
    return [row[mask].tolist() for row, mask in zip(best, valid)]
