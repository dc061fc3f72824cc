"""Long-form transcription: overlapping windows merged without losing or doubling words."""

import numpy as np
import pytest
import soundfile as sf

from asr.audio import SAMPLE_RATE, AudioError, load_audio
from asr.checkpoint import load_model
from asr.longform import _windows, transcribe_long, transcribe_long_text
from asr.manifest import read_manifest


@pytest.fixture(scope="module")
def memorised_model(memorised):
    """The model that has memorised 8 utterances (conftest), and their waveforms."""
    best, few = memorised
    return load_model(best).eval(), [load_audio(u.audio_filepath) for u in read_manifest(few)]


@pytest.fixture(scope="module")
def long_file(memorised_model, tmp_path_factory):
    """The 8 utterances with 0.3 s silences, repeated to over 60 s; and the words expected."""
    model, waves = memorised_model
    silence = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
    once = np.concatenate([x for w in waves for x in (w, silence)])
    repeats = int(np.ceil(60 * SAMPLE_RATE / len(once)))
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, np.tile(once, repeats), SAMPLE_RATE, subtype="FLOAT")
    expected = " ".join(model.transcribe(waves)).split() * repeats
    return path, expected, repeats * len(once) / SAMPLE_RATE


def test_windows_tile_the_file(tmp_path):
    wave = np.linspace(-0.5, 0.5, 7 * SAMPLE_RATE, dtype=np.float32)
    path = tmp_path / "ramp.wav"
    sf.write(path, wave, SAMPLE_RATE, subtype="FLOAT")
    # the last full window ends the file; a partial window ends it; one window holds it all
    for window_s, hop_s, count in ((4, 1, 4), (4, 2, 3), (10, 2, 1)):
        window, hop = window_s * SAMPLE_RATE, hop_s * SAMPLE_RATE
        items = list(_windows(path, window, hop))
        assert [s for s, _, _ in items] == [i * hop for i in range(count)]
        assert [last for *_, last in items] == [False] * (count - 1) + [True]
        assert all(len(w) == window for _, w, _ in items[:-1]) and len(items[-1][1]) <= window
        assert items[-1][0] + len(items[-1][1]) == len(wave)
        for start, w, _ in items:
            np.testing.assert_array_equal(w, wave[start : start + len(w)])


def test_one_window_equals_transcribe(memorised_model, tmp_path):
    model, waves = memorised_model
    path = tmp_path / "one.wav"
    sf.write(path, waves[0], SAMPLE_RATE, subtype="FLOAT")
    assert transcribe_long_text(model, path, window_s=10.0, overlap_s=3.0) == model.transcribe(waves[:1])[0]


def test_long_file_words_are_timed_in_order(memorised_model, long_file):
    model, _ = memorised_model
    path, expected, duration = long_file
    words = transcribe_long(model, path, window_s=10.0, overlap_s=3.0)
    # The tiny memorising model garbles utterances heard amid others (its backward RNN hears what follows),
    # so the words cannot be compared with the pieces' one by one: only their number is
    assert 0.7 * len(expected) < len(words) < 1.3 * len(expected)
    assert all(a.start <= b.start for a, b in zip(words, words[1:]))  # garbled words may overlap a little
    assert words[0].start >= 0 and words[-1].end <= duration
    assert all(w.start < w.end for w in words)


def test_unreadable_file_raises_audio_error(memorised_model, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="not a readable audio file"):
        transcribe_long(memorised_model[0], bad)
    with pytest.raises(AudioError, match="file not found"):
        transcribe_long(memorised_model[0], tmp_path / "missing.wav")
