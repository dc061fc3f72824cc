"""Word timings from CTC forced alignment, and transcripts as plain text, JSON, SubRip (srt) or WebVTT.

The transcript's tokens are aligned to the model's own output frames (:func:`asr.align.forced_align`, NumPy),
split into words as the tokenizer groups its tokens, and each word gets the time span of its tokens' frames
and a confidence: the mean posterior probability of those frames. Times are frame index x frame duration, with
no correction for the receptive field of the front end, so they can run a frame or so early.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asr.align import forced_align, token_spans
from asr.batching import to_numpy
from asr.decoding import Emission, Hypothesis
from asr.text import BLANK_ID, SPACE, Tokenizer, ctc_min_frames

FORMATS = ("txt", "json", "srt", "vtt")
CUE_SECONDS = 7.0  # a subtitle cue spans at most this long...
CUE_CHARS = 42  # ...and holds at most this many characters (the usual one-line subtitle width)


@dataclass(frozen=True)
class Word:
    """A word, its span in seconds from the start of the audio, and its confidence in [0, 1]."""

    text: str
    start: float
    end: float
    confidence: float


def align_words(log_probs: Any, token_ids: Sequence[int], tokenizer: Tokenizer, frame_s: float) -> list[Word]:
    """Force-align ``token_ids`` to one utterance's ``log_probs`` (T', V) and time each word.

    ``log_probs`` (a NumPy array or a torch tensor) holds the valid frames only. The tokenizer says which
    tokens make each word (:meth:`asr.text.Tokenizer.word_spans`); leading, trailing and repeated separators
    are allowed. Raises ValueError when T' is too short for the transcript (:func:`asr.text.ctc_min_frames`).
    """
    ids = [int(i) for i in token_ids]
    words_at = tokenizer.word_spans(ids)
    if not words_at:
        return []
    if BLANK_ID in ids:
        raise ValueError("the transcript's token ids contain the blank")
    if log_probs.ndim != 2 or log_probs.shape[0] < ctc_min_frames(ids):
        raise ValueError(f"cannot align {len(ids)} tokens to log_probs of shape {tuple(log_probs.shape)}")
    path, scores = forced_align(to_numpy(log_probs), ids, BLANK_ID)
    spans = token_spans(path, scores, BLANK_ID)  # one span per token of ``ids``, in order
    words: list[Word] = []
    for start, end in words_at:
        group = spans[start:end]
        frames = sum(s.end - s.start for s in group)
        words.append(
            Word(
                tokenizer.decode([s.token for s in group]),
                round(group[0].start * frame_s, 3),
                round(group[-1].end * frame_s, 3),
                sum(s.score * (s.end - s.start) for s in group) / frames,  # span scores are means
            )
        )
    return words


def timed_hypotheses(
    emissions: Sequence[Emission],
    hyps: Sequence[Sequence[Hypothesis]],
    tokenizer: Tokenizer,
    frame_s: float,
) -> list[list[Word]]:
    """The words of each utterance's best hypothesis (none when it has none), aligned to its emissions."""
    return [
        align_words(lp[:n], h[0].tokens if h else [], tokenizer, frame_s)
        for (lp, n), h in zip(emissions, hyps)
    ]


def alignment_error(words: Sequence[Word], reference: Sequence[tuple[float, float]]) -> float:
    """Largest distance in seconds between a word's start or end and the reference (start, end) spans.

    Words and spans pair in order; raises ValueError when their numbers differ.
    """
    if len(words) != len(reference):
        raise ValueError(f"{len(words)} timed words but {len(reference)} reference spans")
    if not words:
        return 0.0
    return max(max(abs(w.start - s), abs(w.end - e)) for w, (s, e) in zip(words, reference))


def transcript_dict(words: Sequence[Word]) -> dict:
    """{"text": ..., "words": [{"word", "start", "end", "confidence"}, ...]}, times in seconds."""
    return {
        "text": SPACE.join(w.text for w in words),
        "words": [
            {"word": w.text, "start": w.start, "end": w.end, "confidence": round(w.confidence, 3)}
            for w in words
        ],
    }


def cues(
    words: Sequence[Word], max_seconds: float = CUE_SECONDS, max_chars: int = CUE_CHARS
) -> list[list[Word]]:
    """Consecutive words grouped into subtitle lines of at most ``max_seconds`` and ``max_chars``.

    A word that alone breaks a limit gets a cue of its own.
    """
    groups: list[list[Word]] = []
    for w in words:
        line = groups[-1] if groups else []
        chars = sum(len(x.text) + 1 for x in line) + len(w.text)
        if line and chars <= max_chars and w.end - line[0].start <= max_seconds:
            line.append(w)
        else:
            groups.append([w])
    return groups


def timestamp(seconds: float, separator: str = ",") -> str:
    """HH:MM:SS,mmm (SubRip) or, with ``separator="."``, HH:MM:SS.mmm (WebVTT)."""
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def format_transcript(words: Sequence[Word], fmt: str) -> str:
    """The words as ``fmt``: "txt" (one line), "json" (one line, :func:`transcript_dict`), "srt" or "vtt".

    Non-empty output ends with a newline.
    """
    if fmt == "txt":
        return SPACE.join(w.text for w in words) + "\n"
    if fmt == "json":
        return json.dumps(transcript_dict(words), ensure_ascii=False) + "\n"
    if fmt not in ("srt", "vtt"):
        raise ValueError(f"unknown transcript format {fmt!r}; choose from {', '.join(FORMATS)}")
    sep = "," if fmt == "srt" else "."
    blocks = []
    for number, line in enumerate(cues(words), start=1):
        times = f"{timestamp(line[0].start, sep)} --> {timestamp(line[-1].end, sep)}"
        text = SPACE.join(w.text for w in line)
        blocks.append(f"{number}\n{times}\n{text}\n" if fmt == "srt" else f"{times}\n{text}\n")
    body = "\n".join(blocks)
    return body if fmt == "srt" else "WEBVTT\n\n" + body
