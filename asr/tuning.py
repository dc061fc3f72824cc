"""Tuning beam search's LM weight and word score on a dev set: the one grid, and the one search over it.

The model runs once over the dev set (:meth:`asr.inference.Transcriber.emit`); every grid point then only
decodes those log-probabilities again, in a :class:`asr.decoding.DecodePool`. ``tools/tune_lm.py`` and the
recipes (:mod:`asr.recipe`) both tune here.

The pair chosen is the one inside the grid whose neighbourhood (itself and the eight pairs around it) has
the lowest mean WER, not the single lowest point: on a dev set of a few hundred words one or two lucky words
decide the single lowest point, and it can sit at the grid's edge, past which nothing says the WER stays
low. Tuned on AN4's dev set, eight models' picks made 322 test word errors by this rule, 347 when edge pairs
could be chosen with their neighbourhoods clipped (the twenty-eighth session's rule, which chose a corner for
two of them), and 350 by the lowest point (benchmarks/RESULTS.md, twenty-ninth session).
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
    """Decode ``emitted`` with ``base`` at every (lm_weight, word_score), LM weights outer, and choose a pair
    by :func:`choose`. Raises DataError when nothing was readable."""
    if not emitted.utterances:
        raise DataError("no readable utterance to tune the LM weights on")
    references = [u.text for u in emitted.utterances]
    grid = []
    for weight in lm_weights:
        for word_score in word_scores:
            config = dataclasses.replace(base, lm_weight=weight, word_score=word_score)
            hyps = [h[0].text if h else "" for h in pool.decode(config, emitted.emissions)]
            grid.append(GridPoint(weight, word_score, score(references, hyps)[0]))
    best = choose(grid, len(word_scores))
    return Tuned(dataclasses.replace(base, lm_weight=best.lm_weight, word_score=best.word_score), best, grid)


def _inner(n: int) -> range:
    """The positions along an axis of ``n`` values that have a neighbour on either side (all, when n < 3)."""
    return range(1, n - 1) if n >= 3 else range(n)


def choose(grid: Sequence[GridPoint], columns: int) -> GridPoint:
    """The point of ``grid`` (rows of ``columns`` points), off its edges, whose 3 x 3 neighbourhood has the
    fewest word errors on average; ties go to fewer word errors, then the lower CER, then the first. An axis
    of fewer than 3 values has no inside: there every value is a candidate, its neighbourhood clipped."""
    rows = len(grid) // columns

    def key(index: int) -> tuple[float, int, float]:
        row, column = divmod(index, columns)
        near = [
            grid[r * columns + c].counts.word_errors
            for r in range(max(0, row - 1), min(rows, row + 2))
            for c in range(max(0, column - 1), min(columns, column + 2))
        ]
        return sum(near) / len(near), grid[index].counts.word_errors, grid[index].counts.cer

    return grid[min((r * columns + c for r in _inner(rows) for c in _inner(columns)), key=key)]
