"""Property-based fuzzing (hypothesis): every reader returns a result or raises its own one error type.

Example counts are fixed (``derandomize=True``, no example database), so each run tries the same cases and
RELIABILITY.md stays the same. ``benchmarks/fuzz_audio.py --cases N`` runs a longer audio fuzz.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability import outcome_of, record

from asr.audio import SAMPLE_RATE, AudioError, load_audio
from asr.decoding import DecoderError
from asr.decoding.lexicon import arpa_unigrams, read_lexicon
from asr.manifest import ManifestError, read_manifest
from asr.text import CharTokenizer, TokenizerError, normalize_text


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# Text ------------------------------------------------------------------------------------------------


@fuzz(400)
@given(st.text())
def test_normalize_text_is_idempotent(text):
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert once == once.strip() and "  " not in once
    record("fuzz: normalize_text idempotent", "result")


@fuzz(300)
@given(st.text())
def test_tokenizer_round_trip(text):
    norm = normalize_text(text)
    tok = CharTokenizer.from_texts([text])
    ids = tok.encode(text)
    assert len(ids) == len(norm) and 0 not in ids  # one id a character, never the blank
    assert tok.decode(ids) == norm
    try:
        english = CharTokenizer.english().encode(text)
    except TokenizerError as e:
        assert "outside the vocabulary" in str(e)
        record("fuzz: tokenizer round trip", "TokenizerError (English vocabulary)")
        return
    assert CharTokenizer.english().decode(english) == norm
    record("fuzz: tokenizer round trip", "result")


# Manifests -------------------------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        b'{"audio_filepath": "a.wav", "duration": 1.5, "text": "hi"}',
        b'{"audio_filepath": "", "duration": 1, "text": "x"}',
        b'{"duration": -0.0, "text": 3}',
        b'{"audio_filepath": "a\\u0000b", "duration": 1e999, "text": "\\ud800"}',
        b"[]",
        b"null",
        b"{",
        b"\xef\xbb\xbf{}",
        b"\xff\xfe",
        b"   ",
    ]
)
LINES = st.lists(st.one_of(FRAGMENTS, st.binary(max_size=80)), max_size=6).map(b"\n".join)


@fuzz(400)
@given(st.one_of(st.binary(max_size=400), LINES))
def test_manifest_reader_gives_result_or_manifest_error(folder, content):
    path = folder / "m.jsonl"
    path.write_bytes(content)
    try:
        utts = read_manifest(path)
    except ManifestError as e:
        assert str(e).startswith(f"{path}:") and "\n" not in str(e)
        record("fuzz: manifest reader", "ManifestError")
        return
    assert all(u.duration > 0 and isinstance(u.text, str) for u in utts)
    record("fuzz: manifest reader", "result")


# Language-model and lexicon files ----------------------------------------------------------------------

ARPA_LINES = st.lists(
    st.one_of(
        st.sampled_from(
            ["\\data\\", "ngram 1=3", "\\1-grams:", "\\2-grams:", "\\end\\", "", "-1.0\thello\t-0.5"]
        ),
        st.text(max_size=30),
    ),
    max_size=8,
).map("\n".join)


@fuzz(400)
@given(ARPA_LINES)
def test_arpa_reader_gives_words_or_decoder_error(folder, text):
    path = folder / "lm.arpa"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        words = arpa_unigrams(path)
    except DecoderError as e:
        assert str(e).startswith(f"{path}:") and "\n" not in str(e)
        record("fuzz: ARPA reader (arpa_unigrams)", outcome_of(e))
        return
    assert all(isinstance(w, str) and w for w in words)
    record("fuzz: ARPA reader (arpa_unigrams)", "result")


@fuzz(200)
@given(st.text(max_size=200))
def test_lexicon_reader_gives_entries_or_decoder_error(folder, text):
    path = folder / "lexicon.txt"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    try:
        lexicon = read_lexicon(path)
    except DecoderError as e:
        assert str(e).startswith(f"{path}:") and "\n" not in str(e)
        record("fuzz: lexicon reader", outcome_of(e))
        return
    assert all(word and spellings and all(spellings) for word, spellings in lexicon.items())
    record("fuzz: lexicon reader", "result")


def test_lexicon_reader_names_non_utf8_file(tmp_path):
    (tmp_path / "lexicon.txt").write_bytes(b"caf\xe9 c a f \xe9 |\n")
    with pytest.raises(DecoderError, match="lexicon.txt"):
        read_lexicon(tmp_path / "lexicon.txt")


def test_arpa_reader_names_short_unigram_line(tmp_path):
    (tmp_path / "lm.arpa").write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\n\\end\\\n")
    with pytest.raises(DecoderError, match="lm.arpa"):
        arpa_unigrams(tmp_path / "lm.arpa")


# Audio -----------------------------------------------------------------------------------------------

SEEDS = [
    ("wav", "WAV", "PCM_16"),
    ("flac", "FLAC", "PCM_16"),
    ("ogg", "OGG", "VORBIS"),
    ("mp3", "MP3", "MPEG_LAYER_III"),
]


@pytest.fixture(scope="module")
def seeds(folder) -> dict[str, bytes]:
    """Small valid files, one per container, to mutate."""
    wave = 0.5 * np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE // 4) / SAMPLE_RATE)
    out = {}
    for ext, fmt, subtype in SEEDS:
        sf.write(folder / f"seed.{ext}", wave, SAMPLE_RATE, format=fmt, subtype=subtype)
        out[ext] = (folder / f"seed.{ext}").read_bytes()
    return out


MUTATION = st.tuples(
    st.sampled_from(["overwrite", "insert", "delete", "truncate"]),
    st.floats(0, 1, allow_nan=False),  # where, as a fraction of the length (headers are near 0)
    st.binary(min_size=1, max_size=8),
)


def _load_mutate():  # noqa: ANN202
    """benchmarks/fuzz_audio.py's ``mutate``: the fuzz benchmark and these tests mutate bytes the same way."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_audio.py"
    spec = importlib.util.spec_from_file_location("fuzz_audio", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.mutate


mutate = _load_mutate()


def _load(path: Path) -> str:
    try:
        wave = load_audio(path)
    except AudioError as e:
        assert str(e).startswith(f"{path}: ") and "\n" not in str(e)
        return "AudioError"
    assert wave.dtype == np.float32 and wave.ndim == 1 and len(wave) > 0 and np.isfinite(wave).all()
    return "waveform"


@fuzz(1000)
@given(st.sampled_from([s[0] for s in SEEDS]), st.lists(MUTATION, min_size=1, max_size=4))
def test_audio_loader_on_mutated_files(folder, seeds, ext, mutations):
    path = folder / f"mutated.{ext}"
    path.write_bytes(mutate(seeds[ext], mutations))
    record(f"fuzz: load_audio, mutated {ext}", _load(path))


@fuzz(300)
@given(st.sampled_from(["wav", "flac", "ogg", "mp3", "sph", "bin"]), st.binary(min_size=1, max_size=600))
def test_audio_loader_on_random_bytes(folder, ext, content):
    path = folder / f"random.{ext}"
    path.write_bytes(content)
    record("fuzz: load_audio, random bytes", _load(path))
