"""The whole training path learns: a small model memorises a handful of generated utterances."""

import json

from asr.checkpoint import load_model
from asr.config import load_config
from asr.inference import evaluate_manifest
from asr.manifest import read_manifest, write_manifest
from asr.train import train


def test_overfits_a_handful_of_utterances(corpus, tmp_path):
    few = tmp_path / "few.jsonl"
    write_manifest(few, [vars(u) | {"line": None} for u in read_manifest(corpus["train"])[:8]])
    cfg = load_config(
        None,
        [
            f"data.train_manifest={few}",
            f"data.val_manifest={few}",
            f"exp_dir={tmp_path / 'exp'}",
            "data.max_batch_seconds=1000",
            "data.num_workers=0",
            "model.hidden_size=128",
            "model.num_layers=2",
            "model.conv_channels=16",
            "model.dropout=0.0",
            "specaug.freq_masks=0",
            "specaug.time_masks=0",
            "optim.lr=3e-3",
            "optim.warmup_steps=10",
            "optim.weight_decay=0.0",
            "optim.final_lr_ratio=1.0",
            "trainer.max_epochs=160",
            "trainer.val_every_n_epochs=40",
            "trainer.progress_bar=false",
        ],
    )
    best = train(cfg)
    counts, skipped = evaluate_manifest(load_model(best), few, tmp_path / "report.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "report.jsonl").read_text().splitlines()]
    assert skipped == 0 and len(rows) == 8
    assert counts.cer < 0.03, rows
