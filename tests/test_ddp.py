"""Two-process DDP on the CPU (gloo): ranks see disjoint data, DDP equals one process with the same global
batch, and a rank that dies ends the job with an error instead of a hang.

Run as a script, this file is the training driver the tests start (Lightning's DDP launcher re-runs it for
rank 1): ``python tests/test_ddp.py OUT_PREFIX KEY=VALUE ...``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from asr.audio import load_audio
from asr.checkpoint import load_recognizer
from asr.config import load_config
from asr.manifest import read_manifest
from asr.text import BLANK_ID
from asr.train import train

ROOT = Path(__file__).resolve().parents[1]
SAVE_AT_STEP = 2  # optimiser steps after which the weights are compared
DIE_AT_STEP = "ASR_TEST_DIE_AT_STEP"  # rank 1 exits abruptly after this many steps when set


class Record(pl.Callback):
    """Writes the utterance ids each rank trained on, and the weights after SAVE_AT_STEP steps (rank 0)."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.ids = prefix, []

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, idx
    ) -> None:
        self.ids.extend(batch.ids)
        die_at = os.environ.get(DIE_AT_STEP)
        if die_at and trainer.global_rank == 1 and trainer.global_step >= int(die_at):
            os._exit(3)  # no clean-up, like a killed or crashed process
        if trainer.global_step == SAVE_AT_STEP and trainer.is_global_zero and module.recognizer.training:
            torch.save(module.recognizer.state_dict(), f"{self.prefix}-step{SAVE_AT_STEP}.pt")

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        Path(f"{self.prefix}-rank{trainer.global_rank}.json").write_text(json.dumps(self.ids))


def _run(prefix: Path, overrides: list[str], timeout: float = 240, env: dict | None = None):
    return subprocess.run(
        [sys.executable, __file__, str(prefix), *overrides],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


def _common(corpus, tiny_model, exp: Path) -> list[str]:
    return [
        *tiny_model,
        f"data.train_manifest={corpus['train']}",
        f"data.val_manifest={corpus['dev']}",
        f"exp_dir={exp}",
        "data.max_batch_seconds=8",
        "model.dropout=0.0",  # per-rank dropout masks could not match a single process
        "specaug.freq_masks=0",
        "specaug.time_masks=0",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "trainer.threads=1",
    ]


def _ctc_loss(checkpoint: Path, manifest: Path, weights: Path) -> float:
    """Mean CTC loss per target token of the model in ``weights`` over ``manifest``."""
    model = load_recognizer(checkpoint)
    model.load_state_dict(torch.load(weights, weights_only=True))
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for u in read_manifest(manifest):
            target = torch.tensor([model.tokenizer.encode(u.text)])
            log_probs, out_lens = model(*model.pad([load_audio(u.audio_filepath)]))
            total += float(
                F.ctc_loss(
                    log_probs.transpose(0, 1),
                    target,
                    out_lens,
                    torch.tensor([target.shape[1]]),
                    blank=BLANK_ID,
                    reduction="sum",
                )
            )
            tokens += target.shape[1]
    return total / tokens


def test_two_ranks_see_disjoint_data_and_match_one_process(corpus, tiny_model, tmp_path):
    ddp = _run(
        tmp_path / "ddp",
        [*_common(corpus, tiny_model, tmp_path / "ddp_exp"), "trainer.devices=2", "trainer.strategy=ddp"],
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"ddp-rank{r}.json").read_text()) for r in (0, 1)]
    everything = {u.id for u in read_manifest(corpus["train"])}
    assert set(ranks[0]) | set(ranks[1]) == everything
    assert len(ranks[0]) == len(set(ranks[0])) and len(ranks[1]) == len(set(ranks[1]))
    overlap = set(ranks[0]) & set(ranks[1])
    assert len(overlap) <= len(everything) // 4  # only a batch repeated to even out the ranks' step counts

    single = _run(
        tmp_path / "one",
        [
            *_common(corpus, tiny_model, tmp_path / "one_exp"),
            "trainer.devices=1",
            "trainer.accumulate_grad_batches=2",
        ],
    )
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = (torch.load(tmp_path / f"{p}-step{SAVE_AT_STEP}.pt", weights_only=True) for p in ("ddp", "one"))
    assert all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5) for k in a)
    ckpt = tmp_path / "one_exp" / "checkpoints" / "last.ckpt"
    losses = [
        _ctc_loss(ckpt, corpus["train"], tmp_path / f"{p}-step{SAVE_AT_STEP}.pt") for p in ("ddp", "one")
    ]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_a_rank_that_dies_ends_the_job_with_an_error(corpus, tiny_model, tmp_path):
    out = _run(
        tmp_path / "die",
        [*_common(corpus, tiny_model, tmp_path / "exp"), "trainer.devices=2", "trainer.strategy=ddp"],
        timeout=180,
        env={DIE_AT_STEP: "1"},
    )
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "PeerFailure: rank 0: another training process failed or was killed" in last
    assert "rerun the same command to resume" in last


if __name__ == "__main__":
    prefix, *overrides = sys.argv[1:]
    train(load_config(None, overrides), callbacks=[Record(prefix)])
