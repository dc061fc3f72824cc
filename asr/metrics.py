"""Corpus-level WER and CER from jiwer counts, and per-utterance reports.

WER is the sum of word errors over the sum of reference words (never a mean of per-utterance rates).
References and hypotheses are normalised with the same rules as training text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import jiwer

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
        return self.word_errors / max(self.words, 1)

    @property
    def cer(self) -> float:
        return self.char_errors / max(self.chars, 1)

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def as_list(self) -> list[int]:
        return [getattr(self, f.name) for f in fields(self)]


def utterance_errors(reference: str, hypothesis: str) -> ErrorCounts:
    """Counts for one normalised reference/hypothesis pair."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
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


def score(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[ErrorCounts, list[ErrorCounts]]:
    """Corpus counts and the counts of each utterance."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    per_utt = [utterance_errors(r, h) for r, h in zip(references, hypotheses)]
    return sum(per_utt, ErrorCounts()), per_utt


def write_report(
    path: str | Path,
    ids: Iterable[str],
    references: Iterable[str],
    hypotheses: Iterable[str],
    counts: Iterable[ErrorCounts],
) -> None:
    """One JSON line per utterance: id, reference, hypothesis, and its error counts."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for uid, ref, hyp, c in zip(ids, references, hypotheses, counts):
            row = {"id": uid, "reference": ref, "hypothesis": hyp, **asdict(c), "wer": round(c.wer, 4)}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
