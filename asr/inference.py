"""Transcribing many audio files, and evaluating a manifest, with a loaded :class:`Recognizer`.

Every file's duration is read from its header first. Files up to ``window_s`` seconds are sorted by length
and run through the model in batches of similar length, while a reader thread loads the next chunk of files;
longer files go through :func:`asr.longform.transcribe_long` one at a time, in overlapping windows, so memory
stays bounded whatever the lengths. Both paths decode with the same :class:`asr.decode.DecodePool` and time
words with the same forced alignment (:func:`asr.timing.timed_hypotheses`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.audio import AudioError, audio_duration, load_audio
from asr.decode import DecodePool, DecoderConfig
from asr.longform import OVERLAP_S, WINDOW_S, check_windows, transcribe_long
from asr.manifest import Utterance, read_manifest
from asr.metrics import ErrorCounts, score, write_report
from asr.recognizer import Recognizer
from asr.timing import Word, frame_seconds, timed_hypotheses

log = logging.getLogger(__name__)


@dataclass
class Transcript:
    path: str
    text: str | None  # None when the file could not be read
    error: str | None = None
    words: list[Word] | None = None  # with timestamps=True


def _load(path: str) -> np.ndarray | AudioError:
    try:
        return load_audio(path)
    except AudioError as e:
        return e


def _prefetched(paths: Sequence[str], chunks: list[list[int]]) -> Iterator[tuple[list[int], list]]:
    """(chunk, its loaded waveforms or errors), the next chunk read in a thread while this one is used."""
    with ThreadPoolExecutor(max_workers=1) as reader:
        future = reader.submit(lambda c=chunks[0]: [_load(paths[i]) for i in c]) if chunks else None
        for k, chunk in enumerate(chunks):
            loaded = future.result()
            if k + 1 < len(chunks):
                future = reader.submit(lambda c=chunks[k + 1]: [_load(paths[i]) for i in c])
            yield chunk, loaded


def transcribe_files(
    model: Recognizer,
    paths: Sequence[str | Path],
    decoder: DecoderConfig | None = None,
    timestamps: bool = False,
    window_s: float = WINDOW_S,
    overlap_s: float = OVERLAP_S,
    processes: int = 1,
    chunk: int = 64,
    max_batch_seconds: float = 200.0,
    progress: Callable[[int], object] | None = None,
) -> list[Transcript]:
    """Transcripts of audio files, in order; an unreadable file gets its one-line error instead.

    ``decoder`` defaults to greedy; beam search runs over ``processes`` worker processes. With
    ``timestamps`` each transcript carries its timed words. Files longer than ``window_s`` are read and
    decoded in windows overlapping by ``overlap_s`` (see :mod:`asr.longform`). ``progress`` is called with
    the number of files finished, as they finish.
    """
    check_windows(window_s, overlap_s)
    decoder = decoder or DecoderConfig()
    paths = [str(p) for p in paths]
    out: dict[int, Transcript] = {}
    durations: dict[int, float] = {}
    for i, path in enumerate(paths):
        try:
            durations[i] = audio_duration(path)
        except AudioError as e:
            out[i] = Transcript(path, None, str(e))
    short = sorted((i for i, d in durations.items() if d <= window_s), key=durations.__getitem__)
    long = [i for i, d in durations.items() if d > window_s]
    done = progress or (lambda n: None)
    done(len(paths) - len(durations))
    frame_s = frame_seconds(model.cfg)
    with DecodePool(model.tokenizer, processes) as pool:
        for idx, loaded in _prefetched(paths, [short[k : k + chunk] for k in range(0, len(short), chunk)]):
            good = [(i, w) for i, w in zip(idx, loaded) if not isinstance(w, AudioError)]
            for i, w in zip(idx, loaded):
                if isinstance(w, AudioError):
                    out[i] = Transcript(paths[i], None, str(w))
            emissions = model.emissions([w for _, w in good], max_batch_seconds)
            hyps = pool.decode(decoder, emissions)
            timed = timed_hypotheses(emissions, hyps, model.tokenizer, frame_s) if timestamps else None
            for k, ((i, _), h) in enumerate(zip(good, hyps)):
                out[i] = Transcript(paths[i], h[0].text if h else "", words=timed[k] if timed else None)
            done(len(idx))
        for i in long:
            try:
                words = transcribe_long(model, paths[i], window_s, overlap_s, decoder, pool)
                text = " ".join(w.text for w in words)
                out[i] = Transcript(paths[i], text, words=words if timestamps else None)
            except AudioError as e:
                out[i] = Transcript(paths[i], None, str(e))
            done(1)
    return [out[i] for i in range(len(paths))]


def output_paths(paths: Sequence[str | Path], output_dir: str | Path, suffix: str) -> list[Path]:
    """Where each input's transcript goes under ``output_dir``: its file name with ``suffix`` for its
    extension, in its folder relative to the inputs' common folder, so files of one folder stay side by
    side and same-named files of different folders do not overwrite each other.

    Raises ValueError, naming both, for two different inputs that would still share an output: the same
    name but for the extension, in one folder.
    """
    absolute = [os.path.abspath(p) for p in paths]
    common = os.path.commonpath([os.path.dirname(a) for a in absolute]) if paths else ""
    outs = [
        Path(output_dir, os.path.relpath(os.path.dirname(a), common), Path(a).stem + suffix) for a in absolute
    ]
    first: dict[Path, int] = {}
    for i, out in enumerate(outs):
        j = first.setdefault(out, i)
        if absolute[j] != absolute[i]:
            raise ValueError(f"{paths[j]} and {paths[i]} would both be written to {out}; rename one of them")
    return outs


def evaluate_manifest(
    model: Recognizer,
    manifest: str | Path | Sequence[Utterance],
    report: str | Path | None = None,
    decoder: DecoderConfig | None = None,
    processes: int = 1,
    progress: Callable[[int], object] | None = None,
) -> tuple[ErrorCounts, int]:
    """Corpus WER/CER counts over a manifest (its path, or its utterances already read) and the number of
    unreadable files skipped.

    ``report`` gets one JSON line per utterance (reference, hypothesis, errors). The decoder defaults to
    greedy.
    """
    utts = read_manifest(manifest) if isinstance(manifest, (str, Path)) else manifest
    paths = [u.audio_filepath for u in utts]
    results = transcribe_files(model, paths, decoder, processes=processes, progress=progress)
    kept = [(u, r) for u, r in zip(utts, results) if r.text is not None]
    for r in results:
        if r.text is None:
            log.warning("skipped: %s", r.error)
    refs = [u.text for u, _ in kept]
    hyps = [r.text for _, r in kept]
    total, per_utt = score(refs, hyps)
    if report is not None:
        write_report(report, [u.id for u, _ in kept], refs, hyps, per_utt)
    return total, len(utts) - len(kept)
