"""Exact resume: a run SIGKILLed mid-epoch and restarted continues with the losses of an uninterrupted run."""

from __future__ import annotations

import csv
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from asr.checkpoint import load_model

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
    avg = tmp_path / "avg.pt"
    assert (
        _average_tool().main([str(tmp_path / "ref" / "checkpoints"), "--last", "2", "--out", str(avg)]) == 0
    )
    assert load_model(avg).cfg.model.hidden_size == 32


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
    (key,) = [k for k in base["callbacks"] if "val/wer" in k]
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
    averaged = load_model(out).state_dict()
    original = load_model(trained_model).state_dict()
    for k, v in original.items():
        shift = 2.0 if k.startswith("encoder.") and v.is_floating_point() else 0.0  # mean of 1, 2 and 3
        assert torch.allclose(averaged[k], v + shift, atol=1e-5), k

    other = {**base, "asr": {**base["asr"], "config": {**base["asr"]["config"], "seed": 7}}}
    torch.save(other, folder / "other.ckpt")
    assert tool.main([str(folder / "c0.ckpt"), str(folder / "other.ckpt"), "--out", str(out)]) == 4
    assert "only like models average" in capsys.readouterr().err
