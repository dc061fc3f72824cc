"""Long-form transcription: overlapping windows merged without losing or doubling words.

The proof uses a fake recogniser whose output is known exactly: each 40 ms frame of audio holds a constant
level that names the token the fake emits there, so a generated file spells known words at known times.
"""

import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import Tensor

from asr.audio import SAMPLE_RATE, load_audio, stream_audio
from asr.config import load_config
from asr.decoding import DecodePool, DecoderConfig
from asr.errors import UsageError
from asr.inference import Transcriber
from asr.longform import window_plan, windows
from asr.manifest import read_manifest
from asr.recognizer import Recognizer
from asr.spec import ModelSpec
from asr.text import BLANK_ID, CharTokenizer
from asr.timing import Word

TOK = CharTokenizer.english()
FRAME = 640  # samples per output frame: 10 ms hop x 4 subsampling
LEVEL = 0.01  # a frame of token id k holds samples k * LEVEL; silence is the blank
WORDS = ["alpha", "bravo", "charlie", "delta", "foxtrot", "juliet", "november", "seeing", "yankee", "zulu"]


class FakeRecognizer(Recognizer):
    """Emits, for each whole 640-sample frame, the token its level names, with probability 0.9."""

    def forward(self, waves: Tensor, wave_lens: Tensor) -> tuple[Tensor, Tensor]:
        frames = waves.shape[1] // FRAME
        level = waves[:, : frames * FRAME].reshape(len(waves), frames, FRAME).mean(-1)  # (B, T')
        ids = (level / LEVEL).round().long().clamp(0, TOK.vocab_size - 1)
        probs = torch.full((*ids.shape, TOK.vocab_size), 0.1 / (TOK.vocab_size - 1))
        probs.scatter_(2, ids[..., None], 0.9)
        return probs.log(), wave_lens // FRAME


@pytest.fixture(scope="module")
def fake(tiny_model) -> Transcriber:
    cfg = load_config(None, tiny_model)
    model = FakeRecognizer(ModelSpec(cfg.features, cfg.model, TOK.to_dict()))
    assert model.frame_seconds * SAMPLE_RATE == FRAME
    return Transcriber(model)


def transcribe_long(model: Transcriber, path, window_s: float = 30.0, overlap_s: float = 4.0) -> list[Word]:
    """The words of ``path`` through the windowed path, whatever its length."""
    window, hop = window_plan(window_s, overlap_s, model.recognizer.min_samples)
    with DecodePool(model.tokenizer) as pool:
        result = model._long(path, str(path), window, hop, DecoderConfig(), pool)
    assert result.error is None, result.error
    return result.words


def spoken(seconds: float, seed: int) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """A waveform the fake reads as random words (1-3 frames per letter, a blank between doubled letters,
    blanks and one space frame between words), and the (word, start, end) it holds, times in seconds."""
    rng = np.random.default_rng(seed)
    frames: list[int] = [BLANK_ID] * int(rng.integers(0, 5))
    truth = []
    while len(frames) < seconds / 0.04 - 40:
        word = WORDS[rng.integers(len(WORDS))]
        start = len(frames)
        for i, c in enumerate(word):
            if i and word[i - 1] == c:
                frames.append(BLANK_ID)
            frames += [TOK.encode(c)[0]] * int(rng.integers(1, 4))
        truth.append((word, round(start * 0.04, 3), round(len(frames) * 0.04, 3)))
        gap = [BLANK_ID] * int(rng.integers(0, 4)) + [1] + [BLANK_ID] * int(rng.integers(0, 4))
        frames += gap
    frames += [BLANK_ID] * (round(seconds / 0.04) - len(frames))
    return np.repeat(np.array(frames, np.float32) * LEVEL, FRAME), truth


def write(path, wave: np.ndarray):
    sf.write(path, wave, SAMPLE_RATE, subtype="FLOAT")
    return path


def test_no_word_lost_or_doubled_at_window_boundaries(fake, tmp_path):
    wave, truth = spoken(150.0, seed=1)
    path = write(tmp_path / "long.wav", wave)
    window, overlap = 10.0, 3.0
    hop = window - overlap
    edges = np.arange(hop, 150.0, hop)  # window starts; ends are 3 s later
    cuts = edges + overlap / 2  # where ownership passes to the next window

    def crossing(points: np.ndarray) -> int:
        return sum(any(s < p < e for p in points) for _, s, e in truth)

    # the file exercises every case: words across window starts, window ends and ownership cuts
    assert min(crossing(edges), crossing(edges + overlap), crossing(cuts)) >= 5, "too few straddling words"
    words = transcribe_long(fake, path, window_s=window, overlap_s=overlap)
    assert [w.text for w in words] == [t for t, _, _ in truth]
    np.testing.assert_allclose([(w.start, w.end) for w in words], [(s, e) for _, s, e in truth], atol=1e-6)
    assert all(w.confidence == pytest.approx(0.9) for w in words)
    # transcribe sends a file longer than the window the same way, as a path or as a waveform
    (result, in_memory) = fake.transcribe([path, wave], timestamps=True, window_s=window, overlap_s=overlap)
    assert in_memory.words == words and in_memory.nbest is None
    assert result.words == words and result.text == " ".join(t for t, _, _ in truth)


@pytest.mark.parametrize("overlap", [1.6, 4.0])  # hops of whole frames, as the fake needs
def test_merge_holds_for_other_overlaps(fake, tmp_path, overlap):
    wave, truth = spoken(60.0, seed=2)
    words = transcribe_long(fake, write(tmp_path / "a.wav", wave), window_s=8.0, overlap_s=overlap)
    assert [w.text for w in words] == [t for t, _, _ in truth]
    np.testing.assert_allclose([(w.start, w.end) for w in words], [(s, e) for _, s, e in truth], atol=1e-6)


def test_shorter_than_a_window_equals_the_batched_path(fake, tmp_path):
    wave, truth = spoken(6.0, seed=3)
    path = write(tmp_path / "short.wav", wave)
    (batched,) = fake.transcribe([path], timestamps=True, window_s=10.0)
    assert transcribe_long(fake, path, window_s=10.0, overlap_s=3.0) == batched.words
    assert [w.text for w in batched.words] == [t for t, _, _ in truth]


def test_peak_memory_does_not_grow_with_length(fake, tmp_path):
    peaks = []
    for seconds in (40.0, 320.0):
        path = write(tmp_path / f"{seconds}.wav", spoken(seconds, seed=4)[0])
        tracemalloc.start()
        (result,) = fake.transcribe([path], window_s=5.0, overlap_s=1.0)
        words = result.words
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert len(words) > seconds
    whole_file = 320.0 * SAMPLE_RATE * 4  # bytes of the longer file as float32
    assert peaks[1] < 1.2 * peaks[0] and peaks[1] < whole_file / 4, peaks


@pytest.fixture(scope="module")
def memorised_model(memorised):
    """The model that has memorised 8 utterances (conftest), and their waveforms."""
    best, few = memorised
    return Transcriber.load(best), [load_audio(u.audio_filepath) for u in read_manifest(few)]


def test_windows_tile_the_file(tmp_path):
    wave = np.linspace(-0.5, 0.5, 7 * SAMPLE_RATE, dtype=np.float32)
    path = write(tmp_path / "ramp.wav", wave)
    # the last full window ends the file; a partial window ends it; one window holds it all
    for window_s, hop_s, count in ((4, 1, 4), (4, 2, 3), (10, 2, 1)):
        window, hop = window_s * SAMPLE_RATE, hop_s * SAMPLE_RATE
        items = list(windows(stream_audio(path, block_frames=12345), window, hop))
        assert [s for s, _, _ in items] == [i * hop for i in range(count)]
        assert [last for *_, last in items] == [False] * (count - 1) + [True]
        assert all(len(w) == window for _, w, _ in items[:-1]) and len(items[-1][1]) <= window
        assert items[-1][0] + len(items[-1][1]) == len(wave)
        for start, w, _ in items:
            np.testing.assert_array_equal(w, wave[start : start + len(w)])


def test_one_window_equals_transcribe_on_speech(memorised_model, tmp_path):
    model, waves = memorised_model
    path = write(tmp_path / "one.wav", waves[0])
    (batched,) = model.transcribe([path], timestamps=True)
    assert batched.text == model.transcribe(waves[:1])[0].text
    assert transcribe_long(model, path, window_s=10.0, overlap_s=3.0) == batched.words


def test_unreadable_input_is_one_line_and_the_others_are_transcribed(fake, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    wave, truth = spoken(12.0, seed=5)
    good = write(tmp_path / "good.wav", wave)
    corrupt = wave.copy()
    corrupt[9 * SAMPLE_RATE] = 3e9  # found only when the windowed path reads that far
    write(tmp_path / "corrupt.wav", corrupt)
    inputs = [bad, tmp_path / "missing.wav", tmp_path / "corrupt.wav", good, np.zeros((2, 3), np.float32)]
    results = fake.transcribe(inputs, window_s=5.0, overlap_s=1.0)
    assert [r.text is None for r in results] == [True, True, True, False, True]
    assert "bad.wav: not a readable audio file" in results[0].error
    assert "missing.wav: file not found" in results[1].error
    assert "corrupt.wav" in results[2].error and "beyond any audio range" in results[2].error
    assert results[3].text == " ".join(t for t, _, _ in truth)
    assert results[4].error == "<waveform 4>: expected a mono waveform (one dimension), got shape (2, 3)"
    assert all("\n" not in r.error for r in results if r.error)


@pytest.mark.parametrize(
    ("window", "overlap", "message"),
    [
        (2.0, 2.0, "overlap must lie between 0 and half the window"),
        (0.5, 0.49999, "overlap must lie between 0 and half the window"),  # a hop of 0 samples: a hang
        (0.00001, 0.0, "shorter than the model's shortest input"),
        (10.0, -1.0, "overlap must lie between"),
        (float("nan"), 1.0, "window: need a finite number"),
        (float("inf"), 1.0, "window: need a finite number"),
    ],
)
def test_windows_are_validated_in_samples_before_any_work(fake, tmp_path, window, overlap, message):
    with pytest.raises(UsageError, match=message):
        fake.transcribe([tmp_path / "missing.wav"], window_s=window, overlap_s=overlap)
    shortest = fake.recognizer.min_samples / SAMPLE_RATE
    (result,) = fake.transcribe([np.zeros(100, np.float32)], window_s=shortest, overlap_s=0.0)
    assert result.text == ""  # the shortest window allowed works, and a short input is padded
