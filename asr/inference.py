"""Transcribing files and evaluating a manifest with a loaded :class:`Recognizer`.

Audio is read by a thread pool while the model decodes the previous chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.audio import AudioError, load_audio
from asr.decode import DecoderConfig, Emission, decode_batch
from asr.manifest import read_manifest
from asr.metrics import ErrorCounts, score, write_report
from asr.recognizer import Recognizer
from asr.timing import Word, word_timings

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


def _chunks(paths: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(paths), size):
        yield paths[i : i + size]


def transcribe_files(
    model: Recognizer,
    paths: Sequence[str | Path],
    chunk: int = 64,
    max_batch_seconds: float = 200.0,
    timestamps: bool = False,
) -> list[Transcript]:
    """Greedy transcripts of audio files; an unreadable file gets its one-line error instead.

    With ``timestamps`` each file is aligned on its own and its transcript carries timed words.
    """
    paths = [str(p) for p in paths]
    out: list[Transcript] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = [pool.submit(lambda c=c: [_load(p) for p in c]) for c in _chunks(paths, chunk)]
        for names, future in zip(_chunks(paths, chunk), pending):
            loaded = future.result()
            good = [i for i, w in enumerate(loaded) if not isinstance(w, AudioError)]
            if timestamps:
                timed = {i: word_timings(model, loaded[i]) for i in good}
                texts = {i: " ".join(w.text for w in words) for i, words in timed.items()}
            else:
                timed = {}
                texts = dict(zip(good, model.transcribe([loaded[i] for i in good], max_batch_seconds)))
            for i, name in enumerate(names):
                if i in texts:
                    out.append(Transcript(name, texts[i], words=timed.get(i)))
                else:
                    out.append(Transcript(name, None, str(loaded[i])))
    return out


def decode_files(
    model: Recognizer,
    paths: Sequence[str | Path],
    decoder: DecoderConfig,
    processes: int = 1,
    chunk: int = 64,
) -> list[Transcript]:
    """Transcripts of audio files with ``decoder`` (beam search spread over ``processes``)."""
    if decoder.kind == "greedy":
        return transcribe_files(model, paths, chunk)
    paths = [str(p) for p in paths]
    emissions: dict[int, Emission] = {}
    errors: dict[int, str] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = [pool.submit(lambda c=c: [_load(p) for p in c]) for c in _chunks(paths, chunk)]
        for start, future in zip(range(0, len(paths), chunk), pending):
            loaded = future.result()
            good = [i for i, w in enumerate(loaded) if not isinstance(w, AudioError)]
            errors.update({start + i: str(w) for i, w in enumerate(loaded) if isinstance(w, AudioError)})
            emissions.update(zip([start + i for i in good], model.emissions([loaded[i] for i in good])))
    keys = sorted(emissions)
    hyps = dict(zip(keys, decode_batch(model.tokenizer, decoder, [emissions[k] for k in keys], processes)))
    return [
        Transcript(p, hyps[i][0].text if hyps[i] else "") if i in hyps else Transcript(p, None, errors[i])
        for i, p in enumerate(paths)
    ]


def evaluate_manifest(
    model: Recognizer,
    manifest: str | Path,
    report: str | Path | None = None,
    decoder: DecoderConfig | None = None,
    processes: int = 1,
) -> tuple[ErrorCounts, int]:
    """Corpus WER/CER counts over a manifest and the number of unreadable files skipped.

    ``report`` gets one JSON line per utterance (reference, hypothesis, errors). The decoder defaults to
    greedy.
    """
    utts = read_manifest(manifest)
    results = decode_files(model, [u.audio_filepath for u in utts], decoder or DecoderConfig(), processes)
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
