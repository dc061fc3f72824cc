"""The end-to-end driver every recipe shares: train on prepared manifests, score the test set, report.

Recipes differ by their data preparation and config, not by their training code.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from pytorch_lightning.utilities import rank_zero_only

from asr.checkpoint import export_model, load_model
from asr.config import Config, load_config
from asr.inference import evaluate_manifest, transcribe_files
from asr.manifest import read_manifest
from asr.train import train

log = logging.getLogger(__name__)


def recipe_config(
    config: str | Path, manifests: dict[str, Path], exp_dir: str | Path, overrides: list[str]
) -> Config:
    """The recipe's YAML, its manifests and exp dir, then the user's overrides (which win)."""
    base = [
        f"data.train_manifest={manifests['train']}",
        f"data.val_manifest={manifests['dev']}",
        f"data.test_manifest={manifests['test']}",
        f"exp_dir={exp_dir}",
    ]
    return load_config(config, base + list(overrides))


def run_recipe(cfg: Config) -> dict:
    """Train (resuming if interrupted), export the best model, score the test set, transcribe one file.

    Writes ``model.pt``, ``test_report.jsonl`` and ``results.json`` into ``cfg.exp_dir`` and returns the
    results.
    """
    exp = Path(cfg.exp_dir)
    start = time.perf_counter()
    best = train(cfg)
    train_seconds = time.perf_counter() - start
    if rank_zero_only.rank != 0:  # under DDP the other ranks stop after training
        return {}
    export_model(best, exp / "model.pt")
    model = load_model(exp / "model.pt")
    counts, skipped = evaluate_manifest(model, cfg.data.test_manifest, exp / "test_report.jsonl")
    sample = read_manifest(cfg.data.test_manifest)[0]
    (example,) = transcribe_files(model, [sample.audio_filepath])
    results = {
        "test_wer": round(100 * counts.wer, 2),
        "test_cer": round(100 * counts.cer, 2),
        "test_words": counts.words,
        "test_skipped": skipped,
        "train_wall_seconds": round(train_seconds, 1),
        "best_checkpoint": str(best),
        "example": {"audio": sample.audio_filepath, "reference": sample.text, "hypothesis": example.text},
    }
    (exp / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"test WER {results['test_wer']:.2f}%  CER {results['test_cer']:.2f}%  ({counts.words} words)")
    print(f"example {sample.audio_filepath}\n  reference:  {sample.text}\n  hypothesis: {example.text}")
    print(f"model: {exp / 'model.pt'}  results: {exp / 'results.json'}")
    return results
