"""Transcripts as the OpenAI audio API's response formats, and as our own richer JSON."""

from __future__ import annotations

from collections.abc import Sequence

from asr.decoding import Hypothesis
from asr.timing import Word, cues, format_transcript

OPENAI_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


def openai_body(text: str, words: Sequence[Word], duration: float, fmt: str, word_times: bool) -> dict | str:
    """The body OpenAI's ``/v1/audio/transcriptions`` returns for ``response_format=fmt``.

    ``words`` are needed for srt, vtt and verbose_json; ``word_times`` adds the ``words`` list that
    ``timestamp_granularities[]=word`` asks for (verbose_json only, as OpenAI does).
    """
    if fmt == "json":
        return {"text": text}
    if fmt == "text":
        return text + "\n"
    if fmt in ("srt", "vtt"):
        return format_transcript(words, fmt)
    segments = [
        {
            "id": i,
            "seek": 0,
            "start": line[0].start,
            "end": line[-1].end,
            "text": " ".join(w.text for w in line),
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": 0.0,
            "compression_ratio": 1.0,
            "no_speech_prob": 0.0,
        }
        for i, line in enumerate(cues(words))
    ]
    body: dict = {"task": "transcribe", "language": "english", "duration": duration, "text": text}
    body["segments"] = segments
    if word_times:
        body["words"] = [{"word": w.text, "start": w.start, "end": w.end} for w in words]
    return body


def rich_body(
    text: str, words: Sequence[Word] | None, duration: float, nbest: Sequence[Hypothesis], decoder: str
) -> dict:
    """Our own endpoint's JSON: text, duration, timed words with confidences, n-best with scores."""
    body: dict = {"text": text, "duration": duration, "decoder": decoder}
    if words is not None:
        body["words"] = [
            {"word": w.text, "start": w.start, "end": w.end, "confidence": round(w.confidence, 3)}
            for w in words
        ]
    if nbest:
        body["nbest"] = [{"text": h.text, "score": round(h.score, 4)} for h in nbest]
    return body
