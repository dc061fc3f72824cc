"""The one inference API, on the small model file of tests/data (no training needed)."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_checkpoint import legacy_waves

import asr
from asr.decoding import DecoderConfig
from asr.decoding.beam import BeamSearch
from asr.errors import AudioFailure, DataError, OutputError, UsageError
from asr.inference import Transcriber, resolve_device
from asr.manifest import read_manifest, write_manifest

MODEL = Path(__file__).parent / "data" / "legacy_model.pt"
TEXTS = json.loads((MODEL.parent / "legacy_model_outputs.json").read_text())["texts"]


@pytest.fixture(scope="module")
def model() -> Transcriber:
    return asr.load_model(MODEL)


@pytest.fixture
def files(tmp_path) -> list[Path]:
    paths = []
    for i, wave in enumerate(legacy_waves()):
        sf.write(tmp_path / f"w{i}.wav", wave, 16000, subtype="FLOAT")
        paths.append(tmp_path / f"w{i}.wav")
    return paths


def test_paths_and_waveforms_in_order_with_greedy_and_beam(model, files):
    waves = legacy_waves()
    inputs = [files[2], waves[0], files[1], waves[2]]
    greedy = model.transcribe(inputs)
    assert [t.text for t in greedy] == [TEXTS[2], TEXTS[0], TEXTS[1], TEXTS[2]]
    assert [t.path for t in greedy] == [str(files[2]), "<waveform 1>", str(files[1]), "<waveform 3>"]
    assert all(len(t.nbest) == 1 and t.nbest[0].text == t.text for t in greedy)
    beam = model.transcribe(inputs, DecoderConfig("beam", beam_size=8, nbest=3), timestamps=True)
    assert all(1 <= len(t.nbest) <= 3 and t.nbest[0].text == t.text for t in beam)
    assert all(" ".join(w.text for w in t.words) == t.text for t in beam)
    done = []
    model.transcribe(inputs, progress=done.append)
    assert sum(done) == len(inputs)


def test_greedy_decoding_never_copies_the_batch_to_numpy(model, monkeypatch):
    def no_numpy(*args):
        raise AssertionError("greedy decoding copied the log-probabilities to NumPy")

    monkeypatch.setattr("asr.inference.unpad", no_numpy)  # only the best path leaves the device
    assert [t.text for t in model.transcribe(legacy_waves())] == TEXTS


def test_emit_once_then_score_with_several_decoders(model, files, tmp_path):
    manifest = tmp_path / "m.jsonl"
    write_manifest(
        manifest, [{"audio_filepath": str(p), "duration": 1.0, "text": t} for p, t in zip(files, TEXTS)]
    )
    emitted = model.emit(manifest)
    assert [u.text for u in emitted.utterances] == TEXTS and emitted.skipped == []
    assert model.score(emitted).word_errors == 0
    assert (
        model.score(emitted, DecoderConfig("beam", beam_size=8), report=tmp_path / "r.jsonl").word_errors == 0
    )
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["hypothesis"] for r in rows] == TEXTS
    counts, skipped = model.evaluate(manifest)
    assert (counts.word_errors, counts.words, skipped) == (0, 3, 0)


def test_evaluate_refusals_and_empty_or_unreadable_data(model, files, tmp_path):
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, [{"audio_filepath": str(files[0]), "duration": 1.0, "text": TEXTS[0]}])
    before = manifest.read_bytes()
    with pytest.raises(OutputError, match="refusing to overwrite the input"):
        model.evaluate(manifest, report=manifest)
    assert manifest.read_bytes() == before
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="empty.jsonl: no utterances"):
        model.evaluate(tmp_path / "empty.jsonl")
    write_manifest(tmp_path / "gone.jsonl", [{"audio_filepath": "missing.wav", "duration": 1.0, "text": "a"}])
    with pytest.raises(AudioFailure, match="none of the 1 audio files could be read"):
        model.evaluate(read_manifest(tmp_path / "gone.jsonl"))
    with pytest.raises(UsageError, match="beam_threshold"):
        model.evaluate(manifest, DecoderConfig("beam", beam_threshold=-1.0))


def test_devices_are_checked(model):
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(UsageError, match="not a torch device"):
        resolve_device("bogus")
    with pytest.raises(UsageError, match="only cpu, cuda and mps"):
        resolve_device("meta")


def test_bad_waveforms_get_their_one_line_error(model):
    results = model.transcribe([np.zeros(0, np.float32), np.array([np.nan] * 2000, np.float32)])
    assert [r.error for r in results] == [
        "<waveform 0>: no samples",
        "<waveform 1>: contains NaN or infinite samples",
    ]


def test_beam_search_is_built_once_per_config_across_calls(model, monkeypatch):
    built = []

    class Counted(BeamSearch):  # each construction loads the LM and builds the lexicon's trie
        def __init__(self, tokenizer, config):
            built.append(config)
            super().__init__(tokenizer, config)

    monkeypatch.setattr("asr.decoding.pool.BeamSearch", Counted)
    fresh = Transcriber(model.recognizer)  # a cache of its own
    a, b, c = (DecoderConfig("beam", beam_size=n) for n in (4, 5, 6))
    for config in (a, a, b, a, c, a, b):
        fresh.transcribe(legacy_waves()[:1], config)
    assert built == [a, b, c, b]  # the last two configs kept: c evicts b, b then evicts c


def test_a_long_waveform_that_cannot_be_timed_gets_its_name_and_the_reason(model, monkeypatch):
    reason = "cannot align 9 tokens to log_probs of shape (3, 29)"

    def unalignable(*args):
        raise ValueError(reason)

    monkeypatch.setattr("asr.inference.align_words", unalignable)
    (result,) = model.transcribe([legacy_waves()[2]], window_s=1.0, overlap_s=0.25)  # 1.7 s: windowed
    assert result.error == f"<waveform 0>: cannot transcribe ({reason})"
