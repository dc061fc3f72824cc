"""Reading audio files: the only place that touches audio I/O.

Every file becomes 16 kHz mono float32, whatever its format (anything libsndfile reads: WAV, FLAC, OGG,
MP3, NIST SPHERE, ...), sample rate or channel count: whole (:func:`load_audio`) or piece by piece with
bounded memory (:func:`stream_audio`), with the same checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from asr.errors import AudioFailure, first_line

SAMPLE_RATE = 16000
MIN_RATE, MAX_RATE = 1000, 768000  # outside this a header is corrupt (or hostile: 1 Hz would upsample 16000x)
_ESTIMATED_LENGTH = ("OGG", "MP3", "MPEG")  # formats whose header frame count may be an estimate (VBR)
MAX_ABS = 1e6  # float samples this large are corrupt data (not even int-range audio): features would overflow
_BLOCK_VALUES = 1 << 22  # samples read at a time: memory follows the audio present, not the header's claim
STREAM_BLOCK_FRAMES = 65536  # frames read at a time by stream_audio
_TRUNCATED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)  # libsndfile's header log
# bytes after the declared data that are no chunk: the header declares fewer samples than the file holds
_UNDECLARED = re.compile(
    r"^data\s*:\s*\d+\s*$.*?^\*\*\* Unknown chunk marker \(\w+\) at position (\d+)", re.MULTILINE | re.DOTALL
)
_FILE_LENGTH = re.compile(r"^Length\s*:\s*(\d+)", re.MULTILINE)
_BLOCK_ALIGN = re.compile(r"^\s*Block Align\s*:\s*(\d+)", re.MULTILINE)


class AudioError(AudioFailure):
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
    undeclared = _undeclared_frames(info)
    if undeclared > info.samplerate // 100:
        present = info.frames + undeclared
        raise AudioError(
            path, f"corrupt header: it declares {info.frames} samples, but about {present} follow it"
        )
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioError(path, f"unsupported sample rate {info.samplerate} Hz")
    if info.channels < 1:
        raise AudioError(path, f"invalid channel count {info.channels}")
    return info


def _undeclared_frames(info: sf._SoundFileInfo) -> int:
    """Audio frames present after the data a (RIFF/WAV) header declares, from libsndfile's header log: bytes
    there that are no chunk are the rest of the data. 0 when the log shows none."""
    after, length, align = (r.search(info.extra_info) for r in (_UNDECLARED, _FILE_LENGTH, _BLOCK_ALIGN))
    if after is None or length is None or align is None or int(align[1]) < 1:
        return 0
    return max(0, int(length[1]) - int(after[1])) // int(align[1])


def _reason(e: Exception) -> str:
    if isinstance(e, sf.LibsndfileError):
        return e.error_string
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return first_line(e)


def _blocks(path: str | Path, info: sf._SoundFileInfo, block_frames: int) -> Iterator[np.ndarray]:
    """The samples of ``path`` as float32 (frames, channels) blocks, each checked for NaN, infinite and absurd
    values; the frame count is checked at the end (the header's is not trusted while reading)."""
    frames = 0
    try:
        with sf.SoundFile(str(path)) as f:
            while len(block := f.read(block_frames, dtype="float32", always_2d=True)):
                if not np.isfinite(block).all():
                    raise AudioError(path, "contains NaN or infinite samples")
                peak = float(np.abs(block).max())
                if peak > MAX_ABS:
                    raise AudioError(
                        path, f"sample values up to {peak:.3g}, beyond any audio range (corrupt float data)"
                    )
                frames += block.shape[0]
                yield block
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as e:
        raise AudioError(path, f"cannot decode audio ({_reason(e)})") from None
    if frames == 0:
        raise AudioError(path, "no audio samples")
    if info.frames > 0 and frames < info.frames and info.format not in _ESTIMATED_LENGTH:
        raise AudioError(path, f"truncated: header declares {info.frames} samples, file holds {frames}")


def _mono(block: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,), channels averaged."""
    return block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]


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
    data = np.concatenate(list(_blocks(path, info, max(1, _BLOCK_VALUES // info.channels))))
    return to_model_rate(_mono(data), info.samplerate)


def stream_audio(path: str | Path, block_frames: int = STREAM_BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Read ``path`` block by block as 16 kHz mono float32 pieces, whatever its length.

    The pieces joined are :func:`load_audio`'s waveform, up to resampling at block edges (a stream
    resampler carries its filter state across blocks, so edges leave no clicks). The file's header is
    checked now; the samples, with the same checks as :func:`load_audio`, as the pieces are read: either
    may raise :class:`AudioError`.
    """
    info = _info(path)
    return _stream(path, info, block_frames)


def _stream(path: str | Path, info: sf._SoundFileInfo, block_frames: int) -> Iterator[np.ndarray]:
    """:func:`stream_audio`'s pieces, once the header is checked."""
    rate = info.samplerate
    stream = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, "float32", "HQ")
    for block in _blocks(path, info, block_frames):
        mono = _mono(block)
        yield to_model_rate(mono, rate) if stream is None else stream.resample_chunk(mono)
    if stream is not None:
        yield stream.resample_chunk(np.zeros(0, np.float32), last=True)


def to_model_rate(wave: np.ndarray, rate: int) -> np.ndarray:
    """Resample a mono float waveform from ``rate`` to :data:`SAMPLE_RATE`."""
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if rate != SAMPLE_RATE:
        wave = soxr.resample(wave, rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    return wave
