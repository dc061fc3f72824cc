import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability import record

from asr.audio import load_audio
from asr.checkpoint import (
    CheckpointError,
    export_model,
    is_training_checkpoint,
    load_checkpoint,
    load_recognizer,
    save_atomic,
)
from asr.errors import ModelFileError, OutputError
from asr.inference import Transcriber
from asr.manifest import read_manifest

DATA = Path(__file__).parent / "data"


def legacy_waves() -> list[np.ndarray]:
    """Tone bursts whose pitch and loudness change every 80 ms: the inputs of tests/data/legacy_model_*."""
    out = []
    for k, seconds in enumerate((0.6, 1.0, 1.7)):
        n = int(seconds * 16000)
        t = np.arange(n) / 16000
        seg = np.arange(n) // 1280
        freq = 150.0 + 90.0 * ((seg * 7 + k * 3) % 11)
        amp = 0.05 + 0.1 * ((seg * 5 + k) % 4)
        w = amp * np.sin(2 * np.pi * freq * t) + 0.02 * np.sin(2 * np.pi * 2900.0 * t * (1 + k))
        out.append(w.astype(np.float32))
    return out


def _check_legacy_outputs(transcriber: Transcriber) -> None:
    expected = json.loads((DATA / "legacy_model_outputs.json").read_text())
    log_probs = np.load(DATA / "legacy_model_outputs.npz")
    waves = legacy_waves()
    assert [t.text for t in transcriber.transcribe(waves)] == expected["texts"]
    for i, (lp, n) in enumerate(transcriber.emissions(waves)):
        # 1e-4: the reference was computed on another CPU, whose kernels sum in another order (5e-5 seen on
        # an AVX-512 Xeon against the AMD machine that wrote it); a loading bug moves log-probs by far more
        np.testing.assert_allclose(lp, log_probs[f"log_probs_{i}"], rtol=0, atol=1e-4)
        assert n == len(lp)


def test_model_file_from_before_the_spec_gives_identical_outputs():
    """tests/data/legacy_model.pt was exported by commit e4881cf (no format version, the whole training
    config stored): a random tiny model with normalisation statistics; its transcripts and log-probabilities
    of the waveforms of :func:`legacy_waves` were saved beside it by that code."""
    assert "spec" not in load_checkpoint(DATA / "legacy_model.pt")["asr"]
    transcriber = Transcriber.load(DATA / "legacy_model.pt")
    assert transcriber.spec.features.n_mels == 40 and transcriber.spec.model.hidden_size == 16
    assert transcriber.spec.cmvn is not None and max(transcriber.spec.cmvn["std"]) > 1.0
    _check_legacy_outputs(transcriber)


def test_legacy_training_checkpoint_and_its_export_give_identical_outputs(tmp_path):
    old = load_checkpoint(DATA / "legacy_model.pt")
    training = {
        "asr": old["asr"],
        "state_dict": {f"recognizer.{k}": v for k, v in old["state_dict"].items()},
        "optimizer_states": [{}],
        "loops": {},
    }
    torch.save(training, tmp_path / "last.ckpt")
    _check_legacy_outputs(Transcriber.load(tmp_path / "last.ckpt"))
    export_model(tmp_path / "last.ckpt", tmp_path / "model.pt")
    exported = load_checkpoint(tmp_path / "model.pt")
    assert exported["asr"]["spec"]["version"] == 1
    assert exported["asr"]["training_config"]["model"]["hidden_size"] == 16  # provenance kept
    _check_legacy_outputs(Transcriber.load(tmp_path / "model.pt"))


def test_round_trip_gives_identical_outputs(trained_model, corpus, tmp_path):
    model = load_recognizer(trained_model)
    export_model(trained_model, tmp_path / "model.pt")
    exported = load_recognizer(tmp_path / "model.pt")
    assert (tmp_path / "model.pt").stat().st_size < trained_model.stat().st_size  # no optimiser state
    waves = [load_audio(u.audio_filepath) for u in read_manifest(corpus["test"])]
    batch, lens = model.pad(waves)
    a, a_lens = model(batch, lens)
    b, b_lens = exported(batch, lens)
    assert torch.equal(a, b) and torch.equal(a_lens, b_lens)
    texts = [t.text for t in Transcriber(model).transcribe(waves)]
    assert texts == [t.text for t in Transcriber(exported).transcribe(waves)]
    assert torch.equal(exported.frontend.cmvn.mean, model.frontend.cmvn.mean)
    assert exported.frontend.cmvn.std.abs().sum() > 0 and not torch.all(exported.frontend.cmvn.mean == 0)
    assert exported.spec == model.spec


def test_loading_never_reads_the_training_config(trained_model, tmp_path):
    """A trainer key renamed in a later version cannot make a model file unloadable."""
    ckpt = load_checkpoint(trained_model)
    ckpt["asr"]["training_config"] = {"trainer": {"renamed_key": 1}, "no_such_section": {}}
    torch.save(ckpt, tmp_path / "m.ckpt")
    assert load_recognizer(tmp_path / "m.ckpt").spec == load_recognizer(trained_model).spec


def test_batched_emissions_equal_one_at_a_time(trained_model, corpus):
    model = load_recognizer(trained_model)
    waves = [load_audio(u.audio_filepath) for u in read_manifest(corpus["test"])]
    batch, lens = model.pad(waves)
    log_probs, out_lens = model(batch, lens)
    for i, w in enumerate(waves):
        single, single_len = model(*model.pad([w]))
        assert single_len.item() == out_lens[i]
        torch.testing.assert_close(log_probs[i, : out_lens[i]], single[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("features", "hop_ms", 0.0, "features.hop_ms must be a positive number"),
        ("features", "hop_ms", 0.01, "less than one sample"),
        ("features", "win_ms", 5.0, "win_ms=5.0 must be at least"),
        ("features", "n_mels", 0, "features.n_mels must be a positive integer"),
        ("model", "num_layers", 0, "model.num_layers must be a positive integer"),
        ("model", "rnn_type", "transformer", "model.rnn_type must be"),
        ("model", "subsampling", 3, "model.subsampling must be 2, 4 or 8"),
        ("model", "dropout", 1.0, r"model.dropout must lie in \[0, 1\)"),
        ("model", "hidden_size", "16", "spec model.hidden_size: expected int"),
        ("model", "extra", 1, "unknown key"),
        ("cmvn", "mean", [0.0], "cmvn.mean: expected 40 values"),
        ("tokenizer", "kind", "wordpiece", "unknown tokenizer kind 'wordpiece'"),
        ("tokenizer", "kind", "sentencepiece", "not a SentencePiece tokenizer"),
        (None, "version", 99, "this asr reads version 1"),
    ],
)
def test_impossible_stored_settings_are_a_model_file_error(tmp_path, section, key, value, message):
    ckpt = load_checkpoint(DATA / "legacy_model.pt")
    spec = Transcriber.load(DATA / "legacy_model.pt").spec.to_dict()
    (spec if section is None else spec[section])[key] = value
    path = tmp_path / "bad.pt"
    torch.save({"asr": {"spec": spec, "training_config": None}, "state_dict": ckpt["state_dict"]}, path)
    with pytest.raises(CheckpointError, match=message) as e:
        load_recognizer(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, ModelFileError) and e.value.exit_code == 4


def test_legacy_file_with_impossible_settings_is_a_model_file_error(tmp_path):
    ckpt = load_checkpoint(DATA / "legacy_model.pt")
    ckpt["asr"]["config"]["features"]["hop_ms"] = 0.0
    torch.save(ckpt, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="old.pt: impossible model settings .*hop_ms"):
        load_recognizer(tmp_path / "old.pt")


def test_export_refuses_to_replace_its_input_or_a_training_checkpoint(tmp_path):
    old = load_checkpoint(DATA / "legacy_model.pt")
    training = {"asr": old["asr"], "state_dict": old["state_dict"], "optimizer_states": [{}], "loops": {}}
    torch.save(training, tmp_path / "last.ckpt")
    torch.save(training, tmp_path / "best.ckpt")
    before = (tmp_path / "last.ckpt").read_bytes()
    os.symlink(tmp_path / "last.ckpt", tmp_path / "link.ckpt")
    for dest in (
        tmp_path / "last.ckpt",
        tmp_path / "link.ckpt",
        tmp_path / ".." / tmp_path.name / "last.ckpt",
    ):
        with pytest.raises(OutputError, match="refusing to overwrite the input"):
            export_model(tmp_path / "last.ckpt", dest)
    assert is_training_checkpoint(tmp_path / "best.ckpt")
    with pytest.raises(OutputError, match="best.ckpt: is a training checkpoint"):
        export_model(tmp_path / "last.ckpt", tmp_path / "best.ckpt")
    assert (tmp_path / "last.ckpt").read_bytes() == before
    export_model(tmp_path / "last.ckpt", tmp_path / "model.pt")
    assert not is_training_checkpoint(tmp_path / "model.pt")
    export_model(tmp_path / "last.ckpt", tmp_path / "model.pt")  # an inference-only model may be replaced


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/asr-pwned",))


class _EvilEval:
    def __reduce__(self):
        return (eval, ("open('/tmp/asr-pwned', 'w')",))


@pytest.mark.parametrize(
    ("protocol", "payload"), [(2, _Evil), (4, _Evil), ("torch-zip", _Evil), ("torch-zip", _EvilEval)]
)
def test_code_executing_pickle_is_refused(tmp_path, protocol, payload):
    path = tmp_path / "evil.ckpt"
    obj = {"asr": {}, "state_dict": payload()}
    if protocol == "torch-zip":  # torch.save's own format: the pickle inside a zip archive
        torch.save(obj, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=protocol)
    with pytest.raises(CheckpointError, match="refused") as e:
        load_recognizer(path)
    assert not os.path.exists("/tmp/asr-pwned")
    if protocol == 2:
        assert "GLOBAL posix.system" in str(e.value)
    assert "\n" not in str(e.value)
    record("checkpoint: code-executing pickle", "CheckpointError, nothing run")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "checkpoint not found"),
        (b"", "not a readable checkpoint"),
        (b"garbage" * 10, "refused, not a weights-only checkpoint"),
    ],
)
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "m.ckpt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)
    record("checkpoint: unreadable file", "CheckpointError")


def test_other_torch_files_are_not_asr_checkpoints(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="not an asr checkpoint"):
        load_recognizer(tmp_path / "x.pt")
    torch.save({"asr": {"something": 1}, "state_dict": {}}, tmp_path / "y.pt")
    with pytest.raises(CheckpointError, match="no model spec"):
        load_recognizer(tmp_path / "y.pt")


def test_failed_save_leaves_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    save_atomic({"step": 1}, path)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OutputError, match="last.ckpt: cannot write .*No space"):
        save_atomic({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind
