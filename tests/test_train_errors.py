"""`asr train` on unusable data, devices and strategies: one `error:` line, its exit code, nothing written.

Each case is recorded for RELIABILITY.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from reliability import record

from asr.cli import main
from asr.errors import EXIT_AUDIO, EXIT_CONFIG, EXIT_DATA, EXIT_USAGE, run_main


def _manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _garbage(folder: Path, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        (folder / f"bad{i}.wav").write_bytes(b"RIFF not really a wave file" * 40)
        rows.append({"audio_filepath": f"bad{i}.wav", "duration": 1.5, "text": "hello there"})
    return rows


def _data(name: str, corpus: dict[str, Path], tmp: Path) -> list[str]:
    """The data overrides of one case."""
    train, dev = f"data.train_manifest={corpus['train']}", f"data.val_manifest={corpus['dev']}"
    if name == "train manifest missing":
        return [f"data.train_manifest={tmp / 'nope.jsonl'}", dev]
    if name == "train manifest empty":
        return [f"data.train_manifest={_manifest(tmp / 'empty.jsonl', [])}", dev]
    if name == "train manifest not set":
        return [dev]
    if name == "val manifest not set":
        return [train]
    if name == "val manifest empty":
        return [train, f"data.val_manifest={_manifest(tmp / 'empty.jsonl', [])}"]
    if name == "train all filtered out":
        return [train, dev, "data.min_duration=30", "data.max_duration=40"]
    if name == "train all unreadable":
        return [f"data.train_manifest={_manifest(tmp / 'bad.jsonl', _garbage(tmp, 3))}", dev]
    if name == "val all unreadable":
        return [train, f"data.val_manifest={_manifest(tmp / 'bad.jsonl', _garbage(tmp, 2))}"]
    raise AssertionError(name)


# case, exit code, what the one error line must say
DATA_CASES = [
    ("train manifest missing", EXIT_DATA, "nope.jsonl: manifest not found"),
    ("train manifest empty", EXIT_DATA, "empty.jsonl: no usable utterances"),
    ("train manifest not set", EXIT_DATA, "data.train_manifest is not set"),
    ("val manifest not set", EXIT_DATA, "data.val_manifest is not set"),
    ("val manifest empty", EXIT_DATA, "empty.jsonl: no usable utterances"),
    ("train all filtered out", EXIT_DATA, "24 shorter than 30.0s"),
    ("train all unreadable", EXIT_AUDIO, "bad.jsonl: none of the 3 audio file(s)"),
    ("val all unreadable", EXIT_AUDIO, "bad.jsonl: none of the 2 audio file(s)"),
]


def _train(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = run_main(lambda: main(["train", *args]))
    err = capsys.readouterr().err
    return code, err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


@pytest.mark.parametrize(("name", "code", "says"), DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_unusable_training_data_is_one_line(corpus, tiny_model, tmp_path, capsys, name, code, says):
    exp = tmp_path / "exp"
    args = [*tiny_model, *_data(name, corpus, tmp_path), f"exp_dir={exp}", "trainer.max_epochs=1"]
    got, err = _train(args, capsys)
    record("training data: asr train", f"error line, exit {got}")
    assert got == code, err[-3000:]
    assert says in _one_error_line(err)
    if code == EXIT_DATA:
        assert not exp.exists()


@pytest.mark.parametrize(
    ("overrides", "code", "says"),
    [
        (["trainer.accelerator=cuda"], EXIT_USAGE, "trainer.accelerator=cuda: no CUDA GPU"),
        (["trainer.accelerator=gpu"], EXIT_USAGE, "trainer.accelerator=gpu: no CUDA GPU"),
        (["trainer.strategy=bogus"], EXIT_CONFIG, "trainer.strategy='bogus'"),
    ],
)
def test_unavailable_device_is_one_line(
    corpus, tiny_model, tmp_path, capsys, monkeypatch, overrides, code, says
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    exp = tmp_path / "exp"
    data = [f"data.train_manifest={corpus['train']}", f"data.val_manifest={corpus['dev']}"]
    got, err = _train([*tiny_model, *data, f"exp_dir={exp}", *overrides], capsys)
    record("devices: asr train", f"error line, exit {got}")
    assert got == code, err[-3000:]
    assert says in _one_error_line(err)
    assert not exp.exists()


def test_normalisation_statistics_of_other_features_are_one_line(corpus, tiny_model, tmp_path, capsys):
    """A ``data.cmvn_stats`` file is reused by later runs: one computed for other feature settings is refused
    by name, not silently applied (a file of the mel bins alone, from older runs, still loads)."""
    stats = tmp_path / "cmvn.json"
    data = [f"data.train_manifest={corpus['train']}", f"data.val_manifest={corpus['dev']}"]
    args = [*tiny_model, *data, f"data.cmvn_stats={stats}", "trainer.max_epochs=1"]
    got, err = _train([*args, f"exp_dir={tmp_path / 'first'}"], capsys)
    assert got == 0, err[-3000:]
    written = json.loads(stats.read_text())
    assert written["features"] == {"n_mels": 80, "win_ms": 25.0, "hop_ms": 10.0}
    got, err = _train([*args, f"exp_dir={tmp_path / 'second'}", "features.win_ms=32"], capsys)
    record("normalisation statistics of other features: asr train", f"error line, exit {got}")
    assert got == EXIT_CONFIG
    assert "cmvn.json: statistics for other features, win_ms 25.0 (the model: 32.0)" in _one_error_line(err)
    stats.write_text(json.dumps({"mean": written["mean"], "std": written["std"]}))  # an older run's file
    got, err = _train([*args, f"exp_dir={tmp_path / 'third'}"], capsys)
    assert got == 0, err[-3000:]
