"""Exact resume: a run SIGKILLed mid-epoch and restarted continues with the losses of an uninterrupted run."""

from __future__ import annotations

import csv
import importlib.util
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import TINY_MODEL
from reliability import record

from asr.checkpoint import export_model, load_recognizer, recognizer_state
from asr.config import load_config
from asr.errors import ConfigError, run_main
from asr.metrics import ErrorCounts
from asr.train import LOCK_FILE, ExperimentBusy, experiment_lock, train

ROOT = Path(__file__).resolve().parents[1]
KILL_AFTER = 4  # kill once last.ckpt holds at least this many steps (mid-epoch: an epoch is ~6 steps)
MAX_STEPS = 10
DRIVER = """
import logging, sys
from asr.config import load_config
from asr.train import train
logging.basicConfig(level=logging.INFO)
train(load_config(None, sys.argv[1:]))
"""


def _command(corpus: dict[str, Path], exp: Path, tiny_model: list[str]) -> list[str]:
    return [
        sys.executable,
        "-c",
        DRIVER,
        *tiny_model,
        f"data.train_manifest={corpus['train']}",
        f"data.val_manifest={corpus['dev']}",
        f"exp_dir={exp}",
        "data.max_batch_seconds=12",
        "data.speed_perturb=[0.9,1.0,1.1]",
        "model.dropout=0.3",  # dropout and SpecAugment draw random numbers that resume must reproduce
        f"trainer.max_steps={MAX_STEPS}",
        "trainer.max_epochs=100",
        "trainer.checkpoint_every_n_steps=1",
        "trainer.keep_last=2",
        "trainer.average_last=2",
        "trainer.threads=1",
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _rows(exp: Path) -> list[dict[str, str]]:
    with open(exp / "logs" / "metrics.csv") as f:
        return [r for r in csv.DictReader(f) if r.get("train/loss")]


def _losses(exp: Path) -> dict[int, float]:
    """step -> train/loss; a step logged twice (before the kill and after resuming) keeps its last row."""
    return {int(r["step"]): float(r["train/loss"]) for r in _rows(exp)}


def _step(ckpt: Path) -> int:
    try:
        return int(torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"])
    except (OSError, RuntimeError, EOFError, KeyError):
        return -1


def _weights(exp: Path) -> dict[str, torch.Tensor]:
    return torch.load(exp / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def test_sigkill_and_resume_matches_an_uninterrupted_run(corpus, tiny_model, tmp_path):
    reference = subprocess.run(
        _command(corpus, tmp_path / "ref", tiny_model),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert reference.returncode == 0, reference.stderr[-3000:]

    exp = tmp_path / "run"
    last = exp / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(
        _command(corpus, exp, tiny_model), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env()
    )
    deadline = time.monotonic() + 240
    while (not last.is_file() or _step(last) < KILL_AFTER) and proc.poll() is None:
        assert time.monotonic() < deadline, "the run wrote no checkpoint in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _step(last)
    assert KILL_AFTER <= killed_at < MAX_STEPS, f"killed too late, at step {killed_at}"
    per_epoch = sum(r["epoch"] == "0" for r in _rows(tmp_path / "ref"))
    assert killed_at % per_epoch, f"step {killed_at} ends an epoch of {per_epoch}: not a mid-epoch resume"

    resumed = subprocess.run(
        _command(corpus, exp, tiny_model), capture_output=True, text=True, env=_env(), timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {last}" in resumed.stderr

    want, got = _losses(tmp_path / "ref"), _losses(exp)
    assert sorted(want) == list(range(MAX_STEPS))
    after = range(killed_at, MAX_STEPS)
    assert [got[s] for s in after] == pytest.approx([want[s] for s in after], rel=1e-5, abs=1e-6)
    ref_w, run_w = _weights(tmp_path / "ref"), _weights(exp)
    assert all(torch.allclose(ref_w[k], run_w[k], atol=1e-6) for k in ref_w)
    kept = sorted(p.name for p in (tmp_path / "ref" / "checkpoints").glob("step-*.ckpt"))
    assert kept == [f"step-{MAX_STEPS - 1:08d}.ckpt", f"step-{MAX_STEPS:08d}.ckpt"]
    epochs = sorted(p.name for p in (tmp_path / "ref" / "checkpoints").glob("epoch-*.ckpt"))
    assert epochs and epochs == sorted(p.name for p in (exp / "checkpoints").glob("epoch-*.ckpt"))
    avg = tmp_path / "avg.pt"
    assert (
        _average_tool().main([str(tmp_path / "ref" / "checkpoints"), "--last", "2", "--out", str(avg)]) == 0
    )
    assert load_recognizer(avg).model_config.hidden_size == 32


def _average_tool():
    spec = importlib.util.spec_from_file_location(
        "average_checkpoints", ROOT / "tools/average_checkpoints.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_average_checkpoints_last_and_best(trained_model, tmp_path, capsys):
    tool = _average_tool()
    base = torch.load(trained_model, map_location="cpu", weights_only=True)
    (key,) = [k for k in base["callbacks"] if "'monitor': 'val/" in k]  # the best-K table (by dev CER)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for i, wer in enumerate([0.5, 0.2, 0.3, 0.9]):  # steps 10, 20, 30, 40; encoder weights shifted by i
        ckpt = {**base, "global_step": 10 * (i + 1)}
        ckpt["state_dict"] = {
            k: v + i if ".encoder." in f".{k}" and v.is_floating_point() else v
            for k, v in base["state_dict"].items()
        }
        table = {
            str(folder / f"c{j}.ckpt"): torch.tensor(w) for j, w in enumerate([0.5, 0.2, 0.3, 0.9][: i + 1])
        }
        ckpt["callbacks"] = {
            **base["callbacks"],
            key: {**base["callbacks"][key], "current_score": torch.tensor(wer), "best_k_models": table},
        }
        torch.save(ckpt, folder / f"c{i}.ckpt")
    # last.ckpt: c3's weights, with a current score (0.1) that belongs to an earlier checkpoint
    last = {**ckpt, "callbacks": {**ckpt["callbacks"], key: {**ckpt["callbacks"][key], "current_score": 0.1}}}
    torch.save(last, folder / "last.ckpt")
    assert [p.name for p in tool.select([folder], last=2)] == ["c2.ckpt", "c3.ckpt"]
    assert [p.name for p in tool.select([folder], best=2)] == ["c1.ckpt", "c2.ckpt"]

    out = tmp_path / "avg.pt"
    assert tool.main([str(folder), "--last", "3", "--out", str(out)]) == 0
    assert "averaged 3 checkpoint(s): c1.ckpt, c2.ckpt, c3.ckpt" in capsys.readouterr().out
    averaged = load_recognizer(out).state_dict()
    original = load_recognizer(trained_model).state_dict()
    for k, v in original.items():
        shift = 2.0 if k.startswith("encoder.") and v.is_floating_point() else 0.0  # mean of 1, 2 and 3
        assert torch.allclose(averaged[k], v + shift, atol=1e-5), k

    spec = base["asr"]["spec"]
    other = {**base, "asr": {**base["asr"], "spec": {**spec, "model": {**spec["model"], "dropout": 0.5}}}}
    torch.save(other, folder / "other.ckpt")
    assert (
        run_main(lambda: tool.main([str(folder / "c0.ckpt"), str(folder / "other.ckpt"), "--out", str(out)]))
        == 4
    )
    assert "only like models average" in capsys.readouterr().err


def test_average_last_makes_the_model_the_mean_of_the_last_epochs(corpus, tiny_model, tmp_path):
    exp = tmp_path / "exp"
    sources = train(_config(corpus, exp, tiny_model, "trainer.max_epochs=3", "trainer.average_last=2"))
    assert [p.name for p in sources] == ["epoch-001.ckpt", "epoch-002.ckpt"]
    assert sorted(exp.glob("checkpoints/epoch-*.ckpt")) == sources  # epoch 0's was deleted
    ckpts = [torch.load(p, map_location="cpu", weights_only=True) for p in sources]
    assert not any("optimizer_states" in c for c in ckpts)  # weights only: resume reads last.ckpt
    first, second = (recognizer_state(c) for c in ckpts)
    last = recognizer_state(torch.load(exp / "checkpoints" / "last.ckpt", weights_only=True))
    assert all(torch.equal(second[k], last[k]) for k in last)  # written after the epoch's last step
    export_model(sources, tmp_path / "model.pt")
    model = load_recognizer(tmp_path / "model.pt").state_dict()
    moved = [k for k, v in first.items() if v.is_floating_point() and not torch.equal(v, second[k])]
    assert moved and all(torch.allclose(model[k], (first[k] + second[k]) / 2, atol=1e-6) for k in moved)


def _config(corpus: dict[str, Path], exp: Path, tiny_model: list[str], *more: str):
    return load_config(
        None,
        [
            *tiny_model,
            f"data.train_manifest={corpus['train']}",
            f"data.val_manifest={corpus['dev']}",
            f"exp_dir={exp}",
            "trainer.threads=1",
            *more,
        ],
    )


def _ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_last_checkpoint_is_the_latest_epoch_when_the_metric_worsens(
    corpus, tiny_model, tmp_path, monkeypatch
):
    worse = itertools.count()  # every validation (the sanity check's too) scores worse than the one before
    monkeypatch.setattr(ErrorCounts, "wer", property(lambda self: float(next(worse))))
    exp = tmp_path / "run"
    (best,) = train(_config(corpus, exp, tiny_model, "trainer.max_epochs=3", "data.max_batch_seconds=12"))
    assert best.name.startswith("best-000-")  # the first epoch stayed the best
    per_epoch = _ckpt(best)["global_step"]
    last = _ckpt(exp / "checkpoints" / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (2, 3 * per_epoch)
    assert [int(r["step"]) for r in _rows(exp)] == list(range(3 * per_epoch))

    # resuming continues the log instead of deleting it; step checkpoints keep last.ckpt at the latest step
    more = ("trainer.max_epochs=4", "data.max_batch_seconds=12", "trainer.checkpoint_every_n_steps=2")
    train(_config(corpus, exp, tiny_model, *more))
    assert [int(r["step"]) for r in _rows(exp)] == list(range(4 * per_epoch))
    last = _ckpt(exp / "checkpoints" / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (3, 4 * per_epoch)


def test_a_second_run_in_the_same_exp_dir_is_refused(corpus, tiny_model, tmp_path):
    exp = tmp_path / "run"
    with experiment_lock(exp), pytest.raises(ExperimentBusy) as info:
        train(_config(corpus, exp, tiny_model, "trainer.max_epochs=1"))
    message = str(info.value)
    assert f"pid {os.getpid()} on {socket.gethostname()}, started " in message and "\n" not in message
    assert info.value.exit_code == 6
    record("training: concurrent run in one exp_dir", "ExperimentBusy, nothing written")
    assert not (exp / "config.yaml").exists() and not (exp / "checkpoints").exists()
    # released with its holder, even when the lock file stays behind: the next run trains
    assert (exp / LOCK_FILE).is_file()
    train(_config(corpus, exp, tiny_model, "trainer.max_epochs=1"))
    assert (exp / "checkpoints" / "last.ckpt").is_file()


def test_lock_of_a_killed_run_does_not_block(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from asr.train import experiment_lock; import time\n"
            f"with experiment_lock(__import__('pathlib').Path({str(tmp_path)!r})):\n"
            "    print('locked', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(ExperimentBusy, match=f"pid {holder.pid} on "), experiment_lock(tmp_path):
        pass
    holder.kill()
    holder.wait()
    with experiment_lock(tmp_path):
        assert f"pid {os.getpid()} " in (tmp_path / LOCK_FILE).read_text()
    record("training: lock left by a killed run", "released, next run proceeds")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("model.hidden_size=48", "model.hidden_size 32 -> 48"),
        ("features.n_mels=40", "features.n_mels 80 -> 40"),
        ("data.vocabulary=from_data", "the tokenizer"),
    ],
)
def test_resume_with_changed_model_settings_is_refused_before_writing(
    trained_exp, tiny_model, corpus, tmp_path, change, named
):
    exp = tmp_path / "run"
    shutil.copytree(trained_exp, exp)
    before = {p: p.read_bytes() for p in exp.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match=f"cannot resume with changed model settings.*{named}") as info:
        train(_config(corpus, exp, tiny_model, "trainer.max_epochs=2", change))
    assert info.value.exit_code == 3
    assert {p: p.read_bytes() for p in exp.rglob("*") if p.is_file()} == before
    record("training: resume with changed model settings", "ConfigError, nothing written")


def test_resume_with_an_auxiliary_ctc_layer_added_is_refused(trained_exp, tiny_model, corpus, tmp_path):
    """The training checkpoint has no auxiliary output layer to resume: named, like a model change."""
    exp = tmp_path / "run"
    shutil.copytree(trained_exp, exp)
    cfg = _config(corpus, exp, tiny_model, "trainer.max_epochs=2", "model.num_layers=2", "aux_ctc.layer=1")
    with pytest.raises(ConfigError, match=r"model\.num_layers 1 -> 2; aux_ctc\.layer 0 -> 1"):
        train(cfg)


def test_moved_exp_dir_resumes_with_its_own_paths(trained_exp, tiny_model, corpus, tmp_path):
    exp = tmp_path / "moved"
    shutil.copytree(trained_exp, exp)
    (best,) = train(_config(corpus, exp, tiny_model, "trainer.max_epochs=2"))
    assert best.parent == (exp / "checkpoints").resolve() and best.is_file()
    state = _ckpt(exp / "checkpoints" / "last.ckpt")["callbacks"]
    paths = [p for s in state.values() if isinstance(s, dict) for p in s.get("best_k_models", {})]
    assert paths and all(Path(p).parent == (exp / "checkpoints").resolve() for p in paths)


@pytest.fixture(scope="module")
def trained_exp(corpus, tmp_path_factory) -> Path:
    """An experiment folder after one epoch of a tiny model (copied by the tests that resume it)."""
    exp = tmp_path_factory.mktemp("trained") / "exp"
    train(_config(corpus, exp, list(TINY_MODEL), "trainer.max_epochs=1"))
    return exp


class _StopAt(pl.Callback):
    """Stops the run once it has taken ``step`` optimiser steps, as ``trainer.max_time`` does: mid-epoch,
    with Lightning counting the epoch as done."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True


@pytest.mark.parametrize("workers", [0, 1])
def test_a_run_its_clock_stopped_mid_epoch_resumes_where_it_stopped(corpus, tiny_model, tmp_path, workers):
    """A run cut by ``max_time`` and rerun with more time trains the rest of its schedule, batch for batch, as
    one run would (a loader worker fetches batches before the epoch's sampler state is set)."""

    def overrides(exp: Path) -> list[str]:
        return [*_command(corpus, exp, tiny_model)[3:], f"data.num_workers={workers}"]

    train(load_config(None, overrides(tmp_path / "ref")))
    exp = tmp_path / "run"
    train(load_config(None, overrides(exp)), [_StopAt(KILL_AFTER)])
    assert _step(exp / "checkpoints" / "last.ckpt") == KILL_AFTER
    train(load_config(None, overrides(exp)))
    want, got = _losses(tmp_path / "ref"), _losses(exp)
    assert sorted(got) == sorted(want) == list(range(MAX_STEPS))
    assert [got[s] for s in range(MAX_STEPS)] == pytest.approx([want[s] for s in range(MAX_STEPS)], rel=1e-5)
