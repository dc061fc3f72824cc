"""Reading audio files: the only place that touches audio I/O.

Every file becomes 16 kHz mono float32, whatever its format (anything libsndfile reads: WAV, FLAC, OGG,
MP3, NIST SPHERE, ...), sample rate or channel count.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from asr.errors import first_line

SAMPLE_RATE = 16000
_TRUNCATED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)  # libsndfile's header log


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


def _info(path: str | Path) -> sf._SoundFileInfo:
    p = Path(path)
    if not p.exists():
        raise AudioError(path, "file not found")
    if p.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(path, f"not a readable audio file ({_reason(e)})") from None
    short = _TRUNCATED.search(info.extra_info)
    if short:
        raise AudioError(path, f"truncated: header declares {short[1]} data bytes, file holds {short[2]}")
    return info


def _reason(e: Exception) -> str:
    return e.error_string if isinstance(e, sf.LibsndfileError) else first_line(e)


def audio_duration(path: str | Path) -> float:
    """Duration in seconds, read from the file header without decoding the audio."""
    info = _info(path)
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(path, "no audio samples")
    return info.frames / info.samplerate


def load_audio(path: str | Path) -> np.ndarray:
    """Read ``path`` as a 16 kHz mono float32 waveform of shape (num_samples,).

    Channels are averaged; any sample rate is resampled (soxr, high quality). Raises :class:`AudioError`
    for a missing, empty, truncated or non-audio file, and for NaN or infinite samples.
    """
    info = _info(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise AudioError(path, f"cannot decode audio ({_reason(e)})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "no audio samples")
    if info.frames > 0 and data.shape[0] < info.frames and info.format not in ("OGG", "MPEG"):
        raise AudioError(
            path, f"truncated: header declares {info.frames} samples, file holds {data.shape[0]}"
        )
    if not np.isfinite(data).all():
        raise AudioError(path, "contains NaN or infinite samples")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return to_model_rate(wave, rate)


def to_model_rate(wave: np.ndarray, rate: int) -> np.ndarray:
    """Resample a mono float waveform from ``rate`` to :data:`SAMPLE_RATE`."""
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if rate != SAMPLE_RATE:
        wave = soxr.resample(wave, rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    return wave
