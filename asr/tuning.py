"""Tuning beam search's LM weight and word score on a dev set: the one grid, and the one search over it.

The model runs once over the dev set (:meth:`asr.inference.Transcriber.emit`); every grid point then only
decodes those log-probabilities again, in a :class:`asr.decoding.DecodePool`. ``tools/tune_lm.py`` and the
recipes (:mod:`asr.recipe`) both tune here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from asr.decoding import DecodePool, DecoderConfig
from asr.errors import DataError
from asr.inference import Emitted
from asr.metrics import ErrorCounts, score

LM_WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)  # times the LM's log10 probability
WORD_SCORES = (-1.0, 0.0, 1.0, 2.0)  # added per word


@dataclass(frozen=True)
class GridPoint:
    """The corpus error counts of one (lm_weight, word_score) pair on the dev set."""

    lm_weight: float
    word_score: float
    counts: ErrorCounts


@dataclass(frozen=True)
class Tuned:
    """The outcome of a grid search: the decoder with the best pair, that pair's counts, every point."""

    decoder: DecoderConfig
    best: GridPoint
    grid: list[GridPoint]


def tune_lm(
    emitted: Emitted,
    base: DecoderConfig,
    pool: DecodePool,
    lm_weights: Sequence[float] = LM_WEIGHTS,
    word_scores: Sequence[float] = WORD_SCORES,
) -> Tuned:
    """Decode ``emitted`` with ``base`` at every (lm_weight, word_score), LM weights outer; the best pair has
    the lowest WER, then the lowest CER (the first of ties). Raises DataError when nothing was readable."""
    if not emitted.utterances:
        raise DataError("no readable utterance to tune the LM weights on")
    references = [u.text for u in emitted.utterances]
    grid = []
    for weight in lm_weights:
        for word_score in word_scores:
            config = dataclasses.replace(base, lm_weight=weight, word_score=word_score)
            hyps = [h[0].text if h else "" for h in pool.decode(config, emitted.emissions)]
            grid.append(GridPoint(weight, word_score, score(references, hyps)[0]))
    best = min(grid, key=lambda p: (p.counts.wer, p.counts.cer))
    return Tuned(dataclasses.replace(base, lm_weight=best.lm_weight, word_score=best.word_score), best, grid)
