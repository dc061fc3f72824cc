import json
import math

import numpy as np
import pytest
import torch

from asr.audio import SAMPLE_RATE
from asr.config import load_config
from asr.inference import Transcriber
from asr.recognizer import Recognizer
from asr.spec import ModelSpec
from asr.synth import synthesize
from asr.text import CharTokenizer
from asr.timing import Word, align_words, alignment_error, cues, format_transcript, timestamp

TOK = CharTokenizer.english()
FRAME = 0.04


def _emissions(path: str, probs: dict[int, float] | None = None) -> torch.Tensor:
    """(T, V) log-probs whose best path is ``path`` ("_" blank, " " space): the path's token gets
    probability 0.9 at each frame (or ``probs[frame]``), the rest is shared by the other tokens."""
    probs = probs or {}
    v = TOK.vocab_size
    ids = [0 if c == "_" else TOK.symbols.index(c) for c in path]
    p = torch.empty(len(path), v)
    for t, i in enumerate(ids):
        top = probs.get(t, 0.9)
        p[t] = (1 - top) / (v - 1)
        p[t, i] = top
    return p.log()


def test_hand_built_alignment_is_exact():
    #            frame: 0123456789012
    lp = _emissions("_hhi__ __yoo_", {3: 0.6})
    words = align_words(lp, TOK.encode("hi yo"), TOK, FRAME)
    assert [w.text for w in words] == ["hi", "yo"]
    assert [(w.start, w.end) for w in words] == [(0.04, 0.16), (0.36, 0.48)]
    assert words[0].confidence == pytest.approx((0.9 + 0.9 + 0.6) / 3)
    assert words[1].confidence == pytest.approx(0.9)


def test_repeated_letters_need_a_blank_between():
    lp = _emissions("b_o_ok__")
    (word,) = align_words(lp, TOK.encode("book"), TOK, 0.1)
    assert (word.text, word.start, word.end) == ("book", 0.0, 0.6)
    with pytest.raises(ValueError, match="cannot align 4 tokens"):
        align_words(_emissions("book"), TOK.encode("book"), TOK, 0.1)


def test_forced_text_differs_from_best_path_and_spaces_are_tolerated():
    lp = _emissions("__ab___cd__")
    ids = [1, *TOK.encode("ab"), 1, 1, *TOK.encode("cd"), 1]
    words = align_words(lp, ids, TOK, FRAME)
    assert [w.text for w in words] == ["ab", "cd"]
    assert words[0].end <= words[1].start
    assert align_words(lp, [], TOK, FRAME) == [] and align_words(lp, [1, 1], TOK, FRAME) == []


def _recognizer(overrides: list[str]) -> Recognizer:
    cfg = load_config(None, overrides)
    return Recognizer(ModelSpec(cfg.features, cfg.model, TOK.to_dict())).eval()


def test_frame_seconds_and_min_samples_follow_the_spec():
    small = ["model.hidden_size=8", "model.num_layers=1", "model.conv_channels=2"]
    model = _recognizer(small)
    assert model.frame_seconds == pytest.approx(0.04)
    assert model.min_samples == 400 + 6 * 160  # 7 feature frames make one output frame after 2 convolutions
    for n in (model.min_samples - 1, model.min_samples):
        assert model.output_frames(n / SAMPLE_RATE) == (n == model.min_samples)
    model = _recognizer([*small, "features.hop_ms=20", "model.subsampling=8"])
    assert model.frame_seconds == pytest.approx(0.16)
    assert model.min_samples == 400 + 14 * 320  # 15 frames after 3 convolutions
    assert model.output_frames((model.min_samples - 1) / SAMPLE_RATE) == 0


def test_word_spans_and_tidy_follow_the_separator():
    ids = [1, *TOK.encode("ab"), 1, 1, *TOK.encode("c"), 1]
    assert TOK.word_spans(ids) == [(1, 3), (5, 6)]
    assert TOK.tidy(ids) == [*TOK.encode("ab"), 1, *TOK.encode("c")]
    assert TOK.word_spans([1, 1]) == [] and TOK.tidy([1, 1]) == []


WORDS = [
    Word("one", 0.0, 0.4, 0.9),
    Word("two", 0.5, 0.9, 0.8),
    Word("three", 7.2, 7.6, 0.7),
    Word("extraordinarily", 3725.25, 3726.0, 0.5),
]


def test_timestamps():
    assert timestamp(3725.25) == "01:02:05,250"
    assert timestamp(3725.25, ".") == "01:02:05.250"
    assert timestamp(0.0004) == "00:00:00,000" and timestamp(59.9996) == "00:01:00,000"


def test_srt_and_vtt():
    srt = format_transcript(WORDS, "srt")
    assert srt == (
        "1\n00:00:00,000 --> 00:00:00,900\none two\n\n"
        "2\n00:00:07,200 --> 00:00:07,600\nthree\n\n"
        "3\n01:02:05,250 --> 01:02:06,000\nextraordinarily\n"
    )
    vtt = format_transcript(WORDS, "vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:00.900\none two\n\n00:00:07.200")
    assert vtt.endswith("01:02:05.250 --> 01:02:06.000\nextraordinarily\n")


def test_cues_respect_the_character_and_time_limits():
    many = [Word("word", i * 0.5, i * 0.5 + 0.4, 1.0) for i in range(20)]
    lines = cues(many)
    assert all(len(" ".join(w.text for w in line)) <= 42 for line in lines)
    assert [len(line) for line in lines] == [8, 8, 4]  # 8 * 5 - 1 = 39 characters
    slow = [Word("a", i * 3.0, i * 3.0 + 1.0, 1.0) for i in range(5)]  # 0-7 s fits, 9 s does not
    assert [len(line) for line in cues(slow)] == [3, 2]
    assert cues([Word("x" * 50, 0, 1, 1), Word("y", 1, 2, 1)]) == [
        [Word("x" * 50, 0, 1, 1)],
        [Word("y", 1, 2, 1)],
    ]


def test_txt_and_json():
    assert format_transcript(WORDS[:2], "txt") == "one two\n"
    d = json.loads(format_transcript(WORDS[:2], "json"))
    assert d["text"] == "one two"
    assert d["words"][1] == {"word": "two", "start": 0.5, "end": 0.9, "confidence": 0.8}
    with pytest.raises(ValueError, match="unknown transcript format 'doc'"):
        format_transcript(WORDS, "doc")


def test_alignment_error():
    assert alignment_error(WORDS[:2], [(0.05, 0.4), (0.5, 1.0)]) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="2 timed words but 1 reference spans"):
        alignment_error(WORDS[:2], [(0.0, 0.4)])


def test_word_timings_plumbing_on_speech(tiny_model):
    """An untrained model's timings mean little, but they are the text's words, in order, in the audio."""
    torch.manual_seed(0)
    model = Transcriber(_recognizer(tiny_model))
    gap = np.zeros(round(0.6 * SAMPLE_RATE), np.float32)
    wave = np.concatenate([synthesize("yellow"), gap, synthesize("river")])
    words = model.align(wave, "yellow river")
    assert [w.text for w in words] == ["yellow", "river"]
    duration = len(wave) / SAMPLE_RATE
    assert 0 <= words[0].start < words[0].end <= words[1].start < words[1].end <= duration + FRAME
    assert all(0 < w.confidence <= 1 and math.isfinite(w.confidence) for w in words)
    (timed,) = model.transcribe([wave], timestamps=True)
    assert " ".join(w.text for w in timed.words) == timed.text == model.transcribe([wave])[0].text
