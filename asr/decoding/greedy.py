"""Greedy (best path) CTC decoding: the one implementation, batched, on the log-probabilities' device."""

from __future__ import annotations

from torch import Tensor

from asr.decoding.config import Hypothesis
from asr.text import BLANK_ID, Tokenizer


def greedy_ids(log_probs: Tensor, lens: Tensor) -> list[list[int]]:
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


def greedy_hypotheses(tokenizer: Tokenizer, log_probs: Tensor, lens: Tensor) -> list[list[Hypothesis]]:
    """One :class:`Hypothesis` per utterance of log_probs (B, T, V), lens (B,): the best path, its text and
    its log-probability."""
    valid = log_probs.new_ones(log_probs.shape[:2]).cumsum(1) <= lens.to(log_probs.device)[:, None]  # (B, T)
    scores = (log_probs.max(-1).values * valid).sum(1).tolist()  # (B,) best path log-probabilities
    return [
        [Hypothesis(tokenizer.decode(ids), score, tokenizer.tidy(ids))]
        for ids, score in zip(greedy_ids(log_probs, lens), scores)
    ]
