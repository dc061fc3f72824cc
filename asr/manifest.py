"""JSONL manifests with NeMo-compatible keys, one utterance a line: audio_filepath, duration, text.

Relative audio paths are resolved against the manifest's folder, so a corpus folder can be moved whole.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from asr.errors import DataError, first_line

REQUIRED_KEYS = ("audio_filepath", "duration", "text")


class ManifestError(DataError):
    """A manifest line that cannot be used; the message names the file, the line and the problem."""


@dataclass(frozen=True)
class Utterance:
    """One manifest entry."""

    audio_filepath: str
    duration: float
    text: str
    line: int = 0

    @property
    def id(self) -> str:
        """A readable identifier: the audio file's stem."""
        return Path(self.audio_filepath).stem


def json_objects(path: str | Path, lines: Iterable[str | bytes]) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-empty JSON line; :class:`ManifestError` names a bad line."""
    for number, raw in enumerate(lines, start=1):
        where = f"{path}:{number}"
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as e:
            raise ManifestError(f"{where}: not valid UTF-8 (byte {e.start})") from None
        if number == 1:
            line = line.removeprefix("\ufeff")  # a byte order mark left by some editors
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None
        except (ValueError, RecursionError) as e:  # an integer of thousands of digits; deep nesting
            problem = "nested too deeply" if isinstance(e, RecursionError) else first_line(e)
            raise ManifestError(f"{where}: malformed JSON ({problem})") from None
        if not isinstance(entry, dict):
            raise ManifestError(f"{where}: expected a JSON object")
        yield number, entry


def _seconds(value: object) -> float | None:
    """``value`` as a finite positive number of seconds, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if 0 < seconds < math.inf else None


def _entries(path: str | Path) -> Iterator[tuple[str, int, dict, Path]]:
    """(``path:line``, line number, entry, the manifest's folder) for each entry of a manifest."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    base = path.resolve().parent
    with open(path, "rb") as f:
        for number, entry in json_objects(path, f):
            yield f"{path}:{number}", number, entry, base


def _audio_path(where: str, entry: dict, base: Path) -> str:
    audio = entry["audio_filepath"]
    if not isinstance(audio, str) or not audio or "\0" in audio:
        raise ManifestError(f"{where}: audio_filepath must be a non-empty string without NUL")
    return str(base / audio)


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a JSONL manifest; raises :class:`ManifestError` naming the line of the first bad entry."""
    utts = []
    for where, number, entry, base in _entries(path):
        missing = [k for k in REQUIRED_KEYS if k not in entry]
        if missing:
            raise ManifestError(f"{where}: missing key(s) {', '.join(missing)}")
        audio, duration, text = _audio_path(where, entry, base), entry["duration"], entry["text"]
        seconds = _seconds(duration)
        if seconds is None:
            raise ManifestError(f"{where}: duration must be a positive number, got {duration!r:.40}")
        if not isinstance(text, str):
            raise ManifestError(f"{where}: text must be a string")
        utts.append(Utterance(audio, seconds, text, number))
    return utts


def read_audio_paths(path: str | Path) -> list[str]:
    """The audio files of a manifest, in order; only ``audio_filepath`` is needed (for transcription)."""
    paths = []
    for where, _, entry, base in _entries(path):
        if "audio_filepath" not in entry:
            raise ManifestError(f"{where}: missing key(s) audio_filepath")
        paths.append(_audio_path(where, entry, base))
    return paths


def write_manifest(path: str | Path, entries: Iterable[dict]) -> int:
    """Write manifest entries (dicts with at least the required keys) atomically; returns the count.

    Audio paths inside the manifest's folder are stored relative to it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.resolve().parent
    count = 0
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for entry in entries:
                missing = [k for k in REQUIRED_KEYS if k not in entry]
                if missing:
                    raise ManifestError(f"{path}: entry {count + 1} lacks {', '.join(missing)}")
                entry = dict(entry)
                audio = Path(entry["audio_filepath"]).resolve()
                if audio.is_relative_to(base):
                    entry["audio_filepath"] = str(audio.relative_to(base))
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count
