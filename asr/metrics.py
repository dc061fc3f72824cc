"""Corpus-level WER and CER from jiwer counts, per-utterance reports, and the parts of a scoring report.

WER is the sum of word errors over the sum of reference words (never a mean of per-utterance rates); with no
reference words at all it is undefined, NaN (``None`` in JSON, "n/a" printed), never a rate over zero words.
References and hypotheses are normalised with the same rules as training text unless ``normalize=False``
(then only runs of whitespace are collapsed). A :class:`ScoreReport` adds word alignments, the most
frequent confusions and bootstrap confidence intervals to the counts.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import jiwer
import numpy as np

from asr.outputs import write_text_atomic
from asr.text import normalize_text


@dataclass
class ErrorCounts:
    """Edit-distance counts; add them up across utterances, batches and ranks."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    words: int = 0
    char_errors: int = 0
    chars: int = 0

    @property
    def word_errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """Word errors per reference word; NaN without reference words (then any error is an insertion, and a
        rate over zero words is undefined: say so rather than print 400%)."""
        return self.word_errors / self.words if self.words else math.nan

    @property
    def cer(self) -> float:
        """Character errors per reference character; NaN without reference characters."""
        return self.char_errors / self.chars if self.chars else math.nan

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def as_list(self) -> list[int]:
        return [getattr(self, f.name) for f in fields(self)]


def rate_or_none(rate: float, digits: int | None = None) -> float | None:
    """A rate for JSON (rounded to ``digits`` if given), or None where it is undefined (NaN: no reference
    words or characters)."""
    if math.isnan(rate):
        return None
    return rate if digits is None else round(rate, digits)


def format_rate(rate: float) -> str:
    """A rate in percent for people: "12.34%", or "n/a" where it is undefined (no reference words)."""
    return "n/a" if math.isnan(rate) else f"{100 * rate:.2f}%"


def _prepare(text: str, normalize: bool) -> str:
    return normalize_text(text) if normalize else " ".join(text.split())


def utterance_errors(reference: str, hypothesis: str, normalize: bool = True) -> ErrorCounts:
    """Counts for one reference/hypothesis pair (normalised unless ``normalize=False``)."""
    ref, hyp = _prepare(reference, normalize), _prepare(hypothesis, normalize)
    w = jiwer.process_words(ref, hyp)
    c = jiwer.process_characters(ref, hyp)
    return ErrorCounts(
        w.substitutions,
        w.deletions,
        w.insertions,
        len(ref.split()),
        c.substitutions + c.deletions + c.insertions,
        len(ref),
    )


def _check_lengths(references: Sequence[str], hypotheses: Sequence[str]) -> None:
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")


def score(
    references: Sequence[str], hypotheses: Sequence[str], normalize: bool = True
) -> tuple[ErrorCounts, list[ErrorCounts]]:
    """Corpus counts and the counts of each utterance."""
    _check_lengths(references, hypotheses)
    per_utt = [utterance_errors(r, h, normalize) for r, h in zip(references, hypotheses)]
    return sum(per_utt, ErrorCounts()), per_utt


def write_report(
    path: str | Path,
    ids: Iterable[str],
    references: Iterable[str],
    hypotheses: Iterable[str],
    counts: Iterable[ErrorCounts],
) -> None:
    """One JSON line per utterance: id, reference, hypothesis, its error counts and WER (null without
    reference words), written atomically (:class:`~asr.errors.OutputError` naming the file)."""
    rows = [
        {"id": uid, "reference": ref, "hypothesis": hyp, **asdict(c), "wer": rate_or_none(c.wer, 4)}
        for uid, ref, hyp, c in zip(ids, references, hypotheses, counts)
    ]
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


# --- scoring reports -------------------------------------------------------------------------------------


def word_alignment(
    references: Sequence[str], hypotheses: Sequence[str], normalize: bool = True
) -> jiwer.WordOutput:
    """jiwer's word alignment of every pair (after the same text preparation as :func:`score`)."""
    _check_lengths(references, hypotheses)
    if not references:
        raise ValueError("nothing to align: no utterances")
    return jiwer.process_words(
        [_prepare(r, normalize) for r in references], [_prepare(h, normalize) for h in hypotheses]
    )


@dataclass
class Confusions:
    """How often each word was substituted (reference -> hypothesis), deleted and inserted."""

    substitutions: Counter[tuple[str, str]]
    deletions: Counter[str]
    insertions: Counter[str]

    @classmethod
    def from_alignment(cls, alignment: jiwer.WordOutput) -> Confusions:
        subs: Counter[tuple[str, str]] = Counter()
        dels: Counter[str] = Counter()
        ins: Counter[str] = Counter()
        for ref, hyp, chunks in zip(alignment.references, alignment.hypotheses, alignment.alignments):
            for c in chunks:
                if c.type == "substitute":  # jiwer's substitution chunks pair words one to one
                    subs.update(
                        zip(ref[c.ref_start_idx : c.ref_end_idx], hyp[c.hyp_start_idx : c.hyp_end_idx])
                    )
                elif c.type == "delete":
                    dels.update(ref[c.ref_start_idx : c.ref_end_idx])
                elif c.type == "insert":
                    ins.update(hyp[c.hyp_start_idx : c.hyp_end_idx])
        return cls(subs, dels, ins)

    def top(self, n: int = 10) -> dict[str, list[dict]]:
        """The ``n`` most frequent of each kind, ties in alphabetical order, as plain data."""

        def most(counter: Counter) -> list:
            return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

        return {
            "substitutions": [
                {"reference": r, "hypothesis": h, "count": k} for (r, h), k in most(self.substitutions)
            ],
            "deletions": [{"word": w, "count": k} for w, k in most(self.deletions)],
            "insertions": [{"word": w, "count": k} for w, k in most(self.insertions)],
        }


BOOTSTRAP_CHUNK = 1 << 22  # resampled utterance indices held in memory at once


def bootstrap_ci(
    errors: Sequence[int] | np.ndarray,
    totals: Sequence[int] | np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the corpus rate sum(errors) / sum(totals).

    Utterances are resampled with replacement ``n_resamples`` times from a generator seeded with ``seed``,
    so the interval is the same for the same inputs and seed.
    """
    errors, totals = np.asarray(errors, np.int64), np.asarray(totals, np.int64)
    n = errors.size
    if n == 0 or totals.size != n:
        raise ValueError(
            f"bootstrap needs matching non-empty counts, got {n} errors and {totals.size} totals"
        )
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    rng = np.random.default_rng(seed)
    rates = np.empty(n_resamples)
    step = max(1, BOOTSTRAP_CHUNK // n)
    for start in range(0, n_resamples, step):
        rows = min(step, n_resamples - start)
        idx = rng.integers(0, n, size=(rows, n))  # (rows, n) utterance indices, one resample per row
        words = totals[idx].sum(1)
        rates[start : start + rows] = np.where(words > 0, errors[idx].sum(1) / np.maximum(words, 1), np.nan)
    if np.isnan(rates).all():  # no reference words in any resample: the rate is undefined
        return math.nan, math.nan
    low, high = np.nanquantile(rates, [0.025, 0.975])
    return float(low), float(high)


@dataclass
class ScoreReport:
    """Everything a scoring run reports: counts, alignments, confusions and 95% intervals."""

    total: ErrorCounts
    per_utt: list[ErrorCounts]
    alignment: jiwer.WordOutput
    confusions: Confusions
    wer_ci: tuple[float, float]
    cer_ci: tuple[float, float]
    normalized: bool
    n_resamples: int
    seed: int

    def summary(self, top: int = 10) -> dict:
        """A JSON-able summary: rates, counts, intervals, bootstrap settings and the top confusions."""
        t = self.total
        return {
            "utterances": len(self.per_utt),
            "normalized": self.normalized,
            "wer": rate_or_none(t.wer),
            "wer_ci95": [rate_or_none(r) for r in self.wer_ci],
            "cer": rate_or_none(t.cer),
            "cer_ci95": [rate_or_none(r) for r in self.cer_ci],
            "word_errors": t.word_errors,
            **asdict(t),
            "bootstrap": {"resamples": self.n_resamples, "seed": self.seed},
            "confusions": self.confusions.top(top),
        }

    def alignments_text(self, ids: Sequence[str]) -> str:
        """Each utterance's alignment as jiwer draws it, under a header with its id and counts."""
        blocks = []
        for i, (uid, c) in enumerate(zip(ids, self.per_utt, strict=True)):
            one = dataclasses.replace(
                self.alignment,
                references=self.alignment.references[i : i + 1],
                hypotheses=self.alignment.hypotheses[i : i + 1],
                alignments=self.alignment.alignments[i : i + 1],
            )
            drawing = jiwer.visualize_alignment(one, show_measures=False, skip_correct=False)
            body = drawing.partition("\n\n")[2]  # drop jiwer's "=== SENTENCE 1 ===" header
            header = f"=== {uid} === S={c.substitutions} D={c.deletions} I={c.insertions} N={c.words}"
            blocks.append(f"{header}\n{body.rstrip()}\n")
        return "\n".join(blocks)


def score_report(
    references: Sequence[str],
    hypotheses: Sequence[str],
    normalize: bool = True,
    n_resamples: int = 1000,
    seed: int = 0,
) -> ScoreReport:
    """Score paired utterances: counts, word alignments, confusions and bootstrap WER/CER intervals."""
    alignment = word_alignment(references, hypotheses, normalize)
    total, per_utt = score(references, hypotheses, normalize)
    counts = np.array([(u.word_errors, u.words, u.char_errors, u.chars) for u in per_utt])  # (N, 4)
    return ScoreReport(
        total,
        per_utt,
        alignment,
        Confusions.from_alignment(alignment),
        bootstrap_ci(counts[:, 0], counts[:, 1], n_resamples, seed),
        bootstrap_ci(counts[:, 2], counts[:, 3], n_resamples, seed),
        normalize,
        n_resamples,
        seed,
    )
