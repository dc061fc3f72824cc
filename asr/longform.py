"""Audio of any length with bounded memory: overlapping windows, merged by ownership.

Algorithm (run by :meth:`asr.inference.Transcriber.transcribe` for inputs longer than a window)
-----------------------------------------------------------------------------------------------------
1. The audio comes block by block, never whole, as 16 kHz mono pieces (:func:`asr.audio.stream_audio`:
   a stream resampler carries its filter state across blocks, so block edges leave no clicks).
2. The samples are cut into windows of ``window_s`` seconds that start every ``window_s - overlap_s``
   seconds, so neighbours share ``overlap_s`` seconds (:func:`windows`). The last window runs from its start
   to the end of the audio (it may be shorter).
3. A few windows at a time are run through the model together; each window is decoded (greedy or beam
   search) and its words timed by forced alignment on that window's own frames, then shifted by the
   window's start.
4. Merge (:func:`owned_words`): each window *owns* the span from ``start + overlap/2`` to
   ``end - overlap/2`` (the first window from 0, the last to the end). The owned spans tile the audio without
   gap or overlap, and each window keeps only the words whose midpoint, as it times them, lies in its span:
   a word its windows time alike is kept once, but one whose midpoint two windows place on different sides
   of a boundary is dropped or doubled.

This module imports no torch, so the ``asr`` command's ``--help`` can show its defaults quickly.

Memory holds the current window, a small batch of windows and the list of words, whatever the length.
With beam search and an LM, the LM's context starts afresh in each window.

Limit: a word is transcribed whole only if some window holds all of it. A word lies wholly inside the
window owning its midpoint unless it is longer than ``overlap/2`` on the side of a boundary; such a word
(or one spoken across the cut) may come out clipped, split or missed. Keep ``overlap_s`` comfortably above
twice the longest word, and note that the model also sees less context near a window's edge.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.errors import UsageError

if TYPE_CHECKING:
    from asr.timing import Word

WINDOWS_PER_BATCH = 4  # windows run through the model together
WINDOW_S = 30.0  # inputs longer than this are transcribed in overlapping windows of this length
OVERLAP_S = 4.0  # seconds shared by neighbouring windows: well over twice the longest word

Window = tuple[int, np.ndarray, bool]  # (start sample, 16 kHz samples, is last)


def window_plan(window_s: float, overlap_s: float, min_samples: int) -> tuple[int, int]:
    """(window, hop) in samples; :class:`UsageError` unless both make sense in samples.

    A window must hold at least ``min_samples`` (the model's shortest input) and the overlap at most half
    of it, so the hop is at least half a window: no sample goes through the model more than twice, and
    the number of windows is bounded by twice the audio's length over the window.
    """
    for name, value in (("window", window_s), ("overlap", overlap_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UsageError(f"{name}: need a finite number of seconds, got {value!r}")
    window = int(round(window_s * SAMPLE_RATE))
    overlap = int(round(overlap_s * SAMPLE_RATE))
    if window < min_samples:
        raise UsageError(
            f"window {window_s:g} s is shorter than the model's shortest input "
            f"({min_samples / SAMPLE_RATE:g} s)"
        )
    if not 0 <= overlap <= window // 2:
        raise UsageError(
            f"overlap must lie between 0 and half the window, got {overlap_s:g} s of {window_s:g} s"
        )
    return window, window - overlap


def windows(pieces: Iterable[np.ndarray], window: int, hop: int) -> Iterator[Window]:
    """(start sample, samples, is last) per window of ``window`` samples every ``hop`` samples of the audio
    given as consecutive ``pieces``."""
    if not 0 < hop <= window:
        raise ValueError(f"need 0 < hop <= window, got hop={hop} window={window}")
    buffer = np.zeros(0, np.float32)  # samples from ``start`` on
    start = 0
    pending: tuple[int, np.ndarray] | None = None  # held back until we know whether it is the last
    for piece in pieces:
        buffer = np.concatenate([buffer, piece])
        while len(buffer) >= window:
            if pending is not None:
                yield *pending, False
            pending = (start, buffer[:window].copy())
            buffer, start = buffer[hop:], start + hop
    covered = pending[0] + window if pending is not None else 0  # end of the last full window
    if pending is None or start + len(buffer) > covered:  # audio beyond the last full window
        if pending is not None:
            yield *pending, False
        pending = (start, buffer)
    yield *pending, True


def owned_words(batch: Sequence[Window], timed: Sequence[Sequence[Word]], overlap: float) -> list[Word]:
    """The words each window of ``batch`` owns (``timed``: its words, timed from its own start), shifted to
    the audio's time, in order; ``overlap`` in seconds."""
    words: list[Word] = []
    for (start, wave, last), window_words in zip(batch, timed):
        t0 = start / SAMPLE_RATE
        lo = t0 + overlap / 2 if start > 0 else float("-inf")
        hi = t0 + len(wave) / SAMPLE_RATE - overlap / 2 if not last else float("inf")
        for w in window_words:
            s, e = round(w.start + t0, 3), round(w.end + t0, 3)
            if lo <= (s + e) / 2 < hi:
                words.append(dataclasses.replace(w, start=s, end=e))
    return words
