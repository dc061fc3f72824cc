"""The LightningModule: schedule, and the skipping of steps with a non-finite loss or gradient."""

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from asr.config import Config, ModelConfig
from asr.data import Batch
from asr.lightning import CTCModule, warmup_cosine
from asr.recognizer import Recognizer
from asr.text import CharTokenizer


def test_warmup_cosine():
    assert warmup_cosine(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(10, 10, 100, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(55, 10, 100, 0.1) == pytest.approx(0.55)
    assert warmup_cosine(100, 10, 100, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(500, 10, 100, 0.1) == pytest.approx(0.1)


def _batch(tok: CharTokenizer, poison: bool) -> Batch:
    waves = torch.randn(2, 16000) * 0.1
    if poison:
        waves[0, 100] = float("nan")
    targets = torch.tensor([tok.encode("ab"), tok.encode("cd")])
    return Batch(waves, torch.tensor([16000, 16000]), targets, torch.tensor([2, 2]), ["a", "b"], ["ab", "cd"])


def test_non_finite_step_is_skipped_and_counted(tmp_path):
    tok = CharTokenizer.english()
    cfg = Config(model=ModelConfig(hidden_size=16, num_layers=1, conv_channels=4))
    module = CTCModule(Recognizer(cfg, tok))
    batches = [_batch(tok, False), _batch(tok, True), _batch(tok, False)]
    snapshots = []

    class Snapshot(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            snapshots.append([p.detach().clone() for p in pl_module.parameters()])

    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Snapshot()],
        default_root_dir=tmp_path,
    )
    trainer.fit(module, DataLoader(batches, batch_size=None))
    assert module.skipped_steps == 1
    assert all(torch.isfinite(p).all() for p in module.parameters())
    before, after_poison, after_good = snapshots
    assert all(torch.equal(a, b) for a, b in zip(before, after_poison))  # the poisoned step changed nothing
    assert any(not torch.equal(a, b) for a, b in zip(after_poison, after_good))  # training went on


def test_unreadable_files_are_counted_per_epoch(tmp_path, caplog):
    tok = CharTokenizer.english()
    cfg = Config(model=ModelConfig(hidden_size=16, num_layers=1, conv_channels=4))
    batches = [_batch(tok, False), _batch(tok, False)]
    batches[0].skipped, batches[1].skipped = 2, 1  # as collate counts files it could not read
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with caplog.at_level("WARNING", logger="asr.lightning"):
        trainer.fit(CTCModule(Recognizer(cfg, tok)), DataLoader(batches, batch_size=None))
    assert "epoch 0: 3 unreadable training file(s) skipped" in caplog.text
