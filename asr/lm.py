"""Word n-gram language models: interpolated modified Kneser-Ney estimation written as ARPA.

Smoothing follows Chen & Goodman (1998) as KenLM's lmplz does it: counts of the highest order are raw counts;
lower orders use continuation counts (distinct left neighbours), except n-grams starting with <s>; three
discounts per order from its counts of counts; every order interpolated with the one below, unigrams with the
uniform distribution over the vocabulary (</s> and <unk> included, <s> excluded). An order whose counts of
counts are too sparse for the estimates (a toy corpus) gets lmplz's fallback discounts 0.5, 1, 1.5. The ARPA
file stores each interpolated probability as log10, and the interpolation weight of each context as its
backoff. Fine for transcripts (about 2 s for 180k words); use KenLM's lmplz for large text corpora.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable

from asr.decoding import UNK
from asr.text import normalize_text

BOS, EOS = "<s>", "</s>"
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
NEVER = -99.0  # log10 probability written for <s>, which is never predicted

log = logging.getLogger(__name__)
Ngram = tuple[str, ...]


def count_ngrams(sentences: Iterable[str], order: int) -> list[Counter[Ngram]]:
    """Raw counts of the 1- to ``order``-grams of normalised sentences wrapped in <s> ... </s>."""
    counts: list[Counter[Ngram]] = [Counter() for _ in range(order)]
    for sentence in sentences:
        words = normalize_text(sentence).split()
        if not words:
            continue
        padded = [BOS, *words, EOS]
        for n in range(1, order + 1):
            for i in range(len(padded) - n + 1):
                counts[n - 1][tuple(padded[i : i + n])] += 1
    return counts


def adjusted_counts(raw: list[Counter[Ngram]]) -> list[dict[Ngram, int]]:
    """Kneser-Ney counts: raw for the highest order and for n-grams starting with <s>, else the number of
    distinct words seen just before the n-gram."""
    adjusted: list[dict[Ngram, int]] = [dict(raw[-1])]
    for n in range(len(raw) - 1, 0, -1):  # orders len(raw)-1 .. 1, from the order above
        left = Counter(gram[1:] for gram in raw[n])
        adjusted.insert(0, {g: c if g[0] == BOS else left[g] for g, c in raw[n - 1].items()})
    return adjusted


def discounts(counts: Iterable[int]) -> tuple[float, float, float]:
    """Chen & Goodman's D1, D2, D3+ from the counts of one order (the fallback when too sparse)."""
    t = Counter(c for c in counts if c <= 4)
    if any(t[k] == 0 for k in (1, 2, 3, 4)):
        return FALLBACK_DISCOUNTS
    y = t[1] / (t[1] + 2 * t[2])
    d = (1 - 2 * y * t[2] / t[1], 2 - 3 * y * t[3] / t[2], 3 - 4 * y * t[4] / t[3])
    if not all(0 < dk < k for k, dk in enumerate(d, 1)):
        return FALLBACK_DISCOUNTS
    return d


def _discount(count: int, d: tuple[float, float, float]) -> float:
    return 0.0 if count == 0 else d[min(count, 3) - 1]


def kneser_ney(
    sentences: Iterable[str], order: int
) -> tuple[list[dict[Ngram, float]], list[dict[Ngram, float]]]:
    """Interpolated modified Kneser-Ney: per order, n-gram -> probability and context -> backoff weight.

    ``probs[n - 1]`` holds the n-grams of order n; ``backoffs[n - 1]`` the weight of each n-gram as a context
    of order n + 1 (the probability mass its discounts moved to the order below).
    """
    if order < 2:
        raise ValueError(f"order must be at least 2 (KenLM loads no unigram-only model), got {order}")
    raw = count_ngrams(sentences, order)
    if not raw[0]:
        raise ValueError("the corpus has no words")
    adjusted = adjusted_counts(raw)
    adjusted[0] = {g: c for g, c in adjusted[0].items() if g != (BOS,)}  # <s> is never predicted
    vocab = sorted({g[0] for g in adjusted[0]} | {EOS, UNK})
    probs: list[dict[Ngram, float]] = []
    backoffs: list[dict[Ngram, float]] = [{} for _ in range(order)]
    for n in range(1, order + 1):
        counts = adjusted[n - 1] if n > 1 else {(w,): adjusted[0].get((w,), 0) for w in vocab}
        if not counts:
            raise ValueError(f"the corpus has no {n}-grams: use an order below {n}")
        d = discounts(counts.values())
        if d == FALLBACK_DISCOUNTS:
            log.warning("order %d: counts too sparse for discount estimates, using %s", n, d)
        totals: dict[Ngram, int] = defaultdict(int)
        mass: dict[Ngram, float] = defaultdict(float)
        for gram, c in counts.items():
            totals[gram[:-1]] += c
            mass[gram[:-1]] += _discount(c, d)
        gamma = {h: mass[h] / totals[h] for h in totals}
        level: dict[Ngram, float] = {}
        for gram, c in counts.items():
            h = gram[:-1]
            lower = 1 / len(vocab) if n == 1 else probs[n - 2][gram[1:]]
            level[gram] = (c - _discount(c, d)) / totals[h] + gamma[h] * lower
        probs.append(level)
        if n > 1:
            backoffs[n - 2] = gamma
    return probs, backoffs


def build_arpa(sentences: Iterable[str], order: int = 3) -> str:
    """The ARPA text of an interpolated modified Kneser-Ney LM of ``order`` over ``sentences``."""
    probs, backoffs = kneser_ney(sentences, order)
    probs[0][(BOS,)] = 0.0
    lines = ["\\data\\", *(f"ngram {n}={len(p)}" for n, p in enumerate(probs, 1)), ""]
    for n, level in enumerate(probs, 1):
        lines.append(f"\\{n}-grams:")
        for gram in sorted(level):
            p = level[gram]
            row = f"{math.log10(p) if p > 0 else NEVER:.7f}\t{' '.join(gram)}"
            if gram in backoffs[n - 1]:
                row += f"\t{math.log10(backoffs[n - 1][gram]):.7f}"
            lines.append(row)
        lines.append("")
    lines.append("\\end\\")
    return "\n".join(lines) + "\n"
