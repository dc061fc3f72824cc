import struct

import numpy as np
import pytest
import soundfile as sf
from reliability import record

from asr.audio import SAMPLE_RATE, AudioError, audio_duration, load_audio, stream_audio


def _tone(rate: int, seconds: float = 0.5, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    wave = 0.5 * np.sin(2 * np.pi * 440 * t)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.mark.parametrize(
    ("fmt", "subtype", "ext"),
    [
        ("WAV", "PCM_16", "wav"),
        ("WAV", "FLOAT", "wav"),
        ("FLAC", "PCM_24", "flac"),
        ("OGG", "VORBIS", "ogg"),
        ("NIST", "PCM_16", "sph"),
        ("MP3", "MPEG_LAYER_III", "mp3"),
    ],
)
def test_formats(tmp_path, fmt, subtype, ext):
    path = tmp_path / f"a.{ext}"
    sf.write(path, _tone(SAMPLE_RATE), SAMPLE_RATE, format=fmt, subtype=subtype)
    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) - SAMPLE_RATE // 2) < 0.02 * SAMPLE_RATE  # mp3/ogg add a little padding
    assert 0.3 < np.abs(wave).max() < 0.6


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 96000])
def test_resampling(tmp_path, rate):
    sf.write(tmp_path / "a.wav", _tone(rate), rate)
    wave = load_audio(tmp_path / "a.wav")
    assert len(wave) == SAMPLE_RATE // 2
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(wave) - 440) < 4
    assert audio_duration(tmp_path / "a.wav") == pytest.approx(0.5)


def test_channels_are_mixed_down(tmp_path):
    stereo = np.stack([np.full(1600, 0.2), np.full(1600, 0.6)], axis=1)
    sf.write(tmp_path / "s.wav", stereo, SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "s.wav"), 0.4, atol=1e-6)
    sf.write(tmp_path / "m.wav", _tone(SAMPLE_RATE, channels=6), SAMPLE_RATE)
    assert load_audio(tmp_path / "m.wav").shape == (SAMPLE_RATE // 2,)


def _bad_files(tmp_path):
    sf.write(tmp_path / "good.wav", _tone(SAMPLE_RATE), SAMPLE_RATE)
    data = (tmp_path / "good.wav").read_bytes()
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "header.wav").write_bytes(data[:20])
    (tmp_path / "body.wav").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.wav").write_text("hello, I am not audio\n" * 10)
    (tmp_path / "image.flac").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    sf.write(tmp_path / "zero.wav", np.zeros((0,)), SAMPLE_RATE)
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2] * 100), SAMPLE_RATE, subtype="FLOAT")
    sf.write(tmp_path / "huge.wav", np.array([0.1, 3e9, 0.2] * 100), SAMPLE_RATE, subtype="FLOAT")
    return {
        "missing.wav": "file not found",
        "empty.wav": "empty file",
        "header.wav": "not a readable audio file",
        "body.wav": "truncated",
        "text.wav": "not a readable audio file",
        "image.flac": "not a readable audio file",
        "zero.wav": "no audio samples",
        "nan.wav": "NaN or infinite",
        "huge.wav": "beyond any audio range",
    }


def test_bad_files_give_one_line_errors_naming_the_file(tmp_path):
    for name, problem in _bad_files(tmp_path).items():
        with pytest.raises(AudioError) as e:
            load_audio(tmp_path / name)
        message = str(e.value)
        assert message.startswith(str(tmp_path / name)), message
        assert problem in message and "\n" not in message, message


@pytest.mark.parametrize(("rate", "channels"), [(SAMPLE_RATE, 1), (SAMPLE_RATE, 2), (44100, 2), (8000, 1)])
def test_stream_joins_to_the_whole_waveform(tmp_path, rate, channels):
    sf.write(tmp_path / "a.flac", _tone(rate, 1.0, channels), rate)
    whole = load_audio(tmp_path / "a.flac")
    pieces = list(stream_audio(tmp_path / "a.flac", block_frames=1000))
    assert len(pieces) > 8 and all(p.dtype == np.float32 and p.ndim == 1 for p in pieces)
    joined = np.concatenate(pieces)
    if rate == SAMPLE_RATE:
        np.testing.assert_array_equal(joined, whole)
    else:  # a stream resampler and a one-shot one agree away from the very ends
        assert abs(len(joined) - len(whole)) <= 2
        n = min(len(joined), len(whole))
        np.testing.assert_allclose(joined[100 : n - 100], whole[100 : n - 100], atol=1e-3)


def test_stream_refuses_what_load_audio_refuses(tmp_path):
    for name, problem in _bad_files(tmp_path).items():
        with pytest.raises(AudioError) as e:
            list(stream_audio(tmp_path / name, block_frames=64))
        assert str(e.value).startswith(str(tmp_path / name)) and problem in str(e.value), str(e.value)
    with pytest.raises(AudioError, match="file not found"):
        stream_audio(tmp_path / "missing.wav")  # a bad header is refused before any piece is asked for


def _declared(path, samples: int, tail: bytes = b"", riff: bool = False) -> None:
    """Rewrite a 16-bit mono WAV's data chunk size to ``samples`` (and append ``tail``)."""
    data = bytearray(path.read_bytes())
    at = data.find(b"data")
    data[at + 4 : at + 8] = struct.pack("<I", 2 * samples)
    if riff:
        data[4:8] = struct.pack("<I", at + 8 + 2 * samples - 8)
    path.write_bytes(bytes(data) + tail)


# (case, declared samples, bytes appended, expected samples or None for refused)
HEADER_CASES = [
    ("declares 50 of 16000", 50, b"", None),
    ("declares 50 of 16000, RIFF size too", 50, b"", None),
    ("declares 15000 of 16000", 15000, b"", None),
    ("declares all 16000", 16000, b"", 16000),
    ("odd pad byte after the data", 16000, b"\0", 16000),
    ("a LIST chunk after the data", 16000, b"LIST\x04\0\0\0INFO", 16000),
    ("declares one sample less", 15999, b"", 15999),
]


@pytest.mark.parametrize(
    ("name", "declared", "tail", "expected"), HEADER_CASES, ids=[c[0] for c in HEADER_CASES]
)
def test_header_declaring_less_audio_than_the_file_holds(tmp_path, name, declared, tail, expected):
    path = tmp_path / "a.wav"
    sf.write(path, _tone(SAMPLE_RATE, seconds=1.0), SAMPLE_RATE, subtype="PCM_16")
    _declared(path, declared, tail, riff="RIFF" in name)
    try:
        wave = load_audio(path)
    except AudioError as e:
        record("audio files: header length vs data", "AudioError")
        assert expected is None, e
        assert str(e) == f"{path}: corrupt header: it declares {declared} samples, but about 16000 follow it"
        with pytest.raises(AudioError, match="corrupt header"):
            stream_audio(path)
        return
    record("audio files: header length vs data", "waveform")
    assert expected is not None and len(wave) == expected
