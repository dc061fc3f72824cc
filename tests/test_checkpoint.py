import os
import pickle

import pytest
import torch
from reliability import record

from asr.audio import load_audio
from asr.checkpoint import CheckpointError, export_model, load_checkpoint, load_model, save_atomic
from asr.manifest import read_manifest


def test_round_trip_gives_identical_outputs(trained_model, corpus, tmp_path):
    model = load_model(trained_model)
    export_model(trained_model, tmp_path / "model.pt")
    exported = load_model(tmp_path / "model.pt")
    assert (tmp_path / "model.pt").stat().st_size < trained_model.stat().st_size  # no optimiser state
    waves = [load_audio(u.audio_filepath) for u in read_manifest(corpus["test"])]
    batch, lens = model.pad(waves)
    a, a_lens = model(batch, lens)
    b, b_lens = exported(batch, lens)
    assert torch.equal(a, b) and torch.equal(a_lens, b_lens)
    assert model.transcribe(waves) == exported.transcribe(waves)
    assert torch.equal(exported.frontend.cmvn.mean, model.frontend.cmvn.mean)
    assert exported.frontend.cmvn.std.abs().sum() > 0 and not torch.all(exported.frontend.cmvn.mean == 0)


def test_batched_transcription_equals_one_at_a_time(trained_model, corpus):
    model = load_model(trained_model)
    waves = [load_audio(u.audio_filepath) for u in read_manifest(corpus["test"])]
    batch, lens = model.pad(waves)
    log_probs, out_lens = model(batch, lens)
    for i, w in enumerate(waves):
        single, single_len = model(*model.pad([w]))
        assert single_len.item() == out_lens[i]
        torch.testing.assert_close(log_probs[i, : out_lens[i]], single[0], atol=1e-4, rtol=1e-4)


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
        load_model(path)
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
        load_model(tmp_path / "x.pt")


def test_failed_save_leaves_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    save_atomic({"step": 1}, path)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_atomic({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind
