"""Transcribing audio of any length with bounded memory: overlapping windows, merged by ownership.

Algorithm
---------
1. The file is read block by block, never whole, as 16 kHz mono pieces (:func:`asr.audio.stream_audio`:
   a stream resampler carries its filter state across blocks, so block edges leave no clicks).
2. The 16 kHz samples are cut into windows of ``window_s`` seconds that start every
   ``window_s - overlap_s`` seconds, so neighbours share ``overlap_s`` seconds. The last window runs from
   its start to the end of the file (it may be shorter).
3. A few windows at a time are run through the model together; each window is decoded (greedy or beam
   search, as :class:`asr.decode.DecoderConfig` says) and its words timed by forced alignment on that
   window's own frames (:func:`asr.timing.timed_hypotheses`), then shifted by the window's start.
4. Merge: each window *owns* the span from ``start + overlap/2`` to ``end - overlap/2`` (the first window
   from 0, the last to the end of the file). The owned spans tile the file without gap or overlap, and a
   word is kept only from the window that owns its midpoint, so no word is lost or doubled at a boundary.

Memory holds the current window, a small batch of windows and the list of words, whatever the length.
With beam search and an LM, the LM's context starts afresh in each window.

Limit: a word is transcribed whole only if some window holds all of it. A word lies wholly inside the
window owning its midpoint unless it is longer than ``overlap/2`` on the side of a boundary; such a word
(or one spoken across the cut) may come out clipped, split or missed. Keep ``overlap_s`` comfortably above
twice the longest word, and note that the model also sees less context near a window's edge.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from asr.audio import SAMPLE_RATE, stream_audio
from asr.decode import DecodePool, DecoderConfig
from asr.recognizer import Recognizer
from asr.timing import Word, frame_seconds, timed_hypotheses

WINDOWS_PER_BATCH = 4  # windows run through the model together
WINDOW_S = 30.0  # files longer than this are transcribed in overlapping windows of this length
OVERLAP_S = 4.0  # seconds shared by neighbouring windows: well over twice the longest word


def check_windows(window_s: float, overlap_s: float) -> None:
    """ValueError unless 0 <= overlap_s < window_s."""
    if not 0 <= overlap_s < window_s:
        raise ValueError(f"need 0 <= overlap_s < window_s, got window_s={window_s} overlap_s={overlap_s}")


def _windows(path: str | Path, window: int, hop: int) -> Iterator[tuple[int, np.ndarray, bool]]:
    """(start sample, 16 kHz samples, is last) per window of ``window`` samples every ``hop`` samples."""
    buffer = np.zeros(0, np.float32)  # samples from ``start`` on
    start = 0
    pending: tuple[int, np.ndarray] | None = None  # held back until we know whether it is the last
    for piece in stream_audio(path):
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


def _run(
    model: Recognizer,
    batch: list[tuple[int, np.ndarray, bool]],
    overlap: float,
    decoder: DecoderConfig,
    pool: DecodePool,
) -> list[Word]:
    """The owned, shifted words of a batch of (start sample, samples, is last) windows, in time order."""
    emissions = model.emissions([w for _, w, _ in batch])
    hyps = pool.decode(decoder, emissions)
    words: list[Word] = []
    for (start, wave, last), timed in zip(
        batch, timed_hypotheses(emissions, hyps, model.tokenizer, frame_seconds(model.cfg))
    ):
        t0 = start / SAMPLE_RATE
        lo = t0 + overlap / 2 if start > 0 else float("-inf")
        hi = t0 + len(wave) / SAMPLE_RATE - overlap / 2 if not last else float("inf")
        for w in timed:
            s, e = round(w.start + t0, 3), round(w.end + t0, 3)
            if lo <= (s + e) / 2 < hi:
                words.append(Word(w.text, s, e, w.confidence))
    return words


def transcribe_long(
    model: Recognizer,
    path: str | Path,
    window_s: float = WINDOW_S,
    overlap_s: float = OVERLAP_S,
    decoder: DecoderConfig | None = None,
    pool: DecodePool | None = None,
) -> list[Word]:
    """Timed words of an audio file of any length, read and decoded in overlapping windows.

    ``decoder`` defaults to greedy; ``pool`` (one is made when not given) lets many files share beam search
    decoders and worker processes. Raises :class:`AudioError` for an unreadable file and ValueError unless
    0 <= overlap_s < window_s. See the module docstring for the algorithm and its limit.
    """
    check_windows(window_s, overlap_s)
    if pool is None:
        with DecodePool(model.tokenizer) as own:
            return transcribe_long(model, path, window_s, overlap_s, decoder, own)
    window = int(round(window_s * SAMPLE_RATE))
    hop = window - int(round(overlap_s * SAMPLE_RATE))
    overlap = (window - hop) / SAMPLE_RATE
    words: list[Word] = []
    batch: list[tuple[int, np.ndarray, bool]] = []
    for item in _windows(path, window, hop):
        batch.append(item)
        if len(batch) == WINDOWS_PER_BATCH or item[2]:
            words += _run(model, batch, overlap, decoder or DecoderConfig(), pool)
            batch = []
    return words
