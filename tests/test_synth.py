"""asr.synth: eSpeak NG through ctypes, the sentence generator and the synthetic corpus on disk."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.audio import SAMPLE_RATE, audio_duration, load_audio
from asr.manifest import read_manifest
from asr.synth import _split_sentences, make_corpus, number_words, synthesize

ROOT = Path(__file__).parents[1]
COUNTS = {"train": 120, "dev": 15, "test": 15}
EDGE = int(0.1 * SAMPLE_RATE)  # samples of silence synthesize() leaves at each end


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _log_spectrum(wave: np.ndarray) -> np.ndarray:
    """Average log power spectrum over 512-sample Hann frames: a voice's timbre, blind to timing."""
    frames = wave[: len(wave) // 512 * 512].reshape(-1, 512) * np.hanning(512)
    return np.log(np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0) + 1e-10)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_corpus(tmp_path_factory.mktemp("synthetic"), **{f"n_{k}": v for k, v in COUNTS.items()})


def test_synthesize_speaks_at_16k_with_short_silent_edges() -> None:
    text = "the red cat sat on a big table and the dog slept under the green chair"
    wave = synthesize(text, rate=160)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert np.isfinite(wave).all()
    assert 0.1 < np.abs(wave).max() <= 1.0
    assert np.abs(wave[: EDGE // 2]).max() < 1e-3 and np.abs(wave[-EDGE // 2 :]).max() < 1e-3
    assert np.abs(wave[EDGE : EDGE + 1600]).max() > 0.01  # speech starts within 0.1 s of the trimmed edge
    # eSpeak speaks these short words at about 80% of the nominal words-per-minute time; read at the wrong
    # sample rate (22050 Hz samples taken as 16 kHz) the same audio would come out near 110%.
    nominal = len(text.split()) / 160 * 60
    assert 0.6 < (len(wave) / SAMPLE_RATE - 0.2) / nominal < 0.95


def test_longer_text_and_slower_rate_give_longer_audio() -> None:
    short = synthesize("the cat sat")
    long = synthesize("the cat sat on the big red table near the kitchen window")
    assert len(long) > 2 * len(short)
    slow = synthesize("please call anna at seven thirty on monday", rate=100)
    fast = synthesize("please call anna at seven thirty on monday", rate=250)
    assert len(slow) - 2 * EDGE > 1.8 * (len(fast) - 2 * EDGE)


def test_voices_sound_different() -> None:
    text = "the quick brown fox jumps over the lazy dog, please call anna at seven thirty on monday"
    us = _log_spectrum(synthesize(text, "en-us"))
    us_again = _log_spectrum(synthesize(text, "en-us"))
    for voice in ("en-us+f3", "en-gb-x-rp+m7", "en-029+f5"):
        other = _log_spectrum(synthesize(text, voice))
        assert np.sqrt(np.mean((other - us) ** 2)) > 0.8, voice
    assert np.sqrt(np.mean((us_again - us) ** 2)) < 0.5  # the same voice again is close


def test_silent_text_raises() -> None:
    for text in ("", "   "):
        with pytest.raises(ValueError, match="no speech"):
            synthesize(text)


def test_bad_voice_raises_value_error_and_the_process_survives() -> None:
    # In a child process: a library that exit()s on bad input would take pytest down with it.
    script = textwrap.dedent(
        """
        from asr.synth import synthesize
        for voice in ("xx-no-such-voice", "en-us+no-such-variant"):
            try:
                synthesize("hello", voice=voice)
            except ValueError as e:
                print("ValueError:", e)
        print("still speaking:", len(synthesize("hello")) > 0)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ValueError:") and "'xx-no-such-voice'" in lines[0]
    assert lines[1].startswith("ValueError:") and "'en-us+no-such-variant'" in lines[1]
    assert lines[2] == "still speaking: True"


@pytest.mark.parametrize(
    ("n", "words"),
    [(0, "zero"), (7, "seven"), (13, "thirteen"), (20, "twenty"), (42, "forty two"), (100, "one hundred")],
)
def test_number_words(n: int, words: str) -> None:
    assert number_words(n) == words


def test_number_words_hundreds_and_range() -> None:
    assert number_words(105) == "one hundred five"
    assert number_words(340) == "three hundred forty"
    assert number_words(999) == "nine hundred ninety nine"
    with pytest.raises(ValueError):
        number_words(1000)


def test_corpus_has_the_requested_utterances(corpus: dict[str, Path]) -> None:
    assert set(corpus) == set(COUNTS)
    for split, path in corpus.items():
        assert path == path.parent / f"{split}.jsonl"
        utts = read_manifest(path)
        assert len(utts) == COUNTS[split]
        for utt in utts:
            assert re.fullmatch(r"[a-z']+( [a-z']+)*", utt.text), utt.text
            assert Path(utt.audio_filepath).parent == path.parent / "wav"
    assert len(list((corpus["train"].parent / "wav").glob("*.wav"))) == sum(COUNTS.values())


def test_corpus_audio_matches_manifest(corpus: dict[str, Path]) -> None:
    for utt in itertools.chain.from_iterable(read_manifest(p) for p in corpus.values()):
        info = sf.info(utt.audio_filepath)
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
        assert utt.duration == pytest.approx(audio_duration(utt.audio_filepath), abs=1e-6)
        assert 0.5 < utt.duration < 10


def test_corpus_noise_and_gain(corpus: dict[str, Path], tmp_path: Path) -> None:
    for utt in read_manifest(corpus["train"]):
        wave = load_audio(utt.audio_filepath)
        assert 0.09 < np.abs(wave).max() < 0.91  # random gain, never clipped
        edges = np.concatenate([wave[:EDGE], wave[-EDGE:]])
        snr = 20 * np.log10(np.sqrt(np.mean(wave[EDGE:-EDGE] ** 2)) / np.sqrt(np.mean(edges**2)))
        assert 15 < snr < 40, (utt.id, snr)
    clean = make_corpus(tmp_path, 4, 1, 1, noise=False)
    for utt in read_manifest(clean["train"]):
        wave = load_audio(utt.audio_filepath)
        assert not wave[: EDGE // 2].any() and not wave[-EDGE // 2 :].any()


def test_no_sentence_in_two_splits(corpus: dict[str, Path]) -> None:
    texts = {split: [u.text for u in read_manifest(path)] for split, path in corpus.items()}
    for split, sentences in texts.items():
        assert len(set(sentences)) == len(sentences), split
    assert not set(texts["test"]) & set(texts["train"])
    assert not set(texts["dev"]) & set(texts["train"])
    assert not set(texts["dev"]) & set(texts["test"])


def test_large_splits_stay_disjoint() -> None:
    # Big enough that the small templates ("turn on the fan in the hall") repeat and must be redrawn.
    sentences = _split_sentences({"train": 5000, "dev": 500, "test": 500}, seed=3)
    assert [len(sentences[s]) for s in ("train", "dev", "test")] == [5000, 500, 500]
    assert len(set().union(*sentences.values())) == 6000
    assert _split_sentences({"train": 10, "dev": 500, "test": 500}, seed=3)["test"] == sentences["test"]


def test_rerun_does_no_work(corpus: dict[str, Path]) -> None:
    files = [*corpus.values(), *(corpus["train"].parent / "wav").iterdir()]
    before = {f: f.stat().st_mtime_ns for f in files}
    assert make_corpus(corpus["train"].parent, *COUNTS.values()) == corpus
    assert {f: f.stat().st_mtime_ns for f in files} == before


def test_new_counts_rebuild_without_stale_files(tmp_path: Path) -> None:
    make_corpus(tmp_path, 6, 2, 2)
    manifests = make_corpus(tmp_path, 4, 1, 3)
    assert [len(read_manifest(manifests[s])) for s in ("train", "dev", "test")] == [4, 1, 3]
    assert len(list((tmp_path / "wav").glob("*.wav"))) == 8


def test_seed_decides_the_sentences_and_test_ignores_other_sizes(tmp_path: Path) -> None:
    def utterances(name: str, seed: int, n_train: int) -> dict[str, list[tuple[str, float]]]:
        manifests = make_corpus(tmp_path / name, n_train, 2, 3, seed=seed)
        return {s: [(u.text, u.duration) for u in read_manifest(p)] for s, p in manifests.items()}

    a, b, c = utterances("a", 0, 8), utterances("b", 0, 4), utterances("c", 1, 8)
    assert [text for text, _ in a["test"]] == [text for text, _ in b["test"]]
    # same voice and rate, so the same length give or take eSpeak's carried-over state (a few samples)
    assert [d for _, d in a["test"]] == pytest.approx([d for _, d in b["test"]], abs=0.01)
    assert a["test"] != c["test"] and a["train"][:4] != c["train"][:4]


def test_negative_count_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dev"):
        make_corpus(tmp_path, 5, -1, 2)


def test_prepare_script_is_reproducible_to_the_byte(tmp_path: Path) -> None:
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / name
        proc = subprocess.run(
            [sys.executable, "recipes/synthetic/prepare.py", "--out-dir", str(out), "--train", "12"]
            + ["--dev", "3", "--test", "3", "--seed", "7"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=_env(),
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "train:    12 utterances" in proc.stdout and "total:" in proc.stdout
        outputs.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert len(outputs[0]) == 12 + 3 + 3 + 3
    assert outputs[0] == outputs[1]
