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
MIN_RATE, MAX_RATE = 1000, 768000  # outside this a header is corrupt (or hostile: 1 Hz would upsample 16000x)
_ESTIMATED_LENGTH = ("OGG", "MP3", "MPEG")  # formats whose header frame count may be an estimate (VBR)
MAX_ABS = 1e6  # float samples this large are corrupt data (not even int-range audio): features would overflow
_BLOCK_VALUES = 1 << 22  # samples read at a time: memory follows the audio present, not the header's claim
_TRUNCATED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)  # libsndfile's header log


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


def _info(path: str | Path) -> sf._SoundFileInfo:
    p = Path(path)
    try:
        exists, is_dir, is_file = p.exists(), p.is_dir(), p.is_file()
        size = p.stat().st_size if is_file else 0
    except (OSError, ValueError) as e:  # a name too long, a NUL byte in it, a folder we may not enter
        raise AudioError(path, f"cannot access the file ({_reason(e)})") from None
    if not exists:
        raise AudioError(path, "file not found")
    if is_dir:
        raise AudioError(path, "is a directory, not an audio file")
    if not is_file:
        raise AudioError(path, "not a regular file (a device, FIFO or socket)")
    if size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioError(path, f"not a readable audio file ({_reason(e)})") from None
    short = _TRUNCATED.search(info.extra_info)
    if short:
        raise AudioError(path, f"truncated: header declares {short[1]} data bytes, file holds {short[2]}")
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioError(path, f"unsupported sample rate {info.samplerate} Hz")
    if info.channels < 1:
        raise AudioError(path, f"invalid channel count {info.channels}")
    return info


def _reason(e: Exception) -> str:
    if isinstance(e, sf.LibsndfileError):
        return e.error_string
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return first_line(e)


def _read(path: str | Path) -> tuple[np.ndarray, int]:
    """All samples as float32 (frames, channels), read in blocks; the header's frame count is not trusted."""
    blocks = []
    with sf.SoundFile(str(path)) as f:
        block = max(1, _BLOCK_VALUES // f.channels)
        while len(chunk := f.read(block, dtype="float32", always_2d=True)):
            blocks.append(chunk)
        if not blocks:
            return np.zeros((0, f.channels), np.float32), f.samplerate
        return np.concatenate(blocks), f.samplerate


def audio_duration(path: str | Path) -> float:
    """Duration in seconds, read from the file header without decoding the audio."""
    info = _info(path)
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(path, "no audio samples")
    return info.frames / info.samplerate


def load_audio(path: str | Path) -> np.ndarray:
    """Read ``path`` as a 16 kHz mono float32 waveform of shape (num_samples,).

    Channels are averaged; any sample rate is resampled (soxr, high quality). Raises :class:`AudioError`
    for a missing, empty, truncated or non-audio file, an implausible sample rate, and NaN, infinite or
    absurdly large samples: whatever a file holds, no other exception comes out.
    """
    info = _info(path)
    try:
        data, rate = _read(path)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as e:
        raise AudioError(path, f"cannot decode audio ({_reason(e)})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "no audio samples")
    if info.frames > 0 and data.shape[0] < info.frames and info.format not in _ESTIMATED_LENGTH:
        raise AudioError(
            path, f"truncated: header declares {info.frames} samples, file holds {data.shape[0]}"
        )
    if not np.isfinite(data).all():
        raise AudioError(path, "contains NaN or infinite samples")
    peak = float(np.abs(data).max())
    if peak > MAX_ABS:
        raise AudioError(path, f"sample values up to {peak:.3g}, beyond any audio range (corrupt float data)")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return to_model_rate(wave, rate)


def to_model_rate(wave: np.ndarray, rate: int) -> np.ndarray:
    """Resample a mono float waveform from ``rate`` to :data:`SAMPLE_RATE`."""
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if rate != SAMPLE_RATE:
        wave = soxr.resample(wave, rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    return wave
